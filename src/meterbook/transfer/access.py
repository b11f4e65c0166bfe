"""Who an import or export acts as: an API key, checked exactly as the API checks it."""

from __future__ import annotations

from meterbook.accounts import service as accounts
from meterbook.accounts.access import Action, authorize
from meterbook.accounts.models import Principal
from meterbook.db import Database

__all__ = ["principal_for"]


def principal_for(database: Database, token: str, action: Action) -> Principal:
    """The key's principal, if it is valid and may do ``action``; else the API's own errors."""
    with database.read() as conn:
        principal = accounts.authenticate(conn, token.strip())
    authorize(principal, action)
    return principal
