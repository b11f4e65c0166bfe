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
from meterbook.ledger.models import (
    REVERT_SOURCE,
    SOURCE_LENGTH,
    Balance,
    BalanceChange,
    Transaction,
    UsageDebit,
    revert_id,
)
from meterbook.ledger.schemas import CreditGrant, TransactionOut
from meterbook.webhooks import service as webhooks

__all__ = [
    "balance",
    "balances",
    "can_spend",
    "debit_usage",
    "debited_total",
    "grant",
    "revert",
    "transactions",
    "verify",
]


def grant(
    conn: Connection,
    principal: Principal,
    account_id: uuid.UUID,
    data: CreditGrant,
    *,
    granted_at: datetime | None = None,
) -> tuple[Transaction, bool]:
    """Add credits to the account, once per ``data.id``: the same grant again returns the first (False).

    The transaction's id is the grant's (CONTRACT §3.4), so an id that another transaction of the account
    already has (a usage debit, a revert) is a conflict. ``granted_at`` dates a grant made before it is
    recorded (the demo's history, whose grants come before the usage they fund), as ``invoicing.run_billing``
    takes ``now``; the API records every grant as made now.
    """
    account = resolve_account(conn, principal, account_id)
    digest = fingerprint({"account_id": str(account.id), **data.model_dump(mode="json")})
    now = utcnow()
    # The balance row's lock serializes this with every debit and grant of the account: the id checked
    # free below is still free when it is written.
    repository.ensure_balances(conn, account.organization_id, [account.id], now)
    repository.lock_balances(conn, [account.id])
    existing = repository.transaction_by_key(conn, account.id, data.id)
    if existing is not None:
        transaction, stored_digest = existing
        if transaction.kind not in ("grant", "purchase"):
            raise Conflict(
                f"Credit grant id {data.id!r} is already the id of a {transaction.kind} transaction of account "
                f"{account.id}: a transaction's id is unique in its account; nothing was granted."
            )
        if stored_digest != digest:
            raise Conflict(f"Credit grant {data.id!r} was already recorded with different content.")
        return transaction, False
    transaction = Transaction(
        id=new_id(),
        account_id=account.id,
        kind=data.type,
        amount=data.amount,
        idempotency_key=data.id,
        reverts_id=None,
        source=data.source or "system",
        description=data.description,
        user_id=None,
        metadata=data.metadata,
        created_at=granted_at or now,
    )
    repository.insert_transactions(conn, account.organization_id, [transaction], [digest])
    repository.add_to_balance(conn, account.id, data.amount, now)
    webhooks.emit(
        conn,
        account.organization_id,
        "credits.granted",
        TransactionOut.of(transaction).model_dump(mode="python"),
        event_id=webhooks.event_id_for("credits.granted", transaction.id),
    )
    return transaction, True


def debit_usage(conn: Connection, organization_id: uuid.UUID, debits: Sequence[UsageDebit]) -> list[BalanceChange]:
    """Debit credit usage, one transaction per event; if any account cannot afford its share, refuse them all.

    Returns each account's balance before and after, as read and written under its row's lock (alerts decide
    crossings from them without reading again)."""
    if not debits:
        return []
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
    # Each debit's id is its usage's (CONTRACT §3.4). A new usage's id is new among usages (ingestion saw to
    # it), but a grant or a revert of the account may have it; the balance rows locked above keep it so.
    taken = repository.keys_in_use(conn, [(debit.account_id, debit.event_id) for debit in debits])
    if taken:
        account_id, event_id = min(taken, key=str)
        raise Conflict(
            f"Usage id {event_id!r} is already the id of another transaction of account {account_id} "
            "(a credit grant or a revert): a transaction's id is unique in its account; nothing was applied."
        )
    changes = [
        BalanceChange(account_id, current[account_id][0], current[account_id][0] - spent, current[account_id][1])
        for account_id, spent in per_account.items()
    ]
    repository.set_balances(conn, {change.account_id: change.after for change in changes}, now)
    repository.insert_transactions(
        conn,
        organization_id,
        [
            Transaction(
                id=new_id(),
                account_id=debit.account_id,
                kind="usage",
                amount=debit.amount,
                idempotency_key=debit.event_id,
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
    return changes


def revert(
    conn: Connection, principal: Principal, account_id: uuid.UUID | None, usage_id: str, amount: int
) -> Transaction:
    """Give back up to what a usage debited, in one or several partial reverts (an amount of 0 is one too).

    Usage ids are per account: the usage is looked up among the accounts the key reaches, in
    ``account_id`` alone if it is given. An id that two of those accounts used needs ``account_id``.
    The revert is Frontier's (CONTRACT §3.4, raystack/frontier ``billing/usage/service.go``): its id is
    derived from the usage's, its source is ``system.revert.<the usage's source>``, its description
    ``Revert: <the usage's description>``, its metadata the usage's with ``revert_request_using``.
    """
    organization_id, path_prefix = within(principal)
    found = repository.transactions_by_key(conn, organization_id, path_prefix, usage_id, account_id)
    usages = [transaction for transaction in found if transaction.kind == "usage"]
    if not usages:
        if any(transaction.kind == "revert" for transaction in found):
            raise Conflict(f"Transaction {usage_id} is a revert; a revert cannot be reverted.")
        if account_id is not None:
            raise NotFound(f"No credit usage with id {usage_id} was found for account {account_id}.")
        raise NotFound(f"No credit usage with id {usage_id} was found.")
    if len(usages) > 1:
        raise InvalidInput(
            f"Usage id {usage_id} was used by {len(usages)} accounts: name the billing account of the usage "
            "to revert (billing_id)."
        )
    (usage,) = usages
    if amount < 0:
        raise InvalidInput("The amount to revert must not be negative.")
    repository.lock_transaction(conn, usage.id)
    earlier, already = repository.reverts_of(conn, usage.id)
    if already + amount > usage.amount:
        raise InvalidInput(
            f"Usage {usage_id} debited {usage.amount} and {already} is already reverted: {amount} more is too much."
        )
    public_id = revert_id(usage.public_id, earlier, usage.account_id)
    if repository.transaction_by_key(conn, usage.account_id, public_id) is not None:
        raise Conflict(
            f"The revert's id {public_id} is already the id of another transaction of account {usage.account_id}; "
            "nothing was reverted."
        )
    now = utcnow()
    transaction = Transaction(
        id=new_id(),
        account_id=usage.account_id,
        kind="revert",
        amount=amount,
        idempotency_key=public_id,
        reverts_id=usage.id,
        # A usage source of more than 86 characters is cut to fit: the prefix is what tells a revert.
        source=f"{REVERT_SOURCE}.{usage.source}"[:SOURCE_LENGTH],
        description=f"Revert: {usage.description or ''}",
        user_id=usage.user_id,
        metadata={**(usage.metadata or {}), "revert_request_using": usage.public_id},
        created_at=now,
    )
    repository.insert_transactions(conn, organization_id, [transaction], [None])
    repository.add_to_balance(conn, usage.account_id, amount, now)
    return transaction


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
    *,
    end_inclusive: bool = False,
) -> list[Transaction]:
    """The account's transactions, newest first, created in ``[start, end)`` (``[start, end]`` if inclusive)."""
    account = resolve_account(conn, principal, account_id)
    return repository.list_transactions(conn, account.id, start, end, end_inclusive=end_inclusive)


def debited_total(conn: Connection, principal: Principal, account_id: uuid.UUID) -> int:
    """Credits the account's usage has debited, less what reverts gave back (Frontier's TotalDebitedTransactions)."""
    account = resolve_account(conn, principal, account_id)
    return repository.debited_total(conn, account.id)


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
