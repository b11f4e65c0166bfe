"""A small but complete world to attack: two organizations, each with a parent account, its subaccount and
a sibling, and every kind of object (products, features, credits, usage, invoices, payments, projects, keys).

The reliability tests (fuzzing, access matrix, hostile input, secrets) all start from it, so that paths can
name objects that exist and every reach relation (another organization, a sibling, a subaccount on its
parent) has a key to try.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from meterbook.db import Database
from meterbook.db.tables import api_keys
from tests.billing import LONG_AGO, at, months_ago
from tests.conftest import Tenant, bearer

SCOPES = [
    "accounts:read",
    "accounts:write",
    "billing:read",
    "billing:write",
    "usage:read",
    "usage:write",
    "catalog:write",
    "keys:write",
    "express-accounts-usage:read",
]
PRODUCT = "TD-USG-TEL-UG-102213"
#: Where every organization of the world sends its webhooks: a public address, never reached by these tests.
WEBHOOK_URL = "https://93.184.215.14/meterbook-hooks"
FEATURE = "cohort.max_count"
#: Every organization of the world has a plan of this code (and one of its own, ``Org.private_plan``).
PLAN = "pro"
TIERED = {
    "model": "graduated",
    "tiers": [{"up_to": 100, "unit_price": "0.07", "flat_fee": 1}, {"up_to": None, "unit_price": "0.05"}],
}


def plan_body() -> dict[str, Any]:
    return {
        "name": "Pro",
        "currency": "USD",
        "fee": "49.99",
        "prices": {PRODUCT: TIERED},
        "limits": {FEATURE: 5000},
        "included_credits": {"amount": 100, "rollover": "none"},
    }


def ok(response: Any, *statuses: int) -> Any:
    """The JSON body of a reply that succeeded."""
    assert response.status_code in (statuses or (200, 201)), response.text
    return response.json()


@dataclass
class Org:
    """One organization's objects, as the tests need to name them."""

    tenant: Tenant
    marker: str = field(default_factory=lambda: secrets.token_hex(6))
    parent: dict[str, Any] = field(default_factory=dict)
    child: dict[str, Any] = field(default_factory=dict)
    sibling: dict[str, Any] = field(default_factory=dict)
    parent_key: str = ""
    child_key: str = ""
    sibling_key: str = ""
    spare_key_id: str = ""
    project_id: str = ""
    invoice_id: str = ""
    payment_id: str = ""
    usage_id: str = ""
    month: str = ""
    private_plan: str = ""
    webhook_endpoint_id: str = ""
    webhook_event_id: str = ""
    alert_id: str = ""

    @property
    def id(self) -> str:
        return self.tenant.id

    @property
    def key(self) -> str:
        return self.tenant.key

    def account_ids(self) -> list[str]:
        return [self.parent["id"], self.child["id"], self.sibling["id"]]

    def parent_secrets(self) -> set[str]:
        """Text that belongs to the parent account alone: no one outside its reach may ever read it."""
        return {
            self.parent["name"],
            self.parent["email"],
            self.parent["stripe_customer_id"],
            self.invoice_id,
            self.payment_id,
            f"parent usage {self.marker}",
            f"parent spend {self.marker}",
        }


def _account(org: Org, name: str, **extra: Any) -> tuple[dict[str, Any], str]:
    body = {
        "name": f"{name} {org.marker}",
        "email": f"{name.lower()}-{org.marker}@example.com",
        "stripe_customer_id": f"cus_{name.lower()}_{org.marker}",
        "commitment": {"monthly_cost": 100},
        "contract_started_at": LONG_AGO,
        **extra,
    }
    account = org.tenant.create_account(**body)
    return account, account["api_key"]


def build_org(client: TestClient, tenant: Tenant) -> Org:
    """Seed one organization through the API, exactly as a client would."""
    org = Org(tenant)
    headers = tenant.headers
    # Every change below queues an event to it (a public address: nothing is delivered, no worker runs here).
    org.webhook_endpoint_id = ok(
        client.post("/v1/webhook_endpoints", json={"url": WEBHOOK_URL, "description": org.marker}, headers=headers)
    )["id"]
    org.parent, org.parent_key = _account(org, "Parent")
    org.child, org.child_key = _account(org, "Child", parent_account_id=org.parent["id"])
    org.sibling, org.sibling_key = _account(org, "Sibling")
    org.spare_key_id = tenant.create_key(account_id=org.parent["id"], name="spare")["id"]
    ok(
        client.put(
            f"/v1/products/{PRODUCT}",
            json={"description": "Inbound calls", "unit_price": "0.067", "price_effective_from": LONG_AGO},
            headers=headers,
        )
    )
    ok(client.put(f"/v1/features/{FEATURE}", json={"default_limit": 1000}, headers=headers))
    org.project_id = ok(
        client.post(
            "/v1/projects",
            json={"name": f"project {org.marker}", "billing_account_id": org.parent["id"]},
            headers=headers,
        )
    )["id"]
    org.month = months_ago(1)
    events: list[dict[str, Any]] = []
    for account in (org.parent, org.child, org.sibling):
        ok(
            client.post(
                f"/v1/accounts/{account['id']}/credits",
                json={"id": f"g-{account['id']}", "amount": 1000},
                headers=headers,
            )
        )
        events.append(
            {
                "id": f"m-{account['id']}",
                "account_id": account["id"],
                "type": "metered",
                "product_id": PRODUCT,
                "quantity": "12.5",
                "occurred_at": at(org.month),
                "description": f"{account['name']} usage",
            }
        )
    org.usage_id = str(uuid.uuid4())
    events.append(
        {
            "id": org.usage_id,
            "account_id": org.parent["id"],
            "type": "credit",
            "quantity": 5,
            "description": f"parent usage {org.marker}",
        }
    )
    events.append(
        {"id": f"f-{org.marker}", "account_id": org.parent["id"], "type": "feature", "feature": FEATURE, "quantity": 1}
    )
    ok(client.post("/v1/events", json=events, headers=headers))
    ok(client.post("/v1/billing_runs", json={"month": org.month}, headers=headers))
    invoices = ok(client.get(f"/v1/invoices?account_id={org.parent['id']}", headers=headers))["invoices"]
    org.invoice_id = invoices[0]["id"]
    org.payment_id = f"pay-{org.marker}"
    ok(
        client.post(
            "/v1/payments",
            json={
                "id": org.payment_id,
                "account_id": org.parent["id"],
                "amount": "1.00",
                "reference": f"wire {org.marker}",
            },
            headers=headers,
        )
    )
    # Plans (from this month, after the invoiced one): the parent on one, with a negotiated price of its own.
    org.private_plan = f"private-{org.marker}"
    for code in (PLAN, org.private_plan):
        ok(client.put(f"/v1/plans/{code}", json=plan_body(), headers=headers))
    ok(client.put(f"/v1/accounts/{org.parent['id']}/subscription", json={"plan": PLAN}, headers=headers))
    ok(
        client.put(
            f"/v1/accounts/{org.parent['id']}/prices/{PRODUCT}",
            json={"price": {"model": "per_unit", "unit_price": "0.06"}},
            headers=headers,
        )
    )
    deliveries = ok(client.get(f"/v1/webhook_endpoints/{org.webhook_endpoint_id}/deliveries", headers=headers))
    org.webhook_event_id = deliveries["deliveries"][0]["event_id"]
    # An alert on the parent's spend (issue 19): the operator's, like webhooks.
    org.alert_id = ok(
        client.post(
            "/v1/alerts",
            json={
                "name": f"parent spend {org.marker}",
                "account_id": org.parent["id"],
                "type": "spend_above",
                "threshold": 1,
            },
            headers=headers,
        )
    )["id"]
    return org


@dataclass
class Keys:
    """Keys that must fail: revoked, expired, and one lacking each scope (all of the victim organization)."""

    revoked: str
    expired: str
    without: dict[str, str]


def build_bad_keys(
    client: TestClient, database: Database, org: Org, while_valid: Callable[[str], None] = lambda key: None
) -> Keys:
    """Keys that no longer work; ``while_valid`` sees the revoked and expired ones while they still did."""
    revoked = org.tenant.create_key(name="revoked")
    expired = org.tenant.create_key(name="expired", expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    while_valid(revoked["key"])
    while_valid(expired["key"])
    ok(client.delete(f"/v1/api_keys/{revoked['id']}", headers=org.tenant.headers))
    with database.write() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == uuid.UUID(expired["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    without = {
        scope: org.tenant.create_key(name=f"without {scope}", scopes=[s for s in SCOPES if s != scope])["key"]
        for scope in SCOPES
    }
    return Keys(revoked=revoked["key"], expired=expired["key"], without=without)


def check_key(client: TestClient, key: str) -> int:
    return int(client.get("/v1/accounts", headers=bearer(key)).status_code)
