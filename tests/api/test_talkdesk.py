"""The Talkdesk dialect: ``GET /express/usage/month`` (CONTRACT §3.3, seed ``talkdesk-monthly-usage.txt``).

A tenant with accounts A, its subaccount A1, and B, two products and metered usage over three
months; another tenant with usage of its own. Every answer is checked against the aggregates the
native API shows (``GET /v1/monthly_usage``) and, for filters, against the same filter
evaluated here in Python. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from meterbook.api import talkdesk
from meterbook.app import create_app
from meterbook.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    MissingApiKey,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from meterbook.kit import jsontext
from tests.conftest import bearer

PATH = "/express/usage/month"
SCOPE = "express-accounts-usage:read"
NOT_AUTHORIZED = "This caller is not authorized to query the given accounts."
# The seed's usage item, and the id the contract adds.
USAGE_FIELDS = {
    "id",
    "account_id",
    "product_id",
    "aggr_product_id",
    "month",
    "type",
    "description",
    "currency",
    "direction",
    "resolution",
    "unit",
    "price",
    "wallet_name",
    "number_of_units",
    "total_amount",
}
PAGE_FIELDS = {"count", "page", "per_page", "total", "total_pages", "_embedded", "_links"}
TYPES = {
    "AMD",
    "API_REQUEST",
    "CALL",
    "CALL_SERVICE",
    "CREDIT_COMMIT",
    "DIALER",
    "MESSAGE",
    "NUMBER",
    "PRODUCT_SERVICE",
    "RECHARGE",
    "SPEECH_TRANSCRIPTION",
    "VOICEMAIL_TRANSCRIPTION",
    "OTHER",
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MONTHS = ["2024-01", "2024-02", "2024-03"]

# --- helpers ---------------------------------------------------------------------------------------


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Talkdesk's error shape, exactly: code, message, description and fields (each with name and description)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "description", "fields"}, body
    assert body["code"] == code
    for text in (body["message"], body["description"]):
        assert isinstance(text, str)
        assert text.strip()
    assert isinstance(body["fields"], list)
    for item in body["fields"]:
        assert set(item) == {"name", "description"}, item
        assert item["name"].strip()
        assert item["description"].strip()
    return body


def assert_invalid(response: Any, name: str, *words: str) -> dict[str, Any]:
    """400 INVALID_PARAMETERS naming the parameter ``name`` (and saying ``words``) in fields and message."""
    body = assert_error(response, 400, "INVALID_PARAMETERS")
    described = {item["name"]: item["description"] for item in body["fields"]}
    assert name in described, body
    assert body["message"].startswith(f"{name}: "), body
    for word in words:
        assert word in described[name], body
        assert word in body["message"], body
    return body


def metered(account_id: str, product_id: str, quantity: str, month: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"ev-{uuid.uuid4().hex}",
        "account_id": account_id,
        "type": "metered",
        "product_id": product_id,
        "quantity": quantity,
        "occurred_at": f"{month}-15T12:00:00Z",
        **extra,
    }


@dataclass
class World:
    """Tenant accounts A (with subaccount A1) and B, products CALL and SMS, usage in 2024-01 to 2024-03."""

    client: TestClient
    tenant: Any
    other: Any
    accounts: dict[str, dict[str, Any]]
    foreign_account: dict[str, Any]
    #: Every aggregate of the tenant as the native API shows it, by id.
    aggregates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def aid(self, name: str) -> str:
        return str(self.accounts[name]["id"])

    def name_of(self, account_id: str) -> str:
        (name,) = [name for name, account in self.accounts.items() if account["id"] == account_id]
        return name

    def get(self, key: str | None = None, **params: Any) -> Any:
        headers = bearer(key or self.tenant.key)
        return self.client.get(PATH, params=params, headers=headers)

    def ok(self, key: str | None = None, **params: Any) -> dict[str, Any]:
        response = self.get(key, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = jsontext.loads(response.text)
        return body

    def items(self, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every item over every page (following the next links)."""
        body = self.ok(key, per_page=250, **params)
        found: list[dict[str, Any]] = body["_embedded"]["usage"]
        while "next" in body["_links"]:
            response = self.client.get(body["_links"]["next"]["href"], headers=bearer(key or self.tenant.key))
            assert response.status_code == 200, response.text
            body = jsontext.loads(response.text)
            found.extend(body["_embedded"]["usage"])
        return found

    def ids(self, key: str | None = None, **params: Any) -> list[str]:
        return [item["id"] for item in self.items(key, **params)]

    def native_usage(self, account_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/v1/monthly_usage?account_id={account_id}", headers=self.tenant.headers)
        assert response.status_code == 200, response.text
        usage: list[dict[str, Any]] = jsontext.loads(response.text)["usage"]
        return usage

    def refresh(self) -> None:
        self.aggregates = {item["id"]: item for name in self.accounts for item in self.native_usage(self.aid(name))}

    def post_events(self, events: list[dict[str, Any]], key: str | None = None) -> None:
        response = self.client.post("/v1/events", json=events, headers=bearer(key or self.tenant.key))
        assert response.status_code == 200, response.text

    def ids_where(self, predicate: Any) -> set[str]:
        return {
            aggregate_id
            for aggregate_id, item in self.aggregates.items()
            if predicate(self.name_of(item["account_id"]), item["month"])
        }


def put_product(client: TestClient, key: str, product_id: str, **body: Any) -> None:
    response = client.put(f"/v1/products/{product_id}", json=body, headers=bearer(key))
    assert response.status_code == 201, response.text


@pytest.fixture
def world(client, tenant, other_tenant) -> World:
    a = tenant.create_account(name="A")
    a1 = tenant.create_account(key=a["api_key"], name="A1")
    b = tenant.create_account(name="B")
    call = {"description": "Outbound calls", "type": "CALL", "unit": "minute", "unit_price": "0.067", "currency": "USD"}
    sms = {
        "description": "Text messages",
        "type": "MESSAGE",
        "unit": "message",
        "unit_price": "0.0075",
        "currency": "USD",
        "aggr_product_id": "TD-USG-MSG",
        "wallet_name": "messaging",
    }
    put_product(client, tenant.key, "TD-USG-TEL-UG-102213", **call)
    put_product(client, tenant.key, "TD-USG-SMS-1", **sms)
    world = World(
        client=client, tenant=tenant, other=other_tenant, accounts={"A": a, "A1": a1, "B": b}, foreign_account={}
    )
    call_id, sms_id = "TD-USG-TEL-UG-102213", "TD-USG-SMS-1"
    world.post_events(
        [
            metered(a["id"], call_id, "30", "2024-01"),
            metered(a["id"], call_id, "25", "2024-01"),
            metered(a["id"], sms_id, "100", "2024-01"),
            metered(a["id"], call_id, "10", "2024-02"),
            metered(a1["id"], call_id, "7.5", "2024-02"),
            metered(a1["id"], call_id, "1", "2024-03"),
            metered(b["id"], call_id, "2", "2024-01", direction="INBOUND", resolution="answered"),
            metered(b["id"], sms_id, "3", "2024-03"),
        ]
    )
    # The other tenant has usage too, which the tenant must never see.
    world.foreign_account = other_tenant.create_account(name="Foreign")
    put_product(client, other_tenant.key, call_id, **call)
    world.post_events([metered(world.foreign_account["id"], call_id, "99", "2024-01")], key=other_tenant.key)
    world.refresh()
    assert len(world.aggregates) == 7
    return world


# --- the reply -------------------------------------------------------------------------------------


class TestShape:
    def test_the_seeds_fields_and_the_hal_shape(self, world):
        body = world.ok()
        assert set(body) == PAGE_FIELDS
        assert set(body["_embedded"]) == {"usage"}
        assert set(body["_links"]) == {"self", "show", "first", "last"}
        assert (body["count"], body["page"], body["per_page"], body["total"], body["total_pages"]) == (7, 1, 50, 7, 1)
        for item in body["_embedded"]["usage"]:
            assert set(item) == USAGE_FIELDS, item
            assert HEX32.match(item["id"])
            assert str(uuid.UUID(item["account_id"])) == item["account_id"]
            assert MONTH.match(item["month"])
            assert item["type"] in TYPES
            assert item["direction"] in {"INBOUND", "OUTBOUND", "OTHER", None}
            assert item["currency"] == "USD"
            for number in ("price", "number_of_units", "total_amount"):
                assert isinstance(item[number], (int, Decimal)), item
            assert item["total_amount"] == item["number_of_units"] * item["price"]

    def test_every_item_is_the_aggregate_the_native_api_shows(self, world):
        shown = {item["id"]: item for item in world.items()}
        assert set(shown) == set(world.aggregates)
        for aggregate_id, item in shown.items():
            native = world.aggregates[aggregate_id]
            assert {name: item[name] for name in USAGE_FIELDS} == {name: native[name] for name in USAGE_FIELDS}

    def test_what_each_aggregate_holds(self, world):
        by_key = {(world.name_of(i["account_id"]), i["product_id"], i["month"]): i for i in world.items()}
        a_calls = by_key[("A", "TD-USG-TEL-UG-102213", "2024-01")]
        assert (a_calls["number_of_units"], a_calls["total_amount"]) == (55, Decimal("3.685"))
        assert a_calls["type"] == "CALL"
        assert a_calls["unit"] == "minute"
        assert a_calls["description"] == "Outbound calls"
        assert (a_calls["aggr_product_id"], a_calls["wallet_name"], a_calls["direction"]) == (None, None, None)
        assert a_calls["resolution"] is None
        sms = by_key[("A", "TD-USG-SMS-1", "2024-01")]
        assert (sms["type"], sms["aggr_product_id"], sms["wallet_name"]) == ("MESSAGE", "TD-USG-MSG", "messaging")
        assert (sms["price"], sms["total_amount"]) == (Decimal("0.0075"), Decimal("0.75"))
        inbound = by_key[("B", "TD-USG-TEL-UG-102213", "2024-01")]
        assert (inbound["direction"], inbound["resolution"]) == ("INBOUND", "answered")
        assert inbound["total_amount"] == Decimal("0.134")

    @pytest.mark.parametrize(
        "fragment",
        [
            '"number_of_units":55,"total_amount":3.685}',
            '"price":0.067,',
            '"number_of_units":7.5,"total_amount":0.5025}',
            '"price":0.0075,',
            '"number_of_units":3,"total_amount":0.0225}',
        ],
    )
    def test_numbers_are_exact_in_the_json_text(self, world, fragment):
        response = world.get()
        assert fragment in response.text, response.text

    def test_ids_are_stable_and_the_native_apis_ids(self, world):
        first = world.ids()
        assert world.ids() == first
        assert set(first) == set(world.aggregates)
        # More usage in an existing aggregate keeps its id; its units grow.
        world.post_events([metered(world.aid("A"), "TD-USG-TEL-UG-102213", "5", "2024-01")])
        again = {item["id"]: item for item in world.items()}
        assert set(again) == set(first)
        grown = [item for item in again.values() if item["number_of_units"] == 60]
        assert len(grown) == 1
        assert grown[0]["total_amount"] == Decimal("4.02")

    def test_an_organization_without_usage_gets_one_empty_page(self, world, make_tenant):
        empty = make_tenant("Empty Co")
        body = world.ok(empty.key)
        assert (body["count"], body["total"], body["total_pages"], body["page"]) == (0, 0, 1, 1)
        assert body["_embedded"] == {"usage": []}
        assert set(body["_links"]) == {"self", "show", "first", "last"}


# --- filter ----------------------------------------------------------------------------------------

# Each filter (with {A}, {A1}, {B} standing for the accounts' ids) and what it selects: (account name, month) -> bool.
FILTERS = [
    ("month eq '2024-01'", lambda a, m: m == "2024-01"),
    ("month ne '2024-01'", lambda a, m: m != "2024-01"),
    ("month gt '2024-01'", lambda a, m: m > "2024-01"),
    ("month ge '2024-02'", lambda a, m: m >= "2024-02"),
    ("month lt '2024-03'", lambda a, m: m < "2024-03"),
    ("month le '2024-01'", lambda a, m: m <= "2024-01"),
    ("month eq '2023-12'", lambda a, m: False),
    ("account_id eq '{A}'", lambda a, m: a == "A"),
    ("account_id ne '{A}'", lambda a, m: a != "A"),
    ("month eq '2024-01' or month eq '2024-02' and account_id eq '{B}'", lambda a, m: m == "2024-01"),
    ("(month eq '2024-01' or month eq '2024-02') and account_id eq '{B}'", lambda a, m: a == "B" and m == "2024-01"),
    (
        "month eq '2024-02' and account_id eq '{A}' or account_id eq '{B}'",
        lambda a, m: (m == "2024-02" and a == "A") or a == "B",
    ),
    ("not month eq '2024-01' and account_id eq '{A}'", lambda a, m: m != "2024-01" and a == "A"),
    ("not (month eq '2024-01' and account_id eq '{A}')", lambda a, m: not (m == "2024-01" and a == "A")),
    ("not not account_id eq '{A1}'", lambda a, m: a == "A1"),
    (
        "(month ge '2024-01' and month le '2024-02') and (account_id eq '{A}' or account_id eq '{A1}')",
        lambda a, m: m <= "2024-02" and a in {"A", "A1"},
    ),
    ("MONTH Eq '2024-03' OR Account_Id EQ '{B}'", lambda a, m: m == "2024-03" or a == "B"),
    ("NOT (month EQ '2024-01') AnD NoT account_id eq '{A1}'", lambda a, m: m != "2024-01" and a != "A1"),
    ("  (\tmonth eq'2024-02'\n)  ", lambda a, m: m == "2024-02"),
    ("account_id eq '{A_UPPER}'", lambda a, m: a == "A"),
    ("", lambda a, m: True),
    ("   ", lambda a, m: True),
]


def filled(world: World, text: str) -> str:
    return text.format(A=world.aid("A"), A1=world.aid("A1"), B=world.aid("B"), A_UPPER=world.aid("A").upper())


class TestFilter:
    @pytest.mark.parametrize(("text", "predicate"), FILTERS)
    def test_the_filter_selects(self, world, text, predicate):
        expected = world.ids_where(predicate)
        found = world.ids(filter=filled(world, text))
        assert len(found) == len(set(found))
        assert set(found) == expected
        assert world.ok(filter=filled(world, text))["total"] == len(expected)

    def test_random_filters_select_what_python_selects(self, world):
        """A few dozen random trees over the months and accounts, each checked against Python's reading."""
        rng = random.Random(20240131)
        months = ["2023-12", *MONTHS, "2024-04"]
        ops = {
            "eq": lambda x, y: x == y,
            "ne": lambda x, y: x != y,
            "gt": lambda x, y: x > y,
            "ge": lambda x, y: x >= y,
            "lt": lambda x, y: x < y,
            "le": lambda x, y: x <= y,
        }

        def tree(depth: int) -> tuple[str, Any]:
            choice = rng.random() if depth > 0 else 1.0
            if choice < 0.3:
                (lt, lp), (rt, rp) = tree(depth - 1), tree(depth - 1)
                return f"({lt}) and ({rt})", lambda a, m: lp(a, m) and rp(a, m)
            if choice < 0.6:
                (lt, lp), (rt, rp) = tree(depth - 1), tree(depth - 1)
                return f"({lt}) or ({rt})", lambda a, m: lp(a, m) or rp(a, m)
            if choice < 0.7:
                it, ip = tree(depth - 1)
                return f"not ({it})", lambda a, m: not ip(a, m)
            op = rng.choice(list(ops))
            if rng.random() < 0.5:
                value = rng.choice(months)
                return f"month {op} '{value}'", lambda a, m: ops[op](m, value)
            name = rng.choice(["A", "A1", "B"])
            value = world.aid(name)
            return f"account_id {op} '{value}'", lambda a, m: ops[op](uuid.UUID(world.aid(a)), uuid.UUID(value))

        for _ in range(30):
            text, predicate = tree(3)
            assert set(world.ids(filter=text)) == world.ids_where(predicate), text

    def test_the_filter_applies_before_paging(self, world):
        body = world.ok(filter="month eq '2024-01'", per_page=1, page=2)
        assert (body["count"], body["total"], body["total_pages"]) == (1, 3, 3)
        assert body["_embedded"]["usage"][0]["month"] == "2024-01"

    @pytest.mark.parametrize(
        ("text", "words"),
        [
            ("month xyz '2024-01'", "unexpected 'xyz' at position 7; expected a comparison operator"),
            ("month eq 2024-01", "unexpected '2024-01' at position 10; expected a value in single quotes"),
            ("month eq '2024-13'", "'2024-13' at position 10 is not a month written YYYY-MM"),
            ("month eq '24-01'", "'24-01' at position 10 is not a month"),
            ("account_id eq 'abc'", "'abc' at position 15 is not an account id"),
            ("account_id eq 42", "unexpected '42' at position 15; expected a value in single quotes"),
            ("month eq '2024-01' and", "unexpected end of filter at position 23; expected a field"),
            ("(month eq '2024-01'", "unexpected end of filter at position 20; expected 'and', 'or' or ')'"),
            ("month eq '2024-01')", "unexpected ')' at position 19"),
            ("price eq '1'", "unexpected 'price' at position 1; expected a field (account_id or month)"),
            ("month >= '2024-01'", "unexpected '>' at position 7; expected a comparison operator"),
            ("month eq 'it''s'", "'it''s' at position 10 is not a month"),
            ("month eq 'x", "unterminated value 'x at position 10"),
            ("()", "unexpected ')' at position 2; expected a field"),
            ("month eq '2024-01' month eq '2024-02'", "unexpected 'month' at position 20"),
            ("(" * 40 + "month eq '2024-01'" + ")" * 40, "nests too deeply"),
        ],
    )
    def test_an_invalid_filter_is_a_400_naming_the_problem(self, world, text, words):
        assert_invalid(world.get(filter=text), "filter", words)

    def test_a_filter_over_1600_characters_is_refused(self, world):
        clause = "month ge '2024-01' or "
        text = clause * (1600 // len(clause)) + "month eq '2024-02'"
        assert len(text) > 1600
        assert_invalid(world.get(filter=text), "filter", "1600")

    def test_a_filter_of_1600_characters_is_accepted(self, world):
        clause = "month ge '2024-02' or "
        text = clause * ((1600 - 18) // len(clause)) + "month eq '2024-02'"
        text = " " * (1600 - len(text)) + text
        assert len(text) == 1600
        assert set(world.ids(filter=text)) == world.ids_where(lambda a, m: m >= "2024-02")

    @pytest.mark.parametrize(
        "template",
        [
            "account_id eq '{X}'",
            "account_id eq '{A}' or account_id eq '{X}'",
            "not account_id ne '{X}'",
            "month eq '2024-01' and account_id gt '{X}'",
        ],
    )
    def test_an_account_outside_the_organization_is_a_403(self, world, template):
        unknown = str(uuid.uuid4())
        foreign = world.foreign_account["id"]
        bodies = []
        for outsider in (foreign, unknown):
            response = world.get(filter=template.format(A=world.aid("A"), X=outsider))
            body = assert_error(response, 403, "FORBIDDEN")
            assert body["message"] == NOT_AUTHORIZED
            assert body["fields"] == []
            bodies.append(body)
        # Whether the account exists in another organization or nowhere, the answer is the same.
        assert bodies[0] == bodies[1]
        assert foreign not in str(bodies)

    def test_an_account_key_naming_an_account_outside_its_subtree_is_a_403(self, world):
        a_key = world.accounts["A"]["api_key"]
        for outside in ("B",):
            body = assert_error(world.get(a_key, filter=f"account_id eq '{world.aid(outside)}'"), 403, "FORBIDDEN")
            assert body["message"] == NOT_AUTHORIZED
        a1_key = world.accounts["A1"]["api_key"]
        for outside in ("A", "B"):
            body = assert_error(world.get(a1_key, filter=f"account_id eq '{world.aid(outside)}'"), 403, "FORBIDDEN")
            assert body["message"] == NOT_AUTHORIZED
        assert set(world.ids(a_key, filter=f"account_id eq '{world.aid('A1')}'")) == world.ids_where(
            lambda a, m: a == "A1"
        )

    def test_the_other_organization_may_name_its_own_account_but_not_ours(self, world):
        other = world.other
        own = world.ok(other.key, filter=f"account_id eq '{world.foreign_account['id']}'")
        assert own["total"] == 1
        assert own["_embedded"]["usage"][0]["number_of_units"] == 99
        body = assert_error(world.get(other.key, filter=f"account_id eq '{world.aid('A')}'"), 403, "FORBIDDEN")
        assert body["message"] == NOT_AUTHORIZED


# --- who sees what ---------------------------------------------------------------------------------


class TestReach:
    def test_an_organization_key_sees_all_its_accounts_and_nothing_else(self, world):
        assert set(world.ids()) == set(world.aggregates)
        assert world.foreign_account["id"] not in world.get(per_page=250).text

    def test_the_other_organization_sees_only_its_own(self, world):
        items = world.items(world.other.key)
        assert [item["account_id"] for item in items] == [world.foreign_account["id"]]
        assert not set(world.aggregates) & {item["id"] for item in items}

    @pytest.mark.parametrize(("name", "visible"), [("A", {"A", "A1"}), ("A1", {"A1"}), ("B", {"B"})])
    def test_an_account_key_sees_only_its_subtree(self, world, name, visible):
        key = world.accounts[name]["api_key"]
        assert set(world.ids(key)) == world.ids_where(lambda a, m: a in visible)
        body = world.ok(key)
        assert body["total"] == len(world.ids_where(lambda a, m: a in visible))

    def test_a_key_without_the_scope_is_forbidden(self, world):
        key = world.tenant.create_key(scopes=["usage:read", "accounts:read", "billing:read"])["key"]
        body = assert_error(world.get(key), 403, "FORBIDDEN")
        assert SCOPE in body["message"]
        assert body["fields"] == []

    def test_a_key_with_only_the_scope_may_read(self, world):
        key = world.tenant.create_key(scopes=[SCOPE])["key"]
        assert set(world.ids(key)) == set(world.aggregates)

    def test_an_account_key_with_only_the_scope_sees_its_subtree(self, world):
        key = world.tenant.create_key(account_id=world.aid("A1"), scopes=[SCOPE])["key"]
        assert set(world.ids(key)) == world.ids_where(lambda a, m: a == "A1")

    def test_no_key_is_a_401(self, world):
        body = assert_error(world.client.get(PATH), 401, "UNAUTHORIZED")
        assert "Authorization" in body["message"]

    @pytest.mark.parametrize(
        "header",
        ["Token abc", "Bearer mbk_nonsense", "Bearer mbk_" + "0" * 32 + "_" + "0" * 48, "Basic dXNlcjpwYXNz"],
    )
    def test_unusable_credentials_are_a_401(self, world, header):
        assert_error(world.client.get(PATH, headers={"Authorization": header}), 401, "UNAUTHORIZED")

    def test_a_revoked_key_is_a_401(self, world):
        created = world.tenant.create_key(scopes=[SCOPE])
        response = world.client.delete(f"/v1/api_keys/{created['id']}", headers=world.tenant.headers)
        assert response.status_code in (200, 204), response.text
        assert_error(world.get(created["key"]), 401, "UNAUTHORIZED")

    def test_a_platform_key_is_forbidden(self, world, platform_key):
        assert_error(world.get(platform_key), 403, "FORBIDDEN")

    def test_authentication_comes_before_parameters(self, world):
        assert_error(world.client.get(PATH, params={"per_page": 0, "filter": "nonsense"}), 401, "UNAUTHORIZED")


# --- paging ----------------------------------------------------------------------------------------


def query_of(href: str) -> dict[str, str]:
    parts = urlsplit(href)
    assert parts.scheme == "http", href
    assert parts.netloc == "testserver", href
    assert parts.path == PATH, href
    return {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}


class TestPaging:
    @pytest.mark.parametrize(
        ("params", "name"),
        [
            ({"per_page": 0}, "per_page"),
            ({"per_page": 251}, "per_page"),
            ({"per_page": -1}, "per_page"),
            ({"per_page": "ten"}, "per_page"),
            ({"page": 0}, "page"),
            ({"page": -3}, "page"),
            ({"page": "first"}, "page"),
            ({"page": "1.5"}, "page"),
        ],
    )
    def test_out_of_range_paging_is_a_400(self, world, params, name):
        assert_invalid(world.get(**params), name)

    def test_the_bounds_are_accepted(self, world):
        assert world.ok(per_page=1)["count"] == 1
        assert world.ok(per_page=250)["count"] == 7

    def test_defaults(self, world):
        body = world.ok()
        assert (body["page"], body["per_page"]) == (1, 50)
        assert query_of(body["_links"]["self"]["href"]) == {"page": "1", "per_page": "50"}

    def test_pages_partition_the_items(self, world):
        pages = [world.ok(per_page=3, page=number) for number in (1, 2, 3)]
        assert [page["count"] for page in pages] == [3, 3, 1]
        for number, page in enumerate(pages, start=1):
            assert (page["page"], page["per_page"], page["total"], page["total_pages"]) == (number, 3, 7, 3)
            assert page["count"] == len(page["_embedded"]["usage"])
        ids = [item["id"] for page in pages for item in page["_embedded"]["usage"]]
        assert len(ids) == len(set(ids)) == 7
        assert set(ids) == set(world.aggregates)

    def test_links_on_the_first_middle_and_last_pages(self, world):
        text = "month ge '2024-01'"
        params = {"per_page": 3, "filter": text, "order_by": "month:asc"}
        first, middle, last = (world.ok(page=number, **params) for number in (1, 2, 3))
        assert set(first["_links"]) == {"self", "show", "first", "last", "next"}
        assert set(middle["_links"]) == {"self", "show", "first", "last", "prev", "next"}
        assert set(last["_links"]) == {"self", "show", "first", "last", "prev"}
        expected = {
            (1, "self"): 1,
            (1, "first"): 1,
            (1, "last"): 3,
            (1, "next"): 2,
            (2, "self"): 2,
            (2, "prev"): 1,
            (2, "next"): 3,
            (2, "last"): 3,
            (3, "self"): 3,
            (3, "prev"): 2,
            (3, "first"): 1,
        }
        pages = {1: first, 2: middle, 3: last}
        for (number, rel), target in expected.items():
            query = query_of(pages[number]["_links"][rel]["href"])
            assert query == {"page": str(target), "per_page": "3", "filter": text, "order_by": "month:asc"}, rel
        for page in pages.values():
            assert page["_links"]["show"] == page["_links"]["self"]

    def test_following_the_links_gives_the_same_pages(self, world):
        first = world.ok(per_page=3, filter="month ne '2024-02'", order_by="account_id:desc")
        response = world.client.get(first["_links"]["next"]["href"], headers=world.tenant.headers)
        assert response.status_code == 200, response.text
        assert (
            response.json()
            == world.get(per_page=3, page=2, filter="month ne '2024-02'", order_by="account_id:desc").json()
        )
        response = world.client.get(first["_links"]["last"]["href"], headers=world.tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json()["page"] == first["total_pages"]
        assert "next" not in response.json()["_links"]

    def test_hrefs_are_absolute_and_keep_the_quotes_of_the_filter(self, world):
        text = f"account_id eq '{world.aid('A')}' and not month eq '2024-02'"
        body = world.ok(filter=text, per_page=1)
        for link in body["_links"].values():
            assert link["href"].startswith("http://testserver/express/usage/month?")
            assert query_of(link["href"])["filter"] == text

    def test_a_page_past_the_end_is_empty(self, world):
        body = world.ok(per_page=3, page=10)
        assert (body["count"], body["page"], body["total"], body["total_pages"]) == (0, 10, 7, 3)
        assert body["_embedded"]["usage"] == []
        assert "next" not in body["_links"]
        assert query_of(body["_links"]["prev"]["href"])["page"] == "3"
        assert query_of(body["_links"]["self"]["href"])["page"] == "10"

    def test_a_huge_page_number_is_an_empty_page_not_an_error(self, world):
        body = world.ok(page=10**18)
        assert (body["count"], body["page"]) == (0, 10**18)


# --- ordering --------------------------------------------------------------------------------------


def sort_key(item: dict[str, Any], field_name: str) -> tuple[Any, str]:
    value = uuid.UUID(item["account_id"]) if field_name == "account_id" else item[field_name]
    return (value, item["id"])


class TestOrdering:
    def test_highest_id_first_by_default(self, world):
        ids = world.ids()
        assert ids == sorted(ids, reverse=True)

    @pytest.mark.parametrize("field_name", ["id", "month", "account_id"])
    @pytest.mark.parametrize("direction", ["asc", "desc"])
    def test_each_field_each_way_with_id_breaking_ties(self, world, field_name, direction):
        items = world.items(order_by=f"{field_name}:{direction}")
        expected = sorted(items, key=lambda item: sort_key(item, field_name), reverse=direction == "desc")
        assert [item["id"] for item in items] == [item["id"] for item in expected]
        assert len(items) == 7

    def test_ordering_holds_across_pages(self, world):
        pages = [world.ok(per_page=2, page=number, order_by="month:asc") for number in (1, 2, 3, 4)]
        months = [item["month"] for page in pages for item in page["_embedded"]["usage"]]
        assert months == sorted(months)
        assert len(months) == 7

    def test_case_and_a_missing_direction(self, world):
        assert world.ids(order_by="MONTH:DESC") == world.ids(order_by="month:desc")
        assert world.ids(order_by="month") == world.ids(order_by="month:asc")

    @pytest.mark.parametrize("text", ["price:asc", "month:up", "month:", ":asc", "", "id:desc:asc", "month asc"])
    def test_an_unknown_ordering_is_a_400(self, world, text):
        assert_invalid(world.get(order_by=text), "order_by", "id, month and account_id")


# --- errors and the document -----------------------------------------------------------------------


class TestErrors:
    def test_an_unknown_path_under_express_is_a_404_in_talkdesk_shape(self, world):
        assert_error(world.client.get("/express/usage/day", headers=world.tenant.headers), 404, "NOT_FOUND")

    def test_a_wrong_method_is_a_405_in_talkdesk_shape(self, world):
        response = world.client.post(PATH, headers=world.tenant.headers)
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["allow"] == "GET"

    def test_a_body_over_the_limit_is_a_413_in_talkdesk_shape(self, world):
        response = world.client.request("GET", PATH, content=b"x" * (64 * 1024 + 1), headers=world.tenant.headers)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    def test_an_unexpected_failure_is_a_500_that_says_nothing_of_it(self, settings, database, monkeypatch, tenant):
        def explode(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("secret detail")

        monkeypatch.setattr(talkdesk.aggregates, "search", explode)
        with TestClient(create_app(settings, database), raise_server_exceptions=False) as client:
            response = client.get(PATH, headers=tenant.headers)
        body = assert_error(response, 500, "INTERNAL_SERVER_ERROR")
        assert "secret detail" not in response.text
        assert re.search(r"[0-9a-f-]{36}", body["message"])

    def test_a_faraday_path_keeps_its_own_shape(self, world):
        response = world.client.get(f"/v1/accounts/{uuid.uuid4()}", headers=world.tenant.headers)
        assert response.status_code == 404
        assert set(response.json()) == {"error", "id", "note"}

    def test_the_openapi_document(self, client):
        document = client.get("/openapi.json").json()
        operation = document["paths"][PATH]["get"]
        assert operation["tags"] == ["talkdesk"]
        assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "413", "500"}
        for status in ("400", "401", "403", "404", "413", "500"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/TalkdeskError"}
        schemas = document["components"]["schemas"]
        page = schemas["TalkdeskMonthlyUsage"]
        assert set(page["properties"]) == PAGE_FIELDS
        assert set(schemas["TalkdeskUsage"]["properties"]) == USAGE_FIELDS
        assert set(schemas["TalkdeskError"]["properties"]) == {"code", "message", "description", "fields"}
        assert {parameter["name"] for parameter in operation["parameters"]} == {
            "page",
            "per_page",
            "filter",
            "order_by",
        }


class TestRenderError:
    """Every domain failure in Talkdesk's shape, straight from the renderer."""

    @pytest.mark.parametrize(
        ("error", "status", "code"),
        [
            (MissingApiKey(), 401, "UNAUTHORIZED"),
            (Forbidden(NOT_AUTHORIZED), 403, "FORBIDDEN"),
            (NotFound("No such thing."), 404, "NOT_FOUND"),
            (Conflict("Already."), 409, "CONFLICT"),
            (BadRequest("Unreadable."), 400, "BAD_REQUEST"),
            (PayloadTooLarge("Too big."), 413, "PAYLOAD_TOO_LARGE"),
            (None, 500, "INTERNAL_SERVER_ERROR"),
        ],
    )
    def test_codes(self, error, status, code):
        response = talkdesk.render_error(error, status, uuid.uuid4())
        body = jsontext.loads(response.body)
        assert response.status_code == status
        assert body["code"] == code
        assert body["fields"] == []
        if error is not None:
            assert body["message"] == error.message

    def test_validation_failures_name_each_parameter(self):
        error = ValidationFailed([FieldError("query.per_page", "too big"), FieldError("query.filter", "bad")])
        body = jsontext.loads(talkdesk.render_error(error, 400, uuid.uuid4()).body)
        assert body["code"] == "INVALID_PARAMETERS"
        assert body["fields"] == [
            {"name": "per_page", "description": "too big"},
            {"name": "filter", "description": "bad"},
        ]
        assert body["message"] == "per_page: too big; filter: bad"
