"""The console's session cookie: which sign-in it belongs to, until when, and the server's signature over both.

The cookie holds ``<session id>.<expiry>.<signature>``: the id of the session's row (written at sign-in,
``accounts.start_console_session``) and a Unix expiry, signed with HMAC-SHA256 under the server's session
secret. No part of the key is in it. A valid signature proves that the server issued the cookie; the row
then says whether the session still lives, and the key it was opened with is checked again on every
request (``accounts.principal_for_session``): signing out ends the row, so a copy of the cookie kept
after sign-out is worthless, and revoking or expiring the key ends the session at once.

Two more values are derived from the session id under the same secret, each with its own context:

- the **form token** that every console form carries in a hidden field. A state-changing POST is
  applied only if it sends the token of the session its cookie names: a page of another site can make
  a browser send the cookie, but cannot read a console page to learn the token;
- the **flash**: a short message for the page a successful action redirects to ("Granted 500
  credits to Acme"), carried in a cookie of its own and signed, so that no one but this server can put
  words on a console page, and tied to the session, so that it shows in no other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

__all__ = [
    "COOKIE",
    "FLASH_COOKIE",
    "FLASH_LIFETIME",
    "LIFETIME",
    "form_token",
    "form_token_matches",
    "read",
    "read_flash",
    "sign",
    "sign_flash",
]

COOKIE = "meterbook_console"
#: A working day: long enough not to interrupt, short enough that a forgotten session ends by itself.
LIFETIME = timedelta(hours=8)
FLASH_COOKIE = "meterbook_flash"
#: The flash is read by the page the action redirects to, at once; a flash never read expires soon.
FLASH_LIFETIME = timedelta(minutes=2)
# Ties each signature to its use, so that no other HMAC the server makes under the same secret fits it.
_CONTEXT = b"meterbook console session v1\x1f"
_FORM_CONTEXT = b"meterbook console form token v1\x1f"
_FLASH_CONTEXT = b"meterbook console flash v1\x1f"


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


def _mac(secret: bytes, context: bytes, *parts: bytes) -> str:
    digest = hmac.new(secret, context + b"\x1f".join(parts), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def form_token(secret: bytes, session_id: uuid.UUID) -> str:
    """The hidden field every form of this session carries: only pages of this console know it."""
    return _mac(secret, _FORM_CONTEXT, session_id.bytes)


def form_token_matches(secret: bytes, session_id: uuid.UUID, sent: str | None) -> bool:
    """Whether ``sent`` is this session's form token (compared in constant time)."""
    if not sent:
        return False
    return hmac.compare_digest(form_token(secret, session_id).encode("ascii"), sent.encode("utf-8", "replace"))


def sign_flash(secret: bytes, session_id: uuid.UUID, message: str) -> str:
    """The flash cookie's value: the message, readable only by ``session_id``'s next page."""
    payload = base64.urlsafe_b64encode(message.encode("utf-8")).rstrip(b"=").decode("ascii")
    return f"{payload}.{_mac(secret, _FLASH_CONTEXT, session_id.bytes, payload.encode('ascii'))}"


def read_flash(secret: bytes, session_id: uuid.UUID, value: str) -> str | None:
    """The message of a flash cookie this server signed for this session, or None."""
    payload, _, signature = value.partition(".")
    try:
        expected = _mac(secret, _FLASH_CONTEXT, session_id.bytes, payload.encode("ascii"))
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
            return None
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return None
