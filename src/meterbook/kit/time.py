"""Time in meterbook is always an aware UTC datetime; the wire form is RFC 3339 with ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["as_utc", "format_rfc3339", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A naive datetime is taken to be UTC already (that is how SQLite hands timestamps back)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_rfc3339(moment: datetime) -> str:
    """``2024-01-01T12:00:00Z``, with a microsecond fraction only when there is one."""
    moment = as_utc(moment)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"
