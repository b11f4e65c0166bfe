"""A short digest of what a client sent, to tell an identical retry from a different request with the same id."""

from __future__ import annotations

import hashlib
from typing import Any

from meterbook.kit import jsontext

__all__ = ["fingerprint"]


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def fingerprint(content: dict[str, Any]) -> str:
    """128 bits of SHA-256 over the content with sorted keys: equal content, equal digest."""
    return hashlib.sha256(jsontext.dumps(_canonical(content))).hexdigest()[:32]
