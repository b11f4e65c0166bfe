"""Shared fixtures: a migrated database per backend, the app over it, and tenants with their keys.

Every test that asks for ``database`` (directly or through ``client``) runs twice: on SQLite and on
PostgreSQL. PostgreSQL comes from ``METERBOOK_TEST_POSTGRES_URL`` (``scripts/test`` starts a
throwaway server and sets it); without it the run stops with an explanation, unless
``METERBOOK_TEST_SQLITE_ONLY=1`` asks for SQLite alone.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from meterbook.accounts import service as accounts
from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.migrate import migrate
from meterbook.db.tables import metadata

BACKENDS = ["sqlite", "postgresql"]


def _postgres_admin_url() -> str | None:
    return os.environ.get("METERBOOK_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (much faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "meterbook.db"
    database = Database(f"sqlite:///{path}")
    migrate(database)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run; tables are emptied before each test."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        if os.environ.get("METERBOOK_TEST_SQLITE_ONLY") == "1":
            pytest.skip("METERBOOK_TEST_SQLITE_ONLY=1: PostgreSQL tests skipped")
        pytest.fail(
            "Storage tests run on PostgreSQL too: set METERBOOK_TEST_POSTGRES_URL, or run scripts/test, "
            "which starts a throwaway server (set METERBOOK_TEST_SQLITE_ONLY=1 to skip PostgreSQL).",
            pytrace=False,
        )
    name = f"meterbook_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    migrate(database)
    database.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "meterbook.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        # DELETE, children first: a test leaves a few rows, and TRUNCATE of every table (new files for each,
        # whatever their size) cost 0.2 s a test where this costs 0.03 s, minutes over the suite.
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        for (sequence,) in conn.execute(text("SELECT sequence_name FROM information_schema.sequences")):
            conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
    engine.dispose()
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url, pool_size=5)
    yield db
    db.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    # No job worker: tests that deliver webhooks run the jobs themselves (jobs.run_due), with a clock they control.
    return Settings(database_url=database_url, migrate_on_start=False, max_body_bytes=64 * 1024, worker=False)


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database), raise_server_exceptions=True) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Tenant:
    """An organization as its operator sees it: its id, its key, and helpers to call the API with it."""

    client: TestClient
    id: str
    key: str
    accounts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)

    def create_account(self, key: str | None = None, **body: Any) -> dict[str, Any]:
        body.setdefault("name", f"Account {len(self.accounts) + 1}")
        response = self.client.post("/v1/accounts", json=body, headers=bearer(key or self.key))
        assert response.status_code == 201, response.text
        account: dict[str, Any] = response.json()
        self.accounts.append(account)
        return account

    def create_key(self, **body: Any) -> dict[str, Any]:
        response = self.client.post("/v1/api_keys", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@pytest.fixture
def platform_key(database: Database) -> str:
    with database.write() as conn:
        return accounts.create_platform_key(conn, "tests").token


@pytest.fixture
def make_tenant(client: TestClient, platform_key: str) -> Any:
    def make(name: str = "Tenant") -> Tenant:
        response = client.post("/v1/organizations", json={"name": name}, headers=bearer(platform_key))
        assert response.status_code == 201, response.text
        body = response.json()
        return Tenant(client=client, id=body["id"], key=body["api_key"]["key"])

    return make


@pytest.fixture
def tenant(make_tenant: Any) -> Tenant:
    return make_tenant("Acme")


@pytest.fixture
def other_tenant(make_tenant: Any) -> Tenant:
    return make_tenant("Other Co")
