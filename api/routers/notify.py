"""Webhooks (the administrator), the deliveries and their dead-letter list (the console),
and the county's signed status callbacks for escalated events (the hand-off)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gridgeo.api.deps import Admin, CommandRoomReader, StoreDep
from gridgeo.api.schemas.base import VALIDATED
from gridgeo.api.schemas.notify import CallbackAnswer, Channel, CreatedWebhook, Delivery, DeliveryPage, Webhook
from gridgeo.notify import people, webhooks
from gridgeo.notify.handoff import accept_callback
from gridgeo.store.schema import MAX_INTEGER

router = APIRouter(tags=["notifications"])
IdPath = Annotated[int, Path(ge=1, le=MAX_INTEGER)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "url": "https://county.example/hooks/gridgeo", "event_types": ["event.escalated", "event.overdue"]}})

    url: str = Field(max_length=webhooks.MAX_URL, description="http:// or https:// address that receives POSTs.")
    event_types: list[str] = Field(min_length=1, max_length=50, description="Event types wanted, or ['*'].")
    secret: str | None = Field(None, max_length=200, description="whsec_ + base64 (made when left out).")
    description: str | None = Field(None, max_length=1000)


@router.post("/v1/webhooks", status_code=201, response_model=CreatedWebhook, **VALIDATED,
             summary="Subscribe a system to event notifications (administrator)")
def create_webhook(body: WebhookIn, store: StoreDep, principal: Admin):
    """Deliveries are signed per Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
    ``webhook-signature``); the secret is answered once."""
    return webhooks.create_webhook(store, body.url, body.event_types, secret=body.secret,
                                   description=body.description, actor=principal.username or "admin")


@router.get("/v1/webhooks", response_model=list[Webhook], **VALIDATED, summary="Webhooks (administrator)")
def list_webhooks(store: StoreDep, principal: Admin):
    return webhooks.list_webhooks(store)


@router.delete("/v1/webhooks/{hook_id}", response_model=Webhook, **VALIDATED,
               summary="Stop a webhook (administrator); answers it, inactive")
def delete_webhook(hook_id: IdPath, store: StoreDep, principal: Admin):
    return webhooks.delete_webhook(store, hook_id, actor=principal.username or "admin")


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "name": "综合指挥室钉钉群", "role": "command_room", "url": "dingtalk://TOKEN/",
        "event_types": ["event.overdue", "event.escalated"], "quiet_hours": ["22:00", "07:30"]}})

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(max_length=people.MAX_URL, description="An apprise URL: dingtalk://, wecombot://, feishu://, "
                     "mailto://, an SMS gateway's, json:// ...")
    role: str | None = Field(None, max_length=32, description="Every user of a role that sees all events.")
    username: str | None = Field(None, max_length=64, description="One user: the events their scope holds.")
    event_types: list[str] | None = Field(None, max_length=50, description="Default: the role's.")
    quiet_hours: list[str] | None = Field(None, min_length=2, max_length=2, description="[start, end], HH:MM China time.")


@router.post("/v1/channels", status_code=201, response_model=Channel, **VALIDATED,
             summary="Notify people through a channel (administrator)")
def create_channel(body: ChannelIn, store: StoreDep, principal: Admin):
    return people.create_channel(store, body.name, body.url, role=body.role, username=body.username,
                                 event_types=body.event_types, quiet_hours=body.quiet_hours,
                                 actor=principal.username or "admin")


@router.get("/v1/channels", response_model=list[Channel], **VALIDATED, summary="People's channels (administrator)")
def list_channels(store: StoreDep, principal: Admin):
    return people.list_channels(store)


@router.delete("/v1/channels/{channel_id}", response_model=Channel, **VALIDATED,
               summary="Stop a channel (administrator); answers it, inactive")
def delete_channel(channel_id: IdPath, store: StoreDep, principal: Admin):
    return people.delete_channel(store, channel_id, actor=principal.username or "admin")


@router.get("/v1/deliveries", response_model=DeliveryPage, **VALIDATED,
            summary="Deliveries of notifications and hand-offs; state=dead is the dead-letter list")
def list_deliveries(store: StoreDep, principal: CommandRoomReader,
                    state: Literal["pending", "delivered", "dead"] | None = None,
                    event: Annotated[str | None, Query(max_length=64)] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0, le=MAX_INTEGER)] = 0):
    return webhooks.list_deliveries(store, state=state, event_code=event, limit=limit, offset=offset)


@router.post("/v1/deliveries/{delivery_id}/retry", response_model=Delivery, **VALIDATED,
             summary="Send a dead delivery again (administrator)")
def retry_delivery(delivery_id: IdPath, store: StoreDep, principal: Admin):
    return webhooks.retry_delivery(store, delivery_id, actor=principal.username or "admin")


@router.post("/v1/escalations/callback", response_model=CallbackAnswer, **VALIDATED,
             summary="The county platform / 12345 reports on an escalated event (signed)")
async def escalation_callback(request: Request, store: StoreDep):
    """Signed per Standard Webhooks with the hand-off secret. Body:
    ``{"event_code", "status": received|in_progress|returned|closed, "note"}``. A bad
    signature answers 401, a replayed ``webhook-id`` 409, an unknown event 404."""
    body = await request.body()
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(accept_callback, store, body, dict(request.headers))
