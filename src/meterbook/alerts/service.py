"""The rules of alerts: what may be set, and when an alert fires (CONTRACT §7, docs/alerts.md).

Alerts are decided at write time, by :func:`after_usage`, in the transaction of the batch of usage that may cross a
threshold, from what the batch's writes saw (balances before and after a debit, feature counters before and after)
and from the month's aggregates read again after them. Set-based: a batch costs a few statements whatever its size,
and an organization without alerts pays one indexed query (plus one per event type when a balance reaches its
credit_min or a feature its limit, which are emitted without any alert).

- A month type (``spend_above``, ``usage_above``, ``feature_usage_above``) fires when, after a write that changes
  its value, the value for the month of the usage is at or above the threshold and the alert has not fired for the
  account and month yet.
- ``credit_balance_below`` fires when a debit takes the balance from at or above the threshold to below it: once
  per crossing. Grants and reverts only raise a balance, so they re-arm it by themselves: the next crossing down is
  a new one. Each firing also emits ``credits.low``.

Exactly once whatever the concurrency: a firing is recorded insert-if-absent under a unique index on (alert,
account, period); on PostgreSQL the evaluation of an account's alerts is serialized by an advisory lock taken after
every write of the transaction (``db.locks.lock_accounts_for_alerts``), so that of two concurrent batches, the one
that evaluates second reads, in statements of its own, what the first committed.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

from sqlalchemy import Connection

from meterbook.accounts import access
from meterbook.accounts.access import authorize
from meterbook.accounts.models import Principal
from meterbook.accounts.reach import require_organization, resolve_account
from meterbook.aggregates import service as aggregates
from meterbook.alerts import repository
from meterbook.alerts.models import Alert, Trigger, Writes
from meterbook.alerts.schemas import AlertCreate, event_data
from meterbook.catalog import service as catalog
from meterbook.db.locks import lock_accounts_for_alerts
from meterbook.errors import FieldError, NotFound, ValidationFailed
from meterbook.features import service as features
from meterbook.features.models import CounterChange
from meterbook.kit.ids import new_id
from meterbook.kit.time import utcnow
from meterbook.ledger.models import BalanceChange
from meterbook.webhooks import service as webhooks
from meterbook.webhooks.service import EventData

__all__ = [
    "after_usage",
    "create_alert",
    "delete_alert",
    "get_alert",
    "list_alerts",
    "recent_triggers",
    "triggers",
]

#: A percent of a limit is shown (and recorded) to two decimals; it is compared with the threshold exactly.
_PERCENT_STEP = Decimal("0.01")


# --- the API ---------------------------------------------------------------------------------------


def create_alert(conn: Connection, principal: Principal, data: AlertCreate) -> Alert:
    """Check every field against the type and what exists, then store the alert (nothing when anything is wrong)."""
    authorize(principal, access.MANAGE_ALERTS)
    organization_id = require_organization(principal)
    if data.account_id is not None:
        resolve_account(conn, principal, data.account_id)  # another organization's account is not found
    errors = _field_errors(conn, organization_id, data)
    if errors:
        raise ValidationFailed(errors)
    alert_id = new_id()
    repository.insert_alert(
        conn,
        {
            "id": alert_id,
            "organization_id": organization_id,
            "account_id": data.account_id,
            "name": data.name,
            "type": data.type,
            "threshold": data.threshold,
            "product_id": data.product_id,
            "feature": data.feature,
            "created_at": utcnow(),
        },
    )
    repository.bump_version(conn, organization_id)
    return _find(conn, principal, alert_id)


def _field_errors(conn: Connection, organization_id: uuid.UUID, data: AlertCreate) -> list[FieldError]:
    errors: list[FieldError] = []
    kind = data.type
    if kind == "credit_balance_below" and data.threshold != data.threshold.to_integral_value():
        errors.append(
            FieldError("body.threshold", "credits are whole numbers: expected a whole number, e.g. 100", "not_integer")
        )
    if kind == "feature_usage_above" and data.threshold > 100:
        errors.append(
            FieldError(
                "body.threshold",
                "is a percent of the feature's limit, which usage never passes: expected 0 to 100, e.g. 80",
                "out_of_range",
            )
        )
    if kind == "usage_above":
        if data.product_id is None:
            errors.append(
                FieldError(
                    "body.product_id",
                    'usage_above counts one product\'s units: give product_id, e.g. "API-CALLS"',
                    "missing",
                )
            )
        elif not catalog.products_by_id(conn, organization_id, [data.product_id]):
            errors.append(
                FieldError(
                    "body.product_id",
                    f"no product {data.product_id!r} in the catalog: expected the id of one of its products "
                    '(GET /v1/products), e.g. "API-CALLS"',
                    "not_found",
                )
            )
    elif data.product_id is not None:
        errors.append(
            FieldError(
                "body.product_id",
                f'is for usage_above alerts only, not {kind}: leave it out, or e.g. {{"type": "usage_above", '
                f'"product_id": "{data.product_id}", "threshold": 1000}}',
                "not_allowed",
            )
        )
    if kind == "feature_usage_above":
        if data.feature is None:
            errors.append(
                FieldError(
                    "body.feature",
                    'feature_usage_above compares one feature\'s usage with its limit: give feature, e.g. "seats"',
                    "missing",
                )
            )
        elif not features.features_by_name(conn, organization_id, [data.feature]):
            errors.append(
                FieldError(
                    "body.feature",
                    f"no feature named {data.feature!r}: expected the name of a feature (GET /v1/features), "
                    'e.g. "seats"',
                    "not_found",
                )
            )
    elif data.feature is not None:
        errors.append(
            FieldError(
                "body.feature",
                f'is for feature_usage_above alerts only, not {kind}: leave it out, or e.g. {{"type": '
                f'"feature_usage_above", "feature": "{data.feature}", "threshold": 80}}',
                "not_allowed",
            )
        )
    return errors


def _find(conn: Connection, principal: Principal, alert_id: uuid.UUID) -> Alert:
    found = repository.get_alert(conn, require_organization(principal), alert_id)
    if found is None:
        raise NotFound(f"No alert with id {alert_id} was found.")
    return found


def list_alerts(conn: Connection, principal: Principal) -> list[Alert]:
    """The organization's alerts, oldest first."""
    authorize(principal, access.READ_ALERTS)
    return repository.list_alerts(conn, require_organization(principal))


def get_alert(conn: Connection, principal: Principal, alert_id: uuid.UUID) -> Alert:
    authorize(principal, access.READ_ALERTS)
    return _find(conn, principal, alert_id)


def delete_alert(conn: Connection, principal: Principal, alert_id: uuid.UUID) -> Alert:
    """Delete the alert and the record of its firings; the events they emitted were already sent or queued."""
    authorize(principal, access.MANAGE_ALERTS)
    alert = _find(conn, principal, alert_id)
    repository.delete_alert(conn, alert.id)
    repository.bump_version(conn, alert.organization_id)
    return alert


def triggers(conn: Connection, principal: Principal, alert_id: uuid.UUID, *, limit: int = 100) -> list[Trigger]:
    """The alert's firings, newest first."""
    authorize(principal, access.READ_ALERTS)
    alert = _find(conn, principal, alert_id)
    return repository.list_triggers(conn, alert.id, limit)


def recent_triggers(conn: Connection, principal: Principal, *, per_alert: int = 5) -> list[tuple[Alert, list[Trigger]]]:
    """Every alert of the organization with its latest firings (the console's page)."""
    found = list_alerts(conn, principal)
    recent = repository.recent_triggers(conn, [alert.id for alert in found], per_alert)
    return [(alert, recent[alert.id]) for alert in found]


# --- deciding, at write time -----------------------------------------------------------------------


#: (alert, account, period): one possible firing.
_Key = tuple[uuid.UUID, uuid.UUID, str]
#: An organization's alerts by (type, account), None for those on every account.
_Book = dict[tuple[str, uuid.UUID | None], list[Alert]]

#: Organizations with more alerts than this are read per batch, only the touched accounts' alerts, not kept.
_KEPT_ALERTS = 50_000
#: Month firings known to be recorded (they are never undone while their alert exists); forgotten past this many.
_KNOWN_FIRED = 1_000_000


class _Memory:
    """What a server keeps between batches, so that a batch does not read every alert of its accounts again:

    - each organization's alerts, with the version (``alert_versions``) they were read at: a batch reads the
      version (one key lookup) and uses the alerts it keeps only if nothing changed since, on any server;
    - month firings already recorded (once fired, an alert stays fired for that account and month), so that the
      alerts that fired this month are not looked up again.
    Both only spare reads: what is not known here is read from the database, as without them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[uuid.UUID, tuple[int, _Book]] = {}
        self._fired: set[_Key] = set()

    def book(self, organization_id: uuid.UUID, version: int) -> _Book | None:
        with self._lock:
            kept = self._books.get(organization_id)
        return kept[1] if kept is not None and kept[0] == version else None

    def keep_book(self, organization_id: uuid.UUID, version: int, book: _Book) -> None:
        with self._lock:
            self._books[organization_id] = (version, book)

    def unknown(self, keys: Iterable[_Key]) -> list[_Key]:
        with self._lock:
            return [key for key in keys if key not in self._fired]

    def fired(self, keys: Iterable[_Key]) -> None:
        with self._lock:
            if len(self._fired) > _KNOWN_FIRED:
                self._fired.clear()
            self._fired.update(keys)


_MEMORY = _Memory()


def _by_type_and_account(found: Iterable[Alert]) -> _Book:
    book: _Book = defaultdict(list)
    for alert in found:
        book[(alert.type, alert.account_id)].append(alert)
    return dict(book)


def _watching(conn: Connection, organization_id: uuid.UUID, touched: set[uuid.UUID]) -> _Book | None:
    """The alerts that may concern these accounts, by type and account; None when the organization has none."""
    version = repository.alert_version(conn, organization_id)
    if version is None:
        return None  # never had an alert
    book = _MEMORY.book(organization_id, version)
    if book is None:
        every = repository.organization_alerts(conn, organization_id, _KEPT_ALERTS + 1)
        if len(every) > _KEPT_ALERTS:
            return _by_type_and_account(repository.watching(conn, organization_id, sorted(touched)))
        book = _by_type_and_account(every)
        _MEMORY.keep_book(organization_id, version, book)
    return book or None


def after_usage(conn: Connection, organization_id: uuid.UUID, writes: Writes, now: datetime) -> list[Trigger]:
    """Decide the alerts that the batch's writes cross, in its transaction, after all of them; the firings recorded.

    Also emits ``credits.depleted`` and ``feature.limit_reached``, which need no alert.
    """
    _emit_depleted(conn, organization_id, writes.balances, now)
    _emit_limits_reached(conn, organization_id, writes.counters, now)
    touched = writes.accounts()
    if not touched:
        return []
    on = _watching(conn, organization_id, touched)
    if on is None:
        return []

    def covering(kind: str, account_id: uuid.UUID) -> list[Alert]:
        return on.get((kind, account_id), []) + on.get((kind, None), [])

    # Balance crossings are exact from the debit itself (its balance row is locked until the transaction ends).
    crossings = [
        (alert, change)
        for change in writes.balances
        for alert in covering("credit_balance_below", change.account_id)
        if change.before >= alert.threshold > change.after
    ]
    # A feature counter's value is exact from its write too (the counter's row is locked likewise).
    counted: dict[_Key, tuple[Alert, Decimal]] = {}
    for counter in writes.counters:
        for alert in covering("feature_usage_above", counter.account_id):
            if alert.feature == counter.feature:
                percent = _percent_reached(counter, alert.threshold)
                if percent is not None:
                    counted[(alert.id, counter.account_id, counter.month)] = (alert, percent)
    # The month's units and spend are read again below: several aggregates make up an account's month.
    pending: dict[_Key, Alert] = {}
    months = {(written.account_id, written.month) for written in writes.usage}
    for written in writes.usage:
        for alert in covering("usage_above", written.account_id):
            if alert.product_id == written.product_id:
                pending[(alert.id, written.account_id, written.month)] = alert
    for account_id, month in months:
        for alert in covering("spend_above", account_id):
            pending[(alert.id, account_id, month)] = alert
    if not (crossings or counted or pending):
        return []

    # Month firings this server has seen recorded need no second look.
    counted = {key: counted[key] for key in _MEMORY.unknown(counted)}
    pending = {key: pending[key] for key in _MEMORY.unknown(pending)}
    if not (crossings or counted or pending):
        return []

    involved = {change.account_id for _, change in crossings} | {key[1] for key in (*counted, *pending)}
    # After every write of the transaction: from here on it only reads, and inserts rows of these accounts.
    lock_accounts_for_alerts(conn, involved)
    # Candidates only: a month alert below its threshold cannot fire, whether it fired before or not; one at or
    # above it fires unless it did this month, which the insert-if-absent below decides.
    found: list[tuple[Alert, Trigger]] = [
        (alert, _trigger(alert, key, percent, now)) for key, (alert, percent) in counted.items()
    ]
    found += _month_firings(conn, organization_id, pending, now)
    low: dict[uuid.UUID, BalanceChange] = {}
    if crossings:
        so_far = repository.crossings_so_far(conn, [(alert.id, change.account_id) for alert, change in crossings])
        for alert, change in crossings:
            key = (alert.id, change.account_id, str(so_far.get((alert.id, change.account_id), 0) + 1))
            trigger = _trigger(alert, key, Decimal(change.after), now)
            found.append((alert, trigger))
            low[trigger.id] = change
    found.sort(key=lambda item: (item[1].alert_id, item[1].account_id, item[1].period))
    inserted = repository.insert_triggers(conn, organization_id, [trigger for _, trigger in found])
    fired = [(alert, trigger) for alert, trigger in found if trigger.id in inserted]
    if not conn.in_nested_transaction():
        # A month firing not inserted was recorded before, by a transaction that committed (ours has not inserted
        # it): certain for good. Within a group of requests (savepoints of a transaction not committed yet) it may
        # be this transaction's own, so nothing is kept then.
        _MEMORY.fired(
            (trigger.alert_id, trigger.account_id, trigger.period)
            for alert, trigger in found
            if trigger.id not in inserted and alert.type != "credit_balance_below"
        )
    if fired:
        _emit_fired(conn, organization_id, fired, low)
    return [trigger for _, trigger in fired]


def _trigger(alert: Alert, key: _Key, value: Decimal, now: datetime) -> Trigger:
    return Trigger(
        id=new_id(),
        alert_id=alert.id,
        account_id=key[1],
        period=key[2],
        value=value,
        threshold=alert.threshold,
        triggered_at=now,
    )


def _percent_reached(counter: CounterChange, threshold: Decimal) -> Decimal | None:
    """The counter's usage as a percent of its limit, if it is at or above ``threshold`` (compared exactly)."""
    if counter.limit is None or counter.limit <= 0:
        return None  # unlimited: no percent of it; a limit of 0 is never used
    if Decimal(counter.after) * 100 < threshold * counter.limit:
        return None
    with localcontext(prec=40):
        return (Decimal(counter.after) * 100 / counter.limit).quantize(_PERCENT_STEP, rounding=ROUND_HALF_UP)


def _month_firings(
    conn: Connection, organization_id: uuid.UUID, pending: dict[_Key, Alert], now: datetime
) -> list[tuple[Alert, Trigger]]:
    """The month alerts whose value, read now, is at or above their threshold (fired already or not)."""
    if not pending:
        return []
    priced = any(alert.type == "spend_above" for alert in pending.values())
    totals = aggregates.month_totals(
        conn, organization_id, {(account_id, month) for _, account_id, month in pending}, priced=priced
    )
    currencies = repository.account_currencies(conn, {key[1] for key in pending}) if priced else {}
    found: list[tuple[Alert, Trigger]] = []
    for key, alert in pending.items():
        _, account_id, month = key
        month_total = totals[(account_id, month)]
        if alert.type == "spend_above":
            value = month_total.spend.get(currencies[account_id], Decimal(0))
        else:
            value = month_total.units.get(alert.product_id or "", Decimal(0))
        if value >= alert.threshold:
            found.append((alert, _trigger(alert, key, value, now)))
    return found


def _emit_fired(
    conn: Connection,
    organization_id: uuid.UUID,
    fired: Sequence[tuple[Alert, Trigger]],
    low: dict[uuid.UUID, BalanceChange],
) -> None:
    def triggered() -> Iterator[EventData]:
        for alert, trigger in fired:
            yield EventData(
                event_data(alert, trigger),
                webhooks.event_id_for("alert.triggered", alert.id, trigger.account_id, trigger.period),
                trigger.triggered_at,
            )

    def credits_low() -> Iterator[EventData]:
        for alert, trigger in fired:
            change = low.get(trigger.id)
            if change is not None:
                yield EventData(
                    {
                        "account_id": str(change.account_id),
                        "balance": change.after,
                        "credit_min": change.credit_min,
                        "threshold": alert.threshold,
                        "alert_id": str(alert.id),
                    },
                    webhooks.event_id_for("credits.low", alert.id, trigger.account_id, trigger.period),
                    trigger.triggered_at,
                )

    webhooks.emit_many(conn, organization_id, "alert.triggered", triggered())
    if low:
        webhooks.emit_many(conn, organization_id, "credits.low", credits_low())


def _emit_depleted(
    conn: Connection, organization_id: uuid.UUID, balances: Sequence[BalanceChange], now: datetime
) -> None:
    """``credits.depleted`` for each debit that took a balance down to its credit_min (no query when none did)."""
    depleted = [change for change in balances if change.after <= change.credit_min < change.before]
    if depleted:
        webhooks.emit_many(
            conn,
            organization_id,
            "credits.depleted",
            (
                EventData(
                    {"account_id": str(change.account_id), "balance": change.after, "credit_min": change.credit_min},
                    occurred_at=now,
                )
                for change in depleted
            ),
        )


def _emit_limits_reached(
    conn: Connection, organization_id: uuid.UUID, counters: Sequence[CounterChange], now: datetime
) -> None:
    """``feature.limit_reached`` for each counter a write took up to its limit from below (no query when none did)."""
    reached = [
        change for change in counters if change.limit is not None and change.before < change.limit <= change.after
    ]
    if reached:
        webhooks.emit_many(
            conn,
            organization_id,
            "feature.limit_reached",
            (
                EventData(
                    {
                        "account_id": str(change.account_id),
                        "name": change.feature,
                        "limit": change.limit,
                        "usage": change.after,
                        "period": change.period or None,
                    },
                    occurred_at=now,
                )
                for change in reached
            ),
        )
