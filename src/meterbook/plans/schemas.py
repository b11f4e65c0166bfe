"""What the plans domain accepts: a plan version, a subscription, a negotiated price (CONTRACT §6)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from meterbook.catalog.schemas import PRODUCT_ID
from meterbook.features.schemas import FEATURE_NAME
from meterbook.kit.fields import INT64_MAX, CurrencyCode, Money, NativeInput, Utc, WholeNumber
from meterbook.pricing import Price

__all__ = ["MAX_PLAN_ENTRIES", "PLAN_CODE", "IncludedCreditsIn", "NegotiatedPricePut", "PlanPut", "SubscriptionPut"]

#: Plan codes are short printable words such as ``pro`` or ``enterprise-2026``.
PLAN_CODE = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$"
#: More prices or limits than this in one plan is a mistake, not a price list.
MAX_PLAN_ENTRIES = 1000


def _month_start(moment: datetime) -> datetime:
    if (moment.day, moment.hour, moment.minute, moment.second, moment.microsecond) != (1, 0, 0, 0, 0):
        raise PydanticCustomError(
            "month_start",
            "expected the first instant of a UTC month, e.g. {example}",
            {"example": f"{moment.year:04d}-{moment.month:02d}-01T00:00:00Z"},
        )
    return moment


MonthStart = Annotated[Utc, AfterValidator(_month_start)]
ProductId = Annotated[str, StringConstraints(pattern=PRODUCT_ID)]
FeatureName = Annotated[str, StringConstraints(pattern=FEATURE_NAME)]
Limit = Annotated[WholeNumber, Field(ge=0, le=INT64_MAX)]
Credits = Annotated[WholeNumber, Field(ge=0, le=INT64_MAX)]


def _rollover(value: Any) -> Literal["none", "all"] | int:
    if value == "none" or value == "all":
        return "none" if value == "none" else "all"
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX:
        return value
    shown = f" (got {value!r})" if isinstance(value, str | int | float) and len(repr(value)) <= 60 else ""
    raise PydanticCustomError(
        "rollover",
        'expected "none" (what is left lapses), "all", or the most credits that roll over, a whole number from 0, '
        "e.g. 500{shown}",
        {"shown": shown},
    )


Rollover = Annotated[
    Literal["none", "all"] | int,
    PlainValidator(_rollover),
    WithJsonSchema({"anyOf": [{"enum": ["none", "all"]}, {"type": "integer", "minimum": 0, "maximum": INT64_MAX}]}),
]


class IncludedCreditsIn(NativeInput):
    amount: Credits = Field(description="Whole credits granted each month on the plan.")
    rollover: Rollover = Field(
        default="none",
        description='What is left at a month\'s end: "none" (it lapses), "all", or at most this many credits.',
    )


class PlanPut(NativeInput):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    currency: CurrencyCode
    fee: Money = Field(default=Decimal(0), description="The fixed amount of a month on the plan (default 0).")
    prices: dict[ProductId, Price] = Field(
        default_factory=dict,
        max_length=MAX_PLAN_ENTRIES,
        description="The plan's price of each product it prices, by product id; others keep the catalog's price.",
    )
    limits: dict[FeatureName, Limit | None] = Field(
        default_factory=dict,
        max_length=MAX_PLAN_ENTRIES,
        description="The plan's limit of each feature, by feature name; null for unlimited.",
    )
    included_credits: IncludedCreditsIn | None = None
    effective_from: MonthStart | None = Field(
        default=None,
        description="The first instant of the UTC month this version holds from (default: the current month's).",
    )


class SubscriptionPut(NativeInput):
    plan: Annotated[str, StringConstraints(pattern=PLAN_CODE)] = Field(description="The plan's code.")
    starts_at: Utc | None = Field(default=None, description="When the account moves to the plan (default: now).")


class NegotiatedPricePut(NativeInput):
    price: Price
    effective_from: MonthStart | None = Field(
        default=None,
        description="The first instant of the UTC month the price holds from (default: the current month's).",
    )
