"""The rules of webhooks: endpoints and their secrets, the outbox (:func:`emit`), deliveries and resending.

``emit`` is called by the other domains inside the transaction of the change that causes the event (an
outbox): the event and one delivery job per matching endpoint commit with the change, or not at all, and the
worker inside ``serve`` delivers them afterwards (``delivery.py``).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection

from meterbook import jobs, metrics
from meterbook.accounts import access
from meterbook.accounts.access import authorize
from meterbook.accounts.models import Principal
from meterbook.accounts.reach import require_organization
from meterbook.db import Database
from meterbook.errors import Conflict, FieldError, NotFound, ValidationFailed
from meterbook.kit import jsontext
from meterbook.kit.ids import new_id
from meterbook.kit.time import format_rfc3339, utcnow
from meterbook.webhooks import repository, safety
from meterbook.webhooks.catalog import EVENT_TYPES
from meterbook.webhooks.models import Delivery, Endpoint, NewEndpoint
from meterbook.webhooks.schemas import URL_EXAMPLE, EndpointCreate, EndpointPatch

__all__ = [
    "DELIVERY_JOB",
    "ROTATION_GRACE",
    "EventData",
    "check_destination",
    "create_endpoint",
    "delete_endpoint",
    "deliveries",
    "emit",
    "emit_many",
    "event_id_for",
    "get_endpoint",
    "list_endpoints",
    "new_secret",
    "observe_backlog",
    "resend",
    "rotate_secret",
    "update_endpoint",
]

#: The job kind that delivers one event to one endpoint (its handler is ``delivery.deliver``).
DELIVERY_JOB = "webhook.deliver"
#: How long the previous secret still signs after a rotation, so that receivers can switch without a gap.
ROTATION_GRACE = timedelta(hours=24)
#: Event ids derived from what happened (``event_id_for``) live in this UUIDv5 namespace.
_EVENT_NAMESPACE = uuid.UUID("5d0c7c53-3a44-4f57-9b0e-8f9f6f0f7a19")


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes: what Standard Webhooks libraries take as they are."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def event_id_for(event_type: str, *parts: object) -> uuid.UUID:
    """A stable event id for what happened (e.g. ``invoice.paid`` of invoice X): emitting it twice is once."""
    return uuid.uuid5(_EVENT_NAMESPACE, ":".join([event_type, *(str(part) for part in parts)]))


# --- endpoints -------------------------------------------------------------------------------------


def check_destination(url: str, allow_private: bool, path: str = "body.url") -> None:
    """Refuse a URL whose host resolves to a loopback, private or link-local address (unless allowed).

    A name that does not resolve now is accepted: DNS may not know it yet, and every attempt checks again.
    """
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = safety.resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError):
        return
    problem = safety.refusal(addresses)
    if problem is not None:
        raise ValidationFailed.field(
            path,
            f"{host} goes to {problem}: webhooks go only to public addresses (set "
            f"METERBOOK_WEBHOOK_ALLOW_PRIVATE=true to allow a receiver on your own network); e.g. {URL_EXAMPLE}",
            "private_destination",
        )


def _find(conn: Connection, principal: Principal, endpoint_id: uuid.UUID, *, for_update: bool = False) -> Endpoint:
    found = repository.get_endpoint(conn, require_organization(principal), endpoint_id, for_update=for_update)
    if found is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id} was found.")
    return found


def create_endpoint(
    conn: Connection, principal: Principal, data: EndpointCreate, *, allow_private: bool
) -> NewEndpoint:
    authorize(principal, access.MANAGE_WEBHOOKS)
    organization_id = require_organization(principal)
    check_destination(data.url, allow_private)
    now = utcnow()
    secret = new_secret()
    endpoint_id = new_id()
    repository.insert_endpoint(
        conn,
        {
            "id": endpoint_id,
            "organization_id": organization_id,
            "url": data.url,
            "description": data.description,
            "event_types": jsontext.dumps(_unique(data.event_types)).decode(),
            "enabled": data.enabled,
            "secret": secret,
            "previous_secret": None,
            "previous_secret_expires_at": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    return NewEndpoint(_find(conn, principal, endpoint_id), secret)


def _unique(types: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(types))


def list_endpoints(conn: Connection, principal: Principal) -> list[Endpoint]:
    authorize(principal, access.READ_WEBHOOKS)
    return repository.list_endpoints(conn, require_organization(principal))


def get_endpoint(conn: Connection, principal: Principal, endpoint_id: uuid.UUID) -> Endpoint:
    authorize(principal, access.READ_WEBHOOKS)
    return _find(conn, principal, endpoint_id)


def update_endpoint(
    conn: Connection, principal: Principal, endpoint_id: uuid.UUID, data: EndpointPatch, *, allow_private: bool
) -> Endpoint:
    """Change the fields sent; ``null`` clears ``description`` and is refused for the others."""
    authorize(principal, access.MANAGE_WEBHOOKS)
    endpoint = _find(conn, principal, endpoint_id, for_update=True)
    sent = data.model_fields_set
    nulls = [name for name in ("url", "event_types", "enabled") if name in sent and getattr(data, name) is None]
    if nulls:
        raise ValidationFailed(
            [FieldError(f"body.{name}", "may not be null; leave it out to keep it", "null") for name in nulls]
        )
    values: dict[str, Any] = {}
    if data.url is not None:
        check_destination(data.url, allow_private)
        values["url"] = data.url
    if "description" in sent:
        values["description"] = data.description
    if data.event_types is not None:
        values["event_types"] = jsontext.dumps(_unique(data.event_types)).decode()
    if data.enabled is not None:
        values["enabled"] = data.enabled
    if values:
        repository.update_endpoint(conn, endpoint.id, {**values, "updated_at": utcnow()})
    return _find(conn, principal, endpoint_id)


def delete_endpoint(conn: Connection, principal: Principal, endpoint_id: uuid.UUID) -> Endpoint:
    """Delete the endpoint with its deliveries; what is still pending for it is never sent."""
    authorize(principal, access.MANAGE_WEBHOOKS)
    endpoint = _find(conn, principal, endpoint_id, for_update=True)
    deleted = repository.delete_endpoint(conn, endpoint.id)
    jobs.cancel(conn, deleted)
    return endpoint


def rotate_secret(conn: Connection, principal: Principal, endpoint_id: uuid.UUID) -> NewEndpoint:
    """A new signing secret; the current one goes on signing beside it for :data:`ROTATION_GRACE`."""
    authorize(principal, access.MANAGE_WEBHOOKS)
    endpoint = _find(conn, principal, endpoint_id, for_update=True)
    current = repository.endpoint_secret(conn, endpoint.id)
    now = utcnow()
    secret = new_secret()
    repository.update_endpoint(
        conn,
        endpoint.id,
        {
            "secret": secret,
            "previous_secret": current,
            "previous_secret_expires_at": now + ROTATION_GRACE,
            "updated_at": now,
        },
    )
    return NewEndpoint(_find(conn, principal, endpoint_id), secret)


# --- the outbox ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventData:
    """One event to emit: its ``data`` (the object as the native API shows it), and optionally its id and time."""

    data: Mapping[str, Any]
    event_id: uuid.UUID | None = None
    occurred_at: datetime | None = None


def emit(
    conn: Connection,
    organization_id: uuid.UUID,
    event_type: str,
    data: Mapping[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> uuid.UUID | None:
    """Queue one event to every enabled endpoint of the organization that wants it, in the caller's transaction.

    Returns the event's id, or None when no endpoint wants it (then nothing is stored: one indexed query is the
    whole cost) or when ``event_id`` was emitted before (an event is emitted once).
    """
    emitted = emit_many(conn, organization_id, event_type, [EventData(data, event_id, occurred_at)])
    return emitted[0] if emitted else None


def emit_many(
    conn: Connection, organization_id: uuid.UUID, event_type: str, events: Iterable[EventData]
) -> list[uuid.UUID]:
    """:func:`emit` for many events of one type, set-based: one statement per table whatever their number.

    ``events`` is read only if some endpoint wants the type: pass a generator, and an organization without
    endpoints never pays for rendering its events.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"{event_type!r} is not in the event catalog")
    wanted_by = [
        endpoint_id for endpoint_id, types in repository.subscribers(conn, organization_id) if _wants(types, event_type)
    ]
    if not wanted_by:
        return []
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for event in events:
        event_id = event.event_id or new_id()
        created_at = event.occurred_at or now
        body = {
            "id": str(event_id),
            "type": event_type,
            "created_at": format_rfc3339(created_at),
            "organization_id": str(organization_id),
            "data": dict(event.data),
        }
        rows.append(
            {
                "id": event_id,
                "organization_id": organization_id,
                "type": event_type,
                "created_at": created_at,
                "body": jsontext.dumps(body).decode(),
            }
        )
    new = repository.insert_events(conn, rows)
    emitted: list[uuid.UUID] = [row["id"] for row in rows if row["id"] in new]
    _queue(conn, organization_id, [(event_id, endpoint_id) for event_id in emitted for endpoint_id in wanted_by], now)
    return emitted


def _wants(types: tuple[str, ...], event_type: str) -> bool:
    return "*" in types or event_type in types


def _queue(
    conn: Connection, organization_id: uuid.UUID, pairs: list[tuple[uuid.UUID, uuid.UUID]], now: datetime
) -> list[uuid.UUID]:
    """A delivery, and the job that makes it, per (event, endpoint); due at once."""
    ids = [new_id() for _ in pairs]
    repository.insert_deliveries(
        conn,
        [
            {
                "id": delivery_id,
                "organization_id": organization_id,
                "endpoint_id": endpoint_id,
                "event_id": event_id,
                "status": "pending",
                "attempt_count": 0,
                "created_at": now,
                "next_attempt_at": now,
                "finished_at": None,
            }
            for delivery_id, (event_id, endpoint_id) in zip(ids, pairs, strict=True)
        ],
    )
    jobs.schedule(
        conn,
        [
            jobs.NewJob(
                kind=DELIVERY_JOB,
                payload={"delivery_id": str(delivery_id)},
                run_at=now,
                organization_id=organization_id,
                id=delivery_id,
            )
            for delivery_id in ids
        ],
        now,
    )
    return ids


# --- deliveries and resending ----------------------------------------------------------------------


def deliveries(
    conn: Connection, principal: Principal, endpoint_id: uuid.UUID, *, limit: int = 50, status: str | None = None
) -> list[Delivery]:
    """The endpoint's deliveries, newest first, each with every attempt."""
    authorize(principal, access.READ_WEBHOOKS)
    endpoint = _find(conn, principal, endpoint_id)
    return repository.list_deliveries(conn, endpoint.id, limit, status)


def resend(
    conn: Connection, principal: Principal, event_id: uuid.UUID, endpoint_id: uuid.UUID | None = None
) -> list[Delivery]:
    """Queue the event again, with its own id and body, to ``endpoint_id`` or to every endpoint it went to.

    Each gets a new delivery with a fresh schedule; what was delivered before stays in the list.
    """
    authorize(principal, access.MANAGE_WEBHOOKS)
    organization_id = require_organization(principal)
    if repository.find_event(conn, organization_id, event_id) is None:
        raise NotFound(f"No webhook event with id {event_id} was found.")
    if endpoint_id is not None:
        endpoint = repository.get_endpoint(conn, organization_id, endpoint_id)
        if endpoint is None:
            raise ValidationFailed.field("body.endpoint_id", f"no webhook endpoint with id {endpoint_id}", "not_found")
        targets = [endpoint]
    else:
        found = (
            repository.get_endpoint(conn, organization_id, found_id)
            for found_id in repository.endpoints_of_event(conn, event_id)
        )
        targets = [endpoint for endpoint in found if endpoint is not None]
    disabled = [endpoint for endpoint in targets if not endpoint.enabled]
    if endpoint_id is not None and disabled:
        raise Conflict(f"Webhook endpoint {endpoint_id} is disabled: enable it first (PATCH enabled: true).")
    targets = [endpoint for endpoint in targets if endpoint.enabled]
    if not targets:
        raise Conflict(
            f"Event {event_id} has no enabled endpoint to go to (its endpoints were deleted or disabled): "
            'name one with {"endpoint_id": "…"}.'
        )
    ids = _queue(conn, organization_id, [(event_id, endpoint.id) for endpoint in targets], utcnow())
    return repository.get_deliveries(conn, ids)


def observe_backlog(database: Database, now: datetime) -> None:
    """Set the gauge of the oldest undelivered event's age (after each pass of the worker)."""
    with database.read() as conn:
        oldest = repository.oldest_pending(conn)
    metrics.set_webhook_backlog_age(0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0))
