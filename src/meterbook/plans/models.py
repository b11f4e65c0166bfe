"""What the plans domain stores, and the one rule that says which price applies to an account's usage."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from meterbook.catalog.models import Product
from meterbook.pricing import PriceModel, per_unit_price

__all__ = [
    "AccountTerms",
    "AppliedPrice",
    "IncludedCredits",
    "NegotiatedPrice",
    "Plan",
    "PlanVersion",
    "Rollover",
    "Subscription",
    "applicable_price",
]

#: What is left of a month's included credits at its end: nothing, all of it, or at most this many credits.
Rollover = Literal["none", "all"] | int


@dataclass(frozen=True)
class IncludedCredits:
    amount: int
    rollover: Rollover


@dataclass(frozen=True)
class PlanVersion:
    """What a plan is from ``effective_from`` (a month's first instant) until the next version's."""

    effective_from: datetime
    name: str
    currency: str
    fee: Decimal
    prices: Mapping[str, PriceModel]
    limits: Mapping[str, int | None]
    included_credits: IncludedCredits | None
    created_at: datetime


@dataclass(frozen=True)
class Plan:
    id: uuid.UUID
    code: str
    created_at: datetime
    updated_at: datetime
    #: Every version, oldest first.
    versions: tuple[PlanVersion, ...]

    def version_at(self, moment: datetime) -> PlanVersion | None:
        """The version in force at ``moment``: the last that starts at or before it."""
        in_force = None
        for version in self.versions:
            if version.effective_from <= moment:
                in_force = version
        return in_force


@dataclass(frozen=True)
class Subscription:
    id: uuid.UUID
    account_id: uuid.UUID
    plan_id: uuid.UUID
    plan_code: str
    starts_at: datetime
    #: Exclusive; None: until changed.
    ends_at: datetime | None
    created_at: datetime

    def covers(self, moment: datetime) -> bool:
        return self.starts_at <= moment and (self.ends_at is None or moment < self.ends_at)


@dataclass(frozen=True)
class NegotiatedPrice:
    """An account's own price of a product, from ``effective_from`` (a month's first instant) until the next one's."""

    account_id: uuid.UUID
    product_id: str
    effective_from: datetime
    price: PriceModel
    created_at: datetime


@dataclass(frozen=True)
class AccountTerms:
    """Everything that decides an account's prices: its negotiated prices, its subscriptions and their plans."""

    negotiated: Sequence[NegotiatedPrice]
    subscriptions: Sequence[Subscription]
    plans: Mapping[uuid.UUID, Plan]


@dataclass(frozen=True)
class AppliedPrice:
    """The price that applies, and where it comes from."""

    source: Literal["negotiated", "plan", "catalog"]
    price: PriceModel
    #: When this price started to hold: the negotiated price's, the plan version's or the catalog price's start.
    effective_from: datetime
    #: The plan, for a plan's price.
    plan_code: str | None = None


def applicable_price(terms: AccountTerms, product: Product, moment: datetime) -> AppliedPrice | None:
    """Which price applies to the account's usage of ``product`` at ``moment``: its negotiated price in force then,
    else the price of the plan version in force then under the subscription that covers ``moment`` (if that version
    prices the product), else the catalog's price in force then; None when there is none at all."""
    negotiated = [
        found for found in terms.negotiated if found.product_id == product.product_id and found.effective_from <= moment
    ]
    if negotiated:
        latest = max(negotiated, key=lambda found: found.effective_from)
        return AppliedPrice("negotiated", latest.price, latest.effective_from)
    for subscription in terms.subscriptions:
        if not subscription.covers(moment):
            continue
        plan = terms.plans.get(subscription.plan_id)
        version = None if plan is None else plan.version_at(moment)
        if plan is not None and version is not None and product.product_id in version.prices:
            return AppliedPrice("plan", version.prices[product.product_id], version.effective_from, plan.code)
        break  # subscriptions never overlap: no other covers the moment
    catalog = [price for price in product.prices if price.effective_from <= moment]
    if not catalog:
        return None
    latest_price = catalog[-1]
    return AppliedPrice("catalog", per_unit_price(latest_price.unit_price), latest_price.effective_from)
