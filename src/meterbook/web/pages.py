"""The console's pages: each reads through the domain services, as the API does, and renders a template.

Signing in takes an organization key with the read scopes the pages need; the session cookie then
stands for that key (``web/session.py``), and every page checks it again. The forms that change
billing data are in ``web/actions.py``; the plans pages, and what an account's page shows of its plan, in
``web/plans.py``.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.access import authorize
from meterbook.accounts.models import Account, Principal
from meterbook.aggregates import service as aggregates
from meterbook.api.routing import writing
from meterbook.config import Settings
from meterbook.errors import AuthenticationError, ExpiredApiKey, Forbidden
from meterbook.features import service as features
from meterbook.invoicing import service as invoicing
from meterbook.kit.time import utcnow
from meterbook.ledger import service as ledger
from meterbook.payments import service as payments
from meterbook.plans import service as plans_service
from meterbook.web import actions, alerts, plans, session, webhooks
from meterbook.web.common import (
    ActionRefused,
    SignInRequired,
    over_https,
    page_response,
    same_origin,
    secret,
    sign_in_redirect,
    signed_in,
    uuid_or_404,
)
from meterbook.web.render import SECURITY_HEADERS, STATIC_DIR, html, plain_decimal

__all__ = ["install", "router"]

#: Credit transactions shown on an account's page (the API lists them all).
RECENT_TRANSACTIONS = 10
#: At this share of its limit a feature's bar turns to a warning.
NEAR_LIMIT = 0.8

router = APIRouter(prefix="/ui", include_in_schema=False)

_REASONS = {
    "expired": "Your session has ended. Please sign in again.",
    "key": "The key you signed in with is no longer valid (revoked or expired). Sign in with another one.",
    "signed_out": "You have signed out.",
}


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path of this server only (never another site)."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/accounts"


# --- signing in and out ----------------------------------------------------------------------------


def _sign_in_page(
    request: Request, next_path: str, *, message: str | None = None, error: str | None = None, status: int = 200
) -> Response:
    insecure = request.url.scheme != "https" and not _is_loopback(request.url.hostname)
    context = {"next": next_path, "message": message, "error": error, "insecure": insecure, "signed_in": False}
    return html("sign_in.html", context, status)


@router.get("/sign-in")
def sign_in_form(
    request: Request, next_path: Annotated[str | None, Query(alias="next")] = None, reason: str | None = None
) -> Response:
    return _sign_in_page(request, _safe_next(next_path), message=_REASONS.get(reason or ""))


def _open_session(request: Request, token: str) -> tuple[uuid.UUID, datetime]:
    """Check the key as the console needs it, and open a session for it: the session's id and its end."""
    with writing(request) as conn:
        principal = accounts.authenticate(conn, token)
        for action in access.USE_CONSOLE:
            authorize(principal, action)
        return accounts.start_console_session(conn, principal, session.LIFETIME)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    next_path = _safe_next(form.get("next", [""])[0])
    if not same_origin(request):
        return _sign_in_page(request, next_path, error="This sign-in did not come from this console.", status=403)
    token = form.get("key", [""])[0].strip()
    if not token:
        return _sign_in_page(request, next_path, error="Enter an organization key (mbk_…).", status=400)
    try:
        session_id, expires_at = await run_in_threadpool(_open_session, request, token)
    except ExpiredApiKey:
        return _sign_in_page(request, next_path, error="This key has expired.", status=401)
    except AuthenticationError:
        return _sign_in_page(
            request, next_path, error="This key is not valid: unknown, revoked or mistyped.", status=401
        )
    except Forbidden as refused:
        return _sign_in_page(request, next_path, error=refused.message, status=403)
    response = RedirectResponse(next_path, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        session.COOKIE,
        session.sign(secret(request), session_id, expires_at),
        max_age=int(session.LIFETIME.total_seconds()),
        path="/ui",
        secure=over_https(request),
        httponly=True,
        samesite="lax",
    )
    return response


@router.post("/sign-out")
def sign_out(request: Request) -> Response:
    if not same_origin(request):
        return html(
            "error.html",
            {
                "title": "Not allowed",
                "message": "This sign-out did not come from this console.",
                "status": 403,
                "error_id": None,
            },
            403,
        )
    cookie = request.cookies.get(session.COOKIE)
    session_id = session.read(secret(request), cookie, utcnow()) if cookie else None
    if session_id is not None:
        with writing(request) as conn:
            accounts.end_console_session(conn, session_id)
    response = sign_in_redirect("/ui/accounts", "signed_out")
    response.delete_cookie(session.COOKIE, path="/ui", secure=over_https(request), httponly=True, samesite="lax")
    if session.FLASH_COOKIE in request.cookies:
        response.delete_cookie(
            session.FLASH_COOKIE, path="/ui", secure=over_https(request), httponly=True, samesite="lax"
        )
    return response


# --- pages -----------------------------------------------------------------------------------------


@router.get("")
@router.get("/")
def home() -> Response:
    return RedirectResponse("/ui/accounts", status_code=303, headers=SECURITY_HEADERS)


@router.get("/accounts")
def accounts_page(request: Request, q: str = "") -> Response:
    with signed_in(request) as page:
        everyone = accounts.list_accounts(page.conn, page.principal)
        found = accounts.search_accounts(page.conn, page.principal, q) if q.strip() else everyone
        # One query each for the whole list, whatever its length.
        balances = ledger.balances(page.conn, page.principal)
        due = invoicing.amounts_due(page.conn, page.principal)
    names = {account.id: account.name for account in everyone}
    context = {
        "accounts": found,
        "total": len(everyone),
        "q": q,
        "names": names,
        "balances": balances,
        "due": {account_id: sorted(amounts.items()) for account_id, amounts in due.items()},
    }
    return page_response(page, "accounts.html", context)


def _chart(usage: aggregates.UsageByMonth) -> list[dict[str, Any]]:
    """One chart per currency: its products' amounts (and units, for the tooltips) month by month, as exact text."""
    charts: dict[str, dict[str, Any]] = {}
    for product in usage.products:
        chart = charts.setdefault(
            product.currency, {"currency": product.currency, "months": list(usage.months), "series": []}
        )
        chart["series"].append(
            {
                "product_id": product.product_id,
                "label": product.description,
                "unit": product.unit,
                "amounts": [plain_decimal(value) for value in product.amounts],
                "units": [plain_decimal(value) for value in product.units],
            }
        )
    return list(charts.values())


@router.get("/accounts/{account_id}")
def account_page(request: Request, account_id: str) -> Response:
    wanted = uuid_or_404(account_id)
    with signed_in(request) as page:
        conn, principal = page.conn, page.principal
        account = accounts.get_account(conn, principal, wanted)
        reachable = accounts.list_accounts(conn, principal)
        now = utcnow()
        usage = aggregates.usage_by_month(conn, principal, account.id, f"{now:%Y-%m}")
        invoices = invoicing.list_invoices(conn, principal, account_id=account.id)
        context: dict[str, Any] = {
            "account": account,
            "parent": next((other for other in reachable if other.id == account.parent_account_id), None),
            "children": [other for other in reachable if other.parent_account_id == account.id],
            "balance": ledger.balance(conn, principal, account.id),
            "transactions": ledger.transactions(conn, principal, account.id)[:RECENT_TRANSACTIONS],
            "features": _feature_rows(conn, principal, account),
            "usage": usage,
            "charts": _chart(usage),
            "invoices": invoices,
            "payments": payments.list_payments(conn, principal, account.id),
        } | plans.account_terms(conn, principal, account)
    numbers = {invoice.id: invoice.number for invoice in invoices}
    overdue = {invoice.id for invoice in invoices if invoicing.is_overdue(invoice, now)}
    return page_response(page, "account.html", context | {"invoice_numbers": numbers, "overdue": overdue})


def _feature_rows(conn: Connection, principal: Principal, account: Account) -> list[dict[str, Any]]:
    resets = {feature.name: feature.reset for feature in features.list_features(conn, principal)}
    rows = []
    for item in plans_service.feature_usages(conn, principal, account.id):
        share = None if not item.limit else item.usage / item.limit
        level = "none" if share is None else "full" if share >= 1 else "near" if share >= NEAR_LIMIT else "ok"
        rows.append(
            {
                "name": item.name,
                "description": item.description,
                "limit": item.limit,
                "usage": item.usage,
                "monthly": resets.get(item.name) == "monthly",
                "percent": None if share is None else round(share * 100),
                "level": level,
            }
        )
    return rows


@router.get("/invoices")
def invoices_page(request: Request, status: str = "", month: str = "") -> Response:
    chosen_status = status if status in {"open", "paid", "void"} else None
    chosen_month = month if len(month) == 7 and month[4] == "-" and month.replace("-", "").isdigit() else None
    with signed_in(request) as page:
        found = invoicing.list_invoices(page.conn, page.principal, status=chosen_status, month=chosen_month)
        names = {account.id: account.name for account in accounts.list_accounts(page.conn, page.principal)}
    now = utcnow()
    context = {
        "invoices": found,
        "names": names,
        "status": chosen_status or "",
        "month": chosen_month or "",
        "overdue": {invoice.id for invoice in found if invoicing.is_overdue(invoice, now)},
    }
    return page_response(page, "invoices.html", context)


@router.get("/invoices/{invoice_id}")
def invoice_page(request: Request, invoice_id: str) -> Response:
    wanted = uuid_or_404(invoice_id)
    with signed_in(request) as page:
        invoice = invoicing.get_invoice(page.conn, page.principal, wanted)
        account = accounts.get_account(page.conn, page.principal, invoice.account_id)
        received = payments.list_payments(page.conn, page.principal, account.id)
    applied = [
        (payment, allocation.amount)
        for payment in received
        for allocation in payment.allocations
        if allocation.invoice_id == invoice.id
    ]
    context = {
        "invoice": invoice,
        "account": account,
        "applied": applied,
        "overdue": {invoice.id} if invoicing.is_overdue(invoice) else set(),
    }
    return page_response(page, "invoice.html", context)


@router.get("/billing-runs")
def billing_runs_page(request: Request) -> Response:
    with signed_in(request) as page:
        runs = invoicing.list_billing_runs(page.conn, page.principal)
    return page_response(page, "billing_runs.html", actions.billing_form_context(runs))


# --- wiring ----------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the console on ``app``: its pages and forms, its static files, and its session key."""
    settings: Settings = app.state.settings
    configured = settings.session_secret
    # Unset: a key of this process alone, so sessions end with it (documented in docs/console.md).
    app.state.console_secret = (
        configured.get_secret_value().encode("utf-8") if configured is not None else secrets.token_bytes(32)
    )

    async def to_sign_in(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequired)
        response = sign_in_redirect(error.next_path, error.reason)
        if error.had_cookie:
            response.delete_cookie(
                session.COOKIE, path="/ui", secure=over_https(request), httponly=True, samesite="lax"
            )
        return response

    async def refused(_request: Request, error: Exception) -> Response:
        assert isinstance(error, ActionRefused)
        return error.response

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(ActionRefused, refused)
    app.include_router(router)
    app.include_router(actions.router)
    app.include_router(plans.router)
    app.include_router(webhooks.router)
    app.include_router(alerts.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="console-static")
