"""Transaction ids are Frontier's: a usage debit has its usage's id, a grant its grant's, a revert a derived one.

CONTRACT §3.4. ``credit_transactions.idempotency_key`` held ``usage:<event id>`` and ``grant:<grant id>``,
and nothing for reverts; it now holds the id clients know the transaction by, still unique per account:

- a usage debit: the event's id (``usage:`` dropped);
- a grant or purchase: the grant's id (``grant:`` dropped), unless the account has a usage of that id, in which
  case the grant keeps ``grant:<id>`` (the two were distinct before, and the usage's id is what a revert names);
- a revert: Frontier's ``TxUUID(usage id, n, account id)`` (a UUIDv5 in namespace
  ``967416d0-716e-4308-b58f-2468ac14f20a`` of the parts joined by ``:``), n counting the usage's earlier reverts
  in the order they were made; and, as Frontier writes a revert, source ``system.revert.<the usage's source>``
  (cut to the column's 100 characters), description ``Revert: <the usage's description>``, metadata the usage's
  plus ``revert_request_using: <usage id>``.

No column changes. Downgrading puts the prefixes back and clears the reverts' ids (their source, description and
metadata stay as Frontier's).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_NAMESPACE = uuid.UUID("967416d0-716e-4308-b58f-2468ac14f20a")
_SOURCE_LENGTH = 100

_transactions = sa.table(
    "credit_transactions",
    sa.column("id", sa.Uuid()),
    sa.column("account_id", sa.Uuid()),
    sa.column("kind", sa.String()),
    sa.column("idempotency_key", sa.String()),
    sa.column("reverts_id", sa.Uuid()),
    sa.column("source", sa.String()),
    sa.column("description", sa.String()),
    sa.column("metadata", sa.Text()),
    sa.column("created_at", sa.DateTime()),
)


def _with_revert_request(metadata: str | None, usage_id: str) -> str:
    """The usage's metadata (JSON text) with ``revert_request_using``, its numbers kept as they were written."""
    found: dict[str, Any] = json.loads(metadata, parse_float=_Raw, parse_int=_Raw) if metadata else {}
    return _dumps({**found, "revert_request_using": usage_id})


class _Raw(str):
    """A JSON number kept as the text it was written as."""


def _dumps(value: Any) -> str:
    if isinstance(value, _Raw):
        return str.__str__(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {_dumps(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dumps(item) for item in value) + "]"
    return json.dumps(value)


def upgrade() -> None:
    conn = op.get_bind()
    t = _transactions
    conn.execute(
        sa.update(t)
        .where(t.c.kind == "usage", t.c.idempotency_key.like("usage:%"))
        .values(idempotency_key=sa.func.substr(t.c.idempotency_key, 7))
    )
    other = t.alias("other")
    clash = (
        sa.select(other.c.id)
        .where(other.c.account_id == t.c.account_id, other.c.idempotency_key == sa.func.substr(t.c.idempotency_key, 7))
        .exists()
    )
    conn.execute(
        sa.update(t)
        .where(t.c.kind.in_(["grant", "purchase"]), t.c.idempotency_key.like("grant:%"), ~clash)
        .values(idempotency_key=sa.func.substr(t.c.idempotency_key, 7))
    )

    usage = t.alias("usage")
    reverts = conn.execute(
        sa.select(
            t.c.id,
            t.c.account_id,
            t.c.reverts_id,
            usage.c.idempotency_key.label("usage_key"),
            usage.c.id.label("usage_id"),
            usage.c.source.label("usage_source"),
            usage.c.description.label("usage_description"),
            usage.c.metadata.label("usage_metadata"),
        )
        .join(usage, usage.c.id == t.c.reverts_id)
        .where(t.c.kind == "revert")
        .order_by(t.c.reverts_id, t.c.created_at, t.c.id)
    ).all()
    taken = {
        (row.account_id, row.idempotency_key)
        for row in conn.execute(sa.select(t.c.account_id, t.c.idempotency_key).where(t.c.idempotency_key.is_not(None)))
    }
    earlier: dict[uuid.UUID, int] = {}
    for row in reverts:
        usage_id = row.usage_key if row.usage_key is not None else str(row.usage_id)
        n = earlier.get(row.reverts_id, 0)
        earlier[row.reverts_id] = n + 1
        derived = str(uuid.uuid5(_NAMESPACE, f"{usage_id}:{n}:{row.account_id}"))
        key = None if (row.account_id, derived) in taken else derived
        taken.add((row.account_id, derived))
        conn.execute(
            sa.update(t)
            .where(t.c.id == row.id)
            .values(
                idempotency_key=key,
                source=f"system.revert.{row.usage_source}"[:_SOURCE_LENGTH],
                description=f"Revert: {row.usage_description or ''}",
                metadata=_with_revert_request(row.usage_metadata, usage_id),
            )
        )


def downgrade() -> None:
    conn = op.get_bind()
    t = _transactions
    conn.execute(sa.update(t).where(t.c.kind == "revert").values(idempotency_key=None))
    conn.execute(
        sa.update(t)
        .where(t.c.kind == "usage", t.c.idempotency_key.is_not(None))
        .values(idempotency_key=sa.literal("usage:") + t.c.idempotency_key)
    )
    conn.execute(
        sa.update(t)
        .where(
            t.c.kind.in_(["grant", "purchase"]),
            t.c.idempotency_key.is_not(None),
            ~t.c.idempotency_key.like("grant:%"),
        )
        .values(idempotency_key=sa.literal("grant:") + t.c.idempotency_key)
    )
