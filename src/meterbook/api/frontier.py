"""The Frontier dialect under ``/v1beta1`` (seed ``frontier-create-billing-usage.txt``, CONTRACT §3.4).

Credit and feature usage reported against a billing account, the credit balance and its
transactions, a spending check, and reverts. Requests are parsed into the native domain's terms
(a usage becomes an :class:`~meterbook.usage.schemas.EventIn`), the services decide, and failures are
answered in Frontier's gRPC-gateway shape ``{"code", "message", "details"}``.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from meterbook import metrics
from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.models import Principal
from meterbook.api.auth import authorized
from meterbook.api.errors import MethodNotAllowed
from meterbook.api.routing import DialectRoute, ExactJSONResponse, reading, respond, writing
from meterbook.errors import (
    AuthenticationError,
    Conflict,
    FieldError,
    Forbidden,
    LimitExceeded,
    MeterbookError,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    pydantic_message,
)
from meterbook.kit.fields import INT64_MAX, InputModel, Utc
from meterbook.ledger import service as ledger
from meterbook.ledger.models import Balance, Transaction
from meterbook.usage import service as usage
from meterbook.usage.schemas import MAX_BATCH, EventIn

__all__ = ["ERROR_RESPONSES", "FrontierError", "render_error", "router"]

# --- errors ----------------------------------------------------------------------------------------

#: The gRPC status codes Frontier's gateway puts in ``code``.
INVALID_ARGUMENT: Final = 3
NOT_FOUND: Final = 5
ALREADY_EXISTS: Final = 6
PERMISSION_DENIED: Final = 7
FAILED_PRECONDITION: Final = 9
UNIMPLEMENTED: Final = 12
INTERNAL: Final = 13
UNAUTHENTICATED: Final = 16

#: For each kind of failure: its HTTP status and gRPC code. The first match wins.
_CODES: list[tuple[type[MeterbookError], int, int]] = [
    (AuthenticationError, 401, UNAUTHENTICATED),
    (Forbidden, 403, PERMISSION_DENIED),
    (LimitExceeded, 400, FAILED_PRECONDITION),
    (NotFound, 404, NOT_FOUND),
    (Conflict, 409, ALREADY_EXISTS),
    (PayloadTooLarge, 413, INVALID_ARGUMENT),
    (MethodNotAllowed, 405, UNIMPLEMENTED),
]
#: Any other failure: the gRPC code its HTTP status stands for (a framework error such as a refused
#: Basic header arrives as a plain input error that keeps the status it was raised with).
_CODE_OF_STATUS = {
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: NOT_FOUND,
    405: UNIMPLEMENTED,
    409: ALREADY_EXISTS,
}


class FrontierErrorDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: str = Field(alias="@type", description="The type URL of a google.protobuf.Any detail.")


class FrontierError(BaseModel):
    """Every failure, as Frontier's gRPC gateway writes it."""

    code: int = Field(description="The gRPC status code: 3, 5, 6, 7, 9, 13 or 16.")
    message: str = Field(description="What is wrong, naming the field where one is at fault.")
    details: list[FrontierErrorDetail] = Field(description="Always empty.")


def _field(path: str) -> str:
    """A domain field path in Frontier's words: ``body.usages.2.amount`` becomes ``usages[2].amount``."""
    parts = path.split(".")
    if len(parts) > 1 and parts[0] in {"body", "path", "query"}:
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() and text else (f".{part}" if text else part)
    return text


def _message(error: MeterbookError) -> str:
    if isinstance(error, ValidationFailed):
        return "; ".join(f"{_field(item.path)}: {item.message}" for item in error.errors)
    return error.message


def render_error(error: MeterbookError | None, status: int, error_id: uuid.UUID) -> Response:
    code, message = INTERNAL, f"internal error (error id {error_id})"
    if error is not None:
        code = _CODE_OF_STATUS.get(status, INVALID_ARGUMENT if status < 500 else INTERNAL)
        message = _message(error)
        for kind, kind_status, kind_code in _CODES:
            if isinstance(error, kind):
                status, code = kind_status, kind_code
                break
    return ExactJSONResponse({"code": code, "message": message, "details": []}, status_code=status)


_ERROR_DESCRIPTIONS = {
    400: "Invalid argument (code 3): a malformed request, or insufficient credits; "
    "or a feature limit would be exceeded (code 9).",
    401: "Unauthenticated (code 16): no usable key, as `Bearer <key>` or HTTP Basic `<key id>:<secret>`.",
    403: "Permission denied (code 7): the key lacks the scope this call needs.",
    404: "Not found (code 5): an organization, project, billing account or usage that is unknown "
    "or outside the key's reach (the two are answered alike).",
    409: "Already exists (code 6): a usage id reused with different content, or a revert of a revert.",
    413: "The body is over the size limit (code 3).",
    500: "Internal error (code 13).",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": FrontierError, "description": description} for status, description in _ERROR_DESCRIPTIONS.items()
}

router = APIRouter(prefix="/v1beta1", tags=["frontier"], route_class=DialectRoute, responses=ERROR_RESPONSES)

UsageWriter = Annotated[Principal, Depends(authorized(access.REPORT_USAGE, allow_basic=True))]
UsageReverter = Annotated[Principal, Depends(authorized(access.REVERT_USAGE, allow_basic=True))]
BillingReader = Annotated[Principal, Depends(authorized(access.READ_BILLING, allow_basic=True))]

# --- field types -----------------------------------------------------------------------------------

_DIGITS = re.compile(r"[+-]?[0-9]+")


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        if isinstance(value, str):
            return uuid.UUID(value)
    except ValueError:
        pass
    raise PydanticCustomError("uuid_parsing", "expected a UUID")


def _optional_uuid(value: Any) -> uuid.UUID | None:
    # proto3 JSON writers send an unset string as "": it means absent.
    return None if value is None or value == "" else _uuid(value)


def _usage_id(value: Any) -> str:
    """A usage id: any spelling of a UUID, kept in its canonical lower-case form (the idempotency key)."""
    return str(_uuid(value))


def _amount(value: Any) -> int:
    """An int64 greater than zero, as a JSON number or a string of digits (proto3 JSON writes int64 as a string)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, str) and _DIGITS.fullmatch(value)) or (
        isinstance(value, Decimal | float) and math.isfinite(value) and value == int(value)
    ):
        number = int(value)
    if number is None or not 0 < number <= INT64_MAX:
        raise PydanticCustomError("int64", "must be a whole number greater than 0 that fits int64")
    return number


def _blank_as_none(value: Any) -> Any:
    return None if value == "" else value


def _moment(value: Any) -> datetime | None:
    """An RFC 3339 instant with its offset (``2024-01-01T00:00:00Z``); empty means absent."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PydanticCustomError("datetime_parsing", "must be an RFC 3339 time such as 2024-01-31T00:00:00Z")
    return moment


def _usage_type(value: Any) -> Any:
    return "credit" if value is None or value == "" else value


def _source(value: Any) -> Any:
    if value is None:
        return "system"
    if isinstance(value, str):
        return value.strip().lower() or "system"
    return value


Uuid = Annotated[uuid.UUID, BeforeValidator(_uuid)]
OptionalUuid = Annotated[
    uuid.UUID | None, BeforeValidator(_optional_uuid), WithJsonSchema({"type": "string", "format": "uuid"})
]
UsageId = Annotated[str, BeforeValidator(_usage_id), WithJsonSchema({"type": "string", "format": "uuid"})]
Amount = Annotated[
    int,
    BeforeValidator(_amount),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "format": "int64", "minimum": 1},
                {"type": "string", "pattern": "^[0-9]+$"},
            ],
            "description": "An int64 greater than zero, as a JSON number or a string.",
        }
    ),
]
OptionalText = Annotated[str | None, BeforeValidator(_blank_as_none)]
Ignored = Annotated[Any, WithJsonSchema({"type": "string", "description": "Accepted and ignored."})]

# --- usages ----------------------------------------------------------------------------------------


class FrontierUsage(InputModel):
    id: UsageId = Field(description="A UUID: the idempotency key, applied at most once for ever.")
    customer_id: Ignored = None
    source: Annotated[str, BeforeValidator(_source)] = Field(
        default="system",
        description="What triggered the usage; lower-cased, `system` if empty. A feature usage without "
        "`metadata.feature` counts against the feature of this name.",
    )
    description: OptionalText = None
    type: Annotated[Literal["credit", "feature"], BeforeValidator(_usage_type)] = Field(
        default="credit",
        description="`credit`: `amount` credits are debited; `feature`: `amount` is added to the feature's usage.",
    )
    amount: Amount
    user_id: OptionalText = None
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Kept with the usage. `feature` names the feature of a feature usage; `product_id` "
        "ties a credit usage to a product of the catalog.",
    )
    created_at: Ignored = None
    updated_at: Ignored = None


class FrontierUsagesCreate(InputModel):
    org_id: OptionalUuid = Field(default=None, description="The caller's organization; or give `project_id`.")
    billing_id: OptionalUuid = Field(
        default=None, description="The billing account; default: the project's, else the organization's default."
    )
    project_id: OptionalUuid = Field(default=None, description="Finds the organization (not with `org_id`).")
    usages: list[FrontierUsage] = Field(min_length=1, max_length=MAX_BATCH)


class FrontierAccountUsagesCreate(InputModel):
    project_id: OptionalUuid = Field(default=None, description="Not with the organization of the path.")
    usages: list[FrontierUsage] = Field(min_length=1, max_length=MAX_BATCH)


class FrontierEmpty(BaseModel):
    """Frontier's empty reply: `{}`."""


#: Which Frontier field each field of an event came from.
_FROM_EVENT = {
    "id": "id",
    "quantity": "amount",
    "source": "source",
    "description": "description",
    "user_id": "user_id",
    "metadata": "metadata",
    "product_id": "metadata.product_id",
}


def _metadata_text(item: FrontierUsage, index: int, name: str) -> str | None:
    value = (item.metadata or {}).get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed.field(f"body.usages.{index}.metadata.{name}", "must be a string", "string_type")
    return value


def _feature_field(item: FrontierUsage) -> str:
    """Which field named a feature usage's feature."""
    return "metadata.feature" if (item.metadata or {}).get("feature") not in (None, "") else "source"


def _event(index: int, item: FrontierUsage, account_id: uuid.UUID) -> EventIn:
    """A Frontier usage as the native event it is."""
    if item.type == "feature":
        feature, product_id = _metadata_text(item, index, "feature") or item.source, None
    else:
        feature, product_id = None, _metadata_text(item, index, "product_id")
    try:
        return EventIn(
            id=item.id,
            account_id=account_id,
            type=item.type,
            product_id=product_id,
            feature=feature,
            quantity=item.amount,
            source=item.source,
            description=item.description,
            user_id=item.user_id,
            metadata=item.metadata,
        )
    except ValidationError as error:
        raise ValidationFailed(
            [
                FieldError(_usage_field(index, item, found.get("loc", ())), pydantic_message(found), found["type"])
                for found in error.errors()
            ]
        ) from None


def _usage_field(index: int, item: FrontierUsage, location: Sequence[int | str]) -> str:
    """Where in the request an event field came from."""
    if not location:
        return f"body.usages.{index}"
    name = str(location[0])
    frontier = _feature_field(item) if name == "feature" else _FROM_EVENT.get(name, name)
    return ".".join(["body", "usages", str(index), frontier, *(str(part) for part in location[1:])])


_INGEST_PATH = re.compile(r"body\.(\d+)\.(\w+)")


def _in_frontier_terms(error: ValidationFailed, usages: Sequence[FrontierUsage], billing_path: str) -> ValidationFailed:
    """Ingestion names ``body.<i>.<event field>``; the client wrote ``usages[i].<field>`` (or the billing id)."""
    translated = []
    for item in error.errors:
        match = _INGEST_PATH.fullmatch(item.path)
        path = item.path
        if match is not None:
            index, name = int(match.group(1)), match.group(2)
            if name == "account_id":
                path = billing_path
            elif index < len(usages):
                path = _usage_field(index, usages[index], [name])
        translated.append(FieldError(path, item.message, item.error_type, item.suggestion))
    return ValidationFailed(translated)


def _report(
    request: Request,
    principal: Principal,
    organization_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    billing_id: uuid.UUID | None,
    usages: Sequence[FrontierUsage],
    billing_path: str,
) -> Response:
    with writing(request) as conn:
        account = accounts.billing_account_for(conn, principal, organization_id, project_id, billing_id)
        events = [_event(index, item, account.id) for index, item in enumerate(usages)]
        try:
            result = usage.ingest(conn, principal, events)
        except ValidationFailed as error:
            raise _in_frontier_terms(error, usages, billing_path) from None
    metrics.record_ingest(result)
    return respond({})


@router.post("/organizations/billing/usages", response_model=FrontierEmpty)
def create_billing_usage(request: Request, principal: UsageWriter, body: FrontierUsagesCreate) -> Response:
    """Report credit and feature usage of a billing account, all or nothing, each usage id at most once."""
    return _report(request, principal, body.org_id, body.project_id, body.billing_id, body.usages, "body.billing_id")


@router.post("/organizations/{org_id}/billing/{billing_id}/usages", response_model=FrontierEmpty)
def create_billing_usage_of_account(
    request: Request, principal: UsageWriter, org_id: Uuid, billing_id: Uuid, body: FrontierAccountUsagesCreate
) -> Response:
    """Report credit and feature usage of the billing account in the path, all or nothing."""
    return _report(request, principal, org_id, body.project_id, billing_id, body.usages, "path.billing_id")


# --- balance and transactions ----------------------------------------------------------------------


class FrontierBalance(BaseModel):
    amount: str = Field(description="Credits, an int64 written as a string.")
    currency: Literal["VC"] = Field(default="VC", description="Always `VC` (virtual credits).")
    updated_at: datetime | None = Field(description="When the balance last moved; null if it never did.")

    @classmethod
    def of(cls, balance: Balance) -> FrontierBalance:
        return cls(amount=str(balance.balance), updated_at=balance.updated_at)


class FrontierBalanceOut(BaseModel):
    balance: FrontierBalance


class FrontierTransaction(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID = Field(description="The billing account.")
    source: str
    amount: str = Field(description="Credits moved, always positive, as a string; `type` says which way.")
    type: Literal["credit", "debit"]
    description: str
    user_id: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime = Field(description="Transactions never change: the same as `created_at`.")

    @classmethod
    def of(cls, transaction: Transaction) -> FrontierTransaction:
        return cls(
            id=transaction.id,
            customer_id=transaction.account_id,
            source=transaction.source,
            amount=str(transaction.amount),
            type="debit" if transaction.direction == "debit" else "credit",
            description=transaction.description or "",
            user_id=transaction.user_id or "",
            metadata=transaction.metadata or {},
            created_at=transaction.created_at,
            updated_at=transaction.created_at,
        )


class FrontierTransactionsOut(BaseModel):
    transactions: list[FrontierTransaction]


BillingId = Annotated[uuid.UUID, BeforeValidator(_uuid), Path(alias="id", description="The billing account.")]
Moment = Annotated[Utc | None, BeforeValidator(_moment)]


@router.get("/organizations/{org_id}/billing/{id}/balance", response_model=FrontierBalanceOut)
def get_billing_balance(request: Request, principal: BillingReader, org_id: Uuid, billing_id: BillingId) -> Response:
    """The billing account's credit balance."""
    with reading(request) as conn:
        account = accounts.billing_account_for(conn, principal, org_id, None, billing_id)
        balance = ledger.balance(conn, principal, account.id)
    return respond(FrontierBalanceOut(balance=FrontierBalance.of(balance)))


@router.get("/organizations/{org_id}/billing/{billing_id}/transactions", response_model=FrontierTransactionsOut)
def list_billing_transactions(
    request: Request,
    principal: BillingReader,
    org_id: Uuid,
    billing_id: Uuid,
    start_range: Annotated[Moment, Query(description="RFC 3339: only transactions at or after this instant.")] = None,
    end_range: Annotated[Moment, Query(description="RFC 3339: only transactions before this instant.")] = None,
) -> Response:
    """The billing account's credit transactions, newest first."""
    if start_range is not None and end_range is not None and end_range < start_range:
        raise ValidationFailed.field("query.end_range", "must not be before start_range", "range")
    with reading(request) as conn:
        account = accounts.billing_account_for(conn, principal, org_id, None, billing_id)
        found = ledger.transactions(conn, principal, account.id, start_range, end_range)
    return respond(FrontierTransactionsOut(transactions=[FrontierTransaction.of(t) for t in found]))


# --- check and revert ------------------------------------------------------------------------------


class FrontierCheck(InputModel):
    org_id: OptionalUuid = None
    billing_id: OptionalUuid = Field(default=None, description="Default: the organization's default billing account.")
    project_id: OptionalUuid = Field(default=None, description="Finds the organization (not with `org_id`).")
    amount: Amount = Field(description="The credits the caller means to spend.")


class FrontierCheckOut(BaseModel):
    status: bool = Field(description="Whether the account can spend `amount` without going below its credit floor.")


@router.post("/billing/check", response_model=FrontierCheckOut)
def check_credits(request: Request, principal: BillingReader, body: FrontierCheck) -> Response:
    """Whether the billing account has the credits to spend `amount` now."""
    with reading(request) as conn:
        account = accounts.billing_account_for(conn, principal, body.org_id, body.project_id, body.billing_id)
        status = ledger.can_spend(conn, principal, account.id, body.amount)
    return respond(FrontierCheckOut(status=status))


class FrontierRevert(InputModel):
    org_id: OptionalUuid = None
    billing_id: OptionalUuid = Field(
        default=None, description="The usage's billing account; default: the organization's default billing account."
    )
    project_id: OptionalUuid = Field(default=None, description="Finds the organization (not with `org_id`).")
    usage_id: UsageId = Field(description="The id of the credit usage to revert.")
    amount: Amount = Field(description="Credits to give back; all reverts together at most what the usage debited.")


@router.post("/organizations/billing/usages/revert", response_model=FrontierEmpty)
def revert_billing_usage(request: Request, principal: UsageReverter, body: FrontierRevert) -> Response:
    """Give back some or all of the credits a usage debited (a revert itself cannot be reverted)."""
    with writing(request) as conn:
        account = accounts.billing_account_for(conn, principal, body.org_id, body.project_id, body.billing_id)
        # Usage ids are per account: a billing_id narrows the search, else every account the key reaches.
        named = account.id if body.billing_id is not None else None
        ledger.revert(conn, principal, named, body.usage_id, body.amount)
    return respond({})
