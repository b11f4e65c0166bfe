"""Billing runs: ``POST /v1/billing_runs {month}`` (CONTRACT §4; invariants 9 and 10).

A run turns one ended UTC month into open invoices for every account with a commitment or usage in
it, once: running it again creates nothing (200, ``created`` false). A month that has not ended, or
that is not written ``YYYY-MM``, is refused naming ``body.month``. A run covers the whole organization:
it needs an organization key with ``billing:write``. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.billing import Billing, at, following, months_ago
from tests.conftest import bearer
from tests.helpers import assert_error, assert_invalid, each, ts


@pytest.fixture
def billing(tenant):
    return Billing(tenant)


@pytest.fixture
def used(billing):
    """Two accounts with usage in the last two ended months, one of them with a commitment."""
    first, second = months_ago(2), months_ago(1)
    billing.product("CALLS", "0.5")
    committed = billing.account(
        name="Committed", commitment={"monthly_cost": "20"}, contract_started_at="2020-01-01T00:00:00Z"
    )
    plain = billing.account(name="Plain")
    for month in (first, second):
        billing.use(plain, "CALLS", 4, at(month))
    return {"first": first, "second": second, "committed": committed, "plain": plain}


class TestRun:
    def test_a_run_invoices_the_month_once(self, billing, used):
        before = datetime.now(UTC)
        run = billing.billed(used["first"], 201)
        after = datetime.now(UTC)
        assert run["invoice_count"] == 2
        assert before <= ts(run["created_at"]) <= after
        invoices = billing.invoices()
        assert [(i["number"], i["account_id"], i["month"], i["status"]) for i in invoices] == [
            (1, used["committed"]["id"], used["first"], "open"),
            (2, used["plain"]["id"], used["first"], "open"),
        ]

        again = billing.billed(used["first"], 200)
        assert again == {**run, "created": False}
        assert billing.invoices() == invoices

    def test_running_again_after_new_usage_elsewhere_creates_nothing(self, billing, used):
        billing.billed(used["first"])
        invoices = billing.invoices()
        # Usage of a month not yet invoiced, and a new account with a commitment: neither reaches the invoiced month.
        billing.use(used["plain"], "CALLS", 10, at(used["second"]))
        billing.account(name="Late", commitment={"monthly_cost": "5"}, contract_started_at="2020-01-01T00:00:00Z")
        assert billing.billed(used["first"], 200)["invoice_count"] == 2
        assert billing.invoices() == invoices

    def test_the_next_month_continues_the_numbering(self, billing, used):
        billing.billed(used["first"])
        run = billing.billed(used["second"])
        assert run["invoice_count"] == 2
        invoices = billing.invoices()
        assert [(i["number"], i["month"]) for i in invoices] == [
            (1, used["first"]),
            (2, used["first"]),
            (3, used["second"]),
            (4, used["second"]),
        ]

    def test_months_can_be_billed_out_of_order(self, billing, used):
        billing.billed(used["second"])
        billing.billed(used["first"])
        invoices = billing.invoices()
        assert [(i["number"], i["month"]) for i in invoices] == [
            (1, used["second"]),
            (2, used["second"]),
            (3, used["first"]),
            (4, used["first"]),
        ]

    def test_a_month_with_nothing_to_bill_is_a_run_of_no_invoices(self, billing, used):
        run = billing.billed("2019-06")
        assert run["invoice_count"] == 0
        assert billing.invoices() == []
        assert billing.billed("2019-06", 200)["invoice_count"] == 0

    def test_an_organization_without_accounts_can_be_billed(self, billing):
        assert billing.billed(months_ago(1))["invoice_count"] == 0

    def test_each_organization_has_its_own_runs_and_numbers(self, billing, used, make_tenant):
        other = Billing(make_tenant("Other"))
        other.product("CALLS", "1")
        account = other.account(name="Elsewhere")
        other.use(account, "CALLS", 1, at(used["first"]))
        billing.billed(used["first"])
        # The other organization's month is not invoiced by this organization's run.
        run = other.billed(used["first"], 201)
        assert run["invoice_count"] == 1
        assert [(i["number"], i["account_id"]) for i in other.invoices()] == [(1, account["id"])]


class TestMonth:
    def test_a_month_that_has_not_ended_is_refused(self, billing, used):
        def check(month: str) -> None:
            body = assert_invalid(billing.run(month), "body.month")
            assert month in body["note"]

        each(
            {
                "the current month": months_ago(0),
                "next month": months_ago(-1),
                "a year ahead": months_ago(-12),
            },
            check,
        )
        assert billing.invoices() == []

    def test_the_refusal_says_when_the_month_can_be_billed(self, billing):
        month = months_ago(0)
        body = assert_invalid(billing.run(month), "body.month")
        assert f"{following(month)}-01T00:00:00Z" in body["note"]

    def test_the_current_month_stays_open_to_usage(self, billing, used):
        assert_invalid(billing.run(months_ago(0)), "body.month")
        billing.use(used["plain"], "CALLS", 1, at(months_ago(0), day=1, time="00:00:00"))

    def test_malformed_months_are_refused(self, billing, used):
        def check(month: Any) -> None:
            assert_invalid(
                billing.client.post("/v1/billing_runs", json={"month": month}, headers=billing.headers), "body.month"
            )

        each(
            {
                "month 13": "2026-13",
                "month 00": "2026-00",
                "one digit": "2026-1",
                "a word": "x",
                "empty": "",
                "a day": "2026-01-01",
                "spaces": " 2026-01",
                "a number": 202601,
                "null": None,
                "a list": ["2026-01"],
            },
            check,
        )
        assert_invalid(billing.client.post("/v1/billing_runs", json={}, headers=billing.headers), "body.month")
        assert billing.invoices() == []

    def test_years_outside_the_calendar_are_refused_not_crashed(self, billing):
        # Year 0 does not exist, and December 9999 would end in year 10000: both are bad months, never a 500.
        each(
            {"year 0": "0000-01", "year 9999": "9999-12"},
            lambda month: assert_invalid(billing.run(month), "body.month"),
        )

    def test_a_body_that_is_not_json_is_refused(self, billing):
        response = billing.client.post(
            "/v1/billing_runs", content=b"{", headers={**billing.headers, "content-type": "application/json"}
        )
        assert response.status_code == 400, response.text


class TestWhoMayRun:
    def test_an_account_key_is_forbidden(self, billing, used):
        key = billing.tenant.create_key(account_id=used["plain"]["id"])["key"]
        body = assert_error(billing.as_key(key).run(used["first"]), 403, "FORBIDDEN")
        assert "organization key" in body["note"]
        assert billing.invoices() == []
        assert billing.billed(used["first"])["created"] is True

    def test_a_key_without_billing_write_is_forbidden(self, billing, used):
        def check(scopes: list[str]) -> None:
            key = billing.tenant.create_key(scopes=scopes)["key"]
            body = assert_error(billing.as_key(key).run(used["first"]), 403, "FORBIDDEN")
            assert "billing:write" in body["note"]

        each({"billing:read": ["billing:read"], "usage and accounts": ["usage:write", "accounts:write"]}, check)
        assert billing.invoices() == []

    def test_a_key_with_billing_write_may_run(self, billing, used):
        key = billing.tenant.create_key(scopes=["billing:write"])["key"]
        assert billing.as_key(key).run(used["first"]).status_code == 201

    def test_without_a_key(self, billing, used):
        assert_error(billing.client.post("/v1/billing_runs", json={"month": used["first"]}), 401, "MISSING_API_KEY")
        assert_error(
            billing.client.post("/v1/billing_runs", json={"month": used["first"]}, headers=bearer("mb_nope")),
            401,
            "MALFORMED_API_KEY",
        )
        assert billing.invoices() == []

    def test_another_organization_runs_only_its_own_month(self, billing, used, other_tenant):
        Billing(other_tenant).billed(used["first"])
        assert billing.invoices() == []
        # This organization's month is still open to its usage and to its own run.
        billing.use(used["plain"], "CALLS", 1, at(used["first"], day=11))
        assert billing.billed(used["first"])["invoice_count"] == 2


class TestTooLargeToStore:
    """An invoice line keeps its quantity at nine decimals and its amount at four, in 64-bit integers."""

    def test_the_largest_quantity_a_line_holds_is_invoiced(self, billing):
        account = billing.account()
        billing.product("TOKENS", "0.000001")
        billing.use(account, "TOKENS", "9223372036", at(months_ago(1)))
        billing.billed(months_ago(1))
        (invoice,) = billing.invoices_in_full()
        assert [(line["quantity"], line["amount"]) for line in invoice["lines"]] == [(9223372036, Decimal("9223.37"))]

    def test_a_run_with_a_line_too_large_is_refused_whole_and_says_what(self, billing):
        small, large = billing.account(name="Small"), billing.account(name="Large")
        billing.product("TOKENS", "0.000001")
        billing.use(small, "TOKENS", 5, at(months_ago(1)))
        billing.use(large, "TOKENS", 10**10, at(months_ago(1)))
        body = assert_error(billing.run(months_ago(1)), 409, "CONFLICT")
        assert "'TOKENS'" in body["note"]
        assert large["id"] in body["note"]
        assert "quantity 10000000000" in body["note"]
        assert small["id"] not in body["note"]
        assert billing.invoices() == []
        # Nothing was invoiced: the month still takes usage.
        billing.use(small, "TOKENS", 1, at(months_ago(1), day=11))

    def test_an_amount_too_large_is_refused(self, billing):
        account = billing.account()
        billing.product("GOLD", "9000000000")
        billing.use(account, "GOLD", 10**6, at(months_ago(1)))
        body = assert_error(billing.run(months_ago(1)), 409, "CONFLICT")
        assert "amount 9000000000000000.00 USD" in body["note"]
        assert billing.invoices() == []
