"""How long a billing run takes, and how fast the billing views read, on a database of a given size.

    .venv/bin/python bench/billing.py                    # 10,000 accounts x 5 products, SQLite file
    .venv/bin/python bench/billing.py --accounts 1000    # smaller
    .venv/bin/python bench/billing.py --database-url postgresql+psycopg://user@host/empty_db
    .venv/bin/python bench/billing.py --tiered           # every account on a plan with tiered prices (issue 18)

What it does: creates a database (a fresh SQLite file in a temporary directory, or the *empty* PostgreSQL
database it is given, migrated); seeds through the services one organization, ``--accounts`` accounts
(each with a monthly commitment and a payment made ahead), ``--products`` products and one metered event
per account and product in the month before last; then times, at service level (no HTTP: the run is one
transaction, as ``POST /v1/billing_runs`` and ``meterbook bill`` make it):

1. the billing run of that month (invoices, lines, history items, and settling the payments made ahead);
2. ``--reads`` reads of the Cloudflare billing history (a page of 20, newest first, organization key),
   and of the Faraday billing statement of one account, as p50/p99 in milliseconds.

With ``--tiered`` (issue 18: a billing run for 10,000 accounts on tiered plans within 15 s) it also creates, through
the plans service, six plans from that month on, each pricing every product, the price models rotating over products
and plans (graduated, volume and package: each account uses all three), three of them with a monthly fee; and it
puts every account on one of them (account ``n`` on plan ``n % 6``) from the month's first instant before any event
is ingested: the first account of each plan through the same service, the others, for speed, with the same row
through the plans repository; a sample is then checked with ``plans.service.price_at``. The quantities (17.25 to
316.25 units per account and product) cross every tier and several packages. Everything else (commitments, payments
made ahead, events, reads) is as without it.

It prints each figure with the machine (cores, CPU model), the database and the meterbook commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.ingest import cpu_model, git_commit, percentile  # noqa: E402
from meterbook.accounts import service as accounts  # noqa: E402
from meterbook.accounts.models import Principal  # noqa: E402
from meterbook.accounts.schemas import AccountCreate, Commitment, OrganizationCreate  # noqa: E402
from meterbook.catalog import service as catalog  # noqa: E402
from meterbook.catalog.schemas import ProductPut  # noqa: E402
from meterbook.db import Database  # noqa: E402
from meterbook.db.migrate import migrate  # noqa: E402
from meterbook.invoicing import service as invoicing  # noqa: E402
from meterbook.kit.time import month_start, utcnow  # noqa: E402
from meterbook.payments.schemas import PaymentIn  # noqa: E402
from meterbook.plans import repository as plans_repository  # noqa: E402
from meterbook.plans import service as plans  # noqa: E402
from meterbook.plans.schemas import PlanPut, SubscriptionPut  # noqa: E402
from meterbook.usage import service as usage  # noqa: E402
from meterbook.usage.schemas import EventIn  # noqa: E402

#: ``--tiered``: how many plans the accounts are spread over, and the price models each rotates over its products.
TIERED_PLANS = 6
TIERED_MODELS = ("graduated", "volume", "package")


def unit_price(product: int) -> Decimal:
    """The catalog's price of product number ``product``; the tiered prices are built around it."""
    return Decimal("0.0067") * (product + 1)


def tiered_price(model: str, price: Decimal) -> dict[str, Any]:
    """A price of ``model`` around a catalog price: three tiers (at 50 and 200 units, with flat fees), or packages
    of 25; an account's 17.25 to 316.25 units of a product in the month reach any of the tiers."""
    if model == "package":
        return {"model": "package", "package_size": 25, "package_price": str(price * 20)}
    return {
        "model": model,
        "tiers": [
            {"up_to": 50, "unit_price": str(price), "flat_fee": "2" if model == "graduated" else "0"},
            {"up_to": 200, "unit_price": str(price * Decimal("0.8")), "flat_fee": "1"},
            {"up_to": None, "unit_price": str(price / 2)},
        ],
    }


def tiered_plan(number: int, products: int, since: datetime) -> PlanPut:
    """Plan ``number``: every product priced, the model rotating over products and plans; odd plans have a fee."""
    return PlanPut.model_validate(
        {
            "name": f"Tiered {number}",
            "currency": "USD",
            "fee": "0" if number % 2 == 0 else str(Decimal(20 * number) - Decimal("0.01")),
            "prices": {
                f"BENCH-{product}": tiered_price(
                    TIERED_MODELS[(number + product) % len(TIERED_MODELS)], unit_price(product)
                )
                for product in range(products)
            },
            "effective_from": since,
        }
    )


def subscribe(
    conn: Connection, org: Principal, account_id: uuid.UUID, code: str, since: datetime, plan_ids: dict[str, uuid.UUID]
) -> None:
    """Put a new account on plan ``code`` from ``since``: the first of each plan through ``plans.service`` (which
    checks the plan, its currency and version, and that no month is invoiced), the others through the plans
    repository with the very row the service writes for an account with no plan yet (about 10 ms against 1 ms)."""
    plan_id = plan_ids.get(code)
    if plan_id is None:
        found = plans.put_subscription(conn, org, account_id, SubscriptionPut(plan=code, starts_at=since))
        assert found.current is not None, f"the service did not put the account on {code} from {since}"
        plan_ids[code] = found.current.plan_id
        return
    plans_repository.insert_subscription(
        conn,
        {
            "id": uuid.uuid4(),
            "organization_id": org.organization_id,
            "account_id": account_id,
            "plan_id": plan_id,
            "starts_at": since,
            "ends_at": None,
            "created_at": utcnow(),
        },
    )


def check_plan_prices(
    conn: Connection, org: Principal, account_ids: list[uuid.UUID], products: int, moment: datetime
) -> None:
    """The rule of which price applies (``plans.service.price_at``) finds each sampled account's plan price."""
    organization_id = org.organization_id
    assert organization_id is not None
    catalog_products = catalog.products_by_id(conn, organization_id, [f"BENCH-{n}" for n in range(products)])
    for number in sorted({*range(min(TIERED_PLANS * 2, len(account_ids))), len(account_ids) - 1}):
        for product in catalog_products.values():
            applied = plans.price_at(conn, organization_id, account_ids[number], product, moment)
            if applied is None or applied.source != "plan" or applied.plan_code != f"tiered-{number % TIERED_PLANS}":
                raise RuntimeError(f"account {number} is not priced by its plan for {product.product_id}: {applied}")


def month_before_last() -> tuple[str, datetime]:
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 - 2
    year, month = divmod(index, 12)
    return f"{year:04d}-{month + 1:02d}", datetime(year, month + 1, 10, 12, tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=5)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="an EMPTY PostgreSQL database (default: SQLite file)")
    parser.add_argument(
        "--tiered",
        action="store_true",
        help=f"put every account on one of {TIERED_PLANS} plans with graduated, volume and package prices "
        "(some with a monthly fee) before its usage is ingested",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON document, last")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="meterbook-bench-") as directory:
        url = args.database_url or f"sqlite:///{directory}/bench.db"
        database = Database(url, pool_size=2)
        migrate(database)
        month, when = month_before_last()
        since = month_start(month)
        on_plans = f", each on one of {TIERED_PLANS} tiered plans" if args.tiered else ""
        print(
            f"seeding {args.accounts:,} accounts x {args.products} products{on_plans}, usage in {month} ...",
            flush=True,
        )
        started = time.perf_counter()
        with database.write() as conn:
            platform_key = accounts.create_platform_key(conn, "bench")
            _, org_key = accounts.create_organization(
                conn, accounts.authenticate(conn, platform_key.token), OrganizationCreate(name="Billing bench")
            )
            org = accounts.authenticate(conn, org_key.token)
            for number in range(args.products):
                catalog.put_product(
                    conn,
                    org,
                    f"BENCH-{number}",
                    ProductPut.model_validate(
                        {
                            "description": f"Bench product {number}",
                            "unit_price": unit_price(number),
                            "price_effective_from": "2000-01-01T00:00:00Z",
                        }
                    ),
                )
            if args.tiered:
                for number in range(TIERED_PLANS):
                    plans.put_plan(conn, org, f"tiered-{number}", tiered_plan(number, args.products, since))
        account_ids = []
        plan_ids: dict[str, uuid.UUID] = {}
        for first in range(0, args.accounts, 1000):
            with database.write() as conn:
                for number in range(first, min(first + 1000, args.accounts)):
                    created = accounts.create_account(
                        conn,
                        org,
                        AccountCreate(
                            name=f"Customer {number}",
                            commitment=Commitment(monthly_cost=Decimal("49.99"), renewal_date=None),
                            contract_started_at=datetime(2020, 1, 1, tzinfo=UTC),
                        ),
                    )
                    account_ids.append(created.id)
                    if args.tiered:
                        subscribe(conn, org, created.id, f"tiered-{number % TIERED_PLANS}", since, plan_ids)
                    if number % 10 == 0:
                        invoicing.pay(
                            conn,
                            org,
                            PaymentIn(id=f"ahead-{number}", account_id=created.id, amount=Decimal("20")),
                        )
        events = [
            EventIn.model_validate(
                {
                    "id": f"ev-{index}-{number}",
                    "account_id": account_id,
                    "type": "metered",
                    "product_id": f"BENCH-{number}",
                    "quantity": Decimal(17 + index % 300) + Decimal("0.25"),
                    "occurred_at": when,
                }
            )
            for index, account_id in enumerate(account_ids)
            for number in range(args.products)
        ]
        for first in range(0, len(events), 10_000):
            with database.write() as conn:
                usage.ingest(conn, org, events[first : first + 10_000])
        if args.tiered:
            with database.read() as conn:
                check_plan_prices(conn, org, account_ids, args.products, when)
        print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)

        organization_id = org.organization_id
        assert organization_id is not None
        started = time.perf_counter()
        with database.write() as conn:
            run = invoicing.run_billing(conn, organization_id, month)
        run_seconds = time.perf_counter() - started

        history_ms: list[float] = []
        statement_ms: list[float] = []
        chooser = random.Random(7)
        for _ in range(args.reads):
            started = time.perf_counter()
            with database.read() as conn:
                page = invoicing.history(conn, org, page=chooser.randint(1, 50), per_page=20)
            history_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            with database.read() as conn:
                invoicing.account_statement(conn, org, chooser.choice(account_ids))
            statement_ms.append((time.perf_counter() - started) * 1000)
        database.dispose()

    print()
    print(f"machine      {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    where = "file in a temporary directory" if args.database_url is None else "given URL"
    print(f"database     {database.dialect} ({where})")
    print(f"commit       {git_commit()}")
    on_plans = f" on {TIERED_PLANS} tiered plans" if args.tiered else ""
    print(
        f"billing run  {run.invoice_count:,} invoices for {args.accounts:,} accounts{on_plans} in {run_seconds:.2f} s"
    )
    print(
        f"history page p50 {statistics.median(history_ms):.1f} ms, p99 {percentile(history_ms, 0.99):.1f} ms "
        f"({page.total:,} items in all)"
    )
    print(f"statement    p50 {statistics.median(statement_ms):.1f} ms, p99 {percentile(statement_ms, 0.99):.1f} ms")
    if args.json:
        print(
            json.dumps(
                {
                    "commit": git_commit(),
                    "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
                    "database": database.dialect,
                    "accounts": args.accounts,
                    "products": args.products,
                    "invoices": run.invoice_count,
                    "tiered": {
                        "plans": TIERED_PLANS,
                        "models": list(TIERED_MODELS),
                        "accounts_with_fee": sum(1 for n in range(args.accounts) if n % TIERED_PLANS % 2 == 1),
                    }
                    if args.tiered
                    else None,
                    "billing_run_seconds": run_seconds,
                    "history_items": page.total,
                    "history_p50_ms": statistics.median(history_ms),
                    "history_p99_ms": percentile(history_ms, 0.99),
                    "statement_p50_ms": statistics.median(statement_ms),
                    "statement_p99_ms": percentile(statement_ms, 0.99),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
