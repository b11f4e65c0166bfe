"""What usage costs: the month's units of each product priced by the price that applies (CONTRACT §6).

Aggregates keep units at write time; this prices them when read, by the one pricing function
(:func:`meterbook.pricing.price`), for everyone who shows an amount: a billing run and the upcoming invoice (one
:class:`UsageCharge` per invoice line), the Talkdesk and native usage rows, the console, the export and ``verify``.

Which price applies to an aggregate (``plans.models.contracted_price``): the account's negotiated price of the
product in force in the month, else the price of the plan the usage was rated under (the plan version of the
month), else the catalog's unit price the aggregate holds. Negotiated prices and plan versions change only at a
month's first instant, so the month decides it. Tiers count the units of one account, product and month under
one price: per plan for a plan's price, all together for a negotiated price (the account's own, whatever its plan).

A row's part of a tiered amount (several rows share one count when usage differs by direction or resolution) is
what its units add to the price, in the order of the rows' ids: the price of the units up to and including the
row's less the price of those before it. It is exact, never rounded, and the rows add up to the charge.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, localcontext

from sqlalchemy import Connection

from meterbook.aggregates import repository
from meterbook.aggregates.models import Aggregate
from meterbook.kit.money import MONEY_SCALE
from meterbook.kit.time import month_start
from meterbook.plans import service as plans
from meterbook.plans.models import AppliedPrice
from meterbook.plans.service import PriceBook
from meterbook.pricing import PerUnitPrice, TierCharge, price

__all__ = ["UsageCharge", "charges", "price_book_for", "priced", "priced_rows"]

#: Enough digits to add up any month of exact amounts without rounding.
_EXACT_DIGITS = 100
_PRICE_STEP = Decimal(1).scaleb(-MONEY_SCALE)
_ONE = Decimal(1)


@dataclass(frozen=True)
class UsageCharge:
    """One account's usage of one product in one month under one price: what one usage line of an invoice bills."""

    account_id: uuid.UUID
    product_id: str
    description: str
    month: str
    currency: str
    #: None: the catalog's unit price (of each aggregate, which may differ within the month).
    applied: AppliedPrice | None
    #: The plan whose price applies ("" unless ``applied`` is a plan's).
    plan_id: str
    units: Decimal
    #: Exact, never rounded (an invoice line rounds it).
    amount: Decimal
    #: The one unit price of the units, if they have one (a per-unit price); None for tiers, packages and a month
    #: rated at several catalog prices.
    unit_price: Decimal | None
    tiers: tuple[TierCharge, ...]
    #: The rows it prices, each with its exact part of ``amount``.
    aggregates: tuple[Aggregate, ...]


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros or exponent; called inside a context of :data:`_EXACT_DIGITS` digits."""
    normalized = value.normalize()
    return normalized.quantize(_ONE) if normalized == normalized.to_integral_value() else normalized


def _shown_price(amount: Decimal, units: Decimal) -> Decimal:
    """A row's amount per unit, rounded half away from zero to the price scale (CONTRACT §6, the Talkdesk row)."""
    if units == 0:
        return Decimal(0)
    return _plain((amount / units).quantize(_PRICE_STEP, rounding=ROUND_HALF_UP))


def _priced_group(
    applied: AppliedPrice, rows: list[Aggregate], units: Decimal, with_rows: bool
) -> tuple[Decimal, tuple[TierCharge, ...], list[Aggregate]]:
    whole = price(applied.price, units)
    if not with_rows:
        return whole.amount, whole.tiers, []
    if len(rows) == 1:
        [row] = rows
        return whole.amount, whole.tiers, [replace(row, amount=whole.amount, price=_shown_price(whole.amount, units))]
    parts: list[Aggregate] = []
    counted = Decimal(0)
    before = Decimal(0)
    rows = sorted(rows, key=lambda row: row.id)
    for index, row in enumerate(rows):
        counted += row.number_of_units
        # The last row's part is the rest, which is what pricing every unit gives: no second pricing of the total.
        upto = whole.amount if index == len(rows) - 1 else price(applied.price, _plain(counted)).amount
        part = _plain(upto - before)
        before = upto
        parts.append(replace(row, amount=part, price=_shown_price(part, row.number_of_units)))
    return whole.amount, whole.tiers, parts


def charges(book: PriceBook, usage: Iterable[Aggregate], *, with_rows: bool = True) -> list[UsageCharge]:
    """The usage charges of these aggregates (every row of each account, product and month they name), ordered by
    account, month, currency, product and then price (the catalog's first). ``with_rows`` False leaves each
    charge's ``aggregates`` empty (a billing run needs only the amounts)."""
    by_price: dict[tuple[uuid.UUID, str, str, str, str], list[Aggregate]] = defaultdict(list)
    applied_of: dict[tuple[uuid.UUID, str, str, str, str], AppliedPrice | None] = {}
    # Most accounts have no negotiated price: their price is the plan's, the same for every account on it.
    contracted: dict[tuple[uuid.UUID | None, str, str, str], AppliedPrice | None] = {}
    for row in usage:
        owner = row.account_id if row.account_id in book.negotiated else None
        memo = (owner, row.plan_id, row.product_id, row.month)
        if memo in contracted:
            applied = contracted[memo]
        else:
            applied = book.contracted(row.account_id, row.plan_id, row.product_id, month_start(row.month))
            contracted[memo] = applied
        # Which count the row's units join: the catalog's rows are summed, never tiered; a negotiated price
        # counts the account's units whatever plan they were rated under; a plan's price counts that plan's.
        pricing_key = "" if applied is None else "negotiated" if applied.source == "negotiated" else row.plan_id
        key = (row.account_id, row.month, row.currency, row.product_id, pricing_key)
        by_price[key].append(row)
        applied_of[key] = applied
    found: list[UsageCharge] = []
    with localcontext(prec=_EXACT_DIGITS):
        for key in sorted(by_price, key=lambda item: (str(item[0]), *item[1:])):
            account_id, month, currency, product_id, pricing_key = key
            rows = by_price[key]
            applied = applied_of[key]
            units = (
                rows[0].number_of_units
                if len(rows) == 1
                else _plain(sum((row.number_of_units for row in rows), Decimal(0)))
            )
            if applied is None:
                amount = _plain(sum((row.total_amount for row in rows), Decimal(0)))
                prices = {row.price for row in rows}
                unit_price = prices.pop() if len(prices) == 1 else None
                tiers: tuple[TierCharge, ...] = ()
                parts = sorted(rows, key=lambda row: row.id) if with_rows else []
            else:
                amount, tiers, parts = _priced_group(applied, rows, units, with_rows)
                unit_price = applied.price.unit_price if isinstance(applied.price, PerUnitPrice) else None
            found.append(
                UsageCharge(
                    account_id=account_id,
                    product_id=product_id,
                    description=rows[0].description,
                    month=month,
                    currency=currency,
                    applied=applied,
                    plan_id=pricing_key if applied is not None and applied.source == "plan" else "",
                    units=units,
                    amount=amount,
                    unit_price=None if unit_price is None else _plain(unit_price),
                    tiers=tiers,
                    aggregates=tuple(parts),
                )
            )
    return found


def priced(book: PriceBook, usage: Sequence[Aggregate]) -> list[Aggregate]:
    """The same rows in the same order, each with its amount under the price that applies (see the module)."""
    by_id = {row.id: row for charge in charges(book, usage) for row in charge.aggregates}
    return [by_id[row.id] for row in usage]


def price_book_for(
    conn: Connection, organization_id: uuid.UUID, usage: Sequence[Aggregate], *, whole_organization: bool = False
) -> PriceBook:
    """The negotiated prices and plans that price these rows."""
    accounts = None if whole_organization else {row.account_id for row in usage}
    return plans.price_book(conn, organization_id, accounts, {row.plan_id for row in usage})


def priced_rows(conn: Connection, organization_id: uuid.UUID, page: Sequence[Aggregate]) -> list[Aggregate]:
    """Rows that may be a part of their month's usage (a page of a search), priced: the other rows a tiered price
    counts with them are read too."""
    if not page:
        return []
    book = price_book_for(conn, organization_id, page)
    tiered = {
        (row.account_id, row.month)
        for row in page
        if book.contracted(row.account_id, row.plan_id, row.product_id, month_start(row.month)) is not None
    }
    everything = {row.id: row for row in page}
    if tiered:
        everything.update({row.id: row for row in repository.months_of_accounts(conn, organization_id, tiered)})
    by_id = {row.id: row for charge in charges(book, everything.values()) for row in charge.aggregates}
    return [by_id[row.id] for row in page]
