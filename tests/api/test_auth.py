"""Authentication on ``/v1`` and the 401/403 codes of Faraday's error table (contract §3.1)."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from meterbook.accounts import keys
from meterbook.accounts import service as accounts
from meterbook.db import Database
from meterbook.db.tables import api_keys
from meterbook.errors import MalformedApiKey
from tests.conftest import Tenant, bearer


def faraday_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the reply is Faraday's error shape with this status and code, and return its body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "id", "note"}, body
    assert body["error"] == code
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert isinstance(body["note"], str)
    assert body["note"].strip()
    return body


def random_key() -> str:
    return f"mbk_{secrets.token_hex(16)}_{secrets.token_hex(24)}"


def key_id_of(token: str) -> uuid.UUID:
    parsed = keys.parse_key(token)
    assert parsed is not None
    return parsed.key_id


class TestMissingKey:
    def test_no_authorization_header(self, client: TestClient) -> None:
        faraday_error(client.get("/v1/accounts"), 401, "MISSING_API_KEY")

    def test_empty_authorization_header(self, client: TestClient) -> None:
        faraday_error(client.get("/v1/accounts", headers={"Authorization": ""}), 401, "MISSING_API_KEY")

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/v1/accounts/current"),
            ("GET", f"/v1/accounts/{uuid.UUID(int=1)}"),
            ("POST", "/v1/accounts"),
            ("GET", "/v1/api_keys"),
            ("POST", "/v1/api_keys"),
            ("GET", "/v1/projects"),
            ("POST", "/v1/organizations"),
        ],
    )
    def test_every_route_needs_a_key(self, client: TestClient, method: str, path: str) -> None:
        faraday_error(client.request(method, path, json={"name": "x"}), 401, "MISSING_API_KEY")


class TestInvalidAuthorizationHeader:
    @pytest.mark.parametrize("header", ["Basic xyz", "Token abc", "Bearer", "Bearer   ", "mbk_abc"])
    def test_header_not_bearer_token(self, client: TestClient, tenant: Tenant, header: str) -> None:
        faraday_error(client.get("/v1/accounts", headers={"Authorization": header}), 401, "INVALID_AUTHORIZATION")

    def test_basic_with_a_valid_key_is_not_accepted_on_v1(self, client: TestClient, tenant: Tenant) -> None:
        parsed = keys.parse_key(tenant.key)
        assert parsed is not None
        credentials = base64.b64encode(f"{parsed.key_id.hex}:{parsed.secret}".encode()).decode()
        response = client.get("/v1/accounts", headers={"Authorization": f"Basic {credentials}"})
        faraday_error(response, 401, "INVALID_AUTHORIZATION")

    def test_scheme_is_case_insensitive(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get("/v1/accounts", headers={"Authorization": f"bearer {tenant.key}"})
        assert response.status_code == 200, response.text


class TestMalformedKey:
    @pytest.mark.parametrize(
        "token",
        [
            "not-a-key",
            "mbk_",
            "mbk_" + "0" * 32,
            "mbk_" + "A" * 32 + "_" + "0" * 48,
            "mbk_" + "0" * 32 + "_" + "0" * 47,
            "mbx_" + "0" * 32 + "_" + "0" * 48,
        ],
    )
    def test_token_not_of_key_shape(self, client: TestClient, tenant: Tenant, token: str) -> None:
        faraday_error(client.get("/v1/accounts", headers=bearer(token)), 401, "MALFORMED_API_KEY")


class TestUnknownKey:
    def test_well_shaped_but_unknown_key(self, client: TestClient, tenant: Tenant) -> None:
        faraday_error(client.get("/v1/accounts", headers=bearer(random_key())), 401, "INVALID_AUTHORIZATION")

    def test_right_id_wrong_secret(self, client: TestClient, tenant: Tenant) -> None:
        forged = keys.token_for(key_id_of(tenant.key), secrets.token_hex(24))
        faraday_error(client.get("/v1/accounts", headers=bearer(forged)), 401, "INVALID_AUTHORIZATION")

    def test_unknown_id_and_wrong_secret_read_the_same(self, client: TestClient, tenant: Tenant) -> None:
        unknown = faraday_error(client.get("/v1/accounts", headers=bearer(random_key())), 401, "INVALID_AUTHORIZATION")
        forged = keys.token_for(key_id_of(tenant.key), secrets.token_hex(24))
        wrong = faraday_error(client.get("/v1/accounts", headers=bearer(forged)), 401, "INVALID_AUTHORIZATION")
        assert unknown["note"] == wrong["note"]


class TestRevokedKey:
    def test_refused_on_the_very_next_request(self, client: TestClient, tenant: Tenant) -> None:
        created = tenant.create_key()
        assert client.get("/v1/accounts", headers=bearer(created["key"])).status_code == 200
        response = client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers)
        assert response.status_code == 200, response.text
        faraday_error(client.get("/v1/accounts", headers=bearer(created["key"])), 401, "INVALID_AUTHORIZATION")

    def test_revoked_key_cannot_revoke_itself_again_or_do_anything(self, client: TestClient, tenant: Tenant) -> None:
        created = tenant.create_key()
        headers = bearer(created["key"])
        assert client.delete(f"/v1/api_keys/{created['id']}", headers=headers).status_code == 200
        faraday_error(client.post("/v1/api_keys", json={}, headers=headers), 401, "INVALID_AUTHORIZATION")
        faraday_error(client.post("/v1/accounts", json={"name": "x"}, headers=headers), 401, "INVALID_AUTHORIZATION")
        assert client.get("/v1/accounts", headers=tenant.headers).json() == []

    def test_revoking_an_account_key_refuses_it(self, client: TestClient, tenant: Tenant) -> None:
        account = tenant.create_account()
        account_key = account["api_key"]
        listed = client.get("/v1/api_keys", headers=tenant.headers).json()
        (key,) = [item for item in listed if item["account_id"] == account["id"]]
        assert client.delete(f"/v1/api_keys/{key['id']}", headers=tenant.headers).status_code == 200
        faraday_error(client.get("/v1/accounts/current", headers=bearer(account_key)), 401, "INVALID_AUTHORIZATION")


class TestExpiredKey:
    def test_key_past_its_expiry(self, client: TestClient, tenant: Tenant, database: Database) -> None:
        created = tenant.create_key(expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
        assert client.get("/v1/accounts", headers=bearer(created["key"])).status_code == 200
        with database.write() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == uuid.UUID(created["id"]))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        faraday_error(client.get("/v1/accounts", headers=bearer(created["key"])), 401, "EXPIRED_API_KEY")

    def test_key_expires_by_the_clock(self, client: TestClient, tenant: Tenant) -> None:
        expires_at = datetime.now(UTC) + timedelta(seconds=2)
        created = tenant.create_key(expires_at=expires_at.isoformat())
        assert client.get("/v1/accounts", headers=bearer(created["key"])).status_code == 200
        time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.2)
        faraday_error(client.get("/v1/accounts", headers=bearer(created["key"])), 401, "EXPIRED_API_KEY")

    def test_revoked_and_expired_reads_as_revoked(self, client: TestClient, tenant: Tenant, database: Database) -> None:
        created = tenant.create_key(expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
        assert client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers).status_code == 200
        with database.write() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == uuid.UUID(created["id"]))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        faraday_error(client.get("/v1/accounts", headers=bearer(created["key"])), 401, "INVALID_AUTHORIZATION")

    def test_expired_key_with_wrong_secret_is_invalid_not_expired(
        self, client: TestClient, tenant: Tenant, database: Database
    ) -> None:
        """An expiry must not be revealed to someone who does not hold the secret."""
        created = tenant.create_key(expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
        with database.write() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == uuid.UUID(created["id"]))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        forged = keys.token_for(uuid.UUID(created["id"]), secrets.token_hex(24))
        faraday_error(client.get("/v1/accounts", headers=bearer(forged)), 401, "INVALID_AUTHORIZATION")


class TestForbidden:
    def test_platform_key_cannot_read_accounts(self, client: TestClient, platform_key: str) -> None:
        faraday_error(client.get("/v1/accounts", headers=bearer(platform_key)), 403, "FORBIDDEN")

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/v1/accounts/current"),
            ("POST", "/v1/accounts"),
            ("GET", "/v1/api_keys"),
            ("POST", "/v1/api_keys"),
            ("GET", "/v1/projects"),
            ("POST", "/v1/projects"),
        ],
    )
    def test_platform_key_reaches_nothing_but_organizations(
        self, client: TestClient, platform_key: str, method: str, path: str
    ) -> None:
        response = client.request(method, path, json={"name": "x"}, headers=bearer(platform_key))
        faraday_error(response, 403, "FORBIDDEN")

    def test_key_without_the_scope(self, client: TestClient, tenant: Tenant) -> None:
        reader = tenant.create_key(scopes=["billing:read"])
        faraday_error(client.get("/v1/accounts", headers=bearer(reader["key"])), 403, "FORBIDDEN")

    def test_read_scope_does_not_write(self, client: TestClient, tenant: Tenant) -> None:
        reader = tenant.create_key(scopes=["accounts:read"])
        assert client.get("/v1/accounts", headers=bearer(reader["key"])).status_code == 200
        response = client.post("/v1/accounts", json={"name": "x"}, headers=bearer(reader["key"]))
        faraday_error(response, 403, "FORBIDDEN")
        assert client.get("/v1/accounts", headers=tenant.headers).json() == []

    def test_write_scope_does_not_read(self, client: TestClient, tenant: Tenant) -> None:
        writer = tenant.create_key(scopes=["accounts:write"])
        faraday_error(client.get("/v1/accounts", headers=bearer(writer["key"])), 403, "FORBIDDEN")

    def test_missing_scope_is_checked_before_the_body(self, client: TestClient, tenant: Tenant) -> None:
        reader = tenant.create_key(scopes=["accounts:read"])
        response = client.post("/v1/accounts", json={"name": ""}, headers=bearer(reader["key"]))
        faraday_error(response, 403, "FORBIDDEN")


class TestBasicCredentialsService:
    """``authenticate_basic`` (HTTP Basic, for the Frontier dialect): a bad user name is MALFORMED, never a crash."""

    @pytest.mark.parametrize(
        "user",
        [
            pytest.param("not-an-id", id="words"),
            pytest.param("", id="empty"),
            pytest.param("0" * 31, id="short"),
            pytest.param("g" * 32, id="not-hex"),
            pytest.param(f"{uuid.UUID(int=5).hex}\n", id="hex-trailing-newline"),
            pytest.param(f"{uuid.UUID(int=5)}\n", id="hyphenated-trailing-newline"),
        ],
    )
    def test_user_name_not_a_key_id(self, database: Database, user: str) -> None:
        with database.read() as conn, pytest.raises(MalformedApiKey):
            accounts.authenticate_basic(conn, user, "0" * 48)

    def test_id_with_or_without_hyphens(self, database: Database) -> None:
        with database.write() as conn:
            created = accounts.create_platform_key(conn)
        parsed = keys.parse_key(created.token)
        assert parsed is not None
        with database.read() as conn:
            for user in (parsed.key_id.hex, str(parsed.key_id)):
                assert accounts.authenticate_basic(conn, user, parsed.secret).key_id == parsed.key_id
