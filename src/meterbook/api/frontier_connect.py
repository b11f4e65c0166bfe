"""The Frontier dialect over ConnectRPC: ``POST /raystack.frontier.v1beta1.<Service>/<Method>`` (CONTRACT §3.4).

Today's official Frontier SDKs speak the Connect protocol (unary, JSON codec) with the service descriptors
of ``@raystack/proton``. Each Connect method here is bound to the REST route its proto's
``google.api.http`` annotation names, and served by calling that route inside the process: the
request's proto JSON (field names in either spelling) becomes the REST call (path parameters, query or
body, as the gateway would bind them), the REST route decides everything (authentication, scopes,
reach, validation, the ledger), and its answer is written back in proto JSON (lowerCamelCase names,
int64 as strings, defaults left out), or as Connect's error JSON ``{"code": "invalid_argument",
"message": ...}`` with the HTTP status Connect gives that code. So a rule of the Frontier dialect lives
in one place, ``api/frontier.py``, whichever protocol the client speaks; and a method is served
exactly when the REST route of one of its bindings is (:func:`install`).

Sources: the Connect protocol (https://connectrpc.com/docs/protocol, error codes and their HTTP
statuses as updated by connectrpc/connectrpc.com#130) and its reference implementation in
``@connectrpc/connect`` 2.0 (``protocol-connect/http-status.js``, ``handler-factory.js``); the
messages and bindings of ``@raystack/proton`` (``raystack/frontier/v1beta1/frontier_pb.ts``,
``admin_pb.ts``), which ``tests/api/test_frontier_connect.py`` compares with :data:`METHODS`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request, Response, Security
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect
from starlette.types import Message

from meterbook.api import frontier
from meterbook.api.auth import basic_scheme, bearer_scheme
from meterbook.api.errors import flattened_routes
from meterbook.api.routing import ExactJSONResponse
from meterbook.errors import (
    BadRequest,
    InvalidInput,
    MeterbookError,
    PayloadTooLarge,
    ValidationFailed,
)
from meterbook.kit import jsontext

__all__ = ["METHODS", "PACKAGE", "PREFIX", "ConnectMethod", "ProtoField", "ProtoMessage", "install", "render_error"]

PACKAGE: Final = "raystack.frontier.v1beta1"
#: Every Connect path of the package starts so: ``/raystack.frontier.v1beta1.<Service>/<Method>``.
PREFIX: Final = f"/{PACKAGE}."

# --- Connect's error codes -------------------------------------------------------------------------

#: Connect's name for each gRPC status code (the names are the gRPC ones in snake case).
CODE_NAMES: Final = {
    1: "canceled",
    2: "unknown",
    3: "invalid_argument",
    4: "deadline_exceeded",
    5: "not_found",
    6: "already_exists",
    7: "permission_denied",
    8: "resource_exhausted",
    9: "failed_precondition",
    10: "aborted",
    11: "out_of_range",
    12: "unimplemented",
    13: "internal",
    14: "unavailable",
    15: "data_loss",
    16: "unauthenticated",
}
#: The HTTP status of each code: the Connect protocol's table (connectrpc.com/docs/protocol#error-codes, as
#: updated by connectrpc/connectrpc.com#130), which ``@connectrpc/connect`` 2.0's ``codeToHttpStatus`` implements.
HTTP_STATUS: Final = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}
#: Answers about the HTTP exchange itself keep their status, as Connect's own servers answer them: a method
#: other than POST (405) and a Content-Type other than JSON (415).
_PROTOCOL_STATUSES: Final = frozenset({405, 415})

ConnectCode = Literal[
    "canceled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
]


class ConnectError(BaseModel):
    """Every failure, as Connect's error JSON."""

    code: ConnectCode = Field(description="Connect's code: the gRPC status name in snake case.")
    message: str = Field(description="What is wrong, naming the field where one is at fault.")


class UnknownProcedure(InvalidInput):
    """A path under the package that names no method meterbook serves: Connect's routing miss."""

    status = 404


class UnsupportedMediaType(InvalidInput):
    status = 415


class NotServed(MeterbookError):
    """A method whose REST binding this server does not have."""

    status = 501


def _connect_error(code: str, message: str, status: int | None = None) -> ExactJSONResponse:
    return ExactJSONResponse({"code": code, "message": message}, status_code=status or HTTP_STATUS[code])


def _from_frontier(status: int, body: bytes) -> ExactJSONResponse:
    """A Frontier REST failure (``{"code": <gRPC code>, "message", "details"}``) as Connect's error JSON."""
    try:
        found = json.loads(body)
        code, message = CODE_NAMES[found["code"]], found["message"]
    except (ValueError, KeyError, TypeError):
        return _connect_error("internal", "internal error")
    if not isinstance(message, str):
        return _connect_error("internal", "internal error")
    return _connect_error(code, message, status if status in _PROTOCOL_STATUSES else None)


def render_error(error: MeterbookError | None, status: int, error_id: uuid.UUID) -> Response:
    """Any failure on a Connect path: the Frontier dialect's code for it, in Connect's words and status."""
    if isinstance(error, PayloadTooLarge):
        # Connect's servers answer a message over their read limit so.
        return _connect_error("resource_exhausted", error.message)
    if isinstance(error, UnknownProcedure):
        # Connect's servers answer a path they do not route with a 404, which clients read as unimplemented.
        return _connect_error("unimplemented", error.message, 404)
    if isinstance(error, NotServed):
        return _connect_error("unimplemented", error.message)
    response = frontier.render_error(error, status, error_id)
    answer = _from_frontier(response.status_code, bytes(response.body))
    if isinstance(error, UnsupportedMediaType):
        answer.headers["Accept-Post"] = "application/json"
    return answer


# --- the messages ----------------------------------------------------------------------------------

Kind = Literal["string", "int64", "bool", "timestamp", "struct", "message"]


def json_name(name: str) -> str:
    """protoc's JSON name of a field: ``postal_code`` is ``postalCode``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class ProtoField:
    name: str
    kind: Kind
    repeated: bool = False
    message: ProtoMessage | None = None

    @property
    def json_name(self) -> str:
        return json_name(self.name)


@dataclass(frozen=True)
class ProtoMessage:
    name: str  # the full name, e.g. raystack.frontier.v1beta1.Usage
    fields: tuple[ProtoField, ...] = ()
    _by_spelling: dict[str, ProtoField] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spellings = {item.name: item for item in self.fields} | {item.json_name: item for item in self.fields}
        object.__setattr__(self, "_by_spelling", spellings)

    def field(self, spelling: str) -> ProtoField | None:
        """The field of either spelling, its proto name or its JSON name."""
        return self._by_spelling.get(spelling)


def _strings(*names: str) -> tuple[ProtoField, ...]:
    return tuple(ProtoField(name, "string") for name in names)


def _message(name: str, *fields: ProtoField) -> ProtoMessage:
    return ProtoMessage(f"{PACKAGE}.{name}", fields)


def _of(name: str, message: ProtoMessage, repeated: bool = False) -> ProtoField:
    return ProtoField(name, "message", repeated, message)


_METADATA = ProtoField("metadata", "struct")
_CREATED, _UPDATED = ProtoField("created_at", "timestamp"), ProtoField("updated_at", "timestamp")

USAGE = _message(
    "Usage",
    *_strings("id", "customer_id", "source", "description", "type"),
    ProtoField("amount", "int64"),
    ProtoField("user_id", "string"),
    _METADATA,
    _CREATED,
    _UPDATED,
)
BALANCE = _message("BillingAccount.Balance", ProtoField("amount", "int64"), ProtoField("currency", "string"), _UPDATED)
USER = _message(
    "User", *_strings("id", "name", "title", "email"), _METADATA, _CREATED, _UPDATED, *_strings("state", "avatar")
)
ORGANIZATION = _message(
    "Organization", *_strings("id", "name", "title"), _METADATA, _CREATED, _UPDATED, *_strings("state", "avatar")
)
BILLING_ACCOUNT = _message(
    "BillingAccount",
    *_strings("id", "org_id", "name", "email", "phone"),
    _of(
        "address",
        _message("BillingAccount.Address", *_strings("line1", "line2", "city", "state", "postal_code", "country")),
    ),
    *_strings("provider_id", "provider", "currency", "state"),
    _of("tax_data", _message("BillingAccount.Tax", *_strings("type", "id")), repeated=True),
    _METADATA,
    _CREATED,
    _UPDATED,
    _of("organization", ORGANIZATION),
)
BILLING_TRANSACTION = _message(
    "BillingTransaction",
    *_strings("id", "customer_id", "source"),
    ProtoField("amount", "int64"),
    *_strings("type", "description", "user_id"),
    _METADATA,
    _CREATED,
    _UPDATED,
    _of("user", USER),
    _of("customer", BILLING_ACCOUNT),
)


# --- the methods and their REST bindings -------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """One ``google.api.http`` binding: the REST method, its path template, and ``body: "*"`` or none."""

    method: Literal["GET", "POST"]
    path: str
    body: bool

    @property
    def path_fields(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


@dataclass(frozen=True)
class ConnectMethod:
    service: Literal["FrontierService", "AdminService"]
    name: str
    input: ProtoMessage
    output: ProtoMessage
    #: The proto's bindings, in its order: the first whose path fields are all set is called.
    bindings: tuple[Binding, ...]
    summary: str

    @property
    def path(self) -> str:
        return f"/{PACKAGE}.{self.service}/{self.name}"


_ORG_BILLING = "/v1beta1/organizations/{org_id}/billing/{billing_id}"

METHODS: Final = (
    ConnectMethod(
        "FrontierService",
        "CreateBillingUsage",
        _message(
            "CreateBillingUsageRequest", *_strings("org_id", "billing_id", "project_id"), _of("usages", USAGE, True)
        ),
        _message("CreateBillingUsageResponse"),
        (
            Binding("POST", f"{_ORG_BILLING}/usages", body=True),
            Binding("POST", "/v1beta1/organizations/billing/usages", body=True),
        ),
        "Report credit and feature usage of a billing account, all or nothing, each usage id at most once.",
    ),
    ConnectMethod(
        "FrontierService",
        "GetBillingBalance",
        _message("GetBillingBalanceRequest", *_strings("id", "org_id")),
        _message("GetBillingBalanceResponse", _of("balance", BALANCE)),
        (Binding("GET", "/v1beta1/organizations/{org_id}/billing/{id}/balance", body=False),),
        "The billing account's credit balance.",
    ),
    ConnectMethod(
        "FrontierService",
        "ListBillingTransactions",
        _message(
            "ListBillingTransactionsRequest",
            *_strings("org_id", "billing_id"),
            ProtoField("since", "timestamp"),
            ProtoField("start_range", "timestamp"),
            ProtoField("end_range", "timestamp"),
            ProtoField("expand", "string", repeated=True),
        ),
        _message("ListBillingTransactionsResponse", _of("transactions", BILLING_TRANSACTION, True)),
        (
            Binding("GET", f"{_ORG_BILLING}/transactions", body=False),
            Binding("GET", "/v1beta1/organizations/{org_id}/billing/transactions", body=False),
        ),
        "The billing account's credit transactions, newest first.",
    ),
    ConnectMethod(
        "FrontierService",
        "CheckFeatureEntitlement",
        _message("CheckFeatureEntitlementRequest", *_strings("org_id", "billing_id", "project_id", "feature")),
        _message("CheckFeatureEntitlementResponse", ProtoField("status", "bool")),
        (
            Binding("POST", f"{_ORG_BILLING}/check", body=True),
            Binding("POST", "/v1beta1/organizations/billing/check", body=True),
        ),
        "Whether the billing account may use the feature now: its usage is below its limit.",
    ),
    ConnectMethod(
        "FrontierService",
        "CheckCreditEntitlement",
        _message("CheckCreditEntitlementRequest", ProtoField("org_id", "string"), ProtoField("amount", "int64")),
        _message("CheckCreditEntitlementResponse", ProtoField("status", "bool")),
        (Binding("POST", "/v1beta1/billing/check", body=True),),
        "Whether the organization's billing account has the credits to spend `amount` now.",
    ),
    ConnectMethod(
        "FrontierService",
        "TotalDebitedTransactions",
        _message("TotalDebitedTransactionsRequest", *_strings("org_id", "billing_id")),
        _message("TotalDebitedTransactionsResponse", _of("debited", BALANCE)),
        (Binding("GET", f"{_ORG_BILLING}/debited_transactions_total", body=False),),
        "The credits the billing account's usage has debited, net of reverts.",
    ),
    ConnectMethod(
        "AdminService",
        "RevertBillingUsage",
        _message(
            "RevertBillingUsageRequest",
            *_strings("org_id", "project_id", "billing_id", "usage_id"),
            ProtoField("amount", "int64"),
        ),
        _message("RevertBillingUsageResponse"),
        (
            Binding(
                "POST", "/v1beta1/admin/organizations/{org_id}/billing/{billing_id}/usage/{usage_id}/revert", body=True
            ),
            Binding("POST", "/v1beta1/organizations/billing/usages/revert", body=True),
        ),
        "Give back some or all of the credits a usage debited (a revert itself cannot be reverted).",
    ),
)


# --- proto JSON in ---------------------------------------------------------------------------------

_DEFAULTS: Final[dict[str, Any]] = {"string": "", "int64": 0, "bool": False}


def _from_proto_json(message: ProtoMessage, value: Any, where: str) -> dict[str, Any]:
    """A message read as proto JSON parsers read it: either spelling of each name, ``null`` for absent,
    unknown fields ignored; every absent scalar or list is its proto3 default. Values keep their JSON types:
    the REST route checks them as it checks its own clients'."""
    if not isinstance(value, dict):
        raise ValidationFailed.field(where or "body", "must be a JSON object", "object_type")
    found: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, item in value.items():
        known = message.field(key)
        if known is None:
            continue
        if known.name in spelled:
            raise ValidationFailed.field(
                f"{where}{known.name}", f"is given twice, as {spelled[known.name]} and as {key}", "duplicate"
            )
        spelled[known.name] = key
        if item is None:
            continue
        if known.kind == "message" and known.message is not None:
            if known.repeated:
                if not isinstance(item, list):
                    raise ValidationFailed.field(f"{where}{known.name}", "must be a JSON array", "list_type")
                item = [
                    _from_proto_json(known.message, element, f"{where}{known.name}[{index}].")
                    for index, element in enumerate(item)
                ]
            else:
                item = _from_proto_json(known.message, item, f"{where}{known.name}.")
        found[known.name] = item
    for known in message.fields:
        if known.name not in found:
            if known.repeated:
                found[known.name] = []
            elif known.kind in _DEFAULTS:
                found[known.name] = _DEFAULTS[known.kind]
    return found


def _is_default(value: Any) -> bool:
    return value is None or value == "" or value == [] or value is False or (value == 0 and value is not True)


@dataclass(frozen=True)
class RestCall:
    method: str
    path: str  # as routes match it: decoded, but a "/" inside a field stays %2F, so it cannot add a segment
    raw_path: str  # percent-encoded
    query: str
    body: bytes | None


def _path_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationFailed.field(name, "must be a string", "string_type")
    return value


def _query(fields: Mapping[str, Any]) -> str:
    """Fields as the gateway reads them from a query: one parameter per value, times as their RFC 3339 text."""
    pairs: list[tuple[str, str]] = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if _is_default(item):
                continue
            if isinstance(item, dict | list):
                raise ValidationFailed.field(name, "must be a string", "string_type")
            pairs.append((name, item if isinstance(item, str) else jsontext.dumps(item).decode()))
    return urlencode(pairs)


def rest_call(request: dict[str, Any], bindings: tuple[Binding, ...]) -> RestCall:
    """The REST request the gateway would make of ``request``: the first binding whose path fields are all set
    (else the last, whose missing field is then named), the rest of the fields as its body or its query."""
    binding = next((item for item in bindings if all(request.get(name) for name in item.path_fields)), bindings[-1])
    path, raw_path, rest = binding.path, binding.path, dict(request)
    for name in binding.path_fields:
        value = rest.pop(name)
        if not value:
            raise ValidationFailed.field(name, "is required", "missing")
        text = _path_value(name, value)
        path = path.replace(f"{{{name}}}", text.replace("/", "%2F"))
        raw_path = raw_path.replace(f"{{{name}}}", quote(text, safe=""))
    if binding.body:
        return RestCall(binding.method, path, raw_path, "", jsontext.dumps(rest))
    return RestCall(binding.method, path, raw_path, _query(rest), None)


# --- proto JSON out --------------------------------------------------------------------------------


def _scalar_out(known: ProtoField, value: Any) -> Any:
    if known.kind == "int64":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"{known.name}: not an int64: {value!r}")
        return str(int(value))  # proto JSON writes int64 as a string
    if known.kind == "bool" and not isinstance(value, bool):
        raise TypeError(f"{known.name}: not a bool: {value!r}")
    if known.kind in ("string", "timestamp") and not isinstance(value, str):
        raise TypeError(f"{known.name}: not a string: {value!r}")
    return value


def to_proto_json(message: ProtoMessage, value: Mapping[str, Any]) -> dict[str, Any]:
    """A REST answer as proto JSON: lowerCamelCase names, int64 as strings, and, as protobuf-es and
    protojson write it, no field that holds its default ("", 0, false, [], or an unset message)."""
    written: dict[str, Any] = {}
    for known in message.fields:
        item = value.get(known.name)
        if item is None:
            continue
        if known.repeated:
            items = [_value_out(known, element) for element in item]
            if items:
                written[known.json_name] = items
            continue
        converted = _value_out(known, item)
        # A message or Struct that is there is written, even empty; a scalar only when not its default.
        if known.kind in ("message", "struct") or not (_is_default(converted) or converted == "0"):
            written[known.json_name] = converted
    return written


def _value_out(known: ProtoField, value: Any) -> Any:
    if known.kind == "message" and known.message is not None:
        return to_proto_json(known.message, value)
    if known.kind == "struct":
        return value
    return _scalar_out(known, value)


# --- serving a call --------------------------------------------------------------------------------

_JSON_CONTENT_TYPE = re.compile(r"application/json(?:; ?charset=utf-?8)?", re.IGNORECASE)


def _check_protocol(request: Request) -> None:
    """The HTTP side of a Connect unary call with the JSON codec, as ``@connectrpc/connect``'s handler checks it."""
    content_type = request.headers.get("content-type", "")
    if not _JSON_CONTENT_TYPE.fullmatch(content_type.strip()):
        shown = content_type or "none"
        raise UnsupportedMediaType(
            f"Content-Type must be application/json (the Connect protocol's JSON codec), not {shown}."
        )
    version = request.headers.get("connect-protocol-version")
    if version is not None and version != "1":
        raise BadRequest(f'Connect-Protocol-Version must be "1": got "{version}".')
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise NotServed(f'Content-Encoding "{encoding}" is not supported: send the body uncompressed (identity).')


async def _read_request(request: Request, method: ConnectMethod) -> dict[str, Any]:
    raw = await request.body()
    try:
        parsed = jsontext.loads(raw)
    except ValueError as error:
        raise BadRequest(f"The request body is not proto JSON of {method.input.name}: {error}.") from None
    return _from_proto_json(method.input, parsed, "")


async def _call_rest(request: Request, call: RestCall) -> tuple[int, bytes]:
    """Run the REST route of ``call`` inside this process, with the caller's credentials; its status and body.

    The route is reached through the application's router, below the middleware (the Connect request is
    already counted, timed and logged) and with the application's error handlers, so that a REST failure
    comes back rendered in Frontier's shape.
    """
    headers: list[tuple[bytes, bytes]] = [
        (name, value) for name, value in request.scope["headers"] if name in (b"authorization", b"host")
    ]
    receive_body = call.body
    if receive_body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(receive_body)).encode())]
    root_path = request.scope.get("root_path", "")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": request.scope.get("asgi", {"version": "3.0"}),
        "http_version": request.scope.get("http_version", "1.1"),
        "method": call.method,
        "scheme": request.scope.get("scheme", "http"),
        "server": request.scope.get("server"),
        "client": request.scope.get("client"),
        "root_path": root_path,
        "path": root_path + call.path,
        "raw_path": (root_path + call.raw_path).encode("ascii"),
        "query_string": call.query.encode("ascii"),
        "headers": headers,
        "app": request.app,
        "state": request.scope.setdefault("state", {}),
        "extensions": {},
    }
    for key in ("starlette.exception_handlers", "fastapi_middleware_astack"):
        if key in request.scope:
            scope[key] = request.scope[key]
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": receive_body or b"", "more_body": False}
        return await request.receive()  # after the body: the client's disconnect, when it comes

    status = 500
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app.router(scope, receive, send)
    return status, b"".join(chunks)


async def serve(request: Request, method: ConnectMethod, bindings: tuple[Binding, ...]) -> Response:
    _check_protocol(request)
    try:
        message = await _read_request(request, method)
    except ClientDisconnect:
        # The client is gone, or was already answered (a chunked body over the limit): nothing is left to say.
        return Response(status_code=499)
    call = rest_call(message, bindings)
    status, body = await _call_rest(request, call)
    if not 200 <= status < 300:
        return _from_frontier(status, body)
    return ExactJSONResponse(to_proto_json(method.output, jsontext.loads(body)))


# --- routes and their documentation ---------------------------------------------------------------


def _schema(message: ProtoMessage, reading: bool) -> dict[str, Any]:
    """The JSON schema of a message's proto JSON: what clients send (``reading``), or what meterbook writes."""
    properties = {known.json_name: _field_schema(known, reading) for known in message.fields}
    return {"type": "object", "title": message.name.rpartition(".")[2], "properties": properties}


def _field_schema(known: ProtoField, reading: bool) -> dict[str, Any]:
    single: dict[str, Any]
    if known.kind == "message" and known.message is not None:
        single = _schema(known.message, reading)
    elif known.kind == "int64":
        text = {"type": "string", "pattern": "^-?[0-9]+$"}
        single = {"anyOf": [text, {"type": "integer", "format": "int64"}]} if reading else text
    elif known.kind == "timestamp":
        single = {"type": "string", "format": "date-time"}
    elif known.kind == "struct":
        single = {"type": "object"}
    elif known.kind == "bool":
        single = {"type": "boolean"}
    else:
        single = {"type": "string"}
    return {"type": "array", "items": single} if known.repeated else single


_ERROR_DESCRIPTIONS: Final = {
    400: "invalid_argument: a malformed request, or insufficient credits; failed_precondition: a feature limit "
    "would be exceeded.",
    401: "unauthenticated: no usable key, as `Bearer <key>` or HTTP Basic `<key id>:<secret>`.",
    403: "permission_denied: the key lacks the scope this call needs.",
    404: "not_found: an organization, project, billing account or usage that is unknown or outside the key's "
    "reach (the two are answered alike).",
    409: "already_exists: a usage id reused with different content, or a revert of a revert.",
    415: "The Content-Type is not application/json (Connect's JSON codec is the one served).",
    429: "resource_exhausted: the body is over the size limit.",
    500: "internal.",
    501: "unimplemented: a Content-Encoding other than identity.",
}


def _responses(method: ConnectMethod) -> dict[int | str, dict[str, Any]]:
    ok = {
        "description": f"{method.output.name} in proto JSON: lowerCamelCase names, int64 as strings, "
        "fields that hold their default left out.",
        "content": {"application/json": {"schema": _schema(method.output, reading=False)}},
    }
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": ConnectError, "description": text} for status, text in _ERROR_DESCRIPTIONS.items()
    }
    return {200: ok, **errors}


def _endpoint(method: ConnectMethod, bindings: tuple[Binding, ...]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await serve(request, method, bindings)

    endpoint.__name__ = f"{method.service}_{method.name}"
    endpoint.__doc__ = method.summary
    return endpoint


def _unknown_procedure(service: str, method: str) -> Response:
    """Any other method of the package: Connect's answer to a procedure it does not route."""
    raise UnknownProcedure(f"{PACKAGE}.{service}/{method} is not a method meterbook serves.")


def _served(app: FastAPI, method: ConnectMethod) -> tuple[Binding, ...]:
    """The method's bindings that ``app`` has a REST route for, in the proto's order."""
    routes = {
        (verb, route.path)
        for route in flattened_routes(app.routes)
        for verb in (getattr(route, "methods", None) or ())
        if isinstance(getattr(route, "path", None), str)
    }
    return tuple(binding for binding in method.bindings if (binding.method, binding.path) in routes)


def install(app: FastAPI) -> None:
    """Serve each method of :data:`METHODS` whose REST route ``app`` has (call it after the Frontier routes are
    included); any other path under the package is Connect's routing miss, which clients read as unimplemented."""
    router = APIRouter(tags=["frontier-connect"], dependencies=[Security(bearer_scheme), Security(basic_scheme)])
    for method in METHODS:
        bindings = _served(app, method)
        if not bindings:
            continue
        router.add_api_route(
            method.path,
            _endpoint(method, bindings),
            methods=["POST"],
            name=f"{method.service}.{method.name}",
            summary=f"{method.service}.{method.name} (ConnectRPC)",
            description=f"{method.summary}\n\nConnect unary call with the JSON codec: `{method.input.name}` in "
            "proto JSON (lowerCamelCase or proto field names; unknown fields ignored). Keys as for the Frontier "
            "REST routes: Bearer, or HTTP Basic.",
            response_class=ExactJSONResponse,
            responses=_responses(method),
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(method.input, reading=True)}},
                }
            },
        )
    router.add_api_route(
        f"{PREFIX}{{service}}/{{method}}", _unknown_procedure, methods=["POST"], include_in_schema=False
    )
    app.include_router(router)
