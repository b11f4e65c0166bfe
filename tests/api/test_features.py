"""Features and their limits (CONTRACT §1 "feature", §3.1 ``GET /v1/usages``, §4; invariants 2, 5 and 10).

``PUT /v1/features/{name}`` defines a quota, ``PUT /v1/accounts/{id}/limits/{feature}`` overrides it for
one account, feature events (``POST /v1/events``) count against it, and a batch that would pass a limit
is refused whole. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import bearer
from tests.helpers import assert_error, assert_invalid, each, rfc3339, ts

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
FEATURE_FIELDS = {"name", "description", "default_limit", "reset", "created_at", "updated_at"}


# --- helpers ---------------------------------------------------------------------------------------


def put_feature(client: Any, key: str, name: str, **body: Any) -> Any:
    return client.put(f"/v1/features/{name}", json=body, headers=bearer(key))


def define(client: Any, key: str, name: str, **body: Any) -> dict[str, Any]:
    response = put_feature(client, key, name, **body)
    assert response.status_code in (200, 201), response.text
    found: dict[str, Any] = response.json()
    return found


def list_features(client: Any, key: str) -> list[dict[str, Any]]:
    response = client.get("/v1/features", headers=bearer(key))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def put_limit(client: Any, key: str, account_id: str, name: str, limit: Any) -> Any:
    return client.put(f"/v1/accounts/{account_id}/limits/{name}", json={"limit": limit}, headers=bearer(key))


def usages(client: Any, key: str) -> dict[str, dict[str, Any]]:
    """``GET /v1/usages`` as a map from feature name to its item."""
    response = client.get("/v1/usages", headers=bearer(key))
    assert response.status_code == 200, response.text
    items = response.json()
    for item in items:
        assert set(item) == {"name", "description", "limit", "usage"}, item
    return {item["name"]: item for item in items}


def use(account_id: str, quantity: Any, name: str = "seats", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"f-{uuid.uuid4().hex}",
        "account_id": account_id,
        "type": "feature",
        "feature": name,
        "quantity": quantity,
        **extra,
    }


def post_events(client: Any, key: str, events: list[dict[str, Any]]) -> Any:
    return client.post("/v1/events", json=events, headers=bearer(key))


def previous_month_noon() -> datetime:
    first = datetime.now(UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=1)


class Seats:
    """One account of a tenant and its use of one feature."""

    def __init__(self, client: Any, tenant: Any, account: dict[str, Any], name: str = "seats") -> None:
        self.client, self.tenant, self.account, self.name = client, tenant, account, name
        self.id = str(account["id"])

    def send(self, *quantities: Any, **extra: Any) -> Any:
        return post_events(self.client, self.tenant.key, [use(self.id, q, self.name, **extra) for q in quantities])

    def sent(self, *quantities: Any, **extra: Any) -> None:
        response = self.send(*quantities, **extra)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": len(quantities), "duplicates": 0}

    @property
    def item(self) -> dict[str, Any]:
        return usages(self.client, self.account["api_key"])[self.name]

    @property
    def usage(self) -> int:
        return int(self.item["usage"])

    @property
    def limit(self) -> int | None:
        limit = self.item["limit"]
        return None if limit is None else int(limit)


@pytest.fixture
def seats(client, tenant):
    define(client, tenant.key, "seats", description="Seats in use", limit=5)
    return Seats(client, tenant, tenant.create_account(name="Team"))


def assert_limit_reached(response: Any, name: str = "seats") -> None:
    body = assert_error(response, 403, "MAX_RESOURCES_REACHED")
    assert name in body["note"]


# --- defining features -----------------------------------------------------------------------------


class TestDefine:
    def test_create_then_change(self, client, tenant):
        response = put_feature(client, tenant.key, "cohort.max_count", description="Cohorts", limit=10)
        assert response.status_code == 201, response.text
        created = response.json()
        assert set(created) == FEATURE_FIELDS
        assert created["name"] == "cohort.max_count"
        assert created["description"] == "Cohorts"
        assert created["default_limit"] == 10
        assert created["reset"] == "never"
        assert RFC3339_Z.match(created["created_at"])
        response = put_feature(
            client, tenant.key, "cohort.max_count", description="Cohorts!", default_limit=20, reset="monthly"
        )
        assert response.status_code == 200, response.text
        changed = response.json()
        assert (changed["description"], changed["default_limit"], changed["reset"]) == ("Cohorts!", 20, "monthly")
        assert changed["created_at"] == created["created_at"]
        assert ts(changed["updated_at"]) >= ts(created["updated_at"])
        assert list_features(client, tenant.key) == [changed]

    def test_defaults(self, client, tenant):
        created = define(client, tenant.key, "plain")
        assert (created["description"], created["default_limit"], created["reset"]) == ("", None, "never")

    def test_limit_and_default_limit_are_the_same_field(self, client, tenant):
        assert define(client, tenant.key, "a", limit=3)["default_limit"] == 3
        assert define(client, tenant.key, "b", default_limit=4)["default_limit"] == 4

    def test_a_limit_can_be_removed(self, client, tenant):
        define(client, tenant.key, "a", limit=3)
        assert define(client, tenant.key, "a", limit=None)["default_limit"] is None
        assert list_features(client, tenant.key)[0]["default_limit"] is None

    def test_the_list_is_sorted_by_name(self, client, tenant):
        for name in ("zeta", "alpha", "mid.point"):
            define(client, tenant.key, name)
        assert [f["name"] for f in list_features(client, tenant.key)] == ["alpha", "mid.point", "zeta"]

    def test_a_bad_name_is_refused(self, client, tenant):
        def check(name):
            assert_invalid(put_feature(client, tenant.key, name, limit=1), "path.name")
            assert list_features(client, tenant.key) == []

        each({name: name for name in ["bad%20name", "-leading", "a%2Ab", "x" * 201]}, check)

    def test_bad_fields_are_refused(self, client, tenant):
        cases = {
            "negative limit": ({"limit": -1}, "body.limit"),
            "negative default_limit": ({"default_limit": -1}, "body.default_limit"),
            "fractional limit": ({"limit": 1.5}, "body.limit"),
            "limit not a number": ({"limit": "many"}, "body.limit"),
            "unknown reset": ({"reset": "weekly"}, "body.reset"),
            "description not text": ({"description": 5}, "body.description"),
        }

        def check(case):
            body, path = case
            assert_invalid(put_feature(client, tenant.key, "seats", **body), path)
            assert list_features(client, tenant.key) == []

        each(cases, check)

    def test_a_refused_change_keeps_the_feature(self, client, tenant):
        created = define(client, tenant.key, "seats", limit=5)
        assert_invalid(put_feature(client, tenant.key, "seats", limit=-5), "body.limit")
        assert list_features(client, tenant.key) == [created]

    def test_another_organization_does_not_see_them(self, client, tenant, other_tenant):
        define(client, tenant.key, "seats", limit=5)
        assert list_features(client, other_tenant.key) == []
        created = define(client, other_tenant.key, "seats", limit=9)
        assert created["default_limit"] == 9
        assert list_features(client, tenant.key)[0]["default_limit"] == 5

    def test_scope_catalog_write(self, client, tenant):
        key = tenant.create_key(scopes=["usage:read", "usage:write", "accounts:write"])["key"]
        body = assert_error(put_feature(client, key, "seats", limit=1), 403, "FORBIDDEN")
        assert "catalog:write" in body["note"]
        assert list_features(client, key) == []


# --- limits per account ----------------------------------------------------------------------------


class TestOverride:
    def test_an_override_replaces_the_default_for_one_account(self, seats, tenant):
        other = Seats(seats.client, tenant, tenant.create_account(name="Other"))
        response = put_limit(seats.client, tenant.key, seats.id, "seats", 7)
        assert response.status_code == 200, response.text
        assert response.json() == {"name": "seats", "description": "Seats in use", "limit": 7, "usage": 0}
        assert seats.limit == 7
        assert other.limit == 5
        seats.sent(7)
        assert_limit_reached(other.send(6))
        assert_limit_reached(seats.send(1))
        assert (seats.usage, other.usage) == (7, 0)

    def test_null_is_unlimited(self, seats):
        response = put_limit(seats.client, seats.tenant.key, seats.id, "seats", None)
        assert response.status_code == 200, response.text
        assert response.json()["limit"] is None
        seats.sent(1000, 2000)
        assert seats.usage == 3000
        assert seats.limit is None

    def test_the_reply_shows_the_current_usage(self, seats):
        seats.sent(3)
        response = put_limit(seats.client, seats.tenant.key, seats.id, "seats", 4)
        assert response.json() == {"name": "seats", "description": "Seats in use", "limit": 4, "usage": 3}

    def test_the_override_survives_a_change_of_the_default(self, seats):
        put_limit(seats.client, seats.tenant.key, seats.id, "seats", 2)
        define(seats.client, seats.tenant.key, "seats", limit=50)
        assert seats.limit == 2

    def test_an_unknown_feature_is_not_found(self, seats):
        body = assert_error(put_limit(seats.client, seats.tenant.key, seats.id, "nope", 3), 404, "NOT_FOUND")
        assert "nope" in body["note"]

    def test_an_unknown_or_foreign_account_is_not_found(self, seats, other_tenant):
        assert_error(put_limit(seats.client, seats.tenant.key, str(uuid.uuid4()), "seats", 3), 404, "NOT_FOUND")
        define(seats.client, other_tenant.key, "seats", limit=1)
        assert_error(put_limit(seats.client, other_tenant.key, seats.id, "seats", 100), 404, "NOT_FOUND")
        assert seats.limit == 5

    def test_a_bad_limit_is_refused(self, seats):
        def check(limit):
            assert_invalid(put_limit(seats.client, seats.tenant.key, seats.id, "seats", limit), "body.limit")
            assert seats.limit == 5

        each({repr(limit): limit for limit in [-1, 1.5, "x"]}, check)

    def test_a_boolean_is_not_a_limit(self, seats):
        assert_invalid(put_limit(seats.client, seats.tenant.key, seats.id, "seats", True), "body.limit")
        assert seats.limit == 5
        assert_invalid(put_feature(seats.client, seats.tenant.key, "seats", limit=True), "body.limit")
        assert list_features(seats.client, seats.tenant.key)[0]["default_limit"] == 5

    def test_a_missing_limit_is_refused(self, seats):
        response = seats.client.put(f"/v1/accounts/{seats.id}/limits/seats", json={}, headers=seats.tenant.headers)
        assert_invalid(response, "body.limit")
        assert seats.limit == 5

    def test_a_lower_limit_refuses_new_use_but_keeps_the_old(self, seats):
        seats.sent(4)
        put_limit(seats.client, seats.tenant.key, seats.id, "seats", 2)
        assert seats.usage == 4
        assert_limit_reached(seats.send(1))
        seats.sent(-1)
        assert seats.usage == 3


# --- counting --------------------------------------------------------------------------------------


class TestCounting:
    def test_feature_events_are_counted(self, seats):
        seats.sent(1)
        seats.sent(2, 1)
        assert seats.item == {"name": "seats", "description": "Seats in use", "limit": 5, "usage": 4}

    def test_up_to_the_limit_exactly(self, seats):
        seats.sent(5)
        assert seats.usage == 5

    def test_a_batch_that_would_exceed_the_limit_is_refused_whole(self, seats):
        seats.sent(3)
        response = seats.send(1, 1, 1)
        assert_limit_reached(response)
        assert seats.usage == 3
        seats.sent(1, 1)
        assert seats.usage == 5

    def test_a_single_event_above_the_limit(self, seats):
        assert_limit_reached(seats.send(6))
        assert seats.usage == 0

    def test_nothing_else_of_a_refused_batch_is_written(self, seats):
        client, tenant = seats.client, seats.tenant
        grant = client.post(f"/v1/accounts/{seats.id}/credits", json={"id": "g", "amount": 10}, headers=tenant.headers)
        assert grant.status_code == 201, grant.text
        define(client, tenant.key, "projects", limit=100)
        seats.sent(4)
        credit = {"id": "c-1", "account_id": seats.id, "type": "credit", "quantity": 3}
        projects = use(seats.id, 2, "projects")
        assert_limit_reached(post_events(client, tenant.key, [credit, projects, use(seats.id, 2)]))
        assert seats.usage == 4
        assert usages(client, seats.account["api_key"])["projects"]["usage"] == 0
        balance = client.get(f"/v1/accounts/{seats.id}/credits", headers=tenant.headers).json()["balance"]
        assert balance == 10
        assert post_events(client, tenant.key, [credit, projects]).json() == {"accepted": 2, "duplicates": 0}

    def test_a_limit_of_zero_refuses_any_use(self, client, tenant):
        define(client, tenant.key, "none", limit=0)
        seats = Seats(client, tenant, tenant.create_account(), "none")
        assert_limit_reached(seats.send(1), "none")
        assert seats.usage == 0

    def test_an_unlimited_feature_counts_without_bound(self, client, tenant):
        define(client, tenant.key, "free")
        seats = Seats(client, tenant, tenant.create_account(), "free")
        seats.sent(10**9, 10**9)
        assert seats.item == {"name": "free", "description": "", "limit": None, "usage": 2 * 10**9}

    def test_accounts_are_counted_apart(self, seats, tenant):
        other = Seats(seats.client, tenant, tenant.create_account(name="Other"))
        seats.sent(5)
        other.sent(5)
        assert (seats.usage, other.usage) == (5, 5)

    def test_a_retry_is_not_counted_twice(self, seats):
        event = use(seats.id, 2)
        assert post_events(seats.client, seats.tenant.key, [event]).json() == {"accepted": 1, "duplicates": 0}
        assert post_events(seats.client, seats.tenant.key, [event]).json() == {"accepted": 0, "duplicates": 1}
        assert seats.usage == 2

    def test_a_retry_at_the_limit_is_a_duplicate_not_a_refusal(self, seats):
        event = use(seats.id, 5)
        post_events(seats.client, seats.tenant.key, [event])
        assert post_events(seats.client, seats.tenant.key, [event]).json() == {"accepted": 0, "duplicates": 1}
        assert seats.usage == 5


class TestRelease:
    def test_a_negative_quantity_releases(self, seats):
        seats.sent(5)
        seats.sent(-2)
        assert seats.usage == 3
        seats.sent(2)
        assert seats.usage == 5

    def test_releasing_below_zero_is_refused(self, seats):
        seats.sent(2)
        body = assert_error(seats.send(-3), 400, "BAD_REQUEST")
        assert "seats" in body["note"]
        assert seats.usage == 2

    def test_releasing_what_was_never_used_is_refused(self, seats):
        assert_error(seats.send(-1), 400, "BAD_REQUEST")
        assert seats.usage == 0

    def test_a_refused_release_writes_nothing_of_its_batch(self, client, tenant, seats):
        define(client, tenant.key, "projects")
        seats.sent(1)
        projects = use(seats.id, 4, "projects")
        assert_error(post_events(client, tenant.key, [projects, use(seats.id, -2)]), 400, "BAD_REQUEST")
        assert usages(client, seats.account["api_key"])["projects"]["usage"] == 0
        assert seats.usage == 1
        assert post_events(client, tenant.key, [projects]).json() == {"accepted": 1, "duplicates": 0}

    def test_release_to_exactly_zero(self, seats):
        seats.sent(3)
        seats.sent(-3)
        assert seats.usage == 0


class TestMonthlyReset:
    @pytest.fixture
    def calls(self, client, tenant):
        define(client, tenant.key, "api.calls", description="API calls", limit=2, reset="monthly")
        return Seats(client, tenant, tenant.create_account(name="Caller"), "api.calls")

    def test_a_past_month_counts_apart_from_this_one(self, calls):
        last_month = rfc3339(previous_month_noon())
        calls.sent(1, 1, occurred_at=last_month)
        assert calls.usage == 0
        calls.sent(1, 1)
        assert calls.item == {"name": "api.calls", "description": "API calls", "limit": 2, "usage": 2}
        assert_limit_reached(calls.send(1, occurred_at=last_month), "api.calls")
        assert_limit_reached(calls.send(1), "api.calls")
        assert calls.usage == 2

    def test_each_month_has_its_own_counter(self, calls):
        calls.sent(2, occurred_at="2021-01-31T23:59:59Z")
        calls.sent(2, occurred_at="2021-02-01T00:00:00Z")
        assert_limit_reached(calls.send(1, occurred_at="2021-01-15T00:00:00Z"), "api.calls")
        assert_limit_reached(calls.send(1, occurred_at="2021-02-28T00:00:00Z"), "api.calls")
        calls.sent(2, occurred_at="2021-03-01T00:00:00Z")
        assert calls.usage == 0

    def test_a_batch_spanning_months_checks_each(self, calls):
        last_month = rfc3339(previous_month_noon())
        events = [use(calls.id, 2, "api.calls", occurred_at=last_month), use(calls.id, 2, "api.calls")]
        assert post_events(calls.client, calls.tenant.key, events).json() == {"accepted": 2, "duplicates": 0}
        assert calls.usage == 2

    def test_a_release_applies_to_the_month_it_is_dated_in(self, calls):
        last_month = rfc3339(previous_month_noon())
        calls.sent(2, occurred_at=last_month)
        calls.sent(1)
        calls.sent(-1, occurred_at=last_month)
        assert calls.usage == 1
        calls.sent(1, occurred_at=last_month)
        assert_error(calls.send(-2), 400, "BAD_REQUEST")
        assert calls.usage == 1

    def test_a_feature_that_never_resets_counts_every_month_together(self, seats):
        seats.sent(2, occurred_at="2020-06-15T00:00:00Z")
        seats.sent(3)
        assert seats.usage == 5
        assert_limit_reached(seats.send(1, occurred_at="2019-01-01T00:00:00Z"))


# --- reading usage ---------------------------------------------------------------------------------


class TestUsages:
    def test_an_account_key_sees_its_own_usage_and_limit(self, seats, tenant):
        other = Seats(seats.client, tenant, tenant.create_account(name="Other"))
        put_limit(seats.client, tenant.key, other.id, "seats", 9)
        seats.sent(2)
        other.sent(4)
        assert usages(seats.client, seats.account["api_key"]) == {
            "seats": {"name": "seats", "description": "Seats in use", "limit": 5, "usage": 2}
        }
        assert usages(seats.client, other.account["api_key"]) == {
            "seats": {"name": "seats", "description": "Seats in use", "limit": 9, "usage": 4}
        }

    def test_an_organization_key_sees_the_sum_over_its_accounts(self, seats, tenant):
        define(seats.client, tenant.key, "projects", description="Projects")
        other = Seats(seats.client, tenant, tenant.create_account(name="Other"))
        seats.sent(2)
        other.sent(4)
        assert usages(seats.client, tenant.key) == {
            "projects": {"name": "projects", "description": "Projects", "limit": None, "usage": 0},
            "seats": {"name": "seats", "description": "Seats in use", "limit": 5, "usage": 6},
        }

    def test_every_feature_is_listed_even_unused(self, seats):
        define(seats.client, seats.tenant.key, "other.thing", limit=1)
        assert set(usages(seats.client, seats.account["api_key"])) == {"seats", "other.thing"}

    def test_another_organization_sees_none_of_it(self, seats, other_tenant):
        seats.sent(3)
        define(seats.client, other_tenant.key, "seats", limit=1)
        assert usages(seats.client, other_tenant.key)["seats"]["usage"] == 0

    def test_usages_need_usage_read(self, seats):
        key = seats.tenant.create_key(scopes=["usage:write"])["key"]
        response = seats.client.get("/v1/usages", headers=bearer(key))
        assert "usage:read" in assert_error(response, 403, "FORBIDDEN")["note"]


# --- the limits of an account's plan ---------------------------------------------------------------


class TestPlanLimits:
    """An account's limit: its override, else the limit of the plan it is on now, else the feature's default."""

    @staticmethod
    def on_plan(client: Any, tenant: Any, seats: Seats, limit: int | None) -> None:
        body = {"name": "Team", "currency": "USD", "prices": {}, "limits": {"seats": limit}}
        assert client.put("/v1/plans/team", json=body, headers=bearer(tenant.key)).status_code in (200, 201)
        path = f"/v1/accounts/{seats.id}/subscription"
        response = client.put(path, json={"plan": "team"}, headers=bearer(tenant.key))
        assert response.status_code == 200, response.text

    def test_the_plans_limit_replaces_the_default(self, client, tenant, seats):
        self.on_plan(client, tenant, seats, 8)
        assert seats.limit == 8
        seats.sent(7)  # past the default of 5
        assert_limit_reached(seats.send(2))
        assert seats.usage == 7

    def test_a_plan_may_lift_the_limit(self, client, tenant, seats):
        self.on_plan(client, tenant, seats, None)
        assert seats.limit is None
        seats.sent(1000)

    def test_the_accounts_own_override_beats_its_plan(self, client, tenant, seats):
        self.on_plan(client, tenant, seats, 8)
        response = client.put(f"/v1/accounts/{seats.id}/limits/seats", json={"limit": 2}, headers=bearer(tenant.key))
        assert response.status_code == 200, response.text
        assert seats.limit == 2
        assert_limit_reached(seats.send(3))

    def test_a_plan_that_does_not_limit_the_feature_leaves_the_default(self, client, tenant, seats):
        body = {"name": "Team", "currency": "USD", "prices": {}, "limits": {}}
        assert client.put("/v1/plans/team", json=body, headers=bearer(tenant.key)).status_code == 201
        client.put(f"/v1/accounts/{seats.id}/subscription", json={"plan": "team"}, headers=bearer(tenant.key))
        assert seats.limit == 5
        assert_limit_reached(seats.send(6))
