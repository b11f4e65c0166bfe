"""The native management API for usage: events, credits, features and limits, and the product catalog.

Errors are rendered in the Faraday shape, like the rest of ``/v1``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from meterbook import metrics
from meterbook.accounts import access
from meterbook.accounts.models import Principal
from meterbook.aggregates import service as aggregates
from meterbook.aggregates.models import Aggregate
from meterbook.api.auth import authorized, authorized_on_loop, bearer_principal
from meterbook.api.faraday import ERROR_RESPONSES, FeatureUsageOut
from meterbook.api.routing import DialectRoute, JsonNumber, database, reading, respond, writing
from meterbook.catalog import service as catalog
from meterbook.catalog.models import Product
from meterbook.catalog.schemas import PRODUCT_ID, ProductPut
from meterbook.db import Database
from meterbook.db.group_commit import GroupCommitter
from meterbook.errors import MeterbookError
from meterbook.features import service as features
from meterbook.features.models import Feature
from meterbook.features.schemas import FEATURE_NAME, FeaturePut, LimitPut
from meterbook.kit.fields import MONTH_PATTERN
from meterbook.kit.time import utcnow
from meterbook.ledger import service as ledger
from meterbook.ledger.models import Balance
from meterbook.ledger.schemas import CreditGrant, TransactionOut
from meterbook.usage import service as usage
from meterbook.usage.schemas import MAX_BATCH, EventIn

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["native"], route_class=DialectRoute, responses=ERROR_RESPONSES)

EventWriter = Annotated[Principal, Depends(authorized_on_loop(access.REPORT_USAGE))]
UsageReader = Annotated[Principal, Depends(authorized(access.READ_USAGE))]
CreditGranter = Annotated[Principal, Depends(authorized(access.GRANT_CREDITS))]
BillingReader = Annotated[Principal, Depends(authorized(access.READ_BILLING))]
FeatureManager = Annotated[Principal, Depends(authorized(access.MANAGE_FEATURES))]
CatalogManager = Annotated[Principal, Depends(authorized(access.MANAGE_CATALOG))]
LimitSetter = Annotated[Principal, Depends(authorized(access.SET_LIMITS))]


# --- events ----------------------------------------------------------------------------------------


class IngestOut(BaseModel):
    accepted: int = Field(description="Events applied by this request.")
    duplicates: int = Field(description="Events whose id was already applied with the same content: nothing changed.")


#: Events one group commit takes at most (see ``db/group_commit.py``): a full request always fits.
GROUP_MAX_EVENTS = MAX_BATCH

#: One request's events and who sent them: its checked key, or (from ``fast_events``) a bearer token to check.
EventBatch = tuple[Principal | str, list[EventIn]]


@router.post("/events", response_model=IngestOut)
async def ingest_events(
    request: Request,
    principal: EventWriter,
    events: Annotated[list[EventIn], Body(min_length=1, max_length=MAX_BATCH)],
) -> Response:
    """Record up to 10,000 usage events, all or nothing, each id at most once for ever."""
    db = database(request)
    if db.is_sqlite:
        # One writer: requests that arrive together share a transaction and its durable commit.
        result = await asyncio.wrap_future(events_committer(db).submit((principal, events)))
    else:
        result = await run_in_threadpool(_ingest_alone, request, principal, events)
    return ingested(result)


def ingested(result: usage.IngestResult) -> Response:
    """The answer to a committed batch (``fast_events`` gives the same one)."""
    metrics.record_ingest(result)
    return respond(IngestOut(accepted=result.accepted, duplicates=result.duplicates))


def events_committer(db: Database) -> GroupCommitter[EventBatch, usage.IngestResult]:
    return db.group_committer("ingest", _apply_group, weigh=lambda batch: len(batch[1]), max_weight=GROUP_MAX_EVENTS)


def _apply_group(conn: Connection, batches: Sequence[EventBatch]) -> list[usage.IngestResult | Exception]:
    """Check the bearer tokens of the group (each once), then ingest the batches whose key may write usage."""
    principals: dict[str, Principal | Exception] = {}
    outcomes: dict[int, usage.IngestResult | Exception] = {}
    checked: list[tuple[int, Principal, list[EventIn]]] = []
    for index, (sender, events) in enumerate(batches):
        if isinstance(sender, str):
            if sender not in principals:
                try:
                    principals[sender] = bearer_principal(conn, sender, access.REPORT_USAGE)
                except MeterbookError as refusal:
                    principals[sender] = refusal
            found = principals[sender]
            if isinstance(found, Exception):
                outcomes[index] = found
                continue
            sender = found
        checked.append((index, sender, events))
    results = usage.ingest_group(conn, [(principal, events) for _, principal, events in checked])
    outcomes.update((index, result) for (index, _, _), result in zip(checked, results, strict=True))
    return [outcomes[index] for index in range(len(batches))]


def _ingest_alone(request: Request, principal: Principal, events: list[EventIn]) -> usage.IngestResult:
    """PostgreSQL: a transaction per request, and as many at once as there are connections."""
    with writing(request) as conn:
        return usage.ingest(conn, principal, events)


# --- usage aggregates ------------------------------------------------------------------------------


class AggregateOut(BaseModel):
    id: str = Field(description="32 hex digits, stable for this aggregate.")
    account_id: uuid.UUID
    product_id: str
    aggr_product_id: str | None
    description: str
    month: str = Field(description="YYYY-MM, UTC.")
    type: str
    direction: str | None
    resolution: str | None
    unit: str
    currency: str
    wallet_name: str | None
    price: JsonNumber
    number_of_units: JsonNumber
    total_amount: JsonNumber = Field(description="number_of_units * price, exact (not rounded).")

    @classmethod
    def of(cls, aggregate: Aggregate) -> AggregateOut:
        return cls(
            id=aggregate.id,
            account_id=aggregate.account_id,
            product_id=aggregate.product_id,
            aggr_product_id=aggregate.aggr_product_id,
            description=aggregate.description,
            month=aggregate.month,
            type=aggregate.type,
            direction=aggregate.direction,
            resolution=aggregate.resolution,
            unit=aggregate.unit,
            currency=aggregate.currency,
            wallet_name=aggregate.wallet_name,
            price=aggregate.price,
            number_of_units=aggregate.number_of_units,
            total_amount=aggregate.total_amount,
        )


class AccountUsageOut(BaseModel):
    account_id: uuid.UUID
    usage: list[AggregateOut]


# Not under /v1/accounts/{id}/usage: that path is the Faraday dialect's (its AccountUsageSummary, CONTRACT §3.1).
@router.get("/monthly_usage", response_model=AccountUsageOut)
def monthly_usage(
    request: Request,
    principal: UsageReader,
    account_id: Annotated[uuid.UUID, Query(description="The account whose aggregates to list.")],
    from_month: Annotated[str | None, Query(alias="from", pattern=MONTH_PATTERN, description="`YYYY-MM`")] = None,
    to_month: Annotated[str | None, Query(alias="to", pattern=MONTH_PATTERN, description="`YYYY-MM`")] = None,
) -> Response:
    """The account's monthly usage aggregates from `from` to `to` (YYYY-MM, both included), oldest first."""
    with reading(request) as conn:
        found = aggregates.account_usage(conn, principal, account_id, from_month, to_month)
    return respond(AccountUsageOut(account_id=account_id, usage=[AggregateOut.of(a) for a in found]))


# --- credits ---------------------------------------------------------------------------------------


class BalanceOut(BaseModel):
    account_id: uuid.UUID
    balance: int = Field(description="Credits granted and bought, less credits used.")
    credit_min: int = Field(description="The balance never goes below this (negative: an overdraft).")
    updated_at: datetime | None

    @classmethod
    def of(cls, balance: Balance) -> BalanceOut:
        return cls(**vars(balance))


class TransactionsOut(BaseModel):
    transactions: list[TransactionOut]


@router.post(
    "/accounts/{account_id}/credits",
    response_model=TransactionOut,
    status_code=201,
    responses={200: {"model": TransactionOut, "description": "The same `id` again: the first transaction."}},
)
def grant_credits(request: Request, principal: CreditGranter, account_id: uuid.UUID, body: CreditGrant) -> Response:
    """Grant or sell credits to an account; the same `id` again is answered 200 with the first transaction."""
    with writing(request) as conn:
        transaction, created = ledger.grant(conn, principal, account_id, body)
    return respond(TransactionOut.of(transaction), status_code=201 if created else 200)


@router.get("/accounts/{account_id}/credits", response_model=BalanceOut)
def get_balance(request: Request, principal: BillingReader, account_id: uuid.UUID) -> Response:
    """The account's credit balance and its credit floor."""
    with reading(request) as conn:
        balance = ledger.balance(conn, principal, account_id)
    return respond(BalanceOut.of(balance))


@router.get("/accounts/{account_id}/credits/transactions", response_model=TransactionsOut)
def list_transactions(request: Request, principal: BillingReader, account_id: uuid.UUID) -> Response:
    """Every ledger transaction of the account, newest first."""
    with reading(request) as conn:
        found = ledger.transactions(conn, principal, account_id)
    return respond(TransactionsOut(transactions=[TransactionOut.of(t) for t in found]))


# --- features --------------------------------------------------------------------------------------


class FeatureOut(BaseModel):
    name: str
    description: str
    default_limit: int | None = Field(description="null: unlimited.")
    reset: Literal["never", "monthly"]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, feature: Feature) -> FeatureOut:
        return cls(**vars(feature))


FeatureName = Annotated[str, Path(pattern=FEATURE_NAME, description="e.g. `cohort.max_count`")]


@router.put(
    "/features/{name}",
    response_model=FeatureOut,
    responses={201: {"model": FeatureOut, "description": "The feature was created."}},
)
def put_feature(request: Request, principal: FeatureManager, name: FeatureName, body: FeaturePut) -> Response:
    """Create or change a feature (201 when created)."""
    with writing(request) as conn:
        feature, created = features.put_feature(conn, principal, name, body)
    return respond(FeatureOut.of(feature), status_code=201 if created else 200)


@router.get("/features", response_model=list[FeatureOut])
def list_features(request: Request, principal: UsageReader) -> Response:
    """Every feature of the organization."""
    with reading(request) as conn:
        found = features.list_features(conn, principal)
    return respond([FeatureOut.of(feature) for feature in found])


@router.put("/accounts/{account_id}/limits/{feature}", response_model=FeatureUsageOut)
def put_limit(
    request: Request,
    principal: LimitSetter,
    account_id: uuid.UUID,
    feature: Annotated[str, Path(pattern=FEATURE_NAME)],
    body: LimitPut,
) -> Response:
    """Set one account's limit for a feature (null: unlimited); the reply shows the limit and current usage."""
    with writing(request) as conn:
        item = features.set_limit(conn, principal, account_id, feature, body.limit)
    return respond(FeatureUsageOut.of(item))


# --- catalog ---------------------------------------------------------------------------------------


class PriceOut(BaseModel):
    effective_from: datetime
    unit_price: JsonNumber


class ProductOut(BaseModel):
    product_id: str
    aggr_product_id: str | None
    description: str
    type: str
    unit: str
    wallet_name: str | None
    currency: str
    unit_price: JsonNumber | None = Field(description="The price in force now (null if every price starts later).")
    prices: list[PriceOut] = Field(description="Every dated price, oldest first.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, product: Product, now: datetime) -> ProductOut:
        return cls(
            product_id=product.product_id,
            aggr_product_id=product.aggr_product_id,
            description=product.description,
            type=product.type,
            unit=product.unit,
            wallet_name=product.wallet_name,
            currency=product.currency,
            unit_price=product.price_at(now),
            prices=[PriceOut(effective_from=p.effective_from, unit_price=p.unit_price) for p in product.prices],
            created_at=product.created_at,
            updated_at=product.updated_at,
        )


@router.put(
    "/products/{product_id}",
    response_model=ProductOut,
    responses={201: {"model": ProductOut, "description": "The product was created."}},
)
def put_product(
    request: Request,
    principal: CatalogManager,
    product_id: Annotated[str, Path(pattern=PRODUCT_ID)],
    body: ProductPut,
) -> Response:
    """Create or change a product (201 when created); a new price takes effect from `price_effective_from`."""
    with writing(request) as conn:
        product, created = catalog.put_product(conn, principal, product_id, body)
    return respond(ProductOut.of(product, product.updated_at), status_code=201 if created else 200)


@router.get("/products", response_model=list[ProductOut])
def list_products(request: Request, principal: UsageReader) -> Response:
    """Every product of the catalog, with its prices."""
    with reading(request) as conn:
        found = catalog.list_products(conn, principal)
    now = utcnow()
    return respond([ProductOut.of(product, now) for product in found])
