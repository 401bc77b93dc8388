"""Notifications, store level, both databases, against a real HTTP receiver on 127.0.0.1:
deliveries signed and verified with the Standard Webhooks library, in order per event;
the receiver down then back, answering 500 until the delivery is dead (then retried by
hand), answering too slowly; the sweeper recording yellow and red once; working-day
deadlines through intake and extension."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from standardwebhooks import Webhook

from gridgeo.config import get_settings
from gridgeo.errors import InvalidInput, NotFound
from gridgeo.events import get_event, report_event, take_action
from gridgeo.events.catalogue import put_category
from gridgeo.notify.webhooks import create_webhook, delete_webhook, list_deliveries, list_webhooks, retry_delivery
from gridgeo.events.queries import queue_counts
from gridgeo.notify.worker import deliver_due, fan_out, sweep_warnings
from helpers.databases import empty_store
from helpers.events_world import CST, event
from helpers.receiver import Receiver

FAST = {"OUTBOX_BACKOFF_SECONDS": "0.05", "OUTBOX_BACKOFF_MAX": "0.2", "OUTBOX_MAX_ATTEMPTS": "3",
        "OUTBOX_TIMEOUT": "0.5"}


@pytest.fixture
def fast(monkeypatch):
    for k, v in FAST.items():
        monkeypatch.setenv(f"GRIDGEO_{k}", v)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def drain(store, until=lambda: True, timeout=10.0):
    """Run the worker's rounds until nothing is pending and ``until()`` holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        fan_out(store)
        deliver_due(store)
        if list_deliveries(store)["counts"]["pending"] == 0 and until():
            return
        time.sleep(0.03)
    raise AssertionError(f"still pending: {list_deliveries(store)}")


def verified(receiver, secret):
    """Every request verified with the Standard Webhooks library: (webhook-id, type, code)."""
    wh = Webhook(secret)
    out = []
    for headers, body in receiver.requests:
        payload = wh.verify(body, headers)
        out.append((headers["webhook-id"], payload["type"], payload["data"]["event"]["code"]))
    return out


def act(store, code, action, role, **kw):
    return take_action(store, code, action, role=role, actor=role, **kw)


def test_webhook_deliveries_down_500_slow_dead_and_retry(world, fast):
    with Receiver() as rx:
        hook = create_webhook(world, rx.url, ["*"], actor="admin")
        assert hook["secret"].startswith("whsec_")
        code = report_event(world, event()).event["code"]
        act(world, code, "accept", "command_room")
        act(world, code, "dispatch", "command_room")
        drain(world)
        got = verified(rx, hook["secret"])
        assert [t for _, t, _ in got] == ["event.reported", "event.accepted", "event.dispatched"]
        body = rx.bodies()[0]["data"]["event"]
        assert "reporter_phone" not in body and body["warning"] == "green"

        # down: the first waits with its backoff, the second waits behind it
        rx.stop()
        act(world, code, "start", "department")
        act(world, code, "resolve", "department", note="已处理")
        fan_out(world)
        deliver_due(world)
        pend = [d for d in list_deliveries(world, state="pending")["items"]]
        assert sorted(d["attempts"] for d in pend) == [0, 1]
        assert "ConnectError" in next(d["last_error"] for d in pend if d["attempts"])
        rx.start()  # back, on the same port
        drain(world)
        got = verified(rx, hook["secret"])
        assert [t for _, t, _ in got[3:]] == ["event.start", "event.resolved"]
        assert len({k for k, _, _ in got}) == len(got) == 5  # each once

        # 500 until dead (3 attempts), listed as dead, retried by hand with the same key
        rx.status = 500
        act(world, code, "verify", "grid_worker")
        drain(world, until=lambda: list_deliveries(world)["counts"]["dead"] == 1)
        dead = list_deliveries(world, state="dead")["items"]
        assert dead[0]["attempts"] == 3 and dead[0]["last_status"] == 500 and dead[0]["event_type"] == "event.verify"
        rx.status = 200
        again = retry_delivery(world, dead[0]["id"], actor="admin")
        assert again["state"] == "pending"
        drain(world)
        keys = [h["webhook-id"] for h, _ in rx.requests]
        assert keys[-4:] == [dead[0]["delivery_key"]] * 4  # 3 refused + 1 accepted, one key

        # slow: answered after the timeout, sent again with the same key, delivered
        rx.delay = 1.0
        act(world, code, "close", "command_room")
        fan_out(world)
        deliver_due(world)
        assert list_deliveries(world)["counts"]["pending"] == 1
        rx.delay = 0.0
        drain(world)
        time.sleep(1.0)  # the slow answer's request is recorded once its handler wakes
        closing = [h["webhook-id"] for h, b in rx.requests if b"event.closed" in b]
        assert len(closing) == 2 and len(set(closing)) == 1
        assert list_deliveries(world)["counts"] == {"pending": 0, "delivered": 7, "dead": 0}

        # a deleted webhook gets nothing more
        delete_webhook(world, hook["id"], actor="admin")
        with pytest.raises(NotFound):
            delete_webhook(world, hook["id"], actor="admin")
        n = len(rx.requests)
        report_event(world, event())
        drain(world)
        assert len(rx.requests) == n


REFUSED = [
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": "http://" + "a" * 3000}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "http://x y/"}, "url"),
    ({"event_types": ["event.nope"]}, "unknown event types"),
    ({"event_types": []}, "event_types"),
    ({"secret": "whsec_short"}, "secret"),
    ({"secret": "ggt_" + "x" * 40}, "secret"),
]


def test_webhook_refused(tmp_path):
    store = empty_store("sqlite", tmp_path)
    for kw, what in REFUSED:
        args = {"url": "http://127.0.0.1:9/hook", "event_types": ["*"], **kw}
        with pytest.raises(InvalidInput, match=what):
            create_webhook(store, args.pop("url"), args.pop("event_types"), actor="admin", **args)
    assert list_webhooks(store) == []
    store.close()


def test_working_day_deadline_sweeper_and_extension(world, fast):
    # a category counted in working days; reported the day before National Day 2026
    put_category(world, "ZZ001", {"deadline_workdays": 2}, actor="admin")
    reported = dt.datetime(2026, 9, 30, 10, tzinfo=CST)
    e = report_event(world, event("ZZ001", at=reported)).event
    code = e["code"]
    assert e["deadline_kind"] == "workdays"
    assert e["deadline_at"] == "2026-10-10T00:00:00+08:00"  # end of Friday 10-09
    with Receiver() as rx:
        hook = create_webhook(world, rx.url, ["event.warning", "event.overdue"], actor="admin")
        # 10-09 10:00: 48 h used of 62 working hours -> yellow; recorded once
        at = dt.datetime(2026, 10, 9, 10, tzinfo=CST)
        assert queue_counts(world, now=at)["due_soon"] == 0  # not swept yet
        assert sweep_warnings(world, at) == {"yellow": 1, "red": 0}
        # the 临期 queue (command room, console) is the recorded yellow warning
        assert queue_counts(world, now=at)["due_soon"] == 1 and queue_counts(world, now=at)["overdue"] == 0
        assert sweep_warnings(world, dt.datetime(2026, 10, 9, 11, tzinfo=CST)) == {"yellow": 0, "red": 0}
        assert sweep_warnings(world, dt.datetime(2026, 10, 10, 1, tzinfo=CST)) == {"yellow": 0, "red": 1}
        assert sweep_warnings(world, dt.datetime(2026, 10, 11, 1, tzinfo=CST)) == {"yellow": 0, "red": 0}
        drain(world)
        assert [t for _, t, _ in verified(rx, hook["secret"])] == ["event.warning", "event.overdue"]
    got = get_event(world, code)
    assert [h["action"] for h in got["history"]] == ["report", "warn", "overdue"]
    assert got["warning"] == "red" and got["history"][2]["data"]["late_hours"] == 1.0
    # one working day more: Saturday 10-10 is a make-up working day
    act(world, code, "accept", "command_room")
    act(world, code, "dispatch", "command_room")
    got = act(world, code, "extend", "command_room", data={"days": 1})
    assert got["deadline_at"] == "2026-10-11T00:00:00+08:00" and got["extended_days"] == 1
    with pytest.raises(Exception, match="hours|days"):
        act(world, code, "extend", "command_room", data={})


def test_people_channels_by_scope_role_and_quiet_hours(world, fast):
    from gridgeo.auth import create_user
    from gridgeo.notify.people import create_channel
    from helpers.events_world import G11, G22

    code = report_event(world, event()).event["code"]  # in G11
    fan_out(world)  # before any channel: nobody is told of it
    dept = get_event(world, code)["department"]
    create_user(world, "dept1", role="department", name="部门", department=dept, actor="t")
    create_user(world, "gw_in", role="grid_worker", name="网格员甲", grids=[G11], actor="t")
    create_user(world, "gw_out", role="grid_worker", name="网格员乙", grids=[G22], actor="t")
    now = dt.datetime.now(CST)
    quiet = [(now - dt.timedelta(hours=1)).strftime("%H:%M"), (now + dt.timedelta(hours=1)).strftime("%H:%M")]
    with Receiver() as rx:
        base = f"json://127.0.0.1:{rx.port}"
        for user in ("dept1", "gw_in", "gw_out"):
            ch = create_channel(world, user, f"{base}/{user}", username=user, actor="admin")
            assert ch["url"] == f"json://127.0.0.1:{rx.port}/…"  # its tokens never shown
        create_channel(world, "指挥室", f"{base}/room", role="command_room", event_types=["event.escalated"],
                       quiet_hours=quiet, actor="admin")
        code2 = report_event(world, event()).event["code"]  # after the channels: gw_in is told
        for c in (code, code2):
            act(world, c, "accept", "command_room")
            act(world, c, "dispatch", "command_room")
        act(world, code2, "escalate", "command_room", note="事权不在本级")
        for _ in range(3):
            fan_out(world)
            deliver_due(world)
        paths = sorted(h[":path"] for h, _ in rx.requests)
        assert paths == ["/dept1", "/dept1", "/gw_in"], paths
        msgs = {h[":path"]: json.loads(b) for h, b in rx.requests}
        assert msgs["/gw_in"]["title"].startswith("【新事件】") and code2 in msgs["/gw_in"]["title"]
        assert "办理时限" in msgs["/dept1"]["message"]
        # a department's request for an extension tells its platform office, the answer the department
        platform = get_event(world, code)["platform"]
        create_user(world, "po1", role="platform_office", name="平台办", platform=platform, actor="t")
        create_channel(world, "平台办", f"{base}/po1", username="po1", actor="admin")
        act(world, code, "ask_extension", "department", note="材料未齐", data={"hours": 24})
        act(world, code, "grant_extension", "platform_office")
        for _ in range(2):
            fan_out(world)
            deliver_due(world)
        later = [(h[":path"], json.loads(b)["title"]) for h, b in rx.requests[len(paths):]]
        assert sorted(p for p, _ in later) == ["/dept1", "/po1"], later
        assert all(code in t for _, t in later)
        assert dict(later)["/po1"].startswith("【申请延期】") and dict(later)["/dept1"].startswith("【延期】")
        # the command room's escalation waits for the end of its quiet hours, unattempted
        pending = list_deliveries(world, state="pending")["items"]
        assert [(d["channel"], d["event_type"], d["attempts"]) for d in pending] == [("person", "event.escalated", 0)]
        assert pending[0]["next_at"].endswith(quiet[1] + ":00+08:00")
    for kw in ({"role": "department"}, {"role": "command_room", "username": "dept1"}, {},
               {"role": "command_room", "quiet_hours": ("25:00", "07:00")},
               {"role": "command_room", "event_types": ["event.nope"]}):
        with pytest.raises(InvalidInput):
            create_channel(world, "x", "json://127.0.0.1:9/x", actor="admin", **kw)
    with pytest.raises(InvalidInput, match="apprise"):
        create_channel(world, "x", "nothing://at/all", role="command_room", actor="admin")
