"""Webhook endpoints, deliveries and their attempts, as the services hand them around."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from meterbook.webhooks.catalog import ALL

__all__ = ["Attempt", "Delivery", "DeliveryTarget", "Endpoint", "NewEndpoint"]

DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    description: str | None
    event_types: tuple[str, ...]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    #: While a rotation's grace period runs, the previous secret signs too, until then.
    previous_secret_expires_at: datetime | None

    def wants(self, event_type: str) -> bool:
        return ALL in self.event_types or event_type in self.event_types


@dataclass(frozen=True)
class NewEndpoint:
    """An endpoint just created or rotated: with its signing secret, shown this once."""

    endpoint: Endpoint
    secret: str


@dataclass(frozen=True)
class Attempt:
    number: int
    attempted_at: datetime
    #: None: no answer (refused, timed out, or the destination was refused before sending).
    status_code: int | None
    duration_ms: int
    error: str | None


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    created_at: datetime
    next_attempt_at: datetime | None
    finished_at: datetime | None
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True)
class DeliveryTarget:
    """What one attempt needs: where to, what to sign with, and the body as it was written."""

    delivery_id: uuid.UUID
    status: DeliveryStatus
    attempt_count: int
    event_id: uuid.UUID
    body: str
    url: str
    enabled: bool
    secrets: tuple[str, ...]
