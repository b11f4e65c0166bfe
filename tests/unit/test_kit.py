"""The dependency-free helpers: exact money, exact JSON, JSON merge patch, and the shape of API keys."""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterbook.accounts import keys
from meterbook.features.models import period_of
from meterbook.kit import jsontext
from meterbook.kit.merge_patch import merge_patch
from meterbook.kit.money import from_scaled, round_to_minor_unit, to_scaled
from meterbook.kit.time import month_of, month_start

INT64_MAX = 2**63 - 1

# --- money -----------------------------------------------------------------------------------------


class TestRoundToMinorUnit:
    @pytest.mark.parametrize(
        ("amount", "currency", "expected"),
        [
            ("0.005", "USD", "0.01"),
            ("-0.005", "USD", "-0.01"),
            ("0.015", "USD", "0.02"),
            ("0.025", "USD", "0.03"),
            ("-0.025", "USD", "-0.03"),
            ("0.0049999", "USD", "0.00"),
            ("-0.0049999", "USD", "0.00"),
            ("1.994999999", "USD", "1.99"),
            ("1.995", "USD", "2.00"),
            ("12", "USD", "12.00"),
            ("2.5", "JPY", "3"),
            ("-2.5", "JPY", "-3"),
            ("3.5", "JPY", "4"),
            ("2.4999", "JPY", "2"),
            ("0.5", "JPY", "1"),
            ("0.0005", "KWD", "0.001"),
            ("-0.0005", "KWD", "-0.001"),
            ("1.2345", "KWD", "1.235"),
            ("1.2344999", "KWD", "1.234"),
            ("0.00005", "CLF", "0.0001"),
        ],
    )
    def test_half_away_from_zero(self, amount: str, currency: str, expected: str) -> None:
        rounded = round_to_minor_unit(Decimal(amount), currency)
        assert rounded == Decimal(expected)
        assert str(rounded) in {expected, f"-{expected}"}

    @pytest.mark.parametrize(("currency", "digits"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3)])
    def test_result_has_the_currencys_digits(self, currency: str, digits: int) -> None:
        assert round_to_minor_unit(Decimal("1.23456789"), currency).as_tuple().exponent == -digits

    @given(st.decimals(min_value=-(10**12), max_value=10**12, places=9))
    def test_symmetric_around_zero(self, amount: Decimal) -> None:
        assert round_to_minor_unit(-amount, "USD") == -round_to_minor_unit(amount, "USD")

    @given(st.decimals(min_value=-(10**12), max_value=10**12, places=9))
    def test_within_half_a_minor_unit(self, amount: Decimal) -> None:
        assert abs(round_to_minor_unit(amount, "USD") - amount) <= Decimal("0.005")

    def test_unknown_currency(self) -> None:
        with pytest.raises(KeyError):
            round_to_minor_unit(Decimal(1), "XYZ")


int64_decimals = st.decimals(
    min_value=Decimal(-INT64_MAX).scaleb(-9),
    max_value=Decimal(INT64_MAX).scaleb(-9),
    places=9,
    allow_nan=False,
    allow_infinity=False,
)


class TestScaled:
    @given(int64_decimals)
    def test_round_trip(self, value: Decimal) -> None:
        stored = to_scaled(value)
        assert isinstance(stored, int)
        assert -INT64_MAX <= stored <= INT64_MAX
        assert from_scaled(stored) == value

    @given(st.integers(min_value=-INT64_MAX, max_value=INT64_MAX))
    def test_stored_integers_round_trip(self, stored: int) -> None:
        assert to_scaled(from_scaled(stored)) == stored

    @given(st.integers(min_value=-INT64_MAX, max_value=INT64_MAX))
    def test_text_has_no_trailing_zeros(self, stored: int) -> None:
        text = str(from_scaled(stored))
        if "." in text:
            assert not text.endswith("0"), text
        assert "E+" not in text, text

    @pytest.mark.parametrize("value", ["0.0000000001", "1.1234567891", "-0.0000000005"])
    def test_refuses_ten_places(self, value: str) -> None:
        with pytest.raises(ValueError, match="decimal places"):
            to_scaled(Decimal(value))

    def test_trailing_zeros_beyond_the_scale_are_not_digits(self) -> None:
        assert to_scaled(Decimal("0.30000000000")) == 300_000_000

    @pytest.mark.parametrize(
        ("stored", "text"),
        [
            (300_000_000, "0.3"),
            (100 * 10**9, "100"),
            (1500 * 10**9, "1500"),
            (0, "0"),
            (-300_000_000, "-0.3"),
            (123_450_000_000, "123.45"),
        ],
    )
    def test_from_scaled_text(self, stored: int, text: str) -> None:
        assert str(from_scaled(stored)) == text

    def test_other_scale(self) -> None:
        assert to_scaled(Decimal("1.5"), scale=2) == 150
        assert str(from_scaled(150, scale=2)) == "1.5"


# --- JSON ------------------------------------------------------------------------------------------


class TestLoads:
    def test_fractions_are_decimals(self) -> None:
        loaded = jsontext.loads('{"a": 0.1, "b": 1e2, "c": 3, "d": -0.30}')
        assert loaded == {"a": Decimal("0.1"), "b": Decimal("1e2"), "c": 3, "d": Decimal("-0.30")}
        assert type(loaded["a"]) is Decimal
        assert type(loaded["b"]) is Decimal
        assert type(loaded["c"]) is int

    def test_bytes_are_utf8(self) -> None:
        assert jsontext.loads('{"name": "café"}'.encode()) == {"name": "café"}

    def test_big_integers_stay_exact(self) -> None:
        assert jsontext.loads("123456789012345678901234567890") == 123456789012345678901234567890

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("NaN", id="nan"),
            pytest.param("[Infinity]", id="infinity"),
            pytest.param('{"a": -Infinity}', id="minus-infinity"),
            pytest.param('{"a": 1, "a": 2}', id="duplicate-key"),
            pytest.param('{"a": 1, "a": 1}', id="duplicate-key-same-value"),
            pytest.param('{"x": {"a": 1, "b": 2, "a": 3}}', id="nested-duplicate-key"),
            pytest.param(b'{"a": "\xff"}', id="invalid-utf8"),
            pytest.param(b'"\xed\xa0\x80"', id="utf8-surrogate"),
            pytest.param("[" * 100_000 + "]" * 100_000, id="deep-nesting"),
            pytest.param('{"a": ' * 50_000 + "1" + "}" * 50_000, id="deep-object-nesting"),
            pytest.param("{", id="truncated"),
            pytest.param("", id="empty"),
            pytest.param("[1,]", id="trailing-comma"),
            pytest.param("{'a': 1}", id="single-quotes"),
            pytest.param("1 2", id="extra-data"),
        ],
    )
    def test_refused(self, text: str | bytes) -> None:
        with pytest.raises(json.JSONDecodeError):
            jsontext.loads(text)

    def test_error_says_what_is_wrong(self) -> None:
        with pytest.raises(json.JSONDecodeError, match="duplicate key 'a'"):
            jsontext.loads('{"a": 1, "a": 2}')
        with pytest.raises(json.JSONDecodeError, match="NaN"):
            jsontext.loads("NaN")


json_decimals = st.decimals(allow_nan=False, allow_infinity=False)
# NUL is refused on input (PostgreSQL cannot store it), so round trips use text without it.
json_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | json_decimals | json_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(json_text, children, max_size=5),
    max_leaves=30,
)


class TestDumps:
    def test_decimal_text_is_exact(self) -> None:
        assert jsontext.dumps(Decimal("0.3")) == b"0.3"
        assert jsontext.dumps({"amount": Decimal("0.1") + Decimal("0.2")}) == b'{"amount":0.3}'
        assert jsontext.dumps([Decimal("1500"), Decimal("-12.5")]) == b"[1500,-12.5]"
        assert json.loads(jsontext.dumps(Decimal("-0.000000001")), parse_float=Decimal) == Decimal("-0.000000001")

    def test_other_types(self) -> None:
        some_id = uuid.UUID(int=7)
        dumped = jsontext.dumps(
            {"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "id": some_id, "set": frozenset({"b", "a"})}
        )
        assert dumped == b'{"at":"2024-01-02T03:04:05Z","id":"' + str(some_id).encode() + b'","set":["a","b"]}'

    def test_unicode_is_written_as_utf8(self) -> None:
        assert jsontext.dumps("café") == '"café"'.encode()

    def test_nan_is_refused(self) -> None:
        with pytest.raises(ValueError, match="JSON compliant"):
            jsontext.dumps(Decimal("NaN"))

    def test_unknown_types_are_refused(self) -> None:
        with pytest.raises(TypeError):
            jsontext.dumps(object())

    @given(json_values)
    def test_round_trip(self, value: Any) -> None:
        assert jsontext.loads(jsontext.dumps(value)) == value

    @given(json_decimals)
    def test_dumped_decimals_are_json_numbers(self, value: Decimal) -> None:
        assert json.loads(jsontext.dumps(value), parse_float=Decimal, parse_int=Decimal) == value


# --- merge patch -----------------------------------------------------------------------------------

# RFC 7396, Appendix A: every example, as (original, patch, result) JSON texts.
RFC_7396_EXAMPLES = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
    ('{"a":"b"}', '{"a":null}', "{}"),
    ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
    ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', "null", "null"),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
    ("[1,2]", '{"a":"b","c":null}', '{"a":"b"}'),
    ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_documents = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=3), json_documents, max_size=5)


class TestMergePatch:
    @pytest.mark.parametrize(("original", "patch", "result"), RFC_7396_EXAMPLES)
    def test_rfc_7396_appendix_a(self, original: str, patch: str, result: str) -> None:
        assert merge_patch(json.loads(original), json.loads(patch)) == json.loads(result)

    def test_all_fifteen_examples_are_here(self) -> None:
        assert len(RFC_7396_EXAMPLES) == 15

    @given(json_objects)
    def test_empty_patch_changes_nothing(self, target: dict[str, Any]) -> None:
        assert merge_patch(target, {}) == target

    @given(json_documents, json_documents)
    def test_inputs_are_not_mutated(self, target: Any, patch: Any) -> None:
        target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
        merge_patch(target, patch)
        assert target == target_before
        assert patch == patch_before

    @given(json_documents, json_documents)
    def test_idempotent(self, target: Any, patch: Any) -> None:
        once = merge_patch(target, patch)
        assert merge_patch(once, patch) == once

    @given(json_objects, st.dictionaries(st.text(max_size=3), json_documents, max_size=5))
    def test_patched_members_take_the_patch(self, target: dict[str, Any], patch: dict[str, Any]) -> None:
        merged = merge_patch(target, patch)
        for key, value in patch.items():
            if value is None:
                assert key not in merged
            elif not isinstance(value, dict):
                assert merged[key] == value
        for key in target.keys() - patch.keys():
            assert merged[key] == target[key]


# --- API keys --------------------------------------------------------------------------------------


def new_token() -> tuple[uuid.UUID, str, str]:
    key_id, secret = uuid.uuid4(), keys.new_secret()
    return key_id, secret, keys.token_for(key_id, secret)


class TestKeyShape:
    def test_round_trip(self) -> None:
        key_id, secret, token = new_token()
        parsed = keys.parse_key(token)
        assert parsed == keys.ParsedKey(key_id, secret)

    @given(st.uuids(), st.binary(min_size=24, max_size=24))
    def test_round_trip_property(self, key_id: uuid.UUID, raw: bytes) -> None:
        parsed = keys.parse_key(keys.token_for(key_id, raw.hex()))
        assert parsed == keys.ParsedKey(key_id, raw.hex())

    def test_token_shape(self) -> None:
        key_id, secret, token = new_token()
        assert token == f"mbk_{key_id.hex}_{secret}"
        assert len(secret) == 48
        assert len(token) == 85

    def test_secrets_differ(self) -> None:
        assert len({keys.new_secret() for _ in range(100)}) == 100

    @pytest.mark.parametrize(
        "mangle",
        [
            pytest.param(lambda t: t.upper(), id="uppercase"),
            pytest.param(lambda t: t[:4] + t[4:36].upper() + t[36:], id="uppercase-id"),
            pytest.param(lambda t: t[:37] + t[37:].upper(), id="uppercase-secret"),
            pytest.param(lambda t: t[:-1], id="short-secret"),
            pytest.param(lambda t: t + "0", id="long-secret"),
            pytest.param(lambda t: "mbx_" + t[4:], id="wrong-prefix"),
            pytest.param(lambda t: t[4:], id="no-prefix"),
            pytest.param(lambda t: "MBK_" + t[4:], id="uppercase-prefix"),
            pytest.param(lambda t: t[:35] + t[36:] + "0", id="short-id"),
            pytest.param(lambda t: t.replace("_", "-"), id="hyphens"),
            pytest.param(lambda t: t[:36] + t[37:], id="no-separator"),
            pytest.param(lambda t: t[:-1] + "g", id="not-hex"),
            pytest.param(lambda t: " " + t, id="leading-space"),
            pytest.param(lambda t: t + " ", id="trailing-space"),
            pytest.param(lambda t: t + "\n", id="trailing-newline"),
            pytest.param(lambda t: "", id="empty"),
        ],
    )
    def test_rejects_wrong_shapes(self, mangle: Any) -> None:
        _, _, token = new_token()
        assert keys.parse_key(mangle(token)) is None


class TestMask:
    def test_keeps_first_twelve_and_last_four(self) -> None:
        _, _, token = new_token()
        masked = keys.mask(token)
        assert masked[:12] == token[:12]
        assert masked[-4:] == token[-4:]
        hidden = masked[12:-4]
        assert hidden
        assert not any(char in "0123456789abcdef" for char in hidden)

    def test_hides_the_secret(self) -> None:
        _, secret, token = new_token()
        masked = keys.mask(token)
        assert len(masked) < len(token)
        for start in range(len(secret) - 4):
            assert secret[start : start + 5] not in masked

    def test_same_token_same_mask(self) -> None:
        _, _, token = new_token()
        assert keys.mask(token) == keys.mask(token)
        assert keys.mask(token) != keys.mask(new_token()[2])


class TestSecretHash:
    def test_hash_is_sha256_hex(self) -> None:
        secret = keys.new_secret()
        assert keys.hash_secret(secret) == hashlib.sha256(secret.encode()).hexdigest()

    def test_matches(self) -> None:
        secret = keys.new_secret()
        assert keys.secret_matches(secret, keys.hash_secret(secret))

    def test_wrong_secret_does_not_match(self) -> None:
        secret = keys.new_secret()
        assert not keys.secret_matches(secrets.token_hex(24), keys.hash_secret(secret))
        assert not keys.secret_matches(secret[:-1] + ("0" if secret[-1] != "0" else "1"), keys.hash_secret(secret))
        assert not keys.secret_matches(secret, "0" * 64)
        assert not keys.secret_matches(secret, keys.hash_secret(secret).upper())


class TestMonthOf:
    @given(st.datetimes(timezones=st.just(UTC)))
    def test_a_month_is_four_digits_of_year_and_two_of_month_and_sorts_like_time(self, moment: datetime) -> None:
        month = month_of(moment)
        assert len(month) == 7
        assert month_start(month) <= moment
        assert period_of("monthly", moment) == month
        assert month_of(datetime(584, 11, 12, tzinfo=UTC)) == "0584-11" < month_of(datetime(1999, 1, 1, tzinfo=UTC))
