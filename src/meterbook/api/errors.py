"""Turning every failure into the reply of the dialect whose path was called.

Each dialect supplies a renderer for :class:`~meterbook.errors.MeterbookError`; FastAPI's own
failures (an unreadable body, a wrong parameter, an unknown route) are first translated into the
domain tree, so a dialect renders one kind of thing. An unexpected exception is logged with an id
and answered without any detail of it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from meterbook.api.explain import field_error
from meterbook.errors import (
    BadRequest,
    FieldError,
    InvalidInput,
    MeterbookError,
    NotFound,
    ValidationFailed,
)

__all__ = ["ErrorRenderer", "flattened_routes", "install_error_handlers", "renderer_for"]

log = logging.getLogger("meterbook.api")

#: Renders one failure: the error (``None`` for an unexpected one), its HTTP status and a fresh error id.
ErrorRenderer = Callable[[MeterbookError | None, int, uuid.UUID], Response]


class MethodNotAllowed(InvalidInput):
    status = 405


def renderer_for(path: str, renderers: Sequence[tuple[str, ErrorRenderer]], default: ErrorRenderer) -> ErrorRenderer:
    """The renderer of the first prefix that matches: a whole path segment (``/v1beta1``), or, for a prefix
    that ends in ``.``, any path that starts with it (``/raystack.frontier.v1beta1.``: every Connect service)."""
    for prefix, renderer in renderers:
        if path == prefix or path.startswith(prefix if prefix.endswith(".") else prefix + "/"):
            return renderer
    return default


def from_validation_errors(errors: Sequence[Any], body: Any = None) -> InvalidInput:
    """FastAPI's request validation errors, in the domain's words; ``body`` is the route's body annotation."""
    for error in errors:
        if error.get("type") == "json_invalid":
            detail = error.get("ctx", {}).get("error", "")
            return BadRequest(f"The request body is not valid JSON: {detail}.")
    field_errors = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "missing" and location == ["body"]:
            field_errors.append(FieldError("body", "a JSON body is required", "missing"))
        elif error.get("type") in {"model_attributes_type", "dict_type"} and location == ["body"]:
            field_errors.append(
                FieldError("body", "the body must be a JSON object sent as application/json", str(error["type"]))
            )
        else:
            field_errors.append(field_error(error, body))
    return ValidationFailed(field_errors)


def _body_annotation(request: Request) -> Any:
    """The type the matched route reads its body as (``list[EventIn]``...), or None."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    return None if body_field is None else body_field.field_info.annotation


def flattened_routes(routes: Iterable[Any]) -> Iterator[Any]:
    # FastAPI keeps an included router's routes behind a wrapper that holds the router itself.
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from flattened_routes(included.routes) if included is not None else (route,)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in flattened_routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_error_handlers(
    app: FastAPI, renderers: Sequence[tuple[str, ErrorRenderer]], default: ErrorRenderer
) -> None:
    def render(request: Request, error: MeterbookError | None, status: int) -> Response:
        error_id = uuid.uuid4()
        if error is None:
            log.error("unexpected error %s on %s %s", error_id, request.method, request.url.path, exc_info=True)
        return renderer_for(request.url.path, renderers, default)(error, status, error_id)

    @app.exception_handler(MeterbookError)
    async def _domain(request: Request, error: MeterbookError) -> Response:
        return render(request, error, error.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> Response:
        translated = from_validation_errors(error.errors(), _body_annotation(request))
        return render(request, translated, translated.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        translated: MeterbookError
        if error.status_code == 404:
            translated = NotFound(f"No route for {request.method} {request.url.path}.")
        elif error.status_code == 405:
            translated = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
        else:
            translated = BadRequest(str(error.detail))
        response = render(request, translated, error.status_code)
        response.headers.update(error.headers or {})
        if error.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _error: Exception) -> Response:
        return render(request, None, 500)
