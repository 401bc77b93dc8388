"""A hand-built township for the assessment tests: every event and action written out,
every figure known (the expected numbers are in tests/assess/test_assess.py, worked out by
hand). The ``hand_built`` fixture (tests/conftest.py) builds it in ``store``.

Township 331124201 (测试乡) with two villages side by side, each 0.01 degree square:
东村 (V1) split into grids G1 | G2, 西村 (V2) whose west half is grid G3 and whose east
half is in no grid. Period under test: 2026-Q3 (CST), as of 2026-10-15 00:00 CST.
"""

from __future__ import annotations

import datetime as dt

import shapely
from sqlalchemy import insert

from gridgeo.store import Store, schema

CST = dt.timezone(dt.timedelta(hours=8))
X0, Y0, D = 119.40, 28.40, 0.01
T0 = "331124201"
V1, V2 = "331124201201", "331124201202"
G1, G2, G3 = V1 + "001", V1 + "002", V2 + "001"
AS_OF = dt.datetime(2026, 10, 15, tzinfo=CST)
ESCALATED_TO = "县社会治理综合指挥中心"


def t(text: str, year: int = 2026) -> dt.datetime:
    """``"07-01 09:00"`` -> 2026-07-01 09:00 CST."""
    return dt.datetime.strptime(f"{year}-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=CST)


CATEGORIES = {
    "ZZ001": ("矛盾纠纷", "stability", "综治办", 72),
    "ZF001": ("违章搭建", "enforcement", "综合行政执法中队", 120),
    "SC001": ("食品安全", "market", "市场监管所", 48),
}

# code: (grid, category, reported, reporter staff, trail [(action, time, to_state, role, data)])
CR, DEP, GW, PO, REP = "command_room", "department", "grid_worker", "platform_office", "reporter"
EVENTS = {
    "E1": (G1, "ZZ001", "07-01 09:00", "P2", [
        ("accept", "07-01 09:30", "accepted", CR, None), ("dispatch", "07-01 10:00", "dispatched", CR, None),
        ("start", "07-01 11:00", "in_progress", DEP, None), ("resolve", "07-02 10:00", "resolved", DEP, None),
        ("verify", "07-02 11:00", "verified", GW, None), ("close", "07-02 12:00", "closed", CR, None),
        ("rate", "07-03 09:00", "closed", REP, {"satisfaction": 5})]),
    # extended 48 h, reworked once, closed exactly at the extended deadline: on time
    "E2": (G1, "ZZ001", "07-10 09:00", None, [
        ("accept", "07-10 09:30", "accepted", CR, None), ("dispatch", "07-10 10:00", "dispatched", CR, None),
        ("start", "07-10 11:00", "in_progress", DEP, None),
        ("extend", "07-12 09:00", "in_progress", PO, {"hours": 48}),
        ("resolve", "07-14 09:00", "resolved", DEP, None), ("rework", "07-14 10:00", "in_progress", GW, None),
        ("resolve", "07-15 07:00", "resolved", DEP, None), ("verify", "07-15 08:00", "verified", GW, None),
        ("close", "07-15 09:00", "closed", CR, None), ("rate", "07-16 09:00", "closed", REP, {"satisfaction": 3})]),
    # closed a day late
    "E3": (G1, "ZF001", "07-20 09:00", None, [
        ("accept", "07-20 10:00", "accepted", CR, None), ("dispatch", "07-20 11:00", "dispatched", CR, None),
        ("start", "07-21 09:00", "in_progress", DEP, None), ("resolve", "07-26 07:00", "resolved", DEP, None),
        ("verify", "07-26 08:00", "verified", GW, None), ("close", "07-26 09:00", "closed", CR, None)]),
    # rejected at once: received, nothing else
    "E4": (G2, "ZF001", "08-01 09:00", None, [("reject", "08-01 10:00", "rejected", CR, {"reason": "invalid"})]),
    # accepted, then rejected: accepted, not due
    "E5": (G2, "ZZ001", "08-05 09:00", None, [
        ("accept", "08-05 10:00", "accepted", CR, None), ("reject", "08-05 12:00", "rejected", CR, {"reason": "duplicate"})]),
    # still in progress, past its deadline: due, overdue
    "E6": (G2, "ZZ001", "09-20 09:00", "P4", [
        ("accept", "09-20 10:00", "accepted", CR, None), ("dispatch", "09-20 11:00", "dispatched", CR, None),
        ("start", "09-21 09:00", "in_progress", DEP, None)]),
    # escalated, never dispatched; due in October: received only (and escalated)
    "E7": (G3, "ZF001", "09-28 09:00", None, [
        ("accept", "09-28 10:00", "accepted", CR, None), ("escalate", "09-28 11:00", "escalated", CR, {"to": "county_center"}),
        ("start", "09-29 09:00", "in_progress", DEP, None)]),
    # Q2 backlog: reported and due in June, still dispatched: overdue only
    "E8": (G3, "ZZ001", "06-25 09:00", None, [
        ("accept", "06-25 10:00", "accepted", CR, None), ("dispatch", "06-25 11:00", "dispatched", CR, None)]),
    # reported in June, due 07-02, closed 07-01: due, closed on time, not received
    "E9": (G3, "ZZ001", "06-29 09:00", None, [
        ("accept", "06-29 10:00", "accepted", CR, None), ("dispatch", "06-29 11:00", "dispatched", CR, None),
        ("start", "06-30 09:00", "in_progress", DEP, None), ("resolve", "07-01 18:00", "resolved", DEP, None),
        ("verify", "07-01 19:00", "verified", GW, None), ("close", "07-01 20:00", "closed", CR, None)]),
    # outside every grid: escalated, closed late
    "E10": (None, "ZF001", "07-05 09:00", None, [
        ("accept", "07-05 10:00", "accepted", CR, None), ("escalate", "07-05 11:00", "escalated", CR, {"to": "county_center"}),
        ("start", "07-06 09:00", "in_progress", DEP, None), ("resolve", "07-12 07:00", "resolved", DEP, None),
        ("verify", "07-12 08:00", "verified", GW, None), ("close", "07-12 09:00", "closed", CR, None)]),
    # closed and rated after as_of: verified at as_of
    "E11": (G1, "ZZ001", "09-29 09:00", None, [
        ("accept", "09-29 10:00", "accepted", CR, None), ("dispatch", "09-29 11:00", "dispatched", CR, None),
        ("start", "09-30 09:00", "in_progress", DEP, None), ("resolve", "10-10 09:00", "resolved", DEP, None),
        ("verify", "10-12 09:00", "verified", GW, None), ("close", "10-20 09:00", "closed", CR, None),
        ("rate", "10-21 09:00", "closed", REP, {"satisfaction": 5})]),
    # suspended (挂账): due, not closed, not overdue
    "E12": (G2, "ZZ001", "07-15 09:00", None, [
        ("accept", "07-15 10:00", "accepted", CR, None), ("dispatch", "07-15 11:00", "dispatched", CR, None),
        ("start", "07-16 09:00", "in_progress", DEP, None), ("suspend", "07-17 09:00", "suspended", CR, None)]),
    # reported after the period: in nothing
    "E13": (G1, "ZZ001", "10-05 09:00", None, [("accept", "10-05 10:00", "accepted", CR, None)]),
    # returned once and dispatched again: dispatched (once), closed on time, rated 4
    "E14": (G3, "SC001", "08-10 09:00", None, [
        ("accept", "08-10 09:30", "accepted", CR, None), ("dispatch", "08-10 10:00", "dispatched", CR, None),
        ("return", "08-10 12:00", "returned", DEP, None), ("dispatch", "08-10 13:00", "dispatched", CR, None),
        ("start", "08-10 14:00", "in_progress", DEP, None), ("resolve", "08-11 16:00", "resolved", DEP, None),
        ("verify", "08-11 17:00", "verified", GW, None), ("close", "08-11 18:00", "closed", CR, None),
        ("rate", "08-12 09:00", "closed", REP, {"satisfaction": 4})]),
}

STAFF = [  # code, name, role, grid
    ("P1", "张三", "grid_head", G1), ("P2", "李四", "full_time_worker", G1), ("P3", "王五", "instructor", G1),
    ("P3", "王五", "instructor", G2), ("P4", "赵六", "part_time_worker", G2), ("P5", "钱七", "full_time_worker", G3),
]
GRID_HOUSEHOLDS = {G1: 550, G2: 420, G3: 150}


def box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def build(store: Store) -> None:
    """Write the township, its plan, staff, catalogue, events and histories."""
    h = D / 2
    with store.engine.begin() as conn:
        conn.execute(insert(schema.divisions), [
            {"code": "331124", "name": "松阳县", "level": "county", "parent_code": None, "geometry": None},
            {"code": T0, "name": "测试乡", "level": "township", "parent_code": "331124",
             "geometry": box(X0, Y0, X0 + 2 * D, Y0 + D)},
            {"code": V1, "name": "东村", "level": "village", "parent_code": T0, "geometry": box(X0, Y0, X0 + D, Y0 + D)},
            {"code": V2, "name": "西村", "level": "village", "parent_code": T0,
             "geometry": box(X0 + D, Y0, X0 + 2 * D, Y0 + D)},
        ])
        plan_id = conn.execute(insert(schema.plans).values(
            version="T1", name="测试方案", status="published", effective_from=dt.date(2024, 1, 1),
            created_at=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)).returning(schema.plans.c.id)).scalar()
        conn.execute(insert(schema.grids), [
            {"plan_id": plan_id, "code": G1, "name": "东村一网格", "village_code": V1, "households": GRID_HOUSEHOLDS[G1],
             "population": 1500, "geometry": box(X0, Y0, X0 + h, Y0 + D)},
            {"plan_id": plan_id, "code": G2, "name": "东村二网格", "village_code": V1, "households": GRID_HOUSEHOLDS[G2],
             "population": 1100, "geometry": box(X0 + h, Y0, X0 + D, Y0 + D)},
            {"plan_id": plan_id, "code": G3, "name": "西村一网格", "village_code": V2, "households": GRID_HOUSEHOLDS[G3],
             "population": 400, "geometry": box(X0 + D, Y0, X0 + D + h, Y0 + D)},
        ])
        conn.execute(insert(schema.households), [
            {"code": "H1", "address": "东村1号", "village_code": V1, "households": 2, "population": 5,
             "geometry": shapely.Point(X0 + 0.002, Y0 + 0.005)},
            {"code": "H2", "address": "东村2号", "village_code": V1, "households": 3, "population": 7,
             "geometry": shapely.Point(X0 + 0.008, Y0 + 0.005)},
            {"code": "H3", "address": "西村1号", "village_code": V2, "households": 1, "population": 2,
             "geometry": shapely.Point(X0 + D + 0.002, Y0 + 0.005)},
            {"code": "H4", "address": "西村2号", "village_code": V2, "households": 4, "population": 9,
             "geometry": shapely.Point(X0 + D + 0.008, Y0 + 0.005)},  # the east half: in no grid
        ])
        conn.execute(insert(schema.staff), [
            {"code": c, "name": n, "phone": f"1380000000{i}", "role": r, "grid_code": g}
            for i, (c, n, r, g) in enumerate(STAFF)])
        conn.execute(insert(schema.categories), [
            {"code": c, "name": n, "platform": p, "department": d, "deadline_hours": hrs}
            for c, (n, p, d, hrs) in CATEGORIES.items()])
        for code, (grid, cat, reported, reporter, trail) in EVENTS.items():
            name, platform, department, hours = CATEGORIES[cat]
            rep = t(reported)
            extended = sum(d["hours"] for a, _, _, _, d in trail if a == "extend")
            closes = [t(at) for a, at, _, _, _ in trail if a == "close"]
            resolves = [t(at) for a, at, _, _, _ in trail if a == "resolve"]
            rating = [d["satisfaction"] for a, _, _, _, d in trail if a == "rate"]
            escalated = any(a == "escalate" for a, *_ in trail)
            event_id = conn.execute(insert(schema.events).values(
                code=code, source="patrol" if reporter else "app", category_code=cat, reported_at=rep,
                reporter_staff_code=reporter, grid_code=grid, located_by="coordinates" if grid else "outside",
                state=trail[-1][2], version=1 + len(trail), created_at=rep, platform=platform,
                department=department, route="department",
                deadline_at=rep + dt.timedelta(hours=hours + extended), extended_hours=extended,
                escalated_to=ESCALATED_TO if escalated else None,
                satisfaction=rating[0] if rating else None, updated_at=t(trail[-1][1]),
                resolved_at=resolves[-1] if resolves else None, closed_at=closes[0] if closes else None,
            ).returning(schema.events.c.id)).scalar()
            rows = [{"event_id": event_id, "seq": 1, "at": rep, "action": "report", "actor": "测试",
                     "role": "reporter", "from_state": None, "to_state": "reported"}]
            state = "reported"
            for seq, (action, at, to_state, role, data) in enumerate(trail, start=2):
                rows.append({"event_id": event_id, "seq": seq, "at": t(at), "action": action, "actor": "测试",
                             "role": role, "from_state": state, "to_state": to_state, "data": data})
                state = to_state
            conn.execute(insert(schema.event_actions), rows)


def add_bare_event(store: Store) -> None:
    """An event imported as a plain layer (never through the pipeline): no grid, no
    deadline, no history; its position is in G1 and its category gives 72 hours."""
    with store.engine.begin() as conn:
        conn.execute(insert(schema.events).values(
            code="E15", source="app", category_code="ZZ001", reported_at=t("07-07 09:00"),
            lon=X0 + 0.001, lat=Y0 + 0.001, crs="wgs84", geometry=shapely.Point(X0 + 0.001, Y0 + 0.001),
            state="reported", created_at=t("07-07 09:00")))
