"""The dialect's own INSERT, for ``ON CONFLICT`` clauses that SQLite and PostgreSQL spell alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["insert_for"]


def insert_for(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)
