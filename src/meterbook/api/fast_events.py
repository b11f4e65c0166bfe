"""``POST /v1/events`` on SQLite without the framework's work per request, for the requests that succeed.

Most ingestion requests are alike: a bearer key, a JSON body of valid events, a batch that is applied.
For those, FastAPI's routing, dependency solving and per-request thread hand-offs cost more than the
events themselves. This middleware takes such a request itself: it parses and validates the body with
the route's own model, hands it to the route's group committer (which checks the key inside the
writer's transaction) and answers with the route's own answer.

Everything else goes to the application unchanged, with the body read here replayed: another path or
method, a body that is not JSON or does not validate, a key that is refused, a batch that is refused.
So every error is produced and rendered by the one route that documents it, in the order it checks
things (the key first). A refused batch is thereby applied twice; it changed nothing the first time.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter
from starlette.types import ASGIApp, Receive, Scope, Send

from meterbook.api import metering
from meterbook.api.limits import replaying
from meterbook.api.metering import events_committer, ingested
from meterbook.db import Database
from meterbook.kit import jsontext
from meterbook.usage.schemas import MAX_BATCH, EventIn

__all__ = ["FastEvents", "install"]

PATH = "/v1/events"
_EVENTS = TypeAdapter(Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)])


class FastEvents:
    def __init__(self, app: ASGIApp, database: Database, route: APIRoute) -> None:
        self.app = app
        self.database = database
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        token = _plain_request_token(scope["headers"])
        if token is None:
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        try:
            events = _EVENTS.validate_python(jsontext.loads(body))
            result = await asyncio.wrap_future(events_committer(self.database).submit((token, events)))
        except Exception:  # whatever it was, the route finds it again and answers it in its documented way
            await self.app(scope, replaying(body, receive), send)
            return
        # What the router would have put there: the access log and the metrics name the route by them.
        scope["route"] = self.route
        scope["endpoint"] = self.route.endpoint
        await ingested(result)(scope, receive, send)


def _plain_request_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The bearer token of a request with a JSON body and nothing unusual; None sends it down the route."""
    token = None
    json_body = False
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() != b"bearer" or not credentials.strip() or token is not None:
                return None
            token = credentials.strip().decode("latin-1")
        elif name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
        elif name == b"transfer-encoding":
            return None  # chunked bodies are read by the body-size limit's own rules
    return token if json_body else None


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def install(app: FastAPI, database: Database) -> None:
    """On SQLite (where ingestion is group-committed), take the plain ``POST /v1/events`` requests here."""
    if not database.is_sqlite:
        return
    route = next(
        route
        for route in metering.router.routes
        if isinstance(route, APIRoute) and route.path == PATH and route.methods and "POST" in route.methods
    )
    kwargs: dict[str, Any] = {"database": database, "route": route}
    app.add_middleware(FastEvents, **kwargs)
