"""The Frontier dialect over ConnectRPC (CONTRACT §3.4, issue 17 item 3), through a real Connect client.

``tests/clients/frontier_connect.ts`` is a client as today's official Frontier SDKs make one:
``@connectrpc/connect``'s ``createClient`` over ``@connectrpc/connect-node``'s Connect transport (JSON codec,
HTTP/1.1) with ``@raystack/proton``'s service descriptors. It talks to a real uvicorn serving the test's app;
what it reads is compared with what the REST routes answer, and every failure with the ConnectError code it
raises. The wire itself (statuses, Content-Type, Connect's error JSON, either field spelling) is checked with
plain HTTP. Every test that touches the database runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbook.api import frontier_connect
from tests.api.test_frontier import basic, grant, native_balance, new_id
from tests.clients.node import run_client
from tests.conftest import Tenant
from tests.live import serving

FRONTIER = "/raystack.frontier.v1beta1.FrontierService"
ADMIN = "/raystack.frontier.v1beta1.AdminService"
INITIAL_CREDITS = 100
MAX_BODY_BYTES = 64 * 1024  # the test settings' limit (tests/conftest.py)


@pytest.fixture
def base_url(client: TestClient) -> Iterator[str]:
    with serving(client.app, "uvicorn-frontier-connect") as url:
        yield url


@pytest.fixture
def account(tenant: Tenant) -> dict[str, Any]:
    """The organization's first (so its default billing) account, with INITIAL_CREDITS credits."""
    created = tenant.create_account(name="Billing")
    grant(tenant, created["id"], INITIAL_CREDITS)
    return created


def call(service: str, method: str, request: dict[str, Any], authorization: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"service": service, "method": method, "request": request}
    if authorization is not None:
        found["authorization"] = authorization
    return found


def connect(base_url: str, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the calls, in order, with the Connect client; for each, ``{"ok": …}`` or ``{"error": {code, message}}``."""
    results: list[dict[str, Any]] = run_client("frontier_connect.ts", baseUrl=base_url, calls=list(calls))["results"]
    return results


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert "ok" in result, result
    found: dict[str, Any] = result["ok"]
    return found


def error(result: dict[str, Any], code: str, *mentions: str) -> str:
    assert "error" in result, result
    assert result["error"]["code"] == code, result
    message: str = result["error"]["message"]
    for text in mentions:
        assert text in message, result
    return message


def usage(amount: int | str = 10, **extra: Any) -> dict[str, Any]:
    """A usage in proto JSON (int64 as a string, lowerCamelCase names)."""
    return {"id": new_id(), "amount": str(amount), **extra}


# --- through the Connect client ----------------------------------------------------------------------


def test_every_method_answers_the_connect_client_as_the_rest_routes_do(
    client: TestClient, base_url: str, tenant: Tenant, account: dict[str, Any]
) -> None:
    auth = f"Bearer {tenant.key}"
    first = usage(7, source="Report-Export", description="PDF", metadata={"feature_x": 1})
    client.put("/v1/features/seats", json={"description": "Seats", "limit": 3}, headers=tenant.headers)
    feature_usage = usage(1, type="feature", metadata={"feature": "seats"})
    where = {"orgId": tenant.id, "billingId": account["id"]}
    results = connect(
        base_url,
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [first, feature_usage]}, auth),
        # The same usage again is acknowledged and debits nothing more.
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [first]}, auth),
        call("FrontierService", "GetBillingBalance", {"orgId": tenant.id, "id": account["id"]}, auth),
        call("FrontierService", "ListBillingTransactions", where, auth),
        call("AdminService", "RevertBillingUsage", {**where, "usageId": first["id"], "amount": "3"}, auth),
        call("FrontierService", "GetBillingBalance", {"orgId": tenant.id, "id": account["id"]}, auth),
        call("FrontierService", "ListBillingTransactions", where, auth),
        # HTTP Basic with the key's id and secret, as Frontier's service users send it.
        call(
            "FrontierService",
            "GetBillingBalance",
            {"orgId": tenant.id, "id": account["id"]},
            basic(tenant.key)["Authorization"],
        ),
    )
    assert ok(results[0]) == {}
    assert ok(results[1]) == {}
    assert ok(results[2])["balance"]["amount"] == str(INITIAL_CREDITS - 7)
    assert ok(results[4]) == {}
    assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 7 + 3

    rest_balance = client.get(
        f"/v1beta1/organizations/{tenant.id}/billing/{account['id']}/balance", headers=tenant.headers
    )
    balance = rest_balance.json()["balance"]
    assert (
        ok(results[5])
        == ok(results[7])
        == {"balance": {"amount": balance["amount"], "currency": "VC", "updatedAt": balance["updated_at"]}}
    )

    rest = client.get(
        f"/v1beta1/organizations/{tenant.id}/billing/{account['id']}/transactions", headers=tenant.headers
    )
    assert rest.status_code == 200, rest.text
    read = ok(results[6])["transactions"]
    assert [item["id"] for item in read] == [item["id"] for item in rest.json()["transactions"]]
    for item, expected in zip(read, rest.json()["transactions"], strict=True):
        assert item == frontier_connect.to_proto_json(frontier_connect.BILLING_TRANSACTION, expected)
        assert item["amount"] == expected["amount"]
        assert item["customerId"] == expected["customer_id"]
        assert item["createdAt"] == expected["created_at"]
    debit = next(item for item in read if item["type"] == "debit")
    assert (debit["amount"], debit["source"], debit["description"]) == ("7", "report-export", "PDF")
    assert debit["metadata"] == {"feature_x": 1}
    # The first list, before the revert, is the same list less the revert.
    assert [item["id"] for item in ok(results[3])["transactions"]] == [item["id"] for item in read[1:]]
