"""The event catalog (CONTRACT §7): every type an endpoint may subscribe to, and which are emitted today."""

from __future__ import annotations

from typing import Final

__all__ = ["ALL", "EVENT_TYPES", "NOT_YET_EMITTED"]

#: Every event type, in the contract's order. The ``data`` of each is the object as the native API shows it.
EVENT_TYPES: Final = (
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.voided",
    "credit_note.created",
    "payment.created",
    "credits.granted",
    "credits.expired",
    "credits.low",
    "credits.depleted",
    "feature.limit_reached",
    "alert.triggered",
    "billing_run.completed",
)

#: Subscribable already, emitted by later work: finalization and credit notes (§8), expiring grants (§9), and the
#: alerts (§7), whose emission lives on the ingestion path.
NOT_YET_EMITTED: Final = frozenset(
    {
        "invoice.finalized",
        "credit_note.created",
        "credits.expired",
    }
)

#: In an endpoint's ``event_types``: every type, those added later included.
ALL: Final = "*"
