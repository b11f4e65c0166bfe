"""Taxes (``invoicing.taxes``): per line, rounded per line; an invoice's total is its rounded lines plus their
rounded taxes, and each tax is within half a minor unit of the exact one (issue 20)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

from hypothesis import given
from hypothesis import strategies as st

from meterbook.invoicing.taxes import LineTax, TaxRate, line_taxes, tax_totals
from meterbook.kit.money import CURRENCY_EXPONENTS, round_to_minor_unit

currencies = st.sampled_from(["USD", "JPY", "BHD", "EUR", "CLF"])
percents = st.decimals(min_value=0, max_value=100, places=3)
rates = st.lists(st.builds(TaxRate, st.sampled_from(["VAT", "State", "City", "GST"]), percents), min_size=0, max_size=3)
raw_amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=9)


@given(currency=currencies, raw=st.lists(raw_amounts, max_size=12), taxes=rates)
def test_the_total_is_the_rounded_lines_and_their_rounded_taxes(
    currency: str, raw: list[Decimal], taxes: list[TaxRate]
) -> None:
    step = Decimal(1).scaleb(-CURRENCY_EXPONENTS[currency])
    lines = [round_to_minor_unit(amount, currency) for amount in raw]
    per_line = [line_taxes(amount, taxes, currency) for amount in lines]
    totals = tax_totals(per_line)
    total = sum(lines, Decimal(0)) + sum((tax.amount for tax in totals), Decimal(0))
    # The same total from the pieces a customer sees on each line.
    assert total == sum(lines, Decimal(0)) + sum((tax.amount for taxes_ in per_line for tax in taxes_), Decimal(0))
    for amount, line_tax in zip(lines, per_line, strict=True):
        assert [tax.name for tax in line_tax] == [rate.name for rate in taxes]
        for rate, tax in zip(taxes, line_tax, strict=True):
            with localcontext(prec=60):
                exact = amount * rate.percent / 100
            # Rounded to the minor unit, half away from zero, and never further from the exact tax than half of it.
            assert tax.amount == tax.amount.quantize(step)
            assert abs(tax.amount - exact) <= step / 2
            assert tax.amount == exact.quantize(step, rounding=ROUND_HALF_UP)
    # One total per rate, each the sum of that rate's line taxes.
    for total_tax in totals:
        assert total_tax.amount == sum(
            (
                tax.amount
                for taxes_ in per_line
                for tax in taxes_
                if (tax.name, tax.percent) == (total_tax.name, total_tax.percent)
            ),
            Decimal(0),
        )


def test_a_worked_example() -> None:
    # 8.875 % of 10.00 is 0.8875: 0.89; of 0.05 is 0.0044375: 0.00. Per line, then summed: 0.89.
    rates = [TaxRate("NYC sales tax", Decimal("8.875"))]
    per_line = [line_taxes(Decimal("10.00"), rates, "USD"), line_taxes(Decimal("0.05"), rates, "USD")]
    assert [taxes[0].amount for taxes in per_line] == [Decimal("0.89"), Decimal("0.00")]
    assert tax_totals(per_line) == [LineTax("NYC sales tax", Decimal("8.875"), Decimal("0.89"))]
