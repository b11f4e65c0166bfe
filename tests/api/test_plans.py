"""Plans, their versions, subscriptions and negotiated prices over the native API (CONTRACT §6, §4).

Each route's success; bad input (tiers out of order, negative prices, unknown products or features, a change into
an invoiced month) answered 400 naming the field, with nothing changed; another organization's key answered 404
(as if nothing existed); a customer's key refused every write (403) but reading its own. Both databases.
"""

from __future__ import annotations

import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from meterbook.catalog import service as catalog
from meterbook.db import Database
from meterbook.plans import repository as plans_repository
from meterbook.plans import service as plans
from tests.billing import LONG_AGO, exact, following, months_ago, start_of
from tests.conftest import Tenant, bearer
from tests.helpers import assert_error, assert_invalid
from tests.reliability.test_concurrency import threaded_server

PRODUCT = "CALLS"
OTHER_PRODUCT = "SMS"
EURO_PRODUCT = "EU-CALLS"
FEATURE = "seats"
THIS_MONTH = months_ago(0)
NEXT_MONTH = following(THIS_MONTH)

GRADUATED = {
    "model": "graduated",
    "tiers": [{"up_to": 5, "unit_price": 5}, {"up_to": 10, "unit_price": 4}, {"up_to": None, "unit_price": 3}],
}


def ok(response: Any, status: int = 200) -> Any:
    """The body of a reply that succeeded, its numbers read as exact decimals."""
    assert response.status_code == status, response.text
    return exact(response)


@pytest.fixture
def seeded(client: TestClient, tenant: Tenant) -> Tenant:
    """A catalog of three products (one in EUR) and one feature."""
    for product_id, currency in ((PRODUCT, "USD"), (OTHER_PRODUCT, "USD"), (EURO_PRODUCT, "EUR")):
        body = {"description": product_id, "unit_price": "0.05", "currency": currency, "price_effective_from": LONG_AGO}
        ok(client.put(f"/v1/products/{product_id}", json=body, headers=tenant.headers), 201)
    ok(client.put(f"/v1/features/{FEATURE}", json={"default_limit": 3}, headers=tenant.headers), 201)
    return tenant


def plan_body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Pro",
        "currency": "USD",
        "fee": "49.99",
        "prices": {PRODUCT: GRADUATED, OTHER_PRODUCT: {"model": "per_unit", "unit_price": "0.001"}},
        "limits": {FEATURE: 10},
        "included_credits": {"amount": 1000, "rollover": 500},
        **extra,
    }


def put_plan(client: TestClient, key: str, code: str = "pro", **extra: Any) -> Any:
    return client.put(f"/v1/plans/{code}", json=plan_body(**extra), headers=bearer(key))


def plans_of(client: TestClient, key: str) -> Any:
    return ok(client.get("/v1/plans", headers=bearer(key)))


def invoice_last_month(client: TestClient, tenant: Tenant) -> str:
    month = months_ago(1)
    ok(client.post("/v1/billing_runs", json={"month": month}, headers=tenant.headers), 201)
    return month


# --- plans -----------------------------------------------------------------------------------------


class TestPutPlan:
    def test_creates_the_plan_with_a_version_from_this_month(self, client: TestClient, seeded: Tenant) -> None:
        plan = ok(put_plan(client, seeded.key), 201)
        assert plan["code"] == "pro"
        [version] = plan["versions"]
        assert version["effective_from"] == start_of(THIS_MONTH)
        assert version["name"] == "Pro"
        assert version["currency"] == "USD"
        assert version["fee"] == Decimal("49.99")
        assert version["prices"][PRODUCT]["model"] == "graduated"
        assert [tier["up_to"] for tier in version["prices"][PRODUCT]["tiers"]] == [5, 10, None]
        assert version["prices"][OTHER_PRODUCT] == {"model": "per_unit", "unit_price": Decimal("0.001")}
        assert version["limits"] == {FEATURE: 10}
        assert version["included_credits"] == {"amount": 1000, "rollover": 500}

    def test_exact_decimals_on_the_wire(self, client: TestClient, seeded: Tenant) -> None:
        ok(put_plan(client, seeded.key), 201)
        text = client.get("/v1/plans/pro", headers=seeded.headers).text
        assert '"unit_price": 0.001' in text.replace('":0.001', '": 0.001')
        assert '"fee": 49.99' in text.replace('":49.99', '": 49.99')

    def test_a_later_month_adds_a_version_and_the_same_month_replaces_it(
        self, client: TestClient, seeded: Tenant
    ) -> None:
        ok(put_plan(client, seeded.key), 201)
        later = ok(put_plan(client, seeded.key, name="Pro 2", effective_from=start_of(NEXT_MONTH)))
        assert [v["name"] for v in later["versions"]] == ["Pro", "Pro 2"]
        replaced = ok(put_plan(client, seeded.key, name="Pro 3", effective_from=start_of(NEXT_MONTH), fee=0))
        assert [v["name"] for v in replaced["versions"]] == ["Pro", "Pro 3"]
        assert replaced["versions"][1]["fee"] == 0
        assert ok(client.get("/v1/plans/pro", headers=seeded.headers)) == replaced

    def test_list_and_get(self, client: TestClient, seeded: Tenant) -> None:
        ok(put_plan(client, seeded.key, "pro"), 201)
        ok(put_plan(client, seeded.key, "basic", name="Basic", prices={}, limits={}, included_credits=None), 201)
        listed = plans_of(client, seeded.key)
        assert [plan["code"] for plan in listed] == ["basic", "pro"]
        assert listed[1] == ok(client.get("/v1/plans/pro", headers=seeded.headers))
        assert listed[0]["versions"][0]["included_credits"] is None

    def test_included_credits_rollover_words(self, client: TestClient, seeded: Tenant) -> None:
        for rollover in ("none", "all", 0):
            plan = ok(
                put_plan(client, seeded.key, included_credits={"amount": 5, "rollover": rollover}),
                201 if rollover == "none" else 200,
            )
            assert plan["versions"][0]["included_credits"] == {"amount": 5, "rollover": rollover}

    def test_an_unknown_plan_is_404(self, client: TestClient, seeded: Tenant) -> None:
        assert_error(client.get("/v1/plans/nope", headers=seeded.headers), 404, "NOT_FOUND")


class TestPlanRefusals:
    @pytest.mark.parametrize(
        ("extra", "path"),
        [
            (
                {"prices": {PRODUCT: {"model": "graduated", "tiers": [{"up_to": 10}, {"up_to": 5}, {"up_to": None}]}}},
                f"body.prices.{PRODUCT}.tiers.1.up_to",
            ),
            (
                {"prices": {PRODUCT: {"model": "volume", "tiers": [{"up_to": 5}, {"up_to": 5}, {"up_to": None}]}}},
                f"body.prices.{PRODUCT}.tiers.1.up_to",
            ),
            ({"prices": {PRODUCT: {"model": "per_unit", "unit_price": "-1"}}}, f"body.prices.{PRODUCT}.unit_price"),
            ({"fee": -5}, "body.fee"),
            ({"prices": {"NOPE": {"model": "per_unit", "unit_price": 1}}}, "body.prices.NOPE"),
            ({"prices": {EURO_PRODUCT: {"model": "per_unit", "unit_price": 1}}}, f"body.prices.{EURO_PRODUCT}"),
            ({"limits": {"nope": 5}}, "body.limits.nope"),
            ({"limits": {FEATURE: -1}}, f"body.limits.{FEATURE}"),
            ({"effective_from": f"{THIS_MONTH}-02T00:00:00Z"}, "body.effective_from"),
            ({"included_credits": {"amount": 5, "rollover": "some"}}, "body.included_credits.rollover"),
            ({"currency": "XYZ"}, "body.currency"),
        ],
    )
    def test_bad_input_is_400_naming_the_field_and_writes_nothing(
        self, client: TestClient, seeded: Tenant, extra: dict[str, Any], path: str
    ) -> None:
        ok(put_plan(client, seeded.key), 201)
        before = plans_of(client, seeded.key)
        assert_invalid(put_plan(client, seeded.key, **extra), path)
        assert_invalid(put_plan(client, seeded.key, "fresh", **extra), path)
        assert plans_of(client, seeded.key) == before

    def test_every_unknown_product_and_feature_is_named(self, client: TestClient, seeded: Tenant) -> None:
        response = put_plan(
            client,
            seeded.key,
            prices={"A1": GRADUATED, PRODUCT: GRADUATED, "B2": GRADUATED},
            limits={"x": 1, FEATURE: 1},
        )
        body = assert_invalid(response, "body.prices.A1")
        assert {item["path"] for item in body["validationErrors"]} == {
            "body.prices.A1",
            "body.prices.B2",
            "body.limits.x",
        }
        assert plans_of(client, seeded.key) == []

    def test_a_version_covering_an_invoiced_month_never_changes(self, client: TestClient, seeded: Tenant) -> None:
        ok(put_plan(client, seeded.key, effective_from=start_of(months_ago(3))), 201)
        invoiced = invoice_last_month(client, seeded)
        before = plans_of(client, seeded.key)
        for month in (months_ago(3), months_ago(2), invoiced):
            body = assert_invalid(
                put_plan(client, seeded.key, fee=1, effective_from=start_of(month)), "body.effective_from"
            )
            assert invoiced in body["note"]
        assert plans_of(client, seeded.key) == before
        # From the month after the invoiced one, a new version is welcome.
        assert len(ok(put_plan(client, seeded.key, fee=1))["versions"]) == 2

    def test_a_version_before_an_invoiced_month_that_a_later_version_covers_is_allowed(
        self, client: TestClient, seeded: Tenant
    ) -> None:
        ok(put_plan(client, seeded.key, effective_from=start_of(months_ago(4))), 201)
        ok(put_plan(client, seeded.key, effective_from=start_of(months_ago(2))))
        ok(client.post("/v1/billing_runs", json={"month": months_ago(2)}, headers=seeded.headers), 201)
        # months_ago(3) is not invoiced, and the version from months_ago(2) still covers the invoiced month.
        found = ok(put_plan(client, seeded.key, name="Between", effective_from=start_of(months_ago(3))))
        assert [v["name"] for v in found["versions"]] == ["Pro", "Between", "Pro"]
        assert_invalid(put_plan(client, seeded.key, effective_from=start_of(months_ago(2))), "body.effective_from")

    def test_one_currency_per_plan(self, client: TestClient, seeded: Tenant) -> None:
        ok(put_plan(client, seeded.key), 201)
        response = put_plan(client, seeded.key, currency="EUR", prices={}, effective_from=start_of(NEXT_MONTH))
        assert_invalid(response, "body.currency")


class TestPlanReach:
    def test_another_organization_sees_nothing(self, client: TestClient, seeded: Tenant, other_tenant: Tenant) -> None:
        ok(put_plan(client, seeded.key), 201)
        assert_error(client.get("/v1/plans/pro", headers=other_tenant.headers), 404, "NOT_FOUND")
        assert plans_of(client, other_tenant.key) == []
        # Its own plan of the same code is its own: naming our products, it is refused.
        assert_invalid(put_plan(client, other_tenant.key), f"body.prices.{PRODUCT}")
        assert len(plans_of(client, seeded.key)[0]["versions"]) == 1

    def test_a_customer_reads_plans_and_never_changes_them(self, client: TestClient, seeded: Tenant) -> None:
        ok(put_plan(client, seeded.key), 201)
        customer = seeded.create_account(name="Customer")["api_key"]
        assert_error(put_plan(client, customer, fee=0), 403, "FORBIDDEN")
        assert_error(put_plan(client, customer, "new"), 403, "FORBIDDEN")
        assert plans_of(client, customer) == plans_of(client, seeded.key)


# --- subscriptions ---------------------------------------------------------------------------------


def subscribe(client: TestClient, key: str, account_id: str, **body: Any) -> Any:
    return client.put(f"/v1/accounts/{account_id}/subscription", json=body, headers=bearer(key))


def subscription(client: TestClient, key: str, account_id: str) -> Any:
    return ok(client.get(f"/v1/accounts/{account_id}/subscription", headers=bearer(key)))


@pytest.fixture
def planned(client: TestClient, seeded: Tenant) -> Tenant:
    ok(put_plan(client, seeded.key, "pro", effective_from=start_of(months_ago(6))), 201)
    ok(put_plan(client, seeded.key, "basic", name="Basic", effective_from=start_of(months_ago(6))), 201)
    return seeded


class TestSubscriptions:
    def test_put_puts_the_account_on_the_plan_now(self, client: TestClient, planned: Tenant) -> None:
        account = planned.create_account()
        before = datetime.now(UTC)
        found = ok(subscribe(client, planned.key, account["id"], plan="pro"))
        assert found["account_id"] == account["id"]
        assert found["current"]["plan"] == "pro"
        assert found["current"]["ends_at"] is None
        starts = datetime.fromisoformat(found["current"]["starts_at"])
        assert before - starts < (datetime.now(UTC) - before) + (before - before.replace(microsecond=0))
        assert found["scheduled"] == []
        assert subscription(client, planned.key, account["id"]) == found
        # The same plan again changes nothing.
        assert ok(subscribe(client, planned.key, account["id"], plan="pro")) == found

    def test_a_later_start_is_scheduled_and_ends_the_current_one(self, client: TestClient, planned: Tenant) -> None:
        account = planned.create_account()
        ok(subscribe(client, planned.key, account["id"], plan="pro", starts_at=start_of(THIS_MONTH)))
        found = ok(subscribe(client, planned.key, account["id"], plan="basic", starts_at=start_of(NEXT_MONTH)))
        assert found["current"]["plan"] == "pro"
        assert found["current"]["starts_at"] == start_of(THIS_MONTH)
        assert found["current"]["ends_at"] == start_of(NEXT_MONTH)
        assert [(s["plan"], s["starts_at"], s["ends_at"]) for s in found["scheduled"]] == [
            ("basic", start_of(NEXT_MONTH), None)
        ]
        # A change from an earlier instant replaces the schedule.
        again = ok(subscribe(client, planned.key, account["id"], plan="basic", starts_at=f"{THIS_MONTH}-01T00:00:01Z"))
        assert again["current"]["plan"] == "basic"
        assert again["scheduled"] == []

    def test_delete_ends_it_at_the_end_of_the_month(self, client: TestClient, planned: Tenant) -> None:
        account = planned.create_account()
        ok(subscribe(client, planned.key, account["id"], plan="pro", starts_at=start_of(THIS_MONTH)))
        ok(subscribe(client, planned.key, account["id"], plan="basic", starts_at=start_of(following(THIS_MONTH, 2))))
        ended = ok(client.delete(f"/v1/accounts/{account['id']}/subscription", headers=planned.headers))
        assert ended["current"]["ends_at"] == start_of(NEXT_MONTH)
        assert ended["scheduled"] == []
        assert subscription(client, planned.key, account["id"]) == ended
        # Nothing goes on past this month now: a second DELETE has nothing to end.
        assert_error(
            client.delete(f"/v1/accounts/{account['id']}/subscription", headers=planned.headers), 404, "NOT_FOUND"
        )

    def test_an_account_on_no_plan(self, client: TestClient, planned: Tenant) -> None:
        account = planned.create_account()
        assert subscription(client, planned.key, account["id"]) == {
            "account_id": account["id"],
            "current": None,
            "scheduled": [],
        }
        assert_error(
            client.delete(f"/v1/accounts/{account['id']}/subscription", headers=planned.headers), 404, "NOT_FOUND"
        )

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            ({"plan": "nope"}, "body.plan"),
            ({"plan": "pro", "starts_at": "yesterday"}, "body.starts_at"),
            ({"plan": "pro", "starts_at": start_of(months_ago(9))}, "body.starts_at"),  # before its first version
            ({"plan": "pro", "starts_at": start_of(months_ago(1))}, "body.starts_at"),  # an invoiced month
            ({"plan": "pro", "starts_at": start_of(months_ago(2))}, "body.starts_at"),  # before an invoiced month
            ({"plan": "euro"}, "body.plan"),  # another currency
            ({"plan": "pro", "extra": 1}, "body.extra"),
        ],
    )
    def test_bad_input_is_400_and_changes_nothing(
        self, client: TestClient, planned: Tenant, body: dict[str, Any], path: str
    ) -> None:
        ok(put_plan(client, planned.key, "euro", currency="EUR", prices={}), 201)
        invoice_last_month(client, planned)
        account = planned.create_account()
        ok(subscribe(client, planned.key, account["id"], plan="basic", starts_at=start_of(THIS_MONTH)))
        before = subscription(client, planned.key, account["id"])
        assert_invalid(subscribe(client, planned.key, account["id"], **body), path)
        assert subscription(client, planned.key, account["id"]) == before

    def test_another_organization_gets_404(self, client: TestClient, planned: Tenant, other_tenant: Tenant) -> None:
        account = planned.create_account()
        ok(subscribe(client, planned.key, account["id"], plan="pro"))
        before = subscription(client, planned.key, account["id"])
        url = f"/v1/accounts/{account['id']}/subscription"
        assert_error(client.get(url, headers=other_tenant.headers), 404, "NOT_FOUND")
        assert_error(subscribe(client, other_tenant.key, account["id"], plan="pro"), 404, "NOT_FOUND")
        assert_error(client.delete(url, headers=other_tenant.headers), 404, "NOT_FOUND")
        assert subscription(client, planned.key, account["id"]) == before

    def test_a_customer_reads_its_own_and_never_changes_it(self, client: TestClient, planned: Tenant) -> None:
        account = planned.create_account()
        ok(subscribe(client, planned.key, account["id"], plan="pro"))
        before = subscription(client, planned.key, account["id"])
        key = account["api_key"]
        assert subscription(client, key, account["id"]) == before
        assert_error(subscribe(client, key, account["id"], plan="basic"), 403, "FORBIDDEN")
        url = f"/v1/accounts/{account['id']}/subscription"
        assert_error(client.delete(url, headers=bearer(key)), 403, "FORBIDDEN")
        assert subscription(client, planned.key, account["id"]) == before


# --- negotiated prices -----------------------------------------------------------------------------


def negotiate(client: TestClient, key: str, account_id: str, product_id: str = PRODUCT, **body: Any) -> Any:
    return client.put(f"/v1/accounts/{account_id}/prices/{product_id}", json=body, headers=bearer(key))


def prices_of(client: TestClient, key: str, account_id: str) -> Any:
    return ok(client.get(f"/v1/accounts/{account_id}/prices", headers=bearer(key)))


class TestNegotiatedPrices:
    def test_put_and_list(self, client: TestClient, seeded: Tenant) -> None:
        account = seeded.create_account()
        made = ok(negotiate(client, seeded.key, account["id"], price=GRADUATED), 201)
        assert made["product_id"] == PRODUCT
        assert made["effective_from"] == start_of(THIS_MONTH)
        assert made["price"]["model"] == "graduated"
        again = ok(negotiate(client, seeded.key, account["id"], price={"model": "per_unit", "unit_price": "0.01"}))
        assert again["price"] == {"model": "per_unit", "unit_price": Decimal("0.01")}
        later = ok(
            negotiate(
                client,
                seeded.key,
                account["id"],
                price={"model": "package", "package_size": 1000, "package_price": 5},
                effective_from=start_of(NEXT_MONTH),
            ),
            201,
        )
        listed = prices_of(client, seeded.key, account["id"])
        assert listed["account_id"] == account["id"]
        assert [(p["product_id"], p["effective_from"]) for p in listed["prices"]] == [
            (PRODUCT, start_of(THIS_MONTH)),
            (PRODUCT, start_of(NEXT_MONTH)),
        ]
        assert listed["prices"][1] == later

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            (
                {"price": {"model": "graduated", "tiers": [{"up_to": 10}, {"up_to": 5}, {"up_to": None}]}},
                "body.price.tiers.1.up_to",
            ),
            ({"price": {"model": "per_unit", "unit_price": "-0.01"}}, "body.price.unit_price"),
            ({"price": {"model": "package", "package_size": 0, "package_price": 1}}, "body.price.package_size"),
            ({"price": {"model": "flat"}}, "body.price.model"),
            ({"price": GRADUATED, "effective_from": start_of(months_ago(1))}, "body.effective_from"),
            ({"price": GRADUATED, "effective_from": f"{THIS_MONTH}-01T00:00:01Z"}, "body.effective_from"),
        ],
    )
    def test_bad_input_is_400_and_changes_nothing(
        self, client: TestClient, seeded: Tenant, body: dict[str, Any], path: str
    ) -> None:
        invoice_last_month(client, seeded)
        account = seeded.create_account()
        ok(negotiate(client, seeded.key, account["id"], price=GRADUATED), 201)
        before = prices_of(client, seeded.key, account["id"])
        assert_invalid(negotiate(client, seeded.key, account["id"], **body), path)
        assert prices_of(client, seeded.key, account["id"]) == before

    def test_an_unknown_product_is_404(self, client: TestClient, seeded: Tenant) -> None:
        account = seeded.create_account()
        assert_error(negotiate(client, seeded.key, account["id"], "NOPE", price=GRADUATED), 404, "NOT_FOUND")
        assert prices_of(client, seeded.key, account["id"])["prices"] == []

    def test_another_organization_gets_404(self, client: TestClient, seeded: Tenant, other_tenant: Tenant) -> None:
        account = seeded.create_account()
        ok(negotiate(client, seeded.key, account["id"], price=GRADUATED), 201)
        before = prices_of(client, seeded.key, account["id"])
        assert_error(negotiate(client, other_tenant.key, account["id"], price=GRADUATED), 404, "NOT_FOUND")
        assert_error(client.get(f"/v1/accounts/{account['id']}/prices", headers=other_tenant.headers), 404, "NOT_FOUND")
        assert prices_of(client, seeded.key, account["id"]) == before

    def test_a_customer_reads_its_own_and_never_changes_them(self, client: TestClient, seeded: Tenant) -> None:
        account = seeded.create_account()
        ok(negotiate(client, seeded.key, account["id"], price=GRADUATED), 201)
        before = prices_of(client, seeded.key, account["id"])
        assert prices_of(client, account["api_key"], account["id"]) == before
        assert_error(negotiate(client, account["api_key"], account["id"], price=GRADUATED), 403, "FORBIDDEN")
        assert prices_of(client, seeded.key, account["id"]) == before


# --- which price applies, from the database --------------------------------------------------------


class TestPriceAt:
    def test_negotiated_beats_the_plan_which_beats_the_catalog(
        self, client: TestClient, database: Database, planned: Tenant
    ) -> None:
        account = planned.create_account()
        on_plan = planned.create_account()
        ok(subscribe(client, planned.key, account["id"], plan="pro", starts_at=start_of(months_ago(3))))
        ok(subscribe(client, planned.key, on_plan["id"], plan="pro", starts_at=start_of(months_ago(3))))
        ok(negotiate(client, planned.key, account["id"], price={"model": "per_unit", "unit_price": 1}), 201)
        now = datetime.now(UTC)
        before_plan = datetime.fromisoformat(start_of(months_ago(4)).replace("Z", "+00:00"))
        with database.read() as conn:
            org = uuid.UUID(planned.id)
            products = catalog.products_by_id(conn, org, [PRODUCT, OTHER_PRODUCT])

            def applied(account_id: str, product_id: str, moment: datetime) -> tuple[str, Any] | None:
                found = plans.price_at(conn, org, uuid.UUID(account_id), products[product_id], moment)
                return None if found is None else (found.source, found.price.model_dump(mode="python"))

            assert applied(account["id"], PRODUCT, now) == ("negotiated", {"model": "per_unit", "unit_price": 1})
            assert applied(account["id"], OTHER_PRODUCT, now) == (
                "plan",
                {"model": "per_unit", "unit_price": Decimal("0.001")},
            )
            assert applied(on_plan["id"], PRODUCT, now)[0] == "plan"  # type: ignore[index]
            assert applied(on_plan["id"], PRODUCT, before_plan) == (
                "catalog",
                {"model": "per_unit", "unit_price": Decimal("0.05")},
            )


# --- at the same instant ---------------------------------------------------------------------------


class TestAtOnce:
    """Requests at the same instant through a real server (both databases): no 500, and what is stored holds."""

    def test_parallel_writes_of_plans_and_subscriptions(
        self, settings: Any, database: Database, client: TestClient, planned: Tenant
    ) -> None:
        account = planned.create_account()
        with threaded_server(settings, database) as base_url, httpx.Client(base_url=base_url, timeout=60) as http:

            def create(index: int) -> int:
                body = plan_body(name=f"Race {index}")
                return http.put("/v1/plans/race", json=body, headers=planned.headers).status_code

            def move(index: int) -> int:
                body = {"plan": ("pro", "basic")[index % 2], "starts_at": f"{THIS_MONTH}-01T00:00:{index % 3:02d}Z"}
                url = f"/v1/accounts/{account['id']}/subscription"
                return http.put(url, json=body, headers=planned.headers).status_code

            with ThreadPoolExecutor(max_workers=8) as pool:
                created = list(pool.map(create, range(12)))
                moved = list(pool.map(move, range(12)))
        assert set(created) <= {200, 201}, created
        assert set(moved) == {200}, moved
        race = [plan for plan in plans_of(client, planned.key) if plan["code"] == "race"]
        assert len(race) == 1
        assert len(race[0]["versions"]) == 1
        with database.read() as conn:
            stored = plans_repository.subscriptions_of(conn, [uuid.UUID(account["id"])])
        assert stored, "no subscription at all"
        for earlier, later in itertools.pairwise(stored):
            assert earlier.ends_at is not None, stored
            assert earlier.ends_at <= later.starts_at, stored
