"""What the invoicing domain accepts."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from meterbook.kit.fields import MONTH_PATTERN, NativeInput

__all__ = ["MONTH_PATTERN", "BillingRunIn"]


def _calendar_year(month: str) -> str:
    # The calendar starts at year 1: "0000-01" is written like a month but is none.
    if month.startswith("0000"):
        raise ValueError("year 0000 is not a year of the calendar (years 0001 to 9999)")
    return month


class BillingRunIn(NativeInput):
    month: Annotated[str, StringConstraints(pattern=MONTH_PATTERN), AfterValidator(_calendar_year)] = Field(
        description="The UTC month to invoice, `YYYY-MM`; it must have ended.", examples=["2026-10"]
    )
