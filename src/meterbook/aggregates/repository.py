"""Every SQL statement of the aggregates domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select, func, select

from meterbook.aggregates.models import Aggregate
from meterbook.db.tables import monthly_aggregates, products, usage_events
from meterbook.db.upsert import insert_for

__all__ = [
    "account_aggregates",
    "add_increments",
    "aggregates_query",
    "count",
    "fetch",
    "recompute_rows",
    "stored_rows",
]

_NANOS = 10**9


def add_increments(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add each row's units to its aggregate, creating it if new: one bulk upsert, carries done in SQL."""
    if not rows:
        return
    statement = insert_for(conn, monthly_aggregates)
    nanos = monthly_aggregates.c.units_nanos + statement.excluded.units_nanos
    statement = statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "units_whole": monthly_aggregates.c.units_whole + statement.excluded.units_whole + nanos / _NANOS,
            "units_nanos": nanos % _NANOS,
            "event_count": monthly_aggregates.c.event_count + statement.excluded.event_count,
        },
    )
    conn.execute(statement, list(rows))


def aggregates_query(organization_id: uuid.UUID) -> Select[Any]:
    """Aggregates of the organization with the product's current description and aggregated product id."""
    return (
        select(monthly_aggregates, products.c.aggr_product_id, products.c.description)
        .select_from(
            monthly_aggregates.join(
                products,
                (products.c.organization_id == monthly_aggregates.c.organization_id)
                & (products.c.product_id == monthly_aggregates.c.product_id),
            )
        )
        .where(monthly_aggregates.c.organization_id == organization_id)
    )


def _aggregate(row: Any) -> Aggregate:
    return Aggregate(
        id=row.id,
        account_id=row.account_id,
        product_id=row.product_id,
        aggr_product_id=row.aggr_product_id,
        description=row.description,
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


def fetch(conn: Connection, statement: Select[Any]) -> list[Aggregate]:
    return [_aggregate(row) for row in conn.execute(statement)]


def count(conn: Connection, statement: Select[Any]) -> int:
    return int(conn.execute(select(func.count()).select_from(statement.order_by(None).subquery())).scalar_one())


def stored_rows(conn: Connection) -> Iterator[Any]:
    yield from conn.execute(select(monthly_aggregates))


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
