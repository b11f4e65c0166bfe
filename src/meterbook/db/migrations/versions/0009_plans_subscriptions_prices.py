"""Plans with versions, subscriptions and negotiated prices (CONTRACT §6, issue 18).

- ``plans``: an organization's plans, each under a ``code`` unique in the organization.
- ``plan_versions``: what a plan is from a month on (name, currency, fee, prices by product, limits by feature,
  included credits and their rollover). Prices and limits are JSON text whose numbers are exact decimal text.
- ``subscriptions``: which plan an account is on, from ``starts_at`` to ``ends_at`` (null: until changed).
- ``account_prices``: an account's negotiated price of a product (a price model, as JSON), from a month on.

Only new tables: no existing row changes. Downgrading drops them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_plans_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    op.create_index(op.f("ix_plans_organization_id_code"), "plans", ["organization_id", "code"], unique=True)
    op.create_table(
        "plan_versions",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("effective_from", _TS, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("prices", sa.Text(), nullable=False),
        sa.Column("limits", sa.Text(), nullable=False),
        sa.Column("included_credits", sa.BigInteger(), nullable=True),
        sa.Column("credits_rollover", sa.String(length=4), nullable=True),
        sa.Column("credits_rollover_cap", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_plan_versions_plan_id_plans")),
        sa.PrimaryKeyConstraint("plan_id", "effective_from", name=op.f("pk_plan_versions")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_subscriptions_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_subscriptions_organization_id_organizations")
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_subscriptions_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(
        op.f("ix_subscriptions_account_id_starts_at"), "subscriptions", ["account_id", "starts_at"], unique=True
    )
    op.create_index(op.f("ix_subscriptions_plan_id"), "subscriptions", ["plan_id"], unique=False)
    op.create_table(
        "account_prices",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.String(length=100), nullable=False),
        sa.Column("effective_from", _TS, nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("price", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_account_prices_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_account_prices_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("account_id", "product_id", "effective_from", name=op.f("pk_account_prices")),
    )


def downgrade() -> None:
    op.drop_table("account_prices")
    op.drop_index(op.f("ix_subscriptions_plan_id"), table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_account_id_starts_at"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("plan_versions")
    op.drop_index(op.f("ix_plans_organization_id_code"), table_name="plans")
    op.drop_table("plans")
