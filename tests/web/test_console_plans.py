"""The console's plans (issue 18, "Console"), through plain HTTP on both databases: the plans list, a plan's versions
with their prices (a graduated price as a tier table), and on an account's page its plan, its negotiated prices and
its upcoming invoice, with a tiered line's breakdown. Plans are the operator's pages; a customer never opens them.
Data is set up through the API, and what the pages show is what a reader sees: the text of the rows.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbook.accounts import service as accounts
from meterbook.db import Database
from meterbook.invoicing import service as invoicing
from meterbook.web import session
from tests.billing import Billing, at, following, months_ago, start_of
from tests.conftest import Tenant
from tests.web.test_console import redirected_to_sign_in, sign_in, signed_in

CALLS, SMS, API = "CALLS", "SMS", "API"
#: The free allowance of CONTRACT §6: the first 1,000 units for a flat 10, then 0.01 each.
GRADUATED = {
    "model": "graduated",
    "tiers": [{"up_to": 1000, "unit_price": 0, "flat_fee": 10}, {"up_to": None, "unit_price": "0.01"}],
}


class _Texts(HTMLParser):
    """The text of every element whose attributes include ``wanted``, whitespace collapsed."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
    #: Cells and blocks read apart ("0 1,000", never "01,000"); inline elements run on with their text.
    APART = frozenset({"td", "th", "tr", "li", "p", "div", "dt", "dd", "h1", "h2", "h3", "table", "section"})

    def __init__(self, wanted: dict[str, str]) -> None:
        super().__init__()
        self.wanted = wanted
        self.open: list[list[str]] = []  # the text of each matching element still open
        self.depths: list[int] = []  # the depth each was opened at
        self.depth = 0
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        if tag in self.APART:
            self.handle_data(" ")
        self.depth += 1
        if self.wanted.items() <= {name: value or "" for name, value in attrs}.items():
            self.open.append([])
            self.depths.append(self.depth)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if tag in self.APART:
            self.handle_data(" ")
        if self.depths and self.depths[-1] == self.depth:
            self.depths.pop()
            self.found.append(" ".join("".join(self.open.pop()).split()))
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        for parts in self.open:
            parts.append(data)


def texts(html: str, **wanted: str) -> list[str]:
    """What a reader sees in each element with these attributes (``data_line="1"`` is ``data-line="1"``)."""
    parser = _Texts({name.replace("_", "-"): value for name, value in wanted.items()})
    parser.feed(html)
    parser.close()
    return parser.found


def text(html: str, **wanted: str) -> str:
    found = texts(html, **wanted)
    assert len(found) == 1, (wanted, found)
    return found[0]


def ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture
def priced(tenant: Tenant) -> dict[str, Any]:
    """Acme's plans "pro" (a version now and a later one) and "basic"; Hooli on pro since the month began, moving to
    basic next month, with a negotiated price for SMS and usage this month; Pied Piper on no plan."""
    billing = Billing(tenant)
    billing.product(CALLS, "0.05", description="Inbound calls")
    billing.product(SMS, "0.0079", description="Outbound SMS")
    billing.product(API, "0.001", description="API requests")
    client, headers = tenant.client, tenant.headers
    ok(client.put("/v1/features/seats", json={"description": "Seats", "default_limit": 3}, headers=headers))
    this_month, next_month = months_ago(0), following(months_ago(0))
    pro = {
        "name": "Pro",
        "currency": "USD",
        "fee": "49.99",
        "prices": {
            CALLS: GRADUATED,
            SMS: {"model": "package", "package_size": 1000, "package_price": 5},
            API: {"model": "per_unit", "unit_price": "0.002"},
        },
        "limits": {"seats": 25},
        "included_credits": {"amount": 1000, "rollover": 500},
    }
    ok(client.put("/v1/plans/pro", json=pro, headers=headers))
    later = pro | {
        "name": "Pro 2",
        "fee": "59",
        "prices": {CALLS: GRADUATED | {"model": "volume"}},
        "limits": {"seats": None},
        "included_credits": None,
        "effective_from": start_of(next_month),
    }
    ok(client.put("/v1/plans/pro", json=later, headers=headers))
    basic = {
        "name": "Basic",
        "currency": "USD",
        "fee": "9",
        "prices": {API: {"model": "per_unit", "unit_price": "0.01"}},
    }
    ok(client.put("/v1/plans/basic", json=basic, headers=headers))

    hooli = billing.account(name="Hooli", currency="USD", commitment={"monthly_cost": "100"})
    quiet = billing.account(name="Pied Piper", currency="USD")
    subscription = f"/v1/accounts/{hooli['id']}/subscription"
    ok(client.put(subscription, json={"plan": "pro", "starts_at": start_of(this_month)}, headers=headers))
    ok(client.put(subscription, json={"plan": "basic", "starts_at": start_of(next_month)}, headers=headers))
    negotiated = {"price": {"model": "per_unit", "unit_price": "0.006"}}
    ok(client.put(f"/v1/accounts/{hooli['id']}/prices/{SMS}", json=negotiated, headers=headers))
    first_instant = at(this_month, day=1, time="00:00:00")
    billing.use(hooli, CALLS, "1500", first_instant)
    billing.use(hooli, API, "250", first_instant)
    return {"billing": billing, "hooli": hooli, "quiet": quiet}


class TestPlansPages:
    def test_the_plans_list(self, client: TestClient, tenant: Tenant, priced: dict[str, Any]) -> None:
        signed_in(client, tenant.key)
        accounts_page = client.get("/ui/accounts").text
        assert '<a href="/ui/plans">Plans</a>' in accounts_page
        page = client.get("/ui/plans")
        assert page.status_code == 200
        html = page.text
        assert "2 plans" in html
        # Ordered by code; each shows the version in force now (not pro's later one).
        assert texts(html, data_plan="basic") == ["basic Basic USD 9.00 USD a month 1"]
        assert texts(html, data_plan="pro") == ["pro Pro USD 49.99 USD a month 2"]
        assert html.index('data-plan="basic"') < html.index('data-plan="pro"')
        assert 'href="/ui/plans/pro"' in html

    def test_a_plan_shows_every_version_and_its_prices(
        self, client: TestClient, tenant: Tenant, priced: dict[str, Any]
    ) -> None:
        signed_in(client, tenant.key)
        html = client.get("/ui/plans/pro").text
        assert "<h1>Pro" in html
        now, later = months_ago(0), following(months_ago(0))
        # Newest first: the later version is scheduled, this month's is in force.
        assert re.findall(r'data-from="(\d{4}-\d{2})-01" data-state="(\w+)"', html) == [
            (later, "scheduled"),
            (now, "current"),
        ]
        current = text(html, data_from=f"{now}-01", data_state="current")
        assert "49.99 USD a month" in current
        assert "1,000 credits a month; up to 500 roll over" in current
        assert "seats 25" in current
        assert "Outbound SMS SMS 5.00 USD per 1,000 units" in current
        assert "API requests API 0.002 USD per unit" in current
        # The graduated price as a tier table: from, up to, unit price, flat fee.
        assert texts(html, data_tier="0") == ["0 1,000 0 10", "0 1,000 0 10"]
        assert texts(html, data_tier="1") == ["1,000 ∞ 0.01 0", "1,000 ∞ 0.01 0"]
        assert "Graduated: each tier's units at its price" in current
        scheduled = text(html, data_from=f"{later}-01", data_state="scheduled")
        assert "Pro 2" in scheduled
        assert "59.00 USD a month" in scheduled
        assert "Volume: every unit at the price of the tier" in scheduled
        assert "seats unlimited" in scheduled
        assert "Included credits none" in scheduled

    def test_no_plans_yet(self, client: TestClient, tenant: Tenant) -> None:
        signed_in(client, tenant.key)
        assert "No plans yet" in client.get("/ui/plans").text

    def test_a_read_only_key_sees_the_plans(self, client: TestClient, tenant: Tenant, priced: dict[str, Any]) -> None:
        signed_in(client, tenant.create_key(scopes=["accounts:read", "billing:read", "usage:read"])["key"])
        assert client.get("/ui/plans/pro").status_code == 200

    def test_another_organizations_plan_is_not_found(
        self, client: TestClient, tenant: Tenant, other_tenant: Tenant, priced: dict[str, Any]
    ) -> None:
        signed_in(client, other_tenant.key)
        assert "No plans yet" in client.get("/ui/plans").text
        for path in ("/ui/plans/pro", "/ui/plans/nothing", "/ui/plans/%00", "/ui/plans/" + "x" * 101):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "Not found" in response.text
            assert "Pro" not in response.text

    def test_signed_out_the_plans_lead_to_sign_in(self, client: TestClient, priced: dict[str, Any]) -> None:
        query = redirected_to_sign_in(client.get("/ui/plans/pro", follow_redirects=False))
        assert query["next"] == ["/ui/plans/pro"]


class TestAccountTerms:
    def test_the_account_shows_its_plan_and_negotiated_price(
        self, client: TestClient, tenant: Tenant, priced: dict[str, Any]
    ) -> None:
        signed_in(client, tenant.key)
        html = client.get(f"/ui/accounts/{priced['hooli']['id']}").text
        plan = text(html, id="plan")
        # Moving to basic next month ends pro then.
        next_month = following(months_ago(0))
        assert f"Pro pro Since {months_ago(0)}-01, until {next_month}-01 · 49.99 USD a month" in plan
        assert f"Scheduled From {next_month}-01: Basic basic · 9.00 USD a month" in plan
        assert 'href="/ui/plans/pro"' in html
        negotiated = text(html, data_product=SMS)
        month = datetime.now(UTC).strftime("%b %Y")
        assert negotiated == f"Outbound SMS SMS 0.006 USD per unit from {month}"

    def test_the_upcoming_invoice_is_the_billing_runs_own(
        self, client: TestClient, database: Database, tenant: Tenant, priced: dict[str, Any]
    ) -> None:
        """The lines a billing run of the current month would make now: the commitment, the plan's fee (once
        pricing by plans is built) and a line per product used, each amount as the service computes it."""
        hooli = priced["hooli"]
        signed_in(client, tenant.key)
        html = client.get(f"/ui/accounts/{hooli['id']}").text
        with database.read() as conn:
            principal = accounts.authenticate(conn, tenant.key)
            expected = invoicing.upcoming_invoices(conn, principal, uuid.UUID(hooli["id"]))
        assert len(expected) == 1
        upcoming = expected[0]
        section = text(html, id="upcoming")
        assert section.startswith(f"Upcoming invoice, {datetime.now(UTC):%b %Y}")
        shown = re.findall(r'<tr data-line="(\d+)" data-kind="(\w+)" data-amount="([^"]+)"', html)
        assert [(int(n), kind, Decimal(amount)) for n, kind, amount in shown] == [
            (line.line, line.kind, line.amount) for line in upcoming.lines
        ]
        kinds = {line.kind for line in upcoming.lines}
        assert {"subscription", "usage"} <= kinds
        assert {line.product_id for line in upcoming.lines if line.kind == "usage"} == {CALLS, API}
        calls = next(line for line in upcoming.lines if line.product_id == CALLS)
        assert text(html, data_line=str(calls.line)).startswith(f"{calls.line} Inbound calls (pro plan) CALLS 1,500")
        assert re.search(r'class="upcoming" data-currency="USD" data-amount="([^"]+)"', html).group(1) == str(  # type: ignore[union-attr]
            upcoming.amount
        )

    def test_fee_and_tiered_lines_are_shown_with_their_breakdown(
        self, client: TestClient, tenant: Tenant, priced: dict[str, Any]
    ) -> None:
        """Hooli on pro all month: the commitment, pro's fee, its calls through pro's graduated tiers (1,500 units:
        the first 1,000 for a flat 10, then 500 at 0.01) and its API requests at pro's unit price."""
        signed_in(client, tenant.key)
        html = client.get(f"/ui/accounts/{priced['hooli']['id']}").text
        month = months_ago(0)
        assert text(html, data_line="2") == f"2 Pro plan (pro), {month} plan fee 1 49.99 49.99 USD"
        assert text(html, data_line="3") == "3 API requests (pro plan) API 250 0.002 0.50 USD"
        assert text(html, data_line="4") == "4 Inbound calls (pro plan) CALLS 1,500 tiered 15.00 USD"
        breakdown = text(html, data_tiers_of="4")
        assert breakdown.startswith("From Up to Units Unit price Flat fee Amount")
        assert texts(html, data_tier="0", data_amount="10") == ["0 1,000 1,000 0 10 10.00 USD"]
        assert texts(html, data_tier="1", data_amount="5") == ["1,000 ∞ 500 0.01 0 5.00 USD"]
        assert "Total 165.49 USD" in text(html, id="upcoming")

    def test_an_account_with_no_plan_and_nothing_this_month(
        self, client: TestClient, tenant: Tenant, priced: dict[str, Any]
    ) -> None:
        signed_in(client, tenant.key)
        html = client.get(f"/ui/accounts/{priced['quiet']['id']}").text
        assert "No plan: usage is priced by the catalog." in text(html, id="plan")
        assert "No negotiated prices: the catalog's prices apply." in text(html, id="prices")
        assert "Nothing to invoice yet this month." in text(html, id="upcoming")


class TestCustomers:
    def test_an_account_key_opens_no_console_page(
        self, client: TestClient, tenant: Tenant, priced: dict[str, Any]
    ) -> None:
        """The console is the operator's: a customer's key gets no session, so no plans page either."""
        response = sign_in(client, priced["hooli"]["api_key"], "/ui/plans")
        assert response.status_code == 403
        assert "account key" in response.text
        assert redirected_to_sign_in(client.get("/ui/plans", follow_redirects=False))

    def test_a_customers_session_sees_its_own_terms_and_no_plans_page(
        self, client: TestClient, database: Database, tenant: Tenant, priced: dict[str, Any]
    ) -> None:
        """Were a customer's key given a session (sign-in refuses it today), the plans pages would still refuse it
        and its account's page would show its own plan, prices and upcoming invoice, without a link to the plan."""
        hooli = priced["hooli"]
        with database.write() as conn:
            principal = accounts.authenticate(conn, hooli["api_key"])
            session_id, expires_at = accounts.start_console_session(conn, principal, session.LIFETIME)
        client.cookies.set(session.COOKIE, session.sign(client.app.state.console_secret, session_id, expires_at))
        for path in ("/ui/plans", "/ui/plans/pro", "/ui/plans/nothing"):
            response = client.get(path)
            assert response.status_code == 403, path
            assert "Only the operator may see the plans in the console" in response.text
            assert "49.99" not in response.text
        html = client.get(f"/ui/accounts/{hooli['id']}").text
        assert '<a href="/ui/plans">' not in html
        assert 'href="/ui/plans/pro"' not in html
        assert "Pro pro Since" in text(html, id="plan")
        assert text(html, data_product=SMS).startswith("Outbound SMS SMS 0.006 USD per unit")
        assert "1 Monthly commitment" in text(html, id="upcoming")
        assert client.get(f"/ui/accounts/{priced['quiet']['id']}").status_code == 404
