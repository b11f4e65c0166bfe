"""Prometheus metrics: what every request costs, and what the business saw happen.

Counters are bumped by the API layer after a request's transaction has committed, so a refused or
rolled-back request never counts as accepted events, credits or invoices.

One process (the default, and SQLite's only mode) keeps its metrics in memory. ``meterbook serve
--workers N`` runs N processes; it points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before
they start, each worker writes its values there, and any worker answering a scrape adds up every
worker's: one scrape shows the whole server, as an operator expects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "UNMATCHED_ROUTE",
    "IngestOutcome",
    "observe_request",
    "prepare_multiprocess",
    "record_billing_run",
    "record_group_fallback",
    "record_ingest",
    "record_payment",
    "record_webhook_delivered",
    "record_webhook_failed",
    "record_webhook_retried",
    "render",
    "set_webhook_backlog_age",
]

#: The variable prometheus-client reads, at import, to keep values in files shared by processes.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The route label of a request no route matched: raw paths would make a series per scanner probe.
UNMATCHED_ROUTE = "unmatched"

# Ingestion answers in milliseconds, a batch of 10,000 events or a billing run in seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "meterbook_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "meterbook_http_request_duration_seconds",
    "Time from the request's arrival to the end of its reply, by method, route template and status.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
CONFLICTS = Counter(
    "meterbook_conflicts",
    "Requests refused with 409: an id reused with other content, a change to something closed.",
    ["route"],
)
EVENTS_ACCEPTED = Counter("meterbook_events_accepted", "Usage events applied (new ids), from every dialect.")
EVENTS_DUPLICATE = Counter(
    "meterbook_events_duplicate", "Usage events whose id had been applied already with the same content."
)
CREDITS_DEBITED = Counter("meterbook_credits_debited", "Credits taken from balances by usage.")
BILLING_RUNS = Counter("meterbook_billing_runs", "Billing runs that invoiced a month (a repeated run is not counted).")
INVOICES_ISSUED = Counter("meterbook_invoices_issued", "Invoices issued by billing runs.")
PAYMENTS_RECORDED = Counter("meterbook_payments_recorded", "Payments recorded (an identical retry is not counted).")
WEBHOOKS_DELIVERED = Counter("meterbook_webhooks_delivered", "Webhook deliveries a receiver answered with a 2xx.")
WEBHOOKS_RETRIED = Counter(
    "meterbook_webhooks_retried", "Webhook attempts that failed and will be tried again (a 5xx, no answer, ...)."
)
WEBHOOKS_FAILED = Counter(
    "meterbook_webhooks_failed", "Webhook deliveries given up: every attempt failed, or the endpoint was disabled."
)
# Each worker sets it from the same database after each of its passes: the largest live value is the answer.
WEBHOOKS_BACKLOG_AGE = Gauge(
    "meterbook_webhooks_oldest_undelivered_age_seconds",
    "Age of the oldest webhook delivery still pending (0: none), as the worker last saw it.",
    multiprocess_mode="livemax",
)


# The labelled series of each (method, route, status) seen, so that a request pays one dict lookup, not
# prometheus-client's label validation and locking: routes are templates, so this stays small.
_REQUEST_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    series = _REQUEST_SERIES.get((method, route, status))
    if series is None:
        labels = (method, route, str(status))
        series = _REQUEST_SERIES.setdefault(
            (method, route, status), (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
        )
    series[0].inc()
    series[1].observe(seconds)
    if status == 409:
        CONFLICTS.labels(route).inc()


class IngestOutcome(Protocol):
    @property
    def accepted(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def credits_debited(self) -> int: ...


def record_ingest(outcome: IngestOutcome) -> None:
    """After an ingestion's transaction committed: count its new and duplicate events and the credits debited."""
    EVENTS_ACCEPTED.inc(outcome.accepted)
    EVENTS_DUPLICATE.inc(outcome.duplicates)
    if outcome.credits_debited:
        CREDITS_DEBITED.inc(outcome.credits_debited)


GROUP_FALLBACKS = Counter(
    "meterbook_group_commit_fallbacks",
    "Merged groups of ingestion requests applied one request at a time instead, by why: one of them was refused "
    "(refused, expected now and then) or the merged attempt failed otherwise (error: look at the logs).",
    ["reason"],
)


def record_group_fallback(reason: str) -> None:
    GROUP_FALLBACKS.labels(reason=reason).inc()


def record_billing_run(created: bool, invoice_count: int) -> None:
    if created:
        BILLING_RUNS.inc()
        INVOICES_ISSUED.inc(invoice_count)


def record_payment(created: bool) -> None:
    if created:
        PAYMENTS_RECORDED.inc()


def record_webhook_delivered() -> None:
    WEBHOOKS_DELIVERED.inc()


def record_webhook_retried() -> None:
    WEBHOOKS_RETRIED.inc()


def record_webhook_failed() -> None:
    WEBHOOKS_FAILED.inc()


def set_webhook_backlog_age(seconds: float) -> None:
    WEBHOOKS_BACKLOG_AGE.set(seconds)


def prepare_multiprocess(directory: Path) -> None:
    """Before worker processes start: an empty directory for their values, named in the environment they inherit.

    Files left by an earlier server would add its counts to this one's, so the directory is emptied.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)


def render() -> bytes:
    """The text exposition of every metric; across all workers when they share a directory."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
