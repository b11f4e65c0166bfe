"""Ids are per account (contract invariant 1; security finding 5 of issue 15).

A usage event id, a credit grant id and a payment id are unique per account, not per organization:
two accounts of one organization may use the same id, each is applied, and neither caller sees a
409 or learns anything of the other's use of it. A subaccount key cannot block a sibling's batch by
using its ids first. Each account's retry is still idempotent, and the same id with other content in
the same account is still a conflict. A Frontier revert by usage id needs the billing account when
two accounts the key reaches used the id. Every test runs on SQLite and on PostgreSQL; each checks
what the caller sees and then the stored state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterbook.accounts.service import authenticate
from meterbook.db import Database
from meterbook.db.tables import usage_events
from meterbook.usage import service as usage_service
from meterbook.usage.schemas import EventIn
from meterbook.usage.service import IngestResult
from tests.api import test_frontier as frontier
from tests.billing import Billing, at, exact, months_ago
from tests.conftest import Tenant, bearer
from tests.helpers import assert_error

CREDITS = 100
HISTORY = "/client/v4/user/billing/history"


# --- a family of accounts --------------------------------------------------------------------------


@dataclass
class Family:
    """An organization with a parent account and two subaccounts (siblings), each with its own key and credits."""

    client: TestClient
    tenant: Tenant
    database: Database
    parent: dict[str, Any]
    first: dict[str, Any]
    second: dict[str, Any]

    def post_events(self, events: list[dict[str, Any]], key: str | None = None) -> Any:
        return self.client.post("/v1/events", json=events, headers=bearer(key or self.tenant.key))

    def ingested(self, events: list[dict[str, Any]], key: str | None = None) -> dict[str, Any]:
        response = self.post_events(events, key)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def balance(self, account: dict[str, Any]) -> int:
        response = self.client.get(f"/v1/accounts/{account['id']}/credits", headers=self.tenant.headers)
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])

    def transactions(self, account: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.client.get(f"/v1/accounts/{account['id']}/credits/transactions", headers=self.tenant.headers)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["transactions"]
        return found

    def stored(self) -> dict[tuple[str, str], tuple[str, str]]:
        """The organization's stored events: (account, id) -> (kind, quantity text)."""
        with self.database.read() as conn:
            rows = conn.execute(
                select(
                    usage_events.c.account_id, usage_events.c.id, usage_events.c.kind, usage_events.c.quantity
                ).where(usage_events.c.organization_id == uuid.UUID(self.tenant.id))
            ).all()
        return {(str(row.account_id), row.id): (row.kind, row.quantity) for row in rows}

    def snapshot(self) -> dict[str, Any]:
        accounts = (self.parent, self.first, self.second)
        return {
            "balances": [self.balance(a) for a in accounts],
            "transactions": [self.transactions(a) for a in accounts],
            "events": self.stored(),
        }


@pytest.fixture
def family(client: TestClient, tenant: Tenant, database: Database) -> Family:
    parent = tenant.create_account(name="Parent")
    first = tenant.create_account(key=parent["api_key"], name="First")
    second = tenant.create_account(key=parent["api_key"], name="Second")
    assert first["parent_account_id"] == second["parent_account_id"] == parent["id"]
    response = client.put("/v1/products/P1", json={"description": "Calls", "unit_price": "0.5"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    for account in (parent, first, second):
        response = client.post(
            f"/v1/accounts/{account['id']}/credits",
            json={"id": f"initial-{account['id']}", "amount": CREDITS},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
    return Family(client, tenant, database, parent, first, second)


def credit(account: dict[str, Any], quantity: int, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id or f"ev-{uuid.uuid4().hex}",
        "account_id": account["id"],
        "type": "credit",
        "quantity": quantity,
        **extra,
    }


def metered(account: dict[str, Any], quantity: str, event_id: str) -> dict[str, Any]:
    return {"id": event_id, "account_id": account["id"], "type": "metered", "product_id": "P1", "quantity": quantity}


# --- usage events ----------------------------------------------------------------------------------


class TestEvents:
    def test_siblings_use_the_same_id_and_neither_learns_of_the_other(self, family):
        first_key, second_key = family.first["api_key"], family.second["api_key"]
        assert family.ingested([credit(family.first, 3, "shared")], first_key) == {"accepted": 1, "duplicates": 0}
        # The sibling's answer is the one it gets for an id nobody used: no 409, no duplicate.
        assert family.ingested([credit(family.second, 5, "shared")], second_key) == {"accepted": 1, "duplicates": 0}
        assert (family.balance(family.first), family.balance(family.second)) == (CREDITS - 3, CREDITS - 5)
        assert family.stored() == {
            (family.first["id"], "shared"): ("credit", "3"),
            (family.second["id"], "shared"): ("credit", "5"),
        }
        # Each account's retry is still a duplicate, and changes nothing.
        before = family.snapshot()
        assert family.ingested([credit(family.first, 3, "shared")], first_key) == {"accepted": 0, "duplicates": 1}
        assert family.ingested([credit(family.second, 5, "shared")], second_key) == {"accepted": 0, "duplicates": 1}
        assert family.snapshot() == before

    def test_the_same_id_with_other_content_in_the_same_account_is_still_a_conflict(self, family):
        first_key, second_key = family.first["api_key"], family.second["api_key"]
        family.ingested([credit(family.first, 3, "shared")], first_key)
        family.ingested([credit(family.second, 5, "shared")], second_key)
        before = family.snapshot()
        for key, account, quantity in ((first_key, family.first, 5), (second_key, family.second, 3)):
            response = family.post_events([credit(account, 1), credit(account, quantity, "shared")], key)
            body = assert_error(response, 409, "CONFLICT")
            assert "shared" in body["note"]
        assert family.snapshot() == before

    def test_a_sibling_cannot_block_a_batch_by_using_its_ids_first(self, family):
        planned = [
            credit(family.second, 1),
            metered(family.second, "2.5", f"m-{uuid.uuid4().hex}"),
            credit(family.second, 4),
        ]
        # The first sibling learns (or guesses) the second's ids and uses them first, with its own content.
        squatted = [credit(family.first, 2, planned[0]["id"]), metered(family.first, "9", planned[1]["id"])]
        assert family.ingested(squatted, family.first["api_key"]) == {"accepted": 2, "duplicates": 0}
        assert family.ingested(planned, family.second["api_key"]) == {"accepted": 3, "duplicates": 0}
        assert family.balance(family.second) == CREDITS - 1 - 4
        assert family.balance(family.first) == CREDITS - 2
        stored = family.stored()
        assert stored[(family.second["id"], planned[0]["id"])] == ("credit", "1")
        assert stored[(family.second["id"], planned[1]["id"])] == ("metered", "2.5")
        assert stored[(family.first["id"], planned[1]["id"])] == ("metered", "9")

    def test_the_organization_key_uses_one_id_for_two_accounts_in_one_batch(self, family):
        batch = [credit(family.first, 3, "x"), credit(family.second, 4, "x"), credit(family.first, 3, "x")]
        assert family.ingested(batch) == {"accepted": 2, "duplicates": 1}
        assert (family.balance(family.first), family.balance(family.second)) == (CREDITS - 3, CREDITS - 4)
        usages = [t for t in family.transactions(family.second) if t["kind"] == "usage"]
        assert [t["amount"] for t in usages] == [4]
        before = family.snapshot()
        assert family.ingested(list(reversed(batch))) == {"accepted": 0, "duplicates": 3}
        # Twice in one batch for one account with other content: a conflict, and nothing of the batch applies.
        response = family.post_events(
            [credit(family.parent, 1, "y"), credit(family.first, 3, "z"), credit(family.first, 4, "z")]
        )
        assert_error(response, 409, "CONFLICT")
        assert family.snapshot() == before

    def test_kinds_may_differ_between_accounts_under_one_id(self, family):
        batch = [credit(family.first, 3, "k"), metered(family.second, "1.5", "k")]
        assert family.ingested(batch) == {"accepted": 2, "duplicates": 0}
        assert family.stored() == {
            (family.first["id"], "k"): ("credit", "3"),
            (family.second["id"], "k"): ("metered", "1.5"),
        }
        for account, units in ((family.first, []), (family.second, [Decimal("1.5")])):
            response = family.client.get(
                "/express/usage/month",
                params={"filter": f"account_id eq '{account['id']}'"},
                headers=family.tenant.headers,
            )
            assert response.status_code == 200, response.text
            found = exact(response)["_embedded"]["usage"]
            assert [Decimal(item["number_of_units"]) for item in found] == units

    def test_batches_of_one_key_committed_together(self, family):
        """The group committer's merged path (consecutive requests of one key): each request's own result."""
        with family.database.write() as conn:
            principal = authenticate(conn, family.tenant.key)
            results = usage_service.ingest_group(
                conn,
                [
                    (principal, [EventIn.model_validate(credit(family.first, 2, "g"))]),
                    (principal, [EventIn.model_validate(credit(family.second, 3, "g"))]),
                    (principal, [EventIn.model_validate(credit(family.first, 2, "g"))]),
                ],
            )
        assert results == [
            IngestResult(accepted=1, duplicates=0, credits_debited=2),
            IngestResult(accepted=1, duplicates=0, credits_debited=3),
            IngestResult(accepted=0, duplicates=1, credits_debited=0),
        ]
        assert (family.balance(family.first), family.balance(family.second)) == (CREDITS - 2, CREDITS - 3)

    def test_frontier_usage_of_siblings_under_one_id(self, family):
        usage_id = str(uuid.uuid4())

        def report(account: dict[str, Any], amount: int) -> Any:
            body = {
                "org_id": family.tenant.id,
                "billing_id": account["id"],
                "usages": [{"id": usage_id, "amount": amount}],
            }
            return family.client.post(frontier.USAGES, json=body, headers=bearer(account["api_key"]))

        frontier.assert_ok(report(family.first, 10))
        frontier.assert_ok(report(family.second, 20))
        frontier.assert_ok(report(family.second, 20))
        assert (family.balance(family.first), family.balance(family.second)) == (CREDITS - 10, CREDITS - 20)
        before = family.snapshot()
        frontier.assert_error(report(family.second, 21), 409, frontier.ALREADY_EXISTS, usage_id)
        assert family.snapshot() == before


# --- credit grants ---------------------------------------------------------------------------------


class TestGrants:
    def test_one_grant_id_for_two_accounts(self, family):
        def grant(account: dict[str, Any], amount: int) -> Any:
            return family.client.post(
                f"/v1/accounts/{account['id']}/credits",
                json={"id": "promo", "amount": amount},
                headers=family.tenant.headers,
            )

        first = grant(family.first, 10)
        second = grant(family.second, 20)
        assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
        assert (first.json()["account_id"], second.json()["account_id"]) == (family.first["id"], family.second["id"])
        # Each retry is the first grant again; other content under the id in one account is a conflict.
        before = family.snapshot()
        for account, amount, created in ((family.first, 10, first), (family.second, 20, second)):
            again = grant(account, amount)
            assert again.status_code == 200, again.text
            assert again.json() == created.json()
            note = assert_error(grant(account, amount + 1), 409, "CONFLICT")["note"]
            assert "promo" in note
        assert family.snapshot() == before
        assert (family.balance(family.first), family.balance(family.second)) == (CREDITS + 10, CREDITS + 20)


# --- payments --------------------------------------------------------------------------------------


class TestPayments:
    @pytest.fixture
    def owing(self, tenant: Tenant) -> tuple[Billing, dict[str, Any], dict[str, Any]]:
        """Two sibling accounts with an open invoice each: 100 and 50 USD."""
        billing = Billing(tenant)
        billing.product("API", "1")
        parent = billing.account(name="Parent")
        first = billing.account(key=parent["api_key"], name="First")
        second = billing.account(key=parent["api_key"], name="Second")
        month = months_ago(1)
        billing.use(first, "API", 100, at(month))
        billing.use(second, "API", 50, at(month))
        billing.billed(month)
        return billing, first, second

    def test_one_payment_id_for_two_accounts(self, owing):
        billing, first, second = owing
        paid_first = billing.paid(first, "30", id="wire-1", reference="r1")
        paid_second = billing.paid(second, "20", id="wire-1", reference="r2")
        assert (paid_first["account_id"], paid_first["amount"]) == (first["id"], 30)
        assert (paid_second["account_id"], paid_second["amount"]) == (second["id"], 20)
        assert billing.payments(first) == [paid_first]
        assert billing.payments(second) == [paid_second]
        # Each retry is its own payment again; other content in one account is a conflict.
        for account, amount, reference, created in ((first, "30", "r1", paid_first), (second, "20", "r2", paid_second)):
            again = billing.pay(account, amount, id="wire-1", reference=reference)
            assert again.status_code == 200, again.text
            assert exact(again) == created
            note = assert_error(billing.pay(account, "31", id="wire-1", reference=reference), 409, "CONFLICT")["note"]
            assert "wire-1" in note
        assert billing.payments(first) == [paid_first]
        assert billing.payments(second) == [paid_second]
        (invoice_first,) = billing.invoices(account_id=first["id"])
        (invoice_second,) = billing.invoices(account_id=second["id"])
        assert (invoice_first["amount_paid"], invoice_second["amount_paid"]) == (30, 20)

    def test_each_payment_is_its_own_history_item(self, owing):
        billing, first, second = owing
        billing.paid(first, "30", id="wire-1")
        billing.paid(second, "20", id="wire-1")
        response = billing.client.get(HISTORY, params={"type": "payment"}, headers=billing.headers)
        assert response.status_code == 200, response.text
        items = exact(response)["result"]
        assert sorted((item["zone"]["name"], item["amount"]) for item in items) == [("First", 30), ("Second", 20)]
        assert len({item["id"] for item in items}) == 2
        # The first sibling's own key sees its payment only, under the same id as the organization sees it.
        response = billing.client.get(HISTORY, params={"type": "payment"}, headers=bearer(first["api_key"]))
        assert response.status_code == 200, response.text
        (own,) = exact(response)["result"]
        assert own == next(item for item in items if item["zone"]["name"] == "First")

    def test_a_void_gives_back_to_the_payment_of_its_own_account(self, owing):
        billing, first, second = owing
        billing.paid(first, "30", id="wire-1")
        billing.paid(second, "20", id="wire-1")
        (invoice_first,) = billing.invoices(account_id=first["id"])
        response = billing.void(invoice_first["id"])
        assert response.status_code == 200, response.text
        (payment_first,) = billing.payments(first)
        (payment_second,) = billing.payments(second)
        assert (payment_first["unapplied"], payment_first["applied"]) == (30, [])
        assert payment_second["unapplied"] == 0
        assert [a["amount"] for a in payment_second["applied"]] == [20]
        (invoice_second,) = billing.invoices(account_id=second["id"])
        assert (invoice_second["status"], invoice_second["amount_paid"]) == ("open", 20)


# --- Frontier reverts ------------------------------------------------------------------------------


class TestRevert:
    @pytest.fixture
    def shared(self, family: Family) -> str:
        """A usage id the two siblings both used: 10 credits of the first, 20 of the second."""
        usage_id = str(uuid.uuid4())
        for account, amount in ((family.first, 10), (family.second, 20)):
            body = {
                "org_id": family.tenant.id,
                "billing_id": account["id"],
                "usages": [{"id": usage_id, "amount": amount}],
            }
            frontier.assert_ok(family.client.post(frontier.USAGES, json=body, headers=family.tenant.headers))
        return usage_id

    def revert(self, family: Family, usage_id: str, amount: int, **extra: Any) -> Any:
        body = {"org_id": family.tenant.id, "usage_id": usage_id, "amount": amount, **extra}
        return family.client.post(frontier.REVERT, json=body, headers=family.tenant.headers)

    def test_with_the_billing_account_the_right_usage_is_reverted(self, family, shared):
        frontier.assert_ok(self.revert(family, shared, 15, billing_id=family.second["id"]))
        assert (family.balance(family.first), family.balance(family.second)) == (CREDITS - 10, CREDITS - 5)
        (reverted,) = [t for t in family.transactions(family.second) if t["kind"] == "revert"]
        assert reverted["amount"] == 15
        assert [t for t in family.transactions(family.first) if t["kind"] == "revert"] == []
        # What is left to revert is each usage's own.
        before = family.snapshot()
        frontier.assert_error(
            self.revert(family, shared, 6, billing_id=family.second["id"]), 400, frontier.INVALID_ARGUMENT
        )
        assert family.snapshot() == before
        frontier.assert_ok(self.revert(family, shared, 10, billing_id=family.first["id"]))
        assert family.balance(family.first) == CREDITS

    def test_without_the_billing_account_an_ambiguous_id_is_refused(self, family, shared):
        before = family.snapshot()
        message = frontier.assert_error(self.revert(family, shared, 5), 400, frontier.INVALID_ARGUMENT, "billing_id")
        assert shared in message
        assert family.snapshot() == before

    def test_without_the_billing_account_an_id_one_account_used_is_found(self, family):
        usage_id = str(uuid.uuid4())
        body = {
            "org_id": family.tenant.id,
            "billing_id": family.second["id"],
            "usages": [{"id": usage_id, "amount": 20}],
        }
        frontier.assert_ok(family.client.post(frontier.USAGES, json=body, headers=family.tenant.headers))
        frontier.assert_ok(self.revert(family, usage_id, 20))
        assert family.balance(family.second) == CREDITS

    def test_a_billing_account_that_did_not_use_the_id_finds_nothing(self, family, shared):
        before = family.snapshot()
        response = self.revert(family, shared, 5, billing_id=family.parent["id"])
        # Frontier answers a revert of a usage it does not know with invalid argument (CONTRACT §3.4).
        frontier.assert_error(response, 400, frontier.INVALID_ARGUMENT, "No credit usage with id")
        assert family.snapshot() == before
