"""Every SQL statement of the usage domain."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, String, Uuid, text

from meterbook.db.bulk import insert_rows
from meterbook.db.tables import usage_events
from meterbook.kit.money import to_scaled

__all__ = ["EVENT_COLUMNS", "EventKey", "fingerprints_of", "insert_new_events"]


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
    "ON CONFLICT (account_id, id) DO NOTHING RETURNING account_id, id"
).columns(account_id=Uuid, id=String)


#: The order of the values of each row given to :func:`insert_new_events`.
EVENT_COLUMNS = tuple(name for name, _ in _PG_COLUMNS)
_ACCOUNT, _ID = EVENT_COLUMNS.index("account_id"), EVENT_COLUMNS.index("id")

#: An event's idempotency key: its id is unique per account (contract invariant 1).
EventKey = tuple[uuid.UUID, str]


def _insert_new_events_postgresql(conn: Connection, rows: Sequence[Sequence[Any]]) -> set[EventKey]:
    columns = {name: list(values) for name, values in zip(EVENT_COLUMNS, zip(*rows, strict=True), strict=True)}
    # The column types' conversions, done here because the arrays bypass them.
    columns["unit_price"] = [None if price is None else to_scaled(price) for price in columns["unit_price"]]
    return {(row.account_id, row.id) for row in conn.execute(_PG_INSERT, columns)}


def _insert_new_events_sqlite(conn: Connection, rows: Sequence[Sequence[Any]]) -> set[EventKey]:
    # SQLite has one writer, and this transaction holds it: the keys not stored now cannot be stored by
    # anyone else before it commits, so a plain insert of those is exactly-once without ON CONFLICT.
    stored = fingerprints_of(conn, [(row[_ACCOUNT], row[_ID]) for row in rows])
    new_rows = [row for row in rows if (row[_ACCOUNT], row[_ID]) not in stored]
    insert_rows(conn, usage_events, EVENT_COLUMNS, new_rows)
    return {(row[_ACCOUNT], row[_ID]) for row in new_rows}


def insert_new_events(conn: Connection, rows: Sequence[Sequence[Any]]) -> set[EventKey]:
    """Insert the events whose id their account has not used yet; the (account, id) of those inserted.

    Each row holds the values of :data:`EVENT_COLUMNS` in that order, with distinct (account, id).
    """
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        return _insert_new_events_postgresql(conn, rows)
    return _insert_new_events_sqlite(conn, rows)


# One statement text whatever the number of keys, each key a search of the primary key (account_id, id):
# on PostgreSQL the keys come as two arrays, on SQLite as one JSON array of [account hex, id] pairs. A row
# value list, ``(account_id, id) IN (VALUES ...)``, made SQLite scan the whole table.
_PG_FINGERPRINTS = text(
    "SELECT e.account_id, e.id, e.fingerprint FROM unnest(CAST(:account_ids AS uuid[]), CAST(:ids AS text[]))"
    " AS k(account_id, id) JOIN usage_events AS e ON e.account_id = k.account_id AND e.id = k.id"
).columns(account_id=Uuid, id=String, fingerprint=String)
# CROSS JOIN: SQLite keeps the keys as the outer loop.
_SQLITE_FINGERPRINTS = text(
    "SELECT e.account_id, e.id, e.fingerprint FROM json_each(:keys) AS k CROSS JOIN usage_events AS e"
    " ON e.account_id = json_extract(k.value, '$[0]') AND e.id = json_extract(k.value, '$[1]')"
).columns(account_id=Uuid, id=String, fingerprint=String)


def fingerprints_of(conn: Connection, keys: Iterable[EventKey]) -> dict[EventKey, str]:
    """The stored fingerprint of each event among ``keys`` (account, id) that exists, in one statement."""
    wanted = list(keys)
    if not wanted:
        return {}
    if conn.dialect.name == "postgresql":
        parameters = {"account_ids": [key[0] for key in wanted], "ids": [key[1] for key in wanted]}
        found = conn.execute(_PG_FINGERPRINTS, parameters)
    else:
        # As the column stores a UUID on SQLite: 32 hex digits.
        found = conn.execute(_SQLITE_FINGERPRINTS, {"keys": json.dumps([[key[0].hex, key[1]] for key in wanted])})
    return {(row.account_id, row.id): row.fingerprint for row in found}
