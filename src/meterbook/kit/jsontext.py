"""JSON in and out without binary floating point.

Incoming numbers with a fraction become ``Decimal``; ``NaN``/``Infinity`` are refused; outgoing
``Decimal`` values are written as their exact text, so ``0.3`` is never ``0.30000000000000004``.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import uuid
from decimal import Decimal
from typing import Any

import simplejson

from meterbook.kit.time import format_rfc3339

__all__ = ["JSONDecodeError", "dumps", "loads"]

JSONDecodeError = json.JSONDecodeError


# A \u0000 escape that is not itself escaped (an odd run of backslashes before "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class _PlainDecimal(Decimal):
    """Writes itself without an exponent: ``0.000000001``, never ``1E-9``; ``100``, never ``1E+2``."""

    def __str__(self) -> str:
        return format(self, "f")


def _plain_numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _PlainDecimal(value)
    if isinstance(value, dict):
        return {key: _plain_numbers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_numbers(item) for item in value]
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r} in JSON object")
            seen.add(key)
    return obj


def loads(text: bytes | str) -> Any:
    """Parse JSON with exact decimals; duplicate keys and NaN/Infinity are errors, not guesses.

    Every failure is a :class:`json.JSONDecodeError` (a ``ValueError``) that says what is wrong.
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if "\\u0000" in text and _NUL_ESCAPE.search(text):
            # PostgreSQL cannot store NUL in text; refusing it here keeps both databases alike.
            raise JSONDecodeError("NUL characters (\\u0000) are not accepted", text, text.index("\\u0000"))
        return simplejson.loads(
            text,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_refuse_duplicates,
        )
    except simplejson.JSONDecodeError as error:
        raise JSONDecodeError(error.msg, error.doc, error.pos) from None
    except JSONDecodeError:
        raise
    except UnicodeDecodeError as error:
        raise JSONDecodeError(f"the body is not UTF-8 ({error.reason})", "", error.start) from None
    except RecursionError:
        raise JSONDecodeError("the body nests too deeply", "", 0) from None
    except ValueError as error:
        raise JSONDecodeError(str(error), "", 0) from None


def _encode_other(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_rfc3339(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return simplejson.dumps(
        _plain_numbers(value),
        use_decimal=True,
        default=_encode_other,
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    ).encode("utf-8")
