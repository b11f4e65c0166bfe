"""Pydantic's validation errors in words a client can act on: what is expected, with an example, never a regex.

FastAPI reports a wrong request as pydantic's error dicts (a type such as ``string_pattern_mismatch``, a
location, pydantic's own sentence). A client needs to know what to send instead, so each kind of error is
said here once, with an example of a good value, and an unknown field of the native API names the field
that was probably meant (``timestamp`` → ``occurred_at``).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from meterbook.errors import FieldError, pydantic_message
from meterbook.kit.fields import MONTH_PATTERN

__all__ = ["field_error"]

#: What a value of a pattern must look like, for each pattern meterbook uses, with an example.
_PATTERNS: Mapping[str, str] = {
    MONTH_PATTERN: "expected a month written YYYY-MM, e.g. 2026-10",
    r"^[A-Z]{3}$": "expected a three-letter ISO-4217 currency code in capitals, e.g. USD",
}

#: The expectation, with an example, for each kind of pydantic error about a value's type or form.
_EXPECTED: Mapping[str, str] = {
    "datetime_parsing": "expected a date and time in RFC 3339, e.g. 2026-10-15T08:30:00Z",
    "datetime_from_date_parsing": "expected a date and time in RFC 3339, e.g. 2026-10-15T08:30:00Z",
    "datetime_type": "expected a date and time in RFC 3339, e.g. 2026-10-15T08:30:00Z",
    "timezone_aware": "expected a date and time with its offset, e.g. 2026-10-15T08:30:00Z",
    "date_parsing": "expected a date written YYYY-MM-DD, e.g. 2026-10-15",
    "date_from_datetime_parsing": "expected a date written YYYY-MM-DD, e.g. 2026-10-15",
    "int_parsing": "expected a whole number, e.g. 42",
    "int_type": "expected a whole number, e.g. 42",
    "int_from_float": "expected a whole number, e.g. 42",
    "decimal_parsing": 'expected a decimal number, e.g. 12.5 or "12.5"',
    "decimal_type": 'expected a decimal number, e.g. 12.5 or "12.5"',
    "float_parsing": "expected a decimal number, e.g. 12.5",
    "uuid_parsing": "expected a UUID, e.g. 0b8f6f9e-4c1a-4b59-9a57-3f2d2c1e8a10",
    "uuid_type": "expected a UUID, e.g. 0b8f6f9e-4c1a-4b59-9a57-3f2d2c1e8a10",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text (a JSON string)",
    "list_type": "expected a JSON array, e.g. [ … ]",
    "dict_type": "expected a JSON object, e.g. { … }",
    "model_type": "expected a JSON object, e.g. { … }",
    "model_attributes_type": "expected a JSON object, e.g. { … }",
}

#: Names clients send for a field meterbook calls otherwise (other billing APIs' words).
_SYNONYMS: Mapping[str, Sequence[str]] = {
    "occurred_at": ("timestamp", "time", "date", "datetime", "event_time", "created_at", "occured_at", "ts"),
    "quantity": ("amount", "value", "count", "units", "qty"),
    "account_id": ("customer_id", "customer", "account", "subject", "billing_id"),
    "product_id": ("product", "meter", "metric", "sku"),
    "feature": ("feature_name", "feature_id"),
    "type": ("kind", "event_type"),
    "id": ("event_id", "idempotency_key", "transaction_id", "payment_id", "grant_id"),
    "unit_price": ("price", "amount_per_unit"),
    "default_limit": ("limit", "max"),
    "limit": ("max", "quota"),
    "expires_at": ("expiry", "expiration", "valid_until"),
}


def _unwrapped(annotation: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            present = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(present) != 1:
                return annotation
            annotation = present[0]
        else:
            return annotation


def _model_at(annotation: Any, location: Sequence[Any]) -> type[BaseModel] | None:
    """The model whose field ``location`` names, walking the body's annotation (lists by index, models by field)."""
    current = _unwrapped(annotation)
    for part in location:
        if isinstance(part, int) and typing.get_origin(current) in (list, tuple, Sequence):
            current = _unwrapped(typing.get_args(current)[0])
        elif isinstance(part, str) and isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = _unwrapped(field.annotation)
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _meant(unknown: str, known: Sequence[str]) -> str | None:
    lowered = unknown.lower()
    for name, synonyms in _SYNONYMS.items():
        if name in known and lowered in synonyms:
            return name
    close = difflib.get_close_matches(lowered, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_field(path: str, name: str, model: type[BaseModel] | None) -> FieldError:
    known = _field_names(model) if model is not None else []
    meant = _meant(name, known)
    message = f"{name!r} is not a field of this request"
    if meant is not None:
        message += f"; did you mean {meant!r}?"
        suggestion = f"Send the value as {meant!r} instead of {name!r}."
    else:
        suggestion = f"Remove {name!r}." + (f" The fields are: {', '.join(known)}." if known else "")
    return FieldError(path, message, "extra_forbidden", suggestion)


def _expected(error: Mapping[str, Any]) -> str | None:
    kind = str(error.get("type", ""))
    if kind == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        return _PATTERNS.get(pattern, "does not have the expected form")
    if kind == "literal_error":
        return f"expected one of {error.get('ctx', {}).get('expected', 'the documented values')}"
    return _EXPECTED.get(kind)


def field_error(error: Mapping[str, Any], body: Any = None) -> FieldError:
    """One pydantic error as a :class:`FieldError`; ``body`` is the route's body annotation, to name fields meant."""
    location = list(error.get("loc", ()))
    path = ".".join(str(part) for part in location) or "body"
    kind = str(error.get("type", "invalid"))
    if kind == "extra_forbidden" and location and location[0] == "body":
        return _unknown_field(path, str(location[-1]), _model_at(body, location[1:-1]))
    if kind == "missing":
        name = str(location[-1]) if location else "body"
        return FieldError(path, "is required", kind, f"Add {name!r} to the request and send it again.")
    expected = _expected(error)
    if expected is None:
        return FieldError(path, pydantic_message(error), kind)
    given = error.get("input")
    shown = f" (got {given!r})" if isinstance(given, str | int | float) and len(repr(given)) <= 60 else ""
    return FieldError(path, f"{expected}{shown}", kind, f"Send {path} as {expected.removeprefix('expected ')}.")
