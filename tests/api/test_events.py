"""Usage ingestion: ``POST /v1/events`` (CONTRACT §4; invariants 1, 2, 5 and 10).

A batch of metered, credit and feature events is applied whole, each event id at most once per
account for ever, or not at all. Every test checks the reply and then the stored state, re-read
through the API (balance, transactions, feature usage) and, for metered events, which have no view of
their own yet, the ``usage_events`` table. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterbook.app import create_app
from meterbook.db.tables import usage_events
from meterbook.kit import jsontext
from tests.conftest import bearer
from tests.helpers import assert_error, assert_invalid, each, rfc3339

INITIAL_CREDITS = 100
SEATS_LIMIT = 5


# --- helpers ---------------------------------------------------------------------------------------


def event_id() -> str:
    return f"ev-{uuid.uuid4().hex}"


def credit(account_id: str, quantity: Any, **extra: Any) -> dict[str, Any]:
    return {"id": event_id(), "account_id": account_id, "type": "credit", "quantity": quantity, **extra}


def metered(account_id: str, quantity: Any, product_id: str = "P1", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id(),
        "account_id": account_id,
        "type": "metered",
        "product_id": product_id,
        "quantity": quantity,
        **extra,
    }


def feature(account_id: str, quantity: Any, name: str = "seats", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id(),
        "account_id": account_id,
        "type": "feature",
        "feature": name,
        "quantity": quantity,
        **extra,
    }


def post_json(client: TestClient, path: str, key: str, body: Any) -> Any:
    """POST ``body`` as JSON whose Decimals are written as exact numbers (``1.0000000001``, never a float)."""
    headers = {**bearer(key), "content-type": "application/json"}
    return client.post(path, content=jsontext.dumps(body), headers=headers)


@dataclass
class World:
    """A tenant with two accounts, a product ``P1``, a feature ``seats`` (limit 5) and 100 credits on ``account``."""

    client: TestClient
    tenant: Any
    database: Any
    account: dict[str, Any]
    second: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.tenant.key)

    @property
    def aid(self) -> str:
        return str(self.account["id"])

    def post(self, events: Any, key: str | None = None) -> Any:
        return post_json(self.client, "/v1/events", key or self.key, events)

    def ok(self, events: Any, key: str | None = None) -> dict[str, Any]:
        response = self.post(events, key)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"accepted", "duplicates"}, body
        return body

    def balance(self, account: dict[str, Any] | None = None) -> int:
        account = account or self.account
        response = self.client.get(f"/v1/accounts/{account['id']}/credits", headers=self.tenant.headers)
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])

    def transactions(self, account: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        account = account or self.account
        response = self.client.get(f"/v1/accounts/{account['id']}/credits/transactions", headers=self.tenant.headers)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["transactions"]
        return found

    def usage(self, account: dict[str, Any] | None = None, name: str = "seats") -> int:
        account = account or self.account
        response = self.client.get("/v1/usages", headers=bearer(account["api_key"]))
        assert response.status_code == 200, response.text
        (item,) = [item for item in response.json() if item["name"] == name]
        return int(item["usage"])

    def stored(self) -> dict[str, tuple[str, str, str]]:
        """The organization's stored events: id -> (kind, account, quantity text)."""
        with self.database.read() as conn:
            rows = conn.execute(
                select(
                    usage_events.c.id, usage_events.c.kind, usage_events.c.account_id, usage_events.c.quantity
                ).where(usage_events.c.organization_id == uuid.UUID(self.tenant.id))
            ).all()
        return {row.id: (row.kind, str(row.account_id), row.quantity) for row in rows}

    def snapshot(self) -> dict[str, Any]:
        return {
            "balances": [self.balance(a) for a in (self.account, self.second)],
            "transactions": [self.transactions(a) for a in (self.account, self.second)],
            "usage": [self.usage(a) for a in (self.account, self.second)],
            "events": self.stored(),
        }


@pytest.fixture
def world(client, tenant, database):
    account = tenant.create_account(name="Main")
    second = tenant.create_account(name="Second")
    response = client.put("/v1/products/P1", json={"description": "Calls", "unit_price": "0.5"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    response = client.put("/v1/features/seats", json={"limit": SEATS_LIMIT}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    for target in (account, second):
        response = client.post(
            f"/v1/accounts/{target['id']}/credits",
            json={"id": f"initial-{target['id']}", "amount": INITIAL_CREDITS},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
    return World(client=client, tenant=tenant, database=database, account=account, second=second)


def good_batch(world: World) -> list[dict[str, Any]]:
    """One event of each kind, all valid and affordable."""
    return [credit(world.aid, 3), metered(world.aid, "2.5"), feature(world.aid, 1)]


# --- the three kinds -------------------------------------------------------------------------------


class TestAccepted:
    def test_the_three_kinds_in_one_batch(self, world):
        batch = good_batch(world)
        assert world.ok(batch) == {"accepted": 3, "duplicates": 0}
        assert world.balance() == INITIAL_CREDITS - 3
        assert world.usage() == 1
        assert world.stored() == {
            batch[0]["id"]: ("credit", world.aid, "3"),
            batch[1]["id"]: ("metered", world.aid, "2.5"),
            batch[2]["id"]: ("feature", world.aid, "1"),
        }

    def test_a_credit_event_becomes_a_usage_transaction(self, world):
        event = credit(world.aid, 7, source="Reports", description="a report", user_id="u-1", metadata={"k": "v"})
        world.ok([event])
        newest = world.transactions()[0]
        assert newest["kind"] == "usage"
        assert newest["direction"] == "debit"
        assert newest["amount"] == 7
        assert newest["account_id"] == world.aid
        assert newest["description"] == "a report"
        assert newest["user_id"] == "u-1"
        assert newest["metadata"] == {"k": "v"}
        assert world.balance() == INITIAL_CREDITS - 7

    def test_events_for_several_accounts(self, world):
        batch = [credit(world.aid, 1), credit(str(world.second["id"]), 2), feature(str(world.second["id"]), 3)]
        assert world.ok(batch) == {"accepted": 3, "duplicates": 0}
        assert world.balance() == INITIAL_CREDITS - 1
        assert world.balance(world.second) == INITIAL_CREDITS - 2
        assert world.usage() == 0
        assert world.usage(world.second) == 3

    def test_metered_quantity_as_number_or_decimal_string_is_kept_exactly(self, world):
        cases = {
            "decimal string": ("2.5", "2.5"),
            "number": (Decimal("2.5"), "2.5"),
            "integer": (3, "3"),
            "nine decimals": ("0.000000001", "0.000000001"),
            "nine decimals as a number": (Decimal("1.123456789"), "1.123456789"),
            "spaces around": (" 4 ", "4"),
            "trailing zero": ("1.50", "1.5"),
            "ten zeros after nine decimals": ("0.1230000000", "0.123"),
            "large": (Decimal("999999999.999999999"), "999999999.999999999"),
        }

        def check(case):
            quantity, stored = case
            event = metered(world.aid, quantity)
            world.ok([event])
            assert world.stored()[event["id"]] == ("metered", world.aid, stored)

        each(cases, check)

    def test_credit_quantity_as_number_or_string(self, world):
        spent = 0

        def check(quantity):
            nonlocal spent
            world.ok([credit(world.aid, quantity)])
            spent += 5
            assert world.balance() == INITIAL_CREDITS - spent

        each({"number": 5, "string": "5", "5.0": Decimal("5.0"), "'5.000'": "5.000"}, check)

    def test_a_negative_feature_quantity_is_accepted_as_a_release(self, world):
        world.ok([feature(world.aid, 3)])
        world.ok([feature(world.aid, "-2")])
        assert world.usage() == 1

    def test_occurred_at_years_ago_is_accepted(self, world):
        event = credit(world.aid, 2, occurred_at="2019-03-01T12:00:00Z")
        world.ok([event])
        assert world.balance() == INITIAL_CREDITS - 2
        assert world.transactions()[-1]["kind"] == "usage"  # dated 2019: the oldest transaction

    def test_occurred_at_a_little_ahead_is_accepted(self, world):
        event = metered(world.aid, 1, occurred_at=rfc3339(datetime.now(UTC) + timedelta(minutes=3)))
        world.ok([event])
        assert event["id"] in world.stored()

    def test_occurred_at_with_an_offset_is_accepted(self, world):
        world.ok([metered(world.aid, 1, occurred_at="2024-05-01T10:00:00+02:00")])
        with world.database.read() as conn:
            occurred = conn.execute(
                select(usage_events.c.occurred_at).where(usage_events.c.organization_id == uuid.UUID(world.tenant.id))
            ).scalar_one()
        assert occurred == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)

    def test_unknown_fields_are_refused_and_nothing_is_applied(self, world):
        """The native API refuses unknown fields (contract §3): a misspelt field must not be dropped silently."""
        first = credit(world.aid, 1)
        response = world.post([first, {**credit(world.aid, 1), "colour": "blue"}])
        assert response.status_code == 400, response.text
        assert [e["path"] for e in response.json()["validationErrors"]] == ["body.1.colour"]
        assert world.ok([first]) == {"accepted": 1, "duplicates": 0}  # the whole batch was refused

    def test_an_account_key_writes_for_its_account_and_subaccounts(self, world):
        child = world.tenant.create_account(key=world.account["api_key"], name="Child")
        body = world.ok([feature(world.aid, 1), feature(child["id"], 2)], key=world.account["api_key"])
        assert body == {"accepted": 2, "duplicates": 0}
        assert world.usage() == 1
        assert world.usage(child) == 2

    def test_an_account_key_cannot_write_for_a_sibling(self, world):
        before = world.snapshot()
        response = world.post([feature(world.aid, 1), feature(world.second["id"], 1)], key=world.account["api_key"])
        assert_invalid(response, "body.1.account_id")
        assert world.snapshot() == before


# --- exactly once ----------------------------------------------------------------------------------


class TestStoredAsSent:
    """What an event row keeps beyond its quantity: nothing reads these back yet, so the rows are read here."""

    def test_metadata_the_price_and_the_text_fields(self, world):
        priced = metered(world.aid, 2, metadata={"call": {"to": "+15550100", "seconds": 61}}, description="A call")
        plain = credit(world.aid, 1, source="api", user_id="u-7")
        world.ok([priced, plain])
        with world.database.read() as conn:
            rows = {
                row.id: row
                for row in conn.execute(
                    select(usage_events).where(usage_events.c.organization_id == uuid.UUID(world.tenant.id))
                )
            }
        assert jsontext.loads(rows[priced["id"]].metadata) == priced["metadata"]
        assert rows[priced["id"]].description == "A call"
        # The catalog's price when the event occurred, kept with the event (a metered event only).
        assert rows[priced["id"]].unit_price == Decimal("0.5")
        assert rows[plain["id"]].metadata is None
        assert rows[plain["id"]].unit_price is None
        assert (rows[plain["id"]].source, rows[plain["id"]].user_id) == ("api", "u-7")


class TestOnlyFeatureEventsCountAgainstFeatures:
    def test_a_metered_or_credit_event_naming_a_feature_leaves_its_usage_alone(self, world):
        world.ok([metered(world.aid, 3, feature="seats"), credit(world.aid, 2, feature="seats")])
        assert world.usage() == 0
        assert world.balance() == INITIAL_CREDITS - 2


class TestIdempotency:
    def test_an_identical_retry_is_a_duplicate_and_changes_nothing(self, world):
        batch = good_batch(world)
        world.ok(batch)
        after_first = world.snapshot()
        assert world.ok(batch) == {"accepted": 0, "duplicates": 3}
        assert world.ok(batch) == {"accepted": 0, "duplicates": 3}
        assert world.snapshot() == after_first
        assert world.balance() == INITIAL_CREDITS - 3
        assert world.usage() == 1

    def test_a_retry_mixed_with_new_events_applies_only_the_new(self, world):
        old = good_batch(world)
        world.ok(old)
        new = [credit(world.aid, 4), feature(world.aid, 2)]
        assert world.ok([new[0], *old, new[1]]) == {"accepted": 2, "duplicates": 3}
        assert world.balance() == INITIAL_CREDITS - 3 - 4
        assert world.usage() == 1 + 2

    def test_a_retry_in_another_order_is_still_duplicates(self, world):
        batch = good_batch(world)
        world.ok(batch)
        assert world.ok(list(reversed(batch))) == {"accepted": 0, "duplicates": 3}

    def test_the_same_quantity_written_differently_is_the_same_content(self, world):
        cases = {
            "2 then '2'": (credit, 2, "2"),
            "'2' then 2.0": (credit, "2", Decimal("2.0")),
            "2 then ' 2 '": (credit, 2, " 2 "),
            "'2.50' then '2.5'": (metered, "2.50", "2.5"),
            "0.1 then '0.100000000'": (metered, Decimal("0.1"), "0.100000000"),
        }

        def check(case):
            make, first, again = case
            event = make(world.aid, first)
            world.ok([event])
            before = world.snapshot()
            assert world.ok([{**event, "quantity": again}]) == {"accepted": 0, "duplicates": 1}
            assert world.snapshot() == before

        each(cases, check)

    def test_an_event_id_is_remembered_for_ever(self, world):
        event = credit(world.aid, 1, occurred_at="2015-01-01T00:00:00Z")
        world.ok([event])
        assert world.ok([event]) == {"accepted": 0, "duplicates": 1}
        assert world.balance() == INITIAL_CREDITS - 1

    def test_ids_are_per_organization(self, world, other_tenant):
        other = other_tenant.create_account(credit_min=-10)
        shared = "shared-id"
        world.ok([{**credit(world.aid, 1), "id": shared}])
        body = post_json(
            world.client, "/v1/events", other_tenant.key, [{**credit(other["id"], 1), "id": shared}]
        ).json()
        assert body == {"accepted": 1, "duplicates": 0}
        assert world.ok([{**credit(world.aid, 1), "id": shared}]) == {"accepted": 0, "duplicates": 1}

    def test_identical_events_inside_one_batch_count_once(self, world):
        event = credit(world.aid, 6)
        assert world.ok([event, dict(event), dict(event)]) == {"accepted": 1, "duplicates": 2}
        assert world.balance() == INITIAL_CREDITS - 6
        assert len([t for t in world.transactions() if t["kind"] == "usage"]) == 1


class TestConflicts:
    def test_the_same_id_with_other_content_is_a_conflict_and_nothing_of_the_batch_applies(self, world):
        cases = {
            "quantity": {"quantity": 4},
            "type": {"type": "metered", "product_id": "P1"},
            "occurred_at": {"occurred_at": "2024-01-01T00:00:00Z"},
            "description": {"description": "something else"},
            "metadata": {"metadata": {"a": 1}},
            "source": {"source": "elsewhere"},
        }

        def check(change):
            first = credit(world.aid, 3)
            world.ok([first])
            before = world.snapshot()
            fresh = [credit(world.aid, 5), metered(world.aid, 1), feature(world.aid, 1)]
            response = world.post([fresh[0], fresh[1], {**first, **change}, fresh[2]])
            body = assert_error(response, 409, "CONFLICT")
            assert first["id"] in body["note"]
            assert world.snapshot() == before
            # The batch's other events were not stored: each is new when sent alone.
            for event in fresh:
                assert world.ok([event]) == {"accepted": 1, "duplicates": 0}
            assert world.balance() == before["balances"][0] - 5
            assert world.usage() == before["usage"][0] + 1
            world.ok([feature(world.aid, -1)])  # back under the limit for the next case

        each(cases, check)

    def test_the_same_id_for_another_account_is_another_event(self, world):
        """Event ids are per account (invariant 1)."""
        first = credit(world.aid, 3)
        world.ok([first])
        again = {**first, "account_id": world.second["id"]}
        assert world.ok([again]) == {"accepted": 1, "duplicates": 0}
        assert world.ok([again, first]) == {"accepted": 0, "duplicates": 2}
        assert (world.balance(), world.balance(world.second)) == (INITIAL_CREDITS - 3, INITIAL_CREDITS - 3)
        before = world.snapshot()
        assert_error(world.post([{**again, "quantity": 4}]), 409, "CONFLICT")
        assert world.snapshot() == before

    def test_a_conflict_after_the_first_event_of_a_retry(self, world):
        batch = good_batch(world)
        world.ok(batch)
        before = world.snapshot()
        changed = [batch[0], batch[1], {**batch[2], "quantity": 2}]
        assert_error(world.post(changed), 409, "CONFLICT")
        assert world.snapshot() == before

    def test_different_events_with_one_id_inside_one_batch(self, world):
        before = world.snapshot()
        first = credit(world.aid, 1)
        other = metered(world.aid, 2)
        response = world.post([other, first, {**first, "quantity": 2}])
        body = assert_error(response, 409, "CONFLICT")
        assert first["id"] in body["note"]
        assert world.snapshot() == before
        assert world.ok([other]) == {"accepted": 1, "duplicates": 0}
        assert world.ok([first]) == {"accepted": 1, "duplicates": 0}

    def test_the_original_stays_after_a_conflict(self, world):
        first = credit(world.aid, 3)
        world.ok([first])
        assert_error(world.post([{**first, "quantity": 9}]), 409, "CONFLICT")
        assert world.ok([first]) == {"accepted": 0, "duplicates": 1}
        assert world.balance() == INITIAL_CREDITS - 3


# --- all or nothing --------------------------------------------------------------------------------


def _future(minutes: int) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(minutes=minutes))


# Each case: how to make the bad event from the world, and the path(s) the error may name (after body.<i>).
BAD_EVENTS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "unknown product": (lambda w: metered(w.aid, 1, product_id="NOPE"), ("product_id",)),
    "unknown feature": (lambda w: feature(w.aid, 1, name="nope.feature"), ("feature",)),
    "unknown account": (lambda w: credit(str(uuid.uuid4()), 1), ("account_id",)),
    "another organization's account": (lambda w: credit(w.foreign["id"], 1), ("account_id",)),
    "archived account": (lambda w: credit(w.archived["id"], 1), ("account_id",)),
    "ten minutes ahead": (lambda w: credit(w.aid, 1, occurred_at=_future(10)), ("occurred_at",)),
    "occurred_at without offset": (lambda w: credit(w.aid, 1, occurred_at="2024-01-01T00:00:00"), ("occurred_at",)),
    "occurred_at not a time": (lambda w: credit(w.aid, 1, occurred_at="yesterday"), ("occurred_at",)),
    "metered zero": (lambda w: metered(w.aid, 0), ("quantity",)),
    "metered negative": (lambda w: metered(w.aid, -1), ("quantity",)),
    "metered ten decimals": (lambda w: metered(w.aid, Decimal("1.0000000001")), ("quantity",)),
    "metered ten decimals as text": (lambda w: metered(w.aid, "0.0000000001"), ("quantity",)),
    "metered abc": (lambda w: metered(w.aid, "abc"), ("quantity",)),
    "metered true": (lambda w: metered(w.aid, True), ("quantity",)),
    "metered NaN string": (lambda w: metered(w.aid, "NaN"), ("quantity",)),
    "metered Infinity string": (lambda w: metered(w.aid, "Infinity"), ("quantity",)),
    "metered null": (lambda w: metered(w.aid, None), ("quantity",)),
    "metered empty string": (lambda w: metered(w.aid, ""), ("quantity",)),
    "credit fraction": (lambda w: credit(w.aid, Decimal("1.5")), ("quantity",)),
    "credit zero": (lambda w: credit(w.aid, 0), ("quantity",)),
    "credit negative": (lambda w: credit(w.aid, -3), ("quantity",)),
    "feature zero": (lambda w: feature(w.aid, 0), ("quantity",)),
    "feature fraction": (lambda w: feature(w.aid, "1.5"), ("quantity",)),
    "metered without product_id": (
        lambda w: {k: v for k, v in metered(w.aid, 1).items() if k != "product_id"},
        ("", "product_id"),
    ),
    "feature without feature": (
        lambda w: {k: v for k, v in feature(w.aid, 1).items() if k != "feature"},
        ("", "feature"),
    ),
    "account_id not a uuid": (lambda w: credit("not-a-uuid", 1), ("account_id",)),
    "account_id missing": (lambda w: {k: v for k, v in credit(w.aid, 1).items() if k != "account_id"}, ("account_id",)),
    "id missing": (lambda w: {k: v for k, v in credit(w.aid, 1).items() if k != "id"}, ("id",)),
    "id empty": (lambda w: {**credit(w.aid, 1), "id": ""}, ("id",)),
    "unknown type": (lambda w: {**credit(w.aid, 1), "type": "bogus"}, ("type",)),
    "direction not in the enum": (lambda w: metered(w.aid, 1, direction="SIDEWAYS"), ("direction",)),
    "metadata not an object": (lambda w: credit(w.aid, 1, metadata=[1, 2]), ("metadata",)),
    "event not an object": (lambda w: "credit", ("",)),
}


@pytest.fixture
def bad_world(world, other_tenant):
    """The world, plus an account of another organization and an archived account of this one."""
    world.foreign = other_tenant.create_account(name="Foreign")
    world.archived = world.tenant.create_account(name="Archived")
    response = world.client.delete(f"/v1/accounts/{world.archived['id']}", headers=world.tenant.headers)
    assert response.status_code == 202, response.text
    return world


def _paths(index: int, suffixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"body.{index}.{suffix}" if suffix else f"body.{index}" for suffix in suffixes)


class TestAllOrNothing:
    def test_one_bad_event_refuses_the_whole_batch(self, bad_world):
        world = bad_world

        def check(case):
            make, suffixes = case
            good = good_batch(world)
            before = world.snapshot()
            response = world.post([good[0], good[1], make(world), good[2]])
            assert_invalid(response, *_paths(2, suffixes))
            assert world.snapshot() == before
            # Nothing of the batch was stored: the good events are new when sent without the bad one.
            assert world.ok(good) == {"accepted": 3, "duplicates": 0}
            world.ok([feature(world.aid, -1)])  # back under the limit for the next case

        each(BAD_EVENTS, check)

    def test_every_bad_event_is_named(self, bad_world):
        world = bad_world
        batch = [
            credit(world.aid, 1),
            metered(world.aid, 1, product_id="NOPE"),
            credit(world.aid, 2),
            credit(world.foreign["id"], 1),
        ]
        body = assert_invalid(world.post(batch), "body.1.product_id")
        paths = [item["path"] for item in body["validationErrors"]]
        assert "body.3.account_id" in paths
        assert not any(path.startswith(("body.0", "body.2")) for path in paths)

    def test_a_bad_event_inside_a_retry_refuses_it(self, world):
        batch = good_batch(world)
        world.ok(batch)
        before = world.snapshot()
        assert_invalid(world.post([*batch, metered(world.aid, 0)]), "body.3.quantity")
        assert world.snapshot() == before

    def test_the_error_for_another_organizations_account_gives_no_hint(self, bad_world):
        world = bad_world
        unknown = str(uuid.uuid4())
        foreign = world.post([credit(world.foreign["id"], 1)]).json()
        missing = world.post([credit(unknown, 1)]).json()
        assert foreign["validationErrors"][0]["message"].replace(world.foreign["id"], "X") == missing[
            "validationErrors"
        ][0]["message"].replace(unknown, "X")
        assert foreign["validationErrors"][0]["context"] == missing["validationErrors"][0]["context"]


class TestBatchShape:
    def test_an_empty_list_is_refused(self, world):
        assert_invalid(world.post([]), "body")

    def test_an_object_instead_of_a_list_is_refused(self, world):
        before = world.snapshot()
        assert_invalid(world.post(credit(world.aid, 1)), "body")
        assert world.snapshot() == before

    def test_no_body_is_refused(self, world):
        response = world.client.post("/v1/events", headers=world.tenant.headers)
        assert response.status_code == 400, response.text

    def test_invalid_json_is_refused(self, world):
        response = world.client.post(
            "/v1/events", content=b"[{", headers={**world.tenant.headers, "content-type": "application/json"}
        )
        assert_error(response, 400, "BAD_REQUEST")

    def test_a_json_nan_is_refused(self, world):
        text = f'[{{"id":"x","account_id":"{world.aid}","type":"metered","product_id":"P1","quantity":NaN}}]'
        response = world.client.post(
            "/v1/events", content=text, headers={**world.tenant.headers, "content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert world.stored() == {}

    @pytest.fixture
    def roomy_client(self, settings, database):
        """The same server, with a body limit that lets 10,001 events through to validation."""
        return TestClient(create_app(settings.model_copy(update={"max_body_bytes": 8 * 1024 * 1024}), database))

    def test_ten_thousand_events_are_accepted_and_ten_thousand_and_one_are_not(self, world, roomy_client):
        events = [
            {"id": f"m{i}", "account_id": world.aid, "type": "metered", "product_id": "P1", "quantity": 1}
            for i in range(10_001)
        ]
        body = assert_invalid(post_json(roomy_client, "/v1/events", world.key, events), "body")
        assert "10000" in body["note"] or "10,000" in body["note"]
        assert world.stored() == {}
        response = post_json(roomy_client, "/v1/events", world.key, events[:10_000])
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 10_000, "duplicates": 0}
        assert len(world.stored()) == 10_000


# --- who may write ---------------------------------------------------------------------------------


class TestReach:
    def test_another_organization_cannot_write_for_my_account(self, world, other_tenant):
        before = world.snapshot()
        response = post_json(world.client, "/v1/events", other_tenant.key, [credit(world.aid, 5)])
        assert_invalid(response, "body.0.account_id")
        assert world.snapshot() == before

    def test_another_organization_sees_nothing_of_my_usage(self, world, other_tenant):
        world.ok(good_batch(world))
        for path in (f"/v1/accounts/{world.aid}/credits", f"/v1/accounts/{world.aid}/credits/transactions"):
            response = world.client.get(path, headers=other_tenant.headers)
            assert_error(response, 404, "NOT_FOUND")
        response = world.client.get("/v1/usages", headers=other_tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json() == []

    def test_a_key_without_usage_write_is_forbidden(self, world):
        key = world.tenant.create_key(scopes=["usage:read", "billing:write", "accounts:write"])["key"]
        before = world.snapshot()
        body = assert_error(world.post(good_batch(world), key=key), 403, "FORBIDDEN")
        assert "usage:write" in body["note"]
        assert world.snapshot() == before

    def test_a_key_with_only_usage_write_may_write(self, world):
        key = world.tenant.create_key(scopes=["usage:write"])["key"]
        assert world.ok(good_batch(world), key=key) == {"accepted": 3, "duplicates": 0}

    def test_no_key_is_refused(self, world):
        response = world.client.post("/v1/events", json=[credit(world.aid, 1)])
        assert_error(response, 401, "MISSING_API_KEY")
        assert world.balance() == INITIAL_CREDITS
