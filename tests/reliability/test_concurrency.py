"""Invariants 1 and 4 under real parallelism: a real HTTP server, many requests at the same instant.

The server is uvicorn in a background thread over the test's database (both backends); on PostgreSQL
the credit race is also run against ``meterbook serve --workers 2``, two processes that share nothing
but the database, so only row-level locking can keep the balance right.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import event, func, select

from meterbook.app import create_app
from meterbook.db.tables import credit_transactions, usage_events
from tests.reliability.servers import MEMBER_BIN, free_port, group_members, stop_group, wait_until_healthy

PARALLEL = 40
GRANT = 100
DEBIT = 7
STORM_COPIES = 20
STORM_EVENTS = 200


# --- servers ---------------------------------------------------------------------------------------


@contextmanager
def threaded_server(settings: Any, database: Any) -> Iterator[str]:
    """uvicorn serving the app over the test database in a background thread; its base URL."""
    port = free_port()
    config = uvicorn.Config(app=create_app(settings, database), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, thread.is_alive)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "the server thread did not stop"


@pytest.fixture
def server(settings, database):
    with threaded_server(settings, database) as base_url:
        yield base_url


@pytest.fixture
def two_process_server(database_url, tmp_path):
    """``meterbook serve --workers 2`` on the test database, always stopped (with its workers) at the end."""
    port = free_port()
    env = {
        **os.environ,
        "METERBOOK_DATABASE_URL": database_url,
        "METERBOOK_LOG_LEVEL": "warning",
        "METERBOOK_POOL_SIZE": "5",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(MEMBER_BIN), "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_healthy(base_url, lambda: process.poll() is None, timeout=60)
        except BaseException:
            log.flush()
            print((tmp_path / "serve.log").read_text(errors="replace"))
            raise
        yield base_url, process.pid
    finally:
        stop_group(process)
        log.close()


# --- helpers ---------------------------------------------------------------------------------------


class Api:
    """A tenant on a running server, called over real HTTP."""

    def __init__(self, base_url: str, platform_key: str) -> None:
        self.base_url = base_url
        with httpx.Client(base_url=base_url, timeout=30) as http:
            response = http.post("/v1/organizations", json={"name": "Race"}, headers=self._auth(platform_key))
            assert response.status_code == 201, response.text
            self.organization_id = uuid.UUID(response.json()["id"])
            self.key = response.json()["api_key"]["key"]
            response = http.post("/v1/accounts", json={"name": "Racer", "credit_min": 0}, headers=self.headers)
            assert response.status_code == 201, response.text
            self.account_id = response.json()["id"]

    @staticmethod
    def _auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def headers(self) -> dict[str, str]:
        return self._auth(self.key)

    def call(self, method: str, path: str, json: Any = None) -> httpx.Response:
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            return http.request(method, path, json=json, headers=self.headers)

    def grant(self, amount: int) -> None:
        response = self.call("POST", f"/v1/accounts/{self.account_id}/credits", {"id": "seed", "amount": amount})
        assert response.status_code == 201, response.text

    def balance(self) -> int:
        response = self.call("GET", f"/v1/accounts/{self.account_id}/credits")
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])

    def transactions(self) -> list[dict[str, Any]]:
        response = self.call("GET", f"/v1/accounts/{self.account_id}/credits/transactions")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["transactions"]
        return found

    def all_at_once(self, bodies: list[Any]) -> list[httpx.Response]:
        """POST every body to /v1/events at the same instant, each on its own connection."""
        return self.at_once([lambda http, body=body: http.post("/v1/events", json=body) for body in bodies])

    def at_once(self, requests: list[Callable[[httpx.Client], httpx.Response]]) -> list[httpx.Response]:
        """Send every request at the same instant, each on its own connection, with this tenant's key."""
        barrier = threading.Barrier(len(requests))

        def send(request: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
            with httpx.Client(base_url=self.base_url, timeout=120, headers=self.headers) as http:
                barrier.wait(timeout=30)
                return request(http)

        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(send, requests))


def credit_event(account_id: str, amount: int) -> dict[str, Any]:
    return {"id": f"race-{uuid.uuid4().hex}", "account_id": account_id, "type": "credit", "quantity": amount}


def run_the_race(api: Api, database: Any) -> None:
    """100 credits, 40 simultaneous debits of 7: exactly 14 pass, the balance ends at exactly 2."""
    api.grant(GRANT)
    replies = api.all_at_once([[credit_event(api.account_id, DEBIT)] for _ in range(PARALLEL)])
    statuses = Counter(reply.status_code for reply in replies)
    winners = GRANT // DEBIT
    assert statuses == {200: winners, 400: PARALLEL - winners}, [reply.text for reply in replies]
    for reply in replies:
        if reply.status_code == 200:
            assert reply.json() == {"accepted": 1, "duplicates": 0}
        else:
            body = reply.json()
            assert body["error"] == "BAD_REQUEST"
            assert "insufficient credits" in body["note"]
    assert api.balance() == GRANT - winners * DEBIT
    usages = [t for t in api.transactions() if t["kind"] == "usage"]
    assert len(usages) == winners
    assert all(t["amount"] == DEBIT for t in usages)
    with database.read() as conn:
        stored = conn.execute(
            select(func.count()).where(
                credit_transactions.c.organization_id == api.organization_id, credit_transactions.c.kind == "usage"
            )
        ).scalar_one()
        events = conn.execute(
            select(func.count()).where(usage_events.c.organization_id == api.organization_id)
        ).scalar_one()
    assert stored == winners
    assert events == winners  # a refused debit leaves no event behind


# --- the tests -------------------------------------------------------------------------------------


class TestCreditRace:
    def test_parallel_debits_never_overspend(self, server, platform_key, database):
        run_the_race(Api(server, platform_key), database)


class TestDuplicateStorm:
    def test_the_same_batch_twenty_times_at_once_is_applied_once(self, server, platform_key, database):
        api = Api(server, platform_key)
        response = api.call("PUT", "/v1/products/P1", {"description": "Calls", "unit_price": "0.25"})
        assert response.status_code == 201, response.text
        api.grant(1000)
        batch: list[dict[str, Any]] = []
        for i in range(STORM_EVENTS):
            if i % 2:
                batch.append(credit_event(api.account_id, 3))
            else:
                batch.append(
                    {
                        "id": f"storm-{i}",
                        "account_id": api.account_id,
                        "type": "metered",
                        "product_id": "P1",
                        "quantity": "1.5",
                    }
                )
        replies = api.all_at_once([batch] * STORM_COPIES)
        assert [reply.status_code for reply in replies] == [200] * STORM_COPIES, [r.text for r in replies]
        bodies = [reply.json() for reply in replies]
        assert all(body["accepted"] + body["duplicates"] == STORM_EVENTS for body in bodies), bodies
        assert sum(body["accepted"] for body in bodies) == STORM_EVENTS
        assert sum(body["duplicates"] for body in bodies) == STORM_EVENTS * (STORM_COPIES - 1)
        with database.read() as conn:
            rows = conn.execute(
                select(usage_events.c.id).where(usage_events.c.organization_id == api.organization_id)
            ).all()
        assert sorted(row.id for row in rows) == sorted(event["id"] for event in batch)
        credits = STORM_EVENTS // 2
        assert api.balance() == 1000 - 3 * credits
        assert len([t for t in api.transactions() if t["kind"] == "usage"]) == credits


#: How many times each money race below is run: an interleaving that a missing lock lets through shows in a few.
RACE_ROUNDS = 6


class TestPartialRevertRace:
    """Partial reverts of one usage at the same instant never give back more than it debited (issue 22)."""

    def test_two_reverts_that_together_exceed_the_usage_let_one_through(self, server, platform_key, database):
        api = Api(server, platform_key)
        api.grant(100 * RACE_ROUNDS)
        for _ in range(RACE_ROUNDS):
            usage_id = str(uuid.uuid4())
            body = [{"id": usage_id, "account_id": api.account_id, "type": "credit", "quantity": 60}]
            assert api.call("POST", "/v1/events", body).status_code == 200
            path = (
                f"/v1beta1/admin/organizations/{api.organization_id}/billing/{api.account_id}/usage/{usage_id}/revert"
            )
            replies = api.at_once([lambda http, path=path: http.post(path, json={"amount": 40})] * 2)
            assert sorted(reply.status_code for reply in replies) == [200, 400], [reply.text for reply in replies]
            [refused] = [reply for reply in replies if reply.status_code == 400]
            assert "already reverted" in refused.text
        reverts = [t for t in api.transactions() if t["kind"] == "revert"]
        assert [t["amount"] for t in reverts] == [40] * RACE_ROUNDS
        assert api.balance() == 100 * RACE_ROUNDS - 20 * RACE_ROUNDS


def _invoice_for_last_month(api: Api, amount: str) -> dict[str, Any]:
    """An open invoice of ``amount`` for the month before this one (a commitment billed by a run)."""
    today = datetime.now(UTC)
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    account = api.call(
        "POST",
        "/v1/accounts",
        {
            "name": f"Payer {uuid.uuid4().hex[:6]}",
            "commitment": {"monthly_cost": amount},
            "contract_started_at": "2020-01-01T00:00:00Z",
        },
    )
    assert account.status_code == 201, account.text
    return {"account_id": account.json()["id"], "month": last_month}


class TestPaymentRaces:
    """A payment recorded while a run or a void changes the same account's invoices is never left unapplied
    beside an open invoice (issue 22). Without the run's account lock the run's race fails on PostgreSQL. The
    void's ``FOR UPDATE`` of the invoice is a second guard: the void takes the account's lock before it reads
    the invoice again, every writer of an invoice's payment takes that lock first, and under READ COMMITTED the
    read after the lock sees what the payment committed, so taking it away changes nothing these races see."""

    def test_a_payment_during_a_void(self, server, platform_key, database):
        for round_ in range(RACE_ROUNDS):
            # A month is billed once per organization: each round has its own.
            api = Api(server, platform_key)
            payer = _invoice_for_last_month(api, "30")
            run = api.call("POST", "/v1/billing_runs", {"month": payer["month"]})
            assert run.status_code == 201, run.text
            [first] = api.call("GET", f"/v1/invoices?account_id={payer['account_id']}").json()["invoices"]
            payment = {"id": f"wire-{round_}", "account_id": payer["account_id"], "amount": "30", "currency": "USD"}
            replies = api.at_once(
                [
                    lambda http, first=first: http.post(f"/v1/invoices/{first['id']}/void"),
                    lambda http, payment=payment: http.post("/v1/payments", json=payment),
                ]
            )
            voided, paid = replies
            # Either order is right: the void first (the payment then waits unapplied), or the payment first (the
            # invoice is paid, and a paid invoice is not voided).
            assert paid.status_code == 201, paid.text
            assert voided.status_code == 200 or (voided.status_code == 409 and "is paid" in voided.text), voided.text
            _assert_no_money_left_beside_an_open_invoice(api, payer["account_id"])

    def test_a_payment_during_a_billing_run(self, server, platform_key, database):
        for round_ in range(RACE_ROUNDS):
            api = Api(server, platform_key)
            payer = _invoice_for_last_month(api, "30")
            payment = {"id": f"ahead-{round_}", "account_id": payer["account_id"], "amount": "30", "currency": "USD"}
            replies = api.at_once(
                [
                    lambda http, month=payer["month"]: http.post("/v1/billing_runs", json={"month": month}),
                    lambda http, payment=payment: http.post("/v1/payments", json=payment),
                ]
            )
            assert [reply.status_code for reply in replies] == [201, 201], [reply.text for reply in replies]
            _assert_no_money_left_beside_an_open_invoice(api, payer["account_id"])


def _assert_no_money_left_beside_an_open_invoice(api: Api, account_id: str) -> None:
    invoices = api.call("GET", f"/v1/invoices?account_id={account_id}").json()["invoices"]
    payments = api.call("GET", f"/v1/payments?account_id={account_id}").json()["payments"]
    open_due = sum(Decimal(i["amount"]) - Decimal(i["amount_paid"]) for i in invoices if i["status"] == "open")
    unapplied = sum(Decimal(p["unapplied"]) for p in payments)
    assert open_due == 0 or unapplied == 0, (invoices, payments)


class TestAcrossProcesses:
    @pytest.mark.parametrize("backend", ["postgresql"])
    def test_the_race_through_two_server_processes(self, backend, two_process_server, platform_key, database):
        base_url, group = two_process_server
        # The supervisor and its two workers (and possibly a resource tracker) are all alive.
        assert len(group_members(group)) >= 3, group_members(group)
        run_the_race(Api(base_url, platform_key), database)


class TestConnectionPool:
    def test_a_crowd_of_requests_opens_no_connection_beyond_the_pool(self, server, platform_key, database):
        """40 slow reads at once on a pool of 5: they queue for the pool's connections instead of opening more.

        Each connection opened beyond the pool would be closed again when returned: on PostgreSQL a new backend
        with cold caches for every such request, which is what made a loaded server fall behind.
        """
        api = Api(server, platform_key)
        opened: list[object] = []

        def count_connect(dbapi_connection: object, _record: object) -> None:
            opened.append(dbapi_connection)

        def slow_statement(*_args: object) -> None:
            time.sleep(0.02)  # long enough that 40 requests overlap whatever the machine's speed

        pooled_before = database.engine.pool.checkedin()
        event.listen(database.engine, "connect", count_connect)
        event.listen(database.engine, "before_cursor_execute", slow_statement)
        try:
            replies = api.at_once([lambda http: http.get("/v1/accounts")] * PARALLEL)
        finally:
            event.remove(database.engine, "before_cursor_execute", slow_statement)
            event.remove(database.engine, "connect", count_connect)
        assert [reply.status_code for reply in replies] == [200] * PARALLEL
        assert database.pool_size == 5
        # The pool already held the connections that set the tenant up; the crowd may fill it, no more.
        assert pooled_before + len(opened) <= database.pool_size, (pooled_before, len(opened))
