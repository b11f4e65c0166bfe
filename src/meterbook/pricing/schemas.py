"""The four price models of CONTRACT §6, as request bodies give them.

A price is a JSON object whose ``model`` says which of four it is::

    {"model": "per_unit", "unit_price": "0.05"}
    {"model": "graduated", "tiers": [{"up_to": 5, "unit_price": 5}, {"up_to": null, "unit_price": 3}]}
    {"model": "volume", "tiers": [{"up_to": 5, "unit_price": 5}, {"up_to": null, "unit_price": 3}]}
    {"model": "package", "package_size": 1000, "package_price": 5}

:data:`Price` validates one (a JSON number or a decimal string wherever money or a quantity goes). Its errors
name the field as the client wrote it (``tiers.1.up_to``, never pydantic's ``graduated.tiers.1.up_to``) and say
what is expected, with an example. Prices keep the catalog's limits (:data:`~meterbook.kit.fields.Money`: 0 or
more, up to nine decimals); tier bounds and package sizes keep those of a metered quantity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticKnownError

from meterbook.errors import ValidationFailed, field_errors_from_pydantic
from meterbook.kit.fields import MAX_MONEY, Money, NativeInput, WholeNumber

__all__ = [
    "MAX_QUANTITY",
    "MAX_TIERS",
    "QUANTITY_PLACES",
    "GraduatedPrice",
    "PackagePrice",
    "PerUnitPrice",
    "Price",
    "PriceModel",
    "Tier",
    "VolumePrice",
    "parse_price",
]

#: Tier bounds and package sizes are quantities: below 10**18 with up to nine decimals, as a metered event's
#: quantity is (``usage.schemas``; pricing depends on no other domain, and a test holds the two equal).
MAX_QUANTITY = Decimal(10) ** 18
QUANTITY_PLACES = 9
#: More tiers than this is a mistake, not a price list.
MAX_TIERS = 100

_MODELS = ("per_unit", "graduated", "volume", "package")
_MODEL_NAMES = '"per_unit", "graduated", "volume" or "package"'
_LAST_TIER_EXAMPLE = '{"up_to": null, "unit_price": "0.01"}'

# Errors of a value's range or digits, which each field below says in its own words. Errors of its type
# (not a number at all) keep pydantic's kind, which ``api.explain`` already words with an example.
_RANGE_KINDS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "finite_number",
        "value_error",
        "int_from_float",
        "decimal_max_places",
        "decimal_max_digits",
        "decimal_whole_digits",
    }
)


def _shown(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        return f" (got {value})" if isinstance(value, bool) else ""
    text = format(value, "f") if isinstance(value, Decimal) and value.is_finite() else str(value)
    return f" (got {text})" if len(text) <= 60 else ""


def _rebuilt(error: Mapping[str, Any], loc: Sequence[str | int], message: str | None = None) -> InitErrorDetails:
    """A pydantic error again, at ``loc``, of the same kind; with ``message`` it says that instead."""
    kind = str(error["type"])
    context = error.get("ctx")
    text = str(error["msg"]) if message is None else message
    try:
        known = PydanticKnownError(cast(Any, kind), context)
    except (KeyError, TypeError):
        known = None
    if known is not None and known.message() == text:
        # Pydantic's own error, as it was: its context stays for ``api.explain`` (a literal's choices).
        details = InitErrorDetails(type=cast(Any, kind), loc=tuple(loc), input=error.get("input"))
        if context is not None:
            details["ctx"] = context
        return details
    return InitErrorDetails(type=PydanticCustomError(kind, text), loc=tuple(loc), input=error.get("input"))


def _explained(expected: str) -> WrapValidator:
    """Say a wrong value of this field as ``expected`` (what to send, with an example) and what was sent."""

    def explain(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            details = [
                _rebuilt(found, found["loc"], expected + _shown(found.get("input")))
                if found["type"] in _RANGE_KINDS
                else _rebuilt(found, found["loc"])
                for found in error.errors()
            ]
            raise ValidationError.from_exception_data(error.title, details) from None

    return WrapValidator(explain)


def _quantity_digits(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -QUANTITY_PLACES and value != round(value, QUANTITY_PLACES):
        raise ValueError(f"has more than {QUANTITY_PLACES} decimal places")
    return value


_MONEY_LIMITS = f"0 or more, at most {MAX_MONEY}, with up to 9 decimals"

UnitPrice = Annotated[Money, _explained(f"expected the price of one unit: {_MONEY_LIMITS}, e.g. 0.05")]
FlatFee = Annotated[Money, _explained(f"expected a fee charged once if the tier is reached: {_MONEY_LIMITS}, e.g. 10")]
PackagePriceAmount = Annotated[Money, _explained(f"expected the price of one package: {_MONEY_LIMITS}, e.g. 5")]
UpTo = Annotated[
    Decimal,
    Field(gt=0, lt=MAX_QUANTITY, allow_inf_nan=False),
    AfterValidator(_quantity_digits),
    _explained(
        "expected the tier's last quantity: greater than 0, below 10^18, with up to 9 decimals, e.g. 1000; "
        "null only in the last tier"
    ),
]
PackageSize = Annotated[
    WholeNumber,
    _explained("expected the units in one package: a whole number from 1, below 10^18, e.g. 1000"),
]


class Tier(NativeInput):
    up_to: UpTo | None = Field(
        description="The last quantity of the month this tier covers (inclusive); null for the last tier, "
        "which covers everything above the one before it.",
        json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
    )
    unit_price: UnitPrice = Field(default=Decimal(0), description="The price of each unit in the tier (default 0).")
    flat_fee: FlatFee = Field(default=Decimal(0), description="Charged once when the tier is reached (default 0).")


def _example_bound(previous: Decimal | None) -> str:
    return "1000" if previous is None else str(previous * 2)


def _tiers_in_order(tiers: list[Tier]) -> list[Tier]:
    """Ascending, distinct upper bounds; only the last unbounded. Every mistake is reported, at its tier."""
    errors: list[InitErrorDetails] = []

    def refuse(index: int, kind: str, message: str) -> None:
        errors.append(
            InitErrorDetails(type=PydanticCustomError(kind, message), loc=(index, "up_to"), input=tiers[index].up_to)
        )

    if not tiers:
        raise PydanticCustomError("too_short", f"expected at least one tier, e.g. [{_LAST_TIER_EXAMPLE}]")
    if len(tiers) > MAX_TIERS:
        raise PydanticCustomError("too_long", f"expected at most {MAX_TIERS} tiers (got {len(tiers)})")
    last = len(tiers) - 1
    seen: dict[Decimal, int] = {}
    highest: Decimal | None = None
    for index, tier in enumerate(tiers):
        bound = tier.up_to
        if bound is None:
            if index != last:
                above = "" if highest is None else ", greater than the previous tier's up_to"
                refuse(
                    index,
                    "tier_unbounded",
                    f"only the last tier may have up_to null; expected this tier's last quantity{above}, "
                    f"e.g. {_example_bound(highest)}",
                )
            continue
        if bound in seen:
            refuse(
                index,
                "tier_duplicate",
                f"repeats up_to {bound} of tiers.{seen[bound]}: each tier needs its own up_to, greater than the "
                f"previous tier's, e.g. {_example_bound(highest)}",
            )
        elif highest is not None and bound < highest:
            refuse(
                index,
                "tier_order",
                f"must be greater than the previous tier's up_to ({highest}): tiers are listed in ascending "
                f"order of up_to, e.g. {_example_bound(highest)}",
            )
        seen.setdefault(bound, index)
        highest = bound if highest is None else max(highest, bound)
    if tiers[last].up_to is not None:
        refuse(
            last,
            "tier_bounded_last",
            "the last tier must have up_to null, so that every quantity falls in a tier; e.g. end the tiers "
            f"with {_LAST_TIER_EXAMPLE}",
        )
    if errors:
        raise ValidationError.from_exception_data("tiers", errors)
    return tiers


Tiers = Annotated[
    list[Tier],
    AfterValidator(_tiers_in_order),
    Field(
        description="Ascending by up_to; the last has up_to null.",
        json_schema_extra={"minItems": 1, "maxItems": MAX_TIERS},
    ),
]


class PerUnitPrice(NativeInput):
    """Every unit at one price (the catalog's price until now)."""

    model: Literal["per_unit"]
    unit_price: UnitPrice = Field(description="The price of each unit; up to 9 decimals.")


class GraduatedPrice(NativeInput):
    """Each tier's units at that tier's price, plus the flat fee of every tier reached."""

    model: Literal["graduated"]
    tiers: Tiers


class VolumePrice(NativeInput):
    """All units at the price of the tier the month's total falls in, plus that tier's flat fee."""

    model: Literal["volume"]
    tiers: Tiers


class PackagePrice(NativeInput):
    """Units are sold in packages of ``package_size``: every package started is charged whole."""

    model: Literal["package"]
    package_size: PackageSize = Field(
        ge=1, lt=int(MAX_QUANTITY), description="The units in one package: a whole number of 1 or more."
    )
    package_price: PackagePriceAmount = Field(description="The price of one package; up to 9 decimals.")


#: Any one of the four, for type annotations of code that prices.
PriceModel = PerUnitPrice | GraduatedPrice | VolumePrice | PackagePrice


def _untagged(value: Any, handler: Callable[[Any], Any]) -> Any:
    """Errors at the field the client wrote: pydantic puts the model's name (``graduated``) first in the path."""
    try:
        return handler(value)
    except ValidationError as error:
        details: list[InitErrorDetails] = []
        for found in error.errors():
            loc = list(found["loc"])
            kind = found["type"]
            if kind == "union_tag_not_found":
                message = f'is required: the price model, one of {_MODEL_NAMES}, e.g. {{"model": "per_unit", ...}}'
                details.append(_rebuilt({**found, "type": "missing"}, ["model"], message))
            elif kind == "union_tag_invalid":
                tag = found.get("ctx", {}).get("tag")
                message = f"expected one of {_MODEL_NAMES}" + _shown(tag)
                details.append(_rebuilt({**found, "input": tag}, ["model"], message))
            else:
                details.append(_rebuilt(found, loc[1:] if loc and loc[0] in _MODELS else loc))
        raise ValidationError.from_exception_data(error.title, details) from None


#: A price as a request gives it: one of the four models, chosen by ``model``.
Price = Annotated[PriceModel, Field(discriminator="model"), WrapValidator(_untagged)]

_PRICE: TypeAdapter[PriceModel] = TypeAdapter(Price)


def parse_price(data: Any, path: str = "body") -> PriceModel:
    """A price read from parsed JSON (``kit.jsontext.loads``) outside a request, such as a stored one or one the
    CLI was given; a wrong one is :class:`~meterbook.errors.ValidationFailed`, each error's path under ``path``."""
    try:
        return _PRICE.validate_python(data)
    except ValidationError as error:
        raise ValidationFailed(field_errors_from_pydantic(error.errors(), path.split("."))) from None
