"""The notification routes over HTTP, and the hand-off (上报) end to end: an escalation
delivered to a real county receiver (signed, with history and photo links), its receipt
stored, the county's signed callbacks entering the history and closing the event; callbacks
refused when unsigned, badly signed, replayed, for an unknown event, malformed or huge."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from sqlalchemy import select

from gridgeo.errors import RoleNotAllowed
from gridgeo.events import get_event, report_event, take_action
from gridgeo.notify.webhooks import new_secret
from gridgeo.notify.worker import deliver_due, fan_out
from gridgeo.store import schema
from helpers.apps import app_for
from helpers.authn import headers_for
from helpers.events_world import event
from helpers.receiver import Receiver


def signed(secret: str, body: dict | bytes, msg_id: str, at: dt.datetime | None = None) -> tuple[bytes, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    at = at or dt.datetime.now(dt.timezone.utc)
    return raw, {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
                 "webhook-signature": Webhook(secret).sign(msg_id, at, raw), "content-type": "application/json"}


def test_handoff_and_callbacks_end_to_end(world, monkeypatch):
    secret = new_secret()
    with Receiver() as county:
        county.reply = {"receipt_no": "12345-2026-000777", "accepted": True}
        app = app_for(world, monkeypatch, handoff_url=county.url, handoff_secret=secret,
                      public_url="https://grid.example.gov.cn")
        c = TestClient(app)
        admin, room = headers_for(world, "admin"), headers_for(world, "command_room")

        # webhooks: the administrator only; the secret once
        r = c.post("/v1/webhooks", json={"url": county.url, "event_types": ["event.closed"]}, headers=room)
        assert r.status_code == 403
        assert c.post("/v1/webhooks", json={"url": county.url, "event_types": ["*"]}).status_code == 401
        r = c.post("/v1/webhooks", json={"url": "ftp://x", "event_types": ["*"]}, headers=admin)
        assert r.status_code == 422 and "url" in r.json()["detail"]
        r = c.post("/v1/webhooks", json={"url": county.url, "event_types": ["*"] * 51}, headers=admin)
        assert r.status_code == 422
        r = c.post("/v1/webhooks", json={"url": county.url + "/x" * 1000, "event_types": ["*"]}, headers=admin)
        assert r.status_code == 422
        r = c.get("/v1/webhooks", headers=admin)
        assert r.status_code == 200 and r.json() == []

        # escalate: the hand-off goes out, signed with the hand-off secret, with history and photos
        code = report_event(world, event(photos=["https://oss.example/a.jpg", "https://oss.example/b.jpg"])).event["code"]
        take_action(world, code, "accept", role="command_room", actor="cr")
        take_action(world, code, "escalate", role="command_room", actor="cr", note="事权不在本级",
                    data={"to": "12345"})
        fan_out(world)
        assert deliver_due(world) == 1
        (headers, raw), = county.requests
        msg = Webhook(secret).verify(raw, headers)
        assert msg["contract"] == "gridgeo.handoff/1" and msg["event"]["code"] == code
        assert [h["action"] for h in msg["history"]] == ["report", "accept", "escalate"]
        assert msg["photos"] == ["https://oss.example/a.jpg", "https://oss.example/b.jpg"]
        assert msg["escalation"] == {"to": "县12345平台", "reason": "事权不在本级"}
        assert msg["callback_url"] == "https://grid.example.gov.cn/v1/escalations/callback"
        r = c.get("/v1/deliveries", params={"event": code}, headers=room)
        assert r.status_code == 200
        d, = r.json()["items"]
        assert d["channel"] == "handoff" and d["state"] == "delivered"
        assert d["receipt"] == {"receipt_no": "12345-2026-000777", "accepted": True}
        assert c.get("/v1/deliveries", headers=headers_for(world, "grid_worker", grids=["x"])).status_code == 403

        # the county's callbacks
        url = "/v1/escalations/callback"
        raw, h = signed(secret, {"event_code": code, "status": "in_progress", "note": "已转区城管局"}, "cb-1")
        r = c.post(url, content=raw, headers=h)
        assert r.status_code == 200 and r.json()["state"] == "escalated"
        assert c.post(url, content=raw, headers=h).status_code == 409  # replayed
        raw2, h2 = signed(secret, {"event_code": code, "status": "closed"}, "cb-2")
        bad = dict(h2, **{"webhook-signature": "v1,AAAA"})
        assert c.post(url, content=raw2, headers=bad).status_code == 401
        other = json.dumps({"event_code": code, "status": "closed", "note": "改过"}).encode()
        assert c.post(url, content=other, headers=h2).status_code == 401  # body changed
        _, h6 = signed(new_secret(), raw2, "cb-2")
        assert c.post(url, content=raw2, headers=h6).status_code == 401  # another secret
        old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        raw5, h5 = signed(secret, {"event_code": code, "status": "closed"}, "cb-3", old)
        assert c.post(url, content=raw5, headers=h5).status_code == 401  # an hour old
        assert c.post(url, content=raw2).status_code == 401  # unsigned
        for body, status in [({"event_code": "E20990101000001", "status": "closed"}, 404),
                             ({"event_code": code, "status": "done"}, 422),
                             ({"event_code": ["x"], "status": "closed"}, 422),
                             (b"[1, 2", 422),
                             ({"event_code": code, "status": "closed", "note": "x" * 70_000}, 422)]:
            raw3, h3 = signed(secret, body, f"cb-{time.monotonic_ns()}")
            assert c.post(url, content=raw3, headers=h3).status_code == status, body
        r = c.post(url, content=raw2, headers=h2)
        assert r.status_code == 200 and r.json()["state"] == "closed"
        got = get_event(world, code)
        assert got["state"] == "closed" and got["closed_at"] is not None
        # the county's callbacks are actions of the machine (county_update, county_close): versions,
        # history, audit and outbox as for every other action
        assert [(x["action"], x["role"], x["to_state"]) for x in got["history"]][-2:] == [
            ("county_update", "county", "escalated"), ("county_close", "county", "closed")]
        assert got["version"] == len(got["history"]) == 5 and got["result"] == "上级已办结"
        assert got["history"][-1]["data"] == {"status": "closed", "message_id": "cb-2"}
        log = world.audit_log(entity="events", entity_id=code)
        assert list(log["action"])[-2:] == ["event.county_update", "event.county_close"]
        with world.engine.connect() as conn:
            types = [t for (t,) in conn.execute(select(schema.outbox.c.event_type)
                                                .where(schema.outbox.c.event_code == code).order_by(schema.outbox.c.id))]
        assert types[-3:] == ["event.county_update", "event.county_update", "event.closed"]
        # the county acts only through its signed callback, never as a caller's role
        with pytest.raises(RoleNotAllowed, match="callback"):
            take_action(world, code, "county_update", role="county", actor="x")
        # a closed event takes no more callbacks
        raw4, h4 = signed(secret, {"event_code": code, "status": "closed"}, "cb-9")
        assert c.post(url, content=raw4, headers=h4).status_code == 409
