"""Invoices: what a billing run issues; ``GET /v1/invoices``, ``GET /v1/invoices/{id}``, ``POST …/{id}/void``.

CONTRACT §1 (invoice), §4 (billing runs, invoices); invariants 6 (amount = sum of lines), 7 (exact
money, rounded half away from zero to the minor unit only on invoice lines), 8 (reach) and 10.

The rules under test (``meterbook.invoicing.service``): one invoice per account x currency x month; a
commitment line when the contract started by the month's end and the account was not archived before
the month began; one usage line per product, its exact sum rounded half away from zero; an invoice of
zero is issued paid; numbers run 1..n per organization in account-creation order, then by currency;
the effective date is the first day after the month and the due date adds the account's net terms.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from meterbook.db.tables import accounts
from tests.billing import Billing, at, due_after, following, months_ago, start_of
from tests.helpers import assert_error, assert_invalid, each, rfc3339, ts

MONTH = months_ago(1)
EARLIER = months_ago(2)
SINCE_LONG_AGO = "2020-01-01T00:00:00Z"


@pytest.fixture
def billing(tenant):
    return Billing(tenant)


def raw_numbers(response: Any) -> Any:
    """The body with every JSON number kept as the text the server wrote."""
    return json.loads(response.text, parse_float=str, parse_int=str)


def lines_of(invoice: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(kind, product, quantity, unit price, exact amount, amount) of each line, in order."""
    return [
        (
            line["kind"],
            line["product_id"],
            line["quantity"],
            line["unit_price"],
            line["unrounded_amount"],
            line["amount"],
        )
        for line in invoice["lines"]
    ]


def usage_amount(billing: Billing, price: str, quantity: Any, currency: str) -> dict[str, Any]:
    """The one invoice of an account whose only usage last month is ``quantity`` x ``price`` in ``currency``."""
    product_id = f"P-{uuid.uuid4().hex[:8]}"
    billing.product(product_id, price, currency)
    account = billing.account(currency=currency)
    billing.use(account, product_id, quantity, at(MONTH))
    return account


# --- what a run issues -----------------------------------------------------------------------------


class TestInvoiceBody:
    def test_an_invoice_in_full(self, billing):
        account = billing.account(
            name="Globex",
            net_terms_days=15,
            commitment={"monthly_cost": "100"},
            contract_started_at=start_of(months_ago(3)),
        )
        billing.product("CALLS", "0.067", description="Outbound calls")
        billing.use(account, "CALLS", 50, at(MONTH, 1, "00:00:00"))
        billing.use(account, "CALLS", 5, at(MONTH, 28, "23:59:59"))
        run = billing.billed(MONTH)
        assert run["invoice_count"] == 1

        (listed,) = billing.invoices()
        response = billing.get(listed["id"])
        invoice = billing.invoice(listed["id"])
        assert invoice == {
            "id": listed["id"],
            "number": 1,
            "account_id": account["id"],
            "currency": "USD",
            "month": MONTH,
            "status": "open",
            "amount": Decimal("103.69"),
            "amount_paid": 0,
            "amount_due": Decimal("103.69"),
            "issued_at": run["created_at"],
            "effective_date": start_of(following(MONTH)),
            "due_date": due_after(MONTH, 15),
            # Overdue once the due date has ended (UTC): whether it has depends on today's date.
            "overdue": datetime.now(UTC).date() > datetime.fromisoformat(due_after(MONTH, 15)).date(),
            "paid_at": None,
            "voided_at": None,
            "lines": [
                {
                    "line": 1,
                    "kind": "subscription",
                    "product_id": None,
                    "description": f"Monthly commitment, {MONTH}",
                    "quantity": 1,
                    "unit_price": 100,
                    "unrounded_amount": 100,
                    "amount": 100,
                    "tiers": [],
                },
                {
                    "line": 2,
                    "kind": "usage",
                    "product_id": "CALLS",
                    "description": "Outbound calls",
                    "quantity": 55,
                    "unit_price": Decimal("0.067"),
                    "unrounded_amount": Decimal("3.685"),
                    "amount": Decimal("3.69"),
                    "tiers": [],
                },
            ],
        }
        # The list shows the same invoice without its lines.
        assert listed == {**invoice, "lines": None}
        # Money is written as its exact decimal text.
        raw = raw_numbers(response)
        assert (raw["amount"], raw["amount_due"], raw["amount_paid"]) == ("103.69", "103.69", "0")
        assert [(line["unit_price"], line["unrounded_amount"], line["amount"]) for line in raw["lines"]] == [
            ("100", "100", "100"),
            ("0.067", "3.685", "3.69"),
        ]

    def test_the_default_net_terms_are_thirty_days(self, billing):
        account = billing.account(commitment={"monthly_cost": "10"}, contract_started_at=SINCE_LONG_AGO)
        billing.billed(MONTH)
        (invoice,) = billing.invoices(account_id=account["id"])
        assert invoice["effective_date"] == start_of(following(MONTH))
        assert invoice["due_date"] == due_after(MONTH, 30)

    def test_net_terms_of_zero_are_due_on_the_effective_date(self, billing):
        billing.account(net_terms_days=0, commitment={"monthly_cost": "10"}, contract_started_at=SINCE_LONG_AGO)
        billing.billed(MONTH)
        (invoice,) = billing.invoices()
        assert invoice["due_date"] == invoice["effective_date"] == start_of(following(MONTH))

    def test_overdue_once_the_due_date_has_ended_and_while_open(self, billing):
        # Due on the first day of the month after the one billed, months ago: overdue until paid.
        month = months_ago(3)
        account = billing.account(
            net_terms_days=0, commitment={"monthly_cost": "10"}, contract_started_at=SINCE_LONG_AGO
        )
        billing.billed(month)
        (invoice,) = billing.invoices(account_id=account["id"])
        assert (invoice["status"], invoice["overdue"]) == ("open", True)
        assert billing.invoice(invoice["id"])["overdue"] is True
        billing.pay(account, "10")
        (invoice,) = billing.invoices(account_id=account["id"])
        assert (invoice["status"], invoice["overdue"]) == ("paid", False)
        # Last month's, due 30 days after its end: not overdue before that day has ended.
        billing.billed(MONTH)
        (recent,) = [item for item in billing.invoices(account_id=account["id"]) if item["month"] == MONTH]
        due = datetime.fromisoformat(recent["due_date"]).date()
        assert recent["overdue"] is (datetime.now(UTC).date() > due)

    def test_the_issue_time_is_the_runs_time(self, billing):
        billing.account(commitment={"monthly_cost": "10"}, contract_started_at=SINCE_LONG_AGO)
        before = datetime.now(UTC)
        run = billing.billed(MONTH)
        after = datetime.now(UTC)
        (invoice,) = billing.invoices()
        assert invoice["issued_at"] == run["created_at"]
        assert before <= ts(invoice["issued_at"]) <= after

    def test_usage_of_the_months_around_is_not_on_the_invoice(self, billing):
        account = billing.account()
        billing.product("API", "1")
        billing.use(account, "API", 1, rfc3339(ts(start_of(MONTH)) - timedelta(microseconds=1)))
        billing.use(account, "API", 2, start_of(MONTH))
        billing.use(account, "API", 4, rfc3339(ts(start_of(following(MONTH))) - timedelta(microseconds=1)))
        billing.use(account, "API", 8, start_of(following(MONTH)))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert lines_of(invoice) == [("usage", "API", 6, 1, 6, 6)]

    def test_one_usage_line_per_product_in_product_order(self, billing):
        account = billing.account()
        billing.product("B-SMS", "0.1", description="Messages")
        billing.product("A-API", "0.25", description="Requests")
        # Directions and resolutions make several aggregates of one product: still one line.
        billing.use(account, "B-SMS", 3, at(MONTH, 2), direction="INBOUND")
        billing.use(account, "B-SMS", 4, at(MONTH, 3), direction="OUTBOUND", resolution="hd")
        billing.use(account, "A-API", 2, at(MONTH, 4))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert [(line["line"], line["description"]) for line in invoice["lines"]] == [(1, "Requests"), (2, "Messages")]
        assert lines_of(invoice) == [
            ("usage", "A-API", 2, Decimal("0.25"), Decimal("0.5"), Decimal("0.5")),
            ("usage", "B-SMS", 7, Decimal("0.1"), Decimal("0.7"), Decimal("0.7")),
        ]
        assert invoice["amount"] == Decimal("1.2")

    def test_fractional_quantities_are_summed_exactly(self, billing):
        account = billing.account()
        billing.product("GB", "0.1")
        for quantity in ("0.1", "0.2", "0.000000001"):
            billing.use(account, "GB", quantity, at(MONTH))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert lines_of(invoice) == [
            ("usage", "GB", Decimal("0.300000001"), Decimal("0.1"), Decimal("0.0300000001"), Decimal("0.03"))
        ]


class TestNumbering:
    def test_numbers_follow_account_creation_then_currency(self, billing):
        billing.product("USD-API", "1", "USD")
        billing.product("EUR-SMS", "1", "EUR")
        billing.product("JPY-CALL", "1", "JPY")
        first = billing.account(name="First", commitment={"monthly_cost": "10"}, contract_started_at=SINCE_LONG_AGO)
        second = billing.account(name="Second", currency="EUR")
        billing.account(name="Nothing to bill")
        fourth = billing.account(name="Fourth", currency="JPY")
        # Sent in another order than the accounts were created: the numbers do not care.
        billing.use(fourth, "JPY-CALL", 1, at(MONTH))
        billing.use(second, "USD-API", 1, at(MONTH))
        billing.use(first, "EUR-SMS", 1, at(MONTH))
        billing.use(first, "JPY-CALL", 1, at(MONTH))
        assert billing.billed(MONTH)["invoice_count"] == 5
        assert [(i["number"], i["account_id"], i["currency"]) for i in billing.invoices()] == [
            (1, first["id"], "EUR"),
            (2, first["id"], "JPY"),
            (3, first["id"], "USD"),
            (4, second["id"], "USD"),
            (5, fourth["id"], "JPY"),
        ]

    def test_numbers_continue_across_runs_and_never_repeat(self, billing):
        billing.account(commitment={"monthly_cost": "10"}, contract_started_at=SINCE_LONG_AGO)
        billing.account(commitment={"monthly_cost": "20"}, contract_started_at=SINCE_LONG_AGO)
        billing.billed(months_ago(3))
        (first, _) = billing.invoices()
        assert billing.void(first["id"]).status_code == 200
        billing.billed(months_ago(2))
        billing.billed(MONTH)
        invoices = billing.invoices()
        assert [i["number"] for i in invoices] == [1, 2, 3, 4, 5, 6]
        assert [i["month"] for i in invoices] == [months_ago(3)] * 2 + [months_ago(2)] * 2 + [MONTH] * 2


#: (currency, unit price, quantity, exact amount, the line's amount)
ROUNDING_CASES = {
    "0.067 x 55 USD": ("USD", "0.067", 55, "3.685", "3.69"),
    # Exactly half a minor unit goes away from zero (half-even would give 0.12, 0.00, 2, 0.012).
    "half a cent above 0.12": ("USD", "0.125", 1, "0.125", "0.13"),
    "half a cent": ("USD", "0.001", 5, "0.005", "0.01"),
    "just under half a cent": ("USD", "0.004999999", 1, "0.004999999", "0"),
    "nanoprices": ("EUR", "0.000000001", "4999999", "0.004999999", "0"),
    "2.5 JPY": ("JPY", "0.5", 5, "2.5", "3"),
    "1.5 JPY": ("JPY", "0.5", 3, "1.5", "2"),
    "0.49 JPY": ("JPY", "0.49", 1, "0.49", "0"),
    "whole JPY": ("JPY", "1234.5", 2, "2469", "2469"),
    "half a fils": ("KWD", "0.0125", 1, "0.0125", "0.013"),
    "three half fils": ("KWD", "0.0005", 3, "0.0015", "0.002"),
    "under half a fils": ("KWD", "0.0004999", 1, "0.0004999", "0"),
    "1.2344999 KWD": ("KWD", "1.2344999", 1, "1.2344999", "1.234"),
    "four digits (CLF)": ("CLF", "0.00005", 1, "0.00005", "0.0001"),
}


class TestRounding:
    def test_a_line_is_its_exact_amount_rounded_half_away_from_zero(self, billing):
        # One account per case, all in one run: each account's one invoice has one line.
        accounts = {
            name: usage_amount(billing, price, quantity, currency)
            for name, (currency, price, quantity, _, _) in ROUNDING_CASES.items()
        }
        billing.billed(MONTH)
        invoices = {invoice["account_id"]: invoice for invoice in billing.invoices_in_full()}

        def check(name: str) -> None:
            currency, _, _, exact, rounded = ROUNDING_CASES[name]
            invoice = invoices[accounts[name]["id"]]
            (line,) = invoice["lines"]
            assert invoice["currency"] == currency
            assert Decimal(line["unrounded_amount"]) == Decimal(exact), line
            assert Decimal(line["amount"]) == Decimal(rounded), line
            assert Decimal(invoice["amount"]) == Decimal(rounded), invoice
            assert invoice["status"] == ("open" if Decimal(rounded) else "paid")

        each({name: name for name in ROUNDING_CASES}, check)

    def test_the_commitment_is_rounded_to_the_accounts_currency(self, billing):
        billing.account(currency="JPY", commitment={"monthly_cost": "1000.5"}, contract_started_at=SINCE_LONG_AGO)
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert lines_of(invoice) == [("subscription", None, 1, Decimal("1000.5"), Decimal("1000.5"), 1001)]
        assert invoice["amount"] == 1001

    def test_the_invoice_is_the_sum_of_rounded_lines(self, billing):
        # Three lines of 0.005 each: 0.01 apiece, so the invoice is 0.03 (not 0.015 rounded).
        account = billing.account()
        for product_id in ("A", "B", "C"):
            billing.product(product_id, "0.001")
            billing.use(account, product_id, 5, at(MONTH))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert [line["amount"] for line in invoice["lines"]] == [Decimal("0.01")] * 3
        assert invoice["amount"] == Decimal("0.03")

    def test_a_price_change_inside_the_month_makes_one_line_without_a_unit_price(self, billing):
        account = billing.account()
        billing.product("API", "0.001", description="Requests")
        billing.product("API", "0.0025", description="Requests", effective_from=at(MONTH, 15, "00:00:00"))
        billing.use(account, "API", 5, at(MONTH, 14, "23:59:59"))
        billing.use(account, "API", 2, at(MONTH, 15, "00:00:00"))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        # 0.005 + 0.005 = 0.01 exactly; rounding each part first would have made 0.02.
        assert lines_of(invoice) == [("usage", "API", 7, None, Decimal("0.01"), Decimal("0.01"))]
        assert invoice["amount"] == Decimal("0.01")
        (line,) = raw_numbers(billing.get(invoice["id"]))["lines"]
        assert (line["quantity"], line["unrounded_amount"], line["amount"]) == ("7", "0.01", "0.01")

    def test_a_price_change_in_another_month_keeps_the_unit_price(self, billing):
        account = billing.account()
        billing.product("API", "0.5")
        billing.product("API", "0.75", effective_from=start_of(following(MONTH)))
        billing.use(account, "API", 2, at(MONTH))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert lines_of(invoice) == [("usage", "API", 2, Decimal("0.5"), 1, 1)]


class TestZeroAmount:
    def test_a_month_of_free_usage_is_an_invoice_of_zero_issued_paid(self, billing):
        account = billing.account()
        billing.product("FREE", "0")
        billing.use(account, "FREE", 100, at(MONTH))
        run = billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert invoice["status"] == "paid"
        assert (invoice["amount"], invoice["amount_paid"], invoice["amount_due"]) == (0, 0, 0)
        assert invoice["paid_at"] == invoice["issued_at"] == run["created_at"]
        assert lines_of(invoice) == [("usage", "FREE", 100, 0, 0, 0)]
        assert billing.invoices(status="paid") == billing.invoices()
        assert billing.invoices(status="open") == []

    def test_usage_that_rounds_to_zero_is_an_invoice_of_zero(self, billing):
        usage_amount(billing, "0.001", 4, "USD")
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert invoice["status"] == "paid"
        assert invoice["lines"][0]["unrounded_amount"] == Decimal("0.004")
        assert invoice["amount"] == 0

    def test_a_zero_invoice_takes_no_money_paid_ahead(self, billing):
        account = usage_amount(billing, "0", 1, "USD")
        billing.paid(account, "5")
        billing.billed(MONTH)
        (invoice,) = billing.invoices()
        assert invoice["status"] == "paid"
        (payment,) = billing.payments(account)
        assert (payment["unapplied"], payment["applied"]) == (5, [])


class TestCurrencies:
    def test_usage_in_two_currencies_and_a_commitment_make_two_invoices(self, billing):
        account = billing.account(commitment={"monthly_cost": "50"}, contract_started_at=SINCE_LONG_AGO)
        billing.product("API", "0.01", "USD", description="Requests")
        billing.product("SMS", "0.05", "EUR", description="Messages")
        billing.use(account, "API", 100, at(MONTH))
        billing.use(account, "SMS", 10, at(MONTH))
        assert billing.billed(MONTH)["invoice_count"] == 2
        eur, usd = billing.invoices_in_full()
        assert (eur["number"], eur["currency"], eur["amount"]) == (1, "EUR", Decimal("0.5"))
        assert lines_of(eur) == [("usage", "SMS", 10, Decimal("0.05"), Decimal("0.5"), Decimal("0.5"))]
        assert (usd["number"], usd["currency"], usd["amount"]) == (2, "USD", 51)
        assert lines_of(usd) == [("subscription", None, 1, 50, 50, 50), ("usage", "API", 100, Decimal("0.01"), 1, 1)]
        assert eur["due_date"] == usd["due_date"]

    def test_the_commitment_is_in_the_accounts_currency_whatever_the_usage(self, billing):
        account = billing.account(
            currency="EUR", commitment={"monthly_cost": "9.99"}, contract_started_at=SINCE_LONG_AGO
        )
        billing.product("API", "1", "USD")
        billing.use(account, "API", 3, at(MONTH))
        billing.billed(MONTH)
        eur, usd = billing.invoices_in_full()
        assert (eur["currency"], lines_of(eur)) == (
            "EUR",
            [("subscription", None, 1, Decimal("9.99"), Decimal("9.99"), Decimal("9.99"))],
        )
        assert (usd["currency"], lines_of(usd)) == ("USD", [("usage", "API", 3, 1, 3, 3)])

    def test_a_product_whose_currency_changed_bills_each_currency_apart(self, billing):
        account = billing.account()
        billing.product("API", "1", "USD")
        billing.use(account, "API", 2, at(MONTH, 5))
        billing.product("API", "3", "EUR", effective_from=at(MONTH, 10, "00:00:00"))
        billing.use(account, "API", 1, at(MONTH, 20))
        billing.billed(MONTH)
        eur, usd = billing.invoices_in_full()
        assert (eur["currency"], eur["amount"], usd["currency"], usd["amount"]) == ("EUR", 3, "USD", 2)


class TestCommitment:
    def committed(self, billing: Billing, started: str, **extra: Any) -> dict[str, Any]:
        return billing.account(commitment={"monthly_cost": "30"}, contract_started_at=started, **extra)

    def test_a_contract_started_during_the_month_is_charged_whole(self, billing):
        self.committed(billing, at(MONTH, 28, "23:00:00"))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert lines_of(invoice) == [("subscription", None, 1, 30, 30, 30)]

    def test_a_contract_started_in_the_last_instant_of_the_month_is_charged(self, billing):
        self.committed(billing, rfc3339(ts(start_of(following(MONTH))) - timedelta(microseconds=1)))
        assert billing.billed(MONTH)["invoice_count"] == 1

    def test_a_contract_started_after_the_month_is_not_charged(self, billing):
        self.committed(billing, start_of(MONTH))
        assert billing.billed(EARLIER)["invoice_count"] == 0
        assert billing.invoices() == []
        # It is charged from its first month on.
        assert billing.billed(MONTH)["invoice_count"] == 1
        assert [(i["month"], i["amount"]) for i in billing.invoices()] == [(MONTH, 30)]

    def test_usage_is_billed_before_the_contract_starts(self, billing):
        account = self.committed(billing, start_of(following(MONTH)))
        billing.product("API", "2")
        billing.use(account, "API", 1, at(MONTH))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert lines_of(invoice) == [("usage", "API", 1, 2, 2, 2)]

    def test_the_contract_starts_by_default_when_the_account_is_created(self, billing):
        billing.account(commitment={"monthly_cost": "30"})
        assert billing.billed(MONTH)["invoice_count"] == 0

    def test_a_commitment_of_zero_is_no_line(self, billing):
        account = billing.account(commitment={"monthly_cost": "0"}, contract_started_at=SINCE_LONG_AGO)
        assert billing.billed(EARLIER)["invoice_count"] == 0
        billing.product("API", "1")
        billing.use(account, "API", 1, at(MONTH))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert [line["kind"] for line in invoice["lines"]] == ["usage"]

    def test_each_month_charges_the_commitment_again(self, billing):
        self.committed(billing, SINCE_LONG_AGO)
        billing.billed(EARLIER)
        billing.billed(MONTH)
        assert [(i["month"], i["amount"]) for i in billing.invoices()] == [(EARLIER, 30), (MONTH, 30)]


class TestArchivedAccount:
    def archive(self, billing: Billing, account: dict[str, Any]) -> None:
        response = billing.client.delete(f"/v1/accounts/{account['id']}", headers=billing.headers)
        assert response.status_code == 202, response.text

    def set_archived_at(self, database: Any, account: dict[str, Any], moment: str) -> None:
        with database.write() as conn:
            conn.execute(
                update(accounts).where(accounts.c.id == uuid.UUID(account["id"])).values(archived_at=ts(moment))
            )

    def test_an_account_archived_since_is_billed_for_the_months_it_was_active(self, billing):
        account = billing.account(commitment={"monthly_cost": "30"}, contract_started_at=SINCE_LONG_AGO)
        billing.product("API", "1")
        billing.use(account, "API", 2, at(MONTH))
        self.archive(billing, account)
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert invoice["account_id"] == account["id"]
        assert lines_of(invoice) == [("subscription", None, 1, 30, 30, 30), ("usage", "API", 2, 1, 2, 2)]

    def test_archived_during_the_month_is_charged_the_commitment(self, billing, database):
        account = billing.account(commitment={"monthly_cost": "30"}, contract_started_at=SINCE_LONG_AGO)
        self.set_archived_at(database, account, start_of(MONTH))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert lines_of(invoice) == [("subscription", None, 1, 30, 30, 30)]

    def test_archived_before_the_month_began_is_not_charged_the_commitment(self, billing, database):
        account = billing.account(commitment={"monthly_cost": "30"}, contract_started_at=SINCE_LONG_AGO)
        billing.product("API", "1")
        # Usage imported before the account was archived is still billed; the commitment is not.
        billing.use(account, "API", 2, at(MONTH))
        self.set_archived_at(database, account, rfc3339(ts(start_of(MONTH)) - timedelta(microseconds=1)))
        billing.billed(MONTH)
        (invoice,) = billing.invoices_in_full()
        assert lines_of(invoice) == [("usage", "API", 2, 1, 2, 2)]

    def test_archived_before_the_month_without_usage_gets_no_invoice(self, billing, database):
        account = billing.account(commitment={"monthly_cost": "30"}, contract_started_at=SINCE_LONG_AGO)
        self.set_archived_at(database, account, at(EARLIER))
        assert billing.billed(MONTH)["invoice_count"] == 0


# --- reading invoices ------------------------------------------------------------------------------


@pytest.fixture
def family(billing):
    """A parent account with a subaccount, and a sibling: each with an invoice for MONTH (numbers 1, 2, 3)."""
    billing.product("API", "1")
    parent = billing.account(name="Parent")
    child = billing.account(name="Child", parent_account_id=parent["id"])
    sibling = billing.account(name="Sibling")
    for number, account in enumerate((parent, child, sibling), start=1):
        billing.use(account, "API", number, at(MONTH))
    billing.billed(MONTH)
    invoices = {invoice["account_id"]: invoice for invoice in billing.invoices()}
    return {
        "parent": parent,
        "child": child,
        "sibling": sibling,
        "invoices": {
            name: invoices[account["id"]]
            for name, account in (("parent", parent), ("child", child), ("sibling", sibling))
        },
    }


class TestReach:
    def test_an_account_key_sees_its_account_and_subaccounts(self, billing, family):
        key = billing.tenant.create_key(account_id=family["parent"]["id"])["key"]
        own = billing.as_key(key)
        assert [i["id"] for i in own.invoices()] == [
            family["invoices"]["parent"]["id"],
            family["invoices"]["child"]["id"],
        ]
        assert own.invoice(family["invoices"]["child"]["id"]) == billing.invoice(family["invoices"]["child"]["id"])
        assert [i["id"] for i in own.invoices(account_id=family["child"]["id"])] == [family["invoices"]["child"]["id"]]

    def test_an_account_key_does_not_see_beyond_its_subtree(self, billing, family):
        key = billing.tenant.create_key(account_id=family["child"]["id"])["key"]
        own = billing.as_key(key)
        assert [i["id"] for i in own.invoices()] == [family["invoices"]["child"]["id"]]

        def hidden(name: str) -> None:
            invoice_id = family["invoices"][name]["id"]
            assert_error(own.get(invoice_id), 404, "NOT_FOUND")
            assert_error(own.list(account_id=family[name]["id"]), 404, "NOT_FOUND")
            # Voiding is the operator's: refused to every account key, before any lookup.
            assert_error(own.void(invoice_id), 403, "FORBIDDEN")
            assert billing.invoice(invoice_id)["status"] == "open"

        each({"parent": "parent", "sibling": "sibling"}, hidden)

    def test_another_organization_sees_none_of_the_invoices(self, billing, family, other_tenant):
        other = Billing(other_tenant)
        assert other.invoices() == []
        for name in ("parent", "child", "sibling"):
            invoice_id = family["invoices"][name]["id"]
            body = assert_error(other.get(invoice_id), 404, "NOT_FOUND")
            assert body == {**body, "note": f"No invoice with id {invoice_id} was found."}
            assert_error(other.list(account_id=family[name]["id"]), 404, "NOT_FOUND")
            assert_error(other.void(invoice_id), 404, "NOT_FOUND")
        assert [i["status"] for i in billing.invoices()] == ["open"] * 3

    def test_an_unknown_invoice_is_answered_like_another_organizations(self, billing, family, other_tenant):
        other_org_invoice = family["invoices"]["parent"]["id"]
        unknown = str(uuid.uuid4())
        outside = assert_error(Billing(other_tenant).get(other_org_invoice), 404, "NOT_FOUND")
        missing = assert_error(billing.get(unknown), 404, "NOT_FOUND")
        assert outside["note"].replace(other_org_invoice, "ID") == missing["note"].replace(unknown, "ID")

    def test_reading_needs_billing_read(self, billing, family):
        key = billing.tenant.create_key(scopes=["usage:read", "accounts:read"])["key"]
        reader = billing.as_key(key)
        assert_error(reader.list(), 403, "FORBIDDEN")
        assert_error(reader.get(family["invoices"]["parent"]["id"]), 403, "FORBIDDEN")
        key = billing.tenant.create_key(scopes=["billing:read"])["key"]
        assert len(billing.as_key(key).invoices()) == 3


class TestFilters:
    def test_by_account_status_and_month(self, billing, family):
        billing.billed(EARLIER)  # nothing in it
        child = family["invoices"]["child"]
        assert billing.void(child["id"]).status_code == 200
        parent, sibling = family["invoices"]["parent"], family["invoices"]["sibling"]
        assert [i["id"] for i in billing.invoices(status="void")] == [child["id"]]
        assert [i["id"] for i in billing.invoices(status="open")] == [parent["id"], sibling["id"]]
        assert billing.invoices(status="paid") == []
        assert len(billing.invoices(month=MONTH)) == 3
        assert billing.invoices(month=EARLIER) == []
        assert [i["id"] for i in billing.invoices(account_id=family["sibling"]["id"], status="open", month=MONTH)] == [
            sibling["id"]
        ]
        assert billing.invoices(account_id=family["sibling"]["id"], status="void") == []

    def test_an_account_that_is_unknown_is_not_found(self, billing, family):
        assert_error(billing.list(account_id=str(uuid.uuid4())), 404, "NOT_FOUND")

    def test_bad_parameters_are_refused(self, billing, family):
        each(
            {
                "status": ({"status": "draft"}, "query.status"),
                "month": ({"month": "2026-1"}, "query.month"),
                "account": ({"account_id": "nope"}, "query.account_id"),
            },
            lambda case: assert_invalid(billing.list(**case[0]), case[1]),
        )
        assert_invalid(billing.get("not-a-uuid"), "path.invoice_id")


# --- voids -----------------------------------------------------------------------------------------


class TestVoid:
    def test_an_open_invoice_is_voided_and_stays_listed(self, billing, family):
        invoice = billing.invoice(family["invoices"]["parent"]["id"])
        before = datetime.now(UTC)
        response = billing.void(invoice["id"])
        after = datetime.now(UTC)
        assert response.status_code == 200, response.text
        voided = json.loads(response.text, parse_float=Decimal)
        assert before <= ts(voided["voided_at"]) <= after
        assert voided == {**invoice, "status": "void", "voided_at": voided["voided_at"], "amount_due": 0}
        assert billing.invoice(invoice["id"]) == voided
        assert [i["status"] for i in billing.invoices()] == ["void", "open", "open"]
        assert billing.invoices(status="void") == [{**voided, "lines": None}]

    def test_voiding_again_changes_nothing(self, billing, family):
        invoice_id = family["invoices"]["parent"]["id"]
        first = billing.void(invoice_id)
        assert first.status_code == 200, first.text
        again = billing.void(invoice_id)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()

    def test_a_paid_invoice_cannot_be_voided(self, billing, family):
        invoice_id = family["invoices"]["parent"]["id"]
        billing.paid(family["parent"], "1", invoice_id=invoice_id)
        paid = billing.invoice(invoice_id)
        assert paid["status"] == "paid"
        body = assert_error(billing.void(invoice_id), 409, "CONFLICT")
        assert "paid" in body["note"]
        assert billing.invoice(invoice_id) == paid
        (payment,) = billing.payments(family["parent"])
        assert payment["applied"] == [{"invoice_id": invoice_id, "amount": 1}]

    def test_an_invoice_of_zero_cannot_be_voided(self, billing):
        usage_amount(billing, "0", 3, "USD")
        billing.billed(MONTH)
        (invoice,) = billing.invoices()
        assert_error(billing.void(invoice["id"]), 409, "CONFLICT")
        assert billing.invoices() == [invoice]

    def test_an_unknown_invoice_is_not_found(self, billing, family):
        assert_error(billing.void(str(uuid.uuid4())), 404, "NOT_FOUND")
        assert_invalid(billing.void("not-a-uuid"), "path.invoice_id")

    def test_voiding_needs_billing_write(self, billing, family):
        invoice_id = family["invoices"]["parent"]["id"]
        key = billing.tenant.create_key(scopes=["billing:read"])["key"]
        assert_error(billing.as_key(key).void(invoice_id), 403, "FORBIDDEN")
        assert billing.invoice(invoice_id)["status"] == "open"

    def test_a_voided_month_is_not_billed_again(self, billing, family):
        for invoice in family["invoices"].values():
            assert billing.void(invoice["id"]).status_code == 200
        assert billing.billed(MONTH, 200)["invoice_count"] == 3
        assert [i["status"] for i in billing.invoices()] == ["void"] * 3
