"""The Cloudflare dialect: ``GET /client/v4/user/billing/history`` (seed ``cloudflare-user-billing-history.txt``,
CONTRACT §3.2).

The billing history of every account the key reaches (the "user"), as Cloudflare's v4 envelope
``{"success", "errors", "messages", "result", "result_info"}``. The caller authenticates with
``Authorization: Bearer <key>`` or with ``X-Auth-Email`` + ``X-Auth-Key``, and credentials are refused
with the status and code the real API gives for each case (docs/decisions.md, "Cloudflare: refusing
credentials"), so that Cloudflare's own SDKs raise the same exception as against Cloudflare. Every
failure under ``/client/v4``, also an unknown path or method, is answered in the same envelope with
``success`` false.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from meterbook.accounts import access, keys
from meterbook.accounts import service as accounts
from meterbook.accounts.access import authorize
from meterbook.accounts.models import Principal
from meterbook.api.auth import auth_key_scheme, bearer_scheme
from meterbook.api.errors import MethodNotAllowed
from meterbook.api.routing import DialectRoute, ExactJSONResponse, JsonNumber, reading, respond
from meterbook.errors import (
    AuthenticationError,
    Forbidden,
    InvalidInput,
    MeterbookError,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from meterbook.invoicing import service as invoicing
from meterbook.invoicing.models import HistoryItem
from meterbook.invoicing.repository import HistoryOrder

__all__ = ["ERROR_RESPONSES", "CloudflareError", "render_error", "router"]

PREFIX: Final = "/client/v4"
DEFAULT_PER_PAGE: Final = 20
MIN_PER_PAGE: Final = 5
MAX_PER_PAGE: Final = 50
#: The seed sets no upper bound; this one keeps the row offset of any page inside a 64-bit integer.
MAX_PAGE: Final = 2**31 - 1
MAX_FILTER_LENGTH: Final = 30

# --- errors ----------------------------------------------------------------------------------------

AUTHENTICATION_ERROR: Final = (10000, "Authentication error")
MISSING_CREDENTIALS: Final = (9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
INVALID_HEADERS: Final = (6003, "Invalid request headers")
INVALID_AUTHORIZATION_FORMAT: Final = (6111, "Invalid format for Authorization header")
INVALID_KEY_FORMAT: Final = (6103, "Invalid format for X-Auth-Key header")
INVALID_EMAIL_FORMAT: Final = (6102, "Invalid format for X-Auth-Email header")
INVALID_ACCESS_TOKEN: Final = (9109, "Invalid access token")
UNKNOWN_KEY_OR_EMAIL: Final = (9103, "Unknown X-Auth-Key or X-Auth-Email")
INVALID_PARAMETERS: Final = (6008, "Invalid request parameters")
NO_ROUTE: Final = (7003, "No route for the URI")
METHOD_NOT_ALLOWED: Final = (7001, "Method not allowed for this URI")
REQUEST_TOO_LARGE: Final = (6009, "Request body too large")
INTERNAL_ERROR: Final = (10001, "Internal server error")
OTHER_ERROR: Final = 1000


class CloudflareMessage(BaseModel):
    code: int = Field(ge=1000, description="Cloudflare's numeric code.")
    message: str


class CloudflareErrorItem(BaseModel):
    code: int = Field(
        ge=1000,
        description="6008 invalid request parameters (400), 9106 missing credentials (400), 6003 invalid "
        "request headers (400), 9109 invalid access token (403), 9103 unknown X-Auth-Key or X-Auth-Email "
        "(403), 10000 authentication error: the key may not read billing (403), 7003 no route for the URI "
        "(404), 7001 method not allowed for this URI (405), 6009 request body too large (413), "
        "10001 internal server error (500).",
    )
    message: str
    error_chain: list[CloudflareMessage] | SkipJsonSchema[None] = Field(
        default=None,
        description="On code 6008: one entry per invalid parameter, naming it and the problem; on code 6003: "
        "one entry per header of the wrong format (6102 X-Auth-Email, 6103 X-Auth-Key, 6111 Authorization).",
    )


class CloudflareError(BaseModel):
    """Every failure, in Cloudflare's v4 envelope."""

    success: Literal[False]
    errors: list[CloudflareErrorItem] = Field(min_length=1)
    messages: list[CloudflareMessage]
    result: None


class CredentialsRefused(MeterbookError):
    """Credentials refused in Cloudflare's own words: its code and message, and the headers at fault."""

    def __init__(self, code: tuple[int, str], chain: tuple[tuple[int, str], ...] = ()) -> None:
        super().__init__(code[1])
        self.code = code[0]
        self.chain = chain


class MissingCredentials(CredentialsRefused):
    """No credentials at all, or half of the X-Auth pair: 400, code 9106."""

    status = 400

    def __init__(self) -> None:
        super().__init__(MISSING_CREDENTIALS)


class MalformedHeaders(CredentialsRefused):
    """A credential header of the wrong format: 400, code 6003, one chain entry per such header."""

    status = 400

    def __init__(self, *chain: tuple[int, str]) -> None:
        super().__init__(INVALID_HEADERS, chain)


class UnknownCredentials(CredentialsRefused):
    """Well-formed credentials that are unknown, revoked or expired (or an e-mail that is not the key's): 403."""

    status = 403


def _parameter(path: str) -> str:
    """A domain field path as the client wrote it: ``query.per_page`` is ``per_page``."""
    location, _, rest = path.partition(".")
    return rest if location in {"query", "header", "path", "body"} and rest else path


def _error_item(error: MeterbookError | None, error_id: uuid.UUID) -> dict[str, Any]:
    """The one ``errors`` entry a failure is answered with."""
    if error is None:
        return {"code": INTERNAL_ERROR[0], "message": f"{INTERNAL_ERROR[1]} (error id {error_id})"}
    if isinstance(error, CredentialsRefused):
        item: dict[str, Any] = {"code": error.code, "message": error.message}
        if error.chain:
            item["error_chain"] = [{"code": code, "message": message} for code, message in error.chain]
        return item
    if isinstance(error, AuthenticationError | Forbidden):
        # The reason (which scope, an archived account…) is not told: Cloudflare says no more than this either.
        return {"code": AUTHENTICATION_ERROR[0], "message": AUTHENTICATION_ERROR[1]}
    if isinstance(error, NotFound):
        return {"code": NO_ROUTE[0], "message": NO_ROUTE[1]}
    if isinstance(error, MethodNotAllowed):
        return {"code": METHOD_NOT_ALLOWED[0], "message": METHOD_NOT_ALLOWED[1]}
    if isinstance(error, PayloadTooLarge):
        return {"code": REQUEST_TOO_LARGE[0], "message": REQUEST_TOO_LARGE[1]}
    if isinstance(error, ValidationFailed):
        chain = [{"code": INVALID_PARAMETERS[0], "message": f"{_parameter(e.path)}: {e.message}"} for e in error.errors]
        return {"code": INVALID_PARAMETERS[0], "message": INVALID_PARAMETERS[1], "error_chain": chain}
    if isinstance(error, InvalidInput):
        chain = [{"code": INVALID_PARAMETERS[0], "message": error.message}]
        return {"code": INVALID_PARAMETERS[0], "message": INVALID_PARAMETERS[1], "error_chain": chain}
    # No other kind of failure can come from this dialect's one read-only route; should one, its words tell it.
    return {"code": OTHER_ERROR, "message": error.message}


def render_error(error: MeterbookError | None, status: int, error_id: uuid.UUID) -> Response:
    body = {"success": False, "errors": [_error_item(error, error_id)], "messages": [], "result": None}
    return ExactJSONResponse(body, status_code=status)


_ERROR_DESCRIPTIONS = {
    400: "Invalid request parameters (code 6008; `error_chain` names each parameter and what is wrong with it); "
    "no credentials (code 9106 `Missing X-Auth-Key, X-Auth-Email or Authorization headers`, also when only one "
    "of `X-Auth-Email` and `X-Auth-Key` is sent); or a credential header of the wrong format (code 6003 `Invalid "
    "request headers`, with an `error_chain` entry 6111 for `Authorization` not `Bearer mbk_<id>_<secret>`, 6103 "
    "for `X-Auth-Key` not `mbk_<id>_<secret>`, 6102 for `X-Auth-Email` not an e-mail address).",
    403: "`Authorization: Bearer` with a key that is unknown, revoked or expired (code 9109 `Invalid access "
    "token`); `X-Auth-Email` + `X-Auth-Key` with such a key, with an e-mail that is not the key's account's, or "
    "with an organization key, which has no e-mail (code 9103 `Unknown X-Auth-Key or X-Auth-Email`); a valid key "
    "without the scope `billing:read` (code 10000 `Authentication error`).",
    404: "No route for the URI (code 7003): an unknown path under `/client/v4`.",
    405: "Method not allowed for this URI (code 7001).",
    413: "Request body too large (code 6009).",
    500: "Internal server error (code 10001).",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": CloudflareError, "description": text} for status, text in _ERROR_DESCRIPTIONS.items()
}

# --- the billing history ---------------------------------------------------------------------------


class CloudflareZone(BaseModel):
    name: str = Field(description="The name of the account the item belongs to.")


class CloudflareBillingHistory(BaseModel):
    """One item of the billing history: an invoice line, a payment or a void."""

    id: str = Field(max_length=32, description="Billing item identifier tag: 32 lowercase hex digits, stable.")
    type: str = Field(max_length=30, description="The billing item type: `charge`, `payment` or `refund`.")
    action: str = Field(
        max_length=30, description="The billing item action: `subscription`, `usage`, `payment` or `void`."
    )
    description: str = Field(max_length=255, description="The billing item description.")
    occurred_at: datetime = Field(description="When the billing item was created (RFC 3339, UTC).")
    amount: JsonNumber = Field(description="The amount associated with this billing item, exact; negative on a void.")
    currency: str = Field(description="The monetary unit in which pricing information is displayed (ISO-4217).")
    zone: CloudflareZone

    @classmethod
    def of(cls, item: HistoryItem) -> CloudflareBillingHistory:
        return cls(
            id=item.id,
            type=item.type,
            action=item.action,
            description=item.description,
            occurred_at=item.occurred_at,
            amount=item.amount,
            currency=item.currency,
            zone=CloudflareZone(name=item.account_name),
        )


class CloudflareResultInfo(BaseModel):
    page: int = Field(description="Current page within paginated list of results.")
    per_page: int = Field(description="Number of results per page of results.")
    count: int = Field(description="Number of results on this page.")
    total_count: int = Field(description="Total results available without any search parameters.")
    total_pages: int = Field(description="Pages of results that match the parameters (0 when none does).")


class CloudflareBillingHistoryPage(BaseModel):
    """Billing History Details response."""

    success: Literal[True] = Field(description="Whether the API call was successful.")
    errors: list[CloudflareMessage] = Field(description="Always empty on success.")
    messages: list[CloudflareMessage] = Field(description="Always empty.")
    result: list[CloudflareBillingHistory]
    result_info: CloudflareResultInfo


# --- query parameters ------------------------------------------------------------------------------

_EXAMPLE: Final = "2014-03-01T12:21:59.3456Z"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: RFC 3339 §5.6 ``date-time``: a full date, ``T``, a full time with an optional fraction, and an offset,
#: which may be left out: the SDK sends a naive ``datetime`` as ``isoformat()`` writes it, without one.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)


def _whole_number(value: Any) -> Any:
    """A whole number written as a JSON number would be: ``2``, and also ``2.0`` (the seed types paging as number)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        number = Decimal(text) if _NUMBER.fullmatch(text) else None
    except InvalidOperation:
        number = None
    if number is None or number != number.to_integral_value():
        raise PydanticCustomError("whole_number", "Input should be a whole number")
    # Anything this large is out of range anyway; the bounds check reports it without building a huge int.
    if number.adjusted() > 18:
        return 10**19 if number > 0 else -(10**19)
    return int(number)


def _date_time(value: Any) -> Any:
    """An RFC 3339 date-time as an aware UTC instant; one without an offset is read as UTC.

    A fraction finer than a microsecond is rounded up, so that "at or after" still holds exactly for
    items stored to the microsecond.
    """
    if not isinstance(value, str):
        return value
    match = _DATE_TIME.fullmatch(value.strip())
    if match is None:
        raise PydanticCustomError("date_time", f"Input should be an RFC 3339 date-time such as {_EXAMPLE}")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7) or ""
    sign, offset_hours, offset_minutes = match.group(9, 10, 11)
    try:
        offset = timedelta(0)
        if sign is not None:
            if int(offset_hours) > 23 or int(offset_minutes) > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes)) * (-1 if sign == "-" else 1)
        moment = datetime(year, month, day, hour, minute, second, int(fraction[:6].ljust(6, "0")), timezone(offset))
        if fraction[6:].strip("0"):
            moment += timedelta(microseconds=1)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            "date_time", f"Input should be an RFC 3339 date-time that exists, such as {_EXAMPLE}"
        ) from None


DateTime = Annotated[datetime, BeforeValidator(_date_time)]
_ORDERS: Final[dict[str, HistoryOrder]] = {
    "type": "type",
    "occurred_at": "occurred_at",
    "occured_at": "occurred_at",
    "action": "action",
}
_SINCE_DESCRIPTION = (
    "RFC 3339 date-time: only items that occurred at or after it; without an offset it is read as UTC. "
    "`occured_at` is the seed's spelling of `occurred_at`; if both are given, both apply."
)

router = APIRouter(prefix=PREFIX, tags=["cloudflare"], route_class=DialectRoute, responses=ERROR_RESPONSES)

# --- credentials -----------------------------------------------------------------------------------

#: The shape meterbook asks of an account's e-mail (accounts/schemas.py), and its longest form.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_EMAIL_LENGTH: Final = 320


def _well_formed_key(token: str) -> bool:
    """Whether ``token`` has a meterbook key's shape, ``mbk_`` + 32 + ``_`` + 48 lowercase hex digits."""
    return keys.parse_key(token) is not None


def _bearer_token(header: str) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None when the header is not of that format."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and _well_formed_key(token) else None


def _authenticate(request: Request) -> Principal:
    """The calling key, or the refusal the real API gives for these headers.

    A non-blank ``Authorization`` header takes precedence over ``X-Auth-Email`` + ``X-Auth-Key``. Each
    header is checked for its format before any key is looked up, and a well-formed key that does not
    open the door is refused alike whether it is unknown, revoked or expired.
    """
    authorization = request.headers.get("authorization", "").strip()
    if authorization:
        token = _bearer_token(authorization)
        if token is None:
            raise MalformedHeaders(INVALID_AUTHORIZATION_FORMAT)
        try:
            with reading(request) as conn:
                return accounts.authenticate(conn, token)
        except AuthenticationError:
            raise UnknownCredentials(INVALID_ACCESS_TOKEN) from None
    key = request.headers.get("x-auth-key", "").strip()
    email = request.headers.get("x-auth-email", "").strip()
    malformed = []
    if email and (len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email)):
        malformed.append(INVALID_EMAIL_FORMAT)
    if key and not _well_formed_key(key):
        malformed.append(INVALID_KEY_FORMAT)
    if malformed:
        raise MalformedHeaders(*malformed)
    if not (key and email):
        raise MissingCredentials()
    try:
        with reading(request) as conn:
            return accounts.authenticate_email_key(conn, email, key)
    except (AuthenticationError, Forbidden):
        # An unknown key, a revoked or expired one, another e-mail, or a key with no e-mail at all (an
        # organization's): no e-mail and key pair is known, in the very words the real API uses for that.
        raise UnknownCredentials(UNKNOWN_KEY_OR_EMAIL) from None


def _reader(
    request: Request,
    _bearer: object = Depends(bearer_scheme),
    _key: object = Depends(auth_key_scheme),
    _email: Annotated[
        str | None,
        Header(
            alias="X-Auth-Email",
            description="With `X-Auth-Key`: the e-mail of the key's account (compared ignoring case).",
        ),
    ] = None,
) -> Principal:
    """The calling key, refused (403, code 10000) unless it may read billing."""
    principal = _authenticate(request)
    authorize(principal, access.READ_BILLING)
    return principal


Reader = Annotated[Principal, Depends(_reader)]


@router.get("/user/billing/history", response_model=CloudflareBillingHistoryPage, summary="User Billing History")
def billing_history(
    request: Request,
    principal: Reader,
    # Each bound comes before the validator: only then does OpenAPI show it as minimum or maximum (after
    # it, pydantic can only check it, and FastAPI documents it as ge or le).
    page: Annotated[
        int,
        Query(ge=1, le=MAX_PAGE, description="Page number of paginated results, from 1."),
        BeforeValidator(_whole_number),
    ] = 1,
    per_page: Annotated[
        int,
        Query(ge=MIN_PER_PAGE, le=MAX_PER_PAGE, description="Number of items per page (5 to 50)."),
        BeforeValidator(_whole_number),
    ] = DEFAULT_PER_PAGE,
    order: Annotated[
        Literal["type", "occurred_at", "occured_at", "action"] | None,
        Query(
            description="Field to order billing history by, ascending (then by time, then by id); "
            "`occured_at` is the seed's spelling of `occurred_at`. Without it: newest first."
        ),
    ] = None,
    type_: Annotated[
        str | None,
        Query(alias="type", max_length=MAX_FILTER_LENGTH, description="Only items of this type, e.g. `charge`."),
    ] = None,
    action: Annotated[
        str | None,
        Query(max_length=MAX_FILTER_LENGTH, description="Only items with this action, e.g. `subscription`."),
    ] = None,
    occurred_at: Annotated[DateTime | None, Query(description=_SINCE_DESCRIPTION)] = None,
    occured_at: Annotated[DateTime | None, Query(description=_SINCE_DESCRIPTION)] = None,
) -> Response:
    """User Billing History: the charges, payments and refunds of the accounts the key reaches, paged.

    Authenticate with `Authorization: Bearer <key>`, or with `X-Auth-Email` (the e-mail of the key's
    account) and `X-Auth-Key` (the key); the key needs the scope `billing:read`. An organization key
    sees all its accounts, an account key its account and its subaccounts. `zone.name` is the name of
    the account the item belongs to.
    """
    moments = [moment for moment in (occurred_at, occured_at) if moment is not None]
    with reading(request) as conn:
        found = invoicing.history(
            conn,
            principal,
            page=page,
            per_page=per_page,
            order=None if order is None else _ORDERS[order],
            type_=type_,
            action=action,
            # Both spellings given: an item must be at or after each, so at or after the later one.
            since=max(moments) if moments else None,
        )
    body = CloudflareBillingHistoryPage(
        success=True,
        errors=[],
        messages=[],
        result=[CloudflareBillingHistory.of(item) for item in found.items],
        result_info=CloudflareResultInfo(
            page=page,
            per_page=per_page,
            count=len(found.items),
            total_count=found.total,
            total_pages=-(-found.matching // per_page),
        ),
    )
    return respond(body)
