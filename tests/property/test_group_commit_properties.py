"""Group commit (``usage.ingest_group``) answers and stores exactly what the same requests would, one by one.

Two organizations are set up alike. Random requests (random keys, accounts, ids reused with the same or
other content, credit debits that the balance cannot always afford, an unknown product now and then) are
applied to the first one request per transaction, and to the second all in one group. Each request must
get the same answer (the same counts, or the same refusal naming the same fields), and both organizations
must end with the same events, balances and feature usage.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st
from sqlalchemy import select

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Principal
from meterbook.db.tables import usage_events
from meterbook.errors import ValidationFailed
from meterbook.usage import service as usage
from meterbook.usage.schemas import EventIn
from tests.conftest import bearer

GRANTED = 6
#: (type, quantity, product) an id may carry; credits are dear enough that some requests cannot be afforded.
CONTENTS: list[tuple[str, Decimal, str | None]] = [
    ("credit", Decimal(3), None),
    ("metered", Decimal("1.5"), "P"),
    ("feature", Decimal(1), None),
    ("credit", Decimal(5), None),
    ("metered", Decimal(2), "NOPE"),  # not in the catalog: the request is refused
]
ID_POOL = 6

# One event: which id, which content (mostly the id's own), which account (0: A, 1: B).
event_spec = st.tuples(st.integers(0, ID_POOL - 1), st.integers(0, 6), st.integers(0, 1))
# One request: which key (0: the organization's, 1: account A's) and its events.
request_spec = st.tuples(st.integers(0, 1), st.lists(event_spec, min_size=1, max_size=4))


@dataclass
class Tenant:
    organization_id: uuid.UUID
    principals: list[Principal]
    account_ids: list[str]
    headers: dict[str, str]


def make_tenant(client: Any, database: Any, platform_key: str) -> Tenant:
    response = client.post("/v1/organizations", json={"name": "Group"}, headers=bearer(platform_key))
    assert response.status_code == 201, response.text
    organization_id = uuid.UUID(response.json()["id"])
    headers = bearer(response.json()["api_key"]["key"])
    keys = [response.json()["api_key"]["key"]]
    account_ids = []
    for name in ("A", "B"):
        response = client.post("/v1/accounts", json={"name": name}, headers=headers)
        assert response.status_code == 201, response.text
        account_ids.append(response.json()["id"])
        keys.append(response.json()["api_key"])
        grant = client.post(
            f"/v1/accounts/{account_ids[-1]}/credits", json={"id": f"grant-{name}", "amount": GRANTED}, headers=headers
        )
        assert grant.status_code == 201, grant.text
    for path, body in (
        ("/v1/products/P", {"description": "p", "unit_price": 1}),
        ("/v1/features/f", {"description": "f"}),
    ):
        response = client.put(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
    with database.read() as conn:
        principals = [accounts.authenticate(conn, key) for key in keys[:2]]
    return Tenant(organization_id, principals, account_ids, headers)


def requests_for(tenant: Tenant, specs: Sequence[tuple[int, list[tuple[int, int, int]]]]) -> list[Any]:
    built = []
    for key_index, events in specs:
        batch = []
        for id_index, variant, account_index in events:
            kind, quantity, product = CONTENTS[(id_index + (1 if variant == 0 else 0)) % len(CONTENTS)]
            batch.append(
                EventIn.model_validate(
                    {
                        "id": f"e{id_index}",
                        "account_id": tenant.account_ids[account_index],
                        "type": kind,
                        "quantity": quantity,
                        "product_id": product,
                        "feature": "f" if kind == "feature" else None,
                    }
                )
            )
        built.append((tenant.principals[key_index], batch))
    return built


def answer(outcome: object) -> object:
    """What the client sees of an outcome, without the organization's own ids."""
    if isinstance(outcome, usage.IngestResult):
        return ("ok", outcome.accepted, outcome.duplicates, outcome.credits_debited)
    assert isinstance(outcome, Exception)
    if isinstance(outcome, ValidationFailed):
        return ("refused", type(outcome).__name__, sorted(error.path for error in outcome.errors))
    return ("refused", type(outcome).__name__)


def stored_state(client: Any, database: Any, tenant: Tenant) -> object:
    with database.read() as conn:
        rows = conn.execute(
            select(usage_events.c.id, usage_events.c.kind, usage_events.c.quantity, usage_events.c.account_id).where(
                usage_events.c.organization_id == tenant.organization_id
            )
        ).all()
    events = sorted(
        (row.id, row.kind, Decimal(row.quantity), tenant.account_ids.index(str(row.account_id))) for row in rows
    )
    balances = [
        client.get(f"/v1/accounts/{account_id}/credits", headers=tenant.headers).json()["balance"]
        for account_id in tenant.account_ids
    ]
    return events, balances


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(request_spec, min_size=1, max_size=6))
def test_a_group_answers_and_stores_what_the_same_requests_would_one_by_one(client, database, platform_key, specs):
    one_by_one, grouped = make_tenant(client, database, platform_key), make_tenant(client, database, platform_key)

    expected = []
    for principal, events in requests_for(one_by_one, specs):
        try:
            with database.write() as conn:
                expected.append(answer(usage.ingest(conn, principal, events)))
        except Exception as refusal:
            expected.append(answer(refusal))

    with database.write() as conn:
        outcomes = usage.ingest_group(conn, requests_for(grouped, specs))

    assert [answer(outcome) for outcome in outcomes] == expected
    assert stored_state(client, database, grouped) == stored_state(client, database, one_by_one)
    for outcome in expected:
        label(str(outcome[:2]))
