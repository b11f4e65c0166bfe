"""Can clients without a valid key stall the server? ``/healthz`` latency with and without them (issue 15).

    .venv/bin/python bench/stall.py                  # 6 clients, 10,000-event bodies, 20 s a phase, SQLite
    .venv/bin/python bench/stall.py --seconds 5      # a quick try
    .venv/bin/python bench/stall.py --key malformed  # the key sent: unknown (default), malformed or missing
    .venv/bin/python bench/stall.py --database-url postgresql+psycopg://user@host/empty_db --workers 2

What it does: migrates a fresh database (a SQLite file in a temporary directory unless ``--database-url``
names an empty PostgreSQL one), seeds an organization with a few accounts and products (the helpers of
``bench/ingest.py``), starts ``meterbook serve`` on 127.0.0.1 and then measures two phases of
``--seconds`` each:

1. **quiet**: one client asks ``GET /healthz`` on a kept-alive connection, one request at a time with
   ``--interval`` between them, and records each latency;
2. **attacked**: the same, while ``--clients`` processes (6, as in the review) each keep sending
   ``POST /v1/events`` with a body of ``--events`` valid events of the seeded organization (about 1 MB for
   10,000) and a key that is not one: a well-formed unknown key (the default), a malformed one, or none.
   Each sends its next request as soon as the previous is answered (closed loop), from a second before the
   first probe to the last, and no longer; a connection the server closes is opened again. Only 127.0.0.1
   is ever contacted.

It prints p50, p99 and the maximum of ``/healthz`` in each phase, what the attackers got (statuses, requests
per second), the server's CPU in each phase, and the machine (cores, CPU model, load average before and
after), then stops the server and removes its files. With ``--json``, one JSON document last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.ingest import (  # noqa: E402
    cpu_model,
    describe_database,
    exchange,
    free_port,
    git_commit,
    load_average,
    migrate_database,
    percentile,
    process_tree_cpu,
    seed,
    start_server,
    stop_server,
    tail,
    wait_healthy,
)

#: A probe that waits this long counts as lost: the server is as good as down for it.
PROBE_TIMEOUT = 30.0
KEYS = ("unknown", "malformed", "missing")


def authorization(kind: str) -> bytes:
    if kind == "unknown":  # the shape of a real key, so that it is looked up
        return f"Authorization: Bearer mbk_{uuid.uuid4().hex}_{os.urandom(24).hex()}\r\n".encode()
    if kind == "malformed":
        return b"Authorization: Bearer not-a-meterbook-key\r\n"
    return b""


def attack_body(account_ids: list[str], product_ids: list[str], events: int) -> bytes:
    """Events that would validate and be applied, were the key good: the most work a body can ask for."""
    occurred = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    batch = [
        {
            "id": f"stall-{uuid.uuid4().hex}",
            "account_id": account_ids[index % len(account_ids)],
            "type": "metered",
            "product_id": product_ids[index % len(product_ids)],
            "quantity": "1.5",
            "occurred_at": occurred,
        }
        for index in range(events)
    ]
    return json.dumps(batch, separators=(",", ":")).encode()


@dataclass
class AttackResult:
    client: int
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    seconds: float = 0.0
    error: str | None = None


async def attack(base_url: str, request: bytes, ready: Barrier, stop: Event, result: AttackResult) -> None:
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    statuses: Counter[str] = Counter()
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = await asyncio.open_connection(host, port)
    ready.wait()  # blocks the loop, which has nothing else to do yet
    started = time.monotonic()
    try:
        while not stop.is_set():
            if connection is None:
                connection = await asyncio.open_connection(host, port)
            try:
                status, _ = await asyncio.wait_for(exchange(*connection, request), PROBE_TIMEOUT)
            except (ConnectionError, asyncio.IncompleteReadError, RuntimeError, TimeoutError):
                # The server closed the connection (or said it would): open another, as a client would.
                connection[1].close()
                connection = None
                result.reconnects += 1
                continue
            statuses[str(status)] += 1
            result.requests += 1
    finally:
        if connection is not None:
            connection[1].close()
        result.statuses = dict(statuses)
        result.seconds = time.monotonic() - started


def attacker(base_url: str, request: bytes, client: int, nice: int, ready: Barrier, stop: Event, results: Any) -> None:
    """One attacking process: connect, wait for the others, then send until told to stop."""
    result = AttackResult(client=client)
    try:
        os.nice(nice)
        asyncio.run(attack(base_url, request, ready, stop, result))
    except BaseException as error:  # reported to the parent
        result.error = f"client {client}: {type(error).__name__}: {error}"
        ready.abort()
    results.put(asdict(result))


@dataclass
class Phase:
    name: str
    probes: int
    lost: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_seconds: float | None
    attack_requests: int = 0
    attack_requests_per_second: float = 0.0
    attack_statuses: dict[str, int] = field(default_factory=dict)
    attack_reconnects: int = 0


async def probe(base_url: str, seconds: float, interval: float) -> tuple[list[float], int]:
    """``GET /healthz`` one at a time on one kept-alive connection: each latency, and how many were lost."""
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    lost = 0
    connection = await asyncio.open_connection(host, port)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            sent = time.perf_counter()
            try:
                status, _ = await asyncio.wait_for(exchange(*connection, request), PROBE_TIMEOUT)
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                lost += 1
                connection[1].close()
                connection = await asyncio.open_connection(host, port)
                continue
            if status != 200:
                raise RuntimeError(f"GET /healthz answered {status}")
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(interval)
    finally:
        connection[1].close()
    return latencies, lost


def measure(name: str, base_url: str, server_pid: int, args: argparse.Namespace, request: bytes | None = None) -> Phase:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = context.Barrier(args.clients + 1)
    stop = context.Event()
    processes = []
    if request is not None:
        processes = [
            context.Process(
                target=attacker, args=(base_url, request, client, args.nice, ready, stop, results), daemon=True
            )
            for client in range(args.clients)
        ]
    collected: list[dict[str, Any]] = []
    try:
        for process in processes:
            process.start()
        if processes:
            with contextlib.suppress(threading.BrokenBarrierError):  # a client that failed says why below
                ready.wait(timeout=120)
            time.sleep(1.0)  # every attacker has a request in the server before the first probe
        cpu_before = process_tree_cpu(server_pid)
        latencies, lost = asyncio.run(probe(base_url, args.seconds, args.interval))
        cpu_after = process_tree_cpu(server_pid)
        stop.set()
        collected = [results.get(timeout=PROBE_TIMEOUT + 60) for _ in processes]
        for process in processes:
            process.join(timeout=30)
    finally:
        stop.set()
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    errors = [item["error"] for item in collected if item["error"]]
    if errors:
        raise RuntimeError("; ".join(errors))
    if not latencies:
        raise RuntimeError(f"{name}: no probe of /healthz was answered within {PROBE_TIMEOUT:.0f} s")
    statuses: Counter[str] = Counter()
    for item in collected:
        statuses.update(item["statuses"])
    requests = sum(item["requests"] for item in collected)
    seconds = max((item["seconds"] for item in collected), default=0.0)
    return Phase(
        name=name,
        probes=len(latencies),
        lost=lost,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=max(latencies) * 1000,
        server_cpu_seconds=cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None,
        attack_requests=requests,
        attack_requests_per_second=requests / seconds if seconds else 0.0,
        attack_statuses=dict(sorted(statuses.items())),
        attack_reconnects=sum(item["reconnects"] for item in collected),
    )


def print_phase(phase: Phase, seconds: float) -> None:
    cpu = "n/a" if phase.server_cpu_seconds is None else f"{phase.server_cpu_seconds / seconds:.0%} of a core"
    line = (
        f"{phase.name:<9} /healthz p50 {phase.p50_ms:8.2f} ms  p99 {phase.p99_ms:8.2f} ms  max {phase.max_ms:8.2f} ms "
        f"({phase.probes} probes, {phase.lost} lost); server CPU {cpu}"
    )
    if phase.attack_requests or phase.attack_statuses:
        statuses = ", ".join(f"{status}: {count}" for status, count in phase.attack_statuses.items())
        line += (
            f"; attackers {phase.attack_requests} requests ({phase.attack_requests_per_second:.1f}/s; {statuses}; "
            f"{phase.attack_reconnects} reconnects)"
        )
        if phase.server_cpu_seconds is not None and phase.attack_requests:
            # Closed loop: a server that refuses faster is sent more, so what each refusal costs is steadier.
            line += (
                f"; server CPU per attacking request {phase.server_cpu_seconds / phase.attack_requests * 1000:.2f} ms"
            )
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase (default 20)")
    parser.add_argument("--clients", type=int, default=6, help="attacking processes (default 6)")
    parser.add_argument("--events", type=int, default=10_000, help="events in each attacking body (default 10,000)")
    parser.add_argument("--key", choices=KEYS, default="unknown", help="the key the attackers send (default unknown)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the attacking processes (default 0; 10 or more leaves the server and the probe the CPU "
        "that remote attackers would not take from them)",
    )
    parser.add_argument("--interval", type=float, default=0.02, help="pause between probes, s (default 0.02)")
    parser.add_argument(
        "--database-url", help="default: a fresh SQLite file; a PostgreSQL URL must name an empty database"
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (PostgreSQL only; default 1)")
    parser.add_argument("--server-log-level", default="warning", help="the server's log level (default warning)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document, last")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 600 or args.clients < 1 or args.clients > 64:
        parser.error("--seconds must be in (0, 600], --clients in 1..64")
    if not 1 <= args.events <= 10_000 or args.interval < 0:
        parser.error("--events must be 1..10,000, --interval at least 0")
    if (args.database_url is None or args.database_url.startswith("sqlite")) and args.workers != 1:
        parser.error("SQLite is served by one worker process: use --workers 1, or PostgreSQL")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="meterbook-stall-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    port = free_port()
    log_path = workdir / "server.log"
    commit = git_commit()
    load_before = load_average()
    print(f"meterbook stall benchmark — commit {commit}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine   {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}, "
        f"Python {platform.python_version()}; load average before: {load_before}"
    )
    phases: list[Phase] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        database = describe_database(database_url, "FULL")
        print(f"database  {database}", flush=True)
        migrate_database(database_url, "FULL")
        seeded = seed(database_url, 10, 3, "FULL")
        server: subprocess.Popen[bytes] = start_server(
            database_url, port, args.workers, args.server_log_level, "FULL", log_path
        )
        cleanup.callback(stop_server, server)
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(server, base_url, log_path)
        body = attack_body(seeded.account_ids, seeded.product_ids, args.events)
        request = (
            b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (port, authorization(args.key), len(body), body)
        )
        print(
            f"load      {args.clients} clients, each POST /v1/events with {args.events:,} events "
            f"({len(body) / 2**20:.2f} MB) and a {args.key} key, closed loop; "
            f"/healthz every {args.interval * 1000:.0f} ms; {args.seconds:.0f} s a phase; "
            f"server: {args.workers} worker(s), log level {args.server_log_level}",
            flush=True,
        )
        try:
            for name, attacking in (("quiet", None), ("attacked", request)):
                phase = measure(name, base_url, server.pid, args, attacking)
                phases.append(phase)
                print_phase(phase, args.seconds)
        except Exception:
            print(f"the end of the server's log:\n{tail(log_path)}", file=sys.stderr)
            raise
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}:\n{tail(log_path)}")
    quiet, attacked = phases
    print(
        f"summary   /healthz p50 {quiet.p50_ms:.2f} -> {attacked.p50_ms:.2f} ms, "
        f"p99 {quiet.p99_ms:.2f} -> {attacked.p99_ms:.2f} ms under attack; load average after: {load_average()}"
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
                    "load_average_before": load_before,
                    "load_average_after": load_average(),
                    "clients": args.clients,
                    "events": args.events,
                    "body_bytes": len(body),
                    "key": args.key,
                    "seconds": args.seconds,
                    "phases": [asdict(phase) for phase in phases],
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
