"""What the catalog accepts."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from meterbook.accounts.schemas import MAX_MONTHLY_COST, CurrencyCode, Utc, _Input, _money_digits

__all__ = ["PRODUCT_ID", "ProductPut"]

#: Product ids are short printable words such as ``TD-USG-TEL-UG-102213``.
PRODUCT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$"

UnitPrice = Annotated[Decimal, Field(ge=0, le=MAX_MONTHLY_COST, allow_inf_nan=False), AfterValidator(_money_digits)]


class ProductPut(_Input):
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    type: Literal[
        "AMD",
        "API_REQUEST",
        "CALL",
        "CALL_SERVICE",
        "CREDIT_COMMIT",
        "DIALER",
        "MESSAGE",
        "NUMBER",
        "PRODUCT_SERVICE",
        "RECHARGE",
        "SPEECH_TRANSCRIPTION",
        "VOICEMAIL_TRANSCRIPTION",
        "OTHER",
    ] = "OTHER"
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)] = "unit"
    aggr_product_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    wallet_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    currency: CurrencyCode = "USD"
    unit_price: UnitPrice = Field(description="Price of one unit, in the product's currency; up to 9 decimals.")
    price_effective_from: Utc | None = Field(
        default=None, description="When unit_price takes effect (default: now). Earlier prices stay for earlier usage."
    )
