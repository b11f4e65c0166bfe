"""Taxes on an invoice (CONTRACT §8): exclusive, computed on each line and rounded on each line.

A tax rate is a name and a percent. An organization has a list of them, and an account may have its own list
instead (a customer abroad, one exempt). Each rate taxes each line's amount (already rounded to the currency's
minor unit) and the tax is rounded to the minor unit there, half away from zero, like every amount of an
invoice: so every tax a customer sees on a line is exact, and the invoice's total is the sum of what it shows,
its rounded lines and their rounded taxes. The invoice shows one total per rate, the sum of its lines' taxes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from meterbook.kit.money import round_to_minor_unit

__all__ = ["LineTax", "TaxRate", "line_taxes", "tax_totals"]

_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class TaxRate:
    name: str
    #: E.g. ``Decimal("8.875")`` for 8.875 %.
    percent: Decimal


@dataclass(frozen=True)
class LineTax:
    """One rate's tax on a line, or, summed over the lines, on the invoice."""

    name: str
    percent: Decimal
    amount: Decimal


def line_taxes(amount: Decimal, rates: Sequence[TaxRate], currency: str) -> tuple[LineTax, ...]:
    """Each rate's tax on a line of ``amount``, rounded to the currency's minor unit."""
    return tuple(
        LineTax(rate.name, rate.percent, round_to_minor_unit(amount * rate.percent / _HUNDRED, currency))
        for rate in rates
    )


def tax_totals(taxes_of_lines: Iterable[Sequence[LineTax]]) -> list[LineTax]:
    """The invoice's taxes: per rate (name and percent), the sum of its lines' taxes, in the order rates came."""
    totals: dict[tuple[str, Decimal], Decimal] = {}
    for taxes in taxes_of_lines:
        for tax in taxes:
            key = (tax.name, tax.percent)
            totals[key] = totals.get(key, Decimal(0)) + tax.amount
    return [LineTax(name, percent, amount) for (name, percent), amount in totals.items()]
