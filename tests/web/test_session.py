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
