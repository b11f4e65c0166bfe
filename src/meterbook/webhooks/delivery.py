"""Delivering one event to one endpoint: the handler of the ``webhook.deliver`` job.

Each attempt follows the Standard Webhooks specification: the stored body, byte for byte, with
``webhook-id`` (the event's id, the same on every attempt and endpoint), ``webhook-timestamp`` (when this
attempt was signed) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, once per
live secret, space-separated). Any 2xx is delivered. Anything else (another status, a redirect, which is never
followed, no answer within the timeout, a refused destination) is retried after :data:`RETRY_DELAYS`, each
±10 % so that a receiver coming back is not hit by every sender at once; after the last the delivery fails.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

from meterbook import __version__, jobs, metrics
from meterbook.jobs import Done, Failed, Job, JobContext, Outcome, Retry
from meterbook.webhooks import repository, safety
from meterbook.webhooks.models import Attempt, DeliveryTarget
from meterbook.webhooks.service import DELIVERY_JOB

__all__ = ["MAX_RESPONSE_BYTES", "RETRY_DELAYS", "AttemptResult", "deliver", "next_delay", "send", "signature"]

#: After the 1st, 2nd... failed attempt, the next comes this much later (±10 %): 8 attempts over about 27.6 hours
#: (at least 24.8 with the jitter), then the delivery fails.
RETRY_DELAYS: Final = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER: Final = 0.1
#: What is read of a receiver's answer at most; the rest is never read.
MAX_RESPONSE_BYTES: Final = 64 * 1024
#: Longer than an attempt can take (the timeout, twice: headers, then the body), so that no other worker claims
#: the job while it runs.
LEASE: Final = timedelta(minutes=2)


def next_delay(failed_attempts: int, rng: random.Random | None = None) -> timedelta | None:
    """How long after the ``failed_attempts``-th failure to try again; None: give up."""
    if failed_attempts > len(RETRY_DELAYS):
        return None
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return RETRY_DELAYS[failed_attempts - 1] * factor


def signature(secrets: tuple[str, ...], event_id: str, signed_at: datetime, body: str) -> str:
    """``v1,<sig>`` per secret, space-separated: while a rotation's grace period runs, either secret verifies."""
    return " ".join(Webhook(secret).sign(event_id, signed_at, body) for secret in secrets)


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


def _pinned(url: str, allow_private: bool) -> tuple[str, dict[str, str], dict[str, str]] | str:
    """The URL to connect to, with the Host header and TLS name, pinned to an address checked just now; or
    why the destination is refused. Connecting to the checked address (not resolving again) leaves no gap
    for the name to resolve elsewhere in between."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if allow_private:
        return url, {}, {}
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = safety.resolve(host, port)
    except (OSError, UnicodeError) as error:
        return f"could not resolve {host}: {error}"
    problem = safety.refusal(addresses)
    if problem is not None:
        return f"refused: {host} goes to {problem} (METERBOOK_WEBHOOK_ALLOW_PRIVATE is off)"
    address = addresses[0]
    if safety.is_ip_literal(host):
        return url, {}, {}
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    headers = {"host": parts.netloc.rsplit("@", 1)[-1]}
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), headers, extensions


_client_lock = threading.Lock()
_shared_client: httpx.Client | None = None


def _client() -> httpx.Client:
    """One client for every attempt of this process: making one builds a TLS context (some 45 ms of CPU), and its
    pool keeps connections to a receiver open between deliveries. Attempts set their own timeout; it follows no
    redirect, and ignores proxies from the environment (a proxy would make the address check meaningless)."""
    global _shared_client
    with _client_lock:
        if _shared_client is None:
            _shared_client = httpx.Client(follow_redirects=False, trust_env=False)
        return _shared_client


def send(target: DeliveryTarget, *, timeout: float, allow_private: bool) -> AttemptResult:
    """One attempt: sign now, POST, read at most 64 KiB of the answer, never follow a redirect."""
    started = time.monotonic()

    def result(status_code: int | None, error: str | None) -> AttemptResult:
        return AttemptResult(status_code, round((time.monotonic() - started) * 1000), error)

    pinned = _pinned(target.url, allow_private)
    if isinstance(pinned, str):
        return result(None, pinned)
    url, pin_headers, extensions = pinned
    # Signed at the wall clock's time (whatever clock schedules the job): receivers check it against theirs.
    signed_at = datetime.now(UTC)
    event_id = str(target.event_id)
    headers = {
        "content-type": "application/json",
        "user-agent": f"meterbook/{__version__} (webhooks)",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": signature(target.secrets, event_id, signed_at, target.body),
        **pin_headers,
    }
    deadline = started + 2 * timeout
    try:
        with _client().stream(
            "POST",
            url,
            content=target.body.encode(),
            headers=headers,
            extensions=extensions,
            timeout=httpx.Timeout(timeout),
        ) as response:
            answer = bytearray()
            for chunk in response.iter_bytes():
                answer.extend(chunk)
                if len(answer) >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                    break
            status = response.status_code
    except httpx.TimeoutException:
        return result(None, f"no answer within {timeout:g} s")
    except httpx.ConnectError as error:
        return result(None, f"could not connect: {error}"[:300])
    except httpx.HTTPError as error:
        return result(None, f"{type(error).__name__}: {error}"[:300])
    if 200 <= status < 300:
        return result(status, None)
    if 300 <= status < 400:
        where = response.headers.get("location", "")
        return result(status, f"redirected ({status}) to {where[:200]!r}: redirects are not followed")
    text = bytes(answer[:300]).decode("utf-8", "replace").strip()
    return result(status, f"HTTP {status}" + (f": {text}" if text else ""))


def deliver(job: Job, context: JobContext) -> Outcome:
    """The ``webhook.deliver`` handler: one attempt, and what to do next."""
    delivery_id = uuid.UUID(job.payload["delivery_id"])
    now = context.now
    with context.database.read() as conn:
        target = repository.delivery_target(conn, delivery_id, now)
    if target is None or target.status != "pending":
        return Done()  # the endpoint was deleted, or another claim finished it
    if not target.enabled:
        return Failed(
            "the endpoint is disabled",
            record=lambda conn: repository.finish_delivery(conn, delivery_id, "failed", now),
        )
    settings = context.settings
    outcome = send(target, timeout=settings.webhook_timeout_seconds, allow_private=settings.webhook_allow_private)
    attempt = Attempt(target.attempt_count + 1, now, outcome.status_code, outcome.duration_ms, outcome.error)
    if outcome.delivered:
        return Done(
            record=lambda conn: repository.record_attempt(
                conn, delivery_id, attempt, status="delivered", next_attempt_at=None, finished_at=now
            ),
            after_commit=metrics.record_webhook_delivered,
        )
    delay = next_delay(attempt.number)
    if delay is None:
        return Failed(
            outcome.error or "failed",
            record=lambda conn: repository.record_attempt(
                conn, delivery_id, attempt, status="failed", next_attempt_at=None, finished_at=now
            ),
            after_commit=metrics.record_webhook_failed,
        )
    at = now + delay
    return Retry(
        at,
        outcome.error or "failed",
        record=lambda conn: repository.record_attempt(
            conn, delivery_id, attempt, status="pending", next_attempt_at=at, finished_at=None
        ),
        after_commit=metrics.record_webhook_retried,
    )


jobs.register(DELIVERY_JOB, deliver, lease=LEASE, max_attempts=len(RETRY_DELAYS) + 10)
