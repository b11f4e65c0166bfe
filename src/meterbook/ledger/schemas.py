"""What the ledger accepts, and how the native API (and its webhooks) render a transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from meterbook.kit.fields import INT64_MAX, NativeInput, WholeNumber
from meterbook.ledger.models import Transaction

__all__ = ["CreditGrant", "TransactionOut"]


class CreditGrant(NativeInput):
    id: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="Your id for this grant: sending it again does nothing more."
    )
    amount: WholeNumber = Field(gt=0, le=INT64_MAX, description="Whole credits to add.")
    type: Literal["grant", "purchase"] = Field(default="grant", description="A free grant, or credits bought.")
    source: Annotated[str, StringConstraints(max_length=100)] | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    metadata: dict[str, Any] | None = None


class TransactionOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    kind: Literal["grant", "purchase", "usage", "revert"]
    direction: Literal["credit", "debit"]
    amount: int = Field(description="Whole credits, always positive; `direction` says which way they moved.")
    source: str
    description: str | None
    user_id: str | None
    metadata: dict[str, Any] | None
    reverts_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, transaction: Transaction) -> TransactionOut:
        return cls(
            id=transaction.id,
            account_id=transaction.account_id,
            kind=transaction.kind,
            direction=transaction.direction,
            amount=transaction.amount,
            source=transaction.source,
            description=transaction.description,
            user_id=transaction.user_id,
            metadata=transaction.metadata,
            reverts_id=transaction.reverts_id,
            created_at=transaction.created_at,
        )
