"""The read paths at scale (docs/decisions.md, "Read paths at scale"), on SQLite and on PostgreSQL.

- The bench seed (``bench/seed.py``) writes a history that ``meterbook verify`` finds consistent, whose events
  the API answers as duplicates when they are sent again.
- The organization's history counts (per day and per slice) stay exact through billing runs, payments and
  voids; ``verify`` names a count that was changed behind its back; the migration fills them from the items.
- Every page of the Cloudflare history and of the Talkdesk search is the one a plain sort of all the rows
  gives, whatever the order, the filters, the page size and the key (organization or account).
"""

from __future__ import annotations

import math
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bench.seed import SeededHistory, seed_history
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, func, insert, select, text, update
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Principal
from meterbook.accounts.schemas import AccountCreate
from meterbook.aggregates import query
from meterbook.aggregates import service as aggregates
from meterbook.cli import app
from meterbook.db import Database
from meterbook.db.migrate import migrate
from meterbook.db.tables import accounts as accounts_table
from meterbook.db.tables import (
    billing_history,
    billing_history_days,
    billing_history_slices,
    monthly_aggregates,
    organizations,
    usage_events,
)
from meterbook.invoicing import repository as invoicing_repository
from meterbook.invoicing import service as invoicing
from meterbook.invoicing.models import HistoryItem
from meterbook.ledger import service as ledger
from meterbook.payments.schemas import PaymentIn
from tests.conftest import bearer

pytestmark = pytest.mark.storage


@dataclass
class World:
    """A small seeded history, plus items placed where the paging has edges, and keys of three reaches."""

    seeded: SeededHistory
    organization_id: uuid.UUID
    org: Principal
    parent: Principal
    leaf: Principal
    #: Instants the ``since`` filter is tried with.
    moments: list[datetime]


def _extra_items(
    organization_id: uuid.UUID, owners: list[tuple[uuid.UUID, str]], day: datetime
) -> list[tuple[HistoryItem, uuid.UUID | None, str | None]]:
    """Items on two days: many at one instant (slices of several sizes), and some on either side of midnight."""
    chooser = random.Random(11)
    instant = day + timedelta(hours=12)
    made: list[tuple[HistoryItem, uuid.UUID | None, str | None]] = []

    def item(shard: str, moment: datetime, type_: str, action: str) -> None:
        account_id, name = owners[len(made) % len(owners)]
        made.append(
            (
                HistoryItem(
                    id=shard + "".join(chooser.choice("0123456789abcdef") for _ in range(31)),
                    account_id=account_id,
                    account_name=name,
                    type=type_,
                    action=action,
                    description=f"extra {len(made)}",
                    occurred_at=moment,
                    amount=Decimal(len(made)) / 4,
                    currency="USD",
                ),
                None,
                None,
            )
        )

    for shard, count in (("a", 23), ("3", 17), ("f", 12), ("0", 9), ("9", 6)):
        for _ in range(count):
            item(shard, instant, "charge", "usage")
    for shard in "0af":
        item(shard, instant, "payment", "payment")
        item(shard, instant, "charge", "subscription")
    next_day = day + timedelta(days=1)
    for moment in (next_day, next_day - timedelta(microseconds=1), next_day + timedelta(microseconds=1)):
        item("5", moment, "refund", "void")
        item("c", moment, "payment", "payment")
    return made


@pytest.fixture
def world(database_url: str, database: Database) -> World:
    seeded = seed_history(database_url, accounts=6, products=3, months=3, events=1500, progress=False)
    organization_id = uuid.UUID(seeded.organization_id)
    with database.write() as conn:
        org = accounts.authenticate(conn, seeded.organization_key)
        parent_id = uuid.UUID(seeded.account_ids[1])
        child = accounts.create_account(conn, org, AccountCreate(name="Child", parent_account_id=parent_id))
        assert child.api_key is not None
        grandchild = accounts.create_account(conn, org, AccountCreate(name="Grandchild", parent_account_id=child.id))
        assert grandchild.api_key is not None
        day = datetime.fromisoformat(f"{seeded.months[1]}-10T00:00:00+00:00")
        owners = [(child.id, "Child"), (grandchild.id, "Grandchild"), (uuid.UUID(seeded.account_ids[2]), "Other")]
        invoicing_repository.insert_history(conn, organization_id, _extra_items(organization_id, owners, day))
        parent = accounts.authenticate(conn, seeded.account_keys[1])
        leaf = accounts.authenticate(conn, grandchild.api_key)
        instants = sorted(set(conn.execute(select(billing_history.c.occurred_at)).scalars()))
    moments = [
        datetime(2000, 1, 1, tzinfo=UTC),
        day,
        day + timedelta(hours=12),
        day + timedelta(hours=12, microseconds=1),
        day + timedelta(days=1),
        day + timedelta(days=1, microseconds=1),
        instants[len(instants) // 2],
        instants[len(instants) // 2] + timedelta(hours=7),
        instants[-1] + timedelta(seconds=1),
    ]
    return World(seeded, organization_id, org, parent, leaf, moments)


# --- the seed ----------------------------------------------------------------------------------------


class TestSeed:
    def test_verify_finds_no_difference(self, world: World, database: Database) -> None:
        with database.read() as conn:
            assert aggregates.verify(conn).differences == []
            assert ledger.verify(conn) == []
            assert invoicing.verify(conn) == []
            stored = conn.execute(
                select(func.count())
                .select_from(usage_events)
                .where(usage_events.c.organization_id == world.organization_id)
            ).scalar_one()
        assert stored == world.seeded.events == 1500
        assert world.seeded.invoices == 18
        assert world.seeded.payments > 0

    def test_events_sent_again_are_duplicates(self, world: World, database: Database, client: TestClient) -> None:
        with database.read() as conn:
            rows = conn.execute(
                select(usage_events)
                .where(usage_events.c.organization_id == world.organization_id)
                .order_by(usage_events.c.id)
                .limit(400)
            ).all()
        events = [
            {
                "id": row.id,
                "account_id": str(row.account_id),
                "type": row.kind,
                "product_id": row.product_id,
                "quantity": row.quantity,
                "occurred_at": row.occurred_at.isoformat(),
                **({"direction": row.direction} if row.direction is not None else {}),
            }
            for row in rows
        ]
        # In requests that stay under the tests' body limit (64 KiB).
        for start in range(0, len(events), 100):
            batch = events[start : start + 100]
            response = client.post("/v1/events", json=batch, headers=bearer(world.seeded.organization_key))
            assert response.status_code == 200, response.text
            assert response.json() == {"accepted": 0, "duplicates": len(batch)}


# --- counts of the history ---------------------------------------------------------------------------


class TestHistoryCounts:
    def test_counts_match_the_items(self, world: World, database: Database) -> None:
        with database.read() as conn:
            assert invoicing.verify(conn) == []
            items = conn.execute(select(func.count()).select_from(billing_history)).scalar_one()
            by_day = conn.execute(select(func.sum(billing_history_days.c.item_count))).scalar_one()
            by_slice = conn.execute(select(func.sum(billing_history_slices.c.item_count))).scalar_one()
        assert items == by_day == by_slice > 0

    def test_a_void_and_a_payment_keep_them_exact(self, world: World, database: Database) -> None:
        with database.write() as conn:
            open_ones = invoicing.list_invoices(conn, world.org, status="open")
            invoicing.void(conn, world.org, open_ones[0].id)
            invoicing.pay(conn, world.org, PaymentIn(account_id=open_ones[1].account_id, amount=Decimal("1.25")))
        with database.read() as conn:
            assert invoicing.verify(conn) == []

    @pytest.mark.parametrize("table", ["days", "slices"])
    def test_verify_names_a_changed_count(
        self, world: World, database: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, table: str
    ) -> None:
        counts = billing_history_days if table == "days" else billing_history_slices
        with database.write() as conn:
            first = conn.execute(select(counts).limit(1)).one()
            conn.execute(
                update(counts)
                .where(*(column == first._mapping[column.name] for column in counts.primary_key.columns))
                .values(item_count=counts.c.item_count + 1)
            )
        with database.read() as conn:
            differences = invoicing.verify(conn)
        assert len(differences) == 1
        assert f"counted as {first.item_count + 1}" in differences[0]
        assert f"{first.item_count} items" in differences[0]
        monkeypatch.setenv("METERBOOK_DATABASE_URL", database_url)
        result = CliRunner().invoke(app, ["verify"])
        assert result.exit_code == 1
        assert "billing history of organization" in result.output

    def test_verify_names_a_missing_count(self, world: World, database: Database) -> None:
        with database.write() as conn:
            conn.execute(delete(billing_history_slices).where(billing_history_slices.c.type == "refund"))
        with database.read() as conn:
            differences = invoicing.verify(conn)
        assert differences
        assert all("counted as 0" in difference and "(refund, void" in difference for difference in differences)


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own, not migrated yet: SQLite, or a new PostgreSQL database dropped at the end."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    admin_url = os.environ.get("METERBOOK_TEST_POSTGRES_URL")
    if admin_url is None:
        pytest.skip("no PostgreSQL server (METERBOOK_TEST_POSTGRES_URL)")
    name = f"meterbook_test_reads_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_migration_counts_the_items_already_stored(empty_database_url: str) -> None:
    """Items written before the counts existed are counted when the schema is brought up to date."""
    database = Database(empty_database_url)
    try:
        migrate(database, "0004")
        now = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
        organization_id = uuid.uuid4()
        with database.write() as conn:
            conn.execute(
                insert(organizations).values(
                    id=organization_id, name="Old", default_billing_account_id=None, created_at=now
                )
            )
        account_id = uuid.uuid4()
        moments = [now, now, datetime(2026, 3, 3, 23, 59, 59, 999999, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)]
        with database.write() as conn:
            # Tables as they are today: revision 0004 has the same columns for these two.
            conn.execute(
                insert(accounts_table).values(
                    id=account_id,
                    organization_id=organization_id,
                    parent_account_id=None,
                    path=f"{account_id.hex}/",
                    name="A",
                    currency="USD",
                    status="ready",
                    status_changed_at=now,
                    suppress_from_reports=False,
                    monthly_cost=0,
                    contract_started_at=now,
                    net_terms_days=30,
                    credit_min=0,
                    created_at=now,
                    updated_at=now,
                    last_updated_config_at=now,
                )
            )
            conn.execute(
                insert(billing_history),
                [
                    {
                        "id": f"{shard}{number:031x}",
                        "organization_id": organization_id,
                        "account_id": account_id,
                        "type": "charge",
                        "action": "usage",
                        "description": "old",
                        "occurred_at": moment,
                        "amount": Decimal(1),
                        "currency": "USD",
                        "invoice_id": None,
                        "payment_id": None,
                    }
                    for number, (shard, moment) in enumerate(zip("a3aa", moments, strict=True))
                ],
            )
        migrate(database)
        with database.read() as conn:
            assert invoicing.verify(conn) == []
            days = {
                (row.day, row.item_count)
                for row in conn.execute(select(billing_history_days.c.day, billing_history_days.c.item_count))
            }
            slices = conn.execute(select(func.count()).select_from(billing_history_slices)).scalar_one()
        assert days == {
            (datetime(2026, 3, 1, tzinfo=UTC), 2),
            (datetime(2026, 3, 3, tzinfo=UTC), 1),
            (datetime(2026, 3, 4, tzinfo=UTC), 1),
        }
        assert slices == 4  # (now, a), (now, 3), and one per later instant
    finally:
        database.dispose()


# --- pages against a plain sort ----------------------------------------------------------------------


def _reference(
    rows: list[Any], reach: set[uuid.UUID] | None, order: str | None, filters: dict[str, Any]
) -> tuple[list[str], int]:
    """The ids of every matching item in page order, and how many items the key reaches, by sorting them all."""
    reached = [row for row in rows if reach is None or row.account_id in reach]
    matching = [
        row
        for row in reached
        if ("type_" not in filters or row.type == filters["type_"])
        and ("action" not in filters or row.action == filters["action"])
        and ("since" not in filters or row.occurred_at >= filters["since"])
    ]
    if order is None:
        matching.sort(key=lambda row: (row.occurred_at, row.id), reverse=True)
    elif order == "occurred_at":
        matching.sort(key=lambda row: (row.occurred_at, row.id))
    else:
        matching.sort(key=lambda row: (getattr(row, order), row.occurred_at, row.id))
    return [row.id for row in matching], len(reached)


def _reach(database: Database, principal: Principal) -> set[uuid.UUID] | None:
    if principal.account_path is None:
        return None
    with database.read() as conn:
        return {account.id for account in accounts.list_accounts(conn, principal)}


FILTERS: list[dict[str, Any]] = [
    {},
    {"type_": "charge"},
    {"action": "usage"},
    {"type_": "payment", "action": "payment"},
    {"type_": "charge", "action": "payment"},
    {"action": ""},
]


class TestHistoryPages:
    @pytest.mark.parametrize("order", [None, "occurred_at", "type", "action"])
    @pytest.mark.parametrize("located", [True, False], ids=["by-slices", "by-offset"])
    def test_every_page_is_the_plain_sort(
        self, world: World, database: Database, monkeypatch: pytest.MonkeyPatch, order: Any, located: bool
    ) -> None:
        # By default only pages past the first thousand items are found through the counts: here every one is,
        # or none.
        monkeypatch.setattr(invoicing_repository, "_SKIPPED_IN_INDEX", 0 if located else 10**9)
        with database.read() as conn:
            rows = conn.execute(select(billing_history)).all()
        cases = [dict(filters) for filters in FILTERS]
        cases += [{"since": moment} for moment in world.moments]
        cases += [{"since": moment, "action": "usage"} for moment in world.moments[1:5]]
        for principal in (world.org, world.parent, world.leaf):
            reach = _reach(database, principal)
            for filters in cases:
                expected, total = _reference(rows, reach, order, filters)
                for per_page in (5, 13) if principal is world.org else (5,):
                    pages = math.ceil(len(expected) / per_page)
                    numbers = range(1, pages + 2) if principal is world.org else sorted({1, max(1, pages), pages + 1})
                    for page in numbers:
                        with database.read() as conn:
                            found = invoicing.history(
                                conn, principal, page=page, per_page=per_page, order=order, **filters
                            )
                        start = (page - 1) * per_page
                        where = f"{order=} {filters=} {per_page=} {page=} key={principal.account_path}"
                        assert [item.id for item in found.items] == expected[start : start + per_page], where
                        assert (found.matching, found.total) == (len(expected), total), where


# --- the Talkdesk search against a plain sort ---------------------------------------------------------


def _matches(expr: query.Expr, row: Any) -> bool:
    if isinstance(expr, query.Comparison):
        left: Any = row.month if expr.field == "month" else row.account_id
        right: Any = expr.value if expr.field == "month" else uuid.UUID(expr.value)
        return {
            "eq": left == right,
            "ne": left != right,
            "gt": left > right,
            "ge": left >= right,
            "lt": left < right,
            "le": left <= right,
        }[expr.op]
    if isinstance(expr, query.Not):
        return not _matches(expr.inner, row)
    if isinstance(expr, query.And):
        return _matches(expr.left, row) and _matches(expr.right, row)
    return _matches(expr.left, row) or _matches(expr.right, row)


def _random_filter(chooser: random.Random, accounts_named: list[str], months: list[str], depth: int = 0) -> query.Expr:
    roll = chooser.random()
    if depth >= 3 or roll < 0.45:
        if chooser.random() < 0.5:
            return query.Comparison(
                "month", chooser.choice(["eq", "ne", "gt", "ge", "lt", "le"]), chooser.choice(months)
            )
        return query.Comparison(
            "account_id", chooser.choice(["eq", "eq", "ne", "gt", "le"]), chooser.choice(accounts_named)
        )
    if roll < 0.55:
        return query.Not(_random_filter(chooser, accounts_named, months, depth + 1))
    kind = query.And if roll < 0.8 else query.Or
    return kind(
        _random_filter(chooser, accounts_named, months, depth + 1),
        _random_filter(chooser, accounts_named, months, depth + 1),
    )


class TestTalkdeskSearch:
    def test_every_page_is_the_plain_sort(self, world: World, database: Database) -> None:
        with database.read() as conn:
            rows = conn.execute(
                select(monthly_aggregates).where(monthly_aggregates.c.organization_id == world.organization_id)
            ).all()
        chooser = random.Random(5)
        for principal in (world.org, world.parent):
            reach = _reach(database, principal)
            named = sorted(str(account) for account in (reach or {row.account_id for row in rows}))
            filters: list[query.Expr | None] = [None]
            filters += [query.Comparison("account_id", "eq", account) for account in named[:2]]
            filters += [query.Comparison("month", "eq", month) for month in world.seeded.months]
            filters += [_random_filter(chooser, named, world.seeded.months) for _ in range(12)]
            for where in filters:
                reached = [row for row in rows if reach is None or row.account_id in reach]
                matching = [row for row in reached if where is None or _matches(where, row)]
                for order_by in ("id", "month", "account_id"):
                    for descending in (False, True):

                        def key(row: Any, field: str = order_by) -> tuple[Any, str]:
                            return (getattr(row, field) if field != "id" else "", row.id)

                        expected = [row.id for row in sorted(matching, key=key, reverse=descending)]
                        pages = max(1, math.ceil(len(expected) / 7))
                        for page in sorted({1, 2, pages, pages + 1}):
                            with database.read() as conn:
                                found, total = aggregates.search(
                                    conn,
                                    principal,
                                    where,
                                    order_by,
                                    descending,
                                    page,
                                    7,  # type: ignore[arg-type]
                                )
                            where_text = f"{where=} {order_by=} {descending=} {page=} key={principal.account_path}"
                            assert total == len(expected), where_text
                            assert [item.id for item in found] == expected[(page - 1) * 7 : page * 7], where_text
