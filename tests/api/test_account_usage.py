"""Monthly usage aggregates: ``GET /v1/monthly_usage?account_id=&from=YYYY-MM&to=YYYY-MM``.

(``/v1/accounts/{id}/usage`` is the Faraday dialect's usage summary: ``tests/api/test_faraday_usage.py``.)

CONTRACT §1 (monthly aggregate), §4 (events, products, usage); invariants 6, 7, 8 and 10.

Events are sent through ``POST /v1/events`` and the aggregates are read back as a client sees them:
the status, the parsed body, and the raw JSON text of every number (exact decimals, no exponent, no
float artefacts). Every test runs on SQLite and on PostgreSQL (through the ``client`` fixture).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from meterbook.db.tables import monthly_aggregates, usage_events
from meterbook.kit import jsontext
from tests.conftest import bearer
from tests.helpers import rfc3339

AGGREGATE_FIELDS = {
    "id",
    "account_id",
    "product_id",
    "aggr_product_id",
    "description",
    "month",
    "type",
    "direction",
    "resolution",
    "unit",
    "currency",
    "wallet_name",
    "price",
    "number_of_units",
    "total_amount",
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
# A JSON number written as a plain decimal: no exponent, no NaN, no leading "+".
PLAIN_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")


# --- helpers ---------------------------------------------------------------------------------------


class RawNumber(str):
    """A JSON number as the text the server wrote, kept for inspection."""

    __slots__ = ()


def parse_raw(text: str) -> Any:
    """The body, with every number left as the exact text the server wrote."""
    return json.loads(text, parse_float=RawNumber, parse_int=RawNumber)


def exact(raw: Any) -> Decimal:
    """The decimal a raw JSON number stands for; fails unless it is a plain decimal number in the JSON text."""
    assert isinstance(raw, RawNumber), f"{raw!r} is not a JSON number"
    assert PLAIN_NUMBER.match(raw), f"{raw!r} is not written as a plain decimal"
    return Decimal(raw)


def product_of(units: Decimal, price: Decimal) -> Decimal:
    """units x price with every digit kept (the default context keeps only 28)."""
    with localcontext() as context:
        context.prec = 100
        return units * price


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The Faraday error shape: error, id (uuid), note, and validationErrors only on VALIDATION_FAILED."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    expected = {"error", "id", "note"} | ({"validationErrors"} if code == "VALIDATION_FAILED" else set())
    assert set(body) == expected, body
    assert body["error"] == code
    uuid.UUID(body["id"])
    assert body["note"].strip()
    return body


def assert_invalid(response: Any, path: str) -> dict[str, Any]:
    """400 VALIDATION_FAILED naming ``path`` in a validation error and in the note."""
    body = assert_error(response, 400, "VALIDATION_FAILED")
    assert path in [item["path"] for item in body["validationErrors"]], body
    assert path in body["note"], body
    return body


@dataclass
class Shop:
    """A tenant with two sibling accounts (``account``, ``sibling``) and helpers for products and events."""

    client: TestClient
    tenant: Any
    database: Any
    account: dict[str, Any]
    sibling: dict[str, Any]
    counter: int = 0

    @property
    def key(self) -> str:
        return str(self.tenant.key)

    @property
    def aid(self) -> str:
        return str(self.account["id"])

    def put_product(self, product_id: str, unit_price: Any, **body: Any) -> dict[str, Any]:
        body = {"description": f"Product {product_id}", "unit_price": unit_price, **body}
        response = self.client.put(
            f"/v1/products/{product_id}",
            content=jsontext.dumps(body),
            headers={**self.tenant.headers, "content-type": "application/json"},
        )
        assert response.status_code in (200, 201), response.text
        created: dict[str, Any] = response.json()
        return created

    def event(self, product_id: str, quantity: Any, occurred_at: datetime | None, **extra: Any) -> dict[str, Any]:
        self.counter += 1
        event = {
            "id": f"ev-{self.counter}-{uuid.uuid4().hex[:8]}",
            "account_id": self.aid,
            "type": "metered",
            "product_id": product_id,
            "quantity": quantity,
            **extra,
        }
        if occurred_at is not None:
            event["occurred_at"] = rfc3339(occurred_at)
        return event

    def post_events(self, events: list[dict[str, Any]]) -> Any:
        return self.client.post(
            "/v1/events",
            content=jsontext.dumps(events),
            headers={**self.tenant.headers, "content-type": "application/json"},
        )

    def send(self, *events: dict[str, Any]) -> None:
        response = self.post_events(list(events))
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": len(events), "duplicates": 0}

    def get_usage(self, account_id: str | None = None, key: str | None = None, **params: str) -> Any:
        return self.client.get(
            "/v1/monthly_usage",
            params={"account_id": account_id or self.aid, **params},
            headers=bearer(key or self.key),
        )

    def usage(self, account_id: str | None = None, **params: str) -> list[dict[str, Any]]:
        """The aggregates, every number kept as its raw JSON text."""
        response = self.get_usage(account_id, **params)
        assert response.status_code == 200, response.text
        body = parse_raw(response.text)
        assert set(body) == {"account_id", "usage"}, body
        assert body["account_id"] == (account_id or self.aid)
        found: list[dict[str, Any]] = body["usage"]
        return found


@pytest.fixture
def shop(client, tenant, database):
    account = tenant.create_account(name="Main")
    sibling = tenant.create_account(name="Sibling")
    return Shop(client=client, tenant=tenant, database=database, account=account, sibling=sibling)


def at(year: int, month: int, day: int = 15, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def only(items: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(items) == 1, items
    return items[0]


def amounts(item: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal]:
    """(price, number_of_units, total_amount) of an aggregate, each checked to be a plain exact JSON number."""
    return exact(item["price"]), exact(item["number_of_units"]), exact(item["total_amount"])


# --- the month range -------------------------------------------------------------------------------


@pytest.fixture
def four_months(shop):
    """Usage of P1 in 2024-01 .. 2024-04: 1, 2, 3 and 4 units."""
    shop.put_product("P1", "1")
    shop.send(*(shop.event("P1", month, at(2024, month)) for month in (3, 1, 4, 2)))
    return shop


class TestMonthRange:
    def test_only_the_months_in_range_both_ends_included_oldest_first(self, four_months):
        found = four_months.usage(**{"from": "2024-02", "to": "2024-03"})
        assert [item["month"] for item in found] == ["2024-02", "2024-03"]
        assert [exact(item["number_of_units"]) for item in found] == [2, 3]

    def test_without_a_range_every_month_oldest_first(self, four_months):
        found = four_months.usage()
        assert [item["month"] for item in found] == ["2024-01", "2024-02", "2024-03", "2024-04"]

    def test_from_alone_is_open_ended(self, four_months):
        assert [item["month"] for item in four_months.usage(**{"from": "2024-03"})] == ["2024-03", "2024-04"]

    def test_to_alone_is_open_ended(self, four_months):
        assert [item["month"] for item in four_months.usage(to="2024-02")] == ["2024-01", "2024-02"]

    def test_one_month_range(self, four_months):
        found = four_months.usage(**{"from": "2024-04", "to": "2024-04"})
        assert [(item["month"], exact(item["number_of_units"])) for item in found] == [("2024-04", 4)]

    def test_a_range_without_usage_is_empty(self, four_months):
        assert four_months.usage(**{"from": "2023-01", "to": "2023-12"}) == []

    def test_months_follow_utc(self, shop):
        shop.put_product("P1", "1")
        last_instant_of_january = datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
        first_instant_of_february = datetime(2024, 2, 1, tzinfo=UTC)
        # 2024-02-01T00:30+01:00 is still January in UTC.
        shop.send(
            shop.event("P1", 1, last_instant_of_january),
            shop.event("P1", 2, first_instant_of_february),
            {**shop.event("P1", 4, None), "occurred_at": "2024-02-01T00:30:00+01:00"},
        )
        found = shop.usage()
        assert [(item["month"], exact(item["number_of_units"])) for item in found] == [("2024-01", 5), ("2024-02", 2)]

    def test_an_account_without_usage_has_none(self, shop):
        assert shop.usage() == []


# --- the fields ------------------------------------------------------------------------------------


class TestFields:
    def test_every_field_of_an_aggregate(self, shop):
        shop.put_product(
            "TD-USG-TEL-UG-102213",
            "0.25",
            description="Inbound calls",
            type="CALL",
            unit="minute",
            aggr_product_id="TD-AGGR-CALLS",
            wallet_name="voice",
            currency="EUR",
        )
        shop.send(
            shop.event("TD-USG-TEL-UG-102213", "3", at(2024, 5), direction="INBOUND", resolution="hd"),
            shop.event("TD-USG-TEL-UG-102213", "1.5", at(2024, 5, 20), direction="INBOUND", resolution="hd"),
        )
        item = only(shop.usage())
        assert set(item) == AGGREGATE_FIELDS
        assert HEX32.match(item["id"]), item["id"]
        assert item["account_id"] == shop.aid
        assert item["product_id"] == "TD-USG-TEL-UG-102213"
        assert item["aggr_product_id"] == "TD-AGGR-CALLS"
        assert item["description"] == "Inbound calls"
        assert item["month"] == "2024-05"
        assert item["type"] == "CALL"
        assert item["direction"] == "INBOUND"
        assert item["resolution"] == "hd"
        assert item["unit"] == "minute"
        assert item["currency"] == "EUR"
        assert item["wallet_name"] == "voice"
        assert amounts(item) == (Decimal("0.25"), Decimal("4.5"), Decimal("1.125"))

    def test_optional_fields_are_null_when_absent(self, shop):
        shop.put_product("P1", "2")
        shop.send(shop.event("P1", 1, at(2024, 5)))
        item = only(shop.usage())
        assert item["aggr_product_id"] is None
        assert item["direction"] is None
        assert item["resolution"] is None
        assert item["wallet_name"] is None
        assert item["type"] == "OTHER"
        assert item["unit"] == "unit"
        assert item["currency"] == "USD"

    def test_the_description_is_the_products_current_one(self, shop):
        shop.put_product("P1", "2", description="Old words")
        shop.send(shop.event("P1", 1, at(2024, 5)))
        shop.put_product("P1", "2", description="New words")
        assert only(shop.usage())["description"] == "New words"

    def test_the_id_is_stable_and_distinct_per_aggregate(self, shop):
        shop.put_product("P1", "2")
        shop.put_product("P2", "2")
        shop.send(shop.event("P1", 1, at(2024, 5)), shop.event("P2", 1, at(2024, 5)), shop.event("P1", 1, at(2024, 6)))
        first = shop.usage()
        shop.send(shop.event("P1", 1, at(2024, 5, 3)))
        second = shop.usage()
        assert [item["id"] for item in first] == [item["id"] for item in second]
        assert len({item["id"] for item in first}) == 3

    def test_the_stored_row_is_what_the_api_shows(self, shop):
        shop.put_product("P1", "0.5")
        shop.send(shop.event("P1", "1.25", at(2024, 5)), shop.event("P1", "2.75", at(2024, 5)))
        item = only(shop.usage())
        with shop.database.read() as conn:
            row = conn.execute(select(monthly_aggregates).where(monthly_aggregates.c.id == item["id"])).one()
        assert (row.units_whole, row.units_nanos, row.event_count) == (4, 0, 2)
        assert row.price == Decimal("0.5")


# --- exact money -----------------------------------------------------------------------------------


class TestExactMoney:
    def test_0_067_times_55(self, shop):
        shop.put_product("P1", "0.067")
        shop.send(shop.event("P1", 55, at(2024, 5)))
        response = shop.get_usage()
        assert '"total_amount":3.685' in response.text, response.text
        assert amounts(only(parse_raw(response.text)["usage"])) == (Decimal("0.067"), 55, Decimal("3.685"))

    def test_the_smallest_quantity_times_the_smallest_price(self, shop):
        shop.put_product("P1", "0.000000001")
        shop.send(shop.event("P1", "0.000000001", at(2024, 5)))
        response = shop.get_usage()
        assert '"price":0.000000001' in response.text, response.text
        assert '"number_of_units":0.000000001' in response.text, response.text
        assert '"total_amount":0.000000000000000001' in response.text, response.text
        assert amounts(only(parse_raw(response.text)["usage"]))[2] == Decimal("1E-18")

    def test_tenths_add_up_exactly(self, shop):
        shop.put_product("P1", "0.1")
        shop.send(*(shop.event("P1", 0.1, at(2024, 5)) for _ in range(3)))
        response = shop.get_usage()
        assert '"number_of_units":0.3' in response.text, response.text
        assert amounts(only(parse_raw(response.text)["usage"])) == (Decimal("0.1"), Decimal("0.3"), Decimal("0.03"))

    def test_units_add_up_exactly_to_the_most_an_aggregate_holds_and_no_further(self, shop):
        largest = "999999999999999999.999999999"
        shop.put_product("P1", "1")
        shop.send(*(shop.event("P1", largest, at(2024, 5)) for _ in range(9)))
        assert amounts(only(shop.usage()))[1] == Decimal("8999999999999999999.999999991")
        # 28 digits summed exactly; one more would pass 2**63 - 1 whole units: refused whole, nothing applied.
        refused = shop.post_events([shop.event("P1", "1", at(2024, 5)), shop.event("P1", largest, at(2024, 5))])
        body = assert_error(refused, 409, "CONFLICT")
        assert "P1" in body["note"], body
        assert "2024-05" in body["note"], body
        assert amounts(only(shop.usage()))[1] == Decimal("8999999999999999999.999999991")
        with shop.database.read() as conn:
            assert conn.execute(select(func.count()).select_from(usage_events)).scalar_one() == 9

    def test_exactly_the_most_an_aggregate_holds_is_accepted(self, shop):
        largest = "999999999999999999.999999999"
        shop.put_product("P1", "0")
        shop.send(*(shop.event("P1", largest, at(2024, 5)) for _ in range(9)))
        # The rest up to 2**63 - 1 whole units and 999,999,999 nano-units: the documented maximum, to the nano-unit.
        shop.send(shop.event("P1", "223372036854775808.000000008", at(2024, 5)))
        assert amounts(only(shop.usage()))[1] == Decimal("9223372036854775807.999999999")
        refused = shop.post_events([shop.event("P1", "0.000000001", at(2024, 5))])
        assert_error(refused, 409, "CONFLICT")
        assert amounts(only(shop.usage()))[1] == Decimal("9223372036854775807.999999999")

    @pytest.mark.parametrize(
        ("quantity", "price"),
        [
            ("1.123456789", "0.987654321"),
            ("0.123456789", "0.000000001"),
            ("1234567.891234567", "1234.567891234"),
            ("12345678.912345678", "1234.567891237"),
            ("123456789.123456789", "987654321.123456789"),
            ("999999999999999999.999999999", "8999999999.999999999"),
        ],
    )
    def test_a_total_keeps_every_digit_of_units_times_price(self, shop, quantity, price):
        shop.put_product("P1", price)
        shop.send(shop.event("P1", quantity, at(2024, 5)))
        item = only(shop.usage())
        assert amounts(item) == (Decimal(price), Decimal(quantity), product_of(Decimal(quantity), Decimal(price)))

    @pytest.mark.parametrize(
        ("quantities", "price"),
        [
            (["0.999999999", "0.000000001", "0.999999999"], "2"),
            (["0.3", "0.3", "0.3", "0.3"], "0.000000007"),
            (["0.6", "0.6"], "1"),
            (["1.000000001", "2.999999999", "500000000.5", "0.5"], "3.5"),
        ],
    )
    def test_units_added_by_separate_requests_are_exact(self, shop, quantities, price):
        shop.put_product("P1", price)
        for quantity in quantities:  # one request each: every one after the first adds to the stored aggregate
            shop.send(shop.event("P1", quantity, at(2024, 5)))
        units = sum((Decimal(q) for q in quantities), Decimal(0))
        item = only(shop.usage())
        assert amounts(item) == (Decimal(price), units, product_of(units, Decimal(price)))

    def test_units_added_in_one_request_are_exact(self, shop):
        shop.put_product("P1", "2")
        shop.send(*(shop.event("P1", q, at(2024, 5)) for q in ("0.999999999", "0.000000001", "0.999999999", "0.6")))
        assert amounts(only(shop.usage())) == (2, Decimal("2.599999999"), Decimal("5.199999998"))

    def test_numbers_are_written_without_exponent(self, shop):
        shop.put_product("P1", "100")
        shop.send(shop.event("P1", "1000", at(2024, 5)))
        response = shop.get_usage()
        assert '"price":100,' in response.text, response.text
        assert '"number_of_units":1000,' in response.text, response.text
        assert re.search(r'"total_amount":100000(\.0+)?[,}]', response.text), response.text

    def test_a_zero_price_gives_a_zero_total(self, shop):
        shop.put_product("P1", "0")
        shop.send(shop.event("P1", "2.5", at(2024, 5)))
        assert amounts(only(shop.usage())) == (0, Decimal("2.5"), 0)


# --- how events are rated --------------------------------------------------------------------------


class TestRating:
    def test_a_past_price_change_prices_late_events_by_their_date(self, shop):
        shop.put_product("P1", "2")
        change = datetime(2024, 3, 15, tzinfo=UTC)
        shop.put_product("P1", "3", price_effective_from=rfc3339(change))
        shop.send(
            shop.event("P1", 5, change - timedelta(days=5)),
            shop.event("P1", 7, change + timedelta(days=5)),
            shop.event("P1", 1, change),  # in force from that instant on
            shop.event("P1", 10, change - timedelta(microseconds=1)),
        )
        found = shop.usage()
        assert {item["month"] for item in found} == {"2024-03"}
        by_price = {exact(item["price"]): item for item in found}
        assert set(by_price) == {2, 3}
        assert amounts(by_price[Decimal(2)]) == (2, 15, 30)
        assert amounts(by_price[Decimal(3)]) == (3, 8, 24)
        assert by_price[Decimal(2)]["id"] != by_price[Decimal(3)]["id"]

    def test_a_price_change_applies_to_later_months_too(self, shop):
        shop.put_product("P1", "2")
        shop.put_product("P1", "0.5", price_effective_from="2024-03-15T00:00:00Z")
        shop.send(shop.event("P1", 4, at(2024, 2)), shop.event("P1", 4, at(2024, 6)))
        found = shop.usage()
        assert [(item["month"], *amounts(item)) for item in found] == [("2024-02", 2, 4, 8), ("2024-06", 0.5, 4, 2)]

    def test_a_credit_event_with_a_product_is_aggregated(self, shop):
        granted = shop.client.post(
            f"/v1/accounts/{shop.aid}/credits", json={"id": "grant-1", "amount": 100}, headers=shop.tenant.headers
        )
        assert granted.status_code == 201, granted.text
        shop.put_product("REPORT", "0.75", description="Reports")
        shop.send({**shop.event("REPORT", 4, at(2024, 5)), "type": "credit"})
        item = only(shop.usage())
        assert item["product_id"] == "REPORT"
        assert amounts(item) == (Decimal("0.75"), 4, 3)
        balance = shop.client.get(f"/v1/accounts/{shop.aid}/credits", headers=shop.tenant.headers)
        assert balance.json()["balance"] == 96

    def test_directions_are_separate_aggregates(self, shop):
        shop.put_product("P1", "1")
        shop.send(
            shop.event("P1", 1, at(2024, 5), direction="INBOUND"),
            shop.event("P1", 2, at(2024, 5), direction="OUTBOUND"),
            shop.event("P1", 4, at(2024, 5, 16), direction="INBOUND"),
            shop.event("P1", 8, at(2024, 5)),
        )
        found = shop.usage()
        units = {item["direction"]: exact(item["number_of_units"]) for item in found}
        assert units == {"INBOUND": 5, "OUTBOUND": 2, None: 8}
        assert len({item["id"] for item in found}) == 3

    def test_accounts_are_separate_aggregates(self, shop):
        shop.put_product("P1", "1")
        elsewhere = {**shop.event("P1", 2, at(2024, 5)), "account_id": shop.sibling["id"]}
        shop.send(shop.event("P1", 1, at(2024, 5)), elsewhere)
        assert [exact(item["number_of_units"]) for item in shop.usage()] == [1]
        assert [exact(item["number_of_units"]) for item in shop.usage(shop.sibling["id"])] == [2]

    def test_a_duplicate_event_is_not_counted_twice(self, shop):
        shop.put_product("P1", "1")
        event = shop.event("P1", "1.5", at(2024, 5))
        shop.send(event)
        again = shop.post_events([event, {**event, "quantity": 1.5}])
        assert again.status_code == 200, again.text
        assert again.json() == {"accepted": 0, "duplicates": 2}
        assert amounts(only(shop.usage()))[1] == Decimal("1.5")

    def test_an_event_without_a_price_in_force_is_refused_and_nothing_is_written(self, shop):
        shop.put_product("P1", "1")
        future = datetime.now(UTC) + timedelta(days=30)
        created = shop.put_product("LATER", "5", price_effective_from=rfc3339(future))
        assert created["unit_price"] is None
        response = shop.post_events([shop.event("LATER", 1, at(2024, 5)), shop.event("P1", 1, at(2024, 5))])
        body = assert_invalid(response, "body.0.occurred_at")
        assert "body.1" not in json.dumps(body["validationErrors"])
        assert shop.usage() == []
        with shop.database.read() as conn:
            stored = conn.execute(
                select(func.count())
                .select_from(usage_events)
                .where(usage_events.c.organization_id == uuid.UUID(shop.tenant.id))
            ).scalar_one()
            aggregated = conn.execute(
                select(func.count())
                .select_from(monthly_aggregates)
                .where(monthly_aggregates.c.organization_id == uuid.UUID(shop.tenant.id))
            ).scalar_one()
        assert (stored, aggregated) == (0, 0)

    def test_an_event_without_a_time_before_the_first_price_is_refused(self, shop):
        future = datetime.now(UTC) + timedelta(days=30)
        shop.put_product("LATER", "5", price_effective_from=rfc3339(future))
        assert_invalid(shop.post_events([shop.event("LATER", 1, None)]), "body.0.occurred_at")
        assert shop.usage() == []


# --- bad input -------------------------------------------------------------------------------------


class TestBadRange:
    @pytest.mark.parametrize("value", ["2026-13", "26-01", "", "2026-00", "2026-1", "2026-01-01", "202601"])
    @pytest.mark.parametrize("name", ["from", "to"])
    def test_a_malformed_month_is_refused(self, shop, name, value):
        assert_invalid(shop.get_usage(**{name: value}), f"query.{name}")

    def test_a_non_uuid_account_is_a_validation_error(self, shop):
        response = shop.client.get("/v1/monthly_usage?account_id=not-a-uuid", headers=shop.tenant.headers)
        assert_invalid(response, "query.account_id")

    def test_a_missing_account_is_a_validation_error(self, shop):
        response = shop.client.get("/v1/monthly_usage?from=2026-01&to=2026-02", headers=shop.tenant.headers)
        assert_invalid(response, "query.account_id")


# --- who may read ----------------------------------------------------------------------------------


class TestReach:
    @pytest.fixture
    def used(self, shop):
        shop.put_product("P1", "1")
        shop.send(shop.event("P1", 1, at(2024, 5)))
        return shop

    def test_another_organizations_key_gets_not_found(self, used, other_tenant):
        body = assert_error(used.get_usage(key=other_tenant.key), 404, "NOT_FOUND")
        assert "P1" not in json.dumps(body)

    def test_a_sibling_accounts_key_gets_not_found(self, used):
        body = assert_error(used.get_usage(key=used.sibling["api_key"]), 404, "NOT_FOUND")
        assert "P1" not in json.dumps(body)

    def test_an_unknown_account_is_not_found(self, used):
        assert_error(used.get_usage(str(uuid.uuid4())), 404, "NOT_FOUND")

    def test_the_accounts_own_key_reads_it(self, used):
        response = used.get_usage(key=used.account["api_key"])
        assert response.status_code == 200, response.text
        assert len(response.json()["usage"]) == 1

    def test_a_parent_accounts_key_reads_a_subaccount(self, used):
        child = used.tenant.create_account(key=used.account["api_key"], name="Child")
        used.send({**used.event("P1", 3, at(2024, 5)), "account_id": child["id"]})
        response = used.get_usage(child["id"], key=used.account["api_key"])
        assert response.status_code == 200, response.text
        assert [item["account_id"] for item in response.json()["usage"]] == [child["id"]]

    def test_a_key_without_usage_read_is_forbidden(self, used):
        key = used.tenant.create_key(scopes=["accounts:read", "billing:read"])["key"]
        assert_error(used.get_usage(key=key), 403, "FORBIDDEN")

    def test_a_key_with_usage_read_reads(self, used):
        key = used.tenant.create_key(scopes=["usage:read"])["key"]
        assert used.get_usage(key=key).status_code == 200

    def test_no_key_is_unauthorized(self, used):
        response = used.client.get(f"/v1/monthly_usage?account_id={used.aid}")
        assert_error(response, 401, "MISSING_API_KEY")


# --- Faraday's usage summaries: /v1/accounts/{id}/usage, /v1/accounts/current/usage(/all) (CONTRACT §3.1) ----

SUMMARY_FIELDS = {"id", "started_at", "finished_at", "batch_deployments", "lookup_api_requests"}


def this_month_start() -> str:
    now = datetime.now(UTC)
    return f"{now.year:04d}-{now.month:02d}-01T00:00:00Z"


def last_month_at() -> datetime:
    """Noon on the 15th of the month before the current one (UTC)."""
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 2
    return at(index // 12, index % 12 + 1)


def summary(shop: Shop, path: str, key: str) -> dict[str, Any]:
    response = shop.client.get(f"/v1/accounts/{path}", headers=bearer(key))
    assert response.status_code == 200, response.text
    body = parse_raw(response.text)
    assert set(body) == SUMMARY_FIELDS, body
    uuid.UUID(body["id"])
    assert body["started_at"] == this_month_start()
    assert RFC3339_Z.match(body["finished_at"]), body
    for name in ("batch_deployments", "lookup_api_requests"):
        assert isinstance(body[name], RawNumber), body
        assert PLAIN_NUMBER.match(body[name]), body
    return body


def counts(body: dict[str, Any]) -> tuple[Decimal, Decimal]:
    return Decimal(body["batch_deployments"]), Decimal(body["lookup_api_requests"])


RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


@pytest.fixture
def counted(shop: Shop) -> Shop:
    """Main's usage: products ``lookup_api_requests`` (2.5 + 3 this month, 7 last month) and ``batch_deployments``
    (2), a monthly feature ``batch_deployments`` (4 in use), and another product (ignored); the sibling uses 100."""
    shop.put_product("lookup_api_requests", "0.01")
    shop.put_product("batch_deployments", "1")
    shop.put_product("OTHER", "1")
    response = shop.client.put(
        "/v1/features/batch_deployments", json={"reset": "monthly", "default_limit": 10}, headers=shop.tenant.headers
    )
    assert response.status_code == 201, response.text
    shop.send(
        shop.event("lookup_api_requests", "2.5", None),
        shop.event("lookup_api_requests", 3, None),
        shop.event("lookup_api_requests", 7, last_month_at()),
        shop.event("batch_deployments", 2, None),
        shop.event("OTHER", 50, None),
        {"id": "deploy-1", "account_id": shop.aid, "type": "feature", "feature": "batch_deployments", "quantity": 4},
        {**shop.event("lookup_api_requests", 100, None), "account_id": shop.sibling["id"]},
    )
    return shop


class TestFaradaySummary:
    def test_nothing_named_so_is_zero(self, shop):
        body = summary(shop, f"{shop.aid}/usage", shop.key)
        assert counts(body) == (0, 0)
        assert (
            '"batch_deployments":0'
            in shop.client.get(f"/v1/accounts/{shop.aid}/usage", headers=shop.tenant.headers).text
        )

    def test_this_months_usage_of_the_features_and_products_so_named(self, counted):
        body = summary(counted, f"{counted.aid}/usage", counted.key)
        # batch_deployments: 4 of the feature + 2 units of the product; lookups: 2.5 + 3 (not last month's 7).
        assert counts(body) == (Decimal(6), Decimal("5.5"))
        assert body["lookup_api_requests"] == "5.5"

    def test_the_current_account_is_the_keys_own(self, counted):
        by_id = summary(counted, f"{counted.aid}/usage", counted.key)
        current = summary(counted, "current/usage", counted.account["api_key"])
        assert current == {**by_id, "finished_at": current["finished_at"]}
        assert summary(counted, "current/usage", counted.sibling["api_key"])["lookup_api_requests"] == "100"

    def test_all_adds_up_the_subaccounts_at_any_depth(self, counted):
        child = counted.tenant.create_account(key=counted.account["api_key"], name="Child")
        grandchild = counted.tenant.create_account(key=child["api_key"], name="Grandchild")
        for account, quantity in ((child, "0.5"), (grandchild, 4)):
            counted.send({**counted.event("lookup_api_requests", quantity, None), "account_id": account["id"]})
        deploy = {"id": "deploy-2", "account_id": grandchild["id"], "type": "feature", "feature": "batch_deployments"}
        counted.send({**deploy, "quantity": 1})
        key = counted.account["api_key"]
        everything = summary(counted, "current/usage/all", key)
        assert counts(everything) == (Decimal(7), Decimal(10))  # the sibling's 100 is not in it
        alone = summary(counted, "current/usage", key)
        assert counts(alone) == (Decimal(6), Decimal("5.5"))
        assert everything["id"] != alone["id"]
        assert counts(summary(counted, f"{child['id']}/usage", key)) == (
            0,
            Decimal("0.5"),
        )  # one account, not its subtree
        assert counts(summary(counted, "current/usage/all", child["api_key"])) == (Decimal(1), Decimal("4.5"))

    def test_the_id_is_the_same_when_read_again(self, counted):
        first = summary(counted, f"{counted.aid}/usage", counted.key)
        counted.send(counted.event("lookup_api_requests", 1, None))
        again = summary(counted, f"{counted.aid}/usage", counted.key)
        assert again["id"] == first["id"]
        assert counts(again) == (Decimal(6), Decimal("6.5"))

    def test_an_archived_accounts_key_still_reads_it(self, counted):
        key = counted.account["api_key"]
        assert counted.client.delete(f"/v1/accounts/{counted.aid}", headers=counted.tenant.headers).status_code == 202
        assert counts(summary(counted, "current/usage", key)) == (Decimal(6), Decimal("5.5"))

    def test_a_forever_feature_counts_what_is_in_use(self, shop):
        response = shop.client.put("/v1/features/lookup_api_requests", json={}, headers=shop.tenant.headers)
        assert response.status_code == 201, response.text
        use = {"id": "lookups", "account_id": shop.aid, "type": "feature", "feature": "lookup_api_requests"}
        shop.send({**use, "quantity": 3})
        assert counts(summary(shop, f"{shop.aid}/usage", shop.key)) == (0, 3)


SUMMARY_PATHS = ["{aid}/usage", "current/usage", "current/usage/all"]


class TestFaradaySummaryRefusals:
    def get(self, shop: Shop, path: str, key: str | None) -> Any:
        return shop.client.get(f"/v1/accounts/{path.format(aid=shop.aid)}", headers=bearer(key) if key else {})

    def test_another_organizations_key_gets_not_found(self, counted, other_tenant):
        for path in SUMMARY_PATHS:
            body = assert_error(self.get(counted, path, other_tenant.key), 404, "NOT_FOUND")
            assert "5.5" not in json.dumps(body)
        stranger = other_tenant.create_account(name="Stranger")
        assert_error(self.get(counted, "{aid}/usage", stranger["api_key"]), 404, "NOT_FOUND")
        assert counts(summary(counted, "current/usage/all", stranger["api_key"])) == (0, 0)

    def test_a_sibling_or_a_subaccount_does_not_reach(self, counted):
        assert_error(self.get(counted, "{aid}/usage", counted.sibling["api_key"]), 404, "NOT_FOUND")
        child = counted.tenant.create_account(key=counted.account["api_key"], name="Child")
        assert_error(self.get(counted, "{aid}/usage", child["api_key"]), 404, "NOT_FOUND")

    def test_an_organization_key_has_no_current_account(self, counted):
        for path in SUMMARY_PATHS[1:]:
            body = assert_error(self.get(counted, path, counted.key), 404, "NOT_FOUND")
            assert "organization key" in body["note"]

    def test_a_malformed_or_unknown_account(self, shop):
        body = assert_error(
            shop.client.get("/v1/accounts/not-a-uuid/usage", headers=shop.tenant.headers), 400, "VALIDATION_FAILED"
        )
        assert [item["path"] for item in body["validationErrors"]] == ["path.account_id"]
        assert_error(
            shop.client.get(f"/v1/accounts/{uuid.uuid4()}/usage", headers=shop.tenant.headers), 404, "NOT_FOUND"
        )

    def test_without_the_usage_read_scope(self, counted):
        key = counted.tenant.create_key(account_id=counted.aid, scopes=["accounts:read", "billing:read"])["key"]
        for path in SUMMARY_PATHS:
            assert_error(self.get(counted, path, key), 403, "FORBIDDEN")

    def test_without_a_key_or_with_a_malformed_one(self, counted):
        for path in SUMMARY_PATHS:
            assert_error(self.get(counted, path, None), 401, "MISSING_API_KEY")
            assert_error(self.get(counted, path, "not-a-key"), 401, "MALFORMED_API_KEY")

    def test_the_native_query_is_not_taken(self, counted):
        # The old native form: its from/to are not Faraday's; the summary is this month's whatever they say.
        response = counted.client.get(
            f"/v1/accounts/{counted.aid}/usage?from=2020-01&to=2020-02", headers=counted.tenant.headers
        )
        assert response.status_code == 200, response.text
        assert set(response.json()) == SUMMARY_FIELDS
