"""Every SQL statement of the invoicing domain: billing runs, invoices and lines, the billing history."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    FromClause,
    Subquery,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement, KeyedColumnElement

from meterbook.accounts.repository import reachable_ids
from meterbook.db.bulk import insert_rows
from meterbook.db.tables import (
    accounts,
    billing_history,
    billing_history_days,
    billing_history_slices,
    billing_runs,
    invoice_lines,
    invoices,
)
from meterbook.db.upsert import insert_for_dialect
from meterbook.invoicing.models import BillingRun, HistoryItem, Invoice, InvoiceLine
from meterbook.kit import jsontext
from meterbook.kit.fields import INT64_MAX
from meterbook.kit.time import as_utc
from meterbook.pricing import TierCharge

__all__ = [
    "HistoryOrder",
    "amounts_due",
    "count_history",
    "find_billing_run",
    "get_invoice",
    "history_page",
    "insert_billing_run",
    "insert_history",
    "insert_invoices",
    "invoiced_months",
    "invoices_with_lines",
    "last_invoice_number",
    "list_billing_runs",
    "list_invoices",
    "open_invoices",
    "record_amounts_paid",
    "too_large_to_store",
    "update_invoice",
    "verify_history_counts",
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


# Built once: every ingestion asks it, and building a statement costs more than running this one.
_INVOICED_MONTHS = select(billing_runs.c.month).where(
    billing_runs.c.organization_id == bindparam("organization_id"),
    billing_runs.c.month.in_(bindparam("months", expanding=True)),
)


def invoiced_months(conn: Connection, organization_id: uuid.UUID, months: Iterable[str]) -> set[str]:
    wanted = sorted(set(months))
    if not wanted:
        return set()
    return set(conn.execute(_INVOICED_MONTHS, {"organization_id": organization_id, "months": wanted}).scalars())


# --- invoices --------------------------------------------------------------------------------------


def last_invoice_number(conn: Connection, organization_id: uuid.UUID) -> int:
    statement = select(func.max(invoices.c.number)).where(invoices.c.organization_id == organization_id)
    return int(conn.execute(statement).scalar_one() or 0)


#: Ids per statement when many rows are read by id: a bound list stays within every driver's limits.
_IDS_PER_QUERY = 500


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


_INVOICE_COLUMNS = (
    "id",
    "organization_id",
    "account_id",
    "number",
    "currency",
    "month",
    "status",
    "amount",
    "amount_paid",
    "issued_at",
    "effective_date",
    "due_date",
    "paid_at",
    "voided_at",
)
_LINE_COLUMNS = (
    "invoice_id",
    "line",
    "kind",
    "product_id",
    "description",
    "quantity",
    "unit_price",
    "unrounded_amount",
    "amount",
    "tiers",
)


def insert_invoices(conn: Connection, new_invoices: Sequence[Invoice]) -> None:
    """The invoices and all their lines, in two bulk statements (a billing run writes tens of thousands of rows)."""
    if not new_invoices:
        return
    insert_rows(
        conn,
        invoices,
        _INVOICE_COLUMNS,
        [
            (
                invoice.id,
                invoice.organization_id,
                invoice.account_id,
                invoice.number,
                invoice.currency,
                invoice.month,
                invoice.status,
                invoice.amount,
                invoice.amount_paid,
                invoice.issued_at,
                invoice.effective_date,
                invoice.due_date,
                invoice.paid_at,
                invoice.voided_at,
            )
            for invoice in new_invoices
        ],
    )
    insert_rows(
        conn,
        invoice_lines,
        _LINE_COLUMNS,
        [
            (
                invoice.id,
                line.line,
                line.kind,
                line.product_id,
                line.description,
                line.quantity,
                line.unit_price,
                format(line.unrounded_amount, "f"),
                line.amount,
                _dump_tiers(line.tiers),
            )
            for invoice in new_invoices
            for line in invoice.lines
        ],
    )


def _dump_tiers(tiers: Sequence[TierCharge]) -> str | None:
    """A line's tier breakdown as JSON text, every number its exact decimal text; None for a line without tiers.

    Written out directly: a billing run stores one per tiered line, and a JSON encoder's per-value hooks cost more
    than the run's pricing."""
    if not tiers:
        return None

    def number(value: Decimal | None) -> str:
        return "null" if value is None else format(value, "f")

    return (
        "["
        + ",".join(
            f'{{"from":{number(tier.from_)},"up_to":{number(tier.up_to)},"units":{number(tier.units)},'
            f'"unit_price":{number(tier.unit_price)},"flat_fee":{number(tier.flat_fee)},"amount":{number(tier.amount)}}}'
            for tier in tiers
        )
        + "]"
    )


def _load_tiers(text: str | None) -> tuple[TierCharge, ...]:
    if not text:
        return ()

    def number(value: Any) -> Decimal:
        return Decimal(str(value))

    return tuple(
        TierCharge(
            from_=number(tier["from"]),
            up_to=None if tier["up_to"] is None else number(tier["up_to"]),
            units=number(tier["units"]),
            unit_price=number(tier["unit_price"]),
            flat_fee=number(tier["flat_fee"]),
            amount=number(tier["amount"]),
        )
        for tier in jsontext.loads(text)
    )


def _invoice(row: Any, lines: Sequence[InvoiceLine] = ()) -> Invoice:
    return Invoice(**{column.name: row._mapping[column.name] for column in invoices.columns}, lines=tuple(lines))


def _line(row: Any) -> InvoiceLine:
    return InvoiceLine(
        line=row.line,
        kind=row.kind,
        product_id=row.product_id,
        description=row.description,
        quantity=row.quantity,
        unit_price=row.unit_price,
        unrounded_amount=Decimal(row.unrounded_amount),
        amount=row.amount,
        tiers=_load_tiers(row.tiers),
    )


def _lines(conn: Connection, invoice_id: uuid.UUID) -> list[InvoiceLine]:
    statement = select(invoice_lines).where(invoice_lines.c.invoice_id == invoice_id).order_by(invoice_lines.c.line)
    return [_line(row) for row in conn.execute(statement)]


def invoices_with_lines(
    conn: Connection, organization_id: uuid.UUID, invoice_ids: Sequence[uuid.UUID]
) -> list[Invoice]:
    """These invoices of the organization with their lines, in the order given: two statements per 500 ids."""
    found: dict[uuid.UUID, Invoice] = {}
    for start in range(0, len(invoice_ids), _IDS_PER_QUERY):
        chunk = list(invoice_ids[start : start + _IDS_PER_QUERY])
        lines: dict[uuid.UUID, list[InvoiceLine]] = {}
        statement = (
            select(invoice_lines)
            .where(invoice_lines.c.invoice_id.in_(chunk))
            .order_by(invoice_lines.c.invoice_id, invoice_lines.c.line)
        )
        for row in conn.execute(statement):
            lines.setdefault(row.invoice_id, []).append(_line(row))
        statement = select(invoices).where(invoices.c.id.in_(chunk), invoices.c.organization_id == organization_id)
        found.update((row.id, _invoice(row, lines.get(row.id, ()))) for row in conn.execute(statement))
    return [found[invoice_id] for invoice_id in invoice_ids if invoice_id in found]


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


def open_invoices(
    conn: Connection, owners: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], list[Invoice]]:
    """The open invoices of each (account, currency), oldest first (locked on PostgreSQL)."""
    found: dict[tuple[uuid.UUID, str], list[Invoice]] = {}
    wanted = set(owners)
    for start in range(0, len(owners), _IDS_PER_QUERY):
        chunk = owners[start : start + _IDS_PER_QUERY]
        statement = (
            select(invoices)
            .where(invoices.c.account_id.in_({account_id for account_id, _ in chunk}), invoices.c.status == "open")
            .order_by(invoices.c.account_id, invoices.c.number)
            .with_for_update()
        )
        for row in conn.execute(statement):
            owner = (row.account_id, row.currency)
            if owner in wanted:
                found.setdefault(owner, []).append(_invoice(row))
    return found


def update_invoice(conn: Connection, invoice_id: uuid.UUID, **values: Any) -> None:
    conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(**values))


@cache
def _payment_update() -> Any:
    return (
        update(invoices)
        .where(invoices.c.id == bindparam("invoice_id"))
        .values(amount_paid=bindparam("amount_paid"), status=bindparam("status"), paid_at=bindparam("paid_at"))
    )


def record_amounts_paid(conn: Connection, changes: Sequence[tuple[uuid.UUID, Decimal, str, datetime | None]]) -> None:
    """Set (invoice, amount paid, status, paid at) of each invoice, in one statement."""
    if changes:
        conn.execute(
            _payment_update(),
            [
                {"invoice_id": invoice_id, "amount_paid": paid, "status": status, "paid_at": paid_at}
                for invoice_id, paid, status, paid_at in changes
            ],
        )


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
#
# An organization's history is read through two tables of counts that insert_history keeps in step with
# the items: ``billing_history_days`` (per UTC day, type and action) and ``billing_history_slices`` (per
# instant, type, action and first hex digit of the id). Its counts are sums of a few rows per day; a page
# far from the start is found by adding up days, then the slices of the day it falls in, and only the
# items of one slice are skipped one by one (a slice of a billing run holds a sixteenth of the run's items
# at one instant, which are ordered by id). An account key's history (its account and subaccounts) is
# small, and read from its items directly.

_DAY = timedelta(days=1)
#: Up to this many items before a page are skipped in the index at once: cheaper than finding the page's slice.
_SKIPPED_IN_INDEX = 1000
#: Shards in the order of the ids they begin: items of one instant come in this order.
_SHARDS = "0123456789abcdef"


def _group(table: FromClause, order: HistoryOrder | None) -> KeyedColumnElement[Any] | None:
    """The column an order groups the history by before time (``type`` or ``action``), if any."""
    return table.c[order] if order == "type" or order == "action" else None


def _day(moment: datetime) -> datetime:
    """Midnight UTC of the day ``moment`` falls on."""
    moment = as_utc(moment)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


@cache
def _count_upsert(dialect_name: str, table: Table, keys: tuple[str, ...]) -> Any:
    # Built once: every payment and billing run adds to the counts.
    statement = insert_for_dialect(dialect_name, table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={"item_count": table.c.item_count + statement.excluded.item_count}
    )


def _add_counts(conn: Connection, table: Table, keys: list[str], counts: Counter[tuple[Any, ...]]) -> None:
    statement = _count_upsert(conn.dialect.name, table, tuple(keys))
    # In key order: concurrent writers of one organization lock its count rows in one order (no deadlock).
    conn.execute(
        statement,
        [{**dict(zip(keys, key, strict=True)), "item_count": count} for key, count in sorted(counts.items())],
    )


_HISTORY_COLUMNS = (
    "id",
    "organization_id",
    "account_id",
    "type",
    "action",
    "description",
    "occurred_at",
    "amount",
    "currency",
    "invoice_id",
    "payment_id",
)


def insert_history(
    conn: Connection, organization_id: uuid.UUID, items: Sequence[tuple[HistoryItem, uuid.UUID | None, str | None]]
) -> None:
    """Items with the invoice or payment each one records, and the organization's counts of them."""
    if not items:
        return
    insert_rows(
        conn,
        billing_history,
        _HISTORY_COLUMNS,
        [
            (
                item.id,
                organization_id,
                item.account_id,
                item.type,
                item.action,
                item.description,
                item.occurred_at,
                item.amount,
                item.currency,
                invoice_id,
                payment_id,
            )
            for item, invoice_id, payment_id in items
        ],
    )
    _add_counts(
        conn,
        billing_history_days,
        ["organization_id", "day", "type", "action"],
        Counter((organization_id, _day(item.occurred_at), item.type, item.action) for item, _, _ in items),
    )
    _add_counts(
        conn,
        billing_history_slices,
        ["organization_id", "occurred_at", "type", "action", "shard"],
        Counter(
            (organization_id, as_utc(item.occurred_at), item.type, item.action, item.id[0]) for item, _, _ in items
        ),
    )


def _history_filters(type_: str | None, action: str | None, since: datetime | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if type_ is not None:
        conditions.append(billing_history.c.type == type_)
    if action is not None:
        conditions.append(billing_history.c.action == action)
    if since is not None:
        conditions.append(billing_history.c.occurred_at >= since)
    return conditions


#: Up to this many accounts, an account key's reach is given to the history's queries as a list of ids.
_LISTED_ACCOUNTS = 500


def _within(conn: Connection, organization_id: uuid.UUID, path_prefix: str | None) -> list[ColumnElement[bool]]:
    """The items of the organization, or of the accounts an account key's path prefix reaches in it."""
    if path_prefix is None:
        return [billing_history.c.organization_id == organization_id]
    # The reachable accounts are all in the organization, so the items are found by account alone: that
    # way neither planner can walk the organization's items in time order (checking each one's account)
    # instead of reading the few accounts' own items by (account, occurred_at, id). A list of ids, not a
    # subquery, so that a single account's items come out of that index already in order.
    reachable = reachable_ids(organization_id, path_prefix)
    listed = list(conn.execute(reachable.limit(_LISTED_ACCOUNTS + 1)).scalars())
    return [billing_history.c.account_id.in_(listed if len(listed) <= _LISTED_ACCOUNTS else reachable)]


def _count_filters(
    table: Table, organization_id: uuid.UUID, type_: str | None, action: str | None
) -> list[ColumnElement[bool]]:
    conditions = [table.c.organization_id == organization_id]
    if type_ is not None:
        conditions.append(table.c.type == type_)
    if action is not None:
        conditions.append(table.c.action == action)
    return conditions


def _buckets(
    organization_id: uuid.UUID,
    type_: str | None,
    action: str | None,
    since: datetime | None,
    group: HistoryOrder | None,
) -> Subquery:
    """The organization's matching items per UTC day (and per ``type`` or ``action`` when ``group`` names one).

    Columns [group,] ``day``, ``n``. The day of ``since`` counts only its slices at or after ``since``.
    """
    days, slices = billing_history_days, billing_history_slices
    key = _group(days, group)
    stored = select(*([key] if key is not None else []), days.c.day, days.c.item_count.label("n")).where(
        *_count_filters(days, organization_id, type_, action)
    )
    if since is None:
        counted = stored.subquery()
    else:
        day = _day(since)
        slice_key = _group(slices, group)
        first_day = select(
            *([slice_key] if slice_key is not None else []),
            literal(day, days.c.day.type).label("day"),
            slices.c.item_count.label("n"),
        ).where(
            *_count_filters(slices, organization_id, type_, action),
            slices.c.occurred_at >= since,
            slices.c.occurred_at < day + _DAY,
        )
        counted = union_all(stored.where(days.c.day > day), first_day).subquery()
    keys = [counted.c[key.key]] if key is not None else []
    return select(*keys, counted.c.day, func.sum(counted.c.n).label("n")).group_by(*keys, counted.c.day).subquery()


def count_history(
    conn: Connection,
    organization_id: uuid.UUID,
    path_prefix: str | None,
    *,
    type_: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> int:
    if path_prefix is not None:
        statement = (
            select(func.count())
            .select_from(billing_history)
            .where(*_within(conn, organization_id, path_prefix), *_history_filters(type_, action, since))
        )
        return int(conn.execute(statement).scalar_one())
    if since is None:
        total = select(func.sum(billing_history_days.c.item_count)).where(
            *_count_filters(billing_history_days, organization_id, type_, action)
        )
        return int(conn.execute(total).scalar_one() or 0)
    buckets = _buckets(organization_id, type_, action, since, None)
    return int(conn.execute(select(func.sum(buckets.c.n))).scalar_one() or 0)


@dataclass(frozen=True)
class _Slice:
    """The slice of an organization's history that holds a page's first item, and how many items precede it."""

    group: str | None
    occurred_at: datetime
    shard: str
    before: int
    items: int


def _locate(
    conn: Connection,
    organization_id: uuid.UUID,
    type_: str | None,
    action: str | None,
    since: datetime | None,
    order: HistoryOrder | None,
    offset: int,
) -> _Slice | None:
    """The slice holding the item at ``offset`` in the page order, or None past the end.

    First the day: the database adds the days up and hands back the one where the sum passes ``offset``;
    then that day's slices, a few dozen at most, are added up here.
    """
    descending = order is None
    buckets = _buckets(organization_id, type_, action, since, order)
    key = _group(buckets, order)
    columns = [*([key] if key is not None else []), buckets.c.day]
    running = select(
        *buckets.c,
        func.sum(buckets.c.n)
        .over(order_by=[column.desc() if descending else column for column in columns])
        .label("upto"),
    ).subquery()
    ordered = [running.c[column.key] for column in columns]
    found = conn.execute(
        select(running)
        .where(running.c.upto > offset)
        .order_by(*(column.desc() if descending else column for column in ordered))
        .limit(1)
    ).first()
    if found is None:
        return None
    group = found._mapping[key.key] if key is not None else None
    day = as_utc(found.day)
    before = int(found.upto) - int(found.n)
    slices = billing_history_slices
    slice_key = _group(slices, order)
    conditions = [
        *_count_filters(slices, organization_id, type_, action),
        slices.c.occurred_at >= (day if since is None else max(day, since)),
        slices.c.occurred_at < day + _DAY,
    ]
    if slice_key is not None:
        conditions.append(slice_key == group)
    statement = (
        select(slices.c.occurred_at, slices.c.shard, func.sum(slices.c.item_count))
        .where(*conditions)
        .group_by(slices.c.occurred_at, slices.c.shard)
        .order_by(*(column.desc() if descending else column for column in (slices.c.occurred_at, slices.c.shard)))
    )
    for occurred_at, shard, items in conn.execute(statement):
        if before + int(items) > offset:
            return _Slice(group, as_utc(occurred_at), shard, before, int(items))
        before += int(items)
    raise AssertionError(f"the history's day and slice counts of {day:%Y-%m-%d} disagree; run meterbook verify")


def _orderings(order: HistoryOrder | None) -> tuple[list[ColumnElement[Any]], list[ColumnElement[Any]]]:
    """The page order (ascending by ``order``, then time, then id; newest first without it), and its reverse."""
    columns = [billing_history.c.occurred_at, billing_history.c.id]
    if order == "type" or order == "action":
        columns.insert(0, billing_history.c[order])
    if order is None:
        return [column.desc() for column in columns], [column.asc() for column in columns]
    return [column.asc() for column in columns], [column.desc() for column in columns]


def _slice_bounds(order: HistoryOrder | None, found: _Slice) -> tuple[list[ColumnElement[bool]], ColumnElement[bool]]:
    """The items of the slice, and the items from the slice's start on, in the page order."""
    occurred_at, item_id = billing_history.c.occurred_at, billing_history.c.id
    after = _SHARDS[_SHARDS.index(found.shard) + 1 :]
    inside = [occurred_at == found.occurred_at, item_id >= found.shard]
    if after:
        inside.append(item_id < after[0])
    moment = literal(found.occurred_at, occurred_at.type)
    if order is None:
        # Newest first: from the slice's last item (by id) downwards.
        start = tuple_(occurred_at, item_id) < tuple_(moment, literal(after[0])) if after else occurred_at <= moment
        return inside, start
    if order == "occurred_at":
        return inside, tuple_(occurred_at, item_id) >= tuple_(moment, literal(found.shard))
    column = billing_history.c[order]
    inside.append(column == found.group)
    return inside, (
        tuple_(column, occurred_at, item_id) >= tuple_(literal(found.group, column.type), moment, literal(found.shard))
    )


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
    ordering, reverse = _orderings(order)
    conditions = [*_within(conn, organization_id, path_prefix), *_history_filters(type_, action, since)]
    ids = select(billing_history.c.id)
    page = ids.where(*conditions).order_by(*ordering).offset(offset).limit(limit)
    if path_prefix is None and offset >= _SKIPPED_IN_INDEX:
        found = _locate(conn, organization_id, type_, action, since, order, offset)
        if found is None:
            return []
        skip = offset - found.before
        inside, start = _slice_bounds(order, found)
        left = found.items - skip - limit
        if 0 <= left < skip:
            # The page ends inside the slice, nearer its end than its start: counted back from the end.
            page = ids.where(*conditions, *inside).order_by(*reverse).offset(left).limit(limit)
        else:
            page = ids.where(*conditions, start).order_by(*ordering).offset(skip).limit(limit)
    # The page's ids come from an index alone; only the page's own rows (and their accounts' names) are read.
    statement = (
        select(billing_history, accounts.c.name.label("account_name"))
        .select_from(billing_history.join(accounts, accounts.c.id == billing_history.c.account_id))
        .where(billing_history.c.id.in_(page))
        .order_by(*ordering)
    )
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
        for row in conn.execute(statement)
    ]


def verify_history_counts(conn: Connection) -> list[str]:
    """Every stored count of the history (per day, or per slice) that is not the number of items it counts."""
    slices = billing_history_slices
    shard = func.substr(billing_history.c.id, 1, 1)
    grouped = [
        billing_history.c.organization_id,
        billing_history.c.occurred_at,
        billing_history.c.type,
        billing_history.c.action,
        shard,
    ]
    by_slice: Counter[tuple[Any, ...]] = Counter()
    by_day: Counter[tuple[Any, ...]] = Counter()
    for row in conn.execute(select(*grouped, func.count()).group_by(*grouped)):
        organization_id, occurred_at, type_, action, first, items = tuple(row)
        by_slice[(organization_id, as_utc(occurred_at), type_, action, first)] += int(items)
        by_day[(organization_id, _day(occurred_at), type_, action)] += int(items)
    stored_days = {
        (row.organization_id, row.day, row.type, row.action): int(row.item_count)
        for row in conn.execute(select(billing_history_days))
    }
    stored_slices = {
        (row.organization_id, row.occurred_at, row.type, row.action, row.shard): int(row.item_count)
        for row in conn.execute(select(slices))
    }
    differences = [
        f"billing history of organization {key[0]} on {key[1]:%Y-%m-%d} ({key[2]}, {key[3]}): "
        f"{by_day.get(key, 0)} items, counted as {stored_days.get(key, 0)}"
        for key in sorted(set(by_day) | set(stored_days), key=str)
        if by_day.get(key, 0) != stored_days.get(key, 0)
    ]
    differences += [
        f"billing history of organization {key[0]} at {key[1].isoformat()} ({key[2]}, {key[3]}, ids {key[4]}…): "
        f"{by_slice.get(key, 0)} items, counted as {stored_slices.get(key, 0)}"
        for key in sorted(set(by_slice) | set(stored_slices), key=str)
        if by_slice.get(key, 0) != stored_slices.get(key, 0)
    ]
    return differences


def list_billing_runs(conn: Connection, organization_id: uuid.UUID) -> list[BillingRun]:
    """The organization's billing runs, newest month first."""
    statement = (
        select(billing_runs)
        .where(billing_runs.c.organization_id == organization_id)
        .order_by(billing_runs.c.month.desc())
    )
    return [
        BillingRun(month=row.month, invoice_count=row.invoice_count, created_at=row.created_at, created=False)
        for row in conn.execute(statement)
    ]


def amounts_due(
    conn: Connection, organization_id: uuid.UUID, path_prefix: str | None
) -> dict[uuid.UUID, dict[str, Decimal]]:
    """What each reachable account still owes on its open invoices, per currency, in one grouped query."""
    statement = (
        select(
            invoices.c.account_id,
            invoices.c.currency,
            func.sum(invoices.c.amount).label("amount"),
            func.sum(invoices.c.amount_paid).label("paid"),
        )
        .where(invoices.c.organization_id == organization_id, invoices.c.status == "open")
        .group_by(invoices.c.account_id, invoices.c.currency)
    )
    if path_prefix is not None:
        statement = statement.where(invoices.c.account_id.in_(reachable_ids(organization_id, path_prefix)))
    due: dict[uuid.UUID, dict[str, Decimal]] = {}
    for row in conn.execute(statement):
        due.setdefault(row.account_id, {})[row.currency] = row.amount - row.paid
    return due
