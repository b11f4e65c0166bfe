"""What the ledger stores and shows.

Every movement is a transaction of two entries that sum to zero: one on the customer's account, one
on a system account. Grants and purchases move credits from ``system:grants`` / ``system:purchases``
to the account; a usage debit moves them from the account to ``system:usage``; a revert moves them back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

__all__ = ["SYSTEM_ACCOUNTS", "Balance", "Transaction", "UsageDebit"]

#: For each kind of transaction, the system account on the other side.
SYSTEM_ACCOUNTS: Final = {
    "grant": "system:grants",
    "purchase": "system:purchases",
    "usage": "system:usage",
    "revert": "system:usage",
}
#: The kinds that take credits away from the account.
DEBITS: Final = frozenset({"usage"})


@dataclass(frozen=True)
class Transaction:
    id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    amount: int
    idempotency_key: str | None
    reverts_id: uuid.UUID | None
    source: str
    description: str | None
    user_id: str | None
    metadata: dict[str, Any] | None
    created_at: datetime

    @property
    def direction(self) -> str:
        """``debit`` when credits left the account, ``credit`` when they came in."""
        return "debit" if self.kind in DEBITS else "credit"

    @property
    def signed_amount(self) -> int:
        return -self.amount if self.kind in DEBITS else self.amount


@dataclass(frozen=True)
class Balance:
    account_id: uuid.UUID
    balance: int
    credit_min: int
    updated_at: datetime | None


@dataclass(frozen=True)
class UsageDebit:
    """A credit usage event to debit: the ledger makes it one transaction."""

    event_id: str
    account_id: uuid.UUID
    amount: int
    source: str
    description: str | None
    user_id: str | None
    metadata: dict[str, Any] | None
    created_at: datetime
