"""API keys: ``POST/GET /v1/api_keys``, ``DELETE /v1/api_keys/{id}`` (contract §4), and how secrets are kept (§2.8)."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterbook.accounts import keys
from meterbook.db import Database
from meterbook.db.tables import api_keys
from tests.conftest import Tenant, bearer

TOKEN = re.compile(r"^mbk_[0-9a-f]{32}_[0-9a-f]{48}$")
ANY_TOKEN = re.compile(r"mbk_[0-9a-f]{32}_[0-9a-f]{48}")


def faraday_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["note"]
    return body


def validation_paths(response: Any) -> list[str]:
    body = faraday_error(response, 400, "VALIDATION_FAILED")
    return [item["path"] for item in body["validationErrors"]]


def in_future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def key_id_of(token: str) -> str:
    parsed = keys.parse_key(token)
    assert parsed is not None
    return str(parsed.key_id)


def secret_of(token: str) -> str:
    parsed = keys.parse_key(token)
    assert parsed is not None
    return parsed.secret


def key_ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()}


class Tree:
    """An organization with accounts A (with subaccount A1) and B, each with its account key."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.a = tenant.create_account(name="A")
        self.b = tenant.create_account(name="B")
        self.a1 = tenant.create_account(key=self.a["api_key"], name="A1")
        assert self.a1["parent_account_id"] == self.a["id"]

    @property
    def a_key(self) -> str:
        return str(self.a["api_key"])

    @property
    def b_key(self) -> str:
        return str(self.b["api_key"])

    @property
    def a1_key(self) -> str:
        return str(self.a1["api_key"])


@pytest.fixture
def tree(tenant: Tenant) -> Tree:
    return Tree(tenant)


class TestCreate:
    def test_organization_key_gets_every_scope_by_default(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/api_keys", json={}, headers=tenant.headers)
        assert response.status_code == 201, response.text
        body = response.json()
        assert TOKEN.match(body["key"])
        assert body["scopes"] == ["*"]
        assert body["organization_id"] == tenant.id
        assert body["account_id"] is None
        assert body["revoked_at"] is None
        assert body["expires_at"] is None
        parsed = keys.parse_key(body["key"])
        assert parsed is not None
        assert str(parsed.key_id) == body["id"]

    def test_new_key_works(self, client: TestClient, tenant: Tenant) -> None:
        created = tenant.create_key()
        account = tenant.create_account(key=created["key"], name="made with the new key")
        listed = client.get("/v1/accounts", headers=bearer(created["key"])).json()
        assert [item["id"] for item in listed] == [account["id"]]

    def test_key_is_shown_whole_only_once(self, client: TestClient, tenant: Tenant) -> None:
        created = tenant.create_key(name="ci")
        listed = client.get("/v1/api_keys", headers=tenant.headers).json()
        (item,) = [item for item in listed if item["id"] == created["id"]]
        assert item["key"] == keys.mask(created["key"])
        assert item["key"] != created["key"]
        assert item["name"] == "ci"

    def test_custom_scopes(self, client: TestClient, tenant: Tenant) -> None:
        created = tenant.create_key(scopes=["accounts:read", "billing:read"])
        assert created["scopes"] == ["accounts:read", "billing:read"]
        assert client.get("/v1/accounts", headers=bearer(created["key"])).status_code == 200
        response = client.post("/v1/accounts", json={"name": "x"}, headers=bearer(created["key"]))
        faraday_error(response, 403, "FORBIDDEN")

    def test_every_documented_scope_is_accepted(self, tenant: Tenant) -> None:
        scopes = [
            "accounts:read",
            "accounts:write",
            "billing:read",
            "billing:write",
            "usage:read",
            "usage:write",
            "catalog:write",
            "keys:write",
            "express-accounts-usage:read",
        ]
        assert tenant.create_key(scopes=scopes)["scopes"] == sorted(scopes)

    def test_expiry_in_the_future_is_kept_in_utc(self, tenant: Tenant) -> None:
        created = tenant.create_key(expires_at="2099-01-01T02:00:00+02:00")
        assert created["expires_at"] == "2099-01-01T00:00:00Z"

    def test_needs_keys_write(self, client: TestClient, tenant: Tenant) -> None:
        reader = tenant.create_key(scopes=["accounts:read", "accounts:write"])
        faraday_error(client.post("/v1/api_keys", json={}, headers=bearer(reader["key"])), 403, "FORBIDDEN")
        faraday_error(client.get("/v1/api_keys", headers=bearer(reader["key"])), 403, "FORBIDDEN")


class TestCreateValidation:
    def test_unknown_scope_is_named_by_index(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/api_keys", json={"scopes": ["accounts:read", "bogus"]}, headers=tenant.headers)
        assert validation_paths(response) == ["body.scopes.1"]
        assert "bogus" in response.json()["note"]

    def test_every_unknown_scope_is_named(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/api_keys", json={"scopes": ["x", "accounts:read", "y"]}, headers=tenant.headers)
        assert validation_paths(response) == ["body.scopes.0", "body.scopes.2"]

    def test_empty_scope_list(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/api_keys", json={"scopes": []}, headers=tenant.headers)
        assert validation_paths(response) == ["body.scopes"]

    def test_scopes_not_a_list(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/api_keys", json={"scopes": "accounts:read"}, headers=tenant.headers)
        assert validation_paths(response) == ["body.scopes"]

    def test_expiry_in_the_past(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/api_keys", json={"expires_at": in_future(minutes=-1)}, headers=tenant.headers)
        assert validation_paths(response) == ["body.expires_at"]

    def test_naive_expiry(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/api_keys", json={"expires_at": "2099-01-01T00:00:00"}, headers=tenant.headers)
        assert validation_paths(response) == ["body.expires_at"]

    def test_account_id_not_a_uuid(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/api_keys", json={"account_id": "nope"}, headers=tenant.headers)
        assert validation_paths(response) == ["body.account_id"]

    def test_nothing_is_created_by_a_refused_request(self, client: TestClient, tenant: Tenant) -> None:
        before = key_ids(client.get("/v1/api_keys", headers=tenant.headers))
        for body in ({"scopes": ["bogus"]}, {"scopes": []}, {"expires_at": "2000-01-01T00:00:00Z"}):
            assert client.post("/v1/api_keys", json=body, headers=tenant.headers).status_code == 400
        assert key_ids(client.get("/v1/api_keys", headers=tenant.headers)) == before


class TestNoEscalation:
    @pytest.fixture
    def limited(self, tenant: Tenant) -> dict[str, Any]:
        return tenant.create_key(scopes=["keys:write", "accounts:read"])

    @pytest.mark.parametrize("scopes", [["accounts:write"], ["*"], ["accounts:read", "billing:read"]])
    def test_cannot_grant_a_scope_it_lacks(
        self, client: TestClient, limited: dict[str, Any], scopes: list[str]
    ) -> None:
        response = client.post("/v1/api_keys", json={"scopes": scopes}, headers=bearer(limited["key"]))
        faraday_error(response, 403, "FORBIDDEN")

    def test_can_grant_a_subset(self, client: TestClient, limited: dict[str, Any]) -> None:
        response = client.post("/v1/api_keys", json={"scopes": ["accounts:read"]}, headers=bearer(limited["key"]))
        assert response.status_code == 201, response.text
        assert response.json()["scopes"] == ["accounts:read"]

    def test_default_scopes_never_exceed_the_callers(self, client: TestClient, limited: dict[str, Any]) -> None:
        response = client.post("/v1/api_keys", json={}, headers=bearer(limited["key"]))
        assert response.status_code == 201, response.text
        created = response.json()
        assert set(created["scopes"]) <= {"keys:write", "accounts:read"}
        assert created["scopes"]
        response = client.post("/v1/accounts", json={"name": "x"}, headers=bearer(created["key"]))
        faraday_error(response, 403, "FORBIDDEN")


class TestAccountKeys:
    def test_organization_key_creates_a_key_for_an_account(self, client: TestClient, tree: Tree) -> None:
        created = tree.tenant.create_key(account_id=tree.a["id"])
        assert created["account_id"] == tree.a["id"]
        current = client.get("/v1/accounts/current", headers=bearer(created["key"]))
        assert current.status_code == 200, current.text
        assert current.json()["id"] == tree.a["id"]

    def test_account_key_without_account_id_gets_its_own_account(self, client: TestClient, tree: Tree) -> None:
        response = client.post("/v1/api_keys", json={}, headers=bearer(tree.a_key))
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["account_id"] == tree.a["id"]
        assert created["organization_id"] == tree.tenant.id
        listed = client.get("/v1/accounts", headers=bearer(created["key"])).json()
        assert {item["id"] for item in listed} == {tree.a["id"], tree.a1["id"]}

    def test_account_key_creates_a_key_for_its_subaccount(self, client: TestClient, tree: Tree) -> None:
        response = client.post("/v1/api_keys", json={"account_id": tree.a1["id"]}, headers=bearer(tree.a_key))
        assert response.status_code == 201, response.text
        assert response.json()["account_id"] == tree.a1["id"]

    @pytest.mark.parametrize(("caller", "target"), [("a", "b"), ("a1", "a"), ("a1", "b"), ("b", "a1")])
    def test_account_key_cannot_create_outside_its_subtree(
        self, client: TestClient, tree: Tree, caller: str, target: str
    ) -> None:
        caller_key = str(getattr(tree, caller)["api_key"])
        response = client.post(
            "/v1/api_keys", json={"account_id": getattr(tree, target)["id"]}, headers=bearer(caller_key)
        )
        assert validation_paths(response) == ["body.account_id"]

    def test_other_organizations_account_reads_as_unknown(
        self, client: TestClient, tree: Tree, other_tenant: Tenant
    ) -> None:
        foreign = other_tenant.create_account(name="foreign")
        unknown = str(uuid.uuid4())
        for headers in (tree.tenant.headers, bearer(tree.a_key)):
            foreign_reply = client.post("/v1/api_keys", json={"account_id": foreign["id"]}, headers=headers)
            unknown_reply = client.post("/v1/api_keys", json={"account_id": unknown}, headers=headers)
            assert validation_paths(foreign_reply) == validation_paths(unknown_reply) == ["body.account_id"]
            foreign_error = foreign_reply.json()["validationErrors"][0]
            unknown_error = unknown_reply.json()["validationErrors"][0]
            assert foreign_error["context"] == unknown_error["context"]
            assert foreign_error["message"].replace(foreign["id"], "<id>") == unknown_error["message"].replace(
                unknown, "<id>"
            )


class TestList:
    def test_no_whole_token_in_the_listing(self, client: TestClient, tree: Tree) -> None:
        extra = tree.tenant.create_key(scopes=["accounts:read"])
        response = client.get("/v1/api_keys", headers=tree.tenant.headers)
        assert response.status_code == 200
        for token in (tree.tenant.key, tree.a_key, tree.b_key, tree.a1_key, extra["key"]):
            assert token not in response.text
            assert token[-52:] not in response.text
        assert ANY_TOKEN.search(response.text) is None
        assert len(response.json()) == 5

    def test_listed_keys_are_masked(self, client: TestClient, tree: Tree) -> None:
        listed = client.get("/v1/api_keys", headers=tree.tenant.headers).json()
        masks = {item["key"] for item in listed}
        assert masks == {keys.mask(token) for token in (tree.tenant.key, tree.a_key, tree.b_key, tree.a1_key)}

    def test_organization_key_sees_all_its_keys(self, client: TestClient, tree: Tree) -> None:
        listed = client.get("/v1/api_keys", headers=tree.tenant.headers).json()
        assert {item["account_id"] for item in listed} == {None, tree.a["id"], tree.b["id"], tree.a1["id"]}
        assert {item["organization_id"] for item in listed} == {tree.tenant.id}

    def test_account_key_sees_only_its_subtree(self, client: TestClient, tree: Tree) -> None:
        listed = client.get("/v1/api_keys", headers=bearer(tree.a_key)).json()
        assert sorted(item["account_id"] for item in listed) == sorted([tree.a["id"], tree.a1["id"]])
        listed = client.get("/v1/api_keys", headers=bearer(tree.a1_key)).json()
        assert [item["account_id"] for item in listed] == [tree.a1["id"]]

    def test_other_organizations_keys_are_never_listed(
        self, client: TestClient, tree: Tree, other_tenant: Tenant
    ) -> None:
        other_tenant.create_account()
        ours = key_ids(client.get("/v1/api_keys", headers=tree.tenant.headers))
        theirs = key_ids(client.get("/v1/api_keys", headers=other_tenant.headers))
        assert ours
        assert theirs
        assert not ours & theirs

    def test_revoked_keys_are_listed_with_revoked_at(self, client: TestClient, tenant: Tenant) -> None:
        created = tenant.create_key()
        client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers)
        listed = client.get("/v1/api_keys", headers=tenant.headers).json()
        (item,) = [item for item in listed if item["id"] == created["id"]]
        assert item["revoked_at"] is not None


class TestRevoke:
    def test_revoke(self, client: TestClient, tenant: Tenant) -> None:
        created = tenant.create_key()
        response = client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == created["id"]
        assert body["revoked_at"] is not None
        assert datetime.fromisoformat(body["revoked_at"]) <= datetime.now(UTC)
        assert body["key"] == keys.mask(created["key"])
        faraday_error(client.get("/v1/accounts", headers=bearer(created["key"])), 401, "INVALID_AUTHORIZATION")

    def test_revoke_is_idempotent(self, client: TestClient, tenant: Tenant) -> None:
        created = tenant.create_key()
        first = client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers)
        second = client.delete(f"/v1/api_keys/{created['id']}", headers=tenant.headers)
        assert first.status_code == second.status_code == 200
        assert second.json()["revoked_at"] == first.json()["revoked_at"]

    def test_revoking_one_key_leaves_the_others(self, client: TestClient, tenant: Tenant) -> None:
        first, second = tenant.create_key(), tenant.create_key()
        assert client.delete(f"/v1/api_keys/{first['id']}", headers=tenant.headers).status_code == 200
        assert client.get("/v1/accounts", headers=bearer(second["key"])).status_code == 200
        assert client.get("/v1/accounts", headers=tenant.headers).status_code == 200

    def test_other_organizations_key_is_not_found_and_keeps_working(
        self, client: TestClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = other_tenant.create_key()
        unknown_id = str(uuid.uuid4())
        response = client.delete(f"/v1/api_keys/{theirs['id']}", headers=tenant.headers)
        unknown = client.delete(f"/v1/api_keys/{unknown_id}", headers=tenant.headers)
        theirs_note = faraday_error(response, 404, "NOT_FOUND")["note"]
        unknown_note = faraday_error(unknown, 404, "NOT_FOUND")["note"]
        assert theirs_note.replace(theirs["id"], "<id>") == unknown_note.replace(unknown_id, "<id>")
        assert client.get("/v1/accounts", headers=bearer(theirs["key"])).status_code == 200
        listed = client.get("/v1/api_keys", headers=other_tenant.headers).json()
        (item,) = [item for item in listed if item["id"] == theirs["id"]]
        assert item["revoked_at"] is None

    def test_sibling_account_key_cannot_revoke(self, client: TestClient, tree: Tree) -> None:
        a_key_id = key_id_of(tree.a_key)
        faraday_error(client.delete(f"/v1/api_keys/{a_key_id}", headers=bearer(tree.b_key)), 404, "NOT_FOUND")
        faraday_error(client.delete(f"/v1/api_keys/{a_key_id}", headers=bearer(tree.a1_key)), 404, "NOT_FOUND")
        assert client.get("/v1/accounts/current", headers=bearer(tree.a_key)).status_code == 200

    def test_account_key_cannot_revoke_the_organization_key(self, client: TestClient, tree: Tree) -> None:
        org_key_id = key_id_of(tree.tenant.key)
        faraday_error(client.delete(f"/v1/api_keys/{org_key_id}", headers=bearer(tree.a_key)), 404, "NOT_FOUND")
        assert client.get("/v1/accounts", headers=tree.tenant.headers).status_code == 200

    def test_account_key_revokes_a_key_of_its_subaccount(self, client: TestClient, tree: Tree) -> None:
        a1_key_id = key_id_of(tree.a1_key)
        response = client.delete(f"/v1/api_keys/{a1_key_id}", headers=bearer(tree.a_key))
        assert response.status_code == 200, response.text
        faraday_error(client.get("/v1/accounts/current", headers=bearer(tree.a1_key)), 401, "INVALID_AUTHORIZATION")

    def test_non_uuid_id(self, client: TestClient, tenant: Tenant) -> None:
        response = client.delete("/v1/api_keys/not-a-uuid", headers=tenant.headers)
        assert validation_paths(response) == ["path.key_id"]


class TestSecretsAreHashed:
    def test_no_column_holds_the_secret(self, client: TestClient, tree: Tree, database: Database) -> None:
        extra = tree.tenant.create_key(scopes=["accounts:read"], name="extra")
        tokens = [tree.tenant.key, tree.a_key, tree.b_key, tree.a1_key, extra["key"]]
        with database.read() as conn:
            rows = {row.id: row for row in conn.execute(select(api_keys))}
        for token in tokens:
            parsed = keys.parse_key(token)
            assert parsed is not None
            row = rows[parsed.key_id]
            for column, value in row._mapping.items():
                assert parsed.secret not in str(value), column
                assert parsed.secret[:16] not in str(value), column
            assert row.secret_hash == hashlib.sha256(parsed.secret.encode()).hexdigest()

    def test_no_row_anywhere_holds_a_secret(self, client: TestClient, tree: Tree, database: Database) -> None:
        secrets_ = [secret_of(token) for token in (tree.tenant.key, tree.a_key)]
        with database.read() as conn:
            dumped = [
                str(value)
                for table in api_keys.metadata.sorted_tables
                for row in conn.execute(select(table))
                for value in row
            ]
        for secret in secrets_:
            assert not any(secret in value for value in dumped)
