"""Who is calling: credentials read from the request, checked by the accounts service, and the scope a route needs.

Every route that touches an organization's data depends on :func:`authorized`; the reach of the key
it returns is then applied by the services (``accounts/reach.py``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBearer

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Principal
from meterbook.api.routing import reading
from meterbook.errors import Forbidden, InvalidAuthorization, MissingApiKey

__all__ = ["authorized", "basic_scheme", "bearer_scheme"]

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


def authorized(scope: str | None, *, allow_basic: bool = False) -> Callable[..., Principal]:
    """A dependency giving the calling key, refused unless it holds ``scope`` (``None``: any valid key)."""

    def check(request: Request) -> Principal:
        principal = _authenticate(request, allow_basic)
        if scope is not None:
            if principal.is_platform:
                raise Forbidden("A platform key can only create organizations; use an organization or account key.")
            if not principal.has_scope(scope):
                raise Forbidden(f"The API key lacks the scope {scope!r} that this call needs.")
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
