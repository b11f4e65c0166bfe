"""What an event looks like on the way in, and the rules each kind's quantity follows."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meterbook.kit.fields import INT64_MAX, NativeInput, Utc

__all__ = ["MAX_BATCH", "EventIn", "parse_quantity"]

MAX_BATCH = 10_000
#: Metered quantities keep up to nine decimals and stay below 10**18, so any one fits 64-bit storage at scale 9.
METERED_MAX = Decimal(10) ** 18
METERED_PLACES = 9
_PLACES = Decimal(1).scaleb(-METERED_PLACES)


def parse_quantity(value: Any) -> Decimal:
    """A JSON number or a decimal string, read exactly; booleans, NaN and Infinity are not quantities."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError("must be a number or a decimal string")
    try:
        quantity = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ValueError("is not a decimal number") from None
    if not quantity.is_finite():
        raise ValueError("must be finite")
    return quantity


Text = Annotated[str, StringConstraints(max_length=1000)]


class EventIn(NativeInput):
    id: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="Your id for the event: it is applied at most once, for ever."
    )
    account_id: uuid.UUID
    type: Literal["metered", "credit", "feature"]
    product_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    feature: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    quantity: Annotated[Decimal, BeforeValidator(parse_quantity)] = Field(
        description="metered: > 0 with up to 9 decimals; credit: integer > 0; feature: non-zero integer "
        "(negative releases). A JSON number or a decimal string.",
        json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string"}]},
    )
    occurred_at: Utc | None = Field(
        default=None, description="Default: when meterbook receives it; at most 5 min ahead."
    )
    direction: Literal["INBOUND", "OUTBOUND", "OTHER"] | None = None
    resolution: Annotated[str, StringConstraints(max_length=100)] | None = None
    user_id: Annotated[str, StringConstraints(max_length=255)] | None = None
    source: Annotated[str, StringConstraints(max_length=100)] | None = None
    description: Text | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("quantity")
    @classmethod
    def _quantity_of_kind(cls, quantity: Decimal, info: ValidationInfo) -> Decimal:
        kind = info.data.get("type")
        integral = quantity == quantity.to_integral_value()
        if kind == "metered":
            if quantity <= 0 or quantity >= METERED_MAX:
                raise ValueError("a metered quantity must be greater than 0 and below 10^18")
            exponent = quantity.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -METERED_PLACES and quantity != quantity.quantize(_PLACES):
                raise ValueError("a metered quantity has at most 9 decimal places")
        elif kind == "credit":
            if not integral or quantity <= 0 or quantity > INT64_MAX:
                raise ValueError("a credit quantity must be a whole number of credits greater than 0")
        elif kind == "feature" and (not integral or quantity == 0 or abs(quantity) > INT64_MAX):
            raise ValueError("a feature quantity must be a non-zero whole number (negative releases)")
        return quantity

    @model_validator(mode="after")
    def _references_of_kind(self) -> EventIn:
        if self.type == "metered" and self.product_id is None:
            raise PydanticCustomError("missing", "a metered event needs product_id")
        if self.type == "feature" and self.feature is None:
            raise PydanticCustomError("missing", "a feature event needs feature")
        return self
