"""Actions on stored events, both databases: every transition of the machine taken on a
real event, refusals, versions, supervision, escalation, merging, the reporter's view."""

from __future__ import annotations

import datetime as dt

import pytest

from gridgeo.errors import IllegalTransition, InvalidEvent, NotFound, RoleNotAllowed, StaleVersion
from gridgeo.events import get_event, list_events, report_event, reporter_view, supervision, take_action
from gridgeo.events.queries import command_room
from helpers.events_world import CST, G12, G22, INSIDE, event
from gridgeo.events.workflow import ACTIONS
from helpers.life_cycle import EXPECTED


def _pending(store, code, hours):
    """A request asked while the department held the event, still waiting now (escalated,
    suspended, resolved): written as it stands, the state machine took the request earlier."""
    from sqlalchemy import update

    from gridgeo.store import schema

    with store.engine.begin() as conn:
        conn.execute(update(schema.events).where(schema.events.c.code == code)
                     .values(extension_requested_hours=hours))

# How each action is taken in these tests: role, note, data.
HOW = {
    "accept": ("command_room", None, {}),
    "reject": ("command_room", "信息不实", {"reason": "untrue"}),
    "merge": ("command_room", None, {"into": "MASTER"}),
    "review": ("leadership", "同意交办", {}),
    "dispatch": ("command_room", None, {}),
    "return": ("department", "非本部门职责", {}),
    "escalate": ("command_room", "事权不在本级", {}),
    "start": ("department", None, {}),
    "suspend": ("command_room", "挂账：需县级部门协调", {}),
    "resume": ("command_room", None, {}),
    "resolve": ("department", "已处理完毕", {}),
    "rework": ("grid_worker", "核查未通过：整改不到位", {}),
    "verify": ("grid_worker", None, {}),
    "close": ("command_room", None, {}),
    "extend": ("platform_office", "需等待材料", {"hours": 48}),
    "ask_extension": ("department", "需等待鉴定结果", {"hours": 24}),
    "grant_extension": ("platform_office", None, {}),
    "refuse_extension": ("command_room", "理由不充分", {}),
    "supervise": ("command_room", "超期督办", {}),
    "locate": ("command_room", None, {"grid_code": G22}),
    "rate": ("reporter", "满意", {"satisfaction": 4}),
    "county_update": ("county", "上级已接收", {"status": "received"}),
    "county_close": ("county", "上级已办结", {"status": "closed"}),
}
PATH = {
    "reported": [], "accepted": ["accept"], "reviewing": ["accept"], "rejected": ["reject"],
    "dispatched": ["accept", "dispatch"], "returned": ["accept", "dispatch", "return"],
    "in_progress": ["accept", "dispatch", "start"], "suspended": ["accept", "dispatch", "start", "suspend"],
    "escalated": ["accept", "escalate"], "resolved": ["accept", "dispatch", "start", "resolve"],
    "verified": ["accept", "dispatch", "start", "resolve", "verify"],
    "closed": ["accept", "dispatch", "start", "resolve", "verify", "close"],
}


class Walker:
    """Takes actions the way a client does: with the version it last saw."""

    def __init__(self, store):
        self.store = store
        self.tokens = {}

    def new(self, category="ZZ001", **kw):
        r = report_event(self.store, event(category, **kw))
        self.tokens[r.event["code"]] = r.token
        return r.event["code"]

    def act(self, code, action, *, role=None, note=None, data=None, version=None, **kw):
        r, n, d = HOW[action]
        if (role or r) == "county":  # the county acts through its callback, which records its message
            kw.setdefault("within", lambda conn, row: None)  # (the signed callback: tests/notify)
        e = get_event(self.store, code, history=False)
        return take_action(self.store, code, action, role=role or r, actor="测试员",
                           version=e["version"] if version is None else version,
                           note=n if note is None else note, data=dict(d if data is None else data),
                           token=self.tokens.get(code), **kw)

    def to(self, state, **kw):
        code = self.new("ZZ009" if state == "reviewing" else "ZZ001", **kw)
        for a in PATH[state]:
            self.act(code, a)
        assert get_event(self.store, code)["state"] == state
        return code


def test_every_transition_on_the_store(world):
    w = Walker(world)
    master = w.to("accepted", lon=INSIDE[G12][0], lat=INSIDE[G12][1])
    for frm, action, to, roles in EXPECTED:
        code = w.to(frm)
        data = {"into": master} if action == "merge" else None
        if ACTIONS[action].pending:  # an answer needs a request waiting (asked in a state the department holds)
            take_action(world, code, "ask_extension", role="department", actor="测试员", data={"hours": 5},
                        note="需等待") if frm in ("dispatched", "in_progress") else _pending(world, code, 5)
        e = w.act(code, action, data=data)
        assert (e["state"], e["history"][-1]["action"], e["history"][-1]["from_state"]) == (to, action, frm), \
            (frm, action)
        assert e["version"] == len(e["history"])
        # a role that may not take it is refused, and nothing changes
        other = next(r for r in ("grid_worker", "department", "command_room") if r not in roles)
        if action != "rate" and to != "rejected":
            with pytest.raises((RoleNotAllowed, IllegalTransition)):
                w.act(code, "supervise" if to in ("closed",) else action, role=other, data=data)


def test_refused_transitions_on_the_store(world):
    w = Walker(world)
    code = w.to("dispatched")
    before = get_event(world, code)
    for action in ("accept", "close", "verify", "resolve", "rate", "review", "resume"):
        with pytest.raises(IllegalTransition) as exc:
            w.act(code, action)
        assert set(exc.value.allowed) == {"return", "escalate", "start", "extend", "ask_extension",
                                          "supervise", "locate"}
    after = get_event(world, code)
    assert after["version"] == before["version"] and after["history"] == before["history"]


def test_stale_version_is_refused(world):
    w = Walker(world)
    code = w.new()
    w.act(code, "accept", version=1)
    with pytest.raises(StaleVersion) as exc:
        w.act(code, "reject", version=1)  # someone else accepted it meanwhile
    assert exc.value.current == 2 and exc.value.status == 409
    assert get_event(world, code)["state"] == "accepted"


def test_actions_need_their_data(world):
    w = Walker(world)
    code = w.to("dispatched")
    with pytest.raises(InvalidEvent, match="hours"):
        w.act(code, "extend", data={})
    with pytest.raises(InvalidEvent, match="between"):
        w.act(code, "extend", data={"hours": 0})
    with pytest.raises(InvalidEvent, match="note"):
        w.act(code, "return", note="")
    with pytest.raises(NotFound):
        take_action(world, "E0", "accept", role="command_room", actor="x")


def test_history_and_audit_keep_who_when_and_the_note(world):
    w = Walker(world)
    code = w.to("returned")
    e = get_event(world, code)
    assert [h["action"] for h in e["history"]] == ["report", "accept", "dispatch", "return"]
    ret = e["history"][-1]
    assert (ret["role"], ret["actor"], ret["note"]) == ("department", "测试员", "非本部门职责")
    log = world.audit_log(entity="events", entity_id=code)
    assert list(log["action"]) == ["event.report", "event.accept", "event.dispatch", "event.return"]
    assert log.iloc[-1]["detail"]["note"] == "非本部门职责" and log.iloc[-1]["actor"] == "测试员"


def test_dispatch_can_reroute(world):
    w = Walker(world)
    code = w.to("returned")
    # Re-routing to a category of another platform is a dispatch across platforms: the
    # command room's (a platform office keeps to its platform, test_dispatch_targets_...).
    e = w.act(code, "dispatch", role="command_room", data={"category_code": "ZF001"})
    assert (e["category_code"], e["platform"], e["department"]) == ("ZF001", "enforcement", "综合行政执法中队")
    assert e["deadline_at"] == (dt.datetime.fromisoformat(e["reported_at"]) + dt.timedelta(hours=120)).isoformat()
    e = w.act(w.to("accepted"), "dispatch", data={"department": "司法所"})
    assert e["department"] == "司法所"


def test_dispatch_targets_come_from_the_catalogue_and_offices_keep_to_their_platform(world):
    w = Walker(world)
    code = w.to("returned")  # a ZZ001 event: stability, 综治办
    before = get_event(world, code)
    # a department that does not exist, or not of that platform: refused, saying what is allowed
    for data in ({"department": "不存在的部门"}, {"department": "市场监管所", "platform": "stability"},
                 {"platform": "market"}, {"department": "综治办", "platform": "nowhere"}):
        for role in ("command_room", "platform_office"):
            with pytest.raises(InvalidEvent) as exc:
                w.act(code, "dispatch", role=role, data=data)
            assert exc.value.status == 422
            if "nowhere" not in str(data):
                assert "stability: 司法所、综治办" in str(exc.value) or "司法所" in str(exc.value)
    # a platform office: inside its platform only, whichever way it names the target
    for data in ({"department": "市场监管所"}, {"department": "市场监管所", "platform": "market"},
                 {"category_code": "SC001"}):
        with pytest.raises(RoleNotAllowed, match="inside its platform") as exc:
            w.act(code, "dispatch", role="platform_office", data=data)
        assert exc.value.roles == ["command_room"] and exc.value.status == 403
    after = get_event(world, code)
    assert (after["version"], after["platform"], after["department"], after["state"]) == \
        (before["version"], before["platform"], before["department"], "returned")  # nothing stored
    # inside the platform it may; the command room may cross platforms (to catalogue pairs)
    e = w.act(code, "dispatch", role="platform_office", data={"department": "司法所"})
    assert (e["platform"], e["department"], e["state"]) == ("stability", "司法所", "dispatched")
    other = w.to("accepted")
    e = w.act(other, "dispatch", role="command_room", data={"department": "市场监管所"})
    assert (e["platform"], e["department"]) == ("market", "市场监管所")  # the department's one platform
    e = get_event(world, w.to("accepted"))
    assert w.act(e["code"], "dispatch", role="command_room", data={"platform": "enforcement",
                                                                     "department": "综合行政执法中队"})["platform"] == "enforcement"


def test_admin_and_planner_take_no_action_and_are_told_so(world):
    w = Walker(world)
    code = w.new()
    for role in ("admin", "planner"):
        with pytest.raises(RoleNotAllowed, match="takes no action on events"):
            w.act(code, "accept", role=role)
    assert get_event(world, code)["state"] == "reported"


def test_major_event_is_reviewed_before_dispatch(world):
    w = Walker(world)
    code = w.to("reviewing")
    with pytest.raises(IllegalTransition):
        w.act(code, "dispatch")
    e = w.act(code, "review")
    assert e["state"] == "accepted"
    assert w.act(code, "dispatch")["department"] == "派出所"


# -- supervision -------------------------------------------------------------------------


def test_overdue_events_are_supervised_with_how_late(world):
    w = Walker(world)
    long_ago = dt.datetime.now(CST) - dt.timedelta(hours=100)  # ZZ001 gives 72 h
    late = w.to("in_progress", at=long_ago)
    on_time = w.to("in_progress")
    resolved_late = w.to("resolved", at=long_ago)
    s = supervision(world)
    assert [e["code"] for e in s["overdue"]["items"]] == [late]
    item = s["overdue"]["items"][0]
    assert item["overdue"] and 27.9 < item["late_hours"] < 28.2 and item["supervised"] == 0
    assert s["overdue"]["by_platform"] == {"stability": 1}
    assert not get_event(world, on_time)["overdue"] and not get_event(world, resolved_late)["overdue"]
    e = w.act(late, "supervise")
    assert 27.9 < e["history"][-1]["data"]["late_hours"] < 28.2
    assert supervision(world)["overdue"]["items"][0]["supervised"] == 1
    assert list_events(world, overdue=True)["total"] == 1
    assert list_events(world, overdue=False)["total"] == 2


def test_an_extension_moves_the_deadline_and_is_recorded(world):
    w = Walker(world)
    code = w.to("in_progress", at=dt.datetime.now(CST) - dt.timedelta(hours=100))
    assert get_event(world, code)["overdue"]
    before = get_event(world, code)["deadline_at"]
    e = w.act(code, "extend", data={"hours": 48})
    assert e["extended_hours"] == 48 and not e["overdue"]
    assert dt.datetime.fromisoformat(e["deadline_at"]) - dt.datetime.fromisoformat(before) == dt.timedelta(hours=48)
    rec = e["history"][-1]
    assert rec["action"] == "extend" and rec["data"]["hours"] == 48
    assert rec["data"]["deadline_from"] and rec["data"]["deadline_to"]
    assert supervision(world)["overdue"]["total"] == 0


def test_an_escalation_hands_over_and_keeps_tracking(world):
    w = Walker(world)
    code = w.to("accepted", at=dt.datetime.now(CST) - dt.timedelta(hours=100))
    e = w.act(code, "escalate", data={"to": "12345"})
    assert e["state"] == "escalated" and e["escalated_to"] == "县12345平台"
    s = supervision(world)
    assert [x["code"] for x in s["escalated"]["items"]] == [code]
    assert [x["code"] for x in s["overdue"]["items"]] == [code]  # still tracked, and late
    # the county's department takes it up; it comes back for verification and closing
    for a in ("start", "resolve", "verify", "close"):
        e = w.act(code, a)
    assert e["state"] == "closed" and e["closed_at"] is not None
    assert supervision(world)["escalated"]["total"] == 0


def test_outside_event_escalates_to_its_routed_target(world):
    w = Walker(world)
    code = w.new(lon=119.30, lat=28.40)
    w.act(code, "accept")
    e = w.act(code, "escalate", note="")
    assert e["escalated_to"] == "县12345平台" and "不在本辖区" in e["history"][-1]["data"]["reason"]


def test_suspended_events_are_listed_apart(world):
    w = Walker(world)
    code = w.to("suspended", at=dt.datetime.now(CST) - dt.timedelta(hours=100))
    s = supervision(world)
    assert s["overdue"]["total"] == 0 and [x["code"] for x in s["suspended"]["items"]] == [code]


# -- duplicates, unlocated ------------------------------------------------------------------


def test_the_command_room_merges_a_duplicate(world):
    w = Walker(world)
    master = w.new("ZF001")
    dup = w.new("ZF001")
    assert get_event(world, dup)["duplicate_candidates"][0]["code"] == master
    e = w.act(dup, "merge", data={"into": master})
    assert (e["state"], e["duplicate_of"], e["reject_reason"]) == ("rejected", master, "duplicate")
    m = get_event(world, master)
    assert m["history"][-1]["action"] == "absorb" and m["history"][-1]["data"] == {"duplicate": dup}
    assert m["state"] == "reported" and m["version"] == 2
    with pytest.raises(InvalidEvent, match="open event"):
        w.act(w.new("ZF001"), "merge", data={"into": dup})
    with pytest.raises(InvalidEvent, match="itself"):
        w.act(master, "merge", data={"into": master})


def test_unlocated_event_is_placed_by_hand(world):
    w = Walker(world)
    code = w.new(source="hotline", nowhere=True)
    assert command_room(world)["unlocated"]["total"] == 1
    e = w.act(code, "locate", data={"grid_code": G22})
    assert (e["located_by"], e["grid_code"]) == ("manual", G22)
    assert command_room(world)["unlocated"]["total"] == 0
    e = w.act(code, "locate", data={"address": "测试乡东村2号"})
    assert (e["located_by"], e["grid_code"]) == ("address", G12)
    with pytest.raises(Exception, match="not in plan"):
        w.act(code, "locate", data={"grid_code": "331124201201999"})


# -- feedback: the reporter and the command room ---------------------------------------------


def test_the_reporters_view_and_rating(world):
    w = Walker(world)
    code = w.new(reporter_name="黄敏", reporter_phone="19944667827")
    other = w.new(reporter_name="别人", reporter_phone="13000000000")
    token = w.tokens[code]
    view = reporter_view(world, code, token)
    assert view["state"] == "reported" and view["can_rate"] is False
    assert "reporter_name" not in view and "reporter_phone" not in view
    for a in PATH["closed"]:
        w.act(code, a)
    view = reporter_view(world, code, token)
    assert view["state"] == "closed" and view["result"] == "已处理完毕" and view["can_rate"]
    assert [t["action"] for t in view["timeline"]] == ["report", "accept", "dispatch", "start", "resolve", "verify", "close"]
    assert all(t["note"] is None for t in view["timeline"] if t["action"] not in ("resolve", "reject", "close"))
    assert "测试员" not in str(view)
    with pytest.raises(NotFound):
        reporter_view(world, code, w.tokens[other])  # another reporter's token
    with pytest.raises(NotFound):
        reporter_view(world, code, "")
    e = w.act(code, "rate", data={"satisfaction": 5})
    assert e["satisfaction"] == 5 and reporter_view(world, code, token)["can_rate"] is False
    with pytest.raises(IllegalTransition, match="once"):
        w.act(code, "rate")
    with pytest.raises(RoleNotAllowed, match="token"):
        take_action(world, other, "rate", role="reporter", actor="x", token=token, data={"satisfaction": 1})
    with pytest.raises(InvalidEvent):
        w.act(w.to("closed"), "rate", data={"satisfaction": 9})


def test_a_merged_reporter_follows_the_master(world):
    w = Walker(world)
    master = w.new("ZF001")
    dup = w.new("ZF001")
    w.act(dup, "merge", data={"into": master})
    w.act(master, "accept")
    view = reporter_view(world, dup, w.tokens[dup])
    assert view["merged_into"]["code"] == master and view["merged_into"]["state"] == "accepted"


def test_the_command_room_gets_the_feedback(world):
    w = Walker(world)
    closed = w.to("closed")
    verified = w.to("verified")
    room = command_room(world)
    assert [x["code"] for x in room["to_close"]["items"]] == [verified]
    assert {x["code"] for x in room["feedback"]["items"]} == {closed, verified}


def test_list_filters_and_paging(world):
    w = Walker(world)
    a = w.to("dispatched")
    b = w.to("in_progress", lon=INSIDE[G22][0], lat=INSIDE[G22][1])
    c = w.new("ZF001", at=dt.datetime.now(CST) - dt.timedelta(days=3))
    assert list_events(world, state="dispatched")["total"] == 1
    assert list_events(world, state=["dispatched", "in_progress"])["total"] == 2
    assert [e["code"] for e in list_events(world, grid=G22)["items"]] == [b]
    assert list_events(world, village=G22[:12])["total"] == 1
    assert list_events(world, platform="enforcement")["total"] == 1
    assert list_events(world, department="综治办")["total"] == 2
    assert list_events(world, since=dt.datetime.now(CST) - dt.timedelta(days=1))["total"] == 2
    assert [e["code"] for e in list_events(world, until=dt.datetime.now(CST) - dt.timedelta(days=1))["items"]] == [c]
    page = list_events(world, limit=2, offset=0)
    assert page["total"] == 3 and [e["code"] for e in page["items"]] == [b, a]
    assert [e["code"] for e in list_events(world, limit=2, offset=2)["items"]] == [c]
    with pytest.raises(InvalidEvent):
        list_events(world, state="flying")
