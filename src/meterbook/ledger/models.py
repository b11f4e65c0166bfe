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

__all__ = [
    "REVERT_NAMESPACE",
    "REVERT_SOURCE",
    "SOURCE_LENGTH",
    "SYSTEM_ACCOUNTS",
    "Balance",
    "BalanceChange",
    "Transaction",
    "UsageDebit",
    "revert_id",
]

#: For each kind of transaction, the system account on the other side.
SYSTEM_ACCOUNTS: Final = {
    "grant": "system:grants",
    "purchase": "system:purchases",
    "usage": "system:usage",
    "revert": "system:usage",
}
#: The kinds that take credits away from the account.
DEBITS: Final = frozenset({"usage"})
#: How long a transaction's source may be (the column ``credit_transactions.source``).
SOURCE_LENGTH: Final = 100
#: The namespace of Frontier's derived transaction ids (``TxNamespaceUUID`` in raystack/frontier
#: ``billing/credit/credit.go``).
REVERT_NAMESPACE: Final = uuid.UUID("967416d0-716e-4308-b58f-2468ac14f20a")
#: What a revert's source starts with, as in Frontier (``SourceSystemRevertEvent``), which tells reverts by it.
REVERT_SOURCE: Final = "system.revert"


def revert_id(usage_id: str, earlier_reverts: int, account_id: uuid.UUID) -> str:
    """The id of a usage's revert, as Frontier derives it: ``TxUUID(usage id, n, customer id)``.

    A UUIDv5 in :data:`REVERT_NAMESPACE` of the parts joined by ``:`` (raystack/frontier
    ``billing/usage/service.go``, ``Revert``), ``n`` being the number of earlier reverts of the usage.
    """
    return str(uuid.uuid5(REVERT_NAMESPACE, f"{usage_id}:{earlier_reverts}:{account_id}"))


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
    def public_id(self) -> str:
        """The id clients know it by: the usage's or the grant's id, or a revert's derived id (CONTRACT §3.4).

        Unique per account; ``id`` is the ledger's own key, which entries and reverts refer to.
        """
        return self.idempotency_key if self.idempotency_key is not None else str(self.id)

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


@dataclass(frozen=True)
class BalanceChange:
    """What one write did to an account's balance, read under the balance row's lock: exact whatever the concurrency
    (alerts decide crossings from it)."""

    account_id: uuid.UUID
    before: int
    after: int
    credit_min: int
