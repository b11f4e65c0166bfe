"""A big, consistent history in a database, fast: the starting point of the read and ingestion benchmarks.

    .venv/bin/python bench/seed.py --database-url sqlite:////tmp/history.db            # 10,000,000 events
    .venv/bin/python bench/seed.py --database-url postgresql+psycopg://user@host/empty --events 1000000

:func:`seed_history` migrates the database it is given (a no-op when it is at head) and writes one new
organization into it:

- through the services, as any client would: the organization and its key, ``accounts`` accounts (every
  third with a monthly commitment, every hundredth a subaccount of the one before) each with its own
  account key, ``products`` products with prices (every tenth changes price in the middle of a month, so
  that some invoice lines are rated at two prices), and a few features;
- in bulk: ``events`` metered usage events spread evenly over accounts x products x months (the
  ``months`` UTC months that ended last, the last one being the month before the current one), and the
  monthly aggregates that exactly match them. Each event row is what ``usage.service.ingest`` would have
  stored for it: its fingerprint is ``usage.service.event_fingerprint`` of the event as sent, its rating
  (aggregate id, unit price) comes from ``aggregates.service.rate``, its values are converted by the
  columns' own types, and the aggregates go through ``aggregates.repository.add_increments``, the
  ingestion's own upsert. Only the per-row transport differs: one ``executemany`` per chunk on SQLite,
  ``COPY`` on PostgreSQL, a few transactions in all;
- through the services again: the billing run of every month (``invoicing.service.run_billing``, dated
  two hours after the month ended), then payments (whole, partial or none, by account) and a few voids.

So ``meterbook verify`` finds no difference, and sending any seeded event again through ``POST /v1/events``
is answered as a duplicate. On PostgreSQL the tables are vacuumed and analyzed at the end, as autovacuum
would do after such a load.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent
# After the installed package and PYTHONPATH: a baseline's source given in PYTHONPATH is the one used.
if str(REPO / "src") not in sys.path:
    sys.path.append(str(REPO / "src"))

from sqlalchemy import Connection, func, insert, select, text  # noqa: E402

from meterbook.accounts import service as accounts_service  # noqa: E402
from meterbook.accounts.schemas import AccountCreate, Commitment, OrganizationCreate  # noqa: E402
from meterbook.aggregates import repository as aggregates_repository  # noqa: E402
from meterbook.aggregates import service as aggregates  # noqa: E402
from meterbook.aggregates.models import AggregateKey  # noqa: E402
from meterbook.catalog import service as catalog  # noqa: E402
from meterbook.catalog.models import USAGE_TYPES, Product  # noqa: E402
from meterbook.catalog.schemas import ProductPut  # noqa: E402
from meterbook.db import Database  # noqa: E402
from meterbook.db.migrate import migrate  # noqa: E402
from meterbook.db.tables import usage_events  # noqa: E402
from meterbook.features import service as features  # noqa: E402
from meterbook.features.schemas import FeaturePut  # noqa: E402
from meterbook.invoicing import service as invoicing  # noqa: E402
from meterbook.invoicing.models import Invoice  # noqa: E402
from meterbook.kit.time import month_start, next_month, utcnow  # noqa: E402
from meterbook.payments.schemas import PaymentIn  # noqa: E402
from meterbook.usage.schemas import EventIn  # noqa: E402
from meterbook.usage.service import event_fingerprint  # noqa: E402

__all__ = ["SeededHistory", "ended_months", "seed_history"]

#: Products of these usage types carry a direction (calls and messages go in or out); the others none.
DIRECTIONAL = frozenset({"CALL", "MESSAGE"})
#: Events per bulk statement, and roughly per transaction.
CHUNK = 20_000
TRANSACTION_EVENTS = 500_000
#: The columns an event row has today: a new column must be seeded as ingest fills it, so it stops the seed.
EVENT_COLUMNS = [
    *("organization_id", "id", "account_id", "kind", "product_id", "feature", "quantity", "occurred_at"),
    *("received_at", "direction", "resolution", "user_id", "source", "description", "metadata", "fingerprint"),
    *("aggregate_id", "unit_price"),
]
#: Metered quantities cycle through these (0.1 to 60.0 in tenths): exact decimals, as clients send them.
QUANTITIES = [Decimal(n) / 10 for n in range(1, 601)]


@dataclass
class SeededHistory:
    """What was seeded: ids as text, keys in plain text (shown nowhere else)."""

    database_url: str
    organization_id: str
    #: A key of the organization with every scope.
    organization_key: str
    account_ids: list[str]
    #: One account key (every scope) per account, in the order of ``account_ids``.
    account_keys: list[str]
    product_ids: list[str]
    #: The billed months, oldest first; the last is the month before the current one.
    months: list[str]
    events: int
    aggregates: int
    invoices: int
    payments: int
    voids: int
    seconds: float


def ended_months(count: int, now: datetime | None = None) -> list[str]:
    """The ``count`` UTC months that ended last, oldest first."""
    now = now or utcnow()
    last = now.year * 12 + now.month - 2
    return [f"{index // 12:04d}-{index % 12 + 1:02d}" for index in range(last - count + 1, last + 1)]


class _Sent:
    """An event as a client sent it, with exactly the attributes ``event_fingerprint`` reads.

    Building a validated ``EventIn`` costs more than everything else per event; a sample of the events
    is checked against real ``EventIn`` objects (:func:`_check_event`), so the two cannot drift.
    """

    __slots__ = (
        "account_id",
        "description",
        "direction",
        "feature",
        "id",
        "metadata",
        "occurred_at",
        "product_id",
        "quantity",
        "resolution",
        "source",
        "type",
        "user_id",
    )

    def __init__(
        self,
        event_id: str,
        account_id: str,
        product_id: str,
        quantity: Decimal,
        occurred_at: datetime,
        direction: str | None,
    ) -> None:
        self.id = event_id
        self.account_id = account_id
        self.type = "metered"
        self.product_id = product_id
        self.feature = None
        self.quantity = quantity
        self.occurred_at = occurred_at
        self.direction = direction
        self.resolution = None
        self.user_id = None
        self.source = None
        self.description = None
        self.metadata = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "type": "metered",
            "product_id": self.product_id,
            "quantity": str(self.quantity),
            "occurred_at": self.occurred_at.isoformat(),
            **({"direction": self.direction} if self.direction is not None else {}),
        }


def _fingerprint(sent: _Sent) -> str:
    return event_fingerprint(cast(EventIn, sent))


def _check_event(writer: _EventWriter, sent: _Sent) -> None:
    """The shortcuts taken for every event give what the real thing gives, on a sample of them."""
    validated = EventIn.model_validate(sent.as_json())
    if event_fingerprint(validated) != _fingerprint(sent):
        raise RuntimeError(f"the seed's fingerprint of {sent.id} is not ingest's: update bench/seed.py")
    if writer.time_value(sent.occurred_at) != writer.convert("occurred_at", validated.occurred_at):
        raise RuntimeError(f"the seed's occurred_at of {sent.id} is not stored as the column stores it")


class _Progress:
    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.started, self.shown = enabled, total, time.perf_counter(), 0

    def say(self, message: str) -> None:
        if self.enabled:
            print(f"seed  {time.perf_counter() - self.started:7.1f} s  {message}", flush=True)

    def events(self, done: int) -> None:
        if self.enabled and (done - self.shown >= 1_000_000 or done == self.total):
            self.shown = done
            elapsed = time.perf_counter() - self.started
            self.say(f"events {done:>12,} / {self.total:,} ({done / max(elapsed, 1e-9):,.0f}/s overall)")


class _EventWriter:
    """Event rows converted by the columns' own types, written in chunks: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, conn: Connection, organization_id: uuid.UUID, received_at: datetime) -> None:
        names = [column.name for column in usage_events.columns]
        if names != EVENT_COLUMNS:
            raise RuntimeError(f"usage_events has columns {names}; bench/seed.py writes {EVENT_COLUMNS}")
        self.dialect = conn.dialect
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for column in usage_events.columns:
            processor = column.type.dialect_impl(self.dialect).bind_processor(self.dialect)
            self.processors[column.name] = processor if processor is not None else (lambda value: value)
        self.insert_sql = str(insert(usage_events).compile(dialect=self.dialect))
        self.copy_sql = f"COPY usage_events ({', '.join(names)}) FROM STDIN"
        self.organization_value = self.convert("organization_id", organization_id)
        self.received_value = self.convert("received_at", received_at)

    def convert(self, name: str, value: Any) -> Any:
        return self.processors[name](value)

    def time_value(self, moment: datetime) -> Any:
        """``convert("occurred_at", moment)`` for an aware UTC instant with a non-zero microsecond, faster.

        SQLite keeps the naive UTC text with six decimals, which ``str`` writes when the microsecond is
        not zero; PostgreSQL takes the instant itself. :func:`_check_event` compares it with the column's
        conversion on a sample.
        """
        return str(moment.replace(tzinfo=None)) if self.dialect.name == "sqlite" else moment

    def write(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.dialect.name == "postgresql":
            driver = conn.connection.driver_connection
            assert driver is not None
            with driver.cursor().copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            conn.exec_driver_sql(self.insert_sql, rows)


def _products(count: int, months: list[str]) -> list[tuple[str, ProductPut, ProductPut | None]]:
    """Each product's first price (from 2000), and for every tenth a second one from the middle of a month."""
    middle = month_start(months[len(months) // 2]) + timedelta(days=14, hours=12)
    made = []
    for number in range(count):
        kind = USAGE_TYPES[number % len(USAGE_TYPES)]
        product_id = f"HIST-{kind.replace('_', '')[:4]}-{number:03d}"
        price = Decimal("0.0007") * (number % 37 + 1)
        common = {
            "description": f"History product {number} ({kind.lower().replace('_', ' ')})",
            "type": kind,
            "unit": "minute" if kind in DIRECTIONAL else "unit",
            "aggr_product_id": f"AGGR-{number % 7}",
        }
        first = ProductPut.model_validate(
            {**common, "unit_price": price, "price_effective_from": "2000-01-01T00:00:00Z"}
        )
        change = None
        if number % 10 == 3:
            change = ProductPut.model_validate({**common, "unit_price": price * 2, "price_effective_from": middle})
        made.append((product_id, first, change))
    return made


def seed_history(
    database_url: str,
    *,
    accounts: int = 1000,
    products: int = 50,
    months: int = 12,
    events: int = 10_000_000,
    progress: bool = True,
) -> SeededHistory:
    """Seed one organization with a consistent history (see the module's docstring); returns its ids and keys."""
    if accounts < 1 or products < 1 or months < 1 or events < 0:
        raise ValueError("accounts, products and months must be at least 1, events at least 0")
    started = time.perf_counter()
    report = _Progress(progress, events)
    database = Database(database_url, pool_size=2)
    try:
        migrate(database)
        seeded = _seed(database, accounts, products, ended_months(months), events, report)
        if not database.is_sqlite:
            report.say("VACUUM ANALYZE (as autovacuum would after such a load)")
            with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
    finally:
        database.dispose()
    seeded.seconds = time.perf_counter() - started
    report.say(
        f"done: {seeded.events:,} events, {seeded.aggregates:,} aggregates, {seeded.invoices:,} invoices, "
        f"{seeded.payments:,} payments, {seeded.voids} voids in {seeded.seconds:.1f} s"
    )
    return seeded


def _seed(
    database: Database, account_count: int, product_count: int, months: list[str], events: int, report: _Progress
) -> SeededHistory:
    # --- the organization, its catalog, features and accounts, through the services --------------------
    with database.write() as conn:
        platform_key = accounts_service.create_platform_key(conn, "history seed")
        _, created = accounts_service.create_organization(
            conn,
            accounts_service.authenticate(conn, platform_key.token),
            OrganizationCreate(name=f"history {datetime.now(UTC):%Y-%m-%d %H:%M:%S.%f}"),
        )
        org = accounts_service.authenticate(conn, created.token)
        organization_id = org.organization_id
        assert organization_id is not None
        for product_id, first_price, change in _products(product_count, months):
            catalog.put_product(conn, org, product_id, first_price)
            if change is not None:
                catalog.put_product(conn, org, product_id, change)
        for name, limit, reset in (
            ("seats.active", 25, "monthly"),
            ("cohort.max_count", 10, "never"),
            ("exports", None, "never"),
        ):
            features.put_feature(
                conn, org, name, FeaturePut(description=f"Seeded {name}", default_limit=limit, reset=reset)
            )
        catalog_products = catalog.products_by_id(
            conn, organization_id, [p[0] for p in _products(product_count, months)]
        )
    account_ids: list[uuid.UUID] = []
    account_keys: list[str] = []
    for first in range(0, account_count, 500):
        with database.write() as conn:
            for number in range(first, min(first + 500, account_count)):
                account = accounts_service.create_account(
                    conn,
                    org,
                    AccountCreate(
                        name=f"Customer {number:05d}",
                        email=f"billing+{number}@customer.example",
                        # Every hundredth account is a subaccount of the one before (account keys reach both).
                        parent_account_id=account_ids[number - 1] if number % 100 == 99 else None,
                        commitment=Commitment(monthly_cost=Decimal("49.99") + 100 * (number % 5))
                        if number % 3 == 0
                        else Commitment(),
                        contract_started_at=datetime(2020, 1, 1, tzinfo=UTC),
                        net_terms_days=15 + 15 * (number % 3),
                    ),
                )
                account_ids.append(account.id)
                assert account.api_key is not None
                account_keys.append(account.api_key)
    report.say(f"{account_count:,} accounts, {product_count} products, months {months[0]} to {months[-1]}")

    # --- events and aggregates, in bulk ---------------------------------------------------------------
    products = [catalog_products[product_id] for product_id in sorted(catalog_products)]
    aggregate_count = _seed_usage(database, organization_id, account_ids, products, months, events, report)

    # --- billing runs, payments and voids, through the services --------------------------------------
    invoices = payments = voids = 0
    now = utcnow()
    index_of = {account_id: number for number, account_id in enumerate(account_ids)}
    for month_number, month in enumerate(months):
        issued_at = min(month_start(next_month(month)) + timedelta(hours=2), now)
        with database.write() as conn:
            run = invoicing.run_billing(conn, organization_id, month, now=issued_at)
            invoices += run.invoice_count
            made = invoicing.list_invoices(conn, org, month=month)
            voided, paid = _settle_month(conn, org, made, index_of, month_number, now)
            voids += voided
            payments += paid
        report.say(f"billed {month}: {run.invoice_count:,} invoices, {paid:,} payments, {voided} voids")
    return SeededHistory(
        database_url=database.url,
        organization_id=str(organization_id),
        organization_key=created.token,
        account_ids=[str(account_id) for account_id in account_ids],
        account_keys=account_keys,
        product_ids=[product.product_id for product in products],
        months=months,
        events=events,
        aggregates=aggregate_count,
        invoices=invoices,
        payments=payments,
        voids=voids,
        seconds=0.0,
    )


def _settle_month(
    conn: Connection,
    org: Any,
    made: Sequence[Invoice],
    index_of: dict[uuid.UUID, int],
    month_number: int,
    now: datetime,
) -> tuple[int, int]:
    """Pay the month's invoices as customers do: most in full, some in part, some not yet; void a few first."""
    voided = paid = 0
    for invoice in made:
        number = index_of[invoice.account_id]
        if invoice.status != "open":
            continue
        if number % 97 == 5 and month_number % 2 == 0:
            invoicing.void(conn, org, invoice.id)
            voided += 1
            continue
        share = number % 4
        if share == 3:
            continue  # not paid (yet): it stays open
        amount = invoice.amount if share < 2 else (invoice.amount / 2).quantize(Decimal("0.01"))
        if amount <= 0:
            continue
        date = min(invoice.issued_at + timedelta(days=number % 25, hours=number % 24, minutes=number % 60), now)
        invoicing.pay(
            conn,
            org,
            PaymentIn(
                id=f"pay-{invoice.month}-{number:05d}",
                account_id=invoice.account_id,
                amount=amount,
                date=date,
                invoice_id=invoice.id,
                reference=f"wire {invoice.month} {number}",
            ),
        )
        paid += 1
    return voided, paid


def _seed_usage(
    database: Database,
    organization_id: uuid.UUID,
    account_ids: list[uuid.UUID],
    products: list[Product],
    months: list[str],
    events: int,
    report: _Progress,
) -> int:
    """Write ``events`` metered events and their aggregates; returns how many aggregates were written.

    Month by month, as a live system fills its tables (its indexes then grow the way they would), each
    month account by account. A thread builds the rows while this one writes them: the database's own
    work (SQLite's B-tree inserts, PostgreSQL's COPY) runs without Python's lock, so the two overlap.
    """
    with database.read() as conn:
        writer = _EventWriter(conn, organization_id, utcnow())
    plan = _UsagePlan(organization_id, products, months, len(account_ids), events)
    Item = tuple[list[tuple[Any, ...]], dict[AggregateKey, list[Any]] | None] | BaseException | None
    feed: queue.Queue[Item] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def put(item: Item) -> None:
        while not stop.is_set():
            try:
                feed.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for month_number in range(len(months)):
                for number, account_id in enumerate(account_ids):
                    totals: dict[AggregateKey, list[Any]] = {}
                    rows: list[tuple[Any, ...]] = []
                    for cell_rows in plan.cell_events(writer, month_number, number, account_id, totals):
                        rows.extend(cell_rows)
                        if len(rows) >= CHUNK:
                            put((rows, None))
                            rows = []
                    # The account's aggregates of the month, complete: written after its events.
                    put((rows, totals))
            put(None)
        except BaseException as error:  # handed to the writing thread, which raises it
            put(error)

    producer = threading.Thread(target=produce, name="seed-rows", daemon=True)
    producer.start()
    written = aggregate_count = 0
    finished = False
    try:
        while not finished:
            # A few transactions in all: one per TRANSACTION_EVENTS events or so, ended after an aggregate write.
            with database.write() as conn:
                if database.is_sqlite:
                    # A bigger page cache for this connection only: the event indexes stay in memory while loading.
                    conn.exec_driver_sql("PRAGMA cache_size=-262144")
                in_transaction = 0
                while True:
                    item = feed.get()
                    if item is None:
                        finished = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    rows, totals = item
                    writer.write(conn, rows)
                    written += len(rows)
                    in_transaction += len(rows)
                    report.events(written)
                    if totals is not None:
                        aggregate_count += _write_aggregates(conn, totals)
                        if in_transaction >= TRANSACTION_EVENTS:
                            break
    finally:
        stop.set()
        producer.join(timeout=10)
    if written != events:
        raise AssertionError(f"wrote {written} events, meant {events}")
    with database.read() as conn:
        stored = conn.execute(
            select(func.count()).select_from(usage_events).where(usage_events.c.organization_id == organization_id)
        ).scalar_one()
    if stored != events:
        raise AssertionError(f"the database holds {stored} events of the organization, {events} were written")
    report.say(f"{events:,} events and {aggregate_count:,} aggregates stored")
    return aggregate_count


class _UsagePlan:
    """Which events each cell (account, product, month) gets: ``events`` spread over them as evenly as can be."""

    def __init__(
        self, organization_id: uuid.UUID, products: list[Product], months: list[str], accounts: int, events: int
    ) -> None:
        self.organization_id = organization_id
        self.products = products
        self.accounts = accounts
        self.bounds = [(month_start(month), month_start(next_month(month))) for month in months]
        self.cells = accounts * len(products) * len(months)
        self.events = events
        self.quantity_texts = [format(quantity.normalize(), "f") for quantity in QUANTITIES]

    def size(self, cell: int) -> int:
        return (cell + 1) * self.events // self.cells - cell * self.events // self.cells

    def cell_events(
        self,
        writer: _EventWriter,
        month_number: int,
        number: int,
        account_id: uuid.UUID,
        totals: dict[AggregateKey, list[Any]],
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of each cell of one account in one month, adding each event to its aggregate's total."""
        convert, time_value = writer.convert, writer.time_value
        account_value = convert("account_id", account_id)
        account_text = str(account_id)
        organization_value, received_value = writer.organization_value, writer.received_value
        start, end = self.bounds[month_number]
        span = int((end - start).total_seconds())
        for product_number, product in enumerate(self.products):
            directional = product.type in DIRECTIONAL
            size = self.size((month_number * self.accounts + number) * len(self.products) + product_number)
            # The cell's aggregates, one per (direction, price), each rated once by the service's own rule.
            rated_by: dict[tuple[str | None, Decimal], tuple[str, Any, list[Any]]] = {}
            rows: list[tuple[Any, ...]] = []
            for n in range(size):
                # In the order they are written, so that the primary key grows at its end.
                event_id = f"h-{month_number:03d}-{number:05d}-{product_number:03d}-{n:06d}"
                occurred_at = start + timedelta(
                    seconds=(n * 2_654_435_761 + number * 7_919 + product_number * 104_729) % span,
                    microseconds=1 + (n * 7_919 + number) % 999_999,
                )
                quantity_index = (n * 37 + number * 11 + product_number) % len(QUANTITIES)
                quantity = QUANTITIES[quantity_index]
                direction = ("INBOUND" if n % 3 else "OUTBOUND") if directional else None
                price = product.price_at(occurred_at)
                assert price is not None, "every seeded product has a price from 2000 on"
                rated = rated_by.get((direction, price))
                if rated is None:
                    rating = aggregates.rate(
                        self.organization_id, account_id, product, occurred_at, quantity, direction, None
                    )
                    assert rating is not None
                    total = totals.setdefault(rating.key, [Decimal(0), 0])
                    rated = (rating.key.id, convert("unit_price", rating.key.price), total)
                    rated_by[(direction, price)] = rated
                aggregate_id, price_value, total = rated
                total[0] += quantity
                total[1] += 1
                sent = _Sent(event_id, account_text, product.product_id, quantity, occurred_at, direction)
                if n < 2 and (number == 0 or number % 97 == 1):
                    _check_event(writer, sent)
                rows.append(
                    (
                        organization_value,
                        event_id,
                        account_value,
                        "metered",
                        product.product_id,
                        None,
                        self.quantity_texts[quantity_index],
                        time_value(occurred_at),
                        received_value,
                        direction,
                        None,
                        None,
                        None,
                        None,
                        None,
                        _fingerprint(sent),
                        aggregate_id,
                        price_value,
                    )
                )
            yield rows


def _write_aggregates(conn: Connection, totals: dict[AggregateKey, list[Any]]) -> int:
    """One account's aggregates, stored as ``aggregates.service.add`` stores them."""
    rows = [
        aggregates_repository.increment(key, units, count)
        for key, (units, count) in sorted(totals.items(), key=lambda item: item[0].id)
    ]
    aggregates_repository.add_increments(conn, rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="sqlite:///path.db, or an EMPTY PostgreSQL database")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--json", action="store_true", help="print what was seeded (with its keys) as JSON")
    args = parser.parse_args(argv)
    seeded = seed_history(
        args.database_url, accounts=args.accounts, products=args.products, months=args.months, events=args.events
    )
    if args.json:
        print(json.dumps(asdict(seeded)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
