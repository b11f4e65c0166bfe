"""Every SQL statement of the alerts domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select

from meterbook.alerts.models import Alert, Trigger
from meterbook.db.tables import accounts, alert_triggers, alert_versions, alerts
from meterbook.db.upsert import insert_for

__all__ = [
    "account_currencies",
    "alert_version",
    "bump_version",
    "crossings_so_far",
    "delete_alert",
    "get_alert",
    "insert_alert",
    "insert_triggers",
    "list_alerts",
    "list_triggers",
    "organization_alerts",
    "recent_triggers",
    "watching",
]

#: Bounded IN lists: SQLite allows at most 32766 parameters per statement.
_CHUNK = 1000


def _alert(row: Any) -> Alert:
    return Alert(**{**row._mapping, "threshold": Decimal(row.threshold)})


def _trigger(row: Any) -> Trigger:
    values = {key: value for key, value in row._mapping.items() if key != "organization_id"}
    values["value"] = Decimal(values["value"])
    values["threshold"] = Decimal(values["threshold"])
    return Trigger(**values)


def _text(number: Decimal) -> str:
    """Exact decimal text without exponent or trailing zeros: ``100``, ``99.5``."""
    normalized = number.normalize()
    return format(normalized.quantize(Decimal(1)) if normalized == normalized.to_integral_value() else normalized, "f")


def insert_alert(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(alerts).values(**{**values, "threshold": _text(values["threshold"])}))


def get_alert(conn: Connection, organization_id: uuid.UUID, alert_id: uuid.UUID) -> Alert | None:
    row = conn.execute(
        select(alerts).where(alerts.c.id == alert_id, alerts.c.organization_id == organization_id)
    ).first()
    return None if row is None else _alert(row)


def list_alerts(conn: Connection, organization_id: uuid.UUID) -> list[Alert]:
    statement = (
        select(alerts).where(alerts.c.organization_id == organization_id).order_by(alerts.c.created_at, alerts.c.id)
    )
    return [_alert(row) for row in conn.execute(statement)]


def bump_version(conn: Connection, organization_id: uuid.UUID) -> None:
    """Count one more change to the organization's alerts (its first makes the row)."""
    statement = insert_for(conn, alert_versions).values(organization_id=organization_id, version=1)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["organization_id"], set_={"version": alert_versions.c.version + 1}
        )
    )


# Built once: every batch of usage runs it.
_VERSION = select(alert_versions.c.version).where(alert_versions.c.organization_id == bindparam("organization_id"))


def alert_version(conn: Connection, organization_id: uuid.UUID) -> int | None:
    """How many changes the organization's alerts have seen; None if it never had one."""
    found = conn.execute(_VERSION, {"organization_id": organization_id}).scalar()
    return None if found is None else int(found)


def organization_alerts(conn: Connection, organization_id: uuid.UUID, limit: int) -> list[Alert]:
    """Up to ``limit`` of the organization's alerts, in no particular order."""
    statement = select(alerts).where(alerts.c.organization_id == organization_id).limit(limit)
    return [_alert(row) for row in conn.execute(statement)]


def delete_alert(conn: Connection, alert_id: uuid.UUID) -> None:
    """Delete the alert with the record of its firings (the events they emitted stay in the outbox)."""
    conn.execute(delete(alert_triggers).where(alert_triggers.c.alert_id == alert_id))
    conn.execute(delete(alerts).where(alerts.c.id == alert_id))


# Built once: every batch of usage runs it.
_WATCHING = (
    select(alerts)
    .where(
        alerts.c.organization_id == bindparam("organization_id"),
        or_(alerts.c.account_id.is_(None), alerts.c.account_id.in_(bindparam("account_ids", expanding=True))),
    )
    .order_by(alerts.c.id)
)


def watching(conn: Connection, organization_id: uuid.UUID, account_ids: Sequence[uuid.UUID]) -> list[Alert]:
    """The alerts on every account of the organization or on one of these: one search of (organization, account)."""
    found: dict[uuid.UUID, Alert] = {}
    ordered = sorted(account_ids)
    for start in range(0, max(len(ordered), 1), _CHUNK):
        rows = conn.execute(
            _WATCHING, {"organization_id": organization_id, "account_ids": ordered[start : start + _CHUNK]}
        )
        found.update((alert.id, alert) for alert in map(_alert, rows))
    return list(found.values())


def crossings_so_far(
    conn: Connection, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """How many times each (alert, account) has fired (a balance alert's crossings), in one statement."""
    wanted = set(pairs)
    if not wanted:
        return {}
    statement = (
        select(alert_triggers.c.alert_id, alert_triggers.c.account_id, func.count().label("fired"))
        .where(
            alert_triggers.c.alert_id.in_(sorted({alert_id for alert_id, _ in wanted})),
            alert_triggers.c.account_id.in_(sorted({account_id for _, account_id in wanted})),
        )
        .group_by(alert_triggers.c.alert_id, alert_triggers.c.account_id)
    )
    return {(row.alert_id, row.account_id): int(row.fired) for row in conn.execute(statement)}


def insert_triggers(conn: Connection, organization_id: uuid.UUID, triggers: Sequence[Trigger]) -> set[uuid.UUID]:
    """Insert the firings that are not recorded yet (insert-if-absent on the unique index); the ids inserted."""
    if not triggers:
        return set()
    rows = [
        {
            "id": trigger.id,
            "organization_id": organization_id,
            "alert_id": trigger.alert_id,
            "account_id": trigger.account_id,
            "period": trigger.period,
            "value": _text(trigger.value),
            "threshold": _text(trigger.threshold),
            "triggered_at": trigger.triggered_at,
        }
        for trigger in triggers
    ]
    statement = (
        insert_for(conn, alert_triggers)
        .on_conflict_do_nothing(index_elements=["alert_id", "account_id", "period"])
        .returning(alert_triggers.c.id)
    )
    return set(conn.execute(statement, rows).scalars())


def list_triggers(conn: Connection, alert_id: uuid.UUID, limit: int) -> list[Trigger]:
    statement = (
        select(alert_triggers)
        .where(alert_triggers.c.alert_id == alert_id)
        .order_by(alert_triggers.c.triggered_at.desc(), alert_triggers.c.id.desc())
        .limit(limit)
    )
    return [_trigger(row) for row in conn.execute(statement)]


def recent_triggers(conn: Connection, alert_ids: Sequence[uuid.UUID], per_alert: int) -> dict[uuid.UUID, list[Trigger]]:
    """The latest ``per_alert`` firings of each alert (the console's list), one indexed search each."""
    return {alert_id: list_triggers(conn, alert_id, per_alert) for alert_id in alert_ids}


def account_currencies(conn: Connection, account_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The currency of each account: a spend alert counts the month's charges in it."""
    ordered = sorted(set(account_ids))
    found: dict[uuid.UUID, str] = {}
    for start in range(0, len(ordered), _CHUNK):
        rows = conn.execute(
            select(accounts.c.id, accounts.c.currency).where(accounts.c.id.in_(ordered[start : start + _CHUNK]))
        )
        found.update({row.id: row.currency for row in rows})
    return found
