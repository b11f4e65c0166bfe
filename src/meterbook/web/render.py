"""Turning what the services return into HTML: the templates, how figures are written, the headers every page gets."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

from meterbook.errors import MeterbookError, NotFound
from meterbook.kit.money import CURRENCY_EXPONENTS
from meterbook.kit.time import as_utc

__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "html", "plain_decimal", "render_error"]

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"

#: Every console page: scripts and styles only from meterbook itself (no inline code, nothing fetched from
#: elsewhere), never framed, never cached (they show money), and no address of it leaked to other sites.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def plain_decimal(value: Decimal) -> str:
    """The exact decimal in positional notation, without trailing zeros (``100``, never ``1E+2``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def _grouped(value: Decimal, digits: int) -> str:
    """Thousands separators and at least ``digits`` decimals, never dropping one that is there."""
    exponent = value.normalize().as_tuple().exponent
    shown = max(digits, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return f"{value:,.{shown}f}"


def money(amount: Decimal, currency: str) -> str:
    return f"{_grouped(amount, CURRENCY_EXPONENTS.get(currency, 2))} {currency}"


def quantity(value: Decimal | int) -> str:
    return _grouped(Decimal(value), 0)


def date(moment: datetime | None) -> str:
    return "" if moment is None else f"{as_utc(moment):%Y-%m-%d}"


def timestamp(moment: datetime | None) -> str:
    return "" if moment is None else f"{as_utc(moment):%Y-%m-%d %H:%M} UTC"


def when(moment: datetime | None) -> Markup:
    """A timestamp for a table cell: it may wrap between the date and the time, never inside either."""
    if moment is None:
        return Markup("")
    utc = as_utc(moment)
    return Markup('<span class="date">{:%Y-%m-%d}</span> <span class="nowrap">{:%H:%M} UTC</span>').format(utc, utc)


def month_name(month: str) -> str:
    year, number = month.split("-")
    return f"{datetime(int(year), int(number), 1):%b} {year}"


_environment = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(
    money=money,
    quantity=quantity,
    # A bare figure beside its currency's name (a tier's bound or unit price): grouped, every decimal it has.
    figure=quantity,
    date=date,
    timestamp=timestamp,
    when=when,
    month_name=month_name,
    plain=plain_decimal,
)


def html(template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    body = _environment.get_template(template).render({"signed_in": False, "path": ""} | context)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


_TITLES = {
    400: "That request is not valid",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    413: "Too large",
    500: "Something went wrong",
}


def render_error(error: MeterbookError | None, status: int, error_id: uuid.UUID) -> HTMLResponse:
    """The console's error page, for every failure under ``/ui`` (the app's error handlers call it)."""
    if isinstance(error, NotFound) or status == 404:
        # Unknown and out of reach read the same (invariant 8), so the page says nothing more specific.
        message = "There is no such page, or what it shows is not in your organization."
    elif error is None or status >= 500:
        message = "The console could not show this page. The error is in the server's log under the id below."
    else:
        message = error.message
    context = {"title": _TITLES.get(status, "Something went wrong"), "message": message, "status": status}
    return html("error.html", context | {"error_id": str(error_id) if status >= 500 else None}, status)
