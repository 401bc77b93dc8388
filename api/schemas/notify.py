"""Answers of the notification routes: webhooks, deliveries, hand-off callbacks."""

from __future__ import annotations

from pydantic import Field

from gridgeo.api.schemas.base import TIME, Schema


class Webhook(Schema):
    id: int
    url: str
    event_types: list[str]
    description: str | None = None
    active: bool
    created_at: str = Field(description=TIME)
    created_by: str


class CreatedWebhook(Webhook):
    secret: str = Field(description="The Standard Webhooks secret (whsec_...), shown this once.")


class Delivery(Schema):
    id: int
    channel: str = Field(description="webhook or handoff.")
    target: str
    event_code: str
    event_type: str
    delivery_key: str = Field(description="Sent as webhook-id: the receiver drops a duplicate by it.")
    state: str = Field(description="pending, delivered or dead (dead-letter).")
    attempts: int
    next_at: str | None = Field(None, description=TIME)
    last_status: int | None = None
    last_error: str | None = None
    receipt: dict | None = Field(None, description="The county's answer to a hand-off.")
    created_at: str = Field(description=TIME)
    delivered_at: str | None = Field(None, description=TIME)


class DeliveryPage(Schema):
    counts: dict[str, int] = Field(description="Deliveries by state.")
    outbox_backlog: int = Field(description="Outbox rows not yet fanned out.")
    items: list[Delivery]


class CallbackAnswer(Schema):
    event_code: str
    status: str
    state: str


class Channel(Schema):
    id: int
    name: str
    role: str | None = None
    username: str | None = None
    url: str = Field(description="Scheme and host only: the URL's tokens are never shown.")
    event_types: list[str]
    quiet_hours: list[str] | None = Field(None, description="[start, end], HH:MM China time.")
    active: bool
    created_at: str = Field(description=TIME)
