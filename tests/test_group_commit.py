"""The group committer: requests that wait share one transaction; none is answered before its commit.

Each request here stores one organization named after it, so what was committed can be read back.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future

import pytest
from sqlalchemy import Connection, insert, select

from meterbook.db.group_commit import GroupCommitter
from meterbook.db.tables import organizations
from meterbook.kit.time import utcnow


class Recorder:
    """An ``apply`` that stores one organization per request; a name starting with 'bad' is refused alone."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.explode = False

    def __call__(self, conn: Connection, names: Sequence[str]) -> list[str | BaseException]:
        self.entered.set()
        self.hold.wait(10)
        self.groups.append(list(names))
        if self.explode:
            conn.execute(insert(organizations).values(id=uuid.uuid4(), name="half", created_at=utcnow()))
            raise RuntimeError("the group fails")
        outcomes: list[str | BaseException] = []
        for name in names:
            if name.startswith("bad"):
                outcomes.append(ValueError(name))
                continue
            conn.execute(insert(organizations).values(id=uuid.uuid4(), name=name, created_at=utcnow()))
            outcomes.append(f"stored {name}")
        return outcomes


def stored_names(database) -> set[str]:
    with database.read() as conn:
        return set(conn.execute(select(organizations.c.name)).scalars())


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def committer(database, recorder):
    committer: GroupCommitter[str, str] = GroupCommitter(database, recorder, weigh=len, max_weight=20, name="test")
    yield committer
    recorder.hold.set()
    committer.close()


def test_requests_that_wait_share_one_commit_and_each_gets_its_own_answer(database, recorder, committer):
    recorder.hold.clear()
    first = committer.submit("first")
    assert recorder.entered.wait(10)
    waiting = [committer.submit(name) for name in ("a", "bad-b", "c")]
    assert not any(future.done() for future in [first, *waiting]), "answered before the commit"
    recorder.hold.set()

    assert first.result(10) == "stored first"
    assert waiting[0].result(10) == "stored a"
    with pytest.raises(ValueError, match="bad-b"):
        waiting[1].result(10)
    assert waiting[2].result(10) == "stored c"
    assert recorder.groups == [["first"], ["a", "bad-b", "c"]]
    assert stored_names(database) == {"first", "a", "c"}


def test_a_group_takes_requests_until_it_reaches_its_weight(database, recorder, committer):
    recorder.hold.clear()
    first = committer.submit("x" * 5)
    assert recorder.entered.wait(10)
    rest = [committer.submit(name * 8) for name in "pqrs"]
    recorder.hold.set()
    for future in [first, *rest]:
        future.result(10)
    # 8 + 8 is below the weight of 20, so a third joins (24); then the group is full and the fourth waits.
    assert recorder.groups == [["xxxxx"], ["p" * 8, "q" * 8, "r" * 8], ["s" * 8]]


def test_a_failing_group_answers_every_request_with_the_error_stores_nothing_and_the_writer_goes_on(
    database, recorder, committer
):
    recorder.explode = True
    futures: list[Future[str]] = [committer.submit(name) for name in ("one", "two")]
    for future in futures:
        with pytest.raises(RuntimeError, match="the group fails"):
            future.result(10)
    assert stored_names(database) == set()

    recorder.explode = False
    assert committer.submit("after").result(10) == "stored after"
    assert stored_names(database) == {"after"}


def test_close_answers_what_is_queued_before_stopping(database, recorder, committer):
    recorder.hold.clear()
    first = committer.submit("first")
    assert recorder.entered.wait(10)
    queued = committer.submit("queued")
    recorder.hold.set()
    committer.close()
    assert first.result(0) == "stored first"
    assert queued.result(0) == "stored queued"
    assert stored_names(database) == {"first", "queued"}
