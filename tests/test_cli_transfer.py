"""``meterbook import`` and ``meterbook export`` (issue 8), on SQLite and on PostgreSQL.

The CLI runs on the test's database (``METERBOOK_DATABASE_URL``) as an organization key; what it did
is read back through the HTTP API, exactly (``Decimal``, never floats).
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from meterbook.accounts import service as accounts
from meterbook.cli import app
from meterbook.db import Database
from meterbook.transfer import import_events
from tests.billing import Billing, at, exact, months_ago
from tests.conftest import Tenant

PRODUCT = "TD-USG-TEL-UG-102213"
PRICE = Decimal("0.067")
MONTH = months_ago(1)
EVENT_FIELDS = ["id", "account_id", "type", "product_id", "feature", "quantity", "occurred_at", "source", "metadata"]


class Org:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.billing = Billing(tenant)
        self.billing.product(PRODUCT, PRICE)
        self.account = tenant.create_account(name="Hooli")
        grant = {"id": "welcome", "amount": 10_000}
        response = tenant.client.post(f"/v1/accounts/{self.account['id']}/credits", json=grant, headers=tenant.headers)
        assert response.status_code == 201, response.text

    def events(self, count: int) -> list[dict[str, Any]]:
        """``count`` events: metered with nine-decimal quantities, and every third one a credit debit."""
        made = []
        for index in range(count):
            if index % 3 == 2:
                made.append({"id": f"c-{index}", "account_id": self.account["id"], "type": "credit", "quantity": index})
            else:
                made.append(
                    {
                        "id": f"m-{index}",
                        "account_id": self.account["id"],
                        "type": "metered",
                        "product_id": PRODUCT,
                        "quantity": f"{index}.000000001",
                        "occurred_at": at(MONTH, day=1 + index % 28),
                        "metadata": {"call": index},
                    }
                )
        return made

    def usage(self) -> list[dict[str, Any]]:
        response = self.tenant.client.get(
            "/v1/monthly_usage",
            params={"account_id": self.account["id"], "from": MONTH, "to": MONTH},
            headers=self.tenant.headers,
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = exact(response)["usage"]
        return found

    def balance(self) -> int:
        response = self.tenant.client.get(f"/v1/accounts/{self.account['id']}/credits", headers=self.tenant.headers)
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])


def expected(events: list[dict[str, Any]]) -> tuple[Decimal, int]:
    """The metered units and the credits the events add up to."""
    units = sum((Decimal(e["quantity"]) for e in events if e["type"] == "metered"), Decimal(0))
    credits = sum(int(e["quantity"]) for e in events if e["type"] == "credit")
    return units, credits


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return path


def write_csv(path: Path, events: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=EVENT_FIELDS)
        writer.writeheader()
        for event in events:
            row = {key: event.get(key, "") for key in EVENT_FIELDS}
            if "metadata" in event:
                row["metadata"] = json.dumps(event["metadata"])
            writer.writerow(row)
    return path


@pytest.fixture
def org(tenant: Tenant, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Org:
    monkeypatch.setenv("METERBOOK_DATABASE_URL", database_url)
    monkeypatch.setenv("METERBOOK_KEY", tenant.key)
    return Org(tenant)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str, exit_code: int = 0) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == exit_code, result.output
    return result


class TestImport:
    def test_json_lines(self, org: Org, runner: CliRunner, tmp_path: Path) -> None:
        events = org.events(30)
        result = run(runner, "import", str(write_jsonl(tmp_path / "events.jsonl", events)), "--batch-size", "7")
        assert "30 records: 30 imported, 0 duplicates" in result.stdout
        units, credits = expected(events)
        (aggregate,) = org.usage()
        assert aggregate["number_of_units"] == units
        assert aggregate["total_amount"] == units * PRICE
        assert org.balance() == 10_000 - credits

    def test_csv(self, org: Org, runner: CliRunner, tmp_path: Path) -> None:
        events = org.events(12)
        result = run(runner, "import", str(write_csv(tmp_path / "events.csv", events)))
        assert "12 records: 12 imported, 0 duplicates" in result.stdout
        units, credits = expected(events)
        (aggregate,) = org.usage()
        assert aggregate["number_of_units"] == units
        assert org.balance() == 10_000 - credits

    def test_format_option_overrides_the_name(self, org: Org, runner: CliRunner, tmp_path: Path) -> None:
        path = write_csv(tmp_path / "events.txt", org.events(3))
        assert "3 imported" in run(runner, "import", str(path), "--format", "csv").stdout

    def test_run_again_after_half_the_file_gives_each_event_once(
        self, org: Org, runner: CliRunner, tmp_path: Path
    ) -> None:
        events = org.events(40)
        run(runner, "import", str(write_jsonl(tmp_path / "half.jsonl", events[:20])))
        result = run(runner, "import", str(write_jsonl(tmp_path / "all.jsonl", events)), "--batch-size", "6")
        assert "40 records: 20 imported, 20 duplicates" in result.stdout
        units, credits = expected(events)
        (aggregate,) = org.usage()
        assert aggregate["number_of_units"] == units
        assert org.balance() == 10_000 - credits

    def test_interrupted_between_batches_then_run_again(
        self, org: Org, runner: CliRunner, tmp_path: Path, database: Database
    ) -> None:
        events = org.events(25)
        path = write_jsonl(tmp_path / "events.jsonl", events)
        with database.read() as conn:
            principal = accounts.authenticate(conn, org.tenant.key)

        def interrupt(_: int) -> None:
            raise KeyboardInterrupt  # as Ctrl-C right after the first batch committed

        with pytest.raises(KeyboardInterrupt):
            import_events(database, principal, path, batch_size=10, progress=interrupt)
        result = run(runner, "import", str(path), "--batch-size", "10")
        assert "25 records: 15 imported, 10 duplicates" in result.stdout
        units, credits = expected(events)
        (aggregate,) = org.usage()
        assert aggregate["number_of_units"] == units
        assert org.balance() == 10_000 - credits

    def test_bad_lines_are_named_and_the_rest_imported(self, org: Org, runner: CliRunner, tmp_path: Path) -> None:
        good = org.events(6)
        account = org.account["id"]
        assert org.tenant.client.post("/v1/events", json=good[:1], headers=org.tenant.headers).status_code == 200
        lines = [json.dumps(event) for event in good]
        lines[1] = '{"id": "broken", '  # line 2
        lines.insert(3, "")  # a blank line is skipped, and still counted in line numbers
        lines += [
            json.dumps({"id": "q", "account_id": account, "type": "credit", "quantity": "1.5"}),  # line 8
            json.dumps({"id": "p", "account_id": account, "type": "metered", "product_id": "NOPE", "quantity": 1}),
            json.dumps({**good[0], "quantity": "99"}),  # line 10: the id of line 1, other content
            json.dumps(["not", "an", "object"]),  # line 11
        ]
        path = tmp_path / "events.jsonl"
        path.write_text("\n".join(lines) + "\n")
        result = run(runner, "import", str(path), "--batch-size", "4", exit_code=1)
        assert "line 2: is not valid JSON" in result.output
        assert "line 8, quantity: a credit quantity must be a whole number" in result.output
        assert "line 9, product_id:" in result.output
        assert "line 10, id:" in result.output
        assert "line 11: is not a JSON object" in result.output
        assert "10 records: 4 imported, 1 duplicates (imported before), 5 not imported" in result.stdout
        imported = [event for index, event in enumerate(good) if index != 1]
        units, credits = expected(imported)
        (aggregate,) = org.usage()
        assert aggregate["number_of_units"] == units
        assert org.balance() == 10_000 - credits

    def test_too_few_credits_refuses_only_the_lines_that_do_not_fit(
        self, org: Org, runner: CliRunner, tmp_path: Path
    ) -> None:
        account = org.account["id"]
        events = [
            {"id": "a", "account_id": account, "type": "credit", "quantity": 6000},
            {"id": "b", "account_id": account, "type": "credit", "quantity": 6000},
            {"id": "c", "account_id": account, "type": "credit", "quantity": 4000},
        ]
        result = run(runner, "import", str(write_jsonl(tmp_path / "events.jsonl", events)), exit_code=1)
        assert "line 2: " in result.output
        assert "insufficient credits" in result.output
        assert "3 records: 2 imported, 0 duplicates (imported before), 1 not imported" in result.stdout
        assert org.balance() == 0

    def test_needs_a_key_with_usage_write(self, org: Org, runner: CliRunner, tmp_path: Path) -> None:
        path = write_jsonl(tmp_path / "events.jsonl", org.events(3))
        reader = org.tenant.create_key(scopes=["usage:read"])
        refused = runner.invoke(app, ["import", str(path), "--key", reader["key"]])
        assert refused.exit_code == 2
        assert "usage:write" in refused.output
        unknown = runner.invoke(app, ["import", str(path), "--key", "mbk_" + "0" * 32 + "_" + "0" * 48])
        assert unknown.exit_code == 2
        assert org.usage() == []
        assert org.balance() == 10_000


class TestExport:
    @pytest.fixture
    def billed(self, org: Org, runner: CliRunner, tmp_path: Path) -> Org:
        run(runner, "import", str(write_jsonl(tmp_path / "events.jsonl", org.events(20))))
        second = org.tenant.create_account(name="Initech", currency="EUR")
        org.billing.product("EU-1", "0.333333333", currency="EUR")
        org.billing.use(second, "EU-1", "3.000000007", at(MONTH))
        org.billing.billed(MONTH)
        invoice = org.billing.invoices(account_id=org.account["id"])[0]
        org.billing.paid(org.account, "0.07", id="wire-1", reference='wire, "quoted"')
        org.billing.paid(second, "1", id="sepa-1")
        org.billing.void(org.billing.invoices(account_id=second["id"])[0]["id"])
        assert invoice["amount"] > 0
        return org

    @staticmethod
    def rows(text: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(text)))

    def test_invoices_as_the_api_shows_them(self, billed: Org, runner: CliRunner, client: TestClient) -> None:
        rows = self.rows(run(runner, "export", "invoices").stdout)
        shown = billed.billing.invoices()
        assert [row["id"] for row in rows] == [invoice["id"] for invoice in shown]
        for row, invoice in zip(rows, shown, strict=True):
            for name in ("amount", "amount_paid", "amount_due"):
                assert Decimal(row[name]) == invoice[name], (name, row, invoice)
            assert (row["status"], row["month"], row["currency"]) == (
                invoice["status"],
                invoice["month"],
                invoice["currency"],
            )
            assert row["voided_at"] == (invoice["voided_at"] or "")

    def test_usage_round_trips_exact_figures(self, billed: Org, runner: CliRunner, tmp_path: Path) -> None:
        out = tmp_path / "usage.csv"
        result = run(runner, "export", "usage", "--output", str(out))
        assert result.stdout == ""
        rows = self.rows(out.read_text())
        assert {row["currency"] for row in rows} == {"USD", "EUR"}
        by_id = {row["id"]: row for row in rows}
        (usd,) = billed.usage()
        row = by_id[usd["id"]]
        assert Decimal(row["number_of_units"]) == usd["number_of_units"]
        assert Decimal(row["total_amount"]) == usd["total_amount"]
        assert Decimal(row["price"]) == PRICE
        units, _ = expected(billed.events(20))
        assert row["number_of_units"] == format(units, "f")  # exact text: all nine decimals
        (eur,) = [row for row in rows if row["currency"] == "EUR"]
        assert eur["number_of_units"] == "3.000000007"
        assert Decimal(eur["total_amount"]) == Decimal("3.000000007") * Decimal("0.333333333")

    def test_payments_and_history(self, billed: Org, runner: CliRunner) -> None:
        payments = self.rows(run(runner, "export", "payments").stdout)
        assert {(row["id"], row["amount"], row["reference"]) for row in payments} == {
            ("wire-1", "0.07", 'wire, "quoted"'),
            ("sepa-1", "1", ""),
        }
        history = self.rows(run(runner, "export", "history").stdout)
        response = billed.tenant.client.get(
            "/client/v4/user/billing/history", params={"per_page": 50}, headers=billed.tenant.headers
        )
        shown = exact(response)["result"]
        assert len(history) == len(shown) == response.json()["result_info"]["total_count"]
        assert {(row["id"], Decimal(row["amount"]), row["type"], row["action"]) for row in history} == {
            (item["id"], Decimal(str(item["amount"])), item["type"], item["action"]) for item in shown
        }
        assert [row["occurred_at"] for row in history] == sorted(row["occurred_at"] for row in history)

    def test_months_filter(self, billed: Org, runner: CliRunner) -> None:
        assert self.rows(run(runner, "export", "usage", "--from", MONTH, "--to", MONTH).stdout)
        later = months_ago(-1)
        assert self.rows(run(runner, "export", "usage", "--from", later).stdout) == []
        bad = runner.invoke(app, ["export", "usage", "--from", "2026-13"])
        assert bad.exit_code == 2
        assert "YYYY-MM" in bad.output

    def test_an_account_key_exports_only_its_account(self, billed: Org, runner: CliRunner) -> None:
        key = billed.account["api_key"]
        rows = self.rows(run(runner, "export", "invoices", "--key", key).stdout)
        assert rows
        assert {row["account_id"] for row in rows} == {billed.account["id"]}


def test_verify_shows_its_progress(org: Org, runner: CliRunner, tmp_path: Path) -> None:
    run(runner, "import", str(write_jsonl(tmp_path / "events.jsonl", org.events(9))))
    result = run(runner, "verify")
    assert "verifying aggregates" in result.stderr
    assert "6/6" in result.stderr  # the six metered events read back
    assert "No differences" in result.stdout


class TestFormulaCells:
    """Text a customer chose reaches the operator's spreadsheet as text, never as a formula (OWASP)."""

    HYPERLINK = '=HYPERLINK("http://x","y")'
    DDE = "=cmd|' /C calc'!A0"

    @pytest.fixture
    def hostile(self, org: Org) -> dict[str, Any]:
        billing = org.billing
        account = org.tenant.create_account(name=self.HYPERLINK)
        billing.product("AT-1", "12.5", description="@SUM(1)")
        billing.product("PLUS-1", "1", description="+1+1")
        billing.product("MINUS-1", "1", description="-2+3")
        billing.use(account, "AT-1", "1", at(MONTH))
        billing.use(org.account, "PLUS-1", "2", at(MONTH))
        billing.use(org.account, "MINUS-1", "3", at(MONTH))
        billing.billed(MONTH)
        (invoice,) = billing.invoices(account_id=account["id"])
        assert invoice["amount"] == Decimal("12.5")
        assert billing.void(invoice["id"]).status_code == 200
        billing.paid(org.account, "1", id="dde", reference=self.DDE)
        billing.paid(org.account, "1", id="tab", reference="\t=1")
        billing.paid(org.account, "1", id="cr", reference="\r=1")
        billing.paid(org.account, "1", id="mid", reference="paid\r=1+1")
        return account

    @staticmethod
    def export(runner: CliRunner, kind: str) -> tuple[str, list[dict[str, str]]]:
        text = run(runner, "export", kind).stdout
        return text, list(csv.DictReader(io.StringIO(text)))

    def test_formula_cells_are_quoted_and_numbers_stay_numbers(
        self, hostile: dict[str, Any], runner: CliRunner
    ) -> None:
        text, history = self.export(runner, "history")
        # The csv module quotes the cell and doubles its quotes; the spreadsheet sees text.
        assert '"\'=HYPERLINK(""http://x"",""y"")"' in text
        named = [row for row in history if row["account_id"] == hostile["id"]]
        assert {row["account_name"] for row in named} == {"'" + self.HYPERLINK}
        (refund,) = [row for row in named if row["type"] == "refund"]
        assert refund["amount"] == "-12.5"  # a number, not "'-12.5": it cannot be a formula
        charges = {row["description"] for row in history if row["type"] == "charge"}
        assert {"'@SUM(1)", "'+1+1", "'-2+3"} <= charges

        text, payments = self.export(runner, "payments")
        references = {row["id"]: row["reference"] for row in payments}
        assert references == {"dde": "'" + self.DDE, "tab": "'\t=1", "cr": "'\r=1", "mid": "paid\r=1+1"}
        # Quoted, or a spreadsheet would start a new row at the CR with "=1+1" as its first cell.
        assert '"paid\r=1+1"' in text

        _, usage = self.export(runner, "usage")
        assert {row["description"] for row in usage} == {"'@SUM(1)", "'+1+1", "'-2+3"}
        assert {row["total_amount"] for row in usage} == {"12.5", "2", "3"}

    def test_cells_that_only_look_like_numbers_are_escaped(self, org: Org, runner: CliRunner) -> None:
        for index, reference in enumerate(["-1e5", "-1.", "-.5", "- 1", "-١", "+1", "-"]):
            org.billing.paid(org.account, "1", id=f"p-{index}", reference=reference)
        _, payments = self.export(runner, "payments")
        assert {row["reference"] for row in payments} == {
            "'-1e5",
            "'-1.",
            "'-.5",
            "'- 1",
            "'-١",
            "'+1",
            "'-",
        }
        assert {row["amount"] for row in payments} == {"1"}
