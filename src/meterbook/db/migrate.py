"""Bring a database to the newest schema with Alembic; the same migrations serve SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from meterbook.db.engine import Database

__all__ = ["alembic_config", "migrate"]

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: several PostgreSQL workers starting at once migrate one after another.
_MIGRATION_LOCK = 7_061_234_001


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def migrate(database: Database, revision: str = "head") -> None:
    config = alembic_config()
    with database.write() as conn:
        if not database.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
