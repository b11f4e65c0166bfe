"""The prepaid-credit ledger over the native API (CONTRACT §4; invariants 1, 2, 4 and 10).

``POST /v1/accounts/{id}/credits`` grants or sells credits, idempotently by the client's id;
``GET /v1/accounts/{id}/credits`` shows the balance and the floor ``credit_min``;
``GET /v1/accounts/{id}/credits/transactions`` lists every movement, newest first. Credit usage events
(``POST /v1/events``) debit the balance, never below ``credit_min``. Every test runs on both backends.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.conftest import bearer
from tests.helpers import assert_error, assert_invalid, each, ts

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
TRANSACTION_FIELDS = {
    "id",
    "account_id",
    "kind",
    "direction",
    "amount",
    "source",
    "description",
    "user_id",
    "metadata",
    "reverts_id",
    "created_at",
}


# --- helpers ---------------------------------------------------------------------------------------


def grant(client: Any, key: str, account_id: str, amount: Any, **extra: Any) -> Any:
    body = {"id": extra.pop("id", f"grant-{uuid.uuid4().hex}"), "amount": amount, **extra}
    return client.post(f"/v1/accounts/{account_id}/credits", json=body, headers=bearer(key))


def granted(client: Any, key: str, account_id: str, amount: Any, **extra: Any) -> dict[str, Any]:
    response = grant(client, key, account_id, amount, **extra)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def balance_of(client: Any, key: str, account_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/accounts/{account_id}/credits", headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"account_id", "balance", "credit_min", "updated_at"}, body
    return body


def transactions_of(client: Any, key: str, account_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/accounts/{account_id}/credits/transactions", headers=bearer(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"transactions"}, body
    for item in body["transactions"]:
        assert set(item) == TRANSACTION_FIELDS, item
    found: list[dict[str, Any]] = body["transactions"]
    return found


def spend(account_id: str, amount: Any, **extra: Any) -> dict[str, Any]:
    return {"id": f"use-{uuid.uuid4().hex}", "account_id": account_id, "type": "credit", "quantity": amount, **extra}


def post_events(client: Any, key: str, events: list[dict[str, Any]]) -> Any:
    return client.post("/v1/events", json=events, headers=bearer(key))


def set_credit_min(client: Any, key: str, account_id: str, credit_min: int) -> None:
    response = client.patch(f"/v1/accounts/{account_id}", json={"credit_min": credit_min}, headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.json()["credit_min"] == credit_min


class Ledger:
    """One tenant's view of one account's credits."""

    def __init__(self, client: Any, tenant: Any, account: dict[str, Any]) -> None:
        self.client, self.tenant, self.account = client, tenant, account
        self.id = str(account["id"])

    @property
    def key(self) -> str:
        return str(self.tenant.key)

    def grant(self, amount: Any, **extra: Any) -> dict[str, Any]:
        return granted(self.client, self.key, self.id, amount, **extra)

    @property
    def balance(self) -> int:
        return int(balance_of(self.client, self.key, self.id)["balance"])

    @property
    def transactions(self) -> list[dict[str, Any]]:
        return transactions_of(self.client, self.key, self.id)

    def spend(self, *amounts: Any) -> Any:
        return post_events(self.client, self.key, [spend(self.id, amount) for amount in amounts])

    def spent(self, *amounts: Any) -> None:
        response = self.spend(*amounts)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": len(amounts), "duplicates": 0}

    def state(self) -> tuple[int, list[dict[str, Any]]]:
        return self.balance, self.transactions


@pytest.fixture
def ledger(client, tenant):
    return Ledger(client, tenant, tenant.create_account(name="Wallet"))


def assert_insufficient(response: Any) -> None:
    body = assert_error(response, 400, "BAD_REQUEST")
    assert "insufficient credits" in body["note"]


# --- granting --------------------------------------------------------------------------------------


class TestGrant:
    def test_a_grant_is_created(self, ledger):
        response = grant(
            ledger.client,
            ledger.key,
            ledger.id,
            100,
            id="welcome",
            source="Onboarding",
            description="welcome credits",
            metadata={"campaign": "spring"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == TRANSACTION_FIELDS
        uuid.UUID(body["id"])
        assert body["account_id"] == ledger.id
        assert body["kind"] == "grant"
        assert body["direction"] == "credit"
        assert body["amount"] == 100
        assert body["source"] == "Onboarding"
        assert body["description"] == "welcome credits"
        assert body["metadata"] == {"campaign": "spring"}
        assert body["reverts_id"] is None
        assert RFC3339_Z.match(body["created_at"])
        assert ledger.balance == 100
        assert ledger.transactions == [body]

    def test_a_purchase_is_a_purchase(self, ledger):
        body = ledger.grant(40, type="purchase")
        assert body["kind"] == "purchase"
        assert body["direction"] == "credit"
        assert ledger.balance == 40

    def test_grants_add_up(self, ledger):
        ledger.grant(10)
        ledger.grant(15, type="purchase")
        ledger.grant(1)
        assert ledger.balance == 26

    def test_an_identical_retry_returns_the_same_transaction(self, ledger):
        first = ledger.grant(50, id="g-1", description="d")
        again = grant(ledger.client, ledger.key, ledger.id, 50, id="g-1", description="d")
        assert again.status_code == 200, again.text
        assert again.json() == first
        assert ledger.balance == 50
        assert ledger.transactions == [first]

    def test_the_same_id_with_other_content_is_a_conflict(self, ledger):
        first = ledger.grant(50, id="g-1")
        cases = {
            "amount": {"amount": 51},
            "type": {"type": "purchase"},
            "description": {"description": "other"},
            "source": {"source": "elsewhere"},
            "metadata": {"metadata": {"a": 1}},
        }

        def check(change):
            body = {"id": "g-1", "amount": 50, **change}
            headers = ledger.tenant.headers
            response = ledger.client.post(f"/v1/accounts/{ledger.id}/credits", json=body, headers=headers)
            note = assert_error(response, 409, "CONFLICT")["note"]
            assert "g-1" in note
            assert ledger.balance == 50
            assert ledger.transactions == [first]

        each(cases, check)

    def test_the_same_id_for_another_account_is_another_grant(self, ledger, tenant):
        """Grant ids are per account (invariant 1)."""
        first = ledger.grant(50, id="g-1")
        other = Ledger(ledger.client, tenant, tenant.create_account(name="Other"))
        second = other.grant(20, id="g-1")
        assert second["id"] != first["id"]
        assert (ledger.balance, other.balance) == (50, 20)
        assert (ledger.transactions, other.transactions) == ([first], [second])

    def test_grant_ids_are_per_organization(self, ledger, other_tenant):
        ledger.grant(5, id="same")
        other = Ledger(ledger.client, other_tenant, other_tenant.create_account())
        other.grant(7, id="same")
        assert (ledger.balance, other.balance) == (5, 7)

    def test_a_bad_amount_is_refused(self, ledger):
        def check(amount):
            assert_invalid(grant(ledger.client, ledger.key, ledger.id, amount), "body.amount")
            assert ledger.balance == 0
            assert ledger.transactions == []

        each({repr(amount): amount for amount in [0, -1, 1.5, "1.5", "x", None, [], 2**63]}, check)

    def test_a_boolean_is_not_an_amount(self, ledger):
        assert_invalid(grant(ledger.client, ledger.key, ledger.id, True), "body.amount")
        assert ledger.balance == 0
        assert ledger.transactions == []

    def test_a_missing_id_is_refused(self, ledger):
        response = ledger.client.post(
            f"/v1/accounts/{ledger.id}/credits", json={"amount": 5}, headers=ledger.tenant.headers
        )
        assert_invalid(response, "body.id")
        assert ledger.balance == 0

    def test_an_unknown_type_is_refused(self, ledger):
        assert_invalid(grant(ledger.client, ledger.key, ledger.id, 5, type="gift"), "body.type")
        assert ledger.balance == 0

    def test_a_non_uuid_account_is_refused(self, ledger):
        assert_invalid(grant(ledger.client, ledger.key, "nope", 5), "path.account_id")

    def test_an_unknown_account_is_not_found(self, ledger):
        assert_error(grant(ledger.client, ledger.key, str(uuid.uuid4()), 5), 404, "NOT_FOUND")


# --- reading ---------------------------------------------------------------------------------------


class TestBalance:
    def test_a_fresh_account_has_nothing(self, ledger):
        body = balance_of(ledger.client, ledger.key, ledger.id)
        assert body["account_id"] == ledger.id
        assert body["balance"] == 0
        assert body["credit_min"] == 0
        assert ledger.transactions == []

    def test_credit_min_is_shown_after_a_patch(self, ledger):
        ledger.grant(3)
        set_credit_min(ledger.client, ledger.key, ledger.id, -50)
        body = balance_of(ledger.client, ledger.key, ledger.id)
        assert (body["balance"], body["credit_min"]) == (3, -50)
        assert RFC3339_Z.match(body["updated_at"])

    def test_credit_min_set_at_creation(self, client, tenant):
        account = tenant.create_account(credit_min=-7)
        assert balance_of(client, tenant.key, account["id"])["credit_min"] == -7

    def test_an_account_key_reads_its_own_balance(self, ledger):
        ledger.grant(9)
        assert balance_of(ledger.client, ledger.account["api_key"], ledger.id)["balance"] == 9


class TestTransactions:
    def test_newest_first_with_kind_direction_and_amount(self, ledger):
        ledger.grant(100)
        ledger.spent(30)
        ledger.grant(20, type="purchase")
        ledger.spent(5)
        listed = ledger.transactions
        assert [(t["kind"], t["direction"], t["amount"]) for t in listed] == [
            ("usage", "debit", 5),
            ("purchase", "credit", 20),
            ("usage", "debit", 30),
            ("grant", "credit", 100),
        ]
        stamps = [ts(t["created_at"]) for t in listed]
        assert stamps == sorted(stamps, reverse=True)
        assert all(t["account_id"] == ledger.id for t in listed)
        assert len({t["id"] for t in listed}) == 4

    def test_only_the_accounts_own_transactions(self, ledger, tenant):
        other = Ledger(ledger.client, tenant, tenant.create_account(name="Other"))
        ledger.grant(10)
        other.grant(20)
        other.spent(1)
        assert [t["amount"] for t in ledger.transactions] == [10]
        assert [t["amount"] for t in other.transactions] == [1, 20]

    def test_a_usage_event_carries_its_details(self, ledger):
        ledger.grant(10)
        event = spend(ledger.id, 4, source="reports", description="monthly report", user_id="u-7", metadata={"n": 1})
        assert post_events(ledger.client, ledger.key, [event]).status_code == 200
        usage = ledger.transactions[0]
        assert usage["kind"] == "usage"
        assert (usage["source"], usage["description"], usage["user_id"], usage["metadata"]) == (
            "reports",
            "monthly report",
            "u-7",
            {"n": 1},
        )

    def test_a_usage_is_dated_when_it_occurred(self, ledger):
        ledger.grant(10)
        event = spend(ledger.id, 4, occurred_at="2020-02-02T02:02:02Z")
        assert post_events(ledger.client, ledger.key, [event]).status_code == 200
        listed = ledger.transactions
        assert listed[-1]["kind"] == "usage"
        assert listed[-1]["created_at"] == "2020-02-02T02:02:02Z"


# --- spending --------------------------------------------------------------------------------------


class TestSpending:
    def test_credit_events_debit_the_balance(self, ledger):
        ledger.grant(100)
        ledger.spent(7)
        ledger.spent(3, 10)
        assert ledger.balance == 80
        assert sorted(t["amount"] for t in ledger.transactions if t["kind"] == "usage") == [3, 7, 10]

    def test_spending_down_to_exactly_zero(self, ledger):
        ledger.grant(10)
        ledger.spent(10)
        assert ledger.balance == 0

    def test_insufficient_credits_refuse_the_event_and_write_nothing(self, ledger):
        ledger.grant(10)
        before = ledger.state()
        event = spend(ledger.id, 11)
        assert_insufficient(post_events(ledger.client, ledger.key, [event]))
        assert ledger.state() == before
        # The id was not used up: with enough credits, the same event is new.
        ledger.grant(1)
        response = post_events(ledger.client, ledger.key, [event])
        assert response.json() == {"accepted": 1, "duplicates": 0}
        assert ledger.balance == 0

    def test_a_batch_is_checked_as_a_whole(self, ledger):
        ledger.grant(10)
        before = ledger.state()
        assert_insufficient(ledger.spend(4, 4, 4))
        assert ledger.state() == before
        ledger.spent(4, 6)
        assert ledger.balance == 0

    def test_one_account_short_refuses_the_batch_for_every_account(self, ledger, tenant):
        rich = Ledger(ledger.client, tenant, tenant.create_account(name="Rich"))
        rich.grant(100)
        ledger.grant(1)
        before = (ledger.state(), rich.state())
        events = [spend(rich.id, 50), spend(ledger.id, 2), spend(rich.id, 1)]
        assert_insufficient(post_events(ledger.client, ledger.key, events))
        assert (ledger.state(), rich.state()) == before

    def test_insufficient_credits_also_refuse_the_other_kinds_in_the_batch(self, ledger):
        tenant, client = ledger.tenant, ledger.client
        assert client.put("/v1/features/seats", json={"limit": 10}, headers=tenant.headers).status_code == 201
        product = client.put("/v1/products/P1", json={"description": "p", "unit_price": 1}, headers=tenant.headers)
        assert product.status_code == 201, product.text
        ledger.grant(5)
        others = [
            {"id": "f-1", "account_id": ledger.id, "type": "feature", "feature": "seats", "quantity": 3},
            {"id": "m-1", "account_id": ledger.id, "type": "metered", "product_id": "P1", "quantity": 2},
        ]
        assert_insufficient(post_events(client, ledger.key, [others[0], spend(ledger.id, 6), others[1]]))
        usages = client.get("/v1/usages", headers=bearer(ledger.account["api_key"])).json()
        assert usages == [{"name": "seats", "description": "", "limit": 10, "usage": 0}]
        assert ledger.balance == 5
        assert post_events(client, ledger.key, others).json() == {"accepted": 2, "duplicates": 0}

    def test_an_account_never_granted_cannot_spend(self, ledger):
        assert_insufficient(ledger.spend(1))
        assert ledger.balance == 0
        assert ledger.transactions == []

    def test_an_overdraft_down_to_credit_min_and_not_beyond(self, ledger):
        set_credit_min(ledger.client, ledger.key, ledger.id, -50)
        ledger.grant(10)
        ledger.spent(30)
        assert ledger.balance == -20
        before = ledger.state()
        assert_insufficient(ledger.spend(31))
        assert ledger.state() == before
        ledger.spent(30)
        assert ledger.balance == -50
        assert_insufficient(ledger.spend(1))
        assert ledger.balance == -50

    def test_an_overdraft_without_any_grant(self, client, tenant):
        ledger = Ledger(client, tenant, tenant.create_account(credit_min=-5))
        ledger.spent(5)
        assert ledger.balance == -5
        assert_insufficient(ledger.spend(1))

    def test_raising_credit_min_stops_spending(self, ledger):
        ledger.grant(10)
        set_credit_min(ledger.client, ledger.key, ledger.id, 8)
        assert_insufficient(ledger.spend(3))
        ledger.spent(2)
        assert ledger.balance == 8

    def test_a_grant_after_an_overdraft_brings_the_balance_back(self, ledger):
        set_credit_min(ledger.client, ledger.key, ledger.id, -10)
        ledger.spent(10)
        ledger.grant(25)
        assert ledger.balance == 15
        ledger.spent(25)
        assert ledger.balance == -10


# --- who may ---------------------------------------------------------------------------------------


class TestReach:
    def test_another_organization_gets_not_found_everywhere(self, ledger, other_tenant):
        ledger.grant(10, id="mine")
        client = ledger.client
        for response in (
            grant(client, other_tenant.key, ledger.id, 5),
            client.get(f"/v1/accounts/{ledger.id}/credits", headers=other_tenant.headers),
            client.get(f"/v1/accounts/{ledger.id}/credits/transactions", headers=other_tenant.headers),
        ):
            body = assert_error(response, 404, "NOT_FOUND")
            assert "mine" not in response.text
            assert ledger.id in body["note"]
        assert ledger.balance == 10

    def test_an_account_key_does_not_reach_a_sibling(self, ledger, tenant):
        sibling = Ledger(ledger.client, tenant, tenant.create_account(name="Sibling"))
        sibling.grant(3)
        key = ledger.account["api_key"]
        # Granting is the operator's: refused to every account key, before any lookup, so it tells nothing.
        assert_error(grant(ledger.client, key, sibling.id, 5), 403, "FORBIDDEN")
        response = ledger.client.get(f"/v1/accounts/{sibling.id}/credits", headers=bearer(key))
        assert_error(response, 404, "NOT_FOUND")
        assert sibling.balance == 3

    @pytest.mark.parametrize(
        ("scopes", "can_write", "can_read"),
        [
            (["billing:write"], True, False),
            (["billing:read"], False, True),
            (["billing:read", "billing:write"], True, True),
            (["usage:write", "usage:read", "accounts:write"], False, False),
        ],
    )
    def test_scopes(self, ledger, scopes, can_write, can_read):
        key = ledger.tenant.create_key(scopes=scopes)["key"]
        response = grant(ledger.client, key, ledger.id, 5)
        if can_write:
            assert response.status_code == 201, response.text
        else:
            assert "billing:write" in assert_error(response, 403, "FORBIDDEN")["note"]
        for path in (f"/v1/accounts/{ledger.id}/credits", f"/v1/accounts/{ledger.id}/credits/transactions"):
            response = ledger.client.get(path, headers=bearer(key))
            if can_read:
                assert response.status_code == 200, response.text
            else:
                assert "billing:read" in assert_error(response, 403, "FORBIDDEN")["note"]
        assert ledger.balance == (5 if can_write else 0)
