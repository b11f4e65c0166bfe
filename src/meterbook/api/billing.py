"""The native management API for money: billing runs, invoices and payments (CONTRACT §4).

Errors are rendered in the Faraday shape, like the rest of ``/v1``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from meterbook import metrics
from meterbook.accounts import access
from meterbook.accounts.models import Principal
from meterbook.api.auth import authorized
from meterbook.api.faraday import ERROR_RESPONSES
from meterbook.api.routing import DialectRoute, JsonNumber, reading, respond, writing
from meterbook.invoicing import service as invoicing
from meterbook.invoicing.models import UpcomingInvoice
from meterbook.invoicing.schemas import MONTH_PATTERN, BillingRunIn, BillingRunOut, InvoiceLineOut, InvoiceOut
from meterbook.kit.time import utcnow
from meterbook.payments import service as payments
from meterbook.payments.schemas import PaymentIn, PaymentOut

__all__ = ["InvoiceOut", "PaymentOut", "router"]

router = APIRouter(prefix="/v1", tags=["billing"], route_class=DialectRoute, responses=ERROR_RESPONSES)

BillingRunner = Annotated[Principal, Depends(authorized(access.RUN_BILLING))]
InvoiceVoider = Annotated[Principal, Depends(authorized(access.VOID_INVOICES))]
PaymentRecorder = Annotated[Principal, Depends(authorized(access.RECORD_PAYMENTS))]
BillingReader = Annotated[Principal, Depends(authorized(access.READ_BILLING))]


class InvoicesOut(BaseModel):
    invoices: list[InvoiceOut]


class UpcomingInvoiceOut(BaseModel):
    account_id: uuid.UUID
    currency: str
    month: str
    amount: JsonNumber = Field(description="The sum of the lines.")
    effective_date: datetime
    due_date: datetime
    lines: list[InvoiceLineOut]

    @classmethod
    def of(cls, invoice: UpcomingInvoice) -> UpcomingInvoiceOut:
        return cls(
            account_id=invoice.account_id,
            currency=invoice.currency,
            month=invoice.month,
            amount=invoice.amount,
            effective_date=invoice.effective_date,
            due_date=invoice.due_date,
            lines=[InvoiceLineOut.of(line) for line in invoice.lines],
        )


class UpcomingInvoicesOut(BaseModel):
    month: str
    computed_at: datetime = Field(description="Usage reported later changes what the month's run will invoice.")
    invoices: list[UpcomingInvoiceOut] = Field(
        description="One per currency the account would be invoiced in; [] when there is nothing to invoice."
    )


class PaymentsOut(BaseModel):
    payments: list[PaymentOut]


Month = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="`YYYY-MM`")]


@router.post(
    "/billing_runs",
    response_model=BillingRunOut,
    status_code=201,
    responses={200: {"model": BillingRunOut, "description": "The month had been invoiced before: nothing new."}},
)
def create_billing_run(request: Request, principal: BillingRunner, body: BillingRunIn) -> Response:
    """Invoice an ended month for every account with a commitment or usage in it (201); again: nothing new (200)."""
    with writing(request) as conn:
        run = invoicing.bill(conn, principal, body.month)
    metrics.record_billing_run(run.created, run.invoice_count)
    return respond(BillingRunOut.of(run), status_code=201 if run.created else 200)


@router.get("/invoices", response_model=InvoicesOut)
def list_invoices(
    request: Request,
    principal: BillingReader,
    account_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[Literal["open", "paid", "void"] | None, Query()] = None,
    month: Month = None,
) -> Response:
    """The invoices of the accounts the key reaches, by number (without their lines)."""
    with reading(request) as conn:
        found = invoicing.list_invoices(conn, principal, account_id=account_id, status=status, month=month)
    return respond(InvoicesOut(invoices=[InvoiceOut.of(invoice, with_lines=False) for invoice in found]))


@router.get("/accounts/{account_id}/invoices/upcoming", response_model=UpcomingInvoicesOut)
def upcoming_invoice(
    request: Request, principal: BillingReader, account_id: uuid.UUID, month: Month = None
) -> Response:
    """What a billing run of `month` (default: the current UTC month) would invoice the account if it ran now:
    computed by the billing run's own code, stored nowhere."""
    now = utcnow()
    with reading(request) as conn:
        found = invoicing.upcoming_invoices(conn, principal, account_id, month, now)
    return respond(
        UpcomingInvoicesOut(
            month=month or f"{now:%Y-%m}",
            computed_at=now,
            invoices=[UpcomingInvoiceOut.of(invoice) for invoice in found],
        )
    )


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
def get_invoice(request: Request, principal: BillingReader, invoice_id: uuid.UUID) -> Response:
    """One invoice with its lines."""
    with reading(request) as conn:
        invoice = invoicing.get_invoice(conn, principal, invoice_id)
    return respond(InvoiceOut.of(invoice, with_lines=True))


@router.post("/invoices/{invoice_id}/void", response_model=InvoiceOut)
def void_invoice(request: Request, principal: InvoiceVoider, invoice_id: uuid.UUID) -> Response:
    """Void an open invoice (a paid one cannot be): it stays, and the billing history gains a refund."""
    with writing(request) as conn:
        invoice = invoicing.void(conn, principal, invoice_id)
    return respond(InvoiceOut.of(invoice, with_lines=True))


@router.post(
    "/payments",
    response_model=PaymentOut,
    status_code=201,
    responses={200: {"model": PaymentOut, "description": "The same `id` again: the payment as it is now."}},
)
def record_payment(request: Request, principal: PaymentRecorder, body: PaymentIn) -> Response:
    """Record money received (201; the same `id` again: 200 with the first) and settle open invoices with it."""
    with writing(request) as conn:
        payment, created = invoicing.pay(conn, principal, body)
    metrics.record_payment(created)
    return respond(PaymentOut.of(payment), status_code=201 if created else 200)


@router.get("/payments", response_model=PaymentsOut)
def list_payments(
    request: Request, principal: BillingReader, account_id: Annotated[uuid.UUID | None, Query()] = None
) -> Response:
    """The payments of the accounts the key reaches (or of one), oldest first, with what each settled."""
    with reading(request) as conn:
        found = payments.list_payments(conn, principal, account_id)
    return respond(PaymentsOut(payments=[PaymentOut.of(payment) for payment in found]))
