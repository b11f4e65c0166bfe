"""The native management API for plans, their versions, subscriptions and negotiated prices (CONTRACT §6).

Errors are rendered in the Faraday shape, like the rest of ``/v1``. Plans are the operator's to change (an
organization key with ``catalog:write``), and so are an account's plan and its negotiated prices
(``billing:write``); a customer's key may read its own subscription and prices, and the plans.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field, WithJsonSchema

from meterbook.accounts import access
from meterbook.accounts.models import Principal
from meterbook.api.auth import authorized
from meterbook.api.faraday import ERROR_RESPONSES
from meterbook.api.routing import DialectRoute, JsonNumber, reading, respond, writing
from meterbook.catalog.schemas import PRODUCT_ID
from meterbook.plans import service as plans
from meterbook.plans.models import IncludedCredits, NegotiatedPrice, Plan, PlanVersion, Subscription
from meterbook.plans.schemas import PLAN_CODE, NegotiatedPricePut, PlanPut, SubscriptionPut
from meterbook.pricing import PriceModel
from meterbook.usage import service as usage

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["native"], route_class=DialectRoute, responses=ERROR_RESPONSES)

PlanManager = Annotated[Principal, Depends(authorized(access.MANAGE_PLANS))]
PriceSetter = Annotated[Principal, Depends(authorized(access.SET_PRICES))]
BillingReader = Annotated[Principal, Depends(authorized(access.READ_BILLING))]

#: A price model as it was set: ``{"model": "per_unit", "unit_price": 0.05}`` and so on (see docs/pricing.md).
PriceJson = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "required": ["model"],
            "description": 'A price model as it was set, e.g. {"model": "per_unit", "unit_price": 0.05}; numbers '
            "are exact decimals.",
        }
    ),
]


def _price(model: PriceModel) -> dict[str, Any]:
    return model.model_dump(mode="python")


class IncludedCreditsOut(BaseModel):
    amount: int
    rollover: Literal["none", "all"] | int = Field(description='"none", "all", or at most this many credits.')

    @classmethod
    def of(cls, credits: IncludedCredits) -> IncludedCreditsOut:
        return cls(amount=credits.amount, rollover=credits.rollover)


class PlanVersionOut(BaseModel):
    effective_from: datetime = Field(description="The first instant of the UTC month the version holds from.")
    name: str
    currency: str
    fee: JsonNumber = Field(description="The fixed amount of a month on the plan.")
    prices: dict[str, PriceJson] = Field(description="The plan's price of each product it prices, by product id.")
    limits: dict[str, int | None] = Field(description="The plan's limit of each feature; null: unlimited.")
    included_credits: IncludedCreditsOut | None
    created_at: datetime

    @classmethod
    def of(cls, version: PlanVersion) -> PlanVersionOut:
        credits = version.included_credits
        return cls(
            effective_from=version.effective_from,
            name=version.name,
            currency=version.currency,
            fee=version.fee,
            prices={product_id: _price(price) for product_id, price in version.prices.items()},
            limits=dict(version.limits),
            included_credits=None if credits is None else IncludedCreditsOut.of(credits),
            created_at=version.created_at,
        )


class PlanOut(BaseModel):
    code: str
    created_at: datetime
    updated_at: datetime
    versions: list[PlanVersionOut] = Field(description="Every version, oldest first.")

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        return cls(
            code=plan.code,
            created_at=plan.created_at,
            updated_at=plan.updated_at,
            versions=[PlanVersionOut.of(version) for version in plan.versions],
        )


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    plan: str = Field(description="The plan's code.")
    starts_at: datetime
    ends_at: datetime | None = Field(description="Exclusive; null: until changed.")

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionOut:
        return cls(
            id=subscription.id,
            plan=subscription.plan_code,
            starts_at=subscription.starts_at,
            ends_at=subscription.ends_at,
        )


class AccountSubscriptionOut(BaseModel):
    account_id: uuid.UUID
    current: SubscriptionOut | None = Field(description="The subscription in force now; null: none.")
    scheduled: list[SubscriptionOut] = Field(description="Subscriptions that start later, earliest first.")

    @classmethod
    def of(cls, found: plans.AccountSubscriptions) -> AccountSubscriptionOut:
        return cls(
            account_id=found.account_id,
            current=None if found.current is None else SubscriptionOut.of(found.current),
            scheduled=[SubscriptionOut.of(item) for item in found.scheduled],
        )


class NegotiatedPriceOut(BaseModel):
    account_id: uuid.UUID
    product_id: str
    effective_from: datetime = Field(description="The first instant of the UTC month the price holds from.")
    price: PriceJson
    created_at: datetime

    @classmethod
    def of(cls, found: NegotiatedPrice) -> NegotiatedPriceOut:
        return cls(
            account_id=found.account_id,
            product_id=found.product_id,
            effective_from=found.effective_from,
            price=_price(found.price),
            created_at=found.created_at,
        )


class NegotiatedPricesOut(BaseModel):
    account_id: uuid.UUID
    prices: list[NegotiatedPriceOut] = Field(description="By product, oldest first.")


PlanCode = Annotated[str, Path(pattern=PLAN_CODE, description="e.g. `pro`")]


# --- plans -----------------------------------------------------------------------------------------


@router.put(
    "/plans/{code}",
    response_model=PlanOut,
    responses={201: {"model": PlanOut, "description": "The plan was created."}},
)
def put_plan(request: Request, principal: PlanManager, code: PlanCode, body: PlanPut) -> Response:
    """Create a plan, or give it a version from `effective_from` (a month start; default this month's)."""
    with writing(request) as conn:
        plan, created = plans.put_plan(conn, principal, code, body)
    return respond(PlanOut.of(plan), status_code=201 if created else 200)


@router.get("/plans", response_model=list[PlanOut])
def list_plans(request: Request, principal: BillingReader) -> Response:
    """Every plan of the organization, with its versions."""
    with reading(request) as conn:
        found = plans.list_plans(conn, principal)
    return respond([PlanOut.of(plan) for plan in found])


@router.get("/plans/{code}", response_model=PlanOut)
def get_plan(request: Request, principal: BillingReader, code: PlanCode) -> Response:
    """One plan, with its versions, oldest first."""
    with reading(request) as conn:
        plan = plans.get_plan(conn, principal, code)
    return respond(PlanOut.of(plan))


# --- subscriptions ---------------------------------------------------------------------------------


@router.put("/accounts/{account_id}/subscription", response_model=AccountSubscriptionOut)
def put_subscription(
    request: Request, principal: PriceSetter, account_id: uuid.UUID, body: SubscriptionPut
) -> Response:
    """Put the account on a plan from `starts_at` (default now), replacing what it was on from then."""
    with writing(request) as conn:
        found = usage.put_subscription(conn, principal, account_id, body)
    return respond(AccountSubscriptionOut.of(found))


@router.delete("/accounts/{account_id}/subscription", response_model=AccountSubscriptionOut)
def end_subscription(request: Request, principal: PriceSetter, account_id: uuid.UUID) -> Response:
    """End the account's plan at the end of the current month (UTC)."""
    with writing(request) as conn:
        found = usage.end_subscription(conn, principal, account_id)
    return respond(AccountSubscriptionOut.of(found))


@router.get("/accounts/{account_id}/subscription", response_model=AccountSubscriptionOut)
def get_subscription(request: Request, principal: BillingReader, account_id: uuid.UUID) -> Response:
    """The account's subscription in force now, and those scheduled to start later."""
    with reading(request) as conn:
        found = plans.subscriptions(conn, principal, account_id)
    return respond(AccountSubscriptionOut.of(found))


# --- negotiated prices -----------------------------------------------------------------------------


@router.put(
    "/accounts/{account_id}/prices/{product_id}",
    response_model=NegotiatedPriceOut,
    responses={201: {"model": NegotiatedPriceOut, "description": "A price from a new month."}},
)
def put_negotiated_price(
    request: Request,
    principal: PriceSetter,
    account_id: uuid.UUID,
    product_id: Annotated[str, Path(pattern=PRODUCT_ID)],
    body: NegotiatedPricePut,
) -> Response:
    """Give the account its own price of a product from `effective_from` (a month start); it beats its plan."""
    with writing(request) as conn:
        found, created = plans.put_negotiated_price(conn, principal, account_id, product_id, body)
    return respond(NegotiatedPriceOut.of(found), status_code=201 if created else 200)


@router.get("/accounts/{account_id}/prices", response_model=NegotiatedPricesOut)
def list_negotiated_prices(request: Request, principal: BillingReader, account_id: uuid.UUID) -> Response:
    """Every negotiated price of the account, by product, oldest first."""
    with reading(request) as conn:
        found = plans.negotiated_prices(conn, principal, account_id)
    return respond(NegotiatedPricesOut(account_id=account_id, prices=[NegotiatedPriceOut.of(item) for item in found]))
