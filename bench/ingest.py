"""Ingestion throughput of ``POST /v1/events``, end to end: a real server, real HTTP, a real database.

    .venv/bin/python bench/ingest.py                 # 200,000 events, batches of 1,000, 2 clients, 3 runs, SQLite
    .venv/bin/python bench/ingest.py --quick         # about 20,000 events, 1 run: a smoke test
    .venv/bin/python bench/ingest.py --batch 1 --events 20000   # single-event requests, 32 connections per client
    .venv/bin/python bench/ingest.py --preload 10000000         # with 10 million events already stored
    .venv/bin/python bench/ingest.py --tiered                   # also accounts on a graduated plan, same run
    .venv/bin/python bench/ingest.py --alerts                   # also accounts with 10 alerts each, same run
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://user@host/empty_db --workers 2

What it does: creates (or, for PostgreSQL, migrates the empty database it is given) a database; with
``--preload N`` fills it with N events of another organization (``bench.seed.seed_history``); seeds an
organization, a few hundred accounts with large credit grants and a small product catalog through the
services; starts ``meterbook serve`` as a subprocess on that database; then, for each run, load-generator
processes (one per client, each driving ``--connections`` keep-alive HTTP/1.1 connections from one asyncio
loop, one request in flight per connection) send batches of metered and credit events with unique ids,
closed loop. The request bytes are built before the clock starts, so building them is not measured; the
generators' own CPU time is measured and reported, so that a saturated generator is not mistaken for a
slow server. The peak resident memory of the server's process tree is sampled from /proc throughout.

With batches of more than one event it also measures the store layer alone, in the same invocation: a
separate process, on a fresh database of the same kind seeded alike, validates the same events to
``EventIn`` objects outside the clock and times ``usage.service.ingest`` per batch, each in its own
``Database.write()`` transaction as the HTTP handler runs it. Its runs alternate with the HTTP runs (the
server idles meanwhile), and the HTTP/store ratio of each pair is reported.

At the end it checks that the database holds exactly the events sent, stops the server (always) and
removes its temporary files. A PostgreSQL database given by URL is left as it is (the store layer's
sibling database ``<name>_store`` is created and dropped).

With ``--tiered`` it seeds a second group of as many accounts, and once the server is up puts a plan whose prices
are graduated tiers (``PUT /v1/plans/{code}``) and subscribes that group to it from the previous month on
(``PUT /v1/accounts/{id}/subscription``), through the public API. Each run then sends the same load twice on the
same server and database, once to the accounts priced by the catalog's per-unit price and once to the accounts on
the plan, the order alternating from run to run so that load drift and the growing database weigh on both alike;
it prints both rates and, per run and as the median, the ratio tiered / per-unit (issue 18: at least 0.9). With
an even ``--repeat`` (its default with ``--tiered``) as many pairs run in each order, so that a steady drift
(the database grows, the neighbours' load changes) raises as many ratios as it lowers.

``--alerts`` pairs runs the same way (issue 19): the second group of accounts has 10 alerts each (usage, spend and
credit balance; some fire early in the first run, the others never fire, so that every batch evaluates them), and
the organization has one webhook endpoint subscribed to every event, served by a receiver in this process that
answers 204 (the server's worker delivers what fires, as in production; ``METERBOOK_WEBHOOK_ALLOW_PRIVATE=true``
lets it reach 127.0.0.1). It prints the ratio alerts / without alerts (target: at least 0.9).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import importlib
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection as Pipe
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
#: The first products keep the names earlier figures were measured with; ``--products`` beyond three adds more.
PRODUCTS = (
    ("BENCH-CALL-IN", "CALL", "minute", Decimal("0.067")),
    ("BENCH-API", "API_REQUEST", "request", Decimal("0.0001")),
    ("BENCH-SMS-OUT", "MESSAGE", "message", Decimal("0.0075")),
)
#: Far more credits than any run can spend, so that credit events are never refused.
GRANT = 10**15
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# --- setup ----------------------------------------------------------------------------------------


@dataclass
class Seeded:
    organization_key: str
    account_ids: list[str]
    product_ids: list[str]
    #: The accounts ``--tiered`` puts on a plan (subscribed through the API once the server is up).
    tiered_account_ids: list[str] = field(default_factory=list)


def catalog_of(products: int) -> list[tuple[str, str, str, Decimal]]:
    rows = list(PRODUCTS[:products])
    for n in range(len(PRODUCTS), products):
        _, kind, unit, price = PRODUCTS[n % len(PRODUCTS)]
        rows.append((f"BENCH-P{n:04d}", kind, unit, price + Decimal(n) / 10_000))
    return rows


def migrate_database(database_url: str, sqlite_synchronous: str) -> None:
    from meterbook.db import Database
    from meterbook.db.migrate import migrate

    database = Database(database_url, sqlite_synchronous=sqlite_synchronous, pool_size=1)
    try:
        migrate(database)
    finally:
        database.dispose()


def seed(database_url: str, accounts: int, products: int, sqlite_synchronous: str, tiered_accounts: int = 0) -> Seeded:
    """Create an organization, its accounts, products and credit grants through the services (migrated already).

    ``tiered_accounts`` more accounts are created alike (grants included) for ``--tiered``: the plan and the
    subscriptions are made later, through the server's API.
    """
    from meterbook.accounts import service as accounts_service
    from meterbook.accounts.schemas import AccountCreate, OrganizationCreate
    from meterbook.catalog import service as catalog
    from meterbook.catalog.schemas import ProductPut
    from meterbook.db import Database
    from meterbook.ledger import service as ledger
    from meterbook.ledger.schemas import CreditGrant

    catalog_rows = catalog_of(products)
    database = Database(database_url, sqlite_synchronous=sqlite_synchronous, pool_size=1)
    try:
        with database.write() as conn:
            platform_key = accounts_service.create_platform_key(conn, "bench platform key")
            _, created = accounts_service.create_organization(
                conn,
                accounts_service.authenticate(conn, platform_key.token),
                OrganizationCreate(name=f"bench {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"),
            )
            org = accounts_service.authenticate(conn, created.token)
            for product_id, kind, unit, price in catalog_rows:
                catalog.put_product(
                    conn,
                    org,
                    product_id,
                    ProductPut(description=f"bench {kind.lower()}", type=kind, unit=unit, unit_price=price),
                )
            account_ids = []
            for n in range(accounts + tiered_accounts):
                account = accounts_service.create_account(conn, org, AccountCreate(name=f"bench customer {n:04d}"))
                ledger.grant(conn, org, account.id, CreditGrant(id=f"bench-grant-{n}", amount=GRANT))
                account_ids.append(str(account.id))
        return Seeded(created.token, account_ids[:accounts], [row[0] for row in catalog_rows], account_ids[accounts:])
    finally:
        database.dispose()


#: The plan ``--tiered`` subscribes its accounts to.
TIERED_PLAN = "bench-graduated"


def graduated_price(unit_price: Decimal) -> dict[str, Any]:
    """Graduated tiers around a catalog price: the first 100 units at it (with a flat fee), then cheaper by volume.

    A run's accounts reach the first two or three tiers within a month (about 80 units of each product per account
    in a quick run, about 8,000 in a full one); the numbers are decimal text, as exact as the API reads them.
    """
    return {
        "model": "graduated",
        "tiers": [
            {"up_to": 100, "unit_price": str(unit_price), "flat_fee": "1.5"},
            {"up_to": 1000, "unit_price": str(unit_price * Decimal("0.8"))},
            {"up_to": 10000, "unit_price": str(unit_price * Decimal("0.6"))},
            {"up_to": None, "unit_price": str(unit_price / 2)},
        ],
    }


def previous_month_start(now: datetime) -> datetime:
    """The first instant of the UTC month before ``now``'s: before any event a run sends (each is within the hour)."""
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return datetime(year, month, 1, tzinfo=UTC)


def subscribe_tiered(base_url: str, key: str, products: int, account_ids: list[str]) -> dict[str, Any]:
    """Through the server's public API: a plan pricing every product by graduated tiers, and the accounts on it.

    The plan's version and the subscriptions start at the previous month's first instant, so every event a run
    sends (within the hour before it starts) falls under the plan, whatever the day. Returns a summary.
    """
    started = time.perf_counter()
    since = previous_month_start(datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "name": "Bench graduated",
        "currency": "USD",
        "fee": "29.99",
        "prices": {product_id: graduated_price(price) for product_id, _, _, price in catalog_of(products)},
        "effective_from": since,
    }
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0) as client:
        answer = client.put(f"/v1/plans/{TIERED_PLAN}", json=body)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"PUT /v1/plans/{TIERED_PLAN} answered {answer.status_code}: {answer.text[:500]}")
        for account_id in account_ids:
            answer = client.put(
                f"/v1/accounts/{account_id}/subscription", json={"plan": TIERED_PLAN, "starts_at": since}
            )
            current = answer.json().get("current") if answer.status_code == 200 else None
            if current is None or current.get("plan") != TIERED_PLAN:
                raise RuntimeError(
                    f"PUT /v1/accounts/{account_id}/subscription answered {answer.status_code}: {answer.text[:500]}"
                )
    return {
        "plan": TIERED_PLAN,
        "model": "graduated",
        "since": since,
        "accounts": len(account_ids),
        "seconds": round(time.perf_counter() - started, 1),
    }


#: Each account's 10 alerts of ``--alerts``: (type, threshold, index of the product for usage_above). The low ones fire
#: at an account's first batch, the balance one at its first credit debit, the others never do: every batch of a
#: run evaluates them (the spend ones price the account's month each time).
BENCH_ALERTS: tuple[tuple[str, Decimal, int | None], ...] = (
    ("usage_above", Decimal(1), 0),
    ("usage_above", Decimal(50), 1),
    ("usage_above", Decimal(10**12), 2),
    ("usage_above", Decimal(10**12), 0),
    ("spend_above", Decimal("0.01"), None),
    ("spend_above", Decimal(20), None),
    ("spend_above", Decimal(10**8), None),
    ("spend_above", Decimal(10**9), None),
    ("credit_balance_below", Decimal(GRANT - 10), None),
    ("credit_balance_below", Decimal(0), None),
)


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that takes every delivery (204) and counts them."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).received += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    """A receiver on 127.0.0.1 in a thread of this process; its URL, and its handler class (which counts)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", _Receiver
    finally:
        server.shutdown()
        server.server_close()


def seed_alerts(
    database_url: str, key: str, account_ids: list[str], products: int, receiver_url: str
) -> dict[str, Any]:
    """Through the services, before the server starts: :data:`BENCH_ALERTS` on each account, one endpoint for all."""
    from meterbook.accounts import service as accounts_service
    from meterbook.alerts import service as alerts
    from meterbook.alerts.schemas import AlertCreate
    from meterbook.db import Database
    from meterbook.webhooks import service as webhooks
    from meterbook.webhooks.schemas import EndpointCreate

    started = time.perf_counter()
    product_ids = [row[0] for row in catalog_of(products)]
    database = Database(database_url, pool_size=1)
    try:
        with database.write() as conn:
            org = accounts_service.authenticate(conn, key)
            webhooks.create_endpoint(conn, org, EndpointCreate(url=receiver_url, event_types=["*"]), allow_private=True)
            for account_id in account_ids:
                for kind, threshold, product in BENCH_ALERTS:
                    body: dict[str, Any] = {"account_id": account_id, "type": kind, "threshold": threshold}
                    if product is not None:
                        body["product_id"] = product_ids[product % len(product_ids)]
                    alerts.create_alert(conn, org, AlertCreate.model_validate(body))
    finally:
        database.dispose()
    return {
        "alerts_per_account": len(BENCH_ALERTS),
        "accounts": len(account_ids),
        "endpoint": receiver_url,
        "seconds": round(time.perf_counter() - started, 1),
    }


def seed_history_function() -> Any:
    """``bench.seed.seed_history``, written separately; None while bench/seed.py does not exist."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        module = importlib.import_module("bench.seed")
    except ModuleNotFoundError as error:
        if error.name == "bench.seed":
            return None
        raise
    return module.seed_history


def preload(database_url: str, events: int, shape: dict[str, int]) -> dict[str, Any]:
    """Fill the (migrated) database with ``events`` events of an organization of its own, before anything is timed.

    ``shape`` may give seed_history's ``accounts``, ``products`` and ``months``; the rest keep its defaults.
    """
    seed_history = seed_history_function()
    if seed_history is None:
        raise RuntimeError("--preload needs bench/seed.py (seed_history), which does not exist yet")
    started = time.perf_counter()
    history = seed_history(database_url, events=events, progress=True, **shape)
    seconds = time.perf_counter() - started
    # Only the counts: the seeded history also lists every account and key.
    counts = {name: getattr(history, name) for name in ("events", "aggregates", "invoices") if hasattr(history, name)}
    summary = ", ".join(f"{value:,} {name}" for name, value in counts.items()) or type(history).__name__
    return {"events": events, "seconds": round(seconds, 1), "seeded": summary}


def postgres_settings(database_url: str) -> str:
    """The server's version and the settings that decide what a commit costs (a dev server may not fsync)."""
    from meterbook.db import Database

    database = Database(database_url, pool_size=1)
    try:
        with database.read() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            fsync = conn.execute(text("SHOW fsync")).scalar_one()
            synchronous_commit = conn.execute(text("SHOW synchronous_commit")).scalar_one()
    finally:
        database.dispose()
    return f"{str(version).split()[0]}, fsync={fsync}, synchronous_commit={synchronous_commit}"


def stored_events(database_url: str) -> int:
    from meterbook.db import Database
    from meterbook.db.tables import usage_events

    database = Database(database_url, pool_size=1)
    try:
        with database.read() as conn:
            return int(conn.execute(select(func.count()).select_from(usage_events)).scalar_one())
    finally:
        database.dispose()


@contextlib.contextmanager
def sibling_database(database_url: str, suffix: str) -> Iterator[str]:
    """A fresh empty database beside the given one: a new SQLite file, or a new PostgreSQL database, dropped after."""
    from sqlalchemy import create_engine

    parsed = make_url(database_url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        sibling = path.with_name(f"{path.stem}{suffix}{path.suffix}")
        try:
            yield str(parsed.set(database=str(sibling)).render_as_string(hide_password=False))
        finally:
            for leftover in (sibling, Path(f"{sibling}-wal"), Path(f"{sibling}-shm")):
                leftover.unlink(missing_ok=True)
        return
    name = f"{parsed.database}{suffix}"
    maintenance = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield str(parsed.set(database=name).render_as_string(hide_password=False))
        finally:
            with maintenance.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        maintenance.dispose()


# --- the server -----------------------------------------------------------------------------------


def meterbook_command() -> list[str]:
    beside = Path(sys.executable).parent / "meterbook"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("meterbook")
    return [found] if found else [sys.executable, "-m", "meterbook"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    database_url: str,
    port: int,
    workers: int,
    log_level: str,
    sqlite_synchronous: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **(extra_env or {}),
        "METERBOOK_DATABASE_URL": database_url,
        "METERBOOK_HOST": "127.0.0.1",
        "METERBOOK_PORT": str(port),
        "METERBOOK_LOG_LEVEL": log_level,
        "METERBOOK_SQLITE_SYNCHRONOUS": sqlite_synchronous,
    }
    command = [*meterbook_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        # Its own session, so that stopping it also stops uvicorn's worker processes.
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(server: subprocess.Popen[bytes], base_url: str, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}:\n{tail(log_path)}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s:\n{tail(log_path)}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def process_tree(root: int) -> list[list[str]] | None:
    """The /proc/PID/stat fields (after the command name) of ``root`` and its descendants; None without /proc."""
    proc = Path("/proc")
    if not (proc / str(root) / "stat").exists():
        return None
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        stats[int(entry.name)] = fields
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return [stats[pid] for pid in tree if pid in stats]


def process_tree_cpu(root: int) -> float | None:
    """CPU seconds (user + system) of ``root`` and its descendants, from /proc."""
    tree = process_tree(root)
    if tree is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # Fields 14 and 15 of stat (utime, stime) are 11 and 12 once pid and name are cut off.
    return sum((int(fields[11]) + int(fields[12])) / ticks for fields in tree)


def process_tree_rss(root: int) -> int | None:
    """Resident bytes of ``root`` and its descendants, summed (pages shared between workers count once each)."""
    tree = process_tree(root)
    if tree is None:
        return None
    # Field 24 of stat (rss, in pages) is 21 once pid and name are cut off.
    return sum(int(fields[21]) for fields in tree) * PAGE_SIZE


class RssSampler:
    """Samples the server tree's resident memory in a thread: the peak over everything, and over the current run."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root = root
        self.interval = interval
        self.peak = 0
        self.run_peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        rss = process_tree_rss(self.root)
        if rss is None:
            return
        with self._lock:
            self.peak = max(self.peak, rss)
            self.run_peak = max(self.run_peak, rss)

    def start_run(self) -> None:
        self.sample()
        with self._lock:
            self.run_peak = 0
        self.sample()

    def end_run(self) -> int:
        self.sample()
        with self._lock:
            return self.run_peak

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


# --- the load generator ---------------------------------------------------------------------------


@dataclass
class Plan:
    base_url: str
    key: str
    account_ids: list[str]
    product_ids: list[str]
    events: int
    batch: int
    clients: int
    connections: int
    credit_share: float
    tag: str
    occurred_before: str


def build_events(plan: Plan, start: int, stop: int) -> list[dict[str, Any]]:
    """Events number ``start`` to ``stop - 1`` of the run: each number always gives the same event."""
    base = datetime.fromisoformat(plan.occurred_before)
    accounts, products = plan.account_ids, plan.product_ids
    credit_every = round(1 / plan.credit_share) if plan.credit_share > 0 else 0
    events: list[dict[str, Any]] = []
    for n in range(start, stop):
        account = accounts[(n * 7919) % len(accounts)]
        occurred_at = (base - timedelta(seconds=n % 3600, milliseconds=n % 997)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if credit_every and n % credit_every == 0:
            events.append(
                {
                    "id": f"{plan.tag}-{n}",
                    "account_id": account,
                    "type": "credit",
                    "quantity": 1 + n % 5,
                    "source": "bench",
                    "occurred_at": occurred_at,
                }
            )
        else:
            events.append(
                {
                    "id": f"{plan.tag}-{n}",
                    "account_id": account,
                    "type": "metered",
                    "product_id": products[n % len(products)],
                    # Both spellings the contract allows: a JSON number and exact decimal text.
                    "quantity": (n % 17) + 1 if n % 2 else f"{(n % 600) / 10 + 0.1:.1f}",
                    "occurred_at": occurred_at,
                    "direction": "INBOUND" if n % 3 else "OUTBOUND",
                }
            )
    return events


def build_bodies(plan: Plan, client: int) -> list[tuple[bytes, int]]:
    """This client's share of the batches (every ``clients``-th), serialized."""
    bodies = []
    for start in range(client * plan.batch, plan.events, plan.clients * plan.batch):
        events = build_events(plan, start, min(start + plan.batch, plan.events))
        bodies.append((json.dumps(events, separators=(",", ":")).encode(), len(events)))
    return bodies


@dataclass
class ClientResult:
    client: int
    requests: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    started: float = 0.0
    finished: float = 0.0
    cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error: str | None = None


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request and its answer on a kept-alive connection (answers carry Content-Length)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" or (name == b"connection" and value.strip().lower() == b"close"):
            raise RuntimeError(f"the server answered {line.decode(errors='replace')!r}: not a kept-alive answer")
    if length is None:
        raise RuntimeError(f"an answer without Content-Length: {head.decode(errors='replace')!r}")
    return status, await reader.readexactly(length)


async def drive(plan: Plan, client: int, ready: Barrier, result: ClientResult) -> None:
    """Open this client's connections, wait for the others, then keep one request in flight on each."""
    address = urlsplit(plan.base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    prefix = (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {plan.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    requests = [(b"%s%d\r\n\r\n%s" % (prefix, len(body), body), count) for body, count in build_bodies(plan, client)]
    connections = [await asyncio.open_connection(host, port) for _ in range(plan.connections)]
    health = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    try:
        for reader, writer in connections:
            # The server has accepted every connection before the clock starts.
            status, _ = await exchange(reader, writer, health)
            if status != 200:
                raise RuntimeError(f"GET /healthz answered {status}")
        ready.wait()  # blocks the loop, which has nothing else to do yet
        pending = iter(requests)  # shared by the connections: each takes the next request when it is free

        async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for request, count in pending:
                sent = time.perf_counter()
                status, body = await exchange(reader, writer, request)
                result.latencies.append(time.perf_counter() - sent)
                if status != 200:
                    raise RuntimeError(f"POST /v1/events answered {status}: {body[:500].decode(errors='replace')}")
                answer = json.loads(body)
                result.requests += 1
                result.events += count
                result.accepted += answer["accepted"]
                result.duplicates += answer["duplicates"]

        cpu_start = time.process_time()
        result.started = time.perf_counter()
        await asyncio.gather(*(send(reader, writer) for reader, writer in connections))
        result.finished = time.perf_counter()
        result.cpu_seconds = time.process_time() - cpu_start
    finally:
        for _, writer in connections:
            writer.close()


def load_client(plan: Plan, client: int, ready: Barrier, results: Any) -> None:
    """One load-generator process: build its requests, connect, wait for the others, then send them."""
    result = ClientResult(client=client)
    try:
        asyncio.run(drive(plan, client, ready, result))
    except BaseException as error:  # reported to the parent, which stops everything
        result.error = f"client {client}: {type(error).__name__}: {error}"
        ready.abort()
    results.put(asdict(result))


@dataclass
class Run:
    number: int
    events: int
    requests: int
    seconds: float
    events_per_second: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu_seconds: float
    server_cpu_seconds: float | None
    server_peak_rss_bytes: int | None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def run_once(plan: Plan, number: int, server_pid: int, rss: RssSampler) -> Run:
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(plan.clients + 1)
    results = context.Queue()
    processes = [
        context.Process(target=load_client, args=(plan, client, ready, results), daemon=True)
        for client in range(plan.clients)
    ]
    collected: list[dict[str, Any]] = []
    try:
        for process in processes:
            process.start()
        rss.start_run()
        server_cpu_before = process_tree_cpu(server_pid)
        # A client that fails while preparing breaks the barrier; its report says why.
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=600)
        collected = [results.get(timeout=3600) for _ in processes]
        server_cpu_after = process_tree_cpu(server_pid)
        peak_rss = rss.end_run()
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    errors = [item["error"] for item in collected if item["error"]]
    if errors:
        raise RuntimeError("; ".join(errors))
    events = sum(item["events"] for item in collected)
    accepted = sum(item["accepted"] for item in collected)
    if accepted != events or any(item["duplicates"] for item in collected):
        raise RuntimeError(f"sent {events} new events but the server accepted {accepted}")
    requests = sum(item["requests"] for item in collected)
    latencies = [latency for item in collected for latency in item["latencies"]]
    seconds = max(item["finished"] for item in collected) - min(item["started"] for item in collected)
    server_cpu = (
        server_cpu_after - server_cpu_before if server_cpu_before is not None and server_cpu_after is not None else None
    )
    return Run(
        number=number,
        events=events,
        requests=requests,
        seconds=seconds,
        events_per_second=events / seconds,
        requests_per_second=requests / seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=max(latencies) * 1000,
        generator_cpu_seconds=sum(item["cpu_seconds"] for item in collected),
        server_cpu_seconds=server_cpu,
        server_peak_rss_bytes=peak_rss or None,
    )


# --- the store layer alone ------------------------------------------------------------------------


@dataclass
class StoreRun:
    number: int
    events: int
    seconds: float
    events_per_second: float
    cpu_seconds: float


@dataclass
class StoreSetup:
    database_url: str
    sqlite_synchronous: str
    accounts: int
    products: int
    preload: int
    preload_shape: dict[str, int]


def store_worker(setup: StoreSetup, pipe: Pipe) -> None:
    """A process of its own: seed a database like the server's, then time ``usage.ingest`` for each plan it is sent.

    Each batch is parsed and validated to ``EventIn`` objects first, outside the clock, as the HTTP layer does before
    the handler runs; the clock covers exactly what the handler's ``with writing(request)`` block covers.
    """
    try:
        from meterbook.accounts import service as accounts_service
        from meterbook.db import Database
        from meterbook.kit import jsontext
        from meterbook.usage import service as usage
        from meterbook.usage.schemas import EventIn

        migrate_database(setup.database_url, setup.sqlite_synchronous)
        if setup.preload:
            preload(setup.database_url, setup.preload, setup.preload_shape)
        seeded = seed(setup.database_url, setup.accounts, setup.products, setup.sqlite_synchronous)
        # One connection, as the server's one writer uses one at a time.
        database = Database(setup.database_url, sqlite_synchronous=setup.sqlite_synchronous, pool_size=1)
        with database.write() as conn:
            principal = accounts_service.authenticate(conn, seeded.organization_key)
        pipe.send(("ready", asdict(seeded)))
        while True:
            message = pipe.recv()
            if message is None:
                break
            number, plan = message
            seconds = cpu_seconds = 0.0
            accepted = 0
            for body, _ in build_bodies(plan, 0):
                batch = [EventIn.model_validate(item) for item in jsontext.loads(body)]
                cpu_start, started = time.process_time(), time.perf_counter()
                with database.write() as conn:
                    result = usage.ingest(conn, principal, batch)
                seconds += time.perf_counter() - started
                cpu_seconds += time.process_time() - cpu_start
                accepted += result.accepted
            if accepted != plan.events:
                raise RuntimeError(f"the store layer accepted {accepted} of {plan.events} new events")
            pipe.send(("run", asdict(StoreRun(number, plan.events, seconds, plan.events / seconds, cpu_seconds))))
        database.dispose()
    except BaseException as error:
        pipe.send(("error", f"store layer: {type(error).__name__}: {error}"))


class StoreLayer:
    """The store-layer process, kept between runs so that its database grows run by run as the server's does."""

    def __init__(self, setup: StoreSetup) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=store_worker, args=(setup, child), daemon=True)
        self._process.start()
        self.seeded: Seeded | None = None

    def _receive(self, timeout: float) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        while not self._pipe.poll(1.0):
            if not self._process.is_alive():
                raise RuntimeError(f"the store-layer process died (exit code {self._process.exitcode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the store-layer process did not answer within {timeout:.0f} s")
        kind, payload = self._pipe.recv()
        if kind == "error":
            raise RuntimeError(payload)
        return str(kind), payload

    def wait_ready(self) -> None:
        _, payload = self._receive(timeout=24 * 3600)
        self.seeded = Seeded(**payload)

    def run(self, number: int, plan: Plan) -> StoreRun:
        assert self.seeded is not None
        plan = replace(
            plan,
            key=self.seeded.organization_key,
            account_ids=self.seeded.account_ids,
            product_ids=self.seeded.product_ids,
            clients=1,  # one sequence of all the batches, in order
        )
        self._pipe.send((number, plan))
        _, payload = self._receive(timeout=24 * 3600)
        return StoreRun(**payload)

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._pipe.send(None)
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)


# --- the report -----------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    # What is measured is the server: changes to the benchmarks alone do not make the figures another commit's.
    outside = [line[3:] for line in changed if not line[3:].startswith("bench/")]
    if outside:
        return f"{commit} (with uncommitted changes outside bench/: {', '.join(outside[:4])})"
    return f"{commit}{' (with uncommitted changes to bench/)' if changed else ''}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """What else the machine is doing: the benchmark shares it, so its figures are only as quiet as it is."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def describe_database(url: str, sqlite_synchronous: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} {parsed.database} (WAL, synchronous={sqlite_synchronous})"
    without_password = parsed.set(password=None).render_as_string(hide_password=False)
    return f"PostgreSQL {without_password} ({postgres_settings(url)})"


def megabytes(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 2**20:,.0f} MB"


def cpu_per_event(run: Run) -> str:
    return "n/a" if run.server_cpu_seconds is None else f"{run.server_cpu_seconds / run.events * 1e6:.0f} µs"


def print_run(run: Run, store: StoreRun | None, label: str = "run") -> None:
    server_cpu = (
        f"{run.server_cpu_seconds:.1f} s = {run.server_cpu_seconds / run.events * 1e6:.0f} µs/event"
        if run.server_cpu_seconds is not None
        else "n/a"
    )
    generator_share = run.generator_cpu_seconds / run.seconds
    head = f"{label} {run.number}"
    print(
        f"{head:<10}{run.events_per_second:>9,.0f} events/s  {run.requests_per_second:>8,.1f} req/s  "
        f"p50 {run.p50_ms:7.1f} ms  p99 {run.p99_ms:7.1f} ms  ({run.events:,} events in {run.seconds:.2f} s; "
        f"CPU: generators {run.generator_cpu_seconds:.1f} s = {generator_share:.0%} of a core, server {server_cpu}; "
        f"server RSS peak {megabytes(run.server_peak_rss_bytes)})",
        flush=True,
    )
    if store is not None:
        print(
            f"  store   {store.events_per_second:>9,.0f} events/s  (usage.ingest alone, {store.events:,} events in "
            f"{store.seconds:.2f} s, {store.cpu_seconds / store.events * 1e6:.0f} µs CPU/event); "
            f"HTTP/store {run.events_per_second / store.events_per_second:.2f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, help="events per run (default 200,000; --quick: 20,000)")
    parser.add_argument("--batch", type=int, default=1000, help="events per request (default 1,000; at most 10,000)")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument(
        "--connections",
        type=int,
        help="keep-alive connections per client, one request in flight on each "
        "(default 1, i.e. closed loop; 32 with --batch 1: many clients each sending one event at a time)",
    )
    parser.add_argument(
        "--repeat", type=int, help="runs; the median is reported (default 3; --quick: 1; --tiered: 4 pairs, quick 2)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: about 20,000 events, once")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temporary directory; "
        "a PostgreSQL URL must name an empty database (it is migrated, and left as it is)",
    )
    parser.add_argument("--port", type=int, help="port for the server (default: a free one)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (PostgreSQL only; default 1)")
    parser.add_argument("--accounts", type=int, default=300, help="accounts the events are spread over (default 300)")
    parser.add_argument("--products", type=int, default=3, help="products the metered events use (default 3)")
    parser.add_argument("--credit-share", type=float, default=0.2, help="share of credit events (default 0.2)")
    parser.add_argument(
        "--store-alone",
        action=argparse.BooleanOptionalAction,
        help="also time usage.ingest alone on a fresh database of the same kind "
        "(default: on for batches of more than one event without --preload)",
    )
    parser.add_argument(
        "--tiered",
        action="store_true",
        help="also send each run's load to as many accounts on a plan priced by graduated tiers (made through the "
        "API), alternating with the per-unit accounts on the same server and database; prints the ratio of the rates",
    )
    parser.add_argument(
        "--alerts",
        action="store_true",
        help="also send each run's load to as many accounts with 10 alerts each and a webhook endpoint taking every "
        "event, alternating with the accounts without alerts on the same server and database; prints the ratio",
    )
    parser.add_argument(
        "--preload", type=int, default=0, help="events already stored before the runs (bench.seed.seed_history)"
    )
    for name in ("accounts", "products", "months"):
        parser.add_argument(
            f"--preload-{name}", type=int, help=f"the preloaded history's {name} (default: seed_history's)"
        )
    parser.add_argument(
        "--server-log-level", default="warning", help="the server's log level (default warning: no access log)"
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=("FULL", "NORMAL"),
        default=os.environ.get("METERBOOK_SQLITE_SYNCHRONOUS", "FULL"),
    )
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document, last")
    args = parser.parse_args(argv)
    events = args.events or (20_000 if args.quick else 200_000)
    if args.tiered and args.alerts:
        parser.error("--tiered and --alerts each compare a second group of accounts: give one of them")
    # The second group of accounts a paired run compares with the first, and what its figures are called.
    paired = args.tiered or args.alerts
    second = "tiered" if args.tiered else "alerts"
    # --tiered and --alerts pair their runs in alternating order: an even number of pairs balances the orders.
    repeat = args.repeat or ((2 if args.quick else 4) if paired else (1 if args.quick else 3))
    connections = args.connections or (32 if args.batch == 1 else 1)
    if paired and args.store_alone:
        parser.error(f"--{second} compares two loads on one server: it does not time the store layer alone")
    store_alone = (
        args.store_alone if args.store_alone is not None else args.batch > 1 and not args.preload and not paired
    )
    if not 1 <= args.batch <= 10_000 or events < 1 or args.clients < 1 or repeat < 1 or args.accounts < 1:
        parser.error("--events, --clients, --repeat and --accounts must be at least 1, --batch 1..10,000")
    if connections < 1 or args.products < 1 or args.preload < 0:
        parser.error("--connections and --products must be at least 1, --preload at least 0")
    if not 0 <= args.credit_share <= 1:
        parser.error("--credit-share must be between 0 and 1")
    preload_shape = {
        name: value
        for name in ("accounts", "products", "months")
        if (value := getattr(args, f"preload_{name}")) is not None
    }
    if args.preload and seed_history_function() is None:
        parser.error("--preload needs bench/seed.py (bench.seed.seed_history), which does not exist yet")

    if args.database_url and make_url(args.database_url).get_backend_name() not in ("sqlite", "postgresql"):
        parser.error("--database-url must be a sqlite:/// or postgresql+psycopg:// URL")
    if (args.database_url is None or args.database_url.startswith("sqlite")) and args.workers != 1:
        parser.error("SQLite is served by one worker process: use --workers 1, or PostgreSQL")

    # Stopped from outside (python -m bench on a timeout), it still stops its server and removes its files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="meterbook-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    port = args.port or free_port()
    log_path = workdir / "server.log"
    server: subprocess.Popen[bytes] | None = None
    rss: RssSampler | None = None
    runs: list[Run] = []
    tiered_runs: list[Run] = []
    store_runs: list[StoreRun] = []
    subscribed: dict[str, Any] | None = None
    alerted: dict[str, Any] | None = None
    preloaded: dict[str, Any] | None = None
    commit = git_commit()
    print(f"meterbook ingest benchmark — commit {commit}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine   {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}, "
        f"Python {platform.python_version()}; load average before: {load_average()}"
    )
    print(
        f"load      {events:,} events/run in batches of {args.batch:,} from {args.clients} client processes x "
        f"{connections} connection(s), {args.accounts} accounts, {args.products} products, "
        f"{args.credit_share:.0%} credit events, {repeat} run(s)"
        f"{f' of each: per-unit prices and {args.accounts} more accounts on a graduated plan' if args.tiered else ''}"
        f"{f' of each: {args.accounts} accounts without alerts, {args.accounts} with 10 each' if args.alerts else ''}; "
        f"server: {args.workers} worker(s), log level {args.server_log_level}",
        flush=True,
    )
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        database = describe_database(database_url, args.sqlite_synchronous)
        print(f"database  {database}", flush=True)
        store: StoreLayer | None = None
        if store_alone:
            store_url = cleanup.enter_context(sibling_database(database_url, "_store"))
            store = StoreLayer(
                StoreSetup(
                    store_url, args.sqlite_synchronous, args.accounts, args.products, args.preload, preload_shape
                )
            )
            cleanup.callback(store.close)
        started = time.perf_counter()
        migrate_database(database_url, args.sqlite_synchronous)
        if args.preload:
            print(f"preload   {args.preload:,} events (bench.seed.seed_history) ...", flush=True)
            preloaded = preload(database_url, args.preload, preload_shape)
            print(f"preload   done in {preloaded['seconds']:,.1f} s: {preloaded['seeded']}", flush=True)
        seeded = seed(
            database_url, args.accounts, args.products, args.sqlite_synchronous, args.accounts if paired else 0
        )
        server_env: dict[str, str] = {}
        if args.alerts:
            receiver_url, receiver = cleanup.enter_context(webhook_receiver())
            alerted = seed_alerts(
                database_url, seeded.organization_key, seeded.tiered_account_ids, args.products, receiver_url
            )
            server_env["METERBOOK_WEBHOOK_ALLOW_PRIVATE"] = "true"
            print(
                f"alerts    {alerted['alerts_per_account']} per account on {alerted['accounts']} accounts, one "
                f"endpoint taking every event ({receiver_url}); made in {alerted['seconds']:.1f} s",
                flush=True,
            )
        server = start_server(
            database_url, port, args.workers, args.server_log_level, args.sqlite_synchronous, log_path, server_env
        )
        cleanup.callback(stop_server, server)
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(server, base_url, log_path)
        rss = RssSampler(server.pid)
        rss.start()
        cleanup.callback(rss.stop)
        if args.tiered:
            subscribed = subscribe_tiered(base_url, seeded.organization_key, args.products, seeded.tiered_account_ids)
            print(
                f"plan      {subscribed['plan']} (graduated, every product), {subscribed['accounts']} accounts on it "
                f"from {subscribed['since']}; made through the API in {subscribed['seconds']:.1f} s",
                flush=True,
            )
        if store is not None:
            store.wait_ready()
        print(f"setup     {time.perf_counter() - started:.1f} s (seed, start the server on {base_url})", flush=True)
        session = uuid.uuid4().hex[:8]

        def timed(plan: Plan, number: int) -> Run:
            assert server is not None
            assert rss is not None
            try:
                return run_once(plan, number, server.pid, rss)
            except Exception:
                stopped = "stopped" if server.poll() is not None else "is running"
                print(f"the server {stopped}; the end of its log:\n{tail(log_path)}", file=sys.stderr)
                raise

        def load(number: int, tiered: bool) -> Plan:
            """A run's load, its events dated just before it is sent; the tiered one to the accounts on the plan."""
            return Plan(
                base_url=base_url,
                key=seeded.organization_key,
                account_ids=seeded.tiered_account_ids if tiered else seeded.account_ids,
                product_ids=seeded.product_ids,
                events=events,
                batch=args.batch,
                clients=args.clients,
                connections=connections,
                credit_share=args.credit_share,
                tag=f"bench-{session}-{'t' if tiered else 'r'}{number}",
                occurred_before=datetime.now(UTC).isoformat(),
            )

        for number in range(1, repeat + 1):
            tiered_run: Run | None = None
            # With --tiered (--alerts), odd runs send the per-unit (alert-free) load first and even runs the other,
            # so that load drift and the database's growth weigh on both alike.
            if paired and number % 2 == 0:
                tiered_run = timed(load(number, tiered=True), number)
                print_run(tiered_run, None, second)
            plan = load(number, tiered=False)
            run = timed(plan, number)
            runs.append(run)
            store_run = store.run(number, plan) if store is not None else None
            if store_run is not None:
                store_runs.append(store_run)
            print_run(run, store_run)
            if paired:
                if tiered_run is None:
                    tiered_run = timed(load(number, tiered=True), number)
                    print_run(tiered_run, None, second)
                tiered_runs.append(tiered_run)
                print(
                    f"  {second}/{'per-unit' if args.tiered else 'none'} "
                    f"{tiered_run.events_per_second / run.events_per_second:.2f} "
                    f"(server CPU per event {cpu_per_event(tiered_run)} against {cpu_per_event(run)})",
                    flush=True,
                )
        expected = events * repeat * (2 if paired else 1) + (args.preload if preloaded else 0)
        stored = stored_events(database_url)
        if stored != expected:
            raise RuntimeError(f"the database holds {stored} events, {expected} were expected")
        peak_rss = rss.peak or None

    median = statistics.median(run.events_per_second for run in runs)
    requests_per_second = statistics.median(run.requests_per_second for run in runs)
    p50 = statistics.median(run.p50_ms for run in runs)
    p99 = statistics.median(run.p99_ms for run in runs)
    print(
        f"median    {median:,.0f} events/s, {requests_per_second:,.1f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"over {len(runs)} run(s); all {stored:,} events stored exactly once; "
        f"server RSS peak {megabytes(peak_rss)}; load average after: {load_average()}"
    )
    store_summary: dict[str, Any] | None = None
    if store_runs:
        ratios = [run.events_per_second / store.events_per_second for run, store in zip(runs, store_runs, strict=True)]
        store_median = statistics.median(store.events_per_second for store in store_runs)
        store_summary = {
            "median_events_per_second": store_median,
            "ratio_median": statistics.median(ratios),
            "ratios": ratios,
            "runs": [asdict(store) for store in store_runs],
        }
        print(
            f"store     {store_median:,.0f} events/s (median, usage.ingest alone); HTTP/store ratio "
            f"{statistics.median(ratios):.2f} (median of each run's, {' / '.join(f'{r:.2f}' for r in ratios)})"
        )
    tiered_summary: dict[str, Any] | None = None
    if tiered_runs:
        ratios = [
            tiered.events_per_second / run.events_per_second for run, tiered in zip(runs, tiered_runs, strict=True)
        ]
        tiered_median = statistics.median(run.events_per_second for run in tiered_runs)
        # The same comparison by the server's CPU per event (per-unit / tiered): steadier than rates on a busy machine.
        cpu_ratios = [
            (run.server_cpu_seconds / run.events) / (tiered.server_cpu_seconds / tiered.events)
            for run, tiered in zip(runs, tiered_runs, strict=True)
            if run.server_cpu_seconds and tiered.server_cpu_seconds
        ]
        tiered_summary = {
            **(subscribed or alerted or {}),
            "median_events_per_second": tiered_median,
            "per_unit_median_events_per_second": median,
            "ratio_median": statistics.median(ratios),
            "ratios": ratios,
            "cpu_ratio_median": statistics.median(cpu_ratios) if cpu_ratios else None,
            "cpu_ratios": cpu_ratios,
            "median_p99_ms": statistics.median(run.p99_ms for run in tiered_runs),
            "runs": [asdict(run) for run in tiered_runs],
        }
        if args.alerts:
            tiered_summary["deliveries_received"] = receiver.received
        what = "accounts on a graduated plan" if args.tiered else "accounts with 10 alerts each"
        base = "per-unit" if args.tiered else "without alerts"
        print(
            f"{second:<9} {tiered_median:,.0f} events/s (median, {what}) against {median:,.0f} "
            f"{base}; {second}/{base} ratio {statistics.median(ratios):.2f} "
            f"(median of each run's, {' / '.join(f'{r:.2f}' for r in ratios)})"
            + (
                f"; by server CPU per event, {base}/{second} {statistics.median(cpu_ratios):.2f} "
                f"({' / '.join(f'{r:.2f}' for r in cpu_ratios)})"
                if cpu_ratios
                else ""
            )
        )
    if args.json:
        print(
            json.dumps(
                {
                    "commit": commit,
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": {
                        "cpus": os.cpu_count(),
                        "cpu": cpu_model(),
                        "platform": platform.platform(),
                        "python": platform.python_version(),
                    },
                    "database": database,
                    "load_average_after": load_average(),
                    "events": events,
                    "batch": args.batch,
                    "clients": args.clients,
                    "connections": connections,
                    "workers": args.workers,
                    "accounts": args.accounts,
                    "products": args.products,
                    "preload": {**preloaded, "shape": preload_shape} if preloaded else None,
                    "median_events_per_second": median,
                    "median_requests_per_second": requests_per_second,
                    "median_p50_ms": p50,
                    "median_p99_ms": p99,
                    "server_peak_rss_bytes": peak_rss,
                    "runs": [asdict(run) for run in runs],
                    "store": store_summary,
                    "tiered": tiered_summary if args.tiered else None,
                    "alerts": tiered_summary if args.alerts else None,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
