"""What the webhooks API accepts, and how it renders endpoints and deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, StrictBool, StringConstraints

from meterbook.kit.fields import NativeInput
from meterbook.webhooks.catalog import ALL, EVENT_TYPES
from meterbook.webhooks.models import Attempt, Delivery, Endpoint, NewEndpoint

__all__ = [
    "AttemptOut",
    "DeliveriesOut",
    "DeliveryOut",
    "EndpointCreate",
    "EndpointOut",
    "EndpointPatch",
    "EndpointWithSecretOut",
    "EndpointsOut",
    "ResendIn",
    "ResendOut",
]

URL_EXAMPLE = "https://hooks.example.com/meterbook"


def _url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"is not a URL ({error}); e.g. {URL_EXAMPLE}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must be an http or https URL, e.g. {URL_EXAMPLE}")
    if not parts.hostname:
        raise ValueError(f"has no host; e.g. {URL_EXAMPLE}")
    if parts.username is not None or parts.password is not None:
        # The URL is shown to every reader of the endpoint: a password in it would be too.
        raise ValueError(f"must not carry a user name or password (the signature authenticates); e.g. {URL_EXAMPLE}")
    if port == 0:
        raise ValueError(f"has port 0; e.g. {URL_EXAMPLE}")
    return url


def _event_type(name: str) -> str:
    if name != ALL and name not in EVENT_TYPES:
        raise ValueError(f"{name!r} is not an event type; e.g. invoice.paid, or {ALL!r} for every type")
    return name


WebhookUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048), AfterValidator(_url)
]
EventType = Annotated[str, AfterValidator(_event_type)]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES) + 1)]
Description = Annotated[str, StringConstraints(max_length=1000)]


class EndpointCreate(NativeInput):
    url: WebhookUrl = Field(description="Where events are POSTed: an http or https URL.", examples=[URL_EXAMPLE])
    description: Description | None = None
    event_types: EventTypes = Field(
        default_factory=lambda: [ALL],
        description='The event types to send; default ["*"]: every type, those added later included.',
        examples=[["invoice.created", "invoice.paid"]],
    )
    enabled: StrictBool = Field(default=True, description="A disabled endpoint is sent nothing.")


class EndpointPatch(NativeInput):
    """Only the fields sent change."""

    url: WebhookUrl | None = None
    description: Description | None = None
    event_types: EventTypes | None = None
    enabled: StrictBool | None = None


class ResendIn(NativeInput):
    endpoint_id: uuid.UUID | None = Field(
        default=None, description="Only to this endpoint; default: every endpoint the event was sent to."
    )


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str] = Field(description='The event types sent to it; ["*"]: every type.')
    enabled: bool
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation, the previous secret also signs until then; null: only the current one."
    )

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types),
            enabled=endpoint.enabled,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
        )


class EndpointWithSecretOut(EndpointOut):
    secret: str = Field(description="The signing secret, `whsec_…`: shown only in this reply.")

    @classmethod
    def of_new(cls, created: NewEndpoint) -> EndpointWithSecretOut:
        return cls(**EndpointOut.of(created.endpoint).model_dump(), secret=created.secret)


class EndpointsOut(BaseModel):
    endpoints: list[EndpointOut]


class AttemptOut(BaseModel):
    number: int
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    duration_ms: int
    error: str | None = Field(description="Why it failed; null when delivered.")

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(**vars(attempt))


class DeliveryOut(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID = Field(description="The `webhook-id` of every attempt.")
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempt_count: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When it is tried next, while pending.")
    finished_at: datetime | None = Field(description="When it was delivered, or given up.")
    attempts: list[AttemptOut] = Field(description="Every attempt, first first.")

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=delivery.status,
            attempt_count=delivery.attempt_count,
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at,
            finished_at=delivery.finished_at,
            attempts=[AttemptOut.of(attempt) for attempt in delivery.attempts],
        )


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut] = Field(description="Newest first.")


class ResendOut(BaseModel):
    event_id: uuid.UUID
    deliveries: list[DeliveryOut] = Field(description="The new deliveries, one per endpoint.")
