"""Issue 19: a server killed between the commit of an event and its delivery delays the delivery and loses
nothing: a real ``meterbook serve`` takes a credit grant (its ``credits.granted`` event committed with it), is
SIGKILLed before its worker sends it, and once started again delivers it, signed, with the event's id."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from meterbook.db import Database
from tests.conftest import bearer
from tests.reliability.servers import ServeProcess
from tests.webhooks.receiver import running_receiver


def test_sigkill_between_commit_and_delivery_loses_nothing(
    database_url: str, database: Database, platform_key: str, tmp_path: Path
) -> None:
    with running_receiver() as receiver:
        # A worker that looks once at startup and then sleeps a minute: what it has not sent yet when the
        # server is killed is exactly an event committed and not delivered.
        server = ServeProcess(
            database_url,
            tmp_path / "serve.log",
            METERBOOK_WEBHOOK_ALLOW_PRIVATE="true",
            METERBOOK_WORKER_POLL_SECONDS="60",
        )
        server.start()
        try:
            with httpx.Client(base_url=server.base_url, timeout=10) as http:
                org = http.post("/v1/organizations", json={"name": "Crash"}, headers=bearer(platform_key)).json()
                headers = bearer(org["api_key"]["key"])
                endpoint = http.post("/v1/webhook_endpoints", json={"url": receiver.url}, headers=headers).json()
                receiver.secrets.append(endpoint["secret"])
                account = http.post("/v1/accounts", json={"name": "A"}, headers=headers).json()
                granted = http.post(
                    f"/v1/accounts/{account['id']}/credits", json={"id": "g-1", "amount": 5}, headers=headers
                )
                assert granted.status_code == 201, granted.text
            time.sleep(0.3)
            assert receiver.received == []
            server.kill()
            server.env["METERBOOK_WORKER_POLL_SECONDS"] = "0.2"
            server.start()
            [request] = receiver.wait_for(1, timeout=30)
            assert request.json["type"] == "credits.granted"
            assert request.json["data"] == granted.json()
            assert request.verified_with == (endpoint["secret"],)
            with httpx.Client(base_url=server.base_url, timeout=10) as http:
                listed = http.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", headers=headers).json()
            [delivery] = listed["deliveries"]
            assert delivery["status"] == "delivered"
            assert delivery["event_id"] == request.webhook_id
            time.sleep(0.5)
            assert len(receiver.received) == 1
        finally:
            server.stop()
