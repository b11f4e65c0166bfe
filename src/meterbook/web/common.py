"""What every console page and action shares: the session, the page's context, the checks a form must pass.

A page is read in one read transaction (:func:`signed_in`). A form that changes something passes, in
this order (:func:`acting`): its Origin (or Referer) names this server, the session is live, the form
carries the session's token, and ``accounts.access.authorize`` lets the key do the action; only then is
anything looked up. The action itself runs in its own write transaction (:func:`attempt`), through the
same service the API calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import Request
from sqlalchemy import Connection
from starlette.responses import HTMLResponse, RedirectResponse, Response

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.access import Action, authorize
from meterbook.accounts.models import Principal
from meterbook.api.routing import reading, writing
from meterbook.config import Settings
from meterbook.errors import AuthenticationError, BadRequest, Conflict, Forbidden, InvalidInput, NotFound, SessionEnded
from meterbook.kit.time import utcnow
from meterbook.web import session
from meterbook.web.render import SECURITY_HEADERS, html

__all__ = [
    "ActionRefused",
    "Form",
    "Page",
    "SignInRequired",
    "acting",
    "attempt",
    "done",
    "over_https",
    "page_response",
    "same_origin",
    "secret",
    "settings",
    "sign_in_redirect",
    "signed_in",
    "submitted",
    "uuid_or_404",
]

T = TypeVar("T")

#: What the navigation and each page offer, by the action that the offer leads to.
OFFERS: dict[str, Action] = {
    "grant": access.GRANT_CREDITS,
    "pay": access.RECORD_PAYMENTS,
    "void": access.VOID_INVOICES,
    "bill": access.RUN_BILLING,
    "list_keys": access.LIST_KEYS,
    "manage_keys": access.MANAGE_KEYS,
    "see_plans": access.SEE_PLANS,
    "see_webhooks": access.READ_WEBHOOKS,
    "resend": access.MANAGE_WEBHOOKS,
    "see_alerts": access.READ_ALERTS,
}


class SignInRequired(Exception):
    """No valid session: answered by a redirect to the sign-in page, which then leads back here."""

    def __init__(self, next_path: str, reason: str | None, had_cookie: bool) -> None:
        super().__init__(reason or "sign in")
        self.next_path = next_path
        self.reason = reason
        self.had_cookie = had_cookie


class ActionRefused(Exception):
    """A form that may not be applied (another site, a missing token, a key without the right): its page."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def secret(request: Request) -> bytes:
    value: bytes = request.app.state.console_secret
    return value


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def over_https(request: Request) -> bool:
    return request.url.scheme == "https" or settings(request).base_url.startswith("https://")


def sign_in_redirect(next_path: str, reason: str | None = None) -> RedirectResponse:
    query = {"next": next_path} | ({"reason": reason} if reason else {})
    return RedirectResponse(f"/ui/sign-in?{urlencode(query)}", status_code=303, headers=SECURITY_HEADERS)


def same_origin(request: Request) -> bool:
    """A state-changing form must come from a page of this console: its Origin (or Referer) names this server.

    Browsers send Origin with every POST; a request without either header did not come from a web page
    of another site (which is what a cross-site request forgery needs), so it is let through.
    """
    sent = request.headers.get("origin")
    if sent is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        parts = urlsplit(referer)
        sent = f"{parts.scheme}://{parts.netloc}"
    host = request.headers.get("host", "")
    allowed = {f"{request.url.scheme}://{host}", settings(request).base_url}
    return sent.rstrip("/") in allowed


def _back_to(request: Request) -> str:
    """Where signing in leads after a page or form found no session: a page, never a form's target."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    # A form's address without its last step is the page that shows the form (…/grant/confirm → …/grant).
    return request.url.path.removesuffix("/confirm")


def _session(request: Request, conn: Connection) -> tuple[Principal, uuid.UUID]:
    """The signed-in key, checked again now, and its session; :class:`SignInRequired` if there is none."""
    next_path = _back_to(request)
    cookie = request.cookies.get(session.COOKIE)
    if not cookie:
        raise SignInRequired(next_path, None, had_cookie=False)
    session_id = session.read(secret(request), cookie, utcnow())
    if session_id is None:
        raise SignInRequired(next_path, "expired", had_cookie=True)
    try:
        principal = accounts.principal_for_session(conn, session_id)
    except SessionEnded:
        raise SignInRequired(next_path, "expired", had_cookie=True) from None
    except AuthenticationError:
        raise SignInRequired(next_path, "key", had_cookie=True) from None
    return principal, session_id


def may(principal: Principal, action: Action) -> bool:
    """Whether the key may do ``action``: the access table's answer, so that no page offers what would be refused."""
    try:
        authorize(principal, action)
    except Forbidden:
        return False
    return True


@dataclass
class Page:
    request: Request
    conn: Connection
    principal: Principal
    session_id: uuid.UUID
    context: dict[str, Any]
    #: A flash cookie came with the request: the response clears it (shown once, or dropped if not ours).
    had_flash: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def signed_in(request: Request, *, conn: Connection | None = None) -> Iterator[Page]:
    """A page of a live session, in a read transaction (or ``conn``), with what the layout needs."""
    if conn is None:
        with reading(request) as opened:
            yield _page(request, opened)
    else:
        yield _page(request, conn)


def _page(request: Request, conn: Connection) -> Page:
    principal, session_id = _session(request, conn)
    organization = accounts.get_organization(conn, principal)
    flash_cookie = request.cookies.get(session.FLASH_COOKIE)
    flash = session.read_flash(secret(request), session_id, flash_cookie) if flash_cookie else None
    context = {
        "organization": organization,
        "signed_in": True,
        "path": request.url.path,
        "csrf": session.form_token(secret(request), session_id),
        "may": {name: may(principal, action) for name, action in OFFERS.items()},
        "flash": flash,
    }
    return Page(request, conn, principal, session_id, context, had_flash=flash_cookie is not None)


def page_response(page: Page, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    response = html(template, page.context | context, status)
    if page.had_flash:
        response.delete_cookie(
            session.FLASH_COOKIE, path="/ui", secure=over_https(page.request), httponly=True, samesite="lax"
        )
    return response


def refusal(context: dict[str, Any], title: str, message: str, status: int = 403) -> HTMLResponse:
    """The page of a refused form: what was refused and why, in the layout of the signed-in console."""
    return html(
        "refused.html", {"signed_in": False, "path": ""} | context | {"title": title, "message": message}, status
    )


Form = dict[str, list[str]]


async def submitted(request: Request) -> Form:
    """The posted form (``application/x-www-form-urlencoded``, as the console's forms send it), every value kept.

    A browser sends UTF-8 without NUL; anything else did not come from a console page, and a NUL would
    reach PostgreSQL, which refuses it in text: :class:`BadRequest` (400) before anything is looked at.
    """
    try:
        form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("The form is not valid UTF-8 text.") from None
    if any("\x00" in text for name, values in form.items() for text in (name, *values)):
        raise BadRequest("The form holds a NUL character, which no field may contain.")
    return form


def first(form: Form, name: str) -> str:
    return form.get(name, [""])[0].strip()


@contextmanager
def guarded(request: Request, action: Action) -> Iterator[Page]:
    """A page that shows an action's form or review: a live session whose key may do the action."""
    with signed_in(request) as page:
        _authorize(page, action)
        yield page


@contextmanager
def acting(request: Request, form: Form, action: Action) -> Iterator[Page]:
    """A submitted form that passed every check a change needs; the page (read transaction) to build on."""
    if not same_origin(request):
        raise ActionRefused(
            refusal({}, "Not allowed", "This form did not come from this console, so nothing was done.")
        )
    with signed_in(request) as page:
        if not session.form_token_matches(secret(request), page.session_id, first(form, "csrf")):
            raise ActionRefused(
                refusal(
                    page.context,
                    "Not allowed",
                    "This form is not from your current session (it may be from before you signed in again), "
                    "so nothing was done. Go back, reload the page and submit it again.",
                )
            )
        _authorize(page, action)
        yield page


def _authorize(page: Page, action: Action) -> None:
    try:
        authorize(page.principal, action)
    except Forbidden as refused:
        raise ActionRefused(
            refusal(
                page.context,
                "Not allowed with this key",
                f"The key you signed in with may not {action.name}: {refused.message} "
                "Sign in with an organization key that has this scope to do it.",
            )
        ) from None


class _Rehearsed(Exception):
    def __init__(self, result: object) -> None:
        super().__init__("rehearsed")
        self.result = result


#: What a service refuses for the input itself: shown on the form, never a 500.
FORM_ERRORS = (InvalidInput, Conflict, Forbidden)


def attempt(
    request: Request, work: Callable[[Connection], T], *, apply: bool
) -> T | InvalidInput | Conflict | Forbidden:
    """Run ``work`` (service calls) in one write transaction: committed if ``apply``, else rolled back.

    A review page rehearses the action this way, through the very services that will apply it, so
    that it shows exactly what Confirm will do (the invoices a billing run makes, what a payment
    settles, the keys a revocation takes along) and nothing is stored before Confirm.
    """
    try:
        with writing(request) as conn:
            result = work(conn)
            if not apply:
                raise _Rehearsed(result)
        return result
    except _Rehearsed as rehearsal:
        return cast(T, rehearsal.result)
    except FORM_ERRORS as refused:
        return refused


def done(page: Page, location: str, message: str) -> RedirectResponse:
    """Post/Redirect/Get: the page to show after an action, and a flash that says what was done."""
    response = RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        session.FLASH_COOKIE,
        session.sign_flash(secret(page.request), page.session_id, message),
        max_age=int(session.FLASH_LIFETIME.total_seconds()),
        path="/ui",
        secure=over_https(page.request),
        httponly=True,
        samesite="lax",
    )
    return response


def uuid_or_404(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound("Not a valid id.") from None
