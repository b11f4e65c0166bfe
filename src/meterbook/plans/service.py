"""The rules of plans, subscriptions and negotiated prices (CONTRACT §6).

- A plan changes by versions, each from a month's first instant until the next version's. ``PUT`` of a plan adds
  a version (or replaces the one from the same month); it is refused, naming ``effective_from``, when the months
  it would hold for include an invoiced one: what an issued invoice was priced by never changes.
- An account is on at most one plan at any instant. Moving it to a plan from ``starts_at`` ends what covers that
  instant and drops what was scheduled later; a start on or before an invoiced month is refused.
- A negotiated price of a product holds for one account from a month on, and beats its plan.
- :func:`applicable_price` (``models``) is the one rule of which price applies; :func:`price_at` answers it
  from the database.

Every write takes the organization's usage lock shared, as ingestion does, so no billing run interleaves with it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Account, Principal
from meterbook.accounts.reach import require_organization, resolve_account
from meterbook.catalog import service as catalog
from meterbook.catalog.models import Product
from meterbook.db.locks import lock_organization_usage
from meterbook.errors import FieldError, NotFound, ValidationFailed
from meterbook.features import service as features
from meterbook.features.models import FeatureUsage
from meterbook.kit.time import month_of, month_start, next_month, utcnow
from meterbook.plans import repository
from meterbook.plans.models import (
    AccountTerms,
    AppliedPrice,
    FeePart,
    IncludedCredits,
    NegotiatedPrice,
    Plan,
    PlanVersion,
    Subscription,
    applicable_price,
    contracted_price,
    fee_parts,
    subscription_at,
)
from meterbook.plans.schemas import NegotiatedPricePut, PlanPut, SubscriptionPut

__all__ = [
    "AccountSubscriptions",
    "PriceBook",
    "account_terms",
    "end_subscription",
    "every_subscription",
    "feature_usages",
    "get_plan",
    "list_plans",
    "month_fees",
    "negotiated_prices",
    "plan_limits",
    "price_at",
    "price_book",
    "put_negotiated_price",
    "put_plan",
    "put_subscription",
    "subscriptions",
    "subscriptions_by_account",
]


@dataclass(frozen=True)
class AccountSubscriptions:
    account_id: uuid.UUID
    #: The subscription in force now, if any.
    current: Subscription | None
    #: Those that start later, earliest first.
    scheduled: tuple[Subscription, ...]


def _this_month() -> datetime:
    return month_start(month_of(utcnow()))


def _invoiced_between(conn: Connection, organization_id: uuid.UUID, start: datetime, end: datetime | None) -> list[str]:
    return repository.invoiced_months_between(
        conn, organization_id, month_of(start), None if end is None else month_of(end)
    )


# --- plans -----------------------------------------------------------------------------------------


def put_plan(conn: Connection, principal: Principal, code: str, data: PlanPut) -> tuple[Plan, bool]:
    """Create the plan, or give it a version from ``effective_from``; nothing is written if anything is wrong.
    True when the plan was created."""
    organization_id = require_organization(principal)
    lock_organization_usage(conn, organization_id, exclusive=False)
    now = utcnow()
    effective_from = data.effective_from or _this_month()
    errors: list[FieldError] = []
    products = catalog.products_by_id(conn, organization_id, data.prices)
    for product_id in data.prices:
        product = products.get(product_id)
        if product is None:
            errors.append(
                FieldError(
                    f"body.prices.{product_id}",
                    f"no product {product_id!r} in the catalog: create it first (PUT /v1/products/{product_id})",
                    "unknown_product",
                )
            )
        elif product.currency != data.currency:
            errors.append(
                FieldError(
                    f"body.prices.{product_id}",
                    f"the product is sold in {product.currency}, the plan in {data.currency}: a plan prices only "
                    "products of its currency",
                    "currency_mismatch",
                )
            )
    defined = features.features_by_name(conn, organization_id, data.limits)
    errors += [
        FieldError(
            f"body.limits.{name}",
            f"no feature {name!r}: define it first (PUT /v1/features/{name})",
            "unknown_feature",
        )
        for name in data.limits
        if name not in defined
    ]
    found = repository.list_plans(conn, organization_id, [code])
    plan = found[0] if found else None
    if plan is not None and plan.versions and plan.versions[0].currency != data.currency:
        errors.append(
            FieldError(
                "body.currency",
                f"plan {code!r} is in {plan.versions[0].currency}: every version of a plan has one currency "
                "(make a new plan for another)",
                "currency_mismatch",
            )
        )
    later = [] if plan is None else [v.effective_from for v in plan.versions if v.effective_from > effective_from]
    invoiced = _invoiced_between(conn, organization_id, effective_from, min(later) if later else None)
    if invoiced:
        errors.append(
            FieldError(
                "body.effective_from",
                f"{', '.join(invoiced[:3])}{' …' if len(invoiced) > 3 else ''} "
                f"{'is' if len(invoiced) == 1 else 'are'} already invoiced, and a version from "
                f"{month_of(effective_from)} would change {'its' if len(invoiced) == 1 else 'their'} prices: "
                f"start it in {next_month(invoiced[-1])} or later",
                "month_invoiced",
            )
        )
    if errors:
        raise ValidationFailed(errors)
    if plan is None:
        plan_id = repository.insert_plan(
            conn,
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "code": code,
                "created_at": now,
                "updated_at": now,
            },
        )
    else:
        plan_id = plan.id
        repository.touch_plan(conn, plan_id, now)
    credits = data.included_credits
    repository.put_version(
        conn,
        plan_id,
        PlanVersion(
            effective_from=effective_from,
            name=data.name,
            currency=data.currency,
            fee=data.fee,
            prices=dict(data.prices),
            limits=dict(data.limits),
            included_credits=None if credits is None else IncludedCredits(credits.amount, credits.rollover),
            created_at=now,
        ),
    )
    return repository.list_plans(conn, organization_id, [code])[0], plan is None


def list_plans(conn: Connection, principal: Principal) -> list[Plan]:
    return repository.list_plans(conn, require_organization(principal))


def get_plan(conn: Connection, principal: Principal, code: str) -> Plan:
    found = repository.list_plans(conn, require_organization(principal), [code])
    if not found:
        raise NotFound(f"No plan with code {code!r} was found.")
    return found[0]


# --- subscriptions ---------------------------------------------------------------------------------


def _view(conn: Connection, account: Account) -> AccountSubscriptions:
    now = utcnow()
    found = repository.subscriptions_of(conn, [account.id])
    current = subscription_at(found, now)
    return AccountSubscriptions(account.id, current, tuple(item for item in found if item.starts_at > now))


def subscriptions(conn: Connection, principal: Principal, account_id: uuid.UUID) -> AccountSubscriptions:
    """The account's subscription in force now and those scheduled to start later."""
    return _view(conn, resolve_account(conn, principal, account_id))


def put_subscription(
    conn: Connection, principal: Principal, account_id: uuid.UUID, data: SubscriptionPut
) -> AccountSubscriptions:
    """Put the account on ``data.plan`` from ``data.starts_at`` (default now) on, replacing what was there then."""
    account = resolve_account(conn, principal, account_id)
    organization_id = account.organization_id
    lock_organization_usage(conn, organization_id, exclusive=False)
    accounts.lock_accounts(conn, [account.id])  # one change of the account's plans at a time
    starts_at = data.starts_at or utcnow()
    found = repository.list_plans(conn, organization_id, [data.plan])
    if not found:
        raise ValidationFailed.field(
            "body.plan", f"no plan with code {data.plan!r}: create it first (PUT /v1/plans/{data.plan})", "unknown_plan"
        )
    plan = found[0]
    errors: list[FieldError] = []
    if plan.versions and plan.versions[0].currency != account.currency:
        errors.append(
            FieldError(
                "body.plan",
                f"plan {plan.code!r} is in {plan.versions[0].currency}, the account in {account.currency}",
                "currency_mismatch",
            )
        )
    if plan.version_at(starts_at) is None:
        first = plan.versions[0].effective_from if plan.versions else None
        errors.append(
            FieldError(
                "body.starts_at",
                f"plan {plan.code!r} has no version in force then"
                + ("" if first is None else f": its first holds from {first:%Y-%m-%dT%H:%M:%SZ}; start at or after it"),
                "plan_not_in_force",
            )
        )
    invoiced = _invoiced_between(conn, organization_id, starts_at, None)
    if invoiced:
        errors.append(
            FieldError(
                "body.starts_at",
                f"{invoiced[-1]} is already invoiced: a plan change can start in {next_month(invoiced[-1])} at the "
                "earliest",
                "month_invoiced",
            )
        )
    if errors:
        raise ValidationFailed(errors)
    existing = repository.subscriptions_of(conn, [account.id])
    covering = subscription_at(existing, starts_at)
    unchanged = (
        covering is not None
        and covering.plan_id == plan.id
        and covering.ends_at is None
        and not any(item.starts_at > starts_at for item in existing)
    )
    if not unchanged:
        repository.end_subscriptions_at(conn, account.id, starts_at)
        repository.insert_subscription(
            conn,
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "account_id": account.id,
                "plan_id": plan.id,
                "starts_at": starts_at,
                "ends_at": None,
                "created_at": utcnow(),
            },
        )
    return _view(conn, account)


def end_subscription(conn: Connection, principal: Principal, account_id: uuid.UUID) -> AccountSubscriptions:
    """End the account's plan at the end of the current month; what was scheduled after it is dropped."""
    account = resolve_account(conn, principal, account_id)
    lock_organization_usage(conn, account.organization_id, exclusive=False)
    accounts.lock_accounts(conn, [account.id])
    now = utcnow()
    end = month_start(next_month(month_of(now)))
    existing = repository.subscriptions_of(conn, [account.id])
    if not any(item.ends_at is None or item.ends_at > end for item in existing):
        raise NotFound(f"Account {account.id} has no subscription that goes on past this month.")
    repository.end_subscriptions_at(conn, account.id, end)
    return _view(conn, account)


# --- negotiated prices -----------------------------------------------------------------------------


def put_negotiated_price(
    conn: Connection, principal: Principal, account_id: uuid.UUID, product_id: str, data: NegotiatedPricePut
) -> tuple[NegotiatedPrice, bool]:
    """Give the account its own price of the product from ``effective_from`` (default: this month). True when new."""
    account = resolve_account(conn, principal, account_id)
    organization_id = account.organization_id
    lock_organization_usage(conn, organization_id, exclusive=False)
    accounts.lock_accounts(conn, [account.id])
    if product_id not in catalog.products_by_id(conn, organization_id, [product_id]):
        raise NotFound(f"No product with id {product_id!r} was found.")
    effective_from = data.effective_from or _this_month()
    existing = repository.negotiated_prices(conn, [account.id], [product_id])
    later = [item.effective_from for item in existing if item.effective_from > effective_from]
    invoiced = _invoiced_between(conn, organization_id, effective_from, min(later) if later else None)
    if invoiced:
        raise ValidationFailed.field(
            "body.effective_from",
            f"{invoiced[-1]} is already invoiced, and this price would hold for it: start it in "
            f"{next_month(invoiced[-1])} or later",
            "month_invoiced",
        )
    price = NegotiatedPrice(account.id, product_id, effective_from, data.price, utcnow())
    repository.put_negotiated_price(conn, organization_id, price)
    created = not any(item.effective_from == effective_from for item in existing)
    return price, created


def negotiated_prices(conn: Connection, principal: Principal, account_id: uuid.UUID) -> list[NegotiatedPrice]:
    """Every negotiated price of the account, by product, oldest first."""
    account = resolve_account(conn, principal, account_id)
    return repository.negotiated_prices(conn, [account.id])


# --- which price applies ---------------------------------------------------------------------------


def account_terms(
    conn: Connection, organization_id: uuid.UUID, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountTerms]:
    """What decides the prices of each account (already known to be the organization's), in three queries."""
    wanted = list(set(account_ids))
    negotiated = repository.negotiated_prices(conn, wanted)
    subscribed = repository.subscriptions_of(conn, wanted)
    plan_ids = {item.plan_id for item in subscribed}
    plans = {plan.id: plan for plan in repository.list_plans(conn, organization_id, ids=plan_ids)} if plan_ids else {}
    return {
        account_id: AccountTerms(
            negotiated=[item for item in negotiated if item.account_id == account_id],
            subscriptions=[item for item in subscribed if item.account_id == account_id],
            plans=plans,
        )
        for account_id in wanted
    }


def price_at(
    conn: Connection, organization_id: uuid.UUID, account_id: uuid.UUID, product: Product, moment: datetime
) -> AppliedPrice | None:
    """Which price applies to the account's usage of ``product`` at ``moment``: its negotiated price, else its plan's
    (the version in force then), else the catalog's. The rule is :func:`~meterbook.plans.models.applicable_price`."""
    terms = account_terms(conn, organization_id, [account_id])[account_id]
    return applicable_price(terms, product, moment)


def every_subscription(conn: Connection) -> dict[uuid.UUID, list[Subscription]]:
    """Every account's subscriptions, earliest first (what ``verify`` rates raw events with)."""
    return subscriptions_by_account(conn, None)


def subscriptions_by_account(
    conn: Connection, account_ids: Iterable[uuid.UUID] | None
) -> dict[uuid.UUID, list[Subscription]]:
    """Each account's subscriptions, earliest first (an account on no plan is left out): what rating needs to know
    which plan an event's account was on when it occurred."""
    found: dict[uuid.UUID, list[Subscription]] = defaultdict(list)
    for subscription in repository.subscriptions_of(conn, account_ids):
        found[subscription.account_id].append(subscription)
    return dict(found)


@dataclass(frozen=True)
class PriceBook:
    """The negotiated prices and plans that price usage rated by plan (what ``aggregates.charges`` reads)."""

    negotiated: Mapping[uuid.UUID, Sequence[NegotiatedPrice]]
    #: By id as text, as aggregates name them.
    plans: Mapping[str, Plan]

    def contracted(self, account_id: uuid.UUID, plan_id: str, product_id: str, moment: datetime) -> AppliedPrice | None:
        """:func:`~meterbook.plans.models.contracted_price` of the account on that plan ("" for none)."""
        return contracted_price(self.negotiated.get(account_id, ()), self.plans.get(plan_id), product_id, moment)


def price_book(
    conn: Connection, organization_id: uuid.UUID, account_ids: Iterable[uuid.UUID] | None, plan_ids: Iterable[str]
) -> PriceBook:
    """The negotiated prices of these accounts (None: of all the organization's) and these plans, in two queries."""
    negotiated: dict[uuid.UUID, list[NegotiatedPrice]] = defaultdict(list)
    for found in repository.negotiated_prices(
        conn, None if account_ids is None else list(set(account_ids)), organization_id=organization_id
    ):
        negotiated[found.account_id].append(found)
    wanted = {uuid.UUID(plan_id) for plan_id in plan_ids if plan_id}
    plans = {str(plan.id): plan for plan in repository.list_plans(conn, organization_id, ids=wanted)} if wanted else {}
    return PriceBook(negotiated=dict(negotiated), plans=plans)


def month_fees(
    conn: Connection,
    organization_id: uuid.UUID,
    month: str,
    archived: Mapping[uuid.UUID, datetime | None],
    account_id: uuid.UUID | None = None,
) -> list[FeePart]:
    """The plan fees of ``month`` of the organization's accounts (or of one), by account, prorated by days
    (:func:`~meterbook.plans.models.fee_parts`). ``archived`` gives each account's archiving time, which ends its
    plans; an account it does not name is not charged."""
    first, end = month_start(month), month_start(next_month(month))
    found = repository.subscriptions_during(conn, organization_id, first, end, account_id)
    plan_ids = {subscription.plan_id for subscription in found}
    plans = {plan.id: plan for plan in repository.list_plans(conn, organization_id, ids=plan_ids)} if plan_ids else {}
    by_account: dict[uuid.UUID, list[Subscription]] = defaultdict(list)
    for subscription in found:
        by_account[subscription.account_id].append(subscription)
    return [
        part
        for owner, owned in by_account.items()
        if owner in archived
        for part in fee_parts(first, end, owned, plans, archived[owner])
    ]


# --- feature limits of plans -----------------------------------------------------------------------


def plan_limits(
    conn: Connection, organization_id: uuid.UUID, account_ids: Iterable[uuid.UUID], moment: datetime
) -> dict[tuple[uuid.UUID, str], int | None]:
    """The feature limits of the plan each account is on at ``moment`` (the version in force then), by (account,
    feature); accounts on no plan, and features a plan does not limit, are left out."""
    subscribed = subscriptions_by_account(conn, account_ids)
    current = {account_id: subscription_at(owned, moment) for account_id, owned in subscribed.items()}
    plan_ids = {item.plan_id for item in current.values() if item is not None}
    if not plan_ids:
        return {}
    found = {plan.id: plan for plan in repository.list_plans(conn, organization_id, ids=plan_ids)}
    limits: dict[tuple[uuid.UUID, str], int | None] = {}
    for account_id, covering in current.items():
        plan = None if covering is None else found.get(covering.plan_id)
        version = None if plan is None else plan.version_at(moment)
        if version is not None:
            limits.update({(account_id, name): limit for name, limit in version.limits.items()})
    return limits


def feature_usages(conn: Connection, principal: Principal, account_id: uuid.UUID | None = None) -> list[FeatureUsage]:
    """:func:`meterbook.features.service.usages` with the limits of the plan the account is on now."""
    target = account_id or principal.account_id
    organization_id = principal.organization_id
    # Read before the account is checked to be within reach, but shown only after features.usages has checked it.
    limits = {} if target is None or organization_id is None else plan_limits(conn, organization_id, [target], utcnow())
    return features.usages(conn, principal, account_id, limits)
