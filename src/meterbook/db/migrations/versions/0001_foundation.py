"""Foundation: organizations, accounts with subaccounts, projects, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("default_billing_account_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("parent_account_id", sa.Uuid(), nullable=True),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_changed_at", _TS, nullable=False),
        sa.Column("status_error", sa.String(1000), nullable=True),
        sa.Column("suppress_from_reports", sa.Boolean(), nullable=False),
        sa.Column("monthly_cost", sa.BigInteger(), nullable=False),
        sa.Column("renewal_date", _TS, nullable=True),
        sa.Column("contract_started_at", _TS, nullable=False),
        sa.Column("net_terms_days", sa.Integer(), nullable=False),
        sa.Column("credit_min", sa.BigInteger(), nullable=False),
        sa.Column("stripe_customer_id", sa.String(255), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("archived_at", _TS, nullable=True),
        sa.Column("last_read_input_at", _TS, nullable=True),
        sa.Column("last_updated_config_at", _TS, nullable=False),
        sa.Column("last_updated_output_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_accounts_organization_id_organizations"
        ),
        sa.ForeignKeyConstraint(["parent_account_id"], ["accounts.id"], name="fk_accounts_parent_account_id_accounts"),
    )
    op.create_index("ix_accounts_organization_id_path", "accounts", ["organization_id", "path"])
    op.create_index("ix_accounts_organization_id_created_at", "accounts", ["organization_id", "created_at"])
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("billing_account_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_projects_organization_id_organizations"
        ),
        sa.ForeignKeyConstraint(
            ["billing_account_id"], ["accounts.id"], name="fk_projects_billing_account_id_accounts"
        ),
    )
    op.create_index("ix_projects_organization_id_created_at", "projects", ["organization_id", "created_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("masked", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_api_keys_organization_id_organizations"
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_api_keys_account_id_accounts"),
    )
    op.create_index("ix_api_keys_organization_id_created_at", "api_keys", ["organization_id", "created_at"])
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("projects")
    op.drop_table("accounts")
    op.drop_table("organizations")
