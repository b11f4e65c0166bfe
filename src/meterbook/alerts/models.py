"""What the alerts domain stores and decides with."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal, NamedTuple, get_args

from meterbook.features.models import CounterChange
from meterbook.ledger.models import BalanceChange

__all__ = [
    "ALERT_TYPES",
    "MONTH_TYPES",
    "Alert",
    "AlertType",
    "Trigger",
    "UsageWritten",
    "Writes",
]

AlertType = Literal["credit_balance_below", "spend_above", "usage_above", "feature_usage_above"]
ALERT_TYPES: Final[tuple[AlertType, ...]] = get_args(AlertType)
#: The types that fire at most once per account and UTC month; the balance alert fires once per crossing.
MONTH_TYPES: Final = frozenset({"spend_above", "usage_above", "feature_usage_above"})


@dataclass(frozen=True)
class Alert:
    id: uuid.UUID
    organization_id: uuid.UUID
    #: None: every account of the organization.
    account_id: uuid.UUID | None
    name: str | None
    type: AlertType
    #: Credits, money in the account's currency, units, or a percent of the feature's limit, by type.
    threshold: Decimal
    #: The product of a ``usage_above`` alert.
    product_id: str | None
    #: The feature of a ``feature_usage_above`` alert.
    feature: str | None
    created_at: datetime

    def covers(self, account_id: uuid.UUID) -> bool:
        return self.account_id is None or self.account_id == account_id


@dataclass(frozen=True)
class Trigger:
    """One firing of an alert for one account."""

    id: uuid.UUID
    alert_id: uuid.UUID
    account_id: uuid.UUID
    #: ``YYYY-MM`` for the month types; for a balance alert the ordinal of the crossing ("1", "2", ...).
    period: str
    #: What crossed the threshold: the balance, the month's spend or units, or the percent of the limit.
    value: Decimal
    threshold: Decimal
    triggered_at: datetime


class UsageWritten(NamedTuple):
    """A month's usage of a product by an account changed (metered usage was added to its aggregates)."""

    account_id: uuid.UUID
    month: str
    product_id: str


@dataclass(frozen=True)
class Writes:
    """What one batch of usage changed, as the writes themselves saw it: what the alerts are decided from."""

    usage: Collection[UsageWritten] = frozenset()
    balances: Sequence[BalanceChange] = field(default_factory=list)
    counters: Sequence[CounterChange] = field(default_factory=list)

    def accounts(self) -> set[uuid.UUID]:
        found = {written.account_id for written in self.usage}
        found.update(change.account_id for change in self.balances)
        found.update(change.account_id for change in self.counters)
        return found
