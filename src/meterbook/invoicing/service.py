"""The rules of invoicing: billing runs, invoices, voids, how payments settle invoices, the billing history.

A billing run turns one ended UTC month into invoices, once: for every account with a commitment or
usage in that month, one invoice per currency, numbered in sequence per organization, each line
rounded half away from zero to the currency's minor unit and the invoice's amount the sum of its
lines. Once a month has a run, usage dated in it is refused (:func:`refuse_invoiced_months`).

Money received settles invoices by one rule (:func:`settle`): a payment goes to the invoice it names,
then to the account's oldest open invoices in its currency; what is left waits, unapplied, for the
next invoice. After every billing run, payment and void, an account never holds unapplied money in a
currency while one of its invoices in that currency is still open.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from sqlalchemy import Connection

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.access import authorize
from meterbook.accounts.models import Account, Principal
from meterbook.accounts.reach import require_organization, resolve_account, within
from meterbook.aggregates import service as aggregates
from meterbook.aggregates.charges import UsageCharge
from meterbook.db.cache import large_cache
from meterbook.db.locks import lock_organization_usage
from meterbook.errors import Conflict, FieldError, NotFound, ValidationFailed
from meterbook.invoicing import repository
from meterbook.invoicing.models import (
    BillingRun,
    HistoryItem,
    HistoryPage,
    Invoice,
    InvoiceLine,
    UpcomingInvoice,
    history_id,
)
from meterbook.invoicing.repository import HistoryOrder
from meterbook.invoicing.schemas import BillingRunOut, InvoiceOut
from meterbook.kit.ids import new_id
from meterbook.kit.money import round_to_minor_unit
from meterbook.kit.time import format_rfc3339, month_start, next_month, utcnow
from meterbook.payments import service as payments
from meterbook.payments.models import Payment
from meterbook.payments.schemas import PaymentIn, PaymentOut
from meterbook.plans import service as plans
from meterbook.plans.models import FeePart
from meterbook.webhooks import service as webhooks
from meterbook.webhooks.service import EventData

__all__ = [
    "SUBSCRIPTION_DESCRIPTION",
    "AccountTerms",
    "account_statement",
    "amounts_due",
    "bill",
    "draft_invoices",
    "get_invoice",
    "history",
    "is_overdue",
    "list_billing_runs",
    "list_invoices",
    "lock_usage",
    "pay",
    "refuse_invoiced_months",
    "run_billing",
    "settle",
    "upcoming_invoices",
    "verify",
    "void",
]

SUBSCRIPTION_DESCRIPTION = "Monthly commitment"
#: Enough significant digits to add up any month of exact line totals without rounding.
_EXACT_DIGITS = 80


# --- billing runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountTerms:
    """What of an account a billing run needs."""

    id: uuid.UUID
    currency: str
    monthly_cost: Decimal
    contract_started_at: datetime
    archived_at: datetime | None
    net_terms_days: int

    @classmethod
    def of(cls, account: Account) -> AccountTerms:
        return cls(
            id=account.id,
            currency=account.currency,
            monthly_cost=account.monthly_cost,
            contract_started_at=account.contract_started_at,
            archived_at=account.archived_at,
            net_terms_days=account.net_terms_days,
        )

    def commitment_in(self, month: str) -> bool:
        """Charged whole for a month by whose end the contract had started, unless archived before it began."""
        return (
            self.monthly_cost > 0
            and self.contract_started_at < month_start(next_month(month))
            and (self.archived_at is None or self.archived_at >= month_start(month))
        )


def _plain(value: Decimal) -> Decimal:
    """The same number without trailing zeros, never in exponent form: ``0.010`` is ``0.01``, ``1E+1`` is ``10``."""
    with localcontext(prec=_EXACT_DIGITS):
        normalized = value.normalize()
        return normalized.quantize(Decimal(1)) if normalized == normalized.to_integral_value() else normalized


def _usage_line(number: int, charge: UsageCharge) -> InvoiceLine:
    description = charge.description
    if charge.applied is not None and charge.applied.source == "plan":
        description = f"{description} ({charge.applied.plan_code} plan)"
    elif charge.applied is not None:
        description = f"{description} (negotiated price)"
    return InvoiceLine(
        line=number,
        kind="usage",
        product_id=charge.product_id,
        description=description[:255],
        quantity=charge.units,
        unit_price=charge.unit_price,
        unrounded_amount=charge.amount,
        amount=round_to_minor_unit(charge.amount, charge.currency),
        tiers=charge.tiers,
    )


def _fee_line(number: int, month: str, part: FeePart) -> InvoiceLine:
    whole = part.days == part.month_days
    share = "" if whole else f", {part.days} of {part.month_days} days"
    return InvoiceLine(
        line=number,
        kind="fee",
        product_id=None,
        description=f"{part.plan_name} plan ({part.plan_code}), {month}{share}"[:255],
        quantity=Decimal(1) if whole else Decimal(part.days),
        unit_price=part.fee if whole else None,
        # A part of a month is the difference of two roundings (plans.models.fee_parts): that is its exact amount.
        unrounded_amount=part.fee if whole else part.amount,
        amount=part.amount,
    )


def draft_invoices(
    organization_id: uuid.UUID,
    month: str,
    terms: Sequence[AccountTerms],
    usage: Sequence[UsageCharge],
    fees: Sequence[FeePart],
    first_number: int,
    issued_at: datetime,
) -> list[Invoice]:
    """The invoices of a month, numbered from ``first_number``: pure, so that its rules can be tested alone.

    ``terms`` lists accounts oldest first; invoices are numbered in that order, then by currency. Lines: the
    commitment, each plan fee (by days on the plan), then each product's usage under each price.
    """
    usage_by_owner: dict[tuple[uuid.UUID, str], list[UsageCharge]] = defaultdict(list)
    fees_by_owner: dict[tuple[uuid.UUID, str], list[FeePart]] = defaultdict(list)
    # Per account, so that finding an account's currencies does not scan every account's usage.
    currencies_by_account: dict[uuid.UUID, set[str]] = defaultdict(set)
    for charge in usage:
        usage_by_owner[(charge.account_id, charge.currency)].append(charge)
        currencies_by_account[charge.account_id].add(charge.currency)
    for part in fees:
        fees_by_owner[(part.account_id, part.currency)].append(part)
        currencies_by_account[part.account_id].add(part.currency)
    effective = month_start(next_month(month))
    drafts: list[Invoice] = []
    for account in terms:
        currencies = set(currencies_by_account.get(account.id, ()))
        committed = account.commitment_in(month)
        if committed:
            currencies.add(account.currency)
        for currency in sorted(currencies):
            lines: list[InvoiceLine] = []
            if committed and currency == account.currency:
                lines.append(
                    InvoiceLine(
                        line=1,
                        kind="subscription",
                        product_id=None,
                        description=f"{SUBSCRIPTION_DESCRIPTION}, {month}",
                        quantity=Decimal(1),
                        unit_price=account.monthly_cost,
                        unrounded_amount=account.monthly_cost,
                        amount=round_to_minor_unit(account.monthly_cost, currency),
                    )
                )
            for part in fees_by_owner.get((account.id, currency), ()):
                lines.append(_fee_line(len(lines) + 1, month, part))
            for charge in usage_by_owner.get((account.id, currency), ()):
                lines.append(_usage_line(len(lines) + 1, charge))
            amount = sum((line.amount for line in lines), Decimal(0))
            drafts.append(
                Invoice(
                    id=new_id(),
                    organization_id=organization_id,
                    account_id=account.id,
                    number=first_number + len(drafts),
                    currency=currency,
                    month=month,
                    # Nothing is owed on an invoice of zero: it is paid the moment it is issued.
                    status="open" if amount else "paid",
                    amount=amount,
                    amount_paid=Decimal(0),
                    issued_at=issued_at,
                    effective_date=effective,
                    due_date=effective + timedelta(days=account.net_terms_days),
                    paid_at=None if amount else issued_at,
                    voided_at=None,
                    lines=tuple(lines),
                )
            )
    return drafts


def month_drafts(
    conn: Connection,
    organization_id: uuid.UUID,
    month: str,
    owners: Sequence[Account],
    first_number: int,
    now: datetime,
    *,
    whole_organization: bool,
) -> list[Invoice]:
    """What a billing run of ``month`` invoices ``owners`` (every account of the organization, or one for the
    upcoming invoice): the one computation both use."""
    only = None if whole_organization else owners[0].id
    usage = aggregates.month_charges(conn, organization_id, month, only)
    fees = plans.month_fees(conn, organization_id, month, {owner.id: owner.archived_at for owner in owners}, only)
    return draft_invoices(
        organization_id, month, [AccountTerms.of(owner) for owner in owners], usage, fees, first_number, now
    )


def _charges(invoice: Invoice, account_name: str) -> list[tuple[HistoryItem, uuid.UUID | None, str | None]]:
    return [
        (
            HistoryItem(
                id=history_id("charge", str(invoice.id), str(line.line)),
                account_id=invoice.account_id,
                account_name=account_name,
                type="charge",
                # A plan's fee is a subscription charge, as the Cloudflare history names one.
                action="subscription" if line.kind == "fee" else line.kind,
                description=line.description,
                occurred_at=invoice.issued_at,
                amount=line.amount,
                currency=invoice.currency,
            ),
            invoice.id,
            None,
        )
        for line in invoice.lines
    ]


def require_ended(month: str, now: datetime | None = None) -> None:
    """Refuse a month that has not ended: only an ended month can be invoiced."""
    now = now or utcnow()
    # December 9999 ends beyond the calendar: it has not ended, whatever the clock says.
    ends = None if month >= "9999-12" else month_start(next_month(month))
    if ends is None or ends > now:
        when = "it ends beyond year 9999" if ends is None else f"it can be billed from {format_rfc3339(ends)}"
        raise ValidationFailed([FieldError("body.month", f"{month} has not ended; {when}", "month_not_ended")])


def run_billing(conn: Connection, organization_id: uuid.UUID, month: str, now: datetime | None = None) -> BillingRun:
    """Invoice one ended month of one organization; a month already billed is left as it is (``created`` False)."""
    now = now or utcnow()
    require_ended(month, now)
    # Waits for every ingestion in flight and keeps new ones out until this transaction ends.
    lock_organization_usage(conn, organization_id, exclusive=True)
    existing = repository.find_billing_run(conn, organization_id, month)
    if existing is not None:
        return existing
    with large_cache(conn):
        return _invoice_month(conn, organization_id, month, now)


def _invoice_month(conn: Connection, organization_id: uuid.UUID, month: str, now: datetime) -> BillingRun:
    all_accounts = accounts.organization_accounts(conn, organization_id)
    first_number = repository.last_invoice_number(conn, organization_id) + 1
    drafts = month_drafts(conn, organization_id, month, all_accounts, first_number, now, whole_organization=True)
    problems = repository.too_large_to_store(drafts)
    if problems:
        # Refused whole, with what is too large, rather than failing on the database's integer range.
        raise Conflict(
            f"{month} cannot be invoiced, an invoice cannot hold {'; '.join(problems[:10])}. Nothing was invoiced."
        )
    names = {account.id: account.name for account in all_accounts}
    # A payment recorded meanwhile either commits before these locks are granted (and its credit is
    # seen below) or waits for this run to commit (and then finds the new invoices open).
    accounts.lock_accounts(conn, sorted({invoice.account_id for invoice in drafts}))
    repository.insert_invoices(conn, drafts)
    webhooks.emit_many(
        conn, organization_id, "invoice.created", (_invoice_event("invoice.created", draft) for draft in drafts)
    )
    repository.insert_history(
        conn, organization_id, [item for invoice in drafts for item in _charges(invoice, names[invoice.account_id])]
    )
    run = BillingRun(month=month, invoice_count=len(drafts), created_at=now, created=True)
    repository.insert_billing_run(conn, organization_id, run)
    # Money paid ahead goes to the new invoices at once.
    waiting = payments.owners_of_open_credit(conn, organization_id)
    settle_accounts(conn, organization_id, sorted({(d.account_id, d.currency) for d in drafts} & waiting, key=str))
    webhooks.emit(
        conn,
        organization_id,
        "billing_run.completed",
        BillingRunOut.of(run).model_dump(mode="python"),
        event_id=webhooks.event_id_for("billing_run.completed", organization_id, month),
    )
    return run


def _invoice_event(event_type: str, invoice: Invoice) -> EventData:
    """An invoice's event: the invoice as ``GET /v1/invoices/{id}`` shows it, under an id derived from both."""
    return EventData(
        InvoiceOut.of(invoice, with_lines=True).model_dump(mode="python"),
        webhooks.event_id_for(event_type, invoice.id),
    )


def upcoming_invoices(
    conn: Connection, principal: Principal, account_id: uuid.UUID, month: str | None = None, now: datetime | None = None
) -> list[UpcomingInvoice]:
    """What a billing run of ``month`` (default: the current one) would invoice the account if it ran now, one per
    currency, computed by the billing run's own code and stored nowhere. Empty when it would invoice nothing."""
    now = now or utcnow()
    account = resolve_account(conn, principal, account_id)
    month = month or f"{now:%Y-%m}"
    drafts = month_drafts(conn, account.organization_id, month, [account], 0, now, whole_organization=False)
    return [
        UpcomingInvoice(
            account_id=draft.account_id,
            currency=draft.currency,
            month=draft.month,
            amount=draft.amount,
            effective_date=draft.effective_date,
            due_date=draft.due_date,
            lines=draft.lines,
            computed_at=now,
        )
        for draft in drafts
    ]


def bill(conn: Connection, principal: Principal, month: str) -> BillingRun:
    """A billing run asked for through the API: it covers the whole organization, so it needs an organization key."""
    authorize(principal, access.RUN_BILLING)
    return run_billing(conn, require_organization(principal), month)


def refuse_invoiced_months(conn: Connection, organization_id: uuid.UUID, dated: Sequence[tuple[str, str]]) -> None:
    """Refuse usage dated in an invoiced month: ``dated`` holds (field path, month) of each new item."""
    invoiced = repository.invoiced_months(conn, organization_id, (month for _, month in dated))
    if invoiced:
        raise ValidationFailed(
            [
                FieldError(path, f"{month} is already invoiced; usage dated in it is refused", "month_invoiced")
                for path, month in dated
                if month in invoiced
            ][:100]
        )


def lock_usage(conn: Connection, organization_id: uuid.UUID) -> None:
    """Taken by every ingestion: no billing run of the organization can interleave with it."""
    lock_organization_usage(conn, organization_id, exclusive=False)


# --- invoices --------------------------------------------------------------------------------------


def list_invoices(
    conn: Connection,
    principal: Principal,
    *,
    account_id: uuid.UUID | None = None,
    status: str | None = None,
    month: str | None = None,
) -> list[Invoice]:
    """The invoices of the accounts the key reaches, by number."""
    organization_id, path_prefix = within(principal)
    if account_id is not None:
        resolve_account(conn, principal, account_id)
    return repository.list_invoices(
        conn,
        organization_id,
        path_prefix,
        account_id=account_id,
        statuses=None if status is None else [status],
        month=month,
    )


def get_invoice(conn: Connection, principal: Principal, invoice_id: uuid.UUID) -> Invoice:
    organization_id, path_prefix = within(principal)
    invoice = repository.get_invoice(conn, organization_id, path_prefix, invoice_id)
    if invoice is None:
        raise NotFound(f"No invoice with id {invoice_id} was found.")
    return invoice


def void(conn: Connection, principal: Principal, invoice_id: uuid.UUID) -> Invoice:
    """Void an open invoice: it stays, the history gains a refund, and what was paid of it is free again."""
    organization_id, path_prefix = within(principal)
    invoice = get_invoice(conn, principal, invoice_id)
    # The account first, then the invoice: the order settle() locks in (no deadlock on PostgreSQL).
    accounts.lock_accounts(conn, [invoice.account_id])
    invoice = repository.get_invoice(conn, organization_id, path_prefix, invoice_id, for_update=True) or invoice
    if invoice.status == "void":
        return invoice
    if invoice.status == "paid":
        raise Conflict(f"Invoice {invoice.number} is paid; a paid invoice cannot be voided.")
    now = utcnow()
    payments.release_invoice(conn, invoice.id)
    repository.update_invoice(conn, invoice.id, status="void", voided_at=now, amount_paid=Decimal(0))
    account = resolve_account(conn, principal, invoice.account_id)
    repository.insert_history(
        conn,
        organization_id,
        [
            (
                HistoryItem(
                    id=history_id("refund", str(invoice.id)),
                    account_id=invoice.account_id,
                    account_name=account.name,
                    type="refund",
                    action="void",
                    description=f"Void of invoice {invoice.number} ({invoice.month})",
                    occurred_at=now,
                    amount=-invoice.amount,
                    currency=invoice.currency,
                ),
                invoice.id,
                None,
            )
        ],
    )
    settle(conn, organization_id, invoice.account_id, invoice.currency)
    voided = get_invoice(conn, principal, invoice_id)
    webhooks.emit_many(conn, organization_id, "invoice.voided", [_invoice_event("invoice.voided", voided)])
    return voided


# --- payments --------------------------------------------------------------------------------------


def pay(conn: Connection, principal: Principal, data: PaymentIn) -> tuple[Payment, bool]:
    """Record money received once per id and settle invoices with it; False when the id was recorded already.

    A payment is never refused for the invoice it names: money received is a fact. If that invoice is
    already paid or void, the payment settles the account's other open invoices, or waits unapplied.
    """
    organization_id = require_organization(principal)
    account = resolve_account(conn, principal, data.account_id)
    named: Invoice | None = None
    if data.invoice_id is not None:
        named = repository.get_invoice(conn, organization_id, principal.account_path, data.invoice_id)
        if named is None:
            raise ValidationFailed(
                [FieldError("body.invoice_id", f"no invoice with id {data.invoice_id} was found", "not_found")]
            )
        if named.account_id != account.id:
            raise ValidationFailed(
                [FieldError("body.invoice_id", f"invoice {named.number} belongs to another account", "other_account")]
            )
    currency = data.currency or (named.currency if named is not None else account.currency)
    if named is not None and currency != named.currency:
        raise ValidationFailed(
            [FieldError("body.currency", f"invoice {named.number} is in {named.currency}, not {currency}", "currency")]
        )
    accounts.lock_accounts(conn, [account.id])
    now = utcnow()
    payment, created = payments.record(conn, account, data, currency, now)
    if not created:
        return payment, False
    description = "Payment" if payment.reference is None else f"Payment {payment.reference}"
    repository.insert_history(
        conn,
        organization_id,
        [
            (
                HistoryItem(
                    # With the account: payment ids are per account. Items stored before (migration
                    # 0007) keep the id they were given, derived from (organization, payment id).
                    id=history_id("payment", str(organization_id), str(account.id), payment.id),
                    account_id=account.id,
                    account_name=account.name,
                    type="payment",
                    action="payment",
                    description=description[:255],
                    occurred_at=payment.date,
                    amount=payment.amount,
                    currency=payment.currency,
                ),
                None,
                payment.id,
            )
        ],
    )
    settle(conn, organization_id, account.id, currency, first=named.id if named is not None else None)
    recorded = payments.find(conn, account.id, payment.id) or payment
    webhooks.emit(
        conn,
        organization_id,
        "payment.created",
        PaymentOut.of(recorded).model_dump(mode="python"),
        event_id=webhooks.event_id_for("payment.created", account.id, recorded.id),
    )
    return recorded, True


def settle(
    conn: Connection,
    organization_id: uuid.UUID,
    account_id: uuid.UUID,
    currency: str,
    first: uuid.UUID | None = None,
) -> None:
    """Apply the account's unapplied money in ``currency`` to its open invoices: ``first``, then oldest first."""
    settle_accounts(conn, organization_id, [(account_id, currency)], first)


def settle_accounts(
    conn: Connection,
    organization_id: uuid.UUID,
    owners: Sequence[tuple[uuid.UUID, str]],
    first: uuid.UUID | None = None,
) -> None:
    """:func:`settle` each (account, currency) of ``owners``, with a few statements for all of them (a billing run
    settles every account that paid ahead)."""
    if not owners:
        return
    accounts.lock_accounts(conn, sorted({account_id for account_id, _ in owners}))
    open_by_owner = repository.open_invoices(conn, owners)
    credit_by_owner = payments.open_credit(conn, organization_id, owners)
    applications: list[tuple[Payment, uuid.UUID, Decimal]] = []
    changes: list[tuple[uuid.UUID, Decimal, str, datetime | None]] = []
    settled: list[uuid.UUID] = []
    for owner in owners:
        credit = credit_by_owner.get(owner, [])
        if not credit:
            continue
        left = {payment.id: payment.unapplied for payment in credit}
        for invoice in sorted(open_by_owner.get(owner, []), key=lambda invoice: (invoice.id != first, invoice.number)):
            due = invoice.amount - invoice.amount_paid
            last_date: datetime | None = None
            for payment in credit:
                if due == 0:
                    break
                take = min(due, left[payment.id])
                if take == 0:
                    continue
                applications.append((payment, invoice.id, take))
                left[payment.id] -= take
                due -= take
                last_date = payment.date
            if last_date is None:
                continue
            paid = due == 0
            # Paid when the money that completed it arrived, and never before the invoice existed.
            changes.append(
                (
                    invoice.id,
                    invoice.amount - due,
                    "paid" if paid else "open",
                    max(last_date, invoice.issued_at) if paid else None,
                )
            )
            if paid:
                settled.append(invoice.id)
    repository.record_amounts_paid(conn, changes)
    payments.apply(conn, organization_id, applications)
    if settled:
        webhooks.emit_many(conn, organization_id, "invoice.paid", _paid_events(conn, organization_id, settled))


def _paid_events(conn: Connection, organization_id: uuid.UUID, invoice_ids: Sequence[uuid.UUID]) -> Iterator[EventData]:
    """The ``invoice.paid`` event of each invoice just settled in full, read as it is now (read only if wanted)."""
    for invoice in repository.invoices_with_lines(conn, organization_id, invoice_ids):
        yield _invoice_event("invoice.paid", invoice)


def account_statement(
    conn: Connection, principal: Principal, account_id: uuid.UUID
) -> tuple[list[Invoice], list[Payment]]:
    """What the Faraday billing view shows of one account: its open and paid invoices, and its payments."""
    account = resolve_account(conn, principal, account_id)
    organization_id, path_prefix = within(principal)
    invoices = repository.list_invoices(
        conn, organization_id, path_prefix, account_id=account.id, statuses=["open", "paid"]
    )
    return invoices, payments.list_payments(conn, principal, account.id)


# --- billing history -------------------------------------------------------------------------------


def history(
    conn: Connection,
    principal: Principal,
    *,
    page: int,
    per_page: int,
    order: HistoryOrder | None = None,
    type_: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> HistoryPage:
    """A page of the billing history of every account the key reaches."""
    organization_id, path_prefix = within(principal)
    total = repository.count_history(conn, organization_id, path_prefix)
    filtered = type_ is not None or action is not None or since is not None
    matching = (
        repository.count_history(conn, organization_id, path_prefix, type_=type_, action=action, since=since)
        if filtered
        else total
    )
    offset = (page - 1) * per_page
    if offset >= matching:
        # Past the last page: nothing to read, and an offset that large may not fit the database's integers.
        return HistoryPage(items=[], matching=matching, total=total)
    items = repository.history_page(
        conn,
        organization_id,
        path_prefix,
        type_=type_,
        action=action,
        since=since,
        order=order,
        offset=offset,
        limit=per_page,
    )
    return HistoryPage(items=items, matching=matching, total=total)


# --- verification ----------------------------------------------------------------------------------


def verify(conn: Connection) -> list[str]:
    """Every invoice whose amount is not the sum of its lines, and every stored count of the history that is wrong."""
    return [
        f"invoice {number} ({invoice_id}): amount {amount}, lines sum to {total}"
        for invoice_id, number, amount, total in repository.verify_invoice_sums(conn)
    ] + repository.verify_history_counts(conn)


# --- the console -----------------------------------------------------------------------------------


def list_billing_runs(conn: Connection, principal: Principal) -> list[BillingRun]:
    """The organization's billing runs, newest month first: a run covers every account, so an organization key's."""
    authorize(principal, access.READ_BILLING_RUNS)
    return repository.list_billing_runs(conn, require_organization(principal))


def amounts_due(conn: Connection, principal: Principal) -> dict[uuid.UUID, dict[str, Decimal]]:
    """What each account the key reaches owes on its open invoices, per currency (absent: nothing open)."""
    organization_id, path_prefix = within(principal)
    return repository.amounts_due(conn, organization_id, path_prefix)


def is_overdue(invoice: Invoice, now: datetime | None = None) -> bool:
    """An open invoice whose due date has passed (contract §8): the due date is the last day to pay, in UTC."""
    return invoice.overdue_at(now or utcnow())
