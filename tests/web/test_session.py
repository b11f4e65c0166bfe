"""The console's session cookie value on its own: what it proves, and what it refuses (no database needed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from meterbook.web import session

SECRET = b"s" * 32
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
KEY_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_a_signed_value_reads_back_until_it_expires() -> None:
    value = session.sign(SECRET, KEY_ID, NOW + timedelta(hours=8))
    assert session.read(SECRET, value, NOW) == KEY_ID
    assert session.read(SECRET, value, NOW + timedelta(hours=8) - timedelta(seconds=1)) == KEY_ID
    assert session.read(SECRET, value, NOW + timedelta(hours=8)) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda value: value.replace(KEY_ID.hex, uuid.uuid4().hex),
        lambda value: value.replace(".", ".9", 1),
        lambda value: value[:-2],
        lambda value: value + "A",
        lambda value: value.replace(".", "", 1),
        lambda value: "",
        lambda value: "a.b.c",
        lambda value: value.rsplit(".", 1)[0] + ".é",
    ],
)
def test_a_changed_value_is_refused(tamper: object) -> None:
    value = session.sign(SECRET, KEY_ID, NOW + timedelta(hours=1))
    assert callable(tamper)
    assert session.read(SECRET, tamper(value), NOW) is None


def test_another_servers_secret_is_refused() -> None:
    value = session.sign(SECRET, KEY_ID, NOW + timedelta(hours=1))
    assert session.read(b"t" * 32, value, NOW) is None


def test_a_form_token_fits_its_own_session_only() -> None:
    token = session.form_token(SECRET, KEY_ID)
    assert session.form_token_matches(SECRET, KEY_ID, token)
    assert not session.form_token_matches(SECRET, uuid.uuid4(), token)
    assert not session.form_token_matches(b"t" * 32, KEY_ID, token)
    for sent in (None, "", token[:-1], token + "A", "é" * 43):
        assert not session.form_token_matches(SECRET, KEY_ID, sent)
    # Not the cookie's signature under another name: a cookie never serves as a form token.
    assert token not in session.sign(SECRET, KEY_ID, NOW + timedelta(hours=1))


def test_a_flash_reads_back_in_its_own_session_only() -> None:
    value = session.sign_flash(SECRET, KEY_ID, "Granted 500 credits to Acme — Ünïcode.")
    assert session.read_flash(SECRET, KEY_ID, value) == "Granted 500 credits to Acme — Ünïcode."
    assert session.read_flash(SECRET, uuid.uuid4(), value) is None
    assert session.read_flash(b"t" * 32, KEY_ID, value) is None
    forged = session.sign_flash(SECRET, KEY_ID, "Call +1 555 0100 to verify your account").split(".")[0]
    for changed in (forged + "." + value.split(".")[1], value[:-1], "", ".", "é.é", "%%%.x"):
        assert session.read_flash(SECRET, KEY_ID, changed) is None
