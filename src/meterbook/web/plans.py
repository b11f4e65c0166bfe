"""The console's plans: the organization's plans with every version.

Read-only: plans are written through the API (docs/pricing.md). The plans pages are the operator's
(``access.SEE_PLANS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from meterbook.accounts import access
from meterbook.accounts.reach import require_organization
from meterbook.catalog import service as catalog
from meterbook.catalog.models import Product
from meterbook.errors import NotFound
from meterbook.kit.time import utcnow
from meterbook.plans import service as plans
from meterbook.plans.models import Plan, PlanVersion
from meterbook.plans.schemas import PLAN_CODE
from meterbook.pricing import PriceModel
from meterbook.web.common import guarded, page_response

__all__ = ["router"]

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
