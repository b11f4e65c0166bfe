"""The migrations build exactly the schema ``db/tables.py`` describes, on SQLite and PostgreSQL (contract §5)."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, MetaData, String, Table, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from meterbook.db import Database
from meterbook.db.migrate import alembic_config, migrate
from meterbook.db.tables import accounts, metadata, organizations


def differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, metadata))


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def schema_snapshot(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    return {
        table: {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            "foreign_keys": sorted(
                (f["name"] or "", tuple(f["constrained_columns"])) for f in inspector.get_foreign_keys(table)
            ),
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
        }
        for table in sorted(inspector.get_table_names())
    }


def new_organization(conn: Connection, name: str = "Org") -> uuid.UUID:
    organization_id = uuid.uuid4()
    conn.execute(
        insert(organizations).values(
            id=organization_id, name=name, default_billing_account_id=None, created_at=datetime.now(UTC)
        )
    )
    return organization_id


class TestSchema:
    def test_migrated_schema_matches_the_tables(self, database: Database) -> None:
        with database.read() as conn:
            assert differences(conn) == []

    def test_the_comparison_would_see_a_difference(self, database: Database) -> None:
        """Guards the test above: a column the migrations lack is reported."""
        changed = MetaData()
        for table in metadata.sorted_tables:
            table.to_metadata(changed)
        Table("projects", changed, Column("color", String(20)), extend_existing=True)
        with database.read() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            found = compare_metadata(context, changed)
        assert [(diff[0], diff[3].name) for diff in found] == [("add_column", "color")]

    def test_every_table_exists(self, database: Database) -> None:
        with database.read() as conn:
            names = set(inspect(conn).get_table_names())
        assert {table.name for table in metadata.sorted_tables} | {"alembic_version"} == names

    def test_database_is_at_head(self, database: Database) -> None:
        with database.read() as conn:
            assert current_revision(conn) == head_revision()

    def test_one_head(self) -> None:
        assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


class TestMigrateAgain:
    def test_second_migrate_is_a_no_op(self, database: Database) -> None:
        with database.write() as conn:
            organization_id = new_organization(conn)
        with database.read() as conn:
            before = schema_snapshot(conn)
        migrate(database)
        migrate(database)
        with database.read() as conn:
            assert schema_snapshot(conn) == before
            assert current_revision(conn) == head_revision()
            assert conn.execute(select(func.count()).select_from(text("alembic_version"))).scalar_one() == 1
            assert conn.execute(select(organizations.c.id)).scalars().all() == [organization_id]
            assert differences(conn) == []

    def test_fresh_sqlite_file_is_created_and_migrated(self, tmp_path: Path) -> None:
        database = Database(f"sqlite:///{tmp_path / 'new.db'}")
        try:
            migrate(database)
            migrate(database)
            with database.read() as conn:
                assert differences(conn) == []
                assert current_revision(conn) == head_revision()
        finally:
            database.dispose()


class TestConstraints:
    def test_foreign_keys_are_enforced(self, database: Database) -> None:
        now = datetime.now(UTC)
        orphan = {
            "id": uuid.uuid4(),
            "organization_id": uuid.uuid4(),
            "parent_account_id": None,
            "path": "x/",
            "name": "orphan",
            "currency": "USD",
            "status": "ready",
            "status_changed_at": now,
            "suppress_from_reports": False,
            "monthly_cost": 0,
            "contract_started_at": now,
            "net_terms_days": 30,
            "credit_min": 0,
            "created_at": now,
            "updated_at": now,
            "last_updated_config_at": now,
        }
        with pytest.raises(IntegrityError), database.write() as conn:
            conn.execute(insert(accounts).values(**orphan))
        with database.read() as conn:
            assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() == 0


class TestSqliteSettings:
    @pytest.fixture
    def sqlite_database(self, tmp_path: Path) -> Any:
        database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
        migrate(database)
        yield database, tmp_path / "wal.db"
        database.dispose()

    def test_wal_mode_and_foreign_keys(self, sqlite_database: Any) -> None:
        database, _ = sqlite_database
        for open_transaction in (database.read, database.write):
            with open_transaction() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one().lower() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1

    def test_the_file_itself_is_in_wal_mode(self, sqlite_database: Any) -> None:
        """WAL is a property of the file: any other program opening it sees it."""
        _, path = sqlite_database
        raw = sqlite3.connect(path)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        finally:
            raw.close()

    def test_synchronous_full_by_default(self, sqlite_database: Any) -> None:
        database, _ = sqlite_database
        with database.read() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
