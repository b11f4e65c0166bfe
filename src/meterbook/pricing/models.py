"""What pricing a quantity gives: the exact amount, and the tiers it went through."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Priced", "TierCharge"]


@dataclass(frozen=True, slots=True)
class TierCharge:
    """One tier's part of a tiered price: the units above ``from_`` up to and including ``up_to``.

    An invoice line shows it as ``{from, up_to, units, unit_price, flat_fee, amount}``; ``up_to`` is None for
    the last tier. For a volume price the one tier charged holds every unit, so ``units`` is the whole quantity.
    """

    from_: Decimal
    up_to: Decimal | None
    units: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    #: ``units * unit_price + flat_fee``, exact.
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Priced:
    """A quantity's price: ``amount`` is exact, never rounded (an invoice line rounds it, to the currency's
    minor unit); ``tiers`` is the breakdown of a graduated or volume price, empty for per-unit and package
    prices and for a quantity of 0. Every figure is without trailing zeros (``0.05``, never ``0.050``) and a
    whole one has exponent 0 (``10``, never ``1E+1``). Adding figures up needs more than Decimal's default 28
    digits (a month's units times a price has up to about 50): do it in a wide context, as invoicing does."""

    amount: Decimal
    tiers: tuple[TierCharge, ...] = ()
