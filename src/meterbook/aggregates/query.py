"""Which monthly aggregates a search wants: a small boolean expression over an aggregate's account and month.

The tree is independent of any dialect's filter syntax (the Talkdesk dialect parses its ``filter`` into
it, ``api/talkdesk_filter.py``); the repository translates it into SQL. A :class:`Comparison` can only
hold a value that makes sense for its field, so every tree that exists can be run.

    Expr = Comparison(field, op, value) | And(left, right) | Or(left, right) | Not(inner)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, get_args

__all__ = [
    "FIELDS",
    "OPERATORS",
    "SORT_FIELDS",
    "And",
    "Comparison",
    "Expr",
    "Field",
    "Not",
    "Operator",
    "Or",
    "SortField",
    "account_ids",
    "comparisons",
    "value_problem",
]

Field = Literal["account_id", "month"]
Operator = Literal["eq", "ne", "gt", "ge", "lt", "le"]
#: What a search may be ordered by (the aggregate's id breaks ties).
SortField = Literal["id", "month", "account_id"]

FIELDS: Final[tuple[Field, ...]] = get_args(Field)
OPERATORS: Final[tuple[Operator, ...]] = get_args(Operator)
SORT_FIELDS: Final[tuple[SortField, ...]] = get_args(SortField)

_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def value_problem(field: Field, value: str) -> str | None:
    """What is wrong with ``value`` as a value of ``field``, or ``None`` when it is fine."""
    if field == "month" and not _MONTH.fullmatch(value):
        return "is not a month written YYYY-MM (e.g. '2024-01')"
    if field == "account_id" and not _UUID.fullmatch(value):
        return "is not an account id (a UUID such as '123e4567-e89b-12d3-a456-426614174000')"
    return None


@dataclass(frozen=True)
class Comparison:
    """``field op value``: months compare as ``YYYY-MM`` text, account ids as UUIDs."""

    field: Field
    op: Operator
    value: str

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"unknown field {self.field!r}")
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}")
        problem = value_problem(self.field, self.value)
        if problem is not None:
            raise ValueError(f"{self.value!r} {problem}")

    @property
    def account_id(self) -> uuid.UUID | None:
        """The account the comparison names, if its field is ``account_id``."""
        return uuid.UUID(self.value) if self.field == "account_id" else None


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    inner: Expr


Expr: TypeAlias = Comparison | And | Or | Not


def comparisons(expr: Expr) -> Iterator[Comparison]:
    """Every comparison in the tree, left to right."""
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Comparison):
            yield node
        elif isinstance(node, Not):
            stack.append(node.inner)
        else:
            stack.extend((node.right, node.left))


def account_ids(expr: Expr) -> set[uuid.UUID]:
    """Every account the tree names, whatever it compares it with."""
    return {named for comparison in comparisons(expr) if (named := comparison.account_id) is not None}
