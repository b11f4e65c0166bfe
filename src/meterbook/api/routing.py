"""What every dialect's routes share: exact JSON in both directions, and the transaction boundary."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import Connection
from starlette.responses import JSONResponse

from meterbook.db import Database
from meterbook.errors import BadRequest
from meterbook.kit import jsontext
from meterbook.kit.fields import JsonNumber

__all__ = ["DialectRoute", "ExactJSONResponse", "JsonNumber", "database", "reading", "respond", "writing"]


class ExactJSONResponse(JSONResponse):
    """JSON whose numbers are exact decimals, never floats."""

    def render(self, content: Any) -> bytes:
        return jsontext.dumps(content)


def respond(body: BaseModel | list[BaseModel] | dict[str, Any], status_code: int = 200) -> ExactJSONResponse:
    if isinstance(body, BaseModel):
        content: Any = body.model_dump(mode="python")
    elif isinstance(body, list):
        content = [item.model_dump(mode="python") for item in body]
    else:
        content = body
    return ExactJSONResponse(content, status_code=status_code)


class _ExactJSONRequest(Request):
    """Parses JSON bodies with exact decimals and refuses NaN, Infinity and duplicate keys."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = jsontext.loads(await self.body())
        return self._json


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _is_json(content_type: str) -> bool:
    media_type = _media_type(content_type)
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


#: What the published Faraday client (``@fdy/faraday-js``) sends for a JSON merge patch, in place of RFC 7396's
#: ``application/merge-patch+json``; accepted on PATCH only, as that type.
_FARADAY_MERGE_PATCH = "application/json+merge-patch"


def _as_merge_patch(request: Request) -> _ExactJSONRequest:
    """The request with its ``Content-Type`` read as ``application/merge-patch+json`` (so that it is parsed as JSON)."""
    headers = [
        (name, b"application/merge-patch+json" if name == b"content-type" else value)
        for name, value in request.scope["headers"]
    ]
    return _ExactJSONRequest({**request.scope, "headers": headers}, request.receive)


class DialectRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def exact_json_handler(request: Request) -> Response:
            exact = _ExactJSONRequest(request.scope, request.receive)
            content_type = exact.headers.get("content-type")
            if takes_body and exact.method == "PATCH" and _media_type(content_type or "") == _FARADAY_MERGE_PATCH:
                exact = _as_merge_patch(exact)
                content_type = exact.headers.get("content-type")
            # FastAPI would hand any other media type to validation as raw bytes, and the client would
            # read "Input should be a valid list" instead of what it did wrong. No header: parsed as JSON.
            if takes_body and content_type is not None and not _is_json(content_type) and await exact.body():
                raise BadRequest(f"The body must be JSON, sent as Content-Type: application/json (not {content_type}).")
            return await handler(exact)

        return exact_json_handler


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


@contextmanager
def writing(request: Request) -> Iterator[Connection]:
    """The request's one write transaction: committed before the reply is rendered, or rolled back whole."""
    with database(request).write() as conn:
        yield conn


@contextmanager
def reading(request: Request) -> Iterator[Connection]:
    with database(request).read() as conn:
        yield conn
