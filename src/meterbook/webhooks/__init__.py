"""Webhooks (CONTRACT §7): endpoints, the event outbox, signing, delivery and its attempts.

Importing the package registers the delivery job's handler (``delivery.py``) with the jobs registry.
"""

from meterbook.webhooks import delivery
from meterbook.webhooks.catalog import EVENT_TYPES, NOT_YET_EMITTED
from meterbook.webhooks.service import EventData, emit, emit_many, event_id_for

__all__ = ["EVENT_TYPES", "NOT_YET_EMITTED", "EventData", "delivery", "emit", "emit_many", "event_id_for"]
