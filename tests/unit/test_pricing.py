"""The price models and the function that prices a quantity (CONTRACT §6; docs/pricing.md).

Pure: no database. The worked examples of §6, the decisions where §6 is silent (a quantity of 0, fractions,
the tier a boundary falls in), exact arithmetic, and every refusal of a price: its path, its kind and its
words, as a 400 would carry them (``api.explain.field_error`` renders them for the native API).
"""

from __future__ import annotations

import re
from decimal import Decimal, Inexact
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import TypeAdapter, ValidationError

from meterbook.api.explain import field_error
from meterbook.catalog.schemas import ProductPut
from meterbook.errors import ValidationFailed
from meterbook.kit import jsontext
from meterbook.kit.fields import NativeInput
from meterbook.pricing import (
    GraduatedPrice,
    PackagePrice,
    PerUnitPrice,
    Price,
    Priced,
    TierCharge,
    VolumePrice,
    parse_price,
    per_unit_price,
    price,
)
from meterbook.pricing import schemas as pricing_schemas
from meterbook.usage import schemas as usage_schemas
from tests.helpers import per_unit_aggregate

PRICE: TypeAdapter[Any] = TypeAdapter(Price)
D = Decimal
REGEX = re.compile(r"\^|\$|\[0-9\]|\\d")

#: §6: 1-5 at 5, 6-10 at 4, 11 and more at 3.
TIERS = [
    {"up_to": 5, "unit_price": 5},
    {"up_to": 10, "unit_price": 4},
    {"up_to": None, "unit_price": 3},
]


def parsed(text: str) -> Any:
    """A price as the API reads it: JSON parsed exactly (``kit.jsontext``), then validated."""
    return PRICE.validate_python(jsontext.loads(text))


def model(data: dict[str, Any]) -> Any:
    return PRICE.validate_python(data)


def errors_of(data: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        PRICE.validate_python(data)
    return [{"loc": error["loc"], "type": error["type"], "msg": error["msg"]} for error in caught.value.errors()]


def only_error(data: Any) -> dict[str, Any]:
    found = errors_of(data)
    assert len(found) == 1, found
    return found[0]


# --- §6's worked examples -------------------------------------------------------------------------


class TestWorkedExamples:
    def test_graduated_12_units_cost_51(self) -> None:
        priced = price(model({"model": "graduated", "tiers": TIERS}), D(12))
        assert priced == Priced(
            amount=D(51),
            tiers=(
                TierCharge(from_=D(0), up_to=D(5), units=D(5), unit_price=D(5), flat_fee=D(0), amount=D(25)),
                TierCharge(from_=D(5), up_to=D(10), units=D(5), unit_price=D(4), flat_fee=D(0), amount=D(20)),
                TierCharge(from_=D(10), up_to=None, units=D(2), unit_price=D(3), flat_fee=D(0), amount=D(6)),
            ),
        )

    @pytest.mark.parametrize(("quantity", "amount"), [(12, 36), (5, 25)])
    def test_volume_with_the_same_tiers(self, quantity: int, amount: int) -> None:
        priced = price(model({"model": "volume", "tiers": TIERS}), D(quantity))
        assert priced.amount == amount
        assert [charge.units for charge in priced.tiers] == [quantity]

    def test_graduated_with_a_free_first_tier_and_a_flat_fee(self) -> None:
        graduated = parsed(
            '{"model": "graduated", "tiers": [{"up_to": 1000, "unit_price": 0, "flat_fee": 10},'
            ' {"up_to": null, "unit_price": 0.01}]}'
        )
        priced = price(graduated, D(1500))
        assert priced.amount == 15
        assert [(charge.units, charge.amount) for charge in priced.tiers] == [(1000, 10), (500, 5)]

    def test_package_of_1000_at_5(self) -> None:
        priced = price(parsed('{"model": "package", "package_size": 1000, "package_price": 5}'), D(1001))
        assert priced == Priced(amount=D(10))


# --- decisions where §6 is silent -----------------------------------------------------------------


class TestQuantitiesAndBoundaries:
    @pytest.mark.parametrize(
        "data",
        [
            {"model": "per_unit", "unit_price": 3},
            {"model": "graduated", "tiers": [{"up_to": 5, "flat_fee": 7}, {"up_to": None, "flat_fee": 1}]},
            {"model": "volume", "tiers": [{"up_to": 5, "flat_fee": 7}, {"up_to": None, "flat_fee": 1}]},
            {"model": "package", "package_size": 10, "package_price": 4},
        ],
    )
    def test_nothing_used_costs_nothing(self, data: dict[str, Any]) -> None:
        # No tier is reached (not even the first's flat fee) and no package is started.
        assert price(model(data), D(0)) == Priced(amount=D(0))

    def test_an_up_to_is_the_last_quantity_of_its_tier(self) -> None:
        volume = model({"model": "volume", "tiers": TIERS})
        assert price(volume, D(5)).tiers[0].up_to == 5
        assert price(volume, D(10)).amount == 40
        assert price(volume, D("10.000000001")).amount == D("30.000000003")

    def test_fractions_fall_between_whole_bounds(self) -> None:
        assert price(model({"model": "graduated", "tiers": TIERS}), D("5.5")).amount == D(27)  # 5 x 5 + 0.5 x 4
        assert price(model({"model": "volume", "tiers": TIERS}), D("5.5")).amount == D(22)  # 5.5 x 4

    def test_a_tier_is_reached_by_any_part_of_a_unit(self) -> None:
        graduated = model(
            {"model": "graduated", "tiers": [{"up_to": 1, "flat_fee": 2}, {"up_to": None, "flat_fee": 3}]}
        )
        assert price(graduated, D(1)).amount == 2
        priced = price(graduated, D("1.000000001"))
        assert priced.amount == 5
        assert priced.tiers[-1] == TierCharge(
            from_=D(1), up_to=None, units=D("0.000000001"), unit_price=D(0), flat_fee=D(3), amount=D(3)
        )

    def test_tier_bounds_may_have_decimals(self) -> None:
        graduated = model({"model": "graduated", "tiers": [{"up_to": "0.5", "unit_price": 2}, {"up_to": None}]})
        assert price(graduated, D("0.75")).amount == 1

    def test_a_started_package_is_charged_whole(self) -> None:
        package = model({"model": "package", "package_size": 1000, "package_price": "5"})
        assert [price(package, D(q)).amount for q in ("0.000000001", "1000", "1000.5", "2000")] == [5, 5, 10, 10]

    def test_per_unit_and_package_have_no_tier_breakdown(self) -> None:
        assert price(model({"model": "per_unit", "unit_price": 2}), D(3)).tiers == ()
        assert price(model({"model": "package", "package_size": 2, "package_price": 1}), D(3)).tiers == ()


class TestExactness:
    def test_amounts_are_exact_and_written_plainly(self) -> None:
        priced = price(parsed('{"model": "per_unit", "unit_price": "0.100"}'), D(3))
        assert str(priced.amount) == "0.3"
        assert str(price(model({"model": "per_unit", "unit_price": "1E+1"}), D(3)).amount) == "30"
        tiny = price(model({"model": "per_unit", "unit_price": "0.000000001"}), D("0.000000001"))
        assert tiny.amount == D("1E-18")

    def test_json_money_keeps_every_digit(self) -> None:
        per_unit = parsed('{"model": "per_unit", "unit_price": 123456789.123456789}')
        assert per_unit.unit_price == D("123456789.123456789")

    def test_the_largest_figures_are_exact(self) -> None:
        # The most a month's aggregated units can be (64-bit whole units and nanounits) at the dearest price.
        units = D("9223372036854775807.999999999")
        dearest = D("8999999999.999999999")
        per_unit = price(model({"model": "per_unit", "unit_price": dearest}), units)
        assert Fraction(per_unit.amount) == Fraction(units) * Fraction(dearest)
        graduated = price(
            model({"model": "graduated", "tiers": [{"up_to": 1}, {"up_to": None, "unit_price": dearest}]}), units
        )
        assert Fraction(graduated.amount) == (Fraction(units) - 1) * Fraction(dearest)

    def test_nothing_is_ever_rounded(self) -> None:
        with pytest.raises(Inexact):
            price(model({"model": "per_unit", "unit_price": 3}), D("1" * 101))

    def test_a_quantity_must_be_an_exact_number_of_0_or_more(self) -> None:
        per_unit = model({"model": "per_unit", "unit_price": 1})
        with pytest.raises(TypeError):
            price(per_unit, 0.5)  # type: ignore[arg-type]
        for wrong in (D(-1), D("NaN"), D("Infinity")):
            with pytest.raises(ValueError, match="0 or more"):
                price(per_unit, wrong)


class TestTodaysPrice:
    def test_the_catalogs_price_as_a_model(self) -> None:
        assert per_unit_price(D("0.05")) == PerUnitPrice(model="per_unit", unit_price=D("0.05"))

    @pytest.mark.parametrize(
        ("units", "unit_price"), [("12.5", "0.02"), ("0.000000001", "8999999999.999999999"), ("7", "0")]
    )
    def test_prices_as_billing_does_today(self, units: str, unit_price: str) -> None:
        aggregate = per_unit_aggregate(D(units), D(unit_price))
        assert price(per_unit_price(D(unit_price)), D(units)).amount == aggregate.total_amount


class TestLimitsMatchTheRestOfMeterbook:
    def test_tier_bounds_and_package_sizes_are_metered_quantities(self) -> None:
        assert pricing_schemas.MAX_QUANTITY == usage_schemas.METERED_MAX
        assert pricing_schemas.QUANTITY_PLACES == usage_schemas.METERED_PLACES

    @pytest.mark.parametrize(
        "unit_price", ["9000000000", "9000000000.000000001", "0.000000001", "0.0000000001", "-0.000000001", "0"]
    )
    def test_prices_have_the_catalogs_limits(self, unit_price: str) -> None:
        product = {"description": "d", "unit_price": unit_price}
        try:
            ProductPut.model_validate(product)
            in_catalog = True
        except ValidationError:
            in_catalog = False
        try:
            model({"model": "per_unit", "unit_price": unit_price})
            as_a_model = True
        except ValidationError:
            as_a_model = False
        assert as_a_model == in_catalog


# --- refusals ---------------------------------------------------------------------------------------


MONEY_WORDS = "0 or more, at most 9000000000, with up to 9 decimals"


class TestRefusedPrices:
    @pytest.mark.parametrize(
        ("data", "loc", "kind", "words"),
        [
            ({"unit_price": 1}, ("model",), "missing", 'one of "per_unit", "graduated", "volume" or "package"'),
            ({"model": "tiered"}, ("model",), "union_tag_invalid", "(got tiered)"),
            ({"model": "per_unit"}, ("unit_price",), "missing", "Field required"),
            (
                {"model": "per_unit", "unit_price": -1},
                ("unit_price",),
                "greater_than_equal",
                f"expected the price of one unit: {MONEY_WORDS}, e.g. 0.05 (got -1)",
            ),
            (
                {"model": "per_unit", "unit_price": "0.0000000001"},
                ("unit_price",),
                "value_error",
                "e.g. 0.05 (got 0.0000000001)",
            ),
            ({"model": "per_unit", "unit_price": "NaN"}, ("unit_price",), "finite_number", "e.g. 0.05"),
            ({"model": "per_unit", "unit_price": "abc"}, ("unit_price",), "decimal_parsing", "decimal"),
            ({"model": "per_unit", "unit_price": True}, ("unit_price",), "decimal_type", "Decimal"),
            ({"model": "per_unit", "unit_price": 1, "currency": "USD"}, ("currency",), "extra_forbidden", "Extra"),
            ({"model": "graduated"}, ("tiers",), "missing", "Field required"),
            ({"model": "graduated", "tiers": {}}, ("tiers",), "list_type", "list"),
            (
                {"model": "volume", "tiers": []},
                ("tiers",),
                "too_short",
                'expected at least one tier, e.g. [{"up_to": null, "unit_price": "0.01"}]',
            ),
            (
                {"model": "volume", "tiers": [{"up_to": None}] * 101},
                ("tiers",),
                "too_long",
                "expected at most 100 tiers (got 101)",
            ),
            ({"model": "graduated", "tiers": [{"unit_price": 1}]}, ("tiers", 0, "up_to"), "missing", "Field required"),
            (
                {"model": "graduated", "tiers": [{"up_to": 0}, {"up_to": None}]},
                ("tiers", 0, "up_to"),
                "greater_than",
                "expected the tier's last quantity: greater than 0, below 10^18, with up to 9 decimals, e.g. 1000; "
                "null only in the last tier (got 0)",
            ),
            (
                {"model": "graduated", "tiers": [{"up_to": "1.0000000001"}, {"up_to": None}]},
                ("tiers", 0, "up_to"),
                "value_error",
                "with up to 9 decimals",
            ),
            (
                {"model": "volume", "tiers": [{"up_to": 10**18}, {"up_to": None}]},
                ("tiers", 0, "up_to"),
                "less_than",
                "below 10^18",
            ),
            (
                {"model": "graduated", "tiers": [{"up_to": None, "unit_price": "-0.01"}]},
                ("tiers", 0, "unit_price"),
                "greater_than_equal",
                f"expected the price of one unit: {MONEY_WORDS}, e.g. 0.05 (got -0.01)",
            ),
            (
                {"model": "volume", "tiers": [{"up_to": None, "flat_fee": -10}]},
                ("tiers", 0, "flat_fee"),
                "greater_than_equal",
                f"expected a fee charged once if the tier is reached: {MONEY_WORDS}, e.g. 10 (got -10)",
            ),
            (
                {"model": "volume", "tiers": [{"up_to": None, "flat_fee": "1e10"}]},
                ("tiers", 0, "flat_fee"),
                "less_than_equal",
                "(got 1e10)",
            ),
            (
                {"model": "graduated", "tiers": [{"up_to": None, "from": 0}]},
                ("tiers", 0, "from"),
                "extra_forbidden",
                "Extra",
            ),
            (
                {"model": "package", "package_price": 5},
                ("package_size",),
                "missing",
                "Field required",
            ),
            (
                {"model": "package", "package_size": 0, "package_price": 5},
                ("package_size",),
                "greater_than_equal",
                "expected the units in one package: a whole number from 1, below 10^18, e.g. 1000 (got 0)",
            ),
            (
                {"model": "package", "package_size": D("2.5"), "package_price": 5},
                ("package_size",),
                "int_from_float",
                "a whole number from 1, below 10^18, e.g. 1000 (got 2.5)",
            ),
            (
                {"model": "package", "package_size": True, "package_price": 5},
                ("package_size",),
                "value_error",
                "(got True)",
            ),
            (
                {"model": "package", "package_size": 10**18, "package_price": 5},
                ("package_size",),
                "less_than",
                "below 10^18",
            ),
            (
                {"model": "package", "package_size": 1000, "package_price": -5},
                ("package_price",),
                "greater_than_equal",
                f"expected the price of one package: {MONEY_WORDS}, e.g. 5 (got -5)",
            ),
            ({"model": "package", "package_size": 1000}, ("package_price",), "missing", "Field required"),
            ("per_unit", (), "model_attributes_type", "dictionary"),
        ],
    )
    def test_each_wrong_field_is_named_with_what_to_send(
        self, data: Any, loc: tuple[Any, ...], kind: str, words: str
    ) -> None:
        error = only_error(data)
        assert (error["loc"], error["type"]) == (loc, kind)
        assert words in error["msg"]

    def test_the_path_never_names_pydantics_tag(self) -> None:
        found = errors_of({"model": "graduated", "tiers": [{"up_to": 5, "unit_price": -1}, {"up_to": None}]})
        assert [error["loc"] for error in found] == [("tiers", 0, "unit_price")]


class TestRefusedTiers:
    def test_out_of_order(self) -> None:
        assert only_error({"model": "graduated", "tiers": [{"up_to": 10}, {"up_to": 5}, {"up_to": None}]}) == {
            "loc": ("tiers", 1, "up_to"),
            "type": "tier_order",
            "msg": "must be greater than the previous tier's up_to (10): tiers are listed in ascending order of "
            "up_to, e.g. 20",
        }

    def test_the_same_up_to_twice(self) -> None:
        assert only_error({"model": "volume", "tiers": [{"up_to": 5}, {"up_to": "5.0"}, {"up_to": None}]}) == {
            "loc": ("tiers", 1, "up_to"),
            "type": "tier_duplicate",
            "msg": "repeats up_to 5.0 of tiers.0: each tier needs its own up_to, greater than the previous tier's, "
            "e.g. 10",
        }

    def test_an_unbounded_tier_before_the_last(self) -> None:
        assert only_error({"model": "graduated", "tiers": [{"up_to": 5}, {"up_to": None}, {"up_to": None}]}) == {
            "loc": ("tiers", 1, "up_to"),
            "type": "tier_unbounded",
            "msg": "only the last tier may have up_to null; expected this tier's last quantity, greater than the "
            "previous tier's up_to, e.g. 10",
        }

    def test_a_bounded_last_tier(self) -> None:
        assert only_error({"model": "volume", "tiers": [{"up_to": 5}, {"up_to": 10}]}) == {
            "loc": ("tiers", 1, "up_to"),
            "type": "tier_bounded_last",
            "msg": "the last tier must have up_to null, so that every quantity falls in a tier; e.g. end the tiers "
            'with {"up_to": null, "unit_price": "0.01"}',
        }

    def test_every_mistake_is_reported_at_its_tier(self) -> None:
        found = errors_of(
            {"model": "graduated", "tiers": [{"up_to": None}, {"up_to": 10}, {"up_to": 5}, {"up_to": 10}]}
        )
        assert [(error["loc"], error["type"]) for error in found] == [
            (("tiers", 0, "up_to"), "tier_unbounded"),
            (("tiers", 2, "up_to"), "tier_order"),
            (("tiers", 3, "up_to"), "tier_duplicate"),
            (("tiers", 3, "up_to"), "tier_bounded_last"),
        ]
        assert found[0]["msg"].endswith("expected this tier's last quantity, e.g. 1000")


class Body(NativeInput):
    """A request that carries a price, as the plan and negotiated-price requests of issue 18 will."""

    price: Price


class TestAsA400WouldSayIt:
    """What ``api.explain.field_error`` makes of each refusal when a price comes in a request body."""

    @staticmethod
    def explained(data: Any) -> list[tuple[str, str, str, str]]:
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(Body).validate_python({"price": data})
        rendered = []
        for error in caught.value.errors():
            item = field_error({**error, "loc": ("body", *error["loc"])}, Body)
            assert not REGEX.search(item.message + item.suggestion), item
            rendered.append((item.path, item.error_type, item.message, item.suggestion))
        return rendered

    def test_a_range_error_keeps_its_words(self) -> None:
        assert self.explained({"model": "graduated", "tiers": [{"up_to": None, "unit_price": -1}]}) == [
            (
                "body.price.tiers.0.unit_price",
                "greater_than_equal",
                f"expected the price of one unit: {MONEY_WORDS}, e.g. 0.05 (got -1)",
                "",
            )
        ]

    def test_a_tier_error(self) -> None:
        [(path, kind, message, _)] = self.explained(
            {"model": "volume", "tiers": [{"up_to": 5}, {"up_to": 1}, {"up_to": None}]}
        )
        assert (path, kind) == ("body.price.tiers.1.up_to", "tier_order")
        assert "ascending order of up_to, e.g. 10" in message

    def test_a_missing_or_unknown_model(self) -> None:
        assert self.explained({"unit_price": 1})[0][:3] == ("body.price.model", "missing", "is required")
        [(path, kind, message, _)] = self.explained({"model": "tiered"})
        assert (path, kind) == ("body.price.model", "union_tag_invalid")
        assert message == 'expected one of "per_unit", "graduated", "volume" or "package" (got tiered)'

    def test_a_value_that_is_not_a_number(self) -> None:
        [(path, kind, message, suggestion)] = self.explained({"model": "per_unit", "unit_price": "five"})
        assert (path, kind) == ("body.price.unit_price", "decimal_parsing")
        assert message == "expected a decimal number, e.g. 12.5 or \"12.5\" (got 'five')"
        assert suggestion

    def test_an_unknown_field(self) -> None:
        [(path, kind, message, _)] = self.explained({"model": "per_unit", "unit_price": 1, "units": 3})
        assert (path, kind) == ("body.price.units", "extra_forbidden")
        assert "'units' is not a field of this request" in message


class TestParsePrice:
    def test_a_good_price(self) -> None:
        assert parse_price(jsontext.loads('{"model": "package", "package_size": 10, "package_price": "0.5"}')) == (
            PackagePrice(model="package", package_size=10, package_price=D("0.5"))
        )

    def test_a_wrong_one_is_validation_failed_under_its_path(self) -> None:
        with pytest.raises(ValidationFailed) as caught:
            parse_price({"model": "volume", "tiers": [{"up_to": 5}]}, "body.prices.TD-1")
        [error] = caught.value.errors
        assert (error.path, error.error_type) == ("body.prices.TD-1.tiers.0.up_to", "tier_bounded_last")
        assert caught.value.status == 400

    def test_the_models_are_what_validation_gives(self) -> None:
        assert isinstance(model({"model": "graduated", "tiers": TIERS}), GraduatedPrice)
        assert isinstance(model({"model": "volume", "tiers": TIERS}), VolumePrice)


class TestTheDocs:
    """docs/pricing.md: every price it shows is valid and costs what it says; its error example is what a 400 says."""

    PAGE = Path(__file__).resolve().parents[2] / "docs" / "pricing.md"
    #: What the page says each of its prices costs, in the order it shows them.
    CLAIMS: ClassVar[list[list[tuple[str, str]]]] = [
        [("12.5", "0.25")],
        [("12", "51")],
        [("1500", "15"), ("1000", "10"), ("1000.5", "10.005"), ("0", "0")],
        [("12", "36"), ("5", "25"), ("5.5", "22"), ("10", "40"), ("0", "0")],
        [("1001", "10"), ("1000", "5"), ("0.5", "5"), ("0", "0")],
    ]

    def blocks(self, language: str) -> list[str]:
        return re.findall(rf"```{language}\n(.*?)```", self.PAGE.read_text(encoding="utf-8"), re.DOTALL)

    def test_each_price_costs_what_the_page_says(self) -> None:
        prices = [parsed(block) for block in self.blocks("json")]
        assert len(prices) == len(self.CLAIMS)
        for shown, claims in zip(prices, self.CLAIMS, strict=True):
            for quantity, amount in claims:
                assert price(shown, D(quantity)).amount == D(amount), (shown, quantity)

    def test_the_error_example(self) -> None:
        [example] = self.blocks("text")
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(Body).validate_python(
                {"price": {"model": "graduated", "tiers": [{"up_to": 10}, {"up_to": 5}, {"up_to": 20}]}}
            )
        rendered = [field_error({**error, "loc": ("body", *error["loc"])}, Body) for error in caught.value.errors()]
        assert example.splitlines() == [f"{error.path}: {error.message}" for error in rendered]
