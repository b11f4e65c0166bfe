"""What the payments domain stores and hands to its callers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

__all__ = ["Allocation", "Payment"]


@dataclass(frozen=True)
class Allocation:
    """Part of a payment applied to one invoice."""

    invoice_id: uuid.UUID
    amount: Decimal


@dataclass(frozen=True)
class Payment:
    id: str
    organization_id: uuid.UUID
    account_id: uuid.UUID
    amount: Decimal
    currency: str
    date: datetime
    invoice_id: uuid.UUID | None
    reference: str | None
    #: What no invoice holds: the next invoice in this currency takes it first.
    unapplied: Decimal
    created_at: datetime
    allocations: tuple[Allocation, ...] = field(default=())
