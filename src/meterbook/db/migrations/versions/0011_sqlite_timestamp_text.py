"""SQLite: every stored timestamp in one text form, so that comparing two of them compares the instants.

SQLite keeps a timestamp as text, and ordering or a range compares that text. SQLAlchemy writes
``YYYY-MM-DD HH:MM:SS.ffffff``; the bulk inserts of events and credit transactions used to hand the driver the
datetime itself, and its adapter leaves the fraction out when it is zero (``YYYY-MM-DD HH:MM:SS``), which sorts
*before* the same instant written with its fraction. An event at a whole second (the usual kind) was then missed
by a query for what occurred at or after that very instant (a plan change dated back to it). The writers now
use SQLAlchemy's form; this gives the rows written before it the same form. PostgreSQL keeps ``timestamptz``:
nothing to do there. Downgrading keeps the rows as they are (the old release reads both forms).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: The columns the bulk inserts wrote: (table, column).
WRITTEN_IN_BULK = (
    ("usage_events", "occurred_at"),
    ("usage_events", "received_at"),
    ("credit_transactions", "created_at"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, column in WRITTEN_IN_BULK:
        # Names from the constant above, never from input.
        op.execute(
            f"UPDATE {table} SET {column} = {column} || '.000000' WHERE length({column}) = 19"  # noqa: S608
        )


def downgrade() -> None:
    pass
