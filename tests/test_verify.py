"""``meterbook verify`` (CONTRACT §5; invariants 4 and 6): recompute aggregates and balances from the raw rows.

Usage and credits are written through the HTTP API, then the command is run against the same
database, first untouched (exit 0, "No differences"), then after one direct change to the stored
rows per test (exit 1, with a line that names what disagrees). Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from typer.testing import CliRunner

from meterbook.cli import app
from meterbook.db.tables import (
    credit_balances,
    credit_transactions,
    invoice_lines,
    invoices,
    ledger_entries,
    monthly_aggregates,
    usage_events,
)
from meterbook.kit import jsontext
from tests.conftest import bearer

# --- helpers ---------------------------------------------------------------------------------------


@dataclass
class Book:
    """What the API wrote: two accounts with credits, usage of P1 over two months, and their aggregates."""

    client: Any
    tenant: Any
    database: Any
    first: dict[str, Any]
    second: dict[str, Any]

    def post_events(self, events: list[dict[str, Any]]) -> None:
        response = self.client.post(
            "/v1/events",
            content=jsontext.dumps(events),
            headers={**self.tenant.headers, "content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(events)

    def grant(self, account: dict[str, Any], amount: int) -> None:
        response = self.client.post(
            f"/v1/accounts/{account['id']}/credits",
            json={"id": f"grant-{uuid.uuid4().hex}", "amount": amount},
            headers=self.tenant.headers,
        )
        assert response.status_code == 201, response.text

    def aggregate_of(self, account: dict[str, Any], month: str, product_id: str = "P1") -> Any:
        with self.database.read() as conn:
            return conn.execute(
                select(monthly_aggregates).where(
                    monthly_aggregates.c.account_id == uuid.UUID(account["id"]),
                    monthly_aggregates.c.month == month,
                    monthly_aggregates.c.product_id == product_id,
                )
            ).one()


def metered(account: dict[str, Any], quantity: Any, occurred_at: str, product_id: str = "P1") -> dict[str, Any]:
    return {
        "id": f"ev-{uuid.uuid4().hex}",
        "account_id": account["id"],
        "type": "metered",
        "product_id": product_id,
        "quantity": quantity,
        "occurred_at": occurred_at,
    }


def credit(account: dict[str, Any], quantity: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"cr-{uuid.uuid4().hex}",
        "account_id": account["id"],
        "type": "credit",
        "quantity": quantity,
        **extra,
    }


@pytest.fixture
def run_verify(database_url, monkeypatch):
    """Run ``meterbook verify`` on the test's database; the result has ``exit_code`` and ``output``."""
    monkeypatch.setenv("METERBOOK_DATABASE_URL", database_url)
    runner = CliRunner()

    def run() -> Any:
        return runner.invoke(app, ["verify"])

    return run


@pytest.fixture
def book(client, tenant, database):
    first = tenant.create_account(name="First")
    second = tenant.create_account(name="Second")
    response = client.put(
        "/v1/products/P1", json={"description": "Calls", "unit_price": "0.25"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    response = client.put("/v1/products/P2", json={"description": "Reports", "unit_price": "2"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    book = Book(client=client, tenant=tenant, database=database, first=first, second=second)
    book.grant(first, 100)
    book.grant(second, 50)
    book.post_events(
        [
            metered(first, 3, "2024-05-10T08:00:00Z"),
            metered(first, "1.5", "2024-05-11T08:00:00Z"),
            metered(first, 2, "2024-06-01T00:00:00Z"),
            metered(second, 7, "2024-05-20T12:00:00Z"),
            credit(first, 10),
            credit(second, 4, product_id="P2", occurred_at="2024-05-21T12:00:00Z"),
        ]
    )
    # A second request adds to an aggregate the first one made (whole units: no carry from nanounits).
    book.post_events([metered(first, 4, "2024-06-12T08:00:00Z"), credit(first, 5)])
    return book


def assert_clean(result: Any) -> None:
    assert result.exit_code == 0, result.output
    assert "No differences" in result.output
    assert "difference " not in result.output.replace("No differences", "")


def difference_lines(result: Any) -> list[str]:
    assert result.exit_code == 1, result.output
    assert "No differences" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("difference ")]


# --- nothing tampered ------------------------------------------------------------------------------


class TestNoDifferences:
    def test_an_empty_database(self, database, run_verify):
        assert_clean(run_verify())

    def test_after_usage_and_credits_through_the_api(self, book, run_verify):
        result = run_verify()
        assert_clean(result)
        with book.database.read() as conn:
            aggregates = conn.execute(select(func.count()).select_from(monthly_aggregates)).scalar_one()
        assert aggregates == 4
        assert f"{aggregates} aggregates" in result.output

    def test_after_retries_conflicts_and_usage_of_several_organizations(self, client, book, other_tenant, run_verify):
        event = metered(book.first, 1, "2024-06-13T08:00:00Z")
        book.post_events([event])
        retried = client.post(
            "/v1/events",
            content=jsontext.dumps([event, event]),
            headers={**book.tenant.headers, "content-type": "application/json"},
        )
        assert retried.json() == {"accepted": 0, "duplicates": 2}
        conflicting = client.post(
            "/v1/events",
            content=jsontext.dumps([metered(book.first, 9, "2024-06-13T08:00:00Z"), {**event, "quantity": 2}]),
            headers={**book.tenant.headers, "content-type": "application/json"},
        )
        assert conflicting.status_code == 409, conflicting.text
        elsewhere = other_tenant.create_account()
        response = client.put(
            "/v1/products/P1", json={"description": "x", "unit_price": "1"}, headers=other_tenant.headers
        )
        assert response.status_code == 201, response.text
        response = client.post(
            "/v1/events", json=[metered(elsewhere, 5, "2024-05-10T08:00:00Z")], headers=bearer(other_tenant.key)
        )
        assert response.status_code == 200, response.text
        assert_clean(run_verify())

    def test_fractional_units_added_by_separate_requests(self, book, run_verify):
        # Each request adds to the stored aggregate; the nanounits carry into whole units in SQL.
        for quantity in ("0.6", "0.6", "0.999999999", "0.000000001", "0.3"):
            book.post_events([metered(book.second, quantity, "2024-07-01T00:00:00Z")])
        assert_clean(run_verify())


# --- one tampered row each -------------------------------------------------------------------------


class TestTampering:
    def test_an_aggregates_units_changed(self, book, run_verify):
        aggregate = book.aggregate_of(book.first, "2024-06")
        with book.database.write() as conn:
            conn.execute(
                update(monthly_aggregates)
                .where(monthly_aggregates.c.id == aggregate.id)
                .values(units_whole=monthly_aggregates.c.units_whole + 1)
            )
        (line,) = difference_lines(run_verify())
        assert f"aggregate {aggregate.id}" in line
        assert book.first["id"] in line
        assert "2024-06" in line

    def test_an_aggregates_nanounits_changed(self, book, run_verify):
        aggregate = book.aggregate_of(book.second, "2024-05")
        with book.database.write() as conn:
            conn.execute(
                update(monthly_aggregates).where(monthly_aggregates.c.id == aggregate.id).values(units_nanos=1)
            )
        (line,) = difference_lines(run_verify())
        assert f"aggregate {aggregate.id}" in line
        assert book.second["id"] in line

    def test_a_usage_event_deleted(self, book, run_verify):
        aggregate = book.aggregate_of(book.first, "2024-06")
        with book.database.write() as conn:
            event_id = conn.execute(
                select(usage_events.c.id).where(usage_events.c.aggregate_id == aggregate.id).limit(1)
            ).scalar_one()
            deleted = conn.execute(delete(usage_events).where(usage_events.c.id == event_id))
        assert deleted.rowcount == 1
        (line,) = difference_lines(run_verify())
        assert f"aggregate {aggregate.id}" in line
        assert book.first["id"] in line

    def test_every_event_of_an_aggregate_deleted(self, book, run_verify):
        # Phantom usage: an aggregate that would be billed with no event left behind it. Reported, not a crash.
        aggregate = book.aggregate_of(book.first, "2024-06")
        with book.database.write() as conn:
            deleted = conn.execute(delete(usage_events).where(usage_events.c.aggregate_id == aggregate.id))
        assert deleted.rowcount >= 1
        lines = difference_lines(run_verify())
        [line] = [line for line in lines if f"aggregate {aggregate.id}" in line]
        assert f"from {aggregate.event_count} events, recomputed 0 from 0" in line

    def test_an_aggregate_deleted(self, book, run_verify):
        aggregate = book.aggregate_of(book.second, "2024-05")
        with book.database.write() as conn:
            conn.execute(delete(monthly_aggregates).where(monthly_aggregates.c.id == aggregate.id))
        lines = difference_lines(run_verify())
        assert any(f"aggregate {aggregate.id}" in line and "missing" in line for line in lines), lines

    def test_a_credit_balance_changed(self, book, run_verify):
        account_id = uuid.UUID(book.first["id"])
        with book.database.write() as conn:
            conn.execute(
                update(credit_balances)
                .where(credit_balances.c.account_id == account_id)
                .values(balance=credit_balances.c.balance + 1)
            )
        (line,) = difference_lines(run_verify())
        assert f"account {book.first['id']}" in line

    @pytest.mark.parametrize("side", ["system", "account"])
    def test_an_unbalanced_ledger_entry_inserted(self, book, run_verify, side):
        account_id = uuid.UUID(book.second["id"])
        with book.database.write() as conn:
            transaction_id = conn.execute(
                select(credit_transactions.c.id).where(credit_transactions.c.account_id == account_id).limit(1)
            ).scalar_one()
            line_number = conn.execute(
                select(func.max(ledger_entries.c.line)).where(ledger_entries.c.transaction_id == transaction_id)
            ).scalar_one()
            conn.execute(
                ledger_entries.insert().values(
                    transaction_id=transaction_id,
                    line=line_number + 1,
                    account_id=account_id if side == "account" else None,
                    system_account="system:tamper" if side == "system" else None,
                    amount=5,
                )
            )
        lines = difference_lines(run_verify())
        assert any(f"ledger transaction {transaction_id}" in line for line in lines), lines
        assert any(f"account {book.second['id']}" in line for line in lines) == (side == "account"), lines
        assert len(lines) == (2 if side == "account" else 1), lines

    def test_every_difference_is_reported(self, book, run_verify):
        first = book.aggregate_of(book.first, "2024-05")
        second = book.aggregate_of(book.second, "2024-05")
        with book.database.write() as conn:
            conn.execute(update(monthly_aggregates).where(monthly_aggregates.c.id == first.id).values(event_count=99))
            conn.execute(update(monthly_aggregates).where(monthly_aggregates.c.id == second.id).values(units_whole=0))
            conn.execute(
                update(credit_balances)
                .where(credit_balances.c.account_id == uuid.UUID(book.second["id"]))
                .values(balance=0)
            )
        result = run_verify()
        lines = difference_lines(result)
        assert len(lines) == 3, lines
        assert any(first.id in line for line in lines)
        assert any(second.id in line for line in lines)
        assert any(f"account {book.second['id']}" in line for line in lines)
        assert "3 differences" in result.output


# --- invoices --------------------------------------------------------------------------------------


def bill(book: Book, month: str) -> None:
    response = book.client.post("/v1/billing_runs", json={"month": month}, headers=book.tenant.headers)
    assert response.status_code == 201, response.text


class TestInvoices:
    def test_billed_months_verify_clean(self, book, run_verify):
        bill(book, "2024-05")
        bill(book, "2024-06")
        result = run_verify()
        assert_clean(result)
        assert "every invoice" in result.output

    def test_a_line_changed_after_the_run(self, book, run_verify):
        bill(book, "2024-05")
        with book.database.write() as conn:
            invoice_id, number = conn.execute(
                select(invoices.c.id, invoices.c.number).where(invoices.c.account_id == uuid.UUID(book.first["id"]))
            ).one()
            conn.execute(
                update(invoice_lines)
                .where(invoice_lines.c.invoice_id == invoice_id)
                .values(amount=invoice_lines.c.amount + 1)
            )
        (line,) = difference_lines(run_verify())
        assert f"invoice {number} ({invoice_id})" in line
        # P1 at 0.25: 3 + 1.5 units in May.
        assert "amount 1.13" in line
