"""Identifiers: UUIDs for every stored row, chosen by meterbook unless the client names them."""

from __future__ import annotations

import uuid

__all__ = ["new_id"]


def new_id() -> uuid.UUID:
    return uuid.uuid4()
