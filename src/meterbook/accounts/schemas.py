"""The inputs the accounts domain accepts, with their rules (one place for both create and merge patch)."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from meterbook.kit.fields import INT64_MAX, CurrencyCode, InputModel, Money, Name, NativeInput, Utc, WholeNumber

__all__ = [
    "AccountCreate",
    "AccountSettings",
    "Branding",
    "Commitment",
    "KeyCreate",
    "OrganizationCreate",
    "ProjectCreate",
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(address: str) -> str:
    if not _EMAIL.match(address):
        raise ValueError("is not an e-mail address")
    return address


class Branding(InputModel):
    suppress_from_reports: bool = False


class Commitment(InputModel):
    monthly_cost: Money = Decimal(0)
    renewal_date: Utc | None = None


class AccountSettings(InputModel):
    """Everything about an account that its owner may set."""

    name: Name
    email: Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)] | None = None
    currency: CurrencyCode = "USD"
    status: Literal["new", "starting", "running", "ready", "error"] = "ready"
    status_error: Annotated[str, StringConstraints(max_length=1000)] | None = None
    branding: Branding = Branding()
    commitment: Commitment = Commitment()
    contract_started_at: Utc | None = Field(default=None, description="Default: when the account was created.")
    net_terms_days: WholeNumber = Field(default=30, ge=0, le=365)
    credit_min: WholeNumber = Field(default=0, ge=-INT64_MAX, le=INT64_MAX)
    stripe_customer_id: Annotated[str, StringConstraints(max_length=255)] | None = None


class AccountCreate(AccountSettings):
    parent_account_id: uuid.UUID | None = None


class OrganizationCreate(NativeInput):
    name: Name


class ProjectCreate(NativeInput):
    name: Name
    billing_account_id: uuid.UUID | None = None


class KeyCreate(NativeInput):
    account_id: uuid.UUID | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    scopes: list[str] | None = Field(default=None, description="Default: `*` (every scope the caller has).")
    expires_at: Utc | None = None
