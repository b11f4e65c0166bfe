"""The worker ``meterbook serve`` runs in each of its processes: a thread that runs due jobs until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from meterbook.config import Settings
from meterbook.db import Database
from meterbook.jobs.service import REGISTRY, Registry, run_due
from meterbook.kit.time import utcnow

__all__ = ["Worker"]

log = logging.getLogger("meterbook.jobs")

#: Jobs claimed per pass for each job run at once (the pass runs them ``worker_concurrency`` at a time): at most 4
#: rounds of a webhook's 10 s, well within a delivery's 2-minute lease.
CLAIMS_PER_SLOT = 4

#: Called after every pass, with the pass's clock (e.g. to refresh a backlog gauge).
AfterPass = Callable[[Database, datetime], None]


class Worker:
    """Polls for due jobs every ``settings.worker_poll_seconds`` and runs up to ``worker_concurrency`` at once.

    An idle poll is one indexed read; only when something is due does it take the write lock to claim. After a
    pass that found work it looks again at once, so a backlog drains without waiting for the poll interval.
    """

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        registry: Registry = REGISTRY,
        after_pass: Sequence[AfterPass] = (),
    ) -> None:
        self.database = database
        self.settings = settings
        self.registry = registry
        self.after_pass = list(after_pass)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="meterbook-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the pass in flight (its jobs finish, or their leases expire and others run them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        concurrency = self.settings.worker_concurrency
        while not self._stop.is_set():
            busy = False
            try:
                now = utcnow()
                report = run_due(
                    self.database,
                    now,
                    settings=self.settings,
                    registry=self.registry,
                    # A few rounds of work per claim: claims and outcomes are one write transaction each per pass.
                    limit=concurrency * CLAIMS_PER_SLOT,
                    concurrency=concurrency,
                )
                busy = report.claimed > 0
                for hook in self.after_pass:
                    hook(self.database, now)
            except Exception:  # the database may be away for a moment: log, wait, try again
                log.exception("the job worker's pass failed")
            if not busy:
                self._stop.wait(self.settings.worker_poll_seconds)
