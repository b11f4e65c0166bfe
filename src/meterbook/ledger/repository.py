"""Every SQL statement of the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, select, update

from meterbook.accounts.repository import reachable_ids
from meterbook.db.bulk import insert_rows
from meterbook.db.tables import accounts, credit_balances, credit_transactions, ledger_entries
from meterbook.db.upsert import insert_for
from meterbook.kit import jsontext
from meterbook.ledger.models import SYSTEM_ACCOUNTS, Balance, Transaction

__all__ = [
    "add_to_balance",
    "balances",
    "debited_total",
    "ensure_balances",
    "get_balance",
    "insert_transactions",
    "keys_in_use",
    "list_transactions",
    "lock_balances",
    "reverts_of",
    "set_balances",
    "transaction_by_key",
    "transactions_by_key",
]


def _transaction(row: Any) -> Transaction:
    values = {k: v for k, v in row._mapping.items() if k not in {"organization_id", "fingerprint"}}
    values["metadata"] = jsontext.loads(values["metadata"]) if values["metadata"] else None
    return Transaction(**values)


_TRANSACTION_COLUMNS = (
    "id",
    "organization_id",
    "account_id",
    "kind",
    "amount",
    "idempotency_key",
    "reverts_id",
    "source",
    "description",
    "user_id",
    "metadata",
    "fingerprint",
    "created_at",
)
_ENTRY_COLUMNS = ("transaction_id", "line", "account_id", "system_account", "amount")


def insert_transactions(
    conn: Connection,
    organization_id: uuid.UUID,
    transactions: Sequence[Transaction],
    fingerprints: Sequence[str | None],
) -> None:
    """Write the transactions and their two balancing entries each, in two bulk statements."""
    if not transactions:
        return
    insert_rows(
        conn,
        credit_transactions,
        _TRANSACTION_COLUMNS,
        [
            (
                t.id,
                organization_id,
                t.account_id,
                t.kind,
                t.amount,
                t.idempotency_key,
                t.reverts_id,
                t.source,
                t.description,
                t.user_id,
                jsontext.dumps(t.metadata).decode() if t.metadata is not None else None,
                fingerprint,
                t.created_at,
            )
            for t, fingerprint in zip(transactions, fingerprints, strict=True)
        ],
    )
    entries: list[tuple[Any, ...]] = []
    for t in transactions:
        signed = t.signed_amount
        entries.append((t.id, 1, t.account_id, None, signed))
        entries.append((t.id, 2, None, SYSTEM_ACCOUNTS[t.kind], -signed))
    insert_rows(conn, ledger_entries, _ENTRY_COLUMNS, entries)


def ensure_balances(
    conn: Connection, organization_id: uuid.UUID, account_ids: Iterable[uuid.UUID], now: datetime
) -> None:
    rows = [
        {"account_id": account_id, "organization_id": organization_id, "balance": 0, "updated_at": now}
        for account_id in account_ids
    ]
    if rows:
        conn.execute(insert_for(conn, credit_balances).on_conflict_do_nothing(index_elements=["account_id"]), rows)


def add_to_balance(conn: Connection, account_id: uuid.UUID, delta: int, now: datetime) -> int | None:
    """Move the balance by ``delta``; a decrease only if the balance stays at or above the account's credit_min.

    One conditional statement: under concurrent requests PostgreSQL re-checks the condition on the
    locked row, so two debits can never both spend the same credits. ``None``: refused, nothing written.
    """
    new_balance = credit_balances.c.balance + delta
    statement = update(credit_balances).where(credit_balances.c.account_id == account_id)
    if delta < 0:
        credit_min = select(accounts.c.credit_min).where(accounts.c.id == account_id).scalar_subquery()
        statement = statement.where(new_balance >= credit_min)
    result = conn.execute(
        statement.values(balance=new_balance, updated_at=now).returning(credit_balances.c.balance)
    ).scalar()
    return None if result is None else int(result)


# Built once: every ingestion that debits credits runs both.
_LOCK_BALANCES = (
    select(credit_balances.c.account_id, credit_balances.c.balance, accounts.c.credit_min)
    .join(accounts, accounts.c.id == credit_balances.c.account_id)
    .where(credit_balances.c.account_id.in_(bindparam("account_ids", expanding=True)))
    .order_by(credit_balances.c.account_id)
)
_LOCK_BALANCES_FOR_UPDATE = _LOCK_BALANCES.with_for_update(of=credit_balances)
_SET_BALANCE = (
    update(credit_balances)
    .where(credit_balances.c.account_id == bindparam("target"))
    .values(balance=bindparam("new_balance"), updated_at=bindparam("now"))
)


def lock_balances(conn: Connection, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
    """Each account's (balance, credit_min), its balance row locked until the transaction ends (PostgreSQL).

    Locked in one order for every caller, so that concurrent batches never deadlock; SQLite has one
    writer, which is lock enough. Every account must have its balance row (``ensure_balances``).
    """
    statement = _LOCK_BALANCES_FOR_UPDATE if conn.dialect.name == "postgresql" else _LOCK_BALANCES
    rows = conn.execute(statement, {"account_ids": list(account_ids)})
    return {row.account_id: (int(row.balance), int(row.credit_min)) for row in rows}


def set_balances(conn: Connection, balances: Mapping[uuid.UUID, int], now: datetime) -> None:
    """Write new balances of rows this transaction has locked, in one executemany."""
    conn.execute(
        _SET_BALANCE,
        [{"target": account_id, "new_balance": amount, "now": now} for account_id, amount in balances.items()],
    )


def get_balance(conn: Connection, account_id: uuid.UUID) -> Balance:
    statement = (
        select(accounts.c.id, accounts.c.credit_min, credit_balances.c.balance, credit_balances.c.updated_at)
        .select_from(accounts.outerjoin(credit_balances, credit_balances.c.account_id == accounts.c.id))
        .where(accounts.c.id == account_id)
    )
    row = conn.execute(statement).one()
    return Balance(
        account_id=row.id, balance=int(row.balance or 0), credit_min=row.credit_min, updated_at=row.updated_at
    )


def transaction_by_key(conn: Connection, account_id: uuid.UUID, key: str) -> tuple[Transaction, str | None] | None:
    """The account's transaction with this idempotency key (unique per account), and its fingerprint."""
    row = conn.execute(
        select(credit_transactions).where(
            credit_transactions.c.idempotency_key == key, credit_transactions.c.account_id == account_id
        )
    ).first()
    return None if row is None else (_transaction(row), row.fingerprint)


def transactions_by_key(
    conn: Connection, organization_id: uuid.UUID, path_prefix: str | None, key: str, account_id: uuid.UUID | None
) -> list[Transaction]:
    """The transactions with this idempotency key in the accounts a key reaches (or in one of them).

    One search of the (idempotency_key, account_id) index, whatever the number of accounts.
    """
    statement = select(credit_transactions).where(
        credit_transactions.c.idempotency_key == key,
        credit_transactions.c.organization_id == organization_id,
    )
    if path_prefix is not None:
        statement = statement.where(credit_transactions.c.account_id.in_(reachable_ids(organization_id, path_prefix)))
    if account_id is not None:
        statement = statement.where(credit_transactions.c.account_id == account_id)
    return [_transaction(row) for row in conn.execute(statement.order_by(credit_transactions.c.account_id))]


def keys_in_use(conn: Connection, wanted: Sequence[tuple[uuid.UUID, str]]) -> set[tuple[uuid.UUID, str]]:
    """Which of these (account, transaction id) pairs an account's transaction already has, in one statement."""
    if not wanted:
        return set()
    statement = select(credit_transactions.c.account_id, credit_transactions.c.idempotency_key).where(
        credit_transactions.c.idempotency_key.in_(sorted({key for _, key in wanted})),
        credit_transactions.c.account_id.in_(sorted({account_id for account_id, _ in wanted}, key=str)),
    )
    found = {(row.account_id, row.idempotency_key) for row in conn.execute(statement)}
    return found & set(wanted)


def lock_transaction(conn: Connection, transaction_id: uuid.UUID) -> None:
    """Serialize reverts of one usage on PostgreSQL; SQLite has one writer anyway."""
    if conn.dialect.name != "sqlite":
        conn.execute(
            select(credit_transactions.c.id).where(credit_transactions.c.id == transaction_id).with_for_update()
        )


def reverts_of(conn: Connection, transaction_id: uuid.UUID) -> tuple[int, int]:
    """How many reverts the transaction has had, and the credits they gave back."""
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(credit_transactions.c.amount), 0)).where(
            credit_transactions.c.reverts_id == transaction_id
        )
    ).one()
    return int(row[0]), int(row[1])


def debited_total(conn: Connection, account_id: uuid.UUID) -> int:
    """Credits the account's usage debited, less what reverts gave back."""
    signed = case(
        (credit_transactions.c.kind == "revert", -credit_transactions.c.amount), else_=credit_transactions.c.amount
    )
    total = conn.execute(
        select(func.coalesce(func.sum(signed), 0)).where(
            credit_transactions.c.account_id == account_id, credit_transactions.c.kind.in_(["usage", "revert"])
        )
    ).scalar_one()
    return int(total)


def list_transactions(
    conn: Connection,
    account_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    end_inclusive: bool = False,
) -> list[Transaction]:
    statement = select(credit_transactions).where(credit_transactions.c.account_id == account_id)
    if start is not None:
        statement = statement.where(credit_transactions.c.created_at >= start)
    if end is not None:
        statement = statement.where(
            credit_transactions.c.created_at <= end if end_inclusive else credit_transactions.c.created_at < end
        )
    statement = statement.order_by(credit_transactions.c.created_at.desc(), credit_transactions.c.id.desc())
    return [_transaction(row) for row in conn.execute(statement)]


def unbalanced_transactions(conn: Connection) -> list[tuple[uuid.UUID, int]]:
    """Transactions whose entries do not sum to zero (there should be none)."""
    statement = (
        select(ledger_entries.c.transaction_id, func.sum(ledger_entries.c.amount).label("total"))
        .group_by(ledger_entries.c.transaction_id)
        .having(func.sum(ledger_entries.c.amount) != 0)
    )
    return [(row.transaction_id, int(row.total)) for row in conn.execute(statement)]


def balances_against_entries(conn: Connection) -> list[tuple[uuid.UUID, int, int]]:
    """(account, stored balance, sum of the account's entries) for every account with a balance row."""
    entries = (
        select(ledger_entries.c.account_id, func.sum(ledger_entries.c.amount).label("total"))
        .where(ledger_entries.c.account_id.is_not(None))
        .group_by(ledger_entries.c.account_id)
        .subquery()
    )
    statement = select(
        credit_balances.c.account_id, credit_balances.c.balance, func.coalesce(entries.c.total, 0)
    ).select_from(credit_balances.outerjoin(entries, entries.c.account_id == credit_balances.c.account_id))
    return [(row[0], int(row[1]), int(row[2])) for row in conn.execute(statement)]


def balances(conn: Connection, organization_id: uuid.UUID, path_prefix: str | None) -> dict[uuid.UUID, int]:
    """The credit balance of every reachable account that has one, in one query (a list shows them all)."""
    statement = select(credit_balances.c.account_id, credit_balances.c.balance).where(
        credit_balances.c.organization_id == organization_id
    )
    if path_prefix is not None:
        statement = statement.where(credit_balances.c.account_id.in_(reachable_ids(organization_id, path_prefix)))
    return {row.account_id: int(row.balance) for row in conn.execute(statement)}
