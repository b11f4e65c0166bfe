"""The ``meterbook`` command (contract §5), on a fresh SQLite file: the CLI is a thin caller of the services."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, func, inspect, select
from typer.testing import CliRunner

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Principal
from meterbook.app import create_app
from meterbook.catalog import service as catalog
from meterbook.cli import app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.tables import accounts as accounts_table
from meterbook.db.tables import (
    api_keys,
    billing_history,
    billing_runs,
    credit_balances,
    credit_transactions,
    feature_limits,
    feature_usage,
    features,
    invoices,
    metadata,
    monthly_aggregates,
    organizations,
    payments,
    product_prices,
    products,
    projects,
    usage_events,
)
from meterbook.errors import ExpiredApiKey, InvalidAuthorization
from meterbook.features import service as features_service
from meterbook.ledger import service as ledger
from meterbook.plans import service as plans_service

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


class TestPlatformKeys:
    """Contract §4: platform keys can be listed, given an expiry and revoked from the CLI."""

    def make(self, runner: CliRunner, *extra: str) -> str:
        result = runner.invoke(app, ["keys", "create", "--platform", *extra])
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    def test_listed_masked_with_their_dates(self, runner: CliRunner, database: Database) -> None:
        first = self.make(runner, "--name", "ops")
        second = self.make(runner, "--name", "ci", "--expires-at", "2099-01-01T00:00:00Z")
        result = runner.invoke(app, ["keys", "list", "--platform"])
        assert result.exit_code == 0, result.output
        assert TOKEN.search(result.output) is None  # never the whole key again
        rows = [line.split("\t") for line in result.output.splitlines() if "mbk_" in line]
        assert [row[1] for row in rows] == ["ops", "ci"]
        assert [row[0] for row in rows] == [str(authenticate(database, t).key_id) for t in (first, second)]
        assert "2099-01-01T00:00:00Z" in result.output
        assert first[-4:] in result.output

    def test_an_empty_list_says_how_to_make_one(self, runner: CliRunner, database_file: Path) -> None:
        result = runner.invoke(app, ["keys", "list", "--platform"])
        assert result.exit_code == 0, result.output
        assert "keys create --platform" in result.output

    def test_revoked_at_once(self, runner: CliRunner, database: Database) -> None:
        token = self.make(runner)
        key_id = str(authenticate(database, token).key_id)
        result = runner.invoke(app, ["keys", "revoke", key_id])
        assert result.exit_code == 0, result.output
        with pytest.raises(InvalidAuthorization):
            authenticate(database, token)
        listed = runner.invoke(app, ["keys", "list", "--platform"]).output.splitlines()
        assert listed[1].split("\t")[5].startswith(str(datetime.now(UTC).year))

    def test_given_an_expiry_and_expired_now(self, runner: CliRunner, database: Database) -> None:
        token = self.make(runner)
        key_id = str(authenticate(database, token).key_id)
        result = runner.invoke(app, ["keys", "expire", key_id, "--at", "2098-05-01T12:00:00Z"])
        assert result.exit_code == 0, result.output
        assert authenticate(database, token).expires_at == datetime(2098, 5, 1, 12, tzinfo=UTC)
        assert runner.invoke(app, ["keys", "expire", token, "--at", "now"]).exit_code == 0
        with pytest.raises(ExpiredApiKey):
            authenticate(database, token)

    @pytest.mark.parametrize(
        ("arguments", "words"),
        [
            (["keys", "revoke", "nope"], "is not a key id"),
            (["keys", "revoke", str(uuid.uuid4())], "No API key with id"),
            (["keys", "expire", str(uuid.uuid4()), "--at", "tomorrow"], "is not a date and time"),
            (["keys", "create", "--platform", "--expires-at", "2001-01-01T00:00:00Z"], "must be in the future"),
            (["keys", "list"], "only --platform keys are listed here"),
        ],
    )
    def test_mistakes_are_told_without_a_traceback(
        self, runner: CliRunner, database_file: Path, arguments: list[str], words: str
    ) -> None:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, result.output
        assert words in " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


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

    def test_prints_ready_to_paste_exports_for_the_tour(self, runner: CliRunner, database: Database) -> None:
        output = run_demo(runner)
        exports = [line.strip() for line in output.splitlines() if line.strip().startswith("export ")]
        # Pasted into bash as printed, comments and all.
        shell = subprocess.run(
            ["bash", "-euc", "\n".join([*exports, "env"])], capture_output=True, text=True, check=True
        )
        values = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
        names = {"MB", "KEY", "ACCOUNT_KEY", "READ_KEY", "ORG", "GLOBEX", "INITECH", "UMBRELLA", "GLOBEX_EU"}
        assert names | {"KEY_ID", "INVOICE", "BILLED", "UNBILLED"} <= set(values), exports
        assert values["MB"] == "http://127.0.0.1:8000"
        assert values["KEY"] == labelled_token(output, "organization key")
        assert values["ACCOUNT_KEY"] == labelled_token(output, "account key")
        assert values["READ_KEY"] == labelled_token(output, "read-only key")
        organization = authenticate(database, values["KEY"])
        assert values["ORG"] == str(organization.organization_id)
        with database.read() as conn:
            by_name = {account.name: account for account in accounts.list_accounts(conn, organization)}
            spare = conn.execute(select(api_keys).where(api_keys.c.id == uuid.UUID(values["KEY_ID"]))).one()
            invoice = conn.execute(select(invoices).where(invoices.c.id == uuid.UUID(values["INVOICE"]))).one()
            run_months = set(conn.execute(select(billing_runs.c.month)).scalars())
        for variable, name in [
            ("GLOBEX", "Globex Corporation"),
            ("INITECH", "Initech"),
            ("UMBRELLA", "Umbrella Labs"),
            ("GLOBEX_EU", "Globex Europe"),
        ]:
            assert values[variable] == str(by_name[name].id)
        assert spare.account_id == by_name["Initech"].id
        assert spare.revoked_at is None
        assert (invoice.account_id, invoice.status, invoice.month) == (
            by_name["Globex Corporation"].id,
            "open",
            values["BILLED"],
        )
        assert values["BILLED"] == max(run_months)
        assert values["UNBILLED"] not in run_months
        assert values["UNBILLED"] < previous_month(0)

    def test_a_second_run_prints_a_fresh_key_to_revoke(self, runner: CliRunner, database: Database) -> None:
        def spare_key_id(output: str) -> str:
            match = re.search(rf"^\s*export KEY_ID=({UUID_TEXT})", output, re.MULTILINE)
            assert match is not None, output
            return match.group(1)

        first = spare_key_id(run_demo(runner))
        assert runner.invoke(app, ["keys", "revoke", first]).exit_code == 0
        assert spare_key_id(run_demo(runner)) != first


class TestDemoUsage:
    """The demo's catalog, features, credits and usage: written through the services, and only once."""

    def test_account_has_credits_and_feature_usage(self, runner: CliRunner, database: Database) -> None:
        account = authenticate(database, labelled_token(run_demo(runner), "account key"))
        assert account.account_id is not None
        with database.read() as conn:
            balance = ledger.balance(conn, account, account.account_id)
            usages = {item.name: item for item in plans_service.feature_usages(conn, account)}
        assert balance.balance > 0
        assert {"cohort.max_count", "api.monthly_calls", "seats"} <= set(usages)
        # Globex is on the demo's scale plan: its limits replace the features' defaults (10 cohorts, 100,000 calls).
        assert usages["cohort.max_count"].limit == 25
        assert usages["api.monthly_calls"].limit is None
        assert 0 < usages["cohort.max_count"].usage <= 10
        # The account's own seat limit (an override) beats its plan's 100 and the default 25.
        assert usages["seats"].limit == 50
        assert 25 < usages["seats"].usage <= 50

    def test_catalog_has_three_products_and_a_dated_price(self, runner: CliRunner, database: Database) -> None:
        organization = authenticate(database, labelled_token(run_demo(runner), "organization key"))
        with database.read() as conn:
            found = {product.product_id: product for product in catalog.list_products(conn, organization)}
            defined = features_service.list_features(conn, organization)
        assert len(found) == 3
        assert {product.type for product in found.values()} == {"CALL", "API_REQUEST", "MESSAGE"}
        calls = found["TD-USG-TEL-UG-102213"]
        assert (calls.unit, calls.description) == ("minute", "Inbound calls — US toll-free")
        assert [price.unit_price for price in calls.prices] == [Decimal("0.06"), Decimal("0.067")]
        assert {(feature.name, feature.reset) for feature in defined} == {
            ("cohort.max_count", "never"),
            ("api.monthly_calls", "monthly"),
            ("seats", "never"),
        }

    def test_usage_spans_three_months_in_the_past(self, runner: CliRunner, database: Database) -> None:
        run_demo(runner)
        with database.read() as conn:
            rows = conn.execute(select(usage_events.c.kind, usage_events.c.occurred_at)).all()
            received = conn.execute(select(func.max(usage_events.c.received_at))).scalar_one()
        assert {row.kind for row in rows} == {"metered", "credit", "feature"}
        assert all(row.occurred_at <= received for row in rows)
        assert len({(row.occurred_at.year, row.occurred_at.month) for row in rows}) >= 2

    def test_second_run_adds_nothing(self, runner: CliRunner, database: Database) -> None:
        tables = (
            usage_events,
            credit_transactions,
            credit_balances,
            products,
            product_prices,
            features,
            feature_limits,
            feature_usage,
            monthly_aggregates,
        )
        first = authenticate(database, labelled_token(run_demo(runner), "account key"))
        assert first.account_id is not None
        before = {table.name: count(database, table) for table in tables}
        with database.read() as conn:
            balance = ledger.balance(conn, first, first.account_id).balance
            feature_usages = plans_service.feature_usages(conn, first)
        assert before["usage_events"] > 0
        output = run_demo(runner)
        assert {table.name: count(database, table) for table in tables} == before
        with database.read() as conn:
            assert ledger.balance(conn, first, first.account_id).balance == balance  # type: ignore[arg-type]
            assert plans_service.feature_usages(conn, first) == feature_usages
        assert "all there already" in output

    def test_new_curl_examples_work(self, runner: CliRunner, database_file: Path, database: Database) -> None:
        output = run_demo(runner)
        organization_key = labelled_token(output, "organization key")
        account_key = labelled_token(output, "account key")
        curls = [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]
        credits = next(line for line in curls if "/credits " in line)
        usages = next(line for line in curls if "/v1/usages " in line)
        events = next(line for line in curls if "-X POST $MB/v1/events " in line)
        assert account_key in usages
        body = re.search(r"-d '(.*)'$", events)
        assert body is not None, events
        settings = Settings(database_url=f"sqlite:///{database_file}", migrate_on_start=False)
        with TestClient(create_app(settings, database)) as client:
            path = re.search(r"\$MB(\S+)", credits)
            assert path is not None
            response = client.get(path.group(1), headers={"Authorization": f"Bearer {organization_key}"})
            assert response.status_code == 200, response.text
            assert response.json()["balance"] > 0
            response = client.get("/v1/usages", headers={"Authorization": f"Bearer {account_key}"})
            assert response.status_code == 200, response.text
            assert any(item["usage"] > 0 for item in response.json())
            headers = {"Authorization": f"Bearer {organization_key}", "Content-Type": "application/json"}
            for expected in ({"accepted": 1, "duplicates": 0}, {"accepted": 0, "duplicates": 1}):
                response = client.post("/v1/events", content=body.group(1), headers=headers)
                assert response.status_code == 200, response.text
                assert response.json() == expected
        assert json.loads(body.group(1))[0]["type"] == "metered"


def previous_month(months_back: int = 1) -> str:
    index = datetime.now(UTC).year * 12 + datetime.now(UTC).month - 1 - months_back
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class TestDemoBilling:
    """The demo's invoices and payments: every billing view has something to show, and a rerun adds nothing."""

    def test_both_ended_months_are_invoiced_with_payments_and_a_void(
        self, runner: CliRunner, database_file: Path, database: Database
    ) -> None:
        output = run_demo(runner)
        key = labelled_token(output, "organization key")
        assert re.search(rf"invoices\s+6 for {previous_month(2)} and {previous_month(1)}", output), output
        settings = Settings(database_url=f"sqlite:///{database_file}", migrate_on_start=False)
        with TestClient(create_app(settings, database)) as client:
            headers = {"Authorization": f"Bearer {key}"}
            invoices = client.get("/v1/invoices", headers=headers).json()["invoices"]
            assert {invoice["status"] for invoice in invoices} == {"open", "paid", "void"}
            assert [invoice["number"] for invoice in invoices] == list(range(1, len(invoices) + 1))
            paid_ahead = client.get("/v1/payments", headers=headers).json()["payments"]
            assert len(paid_ahead) == 4
            globex = next(line for line in output.splitlines() if "Globex Corporation (USD)" in line).split()[1]
            view = client.get(f"/v1/accounts/{globex}/billing", headers=headers).json()
            assert len(view["invoices"]) == 2
            assert [invoice["paid"] for invoice in view["invoices"]] == [True, False]
            assert len(view["payments"]) == 2
            assert view["usages"] != []

    def test_a_second_run_records_no_payment_and_no_invoice_twice(self, runner: CliRunner, database: Database) -> None:
        run_demo(runner)
        before = {table.name: count(database, table) for table in (invoices, payments, billing_history)}
        output = run_demo(runner)
        assert {table.name: count(database, table) for table in (invoices, payments, billing_history)} == before
        assert "all there already" in output


class TestBill:
    """``meterbook bill --month``: a billing run of every organization, from the command line."""

    def test_bills_an_ended_month_once(self, runner: CliRunner, database: Database) -> None:
        run_demo(runner)
        month = previous_month(3)
        first = runner.invoke(app, ["bill", "--month", month])
        assert first.exit_code == 0, first.output
        assert f"{month} invoiced" in first.output
        again = runner.invoke(app, ["bill", "--month", previous_month(1)])
        assert again.exit_code == 0, again.output
        assert "already invoiced, 3 invoices" in again.output

    def test_refuses_a_month_that_has_not_ended(self, runner: CliRunner, database: Database) -> None:
        run_demo(runner)
        result = runner.invoke(app, ["bill", "--month", previous_month(0)])
        assert result.exit_code == 1
        assert "has not ended" in result.output
        with database.read() as conn:
            months = conn.execute(select(billing_runs.c.month)).scalars().all()
        assert previous_month(0) not in months

    @pytest.mark.parametrize("month", ["2026-13", "2026-1", "last month"])
    def test_refuses_a_malformed_month(self, runner: CliRunner, database_file: Path, month: str) -> None:
        result = runner.invoke(app, ["bill", "--month", month])
        assert result.exit_code == 2
        assert "YYYY-MM" in result.output

    def test_an_unknown_organization(self, runner: CliRunner, database_file: Path) -> None:
        result = runner.invoke(app, ["bill", "--month", previous_month(1), "--organization", str(uuid.uuid4())])
        assert result.exit_code == 2
        assert "no organization" in result.output

    def test_the_billing_curl_examples_show_invoices_payments_and_history(
        self, runner: CliRunner, database_file: Path, database: Database
    ) -> None:
        output = run_demo(runner)
        organization_key = labelled_token(output, "organization key")
        curls = [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]
        history = next(line for line in curls if "/client/v4/user/billing/history" in line)
        view = next(line for line in curls if "/billing -H" in line)
        settings = Settings(database_url=f"sqlite:///{database_file}", migrate_on_start=False)
        with TestClient(create_app(settings, database)) as client:
            path = re.search(r'"\$MB(\S+)"', history)
            email = re.search(r'X-Auth-Email: ([^"]+)"', history)
            key = re.search(r'X-Auth-Key: ([^"]+)"', history)
            assert path is not None, history
            assert email is not None, history
            assert key is not None, history
            response = client.get(path.group(1), headers={"X-Auth-Email": email.group(1), "X-Auth-Key": key.group(1)})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["success"] is True
            assert len(body["result"]) == 5
            assert {item["type"] for item in body["result"]} <= {"charge", "payment", "refund"}
            assert body["result_info"]["total_count"] > 5
            view_path = re.search(r"\$MB(\S+)", view)
            assert view_path is not None
            response = client.get(view_path.group(1), headers={"Authorization": f"Bearer {organization_key}"})
            assert response.status_code == 200, response.text
            assert response.json()["invoices"] != []
            assert response.json()["payments"] != []
