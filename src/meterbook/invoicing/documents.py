"""An invoice as a PDF document a customer can be sent (CONTRACT §8, issue 20).

The document is a function of the invoice and of who issues and receives it: rendered once, at finalization,
and stored, so that fetching it again gives the same bytes even after the organization renames itself. The
rendering is deterministic too (the creation date is the invoice's issue date, no random ids), so that a test
can compare two renderings of one invoice.

Every figure is the invoice's own, formatted, never computed again here: the document shows what the API shows.
Text is set in DejaVu Sans (shipped in ``fonts/``, its licence beside it), which covers the scripts account
names are written in; the PDF embeds only the glyphs it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, XPos, YPos

from meterbook.invoicing.models import Invoice, InvoiceLine
from meterbook.kit.money import CURRENCY_EXPONENTS
from meterbook.pricing import TierCharge

__all__ = ["Party", "TaxLine", "format_money", "format_quantity", "invoice_pdf"]

_FONTS = Path(__file__).parent / "fonts"
_FAMILY = "DejaVu"
#: Column widths of the lines table, in mm: description, quantity, unit price, amount (an A4 page is 210 wide).
_COLUMNS = (92.0, 28.0, 30.0, 30.0)
_LINE_HEIGHT = 5.5


@dataclass(frozen=True)
class Party:
    """Who issues or receives the invoice: a name, then its other lines (address, e-mail, tax number)."""

    name: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaxLine:
    """One tax of the invoice, as its totals show it."""

    name: str
    percent: Decimal
    amount: Decimal


def _plain(value: Decimal) -> str:
    """Without an exponent or trailing zeros: ``1E+1`` is ``10``, ``0.50`` is ``0.5``."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_quantity(value: Decimal) -> str:
    """Units with thousands separators and every decimal they have."""
    whole, _, fraction = _plain(value).partition(".")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{int(whole.lstrip('-') or 0):,}"
    return f"{sign}{grouped}.{fraction}" if fraction else f"{sign}{grouped}"


def format_money(amount: Decimal, currency: str, *, exact: bool = False) -> str:
    """An amount as a customer reads it: ``USD 1,234.50``. ``exact`` keeps digits beyond the minor unit (a unit
    price of 0.0067 is not 0.01)."""
    places = CURRENCY_EXPONENTS.get(currency, 2)
    if exact and -amount.normalize().as_tuple().exponent > places:  # type: ignore[operator]
        return f"{currency} {format_quantity(amount)}"
    return f"{currency} {amount:,.{places}f}"


class _Document(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.add_font(_FAMILY, "", str(_FONTS / "DejaVuSans.ttf"))
        self.add_font(_FAMILY, "B", str(_FONTS / "DejaVuSans-Bold.ttf"))
        self.set_title(title)
        self.set_producer("meterbook")
        self.set_creator("meterbook")
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(15, 15, 15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(_FAMILY, "", 8)
        self.cell(0, 5, f"Page {self.page_no()}/{{nb}}", align="C")

    def text_line(self, text: str, *, size: float = 10, bold: bool = False, height: float = _LINE_HEIGHT) -> None:
        self.set_font(_FAMILY, "B" if bold else "", size)
        self.multi_cell(0, height, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def row(self, cells: Sequence[str], *, bold: bool = False, size: float = 9, indent: float = 0) -> None:
        """A row of the lines table: the description wraps in its column, the figures stay on its first line."""
        self.set_font(_FAMILY, "B" if bold else "", size)
        widths = [_COLUMNS[0] - indent, *_COLUMNS[1:]]
        wrapped = self.multi_cell(widths[0], _LINE_HEIGHT, cells[0], dry_run=True, output=MethodReturnValue.LINES)
        assert isinstance(wrapped, list)
        height = _LINE_HEIGHT * max(1, len(wrapped))
        if self.get_y() + height > self.page_break_trigger:
            self.add_page()
        top = self.get_y()
        self.set_xy(self.l_margin + indent, top)
        self.multi_cell(widths[0], _LINE_HEIGHT, cells[0], new_x=XPos.RIGHT, new_y=YPos.TOP)
        self.set_xy(self.l_margin + _COLUMNS[0], top)
        for width, text in zip(widths[1:], cells[1:], strict=True):
            self.cell(width, _LINE_HEIGHT, text, align="R")
        self.set_xy(self.l_margin, top + height)


def _tier_text(tier: TierCharge) -> str:
    upper = "and above" if tier.up_to is None else f"to {format_quantity(tier.up_to)}"
    return f"Units above {format_quantity(tier.from_)} {upper}"


def _line_rows(document: _Document, line: InvoiceLine, currency: str) -> None:
    unit_price = "" if line.unit_price is None else format_money(line.unit_price, currency, exact=True)
    document.row([line.description, format_quantity(line.quantity), unit_price, format_money(line.amount, currency)])
    for tier in line.tiers:
        fee = f" + {format_money(tier.flat_fee, currency, exact=True)}" if tier.flat_fee else ""
        document.row(
            [
                _tier_text(tier),
                format_quantity(tier.units),
                format_money(tier.unit_price, currency, exact=True) + fee,
                format_money(tier.amount, currency, exact=True),
            ],
            size=8,
            indent=6,
        )


def invoice_pdf(
    invoice: Invoice,
    *,
    number: str,
    seller: Party,
    buyer: Party,
    net_terms_days: int,
    taxes: Sequence[TaxLine] = (),
    rendered_at: datetime | None = None,
) -> bytes:
    """The invoice as a PDF: who issues it and to whom, its number and dates, each line (with its tiers), the
    taxes, the totals and the payment terms. ``rendered_at`` (default: the issue date) dates the file."""
    currency = invoice.currency
    document = _Document(f"Invoice {number}")
    document.set_creation_date(rendered_at or invoice.issued_at)
    document.add_page()

    document.text_line(seller.name, size=14, bold=True, height=7)
    for detail in seller.details:
        document.text_line(detail, size=9)
    document.ln(4)
    document.text_line(f"Invoice {number}", size=18, bold=True, height=9)
    document.text_line(f"Period: {invoice.month}", size=10)
    document.text_line(f"Issued: {invoice.issued_at:%Y-%m-%d}", size=10)
    document.text_line(f"Due: {invoice.due_date:%Y-%m-%d}", size=10)
    document.ln(4)
    document.text_line("Bill to", size=9, bold=True)
    document.text_line(buyer.name, size=11, bold=True)
    for detail in buyer.details:
        document.text_line(detail, size=9)
    document.ln(5)

    document.row(["Description", "Quantity", "Unit price", "Amount"], bold=True)
    document.line(document.l_margin, document.get_y(), document.w - document.r_margin, document.get_y())
    document.ln(1)
    for line in invoice.lines:
        _line_rows(document, line, currency)
    document.line(document.l_margin, document.get_y() + 1, document.w - document.r_margin, document.get_y() + 1)
    document.ln(3)

    tax_total = sum((tax.amount for tax in taxes), Decimal(0))
    subtotal = invoice.amount - tax_total
    totals = [("Subtotal", subtotal)]
    totals += [(f"{tax.name} ({_plain(tax.percent)}%)", tax.amount) for tax in taxes]
    totals += [
        ("Total", invoice.amount),
        ("Paid", invoice.amount_paid),
        ("Amount due", invoice.amount - invoice.amount_paid),
    ]
    for label, value in totals:
        document.row([label, "", "", format_money(value, currency)], bold=label in ("Total", "Amount due"))
    document.ln(6)
    terms = "due on receipt" if net_terms_days == 0 else f"net {net_terms_days} days"
    document.text_line(f"Payment terms: {terms}, by {invoice.due_date:%Y-%m-%d}.", size=9)
    return bytes(document.output())
