"""Who is calling: credentials read from the request, checked by the accounts service, and what a route does.

Every route that touches an organization's data depends on :func:`authorized` with the action it
performs (the Cloudflare dialect, which refuses credentials in Cloudflare's own words, has its own check
in ``api/cloudflare.py``); whether the key may do it is decided by ``accounts/access.py`` alone, and the
reach of the key it returns is then applied by the services (``accounts/reach.py``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBearer
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from meterbook.accounts import service as accounts
from meterbook.accounts.access import Action, authorize
from meterbook.accounts.models import Principal
from meterbook.api.routing import database, reading
from meterbook.errors import InvalidAuthorization, MissingApiKey

__all__ = [
    "auth_key_scheme",
    "authorized",
    "authorized_on_loop",
    "basic_scheme",
    "bearer_principal",
    "bearer_scheme",
]

# Declared only so that OpenAPI documents the schemes; the header is read below, where each failure gets its own code.
bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer mbk_<id>_<secret>`")


class _DocumentedBasic(HTTPBasic):
    """HTTP Basic for OpenAPI only: it never answers by itself (FastAPI's would reply 401 to a bad header)."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


basic_scheme = _DocumentedBasic(
    scheme_name="HTTPBasic", auto_error=False, description="The key's id as user name, its secret as password."
)


def _authenticate(request: Request, allow_basic: bool) -> Principal:
    header = request.headers.get("authorization")
    if header is None or not header.strip():
        raise MissingApiKey()
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        with reading(request) as conn:
            return accounts.authenticate(conn, credentials)
    if allow_basic and scheme.lower() == "basic" and credentials:
        try:
            user, separator, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidAuthorization("The Basic credentials are not base64 of 'key id:secret'.") from None
        if not separator:
            raise InvalidAuthorization("The Basic credentials must be 'key id:secret'.")
        with reading(request) as conn:
            return accounts.authenticate_basic(conn, user, password)
    expected = "'Bearer <key>' or 'Basic <id:secret>'" if allow_basic else "'Bearer <key>'"
    raise InvalidAuthorization(f"The Authorization header must be {expected}.")


def authorized(action: Action | None, *, allow_basic: bool = False) -> Callable[..., Principal]:
    """A dependency giving the calling key, refused unless it may do ``action`` (``None``: any valid key)."""

    def check(request: Request) -> Principal:
        principal = _authenticate(request, allow_basic)
        if action is not None:
            authorize(principal, action)
        return principal

    if allow_basic:

        def bearer_or_basic(
            request: Request, _bearer: object = Depends(bearer_scheme), _basic: object = Depends(basic_scheme)
        ) -> Principal:
            return check(request)

        return bearer_or_basic

    def bearer(request: Request, _bearer: object = Depends(bearer_scheme)) -> Principal:
        return check(request)

    return bearer


def bearer_principal(conn: Connection, token: str, action: Action) -> Principal:
    """The key a bearer token stands for, refused unless it may do ``action``: for a caller with its own transaction."""
    principal = accounts.authenticate(conn, token)
    authorize(principal, action)
    return principal


def authorized_on_loop(action: Action) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Like :func:`authorized`, for the hottest routes, which are async.

    On SQLite the key is read on the event loop: a local read of a few hundred microseconds costs less
    than handing the request to a worker thread and back. On PostgreSQL (a network round trip) it is read
    in a worker thread, as for every other route.
    """

    def check(request: Request) -> Principal:
        principal = _authenticate(request, allow_basic=False)
        authorize(principal, action)
        return principal

    async def bearer(request: Request, _bearer: object = Depends(bearer_scheme)) -> Principal:
        if database(request).is_sqlite:
            return check(request)
        return await run_in_threadpool(check, request)

    return bearer


# --- X-Auth-Email + X-Auth-Key (the Cloudflare dialect's second scheme) ------------------------------

# Documented as the key's scheme; the e-mail that must go with it is documented as a header parameter,
# since OpenAPI cannot say "these two together" with FastAPI's one-scheme-per-entry security lists.
auth_key_scheme = APIKeyHeader(
    name="X-Auth-Key",
    scheme_name="XAuthKey",
    auto_error=False,
    description="The API key (`mbk_<id>_<secret>`), sent with `X-Auth-Email`: the e-mail of the key's account. "
    "Only an account key has an e-mail; an organization key must use `Authorization: Bearer`.",
)
