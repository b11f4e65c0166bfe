"""The credit ledger under random sequences of grants, debits, partial reverts and retries (invariant 4).

A model in the test predicts which operations succeed; after every step the stored ledger must agree
with it: each transaction is two entries summing to zero, the balance equals a replay of the
transactions, never falls below ``credit_min``, and no usage is reverted by more than it debited.
Each example makes its own organization (the database fixture lives for the whole test).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st
from sqlalchemy import func, select

from meterbook.accounts.service import authenticate
from meterbook.db.tables import credit_transactions, ledger_entries
from meterbook.errors import InvalidInput
from meterbook.ledger import service as ledger_service
from tests.conftest import bearer

PROPERTY_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SIGN = {"grant": 1, "purchase": 1, "revert": 1, "usage": -1}

operation = st.one_of(
    st.tuples(st.just("grant"), st.integers(1, 40), st.sampled_from(["grant", "purchase"])),
    st.tuples(st.just("debit"), st.integers(1, 40)),
    st.tuples(st.just("revert"), st.integers(0, 11), st.integers(1, 25)),
    st.tuples(st.just("retry"), st.integers(0, 11)),
)


@dataclass
class Usage:
    event: dict[str, Any]
    amount: int
    reverted: int = 0


@dataclass
class Model:
    credit_min: int
    balance: int = 0
    transactions: int = 0
    usages: list[Usage] = field(default_factory=list)
    #: Requests that may be sent again: (kind, body, whether it was applied).
    sent: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)

    def affordable(self, amount: int) -> bool:
        return self.balance - amount >= self.credit_min


class Harness:
    def __init__(self, client: Any, database: Any, platform_key: str, credit_min: int) -> None:
        self.client, self.database = client, database
        response = client.post("/v1/organizations", json={"name": "Prop"}, headers=bearer(platform_key))
        assert response.status_code == 201, response.text
        self.organization_id = uuid.UUID(response.json()["id"])
        self.key = response.json()["api_key"]["key"]
        response = client.post("/v1/accounts", json={"name": "A", "credit_min": credit_min}, headers=self.headers)
        assert response.status_code == 201, response.text
        self.account_id = response.json()["id"]
        self.model = Model(credit_min=credit_min)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)

    # --- operations ---

    def grant(self, body: dict[str, Any], first: bool) -> bool:
        response = self.client.post(f"/v1/accounts/{self.account_id}/credits", json=body, headers=self.headers)
        assert response.status_code == (201 if first else 200), response.text
        if first:
            self.model.balance += body["amount"]
            self.model.transactions += 1
        return True

    def debit(self, event: dict[str, Any], applied_before: bool) -> bool:
        response = self.client.post("/v1/events", json=[event], headers=self.headers)
        if applied_before:
            assert response.status_code == 200, response.text
            assert response.json() == {"accepted": 0, "duplicates": 1}
            return True
        amount = event["quantity"]
        if self.model.affordable(amount):
            assert response.status_code == 200, response.text
            assert response.json() == {"accepted": 1, "duplicates": 0}
            self.model.balance -= amount
            self.model.transactions += 1
            self.model.usages.append(Usage(event, amount))
            return True
        assert response.status_code == 400, response.text
        assert "insufficient credits" in response.json()["note"]
        label("a debit refused")
        return False

    def revert(self, usage: Usage, amount: int) -> None:
        expected = usage.reverted + amount <= usage.amount
        try:
            with self.database.write() as conn:
                principal = authenticate(conn, self.key)
                transaction = ledger_service.revert(
                    conn, principal, uuid.UUID(self.account_id), usage.event["id"], amount
                )
        except InvalidInput:
            assert not expected, f"revert of {amount} refused; {usage.reverted} of {usage.amount} reverted"
            label("a revert refused")
            return
        assert expected, f"revert of {amount} accepted; {usage.reverted} of {usage.amount} already reverted"
        assert (transaction.kind, transaction.amount) == ("revert", amount)
        usage.reverted += amount
        self.model.balance += amount
        self.model.transactions += 1

    def apply(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "grant":
            body = {"id": f"g-{uuid.uuid4().hex}", "amount": op[1], "type": op[2]}
            self.model.sent.append(("grant", body, self.grant(body, first=True)))
        elif kind == "debit":
            event = {"id": f"u-{uuid.uuid4().hex}", "account_id": self.account_id, "type": "credit", "quantity": op[1]}
            self.model.sent.append(("debit", event, self.debit(event, applied_before=False)))
        elif kind == "revert":
            if self.model.usages:
                self.revert(self.model.usages[op[1] % len(self.model.usages)], op[2])
        elif self.model.sent:
            index = op[1] % len(self.model.sent)
            what, body, applied = self.model.sent[index]
            if what == "grant":
                self.grant(body, first=False)
            else:
                self.model.sent[index] = (what, body, self.debit(body, applied_before=applied))

    # --- what is stored ---

    def check(self) -> None:
        response = self.client.get(f"/v1/accounts/{self.account_id}/credits", headers=self.headers)
        assert response.status_code == 200, response.text
        stored = response.json()
        response = self.client.get(f"/v1/accounts/{self.account_id}/credits/transactions", headers=self.headers)
        assert response.status_code == 200, response.text
        listed = response.json()["transactions"]

        replay = sum(SIGN[t["kind"]] * t["amount"] for t in listed)
        assert stored["balance"] == replay == self.model.balance
        assert stored["credit_min"] == self.model.credit_min
        assert stored["balance"] >= stored["credit_min"]
        assert len(listed) == self.model.transactions
        assert all(t["amount"] > 0 for t in listed)
        assert all(t["direction"] == ("debit" if t["kind"] == "usage" else "credit") for t in listed)

        with self.database.read() as conn:
            rows = conn.execute(
                select(
                    credit_transactions.c.id,
                    credit_transactions.c.kind,
                    credit_transactions.c.amount,
                    credit_transactions.c.reverts_id,
                ).where(credit_transactions.c.organization_id == self.organization_id)
            ).all()
            entries = conn.execute(
                select(ledger_entries).where(ledger_entries.c.transaction_id.in_([row.id for row in rows]))
            ).all()
            total = conn.execute(
                select(func.coalesce(func.sum(ledger_entries.c.amount), 0)).where(
                    ledger_entries.c.transaction_id.in_([row.id for row in rows])
                )
            ).scalar_one()
        assert {str(row.id) for row in rows} == {t["id"] for t in listed}
        assert int(total) == 0

        by_transaction: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for entry in entries:
            by_transaction[entry.transaction_id].append(entry)
        usages = {row.id: row.amount for row in rows if row.kind == "usage"}
        reverted: dict[uuid.UUID, int] = defaultdict(int)
        for row in rows:
            lines = by_transaction[row.id]
            assert len(lines) == 2, lines
            assert sum(line.amount for line in lines) == 0
            (own,) = [line for line in lines if line.account_id is not None]
            (system,) = [line for line in lines if line.system_account is not None]
            assert str(own.account_id) == self.account_id
            assert own.system_account is None
            assert system.account_id is None
            assert own.amount == SIGN[row.kind] * row.amount
            if row.kind == "revert":
                assert row.reverts_id in usages
                reverted[row.reverts_id] += row.amount
            else:
                assert row.reverts_id is None
        for usage_id, amount in reverted.items():
            assert amount <= usages[usage_id]
        assert sum(reverted.values()) == sum(u.reverted for u in self.model.usages)


class TestLedgerProperties:
    @PROPERTY_SETTINGS
    @given(credit_min=st.integers(-30, 0), operations=st.lists(operation, min_size=1, max_size=12))
    def test_the_ledger_matches_the_model_after_every_step(
        self, client, database, platform_key, credit_min, operations
    ):
        harness = Harness(client, database, platform_key, credit_min)
        harness.check()
        for op in operations:
            harness.apply(op)
            harness.check()

    @PROPERTY_SETTINGS
    @given(debit=st.integers(1, 60), reverts=st.lists(st.integers(1, 30), min_size=1, max_size=8))
    def test_partial_reverts_never_give_back_more_than_was_debited(
        self, client, database, platform_key, debit, reverts
    ):
        harness = Harness(client, database, platform_key, credit_min=-60)
        harness.apply(("debit", debit))
        (usage,) = harness.model.usages
        for amount in reverts:
            harness.revert(usage, amount)
            harness.check()
        assert usage.reverted <= debit
        assert harness.model.balance == -debit + usage.reverted
