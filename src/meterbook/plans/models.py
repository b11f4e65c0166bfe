"""What the plans domain stores, and the one rule that says which price applies to an account's usage."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Literal

from meterbook.catalog.models import Product
from meterbook.kit.money import round_to_minor_unit
from meterbook.pricing import PriceModel, per_unit_price

__all__ = [
    "AccountTerms",
    "AppliedPrice",
    "FeePart",
    "IncludedCredits",
    "NegotiatedPrice",
    "Plan",
    "PlanVersion",
    "Rollover",
    "Subscription",
    "applicable_price",
    "contracted_price",
    "fee_parts",
    "plan_at",
    "plan_id_at",
    "subscription_at",
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


def contracted_price(
    negotiated: Sequence[NegotiatedPrice], plan: Plan | None, product_id: str, moment: datetime
) -> AppliedPrice | None:
    """The price an account agreed to for its usage of ``product_id`` at ``moment`` on ``plan`` (None: on no plan):
    its negotiated price in force then, else the price of the plan version in force then (if that version prices
    the product); None when neither holds, and the catalog's price applies.

    Both change only at a month's first instant, so the answer is the same for every moment of a month: usage
    rated by plan is priced when read, from its month (``aggregates.charges``)."""
    mine = [found for found in negotiated if found.product_id == product_id and found.effective_from <= moment]
    if mine:
        latest = max(mine, key=lambda found: found.effective_from)
        return AppliedPrice("negotiated", latest.price, latest.effective_from)
    version = None if plan is None else plan.version_at(moment)
    if plan is not None and version is not None and product_id in version.prices:
        return AppliedPrice("plan", version.prices[product_id], version.effective_from, plan.code)
    return None


def subscription_at(subscriptions: Sequence[Subscription], moment: datetime) -> Subscription | None:
    """The one of an account's subscriptions that covers ``moment``: they never overlap, so at most one does."""
    return next((subscription for subscription in subscriptions if subscription.covers(moment)), None)


def plan_id_at(subscriptions: Sequence[Subscription], moment: datetime) -> str:
    """The id (as text, as aggregates keep it) of the plan an account was on at ``moment``; "" for none."""
    covering = subscription_at(subscriptions, moment)
    return "" if covering is None else str(covering.plan_id)


def plan_at(terms: AccountTerms, moment: datetime) -> Plan | None:
    """The plan the account is on at ``moment``."""
    covering = subscription_at(terms.subscriptions, moment)
    return None if covering is None else terms.plans.get(covering.plan_id)


def applicable_price(terms: AccountTerms, product: Product, moment: datetime) -> AppliedPrice | None:
    """Which price applies to the account's usage of ``product`` at ``moment``: its negotiated price in force then,
    else the price of the plan version in force then under the subscription that covers ``moment`` (if that version
    prices the product), else the catalog's price in force then; None when there is none at all."""
    agreed = contracted_price(terms.negotiated, plan_at(terms, moment), product.product_id, moment)
    if agreed is not None:
        return agreed
    catalog = [price for price in product.prices if price.effective_from <= moment]
    if not catalog:
        return None
    latest_price = catalog[-1]
    return AppliedPrice("catalog", per_unit_price(latest_price.unit_price), latest_price.effective_from)


@dataclass(frozen=True)
class FeePart:
    """A plan's fixed fee for the days of one month that an account was on it."""

    account_id: uuid.UUID
    plan_code: str
    #: The name of the plan version of the month.
    plan_name: str
    currency: str
    #: The month's fee under that version.
    fee: Decimal
    #: Days of the month on the plan, of ``month_days``.
    days: int
    month_days: int
    #: Rounded to the currency's minor unit: the parts of any split of a month add up to the fee, to the cent.
    amount: Decimal


def _day_of(moment: datetime, first: datetime, last: datetime) -> int:
    """The day of the month (0 to its number of days) at which ``moment`` falls, clamped to the month: the day a
    plan changes on belongs to the new plan."""
    clamped = min(max(moment, first), last)
    return (clamped - first).days


def fee_parts(
    month_first: datetime,
    month_end: datetime,
    subscriptions: Sequence[Subscription],
    plans: Mapping[uuid.UUID, Plan],
    until: datetime | None = None,
) -> list[FeePart]:
    """The fee of each plan the account was on in the month (``month_first`` to ``month_end``, exclusive), by days:
    a part from day ``a`` to day ``b`` (of ``D``) is ``round(fee * b / D) - round(fee * a / D)``, each rounded half
    away from zero to the minor unit, so that the parts of one plan over a whole month add up to its fee exactly.
    ``until`` (an account's archiving) ends every subscription then. Subscriptions are one account's, earliest first.
    """
    month_days = (month_end - month_first).days
    parts: list[FeePart] = []
    for subscription in subscriptions:
        ends = subscription.ends_at if subscription.ends_at is not None else month_end
        if until is not None:
            ends = min(ends, until)
        start = _day_of(subscription.starts_at, month_first, month_end)
        end = _day_of(ends, month_first, month_end)
        plan = plans.get(subscription.plan_id)
        version = None if plan is None else plan.version_at(month_first)
        if plan is None or version is None or end <= start or version.fee == 0:
            continue

        def cumulative(day: int, fee: Decimal = version.fee, currency: str = version.currency) -> Decimal:
            # Wide enough that a quotient exactly on a half cent is seen as one (never rounded twice).
            with localcontext(prec=60):
                return round_to_minor_unit(fee * day / month_days, currency)

        parts.append(
            FeePart(
                account_id=subscription.account_id,
                plan_code=plan.code,
                plan_name=version.name,
                currency=version.currency,
                fee=version.fee,
                days=end - start,
                month_days=month_days,
                amount=cumulative(end) - cumulative(start),
            )
        )
    return parts
