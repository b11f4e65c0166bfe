"""A soak: minutes of mixed reads and writes at about 80% of the server's measured maximum (not in CI).

    .venv/bin/python bench/soak.py                    # 10 minutes, SQLite file (synchronous=FULL) in a temp dir
    .venv/bin/python bench/soak.py --minutes 1        # a quick try
    .venv/bin/python bench/soak.py --rate 120         # skip the probe: 120 requests/s
    .venv/bin/python bench/soak.py --database-url postgresql+psycopg://user@host/empty_db --workers 2

What it does: seeds a fresh database with a small billed history (``bench.seed.seed_history``: accounts,
products, usage, invoices, payments), grants every account plenty of credits, starts ``meterbook serve``
on it (the helpers of ``bench/ingest.py``), then

1. probes the maximum: ``--probe-concurrency`` closed-loop workers send the mix below for ``--probe-seconds`` (120),
   printing the rate of each 30 s;
   the rate they reach is the maximum (``--rate`` skips this and gives the rate directly);
2. soaks: requests fall due at a fixed pace of ``--load`` (0.8) times that maximum for ``--minutes``, whatever
   the answers do (open loop), each kind chosen at random by its weight, and wait in a queue for one of
   ``--connections`` senders (default: as many as the probe kept in flight, so that the server never sees more
   concurrency than when its maximum was measured). A request's latency runs from the moment it fell due to
   its answer, so a server that falls behind shows it in its latencies; more than 2,000 requests waiting
   counts each further one as an error;
3. prints each minute: requests and errors, p50/p95/p99 of each kind, the server's resident memory (its
   process tree, from /proc) and the load average; at the end a verdict on errors (target 0), latency drift
   (the median p99 of the last third of the minutes against the first third's) and memory growth (from the
   end of the first minute to the end), and checks that the database holds exactly the events acknowledged.

The mix (weights): reads ``faraday-billing`` (an account's billing view) 1, ``talkdesk-month`` (a month page)
1, ``cloudflare-history`` (a page of the billing history) 1, ``credit-balance`` 1; writes ``events-batch``
(100 metered events) 1, ``events-single`` (one metered event) 3, ``credit-debit`` (one credit event) 2.
Any answer other than the expected 200 (or a broken connection, or a timeout of 30 s) is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
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
    megabytes,
    meterbook_command,
    process_tree_rss,
    start_server,
    stop_server,
    stored_events,
    tail,
    wait_healthy,
)
from bench.seed import SeededHistory, seed_history  # noqa: E402

SEED_SIZE = {"accounts": 100, "products": 10, "months": 3, "events": 100_000}
BATCH = 100
GRANT = 10**15
WEIGHTS = {
    "faraday-billing": 1,
    "talkdesk-month": 1,
    "cloudflare-history": 1,
    "credit-balance": 1,
    "events-batch": 1,
    "events-single": 3,
    "credit-debit": 2,
}
#: More requests than this due but not yet sent means the server has stopped keeping up: those are errors.
MAX_BACKLOG = 2000
#: Seconds between the rates a long probe prints.
PROBE_REPORT = 30.0
#: Drift and growth a soak may show and still pass (a shared 2-core machine is noisy).
MAX_P99_RATIO = 1.5
MAX_GROWTH = 0.10
MAX_GROWTH_BYTES = 16 * 2**20


# --- the requests ----------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: Any = None
    #: Events a write sends (all must be accepted): the database is checked against their sum at the end.
    events: int = 0


class Mix:
    """Builds the next request of each kind: random accounts, months and pages, unique event ids."""

    def __init__(self, seeded: SeededHistory, history_pages: int, seed: int) -> None:
        self.seeded = seeded
        self.org = {"Authorization": f"Bearer {seeded.organization_key}"}
        self.history_pages = max(1, history_pages)
        self.rng = random.Random(seed)
        self.tag = f"soak-{uuid.uuid4().hex[:8]}"
        self.number = 0
        self.kinds = list(WEIGHTS)
        self.weights = [WEIGHTS[kind] for kind in self.kinds]
        self.builders: dict[str, Callable[[], Call]] = {
            "faraday-billing": self._faraday,
            "talkdesk-month": self._talkdesk,
            "cloudflare-history": self._cloudflare,
            "credit-balance": self._balance,
            "events-batch": lambda: self._events(BATCH, "metered"),
            "events-single": lambda: self._events(1, "metered"),
            "credit-debit": lambda: self._events(1, "credit"),
        }

    def next(self) -> tuple[str, Call]:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        return kind, self.builders[kind]()

    def _account(self) -> str:
        return self.rng.choice(self.seeded.account_ids)

    def _faraday(self) -> Call:
        return Call("GET", f"/v1/accounts/{self._account()}/billing", self.org)

    def _talkdesk(self) -> Call:
        month = self.rng.choice(self.seeded.months)
        query = urlencode({"filter": f"month eq '{month}'", "page": self.rng.randint(1, 5)})
        return Call("GET", f"/express/usage/month?{query}", self.org)

    def _cloudflare(self) -> Call:
        query = urlencode({"page": self.rng.randint(1, self.history_pages), "per_page": 20})
        return Call("GET", f"/client/v4/user/billing/history?{query}", self.org)

    def _balance(self) -> Call:
        return Call("GET", f"/v1/accounts/{self._account()}/credits", self.org)

    def _events(self, count: int, kind: str) -> Call:
        events = []
        for _ in range(count):
            self.number += 1
            event: dict[str, Any] = {"id": f"{self.tag}-{self.number}", "account_id": self._account(), "type": kind}
            if kind == "metered":
                event["product_id"] = self.rng.choice(self.seeded.product_ids)
                event["quantity"] = str(Decimal(self.rng.randint(1, 600)) / 10)
            else:
                event["quantity"] = 1
            events.append(event)
        return Call("POST", "/v1/events", self.org, events, count)


def check(call: Call, response: httpx.Response) -> str | None:
    """None if the answer is the one expected, else what is wrong with it."""
    if response.status_code != 200:
        return f"{call.method} {call.url} answered {response.status_code}: {response.text[:300]}"
    if call.events and response.json() != {"accepted": call.events, "duplicates": 0}:
        return f"{call.method} {call.url} answered {response.text[:300]} for {call.events} new events"
    return None


# --- the measurements ------------------------------------------------------------------------------


@dataclass
class Minute:
    number: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    rss_end: int = 0
    rss_peak: int = 0
    load: str = ""
    #: CPU seconds this process (the load generator) used in the minute: a saturated generator is not a slow server.
    generator_cpu: float = 0.0

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values()) + self.errors

    def every_latency(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value that at least ``q`` of the values do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


class Soak:
    def __init__(self, base_url: str, server_pid: int, mix: Mix) -> None:
        self.base_url = base_url
        self.server_pid = server_pid
        self.mix = mix
        self.accepted_events = 0
        self.error_samples: list[str] = []

    def _client(self, connections: int) -> httpx.AsyncClient:
        # Idle connections are dropped here before uvicorn drops them (after 5 s, httpx's default too): else a
        # request sent just as the server closes its connection fails, which is the client's doing, not the server's.
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0)
        return httpx.AsyncClient(base_url=self.base_url, timeout=30.0, limits=limits)

    async def _send(self, http: httpx.AsyncClient, call: Call) -> str | None:
        try:
            response = await http.request(call.method, call.url, headers=call.headers, json=call.body)
        except httpx.HTTPError as error:
            return f"{call.method} {call.url}: {error!r}"
        problem = check(call, response)
        if problem is None:
            self.accepted_events += call.events
        return problem

    def _error(self, problem: str) -> None:
        if len(self.error_samples) < 10:
            self.error_samples.append(problem)

    async def probe(self, seconds: float, concurrency: int) -> float:
        """Requests per second the mix reaches with ``concurrency`` requests always in flight.

        Prints the rate of each 30 s of a longer probe: a rate that falls as the database grows shows that
        the first seconds overstate what the server sustains.
        """
        done = 0
        started = time.monotonic()
        deadline = started + seconds
        async with self._client(concurrency) as http:

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    _, call = self.mix.next()
                    problem = await self._send(http, call)
                    if problem is not None:
                        self._error(problem)
                    done += 1

            async def report() -> None:
                # Every 30 s but the last: the total that the probe returns covers that one.
                counted = 0
                for mark in range(1, math.ceil(seconds / PROBE_REPORT)):
                    await asyncio.sleep(started + mark * PROBE_REPORT - time.monotonic())
                    rate, counted = (done - counted) / PROBE_REPORT, done
                    print(f"probe     {mark * PROBE_REPORT:4.0f} s: {rate:,.1f}/s", flush=True)

            reporter = asyncio.create_task(report())
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            reporter.cancel()
            return done / (time.monotonic() - started)

    async def soak(self, rate: float, minutes: int, connections: int) -> list[Minute]:
        """Requests leave a queue at ``rate`` per second; ``connections`` senders take them, one at a time each."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        slots = [Minute(number + 1) for number in range(minutes)]
        # The backlog waits here (cheap), not in the HTTP client's pool, whose bookkeeping grows with its waiters.
        due_calls: asyncio.Queue[tuple[str, Call, float] | None] = asyncio.Queue()

        def minute_of(moment: float) -> Minute:
            return slots[min(minutes - 1, int((moment - start) // 60))]

        async def sender(http: httpx.AsyncClient) -> None:
            while (item := await due_calls.get()) is not None:
                kind, call, due = item
                problem = await self._send(http, call)
                finished = loop.time()
                slot = minute_of(finished)
                if problem is None:
                    slot.latencies[kind].append(finished - due)
                else:
                    slot.errors += 1
                    self._error(problem)

        async def memory() -> None:
            while True:
                await asyncio.sleep(1.0)
                rss = await asyncio.to_thread(process_tree_rss, self.server_pid) or 0
                slot = minute_of(loop.time())
                slot.rss_end = rss
                slot.rss_peak = max(slot.rss_peak, rss)

        async def report() -> None:
            cpu = time.process_time()
            for slot in slots:
                await asyncio.sleep(max(0.0, start + slot.number * 60 - loop.time()))
                slot.load = load_average()
                slot.generator_cpu, cpu = time.process_time() - cpu, time.process_time()
                if slot.number < minutes:
                    print_minute(slot, rate)

        sampler = asyncio.create_task(memory())
        reporter = asyncio.create_task(report())
        async with self._client(connections) as http:
            senders = [asyncio.create_task(sender(http)) for _ in range(connections)]
            interval = 1.0 / rate
            for number in range(int(minutes * 60 * rate)):
                due = start + number * interval
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                kind, call = self.mix.next()
                if due_calls.qsize() >= MAX_BACKLOG:
                    minute_of(due).errors += 1
                    self._error(f"{due_calls.qsize()} requests waiting to be sent: the server is not keeping up")
                    continue
                due_calls.put_nowait((kind, call, due))
            for _ in senders:
                due_calls.put_nowait(None)
            await asyncio.gather(*senders)
        await reporter
        sampler.cancel()
        slots[-1].rss_end = process_tree_rss(self.server_pid) or slots[-1].rss_end
        print_minute(slots[-1], rate)
        return slots


def print_minute(slot: Minute, rate: float) -> None:
    every = slot.every_latency()
    print(
        f"minute {slot.number:>2}  {slot.requests:>6,} requests ({slot.requests / 60:,.1f}/s, target {rate:,.1f}/s)  "
        f"errors {slot.errors}  p50 {percentile(every, 0.5) * 1000:6.1f}  p95 {percentile(every, 0.95) * 1000:6.1f}  "
        f"p99 {percentile(every, 0.99) * 1000:6.1f} ms  server RSS {megabytes(slot.rss_end)} "
        f"(peak {megabytes(slot.rss_peak)})  generator CPU {slot.generator_cpu / 60:.0%}  load {slot.load}",
        flush=True,
    )
    for kind in WEIGHTS:
        values = slot.latencies.get(kind, [])
        if values:
            print(
                f"    {kind:<20} {len(values):>6,}  p50 {percentile(values, 0.5) * 1000:6.1f}  "
                f"p95 {percentile(values, 0.95) * 1000:6.1f}  p99 {percentile(values, 0.99) * 1000:6.1f} ms",
                flush=True,
            )


def verdict(slots: list[Minute]) -> tuple[bool, list[str]]:
    lines = []
    errors = sum(slot.errors for slot in slots)
    requests = sum(slot.requests for slot in slots)
    errors_ok = errors == 0
    lines.append(f"errors    {'PASS' if errors_ok else 'FAIL'}: {errors} of {requests:,} requests (target 0)")
    first, last = slots[0], slots[-1]
    # Drift is a trend, so the last third of the minutes is set against the first third, each by its median
    # minute: one slow minute at either end (a neighbour's burst on a shared machine) neither hides nor fakes it.
    third = max(1, len(slots) // 3)
    early, late = slots[:third], slots[-third:]

    def p99_of(minutes: list[Minute], kind: str | None = None) -> float:
        return statistics.median(
            percentile(slot.every_latency() if kind is None else slot.latencies.get(kind, []), 0.99) for slot in minutes
        )

    early_p99, late_p99 = p99_of(early), p99_of(late)
    ratio = late_p99 / early_p99 if early_p99 > 0 else float("nan")
    drift_ok = len(slots) < 2 or ratio <= MAX_P99_RATIO
    per_kind = ", ".join(
        f"{kind} {p99_of(late, kind) / p99_of(early, kind):.2f}"
        for kind in WEIGHTS
        if all(slot.latencies.get(kind) for slot in early + late)
    )
    span = "minute 1" if third == 1 else f"minutes 1-{third}"
    last_span = f"minute {last.number}" if third == 1 else f"minutes {last.number - third + 1}-{last.number}"
    lines.append(
        f"drift     {'PASS' if drift_ok else 'FAIL'}: median p99 {early_p99 * 1000:.1f} ms in {span}, "
        f"{late_p99 * 1000:.1f} ms in {last_span}: x{ratio:.2f} (at most x{MAX_P99_RATIO}); "
        f"per kind: {per_kind}" + ("" if len(slots) > 1 else " (one minute: nothing to compare)")
    )
    p99s = [percentile(slot.every_latency(), 0.99) * 1000 for slot in slots]
    lines.append(f"          p99 by minute, ms: {' '.join(f'{value:.0f}' for value in p99s)}")
    growth = last.rss_end - first.rss_end
    allowed = max(MAX_GROWTH_BYTES, MAX_GROWTH * first.rss_end)
    memory_ok = len(slots) < 2 or growth <= allowed
    lines.append(
        f"memory    {'PASS' if memory_ok else 'FAIL'}: server RSS {megabytes(first.rss_end)} after minute 1, "
        f"{megabytes(last.rss_end)} at the end ({growth / 2**20:+.1f} MB; at most +{allowed / 2**20:.0f} MB)"
    )
    lines.append(f"          RSS by minute, MB: {' '.join(f'{slot.rss_end / 2**20:.0f}' for slot in slots)}")
    return errors_ok and drift_ok and memory_ok, lines


# --- setup and the run -----------------------------------------------------------------------------


def grant_everyone(base_url: str, seeded: SeededHistory) -> None:
    headers = {"Authorization": f"Bearer {seeded.organization_key}"}
    with httpx.Client(base_url=base_url, timeout=60.0, headers=headers) as http:
        for account in seeded.account_ids:
            response = http.post(f"/v1/accounts/{account}/credits", json={"id": f"soak-{account}", "amount": GRANT})
            if response.status_code not in (200, 201):
                raise RuntimeError(f"granting credits answered {response.status_code}: {response.text[:300]}")


def history_pages(base_url: str, seeded: SeededHistory) -> int:
    headers = {"Authorization": f"Bearer {seeded.organization_key}"}
    with httpx.Client(base_url=base_url, timeout=60.0, headers=headers) as http:
        body = http.get("/client/v4/user/billing/history", params={"per_page": 20}).json()
    return int(body["result_info"]["total_pages"])


def run_verify(database_url: str) -> tuple[int, str]:
    env = {**os.environ, "METERBOOK_DATABASE_URL": database_url}
    done = subprocess.run(
        [*meterbook_command(), "verify"], env=env, capture_output=True, text=True, check=False, timeout=3600
    )
    text = " ".join((done.stdout + done.stderr).split())
    # Its progress bars surround the one sentence that matters.
    found = re.search(r"No differences[^.]*\.|\d+ differences \([^)]*\)", text)
    return done.returncode, found.group(0) if found else text[-300:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=int, default=10, help="length of the soak (default 10)")
    parser.add_argument("--rate", type=float, help="requests per second to soak at (default: --load x the probe's)")
    parser.add_argument("--load", type=float, default=0.8, help="share of the probed maximum to soak at (default 0.8)")
    parser.add_argument(
        "--probe-seconds",
        type=float,
        default=120.0,
        help="length of the probe (default 120: a 30 s probe on a fresh database overstated what SQLite sustains)",
    )
    parser.add_argument("--probe-concurrency", type=int, default=16, help="requests in flight in the probe (16)")
    parser.add_argument(
        "--connections",
        type=int,
        help="connections the soak may open (default: --probe-concurrency, so that the "
        "server sees no more concurrency than when its maximum was measured; requests beyond wait in the client)",
    )
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database (default: a SQLite file in a temp dir)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (PostgreSQL only)")
    parser.add_argument("--events", type=int, default=SEED_SIZE["events"], help="usage events seeded first")
    parser.add_argument("--no-verify", action="store_true", help="skip `meterbook verify` at the end")
    args = parser.parse_args(argv)
    if args.minutes < 1:
        parser.error("--minutes must be at least 1")
    if (args.database_url is None or args.database_url.startswith("sqlite")) and args.workers != 1:
        parser.error("SQLite is served by one worker process: use --workers 1, or PostgreSQL")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="meterbook-soak-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'soak.db'}"
    log_path = workdir / "server.log"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    print(f"meterbook soak — commit {git_commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine   {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}, Python {platform.python_version()}; "
        f"load average before: {load_average()}"
    )
    server: subprocess.Popen[bytes] | None = None
    try:
        print(f"database  {describe_database(database_url, 'FULL')}", flush=True)
        size = {**SEED_SIZE, "events": args.events}
        print(f"seeding   {', '.join(f'{k} {v:,}' for k, v in size.items())}", flush=True)
        seeded = seed_history(database_url, progress=False, **size)
        server = start_server(database_url, port, args.workers, "warning", "FULL", log_path)
        wait_healthy(server, base_url, log_path, timeout=600.0)
        grant_everyone(base_url, seeded)
        pages = history_pages(base_url, seeded)
        before = stored_events(database_url)
        soak = Soak(base_url, server.pid, Mix(seeded, pages, seed=11))
        weights = ", ".join(f"{kind} {weight}" for kind, weight in WEIGHTS.items())
        print(f"mix       {weights} (batches of {BATCH} events)", flush=True)
        if args.rate is None:
            maximum = asyncio.run(soak.probe(args.probe_seconds, args.probe_concurrency))
            rate = maximum * args.load
            print(
                f"probe     {maximum:,.1f} requests/s with {args.probe_concurrency} in flight for "
                f"{args.probe_seconds:.0f} s ({len(soak.error_samples)} errors); soaking at {args.load:.0%}: "
                f"{rate:,.1f}/s",
                flush=True,
            )
        else:
            rate = args.rate
            print(f"rate      {rate:,.1f} requests/s (given)", flush=True)
        probe_errors = list(soak.error_samples)
        soak.error_samples.clear()
        slots = asyncio.run(soak.soak(rate, args.minutes, args.connections or args.probe_concurrency))
        stored = stored_events(database_url) - before
        passed, lines = verdict(slots)
        print("\n".join(lines))
        stored_ok = stored == soak.accepted_events
        print(
            f"events    {'PASS' if stored_ok else 'FAIL'}: {stored:,} events stored by the probe and the soak, "
            f"{soak.accepted_events:,} acknowledged"
        )
        passed = passed and stored_ok and not probe_errors
        for problem in probe_errors + soak.error_samples:
            print(f"error     {problem}")
        stop_server(server)
        if not args.no_verify:
            code, last_line = run_verify(database_url)
            print(f"verify    {'PASS' if code == 0 else 'FAIL'}: {last_line}")
            passed = passed and code == 0
        print(f"verdict   {'PASS' if passed else 'FAIL'}; load average after: {load_average()}")
        return 0 if passed else 1
    except Exception:
        if server is not None and server.poll() is not None:
            print(f"the server stopped:\n{tail(log_path)}", file=sys.stderr)
        raise
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
