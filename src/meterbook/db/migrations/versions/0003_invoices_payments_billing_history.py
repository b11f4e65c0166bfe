"""Invoices and their lines, billing runs, payments and their allocations, the billing history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "billing_runs",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("invoice_count", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_billing_runs_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("organization_id", "month", name=op.f("pk_billing_runs")),
    )
    op.create_table(
        "billing_history",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("payment_id", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_billing_history_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_history")),
    )
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
    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", _TS, nullable=False),
        sa.Column("effective_date", _TS, nullable=False),
        sa.Column("due_date", _TS, nullable=False),
        sa.Column("paid_at", _TS, nullable=True),
        sa.Column("voided_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_invoices_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_invoices_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
    )
    op.create_index(
        op.f("ix_invoices_account_id_month_currency"), "invoices", ["account_id", "month", "currency"], unique=True
    )
    op.create_index(op.f("ix_invoices_organization_id_month"), "invoices", ["organization_id", "month"], unique=False)
    op.create_index(op.f("ix_invoices_organization_id_number"), "invoices", ["organization_id", "number"], unique=True)
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("product_id", sa.String(length=100), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=True),
        sa.Column("unrounded_amount", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices")),
        sa.PrimaryKeyConstraint("invoice_id", "line", name=op.f("pk_invoice_lines")),
    )
    op.create_table(
        "payment_allocations",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.String(length=255), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_payment_allocations_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("organization_id", "payment_id", "invoice_id", name=op.f("pk_payment_allocations")),
    )
    op.create_index(op.f("ix_payment_allocations_invoice_id"), "payment_allocations", ["invoice_id"], unique=False)
    op.create_table(
        "payments",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("date", _TS, nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("unapplied", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_payments_account_id_accounts")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_payments_invoice_id_invoices")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_payments_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_payments")),
    )
    op.create_index(
        op.f("ix_payments_account_id_currency_date"), "payments", ["account_id", "currency", "date"], unique=False
    )


def downgrade() -> None:
    for table in ("payments", "payment_allocations", "invoice_lines", "invoices", "billing_history", "billing_runs"):
        op.drop_table(table)
