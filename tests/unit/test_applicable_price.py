"""Which price applies to an account's usage of a product at an instant (CONTRACT §6): the one rule that rating
will call, :func:`meterbook.plans.models.applicable_price`. A negotiated price in force beats the plan version in
force under the subscription that covers the instant, which beats the catalog's price in force."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from meterbook.catalog.models import Price as CatalogPrice
from meterbook.catalog.models import Product
from meterbook.plans.models import (
    AccountTerms,
    NegotiatedPrice,
    Plan,
    PlanVersion,
    Subscription,
    applicable_price,
)
from meterbook.pricing import PriceModel, parse_price, per_unit_price

ACCOUNT = uuid.uuid4()
JAN, FEB, MAR, APR = (datetime(2026, month, 1, tzinfo=UTC) for month in (1, 2, 3, 4))
SECOND = timedelta(seconds=1)
GRADUATED = parse_price(
    {"model": "graduated", "tiers": [{"up_to": 5, "unit_price": 5}, {"up_to": None, "unit_price": 3}]}
)
PACKAGE = parse_price({"model": "package", "package_size": 1000, "package_price": 5})


def product(product_id: str = "CALLS", *prices: tuple[datetime, str]) -> Product:
    return Product(
        product_id=product_id,
        aggr_product_id=None,
        description=product_id,
        type="OTHER",
        unit="unit",
        wallet_name=None,
        currency="USD",
        created_at=JAN,
        updated_at=JAN,
        prices=tuple(CatalogPrice(start, Decimal(amount)) for start, amount in prices),
    )


def version(start: datetime, prices: dict[str, PriceModel]) -> PlanVersion:
    return PlanVersion(start, "Pro", "USD", Decimal(10), prices, {}, None, start)


def plan(*versions: PlanVersion) -> Plan:
    return Plan(uuid.uuid4(), "pro", JAN, JAN, versions)


def subscribed(on: Plan, starts_at: datetime, ends_at: datetime | None = None) -> Subscription:
    return Subscription(uuid.uuid4(), ACCOUNT, on.id, on.code, starts_at, ends_at, starts_at)


def negotiated(start: datetime, price: PriceModel, product_id: str = "CALLS") -> NegotiatedPrice:
    return NegotiatedPrice(ACCOUNT, product_id, start, price, start)


def terms(
    negotiated_prices: list[NegotiatedPrice] | None = None,
    subscriptions: list[Subscription] | None = None,
    plans: list[Plan] | None = None,
) -> AccountTerms:
    return AccountTerms(negotiated_prices or [], subscriptions or [], {p.id: p for p in plans or []})


CALLS = product("CALLS", (JAN, "0.05"), (MAR, "0.04"))


class TestCatalog:
    def test_an_account_with_neither_is_priced_by_the_catalog(self) -> None:
        found = applicable_price(terms(), CALLS, FEB)
        assert found is not None
        assert (found.source, found.price, found.effective_from) == ("catalog", per_unit_price(Decimal("0.05")), JAN)
        assert applicable_price(terms(), CALLS, MAR).price == per_unit_price(Decimal("0.04"))  # type: ignore[union-attr]

    def test_before_any_catalog_price_there_is_none(self) -> None:
        assert applicable_price(terms(), CALLS, JAN - SECOND) is None


class TestPlan:
    def test_the_version_in_force_prices_the_product(self) -> None:
        pro = plan(version(JAN, {"CALLS": GRADUATED}), version(MAR, {"CALLS": PACKAGE}))
        account = terms(subscriptions=[subscribed(pro, JAN)], plans=[pro])
        feb = applicable_price(account, CALLS, FEB)
        assert feb is not None
        assert (feb.source, feb.price, feb.effective_from, feb.plan_code) == ("plan", GRADUATED, JAN, "pro")
        assert applicable_price(account, CALLS, MAR - SECOND).price == GRADUATED  # type: ignore[union-attr]
        assert applicable_price(account, CALLS, MAR).price == PACKAGE  # type: ignore[union-attr]

    def test_a_product_the_plan_does_not_price_keeps_the_catalog_price(self) -> None:
        pro = plan(version(JAN, {"SMS": GRADUATED}))
        found = applicable_price(terms(subscriptions=[subscribed(pro, JAN)], plans=[pro]), CALLS, FEB)
        assert found is not None
        assert found.source == "catalog"

    def test_outside_the_subscription_the_catalog_applies(self) -> None:
        pro = plan(version(JAN, {"CALLS": GRADUATED}))
        account = terms(subscriptions=[subscribed(pro, FEB, MAR)], plans=[pro])
        assert applicable_price(account, CALLS, FEB - SECOND).source == "catalog"  # type: ignore[union-attr]
        assert applicable_price(account, CALLS, FEB).source == "plan"  # type: ignore[union-attr]
        assert applicable_price(account, CALLS, MAR - SECOND).source == "plan"  # type: ignore[union-attr]
        assert applicable_price(account, CALLS, MAR).source == "catalog"  # type: ignore[union-attr]

    def test_a_change_of_plan_mid_month_takes_effect_at_once(self) -> None:
        pro = plan(version(JAN, {"CALLS": GRADUATED}))
        basic = plan(version(JAN, {"CALLS": PACKAGE}))
        middle = FEB + timedelta(days=14, hours=9)
        account = terms(subscriptions=[subscribed(pro, JAN, middle), subscribed(basic, middle)], plans=[pro, basic])
        assert applicable_price(account, CALLS, middle - SECOND).price == GRADUATED  # type: ignore[union-attr]
        assert applicable_price(account, CALLS, middle).price == PACKAGE  # type: ignore[union-attr]

    def test_a_plan_with_no_version_yet_leaves_the_catalog_price(self) -> None:
        pro = plan(version(MAR, {"CALLS": GRADUATED}))
        account = terms(subscriptions=[subscribed(pro, JAN)], plans=[pro])
        assert applicable_price(account, CALLS, FEB).source == "catalog"  # type: ignore[union-attr]
        assert applicable_price(account, CALLS, MAR).source == "plan"  # type: ignore[union-attr]


class TestNegotiated:
    def test_a_negotiated_price_beats_the_plan(self) -> None:
        pro = plan(version(JAN, {"CALLS": GRADUATED}))
        own = per_unit_price(Decimal("0.01"))
        account = terms([negotiated(FEB, own)], [subscribed(pro, JAN)], [pro])
        assert applicable_price(account, CALLS, FEB - SECOND).source == "plan"  # type: ignore[union-attr]
        found = applicable_price(account, CALLS, FEB)
        assert found is not None
        assert (found.source, found.price, found.effective_from) == ("negotiated", own, FEB)

    def test_the_latest_negotiated_price_in_force_applies_and_only_for_its_product(self) -> None:
        account = terms([negotiated(FEB, GRADUATED), negotiated(APR, PACKAGE), negotiated(JAN, PACKAGE, "SMS")])
        assert applicable_price(account, CALLS, JAN).source == "catalog"  # type: ignore[union-attr]
        assert applicable_price(account, CALLS, MAR).price == GRADUATED  # type: ignore[union-attr]
        assert applicable_price(account, CALLS, APR).price == PACKAGE  # type: ignore[union-attr]

    def test_a_negotiated_price_applies_even_with_no_catalog_price(self) -> None:
        found = applicable_price(terms([negotiated(JAN, GRADUATED)]), product("NEW"), FEB)
        assert found is None  # another product
        found = applicable_price(terms([negotiated(JAN, GRADUATED, "NEW")]), product("NEW"), FEB)
        assert found is not None
        assert found.price == GRADUATED
