"""Locks that order ingestion against billing runs on PostgreSQL (SQLite has one writer and needs none).

Usage in a month and the billing run of that month must not interleave: a run reads the month's
aggregates once, and usage that commits after that read would be counted nowhere. Every ingestion
holds an organization's usage lock shared, a billing run holds it exclusively; both are transaction
advisory locks, so they live in memory (no row is written) and end with the transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text

__all__ = ["lock_organization_usage"]

# The first half of the two-key advisory lock: a namespace, so that these never meet migrate()'s lock.
_USAGE_LOCKS = 7_061_235


def _key(organization_id: uuid.UUID) -> int:
    # A signed 32-bit number from the id; two organizations sharing one only wait for each other a little.
    return int.from_bytes(organization_id.bytes[:4], "big", signed=True)


def lock_organization_usage(conn: Connection, organization_id: uuid.UUID, *, exclusive: bool) -> None:
    if conn.dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(text(f"SELECT {function}(:space, :key)"), {"space": _USAGE_LOCKS, "key": _key(organization_id)})
