"""The request body size limit, enforced before any handler sees the body."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterbook.errors import BadRequest, MeterbookError, PayloadTooLarge

__all__ = ["BodySizeLimit", "replaying"]


class BodySizeLimit:
    """Refuses a body over ``max_bytes`` with 413 in the dialect's shape.

    A declared Content-Length is checked at once. A body without one (chunked) is read here, up to
    the limit, and handed on whole: an error raised while the framework reads the body would be
    reported as an unreadable body, not as one that is too large. It is read only when the application
    first asks for it, so a request refused before its body (a bad key) never has it read at all.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        render: Callable[[str, MeterbookError, int, uuid.UUID], Response],
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(scope, receive, send, BadRequest("The Content-Length header is not a number."))
            elif int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send, self._too_large())
            else:
                await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        body = _ChunkedBody(
            self.max_bytes, receive, send, lambda: self._refuse(scope, receive, send, self._too_large())
        )
        await self.app(scope, body.receive, body.send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than the limit of {self.max_bytes} bytes.")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: MeterbookError) -> None:
        response = self.render(scope["path"], error, error.status, uuid.uuid4())
        await response(scope, receive, send)


class _ChunkedBody:
    """A chunked body, read whole and checked against the limit when the application first asks for it.

    Over the limit, the 413 is sent from here, and the application is told that the client went away;
    whatever it answers then is dropped, since the client has its answer.
    """

    def __init__(self, max_bytes: int, receive: Receive, send: Send, refuse: Callable[[], Awaitable[None]]) -> None:
        self.max_bytes = max_bytes
        self._receive = receive
        self._send = send
        self._refuse = refuse
        self.asked = False
        self.refused = False
        self.started = False

    async def receive(self) -> Message:
        if self.asked:
            return await self._receive()  # after the whole body: the client's next word (a disconnect)
        self.asked = True
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] != "http.request":
                return message  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if not self.started:
                    await self._refuse()
                    self.refused = True
                return {"type": "http.disconnect"}
            chunks.append(chunk)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives a body read already, whole, then whatever the client sends next (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
