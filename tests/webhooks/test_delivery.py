"""Delivery (CONTRACT §7) against a real receiver that verifies every signature with ``standardwebhooks``:
every event arrives, once per endpoint, with the same ``webhook-id`` on every attempt; failures are retried on
the documented schedule under a clock the test controls; redirects are not followed; private destinations are
refused at delivery time too; resending, rotation, and the outbox's cost when nobody listens."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from meterbook import jobs
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.tables import jobs as jobs_table
from meterbook.db.tables import webhook_deliveries, webhook_events
from meterbook.kit.time import utcnow
from meterbook.webhooks import emit
from meterbook.webhooks.delivery import RETRY_DELAYS
from tests.billing import LONG_AGO, months_ago
from tests.conftest import Tenant
from tests.helpers import assert_error, assert_invalid, ts
from tests.webhooks.receiver import Answer, Receiver


def add_endpoint(tenant: Tenant, receiver: Receiver, **body: Any) -> dict[str, Any]:
    response = tenant.client.post("/v1/webhook_endpoints", json={"url": receiver.url, **body}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    receiver.secrets.append(created["secret"])
    return created


def run(database: Database, settings: Settings, now: datetime | None = None) -> jobs.RunReport:
    return jobs.run_due(database, now or utcnow(), settings=settings)


def deliveries(tenant: Tenant, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    response = tenant.client.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", headers=tenant.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


def grant(tenant: Tenant, account: dict[str, Any], amount: int = 100) -> dict[str, Any]:
    response = tenant.client.post(
        f"/v1/accounts/{account['id']}/credits",
        json={"id": f"g-{uuid.uuid4()}", "amount": amount},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    granted: dict[str, Any] = response.json()
    return granted


class TestEveryEventArrives:
    def test_the_wired_events_arrive_signed_with_the_native_objects(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(tenant, receiver)
        account = tenant.create_account(commitment={"monthly_cost": 100}, contract_started_at=LONG_AGO)
        other = tenant.create_account(commitment={"monthly_cost": 50}, contract_started_at=LONG_AGO)
        granted = grant(tenant, account)
        month = months_ago(1)
        assert client.post("/v1/billing_runs", json={"month": month}, headers=tenant.headers).status_code == 201
        invoices = client.get("/v1/invoices", headers=tenant.headers).json()["invoices"]
        mine = next(invoice for invoice in invoices if invoice["account_id"] == account["id"])
        theirs = next(invoice for invoice in invoices if invoice["account_id"] == other["id"])
        paid = client.post(
            "/v1/payments", json={"account_id": account["id"], "amount": "100.00"}, headers=tenant.headers
        ).json()
        voided = client.post(f"/v1/invoices/{theirs['id']}/void", headers=tenant.headers).json()
        report = run(database, settings)
        assert report.done == report.claimed == 7, report
        received = receiver.wait_for(7)
        assert sorted(receiver.types()) == sorted(
            [
                "credits.granted",
                "invoice.created",
                "invoice.created",
                "billing_run.completed",
                "invoice.paid",
                "payment.created",
                "invoice.voided",
            ]
        )
        for request in received:
            assert request.verified_with == (endpoint["secret"],), request.headers
            body = request.json
            assert set(body) == {"id", "type", "created_at", "organization_id", "data"}
            assert body["id"] == request.webhook_id
            assert body["organization_id"] == tenant.id
            assert request.headers["content-type"] == "application/json"
        by_type = {request.json["type"]: request.json["data"] for request in received}
        assert by_type["credits.granted"] == granted
        assert by_type["payment.created"] == paid
        assert by_type["invoice.voided"] == voided
        assert by_type["invoice.paid"] == client.get(f"/v1/invoices/{mine['id']}", headers=tenant.headers).json()
        assert by_type["invoice.paid"]["status"] == "paid"
        created = [request.json["data"] for request in received if request.json["type"] == "invoice.created"]
        assert {item["id"] for item in created} == {mine["id"], theirs["id"]}
        assert all(item["status"] == "open" and item["lines"] for item in created)
        assert by_type["billing_run.completed"] == {
            "month": month,
            "invoice_count": 2,
            "created_at": by_type["billing_run.completed"]["created_at"],
            "created": True,
        }
        # Exact money: the amounts are the JSON numbers the API shows, never floats.
        assert '"amount":100' in next(r.body.decode() for r in received if r.json["type"] == "payment.created")
        listed = deliveries(tenant, endpoint)
        assert len(listed) == 7
        assert all(item["status"] == "delivered" for item in listed)
        assert all(item["attempts"][0]["status_code"] == 200 for item in listed)
        assert run(database, settings).claimed == 0
        metrics = client.get("/metrics").text
        assert "meterbook_webhooks_delivered_total" in metrics

    def test_each_matching_endpoint_gets_its_own_copy(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        everything = add_endpoint(tenant, receiver)
        payments_only = add_endpoint(tenant, receiver, event_types=["payment.created"])
        add_endpoint(tenant, receiver, enabled=False)
        account = tenant.create_account()
        grant(tenant, account)
        run(database, settings)
        received = receiver.wait_for(1)
        assert [request.json["type"] for request in received] == ["credits.granted"]
        assert received[0].verified_with == (everything["secret"],)
        assert deliveries(tenant, payments_only) == []

    def test_an_organization_without_endpoints_pays_one_query(
        self, client: TestClient, tenant: Tenant, database: Database
    ) -> None:
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(str(args[2]))

        with database.write() as conn:
            event.listen(conn, "before_cursor_execute", count)
            assert emit(conn, uuid.UUID(tenant.id), "invoice.created", {"id": "x"}) is None
            event.remove(conn, "before_cursor_execute", count)
        assert len(statements) == 1, statements
        assert "webhook_endpoints" in statements[0]
        with database.read() as conn:
            assert conn.execute(select(func.count()).select_from(webhook_events)).scalar_one() == 0

    def test_an_event_id_is_emitted_once(
        self, client: TestClient, tenant: Tenant, database: Database, receiver: Receiver
    ) -> None:
        add_endpoint(tenant, receiver)
        event_id = uuid.uuid4()
        with database.write() as conn:
            assert emit(conn, uuid.UUID(tenant.id), "credits.granted", {"n": 1}, event_id=event_id) == event_id
            assert emit(conn, uuid.UUID(tenant.id), "credits.granted", {"n": 2}, event_id=event_id) is None
        with database.read() as conn:
            assert conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar_one() == 1
        with database.write() as conn, pytest.raises(ValueError, match="catalog"):
            emit(conn, uuid.UUID(tenant.id), "invoice.eaten", {})

    def test_a_rolled_back_change_emits_nothing(
        self, client: TestClient, tenant: Tenant, database: Database, receiver: Receiver
    ) -> None:
        add_endpoint(tenant, receiver)
        account = tenant.create_account()
        response = client.post(
            f"/v1/accounts/{account['id']}/credits",
            json={"id": "g-1", "amount": 0},
            headers=tenant.headers,
        )
        assert_invalid(response, "body.amount")
        with database.write() as conn:
            emit(conn, uuid.UUID(tenant.id), "credits.granted", {"n": 1})
            conn.rollback()
        with database.read() as conn:
            assert conn.execute(select(func.count()).select_from(jobs_table)).scalar_one() == 0


class TestRetries:
    def test_the_schedule_until_it_fails(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(tenant, receiver)
        receiver.script = lambda request: Answer(status=500, body=b"down for maintenance")
        grant(tenant, tenant.create_account())
        now = utcnow()
        waits: list[timedelta] = []
        for attempt in range(1, len(RETRY_DELAYS) + 2):
            report = run(database, settings, now)
            assert report.claimed == 1, (attempt, report)
            [delivery] = deliveries(tenant, endpoint)
            assert delivery["attempt_count"] == attempt
            if delivery["status"] == "failed":
                break
            next_at = ts(delivery["next_attempt_at"])
            waits.append(next_at - now)
            # Not a moment early: just before it is due, nothing runs.
            assert run(database, settings, next_at - timedelta(milliseconds=1)).claimed == 0
            now = next_at
        assert delivery["status"] == "failed"
        assert delivery["finished_at"] is not None
        assert len(delivery["attempts"]) == len(RETRY_DELAYS) + 1 == 8
        for wait, documented in zip(waits, RETRY_DELAYS, strict=True):
            assert documented * 0.9 <= wait <= documented * 1.1, (wait, documented)
        assert sum(waits, timedelta()) >= timedelta(hours=24)
        assert len({request.webhook_id for request in receiver.received}) == 1
        assert all(request.verified_with for request in receiver.received)
        assert all(a["status_code"] == 500 and a["error"].startswith("HTTP 500") for a in delivery["attempts"])
        assert "down for maintenance" in delivery["attempts"][0]["error"]
        assert run(database, settings, now + timedelta(days=30)).claimed == 0
        assert "meterbook_webhooks_failed_total" in client.get("/metrics").text

    def test_a_receiver_that_comes_back_gets_it_with_the_same_id(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(tenant, receiver)
        statuses = iter([503, 500])
        receiver.script = lambda request: Answer(status=next(statuses, 204))
        grant(tenant, tenant.create_account())
        now = utcnow()
        for _ in range(3):
            run(database, settings, now)
            now += timedelta(hours=1)
        [delivery] = deliveries(tenant, endpoint)
        assert delivery["status"] == "delivered"
        assert [a["status_code"] for a in delivery["attempts"]] == [503, 500, 204]
        assert [a["number"] for a in delivery["attempts"]] == [1, 2, 3]
        assert all(a["duration_ms"] >= 0 for a in delivery["attempts"])
        assert len({request.webhook_id for request in receiver.received}) == 1
        assert receiver.received[0].webhook_id == delivery["event_id"]

    def test_no_answer_in_time_is_retried(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(tenant, receiver)
        delays = iter([4.0, 0.3])  # the timeout here is 2 s: too slow, then slow but in time
        receiver.script = lambda request: Answer(delay=next(delays, 0.0))
        grant(tenant, tenant.create_account())
        run(database, settings)
        [delivery] = deliveries(tenant, endpoint)
        assert delivery["status"] == "pending"
        assert delivery["attempts"][0]["status_code"] is None
        assert "no answer within 2 s" in delivery["attempts"][0]["error"]
        run(database, settings, ts(delivery["next_attempt_at"]))
        [delivery] = deliveries(tenant, endpoint)
        assert delivery["status"] == "delivered"
        assert delivery["attempts"][1]["duration_ms"] >= 300

    def test_a_refused_connection_is_retried(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        closed = Receiver()  # bound, never started and then closed: its port refuses connections
        closed.server.server_close()
        endpoint = add_endpoint(tenant, closed)
        grant(tenant, tenant.create_account())
        run(database, settings)
        [delivery] = deliveries(tenant, endpoint)
        assert delivery["status"] == "pending"
        assert "could not connect" in delivery["attempts"][0]["error"]

    def test_redirects_are_not_followed(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(tenant, receiver)
        receiver.script = lambda request: (
            Answer(status=302, headers={"location": "/elsewhere"}) if request.path == "/hooks" else Answer()
        )
        grant(tenant, tenant.create_account())
        run(database, settings)
        [delivery] = deliveries(tenant, endpoint)
        assert delivery["status"] == "pending"
        assert delivery["attempts"][0]["status_code"] == 302
        assert "not followed" in delivery["attempts"][0]["error"]
        assert [request.path for request in receiver.received] == ["/hooks"]

    def test_a_large_answer_is_read_only_in_part(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(tenant, receiver)
        receiver.script = lambda request: Answer(status=400, body=b"x" * (1024 * 1024))
        grant(tenant, tenant.create_account())
        run(database, settings)
        [delivery] = deliveries(tenant, endpoint)
        assert delivery["attempts"][0]["status_code"] == 400
        assert len(delivery["attempts"][0]["error"]) < 1000


class TestSafetyAtDelivery:
    def test_a_private_destination_is_refused_when_sending(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        # Allowed when it was created (this app allows private receivers); a server that does not, never sends.
        endpoint = add_endpoint(tenant, receiver)
        grant(tenant, tenant.create_account())
        strict = settings.model_copy(update={"webhook_allow_private": False})
        run(database, strict)
        [delivery] = deliveries(tenant, endpoint)
        assert delivery["status"] == "pending"
        assert "127.0.0.1 is a loopback address" in delivery["attempts"][0]["error"]
        assert receiver.received == []


class TestResendAndRotation:
    def test_resend_queues_the_same_event_again(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(tenant, receiver)
        grant(tenant, tenant.create_account())
        run(database, settings)
        [first] = deliveries(tenant, endpoint)
        response = client.post(f"/v1/webhook_events/{first['event_id']}/resend", headers=tenant.headers)
        assert response.status_code == 202, response.text
        [queued] = response.json()["deliveries"]
        assert queued["status"] == "pending"
        assert queued["event_id"] == first["event_id"]
        run(database, settings)
        received = receiver.wait_for(2)
        assert [request.webhook_id for request in received] == [first["event_id"]] * 2
        assert received[0].body == received[1].body
        assert [item["status"] for item in deliveries(tenant, endpoint)] == ["delivered", "delivered"]
        # To one endpoint, named: also one that never had it.
        second = add_endpoint(tenant, receiver, event_types=["invoice.paid"])
        response = client.post(
            f"/v1/webhook_events/{first['event_id']}/resend",
            json={"endpoint_id": second["id"]},
            headers=tenant.headers,
        )
        assert [item["endpoint_id"] for item in response.json()["deliveries"]] == [second["id"]]
        assert_invalid(
            client.post(
                f"/v1/webhook_events/{first['event_id']}/resend",
                json={"endpoint_id": str(uuid.uuid4())},
                headers=tenant.headers,
            ),
            "body.endpoint_id",
        )
        assert_error(client.post(f"/v1/webhook_events/{uuid.uuid4()}/resend", headers=tenant.headers), 404, "NOT_FOUND")
        client.patch(f"/v1/webhook_endpoints/{second['id']}", json={"enabled": False}, headers=tenant.headers)
        assert_error(
            client.post(
                f"/v1/webhook_events/{first['event_id']}/resend",
                json={"endpoint_id": second["id"]},
                headers=tenant.headers,
            ),
            409,
            "CONFLICT",
        )

    def test_during_rotation_both_secrets_verify(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(tenant, receiver)
        old = endpoint["secret"]
        new = client.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", headers=tenant.headers).json()
        receiver.secrets.append(new["secret"])
        account = tenant.create_account()
        grant(tenant, account)
        run(database, settings)
        [request] = receiver.wait_for(1)
        assert set(request.verified_with) == {old, new["secret"]}
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        # A day later only the new one signs.
        grant(tenant, account)
        run(database, settings, utcnow() + timedelta(hours=24, minutes=1))
        later = receiver.wait_for(2)[-1]
        assert later.verified_with == (new["secret"],)

    def test_a_deleted_or_disabled_endpoint_is_sent_nothing_more(
        self, client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
    ) -> None:
        gone = add_endpoint(tenant, receiver)
        paused = add_endpoint(tenant, receiver)
        grant(tenant, tenant.create_account())
        client.delete(f"/v1/webhook_endpoints/{gone['id']}", headers=tenant.headers)
        client.patch(f"/v1/webhook_endpoints/{paused['id']}", json={"enabled": False}, headers=tenant.headers)
        report = run(database, settings)
        assert (report.claimed, report.failed) == (1, 1), report
        assert receiver.received == []
        [delivery] = deliveries(tenant, paused)
        assert delivery["status"] == "failed"
        assert delivery["attempts"] == []


def test_money_in_bodies_is_exact(
    client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
) -> None:
    add_endpoint(tenant, receiver, event_types=["payment.created"])
    account = tenant.create_account()
    client.post("/v1/payments", json={"account_id": account["id"], "amount": "0.30"}, headers=tenant.headers)
    run(database, settings)
    [request] = receiver.wait_for(1)
    assert '"amount":0.3,' in request.body.decode()
    assert request.json["data"]["amount"] == 0.3
    assert Decimal(request.body.decode().split('"amount":')[1].split(",")[0]) == Decimal("0.3")
