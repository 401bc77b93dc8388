"""Bulk inserts (gridgeo.store.bulk) store what the normal path stores, on both databases,
and in the caller's transaction: a failure half way leaves nothing behind."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import shapely
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from gridgeo.events.db import write_txn
from gridgeo.events.intake import insert_events
from gridgeo.store import schema
from gridgeo.store.bulk import insert_frame
from helpers.events_world import CST, G11, INSIDE

T0 = dt.datetime(2025, 10, 1, 8, 30, 15, tzinfo=CST)  # China time; 00:30:15 UTC
#: The next UTC day, with microseconds.
T1 = dt.datetime(2025, 10, 2, 23, 59, 59, 250_000, tzinfo=CST)


def _event(code: str, **kw) -> dict:
    return {"code": code, "source": "app", "category_code": "ZZ001", "reported_at": T0,
            "created_at": T1, "state": "reported", "version": 1, "duplicate_flag": False, **kw}


def _events(prefix: str) -> list[dict]:
    """Events as the normal path takes them: Chinese text with tabs, line breaks and a
    backslash, missing values, nested JSON, points and none."""
    x, y = INSIDE[G11]
    return [
        _event(f"{prefix}1", description="岚湖社区\t邻居之间因噪音\n产生矛盾 \\ “引号”",
               lon=119.4921714, lat=28.4201021, crs="gcj02", address="城东街道岚湖社区滨溪路74号5幢",
               reporter_name="张军琴", reporter_phone=None, geometry=shapely.Point(x, y),
               grid_code=G11, pos_lon=x, pos_lat=y, locate_distance_m=None,
               address_confidence=0.875, photos=["https://example.org/照片.jpg"],
               related_categories=None, located_by="coordinates",
               deadline_at=T0 + dt.timedelta(hours=72), deadline_workdays=None,
               duplicate_flag=True, duplicate_candidates=[
                   {"code": "E2025093000007", "distance_m": 12.5, "说明": "同一地点",
                    "grids": [G11, None], "inner": {"hours": 3, "ok": True, "x": None}}],
               updated_at=T1),
        _event(f"{prefix}2", source="hotline", description=None, lon=None, lat=None, crs=None,
               address=None, reporter_name="李四", reporter_phone="13953226407", geometry=None,
               grid_code=None, pos_lon=None, pos_lat=None, locate_distance_m=1.0 / 3,
               address_confidence=None, photos=None, related_categories=["ZZ002"],
               located_by="unlocated", deadline_at=None, deadline_workdays=5,
               duplicate_candidates=None, updated_at=None),
    ]


def _actions(event_id: int) -> list[dict]:
    return [
        {"event_id": event_id, "seq": 1, "at": T0, "action": "report", "actor": "黄敏",
         "role": "reporter", "from_state": None, "to_state": "reported", "note": None,
         "data": {"position_from": None, "photos": ["a", "b"], "评价": {"满意度": 5}}},
        {"event_id": event_id, "seq": 2, "at": T1, "action": "accept", "actor": "指挥中心",
         "role": "command_room", "from_state": "reported", "to_state": "accepted",
         "note": "综合行政执法中队", "data": None},
    ]


def _audits(prefix: str) -> list[dict]:
    return [
        {"at": T0, "actor": "cli", "action": "event.report", "entity": "events",
         "entity_id": f"{prefix}1", "detail": {"role": "reporter", "seq": 1, "at": T0.isoformat(),
                                               "note": None, "nested": [{"a": 1.5}, [None, "中文"]]}},
        {"at": T1, "actor": "cli", "action": "event.accept", "entity": "events",
         "entity_id": f"{prefix}2", "detail": None},
    ]


def _read(conn, table, where, skip: tuple[str, ...]) -> tuple[list, list]:
    """The rows of ``table`` matching ``where``, in id order, without the columns ``skip``:
    as read through the store (typed values), and raw (SQLite: each value and its
    typeof(); PostgreSQL: each value as text)."""
    cols = [c for c in table.c if c.name not in skip]
    q = select(table.c.id, *cols).where(where).order_by(table.c.id)
    rows = conn.execute(q).all()
    if conn.dialect.name == "sqlite":
        shown = ", ".join(f'"{c.name}", typeof("{c.name}")' for c in cols)
    else:
        shown = ", ".join(f'"{c.name}"::text' for c in cols)
    raw = text(f'SELECT {shown} FROM "{table.name}" WHERE id = :i')
    return ([tuple(r[1:]) for r in rows],
            [tuple(conn.execute(raw, {"i": r[0]}).one()) for r in rows])


def test_a_bulk_insert_stores_what_the_normal_path_stores(world):
    ev, ea, al = schema.events, schema.event_actions, schema.audit_log
    with write_txn(world) as conn:
        for row in _events("N"):
            conn.execute(ev.insert().values(**row))
        # as a frame: missing numbers become NaN, times columns at the China offset
        insert_frame(conn, ev, pd.DataFrame(_events("B")))
        n_id, b_id = (conn.execute(select(ev.c.id).where(ev.c.code == f"{p}1")).scalar()
                      for p in "NB")
        for row in _actions(n_id):
            conn.execute(ea.insert().values(**row))
        insert_frame(conn, ea, pd.DataFrame(_actions(b_id)))
        for row in _audits("N"):
            conn.execute(al.insert().values(**row))
        insert_frame(conn, al, pd.DataFrame(_audits("B")))
    with world.engine.connect() as conn:
        normal = _read(conn, ev, ev.c.code.startswith("N"), ("id", "code"))
        bulk = _read(conn, ev, ev.c.code.startswith("B"), ("id", "code"))
        assert len(normal[0]) == 2 and bulk == normal
        normal = _read(conn, ea, ea.c.event_id == n_id, ("id", "event_id"))
        bulk = _read(conn, ea, ea.c.event_id == b_id, ("id", "event_id"))
        assert len(normal[0]) == 2 and bulk == normal
        normal = _read(conn, al, al.c.entity_id.in_(["N1", "N2"]), ("id", "entity_id"))
        bulk = _read(conn, al, al.c.entity_id.in_(["B1", "B2"]), ("id", "entity_id"))
        assert len(normal[0]) == 2 and bulk == normal
        # what was given comes back: the time (in UTC), the nested JSON, the point
        row = conn.execute(select(ev.c.reported_at, ev.c.duplicate_candidates, ev.c.geometry)
                           .where(ev.c.code == "B1")).one()
    assert row.reported_at == T0 and row.reported_at.utcoffset() == dt.timedelta(0)
    assert row.duplicate_candidates == _events("B")[0]["duplicate_candidates"]
    assert shapely.from_wkb(row.geometry).equals(shapely.Point(*INSIDE[G11]))


def test_a_naive_time_is_refused_as_the_column_type_refuses_it(world):
    frame = pd.DataFrame(_events("B")).assign(reported_at=pd.Timestamp("2025-10-01 08:30"))
    with pytest.raises(ValueError, match="no time zone"), write_txn(world) as conn:
        insert_frame(conn, schema.events, frame)


def _history(codes: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"code": codes, "seq": 1, "at": pd.Timestamp(T0), "action": "report",
                         "actor": "黄敏", "role": "reporter", "from_state": None,
                         "to_state": "reported", "note": None,
                         "data": [{"评价": [1, None]}] * len(codes)})


@pytest.mark.parametrize("where", ["events", "history"])
def test_a_failure_half_way_leaves_nothing_behind(world, where):
    """A duplicate code (the events' insert fails) or a duplicate history line (it fails
    after the events were written): the transaction leaves no row of either."""
    tables = (schema.events, schema.event_actions, schema.audit_log, schema.event_counters)

    def counts():
        with world.engine.connect() as conn:
            return [conn.execute(select(func.count()).select_from(t)).scalar() for t in tables]

    before = counts()
    codes = ["E2025100100001", "E2025100100002", "E2025100100003"]
    events = pd.DataFrame([*_events("X"), _event("X3")]).drop(columns="created_at").assign(code=codes)
    history = _history(codes)
    if where == "events":
        events.loc[2, "code"] = codes[0]
        history = history.iloc[:2]
    else:
        history = pd.concat([history, history.iloc[[1]]], ignore_index=True)
    with pytest.raises(IntegrityError), write_txn(world) as conn:
        insert_events(conn, events, history, actor="cli")
    assert counts() == before
    with write_txn(world) as conn:  # the same rows, put right, go in
        insert_events(conn, events.assign(code=codes), _history(codes), actor="cli")
    assert counts() == [before[0] + 3, before[1] + 3, before[2] + 3, before[3] + 1]
