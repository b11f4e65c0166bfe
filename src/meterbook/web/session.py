"""The console's session cookie: which sign-in it belongs to, until when, and the server's signature over both.

The cookie holds ``<session id>.<expiry>.<signature>``: the id of the session's row (written at sign-in,
``accounts.start_console_session``) and a Unix expiry, signed with HMAC-SHA256 under the server's session
secret. No part of the key is in it. A valid signature proves that the server issued the cookie; the row
then says whether the session still lives, and the key it was opened with is checked again on every
request (``accounts.principal_for_session``): signing out ends the row, so a copy of the cookie kept
after sign-out is worthless, and revoking or expiring the key ends the session at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

__all__ = ["COOKIE", "LIFETIME", "read", "sign"]

COOKIE = "meterbook_console"
#: A working day: long enough not to interrupt, short enough that a forgotten session ends by itself.
LIFETIME = timedelta(hours=8)
# Ties the signature to this use, so that no other HMAC the server might make under the same secret fits.
_CONTEXT = b"meterbook console session v1\x1f"


def _signature(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, _CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(secret: bytes, session_id: uuid.UUID, expires_at: datetime) -> str:
    """The cookie value for the session ``session_id``, which lasts until ``expires_at``."""
    payload = f"{session_id.hex}.{int(expires_at.timestamp())}"
    return f"{payload}.{_signature(secret, payload)}"


def read(secret: bytes, value: str, now: datetime) -> uuid.UUID | None:
    """The session id a cookie value stands for, or None if it is malformed, forged, or expired."""
    parts = value.split(".")
    if len(parts) != 3:
        return None
    session_hex, expires_text, signature = parts
    payload = f"{session_hex}.{expires_text}"
    try:
        expected = _signature(secret, payload)
    except UnicodeEncodeError:
        return None
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        return None
    try:
        session_id = uuid.UUID(hex=session_hex)
        expires = int(expires_text)
    except (ValueError, binascii.Error):
        return None
    if expires <= now.timestamp():
        return None
    return session_id
