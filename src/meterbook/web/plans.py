"""The console's plans: the organization's plans with every version, and on an account's page its plan, its
negotiated prices and the invoice a billing run would make of the current month so far.

Read-only: plans, subscriptions and negotiated prices are written through the API (docs/pricing.md). The plans
pages are the operator's (``access.SEE_PLANS``); what an account's page shows of its terms is read through the
services under the reach rule, as the rest of that page is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from meterbook.accounts import access
from meterbook.accounts.models import Account, Principal
from meterbook.accounts.reach import require_organization
from meterbook.catalog import service as catalog
from meterbook.catalog.models import Product
from meterbook.errors import NotFound
from meterbook.invoicing import service as invoicing
from meterbook.kit.time import utcnow
from meterbook.plans import service as plans
from meterbook.plans.models import NegotiatedPrice, Plan, PlanVersion, Subscription
from meterbook.plans.schemas import PLAN_CODE
from meterbook.pricing import PriceModel
from meterbook.web.common import guarded, page_response

__all__ = ["account_terms", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

_CODE = re.compile(PLAN_CODE)

VersionState = Literal["current", "scheduled", "past"]


def _code_or_404(text: str) -> str:
    # Anything that is no plan code is no plan; it never reaches the database (PostgreSQL refuses NUL in text).
    if _CODE.fullmatch(text) is None:
        raise NotFound("Not a plan code.")
    return text


def _shown_version(plan: Plan, now: datetime) -> tuple[PlanVersion | None, bool]:
    """The version a list shows for a plan: the one in force now, else (a plan that starts later) its first."""
    current = plan.version_at(now)
    if current is not None:
        return current, True
    return (plan.versions[0] if plan.versions else None), False


@dataclass(frozen=True)
class PriceRow:
    product_id: str
    #: None if the catalog no longer has it.
    product: Product | None
    price: PriceModel
    currency: str


@dataclass(frozen=True)
class VersionView:
    version: PlanVersion
    state: VersionState
    prices: list[PriceRow]
    limits: list[tuple[str, int | None]]


@router.get("/plans")
def plans_page(request: Request) -> Response:
    with guarded(request, access.SEE_PLANS) as page:
        found = plans.list_plans(page.conn, page.principal)
    now = utcnow()
    rows = []
    for plan in found:
        shown, in_force = _shown_version(plan, now)
        rows.append({"plan": plan, "version": shown, "in_force": in_force})
    return page_response(page, "plans.html", {"rows": rows})


@router.get("/plans/{code}")
def plan_page(request: Request, code: str) -> Response:
    wanted = _code_or_404(code)
    with guarded(request, access.SEE_PLANS) as page:
        plan = plans.get_plan(page.conn, page.principal, wanted)
        priced = {product_id for version in plan.versions for product_id in version.prices}
        products = catalog.products_by_id(page.conn, require_organization(page.principal), priced)
    now = utcnow()
    current = plan.version_at(now)
    views = [
        VersionView(
            version=version,
            state="current" if version is current else "scheduled" if version.effective_from > now else "past",
            prices=[
                PriceRow(product_id, products.get(product_id), model, version.currency)
                for product_id, model in sorted(version.prices.items())
            ],
            limits=sorted(version.limits.items()),
        )
        # Newest first, as the console lists invoices: what holds now and next is what the reader comes for.
        for version in reversed(plan.versions)
    ]
    shown, in_force = _shown_version(plan, now)
    return page_response(page, "plan.html", {"plan": plan, "shown": shown, "in_force": in_force, "versions": views})


# --- an account's terms, for its page --------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionView:
    subscription: Subscription
    #: The plan's version in force when the subscription applies (now, or when it starts).
    version: PlanVersion | None


@dataclass(frozen=True)
class NegotiatedView:
    negotiated: NegotiatedPrice
    product: Product | None
    currency: str
    state: VersionState


def _negotiated_views(
    found: Sequence[NegotiatedPrice], products: dict[str, Product], account: Account, now: datetime
) -> list[NegotiatedView]:
    # A product's negotiated price in force is the latest that has started; earlier ones are kept for the record.
    in_force: dict[str, datetime] = {}
    for item in found:
        if item.effective_from <= now:
            in_force[item.product_id] = max(item.effective_from, in_force.get(item.product_id, item.effective_from))
    views = []
    for item in found:
        product = products.get(item.product_id)
        state: VersionState = (
            "scheduled"
            if item.effective_from > now
            else "current"
            if in_force.get(item.product_id) == item.effective_from
            else "past"
        )
        views.append(NegotiatedView(item, product, product.currency if product else account.currency, state))
    return views


def account_terms(conn: Connection, principal: Principal, account: Account) -> dict[str, Any]:
    """What decides the account's prices, and what the current month would invoice so far: its page's context."""
    now = utcnow()
    subscribed = plans.subscriptions(conn, principal, account.id)
    negotiated = plans.negotiated_prices(conn, principal, account.id)
    wanted = [item for item in (subscribed.current, *subscribed.scheduled) if item is not None]
    # An account is on a plan or two at a time (the current one and the next), so one lookup each is cheap.
    found = {code: plans.get_plan(conn, principal, code) for code in sorted({item.plan_code for item in wanted})}
    products = catalog.products_by_id(conn, account.organization_id, {item.product_id for item in negotiated})

    def view(subscription: Subscription, moment: datetime) -> SubscriptionView:
        return SubscriptionView(subscription, found[subscription.plan_code].version_at(moment))

    return {
        "subscription": None if subscribed.current is None else view(subscribed.current, now),
        "scheduled": [view(item, item.starts_at) for item in subscribed.scheduled],
        "negotiated": _negotiated_views(negotiated, products, account, now),
        "upcoming": invoicing.upcoming_invoices(conn, principal, account.id),
        "upcoming_month": f"{now:%Y-%m}",
    }
