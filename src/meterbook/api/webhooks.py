"""The native management API for webhooks (CONTRACT §7): endpoints, their deliveries, resending an event.

Errors are rendered in the Faraday shape, like the rest of ``/v1``. Webhooks are the operator's: an
organization key, with ``billing:write`` to change them and ``billing:read`` to see them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from meterbook.accounts import access
from meterbook.accounts.models import Principal
from meterbook.api.auth import authorized
from meterbook.api.faraday import ERROR_RESPONSES
from meterbook.api.routing import DialectRoute, reading, respond, writing
from meterbook.config import Settings
from meterbook.webhooks import service as webhooks
from meterbook.webhooks.schemas import (
    DeliveriesOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointPatch,
    EndpointsOut,
    EndpointWithSecretOut,
    ResendIn,
    ResendOut,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["webhooks"], route_class=DialectRoute, responses=ERROR_RESPONSES)

WebhookManager = Annotated[Principal, Depends(authorized(access.MANAGE_WEBHOOKS))]
WebhookReader = Annotated[Principal, Depends(authorized(access.READ_WEBHOOKS))]


def _allow_private(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return settings.webhook_allow_private


@router.post("/webhook_endpoints", response_model=EndpointWithSecretOut, status_code=201)
def create_endpoint(request: Request, principal: WebhookManager, body: EndpointCreate) -> Response:
    """Add a receiver of events; the reply shows its signing secret, this once."""
    with writing(request) as conn:
        created = webhooks.create_endpoint(conn, principal, body, allow_private=_allow_private(request))
    return respond(EndpointWithSecretOut.of_new(created), status_code=201)


@router.get("/webhook_endpoints", response_model=EndpointsOut)
def list_endpoints(request: Request, principal: WebhookReader) -> Response:
    """The organization's webhook endpoints, oldest first (without their secrets)."""
    with reading(request) as conn:
        found = webhooks.list_endpoints(conn, principal)
    return respond(EndpointsOut(endpoints=[EndpointOut.of(endpoint) for endpoint in found]))


@router.get("/webhook_endpoints/{endpoint_id}", response_model=EndpointOut)
def get_endpoint(request: Request, principal: WebhookReader, endpoint_id: uuid.UUID) -> Response:
    """One webhook endpoint (without its secret)."""
    with reading(request) as conn:
        endpoint = webhooks.get_endpoint(conn, principal, endpoint_id)
    return respond(EndpointOut.of(endpoint))


@router.patch("/webhook_endpoints/{endpoint_id}", response_model=EndpointOut)
def update_endpoint(
    request: Request, principal: WebhookManager, endpoint_id: uuid.UUID, body: EndpointPatch
) -> Response:
    """Change an endpoint's `url`, `description`, `event_types` or `enabled`; fields left out stay."""
    with writing(request) as conn:
        endpoint = webhooks.update_endpoint(conn, principal, endpoint_id, body, allow_private=_allow_private(request))
    return respond(EndpointOut.of(endpoint))


@router.delete("/webhook_endpoints/{endpoint_id}", response_model=EndpointOut)
def delete_endpoint(request: Request, principal: WebhookManager, endpoint_id: uuid.UUID) -> Response:
    """Delete an endpoint and its deliveries: what is pending for it is never sent."""
    with writing(request) as conn:
        endpoint = webhooks.delete_endpoint(conn, principal, endpoint_id)
    return respond(EndpointOut.of(endpoint))


@router.post("/webhook_endpoints/{endpoint_id}/rotate_secret", response_model=EndpointWithSecretOut)
def rotate_secret(request: Request, principal: WebhookManager, endpoint_id: uuid.UUID) -> Response:
    """A new signing secret, shown this once; the previous one goes on signing beside it for 24 hours."""
    with writing(request) as conn:
        rotated = webhooks.rotate_secret(conn, principal, endpoint_id)
    return respond(EndpointWithSecretOut.of_new(rotated))


@router.get("/webhook_endpoints/{endpoint_id}/deliveries", response_model=DeliveriesOut)
def list_deliveries(
    request: Request,
    principal: WebhookReader,
    endpoint_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
) -> Response:
    """The endpoint's deliveries, newest first, each with every attempt (time, status, duration, error)."""
    with reading(request) as conn:
        found = webhooks.deliveries(conn, principal, endpoint_id, limit=limit, status=status)
    return respond(DeliveriesOut(deliveries=[DeliveryOut.of(delivery) for delivery in found]))


@router.post("/webhook_events/{event_id}/resend", response_model=ResendOut, status_code=202)
def resend_event(
    request: Request, principal: WebhookManager, event_id: uuid.UUID, body: Annotated[ResendIn | None, Body()] = None
) -> Response:
    """Queue the event again (same id, same body) to every endpoint it went to, or to `endpoint_id`."""
    with writing(request) as conn:
        queued = webhooks.resend(conn, principal, event_id, None if body is None else body.endpoint_id)
    return respond(
        ResendOut(event_id=event_id, deliveries=[DeliveryOut.of(delivery) for delivery in queued]), status_code=202
    )
