"""Every SQL statement of the aggregates domain."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, delete, func, not_, or_, select, update

from meterbook.aggregates.models import Aggregate, AggregateKey, split_units
from meterbook.aggregates.query import And, Comparison, Expr, Not, Operator, SortField
from meterbook.db.tables import accounts, monthly_aggregates, products, usage_events
from meterbook.db.upsert import insert_for_dialect

__all__ = [
    "account_aggregates",
    "accounts_month_aggregates",
    "add_increments",
    "aggregate_of",
    "aggregates_by_id",
    "aggregates_query",
    "count",
    "fetch",
    "month_aggregates",
    "months_of",
    "months_of_accounts",
    "move_events",
    "page_of",
    "rated_events_since",
    "recompute_rows",
    "search_query",
    "set_units",
    "stored_event_count",
    "stored_rows",
    "stored_units",
]

_NANOS = 10**9


@cache
def _increment_statement(dialect_name: str) -> Any:
    # Built once per dialect: constructing an upsert (its ``excluded`` columns above all) cost more
    # than running it for a one-event request.
    statement = insert_for_dialect(dialect_name, monthly_aggregates)
    nanos = monthly_aggregates.c.units_nanos + statement.excluded.units_nanos
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "units_whole": monthly_aggregates.c.units_whole + statement.excluded.units_whole + nanos // _NANOS,
            "units_nanos": nanos % _NANOS,
            "event_count": monthly_aggregates.c.event_count + statement.excluded.event_count,
        },
    )


def increment(key: AggregateKey, units: Decimal, events: int) -> dict[str, Any]:
    """The row that adds ``units`` over ``events`` events to the aggregate ``key`` (see :func:`add_increments`)."""
    whole, nanos = split_units(units)
    return {
        "id": key.id,
        "organization_id": key.organization_id,
        "account_id": key.account_id,
        "product_id": key.product_id,
        "month": key.month,
        "type": key.type,
        "direction": key.direction,
        "resolution": key.resolution,
        "unit": key.unit,
        "currency": key.currency,
        "wallet_name": key.wallet_name,
        "price": key.price,
        "plan_id": key.plan_id,
        "units_whole": whole,
        "units_nanos": nanos,
        "event_count": events,
    }


def add_increments(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add each row's units to its aggregate, creating it if new: one bulk upsert, carries done in SQL."""
    if not rows:
        return
    conn.execute(_increment_statement(conn.dialect.name), list(rows))


_STORED_UNITS = select(
    monthly_aggregates.c.id, monthly_aggregates.c.units_whole, monthly_aggregates.c.units_nanos
).where(monthly_aggregates.c.id.in_(bindparam("ids", expanding=True)))


def stored_units(conn: Connection, aggregate_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(units_whole, units_nanos) of each of these aggregates that exists."""
    found: dict[str, tuple[int, int]] = {}
    # Bounded IN lists: SQLite allows at most 32766 parameters per statement.
    for start in range(0, len(aggregate_ids), 5000):
        rows = conn.execute(_STORED_UNITS, {"ids": aggregate_ids[start : start + 5000]})
        found.update({row.id: (int(row.units_whole), int(row.units_nanos)) for row in rows})
    return found


#: Each aggregate beside its product (for the product's current description and aggregated product id).
_WITH_PRODUCT = monthly_aggregates.join(
    products,
    (products.c.organization_id == monthly_aggregates.c.organization_id)
    & (products.c.product_id == monthly_aggregates.c.product_id),
)


#: What an aggregate read shows: its organization is the one asked for (a billing run reads 50,000 rows, and each
#: id column read is a UUID parsed).
_AGGREGATE_COLUMNS = [column for column in monthly_aggregates.columns if column.name != "organization_id"]


def aggregates_query(organization_id: uuid.UUID) -> Select[Any]:
    """Aggregates of the organization with the product's current description and aggregated product id."""
    return (
        select(*_AGGREGATE_COLUMNS, products.c.aggr_product_id, products.c.description)
        .select_from(_WITH_PRODUCT)
        .where(monthly_aggregates.c.organization_id == organization_id)
    )


def _aggregate(row: Any) -> Aggregate:
    return aggregate_of(row, row.aggr_product_id, row.description)


def aggregate_of(row: Any, aggr_product_id: str | None = None, description: str = "") -> Aggregate:
    """The aggregate a ``monthly_aggregates`` row holds; its product's current names, if read beside it."""
    return Aggregate(
        id=row.id,
        account_id=row.account_id,
        product_id=row.product_id,
        aggr_product_id=aggr_product_id,
        description=description,
        month=row.month,
        type=row.type,
        direction=row.direction or None,
        resolution=row.resolution or None,
        unit=row.unit,
        currency=row.currency,
        wallet_name=row.wallet_name or None,
        price=row.price,
        number_of_units=Aggregate.units_of(row.units_whole, row.units_nanos),
        event_count=int(row.event_count),
        plan_id=row.plan_id,
    )


def account_aggregates(
    conn: Connection, organization_id: uuid.UUID, account_id: uuid.UUID, first: str | None, last: str | None
) -> list[Aggregate]:
    statement = aggregates_query(organization_id).where(monthly_aggregates.c.account_id == account_id)
    if first is not None:
        statement = statement.where(monthly_aggregates.c.month >= first)
    if last is not None:
        statement = statement.where(monthly_aggregates.c.month <= last)
    statement = statement.order_by(monthly_aggregates.c.month, monthly_aggregates.c.product_id, monthly_aggregates.c.id)
    return fetch(conn, statement)


def accounts_month_aggregates(
    conn: Connection,
    organization_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID],
    month: str,
    product_ids: Sequence[str],
) -> list[Aggregate]:
    statement = aggregates_query(organization_id).where(
        monthly_aggregates.c.account_id.in_(list(account_ids)),
        monthly_aggregates.c.month == month,
        monthly_aggregates.c.product_id.in_(list(product_ids)),
    )
    return fetch(conn, statement.order_by(monthly_aggregates.c.id))


def months_of_accounts(
    conn: Connection, organization_id: uuid.UUID, account_months: Iterable[tuple[uuid.UUID, str]]
) -> list[Aggregate]:
    """Every aggregate of these (account, month) pairs: a few index ranges of (account, month, id, organization)."""
    pairs = sorted(set(account_months), key=lambda pair: (str(pair[0]), pair[1]))
    found: list[Aggregate] = []
    # Bounded statements: SQLite allows at most 32766 parameters per statement.
    for start in range(0, len(pairs), 1000):
        chunk = pairs[start : start + 1000]
        statement = aggregates_query(organization_id).where(
            or_(
                *(
                    and_(monthly_aggregates.c.account_id == account_id, monthly_aggregates.c.month == month)
                    for account_id, month in chunk
                )
            )
        )
        found += fetch(conn, statement.order_by(monthly_aggregates.c.id))
    return found


def months_of(
    conn: Connection, organization_id: uuid.UUID, account_months: Iterable[tuple[uuid.UUID, str]]
) -> list[Aggregate]:
    """Every aggregate of these (account, month) pairs as stored, without their product's names (what alerts total
    after a batch): ranges of (account, month, id, organization) by two IN lists, the pairs picked out here."""
    pairs = set(account_months)
    accounts_wanted = sorted({account_id for account_id, _ in pairs})
    months_wanted = sorted({month for _, month in pairs})
    found: list[Aggregate] = []
    for start in range(0, len(accounts_wanted), 1000):
        # Without the organization's id, which is the one asked for: a UUID fewer to read per row.
        statement = select(*_AGGREGATE_COLUMNS).where(
            monthly_aggregates.c.account_id.in_(accounts_wanted[start : start + 1000]),
            monthly_aggregates.c.month.in_(months_wanted),
            monthly_aggregates.c.organization_id == organization_id,
        )
        found += [aggregate_of(row) for row in conn.execute(statement) if (row.account_id, row.month) in pairs]
    return found


def month_aggregates(conn: Connection, organization_id: uuid.UUID, month: str) -> list[Aggregate]:
    statement = aggregates_query(organization_id).where(monthly_aggregates.c.month == month)
    return fetch(conn, statement.order_by(monthly_aggregates.c.account_id, monthly_aggregates.c.product_id))


def fetch(conn: Connection, statement: Select[Any]) -> list[Aggregate]:
    return [_aggregate(row) for row in conn.execute(statement)]


def count(conn: Connection, statement: Select[Any]) -> int:
    """How many rows ``statement`` (a :func:`search_query`) selects, counted in an index where one covers it."""
    return int(conn.execute(statement.with_only_columns(func.count()).order_by(None)).scalar_one())


def stored_rows(conn: Connection) -> Iterator[Any]:
    yield from conn.execute(select(monthly_aggregates))


def stored_event_count(conn: Connection) -> int:
    """How many rated events the stored aggregates say there are (what verify expects to read)."""
    return int(conn.execute(select(func.coalesce(func.sum(monthly_aggregates.c.event_count), 0))).scalar_one())


def recompute_rows(conn: Connection) -> Iterator[Any]:
    """Every rated event, for recomputing aggregates from the raw rows."""
    yield from conn.execute(
        select(
            usage_events.c.aggregate_id,
            usage_events.c.quantity,
            usage_events.c.account_id,
            usage_events.c.product_id,
            usage_events.c.occurred_at,
            usage_events.c.unit_price,
        ).where(usage_events.c.aggregate_id.is_not(None))
    )


# --- searching (the Talkdesk dialect's monthly usage) ------------------------------------------------

_COMPARE: Final[dict[Operator, Callable[[Any, Any], ColumnElement[bool]]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_SORT_COLUMNS: Final[dict[SortField, Any]] = {
    "id": monthly_aggregates.c.id,
    "month": monthly_aggregates.c.month,
    "account_id": monthly_aggregates.c.account_id,
}


def _condition(expr: Expr) -> ColumnElement[bool]:
    """The SQL condition for a query tree (months compare as ``YYYY-MM`` text, account ids as UUIDs)."""
    if isinstance(expr, Comparison):
        if expr.field == "month":
            return _COMPARE[expr.op](monthly_aggregates.c.month, expr.value)
        return _COMPARE[expr.op](monthly_aggregates.c.account_id, uuid.UUID(expr.value))
    if isinstance(expr, Not):
        return not_(_condition(expr.inner))
    combine = and_ if isinstance(expr, And) else or_
    return combine(_condition(expr.left), _condition(expr.right))


def search_query(organization_id: uuid.UUID, path_prefix: str | None, where: Expr | None) -> Select[Any]:
    """The ids of the aggregates a key reaches (its organization's, or its subtree's) that match ``where``.

    :func:`count` counts them and :func:`page_of` reads a page of them. Only ids, so that counting, ordering
    and skipping happen in an index ((organization, month, id, account) or (account, month, id, organization))
    and only the page's own rows are read from the table.
    """
    statement = select(monthly_aggregates.c.id).select_from(monthly_aggregates)
    if path_prefix is None:
        statement = statement.where(monthly_aggregates.c.organization_id == organization_id)
    else:
        # The reachable accounts are all in the organization: selected by account alone, the aggregates are
        # read by (account, month, id, organization), never by scanning the organization's month for them.
        reachable = select(accounts.c.id).where(
            accounts.c.organization_id == organization_id,
            accounts.c.path.startswith(path_prefix, autoescape=True),
        )
        statement = statement.where(monthly_aggregates.c.account_id.in_(reachable))
    if where is not None:
        statement = statement.where(_condition(where))
    return statement


def page_of(statement: Select[Any], order_by: SortField, descending: bool, offset: int, limit: int) -> Select[Any]:
    """One page of a :func:`search_query`, ordered by ``order_by`` then id (one direction), as :func:`fetch` reads.

    The page's ids are chosen in an index; only those rows are joined with their product.
    """
    columns = [_SORT_COLUMNS[order_by]] if order_by != "id" else []
    columns.append(monthly_aggregates.c.id)
    ordering = [column.desc() if descending else column.asc() for column in columns]
    page = statement.order_by(*ordering).offset(offset).limit(limit)
    return (
        select(*_AGGREGATE_COLUMNS, products.c.aggr_product_id, products.c.description)
        .select_from(_WITH_PRODUCT)
        .where(monthly_aggregates.c.id.in_(page))
        .order_by(*ordering)
    )


# --- re-rating after a plan change -----------------------------------------------------------------


def rated_events_since(conn: Connection, account_id: uuid.UUID, since: datetime) -> list[Any]:
    """The account's rated events that occurred at or after ``since``: (id, occurred_at, quantity, aggregate_id)."""
    return list(
        conn.execute(
            select(
                usage_events.c.id, usage_events.c.occurred_at, usage_events.c.quantity, usage_events.c.aggregate_id
            ).where(
                usage_events.c.account_id == account_id,
                usage_events.c.occurred_at >= since,
                usage_events.c.aggregate_id.is_not(None),
            )
        )
    )


def aggregates_by_id(conn: Connection, aggregate_ids: Sequence[str]) -> dict[str, Any]:
    """The stored rows of these aggregates, locked on PostgreSQL until the transaction ends."""
    found: dict[str, Any] = {}
    for start in range(0, len(aggregate_ids), 5000):
        statement = select(monthly_aggregates).where(monthly_aggregates.c.id.in_(aggregate_ids[start : start + 5000]))
        if conn.dialect.name == "postgresql":
            statement = statement.with_for_update()
        found.update({row.id: row for row in conn.execute(statement.order_by(monthly_aggregates.c.id))})
    return found


def set_units(conn: Connection, aggregate_id: str, whole: int, nanos: int, events: int) -> None:
    """An aggregate's units and event count as they now are; an aggregate of no event is removed."""
    if events == 0:
        conn.execute(delete(monthly_aggregates).where(monthly_aggregates.c.id == aggregate_id))
    else:
        conn.execute(
            update(monthly_aggregates)
            .where(monthly_aggregates.c.id == aggregate_id)
            .values(units_whole=whole, units_nanos=nanos, event_count=events)
        )


def move_events(conn: Connection, account_id: uuid.UUID, moves: Sequence[tuple[str, str]]) -> None:
    """Point each (event id, aggregate id) of the account at its new aggregate."""
    if moves:
        conn.execute(
            update(usage_events)
            .where(usage_events.c.account_id == account_id, usage_events.c.id == bindparam("event_id"))
            .values(aggregate_id=bindparam("new_aggregate_id")),
            [{"event_id": event_id, "new_aggregate_id": aggregate_id} for event_id, aggregate_id in moves],
        )
