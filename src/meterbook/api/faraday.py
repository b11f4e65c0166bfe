"""The Faraday dialect: accounts and their billing under ``/v1`` (seeds ``faraday-get-account.txt`` and
``faraday-get-account-billing.txt``), its usage summaries, and Faraday's error model; what the published
``@fdy/faraday-js`` client sends is taken as it is (CONTRACT §3.1).

The native management API (``api/native.py``, ``api/metering.py``...) shares the ``/v1`` prefix and renders its
errors here too, but never takes a Faraday path (its monthly usage is ``/v1/monthly_usage``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.models import Account, Principal
from meterbook.accounts.schemas import AccountCreate
from meterbook.aggregates import service as aggregates
from meterbook.api.auth import authorized
from meterbook.api.routing import DialectRoute, ExactJSONResponse, JsonNumber, reading, respond, writing
from meterbook.errors import (
    AuthenticationError,
    Conflict,
    ExpiredApiKey,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    MalformedApiKey,
    MeterbookError,
    MissingApiKey,
    NotFound,
    ValidationFailed,
)
from meterbook.features import service as features
from meterbook.features.models import FeatureUsage
from meterbook.invoicing import service as invoicing
from meterbook.invoicing.models import Invoice
from meterbook.kit.time import month_of, month_start, utcnow
from meterbook.payments.models import Payment
from meterbook.plans import service as plans

__all__ = ["ERROR_RESPONSES", "SUMMARY_COUNTERS", "AccountOut", "FeatureUsageOut", "render_error", "router"]

ErrorCode = Literal[
    "BAD_REQUEST",
    "FORBIDDEN",
    "MAX_RESOURCES_REACHED",
    "INTERNAL_SERVER_ERROR",
    "INVALID_AUTHORIZATION",
    "NOT_FOUND",
    "MALFORMED_API_KEY",
    "MISSING_API_KEY",
    "EXPIRED_API_KEY",
    "VALIDATION_FAILED",
    "CONFLICT",
]


# --- errors ----------------------------------------------------------------------------------------


class ValidationContext(BaseModel):
    errorType: str = Field(description="The kind of validation failure, e.g. `missing`, `uuid_parsing`.")


class ValidationErrorItem(BaseModel):
    context: ValidationContext
    message: str = Field(description="What is wrong.")
    path: str = Field(description="Where: `body.<field>`, `path.<parameter>` or `query.<parameter>`.")
    suggestion: str = Field(description="How to fix it.")


class FaradayError(BaseModel):
    error: ErrorCode
    id: uuid.UUID = Field(description="A unique id for this error; it is also in the server's log.")
    note: str = Field(description="A human-readable description of the error.")
    validationErrors: list[ValidationErrorItem] | None = Field(default=None, description="Only on VALIDATION_FAILED.")


_CODES: list[tuple[type[MeterbookError], ErrorCode]] = [
    (MissingApiKey, "MISSING_API_KEY"),
    (MalformedApiKey, "MALFORMED_API_KEY"),
    (ExpiredApiKey, "EXPIRED_API_KEY"),
    (AuthenticationError, "INVALID_AUTHORIZATION"),
    (LimitExceeded, "MAX_RESOURCES_REACHED"),
    (Forbidden, "FORBIDDEN"),
    (NotFound, "NOT_FOUND"),
    (Conflict, "CONFLICT"),
    (ValidationFailed, "VALIDATION_FAILED"),
    (InvalidInput, "BAD_REQUEST"),
]


def _code(error: MeterbookError | None) -> ErrorCode:
    if error is None:
        return "INTERNAL_SERVER_ERROR"
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    # A body over the size limit has no code of its own in Faraday's list; its status (413) says it.
    return "BAD_REQUEST"


def render_error(error: MeterbookError | None, status: int, error_id: uuid.UUID) -> Response:
    body: dict[str, Any] = {
        "error": _code(error),
        "id": str(error_id),
        "note": "An internal error occurred; please report the error id." if error is None else error.message,
    }
    if isinstance(error, ValidationFailed):
        body["validationErrors"] = [
            {
                "context": {"errorType": item.error_type},
                "message": item.message,
                "path": item.path,
                "suggestion": item.suggestion or f"Correct {item.path} and send the request again.",
            }
            for item in error.errors
        ]
    return ExactJSONResponse(body, status_code=status)


_ERROR_DESCRIPTIONS = {
    400: "The request was invalid (BAD_REQUEST, VALIDATION_FAILED).",
    401: "No usable API key (MISSING_API_KEY, INVALID_AUTHORIZATION, MALFORMED_API_KEY, EXPIRED_API_KEY).",
    403: "The key lacks the scope (FORBIDDEN), or a feature limit would be exceeded (MAX_RESOURCES_REACHED).",
    404: "Unknown, or outside the key's reach (NOT_FOUND).",
    409: "The request contradicts what is stored (CONFLICT).",
    413: "The body is over the size limit (BAD_REQUEST).",
    500: "An internal server error occurred (INTERNAL_SERVER_ERROR).",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": FaradayError, "description": description} for status, description in _ERROR_DESCRIPTIONS.items()
}

# --- accounts --------------------------------------------------------------------------------------


class BrandingOut(BaseModel):
    suppress_from_reports: bool


class CommitmentOut(BaseModel):
    monthly_cost: JsonNumber = Field(description="The monthly commitment in the account's currency; 0 for none.")
    renewal_date: datetime | None


class AccountOut(BaseModel):
    """An account, with every field of Faraday's Account object and meterbook's billing settings."""

    id: uuid.UUID
    name: str
    resource_type: Literal["accounts"] = "accounts"
    status: Literal["new", "starting", "running", "ready", "error"]
    status_changed_at: datetime
    status_error: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    branding: BrandingOut
    commitment: CommitmentOut
    parent_account_id: uuid.UUID | None
    stripe_customer_id: str | None
    last_read_input_at: datetime | None
    last_updated_config_at: datetime
    last_updated_output_at: datetime | None
    api_key: str | None = Field(description="Whole only in the reply that created the account; masked afterwards.")
    email: str | None
    currency: str
    contract_started_at: datetime
    net_terms_days: int
    credit_min: int

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        return cls(
            id=account.id,
            name=account.name,
            status=account.status,
            status_changed_at=account.status_changed_at,
            status_error=account.status_error,
            created_at=account.created_at,
            updated_at=account.updated_at,
            archived_at=account.archived_at,
            branding=BrandingOut(suppress_from_reports=account.suppress_from_reports),
            commitment=CommitmentOut(monthly_cost=account.monthly_cost, renewal_date=account.renewal_date),
            parent_account_id=account.parent_account_id,
            stripe_customer_id=account.stripe_customer_id,
            last_read_input_at=account.last_read_input_at,
            last_updated_config_at=account.last_updated_config_at,
            last_updated_output_at=account.last_updated_output_at,
            api_key=account.api_key,
            email=account.email,
            currency=account.currency,
            contract_started_at=account.contract_started_at,
            net_terms_days=account.net_terms_days,
            credit_min=account.credit_min,
        )


class FeatureUsageOut(BaseModel):
    """A feature as an account sees it (Faraday's `usages` item)."""

    name: str = Field(description="A machine-friendly name of the feature, e.g. `cohort.max_count`.")
    description: str
    limit: int | None = Field(description="How many the account may use; null: unlimited.")
    usage: int = Field(description="How many the account uses now (this month, for a feature that resets monthly).")

    @classmethod
    def of(cls, item: FeatureUsage) -> FeatureUsageOut:
        return cls(**vars(item))


router = APIRouter(prefix="/v1", tags=["faraday"], route_class=DialectRoute, responses=ERROR_RESPONSES)

AccountId = Annotated[uuid.UUID, "The UUID of an account"]
Reader = Annotated[Principal, Depends(authorized(access.READ_ACCOUNTS))]
Creator = Annotated[Principal, Depends(authorized(access.CREATE_ACCOUNTS))]
Writer = Annotated[Principal, Depends(authorized(access.CHANGE_ACCOUNTS))]
Archiver = Annotated[Principal, Depends(authorized(access.ARCHIVE_ACCOUNTS))]


@router.get("/accounts", response_model=list[AccountOut])
def list_accounts(
    request: Request,
    principal: Reader,
    ids: Annotated[list[uuid.UUID] | None, Query(description="Only these accounts (repeat the parameter).")] = None,
) -> Response:
    """List the accounts the key reaches, oldest first."""
    with reading(request) as conn:
        found = accounts.list_accounts(conn, principal, ids)
    return respond([AccountOut.of(account) for account in found])


@router.get("/accounts/current", response_model=AccountOut)
def get_current_account(request: Request, principal: Reader) -> Response:
    """Retrieve the account of the calling account key."""
    with reading(request) as conn:
        account = accounts.current_account(conn, principal)
    return respond(AccountOut.of(account))


@router.get("/accounts/{account_id}", response_model=AccountOut)
def get_account(request: Request, principal: Reader, account_id: AccountId) -> Response:
    """Retrieve an account: it must be an account controlled by the API key."""
    with reading(request) as conn:
        account = accounts.get_account(conn, principal, account_id)
    return respond(AccountOut.of(account))


@router.post("/accounts", response_model=AccountOut, status_code=201)
def create_account(request: Request, principal: Creator, body: AccountCreate) -> Response:
    """Create an account (an account key creates a subaccount of itself); the reply holds its key, once."""
    with writing(request) as conn:
        account = accounts.create_account(conn, principal, body)
    return respond(AccountOut.of(account), status_code=201)


@router.patch(
    "/accounts/{account_id}",
    response_model=AccountOut,
    openapi_extra={
        "requestBody": {
            "content": {
                # RFC 7396's type, and what the published @fdy/faraday-js sends.
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/json+merge-patch": {"schema": {"type": "object"}},
            }
        }
    },
)
def update_account(
    request: Request,
    principal: Writer,
    account_id: AccountId,
    patch: Annotated[dict[str, Any], Body(description="A JSON merge patch (RFC 7396) of the account's settings.")],
) -> Response:
    """Change an account's settings with a JSON merge patch."""
    with writing(request) as conn:
        account = accounts.update_account(conn, principal, account_id, patch)
    return respond(AccountOut.of(account))


@router.delete("/accounts/{account_id}", response_model=AccountOut, status_code=202)
def archive_account(request: Request, principal: Archiver, account_id: AccountId) -> Response:
    """Archive an account: it stays visible with `archived_at` set, and no longer changes."""
    with writing(request) as conn:
        account = accounts.archive_account(conn, principal, account_id)
    return respond(AccountOut.of(account), status_code=202)


@router.get("/usages", response_model=list[FeatureUsageOut])
def list_usages(request: Request, principal: Annotated[Principal, Depends(authorized(access.READ_USAGE))]) -> Response:
    """The calling account's features with limit and usage; for an organization key, summed over its accounts."""
    with reading(request) as conn:
        found = plans.feature_usages(conn, principal)
    return respond([FeatureUsageOut.of(item) for item in found])


# --- billing (seed faraday-get-account-billing.txt) ------------------------------------------------


def _seed_date(moment: datetime) -> str:
    """The seed's date form, ``2022-10-05T00:00:00.000Z``: the UTC day at midnight, milliseconds written out."""
    return f"{moment.year:04d}-{moment:%m-%d}T00:00:00.000Z"


# The seed types these as dates but writes them as midnight UTC date-times: documented as what is sent.
SeedDate = Annotated[str, Field(json_schema_extra={"format": "date-time", "example": "2022-10-05T00:00:00.000Z"})]


class BillingInvoiceOut(BaseModel):
    amount: JsonNumber = Field(description="The amount of the invoice.")
    due_date: SeedDate
    effective_date: SeedDate = Field(description="The date of the invoice")
    paid: bool = Field(description="Whether or not the invoice has been paid.")

    @classmethod
    def of(cls, invoice: Invoice) -> BillingInvoiceOut:
        return cls(
            amount=invoice.amount,
            due_date=_seed_date(invoice.due_date),
            effective_date=_seed_date(invoice.effective_date),
            paid=invoice.status == "paid",
        )


class BillingPaymentOut(BaseModel):
    amount: JsonNumber = Field(description="The amount paid.")
    date: SeedDate = Field(description="The date of the payment.")

    @classmethod
    def of(cls, payment: Payment) -> BillingPaymentOut:
        return cls(amount=payment.amount, date=_seed_date(payment.date))


class BillingOut(BaseModel):
    """Information about your account's cost."""

    invoices: list[BillingInvoiceOut]
    payments: list[BillingPaymentOut]
    usages: list[FeatureUsageOut]


BillingReader = Annotated[Principal, Depends(authorized(access.READ_BILLING))]


def _billing(conn: Connection, principal: Principal, account_id: uuid.UUID) -> BillingOut:
    invoices, payments = invoicing.account_statement(conn, principal, account_id)
    usages = plans.feature_usages(conn, principal, account_id)
    return BillingOut(
        invoices=[BillingInvoiceOut.of(invoice) for invoice in invoices],
        payments=[BillingPaymentOut.of(payment) for payment in payments],
        usages=[FeatureUsageOut.of(item) for item in usages],
    )


# Declared before ``/accounts/{account_id}/billing``, which would otherwise take ``current`` for a malformed id.
@router.get("/accounts/current/billing", response_model=BillingOut)
def get_current_account_billing(request: Request, principal: BillingReader) -> Response:
    """Get invoices, payments, and usage stats for the account of the calling account key."""
    with reading(request) as conn:
        account = accounts.current_account(conn, principal)
        billing = _billing(conn, principal, account.id)
    return respond(billing)


@router.get("/accounts/{account_id}/billing", response_model=BillingOut)
def get_account_billing(request: Request, principal: BillingReader, account_id: AccountId) -> Response:
    """Get invoices, payments, and usage stats for your account (void invoices are left out)."""
    with reading(request) as conn:
        billing = _billing(conn, principal, account_id)
    return respond(billing)


# --- usage summaries (Faraday's AccountUsageSummary) -----------------------------------------------

#: What Faraday's summary counts; meterbook counts the account's usage of the features and products so named.
SUMMARY_COUNTERS = ("batch_deployments", "lookup_api_requests")
_SUMMARY_IDS = uuid.UUID("5f0c2a4e-3b1d-4c55-9a57-64d2f3c1b0a7")


class AccountUsageSummaryOut(BaseModel):
    """Faraday's AccountUsageSummary for the current UTC month."""

    id: uuid.UUID = Field(description="The same for the same account(s) and month.")
    started_at: datetime = Field(description="The first instant of the month counted (UTC).")
    finished_at: datetime = Field(description="When the counts were read.")
    batch_deployments: JsonNumber = Field(
        description="This month's usage of the feature and of the product named `batch_deployments`; 0 for none."
    )
    lookup_api_requests: JsonNumber = Field(
        description="This month's usage of the feature and of the product named `lookup_api_requests`; 0 for none."
    )


def _summary(conn: Connection, account: Account, counted: list[Account], kind: str) -> AccountUsageSummaryOut:
    """The summary of ``counted`` (within reach: ``account`` alone, or with its subaccounts) for this month."""
    now = utcnow()
    month = month_of(now)
    account_ids = [item.id for item in counted]
    used = features.current_usage(conn, account.organization_id, account_ids, SUMMARY_COUNTERS)
    units = aggregates.units_in_month(conn, account.organization_id, account_ids, month, SUMMARY_COUNTERS)

    def count(name: str) -> Decimal:
        return Decimal(used.get(name, 0)) + units.get(name, Decimal(0))

    return AccountUsageSummaryOut(
        id=uuid.uuid5(_SUMMARY_IDS, f"{kind}:{account.id}:{month}"),
        started_at=month_start(month),
        finished_at=now,
        batch_deployments=count("batch_deployments"),
        lookup_api_requests=count("lookup_api_requests"),
    )


UsageReader = Annotated[Principal, Depends(authorized(access.READ_USAGE))]


@router.get("/accounts/current/usage", response_model=AccountUsageSummaryOut)
def get_current_account_usage(request: Request, principal: UsageReader) -> Response:
    """Usage this month of the account of the calling account key."""
    with reading(request) as conn:
        account = accounts.current_account(conn, principal)
        summary = _summary(conn, account, [account], "account")
    return respond(summary)


@router.get("/accounts/current/usage/all", response_model=AccountUsageSummaryOut)
def get_current_account_usage_all(request: Request, principal: UsageReader) -> Response:
    """Usage this month of the account of the calling account key and all its subaccounts, added up."""
    with reading(request) as conn:
        account = accounts.current_account(conn, principal)
        summary = _summary(conn, account, accounts.list_accounts(conn, principal), "all")
    return respond(summary)


@router.get("/accounts/{account_id}/usage", response_model=AccountUsageSummaryOut)
def get_account_usage(request: Request, principal: UsageReader, account_id: AccountId) -> Response:
    """Usage this month of one account (not its subaccounts)."""
    with reading(request) as conn:
        account = accounts.get_account(conn, principal, account_id)
        summary = _summary(conn, account, [account], "account")
    return respond(summary)
