"""What an aggregate is, and how its key and stable id are made."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal, localcontext
from functools import cached_property

from meterbook.kit.money import from_scaled, to_scaled
from meterbook.kit.time import month_of

__all__ = ["Aggregate", "AggregateKey", "month_of", "split_units"]

_NANOS = 10**9
#: Enough significant digits for any product of stored units and a stored price.
_EXACT_DIGITS = 60


@dataclass(frozen=True)
class AggregateKey:
    """Everything that tells one aggregate from another (the contract's key, with the price)."""

    organization_id: uuid.UUID
    account_id: uuid.UUID
    product_id: str
    month: str
    type: str
    direction: str
    resolution: str
    unit: str
    currency: str
    wallet_name: str
    #: The catalog's unit price in force when the usage occurred (0 when the catalog had none).
    price: Decimal
    #: The id of the plan the account was on when the usage occurred, "" for none.
    plan_id: str = ""

    @cached_property
    def id(self) -> str:
        """32 hex digits that stay the same for this key for ever (the Talkdesk dialect's usage id)."""
        parts = [
            str(self.organization_id),
            str(self.account_id),
            self.product_id,
            self.month,
            self.type,
            self.direction,
            self.resolution,
            self.unit,
            self.currency,
            self.wallet_name,
            str(to_scaled(self.price)),
        ]
        # Only when there is one, so that every aggregate rated before plans existed keeps its id.
        if self.plan_id:
            parts.append(self.plan_id)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def split_units(units: Decimal) -> tuple[int, int]:
    """Whole units and nanounits, as stored (both columns are 64-bit integers)."""
    nanos = to_scaled(units)
    return nanos // _NANOS, nanos % _NANOS


@dataclass(frozen=True)
class Aggregate:
    id: str
    account_id: uuid.UUID
    product_id: str
    aggr_product_id: str | None
    description: str
    month: str
    type: str
    direction: str | None
    resolution: str | None
    unit: str
    currency: str
    wallet_name: str | None
    #: As stored: the catalog's unit price. Once priced (``aggregates.charges``) by a negotiated or plan price, the
    #: row's amount divided by its units, rounded to the price scale (what the Talkdesk dialect shows).
    price: Decimal
    number_of_units: Decimal
    event_count: int
    #: The plan the account was on when the usage occurred (its id), "" for none.
    plan_id: str = ""
    #: Set once priced by a negotiated or plan price (``aggregates.charges``): this row's exact part of the price
    #: of its month's units under that price. None: priced by the catalog, units * price.
    amount: Decimal | None = None

    @property
    def total_amount(self) -> Decimal:
        """Exact, never rounded: the amount it was priced at, or at the catalog's price units * price."""
        if self.amount is not None:
            return self.amount
        # Units (up to 28 digits) times a price (up to 19) needs more than Decimal's default 28 digits.
        with localcontext(prec=_EXACT_DIGITS):
            return (self.number_of_units * self.price).normalize()

    @staticmethod
    def units_of(whole: int, nanos: int) -> Decimal:
        if not nanos:
            return Decimal(whole)  # the usual whole units: read for every aggregate of a billing run
        return Decimal(whole) + from_scaled(nanos)
