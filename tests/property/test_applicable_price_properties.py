"""Which price applies (CONTRACT §6), under random negotiated prices, subscriptions and plan versions.

:func:`meterbook.plans.models.applicable_price` is checked against a brute-force lookup written without it: a
timeline of days painted layer by layer in time order (the catalog's prices, then each subscription's days with
its plan's versions, then the negotiated prices), read at any instant of any day: the negotiated layer if
painted, else the plan layer, else the catalog's. And any price model stored as JSON text reads back as the same
model, written without exponents, pricing every quantity the same.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meterbook.catalog.models import Price as CatalogPrice
from meterbook.catalog.models import Product
from meterbook.plans import repository
from meterbook.plans.models import AccountTerms, NegotiatedPrice, Plan, PlanVersion, Subscription, applicable_price
from meterbook.pricing import PriceModel, per_unit_price, price
from tests.property.test_pricing_properties import PRICE, any_models

DAYS = 60
BASE = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNT = uuid.uuid4()
PRODUCTS = ("CALLS", "SMS")


def day(index: int) -> datetime:
    return BASE + timedelta(days=index)


def model(cents: int) -> PriceModel:
    return per_unit_price(Decimal(cents).scaleb(-2))


days = st.integers(min_value=0, max_value=DAYS - 1)
prices = st.integers(min_value=0, max_value=50).map(model)


@st.composite
def plans(draw: Any) -> Plan:
    starts = sorted(draw(st.sets(days, max_size=4)))
    versions = tuple(
        PlanVersion(
            day(start),
            "plan",
            "USD",
            Decimal(0),
            {pid: draw(prices) for pid in PRODUCTS if draw(st.booleans())},
            {},
            None,
            day(start),
        )
        for start in starts
    )
    return Plan(uuid.uuid4(), f"plan-{len(starts)}", BASE, BASE, versions)


@st.composite
def worlds(draw: Any) -> tuple[AccountTerms, Product]:
    catalog = sorted(draw(st.sets(days, max_size=3)))
    product = Product(
        "CALLS",
        None,
        "Calls",
        "OTHER",
        "unit",
        None,
        "USD",
        BASE,
        BASE,
        tuple(CatalogPrice(day(start), Decimal(draw(st.integers(0, 50)))) for start in catalog),
    )
    available = draw(st.lists(plans(), min_size=1, max_size=3))
    # Subscriptions that never overlap: cut points, each segment on a plan or on none.
    cuts = sorted(draw(st.sets(st.integers(min_value=0, max_value=DAYS), max_size=6)))
    subscriptions = []
    for index, start in enumerate(cuts):
        end = cuts[index + 1] if index + 1 < len(cuts) else None
        if end is None and draw(st.booleans()):
            break  # no open-ended subscription
        on = draw(st.one_of(st.none(), st.sampled_from(available)))
        if on is not None:
            subscriptions.append(
                Subscription(uuid.uuid4(), ACCOUNT, on.id, on.code, day(start), None if end is None else day(end), BASE)
            )
    negotiated = [
        NegotiatedPrice(ACCOUNT, pid, day(start), draw(prices), BASE)
        for pid in PRODUCTS
        for start in draw(st.sets(days, max_size=3))
    ]
    negotiated_order = draw(st.permutations(negotiated))  # the rule must not depend on the order given
    terms = AccountTerms(negotiated_order, subscriptions, {plan.id: plan for plan in available})
    return terms, product


def brute_force(terms: AccountTerms, product: Product) -> list[tuple[str, PriceModel] | None]:
    catalog: list[tuple[str, PriceModel] | None] = [None] * DAYS
    for listed in product.prices:  # oldest first: later paint wins
        for d in range((listed.effective_from - BASE).days, DAYS):
            catalog[d] = ("catalog", per_unit_price(listed.unit_price))
    plan_layer: list[tuple[str, PriceModel] | None] = [None] * DAYS
    for subscription in terms.subscriptions:
        first = (subscription.starts_at - BASE).days
        last = DAYS if subscription.ends_at is None else (subscription.ends_at - BASE).days
        for version in terms.plans[subscription.plan_id].versions:
            found = version.prices.get(product.product_id)
            for d in range(max(first, (version.effective_from - BASE).days), last):
                plan_layer[d] = None if found is None else ("plan", found)
    own: list[tuple[str, PriceModel] | None] = [None] * DAYS
    for item in sorted(terms.negotiated, key=lambda n: n.effective_from):
        if item.product_id == product.product_id:
            for d in range((item.effective_from - BASE).days, DAYS):
                own[d] = ("negotiated", item.price)
    return [own[d] or plan_layer[d] or catalog[d] for d in range(DAYS)]


@settings(max_examples=300, deadline=None)
@given(world=worlds(), on=days, seconds=st.integers(min_value=0, max_value=86_399))
def test_the_rule_agrees_with_a_painted_timeline(world: tuple[AccountTerms, Product], on: int, seconds: int) -> None:
    terms, product = world
    expected = brute_force(terms, product)[on]
    found = applicable_price(terms, product, day(on) + timedelta(seconds=seconds))
    assert (None if found is None else (found.source, found.price)) == expected


@settings(max_examples=100, deadline=None)
@given(world=worlds())
def test_every_day_of_the_timeline(world: tuple[AccountTerms, Product]) -> None:
    terms, product = world
    expected = brute_force(terms, product)
    for on in range(DAYS):
        found = applicable_price(terms, product, day(on))
        assert (None if found is None else (found.source, found.price)) == expected[on], on


#: A number written with an exponent or as a float's text (``1e-09``, ``1E+1``) in stored JSON.
NOT_PLAIN = re.compile(r"\d[eE][-+]?\d")


@settings(max_examples=300, deadline=None)
@given(data=any_models)
def test_a_stored_price_reads_back_exactly(data: dict[str, Any]) -> None:
    model = PRICE.validate_python(data)
    text = repository.dump_price(model)
    assert not NOT_PLAIN.search(text), text
    assert repository.load_price(text, "price") == model
    for quantity in (Decimal(0), Decimal("0.000000001"), Decimal(7), Decimal("1234.5")):
        assert price(repository.load_price(text, "price"), quantity) == price(model, quantity)
