"""Plans price usage exactly, whatever the order things happen in (CONTRACT §6; invariants 1, 6, 7).

* Proration (pure): over any split of a month into days on one plan, the fee parts add up to the fee rounded to
  the minor unit, and each part is within half a minor unit of its exact share... plus the rounding before it.
* Through the API, on both databases: a fresh organization per example with two accounts, a product and three
  plans of random price models, then a random stream of event batches (new events dated anywhere in last month,
  exact retries, conflicting reuses of an id) and plan changes dated anywhere in last month (so usage already
  reported is re-rated), in random order. After the stream, each account's upcoming invoice for last month has a
  usage line per plan whose amount is what pricing that plan's units (the events that occurred while the account
  was on it, per the test's own timeline of the changes) one by one gives; ``verify`` finds no difference; and the
  billing run then issues exactly the upcoming invoice.
"""

from __future__ import annotations

import calendar
import itertools
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from meterbook.aggregates import service as aggregates
from meterbook.kit.money import round_to_minor_unit
from meterbook.plans.models import Plan, PlanVersion, Subscription, fee_parts
from meterbook.pricing import parse_price, price
from tests.billing import exact, months_ago, start_of
from tests.conftest import bearer

LAST_MONTH = months_ago(1)
_YEAR, _NUMBER = (int(part) for part in LAST_MONTH.split("-"))
FIRST = datetime(_YEAR, _NUMBER, 1, tzinfo=UTC)
DAYS = calendar.monthrange(_YEAR, _NUMBER)[1]
END = FIRST + timedelta(days=DAYS)
PRODUCT = "CALLS"
CATALOG_PRICE = Decimal("0.5")

MODELS: list[dict[str, Any]] = [
    {"model": "per_unit", "unit_price": "0.25"},
    {
        "model": "graduated",
        "tiers": [{"up_to": 5, "unit_price": 5}, {"up_to": 10, "unit_price": 4}, {"up_to": None, "unit_price": 3}],
    },
    {
        "model": "volume",
        "tiers": [{"up_to": 5, "unit_price": 5}, {"up_to": 10, "unit_price": 4}, {"up_to": None, "unit_price": 3}],
    },
    {
        "model": "graduated",
        "tiers": [{"up_to": "2.5", "unit_price": 0, "flat_fee": 10}, {"up_to": None, "unit_price": "0.001"}],
    },
    {"model": "package", "package_size": 4, "package_price": "2.5"},
]

PROPERTIES = settings(
    max_examples=int(os.environ.get("METERBOOK_PLAN_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=list(Phase)
    if os.environ.get("METERBOOK_TEST_SHRINK") == "1"
    else [Phase.explicit, Phase.reuse, Phase.generate],
)


# --- proration, alone ------------------------------------------------------------------------------


def one_plan(fee: Decimal, currency: str) -> Plan:
    version = PlanVersion(
        effective_from=FIRST,
        name="Pro",
        currency=currency,
        fee=fee,
        prices={},
        limits={},
        included_credits=None,
        created_at=FIRST,
    )
    return Plan(id=uuid.UUID(int=1), code="pro", created_at=FIRST, updated_at=FIRST, versions=(version,))


@given(
    fee=st.decimals(min_value=Decimal("0.000000001"), max_value=10**9, places=9, allow_nan=False, allow_infinity=False),
    currency=st.sampled_from(["USD", "JPY", "BHD"]),
    cuts=st.lists(st.integers(1, DAYS - 1), max_size=6, unique=True).map(sorted),
)
def test_proration_over_any_split_of_a_month_adds_up_to_the_fee(fee: Decimal, currency: str, cuts: list[int]) -> None:
    account_id = uuid.UUID(int=7)
    bounds = [FIRST, *(FIRST + timedelta(days=cut, hours=13) for cut in cuts), None]
    subscriptions = [
        Subscription(uuid.uuid4(), account_id, uuid.UUID(int=1), "pro", start, end, FIRST)
        for start, end in itertools.pairwise(bounds)
        if start is not None
    ]
    parts = fee_parts(FIRST, END, subscriptions, {uuid.UUID(int=1): one_plan(fee, currency)})
    assert sum(part.days for part in parts) == DAYS
    assert sum((part.amount for part in parts), Decimal(0)) == round_to_minor_unit(fee, currency)
    minor = Decimal(1).scaleb(-{"USD": 2, "JPY": 0, "BHD": 3}[currency])
    for part in parts:
        # Each part is its exact share give or take a minor unit (two roundings, each at most half of one).
        assert abs(part.amount - fee * part.days / DAYS) <= minor


# --- rating through the API ------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A subscription change as the test models it: the account is on ``plan`` from ``starts_at`` on."""

    account: int
    plan: str
    starts_at: datetime


def plan_at(changes: list[Change], account: int, moment: datetime) -> str:
    """The plan of ``account`` at ``moment`` by the rule of §6: a change ends what covered its start and drops
    what was scheduled after it."""
    timeline: list[tuple[datetime, str]] = []
    for change in changes:
        if change.account != account:
            continue
        timeline = [item for item in timeline if item[0] < change.starts_at] + [(change.starts_at, change.plan)]
    current = ""
    for starts_at, code in timeline:
        if starts_at <= moment:
            current = code
    return current


instants = st.integers(0, DAYS * 86_400 - 1).map(lambda seconds: FIRST + timedelta(seconds=seconds))
quantities = st.one_of(st.integers(1, 12), st.decimals(min_value=Decimal("0.01"), max_value=30, places=2)).map(Decimal)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@PROPERTIES
@given(data=st.data())
def test_usage_is_priced_by_the_plan_in_force_when_it_occurred(
    client: Any, database: Any, platform_key: str, data: st.DataObject
) -> None:
    created = client.post("/v1/organizations", json={"name": "Plans Co"}, headers=bearer(platform_key))
    assert created.status_code == 201, created.text
    headers = bearer(created.json()["api_key"]["key"])
    accounts = []
    for number in range(2):
        response = client.post("/v1/accounts", json={"name": f"Account {number}"}, headers=headers)
        assert response.status_code == 201, response.text
        accounts.append(response.json()["id"])
    body = {"description": "Calls", "unit_price": str(CATALOG_PRICE), "price_effective_from": "2000-01-01T00:00:00Z"}
    assert client.put(f"/v1/products/{PRODUCT}", json=body, headers=headers).status_code == 201
    models: dict[str, dict[str, Any]] = {}
    for code in ("a", "b", "c"):
        models[code] = data.draw(st.sampled_from(MODELS), label=f"plan {code}")
        plan = {"name": code, "currency": "USD", "fee": 0, "prices": {PRODUCT: models[code]}, "limits": {}}
        response = client.put(
            f"/v1/plans/{code}", json={**plan, "effective_from": start_of(LAST_MONTH)}, headers=headers
        )
        assert response.status_code == 201, response.text

    accepted: dict[tuple[int, str], tuple[Decimal, datetime]] = {}
    changes: list[Change] = []
    for step in range(data.draw(st.integers(1, 8), label="steps")):
        if data.draw(st.booleans(), label="a plan change"):
            change = Change(data.draw(st.integers(0, 1)), data.draw(st.sampled_from("abc")), data.draw(instants))
            response = client.put(
                f"/v1/accounts/{accounts[change.account]}/subscription",
                json={"plan": change.plan, "starts_at": rfc3339(change.starts_at)},
                headers=headers,
            )
            assert response.status_code == 200, response.text
            changes.append(change)
            note(f"{change}")
            continue
        batch = []
        fresh: dict[tuple[int, str], tuple[Decimal, datetime]] = {}
        conflict = False
        for number in range(data.draw(st.integers(1, 5), label="batch size")):
            reuse = data.draw(st.sampled_from(["new", "new", "retry", "conflict"])) if accepted else "new"
            if reuse == "new":
                account = data.draw(st.integers(0, 1))
                identity = (account, f"e-{step}-{number}")
                content = (data.draw(quantities), data.draw(instants).replace(microsecond=0))
                fresh[identity] = content
            else:
                identity = data.draw(st.sampled_from(sorted(accepted)))
                quantity, moment = accepted[identity]
                content = (quantity + 1, moment) if reuse == "conflict" else (quantity, moment)
                conflict = conflict or reuse == "conflict"
            batch.append(
                {
                    "id": identity[1],
                    "account_id": accounts[identity[0]],
                    "type": "metered",
                    "product_id": PRODUCT,
                    "quantity": format(content[0], "f"),
                    "occurred_at": rfc3339(content[1]),
                }
            )
        response = client.post("/v1/events", json=batch, headers=headers)
        # A conflicting reuse of an id refuses the whole batch: nothing of it is applied.
        assert response.status_code == (409 if conflict else 200), response.text
        if not conflict:
            accepted.update(fresh)

    for index, account_id in enumerate(accounts):
        expected: dict[str, Decimal] = {}
        for (owner, _), (quantity, moment) in accepted.items():
            if owner == index:
                code = plan_at(changes, index, moment)
                expected[code] = expected.get(code, Decimal(0)) + quantity
        path = f"/v1/accounts/{account_id}/invoices/upcoming"
        upcoming = exact(client.get(path, params={"month": LAST_MONTH}, headers=headers))
        lines = [line for invoice in upcoming["invoices"] for line in invoice["lines"] if line["kind"] == "usage"]
        found = {
            line["description"]: (Decimal(str(line["quantity"])), Decimal(str(line["unrounded_amount"])))
            for line in lines
        }
        wanted = {
            ("Calls" if not code else f"Calls ({code} plan)"): (
                units,
                units * CATALOG_PRICE if not code else price(parse_price(models[code]), units).amount,
            )
            for code, units in expected.items()
        }
        assert found == wanted
    with database.read() as conn:
        assert aggregates.verify(conn).differences == []
    previews = {
        account_id: exact(
            client.get(f"/v1/accounts/{account_id}/invoices/upcoming", params={"month": LAST_MONTH}, headers=headers)
        )["invoices"]
        for account_id in accounts
    }
    assert client.post("/v1/billing_runs", json={"month": LAST_MONTH}, headers=headers).status_code == 201
    for account_id in accounts:
        listed = exact(client.get("/v1/invoices", params={"account_id": account_id}, headers=headers))["invoices"]
        issued = [exact(client.get(f"/v1/invoices/{item['id']}", headers=headers)) for item in listed]
        assert [(item["amount"], item["lines"]) for item in issued] == [
            (item["amount"], item["lines"]) for item in previews[account_id]
        ]
