"""Every SQL statement of the features domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from meterbook.db.tables import feature_limits, feature_usage, features
from meterbook.db.upsert import insert_for
from meterbook.features.models import Feature

__all__ = [
    "add_usage",
    "get_features",
    "limits_for",
    "put_feature",
    "put_limit",
    "usage_for",
]


def _feature(row: Any) -> Feature:
    return Feature(**{k: v for k, v in row._mapping.items() if k != "organization_id"})


def get_features(conn: Connection, organization_id: uuid.UUID, names: Iterable[str] | None = None) -> list[Feature]:
    statement = select(features).where(features.c.organization_id == organization_id)
    if names is not None:
        statement = statement.where(features.c.name.in_(list(names)))
    return [_feature(row) for row in conn.execute(statement.order_by(features.c.name))]


def put_feature(conn: Connection, values: Mapping[str, Any]) -> None:
    statement = insert_for(conn, features).values(**values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["organization_id", "name"],
            set_={
                "description": statement.excluded.description,
                "default_limit": statement.excluded.default_limit,
                "reset": statement.excluded.reset,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )


def put_limit(
    conn: Connection,
    organization_id: uuid.UUID,
    account_id: uuid.UUID,
    feature: str,
    limit: int | None,
    now: datetime,
) -> None:
    statement = insert_for(conn, feature_limits).values(
        account_id=account_id, feature=feature, organization_id=organization_id, limit=limit, updated_at=now
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["account_id", "feature"],
            set_={"limit": statement.excluded.limit, "updated_at": statement.excluded.updated_at},
        )
    )


def limits_for(conn: Connection, account_ids: Iterable[uuid.UUID]) -> dict[tuple[uuid.UUID, str], int | None]:
    """The per-account overrides that exist, keyed by (account, feature)."""
    statement = select(feature_limits.c.account_id, feature_limits.c.feature, feature_limits.c.limit).where(
        feature_limits.c.account_id.in_(list(account_ids))
    )
    return {(row.account_id, row.feature): row.limit for row in conn.execute(statement)}


def add_usage(
    conn: Connection,
    organization_id: uuid.UUID,
    account_id: uuid.UUID,
    feature: str,
    period: str,
    delta: int,
    limit: int | None,
) -> int | None:
    """Add ``delta`` to the counter if it stays within ``[0, limit]`` (a release is never refused for the limit).

    Returns the new count, or ``None`` when the change was refused and nothing was written. One
    statement, so concurrent requests cannot both pass the check.
    """
    if delta > 0 and limit is not None and delta > limit:
        return None
    if delta < 0:
        # There is nothing to release from a counter that does not exist yet.
        current = conn.execute(
            select(feature_usage.c.used).where(
                feature_usage.c.account_id == account_id,
                feature_usage.c.feature == feature,
                feature_usage.c.period == period,
            )
        ).scalar()
        if current is None:
            return None
    statement = insert_for(conn, feature_usage).values(
        account_id=account_id, feature=feature, period=period, organization_id=organization_id, used=delta
    )
    new_total = feature_usage.c.used + statement.excluded.used
    condition = new_total >= 0
    if delta > 0 and limit is not None:
        condition = condition & (new_total <= limit)
    statement = statement.on_conflict_do_update(
        index_elements=["account_id", "feature", "period"], set_={"used": new_total}, where=condition
    ).returning(feature_usage.c.used)
    used = conn.execute(statement).scalar()
    return None if used is None else int(used)


def usage_for(conn: Connection, account_ids: Iterable[uuid.UUID], periods: Mapping[str, str]) -> dict[str, int]:
    """What is in use per feature now, summed over ``account_ids``; ``periods`` maps a feature to its current period."""
    statement = (
        select(feature_usage.c.feature, feature_usage.c.period, func.sum(feature_usage.c.used).label("used"))
        .where(feature_usage.c.account_id.in_(list(account_ids)))
        .group_by(feature_usage.c.feature, feature_usage.c.period)
    )
    totals: dict[str, int] = {}
    for row in conn.execute(statement):
        if periods.get(row.feature) == row.period:
            totals[row.feature] = int(row.used)
    return totals
