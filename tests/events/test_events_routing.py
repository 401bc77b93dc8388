"""Routing rules, address matching and duplicate detection, as pure functions."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridgeo.events.address import AddressRegister, normalize
from gridgeo.events.duplicates import candidates_frame, distance_m
from gridgeo.events.deadlines import deadline
from gridgeo.events.routing import (
    COMMAND_ROOM,
    LEADERSHIP,
    PLATFORM_OFFICES,
    route_event,
    route_frame,
)

UTC = dt.timezone.utc

ZZ001 = {"code": "ZZ001", "platform": "stability", "department": "综治办", "major": False, "deadline_hours": 72}
ZZ002 = {"code": "ZZ002", "platform": "stability", "department": "司法所", "major": False, "deadline_hours": 72}
ZZ009 = {"code": "ZZ009", "platform": "stability", "department": "派出所", "major": True, "deadline_hours": 24}
ZF001 = {"code": "ZF001", "platform": "enforcement", "department": "综合行政执法中队", "major": False,
         "deadline_hours": 120}


# -- routing ---------------------------------------------------------------------------


def test_one_category_goes_to_its_department():
    r = route_event(ZZ001)
    assert (r.route, r.target, r.platform, r.department, r.reason) == ("department", "综治办", "stability", "综治办", None)


def test_same_department_twice_is_still_one_department():
    r = route_event(ZZ001, [dict(ZZ001, code="ZZ005")])
    assert r.route == "department" and r.department == "综治办"


def test_several_departments_of_one_platform_go_to_its_office():
    r = route_event(ZZ001, [ZZ002])
    assert r.route == "platform_office"
    assert r.target == r.department == PLATFORM_OFFICES["stability"]
    assert r.platform == "stability" and set(r.departments) == {"综治办", "司法所"}
    assert "综治办" in r.reason and "司法所" in r.reason


def test_several_platforms_go_to_the_command_room():
    r = route_event(ZZ001, [ZF001])
    assert r.route == "command_room" and r.target == r.department == COMMAND_ROOM
    assert r.platform == "stability" and set(r.platforms) == {"stability", "enforcement"}


def test_major_goes_to_leadership_first_and_keeps_the_unit_after():
    r = route_event(ZZ009)
    assert r.route == "leadership" and r.target == LEADERSHIP and r.department == "派出所"
    r = route_event(ZZ009, [ZF001])  # major and several platforms
    assert r.route == "leadership" and r.department == COMMAND_ROOM
    r = route_event(ZZ001, [ZZ009])  # a major related category makes it major
    assert r.route == "leadership" and r.department == PLATFORM_OFFICES["stability"]


def test_outside_jurisdiction_goes_to_12345_with_the_reason():
    r = route_event(ZZ009, outside=True)
    assert r.route == "escalate" and r.target == "12345" and "不在本辖区" in r.reason
    assert r.department == "派出所"  # still known, for the record


def test_beyond_this_level_goes_to_the_county_centre_with_the_reason():
    r = route_event(ZZ001, beyond_level="涉及跨县水域")
    assert r.route == "escalate" and r.target == "county_center"
    assert "涉及跨县水域" in r.reason and "事权不在本级" in r.reason


def test_route_frame_agrees_with_route_event():
    cats = pd.DataFrame([ZZ001, ZZ002, ZZ009, ZF001])
    ev = pd.DataFrame({"category_code": ["ZZ001", "ZZ009", "ZF001", "ZZ009"], "outside": [False, False, False, True]})
    got = route_frame(ev, cats)
    by = {c["code"]: c for c in [ZZ001, ZZ002, ZZ009, ZF001]}
    for i, row in ev.iterrows():
        r = route_event(by[row["category_code"]], outside=row["outside"])
        assert (got.loc[i, "route"], got.loc[i, "route_target"], got.loc[i, "department"], got.loc[i, "platform"]) == \
            (r.route, r.target, r.department, r.platform)


def _expected(main: dict, related: list[dict], outside: bool, beyond) -> tuple:
    """The module's six rules, written out plainly: (route, target, department)."""
    cats = [main, *related]
    platforms = {c["platform"] for c in cats}
    departments = {c["department"] for c in cats}
    unit = (COMMAND_ROOM if len(platforms) > 1 else PLATFORM_OFFICES[main["platform"]]
            if len(departments) > 1 else main["department"])
    if outside:
        return "escalate", "12345", main["department"]
    if beyond:
        return "escalate", "county_center", main["department"]
    if any(c["major"] for c in cats):
        return "leadership", LEADERSHIP, unit
    kind = "command_room" if len(platforms) > 1 else "platform_office" if len(departments) > 1 else "department"
    return kind, unit, unit


def test_route_frame_and_route_event_agree_on_every_rule():
    """Many random events with related categories, outside and beyond-level notes: the
    batch form and the one-event form give the same route, target, reason, platform and
    department, and both follow the rules as written."""
    rng = np.random.default_rng(14)
    platforms = list(PLATFORM_OFFICES)
    catalogue = [{"code": f"C{i:03d}", "platform": platforms[i % 4], "department": f"部门{i % 7}",
                  "major": bool(i % 11 == 0), "deadline_hours": 24} for i in range(40)]
    by = {c["code"]: c for c in catalogue}
    n = 600
    main = rng.choice([c["code"] for c in catalogue], n)
    related = [[str(c) for c in rng.choice([c["code"] for c in catalogue], rng.integers(0, 4), replace=False)
                if c != m] for m in main]
    outside = rng.random(n) < 0.15
    beyond = rng.choice(np.array([None, "", True, "跨县水域"], dtype=object), n, p=[0.7, 0.1, 0.1, 0.1])
    frame = pd.DataFrame({"category_code": main, "outside": outside, "related_categories": related,
                          "beyond_level": beyond}, index=np.arange(n) * 3 + 5)  # any index
    got = route_frame(frame, pd.DataFrame(catalogue))
    seen = set()
    assert list(got.index) == list(frame.index)
    for k, row in enumerate(got.to_dict("records")):
        r = route_event(by[main[k]], [by[c] for c in related[k]], outside=bool(outside[k]), beyond_level=beyond[k])
        assert (row["route"], row["route_target"], row["route_reason"], row["platform"], row["department"]) == \
            (r.route, r.target, r.reason, r.platform, r.department), k
        assert (r.route, r.target, r.department) == _expected(by[main[k]], [by[c] for c in related[k]],
                                                              bool(outside[k]), beyond[k]), k
        seen.add(r.route)
    assert seen == {"department", "platform_office", "command_room", "leadership", "escalate"}
    # A batch without the optional columns routes as if they were empty.
    plain = route_frame(frame[["category_code", "outside"]], pd.DataFrame(catalogue))
    alone = [route_event(by[m], outside=bool(o)) for m, o in zip(main, outside)]
    assert plain["route"].tolist() == [r.route for r in alone]
    assert plain["route_reason"].tolist() == [r.reason for r in alone]


def test_deadline_is_reported_time_plus_category_hours():
    t = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert deadline(t, 72) == t + dt.timedelta(hours=72)
    assert deadline(t, 72, 48) == t + dt.timedelta(hours=120)


# -- addresses -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def register():
    divisions = pd.DataFrame({
        "code": ["331124", "331124201", "331124002", "331124201201", "331124201209", "331124002002"],
        "name": ["松阳县", "青岚乡", "城东街道", "上源村", "青岚村", "双溪社区"],
        "level": ["county", "township", "street", "village", "village", "community"],
    })
    households = gpd.GeoDataFrame({
        "code": ["H1", "H2", "H3", "H4", "H5"],
        "address": ["松阳县青岚乡上源村12号", "松阳县青岚乡上源村21号", "松阳县青岚乡青岚村398号",
                    "松阳县城东街道双溪社区滨溪路454号8幢", "松阳县城东街道双溪社区滨溪路454号1幢"],
        "village_code": ["331124201201", "331124201201", "331124201209", "331124002002", "331124002002"],
    }, geometry=[shapely.Point(119.36 + i * 0.001, 28.47) for i in range(5)], crs=4326)
    return AddressRegister(households, divisions)


@pytest.mark.parametrize("text,code,how,confidence", [
    ("松阳县青岚乡上源村12号", "H1", "exact", 1.0),
    ("浙江省丽水市松阳县青岚乡上源村12号", "H1", "exact", 1.0),
    ("上源村12号", "H1", "exact", 1.0),
    ("上源村十二号", "H1", "exact", 1.0),
    ("上源村１２号", "H1", "exact", 1.0),
    ("上源村 12 号", "H1", "exact", 1.0),
    ("青岚乡上源村12号附近", "H1", "exact", 0.95),
    ("青岚村398号", "H3", "exact", 1.0),  # a village named like the township
    ("城东街道滨溪路454号8栋", "H4", "exact-no-village", 0.95),
    ("双溪社区滨溪路454号8号楼", "H4", "exact", 1.0),
    ("双溪社区宾溪路454号8幢", "H4", "fuzzy", None),  # a typo in the road
    ("双溪社区滨溪路454号", "H5", "compound", 0.85),  # the compound, first building
])
def test_address_matches(register, text, code, how, confidence):
    m = register.match(text)
    assert (m.code, m.how) == (code, how)
    if confidence is not None:
        assert m.confidence == pytest.approx(confidence)
    else:
        assert 0.6 <= m.confidence < 0.95
    assert m.lon is not None and m.village_code is not None


@pytest.mark.parametrize("text", ["上源村99号", "12号", "滨溪路", "", "某某市某某路1号"])
def test_no_match_rather_than_a_guess(register, text):
    m = register.match(text)
    assert m.code is None and m.confidence < 0.6


def test_numbers_never_fuzz(register):
    # 21 is in the register, 12 too: a typo in the number must not move the event.
    assert register.match("上源村21号").code == "H2"
    assert register.match("上源村13号").code is None


def test_village_alone(register):
    m = register.match("上源村")
    assert (m.code, m.village_code, m.how) == (None, "331124201201", "village")


def test_normalize_parts():
    p = normalize("浙江省丽水市松阳县城东街道双溪社区滨溪路454号8号楼附近",
                  prefixes=("城东街道", "松阳县"), villages={"双溪社区": "X"})
    assert (p.village, p.numbers, p.names, p.near) == ("X", ("454号", "8幢"), "滨溪路", True)


def test_match_many_is_match(register):
    texts = pd.Series(["上源村12号", None, "青岚村398号", "nowhere"], index=[10, 11, 12, 13])
    got = register.match_many(texts)
    assert list(got.index) == [10, 11, 12, 13]
    assert list(got["code"]) == ["H1", None, "H3", None]


# -- duplicates ------------------------------------------------------------------------


def test_distance_m():
    # 0.001 degree of latitude is about 110.6 m
    assert distance_m(119.4, 28.4, 119.4, 28.401) == pytest.approx(111.2, abs=0.5)


def _frame(rows):
    return pd.DataFrame(rows, columns=["code", "category_code", "reported_at", "x", "y"])


def test_candidates_frame_rules():
    t0 = pd.Timestamp("2026-03-01T08:00:00Z")
    dlat = 50 / 110_574  # 50 m north
    new = _frame([
        ("A", "C1", t0, 119.4, 28.4),
        ("B", "C1", t0 + pd.Timedelta(hours=10), 119.4, 28.4 + dlat),          # dup of A
        ("C", "C2", t0 + pd.Timedelta(hours=11), 119.4, 28.4),                 # other category
        ("D", "C1", t0 + pd.Timedelta(hours=80), 119.4, 28.4),                 # > 72 h after A, B
        ("E", "C1", t0 + pd.Timedelta(hours=12), 119.4, 28.4 + 2.9 * dlat),   # 145 m from A, 95 from B
        ("F", "C1", t0 + pd.Timedelta(hours=13), np.nan, np.nan),              # no position
    ])
    got = candidates_frame(new, radius_m=100, window_hours=72)
    assert got.iloc[0] is None
    assert [c["code"] for c in got.iloc[1]] == ["A"] and got.iloc[1][0]["hours"] == 10.0
    assert got.iloc[2] is None
    assert [c["code"] for c in got.iloc[3]] == ["B"]  # A is 80 h back; B 70 h and 50 m; E 145 m away
    assert [c["code"] for c in got.iloc[4]] == ["B"]
    assert got.iloc[5] is None


def test_candidates_frame_needs_the_earlier_one_open():
    t0 = pd.Timestamp("2026-03-01T08:00:00Z")
    new = _frame([("A", "C1", t0, 119.4, 28.4), ("B", "C1", t0 + pd.Timedelta(hours=5), 119.4, 28.4)])
    new["open_until"] = [t0 + pd.Timedelta(hours=2), pd.NaT]  # A was closed before B came
    assert candidates_frame(new, radius_m=100, window_hours=72).iloc[1] is None
    existing = _frame([("S", "C1", t0 - pd.Timedelta(hours=1), 119.4, 28.4)])
    got = candidates_frame(new, existing, radius_m=100, window_hours=72)
    assert [c["code"] for c in got.iloc[1]] == ["S"]
