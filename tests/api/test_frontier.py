"""The Frontier dialect under ``/v1beta1`` (CONTRACT §3.4, seed ``frontier-create-billing-usage.txt``).

Every call is asserted as a Frontier client sees it: the status, the body (``{}`` on success, and
``{"code", "message", "details"}`` with the gRPC code on failure), and then the stored state, re-read
through the native API (``/v1/accounts/{id}/credits``, ``…/credits/transactions``, ``/v1/usages``), so
that every refusal is shown to have written nothing. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from meterbook.db import Database
from meterbook.db.tables import organizations
from tests.conftest import Tenant, bearer

INITIAL_CREDITS = 100
USAGES = "/v1beta1/organizations/billing/usages"
REVERT = "/v1beta1/organizations/billing/usages/revert"
CHECK = "/v1beta1/billing/check"
MAX_BODY_BYTES = 64 * 1024  # the test settings' limit (tests/conftest.py)

# gRPC status codes
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED = 3, 5, 6, 7
FAILED_PRECONDITION, UNIMPLEMENTED, UNAUTHENTICATED = 9, 12, 16


# --- helpers ---------------------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def usage(amount: Any = 10, **extra: Any) -> dict[str, Any]:
    return {"id": new_id(), "amount": amount, **extra}


def account_usages_path(org_id: str, billing_id: str) -> str:
    return f"/v1beta1/organizations/{org_id}/billing/{billing_id}/usages"


def balance_path(org_id: str, billing_id: str) -> str:
    return f"/v1beta1/organizations/{org_id}/billing/{billing_id}/balance"


def transactions_path(org_id: str, billing_id: str) -> str:
    return f"/v1beta1/organizations/{org_id}/billing/{billing_id}/transactions"


def basic(token: str) -> dict[str, str]:
    """HTTP Basic for a key: its id as user name, its secret as password."""
    _, key_hex, secret = token.split("_")
    credentials = base64.b64encode(f"{uuid.UUID(hex=key_hex)}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def grant(tenant: Tenant, account_id: str, amount: int, grant_id: str | None = None, **extra: Any) -> str:
    """Grant credits through the native API; the grant's id."""
    grant_id = grant_id or new_id()
    response = tenant.client.post(
        f"/v1/accounts/{account_id}/credits", json={"id": grant_id, "amount": amount, **extra}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return grant_id


def native_balance(tenant: Tenant, account_id: str) -> int:
    response = tenant.client.get(f"/v1/accounts/{account_id}/credits", headers=tenant.headers)
    assert response.status_code == 200, response.text
    balance: int = response.json()["balance"]
    return balance


def native_transactions(tenant: Tenant, account_id: str) -> list[dict[str, Any]]:
    response = tenant.client.get(f"/v1/accounts/{account_id}/credits/transactions", headers=tenant.headers)
    assert response.status_code == 200, response.text
    transactions: list[dict[str, Any]] = response.json()["transactions"]
    return transactions


def feature_usage(client: TestClient, account_key: str, name: str) -> int:
    response = client.get("/v1/usages", headers=bearer(account_key))
    assert response.status_code == 200, response.text
    return next(int(item["usage"]) for item in response.json() if item["name"] == name)


def assert_ok(response: Any) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {}


def assert_error(response: Any, status: int, code: int, *mentions: str) -> str:
    """Frontier's error shape, exactly: the gRPC code, a message naming what is wrong, and empty details."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert body["details"] == []
    message: str = body["message"]
    assert isinstance(message, str)
    assert message.strip()
    for text in mentions:
        assert text in message, body
    return message


class State:
    """What a refused request must leave as it was: an account's balance and its transactions."""

    def __init__(self, tenant: Tenant, account_id: str) -> None:
        self.tenant, self.account_id = tenant, account_id
        self.before = self.read()

    def read(self) -> tuple[int, list[dict[str, Any]]]:
        return native_balance(self.tenant, self.account_id), native_transactions(self.tenant, self.account_id)

    def assert_unchanged(self) -> None:
        assert self.read() == self.before


@pytest.fixture
def account(tenant: Tenant) -> dict[str, Any]:
    """The organization's first (so its default billing) account, with INITIAL_CREDITS credits."""
    created = tenant.create_account(name="Billing")
    grant(tenant, created["id"], INITIAL_CREDITS)
    return created


@pytest.fixture
def post(client: TestClient, tenant: Tenant) -> Any:
    """POST to a Frontier path with the organization key (or the given headers)."""

    def send(path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return client.post(path, json=body, headers=headers or tenant.headers)

    return send


def set_default_billing_account(database: Database, organization_id: str, account_id: str) -> None:
    with database.write() as conn:
        conn.execute(
            update(organizations)
            .where(organizations.c.id == uuid.UUID(organization_id))
            .values(default_billing_account_id=uuid.UUID(account_id))
        )


# --- POST /v1beta1/organizations/billing/usages ----------------------------------------------------


class TestCreateUsage:
    def test_a_credit_usage_debits_the_billing_account(self, post, tenant, account):
        assert_ok(post(USAGES, {"org_id": tenant.id, "billing_id": account["id"], "usages": [usage(30)]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 30

    def test_the_usage_is_recorded_as_sent(self, post, tenant, account):
        sent = usage(
            "7",
            source="Billing-API",
            description="export of a report",
            user_id="user-42",
            metadata={"report": "monthly", "pages": 3},
        )
        assert_ok(post(USAGES, {"org_id": tenant.id, "billing_id": account["id"], "usages": [sent]}))
        debit = native_transactions(tenant, account["id"])[0]
        assert debit["kind"] == "usage"
        assert debit["direction"] == "debit"
        assert debit["amount"] == 7
        assert debit["source"] == "billing-api"
        assert debit["description"] == "export of a report"
        assert debit["user_id"] == "user-42"
        assert debit["metadata"] == {"report": "monthly", "pages": 3}

    @pytest.mark.parametrize("source", [None, "", "   "])
    def test_an_empty_source_is_system(self, post, tenant, account, source):
        sent = usage(1) if source is None else usage(1, source=source)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        assert native_transactions(tenant, account["id"])[0]["source"] == "system"

    @pytest.mark.parametrize("amount", [5, "5", 5.0, "0005"])
    def test_the_amount_is_a_json_number_or_a_string(self, post, tenant, account, amount):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(amount)]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 5

    def test_the_largest_int64_is_an_amount(self, post, tenant, account):
        response = post(USAGES, {"org_id": tenant.id, "usages": [usage(str(2**63 - 1))]})
        assert_error(response, 400, INVALID_ARGUMENT, "insufficient credits")

    def test_several_usages_in_one_request(self, post, tenant, account):
        usages = [usage(10), usage("20", type="credit"), usage(5, type="")]
        assert_ok(post(USAGES, {"org_id": tenant.id, "billing_id": account["id"], "usages": usages}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 35
        assert len(native_transactions(tenant, account["id"])) == 4

    def test_customer_id_and_times_are_ignored(self, post, tenant, account):
        sent = usage(3, customer_id="whoever", created_at="not a time", updated_at=12)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent], "unknown": True}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 3

    def test_proto3_empty_strings_mean_absent(self, post, tenant, account):
        body = {"org_id": tenant.id, "billing_id": "", "project_id": "", "usages": [usage(2, description="")]}
        assert_ok(post(USAGES, body))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 2

    def test_a_product_in_the_metadata_must_exist(self, post, tenant, account):
        response = tenant.client.put(
            "/v1/products/REPORT-1", json={"description": "Reports", "unit_price": "0.5"}, headers=tenant.headers
        )
        assert response.status_code == 201, response.text
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(4, metadata={"product_id": "REPORT-1"})]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 4

        state = State(tenant, account["id"])
        response = post(USAGES, {"org_id": tenant.id, "usages": [usage(4, metadata={"product_id": "NOPE"})]})
        assert_error(response, 400, INVALID_ARGUMENT, "usages[0].metadata.product_id", "NOPE")
        state.assert_unchanged()

    def test_fractional_metadata_numbers_are_kept_exactly(self, post, tenant, account):
        # A metadata object may hold any JSON number, e.g. a price of 1.5.
        sent = usage(1, metadata={"unit_price": 1.5, "ratio": 0.1})
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        assert native_transactions(tenant, account["id"])[0]["metadata"] == {"unit_price": 1.5, "ratio": 0.1}


class TestCreateUsageOfAccount:
    """``POST /v1beta1/organizations/{org_id}/billing/{billing_id}/usages``: the same call, ids in the path."""

    def test_debits_the_account_in_the_path(self, post, tenant, account):
        other = tenant.create_account(name="Second")
        grant(tenant, other["id"], 50)
        assert_ok(post(account_usages_path(tenant.id, other["id"]), {"usages": [usage(20)]}))
        assert native_balance(tenant, other["id"]) == 30
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS

    def test_a_project_with_the_organization_in_the_path_is_refused(self, post, tenant, account):
        project = tenant.client.post("/v1/projects", json={"name": "P"}, headers=tenant.headers).json()
        state = State(tenant, account["id"])
        response = post(
            account_usages_path(tenant.id, account["id"]), {"project_id": project["id"], "usages": [usage()]}
        )
        assert_error(response, 400, INVALID_ARGUMENT, "project_id")
        state.assert_unchanged()

    def test_ids_in_the_path_must_be_uuids(self, post, tenant, account):
        assert_error(
            post(account_usages_path("acme", account["id"]), {"usages": [usage()]}), 400, INVALID_ARGUMENT, "org_id"
        )
        assert_error(
            post(account_usages_path(tenant.id, "x"), {"usages": [usage()]}), 400, INVALID_ARGUMENT, "billing_id"
        )

    def test_an_unknown_billing_account_is_not_found(self, post, tenant, account):
        response = post(account_usages_path(tenant.id, new_id()), {"usages": [usage()]})
        assert_error(response, 404, NOT_FOUND, "billing account not found")

    def test_an_archived_billing_account_takes_no_usage(self, post, tenant, account):
        assert tenant.client.delete(f"/v1/accounts/{account['id']}", headers=tenant.headers).status_code == 202
        state = State(tenant, account["id"])
        response = post(account_usages_path(tenant.id, account["id"]), {"usages": [usage()]})
        assert_error(response, 400, INVALID_ARGUMENT, "billing_id", "archived")
        state.assert_unchanged()


# --- which billing account -------------------------------------------------------------------------


class TestBillingAccountResolution:
    def test_without_billing_id_the_oldest_top_level_account_pays(self, post, tenant, account):
        second = tenant.create_account(name="Second")
        tenant.create_account(key=account["api_key"], name="Sub of the first")
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(10)]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10
        assert native_transactions(tenant, second["id"]) == []

    def test_an_archived_account_is_never_the_default(self, post, tenant, account):
        second = tenant.create_account(name="Second")
        grant(tenant, second["id"], 50)
        assert tenant.client.delete(f"/v1/accounts/{account['id']}", headers=tenant.headers).status_code == 202
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(10)]}))
        assert native_balance(tenant, second["id"]) == 40

    def test_the_default_the_organization_names_wins(self, post, tenant, account, database):
        chosen = tenant.create_account(name="Chosen")
        grant(tenant, chosen["id"], 50)
        set_default_billing_account(database, tenant.id, chosen["id"])
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(10)]}))
        assert native_balance(tenant, chosen["id"]) == 40
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS

    def test_a_named_default_that_is_archived_falls_back_to_the_oldest(self, post, tenant, account, database):
        chosen = tenant.create_account(name="Chosen")
        set_default_billing_account(database, tenant.id, chosen["id"])
        assert tenant.client.delete(f"/v1/accounts/{chosen['id']}", headers=tenant.headers).status_code == 202
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(10)]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10

    def test_an_organization_without_accounts_has_no_billing_account(self, post, tenant):
        response = post(USAGES, {"org_id": tenant.id, "usages": [usage()]})
        assert_error(response, 404, NOT_FOUND, "billing account not found")

    def test_a_project_names_the_organization_and_its_billing_account(self, post, tenant, account):
        billed = tenant.create_account(name="Billed")
        grant(tenant, billed["id"], 50)
        project = tenant.client.post(
            "/v1/projects", json={"name": "P", "billing_account_id": billed["id"]}, headers=tenant.headers
        ).json()
        assert_ok(post(USAGES, {"project_id": project["id"], "usages": [usage(10)]}))
        assert native_balance(tenant, billed["id"]) == 40
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS

    def test_billing_id_wins_over_the_projects_account(self, post, tenant, account):
        billed = tenant.create_account(name="Billed")
        project = tenant.client.post(
            "/v1/projects", json={"name": "P", "billing_account_id": billed["id"]}, headers=tenant.headers
        ).json()
        assert_ok(post(USAGES, {"project_id": project["id"], "billing_id": account["id"], "usages": [usage(10)]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10

    def test_a_project_without_billing_account_bills_the_default(self, post, tenant, account):
        project = tenant.client.post("/v1/projects", json={"name": "P"}, headers=tenant.headers).json()
        assert project["billing_account_id"] is None
        assert_ok(post(USAGES, {"project_id": project["id"], "usages": [usage(10)]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10

    def test_organization_and_project_together_are_refused(self, post, tenant, account):
        project = tenant.client.post("/v1/projects", json={"name": "P"}, headers=tenant.headers).json()
        state = State(tenant, account["id"])
        response = post(USAGES, {"org_id": tenant.id, "project_id": project["id"], "usages": [usage()]})
        assert_error(response, 400, INVALID_ARGUMENT, "project_id", "not both")
        state.assert_unchanged()

    def test_neither_organization_nor_project_is_refused(self, post, tenant, account):
        state = State(tenant, account["id"])
        response = post(USAGES, {"billing_id": account["id"], "usages": [usage()]})
        assert_error(response, 400, INVALID_ARGUMENT, "org_id")
        state.assert_unchanged()

    def test_an_unknown_project_is_not_found(self, post, tenant, account):
        assert_error(post(USAGES, {"project_id": new_id(), "usages": [usage()]}), 404, NOT_FOUND, "project not found")

    def test_another_organizations_project_is_not_found_alike(self, post, tenant, other_tenant, account):
        foreign = tenant.client.post("/v1/projects", json={"name": "Theirs"}, headers=other_tenant.headers).json()
        unknown = post(USAGES, {"project_id": new_id(), "usages": [usage()]})
        response = post(USAGES, {"project_id": foreign["id"], "usages": [usage()]})
        assert assert_error(response, 404, NOT_FOUND) == assert_error(unknown, 404, NOT_FOUND)

    def test_an_account_key_bills_its_own_account_when_the_default_is_out_of_reach(self, client, tenant, account):
        sibling = tenant.create_account(name="Sibling")
        grant(tenant, sibling["id"], 50)
        response = client.post(
            USAGES, json={"org_id": tenant.id, "usages": [usage(10)]}, headers=bearer(sibling["api_key"])
        )
        assert_ok(response)
        assert native_balance(tenant, sibling["id"]) == 40
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS

    def test_an_account_key_reaches_its_subaccounts(self, client, tenant, account):
        sub = tenant.create_account(key=account["api_key"], name="Sub")
        grant(tenant, sub["id"], 50)
        body = {"org_id": tenant.id, "billing_id": sub["id"], "usages": [usage(10)]}
        assert_ok(client.post(USAGES, json=body, headers=bearer(account["api_key"])))
        assert native_balance(tenant, sub["id"]) == 40

    def test_an_account_key_reaches_only_projects_billed_within_its_reach(self, client, tenant, account):
        sibling = tenant.create_account(name="Sibling")
        theirs = tenant.client.post(
            "/v1/projects", json={"name": "P", "billing_account_id": sibling["id"]}, headers=tenant.headers
        ).json()
        response = client.post(
            USAGES, json={"project_id": theirs["id"], "usages": [usage()]}, headers=bearer(account["api_key"])
        )
        assert_error(response, 404, NOT_FOUND, "project not found")
        assert native_transactions(tenant, sibling["id"]) == []


# --- authentication and scopes ---------------------------------------------------------------------


class TestAuthentication:
    def test_bearer(self, client, tenant, account):
        response = client.post(USAGES, json={"org_id": tenant.id, "usages": [usage(1)]}, headers=bearer(tenant.key))
        assert_ok(response)

    def test_basic_with_key_id_and_secret(self, client, tenant, account):
        response = client.post(USAGES, json={"org_id": tenant.id, "usages": [usage(1)]}, headers=basic(tenant.key))
        assert_ok(response)
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 1

    def test_basic_with_an_account_key(self, client, tenant, account):
        body = {"org_id": tenant.id, "billing_id": account["id"], "usages": [usage(1)]}
        assert_ok(client.post(USAGES, json=body, headers=basic(account["api_key"])))

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer nonsense"},
            {"Authorization": "Token abc"},
            {"Authorization": "Basic !!!"},
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        ],
        ids=["missing", "malformed-bearer", "other-scheme", "not-base64", "no-colon"],
    )
    def test_missing_or_unusable_credentials_are_unauthenticated(self, client, tenant, account, headers):
        state = State(tenant, account["id"])
        response = client.post(USAGES, json={"org_id": tenant.id, "usages": [usage()]}, headers=headers)
        assert_error(response, 401, UNAUTHENTICATED)
        state.assert_unchanged()

    def test_basic_with_a_wrong_secret_is_unauthenticated(self, client, tenant, account):
        prefix, key_hex, _ = tenant.key.split("_")
        wrong = f"{prefix}_{key_hex}_{'0' * 48}"
        response = client.post(USAGES, json={"org_id": tenant.id, "usages": [usage()]}, headers=basic(wrong))
        assert_error(response, 401, UNAUTHENTICATED)

    def test_a_revoked_key_is_unauthenticated(self, client, tenant, account):
        created = tenant.create_key()
        assert client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers).status_code == 200
        response = client.post(USAGES, json={"org_id": tenant.id, "usages": [usage()]}, headers=basic(created["key"]))
        assert_error(response, 401, UNAUTHENTICATED)

    def test_writing_usage_needs_usage_write(self, client, tenant, account):
        reader = tenant.create_key(scopes=["billing:read", "usage:read"])["key"]
        state = State(tenant, account["id"])
        response = client.post(USAGES, json={"org_id": tenant.id, "usages": [usage()]}, headers=bearer(reader))
        assert_error(response, 403, PERMISSION_DENIED, "usage:write")
        response = client.post(
            account_usages_path(tenant.id, account["id"]), json={"usages": [usage()]}, headers=basic(reader)
        )
        assert_error(response, 403, PERMISSION_DENIED, "usage:write")
        state.assert_unchanged()

    def test_reading_needs_billing_read(self, client, tenant, account):
        writer = bearer(tenant.create_key(scopes=["usage:write"])["key"])
        assert_error(client.get(balance_path(tenant.id, account["id"]), headers=writer), 403, PERMISSION_DENIED)
        assert_error(client.get(transactions_path(tenant.id, account["id"]), headers=writer), 403, PERMISSION_DENIED)
        response = client.post(CHECK, json={"org_id": tenant.id, "amount": 1}, headers=writer)
        assert_error(response, 403, PERMISSION_DENIED, "billing:read")

    def test_a_platform_key_is_refused(self, client, tenant, account, platform_key):
        response = client.post(USAGES, json={"org_id": tenant.id, "usages": [usage()]}, headers=bearer(platform_key))
        assert_error(response, 403, PERMISSION_DENIED)


# --- bad input -------------------------------------------------------------------------------------


class TestInvalidUsage:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"id": "usage-1"}, "usages[0].id"),
            ({"id": 12}, "usages[0].id"),
            ({"id": None}, "usages[0].id"),
            ({"type": "metered"}, "usages[0].type"),
            ({"type": "CREDIT"}, "usages[0].type"),
            ({"amount": 0}, "usages[0].amount"),
            ({"amount": -5}, "usages[0].amount"),
            ({"amount": "-5"}, "usages[0].amount"),
            ({"amount": 1.5}, "usages[0].amount"),
            ({"amount": "1.5"}, "usages[0].amount"),
            ({"amount": "ten"}, "usages[0].amount"),
            ({"amount": ""}, "usages[0].amount"),
            ({"amount": True}, "usages[0].amount"),
            ({"amount": None}, "usages[0].amount"),
            ({"amount": 2**63}, "usages[0].amount"),
            ({"metadata": ["a"]}, "usages[0].metadata"),
            ({"metadata": {"product_id": 5}}, "usages[0].metadata.product_id"),
            ({"source": "s" * 101}, "usages[0].source"),
            ({"description": "d" * 1001}, "usages[0].description"),
            ({"user_id": "u" * 256}, "usages[0].user_id"),
        ],
    )
    def test_a_bad_field_is_invalid_argument_naming_it(self, post, tenant, account, change, field):
        state = State(tenant, account["id"])
        good = usage(1)
        bad = {**usage(1), **change}
        response = post(USAGES, {"org_id": tenant.id, "usages": [good, bad]})
        assert_error(response, 400, INVALID_ARGUMENT, field.replace("[0]", "[1]"))
        state.assert_unchanged()

    def test_a_missing_id_or_amount_is_named(self, post, tenant, account):
        response = post(USAGES, {"org_id": tenant.id, "usages": [{"amount": 1}, {"id": new_id()}]})
        assert_error(response, 400, INVALID_ARGUMENT, "usages[0].id", "usages[1].amount")

    def test_the_message_says_what_is_wrong(self, post, tenant, account):
        response = post(USAGES, {"org_id": tenant.id, "usages": [usage(), usage(), {**usage(), "id": "x"}]})
        assert assert_error(response, 400, INVALID_ARGUMENT) == (
            "usages[2].id: expected a UUID, e.g. 0b8f6f9e-4c1a-4b59-9a57-3f2d2c1e8a10 (got 'x')"
        )

    @pytest.mark.parametrize(
        "body",
        [
            {"usages": {"id": "x"}},
            {"usages": "x"},
            [],
            "usages",
        ],
    )
    def test_a_body_without_usages_is_invalid(self, post, tenant, account, body):
        if isinstance(body, dict):
            body = {"org_id": tenant.id, **body}
        state = State(tenant, account["id"])
        assert_error(post(USAGES, body), 400, INVALID_ARGUMENT)
        state.assert_unchanged()

    @pytest.mark.parametrize("body", [{"usages": []}, {"usages": None}, {}])
    def test_no_usages_at_all_is_an_empty_success(self, post, tenant, account, body):
        """Frontier reports nothing and answers `{}` (CONTRACT §3.4's quirks); the organization is still checked."""
        state = State(tenant, account["id"])
        assert_ok(post(USAGES, {"org_id": tenant.id, **body}))
        assert_ok(post(account_usages_path(tenant.id, account["id"]), body))
        state.assert_unchanged()
        assert_error(post(USAGES, {"org_id": new_id(), **body}), 404, NOT_FOUND, "organization not found")

    @pytest.mark.parametrize("field", ["org_id", "billing_id", "project_id"])
    def test_ids_in_the_body_must_be_uuids(self, post, tenant, account, field):
        body = {"org_id": tenant.id, field: "not-a-uuid", "usages": [usage()]}
        assert_error(post(USAGES, body), 400, INVALID_ARGUMENT, field, "expected a UUID, e.g. ")

    def test_a_body_that_is_not_json(self, client, tenant, account):
        response = client.post(
            USAGES, content=b'{"org_id": ', headers={**tenant.headers, "content-type": "application/json"}
        )
        assert_error(response, 400, INVALID_ARGUMENT)

    def test_a_body_over_the_limit(self, client, tenant, account):
        state = State(tenant, account["id"])
        big = {"org_id": tenant.id, "usages": [usage(1, description="x" * 1000) for _ in range(MAX_BODY_BYTES // 1000)]}
        response = client.post(USAGES, json=big, headers=tenant.headers)
        assert_error(response, 413, INVALID_ARGUMENT)
        state.assert_unchanged()


class TestIdempotency:
    def test_a_retry_is_acknowledged_and_debits_once(self, post, tenant, account):
        body = {"org_id": tenant.id, "usages": [usage(10, source="api", metadata={"a": 1})]}
        assert_ok(post(USAGES, body))
        assert_ok(post(USAGES, body))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10
        assert len(native_transactions(tenant, account["id"])) == 2

    def test_the_id_is_the_uuid_in_any_spelling(self, post, tenant, account):
        usage_id = uuid.uuid4()
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [{"id": str(usage_id).upper(), "amount": 10}]}))
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [{"id": usage_id.hex, "amount": "10"}]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10

    def test_ignored_fields_do_not_make_a_retry_different(self, post, tenant, account):
        sent = usage(10)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [{**sent, "created_at": "2024-01-01T00:00:00Z"}]}))
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [{**sent, "created_at": "2025-01-01T00:00:00Z"}]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10

    def test_the_same_id_with_another_amount_is_already_exists(self, post, tenant, account):
        sent = usage(10)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        state = State(tenant, account["id"])
        response = post(USAGES, {"org_id": tenant.id, "usages": [usage(1), {**sent, "amount": 11}]})
        assert_error(response, 409, ALREADY_EXISTS, sent["id"])
        state.assert_unchanged()

    def test_the_same_id_on_another_account_is_another_usage(self, post, tenant, account):
        """Usage ids are per account (invariant 1): another account's use of an id neither blocks nor shows."""
        other = tenant.create_account(name="Other")
        grant(tenant, other["id"], 50)
        sent = usage(10)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        assert_ok(post(USAGES, {"org_id": tenant.id, "billing_id": other["id"], "usages": [sent]}))
        assert_ok(post(USAGES, {"org_id": tenant.id, "billing_id": other["id"], "usages": [sent]}))
        assert native_balance(tenant, other["id"]) == 50 - 10
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10
        state = State(tenant, other["id"])
        response = post(USAGES, {"org_id": tenant.id, "billing_id": other["id"], "usages": [{**sent, "amount": 11}]})
        assert_error(response, 409, ALREADY_EXISTS, sent["id"])
        state.assert_unchanged()

    def test_an_id_twice_in_one_request(self, post, tenant, account):
        sent = usage(10)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent, sent]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 10
        state = State(tenant, account["id"])
        again = usage(10)
        response = post(USAGES, {"org_id": tenant.id, "usages": [again, {**again, "amount": 9}]})
        assert_error(response, 409, ALREADY_EXISTS)
        state.assert_unchanged()


class TestInsufficientCredits:
    def test_a_debit_beyond_the_balance_is_refused_whole(self, post, tenant, account):
        state = State(tenant, account["id"])
        response = post(USAGES, {"org_id": tenant.id, "usages": [usage(60), usage(41)]})
        assert_error(response, 400, INVALID_ARGUMENT, "insufficient credits")
        state.assert_unchanged()

    def test_the_whole_balance_can_be_spent(self, post, tenant, account):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(60), usage(40)]}))
        assert native_balance(tenant, account["id"]) == 0

    def test_an_overdraft_allows_going_below_zero(self, post, tenant):
        allowed = tenant.create_account(name="Overdraft", credit_min=-50)
        assert_ok(post(USAGES, {"org_id": tenant.id, "billing_id": allowed["id"], "usages": [usage(50)]}))
        response = post(USAGES, {"org_id": tenant.id, "billing_id": allowed["id"], "usages": [usage(1)]})
        assert_error(response, 400, INVALID_ARGUMENT, "insufficient credits")
        assert native_balance(tenant, allowed["id"]) == -50


class TestFeatureUsage:
    @pytest.fixture
    def seats(self, client, tenant, account):
        response = client.put("/v1/features/seats", json={"description": "Seats", "limit": 3}, headers=tenant.headers)
        assert response.status_code == 201, response.text
        return "seats"

    def test_a_feature_usage_counts_against_metadata_feature(self, client, post, tenant, account, seats):
        sent = usage(2, type="feature", source="console", metadata={"feature": "seats"})
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        assert feature_usage(client, account["api_key"], "seats") == 2
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS

    def test_without_metadata_feature_the_source_names_it(self, client, post, tenant, account, seats):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1, type="feature", source="Seats")]}))
        assert feature_usage(client, account["api_key"], "seats") == 1

    def test_exceeding_the_limit_is_failed_precondition(self, client, post, tenant, account, seats):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(2, type="feature", source="seats")]}))
        state = State(tenant, account["id"])
        over = [usage(5), usage(1, type="feature", source="seats"), usage(1, type="feature", source="seats")]
        response = post(USAGES, {"org_id": tenant.id, "usages": over})
        assert_error(response, 400, FAILED_PRECONDITION, "seats")
        assert feature_usage(client, account["api_key"], "seats") == 2
        state.assert_unchanged()

    def test_an_unknown_feature_is_invalid_argument(self, client, post, tenant, account, seats):
        response = post(USAGES, {"org_id": tenant.id, "usages": [usage(1, type="feature", source="storage")]})
        assert_error(response, 400, INVALID_ARGUMENT, "usages[0].source", "storage")
        response = post(
            USAGES, {"org_id": tenant.id, "usages": [usage(1, type="feature", metadata={"feature": "storage"})]}
        )
        assert_error(response, 400, INVALID_ARGUMENT, "usages[0].metadata.feature", "storage")
        assert feature_usage(client, account["api_key"], "seats") == 0


# --- tenants and reach -----------------------------------------------------------------------------


class TestReach:
    """Invariant 8: another tenant's organization or account, or a sibling's, looks exactly like an unknown one."""

    def test_another_organization_is_not_found_like_an_unknown_one(self, client, tenant, other_tenant, account):
        state = State(tenant, account["id"])
        body = {"org_id": tenant.id, "billing_id": account["id"], "usages": [usage()]}
        foreign = client.post(USAGES, json=body, headers=other_tenant.headers)
        unknown = client.post(USAGES, json={**body, "org_id": new_id()}, headers=other_tenant.headers)
        assert assert_error(foreign, 404, NOT_FOUND) == "organization not found"
        assert assert_error(unknown, 404, NOT_FOUND) == "organization not found"
        state.assert_unchanged()

    def test_another_organizations_account_is_not_found_like_an_unknown_one(
        self, client, tenant, other_tenant, account
    ):
        grant(other_tenant, other_tenant.create_account()["id"], 10)
        state = State(tenant, account["id"])
        body = {"org_id": other_tenant.id, "billing_id": account["id"], "usages": [usage()]}
        foreign = client.post(USAGES, json=body, headers=other_tenant.headers)
        unknown = client.post(USAGES, json={**body, "billing_id": new_id()}, headers=other_tenant.headers)
        assert assert_error(foreign, 404, NOT_FOUND) == assert_error(unknown, 404, NOT_FOUND)
        assert "billing account not found" in foreign.json()["message"]
        state.assert_unchanged()

    def test_a_siblings_account_is_not_found(self, client, tenant, account):
        sibling = tenant.create_account(name="Sibling")
        state = State(tenant, account["id"])
        body = {"org_id": tenant.id, "billing_id": account["id"], "usages": [usage()]}
        response = client.post(USAGES, json=body, headers=bearer(sibling["api_key"]))
        assert_error(response, 404, NOT_FOUND, "billing account not found")
        response = client.post(
            account_usages_path(tenant.id, account["id"]), json={"usages": [usage()]}, headers=basic(sibling["api_key"])
        )
        assert_error(response, 404, NOT_FOUND, "billing account not found")
        state.assert_unchanged()

    def test_a_parent_is_out_of_a_subaccount_keys_reach(self, client, tenant, account):
        sub = tenant.create_account(key=account["api_key"], name="Sub")
        body = {"org_id": tenant.id, "billing_id": account["id"], "usages": [usage()]}
        assert_error(client.post(USAGES, json=body, headers=bearer(sub["api_key"])), 404, NOT_FOUND)

    def test_reads_of_another_tenant_show_nothing(self, client, tenant, other_tenant, account):
        theirs = other_tenant.headers
        for path in (balance_path(tenant.id, account["id"]), transactions_path(tenant.id, account["id"])):
            assert assert_error(client.get(path, headers=theirs), 404, NOT_FOUND) == "organization not found"
        for path in (balance_path(other_tenant.id, account["id"]), transactions_path(other_tenant.id, account["id"])):
            message = assert_error(client.get(path, headers=theirs), 404, NOT_FOUND)
            assert str(INITIAL_CREDITS) not in message
        response = client.post(
            CHECK, json={"org_id": other_tenant.id, "billing_id": account["id"], "amount": 1}, headers=theirs
        )
        assert_error(response, 404, NOT_FOUND, "billing account not found")

    def test_reads_of_a_siblings_account_show_nothing(self, client, tenant, account):
        sibling = bearer(tenant.create_account(name="Sibling")["api_key"])
        assert_error(client.get(balance_path(tenant.id, account["id"]), headers=sibling), 404, NOT_FOUND)
        assert_error(client.get(transactions_path(tenant.id, account["id"]), headers=sibling), 404, NOT_FOUND)


# --- balance, transactions, check ------------------------------------------------------------------


class TestBalance:
    def test_the_balance_as_frontier_writes_it(self, client, post, tenant, account):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(25)]}))
        response = client.get(balance_path(tenant.id, account["id"]), headers=tenant.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"balance"}
        assert set(body["balance"]) == {"amount", "currency", "updated_at"}
        assert body["balance"]["amount"] == str(INITIAL_CREDITS - 25)
        assert body["balance"]["currency"] == "VC"
        moved = datetime.fromisoformat(body["balance"]["updated_at"].replace("Z", "+00:00"))
        assert body["balance"]["updated_at"].endswith("Z")
        assert abs(datetime.now(UTC) - moved) < timedelta(minutes=1)

    def test_an_account_whose_balance_never_moved(self, client, tenant, account):
        fresh = tenant.create_account(name="Fresh")
        response = client.get(balance_path(tenant.id, fresh["id"]), headers=basic(tenant.key))
        assert response.status_code == 200, response.text
        assert response.json() == {"balance": {"amount": "0", "currency": "VC", "updated_at": None}}

    def test_a_negative_balance(self, client, post, tenant):
        allowed = tenant.create_account(name="Overdraft", credit_min=-50)
        assert_ok(post(USAGES, {"org_id": tenant.id, "billing_id": allowed["id"], "usages": [usage(30)]}))
        response = client.get(balance_path(tenant.id, allowed["id"]), headers=tenant.headers)
        assert response.json()["balance"]["amount"] == "-30"

    def test_an_unknown_account(self, client, tenant, account):
        response = client.get(balance_path(tenant.id, new_id()), headers=tenant.headers)
        assert_error(response, 404, NOT_FOUND, "billing account not found")


class TestTransactions:
    FIELDS: ClassVar[set[str]] = {
        "id",
        "customer_id",
        "source",
        "amount",
        "type",
        "description",
        "user_id",
        "metadata",
        "created_at",
        "updated_at",
        "user",
        "customer",
    }

    def list(self, client: TestClient, tenant: Tenant, account_id: str, **params: str) -> list[dict[str, Any]]:
        response = client.get(transactions_path(tenant.id, account_id), params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"transactions"}
        transactions: list[dict[str, Any]] = response.json()["transactions"]
        return transactions

    def test_newest_first_as_frontier_writes_them(self, client, post, tenant, account):
        sent = usage(12, source="API", description="run", user_id="u1", metadata={"k": "v"})
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        debit, granted = self.list(client, tenant, account["id"])
        assert set(debit) == self.FIELDS
        assert debit["customer_id"] == account["id"]
        assert (debit["type"], debit["amount"], debit["source"]) == ("debit", "12", "api")
        assert (debit["description"], debit["user_id"], debit["metadata"]) == ("run", "u1", {"k": "v"})
        assert debit["updated_at"] == debit["created_at"]
        assert (granted["type"], granted["amount"]) == ("credit", str(INITIAL_CREDITS))
        assert granted["created_at"] <= debit["created_at"]
        assert (debit["user"], debit["customer"], granted["user"], granted["customer"]) == (None, None, None, None)
        # The debit's id is the usage's (CONTRACT §3.4); the native list shows the same transactions.
        assert debit["id"] == sent["id"]
        native = native_transactions(tenant, account["id"])
        assert [(t["kind"], str(t["amount"])) for t in native] == [("usage", "12"), ("grant", str(INITIAL_CREDITS))]

    def test_absent_texts_are_empty_strings_and_metadata_an_object(self, client, post, tenant, account):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1)]}))
        debit = self.list(client, tenant, account["id"])[0]
        assert (debit["description"], debit["user_id"], debit["metadata"]) == ("", "", {})

    def test_a_time_range(self, client, post, tenant, account):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1)]}))
        everything = self.list(client, tenant, account["id"])
        newest = everything[0]["created_at"]
        oldest = everything[-1]["created_at"]
        assert self.list(client, tenant, account["id"], start_range=newest) == everything[:1]
        # end_range is inclusive, as Frontier's clients expect.
        assert self.list(client, tenant, account["id"], end_range=newest) == everything
        assert self.list(client, tenant, account["id"], end_range=oldest) == everything[1:]
        assert self.list(client, tenant, account["id"], start_range="2000-01-01T00:00:00Z", end_range="") == everything
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert self.list(client, tenant, account["id"], start_range=future) == []

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"start_range": "yesterday"}, "start_range"),
            ({"start_range": "2024-01-01"}, "start_range"),
            ({"end_range": "2024-01-01T00:00:00"}, "end_range"),
            ({"start_range": "2024-02-01T00:00:00Z", "end_range": "2024-01-01T00:00:00Z"}, "end_range"),
        ],
    )
    def test_a_bad_range_is_invalid_argument(self, client, tenant, account, params, field):
        response = client.get(transactions_path(tenant.id, account["id"]), params=params, headers=tenant.headers)
        assert_error(response, 400, INVALID_ARGUMENT, field)


class TestCheck:
    def test_whether_the_account_can_spend(self, post, tenant, account):
        for amount, expected in [(INITIAL_CREDITS, True), (INITIAL_CREDITS + 1, False), ("1", True)]:
            response = post(CHECK, {"org_id": tenant.id, "amount": amount})
            assert response.status_code == 200, response.text
            assert response.json() == {"status": expected}
        assert native_transactions(tenant, account["id"])[0]["kind"] == "grant"

    def test_the_credit_floor_counts(self, post, tenant, account):
        allowed = tenant.create_account(name="Overdraft", credit_min=-10)
        body = {"org_id": tenant.id, "billing_id": allowed["id"]}
        assert post(CHECK, {**body, "amount": 10}).json() == {"status": True}
        assert post(CHECK, {**body, "amount": 11}).json() == {"status": False}

    def test_with_basic_and_a_read_only_key(self, client, tenant, account):
        reader = tenant.create_key(scopes=["billing:read"])["key"]
        response = client.post(CHECK, json={"org_id": tenant.id, "amount": 5}, headers=basic(reader))
        assert response.json() == {"status": True}

    @pytest.mark.parametrize("amount", [0, -1, "x", None, 1.5])
    def test_a_bad_amount(self, post, tenant, account, amount):
        assert_error(post(CHECK, {"org_id": tenant.id, "amount": amount}), 400, INVALID_ARGUMENT, "amount")

    def test_an_unknown_billing_account(self, post, tenant, account):
        response = post(CHECK, {"org_id": tenant.id, "billing_id": new_id(), "amount": 1})
        assert_error(response, 404, NOT_FOUND, "billing account not found")


# --- revert ----------------------------------------------------------------------------------------


class TestRevert:
    @pytest.fixture
    def spent(self, post, tenant, account):
        """A usage of 40 credits on the account."""
        sent = usage(40)
        assert_ok(post(USAGES, {"org_id": tenant.id, "billing_id": account["id"], "usages": [sent]}))
        return sent["id"]

    def revert(self, post: Any, tenant: Tenant, usage_id: str, amount: Any, **extra: Any) -> Any:
        return post(REVERT, {"org_id": tenant.id, "usage_id": usage_id, "amount": amount, **extra})

    def test_partial_reverts_up_to_the_usage(self, post, tenant, account, spent):
        assert_ok(self.revert(post, tenant, spent, 15))
        assert_ok(self.revert(post, tenant, spent, "25", billing_id=account["id"]))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS
        reverts = [t for t in native_transactions(tenant, account["id"]) if t["kind"] == "revert"]
        assert sorted(t["amount"] for t in reverts) == [15, 25]

    def test_beyond_the_usage_is_invalid_argument(self, post, tenant, account, spent):
        assert_ok(self.revert(post, tenant, spent, 30))
        state = State(tenant, account["id"])
        assert_error(self.revert(post, tenant, spent, 11), 400, INVALID_ARGUMENT, "40")
        state.assert_unchanged()
        assert_ok(self.revert(post, tenant, spent, 10))

    def test_a_revert_cannot_be_reverted(self, client, post, tenant, account, spent):
        assert_ok(self.revert(post, tenant, spent, 10))
        frontier = client.get(transactions_path(tenant.id, account["id"]), headers=tenant.headers).json()
        revert_id = frontier["transactions"][0]["id"]
        assert frontier["transactions"][0]["type"] == "credit"
        state = State(tenant, account["id"])
        assert_error(self.revert(post, tenant, revert_id, 1), 409, ALREADY_EXISTS, "revert")
        state.assert_unchanged()

    def test_an_unknown_usage_is_invalid_argument(self, post, tenant, account, spent):
        """As Frontier answers it (CONTRACT §3.4's quirks): 400 with code 3, not 404."""
        state = State(tenant, account["id"])
        unknown = new_id()
        assert_error(self.revert(post, tenant, unknown, 1), 400, INVALID_ARGUMENT, unknown)
        state.assert_unchanged()

    def test_the_usage_must_be_on_the_billing_account(self, post, tenant, account, spent):
        other = tenant.create_account(name="Other")
        state = State(tenant, account["id"])
        assert_error(self.revert(post, tenant, spent, 1, billing_id=other["id"]), 400, INVALID_ARGUMENT, spent)
        state.assert_unchanged()

    def test_the_usage_id_is_the_uuid_in_any_spelling(self, post, tenant, account, spent):
        assert_ok(self.revert(post, tenant, spent.upper(), 40))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"usage_id": "u-1"}, "usage_id"),
            ({"amount": -1}, "amount"),
            ({"amount": "x"}, "amount"),
            ({"amount": 1.5}, "amount"),
        ],
    )
    def test_bad_input_is_invalid_argument(self, post, tenant, account, spent, change, field):
        body = {"org_id": tenant.id, "usage_id": spent, "amount": 1, **change}
        assert_error(post(REVERT, body), 400, INVALID_ARGUMENT, field)

    def test_reverting_needs_usage_write(self, client, tenant, account, spent):
        reader = tenant.create_key(scopes=["billing:read"])["key"]
        state = State(tenant, account["id"])
        body = {"org_id": tenant.id, "usage_id": spent, "amount": 1}
        assert_error(client.post(REVERT, json=body, headers=bearer(reader)), 403, PERMISSION_DENIED, "usage:write")
        state.assert_unchanged()

    def test_another_tenant_cannot_revert(self, client, tenant, other_tenant, account, spent):
        state = State(tenant, account["id"])
        body = {"org_id": tenant.id, "usage_id": spent, "amount": 1}
        assert_error(client.post(REVERT, json=body, headers=other_tenant.headers), 404, NOT_FOUND)
        other_tenant.create_account()
        # In its own organization, another tenant's usage id is answered as any unknown usage is (400, code 3).
        body = {"org_id": other_tenant.id, "usage_id": spent, "amount": 1}
        foreign = assert_error(client.post(REVERT, json=body, headers=other_tenant.headers), 400, INVALID_ARGUMENT)
        unknown_id = new_id()
        body = {"org_id": other_tenant.id, "usage_id": unknown_id, "amount": 1}
        unknown = assert_error(client.post(REVERT, json=body, headers=other_tenant.headers), 400, INVALID_ARGUMENT)
        assert foreign.replace(spent, unknown_id) == unknown
        state.assert_unchanged()


# --- the dialect as a whole ------------------------------------------------------------------------


class TestDialect:
    def test_an_unknown_path_answers_in_frontier_shape(self, client, tenant):
        assert_error(client.get("/v1beta1/nothing/here", headers=tenant.headers), 404, NOT_FOUND)

    def test_a_wrong_method_answers_in_frontier_shape(self, client, tenant):
        response = client.get(USAGES, headers=tenant.headers)
        assert_error(response, 405, UNIMPLEMENTED)
        assert response.headers["allow"] == "POST"

    def test_every_route_is_documented_with_its_models(self, client):
        spec = client.get("/openapi.json").json()
        routes = {
            ("post", "/v1beta1/organizations/billing/usages"): "FrontierEmpty",
            ("post", "/v1beta1/organizations/{org_id}/billing/{billing_id}/usages"): "FrontierEmpty",
            ("get", "/v1beta1/organizations/{org_id}/billing/{id}/balance"): "FrontierBalanceOut",
            ("get", "/v1beta1/organizations/{org_id}/billing/{billing_id}/transactions"): "FrontierTransactionsOut",
            ("post", "/v1beta1/billing/check"): "FrontierCheckOut",
            ("post", "/v1beta1/organizations/billing/usages/revert"): "FrontierEmpty",
            ("get", "/v1beta1/organizations/{org_id}/billing/transactions"): "FrontierTransactionsOut",
            ("post", "/v1beta1/organizations/billing/check"): "FrontierCheckOut",
            ("post", "/v1beta1/organizations/{org_id}/billing/{billing_id}/check"): "FrontierCheckOut",
            ("get", "/v1beta1/organizations/{org_id}/billing/{billing_id}/debited_transactions_total"): (
                "FrontierDebitedOut"
            ),
            ("post", "/v1beta1/admin/organizations/{org_id}/billing/{billing_id}/usage/{usage_id}/revert"): (
                "FrontierEmpty"
            ),
        }
        for (method, path), model in routes.items():
            operation = spec["paths"][path][method]
            assert operation["tags"] == ["frontier"]
            assert operation["description"]
            responses = operation["responses"]
            assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(f"/{model}")
            for status in ("400", "401", "403", "404", "409", "413", "500"):
                assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/FrontierError")
            assert {"HTTPBearer", "HTTPBasic"} <= {name for item in operation["security"] for name in item}
        error = spec["components"]["schemas"]["FrontierError"]
        assert set(error["required"]) == {"code", "message", "details"}


# --- issue 17: Frontier's transaction ids, the routes it binds, the quirks its clients rely on ---------

REVERT_NAMESPACE = uuid.UUID("967416d0-716e-4308-b58f-2468ac14f20a")  # Frontier's TxNamespaceUUID


def frontier_revert_id(usage_id: str, n: int, account_id: str) -> str:
    """Frontier's TxUUID(usage id, n, customer id), computed here independently of meterbook."""
    return str(uuid.uuid5(REVERT_NAMESPACE, f"{usage_id}:{n}:{account_id}"))


def org_transactions_path(org_id: str) -> str:
    return f"/v1beta1/organizations/{org_id}/billing/transactions"


def check_path(org_id: str, billing_id: str) -> str:
    return f"/v1beta1/organizations/{org_id}/billing/{billing_id}/check"


def debited_path(org_id: str, billing_id: str) -> str:
    return f"/v1beta1/organizations/{org_id}/billing/{billing_id}/debited_transactions_total"


def admin_revert_path(org_id: str, billing_id: str, usage_id: str) -> str:
    return f"/v1beta1/admin/organizations/{org_id}/billing/{billing_id}/usage/{usage_id}/revert"


FEATURE_CHECK = "/v1beta1/organizations/billing/check"


def frontier_list(client: TestClient, tenant: Tenant, account_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(transactions_path(tenant.id, account_id), params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    transactions: list[dict[str, Any]] = response.json()["transactions"]
    return transactions


class TestTransactionIds:
    def test_a_debit_has_the_usages_id_and_a_grant_the_grants(self, client, post, tenant, account):
        granted = grant(tenant, account["id"], 5, grant_id="welcome-2026", description="Welcome")
        sent = usage(3)
        assert_ok(post(account_usages_path(tenant.id, account["id"]), {"usages": [sent]}))
        debit, welcome, initial = frontier_list(client, tenant, account["id"])
        assert (debit["id"], debit["type"], debit["amount"]) == (sent["id"], "debit", "3")
        assert (welcome["id"], welcome["type"], welcome["amount"]) == (granted, "credit", "5")
        # A grant without a source has Frontier's default source.
        assert (welcome["source"], initial["source"]) == ("system", "system")

    def test_a_grants_source_is_kept(self, client, tenant, account):
        grant(tenant, account["id"], 5, source="system.buy")
        assert frontier_list(client, tenant, account["id"])[0]["source"] == "system.buy"

    def test_a_native_credit_events_debit_has_the_events_id(self, client, tenant, account):
        event = {"id": "evt-native-1", "account_id": account["id"], "type": "credit", "quantity": 2}
        response = client.post("/v1/events", json=[event], headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert frontier_list(client, tenant, account["id"])[0]["id"] == "evt-native-1"

    def test_a_grant_with_a_usages_id_is_a_conflict_and_writes_nothing(self, client, post, tenant, account):
        sent = usage(3)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        state = State(tenant, account["id"])
        response = client.post(
            f"/v1/accounts/{account['id']}/credits", json={"id": sent["id"], "amount": 5}, headers=tenant.headers
        )
        assert response.status_code == 409, response.text
        assert sent["id"] in response.text
        state.assert_unchanged()

    def test_a_usage_with_a_grants_id_is_already_exists_and_writes_nothing(self, client, post, tenant, account):
        granted = grant(tenant, account["id"], 5)
        state = State(tenant, account["id"])
        batch = [usage(1), {**usage(2), "id": granted}]
        assert_error(post(USAGES, {"org_id": tenant.id, "usages": batch}), 409, ALREADY_EXISTS, granted)
        state.assert_unchanged()
        # Nothing of the batch was kept: its first usage is new when sent again alone.
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": batch[:1]}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS + 5 - 1

    def test_a_native_event_with_a_grants_id_is_a_conflict(self, client, tenant, account):
        granted = grant(tenant, account["id"], 5, grant_id="shared-id")
        state = State(tenant, account["id"])
        event = {"id": granted, "account_id": account["id"], "type": "credit", "quantity": 1}
        response = client.post("/v1/events", json=[event], headers=tenant.headers)
        assert response.status_code == 409, response.text
        state.assert_unchanged()

    def test_another_account_may_use_the_id(self, client, post, tenant, account):
        other = tenant.create_account(name="Other")
        granted = grant(tenant, other["id"], 5)
        assert_ok(
            post(USAGES, {"org_id": tenant.id, "billing_id": account["id"], "usages": [{**usage(1), "id": granted}]})
        )
        assert frontier_list(client, tenant, account["id"])[0]["id"] == granted
        assert frontier_list(client, tenant, other["id"])[0]["id"] == granted


class TestFrontierReverts:
    @pytest.fixture
    def spent(self, post, tenant, account):
        sent = usage(40, source="API", description="report run", user_id="u-7", metadata={"job": "j-1", "rate": 0.25})
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        return sent

    def test_a_revert_is_frontiers_credit(self, client, post, tenant, account, spent):
        assert_ok(post(REVERT, {"org_id": tenant.id, "usage_id": spent["id"], "amount": "15"}))
        assert_ok(post(REVERT, {"org_id": tenant.id, "usage_id": spent["id"], "amount": 5}))
        second, first, debit, _ = frontier_list(client, tenant, account["id"])
        assert debit["id"] == spent["id"]
        for n, revert, amount in ((0, first, "15"), (1, second, "5")):
            assert revert["id"] == frontier_revert_id(spent["id"], n, account["id"])
            assert (revert["type"], revert["amount"]) == ("credit", amount)
            assert (revert["source"], revert["description"], revert["user_id"]) == (
                "system.revert.api",
                "Revert: report run",
                "u-7",
            )
            assert revert["metadata"] == {"job": "j-1", "rate": 0.25, "revert_request_using": spent["id"]}
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 40 + 20

    def test_an_amount_of_zero_is_allowed(self, client, post, tenant, account, spent):
        assert_ok(post(REVERT, {"org_id": tenant.id, "usage_id": spent["id"], "amount": 0}))
        assert_ok(post(REVERT, {"org_id": tenant.id, "usage_id": spent["id"]}))  # absent: proto3's 0
        reverts = frontier_list(client, tenant, account["id"])[:2]
        assert [t["amount"] for t in reverts] == ["0", "0"]
        assert {t["id"] for t in reverts} == {frontier_revert_id(spent["id"], n, account["id"]) for n in (0, 1)}
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 40
        assert_ok(post(REVERT, {"org_id": tenant.id, "usage_id": spent["id"], "amount": 40}))

    def test_a_grants_id_is_not_a_usage(self, post, tenant, account, spent):
        granted = grant(tenant, account["id"], 5)
        state = State(tenant, account["id"])
        assert_error(post(REVERT, {"org_id": tenant.id, "usage_id": granted, "amount": 1}), 400, INVALID_ARGUMENT)
        state.assert_unchanged()

    def test_a_listed_revert_cannot_be_reverted(self, client, post, tenant, account, spent):
        assert_ok(post(REVERT, {"org_id": tenant.id, "usage_id": spent["id"], "amount": 1}))
        listed = frontier_list(client, tenant, account["id"])[0]["id"]
        state = State(tenant, account["id"])
        response = post(admin_revert_path(tenant.id, account["id"], listed), {"amount": "1"})
        assert_error(response, 409, ALREADY_EXISTS, "revert")
        state.assert_unchanged()


class TestAdminRevert:
    @pytest.fixture
    def spent(self, post, tenant, account):
        sent = usage(40)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        return sent["id"]

    def test_reverts_the_usage_in_the_path(self, client, post, tenant, account, spent):
        assert_ok(post(admin_revert_path(tenant.id, account["id"], spent), {"amount": "25"}))
        assert native_balance(tenant, account["id"]) == INITIAL_CREDITS - 15
        revert = frontier_list(client, tenant, account["id"])[0]
        assert revert["id"] == frontier_revert_id(spent, 0, account["id"])
        state = State(tenant, account["id"])
        assert_error(post(admin_revert_path(tenant.id, account["id"], spent), {"amount": 16}), 400, INVALID_ARGUMENT)
        state.assert_unchanged()

    @pytest.mark.parametrize(("part", "field"), [("org", "org_id"), ("billing", "billing_id"), ("usage", "usage_id")])
    def test_ids_in_the_path_must_be_uuids(self, post, tenant, account, spent, part, field):
        ids = {"org": tenant.id, "billing": account["id"], "usage": spent, part: "not-a-uuid"}
        state = State(tenant, account["id"])
        response = post(admin_revert_path(ids["org"], ids["billing"], ids["usage"]), {"amount": 1})
        assert_error(response, 400, INVALID_ARGUMENT, field)
        state.assert_unchanged()

    @pytest.mark.parametrize("body", [{"amount": -1}, {"amount": "x"}, {"amount": 1.5}, {"project_id": "x"}, [], "x"])
    def test_bad_bodies_are_invalid_argument(self, post, tenant, account, spent, body):
        state = State(tenant, account["id"])
        assert_error(post(admin_revert_path(tenant.id, account["id"], spent), body), 400, INVALID_ARGUMENT)
        state.assert_unchanged()

    def test_an_unknown_usage_or_account(self, post, tenant, account, spent):
        state = State(tenant, account["id"])
        assert_error(post(admin_revert_path(tenant.id, account["id"], new_id()), {"amount": 1}), 400, INVALID_ARGUMENT)
        response = post(admin_revert_path(tenant.id, new_id(), spent), {"amount": 1})
        assert_error(response, 404, NOT_FOUND, "billing account not found")
        state.assert_unchanged()

    def test_another_organizations_key_and_the_scope(self, client, tenant, other_tenant, account, spent):
        state = State(tenant, account["id"])
        path = admin_revert_path(tenant.id, account["id"], spent)
        response = client.post(path, json={"amount": 1}, headers=other_tenant.headers)
        assert assert_error(response, 404, NOT_FOUND) == "organization not found"
        reader = tenant.create_key(scopes=["billing:read"])["key"]
        assert_error(client.post(path, json={"amount": 1}, headers=bearer(reader)), 403, PERMISSION_DENIED)
        # A customer's own key may report usage but not revert it: an operator's action.
        assert_error(client.post(path, json={"amount": 1}, headers=bearer(account["api_key"])), 403, PERMISSION_DENIED)
        state.assert_unchanged()


class TestTransactionQuirks:
    def test_since_is_read_as_start_range(self, client, post, tenant, account):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1)]}))
        everything = frontier_list(client, tenant, account["id"])
        newest = everything[0]["created_at"]
        assert frontier_list(client, tenant, account["id"], since=newest) == everything[:1]
        # start_range wins when both are given.
        assert (
            frontier_list(client, tenant, account["id"], since=newest, start_range="2000-01-01T00:00:00Z") == everything
        )
        response = client.get(
            transactions_path(tenant.id, account["id"]), params={"since": "yesterday"}, headers=tenant.headers
        )
        assert_error(response, 400, INVALID_ARGUMENT, "since")

    @pytest.mark.parametrize("expand", [["user", "customer"], ["user,customer"], ["customer", "user", "user"]])
    def test_expand_fills_user_and_customer(self, client, post, tenant, account, expand):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1, user_id="u-9")]}))
        debit, granted = frontier_list(client, tenant, account["id"], expand=expand)
        assert debit["user"] == {"id": "u-9"}
        assert granted["user"] is None  # a grant names no user
        for transaction in (debit, granted):
            customer = transaction["customer"]
            assert (customer["id"], customer["org_id"], customer["name"]) == (account["id"], tenant.id, "Billing")
            assert (customer["currency"], customer["state"]) == (account["currency"].lower(), "active")

    def test_expand_one_of_them(self, client, post, tenant, account):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1, user_id="u-9")]}))
        debit = frontier_list(client, tenant, account["id"], expand="customer")[0]
        assert (debit["user"], debit["customer"]["id"]) == (None, account["id"])

    def test_other_expansions_are_ignored(self, client, post, tenant, account):
        """As Frontier ignores what it does not expand."""
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1, user_id="u-9")]}))
        debit = frontier_list(client, tenant, account["id"], expand=["invoices", "user"])[0]
        assert (debit["user"], debit["customer"]) == ({"id": "u-9"}, None)


class TestOrganizationTransactions:
    def test_the_default_billing_accounts_or_the_one_named(self, client, post, tenant, account):
        other = tenant.create_account(name="Other")
        grant(tenant, other["id"], 7)
        sent = usage(2)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent]}))
        response = client.get(org_transactions_path(tenant.id), headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json()["transactions"] == frontier_list(client, tenant, account["id"])
        assert response.json()["transactions"][0]["id"] == sent["id"]
        named = client.get(org_transactions_path(tenant.id), params={"billing_id": other["id"]}, headers=tenant.headers)
        assert [t["amount"] for t in named.json()["transactions"]] == ["7"]

    def test_the_same_filters(self, client, post, tenant, account):
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1, user_id="u-1")]}))
        everything = frontier_list(client, tenant, account["id"])
        newest = everything[0]["created_at"]
        params = {"start_range": newest, "end_range": newest, "expand": "user"}
        response = client.get(org_transactions_path(tenant.id), params=params, headers=tenant.headers)
        assert [(t["id"], t["user"]) for t in response.json()["transactions"]] == [(everything[0]["id"], {"id": "u-1"})]

    @pytest.mark.parametrize(
        ("path_org", "params", "field"),
        [("x", {}, "org_id"), (None, {"billing_id": "x"}, "billing_id"), (None, {"end_range": "soon"}, "end_range")],
    )
    def test_bad_input(self, client, tenant, account, path_org, params, field):
        response = client.get(org_transactions_path(path_org or tenant.id), params=params, headers=tenant.headers)
        assert_error(response, 400, INVALID_ARGUMENT, field)

    def test_reach(self, client, tenant, other_tenant, account):
        theirs = other_tenant.headers
        response = client.get(org_transactions_path(tenant.id), headers=theirs)
        assert assert_error(response, 404, NOT_FOUND) == "organization not found"
        other_tenant.create_account()
        response = client.get(
            org_transactions_path(other_tenant.id), params={"billing_id": account["id"]}, headers=theirs
        )
        assert_error(response, 404, NOT_FOUND, "billing account not found")
        sibling = bearer(tenant.create_account(name="Sibling")["api_key"])
        response = client.get(org_transactions_path(tenant.id), params={"billing_id": account["id"]}, headers=sibling)
        assert_error(response, 404, NOT_FOUND, "billing account not found")
        assert_error(client.get(org_transactions_path(tenant.id)), 401, UNAUTHENTICATED)


class TestFeatureEntitlement:
    @pytest.fixture
    def seats(self, client, tenant, account):
        response = client.put("/v1/features/seats", json={"description": "Seats", "limit": 2}, headers=tenant.headers)
        assert response.status_code == 201, response.text
        response = client.put("/v1/features/exports", json={"description": "Unlimited"}, headers=tenant.headers)
        assert response.status_code == 201, response.text
        return "seats"

    def checks(self, post: Any, tenant: Tenant, account: dict[str, Any], feature: str) -> list[bool]:
        """The answer at both bindings (which must agree)."""
        answers = [
            post(FEATURE_CHECK, {"org_id": tenant.id, "billing_id": account["id"], "feature": feature}),
            post(FEATURE_CHECK, {"org_id": tenant.id, "feature": feature}),
            post(check_path(tenant.id, account["id"]), {"feature": feature}),
        ]
        for response in answers:
            assert response.status_code == 200, response.text
            assert set(response.json()) == {"status"}
        return [response.json()["status"] for response in answers]

    def test_below_the_limit_then_at_it(self, post, tenant, account, seats):
        assert self.checks(post, tenant, account, "seats") == [True] * 3
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1, type="feature", source="seats")]}))
        assert self.checks(post, tenant, account, "seats") == [True] * 3
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [usage(1, type="feature", source="seats")]}))
        assert self.checks(post, tenant, account, "seats") == [False] * 3

    def test_an_unlimited_feature_is_true_and_an_unknown_one_false(self, post, tenant, account, seats):
        assert self.checks(post, tenant, account, "exports") == [True] * 3
        assert self.checks(post, tenant, account, "storage") == [False] * 3

    def test_the_accounts_own_limit_counts(self, client, post, tenant, account, seats):
        response = client.put(f"/v1/accounts/{account['id']}/limits/seats", json={"limit": 0}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert self.checks(post, tenant, account, "seats") == [False] * 3

    def test_a_project_finds_the_account(self, client, post, tenant, account, seats):
        response = client.post(
            "/v1/projects", json={"name": "P", "billing_account_id": account["id"]}, headers=tenant.headers
        )
        assert response.status_code == 201, response.text
        found = post(FEATURE_CHECK, {"project_id": response.json()["id"], "feature": "seats"})
        assert found.json() == {"status": True}

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "feature"),
            ({"feature": ""}, "feature"),
            ({"feature": 5}, "feature"),
            ({"feature": "seats", "billing_id": "x"}, "billing_id"),
        ],
    )
    def test_bad_input(self, post, tenant, account, seats, body, field):
        assert_error(post(FEATURE_CHECK, {"org_id": tenant.id, **body}), 400, INVALID_ARGUMENT, field)
        if "billing_id" not in body:
            assert_error(post(check_path(tenant.id, account["id"]), body), 400, INVALID_ARGUMENT, field)
        assert_error(post(check_path(tenant.id, "x"), {"feature": "seats"}), 400, INVALID_ARGUMENT, "billing_id")

    def test_organization_and_project_together_are_refused(self, post, tenant, account, seats):
        response = post(FEATURE_CHECK, {"org_id": tenant.id, "project_id": new_id(), "feature": "seats"})
        assert_error(response, 400, INVALID_ARGUMENT)

    def test_reach_and_scope(self, client, tenant, other_tenant, account, seats):
        theirs = other_tenant.headers
        body = {"org_id": tenant.id, "billing_id": account["id"], "feature": "seats"}
        assert assert_error(client.post(FEATURE_CHECK, json=body, headers=theirs), 404, NOT_FOUND) == (
            "organization not found"
        )
        other_tenant.create_account()
        response = client.post(check_path(other_tenant.id, account["id"]), json={"feature": "seats"}, headers=theirs)
        assert_error(response, 404, NOT_FOUND, "billing account not found")
        writer = tenant.create_key(scopes=["usage:write"])["key"]
        response = client.post(check_path(tenant.id, account["id"]), json={"feature": "seats"}, headers=bearer(writer))
        assert_error(response, 403, PERMISSION_DENIED, "billing:read")
        reader = tenant.create_key(scopes=["billing:read"])["key"]
        response = client.post(check_path(tenant.id, account["id"]), json={"feature": "seats"}, headers=basic(reader))
        assert response.json() == {"status": True}


class TestDebitedTotal:
    def test_usage_less_reverts(self, client, post, tenant, account):
        def total() -> Any:
            response = client.get(debited_path(tenant.id, account["id"]), headers=tenant.headers)
            assert response.status_code == 200, response.text
            return response.json()

        assert total() == {"debited": {"amount": "0", "currency": "VC"}}
        sent = usage(40)
        assert_ok(post(USAGES, {"org_id": tenant.id, "usages": [sent, usage(2)]}))
        grant(tenant, account["id"], 1000)  # grants are not debits
        assert total() == {"debited": {"amount": "42", "currency": "VC"}}
        assert_ok(post(REVERT, {"org_id": tenant.id, "usage_id": sent["id"], "amount": 15}))
        assert total() == {"debited": {"amount": "27", "currency": "VC"}}

    def test_bad_input_and_reach(self, client, tenant, other_tenant, account):
        response = client.get(debited_path(tenant.id, "x"), headers=tenant.headers)
        assert_error(response, 400, INVALID_ARGUMENT, "billing_id")
        response = client.get(debited_path(tenant.id, new_id()), headers=tenant.headers)
        assert_error(response, 404, NOT_FOUND, "billing account not found")
        response = client.get(debited_path(tenant.id, account["id"]), headers=other_tenant.headers)
        assert assert_error(response, 404, NOT_FOUND) == "organization not found"
        sibling = bearer(tenant.create_account(name="Sibling")["api_key"])
        assert_error(client.get(debited_path(tenant.id, account["id"]), headers=sibling), 404, NOT_FOUND)
        writer = bearer(tenant.create_key(scopes=["usage:write"])["key"])
        assert_error(client.get(debited_path(tenant.id, account["id"]), headers=writer), 403, PERMISSION_DENIED)
