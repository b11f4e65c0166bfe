"""Logging: one JSON object per line for machines, a readable line for people, the request id on both.

Every record emitted while a request is handled carries that request's id (a context variable set
by :class:`~meterbook.api.system.RequestObserver`), so one grep finds everything a request did.
Nothing here logs a header or a body: callers pass only the fields they choose.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Literal

__all__ = ["LogFormat", "configure_logging", "request_id_var"]

LogFormat = Literal["auto", "json", "console"]

#: The id of the request being handled in this context (``None`` outside requests).
request_id_var: ContextVar[str | None] = ContextVar("meterbook_request_id", default=None)

#: Loggers whose records go through meterbook's handler (uvicorn's own are rerouted here too).
_LOGGERS = ("meterbook", "uvicorn", "uvicorn.error", "uvicorn.access")

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
# uvicorn adds ``color_message``, its message with terminal colour codes: of no use in a log line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


_second: tuple[int, str] = (-1, "")


def _instant(record: logging.LogRecord) -> str:
    """``2026-12-06T00:41:55.790Z``; the text of the second is kept, as a busy server logs many lines in each."""
    global _second
    whole = int(record.created)
    if _second[0] != whole:
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{int((record.created - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"?, ...extra fields, "exception"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _instant(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """``12:00:01 info  meterbook.access GET /v1/events 200 status=200 ... [request id]``"""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        text = f"{moment} {record.levelname.lower():<7} {record.name} {record.getMessage()}"
        fields = _fields(record)
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        request_id = request_id_var.get()
        if request_id is not None:
            text += f" [{request_id}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _MeterbookHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler meterbook installs (configuring again replaces it rather than adding a second one).

    Without an explicit stream it writes to whatever ``sys.stderr`` is at the moment of the record, as
    the standard library's last-resort handler does, so a replaced stderr (a test runner's) is followed.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property
    def stream(self) -> IO[str]:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        self._fixed = value


def configure_logging(level: str = "info", log_format: LogFormat = "auto", stream: IO[str] | None = None) -> None:
    """Send meterbook's and uvicorn's records to ``stream`` (default stderr), as JSON unless it is a terminal.

    Safe to call again (each app built in one process calls it): the previous handler is replaced.
    """
    if log_format == "auto":
        log_format = "console" if (stream or sys.stderr).isatty() else "json"
    handler = _MeterbookHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        # uvicorn installs its own handlers before the app exists; its records are written by ours instead.
        for old in [h for h in logger.handlers if isinstance(h, _MeterbookHandler) or name.startswith("uvicorn")]:
            logger.removeHandler(old)
    logging.getLogger("meterbook").addHandler(handler)
    logging.getLogger("uvicorn").addHandler(handler)
    logging.getLogger("uvicorn.error").propagate = True
    logging.getLogger("uvicorn.access").propagate = True
    logging.getLogger("meterbook").setLevel(level.upper())
    logging.getLogger("uvicorn").setLevel(level.upper())
