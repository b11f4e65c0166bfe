"""Column types that keep Python values exact and timezone-aware on both databases."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from meterbook.kit.money import MONEY_SCALE, from_scaled, to_scaled
from meterbook.kit.time import as_utc

__all__ = ["FixedDecimal", "UtcDateTime"]


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; ``timestamptz`` on PostgreSQL, sortable UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        value = as_utc(value)
        # SQLite keeps text; dropping the (always UTC) offset keeps that text sortable.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class FixedDecimal(TypeDecorator[Decimal]):
    """A ``Decimal`` stored as a 64-bit integer at a fixed number of decimal places (never a float)."""

    impl = BigInteger
    cache_ok = True

    def __init__(self, scale: int = MONEY_SCALE, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scale = scale

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return to_scaled(Decimal(value), self.scale)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_scaled(int(value), self.scale)
