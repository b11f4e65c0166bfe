"""The console's webhooks: the organization's endpoints, an endpoint's deliveries with every attempt, and
resending an event (review, then Confirm, like every console action).

Endpoints are created and changed through the API (their secret is shown once, in that reply); the console is
where an operator sees what arrived and what did not, and sends it again.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from meterbook.accounts import access
from meterbook.errors import Conflict, Forbidden, InvalidInput
from meterbook.web.common import acting, attempt, done, first, guarded, page_response, submitted, uuid_or_404
from meterbook.webhooks import service as webhooks
from meterbook.webhooks.schemas import DeliveryOut, EndpointOut

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/webhooks")
def endpoints_page(request: Request) -> Response:
    with guarded(request, access.READ_WEBHOOKS) as page:
        found = webhooks.list_endpoints(page.conn, page.principal)
    return page_response(page, "webhooks.html", {"endpoints": [EndpointOut.of(endpoint) for endpoint in found]})


@router.get("/webhooks/{endpoint_id}")
def endpoint_page(request: Request, endpoint_id: str) -> Response:
    wanted = uuid_or_404(endpoint_id)
    with guarded(request, access.READ_WEBHOOKS) as page:
        endpoint = webhooks.get_endpoint(page.conn, page.principal, wanted)
        found = webhooks.deliveries(page.conn, page.principal, wanted, limit=100)
    context = {"endpoint": EndpointOut.of(endpoint), "deliveries": [DeliveryOut.of(item) for item in found]}
    return page_response(page, "webhook.html", context)


@router.get("/webhook-events/{event_id}/resend")
def resend_review(request: Request, event_id: str, endpoint: str = "") -> Response:
    return _resend(request, event_id, {"endpoint_id": [endpoint]}, confirmed=False)


@router.post("/webhook-events/{event_id}/resend/confirm")
async def resend_confirm(request: Request, event_id: str) -> Response:
    form = await submitted(request)
    return await run_in_threadpool(_resend, request, event_id, form, True)


def _resend(request: Request, event_id: str, form: dict[str, list[str]], confirmed: bool) -> Response:
    wanted = uuid_or_404(event_id)
    endpoint_id = uuid_or_404(first(form, "endpoint_id"))
    guard = acting(request, form, access.MANAGE_WEBHOOKS) if confirmed else guarded(request, access.MANAGE_WEBHOOKS)
    with guard as page:
        endpoint = webhooks.get_endpoint(page.conn, page.principal, endpoint_id)
    back = f"/ui/webhooks/{endpoint.id}"
    outcome = attempt(request, lambda conn: webhooks.resend(conn, page.principal, wanted, endpoint.id), apply=confirmed)
    error: str | None = None
    status = 200
    if isinstance(outcome, (InvalidInput, Conflict, Forbidden)):
        error, status = outcome.message, outcome.status
    elif confirmed:
        return done(page, back, f"Event {wanted} is queued again to {endpoint.url}.")
    context = {
        "title": f"Send event {wanted} again?",
        "back": back,
        "action": f"/ui/webhook-events/{wanted}/resend/confirm",
        "confirm": "Send it again",
        "error": error,
        "rows": [("Event", str(wanted)), ("Endpoint", endpoint.url)],
        "notes": [
            "The same event, with the same webhook-id and body, is sent again now (and retried on failure): a "
            "receiver that already has it sees a duplicate it should ignore by that id."
        ],
        "hidden": {"endpoint_id": str(endpoint.id)},
    }
    return page_response(page, "confirm.html", {"hidden": {}, "rows": [], "notes": []} | context, status)
