"""What the catalog stores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal, get_args

__all__ = ["USAGE_TYPES", "Price", "Product", "UsageType"]

#: The usage types of the Talkdesk dialect, which every product carries.
UsageType = Literal[
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
]
USAGE_TYPES: Final = get_args(UsageType)


@dataclass(frozen=True)
class Price:
    effective_from: datetime
    unit_price: Decimal


@dataclass(frozen=True)
class Product:
    product_id: str
    aggr_product_id: str | None
    description: str
    type: str
    unit: str
    wallet_name: str | None
    currency: str
    created_at: datetime
    updated_at: datetime
    #: Every price, oldest first; the one in force at an instant is the last that starts at or before it.
    prices: tuple[Price, ...]

    def price_at(self, moment: datetime) -> Decimal | None:
        in_force = None
        for price in self.prices:
            if price.effective_from <= moment:
                in_force = price.unit_price
        return in_force
