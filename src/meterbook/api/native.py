"""The native management API under ``/v1``: what an operator needs that the four dialects do not cover.

It answers errors in the Faraday shape, like the rest of ``/v1``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from meterbook.accounts import access
from meterbook.accounts import service as accounts
from meterbook.accounts.models import ApiKey, Organization, Principal, Project
from meterbook.accounts.schemas import KeyCreate, OrganizationCreate, ProjectCreate
from meterbook.api.auth import authorized
from meterbook.api.faraday import ERROR_RESPONSES
from meterbook.api.routing import DialectRoute, reading, respond, writing

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["native"], route_class=DialectRoute, responses=ERROR_RESPONSES)


class ApiKeyOut(BaseModel):
    id: uuid.UUID = Field(description="The key's id; also the user name for HTTP Basic (Frontier dialect).")
    organization_id: uuid.UUID | None
    account_id: uuid.UUID | None = Field(description="Set for an account key; null for an organization key.")
    name: str | None
    key: str = Field(
        description="The whole key in the reply that created it; masked (prefix and last four) afterwards."
    )
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey, token: str | None = None) -> ApiKeyOut:
        return cls(
            id=key.id,
            organization_id=key.organization_id,
            account_id=key.account_id,
            name=key.name,
            key=token or key.masked,
            scopes=sorted(key.scopes),
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


class OrganizationOut(BaseModel):
    id: uuid.UUID
    name: str
    default_billing_account_id: uuid.UUID | None
    created_at: datetime
    api_key: ApiKeyOut = Field(description="The organization's first key (every scope), shown whole only here.")

    @classmethod
    def of(cls, organization: Organization, key: ApiKeyOut) -> OrganizationOut:
        return cls(
            id=organization.id,
            name=organization.name,
            default_billing_account_id=organization.default_billing_account_id,
            created_at=organization.created_at,
            api_key=key,
        )


class ProjectOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    billing_account_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        return cls(**vars(project))


AnyKey = Annotated[Principal, Depends(authorized(None))]
KeyManager = Annotated[Principal, Depends(authorized(access.MANAGE_KEYS))]
KeyLister = Annotated[Principal, Depends(authorized(access.LIST_KEYS))]
AccountsReader = Annotated[Principal, Depends(authorized(access.READ_ACCOUNTS))]
ProjectManager = Annotated[Principal, Depends(authorized(access.MANAGE_PROJECTS))]


@router.post("/organizations", response_model=OrganizationOut, status_code=201)
def create_organization(request: Request, principal: AnyKey, body: OrganizationCreate) -> Response:
    """Create an organization (platform key only); the reply holds its first organization key, once."""
    with writing(request) as conn:
        organization, created = accounts.create_organization(conn, principal, body)
    return respond(OrganizationOut.of(organization, ApiKeyOut.of(created.key, created.token)), status_code=201)


@router.post("/api_keys", response_model=ApiKeyOut, status_code=201)
def create_api_key(request: Request, principal: KeyManager, body: KeyCreate) -> Response:
    """Create a key for the organization, or for an account the caller reaches; the reply shows it whole, once."""
    with writing(request) as conn:
        created = accounts.create_key(conn, principal, body)
    return respond(ApiKeyOut.of(created.key, created.token), status_code=201)


@router.get("/api_keys", response_model=list[ApiKeyOut])
def list_api_keys(request: Request, principal: KeyLister) -> Response:
    """List the keys the caller reaches (masked), revoked ones included."""
    with reading(request) as conn:
        found = accounts.list_keys(conn, principal)
    return respond([ApiKeyOut.of(key) for key in found])


@router.delete("/api_keys/{key_id}", response_model=ApiKeyOut)
def revoke_api_key(request: Request, principal: KeyManager, key_id: uuid.UUID) -> Response:
    """Revoke a key; it is refused from the next request on."""
    with writing(request) as conn:
        key = accounts.revoke_key(conn, principal, key_id)
    return respond(ApiKeyOut.of(key))


@router.post("/projects", response_model=ProjectOut, status_code=201)
def create_project(request: Request, principal: ProjectManager, body: ProjectCreate) -> Response:
    """Create a project; it may name the account its usage is billed to."""
    with writing(request) as conn:
        project = accounts.create_project(conn, principal, body)
    return respond(ProjectOut.of(project), status_code=201)


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(request: Request, principal: AccountsReader) -> Response:
    """List the projects the key reaches (an account key: those billed to an account it reaches)."""
    with reading(request) as conn:
        found = accounts.list_projects(conn, principal)
    return respond([ProjectOut.of(project) for project in found])
