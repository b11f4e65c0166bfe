"""Read latency at scale, end to end: a real server, real HTTP, a database holding a big history.

    .venv/bin/python bench/reads.py --quick          # a small history, in well under a minute (SQLite)
    .venv/bin/python bench/reads.py                  # 10,000,000 events, 1,000 accounts x 50 products x 12 months
    .venv/bin/python bench/reads.py --database-url postgresql+psycopg://user@host/empty_db

What it does: seeds the database with ``bench/seed.py`` (``seed_history``: an organization, its accounts,
products, usage events and their monthly aggregates, a billing run of every month, payments and voids);
starts ``meterbook serve`` on it as a subprocess (always stopped at the end) with the helpers of
``bench/ingest.py``; then sends ``--reads`` requests of each kind below over one keep-alive HTTP
connection, one request at a time, the kinds taken in turn (so that a burst of load from elsewhere
on the machine touches every kind alike), after a few unmeasured warm-up requests of each:

- ``talkdesk-account``: ``GET /express/usage/month`` (organization key) filtered on one random account;
- ``talkdesk-account-quarter``: the same with three months (``month ge … and month le … and account_id eq …``);
- ``talkdesk-month``: one random month across every account, a random page among the first twenty;
- ``talkdesk-account-key``: an account key's own usage of one month;
- ``faraday-billing``: ``GET /v1/accounts/{id}/billing`` of a random account (organization key);
- ``cloudflare-first``: ``GET /client/v4/user/billing/history`` page 1, newest first (organization key);
- ``cloudflare-deep``: a random page anywhere up to the last one, 50 items a page (organization key);
- ``cloudflare-filtered``: payments only (``type=payment``), or subscriptions since a month before last,
  in turn, a random page of the first ten (organization key);
- ``cloudflare-ordered``: ordered by ``type`` or ``action`` (in turn), a random page up to the last;
- ``cloudflare-account-key``: an account key's history (its account and subaccounts), page 1.

``floor-healthz`` (``GET /healthz``, no key) shows what HTTP and the framework cost by themselves.
Every answer must be a 200 with the expected shape. It prints p50 / p99 / max of each kind, the peak
resident memory of the server's processes (sampled from ``/proc`` every 20 ms), the machine, the
database and the meterbook commit; ``--json`` adds one JSON document. The mean CPU time the server process
spent per request of each kind is shown too: on a shared machine it varies much less than latency.
``--repeat R`` measures R times on the same server and reports each figure's median (the maximum: the
largest); ``--seeded FILE`` reuses a database seeded before (the JSON ``bench/seed.py --json`` prints).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.ingest import (  # noqa: E402
    cpu_model,
    describe_database,
    free_port,
    git_commit,
    load_average,
    start_server,
    stop_server,
    tail,
    wait_healthy,
)
from bench.seed import SeededHistory, seed_history  # noqa: E402

QUICK = {"accounts": 40, "products": 10, "months": 6, "events": 200_000}
FULL = {"accounts": 1000, "products": 50, "months": 12, "events": 10_000_000}


@dataclass
class Kind:
    """One kind of read: what to request next, and what a good answer looks like."""

    name: str
    next_request: Callable[[random.Random], tuple[str, dict[str, str]]]
    check: Callable[[Any], None]
    latencies: list[float] = field(default_factory=list)
    #: CPU seconds the server process used while answering, summed over the measured requests.
    server_cpu: float = 0.0


@dataclass
class Figure:
    name: str
    reads: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    #: Mean CPU time of the server process per request: what the read costs, whatever else runs on the machine.
    server_cpu_ms: float | None


def figure_of(kind: Kind) -> Figure:
    return Figure(
        name=kind.name,
        reads=len(kind.latencies),
        p50_ms=percentile(kind.latencies, 0.50) * 1000,
        p99_ms=percentile(kind.latencies, 0.99) * 1000,
        max_ms=max(kind.latencies) * 1000,
        mean_ms=statistics.fmean(kind.latencies) * 1000,
        server_cpu_ms=kind.server_cpu / len(kind.latencies) * 1000 if kind.latencies else None,
    )


def median_figure(figures: list[Figure]) -> Figure:
    """Each figure's median over runs of the same kind (the noise of a shared machine differs from run to run)."""
    cpus = [figure.server_cpu_ms for figure in figures if figure.server_cpu_ms is not None]
    return Figure(
        name=figures[0].name,
        reads=sum(figure.reads for figure in figures),
        p50_ms=statistics.median(figure.p50_ms for figure in figures),
        p99_ms=statistics.median(figure.p99_ms for figure in figures),
        max_ms=max(figure.max_ms for figure in figures),
        mean_ms=statistics.median(figure.mean_ms for figure in figures),
        server_cpu_ms=statistics.median(cpus) if cpus else None,
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value that at least ``q`` of the values do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- the server's memory ---------------------------------------------------------------------------


def tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and its descendants, from /proc (0 where there is no /proc)."""
    proc = Path("/proc")
    parents: dict[int, int] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            for line in (proc / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class MemorySampler(threading.Thread):
    """Samples the server tree's resident memory every ``interval`` seconds and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.interval, self.peak, self.last = pid, interval, 0, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.last = tree_rss_bytes(self.pid)
            self.peak = max(self.peak, self.last)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


# --- the reads -------------------------------------------------------------------------------------


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _url(path: str, **params: Any) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _talkdesk_check(body: Any) -> None:
    assert body["count"] == len(body["_embedded"]["usage"]), body
    assert body["total"] >= body["count"], body


def _cloudflare_check(body: Any) -> None:
    assert body["success"] is True, body
    assert body["result_info"]["count"] == len(body["result"]), body


def _faraday_check(body: Any) -> None:
    assert set(body) == {"invoices", "payments", "usages"}, body
    assert body["invoices"], body


def build_kinds(seeded: SeededHistory, history_items: int, payment_items: int) -> list[Kind]:
    org = _bearer(seeded.organization_key)
    accounts, keys, months = seeded.account_ids, seeded.account_keys, seeded.months
    month_pages = max(1, min(20, len(accounts) * len(seeded.product_ids) // 50))
    last_page = max(1, math.ceil(history_items / 50))
    payment_pages = max(1, min(10, math.ceil(payment_items / 20)))
    since = f"{months[-2] if len(months) > 1 else months[-1]}-01T00:00:00Z"
    turn = {"filtered": 0, "ordered": 0}

    def talkdesk_account(chooser: random.Random) -> tuple[str, dict[str, str]]:
        account = chooser.choice(accounts)
        return _url("/express/usage/month", filter=f"account_id eq '{account}'"), org

    def talkdesk_quarter(chooser: random.Random) -> tuple[str, dict[str, str]]:
        account = chooser.choice(accounts)
        first = chooser.randrange(max(1, len(months) - 2))
        last = min(first + 2, len(months) - 1)
        text = f"month ge '{months[first]}' and month le '{months[last]}' and account_id eq '{account}'"
        return _url("/express/usage/month", filter=text), org

    def talkdesk_month(chooser: random.Random) -> tuple[str, dict[str, str]]:
        page = chooser.randint(1, month_pages)
        return _url("/express/usage/month", filter=f"month eq '{chooser.choice(months)}'", page=page), org

    def talkdesk_account_key(chooser: random.Random) -> tuple[str, dict[str, str]]:
        key = chooser.choice(keys)
        return _url("/express/usage/month", filter=f"month eq '{chooser.choice(months)}'"), _bearer(key)

    def faraday(chooser: random.Random) -> tuple[str, dict[str, str]]:
        return f"/v1/accounts/{chooser.choice(accounts)}/billing", org

    def cloudflare_first(_chooser: random.Random) -> tuple[str, dict[str, str]]:
        return _url("/client/v4/user/billing/history", page=1, per_page=20), org

    def cloudflare_deep(chooser: random.Random) -> tuple[str, dict[str, str]]:
        return _url("/client/v4/user/billing/history", page=chooser.randint(1, last_page), per_page=50), org

    def cloudflare_filtered(chooser: random.Random) -> tuple[str, dict[str, str]]:
        turn["filtered"] += 1
        if turn["filtered"] % 2:
            params: dict[str, Any] = {"type": "payment", "page": chooser.randint(1, payment_pages)}
        else:
            params = {"action": "subscription", "occurred_at": since, "page": chooser.randint(1, 10)}
        return _url("/client/v4/user/billing/history", per_page=20, **params), org

    def cloudflare_ordered(chooser: random.Random) -> tuple[str, dict[str, str]]:
        turn["ordered"] += 1
        order = "type" if turn["ordered"] % 2 else "action"
        page = chooser.randint(1, last_page)
        return _url("/client/v4/user/billing/history", order=order, page=page, per_page=50), org

    def cloudflare_account_key(chooser: random.Random) -> tuple[str, dict[str, str]]:
        return _url("/client/v4/user/billing/history", page=1, per_page=20), _bearer(chooser.choice(keys))

    def healthz(_chooser: random.Random) -> tuple[str, dict[str, str]]:
        return "/healthz", {}

    return [
        # The floor: HTTP, the framework and one trivial query, no key and no reading of the history.
        Kind("floor-healthz", healthz, lambda _body: None),
        Kind("talkdesk-account", talkdesk_account, _talkdesk_check),
        Kind("talkdesk-account-quarter", talkdesk_quarter, _talkdesk_check),
        Kind("talkdesk-month", talkdesk_month, _talkdesk_check),
        Kind("talkdesk-account-key", talkdesk_account_key, _talkdesk_check),
        Kind("faraday-billing", faraday, _faraday_check),
        Kind("cloudflare-first", cloudflare_first, _cloudflare_check),
        Kind("cloudflare-deep", cloudflare_deep, _cloudflare_check),
        Kind("cloudflare-filtered", cloudflare_filtered, _cloudflare_check),
        Kind("cloudflare-ordered", cloudflare_ordered, _cloudflare_check),
        Kind("cloudflare-account-key", cloudflare_account_key, _cloudflare_check),
    ]


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of one process so far, from /proc; None where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(base_url: str, kinds: list[Kind], reads: int, warmup: int, server_pid: int, seed: int = 6) -> None:
    """Every kind in turn, one request at a time; the server's CPU is read around each request.

    /proc counts CPU in clock ticks (10 ms), so one request's reading is coarse, but their sum over
    hundreds of requests is not biased: the mean per request is what the figures show.
    """
    chooser = random.Random(seed)
    with httpx.Client(base_url=base_url, timeout=60.0) as http:
        for number in range(warmup + reads):
            for kind in kinds:
                url, headers = kind.next_request(chooser)
                cpu_before = process_cpu(server_pid)
                sent = time.perf_counter()
                response = http.get(url, headers=headers)
                elapsed = time.perf_counter() - sent
                cpu_after = process_cpu(server_pid)
                if response.status_code != 200:
                    raise RuntimeError(f"{kind.name}: GET {url} answered {response.status_code}: {response.text[:500]}")
                kind.check(response.json())
                if number >= warmup:
                    kind.latencies.append(elapsed)
                    if cpu_before is not None and cpu_after is not None:
                        kind.server_cpu += cpu_after - cpu_before


def history_size(base_url: str, seeded: SeededHistory) -> tuple[int, int]:
    """How many history items the organization key sees, and how many of them are payments."""
    org = _bearer(seeded.organization_key)
    with httpx.Client(base_url=base_url, timeout=60.0) as http:
        every = http.get("/client/v4/user/billing/history", params={"per_page": 5}, headers=org).json()
        paid = http.get("/client/v4/user/billing/history", params={"per_page": 5, "type": "payment"}, headers=org)
    return int(every["result_info"]["total_count"]), int(paid.json()["result_info"]["total_pages"]) * 5


# --- the report ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database (default: a SQLite file in a temp dir)")
    parser.add_argument("--events", type=int, help=f"usage events (default {FULL['events']:,})")
    parser.add_argument("--accounts", type=int, help=f"accounts (default {FULL['accounts']:,})")
    parser.add_argument("--products", type=int, help=f"products (default {FULL['products']})")
    parser.add_argument("--months", type=int, help=f"billed months (default {FULL['months']})")
    parser.add_argument("--reads", type=int, help="measured requests of each kind (default 400; --quick: 100)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests of each kind first (default 5)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure this many times on the same server; medians reported (default 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small history: " + ", ".join(f"{k} {v:,}" for k, v in QUICK.items())
    )
    parser.add_argument("--seeded", type=Path, help="reuse a seeded database: the JSON `bench/seed.py --json` printed")
    parser.add_argument("--port", type=int, help="port for the server (default: a free one)")
    parser.add_argument("--server-log-level", default="warning")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    args = parser.parse_args(argv)
    size = {**(QUICK if args.quick else FULL)}
    for name in size:
        if getattr(args, name) is not None:
            size[name] = getattr(args, name)
    reads = args.reads or (100 if args.quick else 400)

    workdir = Path(tempfile.mkdtemp(prefix="meterbook-reads-"))
    port = args.port or free_port()
    log_path = workdir / "server.log"
    commit = git_commit()
    print(f"meterbook read benchmark — commit {commit}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine   {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}, Python {platform.python_version()}; "
        f"load average before: {load_average()}",
        flush=True,
    )
    # The server imports meterbook as this process does (PYTHONPATH can point both at another checkout).
    print(f"code      {Path(sys.modules['meterbook'].__file__ or '?').parent}")
    server = None
    sampler = None
    seed_seconds: float | None = None
    try:
        if args.seeded is not None:
            seeded = SeededHistory(**json.loads(args.seeded.read_text()))
            database_url = seeded.database_url
        else:
            database_url = args.database_url or f"sqlite:///{workdir / 'reads.db'}"
        database = describe_database(database_url, os.environ.get("METERBOOK_SQLITE_SYNCHRONOUS", "FULL"))
        print(f"database  {database}", flush=True)
        if args.seeded is None:
            print(f"seeding   {', '.join(f'{k} {v:,}' for k, v in size.items())}", flush=True)
            seeded = seed_history(
                database_url,
                accounts=size["accounts"],
                products=size["products"],
                months=size["months"],
                events=size["events"],
            )
            seed_seconds = seeded.seconds
        else:
            print(f"seeded    reusing {args.seeded} ({seeded.events:,} events, {len(seeded.account_ids):,} accounts)")
        server = start_server(database_url, port, 1, args.server_log_level, "FULL", log_path)
        sampler = MemorySampler(server.pid)
        sampler.start()
        base_url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        wait_healthy(server, base_url, log_path, timeout=1800.0)
        print(f"server    up in {time.perf_counter() - started:.1f} s on {base_url} (migrating first)", flush=True)
        items, payments = history_size(base_url, seeded)
        print(
            f"history   {items:,} items ({payments:,} payments); {reads} reads of each kind, {args.repeat} run(s)",
            flush=True,
        )
        runs: list[list[Figure]] = []
        for number in range(args.repeat):
            kinds = build_kinds(seeded, items, payments)
            measure(base_url, kinds, reads, args.warmup, server.pid, seed=6 + number)
            runs.append([figure_of(kind) for kind in kinds])
            if args.repeat > 1:
                print(f"run {number + 1}     load average {load_average()}", flush=True)
        after_reads_rss = sampler.last
    except Exception:
        if server is not None and server.poll() is not None:
            print(f"the server stopped:\n{tail(log_path)}", file=sys.stderr)
        raise
    finally:
        if sampler is not None:
            sampler.stop()
        if server is not None:
            stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)

    figures = [median_figure([run[index] for run in runs]) for index in range(len(runs[0]))]
    if seed_seconds is not None:
        print(f"seed      {seed_seconds:.1f} s ({seeded.events:,} events, {seeded.aggregates:,} aggregates)")
    each = " (median of the runs; p99 of each run)" if len(runs) > 1 else ""
    print(f"{'read':<26} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8} {'server CPU ms':>14}{each}")
    for index, figure in enumerate(figures):
        cpu = f"{figure.server_cpu_ms:14.1f}" if figure.server_cpu_ms is not None else f"{'n/a':>14}"
        p99s = f"  ({' / '.join(f'{run[index].p99_ms:.1f}' for run in runs)})" if len(runs) > 1 else ""
        print(
            f"{figure.name:<26} {figure.p50_ms:8.1f} {figure.p99_ms:8.1f} {figure.max_ms:8.1f} "
            f"{figure.mean_ms:8.1f} {cpu}{p99s}"
        )
    peak = sampler.peak if sampler is not None else 0
    print(f"server RSS peak {peak / 2**20:,.0f} MiB (after the reads {after_reads_rss / 2**20:,.0f} MiB)")
    print(f"load average after: {load_average()}")
    if args.json:
        print(
            json.dumps(
                {
                    "commit": commit,
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform()},
                    "database": database,
                    "size": size if args.seeded is None else None,
                    "events": seeded.events,
                    "history_items": items,
                    "seed_seconds": seed_seconds,
                    "server_rss_peak_bytes": peak,
                    "reads": [asdict(figure) for figure in figures],
                    # Each run's own figures, when there are several (``reads`` holds their medians).
                    **({"runs": [[asdict(figure) for figure in run] for run in runs]} if len(runs) > 1 else {}),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
