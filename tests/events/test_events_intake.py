"""Intake on both databases: each geolocation path, routing, deadlines, idempotent
retries, duplicates, durability."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from gridgeo.crs import convert
from gridgeo.errors import IdempotencyKeyReused, InvalidCoordinates, InvalidEvent
from gridgeo.events import get_event, list_events, report_event
from gridgeo.events.intake import hash_token
from gridgeo.store import Store, schema
from helpers.events_world import CST, G11, G12, G21, INSIDE, X0, Y0, event


def _count(store, table):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


# -- geolocation paths -------------------------------------------------------------------


def test_coordinates(world):
    r = report_event(world, event(lon=INSIDE[G12][0], lat=INSIDE[G12][1]))
    e = r.event
    assert (e["located_by"], e["grid_code"], e["plan_version"], e["village_code"]) == ("coordinates", G12, "v1", G12[:12])
    assert e["locate_distance_m"] == 0.0 and e["position"]["lon"] == pytest.approx(INSIDE[G12][0])


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "cgcs2000"])
def test_coordinates_in_chinese_systems(world, crs):
    lon, lat = convert(*INSIDE[G21], "wgs84", crs)
    e = report_event(world, event(lon=float(lon), lat=float(lat), crs=crs)).event
    assert e["located_by"] == "coordinates" and e["grid_code"] == G21
    assert e["crs"] == crs and e["lon"] == pytest.approx(float(lon))  # kept as reported
    assert e["position"]["lon"] == pytest.approx(INSIDE[G21][0], abs=1e-7)


def test_snapped_within_tolerance(world):
    lon = X0 - 20 / (111_320 * 0.8795)  # about 20 m west of the township
    e = report_event(world, event(lon=lon, lat=Y0 + 0.002)).event
    assert e["located_by"] == "snapped" and e["grid_code"] == G11
    assert 15 < e["locate_distance_m"] < 25


def test_outside_is_escalated_to_12345(world):
    e = report_event(world, event(lon=X0 - 0.05, lat=Y0 + 0.002)).event
    assert e["located_by"] == "outside" and e["grid_code"] is None
    assert (e["route"], e["route_target"]) == ("escalate", "12345") and "不在本辖区" in e["route_reason"]
    assert e["position"] is not None  # where it happened is kept


def test_address_only(world):
    e = report_event(world, event(source="petition", address="测试乡东村二号附近")).event
    assert e["located_by"] == "address" and e["grid_code"] == G12
    assert e["address_match"] == "测试乡东村2号" and e["address_confidence"] == pytest.approx(0.95)
    assert e["position"]["lon"] == pytest.approx(X0 + 0.007)


def test_address_that_matches_nothing_is_unlocated(world):
    e = report_event(world, event(source="hotline", address="某某路99号")).event
    assert e["located_by"] == "unlocated" and e["grid_code"] is None


def test_patrol_with_neither_takes_the_reporters_grid(world):
    e = report_event(world, event(source="patrol", nowhere=True, reporter_staff_code="P2")).event
    assert (e["located_by"], e["grid_code"], e["position"]) == ("reporter_grid", G11, None)


def test_patrol_of_an_instructor_of_two_grids_is_unlocated(world):
    e = report_event(world, event(source="patrol", nowhere=True, reporter_staff_code="P3")).event
    assert e["located_by"] == "unlocated"


def test_nothing_at_all_goes_to_the_unlocated_queue(world):
    e = report_event(world, event(source="hotline", nowhere=True)).event
    assert e["located_by"] == "unlocated" and e["grid_code"] is None
    page = list_events(world, located_by="unlocated")
    assert [x["code"] for x in page["items"]] == [e["code"]]


def test_no_plan_in_force_on_the_day(world):
    e = report_event(world, event(at=dt.datetime(2023, 6, 1, 9, tzinfo=CST))).event
    assert e["located_by"] == "unlocated" and e["plan_version"] is None


@pytest.mark.parametrize("kw,exc", [
    ({"lon": 119.4, "lat": None}, InvalidCoordinates),
    ({"lon": 200.0, "lat": 28.4}, InvalidCoordinates),
    ({"lon": 28.402, "lat": 119.402}, InvalidCoordinates),  # swapped
    ({"lon": float("nan"), "lat": 28.4}, InvalidCoordinates),
])
def test_bad_coordinates_are_refused(world, kw, exc):
    with pytest.raises(exc):
        report_event(world, event(**kw))
    assert _count(world, schema.events) == 0


def test_bad_events_are_refused(world):
    with pytest.raises(InvalidEvent, match="unknown category"):
        report_event(world, event(category="NOPE"))
    with pytest.raises(InvalidEvent, match="source"):
        report_event(world, event(source="pigeon"))
    with pytest.raises(InvalidEvent, match="time zone"):
        report_event(world, event(at=dt.datetime(2026, 3, 1, 9)))
    with pytest.raises(InvalidEvent, match="future"):
        report_event(world, event(at=dt.datetime.now(CST) + dt.timedelta(days=1)))
    with pytest.raises(InvalidEvent, match="URL"):
        report_event(world, event(photos=["file:///etc/passwd"]))
    assert _count(world, schema.events) == 0


# -- routing and deadlines on the store ---------------------------------------------------


def test_routing_and_deadline(world):
    at = dt.datetime(2026, 3, 1, 9, 30, tzinfo=CST)
    one = report_event(world, event("ZZ001", at=at)).event
    assert (one["platform"], one["department"], one["route"]) == ("stability", "综治办", "department")
    assert one["deadline_at"] == "2026-03-04T09:30:00+08:00"
    office = report_event(world, event("ZZ001", at=at, related_categories=["ZZ002"])).event
    assert (office["route"], office["department"]) == ("platform_office", "综治办")
    assert office["related_categories"] == ["ZZ002"]
    room = report_event(world, event("ZZ001", at=at, related_categories=["ZF001"])).event
    assert (room["route"], room["department"]) == ("command_room", "综合指挥室")
    major = report_event(world, event("ZZ009", at=at)).event
    assert (major["route"], major["route_target"], major["department"]) == ("leadership", "领导小组", "派出所")
    assert major["deadline_at"] == "2026-03-02T09:30:00+08:00"
    beyond = report_event(world, event("SC001", at=at, beyond_level="涉及县外企业")).event
    assert (beyond["route"], beyond["route_target"]) == ("escalate", "county_center")


def test_event_codes_are_numbers_of_the_day(world):
    at = dt.datetime(2026, 3, 1, 23, 59, tzinfo=CST)  # 15:59 UTC, still 1 March in Beijing
    codes = [report_event(world, event(at=at)).event["code"] for _ in range(3)]
    assert codes == ["E2026030100001", "E2026030100002", "E2026030100003"]
    nxt = report_event(world, event(at=at + dt.timedelta(minutes=2))).event["code"]
    assert nxt == "E2026030200001"


# -- idempotency and durability -----------------------------------------------------------


def test_retry_with_the_same_key_returns_the_first_answer(world):
    ev = event(description="路灯坏了")
    first = report_event(world, ev, idempotency_key="key-1")
    again = report_event(world, ev, idempotency_key="key-1")
    assert again.replayed and not first.replayed
    assert again.event["code"] == first.event["code"] and again.token == first.token
    assert _count(world, schema.events) == 1 and _count(world, schema.event_actions) == 1


def test_same_key_different_request_is_refused(world):
    report_event(world, event(description="a"), idempotency_key="key-2")
    with pytest.raises(IdempotencyKeyReused, match="different request"):
        report_event(world, event(description="b"), idempotency_key="key-2")
    assert _count(world, schema.events) == 1


def test_concurrent_retries_create_one_event(world):
    ev = event(description="同时重试")
    results, errors = [], []

    def go():
        try:
            results.append(report_event(world, ev, idempotency_key="key-3"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.event["code"] for r in results}) == 1
    assert _count(world, schema.events) == 1


def test_an_answer_means_committed(world):
    r = report_event(world, event())
    other = Store(world.url)  # a separate engine sees it at once
    try:
        assert get_event(other, r.event["code"])["state"] == "reported"
    finally:
        other.close()
    with world.engine.connect() as conn:
        h = conn.execute(select(schema.events.c.reporter_token_hash)).scalar()
    assert h == hash_token(r.token) and r.token not in h


def test_intake_writes_history_and_audit(world):
    r = report_event(world, event(source="patrol", reporter_staff_code="P2", reporter_name="李四"))
    e = get_event(world, r.event["code"])
    assert [h["action"] for h in e["history"]] == ["report"]
    assert e["history"][0]["role"] == "grid_worker" and e["history"][0]["actor"] == "李四"
    log = world.audit_log(entity="events", entity_id=e["code"])
    assert list(log["action"]) == ["event.report"] and list(log["actor"]) == ["李四"]


# -- duplicates --------------------------------------------------------------------------


def test_duplicates_are_flagged_with_their_candidates(world):
    at = dt.datetime.now(CST) - dt.timedelta(hours=5)
    first = report_event(world, event("ZF001", at=at)).event
    assert not first["duplicate_flag"]
    lon, lat = INSIDE[G11]
    near = report_event(world, event("ZF001", at=at + dt.timedelta(hours=2), lon=lon + 0.0005, lat=lat)).event
    assert near["duplicate_flag"]
    [cand] = near["duplicate_candidates"]
    assert cand["code"] == first["code"] and 45 < cand["distance_m"] < 55 and cand["hours"] == 2.0
    other_cat = report_event(world, event("ZZ001", at=at + dt.timedelta(hours=2))).event
    far = report_event(world, event("ZF001", at=at + dt.timedelta(hours=2), lon=lon + 0.003, lat=lat)).event
    late = report_event(world, event("ZF001", at=at - dt.timedelta(hours=80))).event
    assert not other_cat["duplicate_flag"] and not far["duplicate_flag"] and not late["duplicate_flag"]
    assert list_events(world, duplicate=True)["total"] == 1


def test_duplicates_settings(world, monkeypatch):
    monkeypatch.setenv("GRIDGEO_DUPLICATE_RADIUS_M", "300")
    at = dt.datetime.now(CST) - dt.timedelta(hours=5)
    report_event(world, event("ZF001", at=at))
    lon, lat = INSIDE[G11]
    e = report_event(world, event("ZF001", at=at, lon=lon + 0.002, lat=lat)).event  # ~196 m
    assert e["duplicate_flag"]


def test_one_duplicate_rule_for_intakes_batches_and_imports(world):
    """The intake path (the store pre-selected by SQL, then the events before it in its
    group-commit batch) and the batch path of imports and the replay (candidates_frame)
    apply one rule: on the same events, recorded in report order, they flag the same
    candidates at the same distances."""
    import numpy as np
    import pandas as pd

    from gridgeo.events.db import write_txn
    from gridgeo.events.duplicates import candidates_frame
    from gridgeo.events.intake import locate_prepared, prepare_intake, write_intakes

    rng = np.random.default_rng(13)
    t0 = dt.datetime.now(CST) - dt.timedelta(days=12)
    lon0, lat0 = INSIDE[G11]
    evs = [event(str(rng.choice(["ZZ001", "ZF001"])), at=t0 + dt.timedelta(hours=k * 5 + float(rng.uniform(0, 4))),
                 lon=lon0 + float(rng.uniform(-0.0012, 0.0012)), lat=lat0 + float(rng.uniform(-0.0009, 0.0009)))
           for k in range(40)]
    codes = [report_event(world, e).event["code"] for e in evs[:25]]  # one at a time
    items = [prepare_intake(world, e) for e in evs[25:]]  # then one batch of 15
    errors = locate_prepared(world, items)
    with write_txn(world) as conn:
        codes += [r.event["code"] for r in write_intakes(conn, items, errors)]
    stored = [get_event(world, c, history=False) for c in codes]
    ev = schema.events
    with world.engine.connect() as conn:  # the stored positions, unrounded
        pos = {r[0]: (r[1], r[2]) for r in conn.execute(select(ev.c.code, ev.c.pos_lon, ev.c.pos_lat))}
    frame = pd.DataFrame({"code": codes, "category_code": [e["category_code"] for e in stored],
                          "reported_at": pd.to_datetime([e["reported_at"] for e in stored], utc=True),
                          "x": [pos[c][0] for c in codes], "y": [pos[c][1] for c in codes]})
    batch = candidates_frame(frame)
    assert [e["duplicate_candidates"] for e in stored] == batch.tolist()
    flagged = sum(e["duplicate_flag"] for e in stored)
    assert 5 <= flagged < 40  # the case has both kinds
    assert any(e["duplicate_flag"] for e in stored[25:])  # and duplicates inside the batch
