"""What the payments domain accepts."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints

from meterbook.kit.fields import CurrencyCode, Money, NativeInput, Utc

__all__ = ["PaymentIn"]


class PaymentIn(NativeInput):
    id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None,
        description="Your id for this payment: sending it again records nothing more. Default: a new UUID.",
    )
    account_id: uuid.UUID
    amount: Money = Field(gt=0, description="At most the currency's minor-unit digits (2 for USD, 0 for JPY).")
    currency: CurrencyCode | None = Field(
        default=None, description="Default: the named invoice's currency, else the account's."
    )
    date: Utc | None = Field(default=None, description="When the money was received. Default: now.")
    invoice_id: uuid.UUID | None = Field(
        default=None,
        description="The invoice this pays first; the rest goes to the oldest open invoices, then stays unapplied.",
    )
    reference: Annotated[str, StringConstraints(max_length=255)] | None = Field(
        default=None, description="Your reference, e.g. a bank transfer id."
    )
