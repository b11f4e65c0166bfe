"""Every figure of issue 6 (performance), issue 18's two (tiered plans) and issue 19's (alerts), against its target.

    .venv/bin/python -m bench                   # the full sizes (about an hour on a 2-core machine, more with 10M)
    .venv/bin/python -m bench --quick           # small sizes of everything, about three minutes
    .venv/bin/python -m bench --quick --check   # CI: exit 1 only on a gross regression or a benchmark that fails
    .venv/bin/python -m bench --only ingest-sqlite --only billing
    .venv/bin/python -m bench --only ingest-tiered --only billing-tiered      # issue 18's figures
    .venv/bin/python -m bench --only ingest-alerts                            # issue 19's figure

Each benchmark runs as a subprocess (bench/ingest.py, bench/reads.py, bench/billing.py) that creates its own
database, starts its own server where it needs one, and prints one JSON document last; this script collects
the medians into one table: figure, target, measured, the gross-regression floor, and a status, followed by
the command that produced each figure. PostgreSQL: the server named by ``--postgres-url`` or
``METERBOOK_BENCH_POSTGRES_URL`` (a database is created on it and dropped), or else a throwaway durable cluster
started here. The results are also written to bench/results/ (not versioned).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ingest import cpu_model, git_commit, load_average

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
QUICK_BILLING_ACCOUNTS = 1_000
#: The status that fails ``--check``: not "regression", since a figure may never have been near its target.
GROSSLY_OFF = "FAIL (grossly off)"
#: Figures whose size (not just run length) differs in quick mode.
QUICK_SIZED = ("preload_ratio", "reads_p99", "billing", "billing_tiered")
#: Billing figures: 10,000 accounts, QUICK_BILLING_ACCOUNTS in quick mode with the target scaled linearly.
BILLING_FIGURES = ("billing", "billing_tiered")


@dataclass(frozen=True)
class Target:
    title: str
    unit: str
    target: float
    higher_is_better: bool
    #: Where today's server is already below a tenth of the target, the floor under which ``--check`` fails is
    #: set from today's quick figure instead (about a fifth of it), so that CI catches a gross regression of the
    #: server as it is rather than failing until the target is near. Remove an entry once the figure clears a tenth.
    interim_floor: float | None = None
    #: A floor of its own where a tenth of the target says nothing: a ratio of like to like (two loads on one
    #: server, say) near 0.09 would be a broken server, not a regression. Not interim: it stays, and holds at quick
    #: sizes too (it is not scaled with the target).
    check_floor: float | None = None

    def floor(self) -> float:
        if self.interim_floor is not None:
            return self.interim_floor
        if self.check_floor is not None:
            return self.check_floor
        return self.target / 10 if self.higher_is_better else self.target * 10


TARGETS: dict[str, Target] = {
    "ingest_sqlite": Target("batched ingestion, SQLite, 1,000 events/request", "events/s", 100_000, True, 1_500),
    "store_ratio": Target("  the same, HTTP rate / store layer alone", "ratio", 0.5, True),
    "single_event": Target("single-event requests, SQLite, keep-alive", "req/s", 2_000, True),
    "ingest_postgres": Target("batched ingestion, PostgreSQL (local, durable)", "events/s", 40_000, True, 1_000),
    "preload_ratio": Target("ingestion with 10M events stored / empty", "ratio", 0.6, True),
    "reads_p99": Target("reads with 10M events, p99 of the slowest read", "ms", 25, False),
    "billing": Target("billing run, 10,000 accounts", "s", 15, False),
    "tiered_ratio": Target(
        "batched ingestion, accounts on a tiered plan / per-unit, same run", "ratio", 0.9, True, check_floor=0.6
    ),
    "billing_tiered": Target("billing run, 10,000 accounts on tiered plans", "s", 15, False),
    "alerts_ratio": Target(
        "batched ingestion, accounts with 10 alerts each and an endpoint for every event / none, same run",
        "ratio",
        0.9,
        True,
        check_floor=0.4,
    ),
    "server_rss": Target("server RSS peak through all of the above", "MB", 500, False),
}


@dataclass
class Figure:
    key: str
    measured: float | None = None
    status: str = "not run"
    detail: str = ""
    command: str = ""
    target: float | None = None

    def judge(self, target: Target, scaled_target: float | None = None) -> None:
        self.target = scaled_target if scaled_target is not None else target.target
        if self.measured is None:
            return
        floor = target.floor() if scaled_target is None else self._scaled_floor(target, scaled_target)
        if target.higher_is_better:
            meets, gross = self.measured >= self.target, self.measured < floor
        else:
            meets, gross = self.measured <= self.target, self.measured > floor
        self.status = "pass" if meets else GROSSLY_OFF if gross else "below target"

    @staticmethod
    def _scaled_floor(target: Target, scaled_target: float) -> float:
        if target.check_floor is not None:  # a floor of its own holds at every size
            return target.check_floor
        return scaled_target / 10 if target.higher_is_better else scaled_target * 10


class StepFailed(Exception):
    pass


@dataclass
class Context:
    quick: bool
    postgres_url: str | None
    postgres_workers: int
    timeout: float
    python: str = sys.executable
    figures: dict[str, Figure] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    postgres_stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    postgres_server: str | None = None

    def figure(self, key: str) -> Figure:
        return self.figures.setdefault(key, Figure(key))

    def postgres(self) -> str:
        """The maintenance URL of the PostgreSQL server to use, starting a throwaway one the first time if need be."""
        if self.postgres_server is None:
            if self.postgres_url:
                self.postgres_server = self.postgres_url
            else:
                from bench.pgserver import throwaway_postgres

                print("starting a throwaway PostgreSQL cluster (durable settings) ...", flush=True)
                self.postgres_server = self.postgres_stack.enter_context(throwaway_postgres())
        return self.postgres_server


def display(argv: list[str]) -> str:
    """The command as a person would type it from the repository root."""
    shown = [".venv/bin/python" if arg == sys.executable else arg for arg in argv]
    shown = [str(Path(arg).relative_to(REPO)) if arg.startswith(str(REPO)) else arg for arg in shown]
    return shlex.join(shown)


def run_json(ctx: Context, name: str, argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a benchmark script, echo its output indented, and return the JSON document it prints last."""
    print(f"\n== {name}: {display(argv)}", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []

    def echo() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if not line.startswith("{"):
                print(f"   | {line.rstrip()}"[:400], flush=True)

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        process.wait(timeout=ctx.timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the benchmark scripts stop their own servers on it.
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        raise StepFailed(f"{name} did not finish within {ctx.timeout:.0f} s") from None
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=60)
        raise
    reader.join(timeout=10)
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    if process.returncode != 0:
        raise StepFailed(f"{name} exited with {process.returncode}: {lines[-1] if lines else ''}")
    for line in reversed(lines):
        if line.startswith("{"):
            document: dict[str, Any] = json.loads(line)
            return document
    raise StepFailed(f"{name} printed no JSON document")


def ingest_argv(ctx: Context, *options: str) -> list[str]:
    return [ctx.python, str(BENCH / "ingest.py"), *options, "--json"]


def runs_text(result: dict[str, Any], key: str, fmt: str) -> str:
    return " / ".join(format(run[key], fmt) for run in result["runs"])


def note_rss(ctx: Context, name: str, result: dict[str, Any]) -> None:
    if result.get("server_peak_rss_bytes"):
        ctx.rss[name] = int(result["server_peak_rss_bytes"])


# --- the benchmarks -----------------------------------------------------------------------------------


def ingest_sqlite_options(ctx: Context) -> list[str]:
    return ["--events", "10000", "--repeat", "3"] if ctx.quick else ["--events", "1000000", "--repeat", "3"]


def bench_ingest_sqlite(ctx: Context) -> None:
    argv = ingest_argv(ctx, *ingest_sqlite_options(ctx))
    batched, ratio = ctx.figure("ingest_sqlite"), ctx.figure("store_ratio")
    batched.command = ratio.command = display(argv)
    result = run_json(ctx, "batched ingestion, SQLite", argv)
    ctx.results["ingest_sqlite"] = result
    ctx.databases["sqlite"] = result["database"].split(" /")[0]
    note_rss(ctx, "ingest-sqlite", result)
    batched.measured = result["median_events_per_second"]
    batched.detail = (
        f"{result['events']:,} events x {len(result['runs'])} runs: {runs_text(result, 'events_per_second', ',.0f')}; "
        f"p99 {result['median_p99_ms']:.0f} ms"
    )
    store = result["store"]
    ratio.measured = store["ratio_median"]
    ratio.detail = (
        f"store layer alone {store['median_events_per_second']:,.0f} events/s; "
        f"each run's ratio {' / '.join(f'{r:.2f}' for r in store['ratios'])}"
    )


#: Single-event load: 2 generator processes x 32 keep-alive connections, one request in flight on each.
SINGLE_EVENT_CLIENTS, SINGLE_EVENT_CONNECTIONS = 2, 32


def bench_single_event(ctx: Context) -> None:
    events = "400" if ctx.quick else "10000"
    argv = ingest_argv(
        ctx,
        *("--batch", "1", "--events", events, "--repeat", "3"),
        *("--clients", str(SINGLE_EVENT_CLIENTS), "--connections", str(SINGLE_EVENT_CONNECTIONS)),
    )
    figure = ctx.figure("single_event")
    figure.command = display(argv)
    result = run_json(ctx, "single-event requests, SQLite", argv)
    note_rss(ctx, "single-event", result)
    figure.measured = result["median_requests_per_second"]
    # The generators share the machine with the server: their own CPU is part of the figure's honesty.
    generator_share = max(run["generator_cpu_seconds"] / run["seconds"] for run in result["runs"])
    figure.detail = (
        f"{result['events']:,} requests x {len(result['runs'])} runs, "
        f"{SINGLE_EVENT_CLIENTS * SINGLE_EVENT_CONNECTIONS} in flight: "
        f"{runs_text(result, 'requests_per_second', ',.0f')}; "
        f"p50 {result['median_p50_ms']:.1f} ms, p99 {result['median_p99_ms']:.1f} ms; "
        f"load generators at most {generator_share:.0%} of a core"
    )


def bench_ingest_postgres(ctx: Context) -> None:
    from bench.pgserver import temporary_database

    events = "10000" if ctx.quick else "1000000"
    figure = ctx.figure("ingest_postgres")
    options = ["--events", events, "--repeat", "3", "--workers", str(ctx.postgres_workers), "--no-store-alone"]
    figure.command = display(ingest_argv(ctx, "--database-url", "<a new database>", *options))
    with temporary_database(ctx.postgres()) as url:
        result = run_json(ctx, "batched ingestion, PostgreSQL", ingest_argv(ctx, "--database-url", url, *options))
    database = str(result["database"])
    ctx.databases["postgresql"] = "PostgreSQL " + database[database.find("(") + 1 : database.rfind(")")]
    note_rss(ctx, "ingest-postgres", result)
    figure.measured = result["median_events_per_second"]
    figure.detail = (
        f"{result['events']:,} events x {len(result['runs'])} runs, {ctx.postgres_workers} worker(s): "
        f"{runs_text(result, 'events_per_second', ',.0f')}; p99 {result['median_p99_ms']:.0f} ms"
    )


def bench_preload(ctx: Context) -> None:
    figure = ctx.figure("preload_ratio")
    if not (BENCH / "seed.py").exists():
        figure.status, figure.detail = "not available", "bench/seed.py (seed_history) does not exist yet"
        return
    preload = "50000" if ctx.quick else "10000000"
    # Quick: a small history, so that seeding it (mostly billing its months) takes seconds.
    shape = ["--preload-accounts", "100", "--preload-products", "10", "--preload-months", "3"] if ctx.quick else []
    sizes = ["--events", "10000", "--repeat", "3"] if ctx.quick else ["--events", "200000", "--repeat", "3"]
    loaded_argv = ingest_argv(ctx, "--preload", preload, *shape, *sizes)
    empty_argv = ingest_argv(ctx, *sizes, "--no-store-alone")
    figure.command = f"{display(loaded_argv)}  vs  {display(empty_argv)}"
    empty = ctx.results.get("ingest_sqlite")
    if empty is None or sizes != ingest_sqlite_options(ctx):
        empty = run_json(ctx, "ingestion into an empty database (the baseline)", empty_argv)
        note_rss(ctx, "ingest-empty", empty)
    else:
        figure.command = f"{display(loaded_argv)}  vs  the batched SQLite run"
    loaded = run_json(ctx, f"ingestion with {int(preload):,} events stored", loaded_argv)
    note_rss(ctx, "ingest-preloaded", loaded)
    figure.measured = loaded["median_events_per_second"] / empty["median_events_per_second"]
    figure.detail = (
        f"{loaded['median_events_per_second']:,.0f} events/s with {int(preload):,} stored "
        f"(seeded in {loaded['preload']['seconds']:,.0f} s) against {empty['median_events_per_second']:,.0f} empty"
    )
    if ctx.quick:
        figure.detail += f"; quick: {int(preload):,} stored, not 10M"


def numbers_named(document: Any, suffix: str, path: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a JSON document whose key ends with ``suffix``, with its path."""
    if isinstance(document, dict):
        for key, value in document.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and str(key).endswith(suffix):
                yield here, float(value)
            else:
                yield from numbers_named(value, suffix, here)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from numbers_named(value, suffix, f"{path}[{index}]")


def bench_reads(ctx: Context) -> None:
    figure = ctx.figure("reads_p99")
    script = BENCH / "reads.py"
    if not script.exists():
        figure.status, figure.detail = "not available", "bench/reads.py does not exist yet"
        return
    argv = [ctx.python, str(script), *(["--quick"] if ctx.quick else []), "--json"]
    figure.command = display(argv)
    result = run_json(ctx, "reads", argv)
    ctx.results["reads"] = result
    # reads.py prints {"reads": [{"name": ..., "p99_ms": ...}, ...], "server_rss_peak_bytes": ...}; any other
    # *p99_ms it adds counts too, named by its path.
    named = {f"reads[{index}]": read.get("name") for index, read in enumerate(result.get("reads") or [])}
    p99s = [(named.get(path.rsplit(".", 1)[0]) or path, value) for path, value in numbers_named(result, "p99_ms")]
    if not p99s:
        raise StepFailed("bench/reads.py printed no figure named *p99_ms")
    slowest = max(p99s, key=lambda item: item[1])
    figure.measured = slowest[1]
    figure.detail = f"slowest: {slowest[0]}; p99 of each (ms): " + ", ".join(
        f"{name} {value:.1f}" for name, value in p99s
    )
    if result.get("events"):
        figure.detail += f"; {result['events']:,} events stored"
    rss = [value for path, value in numbers_named(result, "bytes") if "rss" in path.rsplit(".", 1)[-1]]
    if rss:
        ctx.rss["reads"] = int(max(rss))


def tiered_ingest_options(ctx: Context) -> list[str]:
    # An even number of pairs: bench/ingest.py alternates which load goes first, so drift cancels in the median.
    # Two pairs in the quick run (what CI checks, against a floor of 0.6): four at full size, where the figure counts.
    return ["--tiered", "--events", "10000" if ctx.quick else "200000", "--repeat", "2" if ctx.quick else "4"]


def bench_ingest_tiered(ctx: Context) -> None:
    argv = ingest_argv(ctx, *tiered_ingest_options(ctx))
    figure = ctx.figure("tiered_ratio")
    figure.command = display(argv)
    result = run_json(ctx, "batched ingestion, per-unit and tiered-plan accounts, SQLite", argv)
    ctx.results["ingest_tiered"] = result
    note_rss(ctx, "ingest-tiered", result)
    tiered = result.get("tiered")
    if not tiered:
        raise StepFailed("bench/ingest.py --tiered printed no 'tiered' figures")
    figure.measured = tiered["ratio_median"]
    figure.detail = (
        f"{tiered['median_events_per_second']:,.0f} events/s for accounts on a graduated plan against "
        f"{result['median_events_per_second']:,.0f} per-unit; {result['events']:,} events x {len(tiered['runs'])} "
        f"pairs in alternating order, each pair's ratio {' / '.join(f'{r:.2f}' for r in tiered['ratios'])}; "
        f"p99 {tiered['median_p99_ms']:.0f} against {result['median_p99_ms']:.0f} ms"
    )
    if tiered.get("cpu_ratio_median") is not None:
        figure.detail += (
            f"; by server CPU per event (per-unit/tiered, steadier under load) {tiered['cpu_ratio_median']:.2f}"
        )


def bench_ingest_alerts(ctx: Context) -> None:
    # Pairs in alternating order, as --tiered: two in the quick run, four at full size.
    argv = ingest_argv(
        ctx, "--alerts", "--events", "10000" if ctx.quick else "200000", "--repeat", "2" if ctx.quick else "4"
    )
    figure = ctx.figure("alerts_ratio")
    figure.command = display(argv)
    result = run_json(ctx, "batched ingestion, accounts without and with alerts, SQLite", argv)
    ctx.results["ingest_alerts"] = result
    note_rss(ctx, "ingest-alerts", result)
    alerts = result.get("alerts")
    if not alerts:
        raise StepFailed("bench/ingest.py --alerts printed no 'alerts' figures")
    figure.measured = alerts["ratio_median"]
    figure.detail = (
        f"{alerts['median_events_per_second']:,.0f} events/s for accounts with 10 alerts each against "
        f"{result['median_events_per_second']:,.0f} without; {result['events']:,} events x {len(alerts['runs'])} "
        f"pairs in alternating order, each pair's ratio {' / '.join(f'{r:.2f}' for r in alerts['ratios'])}; "
        f"{alerts.get('deliveries_received', 0):,} webhook deliveries received"
    )
    if alerts.get("cpu_ratio_median") is not None:
        figure.detail += f"; by server CPU per event (none/alerts) {alerts['cpu_ratio_median']:.2f}"


def bench_billing(ctx: Context, key: str = "billing", options: tuple[str, ...] = ()) -> None:
    figure = ctx.figure(key)
    sizes = ["--accounts", str(QUICK_BILLING_ACCOUNTS), "--reads", "50"] if ctx.quick else ["--accounts", "10000"]
    argv = [ctx.python, str(BENCH / "billing.py"), *options, *sizes, "--json"]
    # billing.py times one run on a database of its own: the median needs several invocations.
    repeat = 1 if ctx.quick else 3
    figure.command = display(argv) + (f"  ({repeat} times)" if repeat > 1 else "")
    what = "billing run" + (" on tiered plans" if "--tiered" in options else "")
    results = [run_json(ctx, f"{what} {number}/{repeat}", argv) for number in range(1, repeat + 1)]
    ctx.results[key] = results
    seconds = [result["billing_run_seconds"] for result in results]
    figure.measured = statistics.median(seconds)
    figure.detail = (
        f"{results[0]['invoices']:,} invoices; each run {' / '.join(f'{value:.2f}' for value in seconds)} s; "
        f"history page p99 {statistics.median(result['history_p99_ms'] for result in results):.1f} ms, "
        f"statement p99 {statistics.median(result['statement_p99_ms'] for result in results):.1f} ms"
    )
    if ctx.quick:
        figure.detail += f"; quick: {QUICK_BILLING_ACCOUNTS:,} accounts, target scaled linearly"


def bench_billing_tiered(ctx: Context) -> None:
    bench_billing(ctx, "billing_tiered", ("--tiered",))


STEPS: dict[str, tuple[Callable[[Context], None], tuple[str, ...]]] = {
    "ingest-sqlite": (bench_ingest_sqlite, ("ingest_sqlite", "store_ratio")),
    "single-event": (bench_single_event, ("single_event",)),
    "ingest-postgres": (bench_ingest_postgres, ("ingest_postgres",)),
    "preload": (bench_preload, ("preload_ratio",)),
    "reads": (bench_reads, ("reads_p99",)),
    "billing": (bench_billing, ("billing",)),
    "ingest-tiered": (bench_ingest_tiered, ("tiered_ratio",)),
    "billing-tiered": (bench_billing_tiered, ("billing_tiered",)),
    "ingest-alerts": (bench_ingest_alerts, ("alerts_ratio",)),
}


# --- the report ---------------------------------------------------------------------------------------


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.2f}"
    if unit in ("ms", "s"):
        return f"{value:,.2f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{value:,.0f} {unit}"


def bound(target: Target, value: float) -> str:
    return f"{'≥' if target.higher_is_better else '≤'} {show(value, target.unit)}"


def report(ctx: Context, header: dict[str, str], selected: list[str]) -> list[list[str]]:
    rows = [["figure", "target", "measured (median)", "check floor", "status"]]
    for key, target in TARGETS.items():
        figure = ctx.figure(key)
        if key != "server_rss" and not any(key in STEPS[step][1] for step in selected):
            continue
        scaled = figure.target if figure.target is not None else target.target
        floor = target.floor() if scaled == target.target else Figure._scaled_floor(target, scaled)
        interim = " (interim)" if target.interim_floor is not None and scaled == target.target else ""
        rows.append(
            [
                # Quick sizes are not the issue's sizes; the details below say which were used.
                f"{target.title} (quick size)" if ctx.quick and key in QUICK_SIZED else target.title,
                bound(target, scaled),
                show(figure.measured, target.unit),
                f"{show(floor, target.unit)}{interim}",
                figure.status,
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print()
    for name, value in header.items():
        print(f"{name:<10} {value}")
    print()
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print()
    for key in TARGETS:
        figure = ctx.figure(key)
        if figure.detail or figure.command:
            print(f"{TARGETS[key].title.strip()}:")
            if figure.detail:
                print(f"    {figure.detail}")
            if figure.command:
                print(f"    $ {figure.command}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes of every benchmark (about three minutes)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a figure is grossly off (below a tenth of its target, above ten times a time or memory "
        "target, or below its interim or own floor) or a benchmark fails; never on a figure merely short of its target",
    )
    parser.add_argument("--only", action="append", choices=sorted(STEPS), help="run only these (repeatable)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("METERBOOK_BENCH_POSTGRES_URL"),
        help="a PostgreSQL server to create the benchmark's database on (default: $METERBOOK_BENCH_POSTGRES_URL, "
        "else a throwaway cluster started here)",
    )
    parser.add_argument("--postgres-workers", type=int, default=2, help="server workers on PostgreSQL (default 2)")
    parser.add_argument("--timeout", type=float, help="seconds each benchmark may take (default 600 quick, 6 h full)")
    parser.add_argument("--json", action="store_true", help="also print every result as one JSON document, last")
    args = parser.parse_args(argv)
    selected = args.only or list(STEPS)
    ctx = Context(
        quick=args.quick,
        postgres_url=args.postgres_url,
        postgres_workers=args.postgres_workers,
        timeout=args.timeout or (600.0 if args.quick else 6 * 3600.0),
    )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    started, load_before = time.perf_counter(), load_average()
    ctx.databases["sqlite"] = f"SQLite {sqlite3.sqlite_version}"
    print(f"meterbook benchmarks ({'quick' if args.quick else 'full'}): {', '.join(selected)}", flush=True)
    try:
        for step in selected:
            function, keys = STEPS[step]
            try:
                function(ctx)
            except (StepFailed, RuntimeError, OSError, ValueError, KeyError) as error:
                print(f"   !! {step} failed: {error}", flush=True)
                for key in keys:
                    figure = ctx.figure(key)
                    figure.status, figure.detail = "error", f"{step} failed: {error}"[:600]
    finally:
        ctx.postgres_stack.close()

    for key, target in TARGETS.items():
        figure = ctx.figure(key)
        scaled = None
        if key in BILLING_FIGURES and ctx.quick:
            scaled = target.target * QUICK_BILLING_ACCOUNTS / 10_000
        if figure.measured is not None:
            figure.judge(target, scaled)
        elif scaled is not None:
            figure.target = scaled
    rss = ctx.figure("server_rss")
    if ctx.rss:
        name, peak = max(ctx.rss.items(), key=lambda item: item[1])
        rss.measured = peak / 2**20
        each = ", ".join(f"{step} {value / 2**20:,.0f}" for step, value in ctx.rss.items())
        rss.detail = (
            f"highest in {name}; {each} MB (the meterbook server's process tree, summed over its processes; "
            "PostgreSQL's own processes not included)"
        )
        rss.judge(TARGETS["server_rss"])

    header = {
        "machine": f"{os.cpu_count()} cores, {cpu_model()}, {platform.platform()}, Python {platform.python_version()}",
        "databases": "; ".join(ctx.databases.values()),
        "commit": git_commit(),
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "load avg": f"{load_before} before, {load_average()} after",
        "mode": f"{'quick' if args.quick else 'full'}, {time.perf_counter() - started:.0f} s",
    }
    report(ctx, header, selected)
    gross = [key for key, figure in ctx.figures.items() if figure.status in (GROSSLY_OFF, "error")]
    document = {
        "header": header,
        "figures": {
            key: {**asdict(figure), "title": TARGETS[key].title.strip()} for key, figure in ctx.figures.items()
        },
        "results": ctx.results,
    }
    with contextlib.suppress(OSError):
        RESULTS.mkdir(exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}{'-quick' if args.quick else ''}.json"
        (RESULTS / name).write_text(json.dumps(document, indent=1, default=str))
        print(f"\nresults written to {(RESULTS / name).relative_to(REPO)}")
    if args.json:
        print(json.dumps(document, default=str))
    if args.check:
        if gross:
            print(f"check: FAILED on {', '.join(gross)}")
            return 1
        print("check: no gross regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
