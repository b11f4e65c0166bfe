"""The console end to end: a real server over the demo's data, driven by headless Chromium (Debian's ``chromium``
through Playwright). It signs in, searches, opens an account, checks the chart's data and the page's figures
against the API's answers, opens an invoice, saves a screenshot, and signs out. Then, at desktop width
(1280 x 800) and at a phone's (390 x 844), an operator grants credits, records a payment, voids an invoice, and
creates and revokes a key, each through its review and Confirm, and opens the plans and an account's plan,
negotiated price and upcoming invoice (plans are put through the API first: the demo has none), then the webhook
endpoints, one endpoint's deliveries and the review of a resend, and the alerts; every page
visited must fit the width (nothing scrolls sideways but the tables inside their cards), and the accounts
list, the plans, a plan, an account, an invoice, the webhooks, the alerts and the reviews are saved as screenshots at
both widths.

SQLite only: every page reads through the same services as the API, and ``test_console.py`` checks each page
on both databases; what this test adds is the browser (cookies, scripts, the chart, the Content-Security-Policy),
which does not depend on the database, and it costs a browser start.

The screenshots go to ``$METERBOOK_TEST_ARTIFACTS`` when that is set, else to the test's pytest tmp dir
(their paths are printed). Without Chromium or Playwright the test is skipped, except in CI (``CI`` set), where
it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.demo import DemoData, seed
from tests.billing import following, months_ago

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGE_TIMEOUT_MS = 15_000


def _needs(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the console's browser test (.ci/run installs chromium)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright_api() -> Any:
    if not Path(CHROMIUM).exists():
        _needs("Chromium is not installed (Debian: apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        _needs("Playwright is not installed (pip install playwright)")
    return sync_api


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def demo_server(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, DemoData]]:
    """``meterbook demo``'s data on a fresh SQLite file, served by uvicorn in a thread; its base URL and keys."""
    path = tmp_path / "console.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}", pool_size=4)
    with database.write() as conn:
        demo = seed(conn)
    settings = Settings(database_url=f"sqlite:///{path}", migrate_on_start=False, log_level="warning")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app=create_app(settings, database), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert thread.is_alive(), "the server stopped before it answered"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not answer /healthz within 30 s"
        time.sleep(0.05)
    try:
        yield base_url, demo
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        database.dispose()


def _api(base_url: str, key: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{base_url}{path}", params=params, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json(parse_float=Decimal)


def _exact(number: float | int) -> Decimal:
    # The chart holds JavaScript numbers; their shortest text is the exact decimal for figures of a few digits.
    return Decimal(repr(number))


def test_the_console_in_a_browser(playwright_api: Any, demo_server: tuple[str, DemoData], tmp_path: Path) -> None:
    base_url, demo = demo_server
    key = demo.read_only_key
    globex = next(account for account in demo.accounts if account.name == "Globex Corporation")
    problems: list[str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            # Script errors and Content-Security-Policy violations both end up here.
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)

            # Signed out, a page leads to the sign-in form; a wrong key is told so.
            page.goto(f"{base_url}/ui/accounts/{globex.id}")
            assert "/ui/sign-in" in page.url
            page.fill("#key", key[:-4] + "0000")
            page.click("button[type=submit]")
            assert "not valid" in page.inner_text("[role=alert]")
            # The browser logs the refusal's 401 status as an error; nothing else may be logged.
            assert [problem for problem in problems if "401" not in problem] == []
            problems.clear()
            page.fill("#key", key)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base_url}/ui/accounts/{globex.id}")
            cookies = {cookie["name"]: cookie for cookie in context.cookies()}
            session = cookies["meterbook_console"]
            assert (session["httpOnly"], session["sameSite"], session["path"]) == (True, "Lax", "/ui")
            assert key.rsplit("_", 1)[1] not in session["value"]
            assert page.evaluate("document.cookie") == ""

            # The accounts list and its search.
            page.click("nav >> text=Accounts")
            assert page.locator("#accounts tbody tr").count() == len(demo.accounts)
            page.fill("input[name=q]", "globex")
            page.press("input[name=q]", "Enter")
            page.wait_for_url("**/ui/accounts?q=globex")
            assert page.locator("#accounts tbody tr").count() == 2
            page.click("#accounts >> text=Globex Corporation")
            page.wait_for_selector("canvas[data-drawn=true]")

            # The chart: twelve months, one series per product, each bar the API's monthly amount.
            drawn = page.evaluate(
                """() => {
                    const chart = Chart.getChart(document.querySelector("canvas[data-usage-chart]"));
                    return {months: chart.data.months,
                            series: chart.data.datasets.map(d => ({product: d.productId, data: d.data}))};
                }"""
            )
            months = [months_ago(back) for back in range(11, -1, -1)]
            assert drawn["months"] == months
            usage = _api(
                base_url, key, "/v1/monthly_usage", account_id=str(globex.id), **{"from": months[0], "to": months[-1]}
            )
            expected: dict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(months, Decimal(0)))
            for aggregate in usage["usage"]:
                expected[aggregate["product_id"]][aggregate["month"]] += Decimal(str(aggregate["total_amount"]))
            assert (
                {series["product"] for series in drawn["series"]}
                == set(expected)
                == {
                    "TD-USG-TEL-UG-102213",
                    "TD-USG-API-UG-100410",
                    "TD-USG-SMS-UG-103001",
                }
            )
            for series in drawn["series"]:
                assert [_exact(value) for value in series["data"]] == [
                    expected[series["product"]][month] for month in months
                ], series["product"]
            # The demo fills the year (the current month may have only begun).
            calls = next(series for series in drawn["series"] if series["product"] == "TD-USG-TEL-UG-102213")
            assert all(value > 0 for value in calls["data"][:-1])

            # The figures beside it.
            credits = _api(base_url, key, f"/v1/accounts/{globex.id}/credits")
            assert page.get_attribute("#credit-balance", "data-value") == str(credits["balance"])
            billing = _api(base_url, key, f"/v1/accounts/{globex.id}/billing")
            for item in billing["usages"]:
                row = page.locator(f'li[data-feature="{item["name"]}"]')
                assert row.get_attribute("data-usage") == str(item["usage"])
                assert row.get_attribute("data-limit") == ("" if item["limit"] is None else str(item["limit"]))
            invoices = _api(base_url, key, "/v1/invoices", account_id=str(globex.id))["invoices"]
            assert invoices
            shown = page.locator("#invoices tr[data-invoice]")
            assert shown.count() == len(invoices)
            for invoice in invoices:
                row = page.locator(f'#invoices tr[data-invoice="{invoice["id"]}"]')
                assert Decimal(row.get_attribute("data-amount")) == Decimal(str(invoice["amount"]))
            payments = _api(base_url, key, "/v1/payments", account_id=str(globex.id))["payments"]
            assert page.locator("#payments tr[data-payment]").count() == len(payments) > 0

            screenshot = Path(os.environ.get("METERBOOK_TEST_ARTIFACTS") or tmp_path) / "console-account.png"
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            print(f"console screenshot: {screenshot}")

            # An invoice and its lines.
            newest = invoices[-1]
            page.click(f'#invoices tr[data-invoice="{newest["id"]}"] a')
            page.wait_for_url(f"{base_url}/ui/invoices/{newest['id']}")
            lines = _api(base_url, key, f"/v1/invoices/{newest['id']}")["lines"]
            assert page.locator("#lines tr[data-line]").count() == len(lines) > 0
            for line in lines:
                amount = page.get_attribute(f'#lines tr[data-line="{line["line"]}"]', "data-amount")
                assert Decimal(amount or "") == Decimal(str(line["amount"]))

            # Signing out ends it: the cookie is gone and pages lead to sign-in again.
            page.click("text=Sign out")
            page.wait_for_url("**/ui/sign-in?*")
            assert "signed out" in page.inner_text("[role=status]")
            assert "meterbook_console" not in {cookie["name"] for cookie in context.cookies()}
            page.goto(f"{base_url}/ui/billing-runs")
            assert "/ui/sign-in" in page.url
        finally:
            browser.close()
    assert problems == []


VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def _fits(page: Any) -> None:
    """Nothing on the page is wider than the window: wide tables scroll inside their cards, not the page."""
    widths = page.evaluate("({page: document.documentElement.scrollWidth, window: window.innerWidth})")
    assert widths["page"] <= widths["window"], (
        f"{page.url} is {widths['page']} px wide in a {widths['window']} px window"
    )


def _shot(page: Any, folder: Path, name: str) -> None:
    _fits(page)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    print(f"console screenshot: {path}")


def _confirm(page: Any) -> str:
    """Press Confirm on a review page; the flash on the page it leads to."""
    page.click("#confirm")
    page.wait_for_selector("#flash")
    return str(page.inner_text("#flash"))


def _put(base_url: str, key: str, path: str, body: dict[str, Any]) -> None:
    response = httpx.put(f"{base_url}{path}", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code in (200, 201), response.text


def _post(base_url: str, key: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{base_url}{path}", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    return response.json()


def _plans(base_url: str, key: str, account_id: str) -> None:
    """Plans the demo does not have yet: "pro" with every price model (and a version from next month), "basic";
    Globex on pro since the month began and on basic from next month, with a negotiated price of its own."""
    calls, api_calls, sms = "TD-USG-TEL-UG-102213", "TD-USG-API-UG-100410", "TD-USG-SMS-UG-103001"
    tiers = [
        {"up_to": 1000, "unit_price": 0, "flat_fee": 10},
        {"up_to": 50000, "unit_price": "0.012"},
        {"up_to": None, "unit_price": "0.0095"},
    ]
    pro = {
        "name": "Pro",
        "currency": "USD",
        "fee": "1499",
        "prices": {
            calls: {"model": "graduated", "tiers": tiers},
            api_calls: {"model": "package", "package_size": 10000, "package_price": "2.5"},
            sms: {"model": "per_unit", "unit_price": "0.0075"},
        },
        "limits": {"seats": 25},
        "included_credits": {"amount": 1000, "rollover": 500},
    }
    this_month, next_month = months_ago(0), following(months_ago(0))
    _put(base_url, key, "/v1/plans/pro", pro)
    later = pro | {"name": "Pro (2027)", "fee": "1599", "effective_from": f"{next_month}-01T00:00:00Z"}
    _put(base_url, key, "/v1/plans/pro", later | {"prices": {calls: {"model": "volume", "tiers": tiers}}})
    _put(base_url, key, "/v1/plans/basic", {"name": "Basic", "currency": "USD", "fee": "99", "prices": {}})
    _put(
        base_url,
        key,
        f"/v1/accounts/{account_id}/subscription",
        {"plan": "pro", "starts_at": f"{this_month}-01T00:00:00Z"},
    )
    _put(
        base_url,
        key,
        f"/v1/accounts/{account_id}/subscription",
        {"plan": "basic", "starts_at": f"{next_month}-01T00:00:00Z"},
    )
    negotiated = {"price": {"model": "package", "package_size": 1000, "package_price": "6"}}
    _put(base_url, key, f"/v1/accounts/{account_id}/prices/{sms}", negotiated)


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_an_operator_acts_in_the_console(
    playwright_api: Any, demo_server: tuple[str, DemoData], tmp_path: Path, width: str
) -> None:
    base_url, demo = demo_server
    key = demo.organization_key
    globex = next(account for account in demo.accounts if account.name == "Globex Corporation")
    folder = Path(os.environ.get("METERBOOK_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport=VIEWPORTS[width])
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            _plans(base_url, key, str(globex.id))
            endpoint = _post(base_url, key, "/v1/webhook_endpoints", {"url": "https://hooks.example.com/meterbook"})
            page.goto(f"{base_url}/ui/sign-in")
            _fits(page)
            page.fill("#key", key)
            page.click("form[action='/ui/sign-in'] button[type=submit]")
            page.wait_for_url(f"{base_url}/ui/accounts")
            assert page.locator("#accounts tbody tr").count() == len(demo.accounts)
            _shot(page, folder, f"console-{width}-accounts")

            # The plans, and one plan's versions with its tier table.
            page.click("nav >> text=Plans")
            page.wait_for_selector("#plans")
            # The demo's three plans and the two this test adds.
            shown = page.locator("#plans tr[data-plan]")
            plans = {shown.nth(index).get_attribute("data-plan") for index in range(shown.count())}
            assert plans == {"basic", "growth", "pro", "scale", "starter"}
            _shot(page, folder, f"console-{width}-plans")
            page.click('#plans a[href="/ui/plans/pro"]')
            page.wait_for_selector("section.version")
            assert page.locator("section.version").count() == 2
            assert page.locator('section[data-state="current"] table.tiers tr[data-tier]').count() == 3
            _shot(page, folder, f"console-{width}-plan")

            # Grant credits: the form, the review (nothing granted yet), Confirm.
            balance = _api(base_url, key, f"/v1/accounts/{globex.id}/credits")["balance"]
            page.goto(f"{base_url}/ui/accounts")
            page.click(f'#accounts a[href="/ui/accounts/{globex.id}"]')
            page.wait_for_selector("canvas[data-drawn=true]")
            # Its plan, its negotiated price and this month's invoice so far.
            assert page.get_attribute("#current-plan", "data-plan") == "pro"
            assert "6.00 USD per 1,000 units" in page.inner_text("#prices")
            assert page.locator("#upcoming tr[data-line]").count() > 0
            _shot(page, folder, f"console-{width}-account")
            page.click("#account-actions >> text=Grant credits")
            page.fill("#amount", "500")
            page.fill("#description", "Browser test goodwill")
            page.click("#grant-form button[type=submit]")
            page.wait_for_selector("#confirm")
            assert "Grant 500 credits to Globex Corporation?" in page.inner_text("h1")
            assert _api(base_url, key, f"/v1/accounts/{globex.id}/credits")["balance"] == balance
            _shot(page, folder, f"console-{width}-confirm-grant")
            assert _confirm(page) == "Granted 500 credits to Globex Corporation."
            assert page.get_attribute("#credit-balance", "data-value") == str(balance + 500)
            assert _api(base_url, key, f"/v1/accounts/{globex.id}/credits")["balance"] == balance + 500
            _fits(page)

            # Record a payment.
            payments = _api(base_url, key, "/v1/payments", account_id=str(globex.id))["payments"]
            page.click("#account-actions >> text=Record a payment")
            page.fill("#amount", "10.00")
            page.fill("#reference", "browser wire 1")
            page.click("#payment-form button[type=submit]")
            page.wait_for_selector("#confirm")
            _shot(page, folder, f"console-{width}-confirm-payment")
            assert _confirm(page) == "Recorded a payment of 10.00 USD from Globex Corporation."
            after = _api(base_url, key, "/v1/payments", account_id=str(globex.id))["payments"]
            assert len(after) == len(payments) + 1
            assert after[-1]["reference"] == "browser wire 1"

            # Void an open invoice, from its page.
            invoice = next(
                item
                for item in _api(base_url, key, "/v1/invoices", status="open")["invoices"]
                if item["amount_paid"] == 0
            )
            page.goto(f"{base_url}/ui/invoices/{invoice['id']}")
            _shot(page, folder, f"console-{width}-invoice")
            page.click("#invoice-actions >> text=Void invoice")
            page.wait_for_selector("#confirm")
            _shot(page, folder, f"console-{width}-confirm-void")
            assert _api(base_url, key, f"/v1/invoices/{invoice['id']}")["status"] == "open"
            assert _confirm(page).startswith(f"Voided invoice #{invoice['number']} of ")
            assert _api(base_url, key, f"/v1/invoices/{invoice['id']}")["status"] == "void"
            _fits(page)

            # Create a key (shown once), use it, revoke it.
            page.click("nav >> text=Keys")
            page.wait_for_selector("#keys")
            _fits(page)
            page.click("#new-key")
            page.fill("#name", "browser test")
            page.check("input[name=scopes][value='billing:read']")
            page.click("#key-form button[type=submit]")
            page.wait_for_selector("#confirm")
            _fits(page)
            page.click("#confirm")
            page.wait_for_selector("#token")
            _shot(page, folder, f"console-{width}-key-created")
            assert "shown only once" in page.inner_text("#created-key")
            token = page.inner_text("#token").strip()
            assert httpx.get(f"{base_url}/v1/invoices", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            made = next(item for item in _api(base_url, key, "/v1/api_keys") if item["name"] == "browser test")
            page.click("text=Done: back to the keys")
            page.click(f'#keys tr[data-key="{made["id"]}"] >> text=Revoke')
            page.wait_for_selector("#confirm")
            _fits(page)
            assert _confirm(page).startswith(f"Revoked key {made['key']} (browser test)")
            assert page.get_attribute(f'#keys tr[data-key="{made["id"]}"]', "data-state") == "revoked"
            assert httpx.get(f"{base_url}/v1/invoices", headers={"Authorization": f"Bearer {token}"}).status_code == 401

            # Webhooks: the endpoints, one endpoint's deliveries (the grant above emitted credits.granted), and the
            # review of a resend. The endpoint was made before the grant, through the API.
            page.click("nav >> text=Webhooks")
            page.wait_for_selector("#endpoints")
            _shot(page, folder, f"console-{width}-webhooks")
            page.click(f'#endpoints a[href="/ui/webhooks/{endpoint["id"]}"]')
            page.wait_for_selector("#deliveries")
            shown = page.locator("#deliveries tbody tr")
            types = {shown.nth(index).inner_text().split()[0] for index in range(shown.count())}
            assert {"credits.granted", "payment.created", "invoice.voided"} <= types, types
            _shot(page, folder, f"console-{width}-webhook")
            page.click("#deliveries >> text=Resend… >> nth=0")
            page.wait_for_selector("#confirm")
            _shot(page, folder, f"console-{width}-confirm-resend")

            # Alerts: the demo's low-credits alert on Globex, with its firings.
            page.click("nav >> text=Alerts")
            page.wait_for_selector("section[data-alert]")
            assert page.locator("section[data-alert]").count() == len(_api(base_url, key, "/v1/alerts")["alerts"])
            _shot(page, folder, f"console-{width}-alerts")
        finally:
            browser.close()
    assert problems == []
