"""``POST /v1/events`` answers the same whether the fast path (``api/fast_events.py``, SQLite) takes it or not,
and a request without a usable key is refused before its body is read, on either database.

Every request here looks plain to the fast path (a bearer key and a JSON body), so on SQLite it is
taken there first, and whatever it refuses is answered by the route. Each refusal is sent to the
application as built and to the same application without ``FastEvents``, over the same database:
status and body must be the same (but for each error's own random id), and nothing may be stored.
On PostgreSQL ``FastEvents`` only checks the key first; the route does the rest.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from starlette.types import Message, Receive, Scope, Send

from meterbook.api.fast_events import FastEvents
from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db.tables import api_keys, credit_transactions, usage_events
from meterbook.kit import jsontext
from tests.conftest import Tenant, bearer
from tests.test_metrics import Scrape


def without_fast_events(app: FastAPI) -> FastAPI:
    app.user_middleware = [middleware for middleware in app.user_middleware if middleware.cls is not FastEvents]
    return app


@pytest.fixture
def route_only(settings, database) -> Iterator[TestClient]:
    with TestClient(without_fast_events(create_app(settings, database))) as test_client:
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


# --- the key before the body -------------------------------------------------------------------------


class BodyReads:
    """The application as the server runs it, counting the messages it asks the server for (its body)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.asked = 0
        self.bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted() -> Message:
            message = await receive()
            self.asked += 1
            self.bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@pytest.fixture
def large_settings(database_url: str) -> Settings:
    """The default body limit (10 MiB), so that a 10,000-event body is not refused for its size."""
    return Settings(database_url=database_url, migrate_on_start=False)


@pytest.fixture
def watched(large_settings, database) -> Iterator[tuple[TestClient, BodyReads]]:
    reads = BodyReads(create_app(large_settings, database))
    with TestClient(reads) as test_client:
        yield test_client, reads


@pytest.fixture
def large_route_only(large_settings, database) -> Iterator[TestClient]:
    """The route alone: what every refusal was before the key came first."""
    with TestClient(without_fast_events(create_app(large_settings, database))) as test_client:
        yield test_client


def large_body(account_id: str) -> bytes:
    return jsontext.dumps([metered(account_id, f"big-{index}") for index in range(10_000)])


def expired_key(client: TestClient, tenant: Tenant, database) -> str:
    created = tenant.create_key(expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    with database.write() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == uuid.UUID(created["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    return str(created["key"])


def revoked_key(client: TestClient, tenant: Tenant, database) -> str:
    created = tenant.create_key()
    assert client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers).status_code == 200
    return str(created["key"])


def archived_account_key(client: TestClient, tenant: Tenant) -> str:
    account = tenant.create_account()
    assert client.delete(f"/v1/accounts/{account['id']}", headers=tenant.headers).status_code == 202
    return str(account["api_key"])


#: name -> (the Authorization header, made from the tenant; the status and Faraday code the route gives it).
BAD_CREDENTIALS: dict[str, tuple[Callable[..., str | None], int, str]] = {
    "missing": (lambda client, tenant, database, platform: None, 401, "MISSING_API_KEY"),
    "blank": (lambda client, tenant, database, platform: "  ", 401, "MISSING_API_KEY"),
    "not Bearer": (
        lambda client, tenant, database, platform: "Basic " + base64.b64encode(b"id:secret").decode(),
        401,
        "INVALID_AUTHORIZATION",
    ),
    "malformed": (lambda client, tenant, database, platform: "Bearer not-a-key", 401, "MALFORMED_API_KEY"),
    "unknown": (
        lambda client, tenant, database, platform: f"Bearer mbk_{uuid.uuid4().hex}_{'5' * 48}",
        401,
        "INVALID_AUTHORIZATION",
    ),
    "wrong secret": (
        lambda client, tenant, database, platform: f"Bearer {tenant.key.rsplit('_', 1)[0]}_{'5' * 48}",
        401,
        "INVALID_AUTHORIZATION",
    ),
    "revoked": (
        lambda client, tenant, database, platform: f"Bearer {revoked_key(client, tenant, database)}",
        401,
        "INVALID_AUTHORIZATION",
    ),
    "expired": (
        lambda client, tenant, database, platform: f"Bearer {expired_key(client, tenant, database)}",
        401,
        "EXPIRED_API_KEY",
    ),
    "without usage:write": (
        lambda client, tenant, database, platform: f"Bearer {tenant.create_key(scopes=['usage:read'])['key']}",
        403,
        "FORBIDDEN",
    ),
    "a platform key": (lambda client, tenant, database, platform: f"Bearer {platform}", 403, "FORBIDDEN"),
    "an archived account's key": (
        lambda client, tenant, database, platform: f"Bearer {archived_account_key(client, tenant)}",
        403,
        "FORBIDDEN",
    ),
}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("credential", list(BAD_CREDENTIALS))
def test_a_refused_key_is_answered_before_the_body_is_read(
    client, watched, large_route_only, database, tenant, account, platform_key, credential, chunked
):
    make, status, code = BAD_CREDENTIALS[credential]
    authorization = make(client, tenant, database, platform_key)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    body = large_body(account["id"])
    assert len(body) > 1_000_000
    before = stored(database)
    test_client, reads = watched

    def content() -> Any:
        return iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body

    answer = test_client.post("/v1/events", content=content(), headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert reads.asked == 0, "the body was read"
    # Word for word what the route answered before the key came first (it read the whole body then).
    assert without_error_id(answer) == without_error_id(
        large_route_only.post("/v1/events", content=content(), headers=headers)
    )
    assert stored(database) == before


def test_a_good_key_still_has_its_large_body_taken(watched, database, tenant, account):
    test_client, reads = watched
    body = large_body(account["id"])
    answer = test_client.post(
        "/v1/events", content=body, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 10_000, "duplicates": 0}
    assert reads.bytes == len(body)
    assert stored(database)[0] == 10_000


def test_a_key_revoked_after_use_has_its_body_read_at_most_once_more(client, watched, database, tenant, account):
    test_client, reads = watched
    created = tenant.create_key()
    headers = {**bearer(created["key"]), "Content-Type": "application/json"}
    first = test_client.post("/v1/events", content=jsontext.dumps([metered(account["id"], "before")]), headers=headers)
    assert first.json() == {"accepted": 1, "duplicates": 0}
    assert client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers).status_code == 200
    body = large_body(account["id"])
    for _ in range(2):  # the first may read the body (the key passed lately), and then the key is forgotten
        refused = test_client.post("/v1/events", content=body, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "INVALID_AUTHORIZATION"
    reads.asked = 0
    again = test_client.post("/v1/events", content=body, headers=headers)
    assert again.status_code == 401
    assert reads.asked == 0, "the body of a key known to be revoked was read"
    assert stored(database)[0] == 1


def test_a_refusal_is_counted_under_the_route(watched):
    test_client, _ = watched
    counted = Scrape(test_client)
    answer = test_client.post("/v1/events", content=b"[]", headers={"Content-Type": "application/json"})
    assert answer.status_code == 401
    assert counted.again().moved("meterbook_http_requests_total", method="POST", route="/v1/events", status="401") == 1
