"""Every SQL statement of the usage domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from meterbook.db.bulk import insert_rows
from meterbook.db.tables import usage_events
from meterbook.kit.money import to_scaled

__all__ = ["EVENT_COLUMNS", "fingerprints_of", "insert_new_events"]


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


#: The order of the values of each row given to :func:`insert_new_events`.
EVENT_COLUMNS = tuple(name for name, _ in _PG_COLUMNS)


def _insert_new_events_postgresql(conn: Connection, rows: Sequence[Sequence[Any]]) -> set[str]:
    columns = {name: list(values) for name, values in zip(EVENT_COLUMNS, zip(*rows, strict=True), strict=True)}
    # The column types' conversions, done here because the arrays bypass them.
    columns["unit_price"] = [None if price is None else to_scaled(price) for price in columns["unit_price"]]
    return set(conn.execute(_PG_INSERT, columns).scalars())


def _insert_new_events_sqlite(conn: Connection, organization_id: uuid.UUID, rows: Sequence[Sequence[Any]]) -> set[str]:
    # SQLite has one writer, and this transaction holds it: the ids not stored now cannot be stored by
    # anyone else before it commits, so a plain insert of those is exactly-once without ON CONFLICT.
    stored = fingerprints_of(conn, organization_id, (row[1] for row in rows))
    new_rows = [row for row in rows if row[1] not in stored]
    insert_rows(conn, usage_events, EVENT_COLUMNS, new_rows)
    return {row[1] for row in new_rows}


def insert_new_events(conn: Connection, organization_id: uuid.UUID, rows: Sequence[Sequence[Any]]) -> set[str]:
    """Insert the events whose id the organization has not used yet; the ids actually inserted.

    Each row holds the values of :data:`EVENT_COLUMNS` in that order, for events of ``organization_id``
    with distinct ids.
    """
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        return _insert_new_events_postgresql(conn, rows)
    return _insert_new_events_sqlite(conn, organization_id, rows)


_FINGERPRINTS = select(usage_events.c.id, usage_events.c.fingerprint).where(
    usage_events.c.organization_id == bindparam("organization_id"),
    usage_events.c.id.in_(bindparam("ids", expanding=True)),
)


def fingerprints_of(conn: Connection, organization_id: uuid.UUID, ids: Iterable[str]) -> dict[str, str]:
    wanted = list(ids)
    found: dict[str, str] = {}
    # Bounded IN lists: SQLite allows at most 32766 parameters per statement.
    for start in range(0, len(wanted), 5000):
        rows = conn.execute(_FINGERPRINTS, {"organization_id": organization_id, "ids": wanted[start : start + 5000]})
        found.update({row.id: row.fingerprint for row in rows})
    return found
