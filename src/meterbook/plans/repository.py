"""Every SQL statement of plans, subscriptions and negotiated prices."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, or_, select, update

from meterbook.db.tables import account_prices, billing_runs, plan_versions, plans, subscriptions
from meterbook.db.upsert import insert_for
from meterbook.kit import jsontext
from meterbook.plans.models import IncludedCredits, NegotiatedPrice, Plan, PlanVersion, Subscription
from meterbook.pricing import PriceModel, parse_price

__all__ = [
    "dump_price",
    "end_subscriptions_at",
    "insert_plan",
    "insert_subscription",
    "invoiced_months_between",
    "list_plans",
    "load_price",
    "negotiated_prices",
    "put_negotiated_price",
    "put_version",
    "subscriptions_during",
    "subscriptions_of",
    "touch_plan",
]


def dump_price(price: PriceModel) -> str:
    """A price model as the JSON text stored: every number its exact decimal text."""
    return jsontext.dumps(price.model_dump(mode="python")).decode()


def load_price(text: str, where: str) -> PriceModel:
    """A stored price model, validated again (its errors' paths under ``where``)."""
    return parse_price(jsontext.loads(text), where)


def _version(row: Row[Any]) -> PlanVersion:
    credits = None
    if row.included_credits is not None:
        rollover: Any = row.credits_rollover_cap if row.credits_rollover == "cap" else row.credits_rollover
        credits = IncludedCredits(int(row.included_credits), rollover)
    prices = jsontext.loads(row.prices)
    return PlanVersion(
        effective_from=row.effective_from,
        name=row.name,
        currency=row.currency,
        fee=row.fee,
        prices={product_id: parse_price(price, f"prices.{product_id}") for product_id, price in prices.items()},
        limits={name: None if limit is None else int(limit) for name, limit in jsontext.loads(row.limits).items()},
        included_credits=credits,
        created_at=row.created_at,
    )


def list_plans(
    conn: Connection,
    organization_id: uuid.UUID,
    codes: Iterable[str] | None = None,
    ids: Iterable[uuid.UUID] | None = None,
) -> list[Plan]:
    statement = select(plans).where(plans.c.organization_id == organization_id).order_by(plans.c.code)
    if codes is not None:
        statement = statement.where(plans.c.code.in_(list(codes)))
    if ids is not None:
        statement = statement.where(plans.c.id.in_(list(ids)))
    rows = conn.execute(statement).all()
    if not rows:
        return []
    version_rows = conn.execute(
        select(plan_versions)
        .where(plan_versions.c.plan_id.in_([row.id for row in rows]))
        .order_by(plan_versions.c.plan_id, plan_versions.c.effective_from)
    ).all()
    versions = {
        plan_id: tuple(_version(row) for row in group)
        for plan_id, group in groupby(version_rows, key=lambda row: row.plan_id)
    }
    return [Plan(row.id, row.code, row.created_at, row.updated_at, versions.get(row.id, ())) for row in rows]


def insert_plan(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    """The plan's id: the new one, or that of the plan a concurrent request created under the same code."""
    statement = (
        insert_for(conn, plans).values(**values).on_conflict_do_nothing(index_elements=["organization_id", "code"])
    )
    conn.execute(statement)
    found: uuid.UUID = conn.execute(
        select(plans.c.id).where(plans.c.organization_id == values["organization_id"], plans.c.code == values["code"])
    ).scalar_one()
    return found


def touch_plan(conn: Connection, plan_id: uuid.UUID, now: datetime) -> None:
    conn.execute(update(plans).where(plans.c.id == plan_id).values(updated_at=now))


def put_version(conn: Connection, plan_id: uuid.UUID, version: PlanVersion) -> None:
    """Store the version, replacing the plan's version from the same month if there is one."""
    credits = version.included_credits
    rollover = None if credits is None else credits.rollover
    values = {
        "name": version.name,
        "currency": version.currency,
        "fee": version.fee,
        "prices": jsontext.dumps(
            {product_id: price.model_dump(mode="python") for product_id, price in version.prices.items()}
        ).decode(),
        "limits": jsontext.dumps(dict(version.limits)).decode(),
        "included_credits": None if credits is None else credits.amount,
        "credits_rollover": None if rollover is None else ("cap" if isinstance(rollover, int) else rollover),
        "credits_rollover_cap": rollover if isinstance(rollover, int) else None,
        "created_at": version.created_at,
    }
    statement = insert_for(conn, plan_versions).values(plan_id=plan_id, effective_from=version.effective_from, **values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["plan_id", "effective_from"],
            set_={name: statement.excluded[name] for name in values},
        )
    )


_SUBSCRIPTIONS = select(subscriptions, plans.c.code.label("plan_code")).join(
    plans, plans.c.id == subscriptions.c.plan_id
)


def _subscription(row: Row[Any]) -> Subscription:
    return Subscription(
        id=row.id,
        account_id=row.account_id,
        plan_id=row.plan_id,
        plan_code=row.plan_code,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
    )


def subscriptions_of(conn: Connection, account_ids: Iterable[uuid.UUID] | None) -> list[Subscription]:
    """The subscriptions of the accounts (None: of every account), by account, earliest first."""
    statement = _SUBSCRIPTIONS
    if account_ids is not None:
        statement = statement.where(subscriptions.c.account_id.in_(list(account_ids)))
    rows = conn.execute(statement.order_by(subscriptions.c.account_id, subscriptions.c.starts_at)).all()
    return [_subscription(row) for row in rows]


def subscriptions_during(
    conn: Connection,
    organization_id: uuid.UUID,
    first: datetime,
    end: datetime,
    account_id: uuid.UUID | None = None,
) -> list[Subscription]:
    """The organization's (or one account's) subscriptions in force at some instant from ``first`` to ``end``
    (exclusive), by account, earliest first."""
    statement = _SUBSCRIPTIONS.where(
        subscriptions.c.organization_id == organization_id,
        subscriptions.c.starts_at < end,
        or_(subscriptions.c.ends_at.is_(None), subscriptions.c.ends_at > first),
    )
    if account_id is not None:
        statement = statement.where(subscriptions.c.account_id == account_id)
    rows = conn.execute(statement.order_by(subscriptions.c.account_id, subscriptions.c.starts_at)).all()
    return [_subscription(row) for row in rows]


def end_subscriptions_at(conn: Connection, account_id: uuid.UUID, moment: datetime) -> None:
    """The account is on no plan from ``moment`` on: what covers it ends then, and what starts later is removed."""
    conn.execute(
        delete(subscriptions).where(subscriptions.c.account_id == account_id, subscriptions.c.starts_at >= moment)
    )
    conn.execute(
        update(subscriptions)
        .where(
            subscriptions.c.account_id == account_id,
            subscriptions.c.starts_at < moment,
            or_(subscriptions.c.ends_at.is_(None), subscriptions.c.ends_at > moment),
        )
        .values(ends_at=moment)
    )


def insert_subscription(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(subscriptions).values(**values))


def negotiated_prices(
    conn: Connection,
    account_ids: Iterable[uuid.UUID] | None,
    product_ids: Iterable[str] | None = None,
    *,
    organization_id: uuid.UUID | None = None,
) -> list[NegotiatedPrice]:
    """The negotiated prices of the accounts (None: of every account of ``organization_id``), by account and
    product, oldest first."""
    if account_ids is None:
        statement = select(account_prices).where(account_prices.c.organization_id == organization_id)
    else:
        statement = select(account_prices).where(account_prices.c.account_id.in_(list(account_ids)))
    if product_ids is not None:
        statement = statement.where(account_prices.c.product_id.in_(list(product_ids)))
    rows = conn.execute(
        statement.order_by(account_prices.c.account_id, account_prices.c.product_id, account_prices.c.effective_from)
    ).all()
    return [
        NegotiatedPrice(
            account_id=row.account_id,
            product_id=row.product_id,
            effective_from=row.effective_from,
            price=load_price(row.price, "price"),
            created_at=row.created_at,
        )
        for row in rows
    ]


def put_negotiated_price(conn: Connection, organization_id: uuid.UUID, found: NegotiatedPrice) -> None:
    statement = insert_for(conn, account_prices).values(
        account_id=found.account_id,
        product_id=found.product_id,
        effective_from=found.effective_from,
        organization_id=organization_id,
        price=dump_price(found.price),
        created_at=found.created_at,
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["account_id", "product_id", "effective_from"],
            set_={"price": statement.excluded.price, "created_at": statement.excluded.created_at},
        )
    )


def invoiced_months_between(
    conn: Connection, organization_id: uuid.UUID, first: str, before: str | None = None
) -> list[str]:
    """The organization's invoiced months from ``first`` (``YYYY-MM``) on, and before ``before`` if given."""
    statement = select(billing_runs.c.month).where(
        billing_runs.c.organization_id == organization_id, billing_runs.c.month >= first
    )
    if before is not None:
        statement = statement.where(billing_runs.c.month < before)
    return list(conn.execute(statement.order_by(billing_runs.c.month)).scalars())
