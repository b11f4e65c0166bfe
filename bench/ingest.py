"""Ingestion throughput of ``POST /v1/events``, end to end: a real server, real HTTP, a real database.

    .venv/bin/python bench/ingest.py                 # 200,000 events, batches of 1,000, 2 clients, 3 runs, SQLite
    .venv/bin/python bench/ingest.py --quick         # about 20,000 events, 1 run: a smoke test
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://user@host/empty_db --workers 2

What it does: creates (or, for PostgreSQL, migrates the empty database it is given) a database; seeds an
organization, a few hundred accounts with large credit grants and a small product catalog through the
services; starts ``meterbook serve`` as a subprocess on that database; then, for each run, load-generator
processes (one per client, each with its own keep-alive ``httpx.Client``) send batches of metered and
credit events with unique ids, closed loop (each client sends its next batch when the previous one is
answered). The request bodies are built before the clock starts, so building them is not measured; the
generators' own CPU time is measured and reported, so that a saturated generator is not mistaken for a
slow server. At the end it checks that the database holds exactly the events sent, stops the server
(always) and removes its temporary files. A PostgreSQL database given by URL is left as it is.
"""

from __future__ import annotations

import argparse
import contextlib
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
PRODUCTS = (
    ("BENCH-CALL-IN", "CALL", "minute", Decimal("0.067")),
    ("BENCH-API", "API_REQUEST", "request", Decimal("0.0001")),
    ("BENCH-SMS-OUT", "MESSAGE", "message", Decimal("0.0075")),
)
#: Far more credits than any run can spend, so that credit events are never refused.
GRANT = 10**15


# --- setup ----------------------------------------------------------------------------------------


@dataclass
class Seeded:
    organization_key: str
    account_ids: list[str]
    product_ids: list[str]


def seed(database_url: str, accounts: int, sqlite_synchronous: str) -> Seeded:
    """Migrate, then create an organization, its accounts, products and credit grants through the services."""
    from meterbook.accounts import service as accounts_service
    from meterbook.accounts.schemas import AccountCreate, OrganizationCreate
    from meterbook.catalog import service as catalog
    from meterbook.catalog.schemas import ProductPut
    from meterbook.db import Database
    from meterbook.db.migrate import migrate
    from meterbook.ledger import service as ledger
    from meterbook.ledger.schemas import CreditGrant

    database = Database(database_url, sqlite_synchronous=sqlite_synchronous, pool_size=1)
    try:
        migrate(database)
        with database.write() as conn:
            platform_key = accounts_service.create_platform_key(conn, "bench platform key")
            _, created = accounts_service.create_organization(
                conn,
                accounts_service.authenticate(conn, platform_key.token),
                OrganizationCreate(name=f"bench {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"),
            )
            org = accounts_service.authenticate(conn, created.token)
            for product_id, kind, unit, price in PRODUCTS:
                catalog.put_product(
                    conn,
                    org,
                    product_id,
                    ProductPut(description=f"bench {kind.lower()}", type=kind, unit=unit, unit_price=price),
                )
            account_ids = []
            for n in range(accounts):
                account = accounts_service.create_account(conn, org, AccountCreate(name=f"bench customer {n:04d}"))
                ledger.grant(conn, org, account.id, CreditGrant(id=f"bench-grant-{n}", amount=GRANT))
                account_ids.append(str(account.id))
        return Seeded(created.token, account_ids, [product[0] for product in PRODUCTS])
    finally:
        database.dispose()


def postgres_settings(database_url: str) -> str:
    """The server's version and the settings that decide what a commit costs (a dev server may not fsync)."""
    from sqlalchemy import text

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
    database_url: str, port: int, workers: int, log_level: str, sqlite_synchronous: str, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
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


def process_tree_cpu(root: int) -> float | None:
    """CPU seconds (user + system) of ``root`` and its descendants, from /proc; None where there is no /proc."""
    proc = Path("/proc")
    if not (proc / str(root) / "stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(times.get(pid, 0.0) for pid in tree)


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
    credit_share: float
    tag: str
    occurred_before: str


def build_bodies(plan: Plan, client: int) -> list[tuple[bytes, int]]:
    """This client's share of the batches (every ``clients``-th), serialized, with ids unique to the run."""
    base = datetime.fromisoformat(plan.occurred_before)
    accounts, products = plan.account_ids, plan.product_ids
    credit_every = round(1 / plan.credit_share) if plan.credit_share > 0 else 0
    bodies = []
    for start in range(client * plan.batch, plan.events, plan.clients * plan.batch):
        events: list[dict[str, Any]] = []
        for n in range(start, min(start + plan.batch, plan.events)):
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
                product = products[n % len(products)]
                events.append(
                    {
                        "id": f"{plan.tag}-{n}",
                        "account_id": account,
                        "type": "metered",
                        "product_id": product,
                        # Both spellings the contract allows: a JSON number and exact decimal text.
                        "quantity": (n % 17) + 1 if n % 2 else f"{(n % 600) / 10 + 0.1:.1f}",
                        "occurred_at": occurred_at,
                        "direction": "INBOUND" if n % 3 else "OUTBOUND",
                    }
                )
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


def load_client(plan: Plan, client: int, ready: Barrier, results: Any) -> None:
    """One load-generator process: build its bodies, connect, wait for the others, then send them in order."""
    result = ClientResult(client=client)
    try:
        bodies = build_bodies(plan, client)
        headers = {"Authorization": f"Bearer {plan.key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=plan.base_url, headers=headers, timeout=300.0) as http:
            http.get("/healthz").raise_for_status()  # opens the keep-alive connection before the clock starts
            ready.wait()
            cpu_start = time.process_time()
            result.started = time.perf_counter()
            for body, count in bodies:
                sent = time.perf_counter()
                response = http.post("/v1/events", content=body)
                result.latencies.append(time.perf_counter() - sent)
                if response.status_code != 200:
                    raise RuntimeError(f"POST /v1/events answered {response.status_code}: {response.text[:500]}")
                answer = response.json()
                result.requests += 1
                result.events += count
                result.accepted += answer["accepted"]
                result.duplicates += answer["duplicates"]
            result.finished = time.perf_counter()
            result.cpu_seconds = time.process_time() - cpu_start
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def run_once(plan: Plan, number: int, server_pid: int) -> Run:
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(plan.clients + 1)
    results = context.Queue()
    processes = [
        context.Process(target=load_client, args=(plan, client, ready, results), daemon=True)
        for client in range(plan.clients)
    ]
    try:
        for process in processes:
            process.start()
        server_cpu_before = process_tree_cpu(server_pid)
        # A client that fails while preparing breaks the barrier; its report says why.
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=600)
        collected = [results.get(timeout=3600) for _ in processes]
        server_cpu_after = process_tree_cpu(server_pid)
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
    )


# --- the report -----------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' (with uncommitted changes)' if dirty else ''}"


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
        return f"SQLite {parsed.database} (WAL, synchronous={sqlite_synchronous})"
    without_password = parsed.set(password=None).render_as_string(hide_password=False)
    return f"PostgreSQL {without_password} ({postgres_settings(url)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, help="events per run (default 200,000; --quick: 20,000)")
    parser.add_argument("--batch", type=int, default=1000, help="events per request (default 1,000; at most 10,000)")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--repeat", type=int, help="runs; the median is reported (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: about 20,000 events, once")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temporary directory; "
        "a PostgreSQL URL must name an empty database (it is migrated, and left as it is)",
    )
    parser.add_argument("--port", type=int, help="port for the server (default: a free one)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (PostgreSQL only; default 1)")
    parser.add_argument("--accounts", type=int, default=300, help="accounts the events are spread over (default 300)")
    parser.add_argument("--credit-share", type=float, default=0.2, help="share of credit events (default 0.2)")
    parser.add_argument(
        "--server-log-level", default="warning", help="the server's log level (default warning: no access log)"
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=("FULL", "NORMAL"),
        default=os.environ.get("METERBOOK_SQLITE_SYNCHRONOUS", "FULL"),
    )
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    args = parser.parse_args(argv)
    events = args.events or (20_000 if args.quick else 200_000)
    repeat = args.repeat or (1 if args.quick else 3)
    if not 1 <= args.batch <= 10_000 or events < 1 or args.clients < 1 or repeat < 1 or args.accounts < 1:
        parser.error("--events, --clients, --repeat and --accounts must be at least 1, --batch 1..10,000")
    if not 0 <= args.credit_share <= 1:
        parser.error("--credit-share must be between 0 and 1")

    if args.database_url and make_url(args.database_url).get_backend_name() not in ("sqlite", "postgresql"):
        parser.error("--database-url must be a sqlite:/// or postgresql+psycopg:// URL")
    if (args.database_url is None or args.database_url.startswith("sqlite")) and args.workers != 1:
        parser.error("SQLite is served by one worker process: use --workers 1, or PostgreSQL")

    workdir = Path(tempfile.mkdtemp(prefix="meterbook-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    port = args.port or free_port()
    log_path = workdir / "server.log"
    server: subprocess.Popen[bytes] | None = None
    runs: list[Run] = []
    commit = git_commit()
    print(f"meterbook ingest benchmark — commit {commit}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine   {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}, "
        f"Python {platform.python_version()}; load average before: {load_average()}"
    )
    print(
        f"load      {events:,} events/run in batches of {args.batch:,} from {args.clients} client processes, "
        f"{args.accounts} accounts, {args.credit_share:.0%} credit events, {repeat} run(s); "
        f"server: {args.workers} worker(s), log level {args.server_log_level}",
        flush=True,
    )
    try:
        database = describe_database(database_url, args.sqlite_synchronous)
        print(f"database  {database}", flush=True)
        started = time.perf_counter()
        seeded = seed(database_url, args.accounts, args.sqlite_synchronous)
        server = start_server(
            database_url, port, args.workers, args.server_log_level, args.sqlite_synchronous, log_path
        )
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(server, base_url, log_path)
        print(f"setup     {time.perf_counter() - started:.1f} s (seed, start the server on {base_url})", flush=True)
        session = uuid.uuid4().hex[:8]
        for number in range(1, repeat + 1):
            plan = Plan(
                base_url=base_url,
                key=seeded.organization_key,
                account_ids=seeded.account_ids,
                product_ids=seeded.product_ids,
                events=events,
                batch=args.batch,
                clients=args.clients,
                credit_share=args.credit_share,
                tag=f"bench-{session}-r{number}",
                occurred_before=datetime.now(UTC).isoformat(),
            )
            try:
                run = run_once(plan, number, server.pid)
            except Exception:
                if server.poll() is not None:
                    print(f"the server stopped:\n{tail(log_path)}", file=sys.stderr)
                raise
            runs.append(run)
            server_cpu = (
                f"{run.server_cpu_seconds:.1f} s = {run.server_cpu_seconds / run.events * 1e6:.0f} µs/event"
                if run.server_cpu_seconds is not None
                else "n/a"
            )
            print(
                f"run {number}     {run.events_per_second:>9,.0f} events/s  {run.requests_per_second:>7,.1f} req/s  "
                f"p50 {run.p50_ms:7.1f} ms  p99 {run.p99_ms:7.1f} ms  ({run.events:,} events in {run.seconds:.2f} s; "
                f"CPU: generator {run.generator_cpu_seconds:.1f} s, server {server_cpu})",
                flush=True,
            )
        expected = events * repeat
        stored = stored_events(database_url)
        if stored != expected:
            raise RuntimeError(f"the database holds {stored} events, {expected} were sent")
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)

    median = statistics.median(run.events_per_second for run in runs)
    all_p99 = statistics.median(run.p99_ms for run in runs)
    print(
        f"median    {median:,.0f} events/s, {statistics.median(run.requests_per_second for run in runs):,.1f} req/s, "
        f"p50 {statistics.median(run.p50_ms for run in runs):.1f} ms, p99 {all_p99:.1f} ms "
        f"over {len(runs)} run(s); all {stored:,} events stored exactly once; load average after: {load_average()}"
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
                    "workers": args.workers,
                    "median_events_per_second": median,
                    "runs": [asdict(run) for run in runs],
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
