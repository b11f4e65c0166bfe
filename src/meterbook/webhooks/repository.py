"""Every SQL statement about webhook endpoints, events, deliveries and attempts."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update

from meterbook.db.tables import webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events
from meterbook.db.upsert import insert_for
from meterbook.kit import jsontext
from meterbook.webhooks.models import Attempt, Delivery, DeliveryTarget, Endpoint

__all__ = [
    "delete_endpoint",
    "delivery_target",
    "endpoint_secret",
    "endpoints_of_event",
    "find_event",
    "finish_delivery",
    "get_deliveries",
    "get_endpoint",
    "insert_deliveries",
    "insert_endpoint",
    "insert_events",
    "list_deliveries",
    "list_endpoints",
    "oldest_pending",
    "record_attempt",
    "subscribers",
    "update_endpoint",
]

_ENDPOINT_COLUMNS = [c for c in webhook_endpoints.c if c.name not in ("secret", "previous_secret")]


def _endpoint(row: RowMapping) -> Endpoint:
    return Endpoint(
        id=row["id"],
        organization_id=row["organization_id"],
        url=row["url"],
        description=row["description"],
        event_types=tuple(jsontext.loads(row["event_types"])),
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
    )


def insert_endpoint(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(webhook_endpoints).values(values))


def list_endpoints(conn: Connection, organization_id: uuid.UUID) -> list[Endpoint]:
    rows = conn.execute(
        select(*_ENDPOINT_COLUMNS)
        .where(webhook_endpoints.c.organization_id == organization_id)
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    ).mappings()
    return [_endpoint(row) for row in rows]


def get_endpoint(
    conn: Connection, organization_id: uuid.UUID, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> Endpoint | None:
    query = select(*_ENDPOINT_COLUMNS).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.organization_id == organization_id
    )
    row = conn.execute(query.with_for_update() if for_update else query).mappings().first()
    return None if row is None else _endpoint(row)


def endpoint_secret(conn: Connection, endpoint_id: uuid.UUID) -> str:
    secret: str = conn.execute(
        select(webhook_endpoints.c.secret).where(webhook_endpoints.c.id == endpoint_id)
    ).scalar_one()
    return secret


def update_endpoint(conn: Connection, endpoint_id: uuid.UUID, values: dict[str, Any]) -> None:
    conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(values))


def delete_endpoint(conn: Connection, endpoint_id: uuid.UUID) -> list[uuid.UUID]:
    """Delete the endpoint with its deliveries and their attempts; the ids of the deliveries deleted."""
    delivery_ids = list(
        conn.execute(select(webhook_deliveries.c.id).where(webhook_deliveries.c.endpoint_id == endpoint_id)).scalars()
    )
    of_endpoint = select(webhook_deliveries.c.id).where(webhook_deliveries.c.endpoint_id == endpoint_id)
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(of_endpoint)))
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id))
    conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
    return delivery_ids


def subscribers(conn: Connection, organization_id: uuid.UUID) -> list[tuple[uuid.UUID, tuple[str, ...]]]:
    """The organization's enabled endpoints and what each wants: the one query an emit makes when there are none."""
    rows = conn.execute(
        select(webhook_endpoints.c.id, webhook_endpoints.c.event_types).where(
            webhook_endpoints.c.organization_id == organization_id, webhook_endpoints.c.enabled.is_(True)
        )
    )
    return [(endpoint_id, tuple(jsontext.loads(types))) for endpoint_id, types in rows]


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert events; the ids of those that were new (an id emitted before is not emitted again)."""
    if not rows:
        return set()
    result = conn.execute(
        insert_for(conn, webhook_events).on_conflict_do_nothing().returning(webhook_events.c.id), list(rows)
    )
    return set(result.scalars())


def insert_deliveries(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(webhook_deliveries), list(rows))


def find_event(conn: Connection, organization_id: uuid.UUID, event_id: uuid.UUID) -> str | None:
    """The event's type, if the organization has this event."""
    found: str | None = conn.execute(
        select(webhook_events.c.type).where(
            webhook_events.c.id == event_id, webhook_events.c.organization_id == organization_id
        )
    ).scalar_one_or_none()
    return found


def endpoints_of_event(conn: Connection, event_id: uuid.UUID) -> list[uuid.UUID]:
    """The endpoints the event was ever queued to, oldest first."""
    rows = conn.execute(
        select(webhook_deliveries.c.endpoint_id, func.min(webhook_deliveries.c.created_at).label("first"))
        .where(webhook_deliveries.c.event_id == event_id)
        .group_by(webhook_deliveries.c.endpoint_id)
        .order_by("first")
    )
    return [endpoint_id for endpoint_id, _first in rows]


_DELIVERY_COLUMNS = [*webhook_deliveries.c, webhook_events.c.type.label("event_type")]


def _deliveries(conn: Connection, query: Any) -> list[Delivery]:
    rows = conn.execute(query).mappings().all()
    attempts: dict[uuid.UUID, list[Attempt]] = defaultdict(list)
    ids = [row["id"] for row in rows]
    for start in range(0, len(ids), 500):
        found = conn.execute(
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id.in_(ids[start : start + 500]))
            .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.number)
        ).mappings()
        for attempt in found:
            attempts[attempt["delivery_id"]].append(
                Attempt(
                    number=attempt["number"],
                    attempted_at=attempt["attempted_at"],
                    status_code=attempt["status_code"],
                    duration_ms=attempt["duration_ms"],
                    error=attempt["error"],
                )
            )
    return [
        Delivery(
            id=row["id"],
            endpoint_id=row["endpoint_id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            status=row["status"],
            attempt_count=row["attempt_count"],
            created_at=row["created_at"],
            next_attempt_at=row["next_attempt_at"],
            finished_at=row["finished_at"],
            attempts=tuple(attempts.get(row["id"], ())),
        )
        for row in rows
    ]


def _joined() -> Any:
    return webhook_deliveries.join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)


def list_deliveries(conn: Connection, endpoint_id: uuid.UUID, limit: int, status: str | None = None) -> list[Delivery]:
    query = select(*_DELIVERY_COLUMNS).select_from(_joined()).where(webhook_deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    order = (webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc())
    return _deliveries(conn, query.order_by(*order).limit(limit))


def get_deliveries(conn: Connection, delivery_ids: Sequence[uuid.UUID]) -> list[Delivery]:
    if not delivery_ids:
        return []
    query = select(*_DELIVERY_COLUMNS).select_from(_joined()).where(webhook_deliveries.c.id.in_(list(delivery_ids)))
    return _deliveries(conn, query.order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id))


def delivery_target(conn: Connection, delivery_id: uuid.UUID, now: datetime) -> DeliveryTarget | None:
    """What an attempt needs, or None when the delivery is gone (its endpoint was deleted)."""
    row = (
        conn.execute(
            select(
                webhook_deliveries.c.status,
                webhook_deliveries.c.attempt_count,
                webhook_events.c.id.label("event_id"),
                webhook_events.c.body,
                webhook_endpoints.c.url,
                webhook_endpoints.c.enabled,
                webhook_endpoints.c.secret,
                webhook_endpoints.c.previous_secret,
                webhook_endpoints.c.previous_secret_expires_at,
            )
            .select_from(_joined().join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id))
            .where(webhook_deliveries.c.id == delivery_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    secrets = [row["secret"]]
    expires = row["previous_secret_expires_at"]
    if row["previous_secret"] and expires is not None and expires > now:
        secrets.append(row["previous_secret"])
    return DeliveryTarget(
        delivery_id=delivery_id,
        status=row["status"],
        attempt_count=row["attempt_count"],
        event_id=row["event_id"],
        body=row["body"],
        url=row["url"],
        enabled=row["enabled"],
        secrets=tuple(secrets),
    )


def record_attempt(
    conn: Connection,
    delivery_id: uuid.UUID,
    attempt: Attempt,
    *,
    status: str,
    next_attempt_at: datetime | None,
    finished_at: datetime | None,
) -> None:
    conn.execute(
        insert(webhook_attempts).values(
            delivery_id=delivery_id,
            number=attempt.number,
            attempted_at=attempt.attempted_at,
            status_code=attempt.status_code,
            duration_ms=attempt.duration_ms,
            error=None if attempt.error is None else attempt.error[:1000],
        )
    )
    conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status=status,
            attempt_count=attempt.number,
            next_attempt_at=next_attempt_at,
            finished_at=finished_at,
        )
    )


def finish_delivery(conn: Connection, delivery_id: uuid.UUID, status: str, finished_at: datetime) -> None:
    """End a delivery without an attempt (its endpoint was disabled)."""
    conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(status=status, next_attempt_at=None, finished_at=finished_at)
    )


def oldest_pending(conn: Connection) -> datetime | None:
    """When the oldest delivery still pending was queued (every organization's)."""
    found: datetime | None = conn.execute(
        select(webhook_deliveries.c.created_at)
        .where(webhook_deliveries.c.status == "pending")
        .order_by(webhook_deliveries.c.created_at)
        .limit(1)
    ).scalar_one_or_none()
    return found
