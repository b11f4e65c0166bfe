"""Advisory locks on PostgreSQL (SQLite has one writer and needs none): ingestion against billing runs, and the
evaluation of an account's alerts.

Usage in a month and the billing run of that month must not interleave: a run reads the month's
aggregates once, and usage that commits after that read would be counted nowhere. Every ingestion
holds an organization's usage lock shared, a billing run holds it exclusively; both are transaction
advisory locks, so they live in memory (no row is written) and end with the transaction.

Alerts of an account are decided by one transaction at a time (:func:`lock_accounts_for_alerts`), each after all
of its writes, so that the later of two concurrent writers reads what the earlier committed (docs/alerts.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Connection, text

__all__ = ["lock_accounts_for_alerts", "lock_organization_usage"]

# The first half of the two-key advisory lock: a namespace, so that these never meet migrate()'s lock.
_USAGE_LOCKS = 7_061_235
_ALERT_LOCKS = 7_061_236


def _key(object_id: uuid.UUID) -> int:
    # A signed 32-bit number from the id; two organizations (or accounts) sharing one only wait for each other a little.
    return int.from_bytes(object_id.bytes[:4], "big", signed=True)


def lock_organization_usage(conn: Connection, organization_id: uuid.UUID, *, exclusive: bool) -> None:
    if conn.dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(text(f"SELECT {function}(:space, :key)"), {"space": _USAGE_LOCKS, "key": _key(organization_id)})


#: Each key in turn, in the order of the array: ``ORDER BY`` the ordinality, and PostgreSQL calls a volatile function
#: of the select list only after sorting.
_LOCK_EACH = text(
    "SELECT pg_advisory_xact_lock(:space, key) FROM unnest(CAST(:keys AS integer[])) WITH ORDINALITY AS k(key, n) "
    "ORDER BY n"
)


def lock_accounts_for_alerts(conn: Connection, account_ids: Iterable[uuid.UUID]) -> None:
    """Serialize alert evaluation per account until the transaction ends, in one statement.

    Taken after the transaction's writes, in ascending order of the lock keys (not of the ids: two accounts may
    share a key), so that two transactions never wait for each other in a cycle.
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({_key(account_id) for account_id in account_ids})
    if keys:
        conn.execute(_LOCK_EACH, {"space": _ALERT_LOCKS, "keys": keys})
