"""The ``meterbook`` command (contract §5), on a fresh SQLite file: the CLI is a thin caller of the services."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Table, func, inspect, select
from typer.testing import CliRunner

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Principal
from meterbook.cli import app
from meterbook.db import Database
from meterbook.db.tables import accounts as accounts_table
from meterbook.db.tables import api_keys, metadata, organizations, projects
from meterbook.errors import InvalidAuthorization

TOKEN = re.compile(r"mbk_[0-9a-f]{32}_[0-9a-f]{48}")
UUID_TEXT = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("METERBOOK_DATABASE_URL", f"sqlite:///{path}")
    for name in ("METERBOOK_HOST", "METERBOOK_PORT", "METERBOOK_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def database(database_file: Path) -> Iterator[Database]:
    """The same file the CLI uses, opened by the test after each command."""
    db = Database(f"sqlite:///{database_file}", pool_size=1)
    yield db
    db.dispose()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def authenticate(database: Database, token: str) -> Principal:
    with database.read() as conn:
        return accounts.authenticate(conn, token)


def count(database: Database, table: Table) -> int:
    with database.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def run_demo(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, ["demo", "--no-serve", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def labelled_token(output: str, label: str) -> str:
    match = re.search(rf"^\s*{label}\s+({TOKEN.pattern})", output, re.MULTILINE)
    assert match is not None, output
    return match.group(1)


class TestMigrate:
    def test_creates_and_migrates_a_fresh_file(
        self, runner: CliRunner, database_file: Path, database: Database
    ) -> None:
        assert not database_file.exists()
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.stdout
        assert database_file.exists()
        with database.read() as conn:
            tables = set(inspect(conn).get_table_names())
        assert {table.name for table in metadata.sorted_tables} <= tables

    def test_twice(self, runner: CliRunner, database_file: Path) -> None:
        assert runner.invoke(app, ["migrate"]).exit_code == 0
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output


class TestKeysCreate:
    def test_platform_key_is_printed_once_and_authenticates(self, runner: CliRunner, database: Database) -> None:
        result = runner.invoke(app, ["keys", "create", "--platform"])
        assert result.exit_code == 0, result.output
        assert TOKEN.fullmatch(result.stdout.strip()), result.stdout
        principal = authenticate(database, result.stdout.strip())
        assert principal.is_platform
        assert principal.organization_id is None

    def test_each_call_makes_a_new_key(self, runner: CliRunner, database: Database) -> None:
        first = runner.invoke(app, ["keys", "create", "--platform"]).stdout.strip()
        second = runner.invoke(app, ["keys", "create", "--platform", "--name", "ops"]).stdout.strip()
        assert first != second
        assert authenticate(database, first).key_id != authenticate(database, second).key_id
        with database.read() as conn:
            names = set(conn.execute(select(api_keys.c.name)).scalars())
        assert "ops" in names

    def test_key_is_stored_only_as_a_hash(self, runner: CliRunner, database: Database) -> None:
        token = runner.invoke(app, ["keys", "create", "--platform"]).stdout.strip()
        secret = token.rsplit("_", 1)[1]
        with database.read() as conn:
            rows = conn.execute(select(api_keys)).all()
        assert len(rows) == 1
        assert all(secret not in str(value) for value in rows[0])

    def test_without_platform_is_refused(self, runner: CliRunner, database_file: Path) -> None:
        result = runner.invoke(app, ["keys", "create"])
        assert result.exit_code != 0
        assert TOKEN.search(result.output) is None

    def test_without_platform_creates_nothing(self, runner: CliRunner, database: Database) -> None:
        assert runner.invoke(app, ["migrate"]).exit_code == 0
        assert runner.invoke(app, ["keys", "create"]).exit_code != 0
        assert count(database, api_keys) == 0


class TestDemo:
    def test_prints_base_url_keys_and_examples(self, runner: CliRunner, database: Database) -> None:
        output = run_demo(runner)
        assert "http://127.0.0.1:8000" in output
        assert "http://127.0.0.1:8000/docs" in output
        tokens = set(TOKEN.findall(output))
        assert len(tokens) == 3
        for token in tokens:
            assert authenticate(database, token).organization_id is not None

    def test_keys_are_what_they_say(self, runner: CliRunner, database: Database) -> None:
        output = run_demo(runner)
        organization = authenticate(database, labelled_token(output, "organization key"))
        account = authenticate(database, labelled_token(output, "account key"))
        read_only = authenticate(database, labelled_token(output, "read-only key"))
        assert organization.account_id is None
        assert organization.scopes == frozenset({"*"})
        assert account.account_id is not None
        assert account.organization_id == organization.organization_id
        assert read_only.organization_id == organization.organization_id
        assert "*" not in read_only.scopes
        assert not any(scope.endswith(":write") for scope in read_only.scopes)

    def test_curl_examples_name_a_real_account(self, runner: CliRunner, database: Database) -> None:
        output = run_demo(runner)
        curls = [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]
        assert curls
        named = set(re.findall(rf"/v1/accounts/({UUID_TEXT})", "\n".join(curls)))
        assert named
        with database.read() as conn:
            stored = {str(value) for value in conn.execute(select(accounts_table.c.id)).scalars()}
        assert named <= stored

    def test_uses_the_configured_address(
        self, runner: CliRunner, database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("METERBOOK_PORT", "9123")
        assert "http://127.0.0.1:9123" in run_demo(runner)
        assert "http://0.0.0.0:7000" in run_demo(runner, "--host", "0.0.0.0", "--port", "7000")

    def test_creates_accounts_with_a_subaccount_and_projects(self, runner: CliRunner, database: Database) -> None:
        run_demo(runner)
        with database.read() as conn:
            rows = conn.execute(select(accounts_table.c.id, accounts_table.c.parent_account_id)).all()
            project_rows = conn.execute(select(projects.c.billing_account_id)).all()
        ids = {row.id for row in rows}
        subaccounts = [row for row in rows if row.parent_account_id is not None]
        assert len(rows) >= 3
        assert len(subaccounts) >= 1
        assert all(row.parent_account_id in ids for row in subaccounts)
        assert len(project_rows) >= 1
        assert any(row.billing_account_id in ids for row in project_rows)

    def test_account_key_reaches_its_subaccount(self, runner: CliRunner, database: Database) -> None:
        output = run_demo(runner)
        account = authenticate(database, labelled_token(output, "account key"))
        with database.read() as conn:
            reached = accounts.list_accounts(conn, account)
        assert reached[0].id == account.account_id
        assert any(item.parent_account_id == account.account_id for item in reached)

    def test_twice_reuses_the_organization_with_fresh_keys(self, runner: CliRunner, database: Database) -> None:
        first = run_demo(runner)
        counts = (count(database, accounts_table), count(database, projects))
        second = run_demo(runner)
        assert count(database, organizations) == 1
        assert (count(database, accounts_table), count(database, projects)) == counts
        first_tokens, second_tokens = set(TOKEN.findall(first)), set(TOKEN.findall(second))
        assert len(second_tokens) == 3
        assert not first_tokens & second_tokens
        organization_ids = {authenticate(database, token).organization_id for token in first_tokens | second_tokens}
        assert len(organization_ids) == 1
        assert set(re.findall(UUID_TEXT, first)) >= set(re.findall(rf"/v1/accounts/({UUID_TEXT})", second))

    def test_old_keys_keep_working_after_a_second_run(self, runner: CliRunner, database: Database) -> None:
        first = set(TOKEN.findall(run_demo(runner)))
        run_demo(runner)
        for token in first:
            assert authenticate(database, token).organization_id is not None

    def test_printed_keys_are_not_guessable_from_storage(self, runner: CliRunner, database: Database) -> None:
        output = run_demo(runner)
        with database.read() as conn:
            stored = [str(value) for row in conn.execute(select(api_keys)) for value in row]
        for token in set(TOKEN.findall(output)):
            assert not any(token.rsplit("_", 1)[1] in value for value in stored)

    def test_forged_demo_key_is_refused(self, runner: CliRunner, database: Database) -> None:
        token = labelled_token(run_demo(runner), "organization key")
        forged = token[:-1] + ("0" if token[-1] != "0" else "1")
        with pytest.raises(InvalidAuthorization), database.read() as conn:
            accounts.authenticate(conn, forged)

    def test_no_platform_key_is_printed(self, runner: CliRunner, database: Database) -> None:
        for token in TOKEN.findall(run_demo(runner)):
            assert not authenticate(database, token).is_platform

    def test_prints_the_organization_id(self, runner: CliRunner, database: Database) -> None:
        output = run_demo(runner)
        match = re.search(rf"organization id\s+({UUID_TEXT})", output)
        assert match is not None, output
        with database.read() as conn:
            assert conn.execute(select(organizations.c.id)).scalars().all() == [uuid.UUID(match.group(1))]
