"""Logging: one JSON object per line for machines, a readable line for people, the request id on both.

Every record emitted while a request is handled carries that request's id (a context variable set
by :class:`~meterbook.api.system.RequestObserver`), so one grep finds everything a request did.
Nothing here logs a header or a body: callers pass only the fields they choose. A URL is logged only
through :func:`redact_path` and :func:`redact_query`, which take out what looks like a secret or
what a person typed about a customer (uvicorn's own access lines, when they are on, included).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Literal
from urllib.parse import unquote_plus

__all__ = ["REDACTED", "LogFormat", "configure_logging", "redact_path", "redact_query", "request_id_var"]

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


# --- URLs without secrets -------------------------------------------------------------------------

REDACTED = "[redacted]"
#: A query parameter whose name contains one of these carries a secret or what a person typed about a
#: customer (a console search, a name, an e-mail): its value is never logged.
_SENSITIVE_WORDS = (
    "key",
    "token",
    "secret",
    "pass",
    "pwd",
    "auth",
    "session",
    "cookie",
    "credential",
    "signature",
    "mail",
    "search",
    "name",
    "phone",
)
#: Sensitive as a whole word of the name only: ``q`` is a search, but ``quantity`` and ``sequence`` are not.
_SENSITIVE_PARTS = frozenset({"q", "sig", "jwt"})
_NAME_PARTS = re.compile(r"[a-z0-9]+")
#: What gives a value away whatever its parameter: a meterbook key, an e-mail address.
_SENSITIVE_VALUE = re.compile(r"mbk_|[^@\s]@[^@\s]+\.[a-z]", re.IGNORECASE)
_KEY_IN_PATH = re.compile(r"mbk_[^/]*", re.IGNORECASE)


def _decoded(text: str) -> str:
    """Percent-decoded until nothing changes (at most three times): ``mbk%255F`` is a key too."""
    for _ in range(3):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _sensitive_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE_WORDS) or any(
        part in _SENSITIVE_PARTS for part in _NAME_PARTS.findall(lowered)
    )


def redact_query(query: str) -> str:
    """The query string with the value of every sensitive parameter replaced by ``[redacted]``.

    The rest is kept as it came (still percent-encoded), so a line shows which page or filter was asked.
    """
    pairs = []
    for pair in query.split("&"):
        raw_name, equals, raw_value = pair.partition("=")
        name = _decoded(raw_name)
        if _SENSITIVE_VALUE.search(name):
            pairs.append(REDACTED)  # a key or an address sent as a bare parameter: ?mbk_...
        elif equals and (_sensitive_name(name) or _SENSITIVE_VALUE.search(_decoded(raw_value))):
            pairs.append(f"{raw_name}={REDACTED}")
        else:
            pairs.append(pair)
    return "&".join(pairs)


def redact_path(path: str) -> str:
    """The path with any segment that holds a meterbook key replaced (a key pasted into a URL by mistake)."""
    if "mbk" not in path.lower():
        return path
    return _KEY_IN_PATH.sub(REDACTED, path)


class _UvicornAccessRedaction(logging.Filter):
    """uvicorn's access line (off under ``meterbook serve``, on when uvicorn is run by hand) logs the full URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, question, query = args[2].partition("?")
            url = redact_path(path) + (question + redact_query(query) if question else "")
            record.args = (*args[:2], url, *args[3:])
        return True


# --- formatting -----------------------------------------------------------------------------------


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
    handler.addFilter(_UvicornAccessRedaction())
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        # uvicorn installs its own handlers before the app exists; its records are written by ours instead.
        for old in [h for h in logger.handlers if isinstance(h, _MeterbookHandler) or name.startswith("uvicorn")]:
            logger.removeHandler(old)
    logging.getLogger("meterbook").addHandler(handler)
    logging.getLogger("uvicorn").addHandler(handler)
    for name in ("uvicorn.error", "uvicorn.access"):
        # uvicorn's own setup may have turned these off or given them their own level: meterbook's level decides.
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.getLogger("meterbook").setLevel(level.upper())
    logging.getLogger("uvicorn").setLevel(level.upper())
