"""Group commit: requests that wait for the SQLite writer share one transaction and one durable commit.

SQLite has one writer, and a durable commit (``synchronous=FULL``) costs an fsync whatever it holds. Requests
that arrive while the writer is busy queue here; when it is free, one thread takes every waiting request
(up to a weight, e.g. a number of events), applies them all in one transaction through ``apply``, commits
once, and only then answers each of them. Nothing is acknowledged before the commit that makes it durable;
if that commit fails, every request of the group gets the error and none of them is stored.

``apply`` decides what one request's failure means: it returns, per request, either its result or the
exception that request must see (it rolls that request's writes back itself, with savepoints). An
exception that escapes ``apply`` fails the whole group: the transaction is rolled back.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy import Connection

if TYPE_CHECKING:
    from meterbook.db.engine import Database

__all__ = ["GroupCommitter"]

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = object()


class GroupCommitter(Generic[Item, Result]):
    def __init__(
        self,
        database: Database,
        apply: Callable[[Connection, Sequence[Item]], Sequence[Result | BaseException]],
        *,
        weigh: Callable[[Item], int],
        max_weight: int,
        name: str,
    ) -> None:
        self._database = database
        self._apply = apply
        self._weigh = weigh
        self._max_weight = max_weight
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._start_lock = threading.Lock()

    def submit(self, item: Item) -> Future[Result]:
        """Queue one request; the future resolves once its group is committed (or has failed)."""
        if not self._started:
            with self._start_lock:
                if not self._started:
                    self._thread.start()
                    self._started = True
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the writer thread."""
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            group: list[tuple[Item, Future[Result]]] = [first]  # type: ignore[list-item]
            weight = self._weigh(group[0][0])
            while weight < self._max_weight:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is _STOP:
                    stopping = True
                    break
                group.append(queued)  # type: ignore[arg-type]
                weight += self._weigh(group[-1][0])
            self._commit(group)

    def _commit(self, group: list[tuple[Item, Future[Result]]]) -> None:
        try:
            with self._database.write() as conn:
                outcomes = self._apply(conn, [item for item, _ in group])
        except BaseException as error:  # the writer thread must outlive any failure; each caller sees it
            for _, future in group:
                future.set_exception(error)
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
