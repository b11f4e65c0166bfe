"""The Cloudflare dialect: ``GET /client/v4/user/billing/history`` (CONTRACT §3.2, seed
``cloudflare-user-billing-history.txt``).

A tenant with accounts Globex (commitment and calls), its subaccount Globex Labs (calls) and Initech
(text messages), invoiced for two ended months; a payment each from Globex (dated last month), Initech
(today) and Globex Labs (ahead of any invoice), and Globex Labs' invoice voided: eleven history items.
Another tenant has a billed account of its own. What each answer should hold is built here from the
native API (invoices with their lines, payments), never from the history itself. Every test runs on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from meterbook.accounts import service as accounts
from meterbook.api import cloudflare
from meterbook.app import create_app
from meterbook.db import Database
from meterbook.db.tables import api_keys
from meterbook.invoicing import service as invoicing
from meterbook.kit import jsontext
from tests.conftest import Tenant, bearer
from tests.helpers import ts

PATH = "/client/v4/user/billing/history"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
ITEM_FIELDS = {"id", "type", "action", "description", "occurred_at", "amount", "currency", "zone"}
AUTHENTICATION_ERROR = [{"code": 10000, "message": "Authentication error"}]
MISSING_CREDENTIALS = [{"code": 9106, "message": "Missing X-Auth-Key, X-Auth-Email or Authorization headers"}]
INVALID_ACCESS_TOKEN = [{"code": 9109, "message": "Invalid access token"}]
UNKNOWN_KEY_OR_EMAIL = [{"code": 9103, "message": "Unknown X-Auth-Key or X-Auth-Email"}]
HEADER_FORMATS = {
    6111: "Invalid format for Authorization header",
    6103: "Invalid format for X-Auth-Key header",
    6102: "Invalid format for X-Auth-Email header",
}

# --- helpers ---------------------------------------------------------------------------------------


def months_ago(count: int) -> str:
    """``YYYY-MM`` of the month ``count`` months before the current one (UTC)."""
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def exact(response: Any) -> Any:
    """The body with numbers read as exact decimals (money compared without floats)."""
    return jsontext.loads(response.text)


def assert_failure(response: Any, status: int, errors: list[dict[str, Any]]) -> None:
    """Cloudflare's failure envelope, exactly."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"success": False, "errors": errors, "messages": [], "result": None}


def assert_invalid(response: Any, *names: str) -> list[str]:
    """400, code 6008, with one ``error_chain`` entry per parameter in ``names``, each naming it first."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"success", "errors", "messages", "result"}, body
    assert (body["success"], body["messages"], body["result"]) == (False, [], None)
    (error,) = body["errors"]
    assert set(error) == {"code", "message", "error_chain"}, error
    assert (error["code"], error["message"]) == (6008, "Invalid request parameters")
    chain = error["error_chain"]
    assert [entry["code"] for entry in chain] == [6008] * len(chain)
    assert [entry["message"].split(":")[0] for entry in chain] == list(names), chain
    messages: list[str] = [entry["message"] for entry in chain]
    return messages


def invalid_headers(*codes: int) -> list[dict[str, Any]]:
    """Code 6003 with one ``error_chain`` entry per header of the wrong format, in Cloudflare's words."""
    chain = [{"code": code, "message": HEADER_FORMATS[code]} for code in codes]
    return [{"code": 6003, "message": "Invalid request headers", "error_chain": chain}]


def email_headers(email: str, key: str) -> dict[str, str]:
    return {"X-Auth-Email": email, "X-Auth-Key": key}


def history(
    client: TestClient, key: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Any:
    """The history with ``key`` as Bearer, or with the ``headers`` given instead."""
    return client.get(PATH, params=params or {}, headers=headers or bearer(key))


@dataclass
class World:
    client: TestClient
    tenant: Tenant
    other: Tenant
    #: name → the account as created (with its key, shown whole once)
    accounts: dict[str, dict[str, Any]]
    #: Every item the tenant's history should hold, built from the native API, keyed by (kind, reference).
    expected: dict[tuple[str, str], dict[str, Any]]
    months: tuple[str, str]
    #: The voided invoice.
    voided: dict[str, Any]

    def key(self, name: str) -> str:
        return str(self.accounts[name]["api_key"])

    def get(
        self, key: str | None = None, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        return history(self.client, key or self.tenant.key, params, headers)

    def ok(self, key: str | None = None, **params: Any) -> dict[str, Any]:
        response = self.get(key, params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = exact(response)
        return body

    def items(self, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every item over every page, 50 a page, until the first empty page."""
        found: list[dict[str, Any]] = []
        for page in range(1, 100):
            result = self.ok(key, page=page, per_page=50, **params)["result"]
            if not result:
                return found
            found.extend(result)
        raise AssertionError("more pages than expected")

    def without_ids(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{name: value for name, value in item.items() if name != "id"} for item in items]


def put_product(client: TestClient, key: str, product_id: str, description: str, unit_price: str) -> None:
    body = {
        "description": description,
        "type": "CALL",
        "unit": "unit",
        "currency": "USD",
        "unit_price": unit_price,
        "price_effective_from": "2020-01-01T00:00:00Z",
    }
    response = client.put(f"/v1/products/{product_id}", json=body, headers=bearer(key))
    assert response.status_code == 201, response.text


def metered(account: dict[str, Any], product_id: str, quantity: int, month: str) -> dict[str, Any]:
    return {
        "id": f"ev-{uuid.uuid4().hex}",
        "account_id": account["id"],
        "type": "metered",
        "product_id": product_id,
        "quantity": quantity,
        "occurred_at": f"{month}-15T12:00:00Z",
    }


def post_ok(client: TestClient, path: str, body: Any, key: str, status: int = 201) -> dict[str, Any]:
    response = client.post(path, json=body, headers=bearer(key))
    assert response.status_code == status, response.text
    result: dict[str, Any] = exact(response)
    return result


def expected_history(client: TestClient, tenant: Tenant, names: dict[str, str]) -> dict[tuple[str, str], Any]:
    """What the history must hold, from the native API: each invoice line, each payment, each void."""
    expected: dict[tuple[str, str], Any] = {}
    invoices = exact(client.get("/v1/invoices", headers=tenant.headers))["invoices"]
    for listed in invoices:
        invoice = exact(client.get(f"/v1/invoices/{listed['id']}", headers=tenant.headers))
        zone = {"name": names[invoice["account_id"]]}
        for line in invoice["lines"]:
            expected[("charge", f"{invoice['id']}/{line['line']}")] = {
                "type": "charge",
                "action": line["kind"],
                "description": line["description"],
                "occurred_at": invoice["issued_at"],
                "amount": line["amount"],
                "currency": invoice["currency"],
                "zone": zone,
            }
        if invoice["status"] == "void":
            expected[("refund", invoice["id"])] = {
                "type": "refund",
                "action": "void",
                "description": f"Void of invoice {invoice['number']} ({invoice['month']})",
                "occurred_at": invoice["voided_at"],
                "amount": -invoice["amount"],
                "currency": invoice["currency"],
                "zone": zone,
            }
    for payment in exact(client.get("/v1/payments", headers=tenant.headers))["payments"]:
        expected[("payment", payment["id"])] = {
            "type": "payment",
            "action": "payment",
            "description": "Payment" if payment["reference"] is None else f"Payment {payment['reference']}",
            "occurred_at": payment["date"],
            "amount": payment["amount"],
            "currency": payment["currency"],
            "zone": {"name": names[payment["account_id"]]},
        }
    return expected


def build_world(client: TestClient, tenant: Tenant, other_tenant: Tenant) -> World:
    """The module's data (see its docstring), written through the public API; the SDK's tests use it too."""
    older, old = months_ago(3), months_ago(2)
    started = f"{older}-01T00:00:00Z"
    globex = tenant.create_account(
        name="Globex", email="Billing@Globex.example", commitment={"monthly_cost": "100"}, contract_started_at=started
    )
    labs = tenant.create_account(key=globex["api_key"], name="Globex Labs", email="labs@globex.example")
    initech = tenant.create_account(name="Initech", email="ap@initech.example")
    put_product(client, tenant.key, "CALLS", "Outbound calls", "0.067")
    put_product(client, tenant.key, "SMS", "Text messages", "0.0075")
    events = [
        metered(globex, "CALLS", 55, older),
        metered(globex, "CALLS", 55, old),
        metered(labs, "CALLS", 100, old),
        metered(initech, "SMS", 1000, older),
        metered(initech, "SMS", 2000, old),
    ]
    post_ok(client, "/v1/events", events, tenant.key, status=200)
    for month in (older, old):
        post_ok(client, "/v1/billing_runs", {"month": month}, tenant.key)
    post_ok(
        client,
        "/v1/payments",
        {
            "id": "w1",
            "account_id": globex["id"],
            "amount": "103.69",
            "date": f"{months_ago(1)}-03T09:30:00Z",
            "reference": "wire-1",
        },
        tenant.key,
    )
    post_ok(client, "/v1/payments", {"id": "card-7", "account_id": initech["id"], "amount": "7.5"}, tenant.key)
    invoices = exact(client.get("/v1/invoices", params={"account_id": labs["id"]}, headers=tenant.headers))
    (voided,) = invoices["invoices"]
    post_ok(client, f"/v1/invoices/{voided['id']}/void", None, tenant.key, status=200)
    post_ok(
        client,
        "/v1/payments",
        {
            "id": "ahead-1",
            "account_id": labs["id"],
            "amount": "1",
            "reference": "prepaid",
            "date": f"{old}-20T00:00:00Z",
        },
        tenant.key,
    )
    # The other organization: its own billed account, which no key of the tenant may see.
    stranger = other_tenant.create_account(
        name="Stranger", email="Billing@Globex.example", commitment={"monthly_cost": "5"}, contract_started_at=started
    )
    post_ok(client, "/v1/billing_runs", {"month": older}, other_tenant.key)
    post_ok(client, "/v1/payments", {"account_id": stranger["id"], "amount": "5"}, other_tenant.key)
    accounts = {"Globex": globex, "Globex Labs": labs, "Initech": initech, "Stranger": stranger}
    names = {account["id"]: name for name, account in accounts.items()}
    expected = expected_history(client, tenant, names)
    assert len(expected) == 11
    return World(client, tenant, other_tenant, accounts, expected, (older, old), voided)


@pytest.fixture
def world(client: TestClient, tenant: Tenant, other_tenant: Tenant) -> World:
    return build_world(client, tenant, other_tenant)


def newest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: (ts(item["occurred_at"]), item["id"]), reverse=True)


def ascending(items: list[dict[str, Any]], field: str | None) -> list[dict[str, Any]]:
    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        moment = ts(item["occurred_at"])
        return (moment, item["id"]) if field is None else (item[field], moment, item["id"])

    return sorted(items, key=key)


# --- the response ----------------------------------------------------------------------------------


class TestResponse:
    def test_envelope_and_result_info(self, world: World) -> None:
        body = world.ok()
        assert set(body) == {"success", "errors", "messages", "result", "result_info"}
        assert (body["success"], body["errors"], body["messages"]) == (True, [], [])
        assert body["result_info"] == {"page": 1, "per_page": 20, "count": 11, "total_count": 11, "total_pages": 1}

    def test_every_item_is_what_the_native_api_shows(self, world: World) -> None:
        items = world.items()
        assert len(items) == 11
        assert sorted(world.without_ids(items), key=repr) == sorted(world.expected.values(), key=repr)

    def test_item_fields_and_types(self, world: World) -> None:
        response = world.get()
        for item in response.json()["result"]:
            assert set(item) == ITEM_FIELDS, item
            assert HEX32.match(item["id"]), item
            assert item["type"] in {"charge", "payment", "refund"}
            assert item["action"] in {"subscription", "usage", "payment", "void"}
            assert isinstance(item["description"], str)
            assert 0 < len(item["description"]) <= 255
            assert RFC3339_UTC.match(item["occurred_at"]), item
            assert isinstance(item["amount"], int | float)
            assert not isinstance(item["amount"], bool)
            assert item["currency"] == "USD"
            assert set(item["zone"]) == {"name"}
            assert isinstance(item["zone"]["name"], str)

    def test_one_of_each_kind_exactly(self, world: World) -> None:
        items = world.items()
        by_kind = {(item["type"], item["action"], item["zone"]["name"], str(item["amount"])): item for item in items}
        calls = by_kind[("charge", "usage", "Globex", "3.69")]
        # 55 minutes at 0.067 = 3.685, rounded half away from zero on the invoice line.
        assert {name: value for name, value in calls.items() if name not in {"id", "occurred_at"}} == {
            "type": "charge",
            "action": "usage",
            "description": "Outbound calls",
            "amount": Decimal("3.69"),
            "currency": "USD",
            "zone": {"name": "Globex"},
        }
        invoices = exact(world.client.get("/v1/invoices", headers=world.tenant.headers))["invoices"]
        assert calls["occurred_at"] in {invoice["issued_at"] for invoice in invoices}
        subscriptions = {item["description"] for item in items if item["action"] == "subscription"}
        assert subscriptions == {f"Monthly commitment, {month}" for month in world.months}
        assert by_kind[("charge", "usage", "Initech", "15")]["description"] == "Text messages"
        payment = by_kind[("payment", "payment", "Globex", "103.69")]
        assert (payment["description"], payment["occurred_at"]) == ("Payment wire-1", f"{months_ago(1)}-03T09:30:00Z")
        assert by_kind[("payment", "payment", "Initech", "7.5")]["description"] == "Payment"
        refund = by_kind[("refund", "void", "Globex Labs", "-6.7")]
        assert refund["description"] == f"Void of invoice {world.voided['number']} ({world.months[1]})"
        voided = exact(world.client.get(f"/v1/invoices/{world.voided['id']}", headers=world.tenant.headers))
        assert refund["occurred_at"] == voided["voided_at"]
        # The voided invoice's own charge stays in the history.
        assert ("charge", "usage", "Globex Labs", "6.7") in by_kind

    @pytest.mark.parametrize("fragment", ['"amount":3.69,', '"amount":-6.7,', '"amount":7.5,', '"amount":1,'])
    def test_amounts_are_exact_json_numbers(self, world: World, fragment: str) -> None:
        assert fragment in world.get(params={"per_page": 50}).text

    def test_ids_are_stable(self, world: World) -> None:
        first = [item["id"] for item in world.items()]
        assert len(set(first)) == 11
        assert all(HEX32.match(item_id) for item_id in first)
        assert [item["id"] for item in world.items()] == first
        # Later writes add items; they never change the ids of those already there.
        post_ok(
            world.client,
            "/v1/payments",
            {"id": "late", "account_id": world.accounts["Initech"]["id"], "amount": "2"},
            world.tenant.key,
        )
        later = [item["id"] for item in world.items()]
        assert len(later) == 12
        assert set(first) < set(later)

    def test_ids_are_the_same_through_every_key_and_scheme(self, world: World) -> None:
        everything = world.items()
        for name, email in (("Globex", "billing@globex.example"), ("Globex Labs", "labs@globex.example")):
            seen = world.items(world.key(name))
            assert seen == [item for item in everything if item["id"] in {mine["id"] for mine in seen}]
            response = world.get(params={"per_page": 50}, headers=email_headers(email, world.key(name)))
            assert exact(response)["result"] == seen

    def test_an_organization_with_no_history(self, world: World, make_tenant: Any) -> None:
        empty = make_tenant("Empty")
        assert world.ok(empty.key) == {
            "success": True,
            "errors": [],
            "messages": [],
            "result": [],
            "result_info": {"page": 1, "per_page": 20, "count": 0, "total_count": 0, "total_pages": 0},
        }


# --- ordering --------------------------------------------------------------------------------------


class TestOrdering:
    def test_newest_first_by_default(self, world: World) -> None:
        items = world.items()
        assert items == newest_first(items)
        # Billing runs, voids and undated payments happen now; the two payments dated in the past come last.
        assert [item["description"] for item in items[-2:]] == ["Payment wire-1", "Payment prepaid"]

    @pytest.mark.parametrize(
        ("order", "field"),
        [("type", "type"), ("action", "action"), ("occurred_at", None), ("occured_at", None)],
    )
    def test_each_order_ascending_then_by_time_then_id(self, world: World, order: str, field: str | None) -> None:
        items = world.items(order=order)
        assert len(items) == 11
        assert items == ascending(items, field)
        assert items != newest_first(items)

    def test_both_spellings_give_the_same_order(self, world: World) -> None:
        assert world.items(order="occured_at") == world.items(order="occurred_at")

    def test_order_by_type_groups_the_types(self, world: World) -> None:
        types = [item["type"] for item in world.items(order="type")]
        assert types == ["charge"] * 7 + ["payment"] * 3 + ["refund"]

    def test_order_holds_across_pages(self, world: World) -> None:
        pages = [world.ok(order="action", per_page=5, page=number)["result"] for number in (1, 2, 3)]
        assert [len(page) for page in pages] == [5, 5, 1]
        joined = [item for page in pages for item in page]
        assert joined == world.items(order="action")

    @pytest.mark.parametrize("order", ["", "amount", "TYPE", "occurred", "-type", "type,action"])
    def test_an_unknown_order_is_a_400(self, client: TestClient, tenant: Tenant, order: str) -> None:
        (message,) = assert_invalid(history(client, tenant.key, params={"order": order}), "order")
        assert "'occured_at'" in message


# --- filters ---------------------------------------------------------------------------------------


class TestFilters:
    @pytest.mark.parametrize(
        ("params", "count"),
        [
            ({"type": "charge"}, 7),
            ({"type": "payment"}, 3),
            ({"type": "refund"}, 1),
            ({"type": "Charge"}, 0),
            ({"type": ""}, 0),
            ({"action": ""}, 0),
            ({"type": "nothing"}, 0),
            ({"action": "subscription"}, 2),
            ({"action": "usage"}, 5),
            ({"action": "payment"}, 3),
            ({"action": "void"}, 1),
            ({"type": "charge", "action": "usage"}, 5),
            ({"type": "payment", "action": "void"}, 0),
        ],
    )
    def test_type_and_action_match_exactly(self, world: World, params: dict[str, str], count: int) -> None:
        everything = world.items()
        items = world.items(**params)
        expected = [item for item in everything if all(item[name] == value for name, value in params.items())]
        assert items == expected
        assert len(items) == count
        info = world.ok(per_page=5, **params)["result_info"]
        assert info == {
            "page": 1,
            "per_page": 5,
            "count": min(count, 5),
            "total_count": 11,
            "total_pages": math.ceil(count / 5),
        }

    @pytest.mark.parametrize("name", ["occurred_at", "occured_at"])
    def test_at_or_after_an_instant(self, world: World, name: str) -> None:
        everything = world.items()
        payment = next(item for item in everything if item["description"] == "Payment wire-1")
        at = payment["occurred_at"]
        items = world.items(**{name: at})
        assert items == [item for item in everything if ts(item["occurred_at"]) >= ts(at)]
        assert payment in items
        just_after = (ts(at) + timedelta(microseconds=1)).isoformat()
        assert payment not in world.items(**{name: just_after})
        assert len(items) == 10

    def test_an_offset_is_the_same_instant(self, world: World) -> None:
        at = f"{months_ago(1)}-03T09:30:00Z"
        shifted = f"{months_ago(1)}-03T11:00:00+01:30"
        assert world.items(occurred_at=shifted) == world.items(occurred_at=at)
        lower = f"{months_ago(1)}-03t09:30:00z"
        assert world.items(occurred_at=lower) == world.items(occurred_at=at)

    @pytest.mark.parametrize("name", ["occurred_at", "occured_at"])
    def test_without_an_offset_it_is_utc(self, world: World, name: str) -> None:
        # What the SDK sends for a naive datetime: isoformat() without an offset, with or without a fraction.
        payment_at = f"{months_ago(1)}-03T09:30:00"
        everything = world.items()
        assert world.items(**{name: payment_at}) == world.items(**{name: payment_at + "Z"})
        assert len(world.items(**{name: payment_at})) == 10
        assert len(world.items(**{name: payment_at + ".000001"})) == 9
        assert world.items(**{name: f"{world.months[1]}-25T00:00:00"}) == [
            item for item in everything if ts(item["occurred_at"]) >= ts(f"{world.months[1]}-25T00:00:00Z")
        ]

    def test_a_fraction_finer_than_a_microsecond_rounds_toward_later(self, world: World) -> None:
        payment_at = f"{months_ago(1)}-03T09:30:00"
        assert len(world.items(occurred_at=payment_at + ".0000000Z")) == 10
        assert len(world.items(occurred_at=payment_at + ".0000001Z")) == 9

    def test_both_spellings_given_both_apply(self, world: World) -> None:
        everything = world.items()
        early, late = f"{world.months[0]}-01T00:00:00Z", f"{months_ago(1)}-03T09:30:01Z"
        expected = [item for item in everything if ts(item["occurred_at"]) >= ts(late)]
        assert len(expected) == 9
        assert world.items(occurred_at=early, occured_at=late) == expected
        assert world.items(occurred_at=late, occured_at=early) == expected

    def test_the_seeds_example_instant(self, world: World) -> None:
        assert len(world.items(occurred_at="2014-03-01T12:21:59.3456Z")) == 11

    def test_filters_combine_with_order_and_paging(self, world: World) -> None:
        body = world.ok(type="charge", order="action", per_page=5, page=2)
        assert body["result_info"] == {"page": 2, "per_page": 5, "count": 2, "total_count": 11, "total_pages": 2}
        assert [item["action"] for item in body["result"]] == ["usage", "usage"]

    def test_unknown_parameters_are_ignored(self, world: World) -> None:
        assert world.ok(color="blue", name="x", per_page=5) == world.ok(per_page=5)


# --- paging ----------------------------------------------------------------------------------------


class TestPaging:
    def test_pages_partition_the_items(self, world: World) -> None:
        pages = [world.ok(per_page=5, page=number) for number in (1, 2, 3)]
        assert [page["result_info"] for page in pages] == [
            {"page": number, "per_page": 5, "count": count, "total_count": 11, "total_pages": 3}
            for number, count in ((1, 5), (2, 5), (3, 1))
        ]
        joined = [item for page in pages for item in page["result"]]
        assert joined == world.items()

    def test_a_page_past_the_end_is_empty_and_successful(self, world: World) -> None:
        body = world.ok(per_page=5, page=4)
        assert body == {
            "success": True,
            "errors": [],
            "messages": [],
            "result": [],
            "result_info": {"page": 4, "per_page": 5, "count": 0, "total_count": 11, "total_pages": 3},
        }
        assert world.ok(page=2147483647)["result"] == []

    def test_the_service_answers_any_page_past_the_end(self, world: World, database: Database) -> None:
        # The dialect caps page at 2**31 - 1; the service itself must not hand the database an offset
        # beyond its integers (10**30 * 50 rows) for any other caller.
        with database.read() as conn:
            principal = accounts.authenticate(conn, world.tenant.key)
            found = invoicing.history(conn, principal, page=10**30, per_page=50)
        assert (found.items, found.matching, found.total) == ([], 11, 11)

    def test_defaults(self, world: World) -> None:
        info = world.ok()["result_info"]
        assert (info["page"], info["per_page"]) == (1, 20)

    @pytest.mark.parametrize(("per_page", "count"), [(5, 5), ("5", 5), (50, 11), ("50.0", 11), (11, 11), (10, 10)])
    def test_per_page_within_its_bounds(self, world: World, per_page: Any, count: int) -> None:
        body = world.ok(per_page=per_page)
        assert body["result_info"]["count"] == count
        assert len(body["result"]) == count

    @pytest.mark.parametrize("per_page", [4, 51, 0, -5, "4.0", "1e2"])
    def test_per_page_out_of_bounds(self, client: TestClient, tenant: Tenant, per_page: Any) -> None:
        (message,) = assert_invalid(history(client, tenant.key, params={"per_page": per_page}), "per_page")
        assert ("5" in message) or ("50" in message), message

    @pytest.mark.parametrize("per_page", ["abc", "7.5", "", "five", "0x10", "nan", "inf"])
    def test_per_page_not_a_whole_number(self, client: TestClient, tenant: Tenant, per_page: str) -> None:
        assert assert_invalid(history(client, tenant.key, params={"per_page": per_page}), "per_page") == [
            "per_page: Input should be a whole number"
        ]

    @pytest.mark.parametrize(("page", "number"), [(1, 1), ("1", 1), ("2.0", 2), ("2.000", 2), ("1e0", 1), (" 2 ", 2)])
    def test_a_whole_valued_page(self, world: World, page: Any, number: int) -> None:
        body = world.ok(page=page, per_page=5)
        assert body["result_info"]["page"] == number
        assert body["result"] == world.ok(page=number, per_page=5)["result"]

    @pytest.mark.parametrize(
        ("page", "words"),
        [
            (0, "greater than or equal to 1"),
            (-1, "greater than or equal to 1"),
            ("-0.0", "greater than or equal to 1"),
            ("1.5", "whole number"),
            ("abc", "whole number"),
            ("", "whole number"),
            ("1,5", "whole number"),
            ("2147483648", "less than or equal to 2147483647"),
            ("1e400", "less than or equal to 2147483647"),
            ("-1e400", "greater than or equal to 1"),
            (str(10**30), "less than or equal to 2147483647"),
        ],
    )
    def test_page_out_of_bounds_or_not_whole(self, client: TestClient, tenant: Tenant, page: Any, words: str) -> None:
        (message,) = assert_invalid(history(client, tenant.key, params={"page": page}), "page")
        assert message.startswith("page: ")
        assert words in message, message

    def test_every_invalid_parameter_is_named(self, client: TestClient, tenant: Tenant) -> None:
        params = {"page": 0, "per_page": 51, "order": "amount", "type": "t" * 31, "action": "a" * 31}
        params |= {"occurred_at": "yesterday", "occured_at": "2024-13-01T00:00:00Z"}
        assert_invalid(
            history(client, tenant.key, params=params),
            "page",
            "per_page",
            "order",
            "type",
            "action",
            "occurred_at",
            "occured_at",
        )


class TestFilterBounds:
    @pytest.mark.parametrize("name", ["type", "action"])
    def test_30_characters_are_accepted(self, world: World, name: str) -> None:
        body = world.ok(**{name: "x" * 30})
        assert body["result"] == []
        assert body["result_info"]["total_count"] == 11

    @pytest.mark.parametrize("name", ["type", "action"])
    def test_31_characters_are_refused(self, client: TestClient, tenant: Tenant, name: str) -> None:
        assert assert_invalid(history(client, tenant.key, params={name: "x" * 31}), name) == [
            f"{name}: String should have at most 30 characters"
        ]

    @pytest.mark.parametrize("name", ["occurred_at", "occured_at"])
    @pytest.mark.parametrize(
        "value",
        [
            "yesterday",
            "2024-01-01",
            "2024-01-01 00:00:00Z",
            "2024-01-01 00:00:00",
            "2024-01-01T00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+0100",
            "1700000000",
            "0000-01-01T00:00:00Z",
            "",
        ],
    )
    def test_a_bad_date_time_is_refused(self, client: TestClient, tenant: Tenant, name: str, value: str) -> None:
        (message,) = assert_invalid(history(client, tenant.key, params={name: value}), name)
        assert "RFC 3339" in message
        assert "2014-03-01T12:21:59.3456Z" in message


# --- reach -----------------------------------------------------------------------------------------


class TestReach:
    def test_the_organization_key_sees_all_its_accounts_and_nothing_else(self, world: World) -> None:
        zones = {item["zone"]["name"] for item in world.items()}
        assert zones == {"Globex", "Globex Labs", "Initech"}

    @pytest.mark.parametrize(
        ("name", "zones", "count"),
        [
            ("Globex", {"Globex", "Globex Labs"}, 8),
            ("Globex Labs", {"Globex Labs"}, 3),
            ("Initech", {"Initech"}, 3),
        ],
    )
    def test_an_account_key_sees_its_account_and_subaccounts(
        self, world: World, name: str, zones: set[str], count: int
    ) -> None:
        everything = world.items()
        items = world.items(world.key(name))
        assert len(items) == count
        assert {item["zone"]["name"] for item in items} == zones
        assert items == [item for item in everything if item["zone"]["name"] in zones]
        info = world.ok(world.key(name), per_page=5)["result_info"]
        assert (info["total_count"], info["total_pages"]) == (count, math.ceil(count / 5))

    def test_siblings_see_nothing_of_each_other(self, world: World) -> None:
        initech_ids = {item["id"] for item in world.items(world.key("Initech"))}
        globex_ids = {item["id"] for item in world.items(world.key("Globex"))}
        assert initech_ids
        assert globex_ids
        assert not initech_ids & globex_ids

    def test_the_other_organization_sees_only_its_own(self, world: World) -> None:
        ours = {item["id"] for item in world.items()}
        theirs = world.items(world.other.key)
        assert {item["zone"]["name"] for item in theirs} == {"Stranger"}
        assert [(item["type"], item["amount"]) for item in theirs] == [("payment", 5), ("charge", 5)]
        assert not ours & {item["id"] for item in theirs}
        assert world.ok(world.other.key)["result_info"]["total_count"] == 2

    def test_zone_name_follows_a_renamed_account(self, world: World) -> None:
        account_id = world.accounts["Initech"]["id"]
        response = world.client.patch(
            f"/v1/accounts/{account_id}", json={"name": "Initrode"}, headers=world.tenant.headers
        )
        assert response.status_code == 200, response.text
        assert {item["zone"]["name"] for item in world.items(world.key("Initech"))} == {"Initrode"}


# --- authentication --------------------------------------------------------------------------------


def expire(database: Database, key_id: str) -> None:
    with database.write() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == uuid.UUID(key_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


class TestMissingCredentials:
    """None at all, or half of the X-Auth pair: 400, code 9106, as the real API answers."""

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": ""},
            {"Authorization": "   "},
            {"X-Auth-Key": "", "X-Auth-Email": ""},
            {"X-Auth-Key": "KEY"},
            {"X-Auth-Key": "KEY", "X-Auth-Email": " "},
            {"X-Auth-Email": "billing@globex.example"},
            {"X-Auth-Email": "billing@globex.example", "X-Auth-Key": ""},
        ],
    )
    def test_missing_credentials_are_a_400_9106(self, world: World, headers: dict[str, str]) -> None:
        headers = {name: value.replace("KEY", world.key("Globex")) for name, value in headers.items()}
        assert_failure(world.client.get(PATH, headers=headers), 400, MISSING_CREDENTIALS)

    def test_missing_credentials_come_before_parameters(self, world: World) -> None:
        assert_failure(world.client.get(PATH, params={"per_page": 0, "order": "x"}), 400, MISSING_CREDENTIALS)


class TestMalformedHeaders:
    """A credential header not of meterbook's key shape or not an e-mail: 400, code 6003, with the chain."""

    @pytest.mark.parametrize(
        "header",
        [
            "Bearer",
            "Token abc",
            "Basic dXNlcjpwYXNz",
            "KEY",
            "Bearer mbk_nonsense",
            "Bearer abc-def",
            "Bearer KEY0",
            "Bearer KEY KEY",
            "Bearer " + "0123456789abcdef0123456789abcdef01234",  # a Cloudflare global API key's shape
            "Bearer mbk_" + "A" * 32 + "_" + "0" * 48,
        ],
    )
    def test_an_authorization_of_the_wrong_format(self, world: World, header: str) -> None:
        header = header.replace("KEY", world.tenant.key)
        assert_failure(world.client.get(PATH, headers={"Authorization": header}), 400, invalid_headers(6111))

    def test_a_malformed_authorization_wins_over_good_email_headers(self, world: World) -> None:
        headers = {"Authorization": "Token x", **email_headers("billing@globex.example", world.key("Globex"))}
        assert_failure(world.client.get(PATH, headers=headers), 400, invalid_headers(6111))

    @pytest.mark.parametrize(
        "key",
        [
            "mbk_nonsense",
            "Bearer KEY",
            "KEY0",
            "0123456789abcdef0123456789abcdef01234",
            "mbk_" + "0" * 32 + "_" + "0" * 47,
        ],
    )
    def test_an_x_auth_key_of_the_wrong_format(self, world: World, key: str) -> None:
        headers = email_headers("billing@globex.example", key.replace("KEY", world.key("Globex")))
        assert_failure(world.client.get(PATH, headers=headers), 400, invalid_headers(6103))

    @pytest.mark.parametrize(
        "email", ["billing", "billing@globex", "@globex.example", "billing@@globex.example", "a b@globex.example"]
    )
    def test_an_x_auth_email_of_the_wrong_format(self, world: World, email: str) -> None:
        headers = email_headers(email, world.key("Globex"))
        assert_failure(world.client.get(PATH, headers=headers), 400, invalid_headers(6102))

    def test_an_e_mail_longer_than_any_address(self, world: World) -> None:
        headers = email_headers("a" * 310 + "@globex.example", world.key("Globex"))
        assert_failure(world.client.get(PATH, headers=headers), 400, invalid_headers(6102))

    def test_both_of_the_wrong_format_name_both(self, world: World) -> None:
        headers = email_headers("billing", "junk")
        assert_failure(world.client.get(PATH, headers=headers), 400, invalid_headers(6102, 6103))

    @pytest.mark.parametrize(("headers", "code"), [({"X-Auth-Key": "junk"}, 6103), ({"X-Auth-Email": "x"}, 6102)])
    def test_a_lone_header_of_the_wrong_format_is_named(self, world: World, headers: dict[str, str], code: int) -> None:
        assert_failure(world.client.get(PATH, headers=headers), 400, invalid_headers(code))

    def test_the_format_is_checked_before_parameters(self, world: World) -> None:
        response = world.client.get(PATH, params={"per_page": 0}, headers={"Authorization": "Bearer x"})
        assert_failure(response, 400, invalid_headers(6111))


class TestBearer:
    def test_a_key_with_only_billing_read(self, world: World) -> None:
        key = world.tenant.create_key(scopes=["billing:read"])["key"]
        assert world.items(key) == world.items()

    def test_an_account_key_with_only_billing_read(self, world: World) -> None:
        key = world.tenant.create_key(scopes=["billing:read"], account_id=world.accounts["Globex Labs"]["id"])["key"]
        assert world.items(key) == world.items(world.key("Globex Labs"))

    @pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
    def test_the_scheme_in_any_case(self, world: World, scheme: str) -> None:
        response = world.client.get(PATH, headers={"Authorization": f"{scheme}  {world.tenant.key} "})
        assert response.status_code == 200, response.text

    def test_a_key_without_billing_read_is_a_403_10000(self, world: World) -> None:
        key = world.tenant.create_key(scopes=["usage:read", "billing:write", "accounts:read"])["key"]
        assert_failure(world.get(key), 403, AUTHENTICATION_ERROR)

    def test_a_platform_key_is_a_403_10000(self, world: World, platform_key: str) -> None:
        assert_failure(world.get(platform_key), 403, AUTHENTICATION_ERROR)

    def test_an_unknown_key_is_a_403_9109(self, world: World) -> None:
        assert_failure(world.get("mbk_" + "0" * 32 + "_" + "0" * 48), 403, INVALID_ACCESS_TOKEN)

    def test_a_wrong_secret_is_a_403_9109(self, world: World) -> None:
        key = world.tenant.key
        assert_failure(
            world.get(key[:-4] + ("0000" if not key.endswith("0000") else "1111")), 403, INVALID_ACCESS_TOKEN
        )

    def test_a_revoked_key_is_a_403_9109(self, world: World) -> None:
        created = world.tenant.create_key(scopes=["billing:read"])
        assert world.get(created["key"]).status_code == 200
        response = world.client.delete(f"/v1/api_keys/{created['id']}", headers=world.tenant.headers)
        assert response.status_code == 200, response.text
        assert_failure(world.get(created["key"]), 403, INVALID_ACCESS_TOKEN)

    def test_an_expired_key_is_a_403_9109(self, world: World, database: Database) -> None:
        created = world.tenant.create_key(expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
        assert world.get(created["key"]).status_code == 200
        expire(database, created["id"])
        assert_failure(world.get(created["key"]), 403, INVALID_ACCESS_TOKEN)

    def test_a_revoked_key_without_billing_read_is_still_9109(self, world: World) -> None:
        created = world.tenant.create_key(scopes=["usage:read"])
        assert world.client.delete(f"/v1/api_keys/{created['id']}", headers=world.tenant.headers).status_code == 200
        assert_failure(world.get(created["key"]), 403, INVALID_ACCESS_TOKEN)

    def test_authentication_comes_before_parameters(self, world: World) -> None:
        assert_failure(world.get("mbk_" + "0" * 32 + "_" + "0" * 48, {"per_page": 0}), 403, INVALID_ACCESS_TOKEN)
        key = world.tenant.create_key(scopes=["usage:read"])["key"]
        assert_failure(world.get(key, {"per_page": 0}), 403, AUTHENTICATION_ERROR)

    def test_bearer_takes_precedence_over_the_email_headers(self, world: World) -> None:
        headers = {"Authorization": f"Bearer {world.tenant.key}", **email_headers("nobody@example.com", "junk")}
        response = world.client.get(PATH, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["result_info"]["total_count"] == 11

    def test_another_organizations_key_sees_its_own_items_only(self, world: World) -> None:
        response = world.get(world.other.key)
        assert response.status_code == 200, response.text
        assert {item["zone"]["name"] for item in response.json()["result"]} == {"Stranger"}


class TestEmailAndKey:
    @pytest.mark.parametrize("email", ["Billing@Globex.example", "billing@globex.example", " BILLING@GLOBEX.EXAMPLE "])
    def test_the_accounts_email_in_any_case(self, world: World, email: str) -> None:
        response = world.get(headers=email_headers(email, world.key("Globex")))
        assert response.status_code == 200, response.text
        assert exact(response) == world.ok(world.key("Globex"))

    def test_every_account_with_its_own_email(self, world: World) -> None:
        for name, email in (("Globex Labs", "labs@globex.example"), ("Initech", "ap@initech.example")):
            response = world.get(headers=email_headers(email, world.key(name)))
            assert response.status_code == 200, response.text
            assert {item["zone"]["name"] for item in response.json()["result"]} == {name}

    @pytest.mark.parametrize(
        "email", ["labs@globex.example", "ap@initech.example", "billing@globex.example.org", "someone@example.com"]
    )
    def test_another_email_is_a_403_9103(self, world: World, email: str) -> None:
        assert_failure(world.get(headers=email_headers(email, world.key("Globex"))), 403, UNKNOWN_KEY_OR_EMAIL)

    def test_the_key_decides_the_account_not_the_email(self, world: World) -> None:
        # Stranger, in the other organization, has Globex's e-mail too: each key sees its own account's items.
        for name in ("Globex", "Stranger"):
            response = world.get(headers=email_headers("billing@globex.example", world.key(name)))
            assert response.status_code == 200, response.text
            assert exact(response) == world.ok(world.key(name))
        zones = {item["zone"]["name"] for item in world.items(world.key("Stranger"))}
        assert zones == {"Stranger"}

    def test_an_organization_key_has_no_email(self, world: World) -> None:
        for email in ("Billing@Globex.example", "owner@acme.example"):
            assert_failure(world.get(headers=email_headers(email, world.tenant.key)), 403, UNKNOWN_KEY_OR_EMAIL)

    def test_a_platform_key_has_no_email(self, world: World, platform_key: str) -> None:
        headers = email_headers("Billing@Globex.example", platform_key)
        assert_failure(world.get(headers=headers), 403, UNKNOWN_KEY_OR_EMAIL)

    def test_an_account_without_email(self, world: World) -> None:
        quiet = world.tenant.create_account(name="Quiet")
        headers = email_headers("quiet@example.com", quiet["api_key"])
        assert_failure(world.get(headers=headers), 403, UNKNOWN_KEY_OR_EMAIL)

    def test_a_key_without_billing_read_is_a_403_10000(self, world: World) -> None:
        key = world.tenant.create_key(scopes=["usage:read"], account_id=world.accounts["Globex"]["id"])["key"]
        assert_failure(world.get(headers=email_headers("billing@globex.example", key)), 403, AUTHENTICATION_ERROR)

    def test_a_key_with_only_billing_read(self, world: World) -> None:
        key = world.tenant.create_key(scopes=["billing:read"], account_id=world.accounts["Globex"]["id"])["key"]
        response = world.get(headers=email_headers("billing@globex.example", key))
        assert response.status_code == 200, response.text
        assert response.json()["result_info"]["total_count"] == 8

    def test_an_unknown_key_is_a_403_9103(self, world: World) -> None:
        headers = email_headers("billing@globex.example", "mbk_" + "0" * 32 + "_" + "0" * 48)
        assert_failure(world.client.get(PATH, headers=headers), 403, UNKNOWN_KEY_OR_EMAIL)

    def test_an_unknown_key_with_a_wrong_email_is_a_403_9103(self, world: World) -> None:
        headers = email_headers("nobody@example.com", "mbk_" + "1" * 32 + "_" + "2" * 48)
        assert_failure(world.client.get(PATH, headers=headers), 403, UNKNOWN_KEY_OR_EMAIL)

    def test_a_revoked_key_is_a_403_9103(self, world: World) -> None:
        created = world.tenant.create_key(account_id=world.accounts["Globex"]["id"])
        headers = email_headers("billing@globex.example", created["key"])
        assert world.get(headers=headers).status_code == 200
        assert world.client.delete(f"/v1/api_keys/{created['id']}", headers=world.tenant.headers).status_code == 200
        assert_failure(world.get(headers=headers), 403, UNKNOWN_KEY_OR_EMAIL)

    def test_an_expired_key_is_a_403_9103(self, world: World, database: Database) -> None:
        created = world.tenant.create_key(
            account_id=world.accounts["Globex"]["id"],
            expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat(),
        )
        headers = email_headers("billing@globex.example", created["key"])
        assert world.get(headers=headers).status_code == 200
        expire(database, created["id"])
        assert_failure(world.get(headers=headers), 403, UNKNOWN_KEY_OR_EMAIL)


# --- errors and the document -----------------------------------------------------------------------


class TestErrors:
    @pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
    @pytest.mark.parametrize(
        "path",
        [
            "/client/v4",
            "/client/v4/",
            "/client/v4/user",
            "/client/v4/user/billing",
            "/client/v4/user/billing/profile",
            "/client/v4/zones",
            "/client/v4/accounts/abc/billing/history",
            "/client/v4/user/billing/history/extra",
        ],
    )
    def test_an_unknown_path_is_a_404_envelope(
        self, client: TestClient, tenant: Tenant, method: str, path: str
    ) -> None:
        response = client.request(method, path, headers=tenant.headers)
        assert_failure(response, 404, [{"code": 7003, "message": "No route for the URI"}])

    def test_an_unknown_path_without_credentials_is_a_404_too(self, client: TestClient, tenant: Tenant) -> None:
        assert_failure(client.get("/client/v4/nope"), 404, [{"code": 7003, "message": "No route for the URI"}])

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    def test_a_wrong_method_is_a_405_envelope(self, client: TestClient, tenant: Tenant, method: str) -> None:
        response = client.request(method, PATH, headers=tenant.headers)
        assert_failure(response, 405, [{"code": 7001, "message": "Method not allowed for this URI"}])
        assert response.headers["allow"] == "GET"

    def test_a_body_over_the_limit_is_a_413_envelope(self, client: TestClient, tenant: Tenant) -> None:
        response = client.request("GET", PATH, content=b"x" * (64 * 1024 + 1), headers=tenant.headers)
        assert_failure(response, 413, [{"code": 6009, "message": "Request body too large"}])

    def test_an_unexpected_failure_is_a_500_envelope_that_says_nothing_of_it(
        self, settings: Any, database: Database, monkeypatch: pytest.MonkeyPatch, tenant: Tenant
    ) -> None:
        def explode(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("secret detail")

        monkeypatch.setattr(cloudflare.invoicing, "history", explode)
        with TestClient(create_app(settings, database), raise_server_exceptions=False) as client:
            response = client.get(PATH, headers=tenant.headers)
        assert response.status_code == 500
        assert "secret detail" not in response.text
        body = response.json()
        assert (body["success"], body["messages"], body["result"]) == (False, [], None)
        (error,) = body["errors"]
        assert error["code"] == 10001
        assert re.fullmatch(r"Internal server error \(error id [0-9a-f-]{36}\)", error["message"])

    def test_other_dialects_keep_their_shapes(self, world: World) -> None:
        response = world.client.get(f"/v1/accounts/{uuid.uuid4()}", headers=world.tenant.headers)
        assert response.status_code == 404
        assert set(response.json()) == {"error", "id", "note"}
        response = world.client.get("/client/v4x/user", headers=world.tenant.headers)
        assert response.status_code == 404
        assert set(response.json()) == {"error", "id", "note"}


class TestDocument:
    def test_the_operation(self, client: TestClient) -> None:
        document = client.get("/openapi.json").json()
        operation = document["paths"][PATH]["get"]
        assert operation["tags"] == ["cloudflare"]
        assert operation["summary"] == "User Billing History"
        assert set(operation["responses"]) == {"200", "400", "403", "404", "405", "413", "500"}
        success = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert success == {"$ref": "#/components/schemas/CloudflareBillingHistoryPage"}
        for status in ("400", "403", "404", "405", "413", "500"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/CloudflareError"}, status
        assert operation["security"] == [{"HTTPBearer": []}, {"XAuthKey": []}]
        assert document["components"]["securitySchemes"]["XAuthKey"] == {
            "type": "apiKey",
            "in": "header",
            "name": "X-Auth-Key",
            "description": document["components"]["securitySchemes"]["XAuthKey"]["description"],
        }

    def test_the_parameters(self, client: TestClient) -> None:
        operation = client.get("/openapi.json").json()["paths"][PATH]["get"]
        parameters = {(item["in"], item["name"]): item["schema"] for item in operation["parameters"]}
        assert set(parameters) == {
            ("query", "page"),
            ("query", "per_page"),
            ("query", "order"),
            ("query", "type"),
            ("query", "action"),
            ("query", "occurred_at"),
            ("query", "occured_at"),
            ("header", "X-Auth-Email"),
        }
        page, per_page = parameters[("query", "page")], parameters[("query", "per_page")]
        assert (page["minimum"], page["default"]) == (1, 1)
        assert (per_page["minimum"], per_page["maximum"], per_page["default"]) == (5, 50, 20)
        assert parameters[("query", "order")]["anyOf"][0]["enum"] == ["type", "occurred_at", "occured_at", "action"]
        assert parameters[("query", "type")]["anyOf"][0]["maxLength"] == 30
        assert parameters[("query", "action")]["anyOf"][0]["maxLength"] == 30
        assert parameters[("query", "occurred_at")]["anyOf"][0] == {"type": "string", "format": "date-time"}

    def test_the_models(self, client: TestClient) -> None:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        page = schemas["CloudflareBillingHistoryPage"]
        assert set(page["required"]) == {"success", "errors", "messages", "result", "result_info"}
        item = schemas["CloudflareBillingHistory"]
        assert set(item["required"]) == ITEM_FIELDS
        assert item["properties"]["amount"]["type"] == "number"
        assert item["properties"]["occurred_at"]["format"] == "date-time"
        assert set(schemas["CloudflareResultInfo"]["required"]) == {
            "page",
            "per_page",
            "count",
            "total_count",
            "total_pages",
        }
        error = schemas["CloudflareError"]
        assert set(error["required"]) == {"success", "errors", "messages", "result"}
        assert set(schemas["CloudflareErrorItem"]["properties"]) == {"code", "message", "error_chain"}
        assert set(schemas["CloudflareErrorItem"]["required"]) == {"code", "message"}
