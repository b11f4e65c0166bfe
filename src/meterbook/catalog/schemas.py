"""What the catalog accepts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from meterbook.catalog.models import UsageType
from meterbook.kit.fields import CurrencyCode, Money, NativeInput, Utc

__all__ = ["PRODUCT_ID", "ProductPut"]

#: Product ids are short printable words such as ``TD-USG-TEL-UG-102213``.
PRODUCT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$"


class ProductPut(NativeInput):
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    type: UsageType = "OTHER"
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)] = "unit"
    aggr_product_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    wallet_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    currency: CurrencyCode = "USD"
    unit_price: Money = Field(description="Price of one unit, in the product's currency; up to 9 decimals.")
    price_effective_from: Utc | None = Field(
        default=None, description="When unit_price takes effect (default: now). Earlier prices stay for earlier usage."
    )
