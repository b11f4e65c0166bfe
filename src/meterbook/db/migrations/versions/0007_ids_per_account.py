"""Ids are per account: usage events, credit grants and usage debits, and payments.

Contract invariant 1: a client's id is unique per account, not per organization, so that no key learns
of, or blocks, another account's ids (security finding 5 of issue 15).

- ``usage_events``: primary key (organization_id, id) becomes (account_id, id).
- ``credit_transactions``: the unique index (organization_id, idempotency_key) becomes
  (idempotency_key, account_id): unique per account, and a usage is still found by its id alone.
- ``payments``: primary key (organization_id, id) becomes (account_id, id); an index on
  (organization_id, unapplied) keeps reading one organization's payments (and those that hold money)
  without reading the others', which the old key's prefix did.
- ``payment_allocations``: gains ``account_id`` (the account of its payment, filled from ``payments``);
  its primary key (organization_id, payment_id, invoice_id) becomes (account_id, payment_id, invoice_id).

Every row stays as it is: what was unique per organization is unique per account. On SQLite the three
tables whose primary key changes are copied into new ones (batch mode); on PostgreSQL the keys are
dropped and built again in place.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _set_primary_key(table: str, columns: list[str]) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(f"pk_{table}"), type_="primary")
        batch.create_primary_key(op.f(f"pk_{table}"), columns)


def upgrade() -> None:
    _set_primary_key("usage_events", ["account_id", "id"])

    op.drop_index(op.f("ix_credit_transactions_organization_id_idempotency_key"), table_name="credit_transactions")
    op.create_index(
        op.f("ix_credit_transactions_idempotency_key_account_id"),
        "credit_transactions",
        ["idempotency_key", "account_id"],
        unique=True,
    )

    _set_primary_key("payments", ["account_id", "id"])
    op.create_index(
        op.f("ix_payments_organization_id_unapplied"), "payments", ["organization_id", "unapplied"], unique=False
    )

    with op.batch_alter_table("payment_allocations") as batch:
        batch.add_column(sa.Column("account_id", sa.Uuid(), nullable=True))
    # Until now a payment was (organization_id, id): each allocation's payment is found by those two.
    op.execute(
        "UPDATE payment_allocations SET account_id = (SELECT payments.account_id FROM payments"
        " WHERE payments.organization_id = payment_allocations.organization_id"
        " AND payments.id = payment_allocations.payment_id)"
    )
    orphans = op.get_bind().execute(sa.text("SELECT count(*) FROM payment_allocations WHERE account_id IS NULL"))
    if orphans.scalar_one():
        raise RuntimeError("payment_allocations holds allocations of payments that do not exist; nothing was migrated")
    with op.batch_alter_table("payment_allocations") as batch:
        batch.alter_column("account_id", existing_type=sa.Uuid(), nullable=False)
        batch.create_foreign_key(op.f("fk_payment_allocations_account_id_accounts"), "accounts", ["account_id"], ["id"])
        batch.drop_constraint(op.f("pk_payment_allocations"), type_="primary")
        batch.create_primary_key(op.f("pk_payment_allocations"), ["account_id", "payment_id", "invoice_id"])


def downgrade() -> None:
    # Only possible while no id is used by two accounts of one organization.
    with op.batch_alter_table("payment_allocations") as batch:
        batch.drop_constraint(op.f("pk_payment_allocations"), type_="primary")
        batch.create_primary_key(op.f("pk_payment_allocations"), ["organization_id", "payment_id", "invoice_id"])
        batch.drop_constraint(op.f("fk_payment_allocations_account_id_accounts"), type_="foreignkey")
        batch.drop_column("account_id")
    op.drop_index(op.f("ix_payments_organization_id_unapplied"), table_name="payments")
    _set_primary_key("payments", ["organization_id", "id"])
    op.drop_index(op.f("ix_credit_transactions_idempotency_key_account_id"), table_name="credit_transactions")
    op.create_index(
        op.f("ix_credit_transactions_organization_id_idempotency_key"),
        "credit_transactions",
        ["organization_id", "idempotency_key"],
        unique=True,
    )
    _set_primary_key("usage_events", ["organization_id", "id"])
