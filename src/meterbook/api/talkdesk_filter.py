"""The Talkdesk ``filter`` grammar, parsed into the domain's query tree (``aggregates/query.py``).

    filter     := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | primary
    primary    := "(" or ")" | comparison
    comparison := field operator value
    field      := "account_id" | "month"
    operator   := "eq" | "ne" | "gt" | "ge" | "lt" | "le"
    value      := "'" (any character but "'", or "''" for one quote)* "'"

``not`` binds tighter than ``and``, which binds tighter than ``or``; ``and`` and ``or`` group from the
left. Keywords, field names and operators are case-insensitive; values are not. A month is
``YYYY-MM``, an account id a UUID. Every error names the offending token and its position, counted
in characters from 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from meterbook.aggregates.query import (
    FIELDS,
    OPERATORS,
    And,
    Comparison,
    Expr,
    Field,
    Not,
    Operator,
    Or,
    value_problem,
)

__all__ = ["MAX_DEPTH", "FilterError", "Token", "parse", "quote", "render", "tokenize"]

#: How deeply parentheses and ``not`` may nest (deeper is refused, not a crash).
MAX_DEPTH: Final = 32

TokenKind = Literal["(", ")", "value", "word", "symbol", "end"]

_WORD_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:")
_SPACES: Final = frozenset(" \t\r\n")
_FIELDS: Final[dict[str, Field]] = {field: field for field in FIELDS}
_OPERATORS: Final[dict[str, Operator]] = {operator: operator for operator in OPERATORS}
_SHOWN_LENGTH: Final = 40
_FIELD_EXPECTED: Final = "a field (account_id or month), 'not' or '('"
_OPERATOR_EXPECTED: Final = "a comparison operator (eq, ne, gt, ge, lt or le)"
_VALUE_EXPECTED: Final = "a value in single quotes, e.g. '2024-01'"


class FilterError(ValueError):
    """The filter cannot be read; ``message`` says what and where (``position`` counts characters from 1)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    #: The token as written (a value with its quotes).
    text: str
    #: Where it starts, counting characters from 1.
    position: int
    #: A value's content, its doubled quotes undone; the text otherwise.
    value: str

    def shown(self) -> str:
        """The token as an error message quotes it."""
        return "end of filter" if self.kind == "end" else _shown(self.text)


def _shown(text: str) -> str:
    """Quoted (a value already is), and cut short: a message names a token, it does not repeat the filter."""
    if len(text) > _SHOWN_LENGTH:
        text = text[: _SHOWN_LENGTH - 1] + "…"
    return text if text.startswith("'") else f"'{text}'"


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token; only an unterminated value is an error here."""
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        start = index
        if char in _SPACES:
            index += 1
            continue
        if char in "()":
            kind: TokenKind = "(" if char == "(" else ")"
            tokens.append(Token(kind, char, start + 1, char))
            index += 1
        elif char == "'":
            index, value = _value(text, start)
            tokens.append(Token("value", text[start:index], start + 1, value))
        elif char in _WORD_CHARACTERS:
            while index < len(text) and text[index] in _WORD_CHARACTERS:
                index += 1
            tokens.append(Token("word", text[start:index], start + 1, text[start:index]))
        else:
            tokens.append(Token("symbol", char, start + 1, char))
            index += 1
    tokens.append(Token("end", "", len(text) + 1, ""))
    return tokens


def _value(text: str, start: int) -> tuple[int, str]:
    """Reads the quoted value opening at ``start``: where it ends, and its content."""
    parts: list[str] = []
    index = start + 1
    while True:
        close = text.find("'", index)
        if close < 0:
            raise FilterError(
                f"unterminated value {_shown(text[start:])} at position {start + 1}; "
                "expected a closing single quote (write '' for a quote inside a value)",
                start + 1,
            )
        parts.append(text[index:close])
        if text.startswith("''", close):
            parts.append("'")
            index = close + 2
        else:
            return close + 1, "".join(parts)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def at(self, kind: TokenKind) -> bool:
        return self.current.kind == kind

    def keyword(self, *words: str) -> bool:
        token = self.current
        return token.kind == "word" and token.text.lower() in words

    def advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def unexpected(self, expected: str) -> FilterError:
        token = self.current
        return FilterError(
            f"unexpected {token.shown()} at position {token.position}; expected {expected}", token.position
        )

    def parse(self) -> Expr:
        expr = self.disjunction(0)
        if not self.at("end"):
            raise self.unexpected("'and', 'or' or the end of the filter")
        return expr

    def disjunction(self, depth: int) -> Expr:
        expr = self.conjunction(depth)
        while self.keyword("or"):
            self.advance()
            expr = Or(expr, self.conjunction(depth))
        return expr

    def conjunction(self, depth: int) -> Expr:
        expr = self.unary(depth)
        while self.keyword("and"):
            self.advance()
            expr = And(expr, self.unary(depth))
        return expr

    def unary(self, depth: int) -> Expr:
        if self.keyword("not"):
            self.deeper(depth)
            self.advance()
            return Not(self.unary(depth + 1))
        return self.primary(depth)

    def primary(self, depth: int) -> Expr:
        if self.at("("):
            self.deeper(depth)
            self.advance()
            expr = self.disjunction(depth + 1)
            if not self.at(")"):
                raise self.unexpected("'and', 'or' or ')'")
            self.advance()
            return expr
        return self.comparison()

    def deeper(self, depth: int) -> None:
        if depth >= MAX_DEPTH:
            token = self.current
            raise FilterError(
                f"{token.shown()} at position {token.position} nests too deeply; "
                f"parentheses and 'not' nest at most {MAX_DEPTH} levels",
                token.position,
            )

    def comparison(self) -> Comparison:
        field = _FIELDS.get(self.current.text.lower()) if self.current.kind == "word" else None
        if field is None:
            raise self.unexpected(_FIELD_EXPECTED)
        self.advance()
        operator = _OPERATORS.get(self.current.text.lower()) if self.current.kind == "word" else None
        if operator is None:
            raise self.unexpected(_OPERATOR_EXPECTED)
        self.advance()
        if not self.at("value"):
            raise self.unexpected(_VALUE_EXPECTED)
        token = self.advance()
        problem = value_problem(field, token.value)
        if problem is not None:
            raise FilterError(f"{token.shown()} at position {token.position} {problem}", token.position)
        return Comparison(field, operator, token.value)


def parse(text: str) -> Expr:
    """The query tree ``text`` stands for; :class:`FilterError` if it is not a well-formed filter."""
    return _Parser(text).parse()


def quote(value: str) -> str:
    """A value as the grammar writes it: in single quotes, each quote inside doubled."""
    return "'" + value.replace("'", "''") + "'"


_PRECEDENCE: Final = {Or: 1, And: 2, Not: 3, Comparison: 4}


def render(expr: Expr) -> str:
    """The filter text for ``expr``, with only the parentheses it needs: ``parse(render(e)) == e``."""
    if isinstance(expr, Comparison):
        return f"{expr.field} {expr.op} {quote(expr.value)}"
    if isinstance(expr, Not):
        return f"not {_operand(expr.inner, _PRECEDENCE[Not])}"
    keyword = "and" if isinstance(expr, And) else "or"
    precedence = _PRECEDENCE[type(expr)]
    # Both group from the left, so a right operand of the same kind keeps its parentheses.
    return f"{_operand(expr.left, precedence)} {keyword} {_operand(expr.right, precedence + 1)}"


def _operand(expr: Expr, least: int) -> str:
    text = render(expr)
    return text if _PRECEDENCE[type(expr)] >= least else f"({text})"
