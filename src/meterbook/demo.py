"""``meterbook demo``: a believable organization to try every call against, and a guide to calling it.

Running it again reuses the demo organization and mints fresh keys (keys are shown only once).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Console
from sqlalchemy import Connection

from meterbook.accounts import service as accounts
from meterbook.accounts.models import Account
from meterbook.accounts.schemas import (
    AccountCreate,
    Branding,
    Commitment,
    KeyCreate,
    OrganizationCreate,
    ProjectCreate,
)

__all__ = ["DemoData", "print_guide", "seed"]

DEMO_ORGANIZATION = "Acme Cloud (meterbook demo)"


@dataclass
class DemoData:
    organization_id: uuid.UUID
    organization_key: str
    account_key: str
    read_only_key: str
    accounts: list[Account] = field(default_factory=list)
    reused: bool = False


def _demo_accounts(parent_of_sub: uuid.UUID | None = None) -> list[AccountCreate]:
    if parent_of_sub is not None:
        return [
            AccountCreate(
                name="Globex Europe",
                parent_account_id=parent_of_sub,
                currency="EUR",
                email="billing-eu@globex.example",
            )
        ]
    return [
        AccountCreate(
            name="Globex Corporation",
            email="billing@globex.example",
            commitment=Commitment(monthly_cost=Decimal("1500"), renewal_date=datetime(2027, 1, 1, tzinfo=UTC)),
            contract_started_at=datetime(2026, 1, 1, tzinfo=UTC),
            stripe_customer_id="cus_DemoGlobex01",
        ),
        AccountCreate(name="Initech", email="ap@initech.example", currency="EUR", net_terms_days=45),
        AccountCreate(
            name="Umbrella Labs",
            email="finance@umbrella.example",
            credit_min=-500,
            branding=Branding(suppress_from_reports=True),
        ),
    ]


def seed(conn: Connection) -> DemoData:
    existing = accounts.organization_named(conn, DEMO_ORGANIZATION)
    if existing is None:
        platform = accounts.create_platform_key(conn, "demo platform key")
        organization, org_created = accounts.create_organization(
            conn, accounts.authenticate(conn, platform.token), OrganizationCreate(name=DEMO_ORGANIZATION)
        )
        org_key = org_created.token
        org = accounts.authenticate(conn, org_key)
        top = [accounts.create_account(conn, org, data) for data in _demo_accounts()]
        for data in _demo_accounts(top[0].id):
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
        globex = accounts.list_accounts(conn, org)[0]
        account_key = accounts.create_key(conn, org, KeyCreate(account_id=globex.id, name="demo account key")).token
        organization_id, reused = existing.id, True
    read_only = accounts.create_key(
        conn,
        org,
        KeyCreate(name="demo read-only key", scopes=["accounts:read", "billing:read", "usage:read"]),
    ).token
    return DemoData(
        organization_id=organization_id,
        organization_key=org_key,
        account_key=account_key,
        read_only_key=read_only,
        accounts=accounts.list_accounts(conn, org),
        reused=reused,
    )


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
    console.print("\n[bold]Keys[/bold] (shown only now; meterbook stores only their hashes):")
    line(f"  organization key  {demo.organization_key}")
    line(f"  account key       {demo.account_key}  ({first.name})")
    line(f"  read-only key     {demo.read_only_key}")
    console.print("\n[bold]Base URL[/bold]", soft_wrap=True)
    line(f"  {base_url}    (API reference: {base_url}/docs)")
    console.print("\n[bold]Try[/bold] (paste into another terminal while the server runs):")
    examples = [
        f"export MB={base_url} KEY={demo.organization_key}",
        f'curl -s $MB/v1/accounts/{first.id} -H "Authorization: Bearer $KEY"',
        'curl -s $MB/v1/accounts -H "Authorization: Bearer $KEY"',
        f'curl -s $MB/v1/accounts/current -H "Authorization: Bearer {demo.account_key}"',
        'curl -s -X POST $MB/v1/accounts -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" '
        '-d \'{"name": "Hooli", "currency": "USD"}\'',
        f'curl -s -X PATCH $MB/v1/accounts/{first.id} -H "Authorization: Bearer $KEY" '
        '-H "Content-Type: application/merge-patch+json" -d \'{"branding": {"suppress_from_reports": true}}\'',
        'curl -s $MB/v1/projects -H "Authorization: Bearer $KEY"',
    ]
    for example in examples:
        line(f"  {example}")
    line()
