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
from fastapi import FastAPI
from fastapi.testclient import TestClient

from meterbook.api import frontier_connect
from meterbook.api.errors import flattened_routes
from meterbook.kit import jsontext
from tests.api.test_frontier import basic, grant, native_balance, new_id
from tests.clients.node import run_client
from tests.conftest import Tenant, bearer
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


def test_refusals_reach_the_client_as_connect_codes_with_the_rest_routes_messages(
    client: TestClient, base_url: str, tenant: Tenant, other_tenant: Tenant, account: dict[str, Any]
) -> None:
    auth = f"Bearer {tenant.key}"
    client.put("/v1/features/seats", json={"description": "Seats", "limit": 1}, headers=tenant.headers)
    reader = f"Bearer {tenant.create_key(scopes=['billing:read'])['key']}"
    other_account = other_tenant.create_account(name="Theirs")
    used = usage(5)
    where = {"orgId": tenant.id, "billingId": account["id"]}
    results = connect(
        base_url,
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [used]}, auth),
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [{**used, "amount": "6"}]}, auth),
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [{"id": "not-a-uuid", "amount": "1"}]}, auth),
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [usage(1000)]}, auth),
        call(
            "FrontierService",
            "CreateBillingUsage",
            {**where, "usages": [usage(2, type="feature", source="seats")]},
            auth,
        ),
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [usage(1)]}, None),
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [usage(1)]}, "Bearer nonsense"),
        call("FrontierService", "CreateBillingUsage", {**where, "usages": [usage(1)]}, reader),
        call(
            "AdminService",
            "RevertBillingUsage",
            {**where, "usageId": used["id"], "amount": "1"},
            f"Bearer {account['api_key']}",
        ),
        call("FrontierService", "GetBillingBalance", {"orgId": tenant.id, "id": new_id()}, auth),
        # Another organization's key, on this organization's account and on its own organization.
        call(
            "FrontierService",
            "GetBillingBalance",
            {"orgId": tenant.id, "id": account["id"]},
            f"Bearer {other_tenant.key}",
        ),
        call(
            "FrontierService",
            "ListBillingTransactions",
            {"orgId": other_tenant.id, "billingId": account["id"]},
            f"Bearer {other_tenant.key}",
        ),
        # And this key on the other organization's account.
        call("FrontierService", "GetBillingBalance", {"orgId": other_tenant.id, "id": other_account["id"]}, auth),
        # A method @raystack/proton declares and meterbook does not serve.
        call("FrontierService", "ListUsers", {}, auth),
    )
    assert ok(results[0]) == {}
    error(results[1], "already_exists")
    message = error(results[2], "invalid_argument", "usages[0].id")
    error(results[3], "invalid_argument", "insufficient credits")
    error(results[4], "failed_precondition", "seats")
    error(results[5], "unauthenticated")
    error(results[6], "unauthenticated")
    error(results[7], "permission_denied", "usage:write")
    error(results[8], "permission_denied")
    error(results[9], "not_found", "billing account")
    error(results[10], "not_found")
    error(results[11], "not_found")
    error(results[12], "not_found")
    error(results[13], "unimplemented")
    assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 5
    # The message is the REST route's own.
    rest = client.post(
        "/v1beta1/organizations/billing/usages",
        json={"org_id": tenant.id, "billing_id": account["id"], "usages": [{"id": "not-a-uuid", "amount": 1}]},
        headers=tenant.headers,
    )
    assert rest.json()["message"] == message


def _proton_fields(described: Any) -> Any:
    """What proton declares of a message, in the terms of meterbook's schema."""
    if isinstance(described, str):  # a well-known type, by name
        return described
    scalars = {9: "string", 3: "int64", 8: "bool"}
    fields = []
    for item in described["fields"]:
        if item["message"] is None:
            kind: Any = scalars[item["scalar"]]
        elif item["message"] == "google.protobuf.Timestamp":
            kind = "timestamp"
        elif item["message"] == "google.protobuf.Struct":
            kind = "struct"
        else:
            kind = _proton_fields(item["message"])
        fields.append((item["name"], item["jsonName"], item["repeated"], kind))
    return (described["name"], fields)


def _meterbook_fields(message: frontier_connect.ProtoMessage) -> Any:
    fields = []
    for item in message.fields:
        kind: Any = item.kind
        if item.message is not None:
            kind = _meterbook_fields(item.message)
        fields.append((item.name, item.json_name, item.repeated, kind))
    return (message.name, fields)


def test_each_method_is_where_proton_declares_it_with_its_messages_and_bindings() -> None:
    """meterbook's view of each method is ``@raystack/proton``'s: service, fields, JSON names, REST bindings."""
    names = [method.name for method in frontier_connect.METHODS]
    described = run_client("frontier_connect.ts", baseUrl="http://127.0.0.1:9", describe=names)["descriptors"]
    for method, found in zip(frontier_connect.METHODS, described, strict=True):
        assert found is not None, method.name
        assert found["typeName"] == f"raystack.frontier.v1beta1.{method.service}"
        assert found["kind"] == "unary"
        # Not marked free of side effects (IDEMPOTENCY_UNKNOWN): Connect's GET does not apply.
        assert found["idempotency"] == 0
        assert _proton_fields(found["input"]) == _meterbook_fields(method.input)
        assert _proton_fields(found["output"]) == _meterbook_fields(method.output)
        rules = [found["http"], *found["http"].get("additionalBindings", [])]
        bindings = [
            frontier_connect.Binding("GET" if verb == "get" else "POST", rule[verb], body=rule.get("body") == "*")
            for rule in rules
            for verb in ("get", "post")
            if verb in rule
        ]
        assert tuple(bindings) == method.bindings


# --- the wire, with plain HTTP -----------------------------------------------------------------------


def assert_connect_error(response: Any, status: int, code: str, *mentions: str) -> str:
    """Connect's error JSON, exactly, with the status Connect gives the code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code, body
    message: str = body["message"]
    assert message.strip()
    for text in mentions:
        assert text in message, body
    return message


def test_an_answer_is_proto_json(client: TestClient, tenant: Tenant) -> None:
    """lowerCamelCase names, int64 as strings, and a field at its default left out, as protobuf-es writes it."""
    empty = tenant.create_account(name="Never moved")
    response = client.post(
        f"{FRONTIER}/GetBillingBalance", json={"orgId": tenant.id, "id": empty["id"]}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"balance": {"currency": "VC"}}  # amount 0 and no updated_at: left out
    grant(tenant, empty["id"], 9_007_199_254_740_993)  # beyond a double's exact integers
    listed = client.post(
        f"{FRONTIER}/ListBillingTransactions",
        json={"orgId": tenant.id, "billingId": empty["id"]},
        headers=tenant.headers,
    )
    (credit,) = listed.json()["transactions"]
    assert credit["amount"] == "9007199254740993"
    assert set(credit) == {"id", "customerId", "source", "amount", "type", "metadata", "createdAt", "updatedAt"}
    assert credit["metadata"] == {}  # a Struct that is there is written, even empty


def test_either_spelling_nulls_and_unknown_fields(client: TestClient, tenant: Tenant, account: dict[str, Any]) -> None:
    snake = {
        "org_id": tenant.id,
        "billing_id": account["id"],
        "usages": [{"id": new_id(), "amount": 3, "user_id": "u1"}],
    }
    assert client.post(f"{FRONTIER}/CreateBillingUsage", json=snake, headers=tenant.headers).json() == {}
    camel = {"orgId": tenant.id, "billingId": account["id"], "projectId": None, "future": 1}
    camel["usages"] = [
        {"id": new_id(), "amount": "4", "userId": "u2", "createdAt": "2024-01-01T00:00:00Z", "newField": {}}
    ]
    assert client.post(f"{FRONTIER}/CreateBillingUsage", json=camel, headers=tenant.headers).json() == {}
    assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 7
    listed = client.post(
        f"{FRONTIER}/ListBillingTransactions",
        json={"org_id": tenant.id, "billingId": account["id"]},
        headers=tenant.headers,
    )
    assert [item.get("userId") for item in listed.json()["transactions"][:2]] == ["u2", "u1"]
    both = {"orgId": tenant.id, "org_id": tenant.id, "id": account["id"]}
    response = client.post(f"{FRONTIER}/GetBillingBalance", json=both, headers=tenant.headers)
    assert_connect_error(response, 400, "invalid_argument", "org_id", "twice")


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no key", 401, "unauthenticated"),
        ("malformed id", 400, "invalid_argument"),
        ("missing scope", 403, "permission_denied"),
        ("unknown account", 404, "not_found"),
        ("reused id", 409, "already_exists"),
        ("feature limit", 400, "failed_precondition"),
    ],
)
def test_each_refusal_has_connects_code_and_status(
    client: TestClient, tenant: Tenant, account: dict[str, Any], case: str, status: int, code: str
) -> None:
    client.put("/v1/features/seats", json={"description": "Seats", "limit": 1}, headers=tenant.headers)
    headers = tenant.headers
    body: dict[str, Any] = {"orgId": tenant.id, "billingId": account["id"], "usages": [usage(1)]}
    if case == "no key":
        headers = {}
    elif case == "malformed id":
        body["usages"] = [{"id": "x", "amount": "1"}]
    elif case == "missing scope":
        headers = bearer(tenant.create_key(scopes=["billing:read"])["key"])
    elif case == "unknown account":
        body["billingId"] = new_id()
    elif case == "reused id":
        assert client.post(f"{FRONTIER}/CreateBillingUsage", json=body, headers=headers).status_code == 200
        body["usages"] = [{**body["usages"][0], "amount": "2"}]
    elif case == "feature limit":
        body["usages"] = [usage(2, type="feature", source="seats")]
    response = client.post(f"{FRONTIER}/CreateBillingUsage", json=body, headers=headers)
    assert_connect_error(response, status, code)


def test_the_http_side_of_the_protocol(client: TestClient, tenant: Tenant, account: dict[str, Any]) -> None:
    path = f"{FRONTIER}/GetBillingBalance"
    body = jsontext_body({"orgId": tenant.id, "id": account["id"]})
    json_type = {"Content-Type": "application/json"}
    sent = {**tenant.headers, **json_type, "Connect-Protocol-Version": "1"}
    assert client.post(path, content=body, headers=sent).status_code == 200
    charset = {**tenant.headers, "Content-Type": "application/json; charset=utf-8"}
    assert client.post(path, content=body, headers=charset).status_code == 200  # and no version header: accepted
    for media_type in ("application/proto", "text/plain", "application/connect+json"):
        response = client.post(path, content=body, headers={**tenant.headers, "Content-Type": media_type})
        assert_connect_error(response, 415, "invalid_argument", "application/json")
        assert response.headers["accept-post"] == "application/json"
    response = client.post(path, content=body, headers={**sent, "Connect-Protocol-Version": "2"})
    assert_connect_error(response, 400, "invalid_argument", "Connect-Protocol-Version")
    response = client.post(path, content=body, headers={**sent, "Content-Encoding": "gzip"})
    assert_connect_error(response, 501, "unimplemented", "gzip")
    response = client.get(path, headers=tenant.headers)
    assert_connect_error(response, 405, "unimplemented")
    assert response.headers["allow"] == "POST"
    for bad in (b"", b"{", b"[]", b"null", b'{"orgId": 1, "orgId": 2}'):
        assert_connect_error(client.post(path, content=bad, headers=sent), 400, "invalid_argument")
    assert_connect_error(client.post(path, content=b'{"orgId": 5, "id": 6}', headers=sent), 400, "invalid_argument")
    too_big = b'{"orgId": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert_connect_error(client.post(path, content=too_big, headers=sent), 429, "resource_exhausted")


def test_a_method_meterbook_does_not_serve_is_connects_routing_miss(client: TestClient, tenant: Tenant) -> None:
    """As a Connect server answers a procedure it does not route: 404, which clients read as unimplemented."""
    for path in (f"{FRONTIER}/ListUsers", f"{ADMIN}/ListAllUsers", "/raystack.frontier.v1beta1.NoService/Nothing"):
        assert_connect_error(client.post(path, json={}, headers=tenant.headers), 404, "unimplemented", path[1:])
        assert_connect_error(client.post(path, json={}), 404, "unimplemented")


def test_openapi_documents_each_method(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for method in frontier_connect.METHODS:
        if method.path not in paths:
            continue  # its REST route is not there yet
        operation = paths[method.path]["post"]
        assert operation["tags"] == ["frontier-connect"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == {item.json_name for item in method.input.fields}
        assert {"200", "400", "401", "403", "404", "415"} <= set(operation["responses"])
    assert f"{FRONTIER}/CreateBillingUsage" in paths
    assert not any("{service}" in path for path in paths)


def jsontext_body(value: Any) -> bytes:
    return jsontext.dumps(value)


def test_a_path_field_is_an_id_never_a_path(client: TestClient, tenant: Tenant, account: dict[str, Any]) -> None:
    """A field bound into the REST path cannot add a segment or name another route: it is refused as an id."""
    path = f"{FRONTIER}/GetBillingBalance"
    for org_id, billing_id in (
        (tenant.id, "a/b"),
        ("../..", account["id"]),
        (tenant.id, "x?y#z"),
        (f"{tenant.id}/billing/{account['id']}", account["id"]),
    ):
        response = client.post(path, json={"orgId": org_id, "id": billing_id}, headers=tenant.headers)
        assert_connect_error(response, 400, "invalid_argument", "expected a UUID")
    assert_connect_error(
        client.post(path, json={"id": account["id"]}, headers=tenant.headers),
        400,
        "invalid_argument",
        "org_id",
        "required",
    )


def test_times_travel_to_the_rest_query_as_proto_json_writes_them(
    client: TestClient, tenant: Tenant, account: dict[str, Any]
) -> None:
    path = f"{FRONTIER}/ListBillingTransactions"
    where = {"orgId": tenant.id, "billingId": account["id"]}
    everything = client.post(path, json=where, headers=tenant.headers).json()["transactions"]
    assert len(everything) == 1
    # protobuf-es writes nanoseconds with 0, 3, 6 or 9 digits.
    for start in ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00.500Z", "2000-01-01T00:00:00.123456789Z"):
        response = client.post(path, json={**where, "startRange": start}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json()["transactions"] == everything
    response = client.post(path, json={**where, "startRange": "2999-01-01T00:00:00Z"}, headers=tenant.headers)
    assert response.json() == {}  # no transactions: the empty list is left out
    response = client.post(path, json={**where, "endRange": "yesterday"}, headers=tenant.headers)
    assert_connect_error(response, 400, "invalid_argument", "end_range")


def test_entitlements_debited_total_and_the_organizations_list_through_the_connect_client(
    client: TestClient, base_url: str, tenant: Tenant, account: dict[str, Any]
) -> None:
    auth = f"Bearer {tenant.key}"
    client.put("/v1/features/seats", json={"description": "Seats", "limit": 2}, headers=tenant.headers)
    where = {"orgId": tenant.id, "billingId": account["id"]}
    spent = usage(9, source="connect")
    results = connect(
        base_url,
        call(
            "FrontierService",
            "CreateBillingUsage",
            {**where, "usages": [spent, usage(1, type="feature", source="seats")]},
            auth,
        ),
        call("FrontierService", "CheckFeatureEntitlement", {**where, "feature": "seats"}, auth),
        # Without billing_id: the organization's default billing account, at the other binding.
        call("FrontierService", "CheckFeatureEntitlement", {"orgId": tenant.id, "feature": "seats"}, auth),
        call("FrontierService", "CheckFeatureEntitlement", {**where, "feature": "no-such-feature"}, auth),
        call(
            "FrontierService",
            "CreateBillingUsage",
            {**where, "usages": [usage(1, type="feature", source="seats")]},
            auth,
        ),
        call("FrontierService", "CheckFeatureEntitlement", {**where, "feature": "seats"}, auth),
        call("AdminService", "RevertBillingUsage", {**where, "usageId": spent["id"], "amount": "4"}, auth),
        # A revert of 0 (proto3 leaves the amount out) gives back nothing, as Frontier allows.
        call("AdminService", "RevertBillingUsage", {**where, "usageId": spent["id"]}, auth),
        call("FrontierService", "TotalDebitedTransactions", where, auth),
        call("FrontierService", "ListBillingTransactions", {"orgId": tenant.id, "expand": ["customer", "user"]}, auth),
        # No usages at all: Frontier answers {} and so does meterbook.
        call("FrontierService", "CreateBillingUsage", {**where, "usages": []}, auth),
        call(
            "FrontierService", "CheckFeatureEntitlement", {**where, "feature": "seats"}, f"Bearer {account['api_key']}"
        ),
        # CheckCreditEntitlement (POST /v1beta1/billing/check): the organization's default billing account.
        call("FrontierService", "CheckCreditEntitlement", {"orgId": tenant.id, "amount": "95"}, auth),
        call("FrontierService", "CheckCreditEntitlement", {"orgId": tenant.id, "amount": "96"}, auth),
        call("FrontierService", "CheckCreditEntitlement", {"orgId": tenant.id}, auth),
    )
    assert ok(results[0]) == {}
    assert ok(results[1]) == ok(results[2]) == {"status": True}
    assert ok(results[3]) == {}  # false: left out
    assert ok(results[4]) == {}
    assert ok(results[5]) == {}  # the limit is reached
    assert ok(results[6]) == ok(results[7]) == {}
    rest = client.get(
        f"/v1beta1/organizations/{tenant.id}/billing/{account['id']}/debited_transactions_total", headers=tenant.headers
    )
    assert rest.status_code == 200, rest.text
    assert ok(results[8]) == {"debited": {"amount": rest.json()["debited"]["amount"], "currency": "VC"}}
    assert ok(results[8])["debited"]["amount"] == "5"
    listed = ok(results[9])["transactions"]
    rest_list = client.get(
        f"/v1beta1/organizations/{tenant.id}/billing/transactions?expand=customer,user", headers=tenant.headers
    )
    assert listed == [
        frontier_connect.to_proto_json(frontier_connect.BILLING_TRANSACTION, item)
        for item in rest_list.json()["transactions"]
    ]
    assert {item["customer"]["id"] for item in listed} == {account["id"]}
    assert listed[0]["customer"]["orgId"] == tenant.id
    assert ok(results[10]) == {}
    assert ok(results[11]) == {}
    assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 5
    assert ok(results[12]) == {"status": True}
    assert ok(results[13]) == {}
    error(results[14], "invalid_argument", "amount")


def test_a_method_is_served_exactly_when_a_rest_binding_of_it_is() -> None:
    """The Connect routes follow the REST ones: no binding served, no method; the first served binding wins."""
    app = FastAPI()
    app.add_api_route("/v1beta1/organizations/{org_id}/billing/{id}/balance", lambda: None, methods=["GET"])
    app.add_api_route("/v1beta1/organizations/billing/usages/revert", lambda: None, methods=["POST"])
    frontier_connect.install(app)
    served = {getattr(route, "path", "") for route in flattened_routes(app.routes)} - {
        "/v1beta1/organizations/{org_id}/billing/{id}/balance"
    }
    assert served >= {
        f"{FRONTIER}/GetBillingBalance",
        f"{ADMIN}/RevertBillingUsage",
        "/raystack.frontier.v1beta1.{service}/{method}",
    }
    assert f"{FRONTIER}/CreateBillingUsage" not in served
    revert = next(method for method in frontier_connect.METHODS if method.name == "RevertBillingUsage")
    request = {"org_id": "o", "billing_id": "b", "usage_id": "u", "project_id": "", "amount": 0}
    # With both bindings served, the admin one takes the ids in its path; with only the other, all go in the body.
    call = frontier_connect.rest_call(request, revert.bindings)
    assert (call.method, call.path) == ("POST", "/v1beta1/admin/organizations/o/billing/b/usage/u/revert")
    assert jsontext.loads(call.body or b"") == {"project_id": "", "amount": 0}
    call = frontier_connect.rest_call(request, revert.bindings[1:])
    assert call.path == "/v1beta1/organizations/billing/usages/revert"
    assert jsontext.loads(call.body or b"") == request
