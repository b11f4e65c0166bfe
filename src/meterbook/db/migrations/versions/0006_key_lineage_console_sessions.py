"""Keys know their maker, and console sessions live on the server.

- ``api_keys.created_by_key_id``: the key that made each key, so that revoking a key revokes every key
  made below it. Keys made before this revision have no recorded maker and are left as they are.
- ``console_sessions``: one row per console sign-in; the cookie names the row, and signing out ends it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("created_by_key_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_keys_created_by_key_id_api_keys"), "api_keys", ["created_by_key_id"], ["id"]
        )
        batch.create_index(op.f("ix_api_keys_created_by_key_id"), ["created_by_key_id"], unique=False)
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_console_sessions_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    op.create_index(op.f("ix_console_sessions_key_id"), "console_sessions", ["key_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_key_id"), table_name="console_sessions")
    op.drop_table("console_sessions")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(op.f("ix_api_keys_created_by_key_id"))
        batch.drop_constraint(op.f("fk_api_keys_created_by_key_id_api_keys"), type_="foreignkey")
        batch.drop_column("created_by_key_id")
