"""Scheduling jobs, and running the due ones: one pass of the worker, with a clock the caller gives.

A job runs in three steps, none of which holds a transaction open across the handler's work:

1. **claim** (one short write transaction): due jobs get a fresh lease token and ``locked_until = now + lease``;
2. **run** the kind's handler, outside any transaction (a webhook is an HTTP call of up to 10 s);
3. **finish** (one short write transaction): the outcome and the handler's own writes (``Outcome.record``),
   applied only if the job still holds this claim's lease.

A worker killed between 1 and 3 leaves a lease that expires: the job is due again then, and runs again. So a
handler runs **at least once** and must tolerate running twice (a webhook receiver sees the same
``webhook-id``); with leases longer than a handler's longest run, never twice *at once*.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from meterbook.config import Settings
from meterbook.db import Database
from meterbook.jobs import repository
from meterbook.jobs.models import Done, Failed, Job, JobContext, NewJob, Outcome, Retry
from meterbook.kit import jsontext
from meterbook.kit.ids import new_id
from meterbook.kit.time import utcnow

__all__ = ["REGISTRY", "Handler", "Kind", "Registry", "RunReport", "cancel", "register", "run_due", "schedule"]

log = logging.getLogger("meterbook.jobs")

Handler = Callable[[Job, JobContext], Outcome]


def default_backoff(attempts: int) -> timedelta:
    """After a handler raised: 10 s, 20 s, 40 s... up to an hour, ±10 %."""
    seconds = min(10 * 2 ** max(attempts - 1, 0), 3600)
    return timedelta(seconds=seconds * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class Kind:
    name: str
    handler: Handler
    #: How long a claim lasts: longer than the handler's longest run, so that no other worker claims it meanwhile.
    lease: timedelta
    #: Claims after which the job fails for good (a job whose worker dies every time must not loop for ever).
    max_attempts: int
    #: The delay before the next claim when the handler raised, by claims so far.
    backoff: Callable[[int], timedelta]


class Registry:
    """The handlers, by kind. A worker claims only the kinds it knows: a server of an older version leaves a
    newer kind's jobs to the servers that know it."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def register(
        self,
        kind: str,
        handler: Handler,
        *,
        lease: timedelta = timedelta(minutes=2),
        max_attempts: int = 25,
        backoff: Callable[[int], timedelta] = default_backoff,
    ) -> None:
        self._kinds[kind] = Kind(kind, handler, lease, max_attempts, backoff)

    def __getitem__(self, kind: str) -> Kind:
        return self._kinds[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds

    def leases(self) -> dict[str, timedelta]:
        return {name: kind.lease for name, kind in self._kinds.items()}


#: The handlers of this process: each domain registers its kinds when it is imported (``webhooks.delivery``).
REGISTRY = Registry()


def register(
    kind: str,
    handler: Handler,
    *,
    lease: timedelta = timedelta(minutes=2),
    max_attempts: int = 25,
    backoff: Callable[[int], timedelta] = default_backoff,
) -> None:
    """Register ``handler`` for ``kind`` in :data:`REGISTRY` (see :meth:`Registry.register`)."""
    REGISTRY.register(kind, handler, lease=lease, max_attempts=max_attempts, backoff=backoff)


def schedule(conn: Connection, new: Sequence[NewJob], now: datetime | None = None) -> None:
    """Write jobs in the caller's transaction: they exist exactly when what caused them commits.

    One statement for the lot; a job whose (kind, unique_key) exists already is not scheduled again.
    """
    now = now or utcnow()
    repository.insert(
        conn,
        [
            {
                "id": job.id or new_id(),
                "kind": job.kind,
                "unique_key": job.unique_key,
                "organization_id": job.organization_id,
                "payload": jsontext.dumps(job.payload).decode(),
                "status": "pending",
                "run_at": job.run_at,
                "locked_until": None,
                "lease": None,
                "attempts": 0,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
            }
            for job in new
        ],
    )


def cancel(conn: Connection, job_ids: Sequence[uuid.UUID], now: datetime | None = None) -> None:
    """Cancel pending jobs in the caller's transaction; a run in flight then records nothing."""
    repository.mark(conn, job_ids, "canceled", now or utcnow())


@dataclass
class RunReport:
    """What one pass did."""

    claimed: int = 0
    done: int = 0
    retried: int = 0
    failed: int = 0
    #: Claims whose outcome was not recorded: the lease had passed to another claim (or the job was canceled).
    lost: int = 0


def run_due(
    database: Database,
    now: datetime | None = None,
    *,
    settings: Settings | None = None,
    registry: Registry = REGISTRY,
    limit: int = 100,
    concurrency: int = 1,
) -> RunReport:
    """Claim the jobs due at ``now`` (default: the clock) and run them; tests call this with a clock of their own."""
    now = now or utcnow()
    settings = settings or Settings()
    report = RunReport()
    leases = registry.leases()
    if not leases:
        return report
    with database.read() as conn:
        if not repository.due_exists(conn, list(leases), now):
            return report
    with database.write() as conn:
        claimed = repository.claim(conn, leases, now, limit)
    report.claimed = len(claimed)
    context = JobContext(database=database, now=now, settings=settings)
    if concurrency > 1 and len(claimed) > 1:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(claimed)), thread_name_prefix="meterbook-job") as pool:
            outcomes = list(pool.map(lambda job: _run(registry[job.kind], job, context), claimed))
    else:
        outcomes = [_run(registry[job.kind], job, context) for job in claimed]
    _finish(database, list(zip(claimed, outcomes, strict=True)), now, report)
    return report


def _run(kind: Kind, job: Job, context: JobContext) -> Outcome:
    if job.attempts > kind.max_attempts:
        return Failed(f"claimed {job.attempts} times without finishing")
    try:
        return kind.handler(job, context)
    except Exception as error:  # a handler's bug must not stop the worker; the job is retried later
        log.exception("job %s (%s) raised", job.id, job.kind)
        return Retry(context.now + kind.backoff(job.attempts), f"{type(error).__name__}: {error}")


def _finish(database: Database, finished: Sequence[tuple[Job, Outcome]], now: datetime, report: RunReport) -> None:
    """Record a pass's outcomes in one write transaction (one commit, not one per job: on SQLite each commit is a
    sync of the file, and the writer is the one ingestion waits for), each in a savepoint of its own, so that one
    outcome whose writes fail leaves its job to its lease and the others recorded."""
    committed: list[Outcome] = []
    with database.write() as conn:
        for job, outcome in finished:
            try:
                with conn.begin_nested():
                    if not repository.finish(
                        conn,
                        job.id,
                        job.lease,
                        status=_status(outcome),
                        run_at=_next_run(outcome),
                        error=_error(outcome),
                        now=now,
                    ):
                        report.lost += 1
                        continue
                    if outcome.record is not None:
                        outcome.record(conn)
            except Exception:  # its lease expires and it runs again; the pass goes on
                log.exception("recording the outcome of job %s (%s) failed", job.id, job.kind)
                report.lost += 1
                continue
            committed.append(outcome)
    for outcome in committed:
        if outcome.after_commit is not None:
            outcome.after_commit()
        if isinstance(outcome, Done):
            report.done += 1
        elif isinstance(outcome, Retry):
            report.retried += 1
        else:
            report.failed += 1


def _status(outcome: Outcome) -> str:
    return "done" if isinstance(outcome, Done) else "pending" if isinstance(outcome, Retry) else "failed"


def _next_run(outcome: Outcome) -> datetime | None:
    return outcome.at if isinstance(outcome, Retry) else None


def _error(outcome: Outcome) -> str | None:
    return None if isinstance(outcome, Done) else outcome.error
