"""Alembic environment: meterbook always hands Alembic an open connection (see ``db/migrate.py``)."""

from __future__ import annotations

from alembic import context

from meterbook.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `meterbook migrate`, which supplies the database connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
