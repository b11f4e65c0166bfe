"""``POST /v1/events`` answers the same whether the fast path (``api/fast_events.py``, SQLite) takes it or not.

Every request here looks plain to the fast path (a bearer key and a JSON body), so on SQLite it is
taken there first, and whatever it refuses is answered by the route. Each refusal is sent to the
application as built and to the same application without the fast path, over the same database:
status and body must be the same (but for each error's own random id), and nothing may be stored.
On PostgreSQL the fast path is not installed and both applications are the route alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from meterbook.api.fast_events import FastEvents
from meterbook.app import create_app
from meterbook.db.tables import credit_transactions, usage_events
from meterbook.kit import jsontext
from tests.conftest import Tenant, bearer


@pytest.fixture
def route_only(settings, database) -> Iterator[TestClient]:
    app = create_app(settings, database)
    app.user_middleware = [middleware for middleware in app.user_middleware if middleware.cls is not FastEvents]
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def account(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    account = tenant.create_account()
    grant = client.post(f"/v1/accounts/{account['id']}/credits", json={"id": "g", "amount": 10}, headers=tenant.headers)
    assert grant.status_code == 201, grant.text
    response = client.put("/v1/products/P", json={"description": "p", "unit_price": "0.5"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return account


def stored(database) -> tuple[int, int]:
    with database.read() as conn:
        return (
            conn.execute(select(func.count()).select_from(usage_events)).scalar_one(),
            conn.execute(select(func.count()).select_from(credit_transactions)).scalar_one(),
        )


def without_error_id(response: Any) -> tuple[int, Any]:
    body = response.json()
    if isinstance(body, dict):
        body = {name: value for name, value in body.items() if name != "id"}
    return response.status_code, body


def metered(account_id: str, event_id: str = "m-1", **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "account_id": account_id, "type": "metered", "product_id": "P", "quantity": 2, **fields}


def refusals(client: TestClient, tenant: Tenant, account: dict[str, Any], other_tenant: Tenant) -> dict[str, Any]:
    """Plain-looking requests that must be refused: name -> (headers, body bytes)."""
    key, account_id = tenant.headers, account["id"]
    reader = tenant.create_key(scopes=["usage:read"])["key"]
    revoked = tenant.create_key()
    assert client.delete(f"/v1/api_keys/{revoked['id']}", headers=key).status_code == 200
    stranger = other_tenant.create_account()
    one = jsontext.dumps([metered(account_id)])
    return {
        "unknown key": (bearer(f"mbk_{uuid.uuid4().hex}_{'s' * 40}"), one),
        "malformed key": (bearer("not-a-key"), one),
        "revoked key": (bearer(revoked["key"]), one),
        "key without usage:write": (bearer(reader), one),
        "not JSON": (key, b"[{"),
        "not a list": (key, b"{}"),
        "empty list": (key, b"[]"),
        "duplicate JSON keys": (key, b'[{"id": "a", "id": "b"}]'),
        "NaN quantity": (
            key,
            b'[{"id": "a", "account_id": "%s", "type": "credit", "quantity": NaN}]' % account_id.encode(),
        ),
        "10,001 events": (key, jsontext.dumps([metered(account_id, f"e{index}") for index in range(10_001)])),
        "unknown product": (key, jsontext.dumps([metered(account_id, product_id="NOPE")])),
        "another organization's account": (key, jsontext.dumps([metered(stranger["id"])])),
        "too few credits": (
            key,
            jsontext.dumps([{"id": "c", "account_id": account_id, "type": "credit", "quantity": 11}]),
        ),
        "a sibling's events with an account key": (
            bearer(account["api_key"]),
            jsontext.dumps([metered(tenant.create_account()["id"])]),
        ),
    }


def test_every_refusal_is_the_routes_own_and_stores_nothing(
    client, route_only, database, tenant, account, other_tenant
):
    before = stored(database)
    for name, (headers, body) in refusals(client, tenant, account, other_tenant).items():
        headers = {**headers, "Content-Type": "application/json"}
        answer = client.post("/v1/events", content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (name, answer.text)
        assert without_error_id(answer) == without_error_id(
            route_only.post("/v1/events", content=body, headers=headers)
        ), name
    assert stored(database) == before


def test_a_conflict_is_the_routes_own_and_changes_nothing(client, route_only, database, tenant, account):
    assert client.post("/v1/events", json=[metered(account["id"])], headers=tenant.headers).status_code == 200
    before = stored(database)
    changed = [metered(account["id"], quantity=3)]
    answer = client.post("/v1/events", json=changed, headers=tenant.headers)
    assert answer.status_code == 409
    assert without_error_id(answer) == without_error_id(
        route_only.post("/v1/events", json=changed, headers=tenant.headers)
    )
    assert stored(database) == before


def test_accepted_events_are_answered_like_the_route_and_stored_once(client, database, tenant, account):
    batch = [metered(account["id"], "a"), {"id": "b", "account_id": account["id"], "type": "credit", "quantity": 4}]
    first = client.post("/v1/events", json=batch, headers={**tenant.headers, "X-Request-Id": "fast-1"})
    assert first.status_code == 200
    assert first.json() == {"accepted": 2, "duplicates": 0}
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-request-id"] == "fast-1"
    again = client.post("/v1/events", json=[*batch, batch[0]], headers=tenant.headers)
    assert again.json() == {"accepted": 0, "duplicates": 3}
    assert stored(database)[0] == 2
    balance = client.get(f"/v1/accounts/{account['id']}/credits", headers=tenant.headers).json()["balance"]
    assert balance == 10 - 4


def test_an_account_key_writes_its_own_account(client, database, tenant, account):
    answer = client.post("/v1/events", json=[metered(account["id"], "own")], headers=bearer(account["api_key"]))
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    assert stored(database)[0] == 1
