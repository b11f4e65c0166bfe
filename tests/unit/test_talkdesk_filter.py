"""The Talkdesk ``filter`` grammar alone (``api/talkdesk_filter.py``): tokens, trees, precedence, errors.

The parser builds the domain's query tree (``aggregates/query.py``); what the tree selects is tested
through the API in ``tests/api/test_talkdesk.py``.
"""

from __future__ import annotations

import contextlib
import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbook.aggregates.query import And, Comparison, Expr, Not, Or, account_ids, comparisons, value_problem
from meterbook.api.talkdesk_filter import MAX_DEPTH, FilterError, parse, quote, render, tokenize

A = "123e4567-e89b-12d3-a456-426614174000"
B = "00000000-0000-4000-8000-0000000000ff"


def month(value: str) -> Comparison:
    return Comparison("month", "eq", value)


def account(value: str = A, op: str = "eq") -> Comparison:
    return Comparison("account_id", op, value)  # type: ignore[arg-type]


M1, M2, M3 = month("2024-01"), month("2024-02"), month("2024-03")


def error_of(text: str) -> FilterError:
    with pytest.raises(FilterError) as caught:
        parse(text)
    return caught.value


# --- tokens ----------------------------------------------------------------------------------------


class TestTokenize:
    def test_kinds_and_positions_count_from_one(self):
        tokens = tokenize("(month eq '2024-01')")
        assert [(t.kind, t.text, t.position) for t in tokens] == [
            ("(", "(", 1),
            ("word", "month", 2),
            ("word", "eq", 8),
            ("value", "'2024-01'", 11),
            (")", ")", 20),
            ("end", "", 21),
        ]

    def test_a_doubled_quote_is_one_quote_inside_a_value(self):
        (token, end) = tokenize("'it''s'")
        assert token.kind == "value"
        assert token.value == "it's"
        assert token.text == "'it''s'"
        assert end.kind == "end"

    def test_a_value_of_only_a_quote_and_an_empty_value(self):
        assert [t.value for t in tokenize("'''' ''")[:-1]] == ["'", ""]

    def test_a_value_touching_a_word_is_its_own_token(self):
        assert [t.text for t in tokenize("month eq'2024-01'and")] == ["month", "eq", "'2024-01'", "and", ""]

    def test_other_characters_are_single_symbols(self):
        assert [(t.kind, t.text) for t in tokenize("month>=")[:-1]] == [
            ("word", "month"),
            ("symbol", ">"),
            ("symbol", "="),
        ]

    def test_spaces_tabs_and_newlines_separate_tokens(self):
        assert [t.text for t in tokenize(" month\teq\r\n'2024-01' ")[:-1]] == ["month", "eq", "'2024-01'"]

    def test_an_unterminated_value_is_an_error_naming_where_it_starts(self):
        with pytest.raises(FilterError) as caught:
            tokenize("month eq '2024-01")
        assert caught.value.position == 10
        assert "unterminated value '2024-01 at position 10" in caught.value.message

    @given(st.text())
    def test_any_text_quoted_reads_back_as_one_value(self, text):
        tokens = tokenize(quote(text))
        assert [(t.kind, t.value) for t in tokens] == [("value", text), ("end", "")]


# --- trees -----------------------------------------------------------------------------------------


class TestParse:
    @pytest.mark.parametrize("op", ["eq", "ne", "gt", "ge", "lt", "le"])
    def test_every_operator(self, op):
        assert parse(f"month {op} '2024-01'") == Comparison("month", op, "2024-01")
        assert parse(f"account_id {op} '{A}'") == Comparison("account_id", op, A)

    def test_the_contracts_example(self):
        text = f"(month ge '2024-01' and month le '2024-03') and (account_id eq '{A}' or account_id eq '{B}')"
        assert parse(text) == And(
            And(Comparison("month", "ge", "2024-01"), Comparison("month", "le", "2024-03")),
            Or(account(A), account(B)),
        )

    def test_and_binds_tighter_than_or(self):
        assert parse("month eq '2024-01' or month eq '2024-02' and month eq '2024-03'") == Or(M1, And(M2, M3))
        assert parse("month eq '2024-01' and month eq '2024-02' or month eq '2024-03'") == Or(And(M1, M2), M3)

    def test_not_binds_tighter_than_and(self):
        assert parse("not month eq '2024-01' and month eq '2024-02'") == And(Not(M1), M2)
        assert parse("not month eq '2024-01' or month eq '2024-02'") == Or(Not(M1), M2)

    def test_parentheses_override_precedence(self):
        assert parse("(month eq '2024-01' or month eq '2024-02') and month eq '2024-03'") == And(Or(M1, M2), M3)
        assert parse("not (month eq '2024-01' and month eq '2024-02')") == Not(And(M1, M2))

    def test_and_and_or_group_from_the_left(self):
        assert parse("month eq '2024-01' and month eq '2024-02' and month eq '2024-03'") == And(And(M1, M2), M3)
        assert parse("month eq '2024-01' or month eq '2024-02' or month eq '2024-03'") == Or(Or(M1, M2), M3)
        assert parse("month eq '2024-01' and (month eq '2024-02' and month eq '2024-03')") == And(M1, And(M2, M3))

    def test_not_may_repeat(self):
        assert parse("not not month eq '2024-01'") == Not(Not(M1))

    def test_redundant_parentheses_leave_no_trace(self):
        assert parse("((month eq '2024-01'))") == M1
        assert parse("(not (month eq '2024-01'))") == Not(M1)

    def test_keywords_fields_and_operators_are_case_insensitive(self):
        expected = Or(And(M1, Not(account(A, "ne"))), M2)
        text = f"MONTH Eq '2024-01' AnD NOT Account_ID NE '{A}' oR month EQ '2024-02'"
        assert parse(text) == expected

    def test_values_keep_their_case(self):
        assert parse(f"account_id eq '{A.upper()}'") == account(A.upper())

    def test_spaces_are_optional_around_parentheses_and_values(self):
        assert parse("(month eq'2024-01')or(not(month eq'2024-02'))") == Or(M1, Not(M2))

    def test_nesting_up_to_the_limit_is_accepted(self):
        depth = MAX_DEPTH
        assert parse("(" * depth + "month eq '2024-01'" + ")" * depth) == M1
        expected: Expr = M1
        for _ in range(depth):
            expected = Not(expected)
        assert parse("not " * depth + "month eq '2024-01'") == expected


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "position", "words"),
        [
            ("month xyz '2024-01'", 7, "unexpected 'xyz' at position 7; expected a comparison operator"),
            ("month eq 2024-01", 10, "unexpected '2024-01' at position 10; expected a value in single quotes"),
            ("month eq '2024-13'", 10, "'2024-13' at position 10 is not a month written YYYY-MM"),
            ("month eq '2024-1'", 10, "'2024-1' at position 10 is not a month"),
            ("month eq ''", 10, "'' at position 10 is not a month"),
            ("month eq '\u0662\u0660\u0662\u0664-01'", 10, "is not a month"),
            ("month eq 'it''s'", 10, "'it''s' at position 10 is not a month"),
            ("account_id eq 'abc'", 15, "'abc' at position 15 is not an account id"),
            (f"account_id eq '{{{A}}}'", 15, "is not an account id"),
            ("month eq '2024-01' and", 23, "unexpected end of filter at position 23; expected a field"),
            ("(month eq '2024-01'", 20, "unexpected end of filter at position 20; expected 'and', 'or' or ')'"),
            ("month eq '2024-01')", 19, "unexpected ')' at position 19; expected 'and', 'or' or the end of the filter"),
            ("month eq '2024-01' month eq '2024-02'", 20, "unexpected 'month' at position 20"),
            ("price eq '1'", 1, "unexpected 'price' at position 1; expected a field (account_id or month)"),
            ("month == '2024-01'", 7, "unexpected '=' at position 7; expected a comparison operator"),
            ("month eq", 9, "unexpected end of filter at position 9; expected a value in single quotes"),
            ("()", 2, "unexpected ')' at position 2; expected a field"),
            ("", 1, "unexpected end of filter at position 1; expected a field"),
            ("not", 4, "unexpected end of filter at position 4; expected a field"),
            ("month eq 'x", 10, "unterminated value 'x at position 10"),
            ("month eq '2024-01' and or month eq '2024-02'", 24, "unexpected 'or' at position 24; expected a field"),
            ('month eq "2024-01"', 10, "unexpected '\"' at position 10; expected a value in single quotes"),
        ],
    )
    def test_each_error_names_the_token_and_its_position(self, text, position, words):
        error = error_of(text)
        assert words in error.message
        assert error.position == position
        assert str(error) == error.message

    def test_nesting_deeper_than_the_limit_is_refused_not_a_crash(self):
        depth = MAX_DEPTH + 1
        error = error_of("(" * depth + "month eq '2024-01'" + ")" * depth)
        assert error.position == MAX_DEPTH + 1
        assert "nests too deeply" in error.message
        assert "nests too deeply" in error_of("not " * 500 + "month eq '2024-01'").message
        assert "nests too deeply" in error_of("(" * 2000).message

    def test_a_long_token_is_cut_short_in_the_message(self):
        error = error_of("month eq " + "x" * 1000)
        assert len(error.message) < 200
        assert "…" in error.message


# --- the domain tree -------------------------------------------------------------------------------


class TestQuery:
    def test_a_comparison_refuses_a_value_that_does_not_fit_its_field(self):
        with pytest.raises(ValueError, match="not a month"):
            Comparison("month", "eq", "January")
        with pytest.raises(ValueError, match="not an account id"):
            Comparison("account_id", "eq", "42")
        with pytest.raises(ValueError, match="unknown field"):
            Comparison("price", "eq", "1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown operator"):
            Comparison("month", "like", "2024-01")  # type: ignore[arg-type]

    def test_value_problem(self):
        assert value_problem("month", "2024-12") is None
        assert value_problem("month", "2024-00") is not None
        assert value_problem("account_id", A.upper()) is None
        assert value_problem("account_id", A.replace("-", "")) is not None

    def test_account_ids_are_every_account_named_whatever_the_operator(self):
        expr = parse(f"month eq '2024-01' or not account_id ne '{A}' and account_id gt '{B.upper()}'")
        assert account_ids(expr) == {uuid.UUID(A), uuid.UUID(B)}
        assert [c.field for c in comparisons(expr)] == ["month", "account_id", "account_id"]
        assert account_ids(M1) == set()


# --- rendering and reading back --------------------------------------------------------------------

_MONTHS = st.builds(lambda year, number: f"{year:04d}-{number:02d}", st.integers(0, 9999), st.integers(1, 12))
_ACCOUNTS = st.uuids().map(str) | st.uuids().map(lambda value: str(value).upper())
_OPERATORS = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"])
_COMPARISONS = st.one_of(
    st.builds(Comparison, st.just("month"), _OPERATORS, _MONTHS),
    st.builds(Comparison, st.just("account_id"), _OPERATORS, _ACCOUNTS),
)


def _depth(expr: Expr) -> int:
    """Parentheses and ``not`` the tree may need when written (an upper bound)."""
    if isinstance(expr, Comparison):
        return 0
    if isinstance(expr, Not):
        return 1 + _depth(expr.inner)
    return 1 + max(_depth(expr.left), _depth(expr.right))


EXPRS = st.recursive(
    _COMPARISONS,
    lambda children: st.one_of(
        st.builds(And, children, children), st.builds(Or, children, children), st.builds(Not, children)
    ),
    max_leaves=24,
).filter(lambda expr: _depth(expr) < MAX_DEPTH)


def _written(expr: Expr, rng: random.Random) -> str:
    """``expr`` as a person might write it: every compound in parentheses, random case and spacing."""

    def word(text: str) -> str:
        return "".join(char.upper() if rng.random() < 0.5 else char for char in text)

    def gap() -> str:
        return rng.choice([" ", "  ", "\t", "\n "])

    if isinstance(expr, Comparison):
        return f"{word(expr.field)}{gap()}{word(expr.op)}{gap()}{quote(expr.value)}"
    if isinstance(expr, Not):
        return f"{word('not')}{gap()}({_written(expr.inner, rng)})"
    keyword = "and" if isinstance(expr, And) else "or"
    return f"({_written(expr.left, rng)}){gap()}{word(keyword)}{gap()}({_written(expr.right, rng)})"


class TestRoundTrip:
    @given(EXPRS)
    def test_render_then_parse_gives_the_same_tree(self, expr):
        assert parse(render(expr)) == expr

    @given(EXPRS)
    def test_render_uses_only_the_parentheses_it_needs(self, expr):
        text = render(expr)
        # Values here hold no parentheses, so each pair can be found by counting.
        opened: list[int] = []
        for index, char in enumerate(text):
            if char == "(":
                opened.append(index)
            elif char == ")":
                start = opened.pop()
                without = text[:start] + " " + text[start + 1 : index] + " " + text[index + 1 :]
                with contextlib.suppress(FilterError):
                    assert parse(without) != expr, f"needless parentheses at {start + 1} in {text}"

    @settings(max_examples=50)
    @given(EXPRS, st.randoms(use_true_random=False))
    def test_fully_parenthesized_random_case_and_spacing_parse_to_the_same_tree(self, expr, rng):
        assert parse(_written(expr, rng)) == expr

    def test_examples(self):
        assert render(Or(M1, And(M2, M3))) == "month eq '2024-01' or month eq '2024-02' and month eq '2024-03'"
        assert render(And(Or(M1, M2), M3)) == "(month eq '2024-01' or month eq '2024-02') and month eq '2024-03'"
        assert render(And(M1, And(M2, M3))) == "month eq '2024-01' and (month eq '2024-02' and month eq '2024-03')"
        assert render(Not(Or(M1, M2))) == "not (month eq '2024-01' or month eq '2024-02')"
        assert render(Not(Not(M1))) == "not not month eq '2024-01'"
