"""Usage is rated by plan, and invoice lines carry their tier breakdown (CONTRACT §6, issue 18).

- ``monthly_aggregates.plan_id``: the plan the account was on when the usage occurred (its id as text), ``""``
  for none. Tiers count an account's units of a product in a month per plan, so the plan is part of an
  aggregate's key. Every existing aggregate was rated without a plan: ``""``, and its id stays the same.
- ``invoice_lines.tiers``: a tiered usage line's breakdown, JSON text whose numbers are exact decimal text; null
  for other lines (all existing ones).
- Indexes for a billing run, which reads one organization's subscriptions of a month (its plans' fees) and its
  negotiated prices: ``subscriptions (organization_id, starts_at)``, ``account_prices (organization_id)``.

Downgrading drops both columns; it is refused while an aggregate names a plan (dropping the column would merge
their units into the aggregates without one).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The default fills the rows there are; every insert names the plan, so it goes again.
    with op.batch_alter_table("monthly_aggregates") as batch:
        batch.add_column(sa.Column("plan_id", sa.String(length=36), server_default="", nullable=False))
    with op.batch_alter_table("monthly_aggregates") as batch:
        batch.alter_column("plan_id", server_default=None)
    with op.batch_alter_table("invoice_lines") as batch:
        batch.add_column(sa.Column("tiers", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_subscriptions_organization_id_starts_at"), "subscriptions", ["organization_id", "starts_at"]
    )
    op.create_index(op.f("ix_account_prices_organization_id"), "account_prices", ["organization_id"])


def downgrade() -> None:
    rated_by_plan = op.get_bind().execute(sa.text("SELECT count(*) FROM monthly_aggregates WHERE plan_id <> ''"))
    if rated_by_plan.scalar_one():
        raise RuntimeError(
            "Some usage is rated by a plan: downgrading below 0010 would lose which. Export it first; nothing changed."
        )
    op.drop_index(op.f("ix_account_prices_organization_id"), table_name="account_prices")
    op.drop_index(op.f("ix_subscriptions_organization_id_starts_at"), table_name="subscriptions")
    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_column("tiers")
    with op.batch_alter_table("monthly_aggregates") as batch:
        batch.drop_column("plan_id")
