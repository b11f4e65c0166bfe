"""Invariants 2 and 3 under SIGKILL: what was acknowledged is stored once, what was not is stored whole or not at all.

A real ``meterbook serve`` (SQLite file with the default ``synchronous=FULL``, or PostgreSQL) takes batched and
single-event ``POST /v1/events`` (metered and credit events), and credit grants, from concurrent clients; it is
killed with SIGKILL (the whole process group: no handler, no rollback, no flush) at random moments and started
again on the same database, ``METERBOOK_CRASH_KILLS`` times (default 5). Clients re-send some of the requests
that got no answer, as real clients do, with the same ids. At the end, from the database and the API:

- every event of an acknowledged request is stored, once, with the content sent, and nothing else is;
- a request that never got an answer is stored whole or not at all; a refused one (400) not at all;
- one usage debit per stored credit event, with its amount; acknowledged grants stored, once;
- each balance = stored grants - stored debits, never below the floor (0); aggregates = stored quantities;
- ``meterbook verify`` on the same database exits 0.

Only meterbook is killed, never PostgreSQL, so PostgreSQL's fsync setting (off in scripts/lib/postgres.sh) has
no part in it: a commit PostgreSQL has acknowledged to meterbook is in its shared buffers, which outlive meterbook.

The full run (``METERBOOK_CRASH_SEED`` replays a run's choices; the moments of the kills vary with the machine):

    METERBOOK_CRASH_KILLS=25 METERBOOK_CRASH_PG_WORKERS=2 .venv/bin/pytest -s tests/reliability/test_crash.py
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from meterbook.db import Database
from meterbook.db.tables import credit_transactions, usage_events
from tests.conftest import bearer
from tests.reliability.servers import MEMBER_BIN, ServeProcess, serve_environment

pytestmark = pytest.mark.storage

KILLS = int(os.environ.get("METERBOOK_CRASH_KILLS", "5"))
SEED = int(os.environ.get("METERBOOK_CRASH_SEED") or random.randrange(2**31))
#: ``meterbook serve --workers`` on PostgreSQL (SQLite has one writer process). Two double the time of each
#: start, so the quick run uses one and the full run two.
PG_WORKERS = int(os.environ.get("METERBOOK_CRASH_PG_WORKERS", "1"))
#: Traffic between a start and the next kill, in seconds (uniform): long enough for big batches to be mid-commit.
UP_SECONDS = (0.4, 1.6)
#: After the last start: time for clients to re-send, and for answers to come back, before the checks.
SETTLE_SECONDS = 1.5
#: The share of requests left without an answer that a client sends again, later (it gives up on the rest).
RETRY_SHARE = 0.6
PRODUCTS = {"CRASH-CALL": "0.067", "CRASH-API": "0.0001"}
RICH_ACCOUNTS = 3
RICH_GRANT = 10**9
#: An account that runs out of credits now and then, so that debits are refused (400) during the kills too.
TIGHT_GRANT = 300
BATCH_SIZES = (50, 500)


@dataclass
class Sent:
    """One request as the client meant it (one body, one set of ids) and every answer to each time it was sent."""

    client: str
    path: str
    body: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Status of each attempt; None where the connection broke or no answer came.
    answers: list[int | None] = field(default_factory=list)
    #: The body of each answer (None where there was none), in step with ``answers``.
    replies: list[Any] = field(default_factory=list)
    #: Whether it holds a debit from the tight account: the only reason it may be refused.
    may_be_refused: bool = False

    @property
    def acknowledged(self) -> bool:
        return any(status is not None and 200 <= status < 300 for status in self.answers)

    @property
    def refused(self) -> bool:
        return any(status == 400 for status in self.answers)

    @property
    def unanswered(self) -> bool:
        return bool(self.answers) and all(status is None for status in self.answers)


@dataclass
class CrashTenant:
    """The organization's key, the accounts with plenty of credits, and the one with few."""

    key: str
    rich: list[str]
    tight: str


class Chaos:
    """What the clients share: whether the server is up, when to stop, every request sent, and what went wrong."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.sent: list[Sent] = []
        self.problems: list[str] = []

    def record(self, sent: Sent) -> None:
        with self.lock:
            self.sent.append(sent)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


# --- what the clients send -------------------------------------------------------------------------


def metered(event_id: str, account: str, rng: random.Random) -> dict[str, Any]:
    product = rng.choice(list(PRODUCTS))
    return {
        "id": event_id,
        "account_id": account,
        "type": "metered",
        "product_id": product,
        "quantity": str(Decimal(rng.randint(1, 99_999)).scaleb(-3)),
    }


def credit(event_id: str, account: str, amount: int) -> dict[str, Any]:
    return {"id": event_id, "account_id": account, "type": "credit", "quantity": amount}


def batch_maker(name: str, tenant: CrashTenant, rng: random.Random) -> Callable[[int], Sent]:
    def make(number: int) -> Sent:
        size = rng.randint(*BATCH_SIZES)
        events = []
        for n in range(size):
            event_id = f"{name}-{number}-{n}"
            account = rng.choice(tenant.rich)
            events.append(metered(event_id, account, rng) if rng.random() < 0.7 else credit(event_id, account, 2))
        tight = rng.random() < 0.25
        if tight:
            events[rng.randrange(size)] = credit(f"{name}-{number}-t", tenant.tight, rng.randint(5, 40))
        return Sent(client=name, path="/v1/events", body=events, events=events, may_be_refused=tight)

    return make


def single_maker(name: str, tenant: CrashTenant, rng: random.Random) -> Callable[[int], Sent]:
    def make(number: int) -> Sent:
        event_id = f"{name}-{number}"
        draw = rng.random()
        if draw < 0.4:
            event = metered(event_id, rng.choice(tenant.rich), rng)
        elif draw < 0.7:
            event = credit(event_id, rng.choice(tenant.rich), rng.randint(1, 9))
        else:
            event = credit(event_id, tenant.tight, rng.randint(1, 9))
        return Sent(client=name, path="/v1/events", body=[event], events=[event], may_be_refused=draw >= 0.7)

    return make


def grant_maker(name: str, tenant: CrashTenant, rng: random.Random) -> Callable[[int], Sent]:
    def make(number: int) -> Sent:
        body = {"id": f"{name}-{number}", "amount": rng.randint(10, 40)}
        return Sent(client=name, path=f"/v1/accounts/{tenant.tight}/credits", body=body)

    return make


def run_client(
    name: str, base_url: str, key: str, make: Callable[[int], Sent], chaos: Chaos, rng: random.Random, pause: float
) -> None:
    """Send requests one after another while the server is up; after a lost answer, maybe send the same again later."""
    waiting: list[Sent] = []
    number = 0
    try:
        with httpx.Client(base_url=base_url, headers=bearer(key), timeout=30.0) as http:
            while not chaos.stopping.is_set():
                if not chaos.up.wait(timeout=0.05):
                    continue
                if waiting and rng.random() < 0.5:
                    sent = waiting.pop(rng.randrange(len(waiting)))
                else:
                    sent = make(number)
                    number += 1
                    chaos.record(sent)
                try:
                    response = http.post(sent.path, json=sent.body)
                except httpx.TransportError:
                    sent.answers.append(None)
                    sent.replies.append(None)
                    if rng.random() < RETRY_SHARE:
                        waiting.append(sent)
                    continue
                sent.answers.append(response.status_code)
                try:
                    sent.replies.append(response.json())
                except ValueError:
                    sent.replies.append(response.text)
                check_answer(sent, chaos)
                if pause:
                    time.sleep(pause)
    except Exception as error:  # a failure of the client itself must fail the test, not vanish with its thread
        chaos.problem(f"client {name} failed: {error!r}")


def check_answer(sent: Sent, chaos: Chaos) -> None:
    """What each answer may be, given what came before it."""
    status, reply = sent.answers[-1], sent.replies[-1]
    earlier_lost = any(answer is None for answer in sent.answers[:-1])
    where = f"{sent.client} attempt {len(sent.answers)} of {sent.path} ({sent.answers})"
    if not sent.events:
        if status == 201 or (status == 200 and earlier_lost):
            if reply.get("amount") != sent.body["amount"]:
                chaos.problem(f"{where}: {reply}")
            return
        chaos.problem(f"{where}: answered {status} {reply}")
        return
    size = len(sent.events)
    if status == 200:
        accepted, duplicates = reply.get("accepted"), reply.get("duplicates")
        # A batch is all or nothing: an earlier attempt stored all of it or none of it.
        allowed = [(size, 0), (0, size)] if earlier_lost else [(size, 0)]
        if (accepted, duplicates) not in allowed:
            chaos.problem(f"{where}: accepted {accepted}, duplicates {duplicates} of {size} events")
    elif status == 400 and sent.may_be_refused and "insufficient credits" in str(reply):
        return
    else:
        chaos.problem(f"{where}: answered {status} {str(reply)[:300]}")


# --- setting up, and the checks at the end ---------------------------------------------------------


def set_up(base_url: str, platform_key: str) -> CrashTenant:
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        response = http.post("/v1/organizations", json={"name": "Crash"}, headers=bearer(platform_key))
        assert response.status_code == 201, response.text
        key = response.json()["api_key"]["key"]
        for product, price in PRODUCTS.items():
            response = http.put(
                f"/v1/products/{product}", json={"description": product, "unit_price": price}, headers=bearer(key)
            )
            assert response.status_code == 201, response.text
        accounts = []
        for n in range(RICH_ACCOUNTS + 1):
            response = http.post("/v1/accounts", json={"name": f"Crash {n}", "credit_min": 0}, headers=bearer(key))
            assert response.status_code == 201, response.text
            accounts.append(response.json()["id"])
        for account, amount in zip(accounts, [RICH_GRANT] * RICH_ACCOUNTS + [TIGHT_GRANT], strict=True):
            response = http.post(
                f"/v1/accounts/{account}/credits", json={"id": f"seed-{account}", "amount": amount}, headers=bearer(key)
            )
            assert response.status_code == 201, response.text
    return CrashTenant(key=key, rich=accounts[:RICH_ACCOUNTS], tight=accounts[RICH_ACCOUNTS])


def check_events(sent: list[Sent], database: Database) -> dict[str, Any]:
    """Every request's events against the rows: all of an acknowledged one, none of a refused one, all or none else."""
    with database.read() as conn:
        rows = conn.execute(
            select(
                usage_events.c.id,
                usage_events.c.account_id,
                usage_events.c.kind,
                usage_events.c.product_id,
                usage_events.c.quantity,
                usage_events.c.received_at,
            )
        ).all()
    stored = {row.id: row for row in rows}
    assert len(stored) == len(rows)
    sent_ids = {event["id"] for request in sent for event in request.events}
    assert set(stored) <= sent_ids, sorted(set(stored) - sent_ids)[:10]
    failures = []
    for request in (request for request in sent if request.events):
        ids = [event["id"] for event in request.events]
        present = sum(event_id in stored for event_id in ids)
        if request.acknowledged:
            expected = {len(ids)}
        elif request.refused:
            expected = {0}
        else:
            expected = {0, len(ids)}
        if present not in expected:
            failures.append(f"{request.client} {ids[0]}…: {present} of {len(ids)} stored, answers {request.answers}")
        for event in request.events:
            row = stored.get(event["id"])
            if row is not None and (
                str(row.account_id) != event["account_id"]
                or row.kind != event["type"]
                or Decimal(row.quantity) != Decimal(str(event["quantity"]))
            ):
                failures.append(f"event {event['id']} stored as {tuple(row)}, sent as {event}")
    assert not failures, "\n".join(failures[:20])
    return stored


def check_ledger(
    sent: list[Sent], tenant: CrashTenant, stored: dict[str, Any], base_url: str, database: Database
) -> None:
    """One debit per stored credit event, acknowledged grants stored, balances = grants - debits, never below 0."""
    with database.read() as conn:
        rows = conn.execute(
            select(
                credit_transactions.c.kind,
                credit_transactions.c.account_id,
                credit_transactions.c.amount,
                credit_transactions.c.idempotency_key,
            )
        ).all()
    debits = Counter(row.idempotency_key for row in rows if row.kind == "usage")
    assert max(debits.values(), default=1) == 1, [key for key, count in debits.items() if count > 1][:10]
    by_key = {row.idempotency_key: row for row in rows}
    credit_events = {event_id: row for event_id, row in stored.items() if row.kind == "credit"}
    # A debit's id is its usage's, a grant's the grant's (CONTRACT §3.4).
    assert set(debits) == set(credit_events)
    for event_id, event in credit_events.items():
        debit = by_key[event_id]
        assert (debit.account_id, Decimal(debit.amount)) == (event.account_id, Decimal(event.quantity))

    grants_sent = {request.body["id"]: request for request in sent if not request.events}
    seeds = {f"seed-{account}" for account in [*tenant.rich, tenant.tight]}
    grants_stored = {key for key, row in by_key.items() if row.kind == "grant"}
    assert grants_stored <= set(grants_sent) | seeds, sorted(grants_stored - set(grants_sent) - seeds)[:10]
    assert {key for key, request in grants_sent.items() if request.acknowledged} <= grants_stored

    expected: dict[str, int] = defaultdict(int)
    for row in rows:
        sign = -1 if row.kind == "usage" else 1
        assert row.kind in ("usage", "grant"), row
        expected[str(row.account_id)] += sign * row.amount
    with httpx.Client(base_url=base_url, headers=bearer(tenant.key), timeout=30.0) as http:
        for account in [*tenant.rich, tenant.tight]:
            response = http.get(f"/v1/accounts/{account}/credits")
            assert response.status_code == 200, response.text
            balance = response.json()["balance"]
            assert balance == expected[account], (account, balance, expected[account])
            assert balance >= 0, (account, balance)


def check_aggregates(tenant: CrashTenant, stored: dict[str, Any], base_url: str) -> None:
    """The monthly aggregates the API shows add up, per account and product, to the metered events stored."""
    quantities: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in stored.values():
        if row.kind == "metered":
            quantities[(str(row.account_id), row.product_id)] += Decimal(row.quantity)
    shown: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with httpx.Client(base_url=base_url, headers=bearer(tenant.key), timeout=30.0) as http:
        for account in tenant.rich:
            response = http.get("/v1/monthly_usage", params={"account_id": account})
            assert response.status_code == 200, response.text
            for aggregate in response.json()["usage"]:
                shown[(account, aggregate["product_id"])] += Decimal(str(aggregate["number_of_units"]))
    assert dict(shown) == dict(quantities)


def committed_without_answer(sent: Sent, stored: dict[str, Any]) -> bool:
    """Whether the server committed an attempt and was killed before its answer went out."""
    if None not in sent.answers:
        return False
    after = list(zip(sent.answers, sent.replies, strict=True))[sent.answers.index(None) + 1 :]
    answered = [(status, reply) for status, reply in after if status is not None]
    if not answered:
        return bool(sent.events) and sent.events[0]["id"] in stored
    # The next answer tells: a re-sent batch that was committed is all duplicates, a re-sent grant is 200.
    status, reply = answered[0]
    if sent.events:
        return status == 200 and reply.get("duplicates") == len(sent.events)
    return status == 200


def run_verify(database_url: str) -> None:
    verify = subprocess.run(
        [str(MEMBER_BIN), "verify"],
        env=serve_environment(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "No differences" in verify.stdout, verify.stdout


# --- the test --------------------------------------------------------------------------------------


class TestKilledServer:
    def test_sigkill_during_ingestion_loses_nothing_acknowledged_and_splits_nothing(
        self, database_url: str, database: Database, platform_key: str, tmp_path: Path
    ) -> None:
        rng = random.Random(SEED)
        workers = 1 if database.is_sqlite else PG_WORKERS
        server = ServeProcess(database_url, tmp_path / "serve.log", workers=workers)
        chaos = Chaos()
        clients: list[threading.Thread] = []
        started = time.monotonic()
        try:
            server.start()
            tenant = set_up(server.base_url, platform_key)
            makers: list[tuple[str, Any, float]] = [
                ("batch-a", batch_maker, 0.0),
                ("batch-b", batch_maker, 0.0),
                *((f"single-{n}", single_maker, 0.0) for n in range(4)),
                ("grant", grant_maker, 0.25),
            ]
            for name, maker, pause in makers:
                client_rng = random.Random(rng.random())
                thread = threading.Thread(
                    target=run_client,
                    args=(name, server.base_url, tenant.key, maker(name, tenant, client_rng), chaos, client_rng, pause),
                    name=name,
                    daemon=True,
                )
                thread.start()
                clients.append(thread)
            for _ in range(KILLS):
                chaos.up.set()
                time.sleep(rng.uniform(*UP_SECONDS))
                chaos.up.clear()
                server.kill()
                server.start()
            chaos.up.set()
            time.sleep(SETTLE_SECONDS)
            chaos.stopping.set()
            for thread in clients:
                thread.join(timeout=60)
            alive = [thread.name for thread in clients if thread.is_alive()]
            assert not alive, f"clients did not stop: {alive}"
            assert not chaos.problems, "\n".join(chaos.problems[:20])
            stored = check_events(chaos.sent, database)
            check_ledger(chaos.sent, tenant, stored, server.base_url, database)
            check_aggregates(tenant, stored, server.base_url)
        finally:
            chaos.stopping.set()
            server.stop()
        run_verify(database_url)

        answers = Counter(
            "acknowledged" if s.acknowledged else "refused" if s.refused else "unanswered" if s.unanswered else "unsent"
            for s in chaos.sent
        )
        lost = sum(status is None for s in chaos.sent for status in s.answers)
        retried = sum(len(s.answers) > 1 for s in chaos.sent)
        committed_unanswered = sum(committed_without_answer(s, stored) for s in chaos.sent)
        # Requests applied together in one transaction share their reception time (SQLite's group commit).
        singles = [row.received_at for row in stored.values() if row.id.startswith("single-")]
        shared = sum(count for count in Counter(singles).values() if count > 1)
        print(
            f"\ncrash test ({database.dialect}, {workers} worker(s), seed {SEED}): {KILLS} kills in "
            f"{time.monotonic() - started:.1f} s; "
            f"{len(chaos.sent)} requests ({dict(answers)}), {lost} attempts lost to a kill, {retried} re-sent, "
            f"{committed_unanswered} committed by an attempt that got no answer; {len(stored)} events stored; "
            f"{shared} of {len(singles)} single events shared their transaction with another request's"
        )
        # The kills must have landed while requests were in flight, or the test proved nothing.
        if KILLS:
            assert lost >= 1, "no request was in flight at any kill"
        assert answers["acknowledged"] > 0
