"""Time in meterbook is always an aware UTC datetime; the wire form is RFC 3339 with ``Z``."""

from __future__ import annotations

from datetime import UTC, date, datetime

__all__ = ["as_utc", "format_rfc3339", "month_of", "month_start", "next_month", "utcnow"]


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
    # strftime writes the year 584 as "584"; RFC 3339 wants four digits.
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def month_of(moment: date) -> str:
    """``YYYY-MM`` of a moment, with four digits of year (strftime writes the year 584 as "584")."""
    return f"{moment.year:04d}-{moment.month:02d}"


def month_start(month: str) -> datetime:
    """The first instant of a ``YYYY-MM`` month, UTC."""
    year, number = month.split("-")
    return datetime(int(year), int(number), 1, tzinfo=UTC)


def next_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"
