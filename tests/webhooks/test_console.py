"""The console's webhooks: the endpoints page, an endpoint's deliveries with their status and last attempt, and
Resend (a review that changes nothing, then Confirm with the session's form token; without it, nothing)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from meterbook import jobs
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.tables import webhook_deliveries
from meterbook.kit.time import utcnow
from tests.conftest import Tenant
from tests.web.test_console_actions import Console, confirmation, flash, followed
from tests.webhooks.receiver import Answer, Receiver


def deliveries_count(database: Database) -> int:
    with database.read() as conn:
        return int(conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar_one())


def test_endpoints_deliveries_and_resend(
    client: TestClient, tenant: Tenant, database: Database, settings: Settings, receiver: Receiver
) -> None:
    endpoint: dict[str, Any] = client.post(
        "/v1/webhook_endpoints", json={"url": receiver.url, "description": "ledger sync"}, headers=tenant.headers
    ).json()
    receiver.secrets.append(endpoint["secret"])
    receiver.script = lambda request: Answer(status=500, body=b"receiver down")
    account = tenant.create_account()
    client.post(f"/v1/accounts/{account['id']}/credits", json={"id": "g-1", "amount": 3}, headers=tenant.headers)
    jobs.run_due(database, utcnow(), settings=settings)

    console = Console(client, tenant.key)
    listing = console.get("/ui/webhooks")
    assert listing.status_code == 200
    assert receiver.url in listing.text
    assert "ledger sync" in listing.text
    assert endpoint["secret"] not in listing.text
    page = console.get(f"/ui/webhooks/{endpoint['id']}")
    assert page.status_code == 200
    assert 'data-status="pending"' in page.text
    assert "credits.granted" in page.text
    assert "receiver down" in page.text
    [delivery] = client.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", headers=tenant.headers).json()[
        "deliveries"
    ]
    resend = f"/ui/webhook-events/{delivery['event_id']}/resend?endpoint={endpoint['id']}"
    assert resend in page.text.replace("&amp;", "&")

    review = console.get(f"/ui/webhook-events/{delivery['event_id']}/resend", endpoint=endpoint["id"])
    assert review.status_code == 200
    assert deliveries_count(database) == 1  # the review rehearses it and stores nothing
    action, fields = confirmation(review.text)
    tokenless = {name: values for name, values in fields.items() if name != "csrf"}
    assert console.post(action, tokenless, csrf=None).status_code == 403
    assert deliveries_count(database) == 1
    shown = followed(console, console.post(action, fields))
    assert "queued again" in flash(shown)
    assert deliveries_count(database) == 2

    receiver.script = lambda request: Answer()
    jobs.run_due(database, utcnow(), settings=settings)
    assert {request.webhook_id for request in receiver.received} == {delivery["event_id"]}
    assert 'data-status="delivered"' in console.get(f"/ui/webhooks/{endpoint['id']}").text


def test_a_read_only_key_sees_but_may_not_resend(client: TestClient, tenant: Tenant) -> None:
    reader = tenant.create_key(scopes=["accounts:read", "billing:read", "usage:read"])["key"]
    console = Console(client, reader)
    page = console.get("/ui/webhooks")
    assert page.status_code == 200
    assert 'href="/ui/webhooks"' in page.text
    assert console.get(f"/ui/webhook-events/{'0' * 8}-0000-0000-0000-{'0' * 12}/resend", endpoint="x").status_code in (
        403,
        404,
    )
