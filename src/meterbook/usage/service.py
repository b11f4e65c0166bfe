"""Ingestion: a batch of events is applied whole, exactly once per event id, or not at all.

In one transaction: validate every reference and rate each event that names a product (the catalog's
price in force when it occurred, the plan its account was on then), insert the events whose ids are new
(bulk, with ``ON CONFLICT DO NOTHING``), tell duplicates from conflicts by the content's fingerprint,
then apply the new events' effects: monthly aggregates, credit debits (never below credit_min) and
feature counts (never above the limit); last, the alerts those writes cross are decided (``alerts.service``).
New events dated in an invoiced month refuse the batch (invariant 9). Any refusal raises, and the caller's
transaction rolls everything back.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from meterbook import metrics
from meterbook.accounts.models import Principal
from meterbook.accounts.reach import reachable_archived_flags, require_organization
from meterbook.aggregates import service as aggregates
from meterbook.aggregates.models import month_of
from meterbook.aggregates.service import Rating
from meterbook.alerts import service as alerts
from meterbook.alerts.models import UsageWritten, Writes
from meterbook.catalog import service as catalog
from meterbook.catalog.models import Product
from meterbook.errors import Conflict, FieldError, MeterbookError, ValidationFailed
from meterbook.features import service as features
from meterbook.features.models import CounterChange, UsageDelta
from meterbook.invoicing import service as invoicing
from meterbook.kit import jsontext
from meterbook.kit.fingerprint import fingerprint
from meterbook.kit.time import month_start, next_month, utcnow
from meterbook.ledger import service as ledger
from meterbook.ledger.models import BalanceChange, UsageDebit
from meterbook.plans import service as plans
from meterbook.plans.models import applicable_price, plan_id_at
from meterbook.plans.schemas import SubscriptionPut
from meterbook.plans.service import AccountSubscriptions
from meterbook.usage import repository
from meterbook.usage.repository import EventKey
from meterbook.usage.schemas import EventIn

__all__ = [
    "FUTURE_TOLERANCE",
    "IngestResult",
    "end_subscription",
    "event_fingerprint",
    "ingest",
    "ingest_group",
    "put_subscription",
]

_log = logging.getLogger(__name__)

#: How far ahead of the server's clock an event may be dated (clients' clocks drift).
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    #: Credits the new events of type ``credit`` took from balances.
    credits_debited: int = 0


_ABSENT = "\x00"  # never in client text: NUL is refused when the body is read


def event_fingerprint(event: EventIn) -> str:
    """What the client sent, normalized: ``1.0`` and ``"1"`` are the same quantity; an absent time stays absent.

    Built from the fields directly (not from a JSON rendering): this runs for every event of every batch.
    """
    fields = (
        event.id,
        str(event.account_id),
        event.type,
        event.product_id,
        event.feature,
        format(event.quantity.normalize(), "f"),
        event.occurred_at.isoformat() if event.occurred_at is not None else None,
        event.direction,
        event.resolution,
        event.user_id,
        event.source,
        event.description,
        None if event.metadata is None else fingerprint(event.metadata),
    )
    text = "\x1f".join([_ABSENT if value is None else value for value in fields])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _check_and_rate(
    conn: Connection, principal: Principal, organization_id: uuid.UUID, events: Sequence[EventIn], now: datetime
) -> list[Rating | None]:
    """Refuse the batch if any event names what it may not; else the rating of each event (None: no product)."""
    errors: list[FieldError] = []
    ratings: list[Rating | None] = []
    archived = reachable_archived_flags(conn, principal, (event.account_id for event in events))
    product_ids = {event.product_id for event in events if event.product_id is not None}
    known_products = catalog.products_by_id(conn, organization_id, product_ids) if product_ids else {}
    feature_names = {event.feature for event in events if event.type == "feature" and event.feature is not None}
    known_features = features.features_by_name(conn, organization_id, feature_names) if feature_names else {}
    latest = now + FUTURE_TOLERANCE
    # Which plan each event's account was on when it occurred: one query for the batch.
    subscribed = plans.subscriptions_by_account(conn, archived) if product_ids else {}
    contracted: dict[tuple[uuid.UUID, str, str, str], bool] = {}

    def _has_contracted_price(account_id: uuid.UUID, product: Product, moment: datetime) -> bool:
        """Whether a negotiated or plan price prices usage the catalog does not (rare: read only then)."""
        # The month decides a negotiated price or a plan version, the subscription the plan.
        memo = (account_id, product.product_id, month_of(moment), plan_id_at(subscribed.get(account_id, ()), moment))
        if memo not in contracted:
            terms = plans.account_terms(conn, organization_id, [account_id])[account_id]
            contracted[memo] = applicable_price(terms, product, moment) is not None
        return contracted[memo]

    # A batch names few aggregates: rate each (account, product, month, price, ...) once, not each event.
    keys: dict[tuple[object, ...], Rating] = {}
    for index, event in enumerate(events):
        is_archived = archived.get(event.account_id)
        if is_archived is None:
            errors.append(
                FieldError(f"body.{index}.account_id", f"no account with id {event.account_id} was found", "not_found")
            )
        elif is_archived:
            errors.append(FieldError(f"body.{index}.account_id", f"account {event.account_id} is archived", "archived"))
        rating = None
        if event.product_id is not None:
            product = known_products.get(event.product_id)
            if product is None:
                errors.append(
                    FieldError(
                        f"body.{index}.product_id", f"no product {event.product_id!r} in the catalog", "not_found"
                    )
                )
            else:
                occurred_at = event.occurred_at or now
                price = product.price_at(occurred_at)
                plan_id = plan_id_at(subscribed.get(event.account_id, ()), occurred_at)
                memo = (
                    event.account_id,
                    event.product_id,
                    occurred_at.year,
                    occurred_at.month,
                    price,
                    event.direction,
                    event.resolution,
                    plan_id,
                )
                rated = keys.get(memo)
                priced = price is not None or _has_contracted_price(event.account_id, product, occurred_at)
                if rated is None and priced:
                    rated = aggregates.rate(
                        organization_id,
                        event.account_id,
                        product,
                        occurred_at,
                        event.quantity,
                        event.direction,
                        event.resolution,
                        plan_id,
                    )
                    keys[memo] = rated
                if rated is None:
                    errors.append(
                        FieldError(
                            f"body.{index}.occurred_at",
                            f"product {event.product_id!r} has no price in force at {occurred_at.isoformat()}",
                            "unpriced",
                        )
                    )
                else:
                    rating = Rating(key=rated.key, quantity=event.quantity)
        ratings.append(rating)
        if event.type == "feature" and event.feature not in known_features:
            errors.append(FieldError(f"body.{index}.feature", f"no feature named {event.feature!r}", "not_found"))
        if event.occurred_at is not None and event.occurred_at > latest:
            errors.append(
                FieldError(f"body.{index}.occurred_at", "is more than 5 minutes in the future", "too_far_ahead")
            )
        if len(errors) >= 100:
            break
    if errors:
        raise ValidationFailed(errors)
    return ratings


def ingest(conn: Connection, principal: Principal, events: Sequence[EventIn]) -> IngestResult:
    new_events = _apply_batch(conn, principal, events)
    return IngestResult(
        accepted=len(new_events), duplicates=len(events) - len(new_events), credits_debited=_credits_of(new_events)
    )


def ingest_group(
    conn: Connection, batches: Sequence[tuple[Principal, Sequence[EventIn]]]
) -> list[IngestResult | Exception]:
    """Several requests' batches in one transaction, each whole or not at all, as if applied one after another.

    Consecutive batches of one key are first applied as one (one statement per step, not one per request);
    if that is refused for any reason, each is applied alone, so that one request's refusal is its own. Each
    attempt runs in a savepoint, so a refused one leaves nothing behind. Per batch: its result or its refusal.
    """
    outcomes: list[IngestResult | Exception] = []
    start = 0
    while start < len(batches):
        end = start + 1
        while end < len(batches) and batches[end][0].key_id == batches[start][0].key_id:
            end += 1
        run = batches[start:end]
        outcomes.extend((_ingest_merged(conn, run) if len(run) > 1 else None) or _ingest_each(conn, run))
        start = end
    return outcomes


def _ingest_merged(
    conn: Connection, batches: Sequence[tuple[Principal, Sequence[EventIn]]]
) -> list[IngestResult | Exception] | None:
    """The batches of one key applied as one; None (and nothing changed) if that is refused."""
    merged = [event for _, events in batches for event in events]
    try:
        with conn.begin_nested():
            new_events = {_key(event): event for event in _apply_batch(conn, batches[0][0], merged)}
    except MeterbookError as refusal:
        # One request's refusal refuses the merged batch: each is then applied alone, and only it is refused.
        metrics.record_group_fallback("refused")
        _log.info("a merged group of %d requests is applied one by one: %s", len(batches), refusal)
        return None
    except Exception:
        # Not a refusal: each request alone will meet it again and answer it, but the merged path must not fail
        # unseen (every group would then cost one savepoint per request).
        metrics.record_group_fallback("error")
        _log.warning("a merged group of %d requests failed; applying them one by one", len(batches), exc_info=True)
        return None
    outcomes: list[IngestResult | Exception] = []
    # The first batch that holds a new (account, id) is the one that applied it; any later one sent a duplicate.
    for _, events in batches:
        claimed = [new_events.pop(_key(event)) for event in events if _key(event) in new_events]
        outcomes.append(
            IngestResult(
                accepted=len(claimed), duplicates=len(events) - len(claimed), credits_debited=_credits_of(claimed)
            )
        )
    return outcomes


def _key(event: EventIn) -> EventKey:
    """What makes an event idempotent: its id within its account (contract invariant 1)."""
    return (event.account_id, event.id)


def _credits_of(new_events: Sequence[EventIn]) -> int:
    return sum(int(event.quantity) for event in new_events if event.type == "credit")


def _ingest_each(
    conn: Connection, batches: Sequence[tuple[Principal, Sequence[EventIn]]]
) -> list[IngestResult | Exception]:
    outcomes: list[IngestResult | Exception] = []
    for principal, events in batches:
        try:
            with conn.begin_nested():
                outcomes.append(ingest(conn, principal, events))
        except Exception as refusal:
            outcomes.append(refusal)
    return outcomes


def _apply_batch(conn: Connection, principal: Principal, events: Sequence[EventIn]) -> list[EventIn]:
    """Apply one batch whole; the events it added (the first of each new id), or raise and change nothing."""
    organization_id = require_organization(principal)
    invoicing.lock_usage(conn, organization_id)
    now = utcnow()
    ratings = _check_and_rate(conn, principal, organization_id, events, now)

    # Within the batch: the first of several equal events of one account counts, a different one under
    # the same id of the same account conflicts; the same id in another account is another event.
    unique: dict[EventKey, tuple[EventIn, str, Rating | None]] = {}
    for event, rating in zip(events, ratings, strict=True):
        digest = event_fingerprint(event)
        key = _key(event)
        seen = unique.get(key)
        if seen is None:
            unique[key] = (event, digest, rating)
        elif seen[1] != digest:
            raise Conflict(
                f"Event id {event.id!r} appears twice in this request for account {event.account_id} "
                "with different content."
            )

    # In the order of repository.EVENT_COLUMNS; sorted by (account, id), the primary key, so that
    # concurrent batches that share keys take their index locks in one order (no deadlock).
    rows = [
        (
            organization_id,
            event.id,
            event.account_id,
            event.type,
            event.product_id,
            event.feature,
            format(event.quantity.normalize(), "f"),
            event.occurred_at or now,
            now,
            event.direction,
            event.resolution,
            event.user_id,
            event.source,
            event.description,
            jsontext.dumps(event.metadata).decode() if event.metadata is not None else None,
            digest,
            rating.key.id if rating else None,
            rating.key.price if rating else None,
        )
        for _, (event, digest, rating) in sorted(unique.items(), key=lambda item: item[0])
    ]
    inserted = repository.insert_new_events(conn, rows)
    already = [key for key in unique if key not in inserted]
    if already:
        stored = repository.fingerprints_of(conn, already)
        for account_id, event_id in already:
            if stored.get((account_id, event_id)) != unique[(account_id, event_id)][1]:
                raise Conflict(
                    f"Event id {event_id!r} was already used for account {account_id} with different content; "
                    "nothing was applied."
                )

    new_events = [unique[key][0] for key in unique if key in inserted]
    # Only new events: a retry of usage acknowledged before its month was invoiced is still a duplicate.
    position = {_key(event): index for index, event in reversed(list(enumerate(events)))}
    invoicing.refuse_invoiced_months(
        conn,
        organization_id,
        [(f"body.{position[_key(event)]}.occurred_at", month_of(event.occurred_at or now)) for event in new_events],
    )
    new_ratings = [rating for key, (_, _, rating) in unique.items() if key in inserted and rating]
    aggregates.add(conn, new_ratings)
    balances, counters = _apply_effects(conn, organization_id, new_events, now)
    # Last: the alerts are decided after every write of the batch (on PostgreSQL they take per-account locks that
    # must come after the row locks of those writes, see docs/alerts.md).
    usage = {UsageWritten(rating.key.account_id, rating.key.month, rating.key.product_id) for rating in new_ratings}
    alerts.after_usage(conn, organization_id, Writes(usage=usage, balances=balances, counters=counters), now)
    return new_events


def _apply_effects(
    conn: Connection, organization_id: uuid.UUID, events: Sequence[EventIn], now: datetime
) -> tuple[list[BalanceChange], list[CounterChange]]:
    """Debit credits and count feature usage; what each did to balances and counters (the alerts decide from it)."""
    debits = [
        UsageDebit(
            event_id=event.id,
            account_id=event.account_id,
            amount=int(event.quantity),
            source=event.source or "system",
            description=event.description,
            user_id=event.user_id,
            metadata=event.metadata,
            created_at=event.occurred_at or now,
        )
        for event in events
        if event.type == "credit"
    ]
    balances = ledger.debit_usage(conn, organization_id, debits)
    feature_uses = [
        UsageDelta(
            account_id=event.account_id,
            feature=event.feature,
            occurred_at=event.occurred_at or now,
            delta=int(event.quantity),
        )
        for event in events
        if event.type == "feature" and event.feature is not None
    ]
    if not feature_uses:
        return balances, []
    limits = plans.plan_limits(conn, organization_id, {use.account_id for use in feature_uses}, now)
    return balances, features.apply_usage(conn, organization_id, feature_uses, limits)


# --- plan changes ----------------------------------------------------------------------------------


def put_subscription(
    conn: Connection, principal: Principal, account_id: uuid.UUID, data: SubscriptionPut
) -> AccountSubscriptions:
    """Put the account on a plan (``plans.service.put_subscription``) and re-rate what it reported from then on:
    usage is priced by the plan in force when it occurred, also when the change is dated back."""
    since = data.starts_at or utcnow()
    found = plans.put_subscription(conn, principal, account_id, data)
    aggregates.rerate_account(conn, require_organization(principal), found.account_id, since)
    return found


def end_subscription(conn: Connection, principal: Principal, account_id: uuid.UUID) -> AccountSubscriptions:
    """End the account's plan at the end of this month (``plans.service.end_subscription``) and re-rate what it
    reported from then on (events may be dated a few minutes ahead)."""
    found = plans.end_subscription(conn, principal, account_id)
    end = month_start(next_month(month_of(utcnow())))
    aggregates.rerate_account(conn, require_organization(principal), found.account_id, end)
    return found
