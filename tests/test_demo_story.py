"""``meterbook demo`` tells one story, and its dates agree with each other, as its users see them.

The demo's organization is told back from the moment it was created (its anchor): contracts start before the
usage they cover, credits are granted before the usage they fund, each month is invoiced when it ends and due
after the account's terms, payments come after the invoices they pay, and the guide it prints says what was
billed. Read through the API with the demo's own organization key, on both databases.
"""

from __future__ import annotations

import calendar
import io
import re
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import func, select

from meterbook import demo as demo_module
from meterbook.catalog import service as catalog
from meterbook.db import Database
from meterbook.db.tables import usage_events
from meterbook.demo import CALLS, DemoData, print_guide, seed
from meterbook.kit.time import as_utc, month_start, next_month
from meterbook.plans import service as plans

BASE_URL = "http://127.0.0.1:8000"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def month_end(month: str) -> datetime:
    return month_start(next_month(month))


def months_before(moment: datetime, count: int) -> str:
    index = moment.year * 12 + moment.month - 1 - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class Story:
    """The seeded demo, read as its operator reads it."""

    def __init__(self, client: TestClient, demo: DemoData, database: Database) -> None:
        self.client = client
        self.demo = demo
        self.database = database
        assert demo.anchor is not None
        self.anchor = demo.anchor

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {self.demo.organization_key}"}
        )
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)

    def accounts(self) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = self.get("/v1/accounts")
        return accounts

    def invoices(self) -> dict[str, dict[str, Any]]:
        return {invoice["id"]: invoice for invoice in self.get("/v1/invoices")["invoices"]}

    def payments(self) -> list[dict[str, Any]]:
        payments: list[dict[str, Any]] = self.get("/v1/payments")["payments"]
        return payments

    def guide(self) -> str:
        printed = io.StringIO()
        print_guide(Console(file=printed, width=120, color_system=None), BASE_URL, self.demo)
        return printed.getvalue()


@pytest.fixture
def story(client: TestClient, database: Database) -> Story:
    with database.write() as conn:
        demo = seed(conn)
    return Story(client, demo, database)


class TestDates:
    def test_each_month_is_invoiced_when_it_ends_and_due_after_the_accounts_terms(self, story: Story) -> None:
        terms = {account["id"]: account["net_terms_days"] for account in story.accounts()}
        invoices = story.invoices().values()
        assert len(invoices) == 6
        for invoice in invoices:
            ended = month_end(invoice["month"])
            # Issued by a monthly run at the month's end, not on the day the demo ran.
            assert when(invoice["issued_at"]) == ended, invoice
            assert when(invoice["effective_date"]) == ended, invoice
            assert when(invoice["due_date"]) == ended + timedelta(days=terms[invoice["account_id"]]), invoice
            assert when(invoice["due_date"]) > when(invoice["issued_at"]), invoice
            assert when(invoice["issued_at"]) <= story.anchor, invoice

    def test_payments_come_after_the_invoices_they_pay_and_before_now(self, story: Story) -> None:
        invoices = story.invoices()
        payments = story.payments()
        assert len(payments) == 4
        applied = 0
        for payment in payments:
            assert when(payment["date"]) <= story.anchor, payment
            for application in payment["applied"]:
                paid = invoices[application["invoice_id"]]
                assert when(payment["date"]) >= when(paid["issued_at"]), (payment, paid)
                applied += 1
        assert applied >= 3
        for invoice in invoices.values():
            if invoice["paid_at"] is not None:
                assert when(invoice["paid_at"]) >= when(invoice["issued_at"]), invoice
            if invoice["voided_at"] is not None:
                assert when(invoice["voided_at"]) >= when(invoice["issued_at"]), invoice

    def test_the_history_shows_charges_when_issued_and_payments_when_paid(self, story: Story) -> None:
        history = self_history(story)
        issued = {when(invoice["issued_at"]) for invoice in story.invoices().values()}
        paid = {when(payment["date"]) for payment in story.payments()}
        assert {item["type"] for item in history} == {"charge", "payment", "refund"}
        for item in history:
            if item["type"] == "charge":
                assert when(item["occurred_at"]) in issued, item
            elif item["type"] == "payment":
                assert when(item["occurred_at"]) in paid, item
            else:
                assert when(item["occurred_at"]) >= min(issued), item

    def test_contracts_start_before_the_first_usage(self, story: Story, database: Database) -> None:
        with database.read() as conn:
            rows = conn.execute(
                select(usage_events.c.account_id, func.min(usage_events.c.occurred_at)).group_by(
                    usage_events.c.account_id
                )
            ).all()
        first_use = {str(account_id): as_utc(first) for account_id, first in rows}
        accounts = story.accounts()
        assert len(accounts) == 4
        for account in accounts:
            started = when(account["contract_started_at"])
            assert started < first_use[account["id"]], account["name"]
            assert started <= story.anchor
            renewal = account["commitment"]["renewal_date"]
            if renewal is not None:
                assert when(renewal) > story.anchor > started, account["name"]

    def test_credits_are_granted_before_the_usage_they_fund(self, story: Story) -> None:
        for account in story.accounts():
            transactions = story.get(f"/v1/accounts/{account['id']}/credits/transactions")["transactions"]
            grants = [t for t in transactions if t["kind"] in ("grant", "purchase")]
            debits = [t for t in transactions if t["kind"] == "usage"]
            assert grants, account["name"]
            assert debits, account["name"]
            assert max(when(t["created_at"]) for t in grants) < min(when(t["created_at"]) for t in debits)
            # In the order of their dates, no debit ever spent credits the account did not have yet.
            balance = 0
            for transaction in sorted(transactions, key=lambda t: when(t["created_at"])):
                balance += transaction["amount"] if transaction["direction"] == "credit" else -transaction["amount"]
                assert balance >= account["credit_min"], (account["name"], transaction)
            assert when(grants[0]["created_at"]) >= when(account["contract_started_at"])


def self_history(story: Story) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = story.get("/client/v4/user/billing/history", page=page, per_page=50)
        items += body["result"]
        if page >= body["result_info"]["total_pages"]:
            return items
        page += 1


class TestTheGuide:
    INVOICES = re.compile(
        r"invoices\s+(\d+) for (.+?) \((\d+) open, (\d+) paid, (\d+) void\); (\d+) payments; (.+)$", re.MULTILINE
    )
    USAGE = re.compile(r"usage\s+(\d+) events from (\S+) to (\S+) \((.+)\)$", re.MULTILINE)

    def test_says_what_was_billed(self, story: Story) -> None:
        found = self.INVOICES.search(story.guide())
        assert found is not None, story.guide()
        count, months, open_, paid, void, payments, done = found.groups()
        invoices = list(story.invoices().values())
        billed = sorted({invoice["month"] for invoice in invoices})
        assert int(count) == len(invoices)
        assert months == " and ".join(billed)
        by_status: dict[str, int] = defaultdict(int)
        for invoice in invoices:
            by_status[invoice["status"]] += 1
        assert (int(open_), int(paid), int(void)) == (by_status["open"], by_status["paid"], by_status["void"])
        assert int(payments) == len(story.payments())
        assert done == f"billed {' and '.join(billed)} now"
        # The two months before the anchor's: the months that had ended when the organization was created.
        assert billed == [months_before(story.anchor, 2), months_before(story.anchor, 1)]

    def test_says_what_usage_there_is(self, story: Story, database: Database) -> None:
        found = self.USAGE.search(story.guide())
        assert found is not None, story.guide()
        with database.read() as conn:
            count, first, last = conn.execute(
                select(func.count(), func.min(usage_events.c.occurred_at), func.max(usage_events.c.occurred_at))
            ).one()
        assert int(found.group(1)) == count
        assert (found.group(2), found.group(3)) == (f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}")
        assert found.group(4) == f"{count} added now"

    def test_a_second_run_says_it_billed_nothing_and_changes_no_date(self, story: Story, database: Database) -> None:
        before = (story.invoices(), story.payments())
        with database.write() as conn:
            again = seed(conn)
        second = Story(story.client, again, database)
        assert (second.invoices(), second.payments()) == before
        guide = second.guide()
        assert "nothing billed now" in guide
        assert "all there already" in guide

    def test_a_month_billed_since_is_counted_with_the_others(self, story: Story, database: Database) -> None:
        unbilled = months_before(story.anchor, 3)
        response = story.client.post(
            "/v1/billing_runs",
            json={"month": unbilled},
            headers={"Authorization": f"Bearer {story.demo.organization_key}"},
        )
        assert response.status_code == 201, response.text
        with database.write() as conn:
            again = seed(conn)
        found = self.INVOICES.search(Story(story.client, again, database).guide())
        assert found is not None
        months = sorted({invoice["month"] for invoice in story.invoices().values()})
        assert len(months) == 3
        assert found.group(1) == str(len(story.invoices()))
        assert found.group(2) == f"{months[0]} to {months[-1]}"
        assert found.group(7) == "nothing billed now"


def month_of_anchor(story: Story, months_back: int) -> datetime:
    return month_start(months_before(story.anchor, months_back))


def subscriptions_of(story: Story, account: dict[str, Any]) -> list[tuple[str, datetime, datetime | None]]:
    """Every plan the account has been on: the API shows only the current and scheduled ones, but the ended ones
    stay stored, to price the months they covered; read through the service billing uses."""
    with story.database.read() as conn:
        terms = plans.account_terms(conn, story.demo.organization_id, [uuid.UUID(account["id"])])
    return [
        (item.plan_code, as_utc(item.starts_at), None if item.ends_at is None else as_utc(item.ends_at))
        for item in terms[uuid.UUID(account["id"])].subscriptions
    ]


class TestPlans:
    """Three plans, one price model each, that price the months the demo invoices; one account changed plan in the
    middle of a month, and one has its own price of a product."""

    def accounts_by_name(self, story: Story) -> dict[str, dict[str, Any]]:
        return {account["name"]: account for account in story.accounts()}

    def test_three_plans_each_with_its_price_model_a_fee_limits_and_included_credits(self, story: Story) -> None:
        plans = {plan["code"]: plan for plan in story.get("/v1/plans")}
        assert set(plans) == {"starter", "growth", "scale"}
        products = {product["product_id"]: product for product in story.get("/v1/products")}
        features = {feature["name"] for feature in story.get("/v1/features")}
        models = set()
        for code, plan in plans.items():
            # One version, from the first month of usage: every month the demo invoices is priced by it.
            [version] = plan["versions"]
            assert when(version["effective_from"]) == month_of_anchor(story, 11), code
            assert version["fee"] > 0, code
            assert version["limits"], code
            assert set(version["limits"]) <= features, code
            assert version["included_credits"]["amount"] > 0, code
            assert version["prices"], code
            assert set(version["prices"]) <= set(products), code
            for product_id, price in version["prices"].items():
                assert products[product_id]["currency"] == version["currency"], (code, product_id)
                models.add((code, product_id, price["model"]))
        assert ("starter", "TD-USG-API-UG-100410", "graduated") in models
        assert ("growth", "TD-USG-API-UG-100410", "volume") in models
        assert ("scale", "TD-USG-SMS-UG-103001", "package") in models
        starter = plans["starter"]["versions"][0]["prices"]["TD-USG-API-UG-100410"]["tiers"]
        assert (starter[0]["up_to"], starter[0]["unit_price"], starter[-1]["up_to"]) == (1000, 0, None)
        sms = plans["scale"]["versions"][0]["prices"]["TD-USG-SMS-UG-103001"]
        assert (sms["package_size"], sms["package_price"]) == (1000, 5)

    def test_accounts_are_on_their_plans_from_their_contracts_start(self, story: Story) -> None:
        accounts = self.accounts_by_name(story)
        for name, plan in (("Globex Corporation", "scale"), ("Umbrella Labs", "starter")):
            account = accounts[name]
            started = when(account["contract_started_at"])
            assert subscriptions_of(story, account)[0][:2] == (plan, started), name
            # So every month the demo invoices is priced by a plan (the contract starts before the usage: TestDates).
            first_invoiced = min(
                invoice["month"] for invoice in story.get("/v1/invoices", account_id=account["id"])["invoices"]
            )
            assert started <= month_start(first_invoiced), name
        globex = story.get(f"/v1/accounts/{accounts['Globex Corporation']['id']}/subscription")
        assert (globex["current"]["plan"], globex["current"]["ends_at"], globex["scheduled"]) == ("scale", None, [])
        # The EUR accounts stay on the catalog's prices: the plans are in USD, as the catalog is.
        for name in ("Initech", "Globex Europe"):
            now = story.get(f"/v1/accounts/{accounts[name]['id']}/subscription")
            assert (now["current"], now["scheduled"]) == (None, []), name

    def test_the_account_that_changed_plan_has_both_subscriptions(self, story: Story) -> None:
        umbrella = self.accounts_by_name(story)["Umbrella Labs"]
        changed_at = month_of_anchor(story, 1) + timedelta(days=15)
        now = story.get(f"/v1/accounts/{umbrella['id']}/subscription")
        assert now["current"]["plan"] == "growth"
        assert when(now["current"]["starts_at"]) == changed_at
        assert now["current"]["ends_at"] is None
        # The API shows the plan in force; the one before it stays stored, for the invoice of the month it ended.
        assert subscriptions_of(story, umbrella) == [
            ("starter", when(umbrella["contract_started_at"]), changed_at),
            ("growth", changed_at, None),
        ]

    def test_a_negotiated_price_beats_the_plan(self, story: Story, database: Database) -> None:
        globex = self.accounts_by_name(story)["Globex Corporation"]
        [negotiated] = story.get(f"/v1/accounts/{globex['id']}/prices")["prices"]
        assert negotiated["product_id"] == CALLS
        assert negotiated["price"] == {"model": "per_unit", "unit_price": Decimal("0.05")}
        assert when(negotiated["effective_from"]) == month_of_anchor(story, 1)
        # Which price applies, by the one rule billing uses: the plan's before the negotiated price, then that one.
        organization_id, account_id = story.demo.organization_id, uuid.UUID(globex["id"])
        with database.read() as conn:
            product = catalog.products_by_id(conn, organization_id, [CALLS])[CALLS]
            before = plans.price_at(conn, organization_id, account_id, product, month_of_anchor(story, 2))
            after = plans.price_at(conn, organization_id, account_id, product, month_of_anchor(story, 1))
        assert before is not None
        assert after is not None
        assert (before.source, before.plan_code, before.price.model_dump()) == (
            "plan",
            "scale",
            {"model": "per_unit", "unit_price": Decimal("0.055")},
        )
        assert (after.source, after.price.model_dump()) == (
            "negotiated",
            {"model": "per_unit", "unit_price": Decimal("0.05")},
        )

    def test_the_month_of_the_plan_change_is_invoiced_with_a_fee_of_each_plan(self, story: Story) -> None:
        umbrella = self.accounts_by_name(story)["Umbrella Labs"]
        [invoice] = story.get("/v1/invoices", account_id=umbrella["id"], month=months_before(story.anchor, 1))[
            "invoices"
        ]
        lines = story.get(f"/v1/invoices/{invoice['id']}")["lines"]
        fees = [line for line in lines if line["kind"] == "fee"]
        assert [line["description"].split(" plan ")[0] for line in fees] == ["Starter", "Growth"], lines
        # Half of the month on each (the change is on the 16th of a 30-day month, or near half of any other).
        assert sum(line["quantity"] for line in fees) == calendar.monthrange(*map(int, invoice["month"].split("-")))[1]
        usage = {line["description"] for line in lines if line["kind"] == "usage"}
        # Its API requests priced by each plan for the days it was on it.
        assert {description for description in usage if "plan)" in description} == {
            "API requests (starter plan)",
            "API requests (growth plan)",
        }

    def test_the_guide_names_the_plans_and_who_is_on_them(self, story: Story) -> None:
        guide = story.guide()
        changed_at = month_of_anchor(story, 1) + timedelta(days=15)
        umbrella = self.accounts_by_name(story)["Umbrella Labs"]
        assert re.search(
            r"plan\s+starter  Starter: 19 USD a month; TD-USG-API-UG-100410 graduated in 3 tiers$", guide, re.M
        )
        assert re.search(r"plan\s+growth  Growth: 99 USD a month; TD-USG-API-UG-100410 volume in 3 tiers$", guide, re.M)
        assert re.search(r"plan\s+scale  Scale: 499 USD a month; TD-USG-SMS-UG-103001 5 per package of 1000", guide)
        started = f"{when(umbrella['contract_started_at']):%Y-%m-%d}"
        assert f"Umbrella Labs: starter from {started}, then growth from {changed_at:%Y-%m-%d}" in guide
        assert f"Globex Corporation: {CALLS} at 0.05 a unit from {month_of_anchor(story, 1):%Y-%m-%d}" in guide
        assert 'curl -s $MB/v1/plans -H "Authorization: Bearer $KEY"' in guide
        assert f"/v1/accounts/{umbrella['id']}/subscription " in guide
        assert "/invoices/upcoming " in guide

    def test_a_second_run_changes_no_plan_subscription_or_price(self, story: Story, database: Database) -> None:
        def terms(reading: Story) -> list[Any]:
            accounts = reading.accounts()
            return [
                reading.get("/v1/plans"),
                [subscriptions_of(reading, account) for account in accounts],
                [reading.get(f"/v1/accounts/{account['id']}/prices") for account in accounts],
            ]

        before = terms(story)
        with database.write() as conn:
            again = seed(conn)
        assert terms(Story(story.client, again, database)) == before

    def test_an_organization_seeded_without_plans_gets_none_later(
        self, client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # As a demo from before plans left it: its months invoiced, priced by the catalog. Plans dated back into
        # them would be refused (what an invoice was priced by never changes), so the next run adds none.
        with monkeypatch.context() as patched:
            patched.setattr(demo_module, "_put_plans", lambda *args: False)
            with database.write() as conn:
                seed(conn)
        with database.write() as conn:
            again = seed(conn)
        story = Story(client, again, database)
        assert story.get("/v1/plans") == []
        assert "nothing billed now" in story.guide()
