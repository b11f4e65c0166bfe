"""The one durable background-job mechanism: rows written in the causing transaction, run by a worker inside
``serve``, claimed with a lease so that no two workers run one job at once, and safe against a kill at any
instant (docs/webhooks.md, "Jobs").

Public surface: :func:`schedule` (in the caller's transaction), :func:`register` (a handler for a kind),
:func:`run_due` (one pass, with a clock tests control), :class:`Worker` (the loop ``serve`` runs).
"""

from meterbook.jobs.models import Done, Failed, Job, JobContext, NewJob, Outcome, Retry
from meterbook.jobs.service import REGISTRY, Registry, RunReport, cancel, register, run_due, schedule
from meterbook.jobs.worker import Worker

__all__ = [
    "REGISTRY",
    "Done",
    "Failed",
    "Job",
    "JobContext",
    "NewJob",
    "Outcome",
    "Registry",
    "Retry",
    "RunReport",
    "Worker",
    "cancel",
    "register",
    "run_due",
    "schedule",
]
