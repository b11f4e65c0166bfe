"""What the invoicing domain accepts, and how the native API (and the webhooks that carry them) render its objects.

The renderings live here rather than in ``api/`` so that a service below the API (``webhooks.emit``) can show an
invoice exactly as ``GET /v1/invoices/{id}`` does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from meterbook.invoicing.models import BillingRun, Invoice, InvoiceLine
from meterbook.kit.fields import MONTH_PATTERN, JsonNumber, NativeInput
from meterbook.kit.time import utcnow
from meterbook.pricing import TierCharge

__all__ = ["MONTH_PATTERN", "BillingRunIn", "BillingRunOut", "InvoiceLineOut", "InvoiceOut", "TierOut"]


def _calendar_year(month: str) -> str:
    # The calendar starts at year 1: "0000-01" is written like a month but is none.
    if month.startswith("0000"):
        raise ValueError("year 0000 is not a year of the calendar (years 0001 to 9999)")
    return month


class BillingRunIn(NativeInput):
    month: Annotated[str, StringConstraints(pattern=MONTH_PATTERN), AfterValidator(_calendar_year)] = Field(
        description="The UTC month to invoice, `YYYY-MM`; it must have ended.", examples=["2026-10"]
    )


# --- renderings ------------------------------------------------------------------------------------


class BillingRunOut(BaseModel):
    month: str = Field(description="The invoiced UTC month, `YYYY-MM`.")
    invoice_count: int = Field(description="Invoices the run created (when it first ran).")
    created_at: datetime = Field(description="When the month was invoiced.")
    created: bool = Field(description="False when the month had been invoiced before and nothing was created now.")

    @classmethod
    def of(cls, run: BillingRun) -> BillingRunOut:
        return cls(**vars(run))


class TierOut(BaseModel):
    """One tier's part of a graduated or volume price."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: JsonNumber = Field(alias="from", description="The tier counts the units above this many.")
    up_to: JsonNumber | None = Field(description="...up to and including this many; null for the last tier.")
    units: JsonNumber = Field(description="The units in this tier (for a volume price, every unit).")
    unit_price: JsonNumber
    flat_fee: JsonNumber
    amount: JsonNumber = Field(description="units × unit_price + flat_fee, exact.")

    @classmethod
    def of(cls, tier: TierCharge) -> TierOut:
        return cls(
            from_=tier.from_,
            up_to=tier.up_to,
            units=tier.units,
            unit_price=tier.unit_price,
            flat_fee=tier.flat_fee,
            amount=tier.amount,
        )


class InvoiceLineOut(BaseModel):
    line: int
    kind: Literal["subscription", "fee", "usage"] = Field(
        description="The commitment, a plan's fee (prorated by days for part of a month), or one product's usage "
        "under one price."
    )
    product_id: str | None
    description: str
    quantity: JsonNumber = Field(description="Units of usage; for a fee, 1 for the whole month, else the days.")
    unit_price: JsonNumber | None = Field(
        description="null when the usage has no one unit price (tiers, packages, several catalog prices) and for a "
        "fee of part of a month."
    )
    unrounded_amount: JsonNumber = Field(description="The exact amount before rounding.")
    amount: JsonNumber = Field(description="Rounded half away from zero to the currency's minor unit.")
    tiers: list[TierOut] = Field(description="How a graduated or volume price's units went through its tiers; [].")

    @classmethod
    def of(cls, line: InvoiceLine) -> InvoiceLineOut:
        return cls(
            line=line.line,
            kind=line.kind,
            product_id=line.product_id,
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            unrounded_amount=line.unrounded_amount,
            amount=line.amount,
            tiers=[TierOut.of(tier) for tier in line.tiers],
        )


class InvoiceOut(BaseModel):
    id: uuid.UUID
    number: int = Field(description="Sequential per organization, from 1.")
    account_id: uuid.UUID
    currency: str
    month: str
    status: Literal["open", "paid", "void"]
    amount: JsonNumber = Field(description="The sum of the lines.")
    amount_paid: JsonNumber = Field(description="What payments cover of it.")
    amount_due: JsonNumber = Field(description="What is still owed (0 unless open).")
    issued_at: datetime
    effective_date: datetime = Field(description="The invoice's date: the first day after its month.")
    due_date: datetime = Field(description="The effective date plus the account's net terms.")
    overdue: bool = Field(description="Open after its due date has ended (UTC): the due date is the last day to pay.")
    paid_at: datetime | None
    voided_at: datetime | None
    lines: list[InvoiceLineOut] | None = Field(description="The lines (null in lists; see GET /v1/invoices/{id}).")

    @classmethod
    def of(cls, invoice: Invoice, *, with_lines: bool, now: datetime | None = None) -> InvoiceOut:
        return cls(
            id=invoice.id,
            number=invoice.number,
            account_id=invoice.account_id,
            currency=invoice.currency,
            month=invoice.month,
            status=invoice.status,
            amount=invoice.amount,
            amount_paid=invoice.amount_paid,
            amount_due=invoice.amount_due,
            issued_at=invoice.issued_at,
            effective_date=invoice.effective_date,
            due_date=invoice.due_date,
            overdue=invoice.overdue_at(now or utcnow()),
            paid_at=invoice.paid_at,
            voided_at=invoice.voided_at,
            lines=[InvoiceLineOut.of(line) for line in invoice.lines] if with_lines else None,
        )
