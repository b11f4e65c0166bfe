"""What the invoicing domain stores and hands to its callers."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

from meterbook.pricing import TierCharge

__all__ = [
    "HISTORY_ACTIONS",
    "HISTORY_TYPES",
    "BillingRun",
    "HistoryItem",
    "HistoryPage",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "UpcomingInvoice",
    "history_id",
]

InvoiceStatus = Literal["open", "paid", "void"]
#: ``subscription``: the account's commitment; ``fee``: a plan's fixed fee (prorated by days for part of a month);
#: ``usage``: one product's usage under one price.
LineKind = Literal["subscription", "fee", "usage"]
HISTORY_TYPES: Final = ("charge", "payment", "refund")
HISTORY_ACTIONS: Final = ("subscription", "usage", "payment", "void")


@dataclass(frozen=True)
class InvoiceLine:
    line: int
    kind: LineKind
    product_id: str | None
    description: str
    quantity: Decimal
    #: None when the month's usage of the product was rated at more than one price.
    unit_price: Decimal | None
    #: The exact sum before rounding; ``amount`` is it rounded half away from zero to the minor unit.
    unrounded_amount: Decimal
    amount: Decimal
    #: A usage line priced by a graduated or volume price: how its units went through the tiers.
    tiers: tuple[TierCharge, ...] = ()


@dataclass(frozen=True)
class Invoice:
    id: uuid.UUID
    organization_id: uuid.UUID
    account_id: uuid.UUID
    number: int
    currency: str
    month: str
    status: InvoiceStatus
    amount: Decimal
    amount_paid: Decimal
    issued_at: datetime
    effective_date: datetime
    due_date: datetime
    paid_at: datetime | None
    voided_at: datetime | None
    lines: tuple[InvoiceLine, ...] = field(default=())

    @property
    def amount_due(self) -> Decimal:
        return Decimal(0) if self.status != "open" else self.amount - self.amount_paid

    def overdue_at(self, now: datetime) -> bool:
        """Open past its due date (contract §8): the due date is the last day to pay, in UTC."""
        return self.status == "open" and now.astimezone(UTC).date() > self.due_date.astimezone(UTC).date()


@dataclass(frozen=True)
class UpcomingInvoice:
    """What a billing run would invoice an account for a month if it ran now (one per currency): stored nowhere."""

    account_id: uuid.UUID
    currency: str
    month: str
    amount: Decimal
    effective_date: datetime
    due_date: datetime
    lines: tuple[InvoiceLine, ...]
    #: When it was computed: usage reported later changes it.
    computed_at: datetime


@dataclass(frozen=True)
class BillingRun:
    month: str
    invoice_count: int
    created_at: datetime
    #: False when the month had been billed already and this run created nothing.
    created: bool


@dataclass(frozen=True)
class HistoryItem:
    """One line of the customer-facing billing history (the Cloudflare dialect's item)."""

    id: str
    account_id: uuid.UUID
    account_name: str
    type: str
    action: str
    description: str
    occurred_at: datetime
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class HistoryPage:
    items: list[HistoryItem]
    #: Items that match the filters.
    matching: int
    #: All of the caller's items, whatever the filters.
    total: int


def history_id(*parts: str) -> str:
    """32 lowercase hex digits from what an item records: the same item always gets the same id."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]
