"""The inputs the accounts domain accepts, with their rules (one place for both create and merge patch)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from meterbook.kit.money import MONEY_SCALE, is_currency
from meterbook.kit.time import as_utc

__all__ = [
    "AccountCreate",
    "AccountSettings",
    "Branding",
    "Commitment",
    "KeyCreate",
    "OrganizationCreate",
    "ProjectCreate",
]

INT64_MAX = 2**63 - 1
#: The largest monthly commitment: what fits a 64-bit integer at meterbook's money scale, rounded down.
MAX_MONTHLY_COST = Decimal(9_000_000_000)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _currency(code: str) -> str:
    if not is_currency(code):
        raise ValueError(f"{code!r} is not an ISO-4217 currency code")
    return code


def _email(address: str) -> str:
    if not _EMAIL.match(address):
        raise ValueError("is not an e-mail address")
    return address


def _utc(moment: datetime) -> datetime:
    try:
        return as_utc(moment)
    except OverflowError:
        raise ValueError("is outside the range of UTC timestamps (years 1 to 9999)") from None


def _money_digits(amount: Decimal) -> Decimal:
    if amount.as_tuple().exponent < -MONEY_SCALE:  # type: ignore[operator]
        raise ValueError(f"has more than {MONEY_SCALE} decimal places")
    return amount


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Utc = Annotated[AwareDatetime, AfterValidator(_utc)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_currency)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_MONTHLY_COST, allow_inf_nan=False), AfterValidator(_money_digits)]


class _Input(BaseModel):
    # Unknown fields are ignored, as every dialect promises.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Branding(_Input):
    suppress_from_reports: bool = False


class Commitment(_Input):
    monthly_cost: Money = Decimal(0)
    renewal_date: Utc | None = None


class AccountSettings(_Input):
    """Everything about an account that its owner may set."""

    name: Name
    email: Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)] | None = None
    currency: CurrencyCode = "USD"
    status: Literal["new", "starting", "running", "ready", "error"] = "ready"
    status_error: Annotated[str, StringConstraints(max_length=1000)] | None = None
    branding: Branding = Branding()
    commitment: Commitment = Commitment()
    contract_started_at: Utc | None = Field(default=None, description="Default: when the account was created.")
    net_terms_days: int = Field(default=30, ge=0, le=365)
    credit_min: int = Field(default=0, ge=-INT64_MAX, le=INT64_MAX)
    stripe_customer_id: Annotated[str, StringConstraints(max_length=255)] | None = None


class AccountCreate(AccountSettings):
    parent_account_id: uuid.UUID | None = None


class OrganizationCreate(_Input):
    name: Name


class ProjectCreate(_Input):
    name: Name
    billing_account_id: uuid.UUID | None = None


class KeyCreate(_Input):
    account_id: uuid.UUID | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    scopes: list[str] | None = Field(default=None, description="Default: `*` (every scope the caller has).")
    expires_at: Utc | None = None
