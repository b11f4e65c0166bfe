"""The one function that prices a quantity (CONTRACT §6), and the catalog's flat price in its terms.

Every place that needs a price (a billing run, the upcoming invoice, the dialects, ``verify``) calls
:func:`price`; none computes one itself. Arithmetic is exact: a context of 100 digits that traps any
rounding, so a figure too long to be exact raises instead of being billed wrong. The amount is not rounded:
rounding to the currency's minor unit belongs to invoice lines (``kit.money.round_to_minor_unit``).

What the tiers mean (docs/decisions.md, "Pricing models"): a tier covers the quantities above the previous
tier's ``up_to`` up to and including its own, the first from 0, so ``up_to`` 5 then 10 is "1-5, 6-10" in
whole units and 5.5 falls in the second. A quantity of 0 costs 0 under every model: no tier is reached
and no package started.
"""

from __future__ import annotations

from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from functools import lru_cache
from typing import assert_never

from meterbook.pricing.models import Priced, TierCharge
from meterbook.pricing.schemas import GraduatedPrice, PackagePrice, PerUnitPrice, PriceModel, Tier, VolumePrice

__all__ = ["per_unit_price", "price"]

_ZERO = Decimal(0)
#: Far more digits than any stored quantity times any price needs (about 50), and an error, never a rounding,
#: if that were ever not enough.
_EXACT = Context(prec=100, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def _plain(value: Decimal) -> Decimal:
    """The same number without trailing zeros or exponent: ``0.050`` is ``0.05``, ``1E+1`` is ``10``."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized == normalized.to_integral_value() else normalized


@lru_cache(maxsize=4096)
def _plain_constant(value: Decimal) -> Decimal:
    """:func:`_plain` of a price's own figures (bounds, unit prices, fees): a billing run prices every account's
    month with the same few, so each is made plain once."""
    if value == 0:
        return _ZERO  # never a "-0": equal figures share one cache entry
    with localcontext(_EXACT):
        return _plain(value)


def _charge(lower: Decimal, tier: Tier, units: Decimal) -> TierCharge:
    return TierCharge(
        from_=_plain_constant(lower),
        up_to=None if tier.up_to is None else _plain_constant(tier.up_to),
        units=_plain(units),
        unit_price=_plain_constant(tier.unit_price),
        flat_fee=_plain_constant(tier.flat_fee),
        amount=_plain(units * tier.unit_price + tier.flat_fee),
    )


def _graduated(tiers: list[Tier], quantity: Decimal) -> Priced:
    charges: list[TierCharge] = []
    lower = _ZERO
    for tier in tiers:
        if quantity <= lower:
            break  # not reached: no part of a unit falls in this tier
        top = quantity if tier.up_to is None else min(quantity, tier.up_to)
        charges.append(_charge(lower, tier, top - lower))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return Priced(amount=_plain(sum((charge.amount for charge in charges), _ZERO)), tiers=tuple(charges))


def _volume(tiers: list[Tier], quantity: Decimal) -> Priced:
    if quantity == 0:
        return Priced(amount=_ZERO)
    lower = _ZERO
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            charge = _charge(lower, tier, quantity)
            return Priced(amount=charge.amount, tiers=(charge,))
        lower = tier.up_to
    # Validation makes the last tier unbounded, so the loop always returns.
    raise AssertionError("a volume price whose last tier is bounded")


def _package(model: PackagePrice, quantity: Decimal) -> Priced:
    size = Decimal(model.package_size)
    whole, rest = divmod(quantity, size)
    started = whole + (1 if rest else 0)
    return Priced(amount=_plain(started * model.package_price))


def price(price_model: PriceModel, quantity: Decimal) -> Priced:
    """What ``quantity`` units cost under ``price_model``, exactly.

    ``quantity`` is what the tiers count: an account's units of one product in one UTC month (0 or more, any
    number of decimals). A float is refused: it is not an exact quantity.
    """
    if not isinstance(quantity, Decimal):
        raise TypeError(f"a quantity to price is a Decimal, not {type(quantity).__name__}")
    if not quantity.is_finite() or quantity < 0:
        raise ValueError(f"a quantity to price must be a finite number of 0 or more, not {quantity}")
    with localcontext(_EXACT):
        match price_model:
            case PerUnitPrice():
                return Priced(amount=_plain(quantity * price_model.unit_price))
            case GraduatedPrice():
                return _graduated(price_model.tiers, quantity)
            case VolumePrice():
                return _volume(price_model.tiers, quantity)
            case PackagePrice():
                return _package(price_model, quantity)
            case _:
                assert_never(price_model)


def per_unit_price(unit_price: Decimal) -> PerUnitPrice:
    """The catalog's flat price of a product (``products.unit_price``) as a price model: pricing a month's units
    with it gives exactly what billing computes today (units times the price), so callers can move here as is."""
    return PerUnitPrice(model="per_unit", unit_price=unit_price)
