"""Assertions and small conversions shared by the API tests of the `/v1` routes (Faraday's error shape)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from meterbook.aggregates.models import Aggregate


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Faraday's error shape exactly: error, id (a UUID), note, and validationErrors only on VALIDATION_FAILED."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    expected = {"error", "id", "note"} | ({"validationErrors"} if code == "VALIDATION_FAILED" else set())
    assert set(body) == expected, body
    assert body["error"] == code
    uuid.UUID(body["id"])
    assert body["note"].strip()
    return body


def assert_invalid(response: Any, *paths: str) -> dict[str, Any]:
    """400 VALIDATION_FAILED, with a validation error at one of ``paths``, also named in the note."""
    body = assert_error(response, 400, "VALIDATION_FAILED")
    found = [item["path"] for item in body["validationErrors"]]
    assert any(path in found for path in paths), (paths, body)
    assert any(path in body["note"] for path in paths), body
    return body


def each(cases: dict[str, Any], check: Any) -> None:
    """Run ``check`` on every case and report every case that fails, not only the first."""
    failures = []
    for name, case in cases.items():
        try:
            check(case)
        except AssertionError as error:
            failures.append(f"{name}: {error}")
    assert not failures, "\n".join(failures)


def per_unit_aggregate(units: Decimal, unit_price: Decimal) -> Aggregate:
    """A month's aggregate of ``units`` at today's flat ``unit_price``: what billing prices before price models."""
    return Aggregate(
        id="a",
        account_id=uuid.UUID(int=1),
        product_id="p",
        aggr_product_id=None,
        description="d",
        month="2026-01",
        type="OTHER",
        direction=None,
        resolution=None,
        unit="unit",
        currency="USD",
        wallet_name=None,
        price=unit_price,
        number_of_units=units,
        event_count=1,
    )
