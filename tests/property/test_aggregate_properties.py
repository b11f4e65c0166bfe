"""Monthly aggregates equal their recomputation from the accepted events (CONTRACT §1; invariants 1, 2, 6, 7).

Hypothesis builds a fresh organization per example (accounts, products whose prices have up to nine
decimals, some with dated price changes), then sends random streams of metered events over four past
months in random batches that mix new events, exact retries (duplicates, sometimes with the quantity
written differently), conflicting reuses of an id in its account (409: the whole batch is refused)
and reuses of an id in another account (another event: ids are per account, invariant 1). The test
keeps its own model of what the server must have accepted and checks, after the stream:

* ``GET /v1/monthly_usage`` and the ``monthly_aggregates`` table equal a recomputation from the
  accepted events, per (account, product, month, direction, price in force at ``occurred_at``):
  units summed exactly, ``total_amount == units * price`` exactly, event counts;
* every number in the JSON is written as its exact decimal (no exponent, no float artefacts);
* ``meterbook.aggregates.service.verify`` finds no difference.

Runs on SQLite and on PostgreSQL (through the ``client`` fixture).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select

from meterbook.aggregates import service as aggregates_service
from meterbook.db.tables import monthly_aggregates
from meterbook.kit import jsontext
from tests.conftest import bearer

# --- the time range: the four whole months before the current one (UTC) ------------------------------


def _month_start(year: int, month: int) -> datetime:
    """The first instant of a month; ``month`` may run past 12 or below 1."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


_NOW = datetime.now(UTC)
MONTH_STARTS = [_month_start(_NOW.year, _NOW.month - back) for back in (4, 3, 2, 1, 0)]
RANGE_START, RANGE_END = MONTH_STARTS[0], MONTH_STARTS[-1]
SPAN_SECONDS = int((RANGE_END - RANGE_START).total_seconds())
# The first and the last microsecond of each month: an event there belongs to that month, not its neighbour.
MONTH_EDGES = [edge for start, end in pairwise(MONTH_STARTS) for edge in (start, end - timedelta(microseconds=1))]
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)  # where a product's first price starts when no date is given
NANO = Decimal("0.000000001")
DIRECTIONS = [None, "INBOUND", "OUTBOUND", "OTHER"]
PLAIN_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")

# Shrinking a failing stream takes Hypothesis its full five minutes per backend (every example is a
# few dozen HTTP calls), so it is off unless METERBOOK_TEST_SHRINK=1: a failure shows the example
# it found, batch by batch, in its notes.
HYPOTHESIS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=list(Phase)
    if os.environ.get("METERBOOK_TEST_SHRINK") == "1"
    else [Phase.explicit, Phase.reuse, Phase.generate],
)


# --- strategies ------------------------------------------------------------------------------------


def _scaled(mantissa: int, places: int) -> Decimal:
    return Decimal(mantissa).scaleb(-places)


# Quantities: > 0, up to nine decimals; mostly everyday sizes, sometimes near 10**17.
# Quantities: > 0, up to nine decimals; everyday sizes, sometimes near 10**17, and values with every
# digit used (their totals need more than the 28 digits of Python's default decimal context).
quantities = st.one_of(
    st.builds(_scaled, st.integers(1, 10**12), st.integers(0, 9)),
    st.builds(_scaled, st.integers(1, 10**17), st.integers(0, 9)),
    st.builds(_scaled, st.integers(10**16, 10**17), st.just(9)),
    st.sampled_from([NANO, Decimal("0.3"), Decimal("0.6"), Decimal("0.999999999"), Decimal("123456789.123456789")]),
)
# Prices: 0 .. 9,000,000,000 with up to nine decimals.
prices = st.one_of(
    st.integers(0, 9).flatmap(
        lambda places: st.integers(0, min(9 * 10 ** (9 + places), 10**13)).map(lambda m: _scaled(m, places))
    ),
    st.builds(_scaled, st.integers(10**12, 9 * 10**18), st.just(9)),
    st.sampled_from([Decimal(0), NANO, Decimal("0.067"), Decimal("987654321.123456789")]),
)
instants = st.builds(
    lambda seconds, micros: RANGE_START + timedelta(seconds=seconds, microseconds=micros),
    st.integers(0, SPAN_SECONDS - 1),
    st.one_of(st.just(0), st.integers(0, 999_999)),
)


@st.composite
def product_specs(draw: Any, index: int) -> ProductSpec:
    changes = draw(st.lists(st.tuples(instants, prices), max_size=2))
    return ProductSpec(
        product_id=f"P{index}-{draw(st.sampled_from(['TEL', 'SMS', 'API']))}",
        type=draw(st.sampled_from(["CALL", "MESSAGE", "API_REQUEST", "OTHER"])),
        unit=draw(st.sampled_from(["minute", "message", "unit"])),
        currency=draw(st.sampled_from(["USD", "EUR", "JPY", "KWD"])),
        wallet_name=draw(st.none() | st.sampled_from(["voice", "main"])),
        aggr_product_id=draw(st.none() | st.just(f"AGGR-{index}")),
        initial_price=draw(prices),
        changes=changes,
    )


# --- the model -------------------------------------------------------------------------------------


@dataclass
class ProductSpec:
    product_id: str
    type: str
    unit: str
    currency: str
    wallet_name: str | None
    aggr_product_id: str | None
    initial_price: Decimal
    changes: list[tuple[datetime, Decimal]]
    prices: dict[datetime, Decimal] = field(default_factory=dict)

    def body(self, unit_price: Decimal, effective_from: datetime | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "description": f"Product {self.product_id}",
            "type": self.type,
            "unit": self.unit,
            "currency": self.currency,
            "wallet_name": self.wallet_name,
            "aggr_product_id": self.aggr_product_id,
            "unit_price": unit_price,
        }
        if effective_from is not None:
            body["price_effective_from"] = rfc3339(effective_from)
        return body

    def price_at(self, moment: datetime) -> Decimal:
        """The last price that starts at or before ``moment``."""
        return self.prices[max(start for start in self.prices if start <= moment)]


@dataclass(frozen=True)
class Content:
    """What identifies an event's content; two sends of an id are the same event only if this is equal."""

    account_id: str
    product_id: str
    quantity: Decimal
    occurred_at: datetime
    direction: str | None


@dataclass
class Sent:
    """An event as the test knows it: its id, its content, and the JSON payload it was first sent as."""

    id: str
    content: Content
    payload: dict[str, Any]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render_quantity(quantity: Decimal, how: str) -> Any:
    """The same quantity, written as a JSON number, a decimal string, or either padded to nine decimals."""
    if how == "padded-number":
        return quantity.quantize(NANO)
    if how == "padded-string":
        return format(quantity.quantize(NANO), "f")
    if how == "string":
        return format(quantity, "f")
    return quantity


def payload_of(event_id: str, content: Content, how: str, explicit_null: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": event_id,
        "account_id": content.account_id,
        "type": "metered",
        "product_id": content.product_id,
        "quantity": render_quantity(content.quantity, how),
        "occurred_at": rfc3339(content.occurred_at),
    }
    if content.direction is not None or explicit_null:
        payload["direction"] = content.direction
    return payload


def full_product(units: Decimal, price: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 100
        return units * price


# --- reading what the server wrote -----------------------------------------------------------------


class RawNumber(str):
    __slots__ = ()


def exact(raw: Any) -> Decimal:
    assert isinstance(raw, RawNumber), f"{raw!r} is not a JSON number"
    assert PLAIN_NUMBER.match(raw), f"{raw!r} is not written as a plain decimal"
    return Decimal(raw)


def post(client: Any, path: str, key: str, body: Any) -> Any:
    headers = {**bearer(key), "content-type": "application/json"}
    return client.post(path, content=jsontext.dumps(body), headers=headers)


def put(client: Any, path: str, key: str, body: Any) -> Any:
    headers = {**bearer(key), "content-type": "application/json"}
    return client.put(path, content=jsontext.dumps(body), headers=headers)


Key = tuple[str, str, str, str | None, Decimal]  # account, product, month, direction, price


# --- the property ----------------------------------------------------------------------------------


class TestAggregatesEqualTheirRecomputation:
    @HYPOTHESIS
    @given(data=st.data())
    def test_after_a_random_stream_of_batches(self, client, database, platform_key, data):
        created = post(client, "/v1/organizations", platform_key, {"name": "Property Co"})
        assert created.status_code == 201, created.text
        organization_id, key = created.json()["id"], created.json()["api_key"]["key"]

        account_ids = []
        for number in range(data.draw(st.integers(2, 3), label="accounts")):
            response = post(client, "/v1/accounts", key, {"name": f"Account {number}"})
            assert response.status_code == 201, response.text
            account_ids.append(response.json()["id"])

        products = [
            data.draw(product_specs(index), label=f"product {index}") for index in range(data.draw(st.integers(2, 3)))
        ]
        for product in products:
            response = put(client, f"/v1/products/{product.product_id}", key, product.body(product.initial_price, None))
            assert response.status_code == 201, response.text
            product.prices[BEGINNING] = product.initial_price
            for effective_from, price in product.changes:
                response = put(client, f"/v1/products/{product.product_id}", key, product.body(price, effective_from))
                assert response.status_code == 200, response.text
                product.prices[effective_from] = price
        by_id = {product.product_id: product for product in products}

        change_edges = [
            edge
            for product in products
            for start, _ in product.changes
            for edge in (start, start - timedelta(microseconds=1))
        ]
        event_times = st.one_of(instants, st.sampled_from(MONTH_EDGES + change_edges))
        contents = st.builds(
            Content,
            account_id=st.sampled_from(account_ids),
            product_id=st.sampled_from(sorted(by_id)),
            quantity=quantities,
            occurred_at=event_times,
            direction=st.sampled_from(DIRECTIONS),
        )
        renderings = st.sampled_from(["number", "string", "padded-number", "padded-string"])

        applied: dict[tuple[str, str], Content] = {}  # by (account, id): ids are per account
        pool: list[Sent] = []  # every event sent so far, accepted or not: what retries and conflicts reuse
        for batch_number in range(data.draw(st.integers(1, 6), label="batches")):
            batch: list[Sent] = []
            for _ in range(data.draw(st.integers(1, 8), label="batch size")):
                kind = data.draw(
                    st.sampled_from(
                        ["new", "new", "same aggregate", "same aggregate", "retry", "conflict", "other account"]
                    )
                    if pool
                    else st.just("new")
                )
                if kind in ("new", "same aggregate"):
                    event_id = f"ev-{batch_number}-{len(batch)}"
                    content = data.draw(contents)
                    if kind == "same aggregate":  # a new event that adds to an aggregate an earlier one made
                        original = pool[data.draw(st.integers(0, len(pool) - 1), label="reused event")]
                        content = Content(**{**vars(original.content), "quantity": content.quantity})
                    payload = payload_of(event_id, content, data.draw(renderings), data.draw(st.booleans()))
                    sent = Sent(event_id, content, payload)
                elif kind == "retry":
                    original = pool[data.draw(st.integers(0, len(pool) - 1), label="reused event")]
                    quantity = render_quantity(original.content.quantity, data.draw(renderings))
                    sent = Sent(original.id, original.content, {**original.payload, "quantity": quantity})
                elif kind == "conflict":
                    original = pool[data.draw(st.integers(0, len(pool) - 1), label="reused event")]
                    content = data.draw(conflicting(original.content))
                    sent = Sent(original.id, content, payload_of(original.id, content, "number", explicit_null=False))
                else:  # the id of an earlier event, in another account
                    original = pool[data.draw(st.integers(0, len(pool) - 1), label="reused event")]
                    others = [a for a in account_ids if a != original.content.account_id]
                    account_id = data.draw(st.sampled_from(others), label="other account")
                    content = Content(**{**vars(original.content), "account_id": account_id})
                    sent = Sent(original.id, content, payload_of(original.id, content, "number", explicit_null=False))
                batch.append(sent)
                pool.append(sent)

            # What the server must do with this batch.
            in_batch: dict[tuple[str, str], Content] = {}
            conflict = False
            for sent in batch:
                first = in_batch.setdefault((sent.content.account_id, sent.id), sent.content)
                conflict |= first != sent.content
            conflict |= any(key in applied and applied[key] != content for key, content in in_batch.items())
            note(f"batch {batch_number} -> {'409' if conflict else 'applied'}: {describe(batch, account_ids)}")

            response = post(client, "/v1/events", key, [sent.payload for sent in batch])
            if conflict:
                assert response.status_code == 409, response.text
                assert response.json()["error"] == "CONFLICT"
                event("a batch refused for a conflicting id")
            else:
                assert response.status_code == 200, response.text
                new = {key: content for key, content in in_batch.items() if key not in applied}
                assert response.json() == {"accepted": len(new), "duplicates": len(batch) - len(new)}
                applied.update(new)
                if len(new) < len(batch):
                    event("a batch with duplicates")

        expected = recompute(applied, by_id)
        event(f"aggregates with more than one price for a product-month: {has_price_split(expected)}")
        note(f"expected aggregates: {expected}")
        shown_ids = check_api(client, key, account_ids, by_id, expected)
        check_table(database, uuid.UUID(organization_id), by_id, expected, shown_ids)
        with database.read() as conn:
            verification = aggregates_service.verify(conn)
        assert verification.differences == []


@st.composite
def conflicting(draw: Any, content: Content) -> Content:
    """The same id in the same account with other content: one field changed."""
    change = draw(st.sampled_from(["quantity", "direction", "occurred_at"]))
    if change == "quantity":
        return Content(**{**vars(content), "quantity": content.quantity + NANO})
    if change == "direction":
        direction = draw(st.sampled_from([d for d in DIRECTIONS if d != content.direction]))
        return Content(**{**vars(content), "direction": direction})
    return Content(**{**vars(content), "occurred_at": content.occurred_at - timedelta(seconds=1)})


def describe(batch: list[Sent], account_ids: list[str]) -> str:
    """One compact line per event: id, account number, product, quantity as sent, time, direction."""
    return "; ".join(
        f"{sent.id} a{account_ids.index(sent.content.account_id)} {sent.content.product_id} "
        f"q={sent.payload['quantity']!s} {rfc3339(sent.content.occurred_at)} {sent.content.direction}"
        for sent in batch
    )


def has_price_split(expected: dict[Key, tuple[Decimal, int]]) -> bool:
    keys = [(account, product, month, direction) for account, product, month, direction, _ in expected]
    return len(set(keys)) < len(keys)


def recompute(
    applied: dict[tuple[str, str], Content], products: dict[str, ProductSpec]
) -> dict[Key, tuple[Decimal, int]]:
    """Units and event count per (account, product, UTC month, direction, price in force when it occurred)."""
    result: dict[Key, tuple[Decimal, int]] = {}
    for content in applied.values():
        price = products[content.product_id].price_at(content.occurred_at)
        key = (content.account_id, content.product_id, content.occurred_at.strftime("%Y-%m"), content.direction, price)
        units, count = result.get(key, (Decimal(0), 0))
        result[key] = (units + content.quantity, count + 1)
    return result


def check_api(
    client: Any,
    key: str,
    account_ids: list[str],
    products: dict[str, ProductSpec],
    expected: dict[Key, tuple[Decimal, int]],
) -> set[str]:
    """The usage API shows exactly the expected aggregates, with exact numbers; returns the ids it showed."""
    shown: dict[Key, tuple[Decimal, Decimal]] = {}
    ids: set[str] = set()
    for account_id in account_ids:
        response = client.get("/v1/monthly_usage", params={"account_id": account_id}, headers=bearer(key))
        assert response.status_code == 200, response.text
        body = json.loads(response.text, parse_float=RawNumber, parse_int=RawNumber)
        items = body["usage"]
        months = [item["month"] for item in items]
        assert months == sorted(months), months
        for item in items:
            assert item["account_id"] == account_id
            assert HEX32.match(item["id"]), item["id"]
            product = products[item["product_id"]]
            assert (item["type"], item["unit"], item["currency"]) == (product.type, product.unit, product.currency)
            assert (item["wallet_name"], item["aggr_product_id"]) == (product.wallet_name, product.aggr_product_id)
            assert item["description"] == f"Product {product.product_id}"
            assert item["resolution"] is None
            price, units, total = exact(item["price"]), exact(item["number_of_units"]), exact(item["total_amount"])
            key_of_item = (account_id, item["product_id"], item["month"], item["direction"], price)
            assert key_of_item not in shown, f"two aggregates for {key_of_item}"
            shown[key_of_item] = (units, total)
            ids.add(item["id"])
    assert shown == {key: (units, full_product(units, key[4])) for key, (units, _) in expected.items()}
    assert len(ids) == len(shown)
    return ids


def check_table(
    database: Any,
    organization_id: uuid.UUID,
    products: dict[str, ProductSpec],
    expected: dict[Key, tuple[Decimal, int]],
    shown_ids: set[str],
) -> None:
    """The monthly_aggregates rows hold the expected units (whole + nanos, both integers) and event counts."""
    with database.read() as conn:
        rows = conn.execute(
            select(monthly_aggregates).where(monthly_aggregates.c.organization_id == organization_id)
        ).all()
    stored: dict[Key, tuple[Decimal, int]] = {}
    for row in rows:
        assert isinstance(row.units_whole, int), f"units_whole {row.units_whole!r} is not an integer"
        assert isinstance(row.units_nanos, int), f"units_nanos {row.units_nanos!r} is not an integer"
        assert 0 <= row.units_nanos < 10**9, row.units_nanos
        product = products[row.product_id]
        assert (row.type, row.unit, row.currency) == (product.type, product.unit, product.currency)
        assert row.wallet_name == (product.wallet_name or "")
        assert row.resolution == ""
        units = Decimal(row.units_whole) + Decimal(row.units_nanos).scaleb(-9)
        stored[(str(row.account_id), row.product_id, row.month, row.direction or None, row.price)] = (
            units,
            row.event_count,
        )
    assert stored == expected
    assert {row.id for row in rows} == shown_ids
