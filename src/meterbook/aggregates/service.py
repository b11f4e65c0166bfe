"""Rating and rolling up: each event that names a product is priced at the price in force when it
occurred and added to its monthly aggregate, in the same transaction as the event itself."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from sqlalchemy import Connection

from meterbook.accounts.models import Principal
from meterbook.accounts.reach import resolve_account, resolve_accounts, within
from meterbook.aggregates import query, repository
from meterbook.aggregates.models import Aggregate, AggregateKey, month_of, split_units
from meterbook.catalog.models import Product
from meterbook.errors import Conflict, Forbidden, InvalidInput

__all__ = [
    "MAX_UNITS",
    "NOT_AUTHORIZED_FOR_ACCOUNTS",
    "Rating",
    "Verification",
    "account_usage",
    "add",
    "month_usage",
    "rate",
    "search",
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
) -> Rating | None:
    """The rating of an event, or ``None`` when the product has no price in force at ``occurred_at``."""
    price = product.price_at(occurred_at)
    if price is None:
        return None
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
        price=price,
    )
    return Rating(key=key, quantity=quantity)


def month_usage(conn: Connection, organization_id: uuid.UUID, month: str) -> list[Aggregate]:
    """Every aggregate of the organization in ``month`` (what a billing run invoices)."""
    return repository.month_aggregates(conn, organization_id, month)


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
        whole, nanos = split_units(units)
        rows.append(
            {
                "id": key.id,
                "organization_id": key.organization_id,
                "account_id": key.account_id,
                "product_id": key.product_id,
                "month": key.month,
                "type": key.type,
                "direction": key.direction,
                "resolution": key.resolution,
                "unit": key.unit,
                "currency": key.currency,
                "wallet_name": key.wallet_name,
                "price": key.price,
                "units_whole": whole,
                "units_nanos": nanos,
                "event_count": events,
            }
        )
    repository.add_increments(conn, rows)


def account_usage(
    conn: Connection, principal: Principal, account_id: uuid.UUID, first: str | None, last: str | None
) -> list[Aggregate]:
    """The account's aggregates for the months ``first`` to ``last`` (``YYYY-MM``, both included), oldest first."""
    account = resolve_account(conn, principal, account_id)
    return repository.account_aggregates(conn, account.organization_id, account.id, first, last)


@dataclass(frozen=True)
class Verification:
    checked: int
    differences: list[str]


def _plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def verify(conn: Connection) -> Verification:
    """Recompute every aggregate from the raw events and report each one that differs."""
    recomputed: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
    for row in repository.recompute_rows(conn):
        units, events = recomputed[row.aggregate_id]
        recomputed[row.aggregate_id] = (units + Decimal(row.quantity), events + 1)
    differences = []
    checked = 0
    for row in repository.stored_rows(conn):
        checked += 1
        stored_units = Aggregate.units_of(row.units_whole, row.units_nanos)
        units, events = recomputed.pop(row.id, (Decimal(0), 0))
        if units != stored_units or events != row.event_count:
            differences.append(
                f"aggregate {row.id} (account {row.account_id}, {row.product_id}, {row.month}): "
                f"stored {_plain(stored_units)} units from {row.event_count} events, "
                f"recomputed {_plain(units)} from {events}"
            )
    for aggregate_id, (units, events) in recomputed.items():
        differences.append(f"aggregate {aggregate_id} is missing: {events} events with {_plain(units)} units name it")
    return Verification(checked=checked, differences=differences)


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
    return repository.fetch(conn, repository.page_of(statement, order_by, descending, offset, per_page)), total
