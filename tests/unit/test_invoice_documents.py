"""The invoice document (``invoicing.documents``): every figure the invoice holds is on the page, read back from the
PDF's text with pypdf, and the same invoice renders to the same bytes.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader

from meterbook.invoicing.documents import Party, TaxLine, format_money, format_quantity, invoice_pdf
from meterbook.invoicing.models import Invoice, InvoiceLine
from meterbook.pricing import TierCharge

ISSUED = datetime(2026, 12, 1, tzinfo=UTC)
SELLER = Party("Acme Cloud Inc.", ("1 Market St, San Francisco", "Tax ID US-12-3456789"))
BUYER = Party("Société Générale d'Ümlaut", ("ops@umbrella.example",))
TIERS = (
    TierCharge(Decimal(0), Decimal(5), Decimal(5), Decimal(5), Decimal(0), Decimal(25)),
    TierCharge(Decimal(5), Decimal(10), Decimal(5), Decimal(4), Decimal("1.5"), Decimal("21.5")),
    TierCharge(Decimal(10), None, Decimal(2), Decimal(3), Decimal(0), Decimal(6)),
)


def an_invoice(*lines: InvoiceLine, paid: str = "100", currency: str = "USD") -> Invoice:
    amount = sum((line.amount for line in lines), Decimal(0))
    return Invoice(
        id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        number=42,
        currency=currency,
        month="2026-11",
        status="open",
        amount=amount,
        amount_paid=Decimal(paid),
        issued_at=ISSUED,
        effective_date=ISSUED,
        due_date=ISSUED + timedelta(days=30),
        paid_at=None,
        voided_at=None,
        lines=lines,
    )


def line(n: int, description: str, quantity: str, unit_price: str | None, amount: str, **extra: object) -> InvoiceLine:
    return InvoiceLine(
        line=n,
        kind="usage",
        product_id="P",
        description=description,
        quantity=Decimal(quantity),
        unit_price=None if unit_price is None else Decimal(unit_price),
        unrounded_amount=Decimal(amount),
        amount=Decimal(amount),
        **extra,  # type: ignore[arg-type]
    )


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


class TestFigures:
    def test_every_figure_of_the_invoice_is_on_the_page(self) -> None:
        invoice = an_invoice(
            line(1, "Calls (starter plan)", "12", None, "52.5", tiers=TIERS),
            line(2, "SMS", "1234567.5", "0.0067", "8271.60"),
        )
        taxes = (TaxLine("VAT", Decimal("10"), Decimal("832.41")),)
        text = text_of(
            invoice_pdf(invoice, number="ACME-000042", seller=SELLER, buyer=BUYER, net_terms_days=30, taxes=taxes)
        )
        for expected in (
            "Invoice ACME-000042",
            "Acme Cloud Inc.",
            "Tax ID US-12-3456789",
            "Société Générale d'Ümlaut",
            "Period: 2026-11",
            "Issued: 2026-12-01",
            "Due: 2026-12-31",
            "Calls (starter plan)",
            "USD 52.50",
            "Units above 0 to 5",
            "USD 5.00",
            "USD 25.00",
            "Units above 5 to 10",
            "USD 4.00 + USD 1.50",
            "USD 21.50",
            "Units above 10 and above",
            "1,234,567.5",
            "USD 0.0067",
            "USD 8,271.60",
            "VAT (10%)",
            "USD 832.41",
            f"USD {invoice.amount - Decimal('832.41'):,.2f}",
            f"USD {invoice.amount:,.2f}",
            "USD 100.00",
            f"USD {invoice.amount - 100:,.2f}",
            "Payment terms: net 30 days, by 2026-12-31.",
        ):
            assert expected in text, (expected, text)

    def test_a_long_invoice_runs_over_pages_with_every_line(self) -> None:
        lines = [line(n, f"Product number {n}", str(n), "1", str(n)) for n in range(1, 121)]
        pdf = invoice_pdf(an_invoice(*lines), number="X-1", seller=SELLER, buyer=BUYER, net_terms_days=0)
        reader = PdfReader(io.BytesIO(pdf))
        assert len(reader.pages) > 1
        text = text_of(pdf)
        assert all(f"Product number {n}\n" in text or f"Product number {n} " in text for n in range(1, 121))
        assert f"Page 1/{len(reader.pages)}" in text
        assert "Payment terms: due on receipt" in text

    def test_a_currency_without_minor_units(self) -> None:
        text = text_of(
            invoice_pdf(
                an_invoice(line(1, "Calls", "3", "150", "450"), paid="0", currency="JPY"),
                number="J-1",
                seller=SELLER,
                buyer=BUYER,
                net_terms_days=14,
            )
        )
        assert "JPY 450\n" in text or "JPY 450 " in text
        assert "JPY 450.00" not in text


class TestStable:
    def test_the_same_invoice_renders_to_the_same_bytes(self) -> None:
        invoice = an_invoice(line(1, "Calls", "12", None, "52.5", tiers=TIERS))
        first = invoice_pdf(invoice, number="A-1", seller=SELLER, buyer=BUYER, net_terms_days=30)
        again = invoice_pdf(invoice, number="A-1", seller=SELLER, buyer=BUYER, net_terms_days=30)
        assert first == again
        assert first.startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("amount", "currency", "exact", "shown"),
    [
        (Decimal("1234.5"), "USD", False, "USD 1,234.50"),
        (Decimal("0.0067"), "USD", True, "USD 0.0067"),
        (Decimal("0.5"), "USD", True, "USD 0.50"),
        (Decimal("450"), "JPY", False, "JPY 450"),
        (Decimal("-12.5"), "EUR", False, "EUR -12.50"),
    ],
)
def test_money_as_a_customer_reads_it(amount: Decimal, currency: str, exact: bool, shown: str) -> None:
    assert format_money(amount, currency, exact=exact) == shown


@pytest.mark.parametrize(
    ("quantity", "shown"),
    [
        (Decimal("1234567.50"), "1,234,567.5"),
        (Decimal("1E+3"), "1,000"),
        (Decimal("-0.25"), "-0.25"),
        (Decimal(0), "0"),
    ],
)
def test_quantities(quantity: Decimal, shown: str) -> None:
    assert format_quantity(quantity) == shown
