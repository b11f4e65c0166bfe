"""CSV exports of invoices, payments, monthly usage and the billing history, as the API shows them.

Money and quantities are written as their exact decimal text (never through a float), times as RFC
3339 in UTC, absent values as empty cells. Everything is read in one transaction, so an export is one
consistent picture even while the server keeps writing. Text that a spreadsheet would run as a formula
is escaped (OWASP's "CSV Injection"): operators open these files, customers chose the names in them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TextIO

from sqlalchemy import Connection

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.access import Action
from meterbook.accounts.models import Principal
from meterbook.aggregates import service as aggregates
from meterbook.db import Database
from meterbook.invoicing import service as invoicing
from meterbook.kit.time import format_rfc3339, month_of
from meterbook.payments import service as payments

__all__ = ["EXPORTS", "ExportKind", "export_csv"]

ExportKind = Literal["invoices", "payments", "usage", "history"]

#: History is read in pages of this many items (each page costs about the same wherever it is).
_HISTORY_PAGE = 1000


#: First characters that make Excel, LibreOffice or Google Sheets read a cell as a formula (OWASP).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: A number as ``format(Decimal, "f")`` writes it. It starts with ``-`` when negative, yet cannot be a
#: formula, and the exports promise exact decimals, so it is left as it is.
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cell(value: Any) -> str:
    """The cell's text, with a ``'`` before text a spreadsheet would run as a formula."""
    text = _text(value)
    if text.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


@dataclass(frozen=True)
class Months:
    first: str | None = None
    last: str | None = None


Rows = Callable[[Connection, Principal, Months], Iterable[Iterable[Any]]]


@dataclass(frozen=True)
class Export:
    action: Action
    columns: tuple[str, ...]
    rows: Rows


def _invoices(conn: Connection, principal: Principal, months: Months) -> Iterator[tuple[Any, ...]]:
    for invoice in invoicing.list_invoices(conn, principal):
        if (months.first and invoice.month < months.first) or (months.last and invoice.month > months.last):
            continue
        yield (
            invoice.id,
            invoice.number,
            invoice.account_id,
            invoice.month,
            invoice.currency,
            invoice.status,
            invoice.amount,
            invoice.amount_paid,
            invoice.amount_due,
            invoice.issued_at,
            invoice.effective_date,
            invoice.due_date,
            invoice.paid_at,
            invoice.voided_at,
        )


def _payments(conn: Connection, principal: Principal, months: Months) -> Iterator[tuple[Any, ...]]:
    for payment in payments.list_payments(conn, principal):
        month = month_of(payment.date)
        if (months.first and month < months.first) or (months.last and month > months.last):
            continue
        yield (
            payment.id,
            payment.account_id,
            payment.date,
            payment.currency,
            payment.amount,
            payment.unapplied,
            payment.invoice_id,
            payment.reference,
            payment.created_at,
        )


def _usage(conn: Connection, principal: Principal, months: Months) -> Iterator[tuple[Any, ...]]:
    for account in accounts.list_accounts(conn, principal):
        for aggregate in aggregates.account_usage(conn, principal, account.id, months.first, months.last):
            yield (
                aggregate.id,
                aggregate.account_id,
                aggregate.month,
                aggregate.product_id,
                aggregate.aggr_product_id,
                aggregate.description,
                aggregate.type,
                aggregate.direction,
                aggregate.resolution,
                aggregate.unit,
                aggregate.currency,
                aggregate.wallet_name,
                aggregate.price,
                aggregate.number_of_units,
                aggregate.total_amount,
            )


def _history(conn: Connection, principal: Principal, months: Months) -> Iterator[tuple[Any, ...]]:
    page = 1
    while True:
        found = invoicing.history(conn, principal, page=page, per_page=_HISTORY_PAGE, order="occurred_at")
        for item in found.items:
            month = month_of(item.occurred_at)
            if (months.first and month < months.first) or (months.last and month > months.last):
                continue
            yield (
                item.id,
                item.occurred_at,
                item.account_id,
                item.account_name,
                item.type,
                item.action,
                item.description,
                item.amount,
                item.currency,
            )
        if len(found.items) < _HISTORY_PAGE:
            return
        page += 1


EXPORTS: dict[ExportKind, Export] = {
    "invoices": Export(
        access.READ_BILLING,
        (
            "id",
            "number",
            "account_id",
            "month",
            "currency",
            "status",
            "amount",
            "amount_paid",
            "amount_due",
            "issued_at",
            "effective_date",
            "due_date",
            "paid_at",
            "voided_at",
        ),
        _invoices,
    ),
    "payments": Export(
        access.READ_BILLING,
        ("id", "account_id", "date", "currency", "amount", "unapplied", "invoice_id", "reference", "created_at"),
        _payments,
    ),
    "usage": Export(
        access.READ_USAGE,
        (
            "id",
            "account_id",
            "month",
            "product_id",
            "aggr_product_id",
            "description",
            "type",
            "direction",
            "resolution",
            "unit",
            "currency",
            "wallet_name",
            "price",
            "number_of_units",
            "total_amount",
        ),
        _usage,
    ),
    "history": Export(
        access.READ_BILLING,
        ("id", "occurred_at", "account_id", "account_name", "type", "action", "description", "amount", "currency"),
        _history,
    ),
}


def export_csv(
    database: Database,
    principal: Principal,
    kind: ExportKind,
    out: TextIO,
    *,
    first_month: str | None = None,
    last_month: str | None = None,
) -> int:
    """Write the export with a header row to ``out``; how many rows (without the header) it wrote."""
    export = EXPORTS[kind]
    writer = csv.writer(out, lineterminator="\n")
    # The csv module quotes only the line terminator's characters, so a lone CR inside a cell would go
    # out bare, and a spreadsheet would start a new row there, whose first cell escapes no check.
    with_cr = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(export.columns)
    written = 0
    with database.read() as conn:
        for row in export.rows(conn, principal, Months(first_month, last_month)):
            cells = [_cell(value) for value in row]
            (with_cr if any("\r" in cell for cell in cells) else writer).writerow(cells)
            written += 1
    return written
