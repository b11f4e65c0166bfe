"""Usage priced by plans and negotiated prices, on invoices, the upcoming invoice and the dialects (CONTRACT §6).

The worked examples of §6 as a customer's invoice shows them; a plan change in the middle of a month (fee
prorated by days, usage priced by the plan in force when it occurred, also when the change is dated back after
the usage); a negotiated price beating the plan; the upcoming invoice equal to what the run then issues; the
Talkdesk row of a tiered price; `verify` clean. Both databases.
"""

from __future__ import annotations

import calendar
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from meterbook.aggregates import service as aggregates
from meterbook.db import Database
from tests.billing import LONG_AGO, Billing, at, exact, metered, months_ago, start_of
from tests.conftest import Tenant, bearer
from tests.helpers import assert_error

LAST_MONTH = months_ago(1)
PRODUCT = "CALLS"

TIERS = [{"up_to": 5, "unit_price": 5}, {"up_to": 10, "unit_price": 4}, {"up_to": None, "unit_price": 3}]
GRADUATED = {"model": "graduated", "tiers": TIERS}
VOLUME = {"model": "volume", "tiers": TIERS}
FREE_THEN_CENT = {
    "model": "graduated",
    "tiers": [{"up_to": 1000, "unit_price": 0, "flat_fee": 10}, {"up_to": None, "unit_price": "0.01"}],
}
PACKAGE = {"model": "package", "package_size": 1000, "package_price": 5}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return exact(response)


@pytest.fixture
def billing(tenant: Tenant) -> Billing:
    found = Billing(tenant)
    found.product(PRODUCT, "0.5", description="Calls")
    return found


def plan(billing: Billing, code: str, price: dict[str, Any], fee: Any = 0, month: str = LAST_MONTH) -> None:
    body = {
        "name": code.title(),
        "currency": "USD",
        "fee": fee,
        "prices": {PRODUCT: price},
        "limits": {},
        "effective_from": start_of(month),
    }
    response = billing.client.put(f"/v1/plans/{code}", json=body, headers=billing.headers)
    assert response.status_code in (200, 201), response.text


def subscribe(billing: Billing, account: dict[str, Any], code: str, starts_at: str) -> Any:
    body = {"plan": code, "starts_at": starts_at}
    return ok(billing.client.put(f"/v1/accounts/{account['id']}/subscription", json=body, headers=billing.headers))


def upcoming(billing: Billing, account: dict[str, Any], month: str = LAST_MONTH) -> Any:
    path = f"/v1/accounts/{account['id']}/invoices/upcoming"
    return ok(billing.client.get(path, params={"month": month}, headers=billing.headers))


def invoice_of(billing: Billing, account: dict[str, Any], month: str = LAST_MONTH) -> dict[str, Any]:
    [found] = billing.invoices_in_full(account_id=account["id"], month=month)
    return found


def usage_lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in invoice["lines"] if line["kind"] == "usage"]


class TestWorkedExamples:
    """CONTRACT §6's examples, as the invoice of the month shows them."""

    @pytest.mark.parametrize(
        ("price", "units", "amount"),
        [
            (GRADUATED, 12, Decimal(51)),
            (VOLUME, 12, Decimal(36)),
            (VOLUME, 5, Decimal(25)),
            (FREE_THEN_CENT, 1500, Decimal(15)),
            (PACKAGE, 1001, Decimal(10)),
        ],
    )
    def test_the_invoice_line(self, billing: Billing, price: dict[str, Any], units: int, amount: Decimal) -> None:
        account = billing.account()
        plan(billing, "pro", price)
        subscribe(billing, account, "pro", start_of(LAST_MONTH))
        # Split over several events and days: tiers count the month's units, not one event's.
        billing.use(account, PRODUCT, units - 1, at(LAST_MONTH, 3))
        billing.use(account, PRODUCT, 1, at(LAST_MONTH, 20))
        billing.billed(LAST_MONTH)
        [line] = usage_lines(invoice_of(billing, account))
        assert line["amount"] == amount
        assert line["quantity"] == units
        assert line["description"] == "Calls (pro plan)"
        # A package price has no tiers to show.
        assert sum(tier["amount"] for tier in line["tiers"]) == (0 if price is PACKAGE else amount)

    def test_a_graduated_line_shows_every_tier_reached(self, billing: Billing) -> None:
        account = billing.account()
        plan(billing, "pro", GRADUATED)
        subscribe(billing, account, "pro", start_of(LAST_MONTH))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH))
        billing.billed(LAST_MONTH)
        [line] = usage_lines(invoice_of(billing, account))
        assert line["tiers"] == [
            {"from": 0, "up_to": 5, "units": 5, "unit_price": 5, "flat_fee": 0, "amount": 25},
            {"from": 5, "up_to": 10, "units": 5, "unit_price": 4, "flat_fee": 0, "amount": 20},
            {"from": 10, "up_to": None, "units": 2, "unit_price": 3, "flat_fee": 0, "amount": 6},
        ]
        assert line["unit_price"] is None

    def test_without_a_plan_the_catalog_prices_as_before(self, billing: Billing) -> None:
        account = billing.account()
        billing.use(account, PRODUCT, 12, at(LAST_MONTH))
        billing.billed(LAST_MONTH)
        [line] = usage_lines(invoice_of(billing, account))
        assert (line["amount"], line["unit_price"], line["tiers"], line["description"]) == (
            6,
            Decimal("0.5"),
            [],
            "Calls",
        )


class TestPlanChangeInTheMiddleOfAMonth:
    def test_fees_prorated_by_days_and_usage_priced_by_the_plan_in_force(self, billing: Billing) -> None:
        account = billing.account()
        plan(billing, "starter", GRADUATED, fee="31")
        plan(billing, "growth", VOLUME, fee="62")
        subscribe(billing, account, "starter", start_of(LAST_MONTH))
        subscribe(billing, account, "growth", at(LAST_MONTH, 16, "09:30:00"))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH, 5))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH, 20))
        expected = upcoming(billing, account)
        billing.billed(LAST_MONTH)
        invoice = invoice_of(billing, account)
        year, number = (int(part) for part in LAST_MONTH.split("-"))
        days = calendar.monthrange(year, number)[1]
        fees = [line for line in invoice["lines"] if line["kind"] == "fee"]
        # The day of the change is the new plan's: 15 days on starter, the rest on growth.
        assert [(line["quantity"], line["amount"]) for line in fees] == [
            (15, (Decimal(31) * 15 / days).quantize(Decimal("0.01"))),
            (days - 15, Decimal(62) - (Decimal(62) * 15 / days).quantize(Decimal("0.01"))),
        ]
        assert fees[0]["description"] == f"Starter plan (starter), {LAST_MONTH}, 15 of {days} days"
        # Each plan's tiers count its own units: 12 graduated (51), 12 at volume (36).
        assert sorted((line["description"], line["amount"]) for line in usage_lines(invoice)) == [
            ("Calls (growth plan)", Decimal(36)),
            ("Calls (starter plan)", Decimal(51)),
        ]
        assert invoice["amount"] == sum(line["amount"] for line in invoice["lines"])
        [preview] = expected["invoices"]
        assert preview["lines"] == invoice["lines"]
        assert preview["amount"] == invoice["amount"]

    def test_a_change_dated_back_reprices_the_usage_already_reported(
        self, billing: Billing, database: Database
    ) -> None:
        account = billing.account()
        plan(billing, "starter", GRADUATED)
        plan(billing, "growth", VOLUME)
        subscribe(billing, account, "starter", start_of(LAST_MONTH))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH, 5))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH, 20))
        assert [line["amount"] for line in usage_lines(upcoming(billing, account)["invoices"][0])] == [Decimal(87)]
        subscribe(billing, account, "growth", at(LAST_MONTH, 16))
        lines = usage_lines(upcoming(billing, account)["invoices"][0])
        assert sorted((line["description"], line["amount"]) for line in lines) == [
            ("Calls (growth plan)", Decimal(36)),
            ("Calls (starter plan)", Decimal(51)),
        ]
        # Back to no plan from the start: the catalog's price again, every event moved once.
        billing.client.delete(f"/v1/accounts/{account['id']}/subscription", headers=billing.headers)
        body = {"plan": "starter", "starts_at": start_of(LAST_MONTH)}
        ok(billing.client.put(f"/v1/accounts/{account['id']}/subscription", json=body, headers=billing.headers))
        assert [line["amount"] for line in usage_lines(upcoming(billing, account)["invoices"][0])] == [Decimal(87)]
        with database.read() as conn:
            assert aggregates.verify(conn).differences == []

    def test_a_change_dated_back_to_the_instant_of_an_event_reprices_it(
        self, billing: Billing, database: Database
    ) -> None:
        # A whole-second instant, the most common kind: SQLite once stored such an event's time without the
        # fraction, and a change starting at that very instant did not find it.
        account = billing.account()
        plan(billing, "starter", GRADUATED)
        plan(billing, "growth", VOLUME)
        subscribe(billing, account, "starter", start_of(LAST_MONTH))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH, 16))
        subscribe(billing, account, "growth", at(LAST_MONTH, 16))
        lines = usage_lines(upcoming(billing, account)["invoices"][0])
        assert [(line["description"], line["amount"]) for line in lines] == [("Calls (growth plan)", Decimal(36))]
        with database.read() as conn:
            assert aggregates.verify(conn).differences == []

    def test_the_negotiated_price_beats_the_plan(self, billing: Billing) -> None:
        account = billing.account()
        plan(billing, "starter", GRADUATED, fee=10)
        subscribe(billing, account, "starter", start_of(LAST_MONTH))
        body = {"price": PACKAGE, "effective_from": start_of(LAST_MONTH)}
        path = f"/v1/accounts/{account['id']}/prices/{PRODUCT}"
        ok(billing.client.put(path, json=body, headers=billing.headers), 201)
        billing.use(account, PRODUCT, 1001, at(LAST_MONTH))
        billing.billed(LAST_MONTH)
        invoice = invoice_of(billing, account)
        assert [(line["kind"], line["description"], line["amount"]) for line in invoice["lines"]] == [
            ("fee", f"Starter plan (starter), {LAST_MONTH}", Decimal(10)),
            ("usage", "Calls (negotiated price)", Decimal(10)),
        ]


class TestUpcomingInvoice:
    def test_equals_the_invoice_the_run_then_issues(self, billing: Billing) -> None:
        account = billing.account(commitment={"monthly_cost": "100"}, contract_started_at=LONG_AGO)
        plan(billing, "pro", FREE_THEN_CENT, fee="49.99")
        subscribe(billing, account, "pro", start_of(LAST_MONTH))
        billing.use(account, PRODUCT, "1500.5", at(LAST_MONTH))
        [preview] = upcoming(billing, account)["invoices"]
        billing.billed(LAST_MONTH)
        invoice = invoice_of(billing, account)
        assert preview["lines"] == invoice["lines"]
        assert (preview["amount"], preview["due_date"]) == (invoice["amount"], invoice["due_date"])
        assert [line["kind"] for line in invoice["lines"]] == ["subscription", "fee", "usage"]

    def test_stores_nothing_and_defaults_to_this_month(self, billing: Billing) -> None:
        account = billing.account()
        body = upcoming(billing, account, months_ago(0))
        assert body == {**body, "month": months_ago(0), "invoices": []}
        assert ok(billing.client.get(f"/v1/accounts/{account['id']}/invoices/upcoming", headers=billing.headers))[
            "month"
        ] == months_ago(0)
        assert billing.invoices() == []

    def test_an_account_key_sees_its_own(self, billing: Billing) -> None:
        account = billing.account()
        billing.use(account, PRODUCT, 2, at(LAST_MONTH))
        key = billing.tenant.create_key(account_id=account["id"])["key"]
        path = f"/v1/accounts/{account['id']}/invoices/upcoming"
        body = ok(billing.client.get(path, params={"month": LAST_MONTH}, headers=bearer(key)))
        assert [line["amount"] for line in body["invoices"][0]["lines"]] == [1]

    def test_another_organizations_account_is_not_found(self, billing: Billing, other_tenant: Tenant) -> None:
        account = billing.account()
        path = f"/v1/accounts/{account['id']}/invoices/upcoming"
        assert_error(billing.client.get(path, headers=other_tenant.headers), 404, "NOT_FOUND")

    def test_a_bad_month_names_the_parameter(self, billing: Billing) -> None:
        account = billing.account()
        path = f"/v1/accounts/{account['id']}/invoices/upcoming"
        response = billing.client.get(path, params={"month": "2026-13-01"}, headers=billing.headers)
        assert response.status_code == 400, response.text
        assert "month" in response.text


class TestDialects:
    def test_the_talkdesk_row_of_a_tiered_price(self, billing: Billing) -> None:
        account = billing.account()
        plan(billing, "pro", GRADUATED)
        subscribe(billing, account, "pro", start_of(LAST_MONTH))
        billing.use(account, PRODUCT, 7, at(LAST_MONTH), direction="INBOUND")
        billing.use(account, PRODUCT, 5, at(LAST_MONTH), direction="OUTBOUND")
        response = billing.client.get(
            "/express/usage/month", params={"filter": f"month eq '{LAST_MONTH}'"}, headers=billing.headers
        )
        rows = exact(response)["_embedded"]["usage"]
        assert len(rows) == 2
        # The rows share one count of 12 units (51 in all); each row's total is what its units add, in id order.
        assert sum(row["total_amount"] for row in rows) == 51
        for row in rows:
            share = Decimal(str(row["total_amount"])) / Decimal(str(row["number_of_units"]))
            assert row["price"] == share.quantize(Decimal("1e-9")).normalize()

    def test_the_cloudflare_history_shows_the_tiered_amount(self, billing: Billing) -> None:
        account = billing.account()
        plan(billing, "pro", GRADUATED, fee=20)
        subscribe(billing, account, "pro", start_of(LAST_MONTH))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH))
        billing.billed(LAST_MONTH)
        response = billing.client.get("/client/v4/user/billing/history", headers=billing.headers)
        items = exact(response)["result"]
        charges = sorted((item["action"], item["amount"]) for item in items if item["type"] == "charge")
        assert charges == [("subscription", 20), ("usage", 51)]


class TestVerify:
    def test_prices_every_charge_again_and_sees_usage_rated_under_the_wrong_plan(
        self, billing: Billing, database: Database
    ) -> None:
        account = billing.account()
        plan(billing, "pro", GRADUATED)
        subscribe(billing, account, "pro", start_of(LAST_MONTH))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH))
        other = billing.account()
        billing.use(other, PRODUCT, 3, at(LAST_MONTH))
        with database.read() as conn:
            clean = aggregates.verify(conn)
        assert (clean.differences, clean.charges_checked) == ([], 2)
        # Behind meterbook's back, the account was never on the plan: its usage is rated under the wrong one.
        with database.write() as conn:
            conn.execute(text("DELETE FROM subscriptions"))
        with database.read() as conn:
            [difference] = aggregates.verify(conn).differences
        assert "is rated under plan" in difference
        assert "was on plan none" in difference

    def test_the_faraday_billing_view_shows_the_prorated_and_tiered_invoice(self, billing: Billing) -> None:
        account = billing.account()
        plan(billing, "pro", VOLUME, fee=30)
        subscribe(billing, account, "pro", start_of(LAST_MONTH))
        billing.use(account, PRODUCT, 12, at(LAST_MONTH))
        billing.billed(LAST_MONTH)
        view = exact(billing.client.get(f"/v1/accounts/{account['id']}/billing", headers=billing.headers))
        assert [invoice["amount"] for invoice in view["invoices"]] == [30 + 36]


class TestUsageTheCatalogDoesNotPrice:
    def test_is_accepted_when_the_plan_prices_it_and_refused_otherwise(self, billing: Billing) -> None:
        billing.product("NEW", "1", effective_from=start_of(months_ago(0)))
        plan(billing, "pro", GRADUATED)
        on_plan, without = billing.account(), billing.account()
        subscribe(billing, on_plan, "pro", start_of(LAST_MONTH))
        body = {"name": "Pro", "currency": "USD", "prices": {"NEW": PACKAGE}, "limits": {}}
        response = billing.client.put(
            "/v1/plans/pro", json={**body, "effective_from": start_of(LAST_MONTH)}, headers=billing.headers
        )
        assert response.status_code == 200, response.text
        billing.use(on_plan, "NEW", 1001, at(LAST_MONTH))
        refused = billing.send([metered(without, "NEW", 1, at(LAST_MONTH))])
        assert refused.status_code == 400, refused.text
        assert "has no price in force" in refused.text
        [line] = usage_lines(upcoming(billing, on_plan)["invoices"][0])
        assert (line["product_id"], line["amount"]) == ("NEW", 10)
