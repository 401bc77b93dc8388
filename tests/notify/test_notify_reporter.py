"""Feedback to the reporter (双反馈), both databases, against a real HTTP receiver standing in
for the county's SMS gateway (apprise ``json://``): a reporter who agreed is told of the
closure (here, and by the county's callback), of a rejection and of a merge (then of the
closure of the event it was merged into); one who did not agree is told nothing; the number
is in no log line, no delivery and no outbox row; quiet hours hold messages back; consent
without a mobile number is refused at every door (the API, Open311)."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gridgeo.config import get_settings
from gridgeo.errors import InvalidEvent
from gridgeo.events import get_event, report_event, take_action
from gridgeo.notify.handoff import accept_callback
from gridgeo.notify.webhooks import list_deliveries, new_secret
from gridgeo.notify.worker import deliver_due, fan_out
from gridgeo.store import schema
from helpers.apps import app_for
from helpers.authn import headers_for
from helpers.events_world import CST, G11, INSIDE, event
from helpers.receiver import Receiver

PHONE, OTHER = "13812345678", "13987654321"


def settings(monkeypatch, **env):
    for k, v in env.items():
        monkeypatch.setenv(f"GRIDGEO_{k.upper()}", v)
    get_settings.cache_clear()


def act(store, code, action, role="command_room", **kw):
    return take_action(store, code, action, role=role, actor=role, **kw)


def close_here(store, code):
    for action, role, note in (("accept", "command_room", None), ("dispatch", "command_room", None),
                               ("start", "department", None), ("resolve", "department", "已清理完毕"),
                               ("verify", "grid_worker", None), ("close", "command_room", None)):
        act(store, code, action, role, note=note)


def county_closes(store, code, secret):
    from standardwebhooks import Webhook

    body = json.dumps({"event_code": code, "status": "closed", "note": "区城管局已处置"}).encode()
    now = dt.datetime.now(dt.timezone.utc)
    headers = {"webhook-id": f"cb-{code}", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(secret).sign(f"cb-{code}", now, body)}
    return accept_callback(store, body, headers)


def rounds(store, n=3):
    for _ in range(n):
        fan_out(store)
        deliver_due(store)


def test_reporter_told_of_closure_rejection_and_merge(world, monkeypatch, caplog):
    secret = new_secret()
    with Receiver() as gateway:
        settings(monkeypatch, reporter_channel=f"json://127.0.0.1:{gateway.port}/sms?:to={{phone}}",
                 handoff_secret=secret)
        caplog.set_level(logging.DEBUG)  # apprise and urllib3 log URLs and bodies at DEBUG
        yes = report_event(world, event(reporter_phone="+86 138-1234-5678", notify_reporter=True,
                                        description="路灯不亮")).event
        assert yes["notify_reporter"] is True
        no = report_event(world, event(reporter_phone=OTHER)).event  # left a number, did not agree
        rejected = report_event(world, event(reporter_phone=PHONE, notify_reporter=True)).event
        master = report_event(world, event(reporter_phone=OTHER, notify_reporter=False)).event
        dup = report_event(world, event(reporter_phone=PHONE, notify_reporter=True)).event
        close_here(world, yes["code"])
        close_here(world, no["code"])
        act(world, rejected["code"], "reject", note="现场核实无此情况", data={"reason": "untrue"})
        act(world, dup["code"], "merge", data={"into": master["code"]})
        act(world, master["code"], "accept")
        act(world, master["code"], "escalate", note="事权不在本级")
        rounds(world)
        assert county_closes(world, master["code"], secret)["state"] == "closed"
        rounds(world)

        sms = [json.loads(b) for _, b in gateway.requests]
        assert {m["to"] for m in sms} == {PHONE} and all(h[":path"] == "/sms" for h, _ in gateway.requests)
        texts = [m["message"] for m in sms]
        assert len(texts) == 4, texts  # the closure, the rejection, the merge, the master's closure
        closed, rej, merged, after = texts
        assert yes["code"] in closed and "已办结" in closed and "已清理完毕" in closed
        assert rejected["code"] in rej and "不予受理" in rej and "信息不实" in rej and "现场核实无此情况" in rej
        assert dup["code"] in merged and master["code"] in merged and "合并办理" in merged
        assert dup["code"] in after and f"已并入事件{master['code']}" in after and "区城管局已处置" in after
        assert all(no["code"] not in t and f"（事件编号{master['code']}）" not in t for t in texts)
        assert {m["title"] for m in sms} == {"网格事件办理结果", "网格事件受理结果"}

        # the number: in no log line (masked in apprise's and urllib3's), no delivery, no outbox row
        assert PHONE not in caplog.text and "138********" in caplog.text
        items = list_deliveries(world, limit=100)["items"]
        told = [d for d in items if d["channel"] == "reporter"]
        assert sorted(d["target"] for d in told) == sorted([yes["code"], rejected["code"], dup["code"], dup["code"]])
        assert all(d["state"] == "delivered" for d in told)
        assert PHONE not in json.dumps(items)
        with world.engine.connect() as conn:
            outbox = json.dumps([r for (r,) in conn.execute(select(schema.outbox.c.data))], ensure_ascii=False)
        assert PHONE not in outbox and "138-1234" not in outbox

        # quiet hours (China time): the message waits for their end, not attempted
        now = dt.datetime.now(CST)
        quiet = f"{(now - dt.timedelta(hours=1)):%H:%M}-{(now + dt.timedelta(hours=1)):%H:%M}"
        settings(monkeypatch, reporter_quiet_hours=quiet)
        late = report_event(world, event(reporter_phone=PHONE, notify_reporter=True)).event
        act(world, late["code"], "reject", data={"reason": "invalid"})
        rounds(world, 2)
        pending, = list_deliveries(world, state="pending")["items"]
        assert (pending["target"], pending["attempts"]) == (late["code"], 0)
        assert pending["next_at"].endswith(quiet[-5:] + ":00+08:00")
        assert len(gateway.requests) == 4
    get_settings.cache_clear()


def test_no_gateway_no_message_and_consent_needs_a_mobile(world, monkeypatch):
    settings(monkeypatch)
    code = report_event(world, event(reporter_phone=PHONE, notify_reporter=True)).event["code"]
    act(world, code, "reject", data={"reason": "invalid"})
    rounds(world, 1)
    assert list_deliveries(world)["counts"] == {"pending": 0, "delivered": 0, "dead": 0}
    for phone in (None, "", "0578-1234567", "1381234567", "23812345678", "138123456789", "+1 138 1234 5678"):
        with pytest.raises(InvalidEvent, match="mobile"):
            report_event(world, event(reporter_phone=phone, notify_reporter=True))
    with pytest.raises(InvalidEvent, match="true or false"):
        report_event(world, event(reporter_phone=PHONE, notify_reporter="yes"))
    assert get_event(world, code)["notify_reporter"] is True


def test_consent_over_the_api_and_open311(world, monkeypatch):
    c = TestClient(app_for(world, monkeypatch))
    body = {"source": "app", "category_code": "ZZ001", "lon": INSIDE[G11][0], "lat": INSIDE[G11][1],
            "reporter_phone": "138 1234 5678", "notify_reporter": True}
    r = c.post("/v1/events", json=body)
    assert r.status_code == 201 and r.json()["notify_reporter"] is True
    for bad, where in (({"reporter_phone": "12345"}, "mobile"), ({"reporter_phone": None}, "mobile"),
                       ({"notify_reporter": "often"}, "notify_reporter"), ({"notify_reporter": [1]}, "notify_reporter")):
        r = c.post("/v1/events", json={**body, **bad})
        assert r.status_code == 422 and where in r.text, (bad, r.text)
    key = headers_for(world, "command_room", name="app")["Authorization"].split()[1]
    form = {"api_key": key, "service_code": "ZZ001", "lat": INSIDE[G11][1], "long": INSIDE[G11][0], "phone": PHONE}
    r = c.post("/open311/v2/requests.json", data={**form, "notify_reporter": "true"})
    assert r.status_code == 201, r.text
    assert get_event(world, r.json()[0]["service_request_id"])["notify_reporter"] is True
    r = c.post("/open311/v2/requests.json", data=form)
    assert get_event(world, r.json()[0]["service_request_id"])["notify_reporter"] is False
    for bad in ({"notify_reporter": "maybe"}, {"notify_reporter": "true", "phone": "0578-1234567"}):
        r = c.post("/open311/v2/requests.json", data={**form, **bad})
        assert r.status_code == 400 and "notify_reporter" in r.text, (bad, r.text)
