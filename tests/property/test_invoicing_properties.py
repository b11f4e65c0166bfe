"""Invoicing and payments under random input (CONTRACT §1 invoice and payment; invariants 6 and 7).

Two properties:

* :func:`meterbook.invoicing.service.draft_invoices` alone (pure, no database), over random accounts
  (currencies of 0 to 4 minor-unit digits, commitments, contract starts and archivals around the month)
  and random monthly aggregates: an invoice's amount is the sum of its lines; each line is its exact
  amount rounded half away from zero at the currency's exponent (so within half a minor unit of it);
  there is exactly one invoice per (account, currency) with anything to bill; numbers run on from
  ``first_number`` without a gap, in account order then by currency.
* Through the API, on SQLite and on PostgreSQL: random sequences of billing runs, payments (random
  amounts, currencies, dates, named invoices, retries, some refused) and voids. A model in the test
  applies the settlement rule (the named invoice first, then the oldest open invoices, oldest money
  first; the rest waits; a void frees its money for the other open invoices) and after every step the
  server must agree with it, and: 0 ≤ amount_paid ≤ amount; per account and currency, payments =
  amount paid of the invoices that are not void + unapplied; no open invoice beside unapplied money of
  its account and currency; re-running a billed month changes nothing; ``invoicing.service.verify``
  finds nothing.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import event as label
from hypothesis import strategies as st

from meterbook.aggregates.charges import UsageCharge, charges
from meterbook.aggregates.models import Aggregate
from meterbook.invoicing import service as invoicing
from meterbook.invoicing.service import AccountTerms, draft_invoices
from meterbook.kit.money import CURRENCY_EXPONENTS
from meterbook.plans.service import PriceBook
from tests.billing import Billing, at, exact, months_ago
from tests.conftest import Tenant, bearer
from tests.helpers import rfc3339, ts

PURE = settings(max_examples=300, deadline=None)
# Every example of the API property is some fifty HTTP calls: few examples, and no shrinking unless asked
# (METERBOOK_TEST_SHRINK=1); a failure prints the operations it ran in its notes.
THROUGH_THE_API = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=list(Phase)
    if os.environ.get("METERBOOK_TEST_SHRINK") == "1"
    else [Phase.explicit, Phase.reuse, Phase.generate],
)


def at_catalog_prices(usage: list[Aggregate]) -> list[UsageCharge]:
    """The usage charges of aggregates priced by the catalog (no plan, no negotiated price)."""
    return charges(PriceBook(negotiated={}, plans={}), usage)


def rounded(amount: Decimal, currency: str) -> Decimal:
    """Half away from zero, written out by hand: |amount| + half a minor unit, truncated, signed back."""
    unit = Decimal(1).scaleb(-CURRENCY_EXPONENTS[currency])
    with localcontext(prec=200):
        magnitude = ((abs(amount) + unit / 2) // unit) * unit
        return magnitude if amount >= 0 else -magnitude


def wide_sum(values: Any) -> Decimal:
    with localcontext(prec=200):
        return sum(values, Decimal(0))


# --- (a) draft_invoices, alone ---------------------------------------------------------------------

MONTH = "2025-06"
MONTH_START = datetime(2025, 6, 1, tzinfo=UTC)
MONTH_END = datetime(2025, 7, 1, tzinfo=UTC)
CURRENCIES = ["USD", "EUR", "JPY", "KWD", "CLF"]
ISSUED = datetime(2025, 7, 2, 3, 4, 5, tzinfo=UTC)


def scaled(mantissa: int, places: int) -> Decimal:
    return Decimal(mantissa).scaleb(-places)


# Prices and commitments: up to nine decimals, up to 9,000,000,000; with the edges that rounding cares about.
money = st.one_of(
    st.builds(scaled, st.integers(0, 10**6), st.integers(0, 9)),
    st.builds(scaled, st.integers(0, 9 * 10**18), st.just(9)),
    st.sampled_from(
        [Decimal(0), Decimal("0.005"), Decimal("0.125"), Decimal("0.5"), Decimal("0.0005"), Decimal("0.00005")]
    ),
)
units = st.one_of(
    st.builds(scaled, st.integers(1, 10**6), st.integers(0, 9)),
    st.builds(scaled, st.integers(1, 10**18 - 1), st.integers(0, 9)),
)
# Instants around the month: long before, its edges, inside, after.
around = st.one_of(
    st.sampled_from(
        [
            datetime(2020, 1, 1, tzinfo=UTC),
            MONTH_START - timedelta(microseconds=1),
            MONTH_START,
            MONTH_END - timedelta(microseconds=1),
            MONTH_END,
            datetime(2030, 1, 1, tzinfo=UTC),
        ]
    ),
    st.builds(lambda seconds: MONTH_START + timedelta(seconds=seconds), st.integers(-86400 * 40, 86400 * 70)),
)


@st.composite
def month_input(draw: Any) -> tuple[list[AccountTerms], list[Aggregate]]:
    terms = [
        AccountTerms(
            id=uuid.UUID(int=index + 1),
            currency=draw(st.sampled_from(CURRENCIES)),
            monthly_cost=draw(st.one_of(st.just(Decimal(0)), money)),
            contract_started_at=draw(around),
            archived_at=draw(st.one_of(st.none(), around)),
            net_terms_days=draw(st.integers(0, 365)),
        )
        for index in range(draw(st.integers(0, 4)))
    ]
    aggregates = []
    if terms:
        for index in range(draw(st.integers(0, 12))):
            product = draw(st.sampled_from(["A", "B", "C", "D"]))
            aggregates.append(
                Aggregate(
                    id=f"{index:032x}",
                    account_id=draw(st.sampled_from(terms)).id,
                    product_id=product,
                    aggr_product_id=None,
                    description=f"Product {product}",
                    month=MONTH,
                    type="OTHER",
                    direction=draw(st.sampled_from([None, "INBOUND", "OUTBOUND"])),
                    resolution=None,
                    unit="unit",
                    currency=draw(st.sampled_from(CURRENCIES)),
                    wallet_name=None,
                    price=draw(money),
                    number_of_units=draw(units),
                    event_count=1,
                )
            )
    return terms, aggregates


def committed(account: AccountTerms) -> bool:
    """The contract's rule, restated: started by the month's end, not archived before it began."""
    return (
        account.monthly_cost > 0
        and account.contract_started_at < MONTH_END
        and (account.archived_at is None or account.archived_at >= MONTH_START)
    )


class TestDraftInvoices:
    @PURE
    @given(data=month_input(), first_number=st.integers(1, 10**6))
    def test_invoices_of_a_month(self, data, first_number):
        terms, aggregates = data
        drafts = draft_invoices(
            uuid.UUID(int=99), MONTH, terms, at_catalog_prices(aggregates), [], first_number, ISSUED
        )

        # One invoice per (account, currency) with anything to bill, in account order then by currency.
        usage: dict[tuple[uuid.UUID, str], dict[str, list[Aggregate]]] = defaultdict(lambda: defaultdict(list))
        for aggregate in aggregates:
            usage[(aggregate.account_id, aggregate.currency)][aggregate.product_id].append(aggregate)
        expected_owners = [
            (account.id, currency)
            for account in terms
            for currency in sorted(
                {c for (a, c) in usage if a == account.id} | ({account.currency} if committed(account) else set())
            )
        ]
        assert [(d.account_id, d.currency) for d in drafts] == expected_owners
        assert [d.number for d in drafts] == list(range(first_number, first_number + len(drafts)))
        label(f"{len(drafts)} invoices")

        by_id = {account.id: account for account in terms}
        for invoice in drafts:
            account = by_id[invoice.account_id]
            unit = Decimal(1).scaleb(-CURRENCY_EXPONENTS[invoice.currency])
            assert invoice.amount == wide_sum(line.amount for line in invoice.lines)
            assert invoice.amount_paid == 0
            assert (invoice.status, invoice.paid_at) == (("open", None) if invoice.amount else ("paid", ISSUED))
            assert (invoice.month, invoice.issued_at, invoice.voided_at) == (MONTH, ISSUED, None)
            assert invoice.effective_date == MONTH_END
            assert invoice.due_date == MONTH_END + timedelta(days=account.net_terms_days)
            assert [line.line for line in invoice.lines] == list(range(1, len(invoice.lines) + 1))

            products = usage.get((invoice.account_id, invoice.currency), {})
            expected_lines: list[tuple[str, str | None, Decimal, Decimal | None, Decimal]] = []
            if committed(account) and invoice.currency == account.currency:
                expected_lines.append(("subscription", None, Decimal(1), account.monthly_cost, account.monthly_cost))
            for product_id in sorted(products):
                parts = products[product_id]
                prices = {part.price for part in parts}
                with localcontext(prec=200):
                    exact_total = sum((part.number_of_units * part.price for part in parts), Decimal(0))
                expected_lines.append(
                    (
                        "usage",
                        product_id,
                        wide_sum(part.number_of_units for part in parts),
                        prices.pop() if len(prices) == 1 else None,
                        exact_total,
                    )
                )
            assert [
                (line.kind, line.product_id, line.quantity, line.unit_price, line.unrounded_amount)
                for line in invoice.lines
            ] == expected_lines
            for line in invoice.lines:
                assert line.amount == rounded(line.unrounded_amount, invoice.currency)
                assert abs(line.amount - line.unrounded_amount) <= unit / 2
                assert line.amount == line.amount.quantize(unit)
                if abs(line.amount - line.unrounded_amount) == unit / 2:
                    label("a line exactly half a minor unit away")
                    assert abs(line.amount) > abs(line.unrounded_amount)

    @PURE
    @given(currency=st.sampled_from(CURRENCIES), minor=st.integers(0, 10**12), first_number=st.integers(1, 99))
    def test_exactly_half_a_minor_unit_rounds_away_from_zero(self, currency, minor, first_number):
        unit = Decimal(1).scaleb(-CURRENCY_EXPONENTS[currency])
        price = minor * unit + unit / 2
        account = AccountTerms(uuid.UUID(int=1), currency, Decimal(0), datetime(2020, 1, 1, tzinfo=UTC), None, 30)
        aggregate = Aggregate(
            "0" * 32,
            account.id,
            "P",
            None,
            "P",
            MONTH,
            "OTHER",
            None,
            None,
            "unit",
            currency,
            None,
            price,
            Decimal(1),
            1,
        )
        (invoice,) = draft_invoices(
            uuid.UUID(int=2), MONTH, [account], at_catalog_prices([aggregate]), [], first_number, ISSUED
        )
        assert invoice.amount == (minor + 1) * unit
        assert invoice.number == first_number


# --- (b) through the API ---------------------------------------------------------------------------

MONTHS = [months_ago(3), months_ago(2), months_ago(1)]
PRODUCTS = {"U": "USD", "E": "EUR", "J": "JPY"}


@dataclass
class ModelInvoice:
    id: str
    number: int
    account_id: str
    currency: str
    month: str
    amount: Decimal
    issued_at: datetime
    status: str
    paid: Decimal = Decimal(0)
    paid_at: datetime | None = None
    voided_at: str | None = None


@dataclass
class ModelPayment:
    id: str
    account_id: str
    currency: str
    amount: Decimal
    date: datetime
    seq: int
    body: dict[str, Any]
    unapplied: Decimal
    allocations: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class Model:
    invoices: list[ModelInvoice] = field(default_factory=list)
    payments: list[ModelPayment] = field(default_factory=list)
    billed: set[str] = field(default_factory=set)

    def settle(self, account_id: str, currency: str, first: str | None = None) -> None:
        """The rule: the named invoice, then the oldest open ones; the oldest money first."""
        invoices = sorted(
            (i for i in self.invoices if (i.account_id, i.currency, i.status) == (account_id, currency, "open")),
            key=lambda i: (i.id != first, i.number),
        )
        credit = sorted(
            (p for p in self.payments if (p.account_id, p.currency) == (account_id, currency) and p.unapplied > 0),
            key=lambda p: (p.date, p.seq),
        )
        for invoice in invoices:
            due = invoice.amount - invoice.paid
            last: datetime | None = None
            for payment in credit:
                take = min(due, payment.unapplied)
                if take == 0:
                    continue
                payment.unapplied -= take
                payment.allocations[invoice.id] = payment.allocations.get(invoice.id, Decimal(0)) + take
                due -= take
                last = payment.date
            if last is not None:
                invoice.paid = invoice.amount - due
                if due == 0:
                    invoice.status, invoice.paid_at = "paid", max(last, invoice.issued_at)

    def void(self, invoice: ModelInvoice) -> None:
        for payment in self.payments:
            freed = payment.allocations.pop(invoice.id, Decimal(0))
            payment.unapplied += freed
        invoice.status, invoice.paid = "void", Decimal(0)
        self.settle(invoice.account_id, invoice.currency)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("run"), st.integers(0, 2)),
        st.tuples(st.just("run"), st.integers(0, 2)),
        st.tuples(
            st.just("pay"),
            st.integers(0, 1),  # which account
            st.integers(1, 30_000),  # minor units
            st.one_of(st.none(), st.integers(0, 20)),  # a named invoice (index)
            st.sampled_from([None, None, "USD", "EUR", "JPY"]),  # the currency sent
            st.one_of(st.none(), st.integers(0, 400)),  # days before now (the date sent)
            st.sampled_from(["", "", "", "extra digit"]),
        ),
        st.tuples(st.just("pay"), st.integers(0, 1), st.integers(1, 300), st.none(), st.none(), st.none(), st.just("")),
        st.tuples(st.just("void"), st.integers(0, 20)),
        st.tuples(st.just("retry"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=14,
)


class Harness:
    def __init__(self, client: Any, database: Any, platform_key: str, data: Any) -> None:
        self.client, self.database = client, database
        response = client.post("/v1/organizations", json={"name": "Prop"}, headers=bearer(platform_key))
        assert response.status_code == 201, response.text
        tenant = Tenant(client=client, id=response.json()["id"], key=response.json()["api_key"]["key"])
        self.billing = Billing(tenant)
        self.model = Model()
        self.seq = 0
        prices = {
            product: data.draw(st.builds(scaled, st.integers(0, 5000), st.integers(0, 4)), label=f"price {product}")
            for product in PRODUCTS
        }
        for product, currency in PRODUCTS.items():
            self.billing.product(product, prices[product], currency)
        commitment = data.draw(st.builds(scaled, st.integers(0, 20_000), st.just(2)), label="commitment")
        self.accounts = [
            self.billing.account(
                name="Dollars", commitment={"monthly_cost": str(commitment)}, contract_started_at=at(MONTHS[0], 15)
            ),
            self.billing.account(name="Yen", currency="JPY"),
        ]
        events = []
        for account in self.accounts:
            for month in MONTHS:
                for product in data.draw(st.sets(st.sampled_from(sorted(PRODUCTS))), label="products used"):
                    quantity = data.draw(st.builds(scaled, st.integers(1, 10**5), st.integers(0, 3)), label="quantity")
                    events.append(
                        {
                            "id": f"e-{len(events)}",
                            "account_id": account["id"],
                            "type": "metered",
                            "product_id": product,
                            "quantity": str(quantity),
                            "occurred_at": at(month),
                        }
                    )
        if events:
            response = self.billing.send(events)
            assert response.status_code == 200, response.text
        note(f"prices {prices}, commitment {commitment}, {len(events)} events")

    # --- operations ---

    def run(self, month: str) -> None:
        before = self.billing.invoices()
        response = self.billing.run(month)
        if month in self.model.billed:
            assert response.status_code == 200, response.text
            assert self.billing.invoices() == before
            label("a month billed again")
            return
        assert response.status_code == 201, response.text
        self.model.billed.add(month)
        known = {i.id for i in self.model.invoices}
        new = [i for i in self.billing.invoices(month=month) if i["id"] not in known]
        assert response.json()["invoice_count"] == len(new)
        for invoice in new:
            amount = Decimal(invoice["amount"])
            self.model.invoices.append(
                ModelInvoice(
                    id=invoice["id"],
                    number=invoice["number"],
                    account_id=invoice["account_id"],
                    currency=invoice["currency"],
                    month=month,
                    amount=amount,
                    issued_at=ts(invoice["issued_at"]),
                    status="open" if amount else "paid",
                    paid_at=ts(invoice["issued_at"]) if amount == 0 else None,
                )
            )
        for account_id, currency in sorted({(i["account_id"], i["currency"]) for i in new}):
            self.model.settle(account_id, currency)

    def pay(self, op: tuple[Any, ...]) -> None:
        _, which, minor, named_index, currency, days_back, twist = op
        account = self.accounts[which]
        named = None
        if named_index is not None and self.model.invoices:
            named = self.model.invoices[named_index % len(self.model.invoices)]
        effective = currency or (named.currency if named else ("USD" if which == 0 else "JPY"))
        digits = CURRENCY_EXPONENTS[effective]
        amount = Decimal(minor).scaleb(-digits)
        if twist == "extra digit":
            amount += Decimal(1).scaleb(-digits - 1)
        body: dict[str, Any] = {"id": f"p-{uuid.uuid4().hex[:12]}", "account_id": account["id"], "amount": str(amount)}
        if currency is not None:
            body["currency"] = currency
        if named is not None:
            body["invoice_id"] = named.id
        if days_back is not None:
            body["date"] = rfc3339(datetime.now(UTC) - timedelta(days=days_back, seconds=days_back))
        response = self.client.post("/v1/payments", json=body, headers=self.billing.headers)
        if named is not None and named.account_id != account["id"]:
            assert response.status_code == 400, response.text
            assert response.json()["validationErrors"][0]["path"] == "body.invoice_id"
            label("a payment naming another account's invoice")
            return
        if named is not None and currency is not None and currency != named.currency:
            assert response.status_code == 400, response.text
            assert response.json()["validationErrors"][0]["path"] == "body.currency"
            label("a payment in another currency than its invoice's")
            return
        if twist == "extra digit":
            assert response.status_code == 400, response.text
            assert response.json()["validationErrors"][0]["path"] == "body.amount"
            label("a payment with too many digits")
            return
        assert response.status_code == 201, response.text
        stored = exact(response)
        self.seq += 1
        payment = ModelPayment(
            id=body["id"],
            account_id=account["id"],
            currency=effective,
            amount=amount,
            date=ts(stored["date"]),
            seq=self.seq,
            body=body,
            unapplied=amount,
        )
        assert (stored["currency"], Decimal(stored["amount"])) == (effective, amount)
        self.model.payments.append(payment)
        self.model.settle(account["id"], effective, named.id if named else None)

    def void(self, index: int) -> None:
        if not self.model.invoices:
            return
        invoice = self.model.invoices[index % len(self.model.invoices)]
        response = self.billing.void(invoice.id)
        if invoice.status == "paid":
            assert response.status_code == 409, response.text
            label("a paid invoice not voided")
            return
        assert response.status_code == 200, response.text
        if invoice.status == "void":
            assert response.json()["voided_at"] == invoice.voided_at
            label("a void again")
            return
        invoice.voided_at = response.json()["voided_at"]
        self.model.void(invoice)

    def retry(self, index: int) -> None:
        if not self.model.payments:
            return
        payment = self.model.payments[index % len(self.model.payments)]
        response = self.client.post("/v1/payments", json=payment.body, headers=self.billing.headers)
        assert response.status_code == 200, response.text
        assert exact(response)["id"] == payment.id
        label("a payment sent again")

    def apply(self, op: tuple[Any, ...]) -> None:
        note(f"{op}")
        if op[0] == "run":
            self.run(MONTHS[op[1]])
        elif op[0] == "pay":
            self.pay(op)
        elif op[0] == "void":
            self.void(op[1])
        else:
            self.retry(op[1])

    # --- what the server holds ---

    def check(self) -> None:
        invoices = self.billing.invoices()
        payments = self.billing.payments()
        assert [i["id"] for i in invoices] == [i.id for i in sorted(self.model.invoices, key=lambda i: i.number)]
        assert [i["number"] for i in invoices] == list(range(1, len(invoices) + 1))
        model_invoices = {i.id: i for i in self.model.invoices}
        for invoice in invoices:
            expected = model_invoices[invoice["id"]]
            amount, paid, due = (Decimal(invoice[k]) for k in ("amount", "amount_paid", "amount_due"))
            assert 0 <= paid <= amount, invoice
            assert (invoice["status"], paid) == (expected.status, expected.paid), (invoice, expected)
            assert due == (amount - paid if expected.status == "open" else 0)
            assert (ts(invoice["paid_at"]) if invoice["paid_at"] else None) == expected.paid_at, (invoice, expected)
            assert invoice["voided_at"] == expected.voided_at

        model_payments = {p.id: p for p in self.model.payments}
        assert sorted(p["id"] for p in payments) == sorted(model_payments)
        owners: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        held: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for payment in payments:
            expected_payment = model_payments[payment["id"]]
            applied = {a["invoice_id"]: Decimal(a["amount"]) for a in payment["applied"]}
            assert applied == {k: v for k, v in expected_payment.allocations.items() if v}, payment
            assert Decimal(payment["unapplied"]) == expected_payment.unapplied, payment
            owners[(payment["account_id"], payment["currency"])] += Decimal(payment["amount"])
            held[(payment["account_id"], payment["currency"])] += Decimal(payment["unapplied"])

        # Every payment is either applied to an invoice that is not void or waits unapplied.
        covered: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for invoice in invoices:
            if invoice["status"] != "void":
                covered[(invoice["account_id"], invoice["currency"])] += Decimal(invoice["amount_paid"])
        for owner in set(owners) | set(covered):
            assert owners[owner] == covered[owner] + held[owner], owner
        for invoice in invoices:
            if invoice["status"] == "open":
                assert held[(invoice["account_id"], invoice["currency"])] == 0, invoice
                assert Decimal(invoice["amount_due"]) > 0

        with self.database.read() as conn:
            assert invoicing.verify(conn) == []


class TestSettlement:
    @THROUGH_THE_API
    @given(data=st.data(), ops=operations)
    def test_payments_runs_and_voids_keep_money_and_invoices_in_agreement(
        self, client, database, platform_key, data, ops
    ):
        harness = Harness(client, database, platform_key, data)
        harness.check()
        for op in ops:
            harness.apply(op)
            harness.check()
        # Running every billed month again changes nothing at all.
        billed = sorted(harness.model.billed)
        before = [harness.billing.invoice(i["id"]) for i in harness.billing.invoices()]
        for month in billed:
            response = harness.billing.run(month)
            assert response.status_code == 200, response.text
            assert response.json()["created"] is False
        assert [harness.billing.invoice(i["id"]) for i in harness.billing.invoices()] == before
        harness.check()
