"""Pricing under random price models and quantities (CONTRACT §6; invariant 7).

:func:`meterbook.pricing.price` is checked against pricings written here without it:

* whole quantities with whole tier bounds, unit by unit: each unit at the price of the tier it falls in,
  plus the flat fee of each tier some unit fell in (graduated); every unit at the price of the tier the last
  unit falls in (volume); a new package opened whenever the last one is full (package);
* any quantity of up to nine decimals with any bounds, in exact fractions (:class:`fractions.Fraction`) and by
  another formulation: a graduated price as the sum of each tier's change of price over everything above the
  tier's start; a volume price by bisecting the bounds; packages by rounding a fraction up;
* the same, unit by unit, in units of 10^-d when quantity and bounds are multiples of it.

And: graduated totals never decrease as the quantity grows; the tier breakdown adds up to the total and its
units to the quantity; every figure is a ``Decimal`` written without trailing zeros; a per-unit price prices
as billing does today (``Aggregate.total_amount``); validation accepts exactly the tier lists that are
ascending with only the last unbounded.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given, note, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from meterbook.pricing import Price, Priced, PriceModel, per_unit_price, price
from tests.helpers import per_unit_aggregate

PURE = settings(max_examples=300, deadline=None)
PRICE: TypeAdapter[PriceModel] = TypeAdapter(Price)
MODELS = ("per_unit", "graduated", "volume", "package")


# --- strategies ------------------------------------------------------------------------------------


def scaled(mantissa: int, places: int) -> Decimal:
    return Decimal(mantissa).scaleb(-places)


#: Prices of 0 to 9,000,000,000 with up to nine decimals, mostly small, sometimes at the limits.
money = st.one_of(
    st.builds(scaled, st.integers(0, 10_000), st.integers(0, 4)),
    st.builds(scaled, st.integers(0, 9 * 10**18), st.just(9)),
    st.sampled_from([Decimal(0), Decimal("0.000000001"), Decimal("8999999999.999999999"), Decimal(9_000_000_000)]),
)
#: Quantities of up to nine decimals, a month's worth (64-bit whole units and nanounits at most).
quantity = st.one_of(
    st.builds(scaled, st.integers(0, 200_000), st.integers(0, 3)),
    st.builds(scaled, st.integers(0, 10**15), st.integers(0, 9)),
    st.builds(scaled, st.integers(0, (2**63 - 1) * 10**9 + 999_999_999), st.just(9)),
)
#: Tier bounds as validation accepts them: positive, below 10^18, up to nine decimals.
bound = st.one_of(
    st.builds(scaled, st.integers(1, 100_000), st.integers(0, 3)),
    st.builds(scaled, st.integers(1, 10**18 * 10**9 - 1), st.just(9)),
)


def tier_dicts(bounds: Sequence[Decimal | int], prices: Sequence[Decimal], fees: Sequence[Decimal]) -> list[Any]:
    """Tiers with the given ascending bounds and a last, unbounded tier."""
    ups: list[Decimal | int | None] = [*sorted(set(bounds)), None]
    return [
        {"up_to": up_to, "unit_price": prices[index % len(prices)], "flat_fee": fees[index % len(fees)]}
        for index, up_to in enumerate(ups)
    ]


@st.composite
def price_models(
    draw: st.DrawFn,
    bounds: st.SearchStrategy[Any],
    package_sizes: st.SearchStrategy[int],
    kinds: Sequence[str] = MODELS,
) -> Any:
    kind = draw(st.sampled_from(kinds))
    if kind == "per_unit":
        return {"model": kind, "unit_price": draw(money)}
    if kind == "package":
        return {"model": kind, "package_size": draw(package_sizes), "package_price": draw(money)}
    prices = draw(st.lists(money, min_size=1, max_size=7))
    # Flat fees are mostly 0, as in most real price lists, so the unit prices are seen alone too.
    fees = draw(st.lists(st.one_of(st.just(Decimal(0)), money), min_size=1, max_size=7))
    return {"model": kind, "tiers": tier_dicts(draw(st.lists(bounds, max_size=6)), prices, fees)}


whole_models = price_models(st.integers(1, 60), st.integers(1, 25))
any_models = price_models(bound, st.integers(1, 10**18 - 1))


# --- pricings written without meterbook's ----------------------------------------------------------


def bounds_of(data: dict[str, Any]) -> list[Fraction | None]:
    return [None if tier["up_to"] is None else Fraction(tier["up_to"]) for tier in data["tiers"]]


def tier_of_unit(data: dict[str, Any], unit: int) -> int:
    """The tier that whole unit number ``unit`` (1, 2, …) falls in: the first whose up_to reaches it."""
    for index, up_to in enumerate(bounds_of(data)):
        if up_to is None or unit <= up_to:
            return index
    raise AssertionError("no unbounded last tier")


def unit_by_unit(data: dict[str, Any], units: int) -> Fraction:
    """Whole units with whole tier bounds, one unit at a time."""
    total = Fraction(0)
    if data["model"] == "per_unit":
        for _ in range(units):
            total += Fraction(data["unit_price"])
    elif data["model"] == "graduated":
        reached: set[int] = set()
        for unit in range(1, units + 1):
            index = tier_of_unit(data, unit)
            total += Fraction(data["tiers"][index]["unit_price"])
            reached.add(index)
        total += sum((Fraction(data["tiers"][index]["flat_fee"]) for index in reached), Fraction(0))
    elif data["model"] == "volume":
        if units:
            tier = data["tiers"][tier_of_unit(data, units)]
            for _ in range(units):
                total += Fraction(tier["unit_price"])
            total += Fraction(tier["flat_fee"])
    else:
        room = 0  # what is left in the package opened last
        for _ in range(units):
            if room == 0:
                total += Fraction(data["package_price"])
                room = data["package_size"]
            room -= 1
    return total


def in_fractions(data: dict[str, Any], amount: Decimal) -> Fraction:
    """Any quantity and bounds, in exact fractions, each model by a formula of its own."""
    q = Fraction(amount)
    if data["model"] == "per_unit":
        return q * Fraction(data["unit_price"])
    if data["model"] == "package":
        return math.ceil(q / data["package_size"]) * Fraction(data["package_price"])
    tiers = data["tiers"]
    starts = [Fraction(0), *(Fraction(tier["up_to"]) for tier in tiers[:-1])]
    if data["model"] == "graduated":
        # The price of a unit changes at each tier's start: charge each change for everything above that start.
        total = Fraction(0)
        previous = Fraction(0)
        for start, tier in zip(starts, tiers, strict=True):
            if q > start:
                total += (Fraction(tier["unit_price"]) - previous) * (q - start) + Fraction(tier["flat_fee"])
            previous = Fraction(tier["unit_price"])
        return total
    if q == 0:
        return Fraction(0)
    # The tier of a volume: as many tiers below it as there are bounds under the quantity.
    tier = tiers[bisect.bisect_left(starts[1:], q)]
    return q * Fraction(tier["unit_price"]) + Fraction(tier["flat_fee"])


def assert_well_formed(priced: Priced, data: dict[str, Any], amount: Decimal) -> None:
    """Every figure a Decimal without trailing zeros; a breakdown that adds up and covers the quantity."""
    figures = [priced.amount]
    for charge in priced.tiers:
        figures += [charge.from_, charge.units, charge.unit_price, charge.flat_fee, charge.amount]
        figures += [] if charge.up_to is None else [charge.up_to]
    for figure in figures:
        assert type(figure) is Decimal, figure
        _sign, digits, exponent = figure.as_tuple()
        assert isinstance(exponent, int), figure
        assert exponent <= 0, figure
        assert exponent == 0 or digits[-1] != 0, figure
    if data["model"] in ("per_unit", "package") or amount == 0:
        assert priced.tiers == ()
        return
    # Checked in fractions: Decimal's default 28 digits would round the sums of large figures.
    charges = priced.tiers
    assert sum(Fraction(charge.amount) for charge in charges) == Fraction(priced.amount)
    for charge in charges:
        assert Fraction(charge.amount) == Fraction(charge.units) * Fraction(charge.unit_price) + Fraction(
            charge.flat_fee
        )
        assert charge.units > 0
        assert charge.from_ < amount
        assert charge.up_to is None or charge.from_ < charge.up_to
    if data["model"] == "graduated":
        assert sum(Fraction(charge.units) for charge in charges) == Fraction(amount)
        assert charges[0].from_ == 0
        for before, after in itertools.pairwise(charges):
            assert before.up_to == after.from_
        assert charges[-1].up_to is None or amount <= charges[-1].up_to
    else:
        [charge] = charges
        assert charge.units == amount
        assert charge.up_to is None or amount <= charge.up_to


# --- properties ------------------------------------------------------------------------------------


class TestAgainstBruteForce:
    @PURE
    @given(data=whole_models, units=st.integers(0, 80))
    def test_whole_units_one_at_a_time(self, data: dict[str, Any], units: int) -> None:
        priced = price(PRICE.validate_python(data), Decimal(units))
        assert Fraction(priced.amount) == unit_by_unit(data, units)
        assert_well_formed(priced, data, Decimal(units))

    @PURE
    @given(data=any_models, amount=quantity)
    def test_any_quantity_in_exact_fractions(self, data: dict[str, Any], amount: Decimal) -> None:
        priced = price(PRICE.validate_python(data), amount)
        assert Fraction(priced.amount) == in_fractions(data, amount)
        assert_well_formed(priced, data, amount)

    @PURE
    @given(
        places=st.integers(1, 9),
        steps=st.integers(0, 60),
        step_bounds=st.lists(st.integers(1, 60), max_size=5),
        prices=st.lists(money, min_size=1, max_size=6),
        fees=st.lists(money, min_size=1, max_size=6),
        kind=st.sampled_from(["graduated", "volume"]),
    )
    def test_fractions_one_small_unit_at_a_time(
        self,
        places: int,
        steps: int,
        step_bounds: list[int],
        prices: list[Decimal],
        fees: list[Decimal],
        kind: str,
    ) -> None:
        """Quantity and bounds in units of 10^-places: the same tiers over whole small units, each at its
        price times 10^-places, give the same total."""
        step = Decimal(1).scaleb(-places)
        data = {"model": kind, "tiers": tier_dicts([b * step for b in step_bounds], prices, fees)}
        in_steps = {
            "model": kind,
            "tiers": [
                {
                    "up_to": None if tier["up_to"] is None else int(tier["up_to"] / step),
                    "unit_price": tier["unit_price"] * step,
                    "flat_fee": tier["flat_fee"],
                }
                for tier in data["tiers"]
            ],
        }
        priced = price(PRICE.validate_python(data), steps * step)
        assert Fraction(priced.amount) == unit_by_unit(in_steps, steps)
        assert_well_formed(priced, data, steps * step)


class TestShapeOfTotals:
    @PURE
    @given(
        data=price_models(bound, st.just(1), kinds=["graduated"]),
        amounts=st.lists(quantity, min_size=2, max_size=6),
    )
    def test_graduated_totals_never_decrease(self, data: dict[str, Any], amounts: list[Decimal]) -> None:
        model = PRICE.validate_python(data)
        totals = [price(model, amount).amount for amount in sorted(amounts)]
        note(f"totals: {totals}")
        assert totals == sorted(totals)

    @PURE
    @given(units=quantity, unit_price=money)
    def test_a_per_unit_price_prices_as_billing_does_today(self, units: Decimal, unit_price: Decimal) -> None:
        aggregate = per_unit_aggregate(units, unit_price)
        assert price(per_unit_price(unit_price), units).amount == aggregate.total_amount


class TestValidation:
    @PURE
    @given(
        ups=st.lists(st.one_of(st.none(), st.integers(1, 8)), max_size=6),
        kind=st.sampled_from(["graduated", "volume"]),
    )
    def test_exactly_ascending_tiers_with_only_the_last_unbounded_are_accepted(
        self, ups: list[int | None], kind: str
    ) -> None:
        bounded = [up_to for up_to in ups[:-1] if up_to is not None]
        valid = (
            len(ups) > 0
            and ups[-1] is None
            and len(bounded) == len(ups) - 1
            and all(a < b for a, b in itertools.pairwise(bounded))
        )
        try:
            PRICE.validate_python({"model": kind, "tiers": [{"up_to": up_to} for up_to in ups]})
            accepted = True
        except ValidationError as error:
            accepted = False
            for found in error.errors():
                assert found["loc"][0] == "tiers", found
        assert accepted == valid
