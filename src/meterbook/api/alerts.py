"""The native management API for alerts (CONTRACT §7): thresholds on credits, spend, usage and feature usage, and
their firings.

Errors are rendered in the Faraday shape, like the rest of ``/v1``. Alerts are the operator's: an organization key,
with ``billing:write`` to change them and ``billing:read`` to see them and their firings.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from meterbook.accounts import access
from meterbook.accounts.models import Principal
from meterbook.alerts import service as alerts
from meterbook.alerts.schemas import AlertCreate, AlertOut, AlertsOut, TriggerOut, TriggersOut
from meterbook.api.auth import authorized
from meterbook.api.faraday import ERROR_RESPONSES
from meterbook.api.routing import DialectRoute, reading, respond, writing

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["alerts"], route_class=DialectRoute, responses=ERROR_RESPONSES)

AlertManager = Annotated[Principal, Depends(authorized(access.MANAGE_ALERTS))]
AlertReader = Annotated[Principal, Depends(authorized(access.READ_ALERTS))]


@router.post("/alerts", response_model=AlertOut, status_code=201)
def create_alert(request: Request, principal: AlertManager, body: AlertCreate) -> Response:
    """Watch one account (or every account) for a threshold; it fires at the write that crosses it."""
    with writing(request) as conn:
        alert = alerts.create_alert(conn, principal, body)
    return respond(AlertOut.of(alert), status_code=201)


@router.get("/alerts", response_model=AlertsOut)
def list_alerts(request: Request, principal: AlertReader) -> Response:
    """The organization's alerts, oldest first."""
    with reading(request) as conn:
        found = alerts.list_alerts(conn, principal)
    return respond(AlertsOut(alerts=[AlertOut.of(alert) for alert in found]))


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def get_alert(request: Request, principal: AlertReader, alert_id: uuid.UUID) -> Response:
    """One alert."""
    with reading(request) as conn:
        alert = alerts.get_alert(conn, principal, alert_id)
    return respond(AlertOut.of(alert))


@router.delete("/alerts/{alert_id}", response_model=AlertOut)
def delete_alert(request: Request, principal: AlertManager, alert_id: uuid.UUID) -> Response:
    """Delete an alert and the record of its firings (events already emitted are still delivered)."""
    with writing(request) as conn:
        alert = alerts.delete_alert(conn, principal, alert_id)
    return respond(AlertOut.of(alert))


@router.get("/alerts/{alert_id}/triggers", response_model=TriggersOut)
def list_triggers(
    request: Request,
    principal: AlertReader,
    alert_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The alert's firings, newest first: account, value, threshold, period, when."""
    with reading(request) as conn:
        found = alerts.triggers(conn, principal, alert_id, limit=limit)
    return respond(TriggersOut(triggers=[TriggerOut.of(trigger) for trigger in found]))
