"""The web console at ``/ui`` (issue 8, item 1), through plain HTTP: signing in and out, the session cookie,
every page and its empty states, and the reach rule. Runs on both databases; the figures on the pages are
checked against the API's answers for the same data.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.tables import console_sessions
from tests.billing import Billing, at, exact, months_ago
from tests.conftest import Tenant, bearer
from tests.helpers import each

CSP = "Content-Security-Policy"


def sign_in(client: TestClient, key: str, next_path: str = "/ui/accounts", **headers: str) -> Any:
    return client.post(
        "/ui/sign-in", data={"key": key, "next": next_path}, headers=headers or None, follow_redirects=False
    )


def signed_in(client: TestClient, key: str) -> TestClient:
    response = sign_in(client, key)
    assert response.status_code == 303, response.text
    return client


def set_cookie(response: Any) -> str:
    values = [value for name, value in response.headers.multi_items() if name == "set-cookie"]
    assert len(values) == 1, values
    return values[0]


def redirected_to_sign_in(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/ui/sign-in"
    return parse_qs(location.query)


def data(html: str, attribute: str, value: str) -> dict[str, str]:
    """The data-* attributes of the element whose ``attribute`` is ``value``."""
    match = re.search(rf'<[^>]*\b{attribute}="{re.escape(value)}"[^>]*>', html)
    assert match is not None, f"no element with {attribute}={value!r}"
    return dict(re.findall(r'\bdata-([a-z-]+)="([^"]*)"', match.group(0)))


def feature_rows(html: str) -> dict[str, tuple[str, str]]:
    return {
        name: (usage, limit)
        for name, usage, limit in re.findall(r'data-feature="([^"]+)" data-usage="([^"]*)" data-limit="([^"]*)"', html)
    }


@pytest.fixture
def world(tenant: Tenant) -> dict[str, Any]:
    """One organization with a year of usage, features, credits, an invoiced month and a payment."""
    billing = Billing(tenant)
    billing.product("CALLS", "0.05", description="Inbound calls")
    billing.product("SMS", "0.0079", description="Outbound SMS")
    headers = tenant.headers
    for name, limit, reset in (("seats", 10, "never"), ("api.calls", 1000, "monthly"), ("exports", None, "never")):
        body = {"description": f"The {name} feature", "default_limit": limit, "reset": reset}
        assert tenant.client.put(f"/v1/features/{name}", json=body, headers=headers).status_code in (200, 201)
    customer = billing.account(name="Hooli", email="ap@hooli.example", currency="USD")
    billing.account(name="Hooli Europe", parent_account_id=customer["id"], currency="EUR")
    quiet = billing.account(name="Pied Piper", email="richard@piedpiper.example")
    used = [("CALLS", "120.5", months_ago(1)), ("CALLS", "80", months_ago(2)), ("SMS", "333", months_ago(2))]
    # Outside the chart's twelve months: it must not be counted.
    used.append(("CALLS", "999", months_ago(14)))
    for product_id, quantity, month in used:
        billing.use(customer, product_id, quantity, at(month))
    grant = {"id": "welcome", "amount": 500, "description": "Welcome credits"}
    assert tenant.client.post(f"/v1/accounts/{customer['id']}/credits", json=grant, headers=headers).status_code == 201
    events = [
        {"id": "run-1", "account_id": customer["id"], "type": "credit", "quantity": 30, "source": "etl"},
        {"id": "seat-1", "account_id": customer["id"], "type": "feature", "feature": "seats", "quantity": 9},
        {"id": "call-1", "account_id": customer["id"], "type": "feature", "feature": "api.calls", "quantity": 250},
    ]
    assert billing.send(events).status_code == 200
    billing.billed(months_ago(1))
    invoice = billing.invoices(account_id=customer["id"])[0]
    billing.paid(customer, "2", reference="wire 77")
    return {"billing": billing, "customer": customer, "quiet": quiet, "invoice": invoice}


class TestSigningIn:
    def test_a_page_without_a_session_leads_to_sign_in_and_back(self, client: TestClient, tenant: Tenant) -> None:
        account = tenant.create_account(name="Hooli")
        query = redirected_to_sign_in(client.get(f"/ui/accounts/{account['id']}?x=1", follow_redirects=False))
        assert query["next"] == [f"/ui/accounts/{account['id']}?x=1"]
        form = client.get("/ui/sign-in", params={"next": query["next"][0]})
        assert form.status_code == 200
        assert 'name="key"' in form.text
        assert f'value="/ui/accounts/{account["id"]}?x=1"' in form.text
        response = sign_in(client, tenant.key, query["next"][0])
        assert response.status_code == 303
        assert response.headers["location"] == f"/ui/accounts/{account['id']}?x=1"
        page = client.get(response.headers["location"])
        assert page.status_code == 200
        assert "Hooli" in page.text

    def test_the_cookie_is_http_only_same_site_and_holds_no_secret(
        self, client: TestClient, database: Database, tenant: Tenant
    ) -> None:
        response = sign_in(client, tenant.key)
        cookie = set_cookie(response)
        name, _, rest = cookie.partition("=")
        value = rest.split(";")[0]
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert name == "meterbook_console"
        assert {"httponly", "samesite=lax", "path=/ui", "max-age=28800"} <= flags
        # Plain http (TestClient's http://testserver): a browser would drop a Secure cookie there.
        assert "secure" not in flags
        secret = tenant.key.rsplit("_", 1)[1]
        assert secret not in value
        assert tenant.key not in value
        # Not even the key's id: the cookie names a session row, which signing out ends.
        key_id = tenant.key.split("_")[1]
        assert key_id not in value
        session_id = value.split(".")[0]
        with database.read() as conn:
            stored = conn.execute(select(console_sessions).where(console_sessions.c.id == uuid.UUID(session_id))).one()
        assert stored.key_id.hex == key_id
        assert stored.ended_at is None

    def test_the_cookie_is_secure_over_https(self, settings: Settings, database: Database, tenant: Tenant) -> None:
        with TestClient(create_app(settings, database), base_url="https://testserver") as secure_client:
            cookie = set_cookie(sign_in(secure_client, tenant.key))
        assert "secure" in {part.strip().lower() for part in cookie.split(";")[1:]}

    def test_the_cookie_is_secure_when_the_public_url_is_https(self, database: Database, tenant: Tenant) -> None:
        settings = Settings(database_url=database.url, migrate_on_start=False, public_url="https://billing.example")
        with TestClient(create_app(settings, database)) as proxied:
            cookie = set_cookie(sign_in(proxied, tenant.key))
        assert "secure" in {part.strip().lower() for part in cookie.split(";")[1:]}

    def test_a_refused_key_is_told_and_gets_no_cookie(self, client: TestClient, tenant: Tenant) -> None:
        account = tenant.create_account(name="Hooli")
        revoked = tenant.create_key()
        assert client.delete(f"/v1/api_keys/{revoked['id']}", headers=tenant.headers).status_code == 200
        cases = {
            "empty": ("", 400, "Enter an organization key"),
            "malformed": ("not-a-key", 401, "not valid"),
            "forged": (tenant.key[:-1] + ("0" if tenant.key[-1] != "0" else "1"), 401, "not valid"),
            "revoked": (revoked["key"], 401, "not valid"),
            "account key": (account["api_key"], 403, "account key"),
            "without scopes": (tenant.create_key(scopes=["accounts:read", "usage:read"])["key"], 403, "billing:read"),
        }

        def check(case: tuple[str, int, str]) -> None:
            key, status, words = case
            response = sign_in(client, key)
            assert response.status_code == status
            assert words in response.text
            assert "set-cookie" not in response.headers
            assert 'name="key"' in response.text
            assert redirected_to_sign_in(client.get("/ui/accounts", follow_redirects=False))

        each(cases, check)

    def test_signing_out_ends_the_session_on_the_server(self, client: TestClient, tenant: Tenant) -> None:
        """A copy of the cookie kept after sign-out (a shared machine, a stolen cookie) opens nothing."""
        signed_in(client, tenant.key)
        kept = client.cookies.get("meterbook_console")
        assert client.get("/ui/accounts", follow_redirects=False).status_code == 200
        client.post("/ui/sign-out", follow_redirects=False)
        client.cookies.clear()
        response = client.get("/ui/accounts", headers={"Cookie": f"meterbook_console={kept}"}, follow_redirects=False)
        assert redirected_to_sign_in(response)["reason"] == ["expired"]
        # Another sign-in of the same key is another session, which the first sign-out did not end.
        signed_in(client, tenant.key)
        assert client.get("/ui/accounts", follow_redirects=False).status_code == 200

    def test_revoking_the_key_ends_its_sessions(self, client: TestClient, tenant: Tenant) -> None:
        key = tenant.create_key(name="console")
        signed_in(client, key["key"])
        assert client.get("/ui/accounts", follow_redirects=False).status_code == 200
        client.delete(f"/v1/api_keys/{key['id']}", headers=tenant.headers)
        assert redirected_to_sign_in(client.get("/ui/accounts", follow_redirects=False))["reason"] == ["key"]

    def test_a_read_only_organization_key_is_enough(self, client: TestClient, tenant: Tenant) -> None:
        key = tenant.create_key(scopes=["accounts:read", "billing:read", "usage:read"])["key"]
        signed_in(client, key)
        assert client.get("/ui/accounts").status_code == 200

    def test_revoking_the_key_ends_the_session_at_once(self, client: TestClient, tenant: Tenant) -> None:
        made = tenant.create_key()
        signed_in(client, made["key"])
        assert client.get("/ui/accounts").status_code == 200
        assert client.delete(f"/v1/api_keys/{made['id']}", headers=tenant.headers).status_code == 200
        response = client.get("/ui/accounts", follow_redirects=False)
        assert redirected_to_sign_in(response)["reason"] == ["key"]
        assert "max-age=0" in set_cookie(response).lower()
        assert "no longer valid" in client.get(response.headers["location"]).text

    def test_a_tampered_cookie_is_refused(self, client: TestClient, tenant: Tenant) -> None:
        other = tenant.create_key()
        signed_in(client, tenant.key)
        value = client.cookies["meterbook_console"]
        _key, expires, signature = value.split(".")
        # Another key's id under the first one's signature, and a later expiry under its own.
        for forged in (
            f"{other['id'].replace('-', '')}.{expires}.{signature}",
            f"{_key}.{int(expires) + 1}.{signature}",
        ):
            client.cookies.clear()
            response = client.get(
                "/ui/accounts", headers={"Cookie": f"meterbook_console={forged}"}, follow_redirects=False
            )
            query = redirected_to_sign_in(response)
            assert query["reason"] == ["expired"]

    def test_signing_out_clears_the_cookie(self, client: TestClient, tenant: Tenant) -> None:
        signed_in(client, tenant.key)
        response = client.post("/ui/sign-out", follow_redirects=False)
        assert redirected_to_sign_in(response)["reason"] == ["signed_out"]
        assert "max-age=0" in set_cookie(response).lower()
        assert "signed out" in client.get(response.headers["location"]).text
        assert redirected_to_sign_in(client.get("/ui/accounts", follow_redirects=False))

    def test_forms_posted_from_another_site_are_refused(self, client: TestClient, tenant: Tenant) -> None:
        response = sign_in(client, tenant.key, Origin="https://attacker.example")
        assert response.status_code == 403
        assert "set-cookie" not in response.headers
        signed_in(client, tenant.key)
        response = client.post("/ui/sign-out", headers={"Origin": "https://attacker.example"}, follow_redirects=False)
        assert response.status_code == 403
        assert client.get("/ui/accounts").status_code == 200
        same_site = sign_in(client, tenant.key, Origin="http://testserver")
        assert same_site.status_code == 303

    @pytest.mark.parametrize("target", ["https://attacker.example/", "//attacker.example/ui", "/v1/accounts"])
    def test_sign_in_never_leads_off_the_console(self, client: TestClient, tenant: Tenant, target: str) -> None:
        response = sign_in(client, tenant.key, target)
        assert response.headers["location"] == "/ui/accounts"

    def test_pages_carry_the_security_headers(self, client: TestClient, tenant: Tenant) -> None:
        for response in (client.get("/ui/sign-in"), signed_in(client, tenant.key).get("/ui/accounts")):
            assert "script-src 'self'" in response.headers[CSP]
            assert "frame-ancestors 'none'" in response.headers[CSP]
            assert response.headers["cache-control"] == "no-store"


class TestPages:
    def test_accounts_and_search(self, client: TestClient, tenant: Tenant, world: dict[str, Any]) -> None:
        signed_in(client, tenant.key)
        page = client.get("/ui/accounts").text
        assert all(name in page for name in ("Hooli", "Hooli Europe", "Pied Piper"))
        assert "3 accounts" in page
        found = client.get("/ui/accounts", params={"q": "HOOLI"}).text
        assert "2 of 3 accounts match" in found
        assert "Pied Piper" not in found
        by_mail = client.get("/ui/accounts", params={"q": "piedpiper.example"}).text
        assert "Pied Piper" in by_mail
        assert "Hooli Europe" not in by_mail
        by_id = client.get("/ui/accounts", params={"q": world["quiet"]["id"]}).text
        assert "1 of 3 accounts match" in by_id
        assert "Pied Piper" in by_id
        wildcard = client.get("/ui/accounts", params={"q": "%"}).text
        assert "No account matches" in wildcard
        for odd in ("_", "\\", "x\x00y", "é" * 300):
            response = client.get("/ui/accounts", params={"q": odd})
            assert response.status_code == 200, odd
            assert "No account matches" in response.text

    def test_no_accounts_yet(self, client: TestClient, tenant: Tenant) -> None:
        signed_in(client, tenant.key)
        assert "No accounts yet" in client.get("/ui/accounts").text

    def test_the_account_page_shows_the_apis_figures(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        customer = world["customer"]
        signed_in(client, tenant.key)
        page = client.get(f"/ui/accounts/{customer['id']}")
        assert page.status_code == 200
        html = page.text
        credits = client.get(f"/v1/accounts/{customer['id']}/credits", headers=tenant.headers).json()
        assert data(html, "id", "credit-balance")["value"] == str(credits["balance"]) == "470"
        view = exact(client.get(f"/v1/accounts/{customer['id']}/billing", headers=tenant.headers))
        expected = {
            item["name"]: (str(item["usage"]), "" if item["limit"] is None else str(item["limit"]))
            for item in view["usages"]
        }
        assert (
            feature_rows(html) == expected == {"seats": ("9", "10"), "api.calls": ("250", "1000"), "exports": ("0", "")}
        )
        assert "level-near" in re.search(r'<li class="feature ([^"]*)" data-feature="seats"', html).group(1)  # type: ignore[union-attr]
        usage = exact(
            client.get(
                "/v1/monthly_usage",
                params={"account_id": customer["id"], "from": months_ago(11), "to": months_ago(0)},
                headers=tenant.headers,
            )
        )["usage"]
        totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for aggregate in usage:
            totals[aggregate["product_id"]][0] += Decimal(str(aggregate["number_of_units"]))
            totals[aggregate["product_id"]][1] += Decimal(str(aggregate["total_amount"]))
        assert set(totals) == {"CALLS", "SMS"}
        for product_id, (units, amount) in totals.items():
            row = data(html, "data-product", product_id)
            assert (Decimal(row["units"]), Decimal(row["amount"])) == (units, amount)
        assert Decimal(data(html, "data-product", "CALLS")["units"]) == Decimal("200.5")
        chart = re.search(r'<script type="application/json" id="usage-data-USD">(.*?)</script>', html, re.S)
        assert chart is not None
        assert months_ago(11) in chart.group(1)
        assert months_ago(14) not in chart.group(1)
        invoice = world["invoice"]
        assert data(html, "data-invoice", invoice["id"])["amount"] == str(invoice["amount"])
        assert data(
            html, "data-payment", client.get("/v1/payments", headers=tenant.headers).json()["payments"][0]["id"]
        )
        assert "wire 77" in html
        assert "Hooli Europe" in html  # its subaccount
        # Scripts, styles and links all from meterbook itself: nothing is fetched from elsewhere.
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert "/ui/static/chart.umd.min.js" in sources
        assert all(source.startswith(("/", "data:")) for source in sources), sources

    def test_an_account_with_nothing_yet_says_so(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        signed_in(client, tenant.key)
        html = client.get(f"/ui/accounts/{world['quiet']['id']}").text
        for words in (
            "No credit movements yet",
            "No metered usage in the last 12 months",
            "No invoices yet",
            "No payments yet",
        ):
            assert words in html
        assert "<canvas" not in html

    def test_the_invoice_page_shows_its_lines(self, client: TestClient, tenant: Tenant, world: dict[str, Any]) -> None:
        signed_in(client, tenant.key)
        invoice = world["billing"].invoice(world["invoice"]["id"])
        html = client.get(f"/ui/invoices/{invoice['id']}").text
        assert f"Invoice #{invoice['number']}" in html
        assert data(html, "id", "invoice-amount")["value"] == str(invoice["amount"])
        assert invoice["lines"]
        for line in invoice["lines"]:
            assert data(html, "data-line", str(line["line"]))["amount"] == str(line["amount"])
        assert sum(Decimal(str(line["amount"])) for line in invoice["lines"]) == Decimal(str(invoice["amount"]))
        assert "wire 77" in html

    def test_invoices_and_billing_runs(self, client: TestClient, tenant: Tenant, world: dict[str, Any]) -> None:
        signed_in(client, tenant.key)
        runs = client.get("/ui/billing-runs").text
        assert data(runs, "data-month", months_ago(1))
        listed = client.get("/ui/invoices", params={"month": months_ago(1)}).text
        assert data(listed, "data-invoice", world["invoice"]["id"])
        assert "No invoice matches" in client.get("/ui/invoices", params={"status": "void"}).text

    def test_nothing_billed_yet(self, client: TestClient, tenant: Tenant) -> None:
        signed_in(client, tenant.key)
        assert "No billing runs yet" in client.get("/ui/billing-runs").text
        assert "No invoices yet" in client.get("/ui/invoices").text

    def test_another_organizations_ids_are_not_found(
        self, client: TestClient, tenant: Tenant, other_tenant: Tenant, world: dict[str, Any]
    ) -> None:
        signed_in(client, other_tenant.key)
        for path in (
            f"/ui/accounts/{world['customer']['id']}",
            f"/ui/invoices/{world['invoice']['id']}",
            "/ui/accounts/not-an-id",
            "/ui/no-such-page",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"].startswith("text/html")
            assert "Not found" in response.text
            assert "Hooli" not in response.text
        assert "No accounts yet" in client.get("/ui/accounts").text
        assert world["invoice"]["id"] not in client.get("/ui/invoices").text

    def test_the_chart_library_is_served_by_meterbook(self, client: TestClient) -> None:
        script = client.get("/ui/static/chart.umd.min.js")
        assert script.status_code == 200
        assert "Chart.js v4" in script.text[:200]
        assert client.get("/ui/static/chart.js.LICENSE.md").status_code == 200


def test_api_keys_still_work_beside_the_console(client: TestClient, tenant: Tenant) -> None:
    """The console's cookie is no credential for the API: the API still wants its key."""
    signed_in(client, tenant.key)
    assert client.get("/v1/accounts").status_code == 401
    assert client.get("/v1/accounts", headers=bearer(tenant.key)).status_code == 200
