"""Invoiced months never change (CONTRACT §2 invariants 1, 2, 9 and 10; §4 ``POST /v1/events``).

Once a month has had its billing run, new usage dated in it is refused with a 400 that names each
offending ``body.N.occurred_at``, and nothing of the batch is written; the months around it are still
open. Retries of events acknowledged before the run are still answered as duplicates (an id is
applied at most once, for ever), and credit and feature events obey the same rule as metered ones.
The Frontier dialect dates its usages when they arrive (its ``created_at`` is ignored): a usage that
arrives in an invoiced month is refused in Frontier's own error shape. Every test runs on SQLite and
on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from meterbook.db.tables import usage_events
from meterbook.invoicing import service as invoicing
from meterbook.kit.time import month_start, next_month
from tests.billing import Billing, at, metered, months_ago, start_of
from tests.conftest import bearer
from tests.helpers import assert_invalid, rfc3339, ts

INVOICED, AFTER, BEFORE = months_ago(2), months_ago(1), months_ago(3)


class Shop:
    """A tenant with one account, a product, credits and a feature, whose month INVOICED has had its run."""

    def __init__(self, billing: Billing, database: Any) -> None:
        self.billing, self.database = billing, database
        self.client = billing.client
        billing.product("API", "0.5")
        self.account = billing.account(name="Customer")
        self.key = billing.tenant.create_key(account_id=self.account["id"])["key"]
        response = self.client.post(
            f"/v1/accounts/{self.account['id']}/credits", json={"id": "grant", "amount": 1000}, headers=billing.headers
        )
        assert response.status_code == 201, response.text
        response = self.client.put(
            "/v1/features/seats", json={"description": "Seats", "default_limit": 100}, headers=billing.headers
        )
        assert response.status_code == 201, response.text
        # Acknowledged before the run: usage of every kind in the month about to be invoiced.
        self.acknowledged = [
            metered(self.account, "API", 4, at(INVOICED)),
            self.credit(10, at(INVOICED)),
            self.feature(2, at(INVOICED)),
        ]
        response = billing.send(self.acknowledged)
        assert response.status_code == 200, response.text
        billing.billed(INVOICED)

    def credit(self, amount: int, occurred_at: str) -> dict[str, Any]:
        return {
            "id": f"c-{uuid.uuid4().hex}",
            "account_id": self.account["id"],
            "type": "credit",
            "quantity": amount,
            "occurred_at": occurred_at,
        }

    def feature(self, count: int, occurred_at: str) -> dict[str, Any]:
        return {
            "id": f"f-{uuid.uuid4().hex}",
            "account_id": self.account["id"],
            "type": "feature",
            "feature": "seats",
            "quantity": count,
            "occurred_at": occurred_at,
        }

    def usage(self) -> list[dict[str, Any]]:
        response = self.client.get(
            "/v1/monthly_usage", params={"account_id": self.account["id"]}, headers=self.billing.headers
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["usage"]
        return found

    def balance(self) -> int:
        response = self.client.get(f"/v1/accounts/{self.account['id']}/credits", headers=self.billing.headers)
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])

    def seats(self) -> int:
        response = self.client.get("/v1/usages", headers=bearer(self.key))
        assert response.status_code == 200, response.text
        return next(int(item["usage"]) for item in response.json() if item["name"] == "seats")

    def stored_events(self) -> int:
        with self.database.read() as conn:
            return int(conn.execute(select(func.count()).select_from(usage_events)).scalar_one())

    def state(self) -> tuple[Any, ...]:
        return self.usage(), self.balance(), self.seats(), self.stored_events(), self.billing.invoices()


@pytest.fixture
def shop(tenant, database):
    return Shop(Billing(tenant), database)


def assert_month_invoiced(response: Any, *paths: str) -> dict[str, Any]:
    body = assert_invalid(response, *paths)
    found = {item["path"] for item in body["validationErrors"]}
    assert found == set(paths), body
    for item in body["validationErrors"]:
        assert INVOICED in item["message"], item
        assert "invoiced" in item["message"], item
    return body


class TestRefused:
    def test_metered_usage_in_an_invoiced_month_refuses_the_batch(self, shop):
        before = shop.state()
        batch = [
            metered(shop.account, "API", 1, at(AFTER)),
            metered(shop.account, "API", 3, at(INVOICED, 20)),
            metered(shop.account, "API", 5, at(BEFORE)),
        ]
        assert_month_invoiced(shop.billing.send(batch), "body.1.occurred_at")
        assert shop.state() == before
        # The other events of the batch were not stored: sent alone, they are new.
        response = shop.billing.send([batch[0], batch[2]])
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 2, "duplicates": 0}

    def test_every_offending_event_is_named(self, shop):
        batch = [
            metered(shop.account, "API", 1, at(INVOICED, 1)),
            metered(shop.account, "API", 1, at(AFTER)),
            shop.credit(1, at(INVOICED, 2)),
            shop.feature(1, at(INVOICED, 3)),
        ]
        assert_month_invoiced(
            shop.billing.send(batch), "body.0.occurred_at", "body.2.occurred_at", "body.3.occurred_at"
        )

    def test_the_first_and_last_instants_of_the_month_are_in_it(self, shop):
        before = shop.state()
        last = rfc3339(ts(start_of(AFTER)) - timedelta(microseconds=1))
        for moment in (start_of(INVOICED), last):
            assert_month_invoiced(shop.billing.send([metered(shop.account, "API", 1, moment)]), "body.0.occurred_at")
        assert shop.state() == before

    def test_credit_usage_in_an_invoiced_month_is_refused(self, shop):
        before = shop.state()
        assert_month_invoiced(shop.billing.send([shop.credit(5, at(INVOICED))]), "body.0.occurred_at")
        assert shop.state() == before
        assert shop.balance() == 990

    def test_feature_usage_in_an_invoiced_month_is_refused(self, shop):
        before = shop.state()
        assert_month_invoiced(shop.billing.send([shop.feature(1, at(INVOICED))]), "body.0.occurred_at")
        assert_month_invoiced(shop.billing.send([shop.feature(-1, at(INVOICED))]), "body.0.occurred_at")
        assert shop.state() == before

    def test_an_account_key_is_refused_alike(self, shop):
        before = shop.state()
        response = shop.client.post(
            "/v1/events", json=[metered(shop.account, "API", 1, at(INVOICED))], headers=bearer(shop.key)
        )
        assert_month_invoiced(response, "body.0.occurred_at")
        assert shop.state() == before

    def test_the_invoice_of_the_month_is_unchanged(self, shop):
        (invoice,) = shop.billing.invoices_in_full()
        shop.billing.send([metered(shop.account, "API", 100, at(INVOICED))])
        assert shop.billing.invoices_in_full() == [invoice]
        assert shop.billing.billed(INVOICED, 200)["invoice_count"] == 1


class TestAccepted:
    def test_the_months_around_are_open(self, shop):
        before = shop.balance()
        batch = [
            metered(shop.account, "API", 1, start_of(AFTER)),
            metered(shop.account, "API", 2, rfc3339(ts(start_of(INVOICED)) - timedelta(microseconds=1))),
            shop.credit(3, at(AFTER)),
            shop.feature(1, at(AFTER)),
        ]
        response = shop.billing.send(batch)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 4, "duplicates": 0}
        months = {item["month"]: item["number_of_units"] for item in shop.usage()}
        assert months == {BEFORE: 2, INVOICED: 4, AFTER: 1}
        assert shop.balance() == before - 3

    def test_usage_without_a_time_is_dated_now(self, shop):
        event = metered(shop.account, "API", 1, "")
        del event["occurred_at"]
        response = shop.billing.send([event])
        assert response.status_code == 200, response.text
        assert months_ago(0) in {item["month"] for item in shop.usage()}

    def test_a_retry_of_usage_acknowledged_before_the_run_is_a_duplicate(self, shop):
        before = shop.state()
        for event in shop.acknowledged:
            response = shop.billing.send([event])
            assert response.status_code == 200, response.text
            assert response.json() == {"accepted": 0, "duplicates": 1}
        response = shop.billing.send(shop.acknowledged)
        assert response.json() == {"accepted": 0, "duplicates": 3}
        assert shop.state() == before

    def test_a_retry_beside_new_usage_of_an_open_month(self, shop):
        fresh = metered(shop.account, "API", 2, at(AFTER))
        response = shop.billing.send([shop.acknowledged[0], fresh])
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 1, "duplicates": 1}

    def test_a_retry_beside_new_usage_of_the_invoiced_month_is_refused_whole(self, shop):
        before = shop.state()
        late = metered(shop.account, "API", 2, at(INVOICED))
        assert_month_invoiced(shop.billing.send([shop.acknowledged[0], late]), "body.1.occurred_at")
        assert shop.state() == before

    def test_the_same_id_with_other_content_is_still_a_conflict(self, shop):
        before = shop.state()
        changed = {**shop.acknowledged[0], "quantity": 5}
        response = shop.billing.send([changed])
        assert response.status_code == 409, response.text
        assert shop.state() == before

    def test_another_organizations_invoiced_month_does_not_matter(self, shop, other_tenant):
        other = Billing(other_tenant)
        other.product("API", "1")
        account = other.account()
        assert other.billed(AFTER)["invoice_count"] == 0
        other.use(account, "API", 1, at(INVOICED))
        shop.billing.use(shop.account, "API", 1, at(AFTER))


# --- the Frontier dialect ---------------------------------------------------------------------------


FRONTIER_INVALID_ARGUMENT = 3


def frontier_usages(tenant: Any, account: dict[str, Any], *usages: dict[str, Any]) -> Any:
    return tenant.client.post(
        f"/v1beta1/organizations/{tenant.id}/billing/{account['id']}/usages",
        json={"usages": list(usages)},
        headers=tenant.headers,
    )


class TestFrontier:
    def invoice_the_current_month(self, database: Any, tenant: Any) -> None:
        """The billing run of the current month, as it will be made once the month has ended."""
        month = months_ago(0)
        with database.write() as conn:
            run = invoicing.run_billing(conn, uuid.UUID(tenant.id), month, now=month_start(next_month(month)))
        assert run.created

    def test_a_usage_arriving_in_an_invoiced_month_is_refused_in_frontiers_shape(self, shop, tenant, database):
        self.invoice_the_current_month(database, tenant)
        before = shop.state()
        sent = {"id": str(uuid.uuid4()), "amount": 7, "created_at": rfc3339(datetime.now(UTC))}
        response = frontier_usages(tenant, shop.account, sent)
        assert response.status_code == 400, response.text
        body = response.json()
        assert set(body) == {"code", "message", "details"}, body
        assert body["code"] == FRONTIER_INVALID_ARGUMENT
        assert body["details"] == []
        assert "usages[0]" in body["message"], body
        assert f"{months_ago(0)} is already invoiced" in body["message"], body
        assert shop.state() == before
        feature = {"id": str(uuid.uuid4()), "amount": 1, "type": "feature", "metadata": {"feature": "seats"}}
        assert frontier_usages(tenant, shop.account, feature).json()["code"] == FRONTIER_INVALID_ARGUMENT
        assert shop.state() == before

    def test_created_at_in_an_invoiced_month_is_ignored(self, shop, tenant):
        # Frontier's created_at is ignored: the usage is dated when it arrives, in a month still open.
        before = shop.balance()
        sent = {"id": str(uuid.uuid4()), "amount": 7, "created_at": at(INVOICED)}
        response = frontier_usages(tenant, shop.account, sent)
        assert response.status_code == 200, response.text
        assert response.json() == {}
        assert shop.balance() == before - 7

    def test_a_retry_of_a_frontier_usage_acknowledged_before_the_run_is_a_duplicate(self, shop, tenant, database):
        sent = {"id": str(uuid.uuid4()), "amount": 7}
        assert frontier_usages(tenant, shop.account, sent).status_code == 200
        balance = shop.balance()
        self.invoice_the_current_month(database, tenant)
        response = frontier_usages(tenant, shop.account, sent)
        assert response.status_code == 200, response.text
        assert response.json() == {}
        assert shop.balance() == balance
