"""Every SQL statement of the invoicing domain: billing runs, invoices and lines, the billing history."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, Select, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from meterbook.accounts.repository import reachable_ids
from meterbook.db.tables import accounts, billing_history, billing_runs, invoice_lines, invoices
from meterbook.invoicing.models import BillingRun, HistoryItem, Invoice, InvoiceLine
from meterbook.kit.fields import INT64_MAX

__all__ = [
    "HistoryOrder",
    "count_history",
    "find_billing_run",
    "get_invoice",
    "history_page",
    "insert_billing_run",
    "insert_history",
    "insert_invoices",
    "invoiced_months",
    "last_invoice_number",
    "list_invoices",
    "open_invoices",
    "too_large_to_store",
    "update_invoice",
    "verify_invoice_sums",
]

HistoryOrder = Literal["type", "occurred_at", "action"]


# --- billing runs ----------------------------------------------------------------------------------


def find_billing_run(conn: Connection, organization_id: uuid.UUID, month: str) -> BillingRun | None:
    row = conn.execute(
        select(billing_runs).where(billing_runs.c.organization_id == organization_id, billing_runs.c.month == month)
    ).first()
    if row is None:
        return None
    return BillingRun(month=row.month, invoice_count=row.invoice_count, created_at=row.created_at, created=False)


def insert_billing_run(conn: Connection, organization_id: uuid.UUID, run: BillingRun) -> None:
    conn.execute(
        insert(billing_runs).values(
            organization_id=organization_id, month=run.month, invoice_count=run.invoice_count, created_at=run.created_at
        )
    )


def invoiced_months(conn: Connection, organization_id: uuid.UUID, months: Iterable[str]) -> set[str]:
    wanted = sorted(set(months))
    if not wanted:
        return set()
    statement = select(billing_runs.c.month).where(
        billing_runs.c.organization_id == organization_id, billing_runs.c.month.in_(wanted)
    )
    return set(conn.execute(statement).scalars())


# --- invoices --------------------------------------------------------------------------------------


def last_invoice_number(conn: Connection, organization_id: uuid.UUID) -> int:
    statement = select(func.max(invoices.c.number)).where(invoices.c.organization_id == organization_id)
    return int(conn.execute(statement).scalar_one() or 0)


def _fits(column: Any, value: Decimal) -> bool:
    """Whether ``value`` fits the 64-bit integer a fixed-scale column keeps it as."""
    return abs(value.scaleb(column.type.scale)) <= INT64_MAX


def too_large_to_store(new_invoices: Sequence[Invoice]) -> list[str]:
    """What of these invoices the columns cannot hold (a line's quantity, a line's or an invoice's amount)."""
    problems: list[str] = []
    for invoice in new_invoices:
        found = len(problems)
        for line in invoice.lines:
            what = "the commitment" if line.product_id is None else f"product {line.product_id!r}"
            if not _fits(invoice_lines.c.quantity, line.quantity):
                problems.append(f"{what} of account {invoice.account_id}: quantity {line.quantity}")
            if not _fits(invoice_lines.c.amount, line.amount):
                problems.append(f"{what} of account {invoice.account_id}: amount {line.amount} {invoice.currency}")
        if len(problems) == found and not _fits(invoices.c.amount, invoice.amount):
            problems.append(f"the total of account {invoice.account_id}: amount {invoice.amount} {invoice.currency}")
    return problems


def insert_invoices(conn: Connection, new_invoices: Sequence[Invoice]) -> None:
    """The invoices and all their lines, in two bulk statements."""
    if not new_invoices:
        return
    conn.execute(
        insert(invoices),
        [
            {
                "id": invoice.id,
                "organization_id": invoice.organization_id,
                "account_id": invoice.account_id,
                "number": invoice.number,
                "currency": invoice.currency,
                "month": invoice.month,
                "status": invoice.status,
                "amount": invoice.amount,
                "amount_paid": invoice.amount_paid,
                "issued_at": invoice.issued_at,
                "effective_date": invoice.effective_date,
                "due_date": invoice.due_date,
                "paid_at": invoice.paid_at,
                "voided_at": invoice.voided_at,
            }
            for invoice in new_invoices
        ],
    )
    conn.execute(
        insert(invoice_lines),
        [
            {
                "invoice_id": invoice.id,
                "line": line.line,
                "kind": line.kind,
                "product_id": line.product_id,
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "unrounded_amount": format(line.unrounded_amount, "f"),
                "amount": line.amount,
            }
            for invoice in new_invoices
            for line in invoice.lines
        ],
    )


def _invoice(row: Any, lines: Sequence[InvoiceLine] = ()) -> Invoice:
    return Invoice(**{column.name: row._mapping[column.name] for column in invoices.columns}, lines=tuple(lines))


def _lines(conn: Connection, invoice_id: uuid.UUID) -> list[InvoiceLine]:
    statement = select(invoice_lines).where(invoice_lines.c.invoice_id == invoice_id).order_by(invoice_lines.c.line)
    return [
        InvoiceLine(
            line=row.line,
            kind=row.kind,
            product_id=row.product_id,
            description=row.description,
            quantity=row.quantity,
            unit_price=row.unit_price,
            unrounded_amount=Decimal(row.unrounded_amount),
            amount=row.amount,
        )
        for row in conn.execute(statement)
    ]


def get_invoice(
    conn: Connection,
    organization_id: uuid.UUID,
    path_prefix: str | None,
    invoice_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Invoice | None:
    statement = select(invoices).where(invoices.c.id == invoice_id, invoices.c.organization_id == organization_id)
    if path_prefix is not None:
        statement = statement.where(invoices.c.account_id.in_(reachable_ids(organization_id, path_prefix)))
    if for_update:
        statement = statement.with_for_update()
    row = conn.execute(statement).first()
    return None if row is None else _invoice(row, _lines(conn, invoice_id))


def list_invoices(
    conn: Connection,
    organization_id: uuid.UUID,
    path_prefix: str | None,
    *,
    account_id: uuid.UUID | None = None,
    statuses: Sequence[str] | None = None,
    month: str | None = None,
) -> list[Invoice]:
    statement = select(invoices).where(invoices.c.organization_id == organization_id)
    if path_prefix is not None:
        statement = statement.where(invoices.c.account_id.in_(reachable_ids(organization_id, path_prefix)))
    if account_id is not None:
        statement = statement.where(invoices.c.account_id == account_id)
    if statuses is not None:
        statement = statement.where(invoices.c.status.in_(statuses))
    if month is not None:
        statement = statement.where(invoices.c.month == month)
    return [_invoice(row) for row in conn.execute(statement.order_by(invoices.c.number))]


def open_invoices(conn: Connection, account_id: uuid.UUID, currency: str) -> list[Invoice]:
    """The account's open invoices in ``currency``, oldest first (locked on PostgreSQL)."""
    statement = (
        select(invoices)
        .where(invoices.c.account_id == account_id, invoices.c.currency == currency, invoices.c.status == "open")
        .order_by(invoices.c.number)
        .with_for_update()
    )
    return [_invoice(row) for row in conn.execute(statement)]


def update_invoice(conn: Connection, invoice_id: uuid.UUID, **values: Any) -> None:
    conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(**values))


def verify_invoice_sums(conn: Connection) -> list[tuple[uuid.UUID, int, Decimal, Decimal]]:
    """Invoices whose amount is not the sum of their lines: (id, number, amount, sum of lines)."""
    sums = (
        select(invoice_lines.c.invoice_id, func.sum(invoice_lines.c.amount).label("total"))
        .group_by(invoice_lines.c.invoice_id)
        .subquery()
    )
    statement = select(invoices.c.id, invoices.c.number, invoices.c.amount, sums.c.total).select_from(
        invoices.outerjoin(sums, sums.c.invoice_id == invoices.c.id)
    )
    # SUM keeps the column's type, so both sides come back as exact Decimals.
    return [
        (row.id, row.number, row.amount, row.total or Decimal(0))
        for row in conn.execute(statement)
        if row.amount != (row.total or Decimal(0))
    ]


# --- billing history -------------------------------------------------------------------------------


def insert_history(
    conn: Connection, organization_id: uuid.UUID, items: Sequence[tuple[HistoryItem, uuid.UUID | None, str | None]]
) -> None:
    """Items with the invoice or payment each one records."""
    if not items:
        return
    conn.execute(
        insert(billing_history),
        [
            {
                "id": item.id,
                "organization_id": organization_id,
                "account_id": item.account_id,
                "type": item.type,
                "action": item.action,
                "description": item.description,
                "occurred_at": item.occurred_at,
                "amount": item.amount,
                "currency": item.currency,
                "invoice_id": invoice_id,
                "payment_id": payment_id,
            }
            for item, invoice_id, payment_id in items
        ],
    )


def _history_within(organization_id: uuid.UUID, path_prefix: str | None) -> Select[Any]:
    statement = (
        select(billing_history, accounts.c.name.label("account_name"))
        .select_from(billing_history.join(accounts, accounts.c.id == billing_history.c.account_id))
        .where(billing_history.c.organization_id == organization_id)
    )
    if path_prefix is not None:
        statement = statement.where(billing_history.c.account_id.in_(reachable_ids(organization_id, path_prefix)))
    return statement


def _history_filters(type_: str | None, action: str | None, since: datetime | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if type_ is not None:
        conditions.append(billing_history.c.type == type_)
    if action is not None:
        conditions.append(billing_history.c.action == action)
    if since is not None:
        conditions.append(billing_history.c.occurred_at >= since)
    return conditions


def count_history(
    conn: Connection,
    organization_id: uuid.UUID,
    path_prefix: str | None,
    *,
    type_: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> int:
    statement = (
        select(func.count())
        .select_from(billing_history)
        .where(billing_history.c.organization_id == organization_id, *_history_filters(type_, action, since))
    )
    if path_prefix is not None:
        statement = statement.where(billing_history.c.account_id.in_(reachable_ids(organization_id, path_prefix)))
    return int(conn.execute(statement).scalar_one())


def history_page(
    conn: Connection,
    organization_id: uuid.UUID,
    path_prefix: str | None,
    *,
    type_: str | None,
    action: str | None,
    since: datetime | None,
    order: HistoryOrder | None,
    offset: int,
    limit: int,
) -> list[HistoryItem]:
    """One page: ascending by ``order`` (then time, then id), or newest first without it."""
    statement = _history_within(organization_id, path_prefix).where(*_history_filters(type_, action, since))
    ordering: list[ColumnElement[Any]]
    if order is None:
        ordering = [billing_history.c.occurred_at.desc(), billing_history.c.id.desc()]
    elif order == "occurred_at":
        ordering = [billing_history.c.occurred_at, billing_history.c.id]
    else:
        ordering = [billing_history.c[order], billing_history.c.occurred_at, billing_history.c.id]
    rows = conn.execute(statement.order_by(*ordering).offset(offset).limit(limit))
    return [
        HistoryItem(
            id=row.id,
            account_id=row.account_id,
            account_name=row.account_name,
            type=row.type,
            action=row.action,
            description=row.description,
            occurred_at=row.occurred_at,
            amount=row.amount,
            currency=row.currency,
        )
        for row in rows
    ]
