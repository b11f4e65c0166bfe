"""The job mechanism: scheduling is part of the caller's transaction and idempotent by key, a claim is a lease
that a killed worker loses when it expires, a stale worker records nothing, and two workers on one database
never run one job at once."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from meterbook import jobs
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.tables import jobs as jobs_table
from meterbook.jobs import Done, Job, JobContext, NewJob, Outcome, Registry, Retry
from meterbook.jobs import repository as job_rows
from meterbook.kit.time import utcnow
from tests.conftest import Tenant
from tests.webhooks.receiver import Answer, Receiver, running_receiver


class Recorder:
    """A kind's handler that remembers what it ran, and answers what the test says."""

    def __init__(self, answer: Any = None) -> None:
        self.ran: list[Job] = []
        self.answer = answer

    def __call__(self, job: Job, context: JobContext) -> Outcome:
        self.ran.append(job)
        if isinstance(self.answer, Exception):
            raise self.answer
        outcome: Outcome = self.answer(job, context) if callable(self.answer) else Done()
        return outcome


def registry_with(kind: str, handler: Recorder, lease: timedelta = timedelta(minutes=1)) -> Registry:
    registry = Registry()
    registry.register(kind, handler, lease=lease, max_attempts=3)
    return registry


def rows(database: Database) -> list[Any]:
    with database.read() as conn:
        return list(conn.execute(select(jobs_table).order_by(jobs_table.c.created_at)).mappings())


def settings_of(database: Database) -> Settings:
    return Settings(database_url=database.url, worker=False)


class TestScheduling:
    def test_a_unique_key_schedules_once_and_a_rollback_schedules_nothing(self, database: Database) -> None:
        now = utcnow()
        with database.write() as conn:
            jobs.schedule(conn, [NewJob("finalize", {"invoice": "a"}, now, unique_key="invoice:a")])
            jobs.schedule(conn, [NewJob("finalize", {"invoice": "a"}, now, unique_key="invoice:a")])
            jobs.schedule(conn, [NewJob("finalize", {"n": 1}, now), NewJob("finalize", {"n": 2}, now)])
        with database.write() as conn:
            jobs.schedule(conn, [NewJob("finalize", {"n": 3}, now)])
            conn.rollback()
        assert [row["payload"] for row in rows(database)] == ['{"invoice":"a"}', '{"n":1}', '{"n":2}']

    def test_due_jobs_run_once_and_later_ones_wait(self, database: Database) -> None:
        handler = Recorder()
        registry = registry_with("k", handler)
        now = utcnow()
        with database.write() as conn:
            jobs.schedule(conn, [NewJob("k", {"n": 1}, now), NewJob("k", {"n": 2}, now + timedelta(hours=1))])
        report = jobs.run_due(database, now, settings=settings_of(database), registry=registry)
        assert (report.claimed, report.done) == (1, 1)
        assert [job.payload for job in handler.ran] == [{"n": 1}]
        assert jobs.run_due(database, now, settings=settings_of(database), registry=registry).claimed == 0
        jobs.run_due(database, now + timedelta(hours=1), settings=settings_of(database), registry=registry)
        assert [job.payload for job in handler.ran] == [{"n": 1}, {"n": 2}]
        assert [row["status"] for row in rows(database)] == ["done", "done"]

    def test_unknown_kinds_are_left_to_the_servers_that_know_them(self, database: Database) -> None:
        now = utcnow()
        with database.write() as conn:
            jobs.schedule(conn, [NewJob("from-a-newer-version", {}, now)])
        report = jobs.run_due(database, now, settings=settings_of(database), registry=registry_with("k", Recorder()))
        assert report.claimed == 0
        assert rows(database)[0]["status"] == "pending"


class TestFailures:
    def test_a_handler_that_raises_is_retried_then_fails(self, database: Database) -> None:
        handler = Recorder(RuntimeError("boom-job"))
        registry = registry_with("k", handler)
        now = utcnow()
        with database.write() as conn:
            jobs.schedule(conn, [NewJob("k", {}, now)])
        for _ in range(4):
            jobs.run_due(database, now, settings=settings_of(database), registry=registry)
            now += timedelta(hours=2)
        [row] = rows(database)
        assert len(handler.ran) == 3  # max_attempts: the 4th claim fails it without running it
        assert row["status"] == "failed"
        assert row["attempts"] == 4

    def test_retry_moves_the_job_to_its_next_time(self, database: Database) -> None:
        now = utcnow()
        handler = Recorder(lambda job, context: Retry(context.now + timedelta(minutes=5), "later"))
        registry = registry_with("k", handler)
        with database.write() as conn:
            jobs.schedule(conn, [NewJob("k", {}, now)])
        jobs.run_due(database, now, settings=settings_of(database), registry=registry)
        [row] = rows(database)
        assert (row["status"], row["run_at"], row["last_error"]) == ("pending", now + timedelta(minutes=5), "later")
        assert row["lease"] is None


class TestLeases:
    def test_a_killed_workers_claim_expires_and_the_job_runs_again(self, database: Database) -> None:
        handler = Recorder()
        registry = registry_with("k", handler, lease=timedelta(minutes=1))
        now = utcnow()
        with database.write() as conn:
            jobs.schedule(conn, [NewJob("k", {}, now)])
        # A worker claims it and dies before finishing: only its claim is committed.
        with database.write() as conn:
            [dead] = job_rows.claim(conn, registry.leases(), now, 10)
        assert (
            jobs.run_due(
                database, now + timedelta(seconds=59), settings=settings_of(database), registry=registry
            ).claimed
            == 0
        )
        report = jobs.run_due(database, now + timedelta(minutes=1), settings=settings_of(database), registry=registry)
        assert (report.claimed, report.done) == (1, 1)
        assert handler.ran[0].attempts == 2
        # The dead worker's outcome, should it come back, is not recorded: the lease is no longer its own.
        with database.write() as conn:
            assert not job_rows.finish(conn, dead.id, dead.lease, status="failed", run_at=None, error="x", now=now)
        assert rows(database)[0]["status"] == "done"


def test_two_workers_never_send_one_delivery_twice_at_once(
    client: TestClient, tenant: Tenant, database_url: str, database: Database
) -> None:
    """Two workers (two connection pools, as two servers) race over a backlog of deliveries to a receiver that
    answers slowly and counts requests in flight per webhook-id: each event is sent once, never concurrently."""
    with running_receiver() as receiver:
        receiver.script = lambda request: Answer(delay=0.05)
        created = client.post("/v1/webhook_endpoints", json={"url": receiver.url}, headers=tenant.headers)
        assert created.status_code == 400  # the app's default refuses 127.0.0.1...
        settings = Settings(database_url=database_url, worker=False, webhook_allow_private=True)
        _endpoint_for(database, tenant, receiver)
        account = tenant.create_account()
        for _ in range(24):
            response = client.post(
                f"/v1/accounts/{account['id']}/credits",
                json={"id": str(uuid.uuid4()), "amount": 1},
                headers=tenant.headers,
            )
            assert response.status_code == 201
        workers = [Database(database_url, pool_size=4) for _ in range(2)]
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def work(db: Database) -> None:
            try:
                start.wait()
                while jobs.run_due(db, utcnow(), settings=settings, limit=3, concurrency=2).claimed:
                    pass
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(db,)) for db in workers for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for db in workers:
            db.dispose()
        assert not errors, errors
        ids = [request.webhook_id for request in receiver.received]
        assert len(ids) == 24
        assert len(set(ids)) == 24
        assert max(receiver.most_at_once.values()) == 1


def _endpoint_for(database: Database, tenant: Tenant, receiver: Receiver) -> None:
    """An endpoint to the local receiver, made through the service with private destinations allowed."""
    from meterbook.accounts import service as accounts
    from meterbook.webhooks import service as webhooks
    from meterbook.webhooks.schemas import EndpointCreate

    with database.write() as conn:
        principal = accounts.authenticate(conn, tenant.key)
        created = webhooks.create_endpoint(conn, principal, EndpointCreate(url=receiver.url), allow_private=True)
    receiver.secrets.append(created.secret)
