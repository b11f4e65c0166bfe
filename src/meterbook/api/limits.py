"""The request body size limit, enforced before any handler reads the body."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterbook.errors import BadRequest, MeterbookError, PayloadTooLarge

__all__ = ["BodySizeLimit"]


class BodySizeLimit:
    """Refuses a body over ``max_bytes`` with 413: at once when Content-Length says so, else as it streams in."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        render: Callable[[str, MeterbookError, int, uuid.UUID], Response],
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render = render

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than the limit of {self.max_bytes} bytes.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        error: MeterbookError | None = None
        if declared is not None:
            if not declared.isdigit():
                error = BadRequest("The Content-Length header is not a number.")
            elif int(declared) > self.max_bytes:
                error = self._too_large()
        if error is not None:
            response = self.render(scope["path"], error, error.status, uuid.uuid4())
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)
