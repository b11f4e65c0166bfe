"""``meterbook demo``: a believable organization to try every call against, and a guide to calling it.

Besides the organization, its accounts, a subaccount and projects, the demo defines features with limits
(and one account's override), a small product catalog with a dated price change, three plans (Starter with
graduated tiers of API calls, Growth with volume tiers, Scale with SMS in packages; each with a fee, limits
and included credits), credit grants, three months of metered, credit and feature usage (and a year of
metered history before them, for the web console's chart, with accounts near and at their feature limits),
invoices for the two months that have ended (one of them voided) and payments (one invoice paid, one partly,
money paid ahead), all through the services, as any other caller would.

Globex is on Scale and Umbrella on Starter from their contracts' start; Umbrella moved to Growth on the 16th
of last month, so that month's invoice has a prorated fee of each plan; Globex negotiated its own price of
calls from last month on, which beats its plan's. The plans are in USD, the catalog's currency (a plan prices
only products of its own), so the EUR accounts, Initech and Globex Europe, stay on the catalog's prices.

It is a story, told from the moment the organization was created (the anchor) backwards, and its dates agree
with each other: each account's contract starts before its first usage, credits are granted when the contract
starts (before the usage they fund), each month is invoiced on the first day of the next one, due after the
account's net terms, and paid after it was issued, never after the anchor. Only what the services stamp with
the clock (when a row was written, a void) is dated by the run itself. docs/decisions.md has the reasoning.

Running it again reuses the demo organization and mints fresh keys (keys are shown only once); everything
else is written idempotently: grants and events carry fixed ids, and their content is dated from the
organization's creation, so a second run sends exactly the same grants and events and adds nothing. Payments
and the void are sent only by the run that invoiced the months, so an organization seeded by an earlier demo
keeps its own. So are the plans, subscriptions and the negotiated price, for another reason: they are dated
back into the months the demo invoices, and what an invoice was priced by never changes, so the services
refuse them once those months are invoiced. They are written before the usage and before the billing runs,
by the run that makes those runs; a later run (or an organization seeded by a demo that had no plans) leaves
the plans as they are.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from rich.console import Console
from sqlalchemy import Connection

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Account, Principal
from meterbook.accounts.reach import require_organization
from meterbook.accounts.schemas import (
    AccountCreate,
    Branding,
    Commitment,
    KeyCreate,
    OrganizationCreate,
    ProjectCreate,
)
from meterbook.alerts import service as alerts
from meterbook.alerts.schemas import AlertCreate
from meterbook.catalog import service as catalog
from meterbook.catalog.schemas import ProductPut
from meterbook.features import service as features
from meterbook.features.schemas import FeaturePut
from meterbook.invoicing import service as invoicing
from meterbook.invoicing.models import Invoice
from meterbook.kit.time import as_utc, month_start, next_month
from meterbook.ledger import service as ledger
from meterbook.ledger.schemas import CreditGrant
from meterbook.payments import service as payments
from meterbook.payments.schemas import PaymentIn
from meterbook.plans import service as plans
from meterbook.plans.models import NegotiatedPrice, Plan, Subscription
from meterbook.plans.schemas import NegotiatedPricePut, PlanPut, SubscriptionPut
from meterbook.pricing import GraduatedPrice, PerUnitPrice, PriceModel, VolumePrice
from meterbook.usage import service as usage
from meterbook.usage.schemas import EventIn

__all__ = ["DemoData", "print_guide", "seed"]

DEMO_ORGANIZATION = "Acme Cloud (meterbook demo)"


@dataclass(frozen=True)
class AccountPlans:
    """An account's plans and its own prices, for the guide."""

    name: str
    subscriptions: list[Subscription]
    negotiated: list[NegotiatedPrice]


@dataclass(frozen=True)
class UsageSummary:
    """What the demo's catalog and usage amount to, for the guide."""

    products: list[tuple[str, str, Decimal | None]]
    features: list[tuple[str, int | None, str]]
    events: int
    new_events: int
    first_event: datetime
    last_event: datetime
    invoiced_months: list[str] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    payments: int = 0
    #: The months this run invoiced (empty when an earlier run had).
    billed_now: list[str] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    terms: list[AccountPlans] = field(default_factory=list)


@dataclass
class DemoData:
    organization_id: uuid.UUID
    organization_key: str
    account_key: str
    read_only_key: str
    accounts: list[Account] = field(default_factory=list)
    reused: bool = False
    usage: UsageSummary | None = None
    #: A key of Initech's that nothing else uses, for the README's tour to revoke.
    spare_key_id: uuid.UUID | None = None
    #: Globex Corporation's open invoice (or, once none is open, its latest), for the tour to read and void.
    invoice_id: uuid.UUID | None = None
    #: The latest month the demo invoiced, and the latest ended month that no billing run has invoiced yet.
    billed_month: str | None = None
    unbilled_month: str | None = None
    #: The story's present: every date of the demo's data is at or before it.
    anchor: datetime | None = None
    #: Globex Corporation's low-credits alert, a little below its balance: the tour's credit usage fires it.
    alert_id: uuid.UUID | None = None


#: The account names the usage is written for (the demo creates them; renamed or archived ones are skipped).
GLOBEX, INITECH, UMBRELLA, GLOBEX_EU = "Globex Corporation", "Initech", "Umbrella Labs", "Globex Europe"
CALLS, API_CALLS, SMS = "TD-USG-TEL-UG-102213", "TD-USG-API-UG-100410", "TD-USG-SMS-UG-103001"
#: When the call product's first price took effect (or the start of the usage, if that is earlier).
FIRST_PRICE_FROM = datetime(2026, 6, 1, tzinfo=UTC)
#: Months of usage up to the anchor's, so that the console's usage chart has a full year to show.
HISTORY_MONTHS = 12
#: How many months before the anchor's each contract started: on the first of the month of its first usage
#: at the latest (Globex and Umbrella have the year of history, Initech and Globex Europe the last months).
CONTRACT_MONTHS_BACK = {GLOBEX: HISTORY_MONTHS - 1, INITECH: 9, UMBRELLA: HISTORY_MONTHS - 1, GLOBEX_EU: 2}
#: Globex's commitment runs two years from its start.
COMMITMENT_MONTHS = 24
FEATURES: list[tuple[str, str, int | None, Literal["never", "monthly"]]] = [
    ("cohort.max_count", "Cohorts an account may keep at once", 10, "never"),
    ("api.monthly_calls", "API calls per calendar month", 100_000, "monthly"),
    ("seats", "Named users", 25, "never"),
]
#: One account's override: Globex has bought more seats than the default allows.
SEATS_OVERRIDE = (GLOBEX, "seats", 50)
#: Credits granted once per account (the grant id names the account, so a second run grants nothing).
GRANTS = {
    GLOBEX: (20_000, "purchase"),
    INITECH: (5_000, "grant"),
    UMBRELLA: (2_000, "grant"),
    GLOBEX_EU: (3_000, "grant"),
}
#: The shell variable that names each demo account in the guide's export lines (and the docs' examples).
ACCOUNT_VARIABLES = {GLOBEX: "GLOBEX", INITECH: "INITECH", UMBRELLA: "UMBRELLA", GLOBEX_EU: "GLOBEX_EU"}
SPARE_KEY_NAME = "initech-etl (old, to revoke)"
#: Globex's alert on its credit balance (docs/alerts.md), set this many credits below the balance the demo leaves.
LOW_CREDITS_ALERT = "Globex credits running low"
LOW_CREDITS_MARGIN = 100
#: The plans, one price model each (docs/pricing.md), as ``PUT /v1/plans/{code}`` takes them. In USD, the
#: catalog's currency: a plan prices only products of its own, so the EUR accounts stay on the catalog's prices.
STARTER, GROWTH, SCALE = "starter", "growth", "scale"
PLANS: dict[str, dict[str, Any]] = {
    # 1,000 API calls a month free, then the list price, and less above 100,000.
    STARTER: {
        "name": "Starter",
        "currency": "USD",
        "fee": "19",
        "prices": {
            API_CALLS: {
                "model": "graduated",
                "tiers": [
                    {"up_to": 1000, "unit_price": "0"},
                    {"up_to": 100_000, "unit_price": "0.0004"},
                    {"up_to": None, "unit_price": "0.0003"},
                ],
            }
        },
        "limits": {"seats": 15, "cohort.max_count": 5, "api.monthly_calls": 50_000},
        "included_credits": {"amount": 500, "rollover": "none"},
    },
    # Every API call of the month at the price of the tier the month's total falls in.
    GROWTH: {
        "name": "Growth",
        "currency": "USD",
        "fee": "99",
        "prices": {
            API_CALLS: {
                "model": "volume",
                "tiers": [
                    {"up_to": 10_000, "unit_price": "0.00035"},
                    {"up_to": 100_000, "unit_price": "0.0003"},
                    {"up_to": None, "unit_price": "0.0002"},
                ],
            }
        },
        # The defaults, stated: Umbrella, on Growth now, stays near its API limit and at its cohort limit.
        "limits": {"seats": 25, "cohort.max_count": 10, "api.monthly_calls": 100_000},
        "included_credits": {"amount": 2_000, "rollover": 1_000},
    },
    # SMS in packages of 1,000 (each package started is charged whole), and calls below the list price.
    SCALE: {
        "name": "Scale",
        "currency": "USD",
        "fee": "499",
        "prices": {
            SMS: {"model": "package", "package_size": 1000, "package_price": "5"},
            CALLS: {"model": "per_unit", "unit_price": "0.055"},
        },
        "limits": {"seats": 100, "cohort.max_count": 25, "api.monthly_calls": None},
        "included_credits": {"amount": 10_000, "rollover": "all"},
    },
}
#: Who is on which plan from its contract's start: Globex on Scale, Umbrella on Starter until it outgrew it.
PLAN_OF = {GLOBEX: SCALE, UMBRELLA: STARTER}
#: Umbrella moved to Growth on the 16th of last month (months before the anchor's, day), so that month's invoice
#: has a prorated fee of each plan.
PLAN_CHANGE = (UMBRELLA, GROWTH, 1, 16)
#: Globex's own price of calls from last month on (months before the anchor's), when the catalog's went up: it
#: beats its plan's 0.055.
NEGOTIATED = (GLOBEX, CALLS, {"model": "per_unit", "unit_price": "0.05"}, 1)


def _month_start(moment: datetime, months_back: int = 0) -> datetime:
    year, month = divmod(moment.year * 12 + moment.month - 1 - months_back, 12)
    return datetime(year, month + 1, 1, tzinfo=UTC)


def _anchor(created_at: datetime) -> datetime:
    """The story's present: the organization's creation, to the minute, the same on every run."""
    return as_utc(created_at).replace(second=0, microsecond=0)


def _contract_start(anchor: datetime, name: str) -> datetime:
    return _month_start(anchor, CONTRACT_MONTHS_BACK[name])


def _demo_accounts(anchor: datetime, parent_of_sub: uuid.UUID | None = None) -> list[AccountCreate]:
    if parent_of_sub is not None:
        return [
            AccountCreate(
                name=GLOBEX_EU,
                parent_account_id=parent_of_sub,
                currency="EUR",
                email="billing-eu@globex.example",
                contract_started_at=_contract_start(anchor, GLOBEX_EU),
            )
        ]
    globex_start = _contract_start(anchor, GLOBEX)
    return [
        AccountCreate(
            name=GLOBEX,
            email="billing@globex.example",
            commitment=Commitment(
                monthly_cost=Decimal("1500"),
                renewal_date=_month_start(globex_start, -COMMITMENT_MONTHS),
            ),
            contract_started_at=globex_start,
            stripe_customer_id="cus_DemoGlobex01",
        ),
        AccountCreate(
            name=INITECH,
            email="ap@initech.example",
            currency="EUR",
            net_terms_days=45,
            commitment=Commitment(monthly_cost=Decimal("420"), renewal_date=None),
            contract_started_at=_contract_start(anchor, INITECH),
        ),
        AccountCreate(
            name=UMBRELLA,
            email="finance@umbrella.example",
            credit_min=-500,
            branding=Branding(suppress_from_reports=True),
            contract_started_at=_contract_start(anchor, UMBRELLA),
        ),
    ]


def _put_catalog(conn: Connection, org: Principal, anchor: datetime) -> None:
    """Three products; calls changed price at the start of last month, so the usage shows both prices."""
    first_from = min(FIRST_PRICE_FROM, _month_start(anchor, HISTORY_MONTHS - 1))

    def calls(price: str, effective_from: datetime) -> ProductPut:
        return ProductPut(
            description="Inbound calls — US toll-free",
            type="CALL",
            unit="minute",
            aggr_product_id="TD-USG-TEL",
            wallet_name="usage",
            unit_price=Decimal(price),
            price_effective_from=effective_from,
        )

    catalog.put_product(conn, org, CALLS, calls("0.06", first_from))
    catalog.put_product(conn, org, CALLS, calls("0.067", _month_start(anchor, 1)))
    catalog.put_product(
        conn,
        org,
        API_CALLS,
        ProductPut(
            description="API requests",
            type="API_REQUEST",
            unit="request",
            aggr_product_id="TD-USG-API",
            wallet_name="usage",
            unit_price=Decimal("0.0004"),
            price_effective_from=first_from,
        ),
    )
    catalog.put_product(
        conn,
        org,
        SMS,
        ProductPut(
            description="Outbound SMS — US",
            type="MESSAGE",
            unit="message",
            aggr_product_id="TD-USG-SMS",
            wallet_name="usage",
            unit_price=Decimal("0.0079"),
            price_effective_from=first_from,
        ),
    )


def _put_features(conn: Connection, org: Principal, by_name: dict[str, Account]) -> None:
    for name, description, limit, reset in FEATURES:
        features.put_feature(conn, org, name, FeaturePut(description=description, default_limit=limit, reset=reset))
    account_name, feature, limit = SEATS_OVERRIDE
    if account_name in by_name:
        features.set_limit(conn, org, by_name[account_name].id, feature, limit)


def _plan_change_at(anchor: datetime) -> datetime:
    _, _, months_back, day = PLAN_CHANGE
    return _month_start(anchor, months_back) + timedelta(days=day - 1)


def _put_plans(conn: Connection, org: Principal, anchor: datetime, by_name: dict[str, Account]) -> bool:
    """The plans, who is on them and Globex's negotiated price, dated back into the story; True when written now.

    They hold from the first month of usage, so every invoice the demo issues is priced by them. What an invoice
    was priced by never changes: the services refuse a plan version, a subscription or a negotiated price that
    would hold for an invoiced month. So they are written only before the story's months are invoiced, by the
    run that invoices them; an organization whose months are invoiced already (a second run, or one seeded by an
    earlier demo) keeps what it has.
    """
    first = _month_start(anchor, HISTORY_MONTHS - 1)
    if any(run.month >= f"{first:%Y-%m}" for run in invoicing.list_billing_runs(conn, org)):
        return False
    for code, content in PLANS.items():
        plans.put_plan(conn, org, code, PlanPut.model_validate(content | {"effective_from": first}))
    for account_name, code in PLAN_OF.items():
        account = by_name.get(account_name)
        if account is not None:
            starts_at = max(as_utc(account.contract_started_at), first)
            plans.put_subscription(conn, org, account.id, SubscriptionPut(plan=code, starts_at=starts_at))
    account_name, code, _, _ = PLAN_CHANGE
    changed = by_name.get(account_name)
    if changed is not None:
        plans.put_subscription(conn, org, changed.id, SubscriptionPut(plan=code, starts_at=_plan_change_at(anchor)))
    account_name, product_id, price, months_back = NEGOTIATED
    negotiating = by_name.get(account_name)
    if negotiating is not None:
        data = NegotiatedPricePut.model_validate({"price": price, "effective_from": _month_start(anchor, months_back)})
        plans.put_negotiated_price(conn, org, negotiating.id, product_id, data)
    return True


def _grant_credits(conn: Connection, org: Principal, by_name: dict[str, Account]) -> None:
    """Each account's credits, granted when its contract started: before any usage they fund."""
    for account_name, (amount, kind) in GRANTS.items():
        account = by_name.get(account_name)
        if account is not None:
            grant = CreditGrant(
                id=f"demo-grant-{account.id}",
                amount=amount,
                type=kind,
                source="demo",
                description="Prepaid credits" if kind == "purchase" else "Welcome credits",
            )
            ledger.grant(conn, org, account.id, grant, granted_at=account.contract_started_at)


def _usage_events(anchor: datetime, by_name: dict[str, Account]) -> list[EventIn]:
    """Three months of usage up to ``anchor``, the same every time for the same anchor (the ids are fixed)."""
    start = _month_start(anchor, 2)

    def at(fraction: float) -> datetime:
        return (start + (anchor - start) * fraction).replace(microsecond=0)

    planned: list[tuple[str, dict[str, Any]]] = []
    for account_name, scale in ((GLOBEX, 3), (UMBRELLA, 1)):
        for k in range(40):
            when = at((k + 0.5) / 40)
            minutes = Decimal(scale * (1 + (k * 7) % 23)) + Decimal("0.5") * (k % 2)
            resolution = "answered" if k % 5 else "voicemail"
            planned.append(
                (
                    account_name,
                    {"type": "metered", "product_id": CALLS, "quantity": minutes, "occurred_at": when}
                    | {"direction": "INBOUND", "resolution": resolution, "description": "Inbound call"},
                )
            )
            if k % 3 == 0:
                requests = scale * (200 + (k * 53) % 800)
                planned.append(
                    (
                        account_name,
                        {"type": "metered", "product_id": API_CALLS, "quantity": requests, "occurred_at": when},
                    )
                )
            if k % 4 == 1:
                messages = scale * (10 + k % 30)
                planned.append(
                    (
                        account_name,
                        {"type": "metered", "product_id": SMS, "quantity": messages, "occurred_at": when}
                        | {"direction": "OUTBOUND"},
                    )
                )
    for account_name in (GLOBEX, INITECH, UMBRELLA, GLOBEX_EU):
        for k in range(12):
            planned.append(
                (
                    account_name,
                    {"type": "credit", "quantity": 5 + (k * 13) % 40, "occurred_at": at((k + 0.25) / 12)}
                    | {"source": "reports", "description": "Scheduled report", "user_id": f"user-{k % 4 + 1}"},
                )
            )
    feature_use = [
        (GLOBEX, "seats", 30, at(0.05)),
        (GLOBEX, "cohort.max_count", 4, at(0.2)),
        (GLOBEX, "cohort.max_count", -1, at(0.6)),
        (GLOBEX, "api.monthly_calls", 42_000, _month_start(anchor, 2) + timedelta(days=10)),
        (GLOBEX, "api.monthly_calls", 57_500, _month_start(anchor, 1) + timedelta(days=10)),
        (GLOBEX, "api.monthly_calls", 18_250, anchor - timedelta(minutes=1)),
        (INITECH, "seats", 8, at(0.1)),
        (INITECH, "cohort.max_count", 2, at(0.3)),
        (INITECH, "api.monthly_calls", 12_000, anchor - timedelta(minutes=2)),
        (UMBRELLA, "seats", 12, at(0.15)),
        (GLOBEX_EU, "cohort.max_count", 1, at(0.5)),
    ]
    for account_name, feature, count, when in feature_use:
        planned.append((account_name, {"type": "feature", "feature": feature, "quantity": count, "occurred_at": when}))
    # Ids are numbered before accounts are looked up, so a missing account leaves the others' ids as they were.
    # The later additions (history, accounts near their limits) have ids of their own, so that a database
    # seeded by an earlier demo gets them without any earlier id changing its content.
    numbered = [(f"demo-{n}", name, content) for n, (name, content) in enumerate(planned, start=1)]
    numbered += [(f"demo-h-{n}", name, content) for n, (name, content) in enumerate(_history(anchor), start=1)]
    return [
        EventIn.model_validate({"id": event_id, "account_id": by_name[account_name].id, **content})
        for event_id, account_name, content in numbered
        if account_name in by_name
    ]


def _history(anchor: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The months before the invoiced ones, so that the console's chart has a year to show, and accounts near
    (and at) their limits, so that its bars show every state.

    Usage from before meterbook billed the organization (imported, as ``POST /v1/events`` allows): the demo
    invoices only the two months before the anchor's, so these months stay open, as imported history would.
    """
    planned: list[tuple[str, dict[str, Any]]] = []
    for months_back in range(HISTORY_MONTHS - 1, 2, -1):
        start = _month_start(anchor, months_back)
        # A customer that grows: from about half of today's usage a year ago, with a little month-to-month wobble.
        growth = Decimal("0.55") + Decimal("0.05") * (HISTORY_MONTHS - 1 - months_back)
        wobble = 1 + Decimal((months_back * 7) % 5 - 2) / 25
        for account_name, scale in ((GLOBEX, 3), (UMBRELLA, 1)):
            monthly = {CALLS: Decimal(215), API_CALLS: Decimal(3900), SMS: Decimal(95)}
            for part in range(4):
                when = start + timedelta(days=3 + 7 * part, hours=9 + part)
                for product_id, base in monthly.items():
                    amount = (base * scale * growth * wobble / 4).quantize(Decimal("0.5" if product_id == CALLS else 1))
                    content: dict[str, Any] = {"type": "metered", "product_id": product_id, "quantity": amount}
                    if product_id == CALLS:
                        content |= {"direction": "INBOUND", "resolution": "answered", "description": "Inbound call"}
                    elif product_id == SMS:
                        content |= {"direction": "OUTBOUND"}
                    planned.append((account_name, content | {"occurred_at": when}))
    # Close to the limit (Initech's seats, Umbrella's API calls this month) and at it (Umbrella's cohorts).
    latest = anchor - timedelta(minutes=3)
    for account_name, feature, count in (
        (INITECH, "seats", 15),
        (UMBRELLA, "api.monthly_calls", 91_500),
        (UMBRELLA, "cohort.max_count", 10),
    ):
        planned.append(
            (account_name, {"type": "feature", "feature": feature, "quantity": count, "occurred_at": latest})
        )
    return planned


def _seed_usage(conn: Connection, org: Principal, anchor: datetime) -> UsageSummary:
    """Catalog, features, credits, usage and invoices, each written so that a second run adds nothing."""
    by_name = {account.name: account for account in accounts.list_accounts(conn, org) if account.archived_at is None}
    _put_catalog(conn, org, anchor)
    _put_features(conn, org, by_name)
    # Before the usage (priced by the plans in force when it occurred) and before the months are invoiced.
    _put_plans(conn, org, anchor, by_name)
    _grant_credits(conn, org, by_name)
    events = _usage_events(anchor, by_name)
    accepted = usage.ingest(conn, org, events).accepted if events else 0
    dates = [event.occurred_at for event in events if event.occurred_at is not None] or [anchor]
    now = datetime.now(UTC)
    months, billed_now = _bill_and_collect(conn, org, anchor, by_name)
    return UsageSummary(
        products=[(p.product_id, p.description, p.price_at(now)) for p in catalog.list_products(conn, org)],
        features=[(f.name, f.default_limit, f.reset) for f in features.list_features(conn, org)],
        events=len(events),
        new_events=accepted,
        first_event=min(dates),
        last_event=max(dates),
        invoiced_months=months,
        invoices=invoicing.list_invoices(conn, org),
        payments=len(payments.list_payments(conn, org)),
        billed_now=billed_now,
        plans=plans.list_plans(conn, org),
        terms=_terms(conn, org, by_name),
    )


def _terms(conn: Connection, org: Principal, by_name: dict[str, Account]) -> list[AccountPlans]:
    """Each account's plans (oldest first) and negotiated prices, for the accounts that have any."""
    terms = plans.account_terms(conn, require_organization(org), [account.id for account in by_name.values()])
    found = [
        AccountPlans(name, list(terms[account.id].subscriptions), list(terms[account.id].negotiated))
        for name, account in by_name.items()
    ]
    return [item for item in found if item.subscriptions or item.negotiated]


def _put_alert(conn: Connection, org: Principal, account: Account | None) -> uuid.UUID | None:
    """An alert near its threshold: Globex's balance, a little above it, so that the tour's next credit usage of
    more than :data:`LOW_CREDITS_MARGIN` credits fires it (once; a second run keeps the first alert)."""
    if account is None:
        return None
    existing = [alert for alert in alerts.list_alerts(conn, org) if alert.name == LOW_CREDITS_ALERT]
    if existing:
        return existing[0].id
    balance = ledger.balance(conn, org, account.id).balance
    body = {
        "name": LOW_CREDITS_ALERT,
        "account_id": str(account.id),
        "type": "credit_balance_below",
        "threshold": max(balance - LOW_CREDITS_MARGIN, 0),
    }
    return alerts.create_alert(conn, org, AlertCreate.model_validate(body)).id


def _bill_and_collect(
    conn: Connection, org: Principal, anchor: datetime, by_name: dict[str, Account]
) -> tuple[list[str], list[str]]:
    """Invoice the two months before the anchor's, then record payments and a void; the months, and those billed now.

    Each month is invoiced at its end (the first instant of the next month), as a monthly run would have done,
    not when the demo happens to run. Payments and the void follow only when this run issued the invoices:
    they are the story of those invoices, and an organization seeded by an earlier demo keeps its own.
    """
    months = [f"{start:%Y-%m}" for start in (_month_start(anchor, 2), _month_start(anchor, 1))]
    organization_id = require_organization(org)
    billed_now = [
        month
        for month in months
        if invoicing.run_billing(conn, organization_id, month, now=month_start(next_month(month))).created
    ]
    if billed_now != months:
        return months, billed_now

    def invoice_of(name: str, month: str) -> Invoice | None:
        account = by_name.get(name)
        if account is None:
            return None
        found = invoicing.list_invoices(conn, org, account_id=account.id, month=month)
        return found[0] if found else None

    def paid(payment_id: str, name: str, invoice: Invoice | None, amount: Decimal, days: int, reference: str) -> None:
        account = by_name.get(name)
        if account is None or invoice is None:
            return
        # Some days after the invoice was issued, but never after the story's present.
        date = min(invoice.issued_at + timedelta(days=days), anchor)
        data = PaymentIn(
            id=payment_id,
            account_id=account.id,
            amount=amount,
            currency=invoice.currency,
            date=date,
            reference=reference,
        )
        invoicing.pay(conn, org, data)

    older, newer = months
    globex_older = invoice_of(GLOBEX, older)
    if globex_older is not None:
        paid("demo-payment-1", GLOBEX, globex_older, globex_older.amount, 10, "wire GLX-1001")
    globex_newer = invoice_of(GLOBEX, newer)
    if globex_newer is not None:
        paid("demo-payment-2", GLOBEX, globex_newer, Decimal(1000), 5, "wire GLX-1002")
    initech_older = invoice_of(INITECH, older)
    if initech_older is not None:
        # Within Initech's 45 days, and still in the month after the invoice's (the shortest month has 28 days).
        paid("demo-payment-3", INITECH, initech_older, initech_older.amount, 25, "SEPA INI-77")
    # Umbrella's first invoice was issued in error: voided, it stays in the history with a refund.
    umbrella_older = invoice_of(UMBRELLA, older)
    if umbrella_older is not None:
        invoicing.void(conn, org, umbrella_older.id)
        # A round sum, more than the newer invoice (whatever its plans' fees make it): the rest is paid ahead.
        umbrella_newer = invoice_of(UMBRELLA, newer)
        if umbrella_newer is not None:
            ahead = (umbrella_newer.amount // 100 + 1) * 100
            paid("demo-payment-4", UMBRELLA, umbrella_newer, ahead, 3, "card UMB-5")
    return months, billed_now


def _unbilled_month(conn: Connection, org: Principal) -> str:
    """The latest month that has ended and that no billing run has invoiced: one a billing run would invoice now."""
    billed = {run.month for run in invoicing.list_billing_runs(conn, org)}
    month = f"{_month_start(datetime.now(UTC), 1):%Y-%m}"
    while month in billed:
        month = f"{_month_start(month_start(month), 1):%Y-%m}"
    return month


def _tour_invoice(conn: Connection, org: Principal, account: Account | None) -> uuid.UUID | None:
    if account is None:
        return None
    invoices = invoicing.list_invoices(conn, org, account_id=account.id)
    open_ones = [invoice for invoice in invoices if invoice.status == "open"]
    chosen = (open_ones or invoices)[-1:]
    return chosen[0].id if chosen else None


def seed(conn: Connection) -> DemoData:
    existing = accounts.organization_named(conn, DEMO_ORGANIZATION)
    if existing is None:
        platform = accounts.create_platform_key(conn, "demo platform key")
        organization, org_created = accounts.create_organization(
            conn, accounts.authenticate(conn, platform.token), OrganizationCreate(name=DEMO_ORGANIZATION)
        )
        org_key = org_created.token
        org = accounts.authenticate(conn, org_key)
        anchor = _anchor(organization.created_at)
        top = [accounts.create_account(conn, org, data) for data in _demo_accounts(anchor)]
        for data in _demo_accounts(anchor, top[0].id):
            accounts.create_account(conn, org, data)
        for name, billed in (("globex-web", top[0]), ("initech-etl", top[1]), ("internal-tools", None)):
            accounts.create_project(
                conn, org, ProjectCreate(name=name, billing_account_id=billed.id if billed else None)
            )
        account_key = top[0].api_key or ""
        organization_id, reused = organization.id, False
    else:
        org_key = accounts.create_organization_key(conn, existing.id, "demo organization key").token
        org = accounts.authenticate(conn, org_key)
        anchor = _anchor(existing.created_at)
        globex = accounts.list_accounts(conn, org)[0]
        account_key = accounts.create_key(conn, org, KeyCreate(account_id=globex.id, name="demo account key")).token
        organization_id, reused = existing.id, True
    read_only = accounts.create_key(
        conn,
        org,
        KeyCreate(name="demo read-only key", scopes=["accounts:read", "billing:read", "usage:read"]),
    ).token
    summary = _seed_usage(conn, org, anchor)
    by_name = {account.name: account for account in accounts.list_accounts(conn, org) if account.archived_at is None}
    initech = by_name.get(INITECH)
    # Minted on every run, so that the tour always has a live key to revoke, and one nobody else relies on.
    spare = (
        accounts.create_key(conn, org, KeyCreate(account_id=initech.id, name=SPARE_KEY_NAME, scopes=["usage:write"]))
        if initech is not None
        else None
    )
    return DemoData(
        organization_id=organization_id,
        organization_key=org_key,
        account_key=account_key,
        read_only_key=read_only,
        accounts=accounts.list_accounts(conn, org),
        reused=reused,
        usage=summary,
        spare_key_id=spare.key.id if spare is not None else None,
        invoice_id=_tour_invoice(conn, org, by_name.get(GLOBEX)),
        billed_month=summary.invoiced_months[-1],
        unbilled_month=_unbilled_month(conn, org),
        anchor=anchor,
        alert_id=_put_alert(conn, org, by_name.get(GLOBEX)),
    )


def tour_variables(base_url: str, demo: DemoData) -> list[tuple[str, str, str]]:
    """The shell variables the README's tour and docs/dialects.md use: (name, value, what it is)."""
    first = demo.accounts[0]
    variables = [
        ("MB", base_url, "the server"),
        ("KEY", demo.organization_key, "the organization key: the operator's, reaches every account"),
        ("ACCOUNT_KEY", demo.account_key, f"{first.name}'s account key: a customer's"),
        ("READ_KEY", demo.read_only_key, "the read-only key"),
        ("ORG", str(demo.organization_id), DEMO_ORGANIZATION),
    ]
    names = {account.id: account.name for account in demo.accounts}
    for account in demo.accounts:
        variable = ACCOUNT_VARIABLES.get(account.name)
        if variable is not None and account.archived_at is None:
            parent = names.get(account.parent_account_id) if account.parent_account_id else None
            what = f"{account.name} ({account.currency})" + (f", a subaccount of {parent}" if parent else "")
            variables.append((variable, str(account.id), what))
    if demo.spare_key_id is not None:
        variables.append(
            ("KEY_ID", str(demo.spare_key_id), f"a key of {INITECH}'s that nothing uses, for the tour to revoke")
        )
    if demo.invoice_id is not None:
        variables.append(("INVOICE", str(demo.invoice_id), f"an invoice of {GLOBEX}'s (open, if one is)"))
    if demo.billed_month is not None:
        variables.append(("BILLED", demo.billed_month, "the latest month the demo invoiced"))
    if demo.unbilled_month is not None:
        variables.append(("UNBILLED", demo.unbilled_month, "the latest ended month not invoiced yet"))
    return variables


def print_guide(console: Console, base_url: str, demo: DemoData) -> None:
    def line(text: str = "") -> None:
        # Soft-wrapped and without markup, so that keys, ids and commands stay whole for copy and paste.
        console.print(text, soft_wrap=True, highlight=False, markup=False)

    first = demo.accounts[0]
    verb = "Reusing" if demo.reused else "Created"
    console.print(f"\n[bold green]{verb} the demo organization[/bold green] {DEMO_ORGANIZATION}", soft_wrap=True)
    line(f"  organization id   {demo.organization_id}")
    for account in demo.accounts:
        parent = f"  subaccount of {account.parent_account_id}" if account.parent_account_id else ""
        line(f"  account           {account.id}  {account.name} ({account.currency}){parent}")
    if demo.usage is not None:
        _print_usage(line, demo.usage)
    console.print("\n[bold]Keys[/bold] (shown only now; meterbook stores only their hashes):")
    line(f"  organization key  {demo.organization_key}")
    line(f"  account key       {demo.account_key}  ({first.name})")
    line(f"  read-only key     {demo.read_only_key}")
    console.print("\n[bold]Base URL[/bold]", soft_wrap=True)
    line(f"  {base_url}    (API reference: {base_url}/docs)")
    console.print("\n[bold]Web console[/bold]", soft_wrap=True)
    line(f"  {base_url}/ui    (sign in with the organization key or the read-only key above)")
    console.print(
        "\n[bold]Variables[/bold] (paste them into another terminal; the README's tour and docs/dialects.md use them):",
        soft_wrap=True,
    )
    for name, value, what in tour_variables(base_url, demo):
        line(f"  export {name}={value}  # {what}")
    first_month, last_month = _usage_months(demo.usage)
    umbrella = next((a for a in demo.accounts if a.name == UMBRELLA and a.archived_at is None), first)
    console.print("\n[bold]Try[/bold] (in that terminal, while the server runs):", soft_wrap=True)
    examples = [
        f'curl -s $MB/v1/accounts/{first.id} -H "Authorization: Bearer $KEY"',
        'curl -s $MB/v1/accounts -H "Authorization: Bearer $KEY"',
        f'curl -s $MB/v1/accounts/current -H "Authorization: Bearer {demo.account_key}"',
        'curl -s -X POST $MB/v1/accounts -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" '
        '-d \'{"name": "Hooli", "currency": "USD"}\'',
        f'curl -s -X PATCH $MB/v1/accounts/{first.id} -H "Authorization: Bearer $KEY" '
        '-H "Content-Type: application/merge-patch+json" -d \'{"branding": {"suppress_from_reports": true}}\'',
        'curl -s $MB/v1/projects -H "Authorization: Bearer $KEY"',
        f'curl -s $MB/v1/accounts/{first.id}/credits -H "Authorization: Bearer $KEY"',
        f'curl -s $MB/v1/usages -H "Authorization: Bearer {demo.account_key}"',
        'curl -s -X POST $MB/v1/events -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" '
        f'-d \'[{{"id": "try-1", "account_id": "{first.id}", "type": "metered", "product_id": "{CALLS}", '
        '"quantity": "2.5", "direction": "INBOUND"}]\'',
        "# (send that one twice: the second reply counts it among the duplicates, and nothing changes)",
        f'curl -s "$MB/v1/monthly_usage?account_id={first.id}&from={first_month}&to={last_month}" '
        '-H "Authorization: Bearer $KEY"',
        "# Talkdesk dialect: monthly usage aggregates, filtered",
        'curl -s -G $MB/express/usage/month -H "Authorization: Bearer $KEY" '
        f"--data-urlencode \"filter=account_id eq '{first.id}' and month ge '{first_month}'\" "
        "--data-urlencode order_by=month:asc",
        "# Invoices, payments, and the two billing views over them",
        'curl -s $MB/v1/invoices -H "Authorization: Bearer $KEY"',
        'curl -s $MB/v1/payments -H "Authorization: Bearer $KEY"',
        f'curl -s $MB/v1/accounts/{first.id}/billing -H "Authorization: Bearer $KEY"',
        f'curl -s $MB/v1/accounts/current/billing -H "Authorization: Bearer {demo.account_key}"',
        'curl -s "$MB/client/v4/user/billing/history?per_page=5" '
        f'-H "X-Auth-Email: {first.email}" -H "X-Auth-Key: {demo.account_key}"',
        f"# Plans (docs/pricing.md): each with its versions; {umbrella.name}'s plan now; what a billing run of this "
        f"month would invoice {first.name} so far",
        'curl -s $MB/v1/plans -H "Authorization: Bearer $KEY"',
        f'curl -s $MB/v1/accounts/{umbrella.id}/subscription -H "Authorization: Bearer $KEY"',
        f'curl -s $MB/v1/accounts/{first.id}/invoices/upcoming -H "Authorization: Bearer $KEY"',
        "# Frontier dialect: credit balance and transactions",
        f"curl -s $MB/v1beta1/organizations/{demo.organization_id}/billing/{first.id}/balance "
        '-H "Authorization: Bearer $KEY"',
        f"curl -s $MB/v1beta1/organizations/{demo.organization_id}/billing/{first.id}/transactions "
        '-H "Authorization: Bearer $KEY"',
    ]
    if demo.alert_id is not None:
        examples += [
            f"# Alerts (docs/alerts.md): {first.name}'s balance is {LOW_CREDITS_MARGIN} credits above its alert; "
            f"spend {LOW_CREDITS_MARGIN + 1} and it fires (once)",
            'curl -s $MB/v1/alerts -H "Authorization: Bearer $KEY"',
            'curl -s -X POST $MB/v1/events -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" '
            f'-d \'[{{"id": "try-low-1", "account_id": "{first.id}", "type": "credit", '
            f'"quantity": {LOW_CREDITS_MARGIN + 1}}}]\'',
            f'curl -s $MB/v1/alerts/{demo.alert_id}/triggers -H "Authorization: Bearer $KEY"',
        ]
    for example in examples:
        line(f"  {example}")
    line()
    _print_webhooks(console, line, first.id)


def _print_webhooks(console: Console, line: Callable[[str], None], account_id: uuid.UUID) -> None:
    """How to watch webhooks arrive on this machine (docs/webhooks.md has a receiver that checks signatures)."""
    console.print("\n[bold]Webhooks[/bold] (watch events arrive on this machine):", soft_wrap=True)
    steps = [
        "# 1. Serve with private destinations allowed (a receiver on 127.0.0.1 is one):",
        "METERBOOK_WEBHOOK_ALLOW_PRIVATE=true meterbook serve",
        "# 2. Run a receiver on port 9000: docs/webhooks.md has one that verifies each signature.",
        "# 3. Point an endpoint at it (the reply shows its signing secret, once), then cause an event:",
        'curl -s -X POST $MB/v1/webhook_endpoints -H "Authorization: Bearer $KEY" '
        '-H "Content-Type: application/json" -d \'{"url": "http://127.0.0.1:9000/hooks"}\'',
        f'curl -s -X POST $MB/v1/accounts/{account_id}/credits -H "Authorization: Bearer $KEY" '
        '-H "Content-Type: application/json" -d \'{"id": "demo-webhook-grant", "amount": 10}\'',
        "# 4. Each attempt, its status and duration: GET $MB/v1/webhook_endpoints/<id>/deliveries, or /ui/webhooks",
    ]
    for step in steps:
        line(f"  {step}")
    line("")


def _print_usage(line: Callable[[str], None], summary: UsageSummary) -> None:
    for product_id, description, price in summary.products:
        shown = "no price yet" if price is None else f"{price} per unit"
        line(f"  product           {product_id}  {description} ({shown})")
    for name, limit, reset in summary.features:
        shown = "unlimited" if limit is None else f"limit {limit}" + (" a month" if reset == "monthly" else "")
        line(f"  feature           {name} ({shown})")
    for plan in summary.plans:
        version = plan.versions[-1]
        priced = "; ".join(f"{product_id} {_price_text(price)}" for product_id, price in version.prices.items())
        line(f"  plan              {plan.code}  {version.name}: {version.fee} {version.currency} a month; {priced}")
    for account in summary.terms:
        if account.subscriptions:
            held = ", then ".join(f"{item.plan_code} from {item.starts_at:%Y-%m-%d}" for item in account.subscriptions)
            line(f"  subscription      {account.name}: {held}")
        for negotiated in account.negotiated:
            line(
                f"  negotiated price  {account.name}: {negotiated.product_id} {_price_text(negotiated.price)} "
                f"from {negotiated.effective_from:%Y-%m-%d}"
            )
    added = f"{summary.new_events} added now" if summary.new_events else "all there already"
    line(
        f"  usage             {summary.events} events from {summary.first_event:%Y-%m-%d} "
        f"to {summary.last_event:%Y-%m-%d} ({added})"
    )
    if summary.invoices:
        states = {status: sum(i.status == status for i in summary.invoices) for status in ("open", "paid", "void")}
        months = _months_text(sorted({invoice.month for invoice in summary.invoices}))
        done = f"billed {_months_text(summary.billed_now)} now" if summary.billed_now else "nothing billed now"
        line(
            f"  invoices          {len(summary.invoices)} for {months} ({states['open']} open, "
            f"{states['paid']} paid, {states['void']} void); {summary.payments} payments; {done}"
        )


def _price_text(price: PriceModel) -> str:
    """``at 0.05 a unit``, ``graduated in 3 tiers``, ``volume in 3 tiers``, ``5 per package of 1000``."""
    if isinstance(price, PerUnitPrice):
        return f"at {price.unit_price} a unit"
    if isinstance(price, GraduatedPrice | VolumePrice):
        return f"{price.model} in {len(price.tiers)} tiers"
    return f"{price.package_price} per package of {price.package_size}"


def _months_text(months: list[str]) -> str:
    """``2026-10``, ``2026-10 and 2026-11``, ``2026-08 to 2026-11`` (consecutive), else a list."""
    if len(months) <= 2:
        return " and ".join(months)
    consecutive = all(next_month(a) == b for a, b in itertools.pairwise(months))
    return f"{months[0]} to {months[-1]}" if consecutive else ", ".join(months[:-1]) + f" and {months[-1]}"


def _usage_months(summary: UsageSummary | None) -> tuple[str, str]:
    now = datetime.now(UTC)
    if summary is None:
        return f"{now:%Y-%m}", f"{now:%Y-%m}"
    return f"{summary.first_event:%Y-%m}", f"{summary.last_event:%Y-%m}"
