"""The rules of the credit ledger: balanced transactions, no balance below credit_min, bounded reverts."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from meterbook.accounts.models import Principal
from meterbook.accounts.reach import resolve_account, within
from meterbook.errors import Conflict, InsufficientCredits, InvalidInput, NotFound
from meterbook.kit.fingerprint import fingerprint
from meterbook.kit.ids import new_id
from meterbook.kit.time import utcnow
from meterbook.ledger import repository
from meterbook.ledger.models import Balance, Transaction, UsageDebit
from meterbook.ledger.schemas import CreditGrant

__all__ = ["balance", "balances", "can_spend", "debit_usage", "grant", "revert", "transactions", "verify"]


def grant(
    conn: Connection,
    principal: Principal,
    account_id: uuid.UUID,
    data: CreditGrant,
    *,
    granted_at: datetime | None = None,
) -> tuple[Transaction, bool]:
    """Add credits to the account, once per ``data.id``: the same grant again returns the first (False).

    ``granted_at`` dates a grant made before it is recorded (the demo's history, whose grants come before the
    usage they fund), as ``invoicing.run_billing`` takes ``now``; the API records every grant as made now.
    """
    account = resolve_account(conn, principal, account_id)
    key = f"grant:{data.id}"
    digest = fingerprint({"account_id": str(account.id), **data.model_dump(mode="json")})
    existing = repository.transaction_by_key(conn, account.id, key)
    if existing is not None:
        transaction, stored_digest = existing
        if stored_digest != digest:
            raise Conflict(f"Credit grant {data.id!r} was already recorded with different content.")
        return transaction, False
    now = utcnow()
    transaction = Transaction(
        id=new_id(),
        account_id=account.id,
        kind=data.type,
        amount=data.amount,
        idempotency_key=key,
        reverts_id=None,
        source=data.source or data.type,
        description=data.description,
        user_id=None,
        metadata=data.metadata,
        created_at=granted_at or now,
    )
    repository.insert_transactions(conn, account.organization_id, [transaction], [digest])
    repository.ensure_balances(conn, account.organization_id, [account.id], now)
    repository.add_to_balance(conn, account.id, data.amount, now)
    return transaction, True


def debit_usage(conn: Connection, organization_id: uuid.UUID, debits: Sequence[UsageDebit]) -> None:
    """Debit credit usage, one transaction per event; if any account cannot afford its share, refuse them all."""
    if not debits:
        return
    now = utcnow()
    per_account: dict[uuid.UUID, int] = defaultdict(int)
    for debit in debits:
        per_account[debit.account_id] += debit.amount
    current = repository.lock_balances(conn, sorted(per_account))
    missing = [account_id for account_id in per_account if account_id not in current]
    if missing:
        # First debit of these accounts: create their rows, then lock the whole set again in one order.
        repository.ensure_balances(conn, organization_id, missing, now)
        current = repository.lock_balances(conn, sorted(per_account))
    for account_id in sorted(per_account, key=str):
        balance, credit_min = current[account_id]
        if balance - per_account[account_id] < credit_min:
            raise InsufficientCredits(
                f"insufficient credits: account {account_id} cannot spend {per_account[account_id]} "
                "without going below its credit_min"
            )
    repository.set_balances(
        conn, {account_id: current[account_id][0] - spent for account_id, spent in per_account.items()}, now
    )
    repository.insert_transactions(
        conn,
        organization_id,
        [
            Transaction(
                id=new_id(),
                account_id=debit.account_id,
                kind="usage",
                amount=debit.amount,
                idempotency_key=f"usage:{debit.event_id}",
                reverts_id=None,
                source=debit.source,
                description=debit.description,
                user_id=debit.user_id,
                metadata=debit.metadata,
                created_at=debit.created_at,
            )
            for debit in debits
        ],
        [None] * len(debits),
    )


def revert(
    conn: Connection, principal: Principal, account_id: uuid.UUID | None, usage_id: str, amount: int
) -> Transaction:
    """Give back up to what a usage debited, in one or several partial reverts.

    Usage ids are per account: the usage is looked up among the accounts the key reaches, in
    ``account_id`` alone if it is given. An id that two of those accounts used needs ``account_id``.
    """
    organization_id, path_prefix = within(principal)
    found = repository.transactions_by_key(conn, organization_id, path_prefix, f"usage:{usage_id}", account_id)
    if not found:
        if _is_revert(conn, organization_id, path_prefix, account_id, usage_id):
            raise Conflict(f"Transaction {usage_id} is a revert; a revert cannot be reverted.")
        if account_id is not None:
            raise NotFound(f"No credit usage with id {usage_id} was found for account {account_id}.")
        raise NotFound(f"No credit usage with id {usage_id} was found.")
    if len(found) > 1:
        raise InvalidInput(
            f"Usage id {usage_id} was used by {len(found)} accounts: name the billing account of the usage "
            "to revert (billing_id)."
        )
    (usage,) = found
    if amount <= 0:
        raise InvalidInput("The amount to revert must be greater than zero.")
    repository.lock_transaction(conn, usage.id)
    already = repository.reverted_amount(conn, usage.id)
    if already + amount > usage.amount:
        raise InvalidInput(
            f"Usage {usage_id} debited {usage.amount} and {already} is already reverted: {amount} more is too much."
        )
    now = utcnow()
    transaction = Transaction(
        id=new_id(),
        account_id=usage.account_id,
        kind="revert",
        amount=amount,
        idempotency_key=None,
        reverts_id=usage.id,
        source=usage.source,
        description=f"revert of usage {usage_id}",
        user_id=usage.user_id,
        metadata=None,
        created_at=now,
    )
    repository.insert_transactions(conn, organization_id, [transaction], [None])
    repository.add_to_balance(conn, usage.account_id, amount, now)
    return transaction


def _is_revert(
    conn: Connection, organization_id: uuid.UUID, path_prefix: str | None, account_id: uuid.UUID | None, text: str
) -> bool:
    """Whether ``text`` is the id of a revert on an account the key reaches (and the one named, if one is)."""
    try:
        transaction_id = uuid.UUID(text)
    except ValueError:
        return False
    transaction = repository.find_transaction(conn, organization_id, path_prefix, transaction_id)
    return (
        transaction is not None
        and transaction.kind == "revert"
        and (account_id is None or transaction.account_id == account_id)
    )


def balance(conn: Connection, principal: Principal, account_id: uuid.UUID) -> Balance:
    account = resolve_account(conn, principal, account_id)
    return repository.get_balance(conn, account.id)


def can_spend(conn: Connection, principal: Principal, account_id: uuid.UUID, amount: int) -> bool:
    current = balance(conn, principal, account_id)
    return current.balance - amount >= current.credit_min


def transactions(
    conn: Connection,
    principal: Principal,
    account_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Transaction]:
    """The account's transactions, newest first, created in ``[start, end)``."""
    account = resolve_account(conn, principal, account_id)
    return repository.list_transactions(conn, account.id, start, end)


def verify(conn: Connection) -> list[str]:
    """Every way the stored ledger disagrees with itself: unbalanced transactions, balances unlike their entries."""
    differences = [
        f"ledger transaction {transaction_id} sums to {total}, not 0"
        for transaction_id, total in repository.unbalanced_transactions(conn)
    ]
    differences += [
        f"account {account_id}: stored balance {stored}, entries sum to {replayed}"
        for account_id, stored, replayed in repository.balances_against_entries(conn)
        if stored != replayed
    ]
    return differences


def balances(conn: Connection, principal: Principal) -> dict[uuid.UUID, int]:
    """The credit balance of every account the key reaches; an account that never had credits is absent (0)."""
    organization_id, path_prefix = within(principal)
    return repository.balances(conn, organization_id, path_prefix)
