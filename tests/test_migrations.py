"""The migrations build exactly the schema ``db/tables.py`` describes, on SQLite and PostgreSQL (contract §5)."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Uuid,
    create_engine,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from meterbook.accounts.models import Principal
from meterbook.aggregates.models import AggregateKey
from meterbook.alerts import service as alerts
from meterbook.alerts.schemas import AlertCreate
from meterbook.catalog import service as catalog
from meterbook.catalog.schemas import ProductPut
from meterbook.db import Database
from meterbook.db.cache import LARGE_CACHE_KIB, large_cache
from meterbook.db.migrate import alembic_config, migrate
from meterbook.db.tables import (
    BILLED,
    accounts,
    billing_history,
    credit_balances,
    credit_transactions,
    invoices,
    ledger_entries,
    metadata,
    organizations,
    payment_allocations,
    payments,
    usage_events,
)
from meterbook.db.types import FixedDecimal
from meterbook.invoicing.models import history_id
from meterbook.ledger import service as ledger
from meterbook.plans import service as plans
from meterbook.plans.schemas import NegotiatedPricePut, PlanPut, SubscriptionPut
from meterbook.pricing import parse_price
from meterbook.usage import service as usage
from meterbook.usage.schemas import EventIn


def differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, metadata))


#: The tables that revisions after 0008 add: a database at 0008 lacks exactly these.
ADDED_AFTER_0008 = {"plans", "plan_versions", "subscriptions", "account_prices"}
#: The columns that revisions after 0009 add: (table, column).
ADDED_AFTER_0009 = {("monthly_aggregates", "plan_id"), ("invoice_lines", "tiers")}


#: The indexes that revisions after 0009 add.
INDEXES_AFTER_0009 = {"ix_subscriptions_organization_id_starts_at", "ix_account_prices_organization_id"}


#: The tables that revisions after 0010 add (0012: jobs and webhooks).
ADDED_AFTER_0010 = {"jobs", "webhook_endpoints", "webhook_events", "webhook_deliveries", "webhook_attempts"}
#: The tables that revisions after 0012 add (0013: alerts).
ADDED_AFTER_0012 = {"alerts", "alert_triggers", "alert_versions"}


def differences_at_0012(conn: Connection) -> list[Any]:
    """The differences of a database at 0012 from the tables, less the tables later revisions add."""
    return [
        diff
        for diff in differences(conn)
        if not (diff[0] in ("add_table", "add_index") and getattr(diff[1], "name", None) in ADDED_AFTER_0012)
        and not (diff[0] == "add_index" and diff[1].table.name in ADDED_AFTER_0012)
    ]


def differences_at_0010(conn: Connection) -> list[Any]:
    """The differences of a database at 0010 from the tables, less the tables later revisions add."""
    return [
        diff
        for diff in differences_at_0012(conn)
        if not (diff[0] in ("add_table", "add_index") and getattr(diff[1], "name", None) in ADDED_AFTER_0010)
        and not (diff[0] == "add_index" and diff[1].table.name in ADDED_AFTER_0010)
    ]


def differences_at_0009(conn: Connection) -> list[Any]:
    """The differences of a database at 0009 from the tables, less the columns and indexes later revisions add."""
    return [
        diff
        for diff in differences_at_0010(conn)
        if not (diff[0] == "add_column" and (diff[2], diff[3].name) in ADDED_AFTER_0009)
        and not (diff[0] == "add_index" and diff[1].name in INDEXES_AFTER_0009)
    ]


def differences_at_0008(conn: Connection) -> list[Any]:
    """The differences of a database at 0008 from the tables, less the tables and columns that later revisions add."""
    return [
        diff
        for diff in differences_at_0009(conn)
        if not (diff[0] in ("add_table", "add_index") and getattr(diff[1], "name", None) in ADDED_AFTER_0008)
        and not (diff[0] == "add_index" and diff[1].table.name in ADDED_AFTER_0008)
    ]


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def schema_snapshot(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    return {
        table: {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            "foreign_keys": sorted(
                (f["name"] or "", tuple(f["constrained_columns"])) for f in inspector.get_foreign_keys(table)
            ),
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
        }
        for table in sorted(inspector.get_table_names())
    }


def new_organization(conn: Connection, name: str = "Org") -> uuid.UUID:
    organization_id = uuid.uuid4()
    conn.execute(
        insert(organizations).values(
            id=organization_id, name=name, default_billing_account_id=None, created_at=datetime.now(UTC)
        )
    )
    return organization_id


class TestSchema:
    def test_migrated_schema_matches_the_tables(self, database: Database) -> None:
        with database.read() as conn:
            assert differences(conn) == []

    def test_the_comparison_would_see_a_difference(self, database: Database) -> None:
        """Guards the test above: a column the migrations lack is reported."""
        changed = MetaData()
        for table in metadata.sorted_tables:
            table.to_metadata(changed)
        Table("projects", changed, Column("color", String(20)), extend_existing=True)
        with database.read() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            found = compare_metadata(context, changed)
        assert [(diff[0], diff[3].name) for diff in found] == [("add_column", "color")]

    def test_every_table_exists(self, database: Database) -> None:
        with database.read() as conn:
            names = set(inspect(conn).get_table_names())
        assert {table.name for table in metadata.sorted_tables} | {"alembic_version"} == names

    def test_database_is_at_head(self, database: Database) -> None:
        with database.read() as conn:
            assert current_revision(conn) == head_revision()

    def test_one_head(self) -> None:
        assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


class TestMigrateAgain:
    def test_second_migrate_is_a_no_op(self, database: Database) -> None:
        with database.write() as conn:
            organization_id = new_organization(conn)
        with database.read() as conn:
            before = schema_snapshot(conn)
        migrate(database)
        migrate(database)
        with database.read() as conn:
            assert schema_snapshot(conn) == before
            assert current_revision(conn) == head_revision()
            assert conn.execute(select(func.count()).select_from(text("alembic_version"))).scalar_one() == 1
            assert conn.execute(select(organizations.c.id)).scalars().all() == [organization_id]
            assert differences(conn) == []

    def test_fresh_sqlite_file_is_created_and_migrated(self, tmp_path: Path) -> None:
        database = Database(f"sqlite:///{tmp_path / 'new.db'}")
        try:
            migrate(database)
            migrate(database)
            with database.read() as conn:
                assert differences(conn) == []
                assert current_revision(conn) == head_revision()
        finally:
            database.dispose()


class TestConstraints:
    def test_foreign_keys_are_enforced(self, database: Database) -> None:
        now = datetime.now(UTC)
        orphan = {
            "id": uuid.uuid4(),
            "organization_id": uuid.uuid4(),
            "parent_account_id": None,
            "path": "x/",
            "name": "orphan",
            "currency": "USD",
            "status": "ready",
            "status_changed_at": now,
            "suppress_from_reports": False,
            "monthly_cost": 0,
            "contract_started_at": now,
            "net_terms_days": 30,
            "credit_min": 0,
            "created_at": now,
            "updated_at": now,
            "last_updated_config_at": now,
        }
        with pytest.raises(IntegrityError), database.write() as conn:
            conn.execute(insert(accounts).values(**orphan))
        with database.read() as conn:
            assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() == 0


class TestSqliteSettings:
    @pytest.fixture
    def sqlite_database(self, tmp_path: Path) -> Any:
        database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
        migrate(database)
        yield database, tmp_path / "wal.db"
        database.dispose()

    def test_wal_mode_and_foreign_keys(self, sqlite_database: Any) -> None:
        database, _ = sqlite_database
        for open_transaction in (database.read, database.write):
            with open_transaction() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one().lower() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1

    def test_the_file_itself_is_in_wal_mode(self, sqlite_database: Any) -> None:
        """WAL is a property of the file: any other program opening it sees it."""
        _, path = sqlite_database
        raw = sqlite3.connect(path)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        finally:
            raw.close()

    def test_a_large_transaction_has_a_large_cache_and_gives_it_back(self, sqlite_database: Any) -> None:
        database, _ = sqlite_database
        with database.write() as conn:
            default = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
            with large_cache(conn):
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -LARGE_CACHE_KIB
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == default
            with pytest.raises(ZeroDivisionError), large_cache(conn):
                _ = 1 / 0
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == default

    def test_synchronous_full_by_default(self, sqlite_database: Any) -> None:
        database, _ = sqlite_database
        with database.read() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL


class TestPrimaryKeys:
    def test_every_primary_key_is_the_one_of_the_tables(self, database: Database) -> None:
        """Alembic's comparison leaves primary keys out: each table's key, column by column, in order."""
        with database.read() as conn:
            inspector = inspect(conn)
            stored = {table.name: inspector.get_pk_constraint(table.name) for table in metadata.sorted_tables}
        for table in metadata.sorted_tables:
            assert stored[table.name]["constrained_columns"] == [c.name for c in table.primary_key.columns], table.name
            assert stored[table.name]["name"] == f"pk_{table.name}"


# --- 0007: ids per account ----------------------------------------------------------------------------


@pytest.fixture
def empty_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database with no tables at all, on each backend, for migrating step by step."""
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'stepwise.db'}")
        yield database
        database.dispose()
        return
    request.getfixturevalue("postgres_url")  # the same skip, or failure, as every PostgreSQL test
    admin = create_engine(os.environ["METERBOOK_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    name = f"meterbook_stepwise_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database(make_url(admin.url).set(database=name).render_as_string(hide_password=False))
    try:
        yield database
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def step_to(database: Database, revision: str, *, down: bool = False) -> None:
    config = alembic_config()
    with database.write() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


#: Every table 0007 changes, and the others whose rows name events, grants or payments, in a stable order.
_ORDERED = {
    "usage_events": "organization_id, id",
    "credit_transactions": "id",
    "ledger_entries": "transaction_id, line",
    "credit_balances": "account_id",
    "invoices": "id",
    "payments": "organization_id, id",
    "payment_allocations": "organization_id, payment_id, invoice_id",
    "billing_history": "id",
}


def raw_rows(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of those tables as the database stores it (no conversion), without 0007's new column."""
    return {
        table: [
            {key: value for key, value in row._mapping.items() if (table, key) != ("payment_allocations", "account_id")}
            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))
        ]
        for table, order in _ORDERED.items()
    }


#: payment_allocations as 0006 left it: no account_id.
ALLOCATIONS_0006 = Table(
    "payment_allocations",
    MetaData(),
    Column("organization_id", Uuid, primary_key=True),
    Column("payment_id", String(255), primary_key=True),
    Column("invoice_id", Uuid, primary_key=True),
    Column("amount", FixedDecimal(BILLED), nullable=False),
)


@dataclass
class Before0007:
    organization_id: uuid.UUID
    first: uuid.UUID
    second: uuid.UUID
    invoice_id: uuid.UUID


def fill_at_0006(conn: Connection) -> Before0007:
    """Two accounts of one organization with events, ledger transactions, an invoice, payments and their history,
    written as the schema of 0006 stores them: every id unique in the organization."""
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    organization_id = new_organization(conn)
    first, second = uuid.uuid4(), uuid.uuid4()
    for account_id, name in ((first, "first"), (second, "second")):
        conn.execute(
            insert(accounts).values(
                id=account_id,
                organization_id=organization_id,
                parent_account_id=None,
                path=f"{account_id.hex}/",
                name=name,
                currency="USD",
                status="ready",
                status_changed_at=now,
                suppress_from_reports=False,
                monthly_cost=Decimal(0),
                contract_started_at=now,
                net_terms_days=30,
                credit_min=0,
                created_at=now,
                updated_at=now,
                last_updated_config_at=now,
            )
        )
    event = {
        "organization_id": organization_id,
        "product_id": None,
        "feature": None,
        "occurred_at": now,
        "received_at": now,
        "direction": None,
        "resolution": None,
        "user_id": None,
        "source": None,
        "description": None,
        "metadata": None,
        "aggregate_id": None,
        "unit_price": None,
    }
    conn.execute(
        insert(usage_events),
        [
            {**event, "id": "ev-1", "account_id": first, "kind": "credit", "quantity": "5", "fingerprint": "a" * 32},
            {**event, "id": "ev-2", "account_id": second, "kind": "credit", "quantity": "7", "fingerprint": "b" * 32},
            {
                **event,
                "id": "ev-3",
                "account_id": first,
                "kind": "metered",
                "product_id": "P1",
                "quantity": "1.5",
                "fingerprint": "c" * 32,
                "aggregate_id": "d" * 32,
                "unit_price": Decimal("0.25"),
            },
        ],
    )
    ledger = [
        (uuid.uuid4(), first, "grant", 100, "grant:g-1", "e" * 32),
        (uuid.uuid4(), first, "usage", 5, "usage:ev-1", None),
        (uuid.uuid4(), second, "usage", 7, "usage:ev-2", None),
    ]
    for transaction_id, account_id, kind, amount, key, digest in ledger:
        conn.execute(
            insert(credit_transactions).values(
                id=transaction_id,
                organization_id=organization_id,
                account_id=account_id,
                kind=kind,
                amount=amount,
                idempotency_key=key,
                reverts_id=None,
                source="system",
                description=None,
                user_id=None,
                metadata=None,
                fingerprint=digest,
                created_at=now,
            )
        )
        signed = amount if kind == "grant" else -amount
        conn.execute(
            insert(ledger_entries),
            [
                {
                    "transaction_id": transaction_id,
                    "line": 1,
                    "account_id": account_id,
                    "system_account": None,
                    "amount": signed,
                },
                {
                    "transaction_id": transaction_id,
                    "line": 2,
                    "account_id": None,
                    "system_account": f"system:{kind}",
                    "amount": -signed,
                },
            ],
        )
    conn.execute(
        insert(credit_balances),
        [
            {"account_id": first, "organization_id": organization_id, "balance": 95, "updated_at": now},
            {"account_id": second, "organization_id": organization_id, "balance": -7, "updated_at": now},
        ],
    )
    invoice_id = uuid.uuid4()
    conn.execute(
        insert(invoices).values(
            id=invoice_id,
            organization_id=organization_id,
            account_id=first,
            number=1,
            currency="USD",
            month="2026-10",
            status="open",
            amount=Decimal("50"),
            amount_paid=Decimal("30"),
            issued_at=now,
            effective_date=now,
            due_date=now,
        )
    )
    for payment_id, account_id, amount, unapplied in (("pay-1", first, "30", "0"), ("pay-2", second, "12.5", "12.5")):
        conn.execute(
            insert(payments).values(
                organization_id=organization_id,
                id=payment_id,
                account_id=account_id,
                amount=Decimal(amount),
                currency="USD",
                date=now,
                invoice_id=None,
                reference=None,
                unapplied=Decimal(unapplied),
                fingerprint="f" * 32,
                created_at=now,
            )
        )
        conn.execute(
            insert(billing_history).values(
                id=history_id("payment", str(organization_id), payment_id),
                organization_id=organization_id,
                account_id=account_id,
                type="payment",
                action="payment",
                description="Payment",
                occurred_at=now,
                amount=Decimal(amount),
                currency="USD",
                invoice_id=None,
                payment_id=payment_id,
            )
        )
    conn.execute(
        insert(ALLOCATIONS_0006).values(
            organization_id=organization_id, payment_id="pay-1", invoice_id=invoice_id, amount=Decimal("30")
        )
    )
    return Before0007(organization_id, first, second, invoice_id)


class TestIdsPerAccount:
    def test_every_row_survives_the_upgrade_unchanged(self, empty_database: Database) -> None:
        step_to(empty_database, "0006")
        with empty_database.write() as conn:
            before = fill_at_0006(conn)
            rows = raw_rows(conn)
        assert all(rows.values()), rows
        step_to(empty_database, "0007")
        with empty_database.read() as conn:
            assert raw_rows(conn) == rows
            allocated = conn.execute(select(payment_allocations.c.account_id, payment_allocations.c.payment_id)).all()
            assert [tuple(row) for row in allocated] == [(before.first, "pay-1")]
            assert ledger.verify(conn) == []
        # And back: 0006's keys hold again while no id is used twice in an organization.
        step_to(empty_database, "0006", down=True)
        with empty_database.read() as conn:
            assert raw_rows(conn) == rows
        step_to(empty_database, "0007")
        with empty_database.read() as conn:
            assert raw_rows(conn) == rows

    def test_after_the_upgrade_ids_are_per_account(self, empty_database: Database) -> None:
        step_to(empty_database, "0006")
        with empty_database.write() as conn:
            before = fill_at_0006(conn)
        step_to(empty_database, "0007")
        now = datetime.now(UTC)
        with empty_database.write() as conn:
            # The other account may use every id the first one used.
            conn.execute(
                usage_events.insert().from_select(
                    [c.name for c in usage_events.columns],
                    select(
                        *(
                            literal(before.second, Uuid()).label(c.name) if c.name == "account_id" else c
                            for c in usage_events.columns
                        )
                    ).where(usage_events.c.account_id == before.first),
                )
            )
            conn.execute(
                insert(credit_transactions).values(
                    id=uuid.uuid4(),
                    organization_id=before.organization_id,
                    account_id=before.second,
                    kind="grant",
                    amount=1,
                    idempotency_key="grant:g-1",
                    source="system",
                    created_at=now,
                )
            )
            conn.execute(
                insert(payments).values(
                    organization_id=before.organization_id,
                    id="pay-1",
                    account_id=before.second,
                    amount=Decimal(1),
                    currency="USD",
                    date=now,
                    unapplied=Decimal(1),
                    fingerprint="f" * 32,
                    created_at=now,
                )
            )
            conn.execute(
                insert(payment_allocations).values(
                    organization_id=before.organization_id,
                    account_id=before.second,
                    payment_id="pay-1",
                    invoice_id=before.invoice_id,
                    amount=Decimal(1),
                )
            )
        with empty_database.read() as conn:
            counted = conn.execute(
                select(usage_events.c.id, func.count()).group_by(usage_events.c.id).order_by(usage_events.c.id)
            ).all()
            assert [tuple(row) for row in counted] == [("ev-1", 2), ("ev-2", 1), ("ev-3", 2)]
        # Within one account each id is still once only.
        duplicates = {
            "usage event": insert(usage_events).values(
                organization_id=before.organization_id,
                id="ev-2",
                account_id=before.second,
                kind="credit",
                quantity="1",
                occurred_at=now,
                received_at=now,
                fingerprint="0" * 32,
            ),
            "grant": insert(credit_transactions).values(
                id=uuid.uuid4(),
                organization_id=before.organization_id,
                account_id=before.first,
                kind="grant",
                amount=1,
                idempotency_key="grant:g-1",
                source="system",
                created_at=now,
            ),
            "payment": insert(payments).values(
                organization_id=before.organization_id,
                id="pay-2",
                account_id=before.second,
                amount=Decimal(1),
                currency="USD",
                date=now,
                unapplied=Decimal(1),
                fingerprint="f" * 32,
                created_at=now,
            ),
            "allocation": insert(payment_allocations).values(
                organization_id=before.organization_id,
                account_id=before.first,
                payment_id="pay-1",
                invoice_id=before.invoice_id,
                amount=Decimal(1),
            ),
        }
        for name, statement in duplicates.items():
            with pytest.raises(IntegrityError), empty_database.write() as conn:  # noqa: PT012
                conn.execute(statement)
                pytest.fail(f"a second {name} with one id in one account was stored")

    def test_allocations_of_missing_payments_stop_the_upgrade(self, empty_database: Database) -> None:
        step_to(empty_database, "0006")
        with empty_database.write() as conn:
            before = fill_at_0006(conn)
            conn.execute(
                insert(ALLOCATIONS_0006).values(
                    organization_id=before.organization_id,
                    payment_id="never-recorded",
                    invoice_id=before.invoice_id,
                    amount=Decimal(1),
                )
            )
            rows = raw_rows(conn)
        with pytest.raises(RuntimeError, match="payments that do not exist"):
            step_to(empty_database, "0007")
        with empty_database.read() as conn:
            assert current_revision(conn) == "0006"
            assert raw_rows(conn) == rows


# --- 0008: transaction ids are Frontier's -------------------------------------------------------------

REVERT_NAMESPACE = uuid.UUID("967416d0-716e-4308-b58f-2468ac14f20a")  # Frontier's TxNamespaceUUID


def add_transaction(
    conn: Connection,
    organization_id: uuid.UUID,
    account_id: uuid.UUID,
    kind: str,
    amount: int,
    key: str | None,
    *,
    at: datetime,
    reverts_id: uuid.UUID | None = None,
    source: str = "system",
    description: str | None = None,
    metadata_text: str | None = None,
) -> uuid.UUID:
    """A balanced transaction written as 0007 stores it."""
    transaction_id = uuid.uuid4()
    conn.execute(
        insert(credit_transactions).values(
            id=transaction_id,
            organization_id=organization_id,
            account_id=account_id,
            kind=kind,
            amount=amount,
            idempotency_key=key,
            reverts_id=reverts_id,
            source=source,
            description=description,
            user_id=None,
            metadata=metadata_text,
            fingerprint=None,
            created_at=at,
        )
    )
    signed = -amount if kind == "usage" else amount
    conn.execute(
        insert(ledger_entries),
        [
            {
                "transaction_id": transaction_id,
                "line": 1,
                "account_id": account_id,
                "system_account": None,
                "amount": signed,
            },
            {
                "transaction_id": transaction_id,
                "line": 2,
                "account_id": None,
                "system_account": f"system:{kind}",
                "amount": -signed,
            },
        ],
    )
    conn.execute(
        credit_balances.update()
        .where(credit_balances.c.account_id == account_id)
        .values(balance=credit_balances.c.balance + signed)
    )
    return transaction_id


def keys_by_id(conn: Connection) -> dict[uuid.UUID, Any]:
    rows = conn.execute(
        select(
            credit_transactions.c.id,
            credit_transactions.c.idempotency_key,
            credit_transactions.c.source,
            credit_transactions.c.description,
            credit_transactions.c.metadata,
        )
    )
    return {row.id: row for row in rows}


class TestFrontierTransactionIds:
    def test_ids_become_the_usages_the_grants_and_the_derived_ones(self, empty_database: Database) -> None:
        step_to(empty_database, "0006")
        with empty_database.write() as conn:
            before = fill_at_0006(conn)
        step_to(empty_database, "0007")
        start = datetime(2026, 11, 20, 12, tzinfo=UTC)
        with empty_database.write() as conn:
            org, first, second = before.organization_id, before.first, before.second
            tx = {
                "grant": add_transaction(conn, org, first, "grant", 50, "grant:welcome", at=start),
                # A grant and a usage of one id in one account: distinct keys until now.
                "clash_grant": add_transaction(conn, org, first, "grant", 5, "grant:ev-9", at=start),
                "usage": add_transaction(
                    conn,
                    org,
                    first,
                    "usage",
                    9,
                    "usage:ev-9",
                    at=start,
                    source="api",
                    description="run",
                    metadata_text='{"k": "v", "rate": 0.1000000000000000055}',
                ),
                "purchase": add_transaction(conn, org, second, "purchase", 3, "grant:ev-9", at=start),
            }
            # Two reverts of the usage, the later one written first: n follows when each was made.
            later = datetime(2026, 11, 22, tzinfo=UTC)
            earlier = datetime(2026, 11, 21, tzinfo=UTC)
            tx["revert_1"] = add_transaction(
                conn, org, first, "revert", 2, None, at=later, reverts_id=tx["usage"], source="api"
            )
            tx["revert_0"] = add_transaction(
                conn, org, first, "revert", 1, None, at=earlier, reverts_id=tx["usage"], source="api"
            )
            stored_before = raw_rows(conn)
        step_to(empty_database, "0008")
        with empty_database.read() as conn:
            after = keys_by_id(conn)
            assert ledger.verify(conn) == []
            assert differences_at_0008(conn) == []
        assert after[tx["grant"]].idempotency_key == "welcome"
        assert after[tx["clash_grant"]].idempotency_key == "grant:ev-9"  # the usage keeps the id
        assert after[tx["usage"]].idempotency_key == "ev-9"
        assert after[tx["purchase"]].idempotency_key == "ev-9"  # another account: no clash
        for n in (0, 1):
            revert = after[tx[f"revert_{n}"]]
            assert revert.idempotency_key == str(uuid.uuid5(REVERT_NAMESPACE, f"ev-9:{n}:{first}"))
            assert (revert.source, revert.description) == ("system.revert.api", "Revert: run")
            assert revert.metadata == ('{"k": "v", "rate": 0.1000000000000000055, "revert_request_using": "ev-9"}')
        # fill_at_0006's own rows: the same rule.
        assert {"g-1", "ev-1", "ev-2"} <= {row.idempotency_key for row in after.values()}

        # The next revert, made by the service, continues the count: n = 2.
        with empty_database.write() as conn:
            made = ledger.revert(conn, organization_principal(org), first, "ev-9", 3)
        assert made.public_id == str(uuid.uuid5(REVERT_NAMESPACE, f"ev-9:2:{first}"))

        # And back: the prefixes return, reverts lose their ids; every other value is as 0007 left it.
        with empty_database.write() as conn:
            conn.execute(ledger_entries.delete().where(ledger_entries.c.transaction_id == made.id))
            conn.execute(credit_transactions.delete().where(credit_transactions.c.id == made.id))
            conn.execute(
                credit_balances.update()
                .where(credit_balances.c.account_id == first)
                .values(balance=credit_balances.c.balance - 3)
            )
        step_to(empty_database, "0007", down=True)
        with empty_database.read() as conn:
            restored = raw_rows(conn)
        changed = {tx["revert_0"], tx["revert_1"]}
        strip = ("source", "description", "metadata")

        def comparable(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
            return {
                table: [
                    {
                        k: v
                        for k, v in row.items()
                        if not (_uuid_of(row.get("id")) in changed and k in strip)
                        and (table, k) != ("credit_balances", "updated_at")  # the service's revert moved it
                    }
                    for row in items
                ]
                for table, items in rows.items()
            }

        assert comparable(restored) == comparable(stored_before)

    def test_a_database_with_no_ledger_migrates(self, empty_database: Database) -> None:
        step_to(empty_database, "0008")
        with empty_database.read() as conn:
            assert differences_at_0008(conn) == []
        step_to(empty_database, "0007", down=True)
        step_to(empty_database, "head")


def _uuid_of(value: Any) -> uuid.UUID | None:
    """A stored id as a UUID, whichever way the backend returns it raw (text, 32 hex digits, or a UUID)."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def organization_principal(organization_id: uuid.UUID) -> Principal:
    return Principal(
        key_id=uuid.uuid4(), organization_id=organization_id, account_id=None, account_path=None, scopes=frozenset("*")
    )


# --- 0009: plans, subscriptions and negotiated prices -------------------------------------------------


def every_row(conn: Connection) -> dict[str, list[str]]:
    """Every row of every table but alembic's, as the database stores it, in a stable order."""
    tables = sorted(set(inspect(conn).get_table_names()) - {"alembic_version"})
    return {table: sorted(repr(tuple(row)) for row in conn.execute(text(f"SELECT * FROM {table}"))) for table in tables}


class TestPlans:
    def test_the_upgrade_adds_empty_tables_that_work_and_keeps_every_row(self, empty_database: Database) -> None:
        step_to(empty_database, "0006")
        with empty_database.write() as conn:
            before = fill_at_0006(conn)
        step_to(empty_database, "0008")
        operator = organization_principal(before.organization_id)
        with empty_database.write() as conn:
            catalog.put_product(
                conn,
                operator,
                "CALLS",
                ProductPut(
                    description="Calls",
                    unit_price=Decimal("0.05"),
                    price_effective_from=datetime(2000, 1, 1, tzinfo=UTC),
                ),
            )
            at_0008 = every_row(conn)
        step_to(empty_database, "0009")
        with empty_database.write() as conn:
            assert differences_at_0009(conn) == []
            after = every_row(conn)
            assert {table: rows for table, rows in after.items() if table in at_0008} == at_0008
            assert {table: after[table] for table in ADDED_AFTER_0008} == {table: [] for table in ADDED_AFTER_0008}
            tiers = {"model": "graduated", "tiers": [{"up_to": "0.5", "unit_price": "0.000000001"}, {"up_to": None}]}
            plans.put_plan(
                conn,
                operator,
                "pro",
                PlanPut.model_validate(
                    {"name": "Pro", "currency": "USD", "fee": "49.99", "prices": {"CALLS": tiers}, "limits": {}}
                ),
            )
            plans.put_subscription(conn, operator, before.first, SubscriptionPut(plan="pro"))
            plans.put_negotiated_price(
                conn,
                operator,
                before.second,
                "CALLS",
                NegotiatedPricePut.model_validate({"price": {"model": "per_unit", "unit_price": "0.3"}}),
            )
        with empty_database.read() as conn:
            product = catalog.products_by_id(conn, before.organization_id, ["CALLS"])["CALLS"]
            now = datetime.now(UTC)
            on_plan = plans.price_at(conn, before.organization_id, before.first, product, now)
            own = plans.price_at(conn, before.organization_id, before.second, product, now)
            assert on_plan is not None
            assert (on_plan.source, on_plan.price) == ("plan", parse_price(tiers))
            assert own is not None
            assert (own.source, own.price) == ("negotiated", parse_price({"model": "per_unit", "unit_price": "0.3"}))
            # Exact text, never a float: the smallest price and a fractional bound come back as they were written.
            stored = conn.execute(text("SELECT prices, fee FROM plan_versions")).one()
            assert '"up_to": 0.5' in stored[0].replace('":0.5', '": 0.5')
            assert "0.000000001" in stored[0]
            assert int(stored[1]) == 49_990_000_000
        # And back: the tables go, every other row is as it was.
        step_to(empty_database, "0008", down=True)
        with empty_database.read() as conn:
            assert every_row(conn) == at_0008
            assert differences_at_0008(conn) == []
        step_to(empty_database, "head")


# --- 0010: rating by plan --------------------------------------------------------------------------


#: The two tables 0010 changes, as 0009 has them.
_AGGREGATES_AT_0009 = Table(
    "monthly_aggregates",
    MetaData(),
    *(
        Column(name, kind)
        for name, kind in (
            ("id", String),
            ("organization_id", Uuid),
            ("account_id", Uuid),
            ("product_id", String),
            ("month", String),
            ("type", String),
            ("direction", String),
            ("resolution", String),
            ("unit", String),
            ("currency", String),
            ("wallet_name", String),
            ("price", FixedDecimal()),
            ("units_whole", BigInteger),
            ("units_nanos", BigInteger),
            ("event_count", BigInteger),
        )
    ),
)
_LINES_AT_0009 = Table(
    "invoice_lines",
    MetaData(),
    *(
        Column(name, kind)
        for name, kind in (
            ("invoice_id", Uuid),
            ("line", BigInteger),
            ("kind", String),
            ("product_id", String),
            ("description", String),
            ("quantity", FixedDecimal()),
            ("unit_price", FixedDecimal()),
            ("unrounded_amount", String),
            ("amount", FixedDecimal(BILLED)),
        )
    ),
)


class TestRatingByPlan:
    def test_aggregates_and_lines_keep_their_ids_and_rating_by_plan_works(
        self, empty_database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Today's ingestion decides alerts last, in tables that 0013 adds: this database stops at 0010.
        monkeypatch.setattr(alerts, "after_usage", lambda *args, **kwargs: [])
        step_to(empty_database, "0006")
        with empty_database.write() as conn:
            before = fill_at_0006(conn)
        step_to(empty_database, "0009")
        operator = organization_principal(before.organization_id)
        with empty_database.write() as conn:
            catalog.put_product(
                conn,
                operator,
                "CALLS",
                ProductPut(
                    description="Calls",
                    unit_price=Decimal("0.5"),
                    price_effective_from=datetime(2000, 1, 1, tzinfo=UTC),
                ),
            )
            key = AggregateKey(
                organization_id=before.organization_id,
                account_id=before.first,
                product_id="CALLS",
                month="2026-11",
                type="OTHER",
                direction="",
                resolution="",
                unit="unit",
                currency="USD",
                wallet_name="",
                price=Decimal("0.5"),
            )
            conn.execute(
                insert(_AGGREGATES_AT_0009).values(
                    id=key.id,
                    organization_id=key.organization_id,
                    account_id=key.account_id,
                    product_id="CALLS",
                    month="2026-11",
                    type="OTHER",
                    direction="",
                    resolution="",
                    unit="unit",
                    currency="USD",
                    wallet_name="",
                    price=Decimal("0.5"),
                    units_whole=12,
                    units_nanos=500_000_000,
                    event_count=3,
                )
            )
            conn.execute(
                insert(_LINES_AT_0009).values(
                    invoice_id=before.invoice_id,
                    line=9,
                    kind="usage",
                    product_id="CALLS",
                    description="Calls",
                    quantity=Decimal("12.5"),
                    unit_price=Decimal("0.5"),
                    unrounded_amount="6.25",
                    amount=Decimal("6.25"),
                )
            )
            at_0009 = every_row(conn)
        step_to(empty_database, "0010")
        with empty_database.write() as conn:
            assert differences_at_0010(conn) == []
            after = every_row(conn)
            changed = {"monthly_aggregates", "invoice_lines"}
            assert {table: rows for table, rows in after.items() if table not in changed} == {
                table: rows for table, rows in at_0009.items() if table not in changed
            }
            # The same rows, each with no plan and no tiers: an aggregate's id is still the one of its key.
            [aggregate] = conn.execute(text("SELECT id, plan_id, units_whole FROM monthly_aggregates")).all()
            assert tuple(aggregate) == (key.id, "", 12)
            lines = conn.execute(text("SELECT line, tiers FROM invoice_lines ORDER BY line")).all()
            assert lines[-1] == (9, None)
            assert len(lines) == len(at_0009["invoice_lines"])
            # Rating by plan works on the upgraded database: a subscribed account's usage goes under its plan.
            plans.put_plan(
                conn,
                operator,
                "pro",
                PlanPut.model_validate(
                    {
                        "name": "Pro",
                        "currency": "USD",
                        "prices": {"CALLS": {"model": "volume", "tiers": [{"up_to": None, "unit_price": 1}]}},
                        "limits": {},
                        "effective_from": "2000-01-01T00:00:00Z",
                    }
                ),
            )
            usage.put_subscription(
                conn, operator, before.second, SubscriptionPut(plan="pro", starts_at=datetime(2001, 1, 1, tzinfo=UTC))
            )
            usage.ingest(
                conn,
                operator,
                [
                    EventIn.model_validate(
                        {
                            "id": "after-0010",
                            "account_id": str(before.second),
                            "type": "metered",
                            "product_id": "CALLS",
                            "quantity": "2",
                            "occurred_at": "2026-11-05T00:00:00Z",
                        }
                    )
                ],
            )
            planned = conn.execute(text("SELECT plan_id FROM monthly_aggregates WHERE plan_id <> ''")).scalars().all()
            assert len(planned) == 1
        # Down is refused while usage is rated by a plan (it would lose which), and then goes.
        with pytest.raises(RuntimeError, match="rated by a plan"):
            step_to(empty_database, "0009", down=True)
        with empty_database.write() as conn:
            conn.execute(text("DELETE FROM usage_events WHERE id = 'after-0010'"))
            conn.execute(text("DELETE FROM monthly_aggregates WHERE plan_id <> ''"))
        step_to(empty_database, "0009", down=True)
        with empty_database.read() as conn:
            assert every_row(conn) == {**at_0009, "plans": every_row(conn)["plans"], **_plan_tables(conn)}
            assert differences_at_0009(conn) == []
        step_to(empty_database, "head")


def _plan_tables(conn: Connection) -> dict[str, list[str]]:
    """The plan rows the test added after 0009 (they are not 0010's to remove)."""
    rows = every_row(conn)
    return {table: rows[table] for table in ("plans", "plan_versions", "subscriptions")}


# --- 0011: one text form of SQLite's timestamps -------------------------------------------------------

#: The timestamps the bulk inserts wrote before 0011: (table, column).
_WRITTEN_IN_BULK = (
    ("usage_events", "occurred_at"),
    ("usage_events", "received_at"),
    ("credit_transactions", "created_at"),
)


class TestSqliteTimestampText:
    def test_whole_seconds_get_their_fraction_and_nothing_else_changes(
        self, empty_database: Database, backend: str
    ) -> None:
        step_to(empty_database, "0006")
        with empty_database.write() as conn:
            fill_at_0006(conn)
        step_to(empty_database, "0010")
        with empty_database.write() as conn:
            if backend == "sqlite":
                # What the bulk inserts wrote before 0011 for an instant at a whole second.
                for table, column in _WRITTEN_IN_BULK:
                    conn.execute(
                        text(f"UPDATE {table} SET {column} = substr({column}, 1, 19) WHERE {column} LIKE '%.000000'")
                    )
                shortened = conn.execute(text("SELECT count(*) FROM usage_events WHERE length(occurred_at) = 19"))
                assert shortened.scalar_one() > 0
            before = every_row(conn)
            earliest = conn.execute(select(func.min(usage_events.c.occurred_at))).scalar_one()
        step_to(empty_database, "0011")
        with empty_database.read() as conn:
            after = every_row(conn)
            if backend == "sqlite":
                for table, column in _WRITTEN_IN_BULK:
                    lengths = conn.execute(text(f"SELECT DISTINCT length({column}) FROM {table}")).scalars().all()
                    assert lengths == [26], (table, column)
                # Text compares as instants again: the earliest event is at or after its own instant.
                found = conn.execute(select(func.count()).where(usage_events.c.occurred_at >= earliest)).scalar_one()
                assert found == len(after["usage_events"])
                changed = {"usage_events", "credit_transactions"}
                assert {t: r for t, r in after.items() if t not in changed} == {
                    t: r for t, r in before.items() if t not in changed
                }
                assert len(after["usage_events"]) == len(before["usage_events"])
            else:
                assert after == before
        step_to(empty_database, "0010", down=True)
        step_to(empty_database, "head")


# --- 0013: alerts ----------------------------------------------------------------------------------


class TestAlerts:
    def test_the_upgrade_adds_empty_tables_that_fire_and_keeps_every_row(self, empty_database: Database) -> None:
        step_to(empty_database, "0006")
        with empty_database.write() as conn:
            before = fill_at_0006(conn)
        step_to(empty_database, "0012")
        operator = organization_principal(before.organization_id)
        with empty_database.write() as conn:
            catalog.put_product(
                conn,
                operator,
                "CALLS",
                ProductPut(
                    description="Calls",
                    unit_price=Decimal("0.5"),
                    price_effective_from=datetime(2000, 1, 1, tzinfo=UTC),
                ),
            )
            at_0012 = every_row(conn)
        step_to(empty_database, "0013")
        with empty_database.write() as conn:
            assert differences(conn) == []
            after = every_row(conn)
            assert {table: rows for table, rows in after.items() if table in at_0012} == at_0012
            assert {table: after[table] for table in ADDED_AFTER_0012} == {table: [] for table in ADDED_AFTER_0012}
            # Alerts work on the upgraded database: the usage that crosses a threshold fires it.
            alert = alerts.create_alert(
                conn,
                operator,
                AlertCreate.model_validate({"type": "usage_above", "threshold": "2.5", "product_id": "CALLS"}),
            )
            usage.ingest(
                conn,
                operator,
                [
                    EventIn.model_validate(
                        {
                            "id": "after-0013",
                            "account_id": str(before.second),
                            "type": "metered",
                            "product_id": "CALLS",
                            "quantity": "3",
                        }
                    )
                ],
            )
            [trigger] = alerts.triggers(conn, operator, alert.id)
            assert (trigger.account_id, trigger.value, trigger.threshold) == (before.second, Decimal(3), Decimal("2.5"))
            # Exact, never a float: the threshold and the value as decimal text.
            assert conn.execute(text("SELECT threshold FROM alerts")).scalar_one() == "2.5"
            assert tuple(conn.execute(text("SELECT value, threshold FROM alert_triggers")).one()) == ("3", "2.5")
            at_0013 = every_row(conn)
        # And back: the two tables go, every other row stays as it is.
        step_to(empty_database, "0012", down=True)
        with empty_database.read() as conn:
            assert every_row(conn) == {table: rows for table, rows in at_0013.items() if table not in ADDED_AFTER_0012}
            assert differences_at_0012(conn) == []
        step_to(empty_database, "head")
