"""The product catalog: ``PUT /v1/products/{product_id}`` and ``GET /v1/products`` (CONTRACT §1 "product", §4;
invariants 7, 8 and 10). Prices are exact decimals and dated. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meterbook.kit import jsontext
from tests.conftest import bearer
from tests.helpers import assert_error, assert_invalid, each, rfc3339, ts

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
PRODUCT_FIELDS = {
    "product_id",
    "aggr_product_id",
    "description",
    "type",
    "unit",
    "wallet_name",
    "currency",
    "unit_price",
    "prices",
    "created_at",
    "updated_at",
}
USAGE_TYPES = [
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
]
FULL = {
    "aggr_product_id": "TD-USG-TEL",
    "description": "Inbound calls, toll free",
    "type": "CALL",
    "unit": "minute",
    "wallet_name": "telephony",
    "currency": "EUR",
}


# --- helpers ---------------------------------------------------------------------------------------


def put_text(client: Any, key: str, product_id: str, text: str) -> Any:
    """PUT a body written by hand, so that its numbers reach the server exactly as typed."""
    headers = {**bearer(key), "content-type": "application/json"}
    return client.put(f"/v1/products/{product_id}", content=text, headers=headers)


def put(client: Any, key: str, product_id: str, **body: Any) -> Any:
    body.setdefault("description", "A product")
    body.setdefault("unit_price", "1")
    return put_text(client, key, product_id, jsontext.dumps(body).decode())


def listed(client: Any, key: str) -> list[dict[str, Any]]:
    response = client.get("/v1/products", headers=bearer(key))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    for product in found:
        assert set(product) == PRODUCT_FIELDS, product
    return found


def the_product(client: Any, key: str, product_id: str) -> dict[str, Any]:
    (product,) = [p for p in listed(client, key) if p["product_id"] == product_id]
    return product


# --- create and change -----------------------------------------------------------------------------


class TestCreate:
    def test_every_field(self, client, tenant):
        response = put(client, tenant.key, "TD-USG-TEL-UG-102213", unit_price="0.067", **FULL)
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == PRODUCT_FIELDS
        assert {name: body[name] for name in FULL} == FULL
        assert body["product_id"] == "TD-USG-TEL-UG-102213"
        assert RFC3339_Z.match(body["created_at"])
        assert RFC3339_Z.match(body["updated_at"])
        assert len(body["prices"]) == 1
        assert body["prices"][0]["unit_price"] == pytest.approx(0.067)
        assert RFC3339_Z.match(body["prices"][0]["effective_from"])
        assert listed(client, tenant.key) == [body]

    def test_defaults(self, client, tenant):
        body = put(client, tenant.key, "P1", description="Plain").json()
        assert body["type"] == "OTHER"
        assert body["unit"] == "unit"
        assert body["currency"] == "USD"
        assert body["aggr_product_id"] is None
        assert body["wallet_name"] is None
        assert body["unit_price"] == 1

    def test_each_usage_type(self, client, tenant):
        def check(usage_type):
            assert put(client, tenant.key, f"P-{usage_type}", type=usage_type).status_code == 201
            assert the_product(client, tenant.key, f"P-{usage_type}")["type"] == usage_type

        each({usage_type: usage_type for usage_type in USAGE_TYPES}, check)

    def test_a_free_product(self, client, tenant):
        response = put(client, tenant.key, "FREE", unit_price=0)
        assert response.status_code == 201, response.text
        assert '"unit_price":0' in response.text

    def test_listed_by_product_id(self, client, tenant):
        for product_id in ("b", "A-1", "a.2", "C"):
            assert put(client, tenant.key, product_id).status_code == 201
        assert [p["product_id"] for p in listed(client, tenant.key)] == sorted(["b", "A-1", "a.2", "C"])


class TestChange:
    def test_a_second_put_changes_it(self, client, tenant):
        created = put(client, tenant.key, "P1", unit_price="0.5", **FULL).json()
        response = put(
            client,
            tenant.key,
            "P1",
            description="Outbound calls",
            type="MESSAGE",
            unit="message",
            currency="USD",
            unit_price="0.5",
        )
        assert response.status_code == 200, response.text
        changed = response.json()
        assert changed["description"] == "Outbound calls"
        assert (changed["type"], changed["unit"], changed["currency"]) == ("MESSAGE", "message", "USD")
        assert changed["aggr_product_id"] is None
        assert changed["wallet_name"] is None
        assert changed["created_at"] == created["created_at"]
        assert ts(changed["updated_at"]) >= ts(created["updated_at"])
        # The same price again is no new price.
        assert changed["prices"] == created["prices"]
        assert listed(client, tenant.key) == [changed]

    def test_a_later_price_keeps_both(self, client, tenant):
        created = put(client, tenant.key, "P1", unit_price="0.067").json()
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        response = put(client, tenant.key, "P1", unit_price="0.08", price_effective_from=rfc3339(later))
        assert response.status_code == 200, response.text
        listing = client.get("/v1/products", headers=tenant.headers)
        for reply in (response, listing):
            (product,) = reply.json() if isinstance(reply.json(), list) else [reply.json()]
            assert [p["effective_from"] for p in product["prices"]] == [
                created["prices"][0]["effective_from"],
                rfc3339(later),
            ]
            # The price in force now is still the first; both prices are listed, exactly.
            assert '"currency":"USD","unit_price":0.067,' in reply.text
            assert f'"prices":[{{"effective_from":"{created["prices"][0]["effective_from"]}","unit_price":0.067}},' in (
                reply.text
            )
            assert f'{{"effective_from":"{rfc3339(later)}","unit_price":0.08}}]' in reply.text

    def test_a_price_from_now_replaces_the_current_one(self, client, tenant):
        put(client, tenant.key, "P1", unit_price="2")
        response = put(client, tenant.key, "P1", unit_price="3")
        assert response.status_code == 200, response.text
        product = the_product(client, tenant.key, "P1")
        assert product["unit_price"] == 3
        assert [p["unit_price"] for p in product["prices"]] == [2, 3]

    def test_an_earlier_price_is_kept_for_earlier_usage(self, client, tenant):
        put(client, tenant.key, "P1", unit_price="2", price_effective_from="2022-01-01T00:00:00Z")
        response = put(client, tenant.key, "P1", unit_price="1", price_effective_from="2020-01-01T00:00:00Z")
        assert response.status_code == 200, response.text
        assert the_product(client, tenant.key, "P1")["prices"] == [
            {"effective_from": "2020-01-01T00:00:00Z", "unit_price": 1},
            {"effective_from": "2022-01-01T00:00:00Z", "unit_price": 2},
        ]
        assert the_product(client, tenant.key, "P1")["unit_price"] == 2

    def test_an_offset_is_stored_as_utc(self, client, tenant):
        body = put(client, tenant.key, "P1", price_effective_from="2024-03-01T02:00:00+02:00").json()
        assert body["prices"] == [{"effective_from": "2024-03-01T00:00:00Z", "unit_price": 1}]

    def test_a_product_whose_only_price_starts_later_has_no_price_now(self, client, tenant):
        later = rfc3339(datetime.now(UTC).replace(microsecond=0) + timedelta(days=3))
        body = put(client, tenant.key, "P1", unit_price="4", price_effective_from=later).json()
        assert body["unit_price"] is None
        assert body["prices"] == [{"effective_from": later, "unit_price": 4}]
        assert the_product(client, tenant.key, "P1")["unit_price"] is None


class TestExactMoney:
    def test_the_price_is_shown_as_its_exact_decimal(self, client, tenant):
        cases = {
            "0.067": ("0.067", "0.067"),
            "'0.067'": ('"0.067"', "0.067"),
            "0.1": ("0.1", "0.1"),
            "0.30": ("0.30", "0.3"),
            "nine decimals": ("0.000000001", "0.000000001"),
            "'1E-9'": ('"1E-9"', "0.000000001"),
            "100": ("100", "100"),
            "100.000": ("100.000", "100"),
            "seventeen digits": ("12345678.123456789", "12345678.123456789"),
            "trailing zeros past nine decimals": ("1.10000000000", "1.1"),
        }

        def check(case):
            sent, shown = case
            product_id = f"P-{uuid.uuid4().hex[:8]}"
            response = put_text(client, tenant.key, product_id, f'{{"description":"d","unit_price":{sent}}}')
            assert response.status_code == 201, response.text
            assert f'"unit_price":{shown},' in response.text
            listed_text = client.get("/v1/products", headers=tenant.headers).text
            product_text = listed_text[listed_text.index(f'"product_id":"{product_id}"') :]
            product_text = product_text[: product_text.index("}]")]
            assert f'"unit_price":{shown},' in product_text
            assert product_text.endswith(f'"unit_price":{shown}')  # in the prices list too

        each(cases, check)


# --- refused ---------------------------------------------------------------------------------------


class TestInvalid:
    def test_a_bad_field_is_refused(self, client, tenant):
        cases = {
            "unknown type": ({"type": "FAX"}, "body.type"),
            "lower-case type": ({"type": "call"}, "body.type"),
            "unknown currency": ({"currency": "XYZ"}, "body.currency"),
            "lower-case currency": ({"currency": "usd"}, "body.currency"),
            "long currency": ({"currency": "DOLLARS"}, "body.currency"),
            "negative price": ({"unit_price": "-0.01"}, "body.unit_price"),
            "ten decimals": ({"unit_price": "0.0000000001"}, "body.unit_price"),
            "ten decimals again": ({"unit_price": "1.1234567891"}, "body.unit_price"),
            "NaN": ({"unit_price": "NaN"}, "body.unit_price"),
            "Infinity": ({"unit_price": "Infinity"}, "body.unit_price"),
            "not a number": ({"unit_price": "cheap"}, "body.unit_price"),
            "null price": ({"unit_price": None}, "body.unit_price"),
            "boolean price": ({"unit_price": True}, "body.unit_price"),
            "empty description": ({"description": ""}, "body.description"),
            "long description": ({"description": "x" * 256}, "body.description"),
            "empty unit": ({"unit": ""}, "body.unit"),
            "date without offset": ({"price_effective_from": "2024-01-01T00:00:00"}, "body.price_effective_from"),
            "not a date": ({"price_effective_from": "soon"}, "body.price_effective_from"),
        }

        def check(case):
            body, path = case
            assert_invalid(put(client, tenant.key, "P1", **body), path)
            assert listed(client, tenant.key) == []

        each(cases, check)

    def test_ten_decimals_as_a_json_number(self, client, tenant):
        response = put_text(client, tenant.key, "P1", '{"description":"d","unit_price":0.0670000001}')
        assert_invalid(response, "body.unit_price")
        assert listed(client, tenant.key) == []

    def test_a_required_field_is_missing(self, client, tenant):
        def check(missing):
            body = {"description": "d", "unit_price": 1}
            del body[missing]
            assert_invalid(put_text(client, tenant.key, "P1", jsontext.dumps(body).decode()), f"body.{missing}")
            assert listed(client, tenant.key) == []

        each({"description": "description", "unit_price": "unit_price"}, check)

    def test_a_bad_product_id_is_refused(self, client, tenant):
        def check(product_id):
            assert_invalid(put(client, tenant.key, product_id), "path.product_id")
            assert listed(client, tenant.key) == []

        each({product_id: product_id for product_id in ["bad%20id", "-x", "a%2Ab", "x" * 101]}, check)

    def test_a_refused_change_keeps_the_product(self, client, tenant):
        created = put(client, tenant.key, "P1", unit_price="0.5", **FULL).json()
        assert_invalid(put(client, tenant.key, "P1", unit_price="-1", **FULL), "body.unit_price")
        assert_invalid(put(client, tenant.key, "P1", unit_price="2", type="NOPE"), "body.type")
        assert listed(client, tenant.key) == [created]


# --- who may ---------------------------------------------------------------------------------------


class TestReach:
    def test_another_organization_does_not_see_them(self, client, tenant, other_tenant):
        mine = put(client, tenant.key, "P1", unit_price="0.5").json()
        assert listed(client, other_tenant.key) == []
        theirs = put(client, other_tenant.key, "P1", unit_price="9")
        assert theirs.status_code == 201, theirs.text
        assert listed(client, tenant.key) == [mine]
        assert [p["unit_price"] for p in listed(client, other_tenant.key)] == [9]

    def test_put_needs_catalog_write(self, client, tenant):
        key = tenant.create_key(scopes=["usage:read", "usage:write", "billing:write", "accounts:write"])["key"]
        body = assert_error(put(client, key, "P1"), 403, "FORBIDDEN")
        assert "catalog:write" in body["note"]
        assert listed(client, tenant.key) == []

    def test_a_key_with_only_catalog_write_may_put(self, client, tenant):
        key = tenant.create_key(scopes=["catalog:write"])["key"]
        assert put(client, key, "P1").status_code == 201
        assert [p["product_id"] for p in listed(client, tenant.key)] == ["P1"]

    def test_no_key(self, client, tenant):
        response = client.put("/v1/products/P1", json={"description": "d", "unit_price": 1})
        assert_error(response, 401, "MISSING_API_KEY")
        assert listed(client, tenant.key) == []
