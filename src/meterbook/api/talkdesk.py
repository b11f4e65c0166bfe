"""The Talkdesk dialect: ``GET /express/usage/month`` (seed ``talkdesk-monthly-usage.txt``, CONTRACT §3.3).

The monthly usage aggregates of the accounts the key reaches, filtered (``api/talkdesk_filter.py``
parses the ``filter`` grammar into the domain's query tree), ordered and paged, as a HAL document.
Failures are answered in Talkdesk's shape ``{"code", "message", "description", "fields"}``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from meterbook.accounts import access
from meterbook.accounts.models import Principal
from meterbook.aggregates import service as aggregates
from meterbook.aggregates.models import Aggregate
from meterbook.aggregates.query import SORT_FIELDS, Expr, SortField
from meterbook.api.auth import authorized
from meterbook.api.errors import MethodNotAllowed
from meterbook.api.routing import DialectRoute, ExactJSONResponse, JsonNumber, reading, respond
from meterbook.api.talkdesk_filter import FilterError, parse
from meterbook.errors import (
    AuthenticationError,
    Conflict,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    MeterbookError,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)

__all__ = ["ERROR_RESPONSES", "TalkdeskError", "render_error", "router"]

DEFAULT_PER_PAGE: Final = 50
MAX_PER_PAGE: Final = 250
MAX_FILTER_LENGTH: Final = 1600
DEFAULT_ORDER: Final = "id:desc"

# --- errors ----------------------------------------------------------------------------------------


class ErrorField(BaseModel):
    name: str = Field(description="The parameter at fault, e.g. `filter` or `per_page`.")
    description: str = Field(description="What is wrong with it.")


class TalkdeskError(BaseModel):
    """Every failure, as Talkdesk writes it."""

    code: str = Field(
        description="UNAUTHORIZED, FORBIDDEN, INVALID_PARAMETERS, BAD_REQUEST, NOT_FOUND, METHOD_NOT_ALLOWED, "
        "PAYLOAD_TOO_LARGE or INTERNAL_SERVER_ERROR."
    )
    message: str = Field(description="What is wrong; for invalid parameters, each one named with its problem.")
    description: str = Field(description="What the code means.")
    fields: list[ErrorField] = Field(description="One entry per invalid parameter; empty for other failures.")


#: For each failure, the first match wins: its code and what the code means.
_CODES: list[tuple[type[MeterbookError], str, str]] = [
    (AuthenticationError, "UNAUTHORIZED", "The request lacks a valid API key: send 'Authorization: Bearer <key>'."),
    (Forbidden, "FORBIDDEN", "The API key may not make this call."),
    (LimitExceeded, "FORBIDDEN", "A limit of the account would be exceeded."),
    (NotFound, "NOT_FOUND", "There is nothing at this address."),
    (Conflict, "CONFLICT", "The request contradicts what is stored."),
    (MethodNotAllowed, "METHOD_NOT_ALLOWED", "The method is not allowed on this address."),
    (ValidationFailed, "INVALID_PARAMETERS", "One or more parameters are invalid; `fields` names each one."),
    (InvalidInput, "BAD_REQUEST", "The request could not be understood."),
    (PayloadTooLarge, "PAYLOAD_TOO_LARGE", "The request body is over the size limit."),
]
_LOCATIONS: Final = frozenset({"query", "path", "body", "header"})


def _name(path: str) -> str:
    """A domain field path as a Talkdesk client knows it: ``query.per_page`` is ``per_page``."""
    location, _, rest = path.partition(".")
    return rest if location in _LOCATIONS and rest else path


def render_error(error: MeterbookError | None, status: int, error_id: uuid.UUID) -> Response:
    body: dict[str, Any] = {
        "code": "INTERNAL_SERVER_ERROR",
        "message": f"An internal error occurred; please report the error id {error_id}.",
        "description": "The server failed to answer the request.",
        "fields": [],
    }
    if error is not None:
        body["code"], body["message"], body["description"] = "BAD_REQUEST", error.message, "The request failed."
        for kind, code, description in _CODES:
            if isinstance(error, kind):
                body["code"], body["description"] = code, description
                break
    if isinstance(error, ValidationFailed):
        fields = [{"name": _name(item.path), "description": item.message} for item in error.errors]
        body["fields"] = fields
        body["message"] = "; ".join(f"{field['name']}: {field['description']}" for field in fields)
    return ExactJSONResponse(body, status_code=status)


_ERROR_DESCRIPTIONS = {
    400: "Invalid parameters (INVALID_PARAMETERS): a malformed filter or order_by, a month that is not YYYY-MM, "
    "an account id that is not a UUID, a page or per_page out of range.",
    401: "No usable API key (UNAUTHORIZED).",
    403: "The key lacks the scope `express-accounts-usage:read`, or the filter names an account outside "
    "the caller's organization (FORBIDDEN: 'This caller is not authorized to query the given accounts.').",
    404: "No such route (NOT_FOUND).",
    413: "The body is over the size limit (PAYLOAD_TOO_LARGE).",
    500: "An internal server error occurred (INTERNAL_SERVER_ERROR).",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": TalkdeskError, "description": description} for status, description in _ERROR_DESCRIPTIONS.items()
}

# --- the monthly usage -----------------------------------------------------------------------------


class TalkdeskUsage(BaseModel):
    """One monthly aggregate: an account's use of a product in a UTC month, at one price."""

    id: str = Field(description="32 hex digits, the same for this aggregate on every call.")
    account_id: uuid.UUID = Field(description="The ID of the account.")
    product_id: str = Field(description="The ID of the product.")
    aggr_product_id: str | None = Field(description="Aggregated product ID.")
    month: str = Field(description="The year and month of the usage aggregate, YYYY-MM (UTC).")
    type: str = Field(
        description="The type of usage: AMD, API_REQUEST, CALL, CALL_SERVICE, CREDIT_COMMIT, DIALER, MESSAGE, "
        "NUMBER, PRODUCT_SERVICE, RECHARGE, SPEECH_TRANSCRIPTION, VOICEMAIL_TRANSCRIPTION or OTHER."
    )
    description: str = Field(description="A description of the usage type (the product's description).")
    currency: str = Field(description="The ISO-4217 code of the currency.")
    direction: Literal["INBOUND", "OUTBOUND", "OTHER"] | None = Field(
        description="The direction of the interaction, when applicable; null otherwise."
    )
    resolution: str | None = Field(description="The type of interaction resolution, or null if not applicable.")
    unit: str = Field(description="The unit of measure.")
    price: JsonNumber = Field(description="The price of each unit.")
    wallet_name: str | None
    number_of_units: JsonNumber = Field(description="The number of units in the aggregate, exact.")
    total_amount: JsonNumber = Field(description="number_of_units × price in `currency`, exact (not rounded).")

    @classmethod
    def of(cls, aggregate: Aggregate) -> TalkdeskUsage:
        return cls.model_validate(
            {
                "id": aggregate.id,
                "account_id": aggregate.account_id,
                "product_id": aggregate.product_id,
                "aggr_product_id": aggregate.aggr_product_id,
                "month": aggregate.month,
                "type": aggregate.type,
                "description": aggregate.description,
                "currency": aggregate.currency,
                "direction": aggregate.direction,
                "resolution": aggregate.resolution,
                "unit": aggregate.unit,
                "price": aggregate.price,
                "wallet_name": aggregate.wallet_name,
                "number_of_units": aggregate.number_of_units,
                "total_amount": aggregate.total_amount,
            }
        )


class HalLink(BaseModel):
    href: str = Field(description="An absolute URL.")


class TalkdeskLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: HalLink = Field(alias="self", description="This page.")
    show: HalLink = Field(description="The current link (the same as `self`).")
    first: HalLink = Field(description="The first page.")
    last: HalLink = Field(description="The last page.")
    prev: HalLink | SkipJsonSchema[None] = Field(default=None, description="The previous page; absent on page 1.")
    next: HalLink | SkipJsonSchema[None] = Field(default=None, description="The next page; absent on the last page.")


class TalkdeskEmbedded(BaseModel):
    usage: list[TalkdeskUsage]


class TalkdeskMonthlyUsage(BaseModel):
    """One page of monthly usage aggregates (HAL)."""

    model_config = ConfigDict(populate_by_name=True)

    count: int = Field(description="How many items this page holds.")
    page: int = Field(description="This page's number, from 1.")
    per_page: int
    total: int = Field(description="How many items match, on every page together.")
    total_pages: int = Field(description="How many pages there are; at least 1 (an empty result is one empty page).")
    embedded: TalkdeskEmbedded = Field(alias="_embedded")
    links: TalkdeskLinks = Field(alias="_links")


router = APIRouter(prefix="/express", tags=["talkdesk"], route_class=DialectRoute, responses=ERROR_RESPONSES)

Reader = Annotated[Principal, Depends(authorized(access.READ_MONTHLY_USAGE))]


def _where(text: str | None) -> Expr | None:
    """The filter as a query tree; an absent or blank filter filters nothing."""
    if text is None or not text.strip():
        return None
    try:
        return parse(text)
    except FilterError as error:
        raise ValidationFailed.field("query.filter", error.message, "filter_syntax") from None


_SORT_FIELDS: Final[dict[str, SortField]] = {field: field for field in SORT_FIELDS}


def _ordering(text: str) -> tuple[SortField, bool]:
    """``<field>:asc|desc`` (the direction may be left out: ascending) as the field and whether it descends."""
    name, separator, direction = text.strip().partition(":")
    field = _SORT_FIELDS.get(name.strip().lower())
    direction = direction.strip().lower()
    if field is None or (separator and direction not in {"asc", "desc"}):
        raise ValidationFailed.field(
            "query.order_by",
            f"{text!r} is not '<field>:asc' or '<field>:desc' with a field among id, month and account_id",
            "order_by",
        )
    return field, direction == "desc"


def _href(request: Request, page: int, per_page: int, filter_text: str | None, order_by: str | None) -> str:
    params: dict[str, str | int] = {"page": page, "per_page": per_page}
    if filter_text is not None and filter_text.strip():
        params["filter"] = filter_text
    if order_by is not None:
        params["order_by"] = order_by
    return str(request.url.replace(query=urlencode(params, safe=":'(),", quote_via=quote)))


@router.get("/usage/month", response_model=TalkdeskMonthlyUsage, response_model_by_alias=True)
def monthly_usage(
    request: Request,
    principal: Reader,
    page: Annotated[int, Query(ge=1, description="The page to return, from 1.")] = 1,
    per_page: Annotated[
        int, Query(ge=1, le=MAX_PER_PAGE, description="How many items a page holds (1 to 250).")
    ] = DEFAULT_PER_PAGE,
    filter_text: Annotated[
        str | None,
        Query(
            alias="filter",
            max_length=MAX_FILTER_LENGTH,
            description="Comparisons of `account_id` or `month` ('YYYY-MM') with eq, ne, gt, ge, lt, le, "
            "joined by and, or, not and parentheses; values in single quotes (`''` for a quote inside one), e.g. "
            "`(month ge '2024-01' and month le '2024-03') and (account_id eq '…' or account_id eq '…')`.",
        ),
    ] = None,
    order_by: Annotated[
        str | None,
        Query(description="`<field>:asc` or `<field>:desc`, field `id`, `month` or `account_id`; default `id:desc`."),
    ] = None,
) -> Response:
    """The monthly usage aggregates of the accounts under the caller's organization (or account), paged."""
    where = _where(filter_text)
    sort_field, descending = _ordering(order_by if order_by is not None else DEFAULT_ORDER)
    with reading(request) as conn:
        found, total = aggregates.search(conn, principal, where, sort_field, descending, page, per_page)
    total_pages = max(1, -(-total // per_page))

    def link(number: int) -> HalLink:
        return HalLink(href=_href(request, number, per_page, filter_text, order_by))

    links = TalkdeskLinks.model_validate(
        {
            "self": link(page),
            "show": link(page),
            "first": link(1),
            "last": link(total_pages),
            "prev": link(min(page - 1, total_pages)) if page > 1 else None,
            "next": link(page + 1) if page < total_pages else None,
        }
    )
    body = TalkdeskMonthlyUsage.model_validate(
        {
            "count": len(found),
            "page": page,
            "per_page": per_page,
            "total": total,
            "total_pages": total_pages,
            "_embedded": TalkdeskEmbedded(usage=[TalkdeskUsage.of(item) for item in found]),
            "_links": links,
        }
    )
    content = body.model_dump(mode="python", by_alias=True)
    content["_links"] = {name: value for name, value in content["_links"].items() if value is not None}
    return respond(content)
