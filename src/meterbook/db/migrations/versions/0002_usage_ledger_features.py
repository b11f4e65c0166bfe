"""Usage events, monthly aggregates, the double-entry credit ledger, features and limits, the product catalog.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "product_prices",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.String(length=100), nullable=False),
        sa.Column("effective_from", _TS, nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "product_id", "effective_from", name=op.f("pk_product_prices")),
    )
    op.create_table(
        "features",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("default_limit", sa.BigInteger(), nullable=True),
        sa.Column("reset", sa.String(length=8), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_features_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("organization_id", "name", name=op.f("pk_features")),
    )
    op.create_table(
        "products",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.String(length=100), nullable=False),
        sa.Column("aggr_product_id", sa.String(length=100), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("unit", sa.String(length=50), nullable=False),
        sa.Column("wallet_name", sa.String(length=100), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_products_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("organization_id", "product_id", name=op.f("pk_products")),
    )
    op.create_table(
        "credit_balances",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_credit_balances_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_credit_balances")),
    )
    op.create_table(
        "credit_transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=True),
        sa.Column("reverts_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.String(length=32), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_credit_transactions_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["reverts_id"],
            ["credit_transactions.id"],
            name=op.f("fk_credit_transactions_reverts_id_credit_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_transactions")),
    )
    op.create_index(
        op.f("ix_credit_transactions_account_id_created_at"),
        "credit_transactions",
        ["account_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_credit_transactions_organization_id_idempotency_key"),
        "credit_transactions",
        ["organization_id", "idempotency_key"],
        unique=True,
    )
    op.create_index(op.f("ix_credit_transactions_reverts_id"), "credit_transactions", ["reverts_id"], unique=False)
    op.create_table(
        "feature_limits",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("limit", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_feature_limits_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", "feature", name=op.f("pk_feature_limits")),
    )
    op.create_table(
        "feature_usage",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_feature_usage_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", "feature", "period", name=op.f("pk_feature_usage")),
    )
    op.create_table(
        "monthly_aggregates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.String(length=100), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("resolution", sa.String(length=100), nullable=False),
        sa.Column("unit", sa.String(length=50), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("wallet_name", sa.String(length=100), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("units_whole", sa.BigInteger(), nullable=False),
        sa.Column("units_nanos", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_monthly_aggregates_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_aggregates")),
    )
    op.create_index(
        op.f("ix_monthly_aggregates_account_id_month"), "monthly_aggregates", ["account_id", "month"], unique=False
    )
    op.create_index(
        op.f("ix_monthly_aggregates_organization_id_month_account_id"),
        "monthly_aggregates",
        ["organization_id", "month", "account_id"],
        unique=False,
    )
    op.create_table(
        "usage_events",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("product_id", sa.String(length=100), nullable=True),
        sa.Column("feature", sa.String(length=200), nullable=True),
        sa.Column("quantity", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=True),
        sa.Column("resolution", sa.String(length=100), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("aggregate_id", sa.String(length=32), nullable=True),
        sa.Column("unit_price", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_usage_events_account_id_accounts")),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_usage_events")),
    )
    op.create_index(
        op.f("ix_usage_events_account_id_occurred_at"), "usage_events", ["account_id", "occurred_at"], unique=False
    )
    op.create_table(
        "ledger_entries",
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("system_account", sa.String(length=32), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["credit_transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_credit_transactions"),
        ),
        sa.PrimaryKeyConstraint("transaction_id", "line", name=op.f("pk_ledger_entries")),
    )


def downgrade() -> None:
    op.drop_table("ledger_entries")
    op.drop_table("usage_events")
    op.drop_table("monthly_aggregates")
    op.drop_table("feature_usage")
    op.drop_table("feature_limits")
    op.drop_table("credit_transactions")
    op.drop_table("credit_balances")
    op.drop_table("products")
    op.drop_table("features")
    op.drop_table("product_prices")
