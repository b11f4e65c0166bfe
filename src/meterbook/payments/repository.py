"""Every SQL statement of the payments domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from meterbook.accounts.repository import reachable_ids
from meterbook.db.tables import payment_allocations, payments
from meterbook.db.upsert import insert_for, insert_for_dialect
from meterbook.payments.models import Allocation, Payment

__all__ = [
    "add_allocations",
    "allocations_of_invoice",
    "find_payment",
    "insert_payment",
    "list_payments",
    "open_credit",
    "owners_of_open_credit",
    "release_invoice",
    "set_unapplied",
]


def _payment(row: Any, allocations: Sequence[Allocation] = ()) -> Payment:
    values = {key: value for key, value in row._mapping.items() if key != "fingerprint"}
    return Payment(**values, allocations=tuple(allocations))


def _allocations(rows: Iterable[Any]) -> dict[tuple[uuid.UUID, str], list[Allocation]]:
    """Allocation rows by their payment's (account, id), in the order given."""
    found: dict[tuple[uuid.UUID, str], list[Allocation]] = {}
    for row in rows:
        found.setdefault((row.account_id, row.payment_id), []).append(
            Allocation(invoice_id=row.invoice_id, amount=row.amount)
        )
    return found


def insert_payment(conn: Connection, payment: Payment, fingerprint: str) -> bool:
    """Store the payment unless its account has used its id; False when it had (nothing written).

    ``ON CONFLICT DO NOTHING``: a concurrent request that stored the same id first (and committed) makes
    this one a retry or a conflict for the caller to tell apart, never a unique-key error.
    """
    statement = (
        insert_for(conn, payments)
        .values(
            organization_id=payment.organization_id,
            id=payment.id,
            account_id=payment.account_id,
            amount=payment.amount,
            currency=payment.currency,
            date=payment.date,
            invoice_id=payment.invoice_id,
            reference=payment.reference,
            unapplied=payment.unapplied,
            fingerprint=fingerprint,
            created_at=payment.created_at,
        )
        .on_conflict_do_nothing(index_elements=["account_id", "id"])
        .returning(payments.c.id)
    )
    return conn.execute(statement).first() is not None


def find_payment(conn: Connection, account_id: uuid.UUID, payment_id: str) -> tuple[Payment, str] | None:
    """The account's payment with this id (ids are per account), and its fingerprint."""
    row = conn.execute(select(payments).where(payments.c.account_id == account_id, payments.c.id == payment_id)).first()
    if row is None:
        return None
    allocated = conn.execute(
        select(payment_allocations)
        .where(payment_allocations.c.account_id == account_id, payment_allocations.c.payment_id == payment_id)
        .order_by(payment_allocations.c.invoice_id)
    )
    return _payment(row, _allocations(allocated).get((account_id, payment_id), [])), row.fingerprint


def list_payments(
    conn: Connection, organization_id: uuid.UUID, path_prefix: str | None, account_id: uuid.UUID | None
) -> list[Payment]:
    among = payments.c.organization_id == organization_id
    if path_prefix is not None:
        among &= payments.c.account_id.in_(reachable_ids(organization_id, path_prefix))
    if account_id is not None:
        among &= payments.c.account_id == account_id
    rows = list(
        conn.execute(select(payments).where(among).order_by(payments.c.date, payments.c.created_at, payments.c.id))
    )
    # The allocations of those payments: the same filter, each payment's found by its key (account, id).
    allocated = (
        select(payment_allocations)
        .join(
            payments,
            (payments.c.account_id == payment_allocations.c.account_id)
            & (payments.c.id == payment_allocations.c.payment_id),
        )
        .where(among)
        .order_by(payment_allocations.c.account_id, payment_allocations.c.payment_id, payment_allocations.c.invoice_id)
    )
    allocations = _allocations(conn.execute(allocated))
    return [_payment(row, allocations.get((row.account_id, row.id), [])) for row in rows]


#: Owners per statement when many accounts' payments are read at once: a bound list stays within drivers' limits.
_OWNERS_PER_QUERY = 500


def open_credit(
    conn: Connection, organization_id: uuid.UUID, owners: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], list[Payment]]:
    """Each (account, currency)'s payments that still hold money, oldest first (locked on PostgreSQL)."""
    found: dict[tuple[uuid.UUID, str], list[Payment]] = {}
    wanted = set(owners)
    for start in range(0, len(owners), _OWNERS_PER_QUERY):
        chunk = owners[start : start + _OWNERS_PER_QUERY]
        statement = (
            select(payments)
            .where(
                payments.c.organization_id == organization_id,
                payments.c.account_id.in_({account_id for account_id, _ in chunk}),
                payments.c.unapplied > 0,
            )
            .order_by(payments.c.account_id, payments.c.date, payments.c.created_at, payments.c.id)
            .with_for_update()
        )
        for row in conn.execute(statement):
            owner = (row.account_id, row.currency)
            if owner in wanted:
                found.setdefault(owner, []).append(_payment(row))
    return found


def owners_of_open_credit(conn: Connection, organization_id: uuid.UUID) -> set[tuple[uuid.UUID, str]]:
    """Every (account, currency) of the organization with money not applied to any invoice."""
    statement = (
        select(payments.c.account_id, payments.c.currency)
        .where(payments.c.organization_id == organization_id, payments.c.unapplied > 0)
        .distinct()
    )
    return {(row.account_id, row.currency) for row in conn.execute(statement)}


@cache
def _unapplied_update() -> Any:
    return (
        update(payments)
        .where(payments.c.account_id == bindparam("owner"), payments.c.id == bindparam("payment"))
        .values(unapplied=bindparam("unapplied"))
    )


def set_unapplied(conn: Connection, changes: Sequence[tuple[uuid.UUID, str, Decimal]]) -> None:
    """Set what each payment, (account, id), holds unapplied, in one statement."""
    if changes:
        conn.execute(
            _unapplied_update(),
            [
                {"owner": account_id, "payment": payment_id, "unapplied": unapplied}
                for account_id, payment_id, unapplied in changes
            ],
        )


@cache
def _allocation_upsert(dialect_name: str) -> Any:
    # Built once per dialect: a billing run settles accounts one by one, and building an upsert (its
    # ``excluded`` columns above all) cost more than running it.
    statement = insert_for_dialect(dialect_name, payment_allocations)
    return statement.on_conflict_do_update(
        index_elements=["account_id", "payment_id", "invoice_id"],
        set_={"amount": payment_allocations.c.amount + statement.excluded.amount},
    )


def add_allocations(
    conn: Connection, organization_id: uuid.UUID, allocations: Sequence[tuple[uuid.UUID, str, uuid.UUID, Decimal]]
) -> None:
    """Record (account, payment, invoice, amount) applications; a payment applied to an invoice again adds to it."""
    if not allocations:
        return
    conn.execute(
        _allocation_upsert(conn.dialect.name),
        [
            {
                "organization_id": organization_id,
                "account_id": account_id,
                "payment_id": payment_id,
                "invoice_id": invoice_id,
                "amount": amount,
            }
            for account_id, payment_id, invoice_id, amount in allocations
        ],
    )


def allocations_of_invoice(conn: Connection, invoice_id: uuid.UUID) -> list[tuple[uuid.UUID, str, Decimal]]:
    """(account, payment, amount) of each payment's share of the invoice."""
    statement = select(
        payment_allocations.c.account_id, payment_allocations.c.payment_id, payment_allocations.c.amount
    ).where(payment_allocations.c.invoice_id == invoice_id)
    return [(row.account_id, row.payment_id, row.amount) for row in conn.execute(statement)]


def release_invoice(conn: Connection, invoice_id: uuid.UUID) -> None:
    """Give every share of a voided invoice back to the payment it came from."""
    for account_id, payment_id, amount in allocations_of_invoice(conn, invoice_id):
        conn.execute(
            update(payments)
            .where(payments.c.account_id == account_id, payments.c.id == payment_id)
            .values(unapplied=payments.c.unapplied + amount)
        )
    conn.execute(delete(payment_allocations).where(payment_allocations.c.invoice_id == invoice_id))
