"""What the alerts API accepts, and how it renders alerts and their firings (also in ``alert.triggered`` events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from meterbook.alerts.models import ALERT_TYPES, Alert, Trigger
from meterbook.kit.fields import JsonNumber, Name, NativeInput
from meterbook.kit.money import MONEY_SCALE

__all__ = ["AlertCreate", "AlertOut", "AlertsOut", "TriggerOut", "TriggersOut"]

_TYPE_EXAMPLE = "spend_above"
#: Above any balance (a 64-bit count of credits) and any month's units of a product that matter in practice.
MAX_THRESHOLD = Decimal(10) ** 19 - Decimal("0.000000001")


def _number(value: Any) -> Decimal:
    """A JSON number or a decimal string, read exactly (as event quantities are); never a boolean, NaN or Infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise PydanticCustomError("threshold", 'must be a number or a decimal string, e.g. 100 or "99.5"')
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise PydanticCustomError("threshold", 'is not a decimal number, e.g. 100 or "99.5"') from None
    if not number.is_finite():
        raise PydanticCustomError("threshold", "must be finite, e.g. 100")
    return number


def _alert_type(value: str) -> str:
    if value not in ALERT_TYPES:
        raise PydanticCustomError(
            "alert_type",
            "{value!r} is not an alert type: expected one of {types}, e.g. {example!r}",
            {"value": value[:60], "types": ", ".join(ALERT_TYPES), "example": _TYPE_EXAMPLE},
        )
    return value


def _threshold(value: Decimal) -> Decimal:
    if value < 0:
        raise PydanticCustomError("threshold", 'must not be negative: expected a number from 0, e.g. 100 or "99.5"')
    if value > MAX_THRESHOLD:
        raise PydanticCustomError("threshold", "must be below 10^19 (credits and units stop there), e.g. 100")
    exponent = value.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -MONEY_SCALE
        and value != value.quantize(Decimal(1).scaleb(-MONEY_SCALE))
    ):
        raise PydanticCustomError(
            "threshold", "has more than {places} decimal places, e.g. 12.5", {"places": MONEY_SCALE}
        )
    return value


AlertTypeName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_alert_type)]
Threshold = Annotated[Decimal, BeforeValidator(_number), AfterValidator(_threshold)]


class AlertCreate(NativeInput):
    name: Name | None = Field(default=None, description="What the alert is for, as people read it.")
    account_id: uuid.UUID | None = Field(
        default=None, description="The account it watches; leave it out for every account of the organization."
    )
    type: AlertTypeName = Field(
        description="credit_balance_below (credits), spend_above (the month's priced usage, in the account's "
        "currency), usage_above (the month's units of product_id) or feature_usage_above (percent of the "
        "feature's effective limit).",
        examples=[_TYPE_EXAMPLE],
        json_schema_extra={"enum": list(ALERT_TYPES)},
    )
    threshold: Threshold = Field(
        description="Credits, money, units or a percent (0 to 100), by type; a JSON number or a decimal string.",
        examples=[100],
        json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string"}]},
    )
    product_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="usage_above only: the product whose units are counted."
    )
    feature: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="feature_usage_above only: the feature whose usage is compared with its limit."
    )


class AlertOut(BaseModel):
    id: uuid.UUID
    name: str | None
    account_id: uuid.UUID | None = Field(description="null: every account of the organization.")
    type: str
    threshold: JsonNumber
    product_id: str | None
    feature: str | None
    created_at: datetime

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        return cls(
            id=alert.id,
            name=alert.name,
            account_id=alert.account_id,
            type=alert.type,
            threshold=alert.threshold,
            product_id=alert.product_id,
            feature=alert.feature,
            created_at=alert.created_at,
        )


class TriggerOut(BaseModel):
    id: uuid.UUID
    alert_id: uuid.UUID
    account_id: uuid.UUID
    period: str = Field(
        description="YYYY-MM (UTC) for the month types; for credit_balance_below the crossing's ordinal: 1, 2, ..."
    )
    value: JsonNumber = Field(description="The balance, spend, units or percent of the limit that crossed.")
    threshold: JsonNumber
    triggered_at: datetime

    @classmethod
    def of(cls, trigger: Trigger) -> TriggerOut:
        return cls(**vars(trigger))


class AlertsOut(BaseModel):
    alerts: list[AlertOut]


class TriggersOut(BaseModel):
    triggers: list[TriggerOut] = Field(description="Newest first.")


def event_data(alert: Alert, trigger: Trigger) -> dict[str, Any]:
    """The ``data`` of an ``alert.triggered`` event: the alert as the API shows it, with the firing."""
    return {**AlertOut.of(alert).model_dump(mode="python"), "trigger": TriggerOut.of(trigger).model_dump(mode="python")}
