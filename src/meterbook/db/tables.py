"""Every table, as SQLAlchemy Core metadata. Migrations create them; a test checks the two agree.

Conventions: UUID primary keys; timestamps are :class:`UtcDateTime`; money is :class:`FixedDecimal`
(integers of 10**-9); integer credits are ``BigInteger``. Only repositories import this module.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

from meterbook.db.types import FixedDecimal, UtcDateTime

__all__ = ["accounts", "api_keys", "metadata", "organizations", "projects"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    # The Frontier dialect bills an organization's usage to this account when no billing id is given.
    Column("default_billing_account_id", Uuid, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("parent_account_id", Uuid, ForeignKey("accounts.id"), nullable=True),
    # Materialized path "<root hex>/<child hex>/…/<own hex>/": the reach of an account key is one prefix test.
    Column("path", String(1000), nullable=False),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_changed_at", UtcDateTime, nullable=False),
    Column("status_error", String(1000), nullable=True),
    Column("suppress_from_reports", Boolean, nullable=False),
    Column("monthly_cost", FixedDecimal(), nullable=False),
    Column("renewal_date", UtcDateTime, nullable=True),
    Column("contract_started_at", UtcDateTime, nullable=False),
    Column("net_terms_days", Integer, nullable=False),
    Column("credit_min", BigInteger, nullable=False),
    Column("stripe_customer_id", String(255), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("archived_at", UtcDateTime, nullable=True),
    Column("last_read_input_at", UtcDateTime, nullable=True),
    Column("last_updated_config_at", UtcDateTime, nullable=False),
    Column("last_updated_output_at", UtcDateTime, nullable=True),
    Index(None, "organization_id", "path"),
    Index(None, "organization_id", "created_at"),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("billing_account_id", Uuid, ForeignKey("accounts.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "organization_id", "created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    # Both null: a platform key, which may only create organizations.
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=True),
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=True),
    Column("name", String(200), nullable=True),
    # SHA-256 of the secret, hex. The secret itself is never stored.
    Column("secret_hash", String(64), nullable=False),
    Column("masked", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index(None, "organization_id", "created_at"),
    Index(None, "account_id"),
)
