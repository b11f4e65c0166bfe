"""The Frontier dialect under ``/v1beta1`` (seed ``frontier-create-billing-usage.txt``, CONTRACT §3.4).

Credit and feature usage reported against a billing account, the credit balance, its transactions and
the total its usage debited, the credit and feature entitlement checks, and reverts, each at every REST
binding of raystack/proton's ``google.api.http`` annotations. Requests are parsed into the native domain's terms
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
from meterbook.accounts.models import Account, Principal
from meterbook.api.auth import authorized
from meterbook.api.errors import MethodNotAllowed
from meterbook.api.routing import DialectRoute, ExactJSONResponse, reading, respond, writing
from meterbook.errors import (
    AuthenticationError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
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
from meterbook.plans import service as plans
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


def _revert_amount(value: Any) -> int:
    """An int64 of zero or more; absent (proto3's default) is 0, which Frontier accepts as a revert of nothing."""
    if value is None or value == "" or value == 0 or value == "0":
        return 0
    try:
        return _amount(value)
    except PydanticCustomError:
        raise PydanticCustomError("int64", "must be a whole number of 0 or more that fits int64") from None


def _usages(value: Any) -> Any:
    """proto3 JSON: a repeated field written as null is empty."""
    return [] if value is None else value


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


def _int64_schema(minimum: int, description: str) -> WithJsonSchema:
    """proto3 JSON's int64: a JSON number or a string of digits."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "format": "int64", "minimum": minimum},
                {"type": "string", "pattern": "^[0-9]+$"},
            ],
            "description": description,
        }
    )


Amount = Annotated[
    int, BeforeValidator(_amount), _int64_schema(1, "An int64 greater than zero, as a JSON number or a string.")
]
RevertAmount = Annotated[
    int,
    BeforeValidator(_revert_amount),
    _int64_schema(0, "An int64 of 0 or more, as a JSON number or a string; absent is 0."),
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


Usages = Annotated[list[FrontierUsage], BeforeValidator(_usages)]
_USAGES = "The usages, all applied or none; none at all (empty, null or absent) is answered `{}` as Frontier does."


class FrontierUsagesCreate(InputModel):
    org_id: OptionalUuid = Field(default=None, description="The caller's organization; or give `project_id`.")
    billing_id: OptionalUuid = Field(
        default=None, description="The billing account; default: the project's, else the organization's default."
    )
    project_id: OptionalUuid = Field(default=None, description="Finds the organization (not with `org_id`).")
    usages: Usages = Field(default_factory=list, max_length=MAX_BATCH, description=_USAGES)


class FrontierAccountUsagesCreate(InputModel):
    project_id: OptionalUuid = Field(default=None, description="Not with the organization of the path.")
    usages: Usages = Field(default_factory=list, max_length=MAX_BATCH, description=_USAGES)


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
        if not usages:
            return respond({})
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


class FrontierUser(BaseModel):
    """The user a transaction names: meterbook keeps only the id a client sent."""

    id: str


class FrontierBillingAccount(BaseModel):
    """A billing account as Frontier's ``BillingAccount`` shows it (the fields meterbook keeps)."""

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    email: str
    currency: str = Field(description="The account's currency, lower-cased as Frontier writes it.")
    state: Literal["active", "disabled"] = Field(description="`disabled` once the account is archived.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, account: Account) -> FrontierBillingAccount:
        return cls(
            id=account.id,
            org_id=account.organization_id,
            name=account.name,
            email=account.email or "",
            currency=account.currency.lower(),
            state="disabled" if account.archived_at is not None else "active",
            created_at=account.created_at,
            updated_at=account.updated_at,
        )


class FrontierTransaction(BaseModel):
    id: str = Field(
        description="The usage's id for a usage debit, the grant's for a grant, Frontier's derived id for a revert."
    )
    customer_id: uuid.UUID = Field(description="The billing account.")
    source: str
    amount: str = Field(description="Credits moved, always positive, as a string; `type` says which way.")
    type: Literal["credit", "debit"]
    description: str
    user_id: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime = Field(description="Transactions never change: the same as `created_at`.")
    user: FrontierUser | None = Field(description="With `expand=user`: the user of `user_id` (null without one).")
    customer: FrontierBillingAccount | None = Field(description="With `expand=customer`: the billing account.")

    @classmethod
    def of(
        cls, transaction: Transaction, customer: FrontierBillingAccount | None = None, *, with_user: bool = False
    ) -> FrontierTransaction:
        return cls(
            id=transaction.public_id,
            customer_id=transaction.account_id,
            source=transaction.source,
            amount=str(transaction.amount),
            type="debit" if transaction.direction == "debit" else "credit",
            description=transaction.description or "",
            user_id=transaction.user_id or "",
            metadata=transaction.metadata or {},
            created_at=transaction.created_at,
            updated_at=transaction.created_at,
            user=FrontierUser(id=transaction.user_id) if with_user and transaction.user_id else None,
            customer=customer,
        )


class FrontierTransactionsOut(BaseModel):
    transactions: list[FrontierTransaction]


BillingId = Annotated[uuid.UUID, BeforeValidator(_uuid), Path(alias="id", description="The billing account.")]
Moment = Annotated[Utc | None, BeforeValidator(_moment)]
StartRange = Annotated[Moment, Query(description="RFC 3339: only transactions at or after this instant.")]
EndRange = Annotated[Moment, Query(description="RFC 3339: only transactions at or before this instant (inclusive).")]
Since = Annotated[Moment, Query(description="Deprecated by Frontier: read as `start_range` when that is absent.")]
Expand = Annotated[
    list[str] | None,
    Query(
        description="`user` and/or `customer`: fill those fields (repeated, or one comma-separated value); "
        "other values are ignored."
    ),
]
_EXPANDABLE = frozenset({"user", "customer"})


@router.get("/organizations/{org_id}/billing/{id}/balance", response_model=FrontierBalanceOut)
def get_billing_balance(request: Request, principal: BillingReader, org_id: Uuid, billing_id: BillingId) -> Response:
    """The billing account's credit balance."""
    with reading(request) as conn:
        account = accounts.billing_account_for(conn, principal, org_id, None, billing_id)
        balance = ledger.balance(conn, principal, account.id)
    return respond(FrontierBalanceOut(balance=FrontierBalance.of(balance)))


def _expanded(expand: list[str] | None) -> frozenset[str]:
    """What ``expand`` names of ``user`` and ``customer``; anything else is ignored, as Frontier ignores it."""
    return frozenset(part.strip().lower() for item in expand or () for part in item.split(",")) & _EXPANDABLE


def _list_transactions(
    request: Request,
    principal: Principal,
    org_id: uuid.UUID,
    billing_id: uuid.UUID | None,
    start_range: datetime | None,
    end_range: datetime | None,
    since: datetime | None,
    expand: list[str] | None,
) -> Response:
    start = start_range if start_range is not None else since
    if start is not None and end_range is not None and end_range < start:
        field = "start_range" if start_range is not None else "since"
        raise ValidationFailed.field("query.end_range", f"must not be before {field}", "range")
    expanded = _expanded(expand)
    with reading(request) as conn:
        account = accounts.billing_account_for(conn, principal, org_id, None, billing_id)
        found = ledger.transactions(conn, principal, account.id, start, end_range, end_inclusive=True)
    customer = FrontierBillingAccount.of(account) if "customer" in expanded else None
    rendered = [FrontierTransaction.of(t, customer, with_user="user" in expanded) for t in found]
    return respond(FrontierTransactionsOut(transactions=rendered))


@router.get("/organizations/{org_id}/billing/{billing_id}/transactions", response_model=FrontierTransactionsOut)
def list_billing_transactions(
    request: Request,
    principal: BillingReader,
    org_id: Uuid,
    billing_id: Uuid,
    start_range: StartRange = None,
    end_range: EndRange = None,
    since: Since = None,
    expand: Expand = None,
) -> Response:
    """The billing account's credit transactions, newest first."""
    return _list_transactions(request, principal, org_id, billing_id, start_range, end_range, since, expand)


@router.get("/organizations/{org_id}/billing/transactions", response_model=FrontierTransactionsOut)
def list_organization_billing_transactions(
    request: Request,
    principal: BillingReader,
    org_id: Uuid,
    billing_id: Annotated[
        OptionalUuid, Query(description="The billing account; default: the organization's default billing account.")
    ] = None,
    start_range: StartRange = None,
    end_range: EndRange = None,
    since: Since = None,
    expand: Expand = None,
) -> Response:
    """The credit transactions of the organization's billing account (the default one unless named), newest first."""
    return _list_transactions(request, principal, org_id, billing_id, start_range, end_range, since, expand)


class FrontierDebited(BaseModel):
    amount: str = Field(description="Credits debited by usage, less what reverts gave back; an int64 as a string.")
    currency: Literal["VC"] = Field(default="VC", description="Always `VC` (virtual credits).")


class FrontierDebitedOut(BaseModel):
    debited: FrontierDebited


@router.get(
    "/organizations/{org_id}/billing/{billing_id}/debited_transactions_total", response_model=FrontierDebitedOut
)
def total_debited_transactions(request: Request, principal: BillingReader, org_id: Uuid, billing_id: Uuid) -> Response:
    """The credits the billing account's usage has debited, net of reverts (Frontier's TotalDebitedTransactions)."""
    with reading(request) as conn:
        account = accounts.billing_account_for(conn, principal, org_id, None, billing_id)
        total = ledger.debited_total(conn, principal, account.id)
    return respond(FrontierDebitedOut(debited=FrontierDebited(amount=str(total))))


# --- checks and revert ----------------------------------------------------------------------------


class FrontierCheck(InputModel):
    org_id: OptionalUuid = None
    billing_id: OptionalUuid = Field(default=None, description="Default: the organization's default billing account.")
    project_id: OptionalUuid = Field(default=None, description="Finds the organization (not with `org_id`).")
    amount: Amount = Field(description="The credits the caller means to spend.")


class FrontierCheckOut(BaseModel):
    status: bool = Field(description="Whether the answer is yes.")


@router.post("/billing/check", response_model=FrontierCheckOut)
def check_credits(request: Request, principal: BillingReader, body: FrontierCheck) -> Response:
    """Frontier's CheckCreditEntitlement: whether the billing account has the credits to spend `amount` now."""
    with reading(request) as conn:
        account = accounts.billing_account_for(conn, principal, body.org_id, body.project_id, body.billing_id)
        status = ledger.can_spend(conn, principal, account.id, body.amount)
    return respond(FrontierCheckOut(status=status))


def _feature_name(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


FeatureName = Annotated[str, BeforeValidator(_feature_name), Field(min_length=1, max_length=200)]


class FrontierFeatureCheck(InputModel):
    org_id: OptionalUuid = None
    billing_id: OptionalUuid = Field(default=None, description="Default: the project's, else the organization's.")
    project_id: OptionalUuid = Field(default=None, description="Finds the organization (not with `org_id`).")
    feature: FeatureName = Field(description="The feature's name.")


class FrontierAccountFeatureCheck(InputModel):
    project_id: OptionalUuid = Field(default=None, description="Not with the organization of the path.")
    feature: FeatureName = Field(description="The feature's name.")


def _check_feature(
    request: Request,
    principal: Principal,
    organization_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    billing_id: uuid.UUID | None,
    feature: str,
) -> Response:
    with reading(request) as conn:
        account = accounts.billing_account_for(conn, principal, organization_id, project_id, billing_id)
        found = next((item for item in plans.feature_usages(conn, principal, account.id) if item.name == feature), None)
    status = found is not None and (found.limit is None or found.usage < found.limit)
    return respond(FrontierCheckOut(status=status))


@router.post("/organizations/billing/check", response_model=FrontierCheckOut)
def check_feature_entitlement(request: Request, principal: BillingReader, body: FrontierFeatureCheck) -> Response:
    """Frontier's CheckFeatureEntitlement: may the billing account use the feature now (its usage is below its
    limit)? An unknown feature is false."""
    return _check_feature(request, principal, body.org_id, body.project_id, body.billing_id, body.feature)


@router.post("/organizations/{org_id}/billing/{billing_id}/check", response_model=FrontierCheckOut)
def check_feature_entitlement_of_account(
    request: Request, principal: BillingReader, org_id: Uuid, billing_id: Uuid, body: FrontierAccountFeatureCheck
) -> Response:
    """Frontier's CheckFeatureEntitlement for the billing account in the path."""
    return _check_feature(request, principal, org_id, body.project_id, billing_id, body.feature)


class FrontierRevert(InputModel):
    org_id: OptionalUuid = None
    billing_id: OptionalUuid = Field(
        default=None, description="The usage's billing account; default: the organization's default billing account."
    )
    project_id: OptionalUuid = Field(default=None, description="Finds the organization (not with `org_id`).")
    usage_id: UsageId = Field(description="The id of the credit usage to revert.")
    amount: RevertAmount = Field(
        default=0, description="Credits to give back; all reverts together at most what the usage debited."
    )


class FrontierAccountRevert(InputModel):
    project_id: OptionalUuid = Field(default=None, description="Not with the organization of the path.")
    amount: RevertAmount = Field(
        default=0, description="Credits to give back; all reverts together at most what the usage debited."
    )


def _revert(
    request: Request,
    principal: Principal,
    organization_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    billing_id: uuid.UUID | None,
    usage_id: str,
    amount: int,
) -> Response:
    with writing(request) as conn:
        account = accounts.billing_account_for(conn, principal, organization_id, project_id, billing_id)
        # Usage ids are per account: a billing_id narrows the search, else every account the key reaches.
        named = account.id if billing_id is not None else None
        try:
            ledger.revert(conn, principal, named, usage_id, amount)
        except NotFound as error:
            # Frontier answers a usage it cannot find as an invalid argument (CONTRACT §3.4).
            raise InvalidInput(error.message) from None
    return respond({})


@router.post("/organizations/billing/usages/revert", response_model=FrontierEmpty)
def revert_billing_usage(request: Request, principal: UsageReverter, body: FrontierRevert) -> Response:
    """Give back some or all of the credits a usage debited (a revert itself cannot be reverted)."""
    return _revert(request, principal, body.org_id, body.project_id, body.billing_id, body.usage_id, body.amount)


@router.post("/admin/organizations/{org_id}/billing/{billing_id}/usage/{usage_id}/revert", response_model=FrontierEmpty)
def revert_billing_usage_of_account(
    request: Request,
    principal: UsageReverter,
    org_id: Uuid,
    billing_id: Uuid,
    usage_id: Annotated[UsageId, Path(description="The id of the credit usage to revert.")],
    body: FrontierAccountRevert,
) -> Response:
    """The admin binding of the revert: the organization, billing account and usage in the path."""
    return _revert(request, principal, org_id, body.project_id, billing_id, usage_id, body.amount)
