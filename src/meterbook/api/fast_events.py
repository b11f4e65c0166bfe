"""``POST /v1/events``: the key is checked before the body is read, and on SQLite the plain requests skip the framework.

**The key first, on either database.** A 10,000-event body costs tens of milliseconds of the one event
loop to parse and validate, and FastAPI reads and parses a body before it solves a route's dependencies,
the key among them. So a client without a valid key could keep the server busy for others (six clients
with a made-up key pushed ``/healthz`` from 1.5 ms to over a second). Here the ``Authorization`` header is
checked before the body is touched: a missing, malformed, unknown, revoked or expired key is answered at
once as the route would answer it, and the body is never read. So is a genuine key that may not report
usage (no ``usage:write``, a platform key, an archived account's key), asked of ``accounts/access.py``
with the route's own action: who may do what stays decided in one place.

A key that passed is remembered (by a hash of it) so that its next requests skip the check: the check is
a read, and for a one-event request it would cost as much as the rest of the request. Remembering grants
nothing: the route, or the writer's transaction on the fast path, checks the key again. A key that the
route or the writer then refuses (401 or 403) is forgotten, so a key revoked or expired after its last
success has its body read at most once more per process.

**The fast path, on SQLite.** Most ingestion requests are alike: a bearer key, a JSON body of valid
events, a batch that is applied. For those, FastAPI's routing, dependency solving and per-request thread
hand-offs cost more than the events themselves. Such a request is taken here: its body is parsed and
validated with the route's own model, handed to the route's group committer (which checks the key again,
inside the writer's transaction, once per group) and answered with the route's own answer.

Everything else goes to the application unchanged, with the body read here replayed: another path or
method, a body that is not JSON or does not validate, a batch that is refused. So every error but the
refused key is produced and rendered by the one route that documents it. A refused batch is thereby
applied twice; it changed nothing the first time.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.api import metering
from meterbook.api.faraday import render_error
from meterbook.api.limits import replaying
from meterbook.api.metering import events_committer, ingested
from meterbook.db import Database
from meterbook.errors import InvalidAuthorization, MeterbookError, MissingApiKey
from meterbook.kit import jsontext
from meterbook.usage.schemas import MAX_BATCH, EventIn

__all__ = ["FastEvents", "install"]

PATH = "/v1/events"
#: What the route does, as ``accounts/access.py`` names it (the route's dependency asks the same).
ACTION = access.REPORT_USAGE
_EVENTS = TypeAdapter(Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)])
#: Keys remembered as recently good, at most (then forgotten all at once; each costs one read to relearn).
_MAX_VOUCHED = 4096


class FastEvents:
    def __init__(self, app: ASGIApp, database: Database, route: APIRoute, fast: bool) -> None:
        self.app = app
        self.database = database
        self.route = route
        self.fast = fast
        #: SHA-256 of keys that passed the check lately: never the keys themselves.
        self.vouched: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            token = _bearer_token(scope["headers"])
            digest = hashlib.sha256(token.encode()).digest()
            if digest not in self.vouched:
                await self._check(token)
                if len(self.vouched) >= _MAX_VOUCHED:
                    self.vouched.clear()
                self.vouched.add(digest)
        except MeterbookError as refusal:
            self._name_the_route(scope)
            await render_error(refusal, refusal.status, uuid.uuid4())(scope, receive, send)
            return
        except Exception:  # the database failed, say: the route meets it again and answers it its documented way
            await self.app(scope, receive, send)
            return
        send = self._forgetting(digest, send)
        if not self.fast or not _plain(scope["headers"]):
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        try:
            events = _EVENTS.validate_python(jsontext.loads(body))
            # The token, not a principal: the writer's transaction decides whether the key may write.
            result = await asyncio.wrap_future(events_committer(self.database).submit((token, events)))
        except Exception:  # whatever it was, the route finds it again and answers it in its documented way
            await self.app(scope, replaying(body, receive), send)
            return
        self._name_the_route(scope)
        await ingested(result)(scope, receive, send)

    async def _check(self, token: str) -> None:
        # As the route reads its key: on SQLite on the loop (a local read costs less than a thread hand-off).
        if self.database.is_sqlite:
            self._verify(token)
        else:
            await run_in_threadpool(self._verify, token)

    def _verify(self, token: str) -> None:
        with self.database.read() as conn:
            principal = accounts.authenticate(conn, token)
        access.authorize(principal, ACTION)

    def _forgetting(self, digest: bytes, send: Send) -> Send:
        """``send``, forgetting the key if the route or the writer refuses it after all."""

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                self.vouched.discard(digest)
            await send(message)

        return watched

    def _name_the_route(self, scope: Scope) -> None:
        # What the router would have put there: the access log and the metrics name the route by them.
        scope["route"] = self.route
        scope["endpoint"] = self.route.endpoint


def _bearer_token(headers: list[tuple[bytes, bytes]]) -> str:
    """The bearer token, refused as the route refuses a header (the first ``Authorization`` one counts)."""
    header = next((value for name, value in headers if name == b"authorization"), None)
    text = header.decode("latin-1").strip() if header is not None else ""
    if not text:
        raise MissingApiKey()
    scheme, _, credentials = text.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise InvalidAuthorization("The Authorization header must be 'Bearer <key>'.")
    return credentials


def _plain(headers: list[tuple[bytes, bytes]]) -> bool:
    """A request with one key and a JSON body and nothing unusual; anything else goes down the route."""
    keys = 0
    json_body = False
    for name, value in headers:
        if name == b"authorization":
            keys += 1
        elif name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
        elif name == b"transfer-encoding":
            return False  # chunked bodies are read by the body-size limit's own rules
    return keys == 1 and json_body


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
    """Check the key of ``POST /v1/events`` before its body; on SQLite (group commit) take the plain ones here."""
    route = next(
        route
        for route in metering.router.routes
        if isinstance(route, APIRoute) and route.path == PATH and route.methods and "POST" in route.methods
    )
    kwargs: dict[str, Any] = {"database": database, "route": route, "fast": database.is_sqlite}
    app.add_middleware(FastEvents, **kwargs)
