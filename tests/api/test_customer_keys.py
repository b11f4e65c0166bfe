"""Issue 15, findings 1 to 4: what a customer's key (an account key) may do, whatever its scopes say.

Contract §4, "Who may do what": an account key reads its account and subaccounts, reports their usage,
creates subaccounts, keys and projects within its subtree, and changes the name, branding and e-mail of the
accounts it reaches. Everything that decides money needs an organization key. An archived account's keys
may read, never write. A key never makes a key with more scopes or a later expiry than its own, and
revoking a key revokes the keys it made.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.billing import LONG_AGO, at, months_ago
from tests.conftest import Tenant, bearer
from tests.helpers import assert_error

PRODUCT = "TD-USG-TEL-UG-102213"
FEATURE = "seats"


def ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200, 201, 202)), response.text
    return response.json()


def future(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class World:
    """An organization with a parent account, its subaccount and a sibling, a product, a feature and an invoice."""

    def __init__(self, client: TestClient, tenant: Tenant) -> None:
        self.client, self.tenant = client, tenant
        self.parent = tenant.create_account(
            name="Parent", commitment={"monthly_cost": 100}, contract_started_at=LONG_AGO
        )
        self.child = tenant.create_account(name="Child", parent_account_id=self.parent["id"])
        self.sibling = tenant.create_account(name="Sibling")
        headers = tenant.headers
        ok(
            client.put(
                f"/v1/products/{PRODUCT}",
                json={"description": "Calls", "unit_price": "0.5", "price_effective_from": LONG_AGO},
                headers=headers,
            )
        )
        ok(client.put(f"/v1/features/{FEATURE}", json={"default_limit": 3}, headers=headers))
        ok(client.post(f"/v1/accounts/{self.parent['id']}/credits", json={"id": "g1", "amount": 10}, headers=headers))
        self.usage_id = str(uuid.uuid4())
        month = months_ago(1)
        ok(
            client.post(
                "/v1/events",
                json=[
                    {"id": self.usage_id, "account_id": self.parent["id"], "type": "credit", "quantity": 2},
                    {
                        "id": "m1",
                        "account_id": self.parent["id"],
                        "type": "metered",
                        "product_id": PRODUCT,
                        "quantity": "4",
                        "occurred_at": at(month),
                    },
                ],
                headers=headers,
            )
        )
        ok(client.post("/v1/billing_runs", json={"month": month}, headers=headers))
        invoices = ok(client.get(f"/v1/invoices?account_id={self.parent['id']}", headers=headers))["invoices"]
        self.invoice_id = invoices[0]["id"]

    def state(self) -> dict[str, Any]:
        """What an operator would check after an attack: the catalog, features, accounts, credits, invoices."""
        get = lambda url: ok(self.client.get(url, headers=self.tenant.headers))  # noqa: E731
        return {
            "products": get("/v1/products"),
            "features": get("/v1/features"),
            "accounts": get("/v1/accounts"),
            "credits": get(f"/v1/accounts/{self.parent['id']}/credits"),
            "transactions": get(f"/v1/accounts/{self.parent['id']}/credits/transactions"),
            "invoices": get(f"/v1/invoices?account_id={self.parent['id']}"),
            "payments": get(f"/v1/payments?account_id={self.parent['id']}"),
            "usages": get(f"/v1/accounts/{self.parent['id']}/billing")["usages"],
        }


@pytest.fixture
def world(client: TestClient, tenant: Tenant) -> World:
    return World(client, tenant)


def operator_actions(w: World) -> dict[str, tuple[str, str, Any]]:
    """Every operator action of the findings, aimed at the parent account (the attacker's own)."""
    parent = w.parent["id"]
    return {
        "reprice the catalog": (
            "PUT",
            f"/v1/products/{PRODUCT}",
            {"description": "Calls", "unit_price": "0", "price_effective_from": "2000-01-01T00:00:00Z"},
        ),
        "lift a feature for every account": ("PUT", f"/v1/features/{FEATURE}", {"default_limit": None}),
        "block every sibling": ("PUT", f"/v1/features/{FEATURE}", {"default_limit": 0}),
        "lift its own limit": ("PUT", f"/v1/accounts/{parent}/limits/{FEATURE}", {"limit": 1000000}),
        "overdraw": ("PATCH", f"/v1/accounts/{parent}", {"credit_min": -1000000000}),
        "drop its commitment": ("PATCH", f"/v1/accounts/{parent}", {"commitment": {"monthly_cost": 0}}),
        "stretch its terms": ("PATCH", f"/v1/accounts/{parent}", {"net_terms_days": 365}),
        "change its currency": ("PATCH", f"/v1/accounts/{parent}", {"currency": "EUR"}),
        "set its status": ("PATCH", f"/v1/accounts/{parent}", {"status": "error"}),
        "grant itself credits": ("POST", f"/v1/accounts/{parent}/credits", {"id": "free", "amount": 1000000000}),
        "pay its own invoice": (
            "POST",
            "/v1/payments",
            {"account_id": parent, "amount": "50", "invoice_id": w.invoice_id},
        ),
        "void its invoice": ("POST", f"/v1/invoices/{w.invoice_id}/void", None),
        "run billing": ("POST", "/v1/billing_runs", {"month": months_ago(2)}),
        "create a subaccount with overdraft": (
            "POST",
            "/v1/accounts",
            {"name": "Overdraft", "parent_account_id": parent, "credit_min": -1000},
        ),
        # Last: the operator's own run of this list archives the account for good.
        "archive itself": ("DELETE", f"/v1/accounts/{parent}", None),
    }


class TestAnAccountKeyIsNotTheOperator:
    @pytest.mark.parametrize("whose", ["parent", "child"])
    def test_every_operator_action_is_refused_and_changes_nothing(
        self, client: TestClient, world: World, whose: str
    ) -> None:
        key = getattr(world, whose)["api_key"]
        before = world.state()
        failures = []
        for name, (method, url, body) in operator_actions(world).items():
            if whose == "child" and "/accounts/" in url and world.parent["id"] in url:
                continue  # the parent is outside the child's reach: that is the reach rule's test
            response = client.request(method, url, json=body, headers=bearer(key))
            if response.status_code != 403:
                failures.append(f"{name}: {response.status_code} {response.text[:200]}")
            elif "organization key" not in response.json()["note"]:
                failures.append(f"{name}: the note does not say what to use instead: {response.text}")
        assert not failures, "\n".join(failures)
        assert world.state() == before

    def test_the_revert_of_usage_is_the_operators(self, client: TestClient, world: World) -> None:
        body = {"org_id": world.tenant.id, "billing_id": world.parent["id"], "usage_id": world.usage_id, "amount": 2}
        before = world.state()
        response = client.post(
            "/v1beta1/organizations/billing/usages/revert", json=body, headers=bearer(world.parent["api_key"])
        )
        assert response.status_code == 403, response.text
        assert response.json()["code"] == 7
        assert world.state() == before
        assert (
            client.post("/v1beta1/organizations/billing/usages/revert", json=body, headers=world.tenant.headers).json()
            == {}
        )

    def test_a_customer_changes_name_branding_and_email(self, client: TestClient, world: World) -> None:
        response = client.patch(
            f"/v1/accounts/{world.parent['id']}",
            json={"name": "Renamed", "email": "billing@parent.example", "branding": {"suppress_from_reports": True}},
            headers=bearer(world.parent["api_key"]),
        )
        body = ok(response)
        assert (body["name"], body["branding"]) == ("Renamed", {"suppress_from_reports": True})
        # ...of its subaccount too, which it reaches.
        child = ok(
            client.patch(
                f"/v1/accounts/{world.child['id']}", json={"name": "Team B"}, headers=bearer(world.parent["api_key"])
            )
        )
        assert child["name"] == "Team B"

    def test_sending_an_unchanged_money_setting_is_no_change(self, client: TestClient, world: World) -> None:
        """A client that sends the whole account back with a new name is not refused for the fields it kept."""
        current = ok(client.get(f"/v1/accounts/{world.parent['id']}", headers=bearer(world.parent["api_key"])))
        patch = {"name": "Same Terms", "commitment": current["commitment"], "status": current["status"]}
        body = ok(
            client.patch(f"/v1/accounts/{world.parent['id']}", json=patch, headers=bearer(world.parent["api_key"]))
        )
        assert body["name"] == "Same Terms"
        assert body["commitment"] == current["commitment"]

    def test_the_refusal_names_the_money_fields(self, client: TestClient, world: World) -> None:
        response = client.patch(
            f"/v1/accounts/{world.parent['id']}",
            json={"name": "X", "credit_min": -5, "net_terms_days": 90},
            headers=bearer(world.parent["api_key"]),
        )
        note = assert_error(response, 403, "FORBIDDEN")["note"]
        assert "credit_min" in note
        assert "net_terms_days" in note
        assert ok(client.get(f"/v1/accounts/{world.parent['id']}", headers=world.tenant.headers))["name"] == "Parent"

    def test_a_customer_creates_a_subaccount_with_its_own_fields_and_currency(
        self, client: TestClient, world: World
    ) -> None:
        created = ok(
            client.post(
                "/v1/accounts",
                json={"name": "EU team", "email": "eu@parent.example", "currency": "EUR"},
                headers=bearer(world.parent["api_key"]),
            )
        )
        assert (created["parent_account_id"], created["name"]) == (world.parent["id"], "EU team")
        stored = ok(client.get(f"/v1/accounts/{created['id']}", headers=world.tenant.headers))
        assert stored["commitment"]["monthly_cost"] == 0

    def test_the_operator_still_does_all_of_it(self, client: TestClient, world: World) -> None:
        for name, (method, url, body) in operator_actions(world).items():
            response = client.request(method, url, json=body, headers=world.tenant.headers)
            assert response.status_code < 300, f"{name}: {response.status_code} {response.text}"

    def test_scopes_do_not_widen_an_account_key(self, client: TestClient, world: World) -> None:
        """An organization key may give an account key every scope: it is still a customer's key."""
        key = world.tenant.create_key(account_id=world.parent["id"], scopes=["*"])["key"]
        response = client.put(f"/v1/features/{FEATURE}", json={"default_limit": 0}, headers=bearer(key))
        assert_error(response, 403, "FORBIDDEN")


class TestArchivedAccountKeys:
    def test_an_archived_accounts_key_reads_and_never_writes(self, client: TestClient, world: World) -> None:
        key = world.parent["api_key"]
        ok(client.delete(f"/v1/accounts/{world.parent['id']}", headers=world.tenant.headers))
        parent = world.parent["id"]
        for url in (
            f"/v1/accounts/{parent}",
            f"/v1/accounts/{parent}/billing",
            f"/v1/accounts/{parent}/credits",
            f"/v1/invoices?account_id={parent}",
            "/v1/api_keys",
        ):
            assert client.get(url, headers=bearer(key)).status_code == 200, url
        before = world.state()
        writes = {
            "rename": ("PATCH", f"/v1/accounts/{parent}", {"name": "Still here"}),
            "create a subaccount": ("POST", "/v1/accounts", {"name": "Ghost"}),
            "make a key": ("POST", "/v1/api_keys", {}),
            "report usage": (
                "POST",
                "/v1/events",
                [{"id": "late", "account_id": parent, "type": "credit", "quantity": 1}],
            ),
            "create a project": ("POST", "/v1/projects", {"name": "ghost"}),
            "revoke a key": ("DELETE", f"/v1/api_keys/{uuid.uuid4()}", None),
        }
        for name, (method, url, body) in writes.items():
            response = client.request(method, url, json=body, headers=bearer(key))
            assert response.status_code == 403, f"{name}: {response.status_code} {response.text}"
            assert "archived" in response.json()["note"], name
        assert world.state() == before

    def test_a_live_subaccounts_key_still_writes_under_an_archived_parent(
        self, client: TestClient, world: World
    ) -> None:
        """Archiving is per account: the subaccount is not archived, so its own key goes on working."""
        ok(client.delete(f"/v1/accounts/{world.parent['id']}", headers=world.tenant.headers))
        events = [
            {"id": "child-1", "account_id": world.child["id"], "type": "feature", "feature": FEATURE, "quantity": 1}
        ]
        assert ok(client.post("/v1/events", json=events, headers=bearer(world.child["api_key"])))["accepted"] == 1


class TestKeyLineage:
    def test_a_child_key_expires_with_its_maker(self, client: TestClient, tenant: Tenant) -> None:
        maker = tenant.create_key(name="maker", expires_at=future(2))
        child = ok(client.post("/v1/api_keys", json={"name": "child"}, headers=bearer(maker["key"])))
        assert child["expires_at"] == maker["expires_at"]
        sooner = ok(client.post("/v1/api_keys", json={"expires_at": future(1)}, headers=bearer(maker["key"])))
        assert sooner["expires_at"] == future(1)

    def test_a_key_cannot_make_a_key_that_outlives_it(self, client: TestClient, tenant: Tenant) -> None:
        maker = tenant.create_key(name="maker", expires_at=future(2))
        before = ok(client.get("/v1/api_keys", headers=tenant.headers))
        response = client.post("/v1/api_keys", json={"expires_at": future(30)}, headers=bearer(maker["key"]))
        assert "outlives" in assert_error(response, 403, "FORBIDDEN")["note"]
        assert ok(client.get("/v1/api_keys", headers=tenant.headers)) == before

    def test_an_accounts_first_key_is_bounded_by_its_makers(self, client: TestClient, tenant: Tenant) -> None:
        maker = tenant.create_key(name="maker", expires_at=future(2), scopes=["accounts:read", "accounts:write"])
        account = ok(client.post("/v1/accounts", json={"name": "Made"}, headers=bearer(maker["key"])))
        keys = {key["account_id"]: key for key in ok(client.get("/v1/api_keys", headers=tenant.headers))}
        made = keys[account["id"]]
        assert made["expires_at"] == maker["expires_at"]
        assert made["scopes"] == ["accounts:read", "accounts:write"]

    def test_revoking_a_key_revokes_every_key_below_it(self, client: TestClient, tenant: Tenant) -> None:
        account = tenant.create_account(name="Customer")
        first = tenant.create_key(name="first")
        second = ok(client.post("/v1/api_keys", json={"name": "second"}, headers=bearer(first["key"])))
        third = ok(client.post("/v1/api_keys", json={"account_id": account["id"]}, headers=bearer(second["key"])))
        made_account = ok(client.post("/v1/accounts", json={"name": "By second"}, headers=bearer(second["key"])))
        bystander = tenant.create_key(name="bystander")
        for key in (second["key"], third["key"], made_account["api_key"], bystander["key"]):
            assert client.get("/v1/accounts", headers=bearer(key)).status_code == 200
        ok(client.delete(f"/v1/api_keys/{first['id']}", headers=tenant.headers))
        for key in (first["key"], second["key"], third["key"], made_account["api_key"]):
            assert_error(client.get("/v1/accounts", headers=bearer(key)), 401, "INVALID_AUTHORIZATION")
        assert client.get("/v1/accounts", headers=bearer(bystander["key"])).status_code == 200
        listed = {key["id"]: key for key in ok(client.get("/v1/api_keys", headers=tenant.headers))}
        assert all(listed[k["id"]]["revoked_at"] is not None for k in (first, second, third))
        assert listed[bystander["id"]]["revoked_at"] is None
        # The organization's own first key was made by no key, so none of this touched it.
        assert client.get("/v1/accounts", headers=tenant.headers).status_code == 200

    def test_a_customer_revokes_what_it_made_and_only_within_its_reach(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        a = tenant.create_account(name="A")
        b = tenant.create_account(name="B")
        made = ok(client.post("/v1/api_keys", json={"name": "ci"}, headers=bearer(a["api_key"])))
        listed = {key["name"]: key for key in ok(client.get("/v1/api_keys", headers=bearer(b["api_key"])))}
        assert "ci" not in listed
        assert_error(client.delete(f"/v1/api_keys/{made['id']}", headers=bearer(b["api_key"])), 404, "NOT_FOUND")
        ok(client.delete(f"/v1/api_keys/{made['id']}", headers=bearer(a["api_key"])))
        assert client.get("/v1/accounts", headers=bearer(made["key"])).status_code == 401
