"""Alerts under random sequences of usage batches (issue 19): the firings stored equal a brute-force replay of the rule.

Each example makes an organization with two accounts, two products, a monthly feature and credits, and four alerts
(every account's units of one product, every account's spend, one account's feature usage, every account's
balance). Batches of metered, credit and feature events over both accounts and two months are ingested through
the service, each in its own transaction; a batch the model says cannot be afforded (credits, the feature's limit)
must be refused whole. After every batch, the model applies the rule to what it wrote, the slow way:

- a month type fires for each (account, month) the batch wrote to when the month's value is at or above the
  threshold and it has not fired for that account and month;
- the balance alert fires when the batch takes a balance from at or above the threshold to below it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Principal
from meterbook.accounts.schemas import AccountCreate, OrganizationCreate
from meterbook.alerts import service as alerts
from meterbook.alerts.schemas import AlertCreate
from meterbook.catalog import service as catalog
from meterbook.catalog.schemas import ProductPut
from meterbook.db import Database
from meterbook.errors import MeterbookError
from meterbook.features import service as features
from meterbook.features.schemas import FeaturePut
from meterbook.kit.time import month_of
from meterbook.ledger import service as ledger
from meterbook.ledger.schemas import CreditGrant
from meterbook.usage import service as usage
from meterbook.usage.schemas import EventIn

PROPERTY_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PRICES = {"CALLS": Decimal("0.5"), "SMS": Decimal("1.25")}
LIMIT = 10
GRANT = 20
THRESHOLDS = {"usage": Decimal(6), "spend": Decimal("7.5"), "feature": Decimal(70), "balance": Decimal(12)}

#: (account 0 or 1, kind, product, quantity, months back 0 or 1)
event = st.tuples(
    st.integers(0, 1),
    st.sampled_from(["metered", "credit", "feature"]),
    st.sampled_from(sorted(PRICES)),
    st.integers(1, 5),
    st.integers(0, 1),
)
batches = st.lists(st.lists(event, min_size=1, max_size=5), min_size=1, max_size=6)


def _setup(conn: Any) -> tuple[Principal, list[uuid.UUID], dict[str, uuid.UUID]]:
    platform = accounts.authenticate(conn, accounts.create_platform_key(conn, "prop").token)
    _, created = accounts.create_organization(conn, platform, OrganizationCreate(name="Alerts"))
    org = accounts.authenticate(conn, created.token)
    for product_id, price in PRICES.items():
        catalog.put_product(
            conn,
            org,
            product_id,
            ProductPut(description=product_id, unit_price=price, price_effective_from=datetime(2000, 1, 1, tzinfo=UTC)),
        )
    features.put_feature(conn, org, "seats", FeaturePut(default_limit=LIMIT, reset="monthly"))
    ids = []
    for n in range(2):
        account = accounts.create_account(conn, org, AccountCreate(name=f"A{n}"))
        ledger.grant(conn, org, account.id, CreditGrant(id="g", amount=GRANT))
        ids.append(account.id)
    bodies = {
        "usage": {"type": "usage_above", "threshold": THRESHOLDS["usage"], "product_id": "CALLS"},
        "spend": {"type": "spend_above", "threshold": THRESHOLDS["spend"]},
        "feature": {
            "type": "feature_usage_above",
            "threshold": THRESHOLDS["feature"],
            "feature": "seats",
            "account_id": ids[0],
        },
        "balance": {"type": "credit_balance_below", "threshold": THRESHOLDS["balance"]},
    }
    made = {name: alerts.create_alert(conn, org, AlertCreate.model_validate(body)).id for name, body in bodies.items()}
    return org, ids, made


class Model:
    """The state the rule reads, and the firings it decides, kept the slow way."""

    def __init__(self) -> None:
        self.units: dict[tuple[int, str, str], Decimal] = defaultdict(Decimal)  # (account, month, product)
        self.seats: dict[tuple[int, str], int] = defaultdict(int)  # (account, month)
        self.balance = [GRANT, GRANT]
        self.fired: set[tuple[str, int, str, Decimal]] = set()
        self.crossings = [0, 0]

    def has_fired(self, name: str, account: int, period: str) -> bool:
        return any(item[:3] == (name, account, period) for item in self.fired)

    def apply(self, batch: list[tuple[int, str, str, int, str]]) -> bool:
        """Apply the batch if it can be afforded (else leave everything as it was) and fire what the rule says."""
        credits = [sum(q for a, kind, _, q, _ in batch if a == n and kind == "credit") for n in range(2)]
        seats: dict[tuple[int, str], int] = defaultdict(int)
        for account, kind, _, quantity, month in batch:
            if kind == "feature":
                seats[(account, month)] += quantity
        if any(credits[n] > self.balance[n] for n in range(2)) or any(
            self.seats[key] + added > LIMIT for key, added in seats.items()
        ):
            return False
        written: set[tuple[int, str]] = set()
        for account, kind, product, quantity, month in batch:
            if kind == "metered":
                self.units[(account, month, product)] += quantity
                written.add((account, month))
        for key, added in seats.items():
            self.seats[key] += added
        for account, month in sorted(written):
            calls = self.units[(account, month, "CALLS")]
            wrote_calls = any(
                a == account and m == month and p == "CALLS" and k == "metered" for a, k, p, _, m in batch
            )
            if wrote_calls and calls >= THRESHOLDS["usage"] and not self.has_fired("usage", account, month):
                self.fired.add(("usage", account, month, calls))
            spend = sum(self.units[(account, month, product)] * price for product, price in PRICES.items())
            if spend >= THRESHOLDS["spend"] and not self.has_fired("spend", account, month):
                self.fired.add(("spend", account, month, spend))
        for (account, month), _added in seats.items():
            percent = Decimal(self.seats[(account, month)] * 100) / LIMIT
            if account == 0 and percent >= THRESHOLDS["feature"] and not self.has_fired("feature", 0, month):
                self.fired.add(("feature", 0, month, percent))
        for n in range(2):
            before, self.balance[n] = self.balance[n], self.balance[n] - credits[n]
            if before >= THRESHOLDS["balance"] > self.balance[n]:
                self.crossings[n] += 1
                self.fired.add(("balance", n, str(self.crossings[n]), Decimal(self.balance[n])))
        return True


@PROPERTY_SETTINGS
@given(plan=batches)
def test_firings_equal_a_replay_of_the_rule(
    database: Database, plan: list[list[tuple[int, str, str, int, int]]]
) -> None:
    with database.write() as conn:
        org, account_ids, made = _setup(conn)
    now = datetime.now(UTC)
    months = [month_of(now), month_of(now.replace(day=1) - timedelta(days=1))]
    model = Model()
    for number, batch in enumerate(plan):
        dated = [(account, kind, product, quantity, months[back]) for account, kind, product, quantity, back in batch]
        events = [
            EventIn.model_validate(
                {
                    "id": f"{number}-{index}",
                    "account_id": str(account_ids[account]),
                    "type": kind,
                    "quantity": quantity,
                    "occurred_at": (now if back == 0 else now.replace(day=1) - timedelta(days=1)).isoformat(),
                    **({"product_id": product} if kind == "metered" else {}),
                    **({"feature": "seats"} if kind == "feature" else {}),
                }
            )
            for index, (account, kind, product, quantity, back) in enumerate(batch)
        ]
        expected = model.apply(dated)
        try:
            with database.write() as conn:
                usage.ingest(conn, org, events)
            applied = True
        except MeterbookError:
            applied = False
        assert applied == expected, batch
    names = {alert_id: name for name, alert_id in made.items()}
    stored: set[tuple[str, int, str, Decimal]] = set()
    with database.read() as conn:
        for alert_id, name in names.items():
            for trigger in alerts.triggers(conn, org, alert_id):
                stored.add((name, account_ids.index(trigger.account_id), trigger.period, trigger.value))
    assert stored == model.fired
