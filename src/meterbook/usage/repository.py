"""Every SQL statement of the usage domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from meterbook.db.tables import usage_events
from meterbook.db.upsert import insert_for

__all__ = ["fingerprints_of", "insert_new_events"]


def insert_new_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert the events whose id the organization has not used yet; the ids actually inserted.

    ``ON CONFLICT DO NOTHING RETURNING`` counts the new rows on both databases, in bulk.
    """
    if not rows:
        return set()
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
