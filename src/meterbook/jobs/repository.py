"""Every SQL statement about jobs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, or_, select, update

from meterbook.db.tables import jobs
from meterbook.db.upsert import insert_for
from meterbook.jobs.models import Job
from meterbook.kit import jsontext

__all__ = ["claim", "due_exists", "finish", "insert", "mark", "pending_count"]


def insert(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert jobs; one whose (kind, unique_key) is taken already is left out (scheduling twice is once)."""
    if rows:
        conn.execute(insert_for(conn, jobs).on_conflict_do_nothing(), list(rows))


def _due(kinds: Sequence[str], now: datetime) -> Any:
    return and_(
        jobs.c.status == "pending",
        jobs.c.run_at <= now,
        jobs.c.kind.in_(kinds),
        or_(jobs.c.locked_until.is_(None), jobs.c.locked_until <= now),
    )


def due_exists(conn: Connection, kinds: Sequence[str], now: datetime) -> bool:
    """Whether any job is due: what an idle worker asks before it takes the (SQLite) write lock to claim."""
    return conn.execute(select(jobs.c.id).where(_due(kinds, now)).limit(1)).first() is not None


def claim(conn: Connection, leases: Mapping[str, timedelta], now: datetime, limit: int) -> list[Job]:
    """Claim up to ``limit`` due jobs of the kinds in ``leases``, soonest first, each for its kind's lease.

    On PostgreSQL the rows are locked with ``SKIP LOCKED``: another worker claiming at the same instant passes
    over them rather than waiting, and once this transaction commits they are not due until their lease
    ends. On SQLite the one writer (``BEGIN IMMEDIATE``) makes the select and the update one step.
    """
    found = (
        conn.execute(
            select(jobs)
            .where(_due(list(leases), now))
            .order_by(jobs.c.run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .mappings()
        .all()
    )
    # One token for this claim: a job's outcome is recorded only while the job still holds it. One update per
    # kind (its lease's length), not one per job.
    lease = uuid.uuid4()
    by_kind: dict[str, list[Any]] = {}
    for row in found:
        by_kind.setdefault(row["kind"], []).append(row["id"])
    for kind, ids in by_kind.items():
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(ids))
            .values(lease=lease, locked_until=now + leases[kind], attempts=jobs.c.attempts + 1, updated_at=now)
        )
    return [_job(row, lease) for row in found]


def _job(row: RowMapping, lease: uuid.UUID) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        unique_key=row["unique_key"],
        organization_id=row["organization_id"],
        payload=jsontext.loads(row["payload"]),
        attempts=row["attempts"] + 1,
        run_at=row["run_at"],
        created_at=row["created_at"],
        lease=lease,
    )


def finish(
    conn: Connection,
    job_id: uuid.UUID,
    lease: uuid.UUID,
    *,
    status: str,
    run_at: datetime | None,
    error: str | None,
    now: datetime,
) -> bool:
    """Record a claim's outcome; False (and nothing written) when the lease is no longer this claim's."""
    values: dict[str, Any] = {
        "status": status,
        "lease": None,
        "locked_until": None,
        "last_error": None if error is None else error[:1000],
        "updated_at": now,
    }
    if run_at is not None:
        values["run_at"] = run_at
    result = conn.execute(
        update(jobs).where(jobs.c.id == job_id, jobs.c.lease == lease, jobs.c.status == "pending").values(values)
    )
    return result.rowcount == 1


def mark(conn: Connection, job_ids: Sequence[uuid.UUID], status: str, now: datetime) -> None:
    """Set pending jobs to ``status`` (a cancel); a claim in flight then finds its lease gone."""
    if job_ids:
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(list(job_ids)), jobs.c.status == "pending")
            .values(status=status, lease=None, locked_until=None, updated_at=now)
        )


def pending_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(jobs).where(jobs.c.status == "pending")).scalar_one())
