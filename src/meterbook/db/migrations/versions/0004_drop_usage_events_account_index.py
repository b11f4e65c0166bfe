"""Drop the index of usage events by account and time.

No query reads events by account: aggregates answer every usage question, and `verify` scans the
table whole. The index cost one random B-tree insertion per event, a page written per event once it
outgrew the cache: ingestion slowed from 13 to 51 µs per event over 300,000 events with it, and
stayed at 13.5 µs without it (bench notes in bench/README.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_usage_events_account_id_occurred_at"), table_name="usage_events")


def downgrade() -> None:
    op.create_index(
        op.f("ix_usage_events_account_id_occurred_at"), "usage_events", ["account_id", "occurred_at"], unique=False
    )
