"""The rules of features: limits, overrides, and usage that never passes a limit.

An account's limit of a feature is, first match wins: its own override, the limit of the plan it is on (the plan
version in force now), the feature's default. Plans are above features: whoever calls with an account's usage
passes its plan's limits (``plans.service.plan_limits``, or ``plans.service.feature_usages`` for the views)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection

from meterbook.accounts import repository as accounts_repository
from meterbook.accounts.models import Principal
from meterbook.accounts.reach import require_organization, resolve_account, within
from meterbook.errors import InvalidInput, LimitExceeded, NotFound
from meterbook.features import repository
from meterbook.features.models import CounterChange, Feature, FeatureUsage, UsageDelta, period_of
from meterbook.features.schemas import FeaturePut
from meterbook.kit.time import month_of, utcnow

__all__ = [
    "PlanLimits",
    "apply_usage",
    "current_usage",
    "features_by_name",
    "list_features",
    "put_feature",
    "set_limit",
    "usages",
]


#: The limits of the plans accounts are on, by (account, feature); None: unlimited. A pair absent: no plan limit.
PlanLimits = Mapping[tuple[uuid.UUID, str], int | None]


def put_feature(conn: Connection, principal: Principal, name: str, data: FeaturePut) -> tuple[Feature, bool]:
    organization_id = require_organization(principal)
    now = utcnow()
    existing = repository.get_features(conn, organization_id, [name])
    repository.put_feature(
        conn,
        {
            "organization_id": organization_id,
            "name": name,
            "description": data.description,
            "default_limit": data.default_limit,
            "reset": data.reset,
            "created_at": existing[0].created_at if existing else now,
            "updated_at": now,
        },
    )
    return repository.get_features(conn, organization_id, [name])[0], not existing


def list_features(conn: Connection, principal: Principal) -> list[Feature]:
    return repository.get_features(conn, require_organization(principal))


def features_by_name(conn: Connection, organization_id: uuid.UUID, names: Iterable[str]) -> dict[str, Feature]:
    return {feature.name: feature for feature in repository.get_features(conn, organization_id, names)}


def _feature(conn: Connection, organization_id: uuid.UUID, name: str) -> Feature:
    found = repository.get_features(conn, organization_id, [name])
    if not found:
        raise NotFound(f"No feature named {name!r} was found.")
    return found[0]


def set_limit(
    conn: Connection, principal: Principal, account_id: uuid.UUID, name: str, limit: int | None
) -> FeatureUsage:
    """Override the feature's limit for one account (``None``: unlimited). A lower limit refuses new use, never old."""
    account = resolve_account(conn, principal, account_id)
    feature = _feature(conn, account.organization_id, name)
    repository.put_limit(conn, account.organization_id, account.id, name, limit, utcnow())
    # The override just set beats any plan's limit.
    return _account_usages(conn, account.id, [feature], {})[0]


def _effective_limit(
    feature: Feature,
    overrides: dict[tuple[uuid.UUID, str], int | None],
    plan_limits: PlanLimits,
    account_id: uuid.UUID,
) -> int | None:
    """The one rule: the account's override, else its plan's limit, else the feature's default."""
    key = (account_id, feature.name)
    if key in overrides:
        return overrides[key]
    return plan_limits.get(key, feature.default_limit)


def apply_usage(
    conn: Connection, organization_id: uuid.UUID, deltas: Sequence[UsageDelta], plan_limits: PlanLimits
) -> list[CounterChange]:
    """Count feature usage; if any counter would pass its limit (or go below zero), refuse the whole request.
    ``plan_limits``: the limits of the plans the accounts are on. Returns what each counter went from and to
    (alerts read them: a counter's row is locked by its write, so the figures are exact)."""
    totals: dict[tuple[uuid.UUID, str, str], int] = defaultdict(int)
    months: dict[tuple[uuid.UUID, str, str], str] = {}
    defined = features_by_name(conn, organization_id, {change.feature for change in deltas})
    for change in deltas:
        period = period_of(defined[change.feature].reset, change.occurred_at)
        key = (change.account_id, change.feature, period)
        totals[key] += change.delta
        months[key] = max(months.get(key, ""), month_of(change.occurred_at))
    overrides = repository.limits_for(conn, {account for account, _, _ in totals})
    changes: list[CounterChange] = []
    # A fixed order, so that concurrent requests lock counters in the same order (no deadlock on PostgreSQL).
    for (account_id, name, period), delta in sorted(totals.items(), key=lambda item: (str(item[0][0]), *item[0][1:])):
        if delta == 0:
            continue
        limit = _effective_limit(defined[name], overrides, plan_limits, account_id)
        after = repository.add_usage(conn, organization_id, account_id, name, period, delta, limit)
        if after is None:
            if delta < 0:
                raise InvalidInput(
                    f"Releasing {-delta} of feature {name!r} for account {account_id} would take its usage below zero."
                )
            raise LimitExceeded(
                f"Feature {name!r} is limited to {limit} for account {account_id}; this request would exceed it."
            )
        changes.append(
            CounterChange(account_id, name, period, months[(account_id, name, period)], after - delta, after, limit)
        )
    return changes


def _account_usages(
    conn: Connection, account_id: uuid.UUID, defined: Sequence[Feature], plan_limits: PlanLimits
) -> list[FeatureUsage]:
    now = utcnow()
    overrides = repository.limits_for(conn, [account_id])
    used = repository.usage_for(conn, [account_id], {f.name: period_of(f.reset, now) for f in defined})
    return [
        FeatureUsage(
            name=feature.name,
            description=feature.description,
            limit=_effective_limit(feature, overrides, plan_limits, account_id),
            usage=used.get(feature.name, 0),
        )
        for feature in defined
    ]


def usages(
    conn: Connection, principal: Principal, account_id: uuid.UUID | None, plan_limits: PlanLimits
) -> list[FeatureUsage]:
    """Every feature with its limit and current usage: for one account (by default the key's own), or, for an
    organization key, summed over all its accounts (with the default limits). ``plan_limits``: the limits of the
    plan the account is on (``plans.service.feature_usages`` passes them)."""
    organization_id, path_prefix = within(principal)
    defined = repository.get_features(conn, organization_id)
    target = account_id or principal.account_id
    if target is not None:
        account = resolve_account(conn, principal, target)
        return _account_usages(conn, account.id, defined, plan_limits)
    account_ids = [account.id for account in accounts_repository.list_accounts(conn, organization_id, path_prefix)]
    now = utcnow()
    used = repository.usage_for(conn, account_ids, {f.name: period_of(f.reset, now) for f in defined})
    return [
        FeatureUsage(name=f.name, description=f.description, limit=f.default_limit, usage=used.get(f.name, 0))
        for f in defined
    ]


def current_usage(
    conn: Connection, organization_id: uuid.UUID, account_ids: Sequence[uuid.UUID], names: Iterable[str]
) -> dict[str, int]:
    """The usage now of each feature among ``names`` that is defined, summed over ``account_ids`` (already
    checked to be within reach): this month's for a feature that resets monthly, else all of it."""
    defined = repository.get_features(conn, organization_id, names)
    if not defined or not account_ids:
        return {}
    now = utcnow()
    used = repository.usage_for(conn, account_ids, {f.name: period_of(f.reset, now) for f in defined})
    return {feature.name: used.get(feature.name, 0) for feature in defined}
