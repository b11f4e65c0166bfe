"""Faraday's ``GET /v1/accounts/{account_id}/billing`` (seed faraday-get-account-billing.txt, CONTRACT §3.1).

The view shows an account's open and paid invoices (never void ones), its payments, and every feature
with the account's limit and usage; dates are written the seed's way, ``2022-10-05T00:00:00.000Z``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Tenant, bearer
from tests.helpers import assert_error, assert_invalid

SEED_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T00:00:00\.000Z$")


def months_ago(count: int) -> str:
    """``YYYY-MM`` of the month ``count`` months before the current one (UTC)."""
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def in_month(month: str, day: int = 10) -> str:
    return f"{month}-{day:02d}T12:00:00Z"


def billing(client: Any, key: str, account_id: str) -> Any:
    return client.get(f"/v1/accounts/{account_id}/billing", headers=bearer(key))


def decimal_body(response: Any) -> Any:
    """The body with numbers read as exact decimals, to compare money without floats."""
    return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)


@pytest.fixture
def billed(client: Any, tenant: Tenant) -> dict[str, Any]:
    """An account billed for two ended months (one invoice paid, one voided, one open) with a feature in use."""
    headers = tenant.headers
    first, second, third = months_ago(3), months_ago(2), months_ago(1)
    account = tenant.create_account(
        name="Globex",
        net_terms_days=15,
        commitment={"monthly_cost": "100"},
        contract_started_at=in_month(first, 1).replace("T12", "T00"),
    )
    response = client.put(
        "/v1/products/CALLS",
        json={
            "description": "Outbound calls",
            "type": "CALL",
            "unit": "minute",
            "currency": "USD",
            "unit_price": "0.067",
            "price_effective_from": "2020-01-01T00:00:00Z",
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    events = [
        {"id": f"call-{month}", "account_id": account["id"], "type": "metered", "product_id": "CALLS", "quantity": 55}
        | {"occurred_at": in_month(month)}
        for month in (first, second, third)
    ]
    assert client.post("/v1/events", json=events, headers=headers).status_code == 200
    response = client.put("/v1/features/seats", json={"description": "Seats", "default_limit": 10}, headers=headers)
    assert response.status_code == 201, response.text
    assert (
        client.put(f"/v1/accounts/{account['id']}/limits/seats", json={"limit": 7}, headers=headers).status_code == 200
    )
    use = [{"id": "seat-1", "account_id": account["id"], "type": "feature", "feature": "seats", "quantity": 3}]
    assert client.post("/v1/events", json=use, headers=headers).status_code == 200
    for month in (first, second, third):
        assert client.post("/v1/billing_runs", json={"month": month}, headers=headers).status_code == 201
    invoices = client.get("/v1/invoices", params={"account_id": account["id"]}, headers=headers).json()["invoices"]
    assert [invoice["month"] for invoice in invoices] == [first, second, third]
    paid, voided, _open = invoices
    payment = {"id": "wire-1", "account_id": account["id"], "amount": "103.69", "date": in_month(third, 3)}
    assert client.post("/v1/payments", json=payment, headers=headers).status_code == 201
    assert client.post(f"/v1/invoices/{voided['id']}/void", headers=headers).status_code == 200
    return {"account": account, "months": (first, second, third), "paid": paid, "voided": voided}


class TestBillingView:
    def test_exact_body(self, client, tenant, billed):
        response = billing(client, tenant.key, billed["account"]["id"])
        assert response.status_code == 200, response.text
        body = decimal_body(response)
        assert set(body) == {"invoices", "payments", "usages"}
        third = billed["months"][2]
        # 100 commitment + 55 x 0.067 = 3.685 → 3.69 on each invoice; the second was voided and is left out.
        assert body["invoices"] == [
            {
                "amount": Decimal("103.69"),
                "due_date": f"{months_ago(2)}-16T00:00:00.000Z",
                "effective_date": f"{months_ago(2)}-01T00:00:00.000Z",
                "paid": True,
            },
            {
                "amount": Decimal("103.69"),
                "due_date": f"{months_ago(0)}-16T00:00:00.000Z",
                "effective_date": f"{months_ago(0)}-01T00:00:00.000Z",
                "paid": False,
            },
        ]
        assert body["payments"] == [{"amount": Decimal("103.69"), "date": f"{third}-03T00:00:00.000Z"}]
        assert body["usages"] == [{"name": "seats", "description": "Seats", "limit": 7, "usage": 3}]

    def test_dates_have_the_seed_form_and_money_is_exact_text(self, client, tenant, billed):
        response = billing(client, tenant.key, billed["account"]["id"])
        body = response.json()
        for invoice in body["invoices"]:
            assert SEED_DATE.match(invoice["due_date"])
            assert SEED_DATE.match(invoice["effective_date"])
        assert all(SEED_DATE.match(payment["date"]) for payment in body["payments"])
        assert '"amount":103.69' in response.text

    def test_the_voided_month_still_shows_after_a_second_payment_settles_the_open_invoice(self, client, tenant, billed):
        account_id = billed["account"]["id"]
        payment = {"id": "wire-2", "account_id": account_id, "amount": "103.69"}
        assert client.post("/v1/payments", json=payment, headers=tenant.headers).status_code == 201
        body = billing(client, tenant.key, account_id).json()
        assert [invoice["paid"] for invoice in body["invoices"]] == [True, True]
        assert len(body["payments"]) == 2

    def test_an_account_with_nothing_billed(self, client, tenant):
        account = tenant.create_account(name="Quiet")
        response = billing(client, tenant.key, account["id"])
        assert response.status_code == 200
        assert response.json() == {"invoices": [], "payments": [], "usages": []}

    def test_an_account_key_sees_its_own_billing_only(self, client, tenant, billed):
        parent = billed["account"]
        child = tenant.create_account(name="Globex Europe", parent_account_id=parent["id"])
        child_key = tenant.create_key(account_id=child["id"])["key"]
        parent_key = tenant.create_key(account_id=parent["id"])["key"]
        assert billing(client, parent_key, parent["id"]).json()["payments"] != []
        # The parent's key reaches its subaccount (nothing billed there); the subaccount's key does not reach up.
        assert billing(client, parent_key, child["id"]).json() == {
            "invoices": [],
            "payments": [],
            "usages": [{"name": "seats", "description": "Seats", "limit": 10, "usage": 0}],
        }
        assert_error(billing(client, child_key, parent["id"]), 404, "NOT_FOUND")


class TestRefusals:
    def test_another_organizations_key_gets_not_found(self, client, billed, other_tenant):
        body = assert_error(billing(client, other_tenant.key, billed["account"]["id"]), 404, "NOT_FOUND")
        assert "Globex" not in body["note"]

    def test_a_non_uuid_account_id(self, client, tenant):
        assert_invalid(billing(client, tenant.key, "not-a-uuid"), "account_id", "path.account_id")

    def test_an_unknown_account(self, client, tenant):
        assert_error(billing(client, tenant.key, "00000000-0000-4000-8000-000000000000"), 404, "NOT_FOUND")

    def test_without_the_billing_read_scope(self, client, tenant, billed):
        key = tenant.create_key(scopes=["accounts:read"])["key"]
        assert_error(billing(client, key, billed["account"]["id"]), 403, "FORBIDDEN")

    def test_without_a_key(self, client, billed):
        response = client.get(f"/v1/accounts/{billed['account']['id']}/billing")
        assert_error(response, 401, "MISSING_API_KEY")


# --- GET /v1/accounts/current/billing (BillingApi.getCurrentAccountBilling of @fdy/faraday-js) ----------------


def current_billing(client: Any, key: str | None) -> Any:
    return client.get("/v1/accounts/current/billing", headers=bearer(key) if key else {})


class TestCurrentBilling:
    def test_an_account_key_gets_its_own_accounts_billing(self, client, tenant, billed):
        account_id = billed["account"]["id"]
        key = tenant.create_key(account_id=account_id)["key"]
        response = current_billing(client, key)
        assert response.status_code == 200, response.text
        assert response.text == billing(client, tenant.key, account_id).text
        assert decimal_body(response)["payments"] == [
            {"amount": Decimal("103.69"), "date": f"{billed['months'][2]}-03T00:00:00.000Z"}
        ]

    def test_a_subaccounts_key_gets_the_subaccounts_not_its_parents(self, client, tenant, billed):
        child = tenant.create_account(name="Globex Europe", parent_account_id=billed["account"]["id"])
        response = current_billing(client, child["api_key"])
        assert response.status_code == 200, response.text
        assert response.json() == {
            "invoices": [],
            "payments": [],
            "usages": [{"name": "seats", "description": "Seats", "limit": 10, "usage": 0}],
        }

    def test_an_archived_accounts_key_still_reads_it(self, client, tenant, billed):
        account_id = billed["account"]["id"]
        key = tenant.create_key(account_id=account_id)["key"]
        assert client.delete(f"/v1/accounts/{account_id}", headers=tenant.headers).status_code == 202
        response = current_billing(client, key)
        assert response.status_code == 200, response.text
        assert len(response.json()["invoices"]) == 2

    def test_it_is_not_taken_for_a_malformed_account_id(self, client, tenant, billed):
        # Before this route, /v1/accounts/{account_id}/billing answered 400 VALIDATION_FAILED for "current".
        key = tenant.create_key(account_id=billed["account"]["id"])["key"]
        assert current_billing(client, key).status_code == 200


class TestCurrentBillingRefusals:
    def test_an_organization_key_has_no_current_account(self, client, tenant, billed):
        body = assert_error(current_billing(client, tenant.key), 404, "NOT_FOUND")
        assert "organization key" in body["note"]

    def test_another_organizations_key_gets_its_own_or_nothing(self, client, billed, other_tenant):
        # Its organization key has no account; its account key sees only its own, empty billing.
        body = assert_error(current_billing(client, other_tenant.key), 404, "NOT_FOUND")
        assert "Globex" not in body["note"]
        stranger = other_tenant.create_account(name="Stranger")
        assert current_billing(client, stranger["api_key"]).json() == {"invoices": [], "payments": [], "usages": []}

    def test_without_the_billing_read_scope(self, client, tenant, billed):
        key = tenant.create_key(account_id=billed["account"]["id"], scopes=["accounts:read"])["key"]
        assert_error(current_billing(client, key), 403, "FORBIDDEN")

    def test_without_a_key_or_with_a_malformed_one(self, client, billed):
        assert_error(current_billing(client, None), 401, "MISSING_API_KEY")
        assert_error(current_billing(client, "not-a-key"), 401, "MALFORMED_API_KEY")

    def test_query_parameters_are_ignored_and_other_methods_are_not_allowed(self, client, tenant, billed):
        key = tenant.create_key(account_id=billed["account"]["id"])["key"]
        response = client.get("/v1/accounts/current/billing?account_id=x", headers=bearer(key))
        assert response.status_code == 200
        assert client.post("/v1/accounts/current/billing", headers=bearer(key)).status_code == 405
