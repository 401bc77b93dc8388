"""``gridgeo serve`` with its outbox worker, SIGKILLed right after an intake and right after
an action commit (the durability test's helpers): both notifications are delivered after
the restart, once each, in order, to a receiver that was down meanwhile."""

from __future__ import annotations

import time

import httpx
import pytest
from standardwebhooks import Webhook

from gridgeo.auth import create_token, create_user
from gridgeo.store import Store
from helpers.live_server import Server, event_bodies, fresh_database
from helpers.receiver import Receiver

ENV = {"GRIDGEO_OUTBOX_WORKER": "true", "GRIDGEO_OUTBOX_POLL_SECONDS": "0.05",
       "GRIDGEO_OUTBOX_BACKOFF_SECONDS": "0.05", "GRIDGEO_OUTBOX_BACKOFF_MAX": "0.2",
       "GRIDGEO_OUTBOX_MAX_ATTEMPTS": "1000", "GRIDGEO_OUTBOX_TIMEOUT": "2"}


@pytest.mark.slow
def test_sigkill_after_commit_delivered_after_restart(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    rx = Receiver().start()
    rx.stop()  # the receiver is down (its port known) until the last restart
    with fresh_database("sqlite", tmp_path, "gridgeo_test_notify_live") as url, Server(url, tmp_path) as server:
        store = Store(url)
        create_user(store, "admin1", role="admin", name="管理员", actor="test")
        create_user(store, "room1", role="command_room", name="指挥室", actor="test")
        admin, _ = create_token(store, "admin1", days=1, actor="test")
        room, _ = create_token(store, "room1", days=1, actor="test")
        store.close()
        server.start()
        r = httpx.post(f"{server.base}/v1/webhooks", headers={"Authorization": f"Bearer {admin}"},
                       json={"url": rx.url, "event_types": ["event.reported", "event.accepted"]})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        r = httpx.post(f"{server.base}/v1/events", json=event_bodies(1, "live")[0])
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        r = httpx.post(f"{server.base}/v1/events/{code}/actions", headers={"Authorization": f"Bearer {room}"},
                       json={"action": "accept", "version": 1})
        assert r.status_code == 200, r.text
        server.kill()  # right after the action's commit

        rx.start()
        server.start()
        end = time.monotonic() + 30
        while len(rx.requests) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.3)  # nothing more comes
        rx.stop()
    wh = Webhook(secret)
    got = [(h["webhook-id"], wh.verify(b, h)) for h, b in rx.requests]
    assert [(p["type"], p["data"]["event"]["code"]) for _, p in got] == [("event.reported", code),
                                                                          ("event.accepted", code)]
    assert len({k for k, _ in got}) == 2
