"""The console's actions (issue 16): grant credits, record a payment, void an invoice, run billing, create and
revoke keys. Through plain HTTP on both databases, as a browser would send the forms.

For each action: the form, the review (which changes nothing), Confirm (stored once, as the API then shows it),
the same confirmation sent twice (applied once), bad input (shown on the form), a missing or wrong form token
and a cross-site Origin (403, nothing changed), a read-only key (refused, and not offered the action), and
another organization's ids (404). Also what the lists show: the overdue badge, the accounts' credit balances
and amounts due, computed in a fixed number of queries whatever the number of accounts.
"""

from __future__ import annotations

import html
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from meterbook.db import Database
from tests.billing import Billing, at, exact, months_ago
from tests.conftest import Tenant, bearer

READ_ONLY = ["accounts:read", "billing:read", "usage:read"]


class Console:
    """A browser signed in to the console: it reads each page's form token and sends forms as the pages do."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client = client
        self._token: str | None = None
        client.cookies.clear()
        response = client.post("/ui/sign-in", data={"key": key, "next": "/ui/accounts"}, follow_redirects=False)
        assert response.status_code == 303, response.text

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params or None, follow_redirects=False)

    def token(self) -> str:
        """The session's form token, as every page carries it (it lasts as long as the session)."""
        if self._token is None:
            match = re.search(r'name="csrf" value="([^"]+)"', self.get("/ui/accounts").text)
            assert match is not None
            self._token = match.group(1)
        return self._token

    def post(self, path: str, fields: dict[str, Any], *, csrf: str | None = "page", **headers: str) -> Any:
        """Send a form; ``csrf`` "page" sends this session's token, None sends none, any other text that text."""
        data = dict(fields)
        if csrf == "page":
            data["csrf"] = self.token()
        elif csrf is not None:
            data["csrf"] = csrf
        return self.client.post(path, data=data, headers=headers or None, follow_redirects=False)

    def review(self, path: str, fields: dict[str, Any]) -> tuple[str, dict[str, list[str]]]:
        """Post a form to its review page; Confirm's address and the fields it sends back."""
        response = self.post(path, fields)
        assert response.status_code == 200, response.text
        return confirmation(response.text)


def confirmation(page: str) -> tuple[str, dict[str, list[str]]]:
    match = re.search(r'<form method="post" action="([^"]+)" class="confirm">(.*?)</form>', page, re.S)
    assert match is not None, "the page has no Confirm form"
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(2)):
        fields.setdefault(name, []).append(html.unescape(value))
    return match.group(1), fields


def flash(response: Any) -> str:
    match = re.search(r'id="flash">([^<]*)<', response.text)
    assert match is not None, "no flash on the page"
    return html.unescape(match.group(1))


def problems(page: str) -> str:
    match = re.search(r'id="form-errors">(.*?)</(?:div|p)>', page, re.S)
    assert match is not None, "the page shows no error"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


def followed(console: Console, response: Any) -> Any:
    assert response.status_code == 303, response.text
    return console.get(response.headers["location"])


def masked(tenant: Tenant, key_id: str) -> str:
    """The key as the API lists it after the reply that made it."""
    return str(next(key["key"] for key in api(tenant, "/v1/api_keys") if key["id"] == key_id))


def api(tenant: Tenant, path: str, **params: Any) -> Any:
    response = tenant.client.get(path, params=params or None, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return exact(response)


def balance(tenant: Tenant, account_id: str) -> int:
    return int(api(tenant, f"/v1/accounts/{account_id}/credits")["balance"])


def state(tenant: Tenant, account_id: str) -> Any:
    """Everything an action could change, as the API shows it."""
    return (
        api(tenant, f"/v1/accounts/{account_id}/credits/transactions"),
        api(tenant, "/v1/payments"),
        api(tenant, "/v1/invoices"),
        api(tenant, "/v1/api_keys"),
    )


@pytest.fixture
def world(tenant: Tenant) -> dict[str, Any]:
    """Acme's customer Hooli with an open invoice of last month (120.50 USD), and a quiet account."""
    billing = Billing(tenant)
    billing.product("CALLS", "0.5", description="Inbound calls")
    hooli = billing.account(name="Hooli", currency="USD")
    quiet = billing.account(name="Pied Piper", currency="USD")
    billing.use(hooli, "CALLS", "241", at(months_ago(1)))
    billing.billed(months_ago(1))
    invoice = billing.invoices(account_id=hooli["id"])[0]
    assert invoice["amount"] == Decimal("120.5")
    return {"billing": billing, "hooli": hooli, "quiet": quiet, "invoice": invoice}


# --- grant credits -------------------------------------------------------------------------------------


class TestGrantCredits:
    def test_review_then_confirm_grants_once(self, client: TestClient, tenant: Tenant, world: dict[str, Any]) -> None:
        hooli = world["hooli"]
        console = Console(client, tenant.key)
        page = console.get(f"/ui/accounts/{hooli['id']}")
        assert f'href="/ui/accounts/{hooli["id"]}/grant"' in page.text
        form = console.get(f"/ui/accounts/{hooli['id']}/grant")
        assert form.status_code == 200
        assert 'name="amount"' in form.text
        before = state(tenant, hooli["id"])
        response = console.post(f"/ui/accounts/{hooli['id']}/grant", {"amount": "500", "description": "Goodwill"})
        assert response.status_code == 200
        assert "Grant 500 credits to Hooli?" in response.text
        assert "Goodwill" in response.text
        assert state(tenant, hooli["id"]) == before, "the review changed something"
        action, fields = confirmation(response.text)
        assert action == f"/ui/accounts/{hooli['id']}/grant/confirm"
        done = console.post(action, fields, csrf=None)
        assert done.headers["location"] == f"/ui/accounts/{hooli['id']}"
        shown = followed(console, done)
        assert flash(shown) == "Granted 500 credits to Hooli."
        assert 'data-value="500"' in shown.text
        assert 'id="flash"' not in console.get(f"/ui/accounts/{hooli['id']}").text, "a flash shows once"
        transactions = api(tenant, f"/v1/accounts/{hooli['id']}/credits/transactions")["transactions"]
        assert [(t["kind"], t["amount"], t["description"]) for t in transactions] == [("grant", 500, "Goodwill")]
        assert balance(tenant, hooli["id"]) == 500

    def test_the_same_confirmation_twice_grants_once(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        hooli = world["hooli"]
        console = Console(client, tenant.key)
        action, fields = console.review(f"/ui/accounts/{hooli['id']}/grant", {"amount": "250"})
        first = followed(console, console.post(action, fields, csrf=None))
        again = followed(console, console.post(action, fields, csrf=None))
        assert flash(first) == "Granted 250 credits to Hooli."
        assert "had been granted already" in flash(again)
        assert balance(tenant, hooli["id"]) == 250
        # A second review is a second grant: it gets an id of its own.
        action, fields = console.review(f"/ui/accounts/{hooli['id']}/grant", {"amount": "250"})
        followed(console, console.post(action, fields, csrf=None))
        assert balance(tenant, hooli["id"]) == 500

    @pytest.mark.parametrize(
        ("amount", "words"),
        [
            ("abc", "Amount: enter a whole number, e.g. 500"),
            ("1.5", "Amount: enter a whole number"),
            ("0", "Amount: Input should be greater than 0"),
            ("", "Amount"),
        ],
    )
    def test_bad_input_is_shown_on_the_form(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any], amount: str, words: str
    ) -> None:
        hooli = world["hooli"]
        console = Console(client, tenant.key)
        for path in (f"/ui/accounts/{hooli['id']}/grant", f"/ui/accounts/{hooli['id']}/grant/confirm"):
            response = console.post(path, {"amount": amount, "description": "x", "grant_id": "console-x"})
            assert response.status_code == 400, path
            assert words in problems(response.text)
            assert 'id="grant-form"' in response.text
            assert 'value="x"' in response.text, "what was typed is kept"
        assert balance(tenant, hooli["id"]) == 0

    def test_the_grant_id_reused_with_other_content_is_a_conflict_on_the_form(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        hooli = world["hooli"]
        console = Console(client, tenant.key)
        action, fields = console.review(f"/ui/accounts/{hooli['id']}/grant", {"amount": "10"})
        followed(console, console.post(action, fields, csrf=None))
        response = console.post(action, fields | {"amount": ["11"]}, csrf=None)
        assert response.status_code == 409
        assert "already recorded with different content" in problems(response.text)
        assert balance(tenant, hooli["id"]) == 10


# --- cross-site requests, tokens, who may act ----------------------------------------------------------


def _actions(world: dict[str, Any], key_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every form that changes something, with input that would succeed."""
    hooli, invoice = world["hooli"], world["invoice"]
    return {
        "grant review": (f"/ui/accounts/{hooli['id']}/grant", {"amount": "5"}),
        "grant": (f"/ui/accounts/{hooli['id']}/grant/confirm", {"amount": "5", "grant_id": "console-1"}),
        "payment review": (f"/ui/accounts/{hooli['id']}/payment", {"amount": "5"}),
        "payment": (f"/ui/accounts/{hooli['id']}/payment/confirm", {"amount": "5", "payment_id": "console-2"}),
        "void": (f"/ui/invoices/{invoice['id']}/void/confirm", {}),
        "billing review": ("/ui/billing-runs", {"month": months_ago(2)}),
        "billing": ("/ui/billing-runs/confirm", {"month": months_ago(2)}),
        "key review": ("/ui/keys/new", {"name": "made"}),
        "key": ("/ui/keys/new/confirm", {"name": "made"}),
        "revoke": (f"/ui/keys/{key_id}/revoke/confirm", {}),
    }


class TestProtection:
    def test_a_missing_or_wrong_token_is_refused_and_changes_nothing(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        spare = tenant.create_key(name="spare")
        console = Console(client, tenant.key)
        # Another session's token (the same key signed in elsewhere) fits no other session.
        other_token = Console(TestClient(client.app), tenant.key).token()
        before = state(tenant, world["hooli"]["id"])
        for name, (path, fields) in _actions(world, spare["id"]).items():
            for token in (None, "", "forged", other_token, console.token() + "x"):
                response = console.post(path, fields, csrf=token)
                assert response.status_code == 403, (name, token)
                assert "not from your current session" in response.text, name
                assert "Nothing was changed" in response.text
        assert state(tenant, world["hooli"]["id"]) == before

    def test_a_form_from_another_site_is_refused_and_changes_nothing(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        spare = tenant.create_key(name="spare")
        console = Console(client, tenant.key)
        before = state(tenant, world["hooli"]["id"])
        for name, (path, fields) in _actions(world, spare["id"]).items():
            for header in ({"Origin": "https://attacker.example"}, {"Referer": "https://attacker.example/page"}):
                response = console.post(path, fields, **header)
                assert response.status_code == 403, name
                assert "did not come from this console" in response.text
        assert state(tenant, world["hooli"]["id"]) == before
        # The same form from the console's own page goes through.
        same_site = console.post(
            f"/ui/accounts/{world['hooli']['id']}/grant", {"amount": "5"}, Origin="http://testserver"
        )
        assert same_site.status_code == 200

    def test_a_read_only_key_is_refused_and_not_offered_the_actions(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        spare = tenant.create_key(name="spare")
        reader = tenant.create_key(name="reader", scopes=READ_ONLY)
        console = Console(client, reader["key"])
        hooli, invoice = world["hooli"], world["invoice"]
        account_page = console.get(f"/ui/accounts/{hooli['id']}").text
        invoice_page = console.get(f"/ui/invoices/{invoice['id']}").text
        runs_page = console.get("/ui/billing-runs").text
        assert "/grant" not in account_page
        assert "/payment" not in account_page
        assert "/void" not in invoice_page
        assert "/payment" not in invoice_page
        assert 'action="/ui/billing-runs"' not in runs_page
        assert 'href="/ui/keys"' not in account_page
        before = state(tenant, hooli["id"])
        forms = {
            "grant": f"/ui/accounts/{hooli['id']}/grant",
            "payment": f"/ui/accounts/{hooli['id']}/payment",
            "void": f"/ui/invoices/{invoice['id']}/void",
            "keys": "/ui/keys",
            "new key": "/ui/keys/new",
            "revoke": f"/ui/keys/{spare['id']}/revoke",
        }
        for name, path in forms.items():
            response = console.get(path)
            assert response.status_code == 403, name
            assert "Not allowed with this key" in response.text
            assert "The key you signed in with may not" in response.text
        for name, (path, fields) in _actions(world, spare["id"]).items():
            response = console.post(path, fields)
            assert response.status_code == 403, name
            assert "lacks the scope" in response.text, name
        assert state(tenant, hooli["id"]) == before

    def test_another_organizations_ids_are_not_found(
        self, client: TestClient, tenant: Tenant, other_tenant: Tenant, world: dict[str, Any]
    ) -> None:
        spare = tenant.create_key(name="spare")
        console = Console(client, other_tenant.key)
        hooli, invoice = world["hooli"], world["invoice"]
        before = state(tenant, hooli["id"])
        for path in (
            f"/ui/accounts/{hooli['id']}/grant",
            f"/ui/accounts/{hooli['id']}/payment",
            f"/ui/invoices/{invoice['id']}/void",
            f"/ui/keys/{spare['id']}/revoke",
            f"/ui/keys/{uuid.uuid4()}/revoke",
            "/ui/keys/not-an-id/revoke",
        ):
            response = console.get(path)
            assert response.status_code == 404, path
            assert "Hooli" not in response.text
        for name, (path, fields) in _actions(world, spare["id"]).items():
            if "billing" in name or ("key" in name and "revoke" not in name):
                continue  # these name no object of the victim
            response = console.post(path, fields)
            assert response.status_code == 404, name
            assert "Hooli" not in response.text
        # Naming the victim's account or invoice inside a form of one's own organization finds nothing either.
        mine = other_tenant.create_account(name="Mine")
        response = console.post(f"/ui/accounts/{mine['id']}/payment", {"amount": "5", "invoice_id": invoice["id"]})
        assert response.status_code == 400
        assert "Invoice: no invoice with id" in problems(response.text)
        response = console.post("/ui/keys/new", {"account_id": hooli["id"]})
        assert response.status_code == 400
        assert state(tenant, hooli["id"]) == before

    def test_a_form_without_a_session_leads_to_sign_in_and_changes_nothing(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        console = Console(client, tenant.key)
        token = console.token()
        hooli = world["hooli"]
        client.post("/ui/sign-out", follow_redirects=False)
        response = console.post(
            f"/ui/accounts/{hooli['id']}/grant/confirm", {"amount": "5", "grant_id": "x"}, csrf=token
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/sign-in?next=%2Fui%2Faccounts%2F")
        assert response.headers["location"].endswith("%2Fgrant")
        assert balance(tenant, hooli["id"]) == 0


# --- payments ------------------------------------------------------------------------------------------


class TestRecordPayment:
    def test_review_shows_what_it_settles_then_confirm_records_once(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        hooli, invoice = world["hooli"], world["invoice"]
        console = Console(client, tenant.key)
        page = console.get(f"/ui/invoices/{invoice['id']}").text
        assert f'href="/ui/accounts/{hooli["id"]}/payment?invoice={invoice["id"]}"' in page
        form = console.get(f"/ui/accounts/{hooli['id']}/payment", invoice=invoice["id"])
        assert f'<option value="{invoice["id"]}" selected>' in form.text
        before = state(tenant, hooli["id"])
        fields = {"amount": "150", "invoice_id": invoice["id"], "reference": "wire 42"}
        review = console.post(f"/ui/accounts/{hooli['id']}/payment", fields)
        assert review.status_code == 200
        text = html.unescape(review.text)
        assert "Record a payment of 150.00 USD from Hooli?" in text
        assert f"#{invoice['number']}" in text
        assert "120.50 USD, paid in full" in text
        assert "Left unapplied" in text
        assert "29.50 USD" in text
        assert state(tenant, hooli["id"]) == before
        action, sent = confirmation(review.text)
        shown = followed(console, console.post(action, sent, csrf=None))
        assert flash(shown) == "Recorded a payment of 150.00 USD from Hooli."
        again = followed(console, console.post(action, sent, csrf=None))
        assert "had been recorded already" in flash(again)
        payments = api(tenant, "/v1/payments", account_id=hooli["id"])["payments"]
        assert [(p["amount"], p["reference"], p["unapplied"]) for p in payments] == [(150, "wire 42", Decimal("29.5"))]
        assert api(tenant, f"/v1/invoices/{invoice['id']}")["status"] == "paid"

    @pytest.mark.parametrize(
        ("fields", "words"),
        [
            ({"amount": "abc"}, "Amount: enter an amount such as 120.50"),
            ({"amount": "1.234"}, "Amount: has more decimal places than USD has (2)"),
            ({"amount": "-5"}, "Amount: Input should be greater than"),
            ({"amount": "5", "currency": "XYZ"}, "Currency:"),
            ({"amount": "5", "invoice_id": "nope"}, "Invoice:"),
        ],
    )
    def test_bad_input_is_shown_on_the_form(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any], fields: dict[str, str], words: str
    ) -> None:
        hooli = world["hooli"]
        console = Console(client, tenant.key)
        before = state(tenant, hooli["id"])
        for path in (f"/ui/accounts/{hooli['id']}/payment", f"/ui/accounts/{hooli['id']}/payment/confirm"):
            response = console.post(path, fields | {"payment_id": "console-x"})
            assert response.status_code == 400, (path, response.text)
            assert words in problems(response.text)
            assert 'id="payment-form"' in response.text
        assert state(tenant, hooli["id"]) == before


# --- voids ---------------------------------------------------------------------------------------------


class TestVoidInvoice:
    def test_review_then_confirm_voids_once(self, client: TestClient, tenant: Tenant, world: dict[str, Any]) -> None:
        hooli, invoice = world["hooli"], world["invoice"]
        console = Console(client, tenant.key)
        assert f'href="/ui/invoices/{invoice["id"]}/void"' in console.get(f"/ui/invoices/{invoice['id']}").text
        before = state(tenant, hooli["id"])
        review = console.get(f"/ui/invoices/{invoice['id']}/void")
        assert review.status_code == 200
        assert f"Void invoice #{invoice['number']} of Hooli (120.50 USD," in review.text
        assert state(tenant, hooli["id"]) == before
        action, fields = confirmation(review.text)
        shown = followed(console, console.post(action, fields, csrf=None))
        assert flash(shown).startswith(f"Voided invoice #{invoice['number']} of Hooli (120.50 USD, ")
        assert "status-void" in shown.text
        again = followed(console, console.post(action, fields, csrf=None))
        assert flash(again) == f"Invoice #{invoice['number']} was void already."
        assert api(tenant, f"/v1/invoices/{invoice['id']}")["status"] == "void"
        refunds = [
            item
            for item in api(tenant, "/client/v4/user/billing/history", per_page=50)["result"]
            if item["type"] == "refund"
        ]
        assert len(refunds) == 1
        # A void invoice offers no void.
        assert "/void" not in console.get(f"/ui/invoices/{invoice['id']}").text
        review = console.get(f"/ui/invoices/{invoice['id']}/void")
        assert "is void already" in problems(review.text)
        assert 'class="confirm"' not in review.text

    def test_a_paid_invoice_cannot_be_voided_and_says_so(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        hooli, invoice = world["hooli"], world["invoice"]
        world["billing"].paid(hooli, "120.50")
        console = Console(client, tenant.key)
        review = console.get(f"/ui/invoices/{invoice['id']}/void")
        assert review.status_code == 409
        assert "a paid invoice cannot be voided" in problems(review.text)
        assert 'class="confirm"' not in review.text
        response = console.post(f"/ui/invoices/{invoice['id']}/void/confirm", {})
        assert response.status_code == 409
        assert "a paid invoice cannot be voided" in problems(response.text)
        assert api(tenant, f"/v1/invoices/{invoice['id']}")["status"] == "paid"


# --- billing runs --------------------------------------------------------------------------------------


class TestRunBilling:
    def test_review_lists_the_invoices_then_confirm_makes_them_once(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        month = months_ago(2)
        world["billing"].use(world["quiet"], "CALLS", "10", at(month))
        console = Console(client, tenant.key)
        page = console.get("/ui/billing-runs").text
        assert 'action="/ui/billing-runs"' in page
        assert f'value="{months_ago(1)}"' in page, "the form offers the last ended month"
        before = state(tenant, world["hooli"]["id"])
        review = console.post("/ui/billing-runs", {"month": month})
        assert review.status_code == 200
        assert f'data-account="{world["quiet"]["id"]}" data-amount="5"' in review.text
        assert state(tenant, world["hooli"]["id"]) == before
        action, fields = confirmation(review.text)
        shown = followed(console, console.post(action, fields, csrf=None))
        assert re.fullmatch(r"Invoiced \w+ \d{4}: 1 invoice\.", flash(shown))
        again = followed(console, console.post(action, fields, csrf=None))
        assert "had been invoiced already: nothing new was made" in flash(again)
        made = api(tenant, "/v1/invoices", month=month)["invoices"]
        assert [(i["account_id"], i["amount"]) for i in made] == [(world["quiet"]["id"], 5)]
        # Once invoiced, the review says so and offers no Confirm.
        review = console.post("/ui/billing-runs", {"month": month})
        assert "running it again makes nothing new" in problems(review.text)
        assert 'class="confirm"' not in review.text

    @pytest.mark.parametrize(
        ("month", "words"),
        [
            (months_ago(0), "has not ended; it can be billed from"),
            ("2026-13", "Month: expected YYYY-MM, e.g. 2026-10"),
            ("abc", "Month: expected YYYY-MM"),
            ("", "Month: expected YYYY-MM"),
            ("0000-01", "year 0000 is not a year"),
        ],
    )
    def test_a_month_that_cannot_be_billed_is_shown_on_the_form(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any], month: str, words: str
    ) -> None:
        console = Console(client, tenant.key)
        before = state(tenant, world["hooli"]["id"])
        for path in ("/ui/billing-runs", "/ui/billing-runs/confirm"):
            response = console.post(path, {"month": month})
            assert response.status_code == 400, path
            assert words in problems(response.text)
            assert 'action="/ui/billing-runs"' in response.text
        assert state(tenant, world["hooli"]["id"]) == before


# --- keys ----------------------------------------------------------------------------------------------


class TestKeys:
    def test_the_keys_page_shows_keys_masked(self, client: TestClient, tenant: Tenant, world: dict[str, Any]) -> None:
        made = tenant.create_key(name="exporter", account_id=world["hooli"]["id"], scopes=["billing:read"])
        console = Console(client, tenant.key)
        page = console.get("/ui/keys").text
        for key in api(tenant, "/v1/api_keys"):
            assert f'data-key="{key["id"]}"' in page
            assert key["key"] in page, "the masked key"
        assert made["key"] not in page
        assert tenant.key not in page
        assert made["key"].rsplit("_", 1)[1] not in page
        assert "exporter" in page
        assert "Hooli" in page

    def test_create_a_key_shows_it_once(self, client: TestClient, tenant: Tenant, world: dict[str, Any]) -> None:
        hooli = world["hooli"]
        console = Console(client, tenant.key)
        before = api(tenant, "/v1/api_keys")
        fields = {"name": "reporting", "account_id": hooli["id"], "scopes": ["billing:read", "usage:read"]}
        review = console.post("/ui/keys/new", fields | {"expires_on": "2099-01-31"})
        assert review.status_code == 200
        assert "2099-01-31 00:00 UTC" in review.text
        assert "Hooli" in review.text
        assert "billing:read, usage:read" in review.text
        assert "mbk_" not in review.text, "the review makes no key"
        assert api(tenant, "/v1/api_keys") == before
        action, sent = confirmation(review.text)
        created = console.post(action, sent, csrf=None)
        assert created.status_code == 200
        assert "it is shown only once" in created.text
        token = re.search(r'<code id="token" class="token">([^<]+)</code>', created.text)
        assert token is not None
        key = token.group(1)
        after = api(tenant, "/v1/api_keys")
        assert len(after) == len(before) + 1
        new = next(item for item in after if item["id"] not in {old["id"] for old in before})
        assert (new["name"], new["account_id"], sorted(new["scopes"])) == (
            "reporting",
            hooli["id"],
            ["billing:read", "usage:read"],
        )
        assert new["expires_at"].startswith("2099-01-31T00:00:00")
        # It works, as an account key of Hooli, and is never shown whole again.
        assert client.get(f"/v1/accounts/{hooli['id']}/billing", headers=bearer(key)).status_code == 200
        assert key not in console.get("/ui/keys").text

    def test_without_scopes_the_key_gets_the_makers(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        console = Console(client, tenant.key)
        review = console.post("/ui/keys/new", {"name": "ops"})
        assert "those of the key you signed in with" in review.text
        action, sent = confirmation(review.text)
        assert console.post(action, sent, csrf=None).status_code == 200
        new = next(key for key in api(tenant, "/v1/api_keys") if key["name"] == "ops")
        assert new["scopes"] == ["*"]
        assert new["account_id"] is None

    @pytest.mark.parametrize(
        ("fields", "status", "words"),
        [
            ({"expires_on": "2001-01-01"}, 400, "Expires: must be in the future"),
            ({"expires_on": "31/12/2030"}, 400, "Expires: '31/12/2030' is not a date; expected YYYY-MM-DD"),
            ({"scopes": ["billing:cheat"]}, 400, "Scopes: 'billing:cheat' is not a scope"),
            ({"account_id": "nope"}, 400, "For:"),
        ],
    )
    def test_bad_input_is_shown_on_the_form(
        self, client: TestClient, tenant: Tenant, fields: dict[str, Any], status: int, words: str
    ) -> None:
        console = Console(client, tenant.key)
        before = api(tenant, "/v1/api_keys")
        for path in ("/ui/keys/new", "/ui/keys/new/confirm"):
            response = console.post(path, fields)
            assert response.status_code == status, (path, response.text)
            assert words in problems(response.text)
            assert 'id="key-form"' in response.text
        assert api(tenant, "/v1/api_keys") == before

    def test_a_key_cannot_grant_more_than_it_holds(self, client: TestClient, tenant: Tenant) -> None:
        operator = tenant.create_key(
            name="operator", scopes=["accounts:read", "billing:read", "usage:read", "keys:write"]
        )
        console = Console(client, operator["key"])
        response = console.post("/ui/keys/new", {"scopes": ["billing:write"]})
        assert response.status_code == 403
        assert "cannot grant scopes it does not hold itself: billing:write" in problems(response.text)

    def test_revoke_a_key_and_the_keys_it_made(self, client: TestClient, tenant: Tenant) -> None:
        maker = tenant.create_key(name="maker")
        made = client.post("/v1/api_keys", json={"name": "child"}, headers=bearer(maker["key"])).json()
        console = Console(client, tenant.key)
        review = console.get(f"/ui/keys/{maker['id']}/revoke")
        assert review.status_code == 200
        assert "Keys it made are revoked with it" in review.text
        assert masked(tenant, made["id"]) in review.text
        assert all(key["revoked_at"] is None for key in api(tenant, "/v1/api_keys"))
        action, fields = confirmation(review.text)
        shown = followed(console, console.post(action, fields, csrf=None))
        assert flash(shown) == f"Revoked key {masked(tenant, maker['id'])} (maker) and 1 key it made."
        revoked = {key["id"] for key in api(tenant, "/v1/api_keys") if key["revoked_at"] is not None}
        assert revoked == {maker["id"], made["id"]}
        assert 'data-state="revoked"' in shown.text
        assert client.get("/v1/accounts", headers=bearer(maker["key"])).status_code == 401
        again = followed(console, console.post(action, fields, csrf=None))
        assert flash(again).startswith(f"Revoked key {masked(tenant, maker['id'])}")

    def test_revoking_ones_own_key_warns_and_signs_out(self, client: TestClient, tenant: Tenant) -> None:
        own = tenant.create_key(name="mine")
        console = Console(client, own["key"])
        review = console.get(f"/ui/keys/{own['id']}/revoke")
        assert "This revokes the key you signed in with: you will be signed out." in review.text
        action, fields = confirmation(review.text)
        response = console.post(action, fields, csrf=None)
        assert response.status_code == 303
        assert console.get(response.headers["location"]).headers["location"].startswith("/ui/sign-in")


# --- what the lists show -------------------------------------------------------------------------------


class TestDisplay:
    def test_overdue_badges(self, client: TestClient, tenant: Tenant) -> None:
        billing = Billing(tenant)
        billing.product("CALLS", "1")
        late = billing.account(name="Late Co", net_terms_days=0)
        early = billing.account(name="Early Co", net_terms_days=365)
        billing.use(late, "CALLS", "3", at(months_ago(2)))
        billing.use(early, "CALLS", "4", at(months_ago(2)))
        billing.billed(months_ago(2))
        overdue = billing.invoices(account_id=late["id"])[0]
        on_time = billing.invoices(account_id=early["id"])[0]
        console = Console(client, tenant.key)
        listed = console.get("/ui/invoices").text
        assert f'data-invoice="{overdue["id"]}" data-overdue="true"' in listed
        assert f'data-invoice="{on_time["id"]}" data-overdue="false"' in listed
        assert 'id="overdue"' in console.get(f"/ui/invoices/{overdue['id']}").text
        assert 'id="overdue"' not in console.get(f"/ui/invoices/{on_time['id']}").text
        assert 'data-overdue="true"' in console.get(f"/ui/accounts/{late['id']}").text
        assert 'data-overdue="true"' not in console.get(f"/ui/accounts/{early['id']}").text
        # Paid, it is no longer overdue.
        billing.paid(late, "3")
        assert 'data-overdue="true"' not in console.get("/ui/invoices").text

    def test_the_accounts_list_shows_balances_and_amounts_due(
        self, client: TestClient, tenant: Tenant, world: dict[str, Any]
    ) -> None:
        billing: Billing = world["billing"]
        billing.product("EU-CALLS", "2", currency="EUR")
        hooli, quiet = world["hooli"], world["quiet"]
        billing.use(hooli, "EU-CALLS", "3", at(months_ago(2)))
        billing.use(hooli, "CALLS", "1", at(months_ago(2)))
        billing.billed(months_ago(2))
        billing.paid(hooli, "0.25", currency="USD")
        grant = {"id": "g1", "amount": 700}
        assert client.post(f"/v1/accounts/{quiet['id']}/credits", json=grant, headers=tenant.headers).status_code == 201
        console = Console(client, tenant.key)
        page = console.get("/ui/accounts").text
        for account in (hooli, quiet):
            row = re.search(rf'data-account="{account["id"]}" data-balance="(-?\d+)" data-due="([^"]*)"', page)
            assert row is not None
            assert int(row.group(1)) == balance(tenant, account["id"])
            owed: dict[str, Decimal] = {}
            for invoice in api(tenant, "/v1/invoices", account_id=account["id"], status="open")["invoices"]:
                owed[invoice["currency"]] = owed.get(invoice["currency"], Decimal(0)) + invoice["amount_due"]
            shown = {
                currency: Decimal(amount)
                for amount, currency in (part.split(" ") for part in row.group(2).split(";") if part)
            }
            assert shown == owed, account["name"]
        assert "6.00 EUR" in page
        assert "120.75 USD" in page
        assert "700" in page

    def test_the_accounts_list_costs_the_same_queries_for_any_number_of_accounts(
        self, client: TestClient, tenant: Tenant, database: Database, world: dict[str, Any]
    ) -> None:
        console = Console(client, tenant.key)

        def statements() -> int:
            count = 0

            def counted(*_args: Any) -> None:
                nonlocal count
                count += 1

            event.listen(database.engine, "before_cursor_execute", counted)
            try:
                assert console.get("/ui/accounts").status_code == 200
            finally:
                event.remove(database.engine, "before_cursor_execute", counted)
            return count

        few = statements()
        for number in range(5):
            account = tenant.create_account(name=f"More {number}")
            client.post(f"/v1/accounts/{account['id']}/credits", json={"id": "g", "amount": 1}, headers=tenant.headers)
        assert statements() == few


class TestHostileForms:
    """What no browser sends, sent with a live session and its token: a 4xx, and nothing written."""

    def test_hostile_values_are_refused_and_write_nothing(
        self, client: TestClient, tenant: Tenant, database: Database, world: dict[str, Any]
    ) -> None:
        from tests.reliability.test_access_matrix import snapshot

        spare = tenant.create_key(name="spare")
        console = Console(client, tenant.key)
        token = console.token()
        before = snapshot(database)
        numbers = {
            "NaN": "NaN",
            "Infinity": "Infinity",
            "1e309": "1e309",
            "2**63": str(2**63),
            "-2**63 - 1": str(-(2**63) - 1),
            "a 5,000-digit number": "9" * 5000,
        }
        long_text = {"60,000 characters": "x" * 60_000}
        # The fields each form reads, and what each must refuse (any text is an id, so ids only get length).
        poison = {
            "amount": numbers | long_text,
            "month": numbers | long_text,
            "description": long_text,
            "reference": long_text,
            "name": long_text,
            "grant_id": long_text,
            "payment_id": long_text,
        }
        read = {
            "grant review": {"amount", "description"},
            "grant": {"amount", "description", "grant_id"},
            "payment review": {"amount", "reference"},
            "payment": {"amount", "reference", "payment_id"},
            "billing review": {"month"},
            "billing": {"month"},
            "key review": {"name"},
            "key": {"name"},
        }
        failures = []
        for name, (path, fields) in _actions(world, spare["id"]).items():
            for field in sorted(read.get(name, set())):
                for label, value in poison[field].items():
                    response = console.post(path, fields | {field: value}, csrf=token)
                    if response.status_code != 400:
                        failures.append(f"{name}, {field} = {label}: {response.status_code}")
            for label, raw in {"NUL": b"%00", "invalid UTF-8": b"%FF%FE", "raw invalid UTF-8": b"\xff\xfe"}.items():
                content = f"csrf={token}&amount=5&month=2001-01&name=x&description=".encode() + raw
                response = client.post(
                    path,
                    content=content,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    follow_redirects=False,
                )
                if response.status_code != 400:
                    failures.append(f"{name}, {label}: {response.status_code}")
        assert not failures, "\n".join(failures)
        assert snapshot(database) == before
