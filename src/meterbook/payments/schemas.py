"""What the payments domain accepts, and how the native API (and its webhooks) render a payment."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from meterbook.kit.fields import CurrencyCode, JsonNumber, Money, NativeInput, Utc
from meterbook.payments.models import Payment

__all__ = ["AllocationOut", "PaymentIn", "PaymentOut"]


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


class AllocationOut(BaseModel):
    invoice_id: uuid.UUID
    amount: JsonNumber


class PaymentOut(BaseModel):
    id: str
    account_id: uuid.UUID
    amount: JsonNumber
    currency: str
    date: datetime
    invoice_id: uuid.UUID | None = Field(description="The invoice the payment named, if any.")
    reference: str | None
    applied: list[AllocationOut] = Field(description="What of the payment each invoice holds.")
    unapplied: JsonNumber = Field(description="What waits for the account's next invoice in this currency.")
    created_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls(
            id=payment.id,
            account_id=payment.account_id,
            amount=payment.amount,
            currency=payment.currency,
            date=payment.date,
            invoice_id=payment.invoice_id,
            reference=payment.reference,
            applied=[AllocationOut(invoice_id=a.invoice_id, amount=a.amount) for a in payment.allocations],
            unapplied=payment.unapplied,
            created_at=payment.created_at,
        )
