"""Input field types shared by every domain's schemas: names, UTC instants, currencies, exact money."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from meterbook.kit.money import MONEY_SCALE, is_currency
from meterbook.kit.time import as_utc

__all__ = [
    "INT64_MAX",
    "MAX_MONEY",
    "CurrencyCode",
    "InputModel",
    "JsonNumber",
    "Money",
    "Name",
    "Utc",
    "WholeNumber",
]

INT64_MAX = 2**63 - 1
#: The largest unrounded amount: what fits a 64-bit integer at meterbook's money scale, rounded down.
MAX_MONEY = Decimal(9_000_000_000)


#: A Decimal that goes out as a JSON number with its exact text (and is documented as a number): what the
#: domains' renderings (``schemas.py``) and every dialect use for money and quantities.
JsonNumber = Annotated[Decimal, WithJsonSchema({"type": "number"})]

#: A UTC month, ``YYYY-MM``.
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


class InputModel(BaseModel):
    # Unknown fields are ignored, as every dialect promises (real clients send fields of newer versions).
    model_config = ConfigDict(extra="ignore", frozen=True)


class NativeInput(InputModel):
    """A request body of the native API, which refuses unknown fields (contract §3): a misspelt field that
    were ignored would bill wrongly (an ``occurred_at`` sent as ``timestamp`` would date usage today)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _currency(code: str) -> str:
    if not is_currency(code):
        raise ValueError(f"{code!r} is not an ISO-4217 currency code")
    return code


def _utc(moment: datetime) -> datetime:
    try:
        return as_utc(moment)
    except OverflowError:
        raise ValueError("is outside the range of UTC timestamps (years 1 to 9999)") from None


def _money_digits(amount: Decimal) -> Decimal:
    exponent = amount.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -MONEY_SCALE
        and amount != amount.quantize(Decimal(1).scaleb(-MONEY_SCALE))
    ):
        raise ValueError(f"has more than {MONEY_SCALE} decimal places")
    return amount


def _not_a_boolean(value: object) -> object:
    # JSON true is not the number 1, whatever Python thinks.
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not a boolean")
    return value


#: A JSON integer (a whole-valued number such as 5.0 too); never a boolean.
WholeNumber = Annotated[int, BeforeValidator(_not_a_boolean)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Utc = Annotated[AwareDatetime, AfterValidator(_utc)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_currency)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_MONEY, allow_inf_nan=False), AfterValidator(_money_digits)]
