"""Alerts (CONTRACT §7, issue 19) through the API, on both databases: each type fires once, at the write that crosses
its threshold, listed at ``/triggers`` and emitted as ``alert.triggered`` into the outbox; the balance alert re-arms
when the balance rises back; month types fire once per account and month; bad input is refused per field with
nothing written; another organization's alert and account are not found.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from meterbook.db import Database
from meterbook.db.tables import alert_triggers, alerts, webhook_events
from tests.conftest import Tenant, bearer
from tests.helpers import assert_error, assert_invalid, each

PRODUCT = "API-CALLS"
OTHER_PRODUCT = "SMS"
FEATURE = "seats"


def ok(response: Any, status: int | None = 200) -> Any:
    """The JSON of a reply with ``status`` (None: any success)."""
    assert response.status_code == status if status else 200 <= response.status_code < 300, response.text
    return response.json()


def this_month() -> str:
    return f"{datetime.now(UTC):%Y-%m}"


def last_month_at() -> str:
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Shop:
    """An organization with a catalog, a feature, a webhook endpoint taking every event, and helpers to report usage."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.client: TestClient = tenant.client
        headers = tenant.headers
        ok(
            self.client.put(
                f"/v1/products/{PRODUCT}",
                json={"description": "API calls", "unit_price": "0.5", "price_effective_from": "2000-01-01T00:00:00Z"},
                headers=headers,
            ),
            None,
        )
        ok(
            self.client.put(
                f"/v1/products/{OTHER_PRODUCT}",
                json={"description": "SMS", "unit_price": "2", "price_effective_from": "2000-01-01T00:00:00Z"},
                headers=headers,
            ),
            None,
        )
        ok(
            self.client.put(f"/v1/features/{FEATURE}", json={"default_limit": 10, "reset": "monthly"}, headers=headers),
            None,
        )
        ok(
            self.client.post(
                "/v1/webhook_endpoints", json={"url": "https://hooks.example.com/meterbook"}, headers=headers
            ),
            201,
        )
        self.sent = 0

    def account(self, **body: Any) -> str:
        return str(self.tenant.create_account(**body)["id"])

    def alert(self, **body: Any) -> dict[str, Any]:
        created: dict[str, Any] = ok(self.client.post("/v1/alerts", json=body, headers=self.tenant.headers), 201)
        return created

    def events(self, *events: dict[str, Any]) -> dict[str, Any]:
        batch = []
        for event in events:
            self.sent += 1
            batch.append({"id": f"e{self.sent}", **event})
        answer: dict[str, Any] = ok(self.client.post("/v1/events", json=batch, headers=self.tenant.headers))
        return answer

    def metered(self, account_id: str, quantity: str, product_id: str = PRODUCT, **extra: Any) -> None:
        self.events(
            {"account_id": account_id, "type": "metered", "product_id": product_id, "quantity": quantity, **extra}
        )

    def credit(self, account_id: str, quantity: int) -> None:
        self.events({"account_id": account_id, "type": "credit", "quantity": quantity})

    def feature(self, account_id: str, quantity: int) -> None:
        self.events({"account_id": account_id, "type": "feature", "feature": FEATURE, "quantity": quantity})

    def grant(self, account_id: str, amount: int) -> None:
        ok(
            self.client.post(
                f"/v1/accounts/{account_id}/credits",
                json={"id": f"grant-{uuid.uuid4()}", "amount": amount},
                headers=self.tenant.headers,
            ),
            201,
        )

    def triggers(self, alert: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = ok(
            self.client.get(f"/v1/alerts/{alert['id']}/triggers", headers=self.tenant.headers)
        )["triggers"]
        return found


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return Shop(tenant)


def outbox(database: Database, event_type: str) -> list[dict[str, Any]]:
    with database.read() as conn:
        bodies = conn.execute(
            select(webhook_events.c.body)
            .where(webhook_events.c.type == event_type)
            .order_by(webhook_events.c.created_at)
        ).scalars()
        return [json.loads(body) for body in bodies]


class TestEachTypeFiresOnceAtTheCrossing:
    def test_usage_above(self, shop: Shop, database: Database) -> None:
        account = shop.account()
        alert = shop.alert(account_id=account, type="usage_above", threshold=10, product_id=PRODUCT, name="busy")
        shop.metered(account, "6")
        shop.metered(account, "3.5", product_id=OTHER_PRODUCT)  # another product counts nothing
        assert shop.triggers(alert) == []
        shop.metered(account, "4")  # 10: at the threshold
        [trigger] = shop.triggers(alert)
        assert (trigger["account_id"], trigger["period"], trigger["value"], trigger["threshold"]) == (
            account,
            this_month(),
            10,
            10,
        )
        shop.metered(account, "100")
        assert len(shop.triggers(alert)) == 1  # once per account and month
        [event] = outbox(database, "alert.triggered")
        assert event["data"]["id"] == alert["id"]
        assert event["data"]["name"] == "busy"
        assert event["data"]["trigger"]["id"] == trigger["id"]
        assert event["data"]["trigger"]["value"] == 10

    def test_spend_above_prices_the_month_by_the_one_pricing(self, shop: Shop, database: Database) -> None:
        account = shop.account()
        alert = shop.alert(account_id=account, type="spend_above", threshold="5")
        shop.metered(account, "4")  # 2.00
        shop.metered(account, "1", product_id=OTHER_PRODUCT)  # 4.00
        assert shop.triggers(alert) == []
        shop.metered(account, "2")  # 5.00
        [trigger] = shop.triggers(alert)
        assert trigger["value"] == 5
        shop.metered(account, "2")
        assert len(shop.triggers(alert)) == 1
        assert len(outbox(database, "alert.triggered")) == 1

    def test_feature_usage_above_and_limit_reached(self, shop: Shop, database: Database) -> None:
        account = shop.account()
        alert = shop.alert(type="feature_usage_above", threshold=80, feature=FEATURE)
        shop.feature(account, 7)
        assert shop.triggers(alert) == []
        assert outbox(database, "feature.limit_reached") == []
        shop.feature(account, 1)  # 8 of 10
        [trigger] = shop.triggers(alert)
        assert (trigger["value"], trigger["period"]) == (80, this_month())
        shop.feature(account, 2)  # 10 of 10: the limit
        assert len(shop.triggers(alert)) == 1
        [reached] = outbox(database, "feature.limit_reached")
        assert reached["data"] == {
            "account_id": account,
            "name": FEATURE,
            "limit": 10,
            "usage": 10,
            "period": this_month(),
        }
        shop.feature(account, -1)
        shop.feature(account, 1)  # the limit again, from below: emitted again
        assert len(outbox(database, "feature.limit_reached")) == 2

    def test_credit_balance_below_rearms_after_rising_back(self, shop: Shop, database: Database) -> None:
        account = shop.account()
        shop.grant(account, 100)
        alert = shop.alert(account_id=account, type="credit_balance_below", threshold=50)
        shop.credit(account, 50)  # 50: not below
        assert shop.triggers(alert) == []
        shop.credit(account, 1)  # 49: crosses
        [first] = shop.triggers(alert)
        assert (first["value"], first["period"]) == (49, "1")
        shop.credit(account, 9)  # 40: still below, no new crossing
        assert len(shop.triggers(alert)) == 1
        shop.grant(account, 10)  # 50: at the threshold again, re-armed
        shop.credit(account, 5)  # 45: crosses again
        second, again = shop.triggers(alert)
        assert (second["value"], second["period"], again["period"]) == (45, "2", "1")
        low = outbox(database, "credits.low")
        assert [event["data"]["balance"] for event in low] == [49, 45]
        assert len(outbox(database, "alert.triggered")) == 2

    def test_credits_depleted_without_any_alert(self, shop: Shop, database: Database) -> None:
        account = shop.account()
        shop.grant(account, 10)
        shop.credit(account, 9)
        assert outbox(database, "credits.depleted") == []
        shop.credit(account, 1)
        [event] = outbox(database, "credits.depleted")
        assert event["data"] == {"account_id": account, "balance": 0, "credit_min": 0}


class TestScope:
    def test_an_organization_wide_alert_fires_per_account_and_an_account_alert_for_its_own(self, shop: Shop) -> None:
        first, second = shop.account(), shop.account()
        everyone = shop.alert(type="usage_above", threshold=5, product_id=PRODUCT)
        own = shop.alert(account_id=first, type="usage_above", threshold=5, product_id=PRODUCT)
        shop.events(
            {"account_id": first, "type": "metered", "product_id": PRODUCT, "quantity": "5"},
            {"account_id": second, "type": "metered", "product_id": PRODUCT, "quantity": "7"},
        )
        assert sorted(trigger["account_id"] for trigger in shop.triggers(everyone)) == sorted([first, second])
        assert [trigger["account_id"] for trigger in shop.triggers(own)] == [first]

    def test_once_per_month_each_month_of_the_usage(self, shop: Shop) -> None:
        account = shop.account()
        alert = shop.alert(type="usage_above", threshold=5, product_id=PRODUCT)
        shop.metered(account, "6", occurred_at=last_month_at())
        shop.metered(account, "6")
        shop.metered(account, "6", occurred_at=last_month_at())
        periods = sorted(trigger["period"] for trigger in shop.triggers(alert))
        assert periods == sorted([last_month_at()[:7], this_month()])

    def test_an_alert_made_when_already_over_fires_at_the_next_write(self, shop: Shop) -> None:
        account = shop.account()
        shop.metered(account, "20")
        alert = shop.alert(type="usage_above", threshold=5, product_id=PRODUCT)
        assert shop.triggers(alert) == []
        shop.metered(account, "1")
        assert [trigger["value"] for trigger in shop.triggers(alert)] == [21]

    def test_alerts_made_or_deleted_between_writes_count_from_the_next_write(self, shop: Shop) -> None:
        # A server keeps an organization's alerts between batches (docs/alerts.md, "Cost"): a change to them, by
        # any server, is seen by the next batch.
        account = shop.account()
        first = shop.alert(type="usage_above", threshold=10, product_id=PRODUCT)
        shop.metered(account, "1")
        second = shop.alert(type="usage_above", threshold=3, product_id=PRODUCT)
        shop.metered(account, "2")
        assert [trigger["value"] for trigger in shop.triggers(second)] == [3]
        ok(shop.client.delete(f"/v1/alerts/{first['id']}", headers=shop.tenant.headers))
        third = shop.alert(type="usage_above", threshold=4, product_id=PRODUCT)
        shop.metered(account, "20")
        assert [trigger["value"] for trigger in shop.triggers(third)] == [23]
        assert len(shop.triggers(second)) == 1
        assert shop.client.get(f"/v1/alerts/{first['id']}/triggers", headers=shop.tenant.headers).status_code == 404

    def test_a_refused_batch_fires_nothing(self, shop: Shop) -> None:
        account = shop.account()
        alert = shop.alert(type="usage_above", threshold=5, product_id=PRODUCT)
        response = shop.client.post(
            "/v1/events",
            json=[
                {"id": "x1", "account_id": account, "type": "metered", "product_id": PRODUCT, "quantity": "9"},
                {"id": "x2", "account_id": account, "type": "credit", "quantity": 1},  # no credits: refused whole
            ],
            headers=shop.tenant.headers,
        )
        assert response.status_code == 400, response.text
        assert shop.triggers(alert) == []


class TestApi:
    def test_create_list_get_delete(self, shop: Shop, database: Database) -> None:
        account = shop.account()
        created = shop.alert(name="low", account_id=account, type="credit_balance_below", threshold=100)
        assert created == {
            "id": created["id"],
            "name": "low",
            "account_id": account,
            "type": "credit_balance_below",
            "threshold": 100,
            "product_id": None,
            "feature": None,
            "created_at": created["created_at"],
        }
        headers = shop.tenant.headers
        assert ok(shop.client.get("/v1/alerts", headers=headers)) == {"alerts": [created]}
        assert ok(shop.client.get(f"/v1/alerts/{created['id']}", headers=headers)) == created
        shop.grant(account, 200)
        shop.credit(account, 150)
        assert len(shop.triggers(created)) == 1
        assert ok(shop.client.delete(f"/v1/alerts/{created['id']}", headers=headers)) == created
        assert_error(shop.client.get(f"/v1/alerts/{created['id']}", headers=headers), 404, "NOT_FOUND")
        assert_error(shop.client.delete(f"/v1/alerts/{created['id']}", headers=headers), 404, "NOT_FOUND")
        with database.read() as conn:
            assert conn.execute(select(func.count()).select_from(alert_triggers)).scalar_one() == 0

    def test_bad_input_names_the_field_and_writes_nothing(self, shop: Shop, database: Database) -> None:
        account = shop.account()
        cases: dict[str, tuple[dict[str, Any], str]] = {
            "unknown type": ({"type": "balance_low", "threshold": 1}, "body.type"),
            "no type": ({"threshold": 1}, "body.type"),
            "no threshold": ({"type": "spend_above"}, "body.threshold"),
            "negative threshold": ({"type": "spend_above", "threshold": -1}, "body.threshold"),
            "threshold not a number": ({"type": "spend_above", "threshold": "lots"}, "body.threshold"),
            "threshold a boolean": ({"type": "spend_above", "threshold": True}, "body.threshold"),
            "threshold too large": ({"type": "spend_above", "threshold": "10000000000000000000"}, "body.threshold"),
            "too many decimals": ({"type": "spend_above", "threshold": "0.0000000001"}, "body.threshold"),
            "fractional credits": ({"type": "credit_balance_below", "threshold": "1.5"}, "body.threshold"),
            "percent over 100": (
                {"type": "feature_usage_above", "threshold": 101, "feature": FEATURE},
                "body.threshold",
            ),
            "usage without product": ({"type": "usage_above", "threshold": 1}, "body.product_id"),
            "unknown product": ({"type": "usage_above", "threshold": 1, "product_id": "NOPE"}, "body.product_id"),
            "product on another type": (
                {"type": "spend_above", "threshold": 1, "product_id": PRODUCT},
                "body.product_id",
            ),
            "feature missing": ({"type": "feature_usage_above", "threshold": 1}, "body.feature"),
            "unknown feature": ({"type": "feature_usage_above", "threshold": 1, "feature": "nope"}, "body.feature"),
            "feature on another type": ({"type": "spend_above", "threshold": 1, "feature": FEATURE}, "body.feature"),
            "unknown field": ({"type": "spend_above", "threshold": 1, "acount_id": account}, "body.acount_id"),
            "account not an id": ({"type": "spend_above", "threshold": 1, "account_id": "x"}, "body.account_id"),
        }

        def check(case: tuple[dict[str, Any], str]) -> None:
            body, path = case
            refused = assert_invalid(shop.client.post("/v1/alerts", json=body, headers=shop.tenant.headers), path)
            if path in ("body.type", "body.threshold", "body.product_id", "body.feature") and "missing" not in str(
                refused
            ):
                assert "e.g." in refused["note"], refused

        each(cases, check)
        with database.read() as conn:
            assert conn.execute(select(func.count()).select_from(alerts)).scalar_one() == 0

    def test_another_organization_is_not_found(self, shop: Shop, other_tenant: Tenant) -> None:
        account = shop.account()
        alert = shop.alert(account_id=account, type="spend_above", threshold=1)
        other = other_tenant.headers
        for path in (f"/v1/alerts/{alert['id']}", f"/v1/alerts/{alert['id']}/triggers"):
            assert_error(shop.client.get(path, headers=other), 404, "NOT_FOUND")
        assert_error(shop.client.delete(f"/v1/alerts/{alert['id']}", headers=other), 404, "NOT_FOUND")
        assert ok(shop.client.get("/v1/alerts", headers=other)) == {"alerts": []}
        # Their account is no account of ours: 404, as everywhere.
        refused = shop.client.post(
            "/v1/alerts", json={"type": "spend_above", "threshold": 1, "account_id": account}, headers=other
        )
        assert_error(refused, 404, "NOT_FOUND")
        # And their usage never fires our alert.
        theirs = str(other_tenant.create_account()["id"])
        assert theirs != account
        assert shop.triggers(alert) == []

    def test_account_keys_see_no_alerts(self, shop: Shop) -> None:
        created = shop.tenant.create_account()
        alert = shop.alert(account_id=created["id"], type="spend_above", threshold=1)
        customer = bearer(created["api_key"])
        assert_error(shop.client.get("/v1/alerts", headers=customer), 403, "FORBIDDEN")
        assert_error(shop.client.get(f"/v1/alerts/{alert['id']}", headers=customer), 403, "FORBIDDEN")
        assert_error(
            shop.client.post("/v1/alerts", json={"type": "spend_above", "threshold": 1}, headers=customer),
            403,
            "FORBIDDEN",
        )
