"""What the accounts domain stores and hands to its callers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

__all__ = [
    "ACCOUNT_STATUSES",
    "ALL_SCOPES",
    "PLATFORM_SCOPE",
    "Account",
    "ApiKey",
    "CreatedKey",
    "Organization",
    "Principal",
    "Project",
]

ALL_SCOPES: Final = frozenset(
    {
        "accounts:read",
        "accounts:write",
        "billing:read",
        "billing:write",
        "usage:read",
        "usage:write",
        "catalog:write",
        "keys:write",
        "express-accounts-usage:read",
    }
)
#: The one scope of a platform key: it may create organizations and reaches nothing else.
PLATFORM_SCOPE: Final = "platform"
ACCOUNT_STATUSES: Final = ("new", "starting", "running", "ready", "error")


@dataclass(frozen=True)
class Principal:
    """Who is calling: an authenticated API key, and what it may reach."""

    key_id: uuid.UUID
    organization_id: uuid.UUID | None
    account_id: uuid.UUID | None
    #: The materialized path of the key's account; every account it reaches starts with it.
    account_path: str | None
    scopes: frozenset[str]
    #: When the key was made to expire: a key it makes never outlives it.
    expires_at: datetime | None = None
    #: The key's account is archived: the key may read, never write.
    account_archived: bool = False

    @property
    def is_platform(self) -> bool:
        return self.organization_id is None

    def has_scope(self, scope: str) -> bool:
        return not self.is_platform and ("*" in self.scopes or scope in self.scopes)


@dataclass(frozen=True)
class Organization:
    id: uuid.UUID
    name: str
    default_billing_account_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    organization_id: uuid.UUID
    parent_account_id: uuid.UUID | None
    path: str
    name: str
    email: str | None
    currency: str
    status: str
    status_changed_at: datetime
    status_error: str | None
    suppress_from_reports: bool
    monthly_cost: Decimal
    renewal_date: datetime | None
    contract_started_at: datetime
    net_terms_days: int
    credit_min: int
    stripe_customer_id: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    last_read_input_at: datetime | None
    last_updated_config_at: datetime
    last_updated_output_at: datetime | None
    #: The account's key as it may be shown: whole only in the reply that created it, masked after.
    api_key: str | None


@dataclass(frozen=True)
class Project:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    billing_account_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    organization_id: uuid.UUID | None
    account_id: uuid.UUID | None
    name: str | None
    masked: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    #: The key that made this one; revoking that key revokes this one too. None: made by the CLI.
    created_by_key_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CreatedKey:
    """A key just made: the one moment its whole token exists outside the client."""

    key: ApiKey
    token: str
