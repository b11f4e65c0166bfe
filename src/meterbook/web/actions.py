"""The console's actions: grant credits, record a payment, void an invoice, run billing, create and revoke keys.

Each is three steps. The form (a GET, or a form on the page it belongs to); the review, which the
form posts to: it checks the input, rehearses the action through the same service the API calls in a
transaction that is rolled back, and shows exactly what Confirm will do, with the same input in hidden
fields; and Confirm, which applies it and redirects (Post/Redirect/Get) to the page that shows the
result, with a flash that says what was done. Nothing is stored before Confirm.

Every post passes ``common.acting``: same origin, a live session, the session's form token, and
``authorize`` with the action the API route uses. A grant and a payment get their id when the review
is rendered, so a confirmation sent twice (a double click, the back button) applies once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from meterbook import metrics
from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.models import ALL_SCOPES, Account, ApiKey
from meterbook.accounts.schemas import KeyCreate
from meterbook.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    ValidationFailed,
    field_errors_from_pydantic,
)
from meterbook.invoicing import service as invoicing
from meterbook.invoicing.models import BillingRun, Invoice
from meterbook.invoicing.schemas import BillingRunIn
from meterbook.kit.time import utcnow
from meterbook.ledger import service as ledger
from meterbook.ledger.schemas import CreditGrant
from meterbook.payments.models import Payment
from meterbook.payments.schemas import PaymentIn
from meterbook.web.common import (
    Form,
    Page,
    acting,
    attempt,
    done,
    first,
    guarded,
    page_response,
    submitted,
    uuid_or_404,
)
from meterbook.web.render import money, month_name, quantity, timestamp

__all__ = ["billing_form_context", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

#: How the console names the fields the services name in their errors.
_LABELS = {
    "amount": "Amount",
    "description": "Description",
    "currency": "Currency",
    "invoice_id": "Invoice",
    "reference": "Reference",
    "month": "Month",
    "scopes": "Scopes",
    "expires_at": "Expires",
    "account_id": "For",
    "name": "Name",
    "id": "Confirmation",
}
#: Clearer words for pydantic's most common complaints about what a person typed.
_PLAIN = {
    "int_parsing": "enter a whole number, e.g. 500",
    "int_from_float": "enter a whole number, e.g. 500",
    "decimal_parsing": "enter an amount such as 120.50",
    "string_pattern_mismatch": "expected YYYY-MM, e.g. 2026-10",
    "missing": "this is required",
}


def _field_messages(errors: Sequence[FieldError]) -> list[str]:
    messages = []
    for error in errors:
        parts = [part for part in error.path.split(".") if part != "body" and not part.isdigit()]
        label = _LABELS.get(parts[-1], parts[-1]) if parts else "Form"
        messages.append(f"{label}: {_PLAIN.get(error.error_type, error.message)}")
    return messages


def _messages(error: InvalidInput | Conflict | Forbidden | ValidationError) -> list[str]:
    """What went wrong, as the form shows it: one line per field for validation, else the service's words."""
    if isinstance(error, ValidationError):
        return _field_messages(field_errors_from_pydantic(error.errors(include_url=False), ("body",)))
    if isinstance(error, ValidationFailed):
        return _field_messages(error.errors)
    return [error.message]


def _status(error: InvalidInput | Conflict | Forbidden | ValidationError) -> int:
    return 400 if isinstance(error, ValidationError) else error.status


def _new_id() -> str:
    # Made when the review is shown and sent back by Confirm: the same confirmation twice is one grant.
    return f"console-{uuid.uuid4()}"


def _hidden(form: Form, *names: str) -> dict[str, str]:
    return {name: first(form, name) for name in names}


def _review(page: Page, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return page_response(page, "confirm.html", {"error": None, "hidden": {}, "rows": [], "notes": []} | context, status)


# --- grant credits ----------------------------------------------------------------------------------


def _grant_form(page: Page, account: Account, form: Form, errors: list[str], status: int = 200) -> HTMLResponse:
    values = {"amount": first(form, "amount"), "description": first(form, "description")}
    return page_response(page, "grant.html", {"account": account, "values": values, "errors": errors}, status)


def _grant_input(form: Form, grant_id: str) -> CreditGrant:
    return CreditGrant.model_validate(
        {"id": grant_id, "amount": first(form, "amount"), "description": first(form, "description") or None}
    )


@router.get("/accounts/{account_id}/grant")
def grant_form(request: Request, account_id: str) -> Response:
    wanted = uuid_or_404(account_id)
    with guarded(request, access.GRANT_CREDITS) as page:
        account = accounts.get_account(page.conn, page.principal, wanted)
    return _grant_form(page, account, {}, [])


@router.post("/accounts/{account_id}/grant")
async def grant_review(request: Request, account_id: str) -> Response:
    return await run_in_threadpool(_grant, request, account_id, await submitted(request), False)


@router.post("/accounts/{account_id}/grant/confirm")
async def grant_confirm(request: Request, account_id: str) -> Response:
    return await run_in_threadpool(_grant, request, account_id, await submitted(request), True)


def _grant(request: Request, account_id: str, form: Form, confirmed: bool) -> Response:
    wanted = uuid_or_404(account_id)
    with acting(request, form, access.GRANT_CREDITS) as page:
        account = accounts.get_account(page.conn, page.principal, wanted)
    grant_id = first(form, "grant_id") if confirmed else _new_id()
    try:
        data = _grant_input(form, grant_id)
    except ValidationError as invalid:
        return _grant_form(page, account, form, _messages(invalid), 400)

    def work(conn: Connection) -> tuple[bool, int]:
        _transaction, created = ledger.grant(conn, page.principal, account.id, data)
        return created, ledger.balance(conn, page.principal, account.id).balance

    outcome = attempt(request, work, apply=confirmed)
    if isinstance(outcome, (InvalidInput, Conflict, Forbidden)):
        return _grant_form(page, account, form, _messages(outcome), _status(outcome))
    created, balance_after = outcome
    credits = quantity(data.amount)
    if confirmed:
        if not created:
            return done(
                page,
                f"/ui/accounts/{account.id}",
                f"These {credits} credits for {account.name} had been granted already (the confirmation was sent "
                "twice); nothing more was granted.",
            )
        return done(page, f"/ui/accounts/{account.id}", f"Granted {credits} credits to {account.name}.")
    return _review(
        page,
        {
            "title": f"Grant {credits} credits to {account.name}?",
            "back": f"/ui/accounts/{account.id}",
            "action": f"/ui/accounts/{account.id}/grant/confirm",
            "confirm": f"Grant {credits} credits",
            "rows": [
                ("Account", account.name),
                ("Credits", credits),
                ("Description", data.description or "—"),
                ("Balance after", f"{quantity(balance_after)} credits"),
            ],
            "hidden": {"grant_id": grant_id, **_hidden(form, "amount", "description")},
        },
    )


# --- record a payment -------------------------------------------------------------------------------


def _open_invoices(page: Page, account: Account) -> list[Invoice]:
    return invoicing.list_invoices(page.conn, page.principal, account_id=account.id, status="open")


def _payment_form(
    page: Page, account: Account, open_invoices: list[Invoice], form: Form, errors: list[str], status: int = 200
) -> HTMLResponse:
    values = {name: first(form, name) for name in ("amount", "currency", "invoice_id", "reference")}
    currencies = sorted({account.currency, *(invoice.currency for invoice in open_invoices)})
    context = {
        "account": account,
        "open_invoices": open_invoices,
        "currencies": currencies,
        "values": values,
        "errors": errors,
    }
    return page_response(page, "payment.html", context, status)


@router.get("/accounts/{account_id}/payment")
def payment_form(request: Request, account_id: str, invoice: str = "") -> Response:
    wanted = uuid_or_404(account_id)
    with guarded(request, access.RECORD_PAYMENTS) as page:
        account = accounts.get_account(page.conn, page.principal, wanted)
        open_invoices = _open_invoices(page, account)
    return _payment_form(page, account, open_invoices, {"invoice_id": [invoice]}, [])


@router.post("/accounts/{account_id}/payment")
async def payment_review(request: Request, account_id: str) -> Response:
    return await run_in_threadpool(_payment, request, account_id, await submitted(request), False)


@router.post("/accounts/{account_id}/payment/confirm")
async def payment_confirm(request: Request, account_id: str) -> Response:
    return await run_in_threadpool(_payment, request, account_id, await submitted(request), True)


@dataclass(frozen=True)
class _Paid:
    payment: Payment
    created: bool
    #: The account's invoices after the payment, by id: what it settled, and what is still due.
    invoices: dict[uuid.UUID, Invoice]


def _payment(request: Request, account_id: str, form: Form, confirmed: bool) -> Response:
    wanted = uuid_or_404(account_id)
    with acting(request, form, access.RECORD_PAYMENTS) as page:
        account = accounts.get_account(page.conn, page.principal, wanted)
        open_invoices = _open_invoices(page, account)
    payment_id = first(form, "payment_id") if confirmed else _new_id()
    try:
        data = PaymentIn.model_validate(
            {
                "id": payment_id,
                "account_id": account.id,
                "amount": first(form, "amount"),
                "currency": first(form, "currency") or None,
                "invoice_id": first(form, "invoice_id") or None,
                "reference": first(form, "reference") or None,
            }
        )
    except ValidationError as invalid:
        return _payment_form(page, account, open_invoices, form, _messages(invalid), 400)

    def work(conn: Connection) -> _Paid:
        payment, created = invoicing.pay(conn, page.principal, data)
        after = invoicing.list_invoices(conn, page.principal, account_id=account.id)
        return _Paid(payment, created, {invoice.id: invoice for invoice in after})

    outcome = attempt(request, work, apply=confirmed)
    if isinstance(outcome, (InvalidInput, Conflict, Forbidden)):
        return _payment_form(page, account, open_invoices, form, _messages(outcome), _status(outcome))
    payment = outcome.payment
    amount = money(payment.amount, payment.currency)
    if confirmed:
        metrics.record_payment(outcome.created)
        if not outcome.created:
            return done(
                page,
                f"/ui/accounts/{account.id}",
                f"This payment of {amount} from {account.name} had been recorded already (the confirmation was "
                "sent twice); nothing more was recorded.",
            )
        return done(page, f"/ui/accounts/{account.id}", f"Recorded a payment of {amount} from {account.name}.")
    settles = []
    for allocation in payment.allocations:
        invoice = outcome.invoices[allocation.invoice_id]
        after = (
            "paid in full" if invoice.status == "paid" else f"{money(invoice.amount_due, invoice.currency)} still due"
        )
        settles.append(
            f"#{invoice.number} ({month_name(invoice.month)}): {money(allocation.amount, payment.currency)}, {after}"
        )
    named = outcome.invoices.get(data.invoice_id) if data.invoice_id is not None else None
    rows = [
        ("Account", account.name),
        ("Amount", amount),
        (
            "Invoice named",
            f"#{named.number} ({month_name(named.month)})" if named else "none: oldest open invoices first",
        ),
        ("Reference", data.reference or "—"),
        ("Applies to", "; ".join(settles) or "no open invoice"),
        ("Left unapplied", money(payment.unapplied, payment.currency)),
    ]
    notes = []
    if payment.unapplied:
        notes.append(f"What is left unapplied settles {account.name}'s next invoice in {payment.currency}.")
    return _review(
        page,
        {
            "title": f"Record a payment of {amount} from {account.name}?",
            "back": f"/ui/accounts/{account.id}",
            "action": f"/ui/accounts/{account.id}/payment/confirm",
            "confirm": f"Record {amount}",
            "rows": rows,
            "notes": notes,
            "hidden": {"payment_id": payment_id, **_hidden(form, "amount", "currency", "invoice_id", "reference")},
        },
    )


# --- void an invoice --------------------------------------------------------------------------------


@router.get("/invoices/{invoice_id}/void")
def void_review(request: Request, invoice_id: str) -> Response:
    wanted = uuid_or_404(invoice_id)
    with guarded(request, access.VOID_INVOICES) as page:
        invoice = invoicing.get_invoice(page.conn, page.principal, wanted)
        account = accounts.get_account(page.conn, page.principal, invoice.account_id)
    return _void(request, page, invoice, account, confirmed=False)


@router.post("/invoices/{invoice_id}/void/confirm")
async def void_confirm(request: Request, invoice_id: str) -> Response:
    form = await submitted(request)

    def run() -> Response:
        wanted = uuid_or_404(invoice_id)
        with acting(request, form, access.VOID_INVOICES) as page:
            invoice = invoicing.get_invoice(page.conn, page.principal, wanted)
            account = accounts.get_account(page.conn, page.principal, invoice.account_id)
        return _void(request, page, invoice, account, confirmed=True)

    return await run_in_threadpool(run)


def _void(request: Request, page: Page, invoice: Invoice, account: Account, *, confirmed: bool) -> Response:
    amount = money(invoice.amount, invoice.currency)
    what = f"invoice #{invoice.number} of {account.name} ({amount}, {month_name(invoice.month)})"
    error: str | None = None
    status = 200
    if invoice.status == "void" and not confirmed:
        error = f"Invoice #{invoice.number} is void already (since {timestamp(invoice.voided_at)}): nothing to do."
    else:
        outcome = attempt(request, lambda conn: invoicing.void(conn, page.principal, invoice.id), apply=confirmed)
        if isinstance(outcome, (InvalidInput, Conflict, Forbidden)):
            error, status = outcome.message, outcome.status
        elif confirmed:
            if invoice.status == "void":
                return done(page, f"/ui/invoices/{invoice.id}", f"Invoice #{invoice.number} was void already.")
            return done(page, f"/ui/invoices/{invoice.id}", f"Voided {what}.")
    notes = [
        "A void invoice stays for the record; the customer's billing history gains a refund of its amount.",
    ]
    if invoice.amount_paid:
        notes.append(
            f"The {money(invoice.amount_paid, invoice.currency)} paid of it is released: it settles "
            f"{account.name}'s other open invoices in {invoice.currency}, or waits for the next one."
        )
    return _review(
        page,
        {
            "title": f"Void {what}?",
            "back": f"/ui/invoices/{invoice.id}",
            "action": f"/ui/invoices/{invoice.id}/void/confirm",
            "confirm": f"Void invoice #{invoice.number}",
            "danger": True,
            "error": error,
            "rows": [
                ("Invoice", f"#{invoice.number}"),
                ("Account", account.name),
                ("Month", month_name(invoice.month)),
                ("Amount", money(invoice.amount, invoice.currency)),
                ("Paid of it", money(invoice.amount_paid, invoice.currency)),
                ("Status", f"{invoice.status} → void"),
            ],
            "notes": notes,
        },
        status,
    )


# --- run billing ------------------------------------------------------------------------------------


def _last_ended_month() -> str:
    today = utcnow().date()
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def billing_form_context(runs: list[BillingRun], month: str = "", errors: Sequence[str] = ()) -> dict[str, Any]:
    """What the billing runs page needs, with its form to run billing (kept here, beside the action it starts)."""
    return {"runs": runs, "month_value": month or _last_ended_month(), "errors": list(errors)}


@dataclass(frozen=True)
class _Billed:
    run: BillingRun
    invoices: list[Invoice]
    names: dict[uuid.UUID, str]


@router.post("/billing-runs")
async def billing_review(request: Request) -> Response:
    return await run_in_threadpool(_billing, request, await submitted(request), False)


@router.post("/billing-runs/confirm")
async def billing_confirm(request: Request) -> Response:
    return await run_in_threadpool(_billing, request, await submitted(request), True)


def _billing(request: Request, form: Form, confirmed: bool) -> Response:
    with acting(request, form, access.RUN_BILLING) as page:
        runs = invoicing.list_billing_runs(page.conn, page.principal)
    month = first(form, "month")

    def form_again(messages: list[str], status: int) -> Response:
        context = billing_form_context(runs, month, messages)
        return page_response(page, "billing_runs.html", context, status)

    try:
        data = BillingRunIn.model_validate({"month": month})
    except ValidationError as invalid:
        return form_again(_messages(invalid), 400)

    def work(conn: Connection) -> _Billed:
        run = invoicing.bill(conn, page.principal, data.month)
        made = invoicing.list_invoices(conn, page.principal, month=data.month) if run.created else []
        names = {account.id: account.name for account in accounts.list_accounts(conn, page.principal)}
        return _Billed(run, made, names)

    outcome = attempt(request, work, apply=confirmed)
    if isinstance(outcome, (InvalidInput, Conflict, Forbidden)):
        return form_again(_messages(outcome), _status(outcome))
    run, named = outcome.run, month_name(data.month)
    if confirmed:
        metrics.record_billing_run(run.created, run.invoice_count)
        if not run.created:
            return done(page, "/ui/billing-runs", f"{named} had been invoiced already: nothing new was made.")
        count = f"{run.invoice_count} invoice{'' if run.invoice_count == 1 else 's'}"
        return done(page, "/ui/billing-runs", f"Invoiced {named}: {count}.")
    if not run.created:
        error = f"{named} was invoiced on {timestamp(run.created_at)}: running it again makes nothing new."
    else:
        error = None
    return _review(
        page,
        {
            "title": f"Invoice {named}?",
            "back": "/ui/billing-runs",
            "action": "/ui/billing-runs/confirm",
            "confirm": f"Invoice {named}",
            "error": error,
            "rows": [("Month", named), ("Invoices it makes", str(run.invoice_count) if run.created else "none")],
            "invoices": outcome.invoices,
            "names": outcome.names,
            "notes": [
                "Each account with a commitment or usage in the month gets one invoice per currency, final (open) "
                "at once. Usage dated in an invoiced month is refused from then on.",
            ],
            "hidden": {"month": data.month},
        },
    )


# --- keys -------------------------------------------------------------------------------------------


def _key_rows(keys: list[ApiKey], names: dict[uuid.UUID, str]) -> list[dict[str, Any]]:
    now = utcnow()
    makers = {key.id: key.masked for key in keys}
    rows = []
    for key in keys:
        state = (
            "revoked"
            if key.revoked_at is not None
            else "expired"
            if key.expires_at is not None and key.expires_at <= now
            else "active"
        )
        rows.append(
            {
                "key": key,
                "for": "Organization" if key.account_id is None else names.get(key.account_id, str(key.account_id)),
                "scopes": ", ".join(sorted(key.scopes)),
                "state": state,
                "maker": makers.get(key.created_by_key_id) if key.created_by_key_id else None,
            }
        )
    return rows


@router.get("/keys")
def keys_page(request: Request) -> Response:
    with guarded(request, access.LIST_KEYS) as page:
        keys = accounts.list_keys(page.conn, page.principal)
        names = {account.id: account.name for account in accounts.list_accounts(page.conn, page.principal)}
    context = {"rows": _key_rows(keys, names), "own_key_id": page.principal.key_id}
    return page_response(page, "keys.html", context)


def _key_form(page: Page, choices: list[Account], form: Form, errors: list[str], status: int = 200) -> HTMLResponse:
    values = {name: first(form, name) for name in ("name", "account_id", "expires_on")}
    context = {
        "values": values,
        "chosen_scopes": set(form.get("scopes", [])),
        "all_scopes": ["*", *sorted(ALL_SCOPES)],
        "own_scopes": ", ".join(sorted(page.principal.scopes)),
        "own_expiry": page.principal.expires_at,
        "choices": choices,
        "errors": errors,
    }
    return page_response(page, "key_form.html", context, status)


@router.get("/keys/new")
def key_form(request: Request) -> Response:
    with guarded(request, access.MANAGE_KEYS) as page:
        choices = accounts.list_accounts(page.conn, page.principal)
    return _key_form(page, choices, {}, [])


def _key_input(form: Form) -> KeyCreate:
    expires_on = first(form, "expires_on")
    expires_at: datetime | str | None = None
    if expires_on:
        try:
            expires_at = datetime.combine(date.fromisoformat(expires_on), datetime.min.time(), UTC)
        except ValueError:
            raise ValidationFailed.field(
                "body.expires_at", f"{expires_on!r} is not a date; expected YYYY-MM-DD, e.g. 2027-06-30"
            ) from None
    return KeyCreate.model_validate(
        {
            "account_id": first(form, "account_id") or None,
            "name": first(form, "name") or None,
            "scopes": [scope for scope in form.get("scopes", []) if scope] or None,
            "expires_at": expires_at,
        }
    )


@router.post("/keys/new")
async def key_review(request: Request) -> Response:
    return await run_in_threadpool(_key, request, await submitted(request), False)


@router.post("/keys/new/confirm")
async def key_confirm(request: Request) -> Response:
    return await run_in_threadpool(_key, request, await submitted(request), True)


def _key(request: Request, form: Form, confirmed: bool) -> Response:
    with acting(request, form, access.MANAGE_KEYS) as page:
        choices = accounts.list_accounts(page.conn, page.principal)
    names = {account.id: account.name for account in choices}
    try:
        data = _key_input(form)
    except (ValidationError, ValidationFailed) as invalid:
        return _key_form(page, choices, form, _messages(invalid), 400)
    outcome = attempt(request, lambda conn: accounts.create_key(conn, page.principal, data), apply=confirmed)
    if isinstance(outcome, (InvalidInput, Conflict, Forbidden)):
        return _key_form(page, choices, form, _messages(outcome), _status(outcome))
    key = outcome.key
    holder = "the organization (every account)" if key.account_id is None else names.get(key.account_id, "")
    expiry = timestamp(key.expires_at) if key.expires_at else "never"
    if confirmed:
        # Shown once, here, and never again: so this one answer is a page, not a redirect to one.
        return page_response(page, "key_created.html", {"key": key, "token": outcome.token, "holder": holder})
    notes = ["The whole key is shown once, on the next page; after that only its masked form."]
    if data.scopes is None:
        notes.append("No scopes were chosen, so it gets those of the key you signed in with.")
    if data.expires_at is None and key.expires_at is not None:
        notes.append("The key you signed in with expires, so this one expires with it.")
    return _review(
        page,
        {
            "title": "Create this key?",
            "back": "/ui/keys",
            "action": "/ui/keys/new/confirm",
            "confirm": "Create the key",
            "rows": [
                ("Name", key.name or "—"),
                ("For", holder),
                ("Scopes", ", ".join(sorted(key.scopes))),
                ("Expires", expiry),
            ],
            "notes": notes,
            "hidden": _hidden(form, "name", "account_id", "expires_on"),
            "hidden_lists": {"scopes": form.get("scopes", [])},
        },
    )


def _find_key(page: Page, key_id: uuid.UUID) -> ApiKey:
    for key in accounts.list_keys(page.conn, page.principal):
        if key.id == key_id:
            return key
    raise NotFound(f"No API key with id {key_id} was found.")


@router.get("/keys/{key_id}/revoke")
def revoke_review(request: Request, key_id: str) -> Response:
    wanted = uuid_or_404(key_id)
    with guarded(request, access.MANAGE_KEYS) as page:
        key = _find_key(page, wanted)
    return _revoke(request, page, key, confirmed=False)


@router.post("/keys/{key_id}/revoke/confirm")
async def revoke_confirm(request: Request, key_id: str) -> Response:
    form = await submitted(request)

    def run() -> Response:
        wanted = uuid_or_404(key_id)
        with acting(request, form, access.MANAGE_KEYS) as page:
            key = _find_key(page, wanted)
        return _revoke(request, page, key, confirmed=True)

    return await run_in_threadpool(run)


def _revoke(request: Request, page: Page, key: ApiKey, *, confirmed: bool) -> Response:
    def work(conn: Connection) -> list[ApiKey]:
        before = {other.id for other in accounts.list_keys(conn, page.principal) if other.revoked_at is None}
        accounts.revoke_key(conn, page.principal, key.id)
        return [other for other in accounts.list_keys(conn, page.principal) if other.revoked_at and other.id in before]

    outcome = attempt(request, work, apply=confirmed)
    if isinstance(outcome, (InvalidInput, Conflict, Forbidden)):
        return _review(
            page, {"title": f"Revoke key {key.masked}?", "back": "/ui/keys", "error": outcome.message}, outcome.status
        )
    made = [other for other in outcome if other.id != key.id]
    if confirmed:
        also = f" and {len(made)} key{'' if len(made) == 1 else 's'} it made" if made else ""
        label = f"{key.masked}" + (f" ({key.name})" if key.name else "")
        return done(page, "/ui/keys", f"Revoked key {label}{also}.")
    notes = ["A revoked key stops working at once, for the API and for the console, and cannot be restored."]
    if made:
        notes.append("Keys it made are revoked with it: " + ", ".join(other.masked for other in made) + ".")
    if page.principal.key_id in {other.id for other in outcome}:
        notes.append("This revokes the key you signed in with: you will be signed out.")
    error = f"Key {key.masked} is revoked already." if key.revoked_at is not None and not made else None
    return _review(
        page,
        {
            "title": f"Revoke key {key.masked}?",
            "back": "/ui/keys",
            "action": f"/ui/keys/{key.id}/revoke/confirm",
            "confirm": "Revoke the key",
            "danger": True,
            "error": error,
            "rows": [
                ("Key", key.masked),
                ("Name", key.name or "—"),
                ("Created", timestamp(key.created_at)),
                ("Keys revoked with it", str(len(made))),
            ],
            "notes": notes,
        },
    )
