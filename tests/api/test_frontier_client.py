"""The published REST client of Frontier (``@raystack/frontier/api-client``, npm 0.72.0) against meterbook, unchanged.

The client runs in Node (``tests/clients/frontier_rest.ts``) against a real uvicorn serving the test's app, for
every billing method meterbook serves at each of its REST bindings: creating usage, the balance, the transactions
(the billing account's and the organization's), both entitlement checks, the debited total and the revert (the
admin binding and the other), and their refusals. What the client resolves with, or the response it throws, is
checked as a user sees it, and the stored state is re-read through the native API. Every test runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_frontier import INITIAL_CREDITS, frontier_revert_id, grant, native_balance
from tests.clients.node import run_client
from tests.conftest import Tenant
from tests.live import serving

# gRPC status codes, as Frontier's gateway writes them in `code`
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, UNAUTHENTICATED = 3, 5, 6, 16


@pytest.fixture
def base_url(client: TestClient) -> Iterator[str]:
    with serving(client.app, "uvicorn-frontier-rest") as url:
        yield url


@pytest.fixture
def account(tenant: Tenant) -> dict[str, Any]:
    """The organization's first (so its default billing) account, with INITIAL_CREDITS credits."""
    created = tenant.create_account(name="Billing")
    grant(tenant, created["id"], INITIAL_CREDITS)
    return created


@pytest.fixture
def seats(client: TestClient, tenant: Tenant, account: dict[str, Any]) -> str:
    response = client.put("/v1/features/seats", json={"description": "Seats", "limit": 1}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return "seats"


def call(method: str, *args: Any, key: str | None = None) -> dict[str, Any]:
    """One call of the client: its method, its arguments, and the key (sent as the client sends any header)."""
    return {"method": method, "args": list(args), **({"authorization": f"Bearer {key}"} if key else {})}


def rest(base_url: str, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = run_client("frontier_rest.ts", baseUrl=base_url, calls=list(calls))["results"]
    return results


def ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    assert result["ok"]["status"] == 200, result
    return result["ok"]["data"]


def refused(result: dict[str, Any], status: int, code: int, *mentions: str) -> str:
    """What the client threw: the response's status and Frontier's error body, exactly."""
    assert "error" in result, result
    assert result["error"]["status"] == status, result
    body = result["error"]["body"]
    assert set(body) == {"code", "message", "details"}, body
    assert (body["code"], body["details"]) == (code, [])
    for text in mentions:
        assert text in body["message"], body
    message: str = body["message"]
    return message


def new_usage(amount: str = "10", **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "amount": amount, **extra}


class TestUsageBalanceAndTransactions:
    def test_the_whole_flow_through_the_client(self, base_url, tenant, account):
        org, billing, key = tenant.id, account["id"], tenant.key
        first = new_usage("10", source="API", description="report", user_id="u-1", metadata={"job": "j-1"})
        second = new_usage("5")
        results = rest(
            base_url,
            call(
                "frontierServiceCreateBillingUsage2", {"org_id": org, "billing_id": billing, "usages": [first]}, key=key
            ),
            call("frontierServiceCreateBillingUsage", org, billing, {"usages": [second]}, key=key),
            call("frontierServiceCreateBillingUsage2", {"org_id": org, "usages": []}, key=key),
            call("frontierServiceGetBillingBalance", org, billing, key=key),
            call("frontierServiceListBillingTransactions", org, billing, {"expand": ["user", "customer"]}, key=key),
            call("frontierServiceListBillingTransactions2", org, {"billing_id": billing}, key=key),
            call("frontierServiceListBillingTransactions2", org, {}, key=key),
            call("frontierServiceTotalDebitedTransactions", org, billing, key=key),
        )
        assert [ok(result) for result in results[:3]] == [{}, {}, {}]
        balance = ok(results[3])["balance"]
        assert (balance["amount"], balance["currency"]) == (str(INITIAL_CREDITS - 15), "VC")
        listed = ok(results[4])["transactions"]
        assert [(t["id"], t["type"], t["amount"]) for t in listed[:2]] == [
            (second["id"], "debit", "5"),
            (first["id"], "debit", "10"),
        ]
        report = listed[1]
        assert (report["source"], report["description"], report["metadata"]) == ("api", "report", {"job": "j-1"})
        assert report["user"] == {"id": "u-1"}
        assert (report["customer"]["id"], report["customer"]["org_id"]) == (billing, org)
        plain = [{**t, "user": None, "customer": None} for t in listed]
        assert ok(results[5])["transactions"] == plain  # the organization's binding, the account named
        assert ok(results[6])["transactions"] == plain  # ... and inferred: the default billing account
        assert ok(results[7]) == {"debited": {"amount": "15", "currency": "VC"}}
        assert native_balance(tenant, billing) == INITIAL_CREDITS - 15

    def test_time_ranges_through_the_client(self, base_url, tenant, account):
        org, billing, key = tenant.id, account["id"], tenant.key
        (first,) = rest(base_url, call("frontierServiceListBillingTransactions", org, billing, {}, key=key))
        (granted,) = ok(first)["transactions"]
        granted_at = granted["created_at"]
        results = rest(
            base_url,
            call("frontierServiceListBillingTransactions", org, billing, {"end_range": granted_at}, key=key),
            call("frontierServiceListBillingTransactions", org, billing, {"since": granted_at}, key=key),
            call("frontierServiceListBillingTransactions2", org, {"start_range": "2999-01-01T00:00:00Z"}, key=key),
        )
        assert [len(ok(result)["transactions"]) for result in results] == [1, 1, 0]  # end_range is inclusive

    def test_refusals_through_the_client(self, base_url, tenant, other_tenant, account):
        org, billing, key = tenant.id, account["id"], tenant.key
        reused = new_usage("1")
        assert (
            ok(
                rest(base_url, call("frontierServiceCreateBillingUsage", org, billing, {"usages": [reused]}, key=key))[
                    0
                ]
            )
            == {}
        )
        results = rest(
            base_url,
            call("frontierServiceCreateBillingUsage", org, billing, {"usages": [new_usage("1000")]}, key=key),
            call("frontierServiceCreateBillingUsage", org, billing, {"usages": [{**reused, "amount": "2"}]}, key=key),
            call(
                "frontierServiceCreateBillingUsage", org, billing, {"usages": [{"id": "u-1", "amount": "1"}]}, key=key
            ),
            call("frontierServiceCreateBillingUsage", org, billing, {"usages": [new_usage()]}),
            call("frontierServiceCreateBillingUsage", org, billing, {"usages": [new_usage()]}, key=other_tenant.key),
            call("frontierServiceGetBillingBalance", org, str(uuid.uuid4()), key=key),
            call("frontierServiceListBillingTransactions", org, billing, {"end_range": "soon"}, key=key),
            call("frontierServiceListBillingTransactions2", org, {}, key=other_tenant.key),
            call("frontierServiceTotalDebitedTransactions", org, billing, key=other_tenant.key),
        )
        refused(results[0], 400, INVALID_ARGUMENT, "insufficient credits")
        refused(results[1], 409, ALREADY_EXISTS, reused["id"])
        refused(results[2], 400, INVALID_ARGUMENT, "usages[0].id")
        refused(results[3], 401, UNAUTHENTICATED)
        assert refused(results[4], 404, NOT_FOUND) == "organization not found"
        refused(results[5], 404, NOT_FOUND, "billing account not found")
        refused(results[6], 400, INVALID_ARGUMENT, "end_range")
        assert refused(results[7], 404, NOT_FOUND) == "organization not found"
        assert refused(results[8], 404, NOT_FOUND) == "organization not found"
        assert native_balance(tenant, billing) == INITIAL_CREDITS - 1


class TestChecks:
    def test_feature_entitlement_at_both_bindings_and_the_credit_check(self, base_url, tenant, account, seats):
        org, billing, key = tenant.id, account["id"], tenant.key

        def checks() -> list[bool]:
            results = rest(
                base_url,
                call("frontierServiceCheckFeatureEntitlement", org, billing, {"feature": "seats"}, key=key),
                call("frontierServiceCheckFeatureEntitlement2", {"org_id": org, "feature": "seats"}, key=key),
                call("frontierServiceCheckFeatureEntitlement2", {"org_id": org, "feature": "storage"}, key=key),
            )
            return [ok(result)["status"] for result in results]

        assert checks() == [True, True, False]
        usage = new_usage("1", type="feature", source="seats")
        assert (
            ok(rest(base_url, call("frontierServiceCreateBillingUsage", org, billing, {"usages": [usage]}, key=key))[0])
            == {}
        )
        assert checks() == [False, False, False]
        results = rest(
            base_url,
            call("frontierServiceCheckCreditEntitlement", {"org_id": org, "amount": str(INITIAL_CREDITS)}, key=key),
            call("frontierServiceCheckCreditEntitlement", {"org_id": org, "amount": str(INITIAL_CREDITS + 1)}, key=key),
        )
        assert [ok(result) for result in results] == [{"status": True}, {"status": False}]

    def test_check_refusals(self, base_url, tenant, other_tenant, account, seats):
        org, billing, key = tenant.id, account["id"], tenant.key
        results = rest(
            base_url,
            call("frontierServiceCheckFeatureEntitlement", org, billing, {}, key=key),
            call("frontierServiceCheckFeatureEntitlement", org, "not-a-uuid", {"feature": "seats"}, key=key),
            call("frontierServiceCheckFeatureEntitlement2", {"org_id": org, "feature": "seats"}, key=other_tenant.key),
            call("frontierServiceCheckFeatureEntitlement2", {"org_id": org, "feature": "seats"}),
        )
        refused(results[0], 400, INVALID_ARGUMENT, "feature")
        refused(results[1], 400, INVALID_ARGUMENT, "billing_id")
        assert refused(results[2], 404, NOT_FOUND) == "organization not found"
        refused(results[3], 401, UNAUTHENTICATED)


class TestReverts:
    def test_reverts_at_both_bindings(self, base_url, tenant, account):
        org, billing, key = tenant.id, account["id"], tenant.key
        spent = new_usage("40", source="api", description="run")
        results = rest(
            base_url,
            call("frontierServiceCreateBillingUsage", org, billing, {"usages": [spent]}, key=key),
            call("adminServiceRevertBillingUsage", org, billing, spent["id"], {"amount": "15"}, key=key),
            call("adminServiceRevertBillingUsage2", {"org_id": org, "usage_id": spent["id"], "amount": "5"}, key=key),
            call("adminServiceRevertBillingUsage2", {"org_id": org, "usage_id": spent["id"], "amount": "0"}, key=key),
            call("frontierServiceListBillingTransactions", org, billing, {}, key=key),
            call("frontierServiceTotalDebitedTransactions", org, billing, key=key),
        )
        assert [ok(result) for result in results[:4]] == [{}, {}, {}, {}]
        listed = ok(results[4])["transactions"]
        assert [(t["id"], t["amount"], t["source"], t["description"]) for t in listed[:3]] == [
            (frontier_revert_id(spent["id"], n, billing), amount, "system.revert.api", "Revert: run")
            for n, amount in ((2, "0"), (1, "5"), (0, "15"))
        ]
        assert all(t["metadata"] == {"revert_request_using": spent["id"]} for t in listed[:3])
        assert ok(results[5])["debited"]["amount"] == "20"
        assert native_balance(tenant, billing) == INITIAL_CREDITS - 20

    def test_revert_refusals(self, base_url, tenant, other_tenant, account):
        org, billing, key = tenant.id, account["id"], tenant.key
        spent = new_usage("10")
        assert (
            ok(rest(base_url, call("frontierServiceCreateBillingUsage", org, billing, {"usages": [spent]}, key=key))[0])
            == {}
        )
        assert (
            ok(
                rest(
                    base_url,
                    call("adminServiceRevertBillingUsage", org, billing, spent["id"], {"amount": "1"}, key=key),
                )[0]
            )
            == {}
        )
        revert_id = frontier_revert_id(spent["id"], 0, billing)
        unknown = str(uuid.uuid4())
        results = rest(
            base_url,
            call("adminServiceRevertBillingUsage2", {"org_id": org, "usage_id": unknown, "amount": "1"}, key=key),
            call("adminServiceRevertBillingUsage", org, billing, spent["id"], {"amount": "10"}, key=key),
            call("adminServiceRevertBillingUsage", org, billing, revert_id, {"amount": "1"}, key=key),
            call("adminServiceRevertBillingUsage", org, billing, "not-a-uuid", {"amount": "1"}, key=key),
            call("adminServiceRevertBillingUsage", org, billing, spent["id"], {"amount": "1"}, key=other_tenant.key),
            call("adminServiceRevertBillingUsage2", {"org_id": org, "usage_id": spent["id"], "amount": "-1"}, key=key),
            call("adminServiceRevertBillingUsage", org, billing, spent["id"], {"amount": "1"}, key=account["api_key"]),
        )
        refused(results[0], 400, INVALID_ARGUMENT, unknown)  # Frontier's answer to a usage it cannot find
        refused(results[1], 400, INVALID_ARGUMENT, "10")
        refused(results[2], 409, ALREADY_EXISTS, "revert")
        refused(results[3], 400, INVALID_ARGUMENT, "usage_id")
        assert refused(results[4], 404, NOT_FOUND) == "organization not found"
        refused(results[5], 400, INVALID_ARGUMENT, "amount")
        refused(results[6], 403, 7)  # a customer's key may not revert: an operator's action
        assert native_balance(tenant, billing) == INITIAL_CREDITS - 9
