"""Ingestion under random batches with retries and conflicting reuse of ids (invariants 1 and 2).

A model holds what each id was first accepted with. Each batch is predicted: a 409 if any id in it
is reused with other content (stored, or earlier in the same batch), which changes nothing; otherwise
200 with ``accepted`` = the new distinct ids and ``duplicates`` = the rest. After every request the
stored events, the balance and the feature usage must agree with the model.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st
from sqlalchemy import select

from meterbook.db.tables import usage_events
from meterbook.kit import jsontext
from tests.conftest import bearer

PROPERTY_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
GRANTED = 1_000_000

#: The contents an id may carry: (type, quantity).
CONTENTS: list[tuple[str, Decimal]] = [
    ("credit", Decimal(2)),
    ("metered", Decimal("1.5")),
    ("feature", Decimal(1)),
    ("credit", Decimal(3)),
    ("metered", Decimal("0.25")),
]
ID_POOL = 8

# One event of a batch: which id, whether it carries its usual content or another, and how its quantity is written.
event_spec = st.tuples(st.integers(0, ID_POOL - 1), st.integers(0, 5), st.integers(0, 2))
batch_spec = st.lists(event_spec, min_size=1, max_size=6)


def content_of(id_index: int, variant: int) -> tuple[str, Decimal]:
    """Mostly the id's usual content; variant 0 is another one (a conflict, once the id is known)."""
    return CONTENTS[(id_index + (1 if variant == 0 else 0)) % len(CONTENTS)]


def written(quantity: Decimal, style: int) -> Any:
    """The same quantity as a JSON number, as a decimal string, or as a string with trailing zeros."""
    if style == 0:
        return quantity
    if style == 1:
        return str(quantity)
    return format(quantity, ".3f")


class Harness:
    def __init__(self, client: Any, database: Any, platform_key: str) -> None:
        self.client, self.database = client, database
        response = client.post("/v1/organizations", json={"name": "Prop"}, headers=bearer(platform_key))
        assert response.status_code == 201, response.text
        self.organization_id = uuid.UUID(response.json()["id"])
        self.key = response.json()["api_key"]["key"]
        response = client.post("/v1/accounts", json={"name": "A"}, headers=self.headers)
        assert response.status_code == 201, response.text
        self.account = response.json()
        for path, body in (
            ("/v1/products/P", {"description": "p", "unit_price": 1}),
            ("/v1/features/f", {"description": "f"}),
        ):
            response = client.put(path, json=body, headers=self.headers)
            assert response.status_code == 201, response.text
        response = client.post(
            f"/v1/accounts/{self.account['id']}/credits", json={"id": "g", "amount": GRANTED}, headers=self.headers
        )
        assert response.status_code == 201, response.text
        self.prefix = uuid.uuid4().hex[:8]
        #: id -> the content it was accepted with.
        self.stored: dict[str, tuple[str, Decimal]] = {}
        self.total_accepted = 0

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)

    def event(self, id_index: int, variant: int, style: int) -> tuple[dict[str, Any], tuple[str, Decimal]]:
        kind, quantity = content_of(id_index, variant)
        event: dict[str, Any] = {
            "id": f"{self.prefix}-{id_index}",
            "account_id": self.account["id"],
            "type": kind,
            "quantity": written(quantity, style),
        }
        if kind == "metered":
            event["product_id"] = "P"
        elif kind == "feature":
            event["feature"] = "f"
        return event, (kind, quantity)

    def send(self, specs: list[tuple[int, int, int]]) -> None:
        pairs = [self.event(*spec) for spec in specs]
        seen: dict[str, tuple[str, Decimal]] = {}
        conflict = False
        for event, content in pairs:
            known = self.stored.get(event["id"], seen.get(event["id"]))
            conflict = conflict or (known is not None and known != content)
            seen.setdefault(event["id"], content)
        response = self.client.post(
            "/v1/events",
            content=jsontext.dumps([event for event, _ in pairs]),
            headers={**self.headers, "content-type": "application/json"},
        )
        if conflict:
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "CONFLICT"
            label("a batch in conflict")
            return
        assert response.status_code == 200, response.text
        body = response.json()
        new = {event_id for event_id in seen if event_id not in self.stored}
        assert body == {"accepted": len(new), "duplicates": len(pairs) - len(new)}
        assert body["accepted"] + body["duplicates"] == len(pairs)
        self.total_accepted += body["accepted"]
        if body["duplicates"]:
            label("a batch with duplicates")
        for event_id in new:
            self.stored[event_id] = seen[event_id]

    def check(self) -> None:
        with self.database.read() as conn:
            rows = conn.execute(
                select(usage_events.c.id, usage_events.c.kind, usage_events.c.quantity).where(
                    usage_events.c.organization_id == self.organization_id
                )
            ).all()
        assert {row.id: (row.kind, Decimal(row.quantity)) for row in rows} == self.stored
        assert self.total_accepted == len(self.stored)

        response = self.client.get(f"/v1/accounts/{self.account['id']}/credits", headers=self.headers)
        spent = sum(quantity for kind, quantity in self.stored.values() if kind == "credit")
        assert response.json()["balance"] == GRANTED - spent
        response = self.client.get("/v1/usages", headers=bearer(self.account["api_key"]))
        used = sum(quantity for kind, quantity in self.stored.values() if kind == "feature")
        assert response.json() == [{"name": "f", "description": "f", "limit": None, "usage": used}]


class TestIngestProperties:
    @PROPERTY_SETTINGS
    @given(batches=st.lists(batch_spec, min_size=1, max_size=8))
    def test_each_id_is_applied_once_and_a_conflict_changes_nothing(self, client, database, platform_key, batches):
        harness = Harness(client, database, platform_key)
        for specs in batches:
            harness.send(specs)
            harness.check()

    @PROPERTY_SETTINGS
    @given(batch=batch_spec, repeats=st.integers(2, 4))
    def test_a_batch_sent_again_changes_nothing(self, client, database, platform_key, batch, repeats):
        harness = Harness(client, database, platform_key)
        harness.send(batch)
        harness.check()
        before = dict(harness.stored)
        for _ in range(repeats):
            harness.send(batch)
            harness.check()
        assert harness.stored == before
