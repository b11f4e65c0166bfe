"""The rules of money received: a payment is recorded once per id, in whole minor units of its currency,
and its money is either applied to invoices or kept, unapplied, for the next one.

Deciding which invoices a payment settles is invoicing's rule (``invoicing.service.settle``); this
module keeps the payments and their applications.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection

from meterbook.accounts.models import Account, Principal
from meterbook.accounts.reach import resolve_account, within
from meterbook.errors import Conflict, FieldError, ValidationFailed
from meterbook.kit.fingerprint import fingerprint
from meterbook.kit.money import CURRENCY_EXPONENTS
from meterbook.payments import repository
from meterbook.payments.models import Payment
from meterbook.payments.schemas import PaymentIn

__all__ = [
    "apply",
    "find",
    "list_payments",
    "open_credit",
    "owners_of_open_credit",
    "record",
    "release_invoice",
]

#: How far ahead of the server's clock a payment may be dated.
FUTURE_TOLERANCE_SECONDS = 300


def record(conn: Connection, account: Account, data: PaymentIn, currency: str, now: datetime) -> tuple[Payment, bool]:
    """Store the payment with all of it unapplied, or return the one already stored under its id (False)."""
    payment_id = data.id or str(uuid.uuid4())
    errors = []
    if data.amount != data.amount.quantize(Decimal(1).scaleb(-CURRENCY_EXPONENTS[currency])):
        errors.append(
            FieldError(
                "body.amount",
                f"has more decimal places than {currency} has ({CURRENCY_EXPONENTS[currency]})",
                "minor_unit",
            )
        )
    if data.date is not None and (data.date - now).total_seconds() > FUTURE_TOLERANCE_SECONDS:
        errors.append(FieldError("body.date", "is more than 5 minutes in the future", "too_far_ahead"))
    if errors:
        raise ValidationFailed(errors)
    # What the client sent, normalized: 10 and 10.00 are one amount; an absent currency is the one it defaults to.
    digest = fingerprint(
        {
            "account_id": str(account.id),
            "amount": format(data.amount.normalize(), "f"),
            "currency": currency,
            "date": data.date.isoformat() if data.date is not None else None,
            "invoice_id": str(data.invoice_id) if data.invoice_id is not None else None,
            "reference": data.reference,
        }
    )
    if data.id is not None:
        existing = _recorded(conn, account.id, payment_id, digest)
        if existing is not None:
            return existing, False
    payment = Payment(
        id=payment_id,
        organization_id=account.organization_id,
        account_id=account.id,
        amount=data.amount,
        currency=currency,
        date=data.date or now,
        invoice_id=data.invoice_id,
        reference=data.reference,
        unapplied=data.amount,
        created_at=now,
    )
    if not repository.insert_payment(conn, payment, digest):
        # A concurrent request recorded this id for this account first (one that did not take the
        # account's lock); it has committed, so this is a retry of it or a conflict with it.
        existing = _recorded(conn, account.id, payment_id, digest)
        if existing is None:
            raise AssertionError(f"payment {payment_id!r} is neither new nor recorded")
        return existing, False
    return payment, True


def _recorded(conn: Connection, account_id: uuid.UUID, payment_id: str, digest: str) -> Payment | None:
    """The account's payment already recorded under this id, if its content is the same; a conflict if it is not."""
    existing = repository.find_payment(conn, account_id, payment_id)
    if existing is None:
        return None
    payment, stored_digest = existing
    if stored_digest != digest:
        raise Conflict(f"Payment {payment_id!r} was already recorded with different content.")
    return payment


def find(conn: Connection, account_id: uuid.UUID, payment_id: str) -> Payment | None:
    """The account's payment with this id: payment ids are per account (contract invariant 1)."""
    found = repository.find_payment(conn, account_id, payment_id)
    return None if found is None else found[0]


def list_payments(conn: Connection, principal: Principal, account_id: uuid.UUID | None = None) -> list[Payment]:
    """The payments of every account the key reaches (or of one of them), oldest first."""
    organization_id, path_prefix = within(principal)
    if account_id is not None:
        resolve_account(conn, principal, account_id)
    return repository.list_payments(conn, organization_id, path_prefix, account_id)


def open_credit(
    conn: Connection, organization_id: uuid.UUID, owners: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], list[Payment]]:
    return repository.open_credit(conn, organization_id, owners)


def owners_of_open_credit(conn: Connection, organization_id: uuid.UUID) -> set[tuple[uuid.UUID, str]]:
    return repository.owners_of_open_credit(conn, organization_id)


def apply(
    conn: Connection,
    organization_id: uuid.UUID,
    applications: Sequence[tuple[Payment, uuid.UUID, Decimal]],
) -> None:
    """Move money from payments to invoices: each (payment, invoice, amount) takes from what the payment holds."""
    remaining: dict[tuple[uuid.UUID, str], Decimal] = {}
    for payment, _invoice_id, amount in applications:
        key = (payment.account_id, payment.id)
        left = remaining.get(key, payment.unapplied) - amount
        if left < 0:
            raise AssertionError(f"payment {payment.id} would be applied beyond its amount")
        remaining[key] = left
    repository.add_allocations(
        conn,
        organization_id,
        [(payment.account_id, payment.id, invoice_id, amount) for payment, invoice_id, amount in applications],
    )
    repository.set_unapplied(
        conn, [(account_id, payment_id, left) for (account_id, payment_id), left in remaining.items()]
    )


def release_invoice(conn: Connection, invoice_id: uuid.UUID) -> None:
    """A voided invoice gives what payments covered of it back to them, unapplied again."""
    repository.release_invoice(conn, invoice_id)
