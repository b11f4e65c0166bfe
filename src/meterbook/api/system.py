"""Routes and middleware about meterbook itself: health, metrics, request ids and access logs, the OpenAPI
document and its offline Swagger UI."""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
import uuid
from typing import Any

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, SecretStr
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterbook import __version__, metrics
from meterbook.api import faraday
from meterbook.api.routing import ExactJSONResponse, database
from meterbook.config import Settings
from meterbook.errors import InvalidAuthorization, MeterbookError, MissingApiKey
from meterbook.log import redact_path, redact_query, request_id_var

__all__ = ["REQUEST_ID_HEADER", "RequestObserver", "install_docs", "install_observer", "router"]

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str
    database: str
    version: str


# The database unreachable: an unexpected failure, answered as every other one under /v1.
@router.get("/healthz", response_model=Health, responses={500: faraday.ERROR_RESPONSES[500]})
def healthz(request: Request) -> ExactJSONResponse:
    """Liveness and database reachability; needs no key."""
    db = database(request)
    db.ping()
    return ExactJSONResponse({"status": "ok", "database": db.dialect, "version": __version__})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {metrics.CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Metrics."},
        401: {
            "model": faraday.FaradayError,
            "description": "`METERBOOK_METRICS_TOKEN` is set, and the request does not carry it "
            "(MISSING_API_KEY, INVALID_AUTHORIZATION).",
        },
    },
)
def get_metrics(request: Request) -> Response:
    """Prometheus metrics in the text format. Open unless `METERBOOK_METRICS_TOKEN` is set; then it needs
    `Authorization: Bearer <that token>` (not an API key: the counters span every organization)."""
    settings: Settings = request.app.state.settings
    if settings.metrics_token is not None:
        refusal = _metrics_token_refusal(request.headers.get("authorization"), settings.metrics_token)
        if refusal is not None:
            response = faraday.render_error(refusal, refusal.status, uuid.uuid4())
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'  # what RFC 6750 asks of a 401
            return response
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)


def _metrics_token_refusal(header: str | None, token: SecretStr) -> MeterbookError | None:
    scheme, _, given = (header or "").strip().partition(" ")
    if not scheme:
        return MissingApiKey(
            "/metrics needs the metrics token: send 'Authorization: Bearer <METERBOOK_METRICS_TOKEN>'."
        )
    # Compared in constant time, so how long a refusal takes says nothing of how much of the token was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        return InvalidAuthorization("This is not the metrics token (METERBOOK_METRICS_TOKEN).")
    return None


def _without_default_422(schema: dict[str, Any]) -> dict[str, Any]:
    """meterbook answers bad input with 400 in each dialect's shape, never FastAPI's 422: drop it from the document."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def install_docs(app: FastAPI) -> None:
    """``/openapi.json`` and ``/docs``, whose Swagger UI assets meterbook serves itself (no CDN)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = _without_default_422(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="meterbook API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


# --- request ids, request metrics and the access log ------------------------------------------------

REQUEST_ID_HEADER = "X-Request-Id"
#: An incoming id is kept when it is short and has no character that could forge a log line or a header.
_ACCEPTABLE_ID = re.compile(rb"[A-Za-z0-9._:=+/@-]{1,128}")
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()

access_log = logging.getLogger("meterbook.access")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_KEY:
            if _ACCEPTABLE_ID.fullmatch(value):
                return str(value.decode())
            break
    return os.urandom(16).hex()  # as random as a UUID, for a fraction of its cost


def _route_template(scope: Scope, root_path: str) -> str:
    """The matched route's template, never the raw path of a templated route (a series per id would pile up)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    # FastAPI names only its own routes in the scope; its plain routes (/openapi.json) and mounts (/docs/assets) not.
    if "endpoint" in scope:
        if scope.get("root_path", root_path) != root_path:
            return f"{scope['root_path']}/{{path}}"
        if not scope.get("path_params"):
            return str(scope["path"])  # a route without parameters matched: its path is its template
    return metrics.UNMATCHED_ROUTE


class RequestObserver:
    """Gives each request an id (the client's ``X-Request-Id`` when sane, else a new one) and returns it;
    then counts and times the request by route template and status, and writes one access log line.

    The access line names method, path, query, route, status, duration and client address only: never a
    header or a body, and the query with the value of every sensitive parameter redacted
    (:func:`~meterbook.log.redact_query`), so no key, and nothing a person typed about a customer, reaches
    the logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        id_header = (_REQUEST_ID_KEY, request_id.encode())
        status = 500  # what the client gets if the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope, root_path)
            metrics.observe_request(scope["method"], route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope, route, status, elapsed)
            request_id_var.reset(token)


def _log_access(scope: Scope, route: str, status: int, elapsed: float) -> None:
    client = scope.get("client")
    path = redact_path(scope["path"])
    fields: dict[str, Any] = {"method": scope["method"], "path": path}
    query = scope.get("query_string", b"")
    if query:
        fields["query"] = redact_query(query.decode("latin-1"))
    fields.update(
        route=route,
        status=status,
        duration_ms=round(elapsed * 1000, 3),
        client=client[0] if client else None,
    )
    # Built directly rather than through access_log.info(): that would walk the stack to find the caller,
    # on every request, for a line whose source is always this one.
    record = access_log.makeRecord(
        access_log.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %d",
        (scope["method"], path, status),
        None,
        None,
        fields,
    )
    access_log.handle(record)


def install_observer(app: FastAPI) -> None:
    """Wrap the whole middleware stack, Starlette's error middleware included, so that a 500 carries the
    request id header too and is counted, and the unexpected error's log line bears the request id."""
    build = app.build_middleware_stack

    def build_observed() -> ASGIApp:
        return RequestObserver(build())

    app.build_middleware_stack = build_observed  # type: ignore[method-assign]
