"""The webhook endpoints API (CONTRACT §7): every route, bad input naming its field, another organization's 404."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbook.config import Settings
from meterbook.webhooks.catalog import EVENT_TYPES
from tests.conftest import Tenant, bearer
from tests.helpers import assert_error, assert_invalid, each, ts

HOOK = "https://93.184.215.14/hooks"  # a public address: nothing is delivered in these tests


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The product's default: private destinations refused."""
    return Settings(database_url=database_url, migrate_on_start=False, max_body_bytes=64 * 1024, worker=False)


def create(tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = tenant.client.post("/v1/webhook_endpoints", json={"url": HOOK, **body}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestCreate:
    def test_the_secret_is_shown_once(self, client: TestClient, tenant: Tenant) -> None:
        created = create(tenant, description="billing sync")
        assert created["secret"].startswith("whsec_")
        assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) >= 24
        assert created["event_types"] == ["*"]
        assert created["enabled"] is True
        assert created["previous_secret_expires_at"] is None
        shown = client.get(f"/v1/webhook_endpoints/{created['id']}", headers=tenant.headers)
        assert shown.status_code == 200
        assert "secret" not in shown.json()
        assert created["secret"] not in shown.text
        listed = client.get("/v1/webhook_endpoints", headers=tenant.headers).json()["endpoints"]
        assert [item["id"] for item in listed] == [created["id"]]
        assert created["secret"] not in str(listed)

    def test_event_types_are_checked(self, client: TestClient, tenant: Tenant) -> None:
        created = create(tenant, event_types=["invoice.paid", "invoice.created", "invoice.paid"])
        assert created["event_types"] == ["invoice.paid", "invoice.created"]
        assert len(EVENT_TYPES) == 13
        create(tenant, event_types=list(EVENT_TYPES))
        response = client.post(
            "/v1/webhook_endpoints",
            json={"url": HOOK, "event_types": ["invoice.paid", "invoice.payed"]},
            headers=tenant.headers,
        )
        body = assert_invalid(response, "body.event_types.1")
        assert "invoice.payed" in body["note"]
        assert "e.g. invoice.paid" in body["note"]
        assert_invalid(
            client.post("/v1/webhook_endpoints", json={"url": HOOK, "event_types": []}, headers=tenant.headers),
            "body.event_types",
        )

    def test_bad_urls_name_the_field(self, client: TestClient, tenant: Tenant) -> None:
        cases = {
            "ftp://hooks.example.com/x": "http or https",
            "hooks.example.com/x": "http or https",
            "https:///nohost": "no host",
            "https://user:pw@hooks.example.com/x": "password",
            "https://hooks.example.com:99999/x": "not a URL",
        }

        def check(url: str) -> None:
            response = client.post("/v1/webhook_endpoints", json={"url": url}, headers=tenant.headers)
            body = assert_invalid(response, "body.url")
            assert cases[url] in body["note"]
            assert "e.g. https://" in body["note"]

        each({url: url for url in cases}, check)

    def test_private_destinations_are_refused(self, client: TestClient, tenant: Tenant) -> None:
        urls = [
            "http://127.0.0.1:8080/hooks",
            "http://localhost/hooks",
            "http://10.1.2.3/hooks",
            "http://192.168.0.10/hooks",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:9000/hooks",
            "http://[::ffff:127.0.0.1]/hooks",
            "http://0.0.0.0/",
        ]

        def check(url: str) -> None:
            response = client.post("/v1/webhook_endpoints", json={"url": url}, headers=tenant.headers)
            body = assert_invalid(response, "body.url")
            assert "METERBOOK_WEBHOOK_ALLOW_PRIVATE" in body["note"]

        each({url: url for url in urls}, check)
        assert client.get("/v1/webhook_endpoints", headers=tenant.headers).json() == {"endpoints": []}

    def test_unknown_fields_and_missing_url(self, client: TestClient, tenant: Tenant) -> None:
        assert_invalid(
            client.post("/v1/webhook_endpoints", json={"url": HOOK, "events": ["*"]}, headers=tenant.headers),
            "body.events",
        )
        assert_invalid(client.post("/v1/webhook_endpoints", json={}, headers=tenant.headers), "body.url")
        assert_invalid(
            client.post("/v1/webhook_endpoints", json={"url": HOOK, "enabled": "yes"}, headers=tenant.headers),
            "body.enabled",
        )


class TestChange:
    def test_patch_changes_only_what_is_sent(self, client: TestClient, tenant: Tenant) -> None:
        created = create(tenant, description="first")
        url = f"/v1/webhook_endpoints/{created['id']}"
        changed = client.patch(url, json={"enabled": False, "event_types": ["payment.created"]}, headers=tenant.headers)
        assert changed.status_code == 200, changed.text
        assert changed.json()["enabled"] is False
        assert changed.json()["event_types"] == ["payment.created"]
        assert changed.json()["description"] == "first"
        cleared = client.patch(url, json={"description": None}, headers=tenant.headers).json()
        assert cleared["description"] is None
        assert cleared["enabled"] is False
        assert_invalid(client.patch(url, json={"url": None}, headers=tenant.headers), "body.url")
        assert_invalid(client.patch(url, json={"url": "http://10.0.0.1/"}, headers=tenant.headers), "body.url")
        assert_invalid(client.patch(url, json={"event_types": ["nope"]}, headers=tenant.headers), "body.event_types.0")
        moved = client.patch(url, json={"url": "https://93.184.215.15/other"}, headers=tenant.headers).json()
        assert moved["url"] == "https://93.184.215.15/other"

    def test_rotation_shows_a_new_secret_and_keeps_the_old_one_a_day(self, client: TestClient, tenant: Tenant) -> None:
        created = create(tenant)
        response = client.post(f"/v1/webhook_endpoints/{created['id']}/rotate_secret", headers=tenant.headers)
        assert response.status_code == 200, response.text
        rotated = response.json()
        assert rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != created["secret"]
        grace = ts(rotated["previous_secret_expires_at"]) - ts(rotated["updated_at"])
        assert grace == timedelta(hours=24)

    def test_delete(self, client: TestClient, tenant: Tenant) -> None:
        created = create(tenant)
        url = f"/v1/webhook_endpoints/{created['id']}"
        assert client.delete(url, headers=tenant.headers).json()["id"] == created["id"]
        assert_error(client.get(url, headers=tenant.headers), 404, "NOT_FOUND")
        assert_error(client.delete(url, headers=tenant.headers), 404, "NOT_FOUND")

    def test_a_non_uuid_id_is_400(self, client: TestClient, tenant: Tenant) -> None:
        assert_invalid(client.get("/v1/webhook_endpoints/nope", headers=tenant.headers), "path.endpoint_id")


class TestWhoMay:
    def test_another_organization_finds_nothing(self, client: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
        created = create(tenant)
        url = f"/v1/webhook_endpoints/{created['id']}"
        for method, path, body in [
            ("GET", url, None),
            ("PATCH", url, {"enabled": False}),
            ("DELETE", url, None),
            ("POST", f"{url}/rotate_secret", None),
            ("GET", f"{url}/deliveries", None),
            ("POST", f"/v1/webhook_events/{uuid.uuid4()}/resend", None),
        ]:
            response = client.request(method, path, json=body, headers=other_tenant.headers)
            assert_error(response, 404, "NOT_FOUND")
            assert created["url"] not in response.text
        assert client.get("/v1/webhook_endpoints", headers=other_tenant.headers).json() == {"endpoints": []}
        assert client.get(url, headers=tenant.headers).json()["enabled"] is True

    def test_account_keys_and_missing_scopes_are_refused(self, client: TestClient, tenant: Tenant) -> None:
        account = tenant.create_account()
        customer = bearer(account["api_key"])
        assert_error(client.get("/v1/webhook_endpoints", headers=customer), 403, "FORBIDDEN")
        assert_error(client.post("/v1/webhook_endpoints", json={"url": HOOK}, headers=customer), 403, "FORBIDDEN")
        reader = bearer(tenant.create_key(scopes=["billing:read"])["key"])
        assert client.get("/v1/webhook_endpoints", headers=reader).status_code == 200
        assert_error(client.post("/v1/webhook_endpoints", json={"url": HOOK}, headers=reader), 403, "FORBIDDEN")
