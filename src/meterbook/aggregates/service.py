"""Rating and rolling up: each event that names a product is priced at the price in force when it
occurred and added to its monthly aggregate, in the same transaction as the event itself."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, localcontext

from sqlalchemy import Connection

from meterbook.accounts.models import Principal
from meterbook.accounts.reach import resolve_account, resolve_accounts, within
from meterbook.aggregates import charges, query, repository
from meterbook.aggregates.charges import UsageCharge
from meterbook.aggregates.models import Aggregate, AggregateKey, month_of, split_units
from meterbook.catalog.models import Product
from meterbook.errors import Conflict, Forbidden, InvalidInput, ValidationFailed
from meterbook.plans import service as plans
from meterbook.plans.models import plan_id_at

__all__ = [
    "MAX_UNITS",
    "NOT_AUTHORIZED_FOR_ACCOUNTS",
    "MonthTotals",
    "ProductMonths",
    "Rating",
    "UsageByMonth",
    "Verification",
    "account_usage",
    "add",
    "month_charges",
    "month_totals",
    "rate",
    "rerate_account",
    "search",
    "units_in_month",
    "usage_by_month",
    "verify",
]


#: What an aggregate's units can reach: a 64-bit count of whole units, plus its nanounits.
MAX_UNITS = Decimal(2**63 - 1) + Decimal("0.999999999")


@dataclass(frozen=True)
class Rating:
    """How one event is counted: the aggregate it belongs to and the unit price it was rated at."""

    key: AggregateKey
    quantity: Decimal


def rate(
    organization_id: uuid.UUID,
    account_id: uuid.UUID,
    product: Product,
    occurred_at: datetime,
    quantity: Decimal,
    direction: str | None,
    resolution: str | None,
    plan_id: str = "",
) -> Rating:
    """The rating of an event: its aggregate, at the catalog's price in force at ``occurred_at`` (0 if none; a plan
    or negotiated price may price it when read, see ``aggregates.charges``), under the plan the account was on then
    (``plan_id``, "" for none)."""
    price = product.price_at(occurred_at)
    key = AggregateKey(
        organization_id=organization_id,
        account_id=account_id,
        product_id=product.product_id,
        month=month_of(occurred_at),
        type=product.type,
        direction=direction or "",
        resolution=resolution or "",
        unit=product.unit,
        currency=product.currency,
        wallet_name=product.wallet_name or "",
        price=Decimal(0) if price is None else price,
        plan_id=plan_id,
    )
    return Rating(key=key, quantity=quantity)


def month_charges(
    conn: Connection, organization_id: uuid.UUID, month: str, account_id: uuid.UUID | None = None
) -> list[UsageCharge]:
    """What the usage of ``month`` costs, per account, product and price (what a billing run invoices); only
    ``account_id``'s if given (the upcoming invoice)."""
    if account_id is None:
        usage = repository.month_aggregates(conn, organization_id, month)
        book = charges.price_book_for(conn, organization_id, usage, whole_organization=True)
    else:
        usage = repository.months_of_accounts(conn, organization_id, [(account_id, month)])
        book = charges.price_book_for(conn, organization_id, usage)
    return charges.charges(book, usage, with_rows=False)


@dataclass(frozen=True)
class MonthTotals:
    """One account's usage in one month, as stored now: units per product, and (if asked) spend per currency."""

    #: Every direction, resolution, price and plan added up, exactly.
    units: dict[str, Decimal]
    #: The month's usage charges by currency, exact and unrounded: what a billing run would invoice for usage.
    spend: dict[str, Decimal]


def month_totals(
    conn: Connection, organization_id: uuid.UUID, account_months: Iterable[tuple[uuid.UUID, str]], *, priced: bool
) -> dict[tuple[uuid.UUID, str], MonthTotals]:
    """The totals of these (account, month) pairs, read in a few statements whatever their number (alerts read them
    after a batch's writes). ``priced``: also price them, by the one pricing of a month's usage (``charges``)."""
    pairs = set(account_months)
    rows = repository.months_of(conn, organization_id, pairs) if pairs else []
    found = {pair: MonthTotals(units={}, spend={}) for pair in pairs}
    with localcontext(prec=80):
        for row in rows:
            units = found[(row.account_id, row.month)].units
            units[row.product_id] = units.get(row.product_id, Decimal(0)) + row.number_of_units
        if priced and rows:
            book = charges.price_book_for(conn, organization_id, rows)
            for charge in charges.charges(book, rows, with_rows=False):
                spend = found[(charge.account_id, charge.month)].spend
                spend[charge.currency] = spend.get(charge.currency, Decimal(0)) + charge.amount
    return found


def add(conn: Connection, ratings: Sequence[Rating]) -> None:
    """Add rated events to their aggregates: grouped per aggregate first, then one bulk upsert."""
    # Keyed by the key's id (a string whose hash is cached), not the key itself (a hash of eleven fields).
    keys: dict[str, AggregateKey] = {}
    quantities: dict[str, list[Decimal]] = defaultdict(list)
    for rating in ratings:
        key_id = rating.key.id
        keys.setdefault(key_id, rating.key)
        quantities[key_id].append(rating.quantity)
    rows = []
    stored = repository.stored_units(conn, sorted(quantities))
    # A fixed order, so that concurrent requests lock aggregates in the same order (no deadlock on PostgreSQL).
    for key_id in sorted(quantities):
        key, events = keys[key_id], len(quantities[key_id])
        # Exact however many quantities of up to 27 digits a batch sums (the default context keeps 28).
        with localcontext(prec=60):
            units = sum(quantities[key_id], Decimal(0))
            total = units + Aggregate.units_of(*stored.get(key_id, (0, 0)))
        if total > MAX_UNITS:
            raise Conflict(
                f"The usage of product {key.product_id!r} by account {key.account_id} in {key.month} would "
                f"exceed {MAX_UNITS} units, the most an aggregate holds; nothing was applied."
            )
        rows.append(repository.increment(key, units, events))
    repository.add_increments(conn, rows)


def rerate_account(conn: Connection, organization_id: uuid.UUID, account_id: uuid.UUID, since: datetime) -> int:
    """After the account's plans changed from ``since`` on, move each of its events since then to the aggregate of
    the plan it was on when the event occurred; the units follow. How many events moved.

    Everything else of an event's rating (product, month, catalog price, direction, resolution) is unchanged, so
    the new key is the old one with another plan. Called in the transaction that changes the subscription."""
    events = repository.rated_events_since(conn, account_id, since)
    if not events:
        return 0
    subscribed = plans.subscriptions_by_account(conn, [account_id]).get(account_id, [])
    stored = repository.aggregates_by_id(conn, sorted({row.aggregate_id for row in events}))
    moves: list[tuple[str, str]] = []
    leaving: dict[str, list[Decimal]] = defaultdict(list)
    arriving: list[Rating] = []
    for event in events:
        plan_id = plan_id_at(subscribed, event.occurred_at)
        old = stored[event.aggregate_id]
        if old.plan_id == plan_id:
            continue
        key = AggregateKey(
            organization_id=organization_id,
            account_id=account_id,
            product_id=old.product_id,
            month=old.month,
            type=old.type,
            direction=old.direction,
            resolution=old.resolution,
            unit=old.unit,
            currency=old.currency,
            wallet_name=old.wallet_name,
            price=old.price,
            plan_id=plan_id,
        )
        quantity = Decimal(event.quantity)
        leaving[old.id].append(quantity)
        arriving.append(Rating(key=key, quantity=quantity))
        moves.append((event.id, key.id))
    # A fixed order of rows, as ingestion locks them (no deadlock on PostgreSQL).
    for aggregate_id in sorted(leaving):
        old = stored[aggregate_id]
        with localcontext(prec=60):
            left = Aggregate.units_of(old.units_whole, old.units_nanos) - sum(leaving[aggregate_id], Decimal(0))
        whole, nanos = split_units(left)
        repository.set_units(conn, aggregate_id, whole, nanos, int(old.event_count) - len(leaving[aggregate_id]))
    add(conn, arriving)
    repository.move_events(conn, account_id, moves)
    return len(moves)


def account_usage(
    conn: Connection, principal: Principal, account_id: uuid.UUID, first: str | None, last: str | None
) -> list[Aggregate]:
    """The account's aggregates for the months ``first`` to ``last`` (``YYYY-MM``, both included), oldest first."""
    if first is not None and last is not None and first > last:
        # An empty answer would read as "no usage": say that the range is backwards instead.
        raise ValidationFailed.field(
            "query.from", f"{first} is after to={last}; give from <= to, e.g. from={last}&to={first}", "range"
        )
    account = resolve_account(conn, principal, account_id)
    found = repository.account_aggregates(conn, account.organization_id, account.id, first, last)
    # Whole months of one account: every row a tiered price counts is here.
    return charges.priced(charges.price_book_for(conn, account.organization_id, found), found)


def units_in_month(
    conn: Connection,
    organization_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID],
    month: str,
    product_ids: Sequence[str],
) -> dict[str, Decimal]:
    """The units of each product among ``product_ids`` used in ``month`` by ``account_ids`` (already checked to be
    within reach), exactly: every direction, resolution and price added up; a product without usage is left out."""
    if not account_ids or not product_ids:
        return {}
    totals: dict[str, Decimal] = {}
    with localcontext(prec=80):
        for aggregate in repository.accounts_month_aggregates(conn, organization_id, account_ids, month, product_ids):
            totals[aggregate.product_id] = totals.get(aggregate.product_id, Decimal(0)) + aggregate.number_of_units
    return totals


@dataclass(frozen=True)
class Verification:
    checked: int
    differences: list[str]
    #: Usage charges (an account's units of a product in a month under one price) priced again from raw events.
    charges_checked: int = 0


def _plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


#: How many raw events verify reads between two reports to its ``progress`` callback.
VERIFY_PROGRESS_STEP = 10_000


def verify(conn: Connection, progress: Callable[[int, int], None] | None = None) -> Verification:
    """Recompute every aggregate from the raw events, and every amount from the recomputed units, and report each
    one that differs: an aggregate's units or events, an event rated under another plan than the one its account
    was on when it occurred, a usage charge (tiered or not) whose price from raw events differs from the stored.

    ``progress``, if given, is called with (events read so far, events the aggregates count) as it goes.
    """
    recomputed: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
    expected = repository.stored_event_count(conn) if progress else 0
    subscribed = plans.every_subscription(conn)
    #: (account, occurred at) of an event of each aggregate, to check the plan it was rated under.
    plan_of: dict[str, str] = {}
    misplaced: list[str] = []
    read = 0
    for row in repository.recompute_rows(conn):
        units, events = recomputed[row.aggregate_id]
        recomputed[row.aggregate_id] = (units + Decimal(row.quantity), events + 1)
        plan_id = plan_id_at(subscribed.get(row.account_id, ()), row.occurred_at)
        if plan_of.setdefault(row.aggregate_id, plan_id) != plan_id and len(misplaced) < 100:
            misplaced.append(row.aggregate_id)
        read += 1
        if progress and read % VERIFY_PROGRESS_STEP == 0:
            progress(read, expected)
    if progress:
        progress(read, expected)
    differences = []
    differing: set[str] = set()
    checked = 0
    stored_by_organization: dict[uuid.UUID, list[Aggregate]] = defaultdict(list)
    raw_by_organization: dict[uuid.UUID, list[Aggregate]] = defaultdict(list)
    for row in repository.stored_rows(conn):
        checked += 1
        stored_units = Aggregate.units_of(row.units_whole, row.units_nanos)
        units, events = recomputed.pop(row.id, (Decimal(0), 0))
        if units != stored_units or events != row.event_count:
            differing.add(row.id)
            differences.append(
                f"aggregate {row.id} (account {row.account_id}, {row.product_id}, {row.month}): "
                f"stored {_plain(stored_units)} units from {row.event_count} events, "
                f"recomputed {_plain(units)} from {events}"
            )
        if row.id in plan_of and plan_of[row.id] != row.plan_id:
            differences.append(
                f"aggregate {row.id} (account {row.account_id}, {row.product_id}, {row.month}) is rated under plan "
                f"{row.plan_id or 'none'}, but its account was on plan {plan_of[row.id] or 'none'} when its events "
                "occurred"
            )
        as_stored = repository.aggregate_of(row)
        stored_by_organization[row.organization_id].append(as_stored)
        raw_by_organization[row.organization_id].append(replace(as_stored, number_of_units=units))
    differences += [f"aggregate {found} holds events of more than one plan" for found in misplaced]
    for aggregate_id, (units, events) in recomputed.items():
        differences.append(f"aggregate {aggregate_id} is missing: {events} events with {_plain(units)} units name it")
    charges_checked = 0
    for organization_id, stored in stored_by_organization.items():
        book = charges.price_book_for(conn, organization_id, stored, whole_organization=True)
        raw = charges.charges(book, raw_by_organization[organization_id])
        for kept, fresh in zip(charges.charges(book, stored), raw, strict=True):
            charges_checked += 1
            # An aggregate already reported different makes its charge differ too: said once.
            if kept.amount != fresh.amount and not any(row.id in differing for row in kept.aggregates):
                differences.append(
                    f"usage of {kept.product_id} by account {kept.account_id} in {kept.month}: the stored units cost "
                    f"{_plain(kept.amount)} {kept.currency}, the raw events {_plain(fresh.amount)}"
                )
    return Verification(checked=checked, differences=differences, charges_checked=charges_checked)


#: The one answer to a search that names an account the key does not reach, whether it exists elsewhere or not.
NOT_AUTHORIZED_FOR_ACCOUNTS = "This caller is not authorized to query the given accounts."


def search(
    conn: Connection,
    principal: Principal,
    where: query.Expr | None,
    order_by: query.SortField,
    descending: bool,
    page: int,
    per_page: int,
) -> tuple[list[Aggregate], int]:
    """One page (counted from 1) of the aggregates the key reaches that match ``where``, and how many match in all.

    Ordered by ``order_by``, ties broken by the aggregate's id in the same direction. A ``where`` that
    names an account outside the key's reach is :class:`Forbidden`, with the same words whether the
    account exists in another organization or not at all.
    """
    if page < 1 or per_page < 1:
        raise InvalidInput("Pages are counted from 1 and hold at least one item.")
    organization_id, path_prefix = within(principal)
    if where is not None:
        named = query.account_ids(where)
        if named and len(resolve_accounts(conn, principal, named)) < len(named):
            raise Forbidden(NOT_AUTHORIZED_FOR_ACCOUNTS)
    statement = repository.search_query(organization_id, path_prefix, where)
    total = repository.count(conn, statement)
    offset = (page - 1) * per_page
    if offset >= total:
        return [], total
    found = repository.fetch(conn, repository.page_of(statement, order_by, descending, offset, per_page))
    return charges.priced_rows(conn, organization_id, found), total


# --- the console -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductMonths:
    """One product's usage by one account, month by month: a series of the console's usage chart."""

    product_id: str
    description: str
    unit: str
    currency: str
    #: One entry per month of :attr:`UsageByMonth.months`, zero where there was no usage.
    units: tuple[Decimal, ...]
    amounts: tuple[Decimal, ...]
    #: Over all the months.
    total_units: Decimal
    total_amount: Decimal


@dataclass(frozen=True)
class UsageByMonth:
    months: tuple[str, ...]
    #: By currency, then product id; a product appears once per unit and currency it was aggregated in.
    products: list[ProductMonths]


def usage_by_month(
    conn: Connection, principal: Principal, account_id: uuid.UUID, last: str, count: int = 12
) -> UsageByMonth:
    """The account's usage per product for the ``count`` months ending with ``last``: each month's aggregates of a
    product (every direction, resolution and price) added up exactly."""
    year, number = (int(part) for part in last.split("-"))
    end = year * 12 + number - 1
    months = tuple(f"{index // 12:04d}-{index % 12 + 1:02d}" for index in range(end - count + 1, end + 1))
    position = {month: place for place, month in enumerate(months)}
    units: dict[tuple[str, str, str], list[Decimal]] = {}
    amounts: dict[tuple[str, str, str], list[Decimal]] = {}
    descriptions: dict[tuple[str, str, str], str] = {}
    # Sums of exact totals: enough digits that adding them never rounds.
    with localcontext(prec=80):
        for aggregate in account_usage(conn, principal, account_id, months[0], months[-1]):
            key = (aggregate.currency, aggregate.product_id, aggregate.unit)
            place = position[aggregate.month]
            units.setdefault(key, [Decimal(0)] * count)[place] += aggregate.number_of_units
            amounts.setdefault(key, [Decimal(0)] * count)[place] += aggregate.total_amount
            descriptions[key] = aggregate.description
        products = [
            ProductMonths(
                product_id=product_id,
                description=descriptions[key],
                unit=unit,
                currency=currency,
                units=tuple(units[key]),
                amounts=tuple(amounts[key]),
                total_units=sum(units[key], Decimal(0)),
                total_amount=sum(amounts[key], Decimal(0)),
            )
            for key in sorted(units)
            for currency, product_id, unit in [key]
        ]
    return UsageByMonth(months=months, products=products)
