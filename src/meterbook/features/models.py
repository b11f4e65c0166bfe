"""What the features domain stores and shows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from meterbook.kit.time import month_of

__all__ = ["CounterChange", "Feature", "FeatureUsage", "UsageDelta", "period_of"]


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    default_limit: int | None
    reset: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class FeatureUsage:
    """A feature as one account (or a whole organization) sees it now: its limit and what is in use."""

    name: str
    description: str
    limit: int | None
    usage: int


@dataclass(frozen=True)
class UsageDelta:
    """One feature event to count: its period follows from the feature's reset and when it occurred."""

    account_id: uuid.UUID
    feature: str
    occurred_at: datetime
    delta: int


@dataclass(frozen=True)
class CounterChange:
    """What one write did to a feature's counter of an account, as written under the counter row's lock."""

    account_id: uuid.UUID
    feature: str
    #: The counter's period: "" (never resets) or "YYYY-MM".
    period: str
    #: The latest UTC month of the uses counted: the month an alert on the usage counts them in.
    month: str
    before: int
    after: int
    #: The effective limit the write was checked against; None: unlimited.
    limit: int | None


def period_of(reset: str, moment: datetime) -> str:
    """The counter a use at ``moment`` goes to: one for ever, or one per UTC month."""
    return month_of(moment) if reset == "monthly" else ""
