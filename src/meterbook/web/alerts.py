"""The console's alerts: every alert of the organization with its latest firings (CONTRACT §7, docs/alerts.md).

Read-only: alerts are set through the API (``POST /v1/alerts``). The page is the operator's (``access.READ_ALERTS``),
as the alerts API is.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.models import Account
from meterbook.alerts import service as alerts
from meterbook.alerts.models import Alert, Trigger
from meterbook.web.common import guarded, page_response

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

#: How many firings the page shows per alert: the latest are what an operator comes for; the API lists them all.
RECENT = 5

#: What each type's threshold counts, as the page says it.
MEASURES = {
    "credit_balance_below": "Credit balance below",
    "spend_above": "Spend in a month above",
    "usage_above": "Units in a month above",
    "feature_usage_above": "Feature usage in a month above",
}


@dataclass(frozen=True)
class AlertView:
    alert: Alert
    measure: str
    #: The account it watches; None: every account.
    account: Account | None
    triggers: list[tuple[Trigger, Account | None]]


@router.get("/alerts")
def alerts_page(request: Request) -> Response:
    with guarded(request, access.READ_ALERTS) as page:
        found = alerts.recent_triggers(page.conn, page.principal, per_alert=RECENT)
        named = {alert.account_id for alert, _ in found} | {t.account_id for _, fired in found for t in fired}
        wanted = sorted(account_id for account_id in named if account_id is not None)
        by_id = {account.id: account for account in accounts.list_accounts(page.conn, page.principal, wanted)}
    views = [
        AlertView(
            alert=alert,
            measure=MEASURES.get(alert.type, alert.type),
            account=None if alert.account_id is None else by_id.get(alert.account_id),
            triggers=[(trigger, by_id.get(trigger.account_id)) for trigger in fired],
        )
        for alert, fired in found
    ]
    return page_response(page, "alerts.html", {"views": views, "recent": RECENT})
