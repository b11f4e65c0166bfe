"""The Faraday dialect through Faraday's own published JavaScript client, ``@fdy/faraday-js`` 0.1.172, unchanged
(CONTRACT §3, §3.1; issue 17, items 5 to 7).

Every method of the client whose path meterbook serves is called against the test's app behind a real socket
(``tests/live.py``), through ``tests/clients/faraday.ts``: from ``dist/apis/AccountsApi.js`` createAccount,
getAccount, getAccounts, getCurrentAccount, updateAccount (which sends ``Content-Type:
application/json+merge-patch``) and deleteAccount; from ``BillingApi.js`` getAccountBilling and
getCurrentAccountBilling; from ``UsageApi.js`` getUsages. The client has no method for Faraday's usage
summaries (``/accounts/{id}/usage``, ``/accounts/current/usage(/all)``): they are tested over plain HTTP in
``test_account_usage.py``. Every other method of the client names a path meterbook does not serve (cohorts,
datasets, targets...): ``test_the_client_methods_meterbook_serves_are_all_tested`` checks that list against the
client and the route table.

What a user sees is checked: what each method returns, the status and Faraday error body
(``{"error", "id", "note", "validationErrors"?}``) of what it throws (this version of the client throws the
fetch ``Response`` itself), and the stored state afterwards, read over HTTP. Every test runs on SQLite and on
PostgreSQL (the ``client`` fixture).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbook.api.errors import flattened_routes
from tests.clients.node import HERE, run_client
from tests.conftest import Tenant, bearer
from tests.live import serving

CLIENT = HERE / "node_modules" / "@fdy" / "faraday-js" / "dist"
#: Every client method whose path meterbook serves, with that path (as the client writes it, after /v1).
SERVED = {
    "AccountsApi.createAccount": ("POST", "/accounts"),
    "AccountsApi.deleteAccount": ("DELETE", "/accounts/{account_id}"),
    "AccountsApi.getAccount": ("GET", "/accounts/{account_id}"),
    "AccountsApi.getAccounts": ("GET", "/accounts"),
    "AccountsApi.getCurrentAccount": ("GET", "/accounts/current"),
    "AccountsApi.updateAccount": ("PATCH", "/accounts/{account_id}"),
    "BillingApi.getAccountBilling": ("GET", "/accounts/{account_id}/billing"),
    "BillingApi.getCurrentAccountBilling": ("GET", "/accounts/current/billing"),
    "UsageApi.getUsages": ("GET", "/usages"),
}
ERROR_FIELDS = {"error", "id", "note", "validationErrors"}


@pytest.fixture
def base_path(client: TestClient) -> Iterator[str]:
    """The test's app served by uvicorn on a free port; the client's basePath (``…/v1``, like Faraday's)."""
    with serving(client.app, "uvicorn-faraday-js") as url:
        yield f"{url}/v1"


def call(api: str, method: str, *args: Any, key: str | None = None) -> dict[str, Any]:
    made: dict[str, Any] = {"api": api, "method": method, "args": list(args)}
    if key is not None:
        made["key"] = key
    return made


def run(base_path: str, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = run_client("faraday.ts", basePath=base_path, calls=list(calls))["results"]
    assert len(results) == len(calls)
    return results


def ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    return result["ok"]


def refused(result: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    """The client threw: the status and a Faraday error body with ``code``."""
    assert "error" in result, result
    error = result["error"]
    assert error["status"] == status, error
    body: dict[str, Any] = error["body"]
    assert set(body) <= ERROR_FIELDS, body
    assert {"error", "id", "note"} <= set(body), body
    assert body["error"] == code, body
    uuid.UUID(body["id"])
    assert isinstance(body["note"], str), body
    assert body["note"], body
    if code == "VALIDATION_FAILED":
        assert body["validationErrors"], body
        for item in body["validationErrors"]:
            assert set(item) == {"context", "message", "path", "suggestion"}, item
    else:
        assert "validationErrors" not in body, body
    return body


def stored(tenant: Tenant, account_id: str) -> dict[str, Any]:
    response = tenant.client.get(f"/v1/accounts/{account_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


# --- the methods, used as a customer and an operator would ----------------------------------------------


def test_the_account_methods_create_read_list_change_and_archive(base_path: str, tenant: Tenant) -> None:
    customer = tenant.create_account(name="Globex", currency="USD")
    created, *_ = run(base_path, call("AccountsApi", "createAccount", {"name": "Hooli"}, key=tenant.key))
    made = ok(created)
    assert made["name"] == "Hooli"
    assert made["resource_type"] == "accounts"
    assert made["status"] == "ready"
    assert made["api_key"].startswith("mbk_")
    assert "*" not in made["api_key"]
    hooli = made["id"]
    got, listed, changed, current, deleted = run(
        base_path,
        call("AccountsApi", "getAccount", hooli, key=tenant.key),
        call("AccountsApi", "getAccounts", key=tenant.key),
        call("AccountsApi", "updateAccount", hooli, {"name": "Hooli Corp"}, key=tenant.key),
        call("AccountsApi", "getCurrentAccount", key=customer["api_key"]),
        call("AccountsApi", "deleteAccount", hooli, key=tenant.key),
    )
    assert ok(got)["id"] == hooli
    assert ok(got)["name"] == "Hooli"
    assert "*" in ok(got)["api_key"]  # masked afterwards
    assert [item["id"] for item in ok(listed)] == [customer["id"], hooli]
    assert ok(changed)["name"] == "Hooli Corp"
    assert ok(current)["id"] == customer["id"]
    assert ok(current)["name"] == "Globex"
    assert ok(deleted) is None
    after = stored(tenant, hooli)
    assert after["name"] == "Hooli Corp"
    assert after["archived_at"] is not None


def test_an_account_key_changes_and_creates_within_its_own_account(base_path: str, tenant: Tenant) -> None:
    customer = tenant.create_account(name="Globex")
    changed, created = run(
        base_path,
        call("AccountsApi", "updateAccount", customer["id"], {"name": "Globex Corporation"}, key=customer["api_key"]),
        call("AccountsApi", "createAccount", {"name": "Globex EU"}, key=customer["api_key"]),
    )
    assert ok(changed)["name"] == "Globex Corporation"
    assert ok(created)["parent_account_id"] == customer["id"]  # an account key creates a subaccount of itself
    assert stored(tenant, customer["id"])["name"] == "Globex Corporation"


def test_the_billing_methods_show_invoices_payments_and_usages(base_path: str, tenant: Tenant) -> None:
    customer = tenant.create_account(name="Globex", currency="USD")
    client = tenant.client
    assert client.put("/v1/features/seats", json={"default_limit": 10}, headers=tenant.headers).status_code == 201
    event = {"id": "seat-1", "account_id": customer["id"], "type": "feature", "feature": "seats", "quantity": 3}
    assert client.post("/v1/events", json=[event], headers=tenant.headers).status_code == 200
    payment = {"id": "wire-1", "account_id": customer["id"], "amount": "120.50"}
    assert client.post("/v1/payments", json=payment, headers=tenant.headers).status_code == 201
    by_id, current = run(
        base_path,
        call("BillingApi", "getAccountBilling", customer["id"], key=tenant.key),
        call("BillingApi", "getCurrentAccountBilling", key=customer["api_key"]),
    )
    raw = client.get(f"/v1/accounts/{customer['id']}/billing", headers=tenant.headers).json()
    # The client reads `usages` with its AccountUsage model, which has no `name`.
    as_read = {**raw, "usages": [{k: v for k, v in item.items() if k != "name"} for item in raw["usages"]]}
    assert ok(by_id) == ok(current) == as_read
    assert raw["payments"] == [{"amount": 120.5, "date": raw["payments"][0]["date"]}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00\.000Z", raw["payments"][0]["date"])
    assert raw["usages"] == [{"name": "seats", "description": "", "limit": 10, "usage": 3}]


def test_get_usages_returns_the_features_of_the_keys_account(base_path: str, tenant: Tenant) -> None:
    customer = tenant.create_account(name="Globex")
    client = tenant.client
    assert client.put("/v1/features/seats", json={"default_limit": 10}, headers=tenant.headers).status_code == 201
    assert client.put("/v1/features/exports", json={}, headers=tenant.headers).status_code == 201
    event = {"id": "seat-1", "account_id": customer["id"], "type": "feature", "feature": "seats", "quantity": 4}
    assert client.post("/v1/events", json=[event], headers=tenant.headers).status_code == 200
    (usages,) = run(base_path, call("UsageApi", "getUsages", key=customer["api_key"]))
    # The client's AccountUsage has description, limit and usage (meterbook's `name` is not in its model).
    assert ok(usages) == [{"description": "", "usage": 0}, {"description": "", "limit": 10, "usage": 4}]


# --- what the client throws -------------------------------------------------------------------------------


def test_another_organizations_key_gets_not_found_and_changes_nothing(
    base_path: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    customer = tenant.create_account(name="Globex")
    other = other_tenant.key
    results = run(
        base_path,
        call("AccountsApi", "getAccount", customer["id"], key=other),
        call("AccountsApi", "updateAccount", customer["id"], {"name": "Taken"}, key=other),
        call("AccountsApi", "deleteAccount", customer["id"], key=other),
        call("BillingApi", "getAccountBilling", customer["id"], key=other),
        call("AccountsApi", "getAccounts", key=other),
    )
    for result in results[:4]:
        body = refused(result, 404, "NOT_FOUND")
        assert "Globex" not in str(body)
    assert ok(results[4]) == []
    after = stored(tenant, customer["id"])
    assert after["name"] == "Globex"
    assert after["archived_at"] is None


def test_an_organization_key_has_no_current_account(base_path: str, tenant: Tenant) -> None:
    tenant.create_account(name="Globex")
    account, billing = run(
        base_path,
        call("AccountsApi", "getCurrentAccount", key=tenant.key),
        call("BillingApi", "getCurrentAccountBilling", key=tenant.key),
    )
    refused(account, 404, "NOT_FOUND")
    refused(billing, 404, "NOT_FOUND")


def test_bad_input_is_a_validation_failure(base_path: str, tenant: Tenant) -> None:
    customer = tenant.create_account(name="Globex")
    results = run(
        base_path,
        call("AccountsApi", "getAccount", "not-a-uuid", key=tenant.key),
        call("BillingApi", "getAccountBilling", "not-a-uuid", key=tenant.key),
        call("AccountsApi", "updateAccount", customer["id"], {"name": ""}, key=tenant.key),
        call("AccountsApi", "createAccount", {"name": ""}, key=tenant.key),
        call("AccountsApi", "getAccount", str(uuid.uuid4()), key=tenant.key),
    )
    for result, path in zip(results, ["path.account_id", "path.account_id", "body.name", "body.name"], strict=False):
        body = refused(result, 400, "VALIDATION_FAILED")
        assert path in [item["path"] for item in body["validationErrors"]], body
    refused(results[4], 404, "NOT_FOUND")
    assert stored(tenant, customer["id"])["name"] == "Globex"
    listed = tenant.client.get("/v1/accounts", headers=tenant.headers).json()
    assert [item["id"] for item in listed] == [customer["id"]]


def test_keys_that_cannot_are_refused(base_path: str, tenant: Tenant) -> None:
    customer = tenant.create_account(name="Globex")
    reader = tenant.create_key(account_id=customer["id"], scopes=["accounts:read"])["key"]
    results = run(
        base_path,
        call("AccountsApi", "getCurrentAccount"),
        call("AccountsApi", "getCurrentAccount", key="not-a-key"),
        call("AccountsApi", "updateAccount", customer["id"], {"name": "Renamed"}, key=reader),
        call("BillingApi", "getCurrentAccountBilling", key=reader),
        call("UsageApi", "getUsages", key=reader),
        call("AccountsApi", "getCurrentAccount", key=reader),
    )
    refused(results[0], 401, "MISSING_API_KEY")
    refused(results[1], 401, "MALFORMED_API_KEY")
    for result in results[2:5]:
        refused(result, 403, "FORBIDDEN")
    assert ok(results[5])["id"] == customer["id"]
    assert stored(tenant, customer["id"])["name"] == "Globex"


# --- the list of methods tested ----------------------------------------------------------------------------

_METHOD = re.compile(r"    (\w+)Raw\((?:requestParameters)?\) \{.*?path: `([^`]*)`.*?method: '(\w+)'", re.S)


def client_methods() -> dict[str, tuple[str, str]]:
    """Every method of the client: ``Api.method`` -> (HTTP method, path), read from its ``dist/apis/*.js``."""
    found = {}
    for source in sorted((CLIENT / "apis").glob("*Api.js")):
        for name, path, method in _METHOD.findall(source.read_text()):
            found[f"{source.stem}.{name}"] = (method, path)
    return found


def test_the_client_methods_meterbook_serves_are_all_tested(client: TestClient) -> None:
    if not CLIENT.exists():
        pytest.skip("@fdy/faraday-js is not installed (run: npm ci --prefix tests/clients)")
    methods = client_methods()
    assert len(methods) > 80  # every API of the client was read
    served = {
        (method, route.path.removeprefix("/v1"))
        for route in flattened_routes(client.app.routes)
        if route.path.startswith("/v1/")
        for method in getattr(route, "methods", ())
    }
    assert {name: where for name, where in methods.items() if where in served} == SERVED
    tested = set(re.findall(r'call\("(\w+)", "(\w+)"', Path(__file__).read_text()))
    assert {f"{api}.{method}" for api, method in tested} == set(SERVED)


def test_the_merge_patch_type_the_client_sends_is_taken(client: TestClient, tenant: Tenant) -> None:
    """What updateAccount sends, as the client builds it (read from its source): the type meterbook accepts."""
    if not CLIENT.exists():
        pytest.skip("@fdy/faraday-js is not installed (run: npm ci --prefix tests/clients)")
    source = (CLIENT / "apis" / "AccountsApi.js").read_text()
    sent = re.search(r"updateAccountRaw.*?headerParameters\['Content-Type'\] = '([^']+)'", source, re.S)
    assert sent is not None
    assert sent.group(1) == "application/json+merge-patch"
    customer = tenant.create_account(name="Globex")
    response = client.patch(
        f"/v1/accounts/{customer['id']}",
        content=b'{"name": "Globex Corporation"}',
        headers={**bearer(tenant.key), "Content-Type": sent.group(1)},
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Globex Corporation"
