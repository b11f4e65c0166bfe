"""The dialect's own INSERT, for ``ON CONFLICT`` clauses that SQLite and PostgreSQL spell alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["insert_for", "insert_for_dialect"]


def insert_for(conn: Connection, table: Table) -> Any:
    return insert_for_dialect(conn.dialect.name, table)


def insert_for_dialect(dialect_name: str, table: Table) -> Any:
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)
