"""What the invoicing domain accepts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from meterbook.kit.fields import InputModel

__all__ = ["MONTH_PATTERN", "BillingRunIn"]

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


class BillingRunIn(InputModel):
    month: Annotated[str, StringConstraints(pattern=MONTH_PATTERN)] = Field(
        description="The UTC month to invoice, `YYYY-MM`; it must have ended.", examples=["2026-10"]
    )
