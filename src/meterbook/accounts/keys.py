"""The shape of an API key, and how its secret is kept.

A key reads ``mbk_<id>_<secret>``: the id is the key's UUID as 32 hex digits (it is also the HTTP
Basic user name), the secret 48 hex digits (192 random bits). Only the SHA-256 of the secret is
stored. A slow password hash would add nothing here: the secret is random, not chosen by a person,
so it cannot be guessed from its hash, and a fast hash keeps authentication cheap on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

__all__ = ["ParsedKey", "hash_secret", "mask", "new_secret", "parse_key", "secret_matches", "token_for"]

PREFIX = "mbk_"
_KEY_PATTERN = re.compile(r"mbk_([0-9a-f]{32})_([0-9a-f]{48})")
_ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class ParsedKey:
    key_id: uuid.UUID
    secret: str


def new_secret() -> str:
    return secrets.token_hex(24)


def token_for(key_id: uuid.UUID, secret: str) -> str:
    return f"{PREFIX}{key_id.hex}_{secret}"


def parse_key(token: str) -> ParsedKey | None:
    """The parts of a token, or ``None`` when it is not of meterbook's key shape."""
    match = _KEY_PATTERN.fullmatch(token)
    if match is None:
        return None
    return ParsedKey(uuid.UUID(hex=match.group(1)), match.group(2))


def parse_key_id(text: str) -> uuid.UUID | None:
    """A key id as given in HTTP Basic's user name: with or without hyphens."""
    if not _ID_PATTERN.fullmatch(text):
        return None
    return uuid.UUID(text)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret).encode("ascii"), stored_hash.encode("ascii"))


def mask(token: str) -> str:
    """What may be shown after creation: the prefix, the key id's first 8 digits, and the last four."""
    return f"{token[: len(PREFIX) + 8]}****{token[-4:]}"
