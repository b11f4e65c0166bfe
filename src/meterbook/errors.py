"""Every failure meterbook knows, in one tree.

Services raise these; each HTTP dialect renders them in its own documented shape (see ``api/``).
The HTTP status here is the default a dialect uses; a dialect may choose its own.

    MeterbookError
    ├── AuthenticationError            401  the caller could not be identified
    │   ├── MissingApiKey                   no credentials at all
    │   ├── InvalidAuthorization            a header that is not ``Bearer <token>``, or an unknown or revoked key
    │   ├── MalformedApiKey                 a token that does not have the shape of a meterbook key
    │   ├── ExpiredApiKey                   a key past its ``expires_at``
    │   └── SessionEnded                    a console session signed out of, or past its end
    ├── Forbidden                      403  the key is known but lacks the scope (or is a platform key)
    ├── LimitExceeded                  403  a feature limit would be exceeded
    ├── NotFound                       404  unknown, or outside the key's reach (the two look the same)
    ├── Conflict                       409  the request contradicts what is stored (an id reused, an archived account)
    ├── InvalidInput                   400  the request itself is wrong
    │   ├── BadRequest                      the body could not be read (not JSON, wrong content type)
    │   ├── ValidationFailed                one or more fields are wrong; carries a :class:`FieldError` each
    │   └── InsufficientCredits             a debit would take a balance below the account's credit_min
    └── PayloadTooLarge                413  the body is over the configured limit
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "ExpiredApiKey",
    "FieldError",
    "Forbidden",
    "InsufficientCredits",
    "InvalidAuthorization",
    "InvalidInput",
    "LimitExceeded",
    "MalformedApiKey",
    "MeterbookError",
    "MissingApiKey",
    "NotFound",
    "PayloadTooLarge",
    "SessionEnded",
    "ValidationFailed",
    "field_errors_from_pydantic",
    "pydantic_message",
]


class MeterbookError(Exception):
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationError(MeterbookError):
    status = 401


class MissingApiKey(AuthenticationError):
    def __init__(self, message: str = "No API key was supplied: send 'Authorization: Bearer <key>'.") -> None:
        super().__init__(message)


class InvalidAuthorization(AuthenticationError):
    pass


class MalformedApiKey(AuthenticationError):
    def __init__(self, message: str = "The API key is not a meterbook key (expected mbk_<id>_<secret>).") -> None:
        super().__init__(message)


class ExpiredApiKey(AuthenticationError):
    def __init__(self, message: str = "The API key has expired.") -> None:
        super().__init__(message)


class SessionEnded(AuthenticationError):
    def __init__(self, message: str = "The console session has ended: sign in again.") -> None:
        super().__init__(message)


class Forbidden(MeterbookError):
    status = 403


class LimitExceeded(MeterbookError):
    status = 403


class NotFound(MeterbookError):
    status = 404


class Conflict(MeterbookError):
    status = 409


class InvalidInput(MeterbookError):
    status = 400


class BadRequest(InvalidInput):
    pass


@dataclass(frozen=True)
class FieldError:
    """One wrong field: where (a dotted path such as ``body.commitment.monthly_cost``), what, and the kind."""

    path: str
    message: str
    error_type: str = "invalid"
    suggestion: str = ""


class ValidationFailed(InvalidInput):
    def __init__(self, errors: Sequence[FieldError], message: str | None = None) -> None:
        self.errors = list(errors)
        summary = "; ".join(f"{e.path}: {e.message}" for e in self.errors)
        super().__init__(message or f"The request failed validation: {summary}")

    @classmethod
    def field(cls, path: str, message: str, error_type: str = "invalid", suggestion: str = "") -> ValidationFailed:
        return cls([FieldError(path, message, error_type, suggestion)])


class InsufficientCredits(InvalidInput):
    pass


class PayloadTooLarge(MeterbookError):
    status = 413


def _dotted(location: Iterable[Any]) -> str:
    return ".".join(str(part) for part in location)


def pydantic_message(error: Mapping[str, Any]) -> str:
    """Pydantic's message without its "Value error, " preamble, which says nothing to a client."""
    return str(error.get("msg", "is invalid")).removeprefix("Value error, ")


def field_errors_from_pydantic(errors: Iterable[Mapping[str, Any]], prefix: Sequence[str] = ()) -> list[FieldError]:
    """Turn pydantic's error dicts into :class:`FieldError`s whose path names the field as the client wrote it."""
    return [
        FieldError(
            path=_dotted([*prefix, *error.get("loc", ())]) or "body",
            message=pydantic_message(error),
            error_type=str(error.get("type", "invalid")),
        )
        for error in errors
    ]
