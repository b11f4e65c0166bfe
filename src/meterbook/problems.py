"""What went wrong, in words a person at a terminal can act on: for the CLI, which must never print a traceback.

The CLI runs every command through :func:`explain`, which turns the errors a person can cause by how they
configured or called meterbook (a setting of the wrong shape, a database that cannot be reached, a request
the services refuse) into one message that says what is wrong and what to do. Anything else is a bug, and is
reported as one, with where to find the details, still without a traceback on the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from meterbook.config import Settings
from meterbook.errors import MeterbookError, ValidationFailed

__all__ = ["explain", "safe_url"]

#: An example of a good value for each setting, shown when one is wrong.
_EXAMPLES: Mapping[str, str] = {
    "database_url": "sqlite:///meterbook.db or postgresql+psycopg://meterbook:secret@localhost:5432/meterbook",
    "host": "127.0.0.1",
    "port": "8000",
    "public_url": "https://billing.example.com",
    "max_body_bytes": "10485760",
    "sqlite_synchronous": "FULL",
    "pool_size": "10",
    "log_level": "info",
    "log_format": "auto",
    "migrate_on_start": "true",
    "session_secret": "at least 32 random characters: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
    "metrics_token": "a random text of at least 16 characters",
}


def safe_url(url: str) -> str:
    """A database URL fit to print: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def _settings_problem(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]) if item.get("loc") else ""
        variable = f"METERBOOK_{name.upper()}" if name else "a METERBOOK_ setting"
        given = item.get("input")
        shown = "" if given is None or name in ("session_secret", "metrics_token") else f" (it is {given!r})"
        message = str(item.get("msg", "is not valid")).removeprefix("Value error, ")
        example = _EXAMPLES.get(name)
        lines.append(f"{variable} is not valid{shown}: {message}." + (f" For example: {example}" if example else ""))
    return "\n".join(lines)


def _database_problem(error: SQLAlchemyError, url: str) -> str:
    shown = safe_url(url)
    text = str(getattr(error, "orig", None) or error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, NoSuchModuleError | ArgumentError):
        return (
            f"METERBOOK_DATABASE_URL is not a database URL meterbook can use ({shown}): {text}. "
            f"For example: {_EXAMPLES['database_url']}"
        )
    if url.startswith("sqlite"):
        path = make_url(url).database or ""
        return (
            f"Cannot open the SQLite database {path!r}: {text}. Check that its folder exists and is writable, "
            "or set METERBOOK_DATABASE_URL to another file (e.g. sqlite:///meterbook.db)."
        )
    if "password authentication failed" in text or "authentication" in text.lower():
        advice = "check the user name and password in METERBOOK_DATABASE_URL."
    elif "does not exist" in text:
        advice = "create the database (createdb) or name an existing one in METERBOOK_DATABASE_URL."
    else:
        advice = "is PostgreSQL running there, and are the host and port in METERBOOK_DATABASE_URL right?"
    return f"Cannot reach the database at {shown}: {text}. {advice[0].upper()}{advice[1:]}"


def _refusal(error: MeterbookError) -> str:
    """A service's refusal, the HTTP API's field paths (``body.month``) named as the CLI's options (``--month``)."""
    if isinstance(error, ValidationFailed):
        parts = []
        for field in error.errors:
            name = field.path.split(".", 1)[1] if "." in field.path else field.path
            parts.append(f"--{name.replace('_', '-')}: {field.message}")
        return "; ".join(parts)
    return error.message


def explain(error: BaseException) -> str | None:
    """The message for an error a person caused, or None for one that is a bug."""
    if isinstance(error, ValidationError) and error.title == Settings.__name__:
        return _settings_problem(error)
    if isinstance(error, OperationalError | NoSuchModuleError | ArgumentError):
        return _database_problem(error, _configured_url())
    if isinstance(error, MeterbookError):
        return _refusal(error)
    return None


def _configured_url() -> str:
    try:
        return Settings().database_url
    except ValidationError:
        return "(unreadable METERBOOK_DATABASE_URL)"
