"""Alerts under real parallelism (issue 19): requests that cross a threshold together fire it exactly once.

A real HTTP server (uvicorn in a thread, as ``test_concurrency``) over PostgreSQL, where each request is its own
transaction and several commit at once. Eight threads post at the same instant; each one's usage goes to an
aggregate row of its own (its own ``resolution``), so no row lock orders them and only the per-account lock taken
after the writes lets the last to evaluate see the others' units. Every round uses fresh accounts: the month's
total reaches the threshold only with every thread's share, so a firing that went missing shows as zero, and a
double one as two.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.reliability.test_concurrency import threaded_server

THREADS = 8
ROUNDS = 5
PRODUCT = "CALLS"


@pytest.fixture
def server(settings: Any, database: Any, backend: str) -> Iterator[str]:
    if backend != "postgresql":
        pytest.skip("SQLite has one writer: concurrency is PostgreSQL's (SQLite's group commit is tested elsewhere)")
    with threaded_server(settings, database) as base_url:
        yield base_url


def call(client: httpx.Client, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
    answer = client.request(method, path, json=body)
    assert (answer.status_code == status) if status else answer.is_success, answer.text
    return answer.json()


def event(kind: str, account: str, thread: int) -> dict[str, Any]:
    """One unit (or credit) of ``account``'s usage, in an aggregate row of the thread's own (its resolution)."""
    if kind == "credit":
        return {"id": f"c-{thread}-{uuid.uuid4()}", "account_id": account, "type": "credit", "quantity": 1}
    return {
        "id": f"m-{thread}-{uuid.uuid4()}",
        "account_id": account,
        "type": "metered",
        "product_id": PRODUCT,
        "quantity": 1,
        "resolution": f"r{thread}",
    }


def race(server: str, key: str, events: list[dict[str, Any]]) -> None:
    """Post each event in a request of its own, all released at the same instant from as many threads."""
    start = threading.Barrier(len(events))

    def post(one: dict[str, Any]) -> int:
        with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=60) as own:
            own.get("/healthz")  # connected before the start
            start.wait()
            return own.post("/v1/events", json=[one]).status_code

    with ThreadPoolExecutor(len(events)) as pool:
        assert list(pool.map(post, events)) == [200] * len(events)


def test_together_they_fire_once(server: str, platform_key: str) -> None:
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {platform_key}"}, timeout=60) as admin:
        key = call(admin, "POST", "/v1/organizations", {"name": "Race"}, 201)["api_key"]["key"]
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        call(client, "PUT", f"/v1/products/{PRODUCT}", {"description": "Calls", "unit_price": "1"})
        call(client, "POST", "/v1/webhook_endpoints", {"url": "https://hooks.example.com/race"}, 201)
        every = {
            "usage": call(
                client, "POST", "/v1/alerts", {"type": "usage_above", "threshold": THREADS, "product_id": PRODUCT}, 201
            ),
            "spend": call(client, "POST", "/v1/alerts", {"type": "spend_above", "threshold": THREADS}, 201),
        }
        accounts = [call(client, "POST", "/v1/accounts", {"name": f"racer {n}"}, 201)["id"] for n in range(ROUNDS)]
        balance_alerts = []
        for account in accounts:
            call(client, "POST", f"/v1/accounts/{account}/credits", {"id": "g", "amount": THREADS + 2}, 201)
            balance_alerts.append(
                call(
                    client,
                    "POST",
                    "/v1/alerts",
                    {"account_id": account, "type": "credit_balance_below", "threshold": 3},
                    201,
                )
            )

        # Metered usage alone first: a credit debit would order the requests by the balance row's lock.
        for kind in ("metered", "credit"):
            for account in accounts:
                race(server, key, [event(kind, account, thread) for thread in range(THREADS)])

        for name, alert in every.items():
            fired = call(client, "GET", f"/v1/alerts/{alert['id']}/triggers")["triggers"]
            assert sorted(trigger["account_id"] for trigger in fired) == sorted(accounts), name
            assert {trigger["value"] for trigger in fired} == {THREADS}, name
        for account, alert in zip(accounts, balance_alerts, strict=True):
            # From THREADS + 2 down by one per thread: the balance crosses below 3 once, at 2.
            fired = call(client, "GET", f"/v1/alerts/{alert['id']}/triggers")["triggers"]
            assert [(trigger["account_id"], trigger["value"], trigger["period"]) for trigger in fired] == [
                (account, 2, "1")
            ]
