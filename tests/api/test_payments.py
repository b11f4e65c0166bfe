"""Payments: ``POST /v1/payments`` and ``GET /v1/payments`` (CONTRACT §1 payment, §4; invariants 1, 7, 8, 10).

Money received is recorded once per id (the same id and content again: 200 with the first; the same id
with other content: 409) in whole minor units of its currency. It goes to the invoice it names first,
then to the account's oldest open invoices in its currency; the rest stays ``unapplied`` and the next
invoice takes it. A void frees what payments covered of the invoice, and that money settles other open
invoices or waits. After every step, an account never holds unapplied money in a currency while one of
its invoices in that currency is open. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from meterbook.accounts.service import authenticate
from meterbook.errors import Conflict
from meterbook.invoicing import service as invoicing
from meterbook.payments.schemas import PaymentIn
from tests.billing import Billing, at, exact, months_ago
from tests.helpers import assert_error, assert_invalid, each, rfc3339, ts

THIRD, SECOND, FIRST = months_ago(3), months_ago(2), months_ago(1)


@pytest.fixture
def billing(tenant):
    return Billing(tenant)


class Owed:
    """An account with usage of 100, 50 and 25 USD in three ended months; the first two are invoiced."""

    def __init__(self, billing: Billing) -> None:
        self.billing = billing
        billing.product("API", "1")
        self.account = billing.account(name="Debtor")
        for month, quantity in ((THIRD, 100), (SECOND, 50), (FIRST, 25)):
            billing.use(self.account, "API", quantity, at(month))
        billing.billed(THIRD)
        billing.billed(SECOND)

    @property
    def invoices(self) -> list[dict[str, Any]]:
        return self.billing.invoices(account_id=self.account["id"])

    def state(self) -> list[tuple[int, str, Decimal, Decimal, Decimal]]:
        """(number, status, amount, paid, due) of each invoice of the account."""
        return [
            (i["number"], i["status"], Decimal(i["amount"]), Decimal(i["amount_paid"]), Decimal(i["amount_due"]))
            for i in self.invoices
        ]

    def pay(self, amount: Any, **extra: Any) -> dict[str, Any]:
        return self.billing.paid(self.account, amount, **extra)

    def payments(self) -> list[dict[str, Any]]:
        return self.billing.payments(self.account)

    def applied(self, payment: dict[str, Any]) -> dict[int, Decimal]:
        """What of ``payment`` (as listed now) each invoice holds, by invoice number."""
        numbers = {i["id"]: i["number"] for i in self.invoices}
        (current,) = [p for p in self.payments() if p["id"] == payment["id"]]
        return {numbers[a["invoice_id"]]: Decimal(a["amount"]) for a in current["applied"]}

    def unapplied(self) -> Decimal:
        return sum((Decimal(p["unapplied"]) for p in self.payments()), Decimal(0))


@pytest.fixture
def owed(billing):
    return Owed(billing)


def assert_settled(billing: Billing) -> None:
    """Money and invoices agree, for every account and currency the organization key sees."""
    invoices = billing.invoices()
    payments = billing.payments()
    by_owner: dict[tuple[str, str], dict[str, Decimal]] = {}
    for payment in payments:
        owner = by_owner.setdefault(
            (payment["account_id"], payment["currency"]), {"paid": Decimal(0), "held": Decimal(0)}
        )
        owner["paid"] += Decimal(payment["amount"])
        applied = sum((Decimal(a["amount"]) for a in payment["applied"]), Decimal(0))
        assert Decimal(payment["unapplied"]) >= 0
        assert applied + Decimal(payment["unapplied"]) == Decimal(payment["amount"]), payment
        owner["held"] += Decimal(payment["unapplied"])
    applied_to: dict[str, Decimal] = {}
    for payment in payments:
        for allocation in payment["applied"]:
            applied_to[allocation["invoice_id"]] = applied_to.get(allocation["invoice_id"], Decimal(0)) + Decimal(
                allocation["amount"]
            )
    for invoice in invoices:
        amount, paid = Decimal(invoice["amount"]), Decimal(invoice["amount_paid"])
        assert 0 <= paid <= amount, invoice
        assert applied_to.get(invoice["id"], Decimal(0)) == paid, invoice
        if invoice["status"] == "void":
            assert paid == 0
        owner = by_owner.get((invoice["account_id"], invoice["currency"]))
        if invoice["status"] == "open" and owner is not None:
            assert owner["held"] == 0, ("unapplied money beside an open invoice", invoice)
        if invoice["status"] == "paid":
            assert paid == amount


# --- recording -------------------------------------------------------------------------------------


class TestRecord:
    def test_a_payment_in_full(self, billing, owed):
        first = owed.invoices[0]
        before = datetime.now(UTC)
        payment = owed.pay("40.5", id="wire-1", reference="BANK-123", invoice_id=first["id"])
        after = datetime.now(UTC)
        assert before <= ts(payment["created_at"]) <= after
        assert payment == {
            "id": "wire-1",
            "account_id": owed.account["id"],
            "amount": Decimal("40.5"),
            "currency": "USD",
            "date": payment["created_at"],
            "invoice_id": first["id"],
            "reference": "BANK-123",
            "applied": [{"invoice_id": first["id"], "amount": Decimal("40.5")}],
            "unapplied": 0,
            "created_at": payment["created_at"],
        }
        assert owed.payments() == [payment]
        assert owed.state()[0] == (1, "open", 100, Decimal("40.5"), Decimal("59.5"))

    def test_without_an_id_each_payment_is_new(self, billing, owed):
        one, two = owed.pay("10"), owed.pay("10")
        assert one["id"] != two["id"]
        uuid.UUID(one["id"])
        uuid.UUID(two["id"])
        assert len(owed.payments()) == 2
        assert owed.state()[0][3] == 20

    def test_the_date_is_kept_as_sent(self, billing, owed):
        payment = owed.pay("1", date="2024-03-05T10:11:12.5Z")
        assert payment["date"] == "2024-03-05T10:11:12.500000Z"

    def test_the_currency_defaults_to_the_named_invoices_then_the_accounts(self, billing):
        billing.product("API", "1", "USD")
        account = billing.account(currency="EUR")
        billing.use(account, "API", 5, at(FIRST))
        billing.billed(FIRST)
        (invoice,) = billing.invoices()
        assert billing.paid(account, "5", invoice_id=invoice["id"])["currency"] == "USD"
        assert billing.invoice(invoice["id"])["status"] == "paid"
        assert billing.paid(account, "5")["currency"] == "EUR"


class TestIdempotency:
    def test_the_same_id_and_body_again_is_the_first_payment(self, billing, owed):
        body = {"id": "pay-1", "amount": "30", "reference": "r"}
        first = owed.pay(**body)
        response = billing.pay(owed.account, **body)
        assert response.status_code == 200, response.text
        assert exact(response) == first
        assert owed.payments() == [first]
        assert owed.state()[0] == (1, "open", 100, 30, 70)

    def test_the_same_amount_written_differently_is_the_same_payment(self, billing, owed):
        first = owed.pay(30, id="pay-1")
        for amount in ("30.00", "3E+1", 30.0):
            response = billing.pay(owed.account, amount, id="pay-1")
            assert response.status_code == 200, (amount, response.text)
            assert exact(response) == first
        assert len(owed.payments()) == 1

    def test_a_retry_shows_the_payment_as_it_stands(self, billing, owed):
        first = owed.pay("30", id="pay-1")
        assert billing.void(owed.invoices[0]["id"]).status_code == 200
        response = billing.pay(owed.account, "30", id="pay-1")
        assert response.status_code == 200, response.text
        (now,) = owed.payments()
        assert exact(response) == now
        assert now["applied"] != first["applied"]

    def test_the_same_id_with_other_content_is_a_conflict(self, billing, owed):
        first = owed.pay("30", id="pay-1")
        state = owed.state()

        def check(extra: dict[str, Any]) -> None:
            extra = dict(extra)
            account = extra.pop("account", owed.account)
            response = billing.pay(account, **{"amount": "30", "id": "pay-1", **extra})
            note = assert_error(response, 409, "CONFLICT")["note"]
            assert "pay-1" in note

        other_account = billing.account(name="Other")
        each(
            {
                "amount": {"amount": "31"},
                "reference": {"reference": "another"},
                "date": {"date": "2024-01-01T00:00:00Z"},
                "invoice": {"invoice_id": owed.invoices[1]["id"]},
                "currency": {"currency": "EUR"},
            },
            check,
        )
        assert owed.payments() == [first]
        assert billing.payments(other_account) == []
        assert owed.state() == state

    def test_the_same_id_for_another_account_is_another_payment(self, billing, owed):
        """Payment ids are per account (invariant 1)."""
        first = owed.pay("30", id="pay-1")
        other_account = billing.account(name="Other")
        second = billing.paid(other_account, "7", id="pay-1")
        assert (second["account_id"], second["amount"]) == (other_account["id"], 7)
        assert owed.payments() == [first]
        assert billing.payments(other_account) == [second]
        assert_settled(billing)

    @staticmethod
    def pay_at_once(billing: Billing, database: Any, payments: list[tuple[dict[str, Any], Decimal]]) -> list[Any]:
        """Two requests with the id ``wire-7``: the second starts while the first holds its uncommitted row."""
        inserted, outcome = threading.Event(), [None, None]

        def pay(index: int, hold: bool) -> None:
            account, amount = payments[index]
            try:
                with database.write() as conn:
                    principal = authenticate(conn, billing.key)
                    data = PaymentIn(id="wire-7", account_id=uuid.UUID(account["id"]), amount=amount)
                    outcome[index] = invoicing.pay(conn, principal, data)[1]
                    if hold:
                        inserted.set()
                        time.sleep(0.5)  # the other request reaches its insert meanwhile
            except Conflict as error:
                outcome[index] = error
            finally:
                inserted.set()

        threads = [
            threading.Thread(target=pay, args=(0, True)),
            threading.Thread(target=lambda: (inserted.wait(10), pay(1, False))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return outcome

    def test_one_id_sent_twice_for_one_account_at_once_is_one_payment_and_a_conflict(self, billing, database):
        """The second request waits for the first one to commit, then finds its payment: 409, never a 500."""
        account = billing.account(name="First")
        outcome = self.pay_at_once(billing, database, [(account, Decimal(5)), (account, Decimal(6))])
        assert outcome[0] is True
        assert isinstance(outcome[1], Conflict), outcome
        assert [(p["account_id"], p["amount"]) for p in billing.payments()] == [(account["id"], 5)]

    def test_one_id_sent_for_two_accounts_at_once_is_two_payments(self, billing, database):
        first, second = billing.account(name="First"), billing.account(name="Second")
        outcome = self.pay_at_once(billing, database, [(first, Decimal(5)), (second, Decimal(6))])
        assert outcome == [True, True]
        paid = sorted((p["account_id"], p["id"], p["amount"]) for p in billing.payments())
        assert paid == sorted([(first["id"], "wire-7", 5), (second["id"], "wire-7", 6)])

    def test_ids_are_per_organization(self, billing, owed, other_tenant):
        owed.pay("30", id="pay-1")
        other = Billing(other_tenant)
        account = other.account()
        assert other.paid(account, "7", id="pay-1")["amount"] == 7
        assert [p["amount"] for p in owed.payments()] == [30]


# --- where the money goes --------------------------------------------------------------------------


class TestSettlement:
    def test_oldest_open_invoice_first(self, billing, owed):
        payment = owed.pay("120")
        assert owed.state() == [(1, "paid", 100, 100, 0), (2, "open", 50, 20, 30)]
        assert owed.applied(payment) == {1: 100, 2: 20}
        assert owed.unapplied() == 0
        assert_settled(billing)

    def test_the_named_invoice_first_then_the_oldest(self, billing, owed):
        second = owed.invoices[1]
        payment = owed.pay("120", invoice_id=second["id"])
        assert owed.state() == [(1, "open", 100, 70, 30), (2, "paid", 50, 50, 0)]
        assert owed.applied(payment) == {1: 70, 2: 50}
        assert payment["invoice_id"] == second["id"]
        assert_settled(billing)

    def test_a_partial_payment_leaves_the_invoice_open(self, billing, owed):
        owed.pay("40")
        first = billing.invoice(owed.invoices[0]["id"])
        assert (first["status"], first["amount_paid"], first["amount_due"], first["paid_at"]) == ("open", 40, 60, None)
        owed.pay("60")
        first = billing.invoice(first["id"])
        assert (first["status"], first["amount_paid"], first["amount_due"]) == ("paid", 100, 0)
        assert owed.state()[1] == (2, "open", 50, 0, 50)

    def test_an_overpayment_waits_for_the_next_invoice(self, billing, owed):
        payment = owed.pay("200")
        assert owed.state() == [(1, "paid", 100, 100, 0), (2, "paid", 50, 50, 0)]
        assert owed.unapplied() == 50
        billing.billed(FIRST)
        assert owed.state()[2] == (3, "paid", 25, 25, 0)
        assert owed.applied(payment) == {1: 100, 2: 50, 3: 25}
        assert owed.unapplied() == 25
        assert_settled(billing)

    def test_a_payment_before_any_invoice_waits_then_the_run_applies_it(self, billing):
        billing.product("API", "1")
        account = billing.account()
        billing.use(account, "API", 30, at(SECOND))
        billing.use(account, "API", 30, at(FIRST))
        payment = billing.paid(account, "45")
        assert (payment["unapplied"], payment["applied"]) == (45, [])
        billing.billed(SECOND)
        (invoice,) = billing.invoices()
        assert (invoice["status"], invoice["amount_paid"]) == ("paid", 30)
        assert invoice["paid_at"] == invoice["issued_at"]  # never paid before it existed
        billing.billed(FIRST)
        second = billing.invoices()[1]
        assert (second["status"], second["amount_paid"], second["amount_due"]) == ("open", 15, 15)
        (listed,) = billing.payments(account)
        assert listed["unapplied"] == 0
        assert sorted(Decimal(a["amount"]) for a in listed["applied"]) == [15, 30]
        assert_settled(billing)

    def test_a_payment_committed_while_a_run_invoices_its_account_settles_it(self, billing, database):
        """The run waits for a payment in flight on one of its accounts, then applies it: never open beside credit."""
        billing.product("API", "1")
        account = billing.account()
        billing.use(account, "API", 30, at(FIRST))
        run_done = threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                with database.write() as conn:
                    outcome["run"] = invoicing.run_billing(conn, uuid.UUID(billing.tenant.id), FIRST)
            finally:
                run_done.set()

        runner = threading.Thread(target=run)
        with database.write() as conn:
            principal = authenticate(conn, billing.key)
            invoicing.pay(conn, principal, PaymentIn(account_id=uuid.UUID(account["id"]), amount=Decimal(30)))
            runner.start()
            # Uncommitted, the payment holds its account: the run must wait for it, not invoice past it.
            assert not run_done.wait(0.5)
        runner.join(30)
        assert outcome["run"].invoice_count == 1
        (invoice,) = billing.invoices()
        assert (invoice["status"], invoice["amount_paid"]) == ("paid", 30)
        assert_settled(billing)

    def test_paid_at_is_when_the_completing_money_arrived(self, billing, owed):
        owed.pay("60", date=rfc3339(datetime.now(UTC) - timedelta(seconds=1)))
        completing = owed.pay("40", date=rfc3339(datetime.now(UTC) + timedelta(minutes=2)))
        first = billing.invoice(owed.invoices[0]["id"])
        assert first["paid_at"] == completing["date"]

    def test_money_in_another_currency_waits_for_an_invoice_in_it(self, billing, owed):
        state = owed.state()
        payment = owed.pay("20", currency="EUR")
        assert (payment["unapplied"], payment["applied"]) == (20, [])
        assert owed.state() == state
        billing.product("SMS", "1", "EUR")
        billing.use(owed.account, "SMS", 8, at(FIRST))
        billing.billed(FIRST)
        eur = next(i for i in owed.invoices if i["currency"] == "EUR")
        assert (eur["status"], eur["amount_paid"]) == ("paid", 8)
        assert owed.applied(payment) == {eur["number"]: 8}
        assert_settled(billing)

    def test_the_money_of_one_account_never_pays_another(self, billing, owed):
        neighbour = billing.account(name="Neighbour")
        billing.paid(neighbour, "500")
        assert [status for _, status, *_ in owed.state()] == ["open", "open"]
        assert_settled(billing)


class TestVoidAndPayment:
    def test_a_void_frees_the_money_for_the_other_open_invoices(self, billing, owed):
        first, _ = owed.invoices
        payment = owed.pay("30", invoice_id=first["id"])
        response = billing.void(first["id"])
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["amount_paid"]) == ("void", 0)
        assert owed.state() == [(1, "void", 100, 0, 0), (2, "open", 50, 30, 20)]
        assert owed.applied(payment) == {2: 30}
        assert_settled(billing)

    def test_a_void_of_a_partly_paid_invoice_frees_every_payment(self, billing, owed):
        first, _ = owed.invoices
        one, two = owed.pay("30", invoice_id=first["id"]), owed.pay("45", invoice_id=first["id"])
        assert owed.state()[0][3] == 75
        billing.void(first["id"])
        # The freed 75 goes to invoice 2 (50), oldest payment first; 25 waits.
        assert owed.state() == [(1, "void", 100, 0, 0), (2, "paid", 50, 50, 0)]
        assert owed.applied(one) == {2: 30}
        assert owed.applied(two) == {2: 20}
        assert owed.unapplied() == 25
        assert_settled(billing)

    def test_freed_money_without_another_open_invoice_waits_for_the_next(self, billing, owed):
        first, second = owed.invoices
        owed.pay("50", invoice_id=second["id"])
        owed.pay("10", invoice_id=first["id"])
        billing.void(first["id"])
        assert owed.unapplied() == 10
        billing.billed(FIRST)
        assert owed.state()[2] == (3, "open", 25, 10, 15)
        assert owed.unapplied() == 0
        assert_settled(billing)

    def test_a_payment_naming_a_void_invoice_goes_to_the_other_open_invoices(self, billing, owed):
        first, _ = owed.invoices
        billing.void(first["id"])
        payment = owed.pay("70", invoice_id=first["id"])
        assert payment["invoice_id"] == first["id"]
        assert owed.state() == [(1, "void", 100, 0, 0), (2, "paid", 50, 50, 0)]
        assert owed.applied(payment) == {2: 50}
        assert owed.unapplied() == 20
        assert_settled(billing)

    def test_a_payment_naming_a_paid_invoice_goes_elsewhere(self, billing, owed):
        first, _ = owed.invoices
        owed.pay("100", invoice_id=first["id"])
        payment = owed.pay("10", invoice_id=first["id"])
        assert owed.applied(payment) == {2: 10}
        assert owed.state() == [(1, "paid", 100, 100, 0), (2, "open", 50, 10, 40)]

    def test_a_void_of_an_unpaid_invoice_moves_no_money(self, billing, owed):
        first, second = owed.invoices
        payment = owed.pay("20", invoice_id=second["id"])
        billing.void(first["id"])
        assert owed.applied(payment) == {2: 20}
        assert owed.state() == [(1, "void", 100, 0, 0), (2, "open", 50, 20, 30)]


# --- refusals --------------------------------------------------------------------------------------


class TestInvalid:
    def test_more_digits_than_the_currency_has(self, billing, owed):
        jpy = billing.account(currency="JPY")
        kwd = billing.account(currency="KWD")

        def check(case: tuple[dict[str, Any], Any, str | None]) -> None:
            account, amount, currency = case
            extra = {} if currency is None else {"currency": currency}
            body = assert_invalid(billing.pay(account, amount, **extra), "body.amount")
            assert "decimal places" in body["note"]

        each(
            {
                "10.001 USD": (owed.account, "10.001", None),
                "0.005 USD": (owed.account, 0.005, None),
                "1.5 JPY (account's currency)": (jpy, "1.5", None),
                "1.5 JPY (named)": (owed.account, "1.5", "JPY"),
                "0.0001 KWD": (kwd, "0.0001", None),
            },
            check,
        )
        assert billing.payments() == []
        # As many digits as the currency has are fine.
        assert billing.paid(kwd, "0.001")["amount"] == Decimal("0.001")
        assert billing.paid(jpy, "15")["amount"] == 15
        assert billing.paid(owed.account, "10.10")["amount"] == Decimal("10.1")

    def test_amounts_that_are_not_positive_numbers(self, billing, owed):
        def check(amount: Any) -> None:
            assert_invalid(billing.pay(owed.account, amount), "body.amount")

        each(
            {
                "zero": 0,
                "zero text": "0.00",
                "negative": -5,
                "negative text": "-0.01",
                "NaN": "NaN",
                "Infinity": "Infinity",
                "-Infinity": "-Infinity",
                "a word": "ten",
                "empty": "",
                "true": True,
                "null": None,
                "an object": {"value": 1},
                "too large": "9000000001",
                "beyond nine decimals": "1.0000000001",
            },
            check,
        )
        body = {"account_id": owed.account["id"]}
        assert_invalid(billing.client.post("/v1/payments", json=body, headers=billing.headers), "body.amount")
        assert billing.payments() == []
        assert owed.state()[0][3] == 0

    def test_a_currency_other_than_the_named_invoices(self, billing, owed):
        body = assert_invalid(
            owed.billing.pay(owed.account, "10", currency="EUR", invoice_id=owed.invoices[0]["id"]), "body.currency"
        )
        assert "USD" in body["note"]
        assert billing.payments() == []

    def test_currencies_that_do_not_exist(self, billing, owed):
        each(
            {"XXX": "XXX", "lower case": "usd", "long": "USDX", "number": 840},
            lambda currency: assert_invalid(billing.pay(owed.account, "10", currency=currency), "body.currency"),
        )
        assert billing.payments() == []

    def test_an_invoice_of_another_account(self, billing, owed):
        other = billing.account(name="Other")
        body = assert_invalid(billing.pay(other, "10", invoice_id=owed.invoices[0]["id"]), "body.invoice_id")
        assert "another account" in body["note"]
        assert billing.payments() == []

    def test_an_invoice_that_is_unknown_or_of_another_organization(self, billing, owed, other_tenant):
        other = Billing(other_tenant)
        other.product("API", "1")
        theirs = other.account()
        other.use(theirs, "API", 3, at(FIRST))
        other.billed(FIRST)
        (their_invoice,) = other.invoices()
        unknown = str(uuid.uuid4())
        outside = assert_invalid(billing.pay(owed.account, "10", invoice_id=their_invoice["id"]), "body.invoice_id")
        missing = assert_invalid(billing.pay(owed.account, "10", invoice_id=unknown), "body.invoice_id")
        assert outside["note"].replace(their_invoice["id"], "ID") == missing["note"].replace(unknown, "ID")
        assert_invalid(billing.pay(owed.account, "10", invoice_id="nope"), "body.invoice_id")
        assert billing.payments() == []
        assert other.invoice(their_invoice["id"])["amount_paid"] == 0

    def test_an_account_that_is_unknown_or_of_another_organization(self, billing, owed, other_tenant):
        theirs = Billing(other_tenant).account()
        assert_error(billing.pay(str(uuid.uuid4()), "10"), 404, "NOT_FOUND")
        assert_error(billing.pay(theirs, "10"), 404, "NOT_FOUND")
        assert_invalid(billing.pay("not-a-uuid", "10"), "body.account_id")
        assert Billing(other_tenant).payments() == []
        assert billing.payments() == []

    def test_a_date_too_far_ahead_or_without_an_offset(self, billing, owed):
        ahead = rfc3339(datetime.now(UTC) + timedelta(minutes=10))
        assert_invalid(billing.pay(owed.account, "10", date=ahead), "body.date")
        assert_invalid(billing.pay(owed.account, "10", date="2024-01-01T00:00:00"), "body.date")
        assert_invalid(billing.pay(owed.account, "10", date="yesterday"), "body.date")
        assert billing.payments() == []

    def test_an_id_or_reference_too_long(self, billing, owed):
        assert_invalid(billing.pay(owed.account, "10", id=""), "body.id")
        assert_invalid(billing.pay(owed.account, "10", id="x" * 256), "body.id")
        assert_invalid(billing.pay(owed.account, "10", reference="x" * 256), "body.reference")
        assert billing.payments() == []


# --- who may pay, who sees payments ----------------------------------------------------------------


class TestReach:
    def test_listing_shows_applied_and_unapplied_oldest_first(self, billing, owed):
        late = owed.pay("120", date=rfc3339(datetime.now(UTC)))
        early = owed.pay("5", date="2024-01-01T00:00:00Z")
        listed = billing.payments()
        assert [p["id"] for p in listed] == [early["id"], late["id"]]
        first, second = owed.invoices
        by_id = {p["id"]: p for p in listed}
        # Money settles in the order it is recorded: the late-dated payment came first and paid invoice 1.
        assert sorted((a["invoice_id"], Decimal(a["amount"])) for a in by_id[late["id"]]["applied"]) == sorted(
            [(first["id"], Decimal(100)), (second["id"], Decimal(20))]
        )
        assert by_id[early["id"]]["applied"] == [{"invoice_id": second["id"], "amount": 5}]
        assert by_id[late["id"]]["unapplied"] == 0
        assert_settled(billing)

    def test_listing_one_account(self, billing, owed):
        neighbour = billing.account(name="Neighbour")
        mine = owed.pay("1")
        billing.paid(neighbour, "2")
        assert owed.payments() == [mine]
        assert len(billing.payments()) == 2
        assert_error(
            billing.client.get("/v1/payments", params={"account_id": str(uuid.uuid4())}, headers=billing.headers),
            404,
            "NOT_FOUND",
        )
        assert_invalid(
            billing.client.get("/v1/payments", params={"account_id": "x"}, headers=billing.headers), "query.account_id"
        )

    def test_another_organization_sees_nothing(self, billing, owed, other_tenant):
        owed.pay("10")
        other = Billing(other_tenant)
        assert other.payments() == []
        response = other.client.get("/v1/payments", params={"account_id": owed.account["id"]}, headers=other.headers)
        assert_error(response, 404, "NOT_FOUND")

    def test_an_account_key_sees_only_its_subtrees_payments_and_records_none(self, billing, owed):
        child = billing.account(name="Child", parent_account_id=owed.account["id"])
        neighbour = billing.account(name="Neighbour")
        mine = billing.paid(owed.account, "10")
        childs = billing.paid(child, "4")
        billing.paid(neighbour, "3")
        key = billing.tenant.create_key(account_id=owed.account["id"])["key"]
        own = billing.as_key(key)
        assert own.payments() == [mine, childs]
        # Recording a payment is the operator's (a customer would mark its own invoices paid).
        for account in (owed.account, child, neighbour):
            assert_error(own.pay(account, "1"), 403, "FORBIDDEN")
        response = own.client.get("/v1/payments", params={"account_id": neighbour["id"]}, headers=own.headers)
        assert_error(response, 404, "NOT_FOUND")
        assert len(billing.payments()) == 3

    def test_paying_needs_billing_write_and_listing_billing_read(self, billing, owed):
        reader = billing.as_key(billing.tenant.create_key(scopes=["billing:read"])["key"])
        assert_error(reader.pay(owed.account, "10"), 403, "FORBIDDEN")
        assert reader.payments() == []
        nobody = billing.as_key(billing.tenant.create_key(scopes=["accounts:read"])["key"])
        response = nobody.client.get("/v1/payments", headers=nobody.headers)
        assert_error(response, 403, "FORBIDDEN")
        assert billing.payments() == []
