"""Read paths at scale: indexes for each read's filter and order, and the billing history counted per day.

- ``monthly_aggregates``: (organization, month, id, account), (account, month, id, organization) and
  (organization, month) replace (account, month): a Talkdesk search counts and pages in an index, and
  reads only its page's rows.
- ``invoices``: (organization, account, number): one account's invoices in order, for the Faraday view.
- ``billing_history``: one index per Cloudflare order, ending with the id that breaks ties (and the other
  filter column), replacing (organization, occurred_at) and (account, occurred_at).
- ``billing_history_days`` and ``billing_history_slices``: items per organization, type and action, per UTC
  day and per instant and first hex digit of the id; filled here from the items already stored, and from
  now on changed in the same transaction as the items they count.

docs/decisions.md, "Read paths at scale", says why.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_index(op.f("ix_monthly_aggregates_account_id_month"), table_name="monthly_aggregates")
    op.create_index(
        op.f("ix_monthly_aggregates_organization_id_month_id_account_id"),
        "monthly_aggregates",
        ["organization_id", "month", "id", "account_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_monthly_aggregates_account_id_month_id_organization_id"),
        "monthly_aggregates",
        ["account_id", "month", "id", "organization_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_monthly_aggregates_organization_id_month"),
        "monthly_aggregates",
        ["organization_id", "month"],
        unique=False,
    )
    op.create_index(
        op.f("ix_invoices_organization_id_account_id_number"),
        "invoices",
        ["organization_id", "account_id", "number"],
        unique=False,
    )
    op.drop_index(op.f("ix_billing_history_organization_id_occurred_at"), table_name="billing_history")
    op.drop_index(op.f("ix_billing_history_account_id_occurred_at"), table_name="billing_history")
    for columns in (
        ["organization_id", "occurred_at", "id"],
        ["organization_id", "type", "occurred_at", "id", "action"],
        ["organization_id", "action", "occurred_at", "id", "type"],
        ["account_id", "occurred_at", "id"],
    ):
        op.create_index(op.f(f"ix_billing_history_{'_'.join(columns)}"), "billing_history", columns, unique=False)
    op.create_table(
        "billing_history_days",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("day", _TS, nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("item_count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_billing_history_days_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("organization_id", "day", "type", "action", name=op.f("pk_billing_history_days")),
    )
    op.create_table(
        "billing_history_slices",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("shard", sa.String(length=1), nullable=False),
        sa.Column("item_count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_billing_history_slices_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "occurred_at", "type", "action", "shard", name=op.f("pk_billing_history_slices")
        ),
    )
    # The counts of the items already stored. Midnight UTC of an item's day, as each database stores a UTC
    # instant: SQLite keeps the naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff" (the day is its first ten
    # characters), PostgreSQL a timestamptz.
    if op.get_bind().dialect.name == "sqlite":
        day = "substr(occurred_at, 1, 10) || ' 00:00:00.000000'"
    else:
        day = "date_trunc('day', occurred_at, 'UTC')"
    op.execute(
        "INSERT INTO billing_history_days (organization_id, day, type, action, item_count) "  # noqa: S608
        f"SELECT organization_id, {day}, type, action, count(*) FROM billing_history "
        f"GROUP BY organization_id, {day}, type, action"
    )
    op.execute(
        "INSERT INTO billing_history_slices (organization_id, occurred_at, type, action, shard, item_count) "
        "SELECT organization_id, occurred_at, type, action, substr(id, 1, 1), count(*) FROM billing_history "
        "GROUP BY organization_id, occurred_at, type, action, substr(id, 1, 1)"
    )


def downgrade() -> None:
    op.drop_table("billing_history_slices")
    op.drop_table("billing_history_days")
    for columns in (
        ["organization_id", "occurred_at", "id"],
        ["organization_id", "type", "occurred_at", "id", "action"],
        ["organization_id", "action", "occurred_at", "id", "type"],
        ["account_id", "occurred_at", "id"],
    ):
        op.drop_index(op.f(f"ix_billing_history_{'_'.join(columns)}"), table_name="billing_history")
    op.create_index(
        op.f("ix_billing_history_account_id_occurred_at"),
        "billing_history",
        ["account_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_billing_history_organization_id_occurred_at"),
        "billing_history",
        ["organization_id", "occurred_at"],
        unique=False,
    )
    op.drop_index(op.f("ix_invoices_organization_id_account_id_number"), table_name="invoices")
    op.drop_index(op.f("ix_monthly_aggregates_organization_id_month"), table_name="monthly_aggregates")
    op.drop_index(op.f("ix_monthly_aggregates_account_id_month_id_organization_id"), table_name="monthly_aggregates")
    op.drop_index(op.f("ix_monthly_aggregates_organization_id_month_id_account_id"), table_name="monthly_aggregates")
    op.create_index(
        op.f("ix_monthly_aggregates_account_id_month"), "monthly_aggregates", ["account_id", "month"], unique=False
    )
