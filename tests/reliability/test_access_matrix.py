"""Issue 7, item 3: the access matrix: every route, and every kind of caller that must be kept out.

The routes come from the application's route table: a route without a row in :data:`ROUTES` fails
``test_every_route_has_a_row`` under its own name, so a new route cannot be left out.

Each row says how to call the route on the victim's objects (organization A's parent account, its invoice,
its key...) and what each caller gets: another organization's key, a sibling account's key, the
subaccount's key on its parent, a revoked key, an expired key, a key lacking the route's scope, and no key.
The owner's call closes each row, as a control that the target exists and the call works. Every reply
is checked for the dialect's error shape and code, and for the victim's data: none of it may appear in
a reply to anyone outside the victim's reach. Every call that must be refused runs first, and then the
whole database must be exactly as it was.

The customer's view (contract §4, "Who may do what"): each row also says whether the route reads, is a
customer's write, or is the operator's. The victim account's own key (``customer``, with ``*``) may read and
do a customer's writes on its own account and gets 403 for an operator's action; the subaccount's key on its
parent and a sibling's key get 403 for an operator's action (before any lookup, so it tells nothing) and 404
for anything else; the key of an archived account (``archived``, with ``*``, on its own archived account in a
third organization) may read and gets 403 for every write.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterbook.api.errors import flattened_routes
from meterbook.app import create_app
from meterbook.config import Settings
from meterbook.db import Database
from meterbook.db.tables import metadata
from meterbook.web.session import COOKIE as SESSION_COOKIE
from tests.conftest import bearer
from tests.reliability.world import (
    FEATURE,
    PLAN,
    PRODUCT,
    WEBHOOK_URL,
    Keys,
    Org,
    build_bad_keys,
    build_org,
    plan_body,
)

INTRUDERS = ("other_org", "sibling", "child_on_parent")
KEYLESS = ("revoked", "expired", "without_scope", "no_key")
#: Account keys with every scope, on an account they own: what a customer holds.
CUSTOMERS = ("customer", "archived")
READ, CUSTOMER, OPERATOR = "read", "customer's write", "operator's"
PUBLIC = "public"
PLATFORM = "platform"
#: The console's pages need an organization key with these read scopes; without the first, no session.
CONSOLE = "accounts:read"
SIGNED_OUT = {"sibling": 303, "child_on_parent": 303}

Call = tuple[str, dict[str, Any] | list[Any] | None]


@dataclass(frozen=True)
class Row:
    """One route: how to call it on the victim's objects, and what each caller must get."""

    scope: str  # the scope it needs, PUBLIC (no key at all) or PLATFORM (a platform key only)
    call: Callable[[Org], Call]  # the URL (with query) and JSON body, aimed at the victim
    intruder: dict[str, int] = field(default_factory=dict)  # status for each intruder; default 404
    owner: int = 200
    owner_key: str = "org"  # "org" (organization key), "parent" (the parent's account key) or "platform"
    console: bool = False  # a page of the web console: the caller signs in with its key and sends the cookie
    sign_in_form: bool = False  # the body is the sign-in form holding the caller's own key
    kind: str = READ  # READ, CUSTOMER (a customer's write) or OPERATOR (an organization key's only)
    customer: int | None = None  # what the victim's own account key gets, when not the owner's status

    def expected(self, who: str) -> int:
        """What ``who`` gets: as listed, else the rule of the route's kind."""
        if who in self.intruder:
            return self.intruder[who]
        if self.scope == PUBLIC:
            return self.owner
        if self.scope == PLATFORM and who in (*INTRUDERS, *CUSTOMERS):
            return 403
        if self.console and who in CUSTOMERS:
            return 303
        if self.kind == OPERATOR and who in ("sibling", "child_on_parent", *CUSTOMERS):
            return 403
        if who == "archived" and self.kind != READ:
            return 403
        if who in CUSTOMERS:
            return self.customer if self.customer is not None else self.owner
        if who in INTRUDERS:
            return 404
        if self.console:
            return 303
        return 403 if who == "without_scope" else 401


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(INTRUDERS, status)


#: Where the Connect methods of Frontier's package answer: ``{CONNECT}<Service>/<Method>``.
CONNECT = "/raystack.frontier.v1beta1."


def usages_body(v: Org) -> list[dict[str, Any]]:
    return [{"id": str(uuid.uuid4()), "amount": 1, "description": "matrix"}]


ROUTES: dict[tuple[str, str], Row] = {
    # --- public ------------------------------------------------------------------------------------
    ("GET", "/healthz"): Row(PUBLIC, lambda v: ("/healthz", None)),
    ("GET", "/metrics"): Row(PUBLIC, lambda v: ("/metrics", None)),
    ("GET", "/openapi.json"): Row(PUBLIC, lambda v: ("/openapi.json", None)),
    ("HEAD", "/openapi.json"): Row(PUBLIC, lambda v: ("/openapi.json", None)),
    ("GET", "/docs"): Row(PUBLIC, lambda v: ("/docs", None)),
    ("GET", "/docs/assets"): Row(PUBLIC, lambda v: ("/docs/assets/swagger-ui.css", None)),
    # --- Faraday accounts and billing ------------------------------------------------------------------
    ("GET", "/v1/accounts"): Row(
        "accounts:read", lambda v: (f"/v1/accounts?ids={v.parent['id']}", None), everyone(200)
    ),
    ("GET", "/v1/accounts/current"): Row(
        "accounts:read",
        lambda v: ("/v1/accounts/current", None),
        {"other_org": 404, "sibling": 200, "child_on_parent": 200},
        owner_key="parent",
    ),
    ("GET", "/v1/accounts/{account_id}"): Row("accounts:read", lambda v: (f"/v1/accounts/{v.parent['id']}", None)),
    ("POST", "/v1/accounts"): Row(
        "accounts:write",
        lambda v: ("/v1/accounts", {"name": "Intruder", "parent_account_id": v.parent["id"]}),
        everyone(400),
        owner=201,
        kind=CUSTOMER,
    ),
    # Net terms decide money: the customer's own key may not change them (it may change name, branding, e-mail).
    ("PATCH", "/v1/accounts/{account_id}"): Row(
        "accounts:write",
        lambda v: (f"/v1/accounts/{v.parent['id']}", {"net_terms_days": 15}),
        kind=CUSTOMER,
        customer=403,
    ),
    ("GET", "/v1/usages"): Row("usage:read", lambda v: ("/v1/usages", None), everyone(200)),
    ("GET", "/v1/accounts/{account_id}/billing"): Row(
        "billing:read", lambda v: (f"/v1/accounts/{v.parent['id']}/billing", None)
    ),
    # The key's own account: another account's key reads its own (200); an organization key has none (404).
    ("GET", "/v1/accounts/current/billing"): Row(
        "billing:read",
        lambda v: ("/v1/accounts/current/billing", None),
        {"other_org": 404, "sibling": 200, "child_on_parent": 200},
        owner_key="parent",
    ),
    ("GET", "/v1/accounts/{account_id}/usage"): Row(
        "usage:read", lambda v: (f"/v1/accounts/{v.parent['id']}/usage", None)
    ),
    ("GET", "/v1/accounts/current/usage"): Row(
        "usage:read",
        lambda v: ("/v1/accounts/current/usage", None),
        {"other_org": 404, "sibling": 200, "child_on_parent": 200},
        owner_key="parent",
    ),
    ("GET", "/v1/accounts/current/usage/all"): Row(
        "usage:read",
        lambda v: ("/v1/accounts/current/usage/all", None),
        {"other_org": 404, "sibling": 200, "child_on_parent": 200},
        owner_key="parent",
    ),
    # --- native: organizations, keys, projects ---------------------------------------------------------
    ("POST", "/v1/organizations"): Row(
        PLATFORM, lambda v: ("/v1/organizations", {"name": "Intruder Inc"}), everyone(403), 201, "platform"
    ),
    ("POST", "/v1/api_keys"): Row(
        "keys:write",
        lambda v: ("/v1/api_keys", {"account_id": v.parent["id"]}),
        everyone(400),
        owner=201,
        kind=CUSTOMER,
    ),
    ("GET", "/v1/api_keys"): Row("keys:write", lambda v: ("/v1/api_keys", None), everyone(200)),
    ("POST", "/v1/projects"): Row(
        "accounts:write",
        lambda v: ("/v1/projects", {"name": "intruder", "billing_account_id": v.parent["id"]}),
        everyone(400),
        owner=201,
        kind=CUSTOMER,
    ),
    ("GET", "/v1/projects"): Row("accounts:read", lambda v: ("/v1/projects", None), everyone(200)),
    # --- native: usage, credits, features, catalog ------------------------------------------------------
    ("POST", "/v1/events"): Row(
        "usage:write",
        lambda v: (
            "/v1/events",
            [{"id": f"matrix-{uuid.uuid4()}", "account_id": v.parent["id"], "type": "credit", "quantity": 1}],
        ),
        everyone(400),
        kind=CUSTOMER,
    ),
    ("GET", "/v1/monthly_usage"): Row("usage:read", lambda v: (f"/v1/monthly_usage?account_id={v.parent['id']}", None)),
    ("POST", "/v1/accounts/{account_id}/credits"): Row(
        "billing:write",
        lambda v: (f"/v1/accounts/{v.parent['id']}/credits", {"id": f"matrix-{uuid.uuid4()}", "amount": 1}),
        owner=201,
        kind=OPERATOR,
    ),
    ("GET", "/v1/accounts/{account_id}/credits"): Row(
        "billing:read", lambda v: (f"/v1/accounts/{v.parent['id']}/credits", None)
    ),
    ("GET", "/v1/accounts/{account_id}/credits/transactions"): Row(
        "billing:read", lambda v: (f"/v1/accounts/{v.parent['id']}/credits/transactions", None)
    ),
    ("PUT", "/v1/features/{name}"): Row(
        "catalog:write",
        lambda v: (f"/v1/features/{FEATURE}", {"default_limit": 1000}),
        {"other_org": 200},
        kind=OPERATOR,
    ),
    ("GET", "/v1/features"): Row("usage:read", lambda v: ("/v1/features", None), everyone(200)),
    ("PUT", "/v1/accounts/{account_id}/limits/{feature}"): Row(
        "accounts:write",
        lambda v: (f"/v1/accounts/{v.parent['id']}/limits/{FEATURE}", {"limit": 5}),
        kind=OPERATOR,
    ),
    ("PUT", "/v1/products/{product_id}"): Row(
        "catalog:write",
        lambda v: (f"/v1/products/{PRODUCT}", {"description": "Inbound calls", "unit_price": "0.067"}),
        {"other_org": 200},
        kind=OPERATOR,
    ),
    ("GET", "/v1/products"): Row("usage:read", lambda v: ("/v1/products", None), everyone(200)),
    # --- native: plans, subscriptions, negotiated prices --------------------------------------------------
    # Every organization has a plan of the code PLAN: another organization's PUT changes its own.
    ("PUT", "/v1/plans/{code}"): Row(
        "catalog:write", lambda v: (f"/v1/plans/{PLAN}", plan_body()), {"other_org": 200}, kind=OPERATOR
    ),
    ("GET", "/v1/plans"): Row("billing:read", lambda v: ("/v1/plans", None), everyone(200)),
    # The organization's own plan: its account keys read it, another organization finds nothing.
    ("GET", "/v1/plans/{code}"): Row(
        "billing:read",
        lambda v: (f"/v1/plans/{v.private_plan}", None),
        {"sibling": 200, "child_on_parent": 200},
    ),
    ("PUT", "/v1/accounts/{account_id}/subscription"): Row(
        "billing:write",
        lambda v: (f"/v1/accounts/{v.parent['id']}/subscription", {"plan": PLAN}),
        kind=OPERATOR,
    ),
    ("DELETE", "/v1/accounts/{account_id}/subscription"): Row(
        "billing:write", lambda v: (f"/v1/accounts/{v.parent['id']}/subscription", None), kind=OPERATOR
    ),
    ("GET", "/v1/accounts/{account_id}/subscription"): Row(
        "billing:read", lambda v: (f"/v1/accounts/{v.parent['id']}/subscription", None)
    ),
    ("PUT", "/v1/accounts/{account_id}/prices/{product_id}"): Row(
        "billing:write",
        lambda v: (
            f"/v1/accounts/{v.parent['id']}/prices/{PRODUCT}",
            {"price": {"model": "per_unit", "unit_price": "0.06"}},
        ),
        kind=OPERATOR,
    ),
    ("GET", "/v1/accounts/{account_id}/prices"): Row(
        "billing:read", lambda v: (f"/v1/accounts/{v.parent['id']}/prices", None)
    ),
    ("GET", "/v1/accounts/{account_id}/invoices/upcoming"): Row(
        "billing:read", lambda v: (f"/v1/accounts/{v.parent['id']}/invoices/upcoming", None)
    ),
    # --- native: billing runs, invoices, payments ---------------------------------------------------------
    # A billing run covers a whole organization: an account key may not start one.
    # --- native: alerts (the operator's, like webhooks: an account key sees none) ----------------------------
    ("POST", "/v1/alerts"): Row(
        "billing:write",
        lambda v: ("/v1/alerts", {"account_id": v.parent["id"], "type": "spend_above", "threshold": 5}),
        owner=201,
        kind=OPERATOR,
    ),
    ("GET", "/v1/alerts"): Row("billing:read", lambda v: ("/v1/alerts", None), {"other_org": 200}, kind=OPERATOR),
    ("GET", "/v1/alerts/{alert_id}"): Row("billing:read", lambda v: (f"/v1/alerts/{v.alert_id}", None), kind=OPERATOR),
    ("GET", "/v1/alerts/{alert_id}/triggers"): Row(
        "billing:read", lambda v: (f"/v1/alerts/{v.alert_id}/triggers", None), kind=OPERATOR
    ),
    ("DELETE", "/v1/alerts/{alert_id}"): Row(
        "billing:write", lambda v: (f"/v1/alerts/{v.alert_id}", None), kind=OPERATOR
    ),
    ("POST", "/v1/billing_runs"): Row(
        "billing:write",
        lambda v: ("/v1/billing_runs", {"month": v.month}),
        {"other_org": 200},
        kind=OPERATOR,
    ),
    ("GET", "/v1/invoices"): Row("billing:read", lambda v: (f"/v1/invoices?account_id={v.parent['id']}", None)),
    ("GET", "/v1/invoices/{invoice_id}"): Row("billing:read", lambda v: (f"/v1/invoices/{v.invoice_id}", None)),
    ("POST", "/v1/payments"): Row(
        "billing:write",
        lambda v: ("/v1/payments", {"account_id": v.parent["id"], "amount": "1.00"}),
        owner=201,
        kind=OPERATOR,
    ),
    ("GET", "/v1/payments"): Row("billing:read", lambda v: (f"/v1/payments?account_id={v.parent['id']}", None)),
    # --- native: webhooks (the operator's: billing scopes, organization keys only) ----------------------------
    ("POST", "/v1/webhook_endpoints"): Row(
        "billing:write",
        lambda v: ("/v1/webhook_endpoints", {"url": WEBHOOK_URL}),
        {"other_org": 201},
        owner=201,
        kind=OPERATOR,
    ),
    ("GET", "/v1/webhook_endpoints"): Row(
        "billing:read", lambda v: ("/v1/webhook_endpoints", None), {"other_org": 200}, kind=OPERATOR
    ),
    ("GET", "/v1/webhook_endpoints/{endpoint_id}"): Row(
        "billing:read", lambda v: (f"/v1/webhook_endpoints/{v.webhook_endpoint_id}", None), kind=OPERATOR
    ),
    ("PATCH", "/v1/webhook_endpoints/{endpoint_id}"): Row(
        "billing:write",
        lambda v: (f"/v1/webhook_endpoints/{v.webhook_endpoint_id}", {"description": "changed"}),
        kind=OPERATOR,
    ),
    ("POST", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret"): Row(
        "billing:write", lambda v: (f"/v1/webhook_endpoints/{v.webhook_endpoint_id}/rotate_secret", None), kind=OPERATOR
    ),
    ("GET", "/v1/webhook_endpoints/{endpoint_id}/deliveries"): Row(
        "billing:read", lambda v: (f"/v1/webhook_endpoints/{v.webhook_endpoint_id}/deliveries", None), kind=OPERATOR
    ),
    ("POST", "/v1/webhook_events/{event_id}/resend"): Row(
        "billing:write",
        lambda v: (f"/v1/webhook_events/{v.webhook_event_id}/resend", None),
        owner=202,
        kind=OPERATOR,
    ),
    # --- Frontier ------------------------------------------------------------------------------------
    ("POST", "/v1beta1/organizations/billing/usages"): Row(
        "usage:write",
        lambda v: (
            "/v1beta1/organizations/billing/usages",
            {"org_id": v.id, "billing_id": v.parent["id"], "usages": usages_body(v)},
        ),
        kind=CUSTOMER,
    ),
    ("POST", "/v1beta1/organizations/{org_id}/billing/{billing_id}/usages"): Row(
        "usage:write",
        lambda v: (f"/v1beta1/organizations/{v.id}/billing/{v.parent['id']}/usages", {"usages": usages_body(v)}),
        kind=CUSTOMER,
    ),
    ("GET", "/v1beta1/organizations/{org_id}/billing/{id}/balance"): Row(
        "billing:read", lambda v: (f"/v1beta1/organizations/{v.id}/billing/{v.parent['id']}/balance", None)
    ),
    ("GET", "/v1beta1/organizations/{org_id}/billing/{billing_id}/transactions"): Row(
        "billing:read", lambda v: (f"/v1beta1/organizations/{v.id}/billing/{v.parent['id']}/transactions", None)
    ),
    ("POST", "/v1beta1/billing/check"): Row(
        "billing:read",
        lambda v: ("/v1beta1/billing/check", {"org_id": v.id, "billing_id": v.parent["id"], "amount": 1}),
    ),
    ("POST", "/v1beta1/organizations/billing/usages/revert"): Row(
        "usage:write",
        lambda v: (
            "/v1beta1/organizations/billing/usages/revert",
            {"org_id": v.id, "billing_id": v.parent["id"], "usage_id": v.usage_id, "amount": 1},
        ),
        kind=OPERATOR,
    ),
    ("POST", "/v1beta1/admin/organizations/{org_id}/billing/{billing_id}/usage/{usage_id}/revert"): Row(
        "usage:write",
        lambda v: (
            f"/v1beta1/admin/organizations/{v.id}/billing/{v.parent['id']}/usage/{v.usage_id}/revert",
            {"amount": "1"},
        ),
        kind=OPERATOR,
    ),
    ("GET", "/v1beta1/organizations/{org_id}/billing/transactions"): Row(
        "billing:read",
        lambda v: (f"/v1beta1/organizations/{v.id}/billing/transactions?billing_id={v.parent['id']}", None),
    ),
    ("GET", "/v1beta1/organizations/{org_id}/billing/{billing_id}/debited_transactions_total"): Row(
        "billing:read",
        lambda v: (f"/v1beta1/organizations/{v.id}/billing/{v.parent['id']}/debited_transactions_total", None),
    ),
    ("POST", "/v1beta1/organizations/billing/check"): Row(
        "billing:read",
        lambda v: (
            "/v1beta1/organizations/billing/check",
            {"org_id": v.id, "billing_id": v.parent["id"], "feature": FEATURE},
        ),
    ),
    ("POST", "/v1beta1/organizations/{org_id}/billing/{billing_id}/check"): Row(
        "billing:read",
        lambda v: (f"/v1beta1/organizations/{v.id}/billing/{v.parent['id']}/check", {"feature": FEATURE}),
    ),
    # --- Frontier over ConnectRPC: each method answers as its REST binding, in Connect's error JSON ---------
    ("POST", f"{CONNECT}FrontierService/CreateBillingUsage"): Row(
        "usage:write",
        lambda v: (
            f"{CONNECT}FrontierService/CreateBillingUsage",
            {"orgId": v.id, "billingId": v.parent["id"], "usages": usages_body(v)},
        ),
        kind=CUSTOMER,
    ),
    ("POST", f"{CONNECT}FrontierService/GetBillingBalance"): Row(
        "billing:read",
        lambda v: (f"{CONNECT}FrontierService/GetBillingBalance", {"orgId": v.id, "id": v.parent["id"]}),
    ),
    ("POST", f"{CONNECT}FrontierService/ListBillingTransactions"): Row(
        "billing:read",
        lambda v: (f"{CONNECT}FrontierService/ListBillingTransactions", {"orgId": v.id, "billingId": v.parent["id"]}),
    ),
    ("POST", f"{CONNECT}FrontierService/CheckFeatureEntitlement"): Row(
        "billing:read",
        lambda v: (
            f"{CONNECT}FrontierService/CheckFeatureEntitlement",
            {"orgId": v.id, "billingId": v.parent["id"], "feature": FEATURE},
        ),
    ),
    # The proto names no billing account: the organization's default, or, for an account key that does not reach
    # it, the key's own account (the sibling's, the child's): their answer is about themselves.
    ("POST", f"{CONNECT}FrontierService/CheckCreditEntitlement"): Row(
        "billing:read",
        lambda v: (f"{CONNECT}FrontierService/CheckCreditEntitlement", {"orgId": v.id, "amount": "1"}),
        {"sibling": 200, "child_on_parent": 200},
    ),
    ("POST", f"{CONNECT}FrontierService/TotalDebitedTransactions"): Row(
        "billing:read",
        lambda v: (f"{CONNECT}FrontierService/TotalDebitedTransactions", {"orgId": v.id, "billingId": v.parent["id"]}),
    ),
    ("POST", f"{CONNECT}AdminService/RevertBillingUsage"): Row(
        "usage:write",
        lambda v: (
            f"{CONNECT}AdminService/RevertBillingUsage",
            {"orgId": v.id, "billingId": v.parent["id"], "usageId": v.usage_id, "amount": "1"},
        ),
        kind=OPERATOR,
    ),
    # Any other method of the package: Connect's routing miss, for everyone, before any key is looked at.
    ("POST", f"{CONNECT}{{service}}/{{method}}"): Row(
        PUBLIC, lambda v: (f"{CONNECT}FrontierService/ListUsers", {}), owner=404
    ),
    # --- Talkdesk and Cloudflare -----------------------------------------------------------------------
    ("GET", "/express/usage/month"): Row(
        "express-accounts-usage:read",
        lambda v: (f"/express/usage/month?filter=account_id eq '{v.parent['id']}'", None),
        everyone(403),
    ),
    # Cloudflare refuses credentials as the real API does: none 400, an unknown, revoked or expired token 403.
    ("GET", "/client/v4/user/billing/history"): Row(
        "billing:read",
        lambda v: ("/client/v4/user/billing/history", None),
        {**everyone(200), "no_key": 400, "revoked": 403, "expired": 403},
    ),
    # --- the web console: a session cookie made by signing in with the caller's key -----------------------
    # Only an organization key with the read scopes may sign in; every other caller has no session and is sent
    # to the sign-in page (303), which is what a browser without a session gets.
    ("GET", "/ui/sign-in"): Row(PUBLIC, lambda v: ("/ui/sign-in", None), console=True),
    ("POST", "/ui/sign-in"): Row(
        PUBLIC,
        lambda v: ("/ui/sign-in", None),
        {
            "no_key": 400,
            "revoked": 401,
            "expired": 401,
            "without_scope": 403,
            "sibling": 403,
            "child_on_parent": 403,
            "customer": 403,
            "archived": 403,
        },
        owner=303,
        console=True,
        sign_in_form=True,
    ),
    ("POST", "/ui/sign-out"): Row(PUBLIC, lambda v: ("/ui/sign-out", None), owner=303, console=True),
    ("GET", "/ui"): Row(PUBLIC, lambda v: ("/ui", None), owner=303, console=True),
    ("GET", "/ui/"): Row(PUBLIC, lambda v: ("/ui/", None), owner=303, console=True),
    ("GET", "/ui/static"): Row(PUBLIC, lambda v: ("/ui/static/console.css", None), console=True),
    ("GET", "/ui/accounts"): Row(
        CONSOLE, lambda v: ("/ui/accounts", None), {"other_org": 200, **SIGNED_OUT}, console=True
    ),
    ("GET", "/ui/accounts/{account_id}"): Row(
        CONSOLE, lambda v: (f"/ui/accounts/{v.parent['id']}", None), {"other_org": 404, **SIGNED_OUT}, console=True
    ),
    ("GET", "/ui/invoices"): Row(
        CONSOLE, lambda v: ("/ui/invoices", None), {"other_org": 200, **SIGNED_OUT}, console=True
    ),
    ("GET", "/ui/invoices/{invoice_id}"): Row(
        CONSOLE, lambda v: (f"/ui/invoices/{v.invoice_id}", None), {"other_org": 404, **SIGNED_OUT}, console=True
    ),
    ("GET", "/ui/billing-runs"): Row(
        CONSOLE, lambda v: ("/ui/billing-runs", None), {"other_org": 200, **SIGNED_OUT}, console=True
    ),
    ("GET", "/ui/plans"): Row(CONSOLE, lambda v: ("/ui/plans", None), {"other_org": 200, **SIGNED_OUT}, console=True),
    ("GET", "/ui/alerts"): Row(CONSOLE, lambda v: ("/ui/alerts", None), {"other_org": 200, **SIGNED_OUT}, console=True),
    ("GET", "/ui/plans/{code}"): Row(
        CONSOLE, lambda v: (f"/ui/plans/{v.private_plan}", None), {"other_org": 404, **SIGNED_OUT}, console=True
    ),
    # The console's actions: a signed-in key without the action's scope (the matrix's "without_scope" still has
    # the read scopes, so it signs in) is refused (403); another organization's ids are 404. A form posted
    # (with the caller's form token) only reviews until it is sent to .../confirm, which redirects (303).
    ("GET", "/ui/accounts/{account_id}/grant"): Row(
        "billing:write",
        lambda v: (f"/ui/accounts/{v.parent['id']}/grant", None),
        {"without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    ("POST", "/ui/accounts/{account_id}/grant"): Row(
        "billing:write",
        lambda v: (f"/ui/accounts/{v.parent['id']}/grant", {"amount": "1"}),
        {"without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    ("POST", "/ui/accounts/{account_id}/grant/confirm"): Row(
        "billing:write",
        lambda v: (f"/ui/accounts/{v.parent['id']}/grant/confirm", {"amount": "1", "grant_id": f"m-{uuid.uuid4()}"}),
        {"without_scope": 403, **SIGNED_OUT},
        owner=303,
        console=True,
        kind=OPERATOR,
    ),
    ("GET", "/ui/accounts/{account_id}/payment"): Row(
        "billing:write",
        lambda v: (f"/ui/accounts/{v.parent['id']}/payment", None),
        {"without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    ("POST", "/ui/accounts/{account_id}/payment"): Row(
        "billing:write",
        lambda v: (f"/ui/accounts/{v.parent['id']}/payment", {"amount": "1.00"}),
        {"without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    ("POST", "/ui/accounts/{account_id}/payment/confirm"): Row(
        "billing:write",
        lambda v: (
            f"/ui/accounts/{v.parent['id']}/payment/confirm",
            {"amount": "1.00", "payment_id": f"m-{uuid.uuid4()}"},
        ),
        {"without_scope": 403, **SIGNED_OUT},
        owner=303,
        console=True,
        kind=OPERATOR,
    ),
    ("GET", "/ui/invoices/{invoice_id}/void"): Row(
        "billing:write",
        lambda v: (f"/ui/invoices/{v.invoice_id}/void", None),
        {"without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    # The month build_org invoiced: reviewing or confirming it again makes nothing, for anyone.
    ("POST", "/ui/billing-runs"): Row(
        "billing:write",
        lambda v: ("/ui/billing-runs", {"month": v.month}),
        {"other_org": 200, "without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    ("POST", "/ui/billing-runs/confirm"): Row(
        "billing:write",
        lambda v: ("/ui/billing-runs/confirm", {"month": v.month}),
        {"other_org": 303, "without_scope": 403, **SIGNED_OUT},
        owner=303,
        console=True,
        kind=OPERATOR,
    ),
    ("GET", "/ui/webhooks"): Row(
        "billing:read",
        lambda v: ("/ui/webhooks", None),
        {"other_org": 200, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    ("GET", "/ui/webhooks/{endpoint_id}"): Row(
        "billing:read",
        lambda v: (f"/ui/webhooks/{v.webhook_endpoint_id}", None),
        {"other_org": 404, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    ("GET", "/ui/webhook-events/{event_id}/resend"): Row(
        "billing:write",
        lambda v: (f"/ui/webhook-events/{v.webhook_event_id}/resend?endpoint={v.webhook_endpoint_id}", None),
        {"without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=OPERATOR,
    ),
    ("POST", "/ui/webhook-events/{event_id}/resend/confirm"): Row(
        "billing:write",
        lambda v: (
            f"/ui/webhook-events/{v.webhook_event_id}/resend/confirm",
            {"endpoint_id": v.webhook_endpoint_id},
        ),
        {"without_scope": 403, **SIGNED_OUT},
        owner=303,
        console=True,
        kind=OPERATOR,
    ),
    ("GET", "/ui/keys"): Row(
        "keys:write",
        lambda v: ("/ui/keys", None),
        {"other_org": 200, "without_scope": 403, **SIGNED_OUT},
        console=True,
    ),
    ("GET", "/ui/keys/new"): Row(
        "keys:write",
        lambda v: ("/ui/keys/new", None),
        {"other_org": 200, "without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=CUSTOMER,
    ),
    # A key for the victim's parent account: another organization cannot name it (400, as the API answers).
    ("POST", "/ui/keys/new"): Row(
        "keys:write",
        lambda v: ("/ui/keys/new", {"account_id": v.parent["id"]}),
        {"other_org": 400, "without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=CUSTOMER,
    ),
    ("POST", "/ui/keys/new/confirm"): Row(
        "keys:write",
        lambda v: ("/ui/keys/new/confirm", {"account_id": v.parent["id"]}),
        {"other_org": 400, "without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=CUSTOMER,
    ),
    ("GET", "/ui/keys/{key_id}/revoke"): Row(
        "keys:write",
        lambda v: (f"/ui/keys/{v.spare_key_id}/revoke", None),
        {"without_scope": 403, **SIGNED_OUT},
        console=True,
        kind=CUSTOMER,
    ),
    # --- last: the owner's call changes the target for good -------------------------------------------------
    ("DELETE", "/v1/api_keys/{key_id}"): Row(
        "keys:write", lambda v: (f"/v1/api_keys/{v.spare_key_id}", None), kind=CUSTOMER
    ),
    ("POST", "/v1/invoices/{invoice_id}/void"): Row(
        "billing:write", lambda v: (f"/v1/invoices/{v.invoice_id}/void", None), kind=OPERATOR
    ),
    ("DELETE", "/v1/webhook_endpoints/{endpoint_id}"): Row(
        "billing:write", lambda v: (f"/v1/webhook_endpoints/{v.webhook_endpoint_id}", None), kind=OPERATOR
    ),
    ("POST", "/ui/keys/{key_id}/revoke/confirm"): Row(
        "keys:write",
        lambda v: (f"/ui/keys/{v.spare_key_id}/revoke/confirm", {}),
        {"without_scope": 403, **SIGNED_OUT},
        owner=303,
        console=True,
        kind=CUSTOMER,
    ),
    ("POST", "/ui/invoices/{invoice_id}/void/confirm"): Row(
        "billing:write",
        lambda v: (f"/ui/invoices/{v.invoice_id}/void/confirm", {}),
        {"without_scope": 403, **SIGNED_OUT},
        owner=303,
        console=True,
        kind=OPERATOR,
    ),
    ("DELETE", "/v1/accounts/{account_id}"): Row(
        "accounts:write", lambda v: (f"/v1/accounts/{v.parent['id']}", None), owner=202, kind=OPERATOR
    ),
}


def route_table() -> list[tuple[str, str]]:
    """Every (method, path) the application answers, from its route table."""
    app = create_app(Settings(database_url="sqlite:///unused-never-opened.db", migrate_on_start=False))
    found: list[tuple[str, str]] = []
    for route in flattened_routes(app.routes):
        methods = getattr(route, "methods", None) or {"GET"}  # a mount serves files
        found.extend((method, route.path) for method in sorted(methods))
    return found


@pytest.mark.parametrize(("method", "path"), route_table(), ids=lambda value: str(value))
def test_every_route_has_a_row(method: str, path: str) -> None:
    assert (method, path) in ROUTES, f"{method} {path} has no row in the access matrix: add one to ROUTES"


def test_every_row_is_a_route() -> None:
    assert set(ROUTES) <= set(route_table())


# --- the dialects' error shapes -------------------------------------------------------------------------


def faraday_code(who: str, status: int) -> set[str]:
    return {
        401: {"no_key": {"MISSING_API_KEY"}, "revoked": {"INVALID_AUTHORIZATION"}, "expired": {"EXPIRED_API_KEY"}}.get(
            who, {"INVALID_AUTHORIZATION"}
        ),
        403: {"FORBIDDEN"},
        404: {"NOT_FOUND"},
        400: {"VALIDATION_FAILED", "BAD_REQUEST"},
    }[status]


def check_error_shape(path: str, who: str, status: int, body: Any) -> None:
    if path.startswith(CONNECT):
        assert set(body) == {"code", "message"}, body
        unrouted = path.endswith("{service}/{method}")
        codes = {400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found"}
        assert body["code"] == ("unimplemented" if unrouted else codes[status]), body
        assert body["message"].strip()
    elif path.startswith("/v1beta1/"):
        assert set(body) == {"code", "message", "details"}, body
        assert body["code"] == {400: 3, 401: 16, 403: 7, 404: 5}[status], body
        assert body["message"].strip()
        assert body["details"] == []
    elif path.startswith("/express/"):
        assert set(body) == {"code", "message", "description", "fields"}, body
        assert body["code"] == {401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"}[status], body
    elif path.startswith("/client/v4/"):
        assert (body["success"], body["result"], body["messages"]) == (False, None, []), body
        code = {"no_key": 9106, "revoked": 9109, "expired": 9109}.get(who, 10000)
        assert [error["code"] for error in body["errors"]] == [code], body
    else:
        assert set(body) - {"validationErrors"} == {"error", "id", "note"}, body
        assert body["error"] in faraday_code(who, status), body
        uuid.UUID(body["id"])


# --- the matrix ---------------------------------------------------------------------------------------


def snapshot(database: Database) -> str:
    """A digest of every row of every table: equal digests, an unchanged database.

    Console sessions are left out: the matrix signs each console caller in (a session row) as a browser
    would, and signing in is what the console is for, not a write that a refusal must prevent.
    """
    digest = hashlib.sha256()
    with database.read() as conn:
        for table in metadata.sorted_tables:
            if table.name == "console_sessions":
                continue
            rows = sorted(repr(tuple(row)) for row in conn.execute(select(table)))
            digest.update(f"{table.name}:{len(rows)}:{''.join(rows)}".encode())
    return digest.hexdigest()


@dataclass
class Cell:
    method: str
    path: str
    who: str
    key: str | None
    expected: int


def cells(victim: Org, other: Org, archived: Org, keys: Keys, platform_key: str) -> tuple[list[Cell], list[Cell]]:
    """The calls that must be refused (or sent to sign in), and those that must succeed (the owner's, the
    customer's own, and intruders' listings of their own data)."""
    refused: list[Cell] = []
    allowed: list[Cell] = []
    owners = {"org": victim.key, "parent": victim.parent_key, "platform": platform_key}
    intruder_keys = {"other_org": other.key, "sibling": victim.sibling_key, "child_on_parent": victim.child_key}
    customer_keys = {"customer": victim.parent_key, "archived": archived.parent_key}
    for (method, path), row in ROUTES.items():
        without = keys.without.get(row.scope, keys.without["accounts:read"])
        callers = {"no_key": None, "revoked": keys.revoked, "expired": keys.expired, "without_scope": without}
        for who, key in {**callers, **intruder_keys, **customer_keys}.items():
            status = row.expected(who)
            (refused if status >= 300 else allowed).append(Cell(method, path, who, key, status))
        allowed.append(Cell(method, path, "owner", owners[row.owner_key], row.owner))
    return refused, allowed


def form_token(client: TestClient, cookie_header: dict[str, str], known: dict[str, str | None]) -> str | None:
    """The form token a console page hands the session of ``cookie_header`` (None without a session)."""
    cookie = cookie_header.get("Cookie", "")
    if cookie not in known:
        page = client.get("/ui/accounts", headers=cookie_header, follow_redirects=False) if cookie else None
        match = re.search(r'name="csrf" value="([^"]+)"', page.text) if page is not None else None
        known[cookie] = match.group(1) if match else None
    return known[cookie]


def sign_in(client: TestClient, key: str) -> str | None:
    """The console's session cookie for ``key``, or None when the console refuses it."""
    response = client.post("/ui/sign-in", data={"key": key, "next": "/ui/accounts"}, follow_redirects=False)
    cookie = response.cookies.get(SESSION_COOKIE)
    client.cookies.clear()  # the matrix sends each caller's cookie itself
    return cookie


def test_no_key_reaches_what_it_must_not(
    client: TestClient, database: Database, make_tenant: Any, platform_key: str
) -> None:
    victim = build_org(client, make_tenant("Victim"))
    other = build_org(client, make_tenant("Intruder"))
    archived = build_org(client, make_tenant("Archived"))
    response = client.delete(f"/v1/accounts/{archived.parent['id']}", headers=bearer(archived.key))
    assert response.status_code == 202, response.text
    sessions: dict[str, str | None] = {}
    tokens: dict[str, str | None] = {}

    def remember_session(key: str) -> None:
        sessions[key] = sign_in(client, key)

    keys = build_bad_keys(client, database, victim, while_valid=remember_session)
    secrets = victim.parent_secrets() | {f"project {victim.marker}"}
    refused, allowed = cells(victim, other, archived, keys, platform_key)
    failures: list[str] = []

    def run(cell: Cell) -> None:
        row = ROUTES[(cell.method, cell.path)]
        url, body = row.call(archived if cell.who == "archived" else victim)
        headers: dict[str, str] = {}
        if row.console and not row.sign_in_form and cell.key is not None:
            if cell.key not in sessions:
                sessions[cell.key] = sign_in(client, cell.key)
            # Signing out ends the session on the server: it gets a session of its own, not the shared one.
            cookie = sign_in(client, cell.key) if cell.path == "/ui/sign-out" else sessions[cell.key]
            headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
        elif cell.key is not None:
            headers = bearer(cell.key)
        if row.sign_in_form:
            response = client.post(url, data={"key": cell.key or ""}, follow_redirects=False)
            client.cookies.clear()
        elif row.console and cell.method == "POST" and cell.path != "/ui/sign-out":
            # A console form, sent as the browser sends it: with the token its page gave the caller's session.
            token = form_token(client, headers, tokens)
            form = dict(body or {}) | ({"csrf": token} if token else {})
            response = client.post(url, data=form, headers=headers, follow_redirects=False)
        else:
            response = client.request(cell.method, url, json=body, headers=headers, follow_redirects=False)
        name = f"{cell.method} {cell.path} as {cell.who}"
        if response.status_code != cell.expected:
            failures.append(f"{name}: expected {cell.expected}, got {response.status_code} {response.text[:300]}")
            return
        if cell.who == "owner" or (cell.who in CUSTOMERS and cell.expected < 300):
            return
        sent = f"{url} {body}"
        leaked = [secret for secret in secrets if secret in response.text and secret not in sent]
        if leaked and cell.who not in CUSTOMERS:
            failures.append(f"{name}: the reply shows the victim's {leaked}")
        if cell.expected >= 400 and not row.console:
            try:
                check_error_shape(cell.path, cell.who, cell.expected, response.json())
            except AssertionError as error:
                failures.append(f"{name}: not the dialect's error: {error}")

    before = snapshot(database)
    for cell in refused:
        run(cell)
    assert not failures, "\n".join(failures)
    assert snapshot(database) == before, "a refused call changed the database"
    for cell in allowed:
        run(cell)
    assert not failures, "\n".join(failures)
    print(f"\naccess matrix: {len(ROUTES)} routes, {len(refused) + len(allowed)} cells ({len(refused)} refused)")
