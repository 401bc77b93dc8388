"""The hand-off (上报): an escalated event, its history and its photos' links, sent to the
county platform / 12345 (``GRIDGEO_HANDOFF_URL``) as the JSON contract of
``docs/handoff.md`` says, signed per Standard Webhooks with ``GRIDGEO_HANDOFF_SECRET``; and
the county's signed status callbacks, which are the county's actions of the workflow
(``county_update``; ``county_close`` on ``closed``, which closes the event here), taken
through :func:`gridgeo.events.service.take_action` like every other action: the machine,
the version, the history, the audit line and the outbox rows in one transaction."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gridgeo.config import get_settings
from gridgeo.errors import IllegalTransition, InvalidInput, InvalidSignature, NotFound, ReplayedMessage
from gridgeo.events.records import history_record, now_utc
from gridgeo.events.service import take_action
from gridgeo.store import Store, schema

__all__ = ["CALLBACK_STATUSES", "CONTRACT_VERSION", "accept_callback", "handoff_body"]

CONTRACT_VERSION = "gridgeo.handoff/1"
#: What the county may say, and its label in the history.
CALLBACK_STATUSES = {"received": "上级已接收", "in_progress": "上级办理中", "returned": "上级退回",
                     "closed": "上级已办结"}
MAX_CALLBACK_BYTES = 64_000


def handoff_body(store: Store, payload: dict) -> dict:
    """The hand-off message: the webhook payload plus the whole history and photo links."""
    s = get_settings()
    event = dict(payload["data"].get("event") or {})
    code = event.get("code") or payload["data"].get("event_code")
    ev, ea = schema.events, schema.event_actions
    with store.engine.connect() as conn:
        row = conn.execute(select(ev.c.id, ev.c.photos).where(ev.c.code == code)).first()
        history = [] if row is None else [
            history_record(h) for h in conn.execute(select(ea).where(ea.c.event_id == row[0])
                                                    .order_by(ea.c.seq)).mappings()]
    photos = list(row[1]) if row is not None and row[1] else []  # http(s) links (the intake's rule)
    action = payload["data"].get("action") or {}
    return {"contract": CONTRACT_VERSION, "type": payload["type"], "timestamp": payload["timestamp"],
            "event": event, "history": history, "photos": photos,
            "escalation": {"to": event.get("escalated_to"), "reason": (action.get("data") or {}).get("reason")},
            "callback_url": f"{s.public_url.rstrip('/')}/v1/escalations/callback"}


def accept_callback(store: Store, body: bytes, headers: dict[str, str]) -> dict:
    """Check and apply one status callback. Raises :class:`InvalidSignature` (bad or old
    signature, no secret configured), :class:`ReplayedMessage` (its ``webhook-id`` was
    taken), :class:`NotFound` (unknown event), :class:`IllegalTransition` (the event is not
    escalated), :class:`InvalidInput` (a body not of the contract)."""
    s = get_settings()
    if s.handoff_secret is None:
        raise InvalidSignature("no hand-off secret is configured (GRIDGEO_HANDOFF_SECRET)")
    if len(body) > MAX_CALLBACK_BYTES:
        raise InvalidInput(f"a callback has at most {MAX_CALLBACK_BYTES} bytes")
    try:
        Webhook(s.handoff_secret.get_secret_value()).verify(body, headers, json_parse=False)
    except WebhookVerificationError as exc:
        raise InvalidSignature(f"callback signature refused: {exc}") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput("the callback body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("the callback body must be a JSON object")
    code, status = data.get("event_code"), data.get("status")
    if not isinstance(code, str) or len(code) > 64:
        raise InvalidInput("event_code must be the event's code")
    if status not in CALLBACK_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(CALLBACK_STATUSES)}, not {str(status)[:40]!r}")
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 4000):
        raise InvalidInput("note must be text of at most 4000 characters")
    msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"][:200]
    hc = schema.handoff_callbacks
    now = now_utc()

    def remember(conn, row) -> None:  # in the action's transaction: a replayed id fails it
        conn.execute(hc.insert().values(message_id=msg_id, event_code=code, status=status,
                                        received_at=now, body=data))

    action = "county_close" if status == "closed" else "county_update"
    try:
        event = take_action(store, code, action, role="county", actor="county", at=now,
                            note=note or CALLBACK_STATUSES[status],
                            data={"status": status, "message_id": msg_id}, within=remember)
    except IntegrityError:
        raise ReplayedMessage(f"callback {msg_id[:60]!r} was received already") from None
    except IllegalTransition as exc:
        raise IllegalTransition(f"event {code} is {exc.state}, not escalated: {exc}", state=exc.state,
                                allowed=exc.allowed) from None
    return {"event_code": code, "status": status, "state": event["state"]}
