"""Every SQL statement of the usage domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select, text

from meterbook.db.tables import usage_events
from meterbook.db.upsert import insert_for
from meterbook.kit.money import to_scaled

__all__ = ["fingerprints_of", "insert_new_events"]


#: (column, PostgreSQL array type) in table order, for the one-statement insert below.
_PG_COLUMNS = (
    ("organization_id", "uuid"),
    ("id", "text"),
    ("account_id", "uuid"),
    ("kind", "text"),
    ("product_id", "text"),
    ("feature", "text"),
    ("quantity", "text"),
    ("occurred_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("direction", "text"),
    ("resolution", "text"),
    ("user_id", "text"),
    ("source", "text"),
    ("description", "text"),
    ("metadata", "text"),
    ("fingerprint", "text"),
    ("aggregate_id", "text"),
    ("unit_price", "bigint"),
)
# One parameter per column, whatever the batch size: psycopg prepares it once, where a VALUES list of
# 18 placeholders per row was a new statement for every batch (and parsing it cost more than the insert).
# Built from the constant column list above, never from input.
_PG_INSERT = text(
    f"INSERT INTO usage_events ({', '.join(name for name, _ in _PG_COLUMNS)}) "  # noqa: S608
    f"SELECT * FROM unnest({', '.join(f'CAST(:{name} AS {kind}[])' for name, kind in _PG_COLUMNS)}) "
    "ON CONFLICT (organization_id, id) DO NOTHING RETURNING id"
)


def _insert_new_events_postgresql(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    columns: dict[str, list[Any]] = {name: [] for name, _ in _PG_COLUMNS}
    for row in rows:
        for name, values in columns.items():
            values.append(row[name])
    # The column types' conversions, done here because the arrays bypass them.
    columns["unit_price"] = [None if price is None else to_scaled(price) for price in columns["unit_price"]]
    return set(conn.execute(_PG_INSERT, columns).scalars())


def insert_new_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert the events whose id the organization has not used yet; the ids actually inserted.

    ``ON CONFLICT DO NOTHING RETURNING`` counts the new rows on both databases, in bulk.
    """
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        return _insert_new_events_postgresql(conn, rows)
    statement = (
        insert_for(conn, usage_events)
        .on_conflict_do_nothing(index_elements=["organization_id", "id"])
        .returning(usage_events.c.id)
    )
    inserted: set[str] = set()
    result = conn.execute(statement, list(rows))
    inserted.update(result.scalars())
    return inserted


def fingerprints_of(conn: Connection, organization_id: uuid.UUID, ids: Iterable[str]) -> dict[str, str]:
    wanted = list(ids)
    found: dict[str, str] = {}
    # Bounded IN lists: SQLite allows at most 32766 parameters per statement.
    for start in range(0, len(wanted), 5000):
        statement = select(usage_events.c.id, usage_events.c.fingerprint).where(
            usage_events.c.organization_id == organization_id, usage_events.c.id.in_(wanted[start : start + 5000])
        )
        found.update({row.id: row.fingerprint for row in conn.execute(statement)})
    return found
