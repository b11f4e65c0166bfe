"""Issue 16: the native API refuses what it would otherwise drop, and every refusal says what to send instead.

An unknown field was ignored: an event sent with ``timestamp`` for an invoiced October was accepted and
dated today. A wrong format was answered with a regex. These tests read the reply as a newcomer would.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.helpers import assert_error, each

REGEX = re.compile(r"\^|\$|\[0-9\]|\\d")


def only_error(response: Any) -> dict[str, Any]:
    body = assert_error(response, 400, "VALIDATION_FAILED")
    assert len(body["validationErrors"]) == 1, body
    item: dict[str, Any] = body["validationErrors"][0]
    assert not REGEX.search(item["message"] + item["suggestion"] + body["note"]), body
    return item


@pytest.fixture
def account(tenant: Tenant) -> dict[str, Any]:
    return tenant.create_account(name="Newcomer")


class TestUnknownFields:
    def test_an_event_with_timestamp_is_refused_and_the_field_meant_is_named(
        self, client: TestClient, tenant: Tenant, account: dict[str, Any]
    ) -> None:
        granted = client.post(
            f"/v1/accounts/{account['id']}/credits", json={"id": "g", "amount": 5}, headers=tenant.headers
        )
        assert granted.status_code == 201, granted.text
        event = {"id": "e1", "account_id": account["id"], "type": "credit", "quantity": 1}
        response = client.post(
            "/v1/events", json=[{**event, "timestamp": "2026-10-15T00:00:00Z"}], headers=tenant.headers
        )
        item = only_error(response)
        assert item["path"] == "body.0.timestamp"
        assert "did you mean 'occurred_at'" in item["message"]
        assert "occurred_at" in item["suggestion"]
        # Nothing was applied: the same event, spelt right, is new.
        assert client.post("/v1/events", json=[event], headers=tenant.headers).json() == {
            "accepted": 1,
            "duplicates": 0,
        }

    @pytest.mark.parametrize(
        ("url", "body", "unknown", "meant"),
        [
            ("/v1/events", [{"id": "e", "type": "credit", "amount": 1}], "body.0.amount", "quantity"),
            (
                "/v1/events",
                [{"id": "e", "type": "credit", "quantity": 1, "customer_id": "x"}],
                "body.0.customer_id",
                "account_id",
            ),
            ("/v1/api_keys", {"scope": ["usage:write"]}, "body.scope", "scopes"),
            ("/v1/projects", {"name": "p", "billing_account": "x"}, "body.billing_account", "billing_account_id"),
            ("/v1/billing_runs", {"month": "2020-01", "mnth": "x"}, "body.mnth", "month"),
            ("/v1/payments", {"amount": "1", "acount_id": "x"}, "body.acount_id", "account_id"),
        ],
    )
    def test_every_native_body_names_the_field_meant(
        self, client: TestClient, tenant: Tenant, account: dict[str, Any], url: str, body: Any, unknown: str, meant: str
    ) -> None:
        if isinstance(body, list) and "customer_id" not in body[0]:
            body = [{"account_id": account["id"], **item} for item in body]
        response = client.post(url, json=body, headers=tenant.headers)
        found = assert_error(response, 400, "VALIDATION_FAILED")["validationErrors"]
        unknown_items = [item for item in found if item["path"] == unknown]
        assert unknown_items, found
        assert f"did you mean {meant!r}" in unknown_items[0]["message"]

    def test_a_field_like_nothing_lists_the_fields(self, client: TestClient, tenant: Tenant) -> None:
        response = client.put("/v1/features/seats", json={"default_limit": 5, "colour": "red"}, headers=tenant.headers)
        item = only_error(response)
        assert item["path"] == "body.colour"
        assert "default_limit" in item["suggestion"]

    def test_the_dialects_still_ignore_unknown_fields(self, client: TestClient, tenant: Tenant) -> None:
        """Contract §3: real clients of the four dialects send fields of newer versions."""
        response = client.post(
            "/v1/accounts", json={"name": "Faraday client", "a_field_of_a_newer_version": 1}, headers=tenant.headers
        )
        assert response.status_code == 201, response.text


class TestFormats:
    def test_each_format_error_says_what_is_expected_with_an_example(
        self, client: TestClient, tenant: Tenant, account: dict[str, Any]
    ) -> None:
        event = {"id": "e1", "account_id": account["id"], "type": "credit", "quantity": 1}
        usage = f"/v1/monthly_usage?account_id={account['id']}"
        cases = {
            "month in a query": (
                client.get(f"{usage}&from=2026-01-01", headers=tenant.headers),
                "YYYY-MM, e.g. 2026-10",
            ),
            "month in a body": (
                client.post("/v1/billing_runs", json={"month": "10/2026"}, headers=tenant.headers),
                "YYYY-MM, e.g. 2026-10",
            ),
            "a date and time": (
                client.post("/v1/events", json=[{**event, "occurred_at": "15/10/2026"}], headers=tenant.headers),
                "RFC 3339, e.g. 2026-10-15T08:30:00Z",
            ),
            "a whole number": (
                client.put("/v1/features/seats", json={"default_limit": "many"}, headers=tenant.headers),
                "whole number, e.g. 42",
            ),
            "a decimal": (
                client.post(
                    "/v1/payments", json={"account_id": account["id"], "amount": "ten"}, headers=tenant.headers
                ),
                "decimal number, e.g. 12.5",
            ),
            "a uuid": (
                client.post("/v1/payments", json={"account_id": "acme", "amount": "1"}, headers=tenant.headers),
                "UUID, e.g.",
            ),
            "a currency": (
                client.put(
                    "/v1/products/P-1",
                    json={"description": "d", "unit_price": "1", "currency": "usd"},
                    headers=tenant.headers,
                ),
                "ISO-4217",
            ),
        }

        def check(case: tuple[Any, str]) -> None:
            response, words = case
            item = only_error(response)
            assert words in item["message"], item
            assert "got" in item["message"], item  # the value sent, so the client sees which one

        each(cases, check)

    def test_a_missing_field_says_what_to_add(
        self, client: TestClient, tenant: Tenant, account: dict[str, Any]
    ) -> None:
        response = client.post(
            "/v1/events", json=[{"id": "e1", "account_id": account["id"], "type": "credit"}], headers=tenant.headers
        )
        item = only_error(response)
        assert item["path"] == "body.0.quantity"
        assert item["message"] == "is required"
        assert item["suggestion"].startswith("Add 'quantity'")

    def test_from_after_to_is_a_400_not_an_empty_list(
        self, client: TestClient, tenant: Tenant, account: dict[str, Any]
    ) -> None:
        usage = f"/v1/monthly_usage?account_id={account['id']}"
        response = client.get(f"{usage}&from=2026-05&to=2026-01", headers=tenant.headers)
        item = only_error(response)
        assert item["path"] == "query.from"
        assert "from=2026-01&to=2026-05" in item["message"]
        same = client.get(f"{usage}&from=2026-05&to=2026-05", headers=tenant.headers)
        assert same.status_code == 200
