"""Who an import or export acts as: an API key, checked exactly as the API checks it."""

from __future__ import annotations

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Principal
from meterbook.db import Database
from meterbook.errors import Forbidden

__all__ = ["principal_for"]


def principal_for(database: Database, token: str, scope: str) -> Principal:
    """The key's principal, if it is valid and holds ``scope``; else the API's own authentication errors."""
    with database.read() as conn:
        principal = accounts.authenticate(conn, token.strip())
    if not principal.has_scope(scope):
        raise Forbidden(f"The key lacks the scope {scope}.")
    return principal
