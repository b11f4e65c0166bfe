"""What a job is, and what its handler answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from meterbook.config import Settings
from meterbook.db import Database

__all__ = ["AfterCommit", "Done", "Failed", "Job", "JobContext", "NewJob", "Outcome", "Record", "Retry"]

#: Writes a handler wants made in the same transaction that records the job's outcome: they happen only if this
#: worker still holds the job's lease, so a worker that lost its lease (it stalled past it) changes nothing.
Record = Callable[[Connection], None]
#: Called once the outcome has committed (e.g. to count it in a metric): never for an outcome that was dropped.
AfterCommit = Callable[[], None]


@dataclass(frozen=True)
class NewJob:
    """A job to schedule: run ``kind``'s handler with ``payload`` from ``run_at`` on."""

    kind: str
    payload: dict[str, Any]
    run_at: datetime
    #: Scheduling the same (kind, unique_key) again makes no second job.
    unique_key: str | None = None
    organization_id: uuid.UUID | None = None
    #: The job's id; default a new UUID (a webhook delivery's job has the delivery's id).
    id: uuid.UUID | None = None


@dataclass(frozen=True)
class Job:
    """A claimed job, as its handler sees it."""

    id: uuid.UUID
    kind: str
    unique_key: str | None
    organization_id: uuid.UUID | None
    payload: dict[str, Any]
    #: Claims so far, this one included (a claim whose worker died counts too).
    attempts: int
    run_at: datetime
    created_at: datetime
    #: This claim's token: the outcome is recorded only while it is still the job's.
    lease: uuid.UUID


@dataclass(frozen=True)
class JobContext:
    """What a handler runs with: the database (outside any transaction), the pass's clock, the settings."""

    database: Database
    now: datetime
    settings: Settings


@dataclass(frozen=True)
class Done:
    record: Record | None = field(default=None, compare=False)
    after_commit: AfterCommit | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Retry:
    """Run again from ``at``."""

    at: datetime
    error: str
    record: Record | None = field(default=None, compare=False)
    after_commit: AfterCommit | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Failed:
    """Give up for good."""

    error: str
    record: Record | None = field(default=None, compare=False)
    after_commit: AfterCommit | None = field(default=None, compare=False)


Outcome = Done | Retry | Failed
