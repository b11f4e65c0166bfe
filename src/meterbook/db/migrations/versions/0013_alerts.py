"""Alerts (CONTRACT §7, issue 19): thresholds on an account's credits, spend, usage or feature usage, and their firings.

- ``alerts``: an organization's alerts, each on one account or on every account (``account_id`` null), with its
  type and threshold (exact decimal text).
- ``alert_triggers``: each firing, unique per (alert, account, period), so that a crossing fires once whatever the
  concurrency; its value and threshold as exact decimal text.
- ``alert_versions``: per organization, a count of the changes to its alerts, which servers compare with the
  alerts they keep in memory.

Only new tables: no existing row changes. Downgrading drops them with every firing recorded.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.String(length=100), nullable=True),
        sa.Column("feature", sa.String(length=200), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_alerts_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_alerts_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_organization_id_account_id"), "alerts", ["organization_id", "account_id"])
    op.create_table(
        "alert_versions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_alert_versions_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_alert_versions")),
    )
    op.create_table(
        "alert_triggers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=80), nullable=False),
        sa.Column("threshold", sa.String(length=40), nullable=False),
        sa.Column("triggered_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_alert_triggers_account_id_accounts")),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_triggers_alert_id_alerts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_triggers")),
    )
    op.create_index(
        op.f("ix_alert_triggers_alert_id_account_id_period"),
        "alert_triggers",
        ["alert_id", "account_id", "period"],
        unique=True,
    )
    op.create_index(op.f("ix_alert_triggers_alert_id_triggered_at"), "alert_triggers", ["alert_id", "triggered_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_triggers_alert_id_triggered_at"), table_name="alert_triggers")
    op.drop_index(op.f("ix_alert_triggers_alert_id_account_id_period"), table_name="alert_triggers")
    op.drop_table("alert_triggers")
    op.drop_table("alert_versions")
    op.drop_index(op.f("ix_alerts_organization_id_account_id"), table_name="alerts")
    op.drop_table("alerts")
