"""Storage: the engine (SQLite pragmas, one writer), the table definitions and the migrations."""

from meterbook.db.engine import Database

__all__ = ["Database"]
