"""``POST /v1/organizations`` (platform key) and ``POST/GET /v1/projects`` (contract §1, §4)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbook.accounts import keys
from tests.conftest import Tenant, bearer

TOKEN = re.compile(r"^mbk_[0-9a-f]{32}_[0-9a-f]{48}$")


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


class TestCreateOrganization:
    def test_platform_key_creates_an_organization_with_its_first_key(
        self, client: TestClient, platform_key: str
    ) -> None:
        response = client.post("/v1/organizations", json={"name": "  Initech  "}, headers=bearer(platform_key))
        assert response.status_code == 201, response.text
        body = response.json()
        assert str(uuid.UUID(body["id"])) == body["id"]
        assert body["name"] == "Initech"
        assert body["default_billing_account_id"] is None
        key = body["api_key"]
        assert TOKEN.match(key["key"])
        assert key["scopes"] == ["*"]
        assert key["organization_id"] == body["id"]
        assert key["account_id"] is None
        parsed = keys.parse_key(key["key"])
        assert parsed is not None
        assert str(parsed.key_id) == key["id"]

    def test_first_key_works_on_an_empty_organization(self, client: TestClient, platform_key: str) -> None:
        body = client.post("/v1/organizations", json={"name": "Initech"}, headers=bearer(platform_key)).json()
        response = client.get("/v1/accounts", headers=bearer(body["api_key"]["key"]))
        assert response.status_code == 200, response.text
        assert response.json() == []

    def test_first_key_is_masked_afterwards(self, client: TestClient, platform_key: str) -> None:
        body = client.post("/v1/organizations", json={"name": "Initech"}, headers=bearer(platform_key)).json()
        token = body["api_key"]["key"]
        listed = client.get("/v1/api_keys", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert [item["key"] for item in listed.json()] == [keys.mask(token)]
        assert token not in listed.text

    def test_organizations_are_separate(self, client: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
        assert tenant.id != other_tenant.id
        account = tenant.create_account()
        assert client.get("/v1/accounts", headers=other_tenant.headers).json() == []
        faraday_error(client.get(f"/v1/accounts/{account['id']}", headers=other_tenant.headers), 404, "NOT_FOUND")

    def test_organization_key_cannot_create_organizations(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/organizations", json={"name": "Evil"}, headers=tenant.headers)
        faraday_error(response, 403, "FORBIDDEN")

    def test_account_key_cannot_create_organizations(self, client: TestClient, tenant: Tenant) -> None:
        account = tenant.create_account()
        response = client.post("/v1/organizations", json={"name": "Evil"}, headers=bearer(account["api_key"]))
        faraday_error(response, 403, "FORBIDDEN")

    @pytest.mark.parametrize(
        ("body", "path"),
        [({"name": ""}, "body.name"), ({"name": "   "}, "body.name"), ({}, "body.name"), ({"name": 3}, "body.name")],
    )
    def test_invalid_name(self, client: TestClient, platform_key: str, body: dict[str, Any], path: str) -> None:
        response = client.post("/v1/organizations", json=body, headers=bearer(platform_key))
        assert validation_paths(response) == [path]

    def test_name_too_long(self, client: TestClient, platform_key: str) -> None:
        response = client.post("/v1/organizations", json={"name": "x" * 201}, headers=bearer(platform_key))
        assert validation_paths(response) == ["body.name"]


class Tree:
    """An organization with accounts A (with subaccount A1) and B."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.a = tenant.create_account(name="A")
        self.b = tenant.create_account(name="B")
        self.a1 = tenant.create_account(key=self.a["api_key"], name="A1")


@pytest.fixture
def tree(tenant: Tenant) -> Tree:
    return Tree(tenant)


def create_project(client: TestClient, key: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/projects", json=body, headers=bearer(key))
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    return project


def project_names(client: TestClient, key: str) -> list[str]:
    response = client.get("/v1/projects", headers=bearer(key))
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


class TestCreateProject:
    def test_without_billing_account(self, client: TestClient, tenant: Tenant) -> None:
        project = create_project(client, tenant.key, name="web")
        assert project["name"] == "web"
        assert project["organization_id"] == tenant.id
        assert project["billing_account_id"] is None
        assert str(uuid.UUID(project["id"])) == project["id"]
        assert project["created_at"].endswith("Z")

    def test_with_billing_account(self, client: TestClient, tree: Tree) -> None:
        project = create_project(client, tree.tenant.key, name="web", billing_account_id=tree.a1["id"])
        assert project["billing_account_id"] == tree.a1["id"]
        assert client.get("/v1/projects", headers=tree.tenant.headers).json() == [project]

    def test_billing_account_of_another_organization(
        self, client: TestClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        foreign = other_tenant.create_account()
        response = client.post(
            "/v1/projects", json={"name": "web", "billing_account_id": foreign["id"]}, headers=tenant.headers
        )
        assert validation_paths(response) == ["body.billing_account_id"]
        assert client.get("/v1/projects", headers=tenant.headers).json() == []

    def test_unknown_billing_account(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/v1/projects", json={"name": "web", "billing_account_id": str(uuid.uuid4())}, headers=tenant.headers
        )
        assert validation_paths(response) == ["body.billing_account_id"]

    def test_billing_account_not_a_uuid(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/projects", json={"name": "web", "billing_account_id": "42"}, headers=tenant.headers)
        assert validation_paths(response) == ["body.billing_account_id"]

    @pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "  "}, {"name": "x" * 201}])
    def test_invalid_name(self, client: TestClient, tenant: Tenant, body: dict[str, Any]) -> None:
        response = client.post("/v1/projects", json=body, headers=tenant.headers)
        assert validation_paths(response) == ["body.name"]

    def test_account_key_defaults_billing_to_its_account(self, client: TestClient, tree: Tree) -> None:
        project = create_project(client, tree.a["api_key"], name="mine")
        assert project["billing_account_id"] == tree.a["id"]
        assert project["organization_id"] == tree.tenant.id

    def test_account_key_may_bill_its_subaccount(self, client: TestClient, tree: Tree) -> None:
        project = create_project(client, tree.a["api_key"], name="sub", billing_account_id=tree.a1["id"])
        assert project["billing_account_id"] == tree.a1["id"]

    @pytest.mark.parametrize(("caller", "target"), [("a", "b"), ("a1", "a")])
    def test_account_key_cannot_bill_outside_its_subtree(
        self, client: TestClient, tree: Tree, caller: str, target: str
    ) -> None:
        response = client.post(
            "/v1/projects",
            json={"name": "x", "billing_account_id": getattr(tree, target)["id"]},
            headers=bearer(getattr(tree, caller)["api_key"]),
        )
        assert validation_paths(response) == ["body.billing_account_id"]
        assert project_names(client, tree.tenant.key) == []


class TestListProjects:
    def test_lists_only_own_organizations_projects(
        self, client: TestClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        create_project(client, tenant.key, name="ours-1")
        create_project(client, other_tenant.key, name="theirs")
        create_project(client, tenant.key, name="ours-2")
        assert project_names(client, tenant.key) == ["ours-1", "ours-2"]
        assert project_names(client, other_tenant.key) == ["theirs"]

    def test_account_key_sees_projects_billed_to_its_subtree(self, client: TestClient, tree: Tree) -> None:
        org = tree.tenant.key
        create_project(client, org, name="to-a", billing_account_id=tree.a["id"])
        create_project(client, org, name="to-a1", billing_account_id=tree.a1["id"])
        create_project(client, org, name="to-b", billing_account_id=tree.b["id"])
        create_project(client, org, name="unbilled")
        assert sorted(project_names(client, org)) == ["to-a", "to-a1", "to-b", "unbilled"]
        assert sorted(project_names(client, tree.a["api_key"])) == ["to-a", "to-a1"]
        assert project_names(client, tree.a1["api_key"]) == ["to-a1"]
        assert project_names(client, tree.b["api_key"]) == ["to-b"]

    def test_empty(self, client: TestClient, tenant: Tenant) -> None:
        assert project_names(client, tenant.key) == []


class TestProjectScopes:
    def test_read_scope_cannot_create(self, client: TestClient, tenant: Tenant) -> None:
        reader = tenant.create_key(scopes=["accounts:read"])
        response = client.post("/v1/projects", json={"name": "x"}, headers=bearer(reader["key"]))
        faraday_error(response, 403, "FORBIDDEN")
        assert project_names(client, tenant.key) == []

    def test_read_scope_can_list(self, client: TestClient, tenant: Tenant) -> None:
        create_project(client, tenant.key, name="web")
        reader = tenant.create_key(scopes=["accounts:read"])
        assert project_names(client, reader["key"]) == ["web"]

    def test_write_scope_creates(self, client: TestClient, tenant: Tenant) -> None:
        writer = tenant.create_key(scopes=["accounts:write"])
        assert create_project(client, writer["key"], name="web")["organization_id"] == tenant.id

    def test_unrelated_scope_cannot_list(self, client: TestClient, tenant: Tenant) -> None:
        billing = tenant.create_key(scopes=["billing:read"])
        faraday_error(client.get("/v1/projects", headers=bearer(billing["key"])), 403, "FORBIDDEN")

    def test_platform_key_cannot_touch_projects(self, client: TestClient, platform_key: str) -> None:
        faraday_error(client.get("/v1/projects", headers=bearer(platform_key)), 403, "FORBIDDEN")
        faraday_error(client.post("/v1/projects", json={"name": "x"}, headers=bearer(platform_key)), 403, "FORBIDDEN")
