"""Assessment (考核), workload and coverage: every figure of a hand-built township, on both
databases; the sample year after the replay adds up; rankings keep to their rule."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from gridgeo.assess import (
    COUNTS,
    InvalidPeriod,
    InvalidQuery,
    assess,
    assess_many,
    derivable_flags,
    rank,
    read_facts,
    to_chinese,
)
from gridgeo.coverage import coverage, staffing
from gridgeo.workload import per_grid, per_worker
from helpers.hand_built import AS_OF, CST, G1, G2, G3, T0, V1, V2, add_bare_event

Q3 = "2026-Q3"
COUNT_COLS = list(COUNTS)


def row(table, code, cols=COUNT_COLS):
    return {c: int(table.loc[code, c]) for c in cols} if code is not None else \
        {c: int(table[table.index.isna()].iloc[0][c]) for c in cols}


def counts(received, accepted, dispatched, escalated, due, closed, on_time, reworked, extended, overdue,
           rated, satisfied):
    return dict(zip(COUNT_COLS, (received, accepted, dispatched, escalated, due, closed, on_time, reworked,
                                 extended, overdue, rated, satisfied)))


# -- every indicator of the hand-built township (tests/helpers/hand_built.py) --------------------


def test_every_count_per_grid(hand_built):
    g = assess(hand_built, Q3, by="grid", as_of=AS_OF)
    assert list(g.index) == [G1, G2, G3, None]
    assert list(g["name"]) == ["东村一网格", "东村二网格", "西村一网格", "（未落入网格）"]
    #                                  rec acc dis esc due clo ont rew ext ovd rat sat
    assert row(g, G1) == counts(4, 4, 4, 0, 3, 3, 2, 1, 1, 0, 2, 1)   # E1 E2 E3 E11
    assert row(g, G2) == counts(4, 3, 2, 0, 2, 0, 0, 0, 0, 1, 0, 0)   # E4 E5 E6 E12
    assert row(g, G3) == counts(2, 2, 1, 1, 2, 2, 2, 0, 0, 1, 1, 1)   # E7 E14; due E9 E14; E8 overdue
    assert row(g, None) == counts(1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0)  # E10, outside
    # hours to close: G1 27, 120, 144; G3 59, 33; outside 168
    assert g.loc[G1, "hours_to_close_mean"] == pytest.approx(97.0)
    assert g.loc[G1, "hours_to_close_p90"] == pytest.approx(139.2)
    assert g.loc[G3, "hours_to_close_mean"] == pytest.approx(46.0)
    assert g.loc[G3, "hours_to_close_p90"] == pytest.approx(56.4)
    assert np.isnan(g.loc[G2, "hours_to_close_mean"]) and g.loc[G2, "on_time_rate"] == 0.0  # 0 of 2 due
    assert g.loc[G1, "satisfaction_mean"] == pytest.approx(4.0)   # 5 and 3
    assert g.loc[G3, "satisfaction_mean"] == pytest.approx(4.0)   # 4
    assert g.loc[G1, "on_time_rate"] == pytest.approx(2 / 3)
    assert g.loc[G2, "acceptance_rate"] == pytest.approx(3 / 4)
    assert g.loc[G2, "dispatch_rate"] == pytest.approx(2 / 3)


def test_the_six_rates_and_the_total(hand_built):
    total = assess(hand_built, Q3, by="total", as_of=AS_OF)
    assert row(total, "all") == counts(11, 10, 7, 2, 8, 6, 4, 1, 1, 2, 3, 2)
    t = total.loc["all"]
    assert t["acceptance_rate"] == pytest.approx(10 / 11)   # 立案率
    assert t["dispatch_rate"] == pytest.approx(7 / 10)      # 派遣率
    assert t["closure_rate"] == pytest.approx(6 / 8)        # 结案率
    assert t["on_time_rate"] == pytest.approx(4 / 8)        # 按期结案率
    assert t["rework_rate"] == pytest.approx(1 / 8)         # 返工率
    assert t["extension_rate"] == pytest.approx(1 / 8)      # 延期率
    assert t["satisfied_rate"] == pytest.approx(2 / 3)
    assert t["satisfaction_mean"] == pytest.approx(4.0)
    assert t["hours_to_close_mean"] == pytest.approx((27 + 120 + 144 + 59 + 168 + 33) / 6)
    assert t["hours_to_close_p90"] == pytest.approx(156.0)  # between 144 and 168


def test_platforms_departments_villages_townships(hand_built):
    tables = assess_many(hand_built, Q3, ["platform", "department", "village", "township", "total"], as_of=AS_OF)
    p = tables["platform"]
    assert list(p.index) == ["stability", "market", "enforcement"]  # the usual order
    assert row(p, "stability") == counts(6, 6, 5, 0, 5, 3, 3, 1, 1, 2, 2, 1)
    assert row(p, "enforcement") == counts(4, 3, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0)
    assert row(p, "market") == counts(1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1)
    assert p.loc["stability", "name"] == "综治工作"
    d = tables["department"]
    assert row(d, "综治办") == row(p, "stability") and row(d, "市场监管所") == row(p, "market")
    v = tables["village"]
    assert row(v, V1) == counts(8, 7, 6, 0, 5, 3, 2, 1, 1, 1, 2, 1)
    assert row(v, V2) == row(assess(hand_built, Q3, by="grid", as_of=AS_OF), G3)
    assert v.loc[V1, "name"] == "东村"
    tw = tables["township"]
    assert row(tw, T0) == counts(10, 9, 7, 1, 7, 5, 4, 1, 1, 2, 3, 2) and tw.loc[T0, "name"] == "测试乡"
    # every grouping adds up to the total
    for by in ("platform", "department", "village", "township"):
        assert tables[by][COUNT_COLS].sum().to_dict() == tables["total"][COUNT_COLS].iloc[0].to_dict(), by


def test_workers_count_the_events_of_every_grid_they_serve(hand_built):
    w = assess(hand_built, Q3, by="worker", as_of=AS_OF)
    assert list(w.index) == ["P1", "P2", "P3", "P4", "P5"]
    g = assess(hand_built, Q3, by="grid", as_of=AS_OF)
    for code, grid in (("P1", G1), ("P2", G1), ("P4", G2), ("P5", G3)):
        assert row(w, code) == row(g, grid)
    # the instructor of G1 and G2 counts both, each event once
    assert row(w, "P3") == {c: row(g, G1)[c] + row(g, G2)[c] for c in COUNT_COLS}
    assert w.loc["P3", "hours_to_close_p90"] == pytest.approx(139.2)   # G2 closed nothing
    assert w.loc["P3", "satisfaction_mean"] == pytest.approx(4.0) and w.loc["P3", "on_time_rate"] == pytest.approx(2 / 5)
    assert w.loc["P3", "n_grids"] == 2 and w.loc["P3", "grids"] == f"{G1},{G2}"
    assert w.loc["P3", "roles"] == "网格指导员" and w.loc["P1", "name"] == "张三"
    assert w["self_reported"].to_dict() == {"P1": 0, "P2": 1, "P3": 0, "P4": 1, "P5": 0}
    only = assess(hand_built, Q3, by="worker", as_of=AS_OF, roles=["full_time_worker", "part_time_worker"])
    assert list(only.index) == ["P2", "P4", "P5"]


def test_as_of_replays_the_states_of_the_time(hand_built):
    # End of 3 July: E1 closed but not yet due; E9 due and closed; E8 overdue.
    early = assess(hand_built, Q3, by="total", as_of="2026-07-03")
    assert row(early, "all") == counts(1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 0, 0)
    # 25 July noon: E3 was in progress past its 09:00 deadline (closed the next day).
    mid = assess(hand_built, Q3, by="grid", as_of=dt.datetime(2026, 7, 25, 12, tzinfo=CST))
    assert row(mid, G1) == counts(3, 3, 3, 0, 3, 2, 2, 1, 1, 1, 2, 1)
    assert mid[COUNT_COLS].sum()["due"] == 6 and mid[COUNT_COLS].sum()["overdue"] == 2
    facts = read_facts(hand_built, Q3, as_of=dt.datetime(2026, 7, 25, 12, tzinfo=CST))
    codes = _codes(hand_built)
    assert facts.set_index(facts["id"].map(codes))["state"].astype(str).to_dict()["E3"] == "in_progress"


def _codes(store) -> dict:
    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, code FROM events")).all())


def test_derived_flags_equal_the_action_aggregation(hand_built):
    for as_of in (AS_OF, dt.datetime(2026, 7, 25, 12, tzinfo=CST), "2026-07-03"):
        a = read_facts(hand_built, Q3, as_of=as_of)
        b = read_facts(hand_built, Q3, as_of=as_of, flags="actions")
        assert a["flags"].tolist() == b["flags"].tolist()
        assert a["state"].tolist() == b["state"].tolist()
    table = derivable_flags()
    assert table[("closed", False)] == (1, 1)        # never escalated: dispatched
    assert table[("closed", True)] == (1, None)      # escalated: the history says
    assert table[("rejected", False)] == (None, 0)   # rejected before or after acceptance


def test_an_event_the_pipeline_never_saw_is_placed_by_the_locator(hand_built):
    add_bare_event(hand_built)  # in G1, category ZZ001 (72 h), state reported, no grid, no deadline
    g = assess(hand_built, Q3, by="grid", as_of=AS_OF)
    # received, due (07-10), overdue; never accepted
    assert row(g, G1) == counts(5, 4, 4, 0, 4, 3, 2, 1, 1, 1, 2, 1)
    assert assess(hand_built, Q3, by="platform", as_of=AS_OF).loc["stability", "received"] == 7


def test_chinese_labels(hand_built):
    zh = assess(hand_built, Q3, by="platform", as_of=AS_OF, chinese=True)
    assert {"立案率", "派遣率", "结案率", "按期结案率", "返工率", "延期率", "当前超期数", "名称"} <= set(zh.columns)
    assert zh.index.name == "编码"
    assert to_chinese(assess(hand_built, Q3, by="total", as_of=AS_OF)).loc["all", "应结案数"] == 8


def test_bad_period_and_grouping(hand_built):
    with pytest.raises(InvalidPeriod):
        assess(hand_built, "2026-Q5")
    with pytest.raises(InvalidPeriod):
        assess(hand_built, "2026-09/2026-07")
    with pytest.raises(InvalidQuery, match="grouping"):
        assess(hand_built, Q3, by="county")
    with pytest.raises(InvalidQuery, match="as_of"):
        assess(hand_built, Q3, as_of="last week")
    with pytest.raises(InvalidQuery, match="role"):
        assess(hand_built, Q3, by="worker", roles=["mayor"])
    assert InvalidPeriod.status == 422 and InvalidQuery.status == 422


# -- rankings -----------------------------------------------------------------------------------


def test_ranking_needs_a_minimum_volume(hand_built):
    g = assess(hand_built, Q3, by="grid", as_of=AS_OF)
    r = rank(g, "on_time_rate", min_volume=2)
    assert list(r.index[:3]) == [G3, G1, G2] and list(r["rank"][:3]) == [1, 2, 3]
    assert r["rank"].isna().iloc[3] and "not a unit" in r["note"].iloc[3]  # the outside events
    r3 = rank(g, "on_time_rate", min_volume=3)
    assert r3.loc[G1, "rank"] == 1 and r3["rank"].notna().sum() == 1
    assert "2 due < 3" in r3.loc[G3, "note"]   # G3's perfect 2 of 2 is not enough volume
    assert "at least 3 due" in r3.attrs["explanation"] and "不少于3件" in r3.attrs["explanation_zh"]
    assert rank(g, "on_time_rate")["rank"].isna().all()  # default 20: nobody here
    with pytest.raises(InvalidQuery):
        rank(g, "received")


def test_ranking_ties_are_broken_by_volume_then_code():
    table = pd.DataFrame({
        "name": ["a", "b", "c", "d", "e"],
        "due": [30, 50, 50, 5, 40],
        "on_time_rate": [0.9, 0.9, 0.9, 1.0, 0.8],
        "rework_rate": [0.1, 0.2, 0.05, 0.0, 0.05],
    }, index=pd.Index(["A", "C", "B", "D", "E"], name="code"))
    r = rank(table, "on_time_rate", min_volume=20)
    assert list(r.index) == ["B", "C", "A", "E", "D"]
    assert list(r["rank"][:4]) == [1, 2, 3, 4] and pd.isna(r.loc["D", "rank"])
    assert r.loc[["B", "C", "A"], "tied"].all() and not r.loc["E", "tied"]
    assert "same on_time_rate are ordered by due (more first), then by code" in r.attrs["explanation"]
    low = rank(table, "rework_rate", min_volume=20)   # lower is better
    assert list(low.index[:4]) == ["B", "E", "A", "C"]   # B and E tie at 0.05: B has more due
    assert "lower is better" in low.attrs["explanation"]


# -- workload and coverage ---------------------------------------------------------------------


def test_workload_per_grid_and_worker(hand_built):
    w = per_grid(hand_built, Q3, now=AS_OF)
    assert list(w.index) == [G1, G2, G3]
    assert w["events"].tolist() == [4, 4, 2] and w.attrs["unplaced"] == 1   # E10 is outside
    assert w["closed"].tolist() == [4, 0, 1]       # E11 verified counts as handled (办结)
    assert w["rejected"].tolist() == [0, 2, 0]
    assert w["overdue"].tolist() == [0, 1, 1]      # E6; E7 (past its October deadline now)
    assert w["open"].tolist() == [0, 1, 0]         # E12 suspended
    assert w["per_worker"].tolist() == [4.0, 4.0, 2.0]
    assert w["per_100_households"].round(4).tolist() == [round(400 / 550, 4), round(400 / 420, 4), round(200 / 150, 4)]
    assert w["above_band"].tolist() == [True, False, False] and w["below_band"].tolist() == [False, False, True]
    assert w["understaffed"].tolist() == [True, True, True]
    assert w.loc[G2, "missing"] == "网格长、专职网格员" and w.loc[G1, "shortfall"] == "网格员缺2名"
    assert w.attrs["band"] == (300.0, 500.0)
    p = per_worker(hand_built, Q3, now=AS_OF)
    assert p.loc["P3", "events"] == 8 and p.loc["P3", "households"] == 970 and p.loc["P3", "n_grids"] == 2
    assert p["events_share"].dropna().to_dict() == {"P2": 4.0, "P4": 4.0, "P5": 2.0}
    assert p["self_reported"].to_dict() == {"P1": 0, "P2": 1, "P3": 0, "P4": 1, "P5": 0}


def test_one_definition_of_staffing(hand_built):
    grids = hand_built.read("grids")
    s = staffing(grids, hand_built.read("staff"))
    assert s["missing"].to_dict() == {G1: "", G2: "网格长、专职网格员", G3: "网格长、网格指导员"}
    assert s["need_workers"].tolist() == [3, 3, 1] and s["short"].all()
    assert s.loc[G3, "shortfall_en"] == "no grid head; no instructor"
    from gridgeo.plan import staffing as planner_staffing

    planned = planner_staffing(grids, hand_built.read("staff")).set_index("code")
    assert planned["short"].tolist() == s["short"].tolist()
    assert planned["need_workers"].tolist() == s["need_workers"].tolist()
    assert planned.loc[G1, "missing"] == "2 worker(s) short"


def test_coverage_of_villages_households_and_staff(hand_built):
    cov = coverage(hand_built)
    v = cov["villages"]
    # projected corners vs projected mid-edge vertices: a few parts per million
    assert v.loc[V1, "area_share"] == pytest.approx(1.0, abs=1e-4)
    assert v.loc[V2, "area_share"] == pytest.approx(0.5, abs=1e-3)   # its east half has no grid
    assert v.loc[V1, "households_share"] == 1.0 and v.loc[V2, "households_share"] == pytest.approx(0.2)
    assert cov["townships"].loc[T0, "households_in_grids"] == 6 and cov["townships"].loc[T0, "households"] == 10
    out = cov["households_outside"]
    assert out["code"].tolist() == ["H4"] and out["households"].tolist() == [4]
    s = cov["summary"]
    assert s["grids_without_grid_head"] == [G2, G3] and s["grids_without_instructor"] == [G3]
    assert s["grids_without_workers"] == [] and s["households_outside"] == 4
    assert s["area_share"] == pytest.approx(0.75, abs=1e-3)


# -- the sample year after the replay (SQLite; `replayed` in tests/conftest.py) -------------


@pytest.mark.parametrize("period", ["2026-Q3", "2025-10/2026-09"])
def test_sample_grids_add_up_to_townships_and_the_total(replayed, period):
    t = assess_many(replayed, period, ["grid", "village", "township", "platform", "department", "total"])
    grid = t["grid"][COUNT_COLS]
    by_township = grid.groupby(grid.index.to_series().str[:9].fillna("none").to_numpy()).sum()
    township = t["township"][COUNT_COLS].rename(index=lambda c: c if c is not None else "none")
    pd.testing.assert_frame_equal(by_township.sort_index(), township.sort_index(), check_names=False)
    by_village = grid.groupby(grid.index.to_series().str[:12].fillna("none").to_numpy()).sum()
    village = t["village"][COUNT_COLS].rename(index=lambda c: c if c is not None else "none")
    pd.testing.assert_frame_equal(by_village.sort_index(), village.sort_index(), check_names=False)
    total = t["total"][COUNT_COLS].iloc[0]
    for by in ("grid", "township", "platform", "department"):
        assert (t[by][COUNT_COLS].sum() == total).all(), by
    assert total["received"] > 0 and total["due"] > 0 and total["closed_on_time"] > 0


def test_sample_counts_match_plain_sql(replayed):
    """Three counts of the year, by a second route: SQL written out by hand."""
    p = assess(replayed, "2025-10/2026-09", by="platform")
    start, end = "2025-09-30 16:00:00", "2026-09-30 16:00:00"   # CST bounds in stored UTC
    with replayed.engine.connect() as conn:
        received = dict(conn.execute(text(
            "SELECT platform, count(*) FROM events WHERE reported_at >= :s AND reported_at < :e GROUP BY platform"),
            {"s": start, "e": end}).all())
        on_time = dict(conn.execute(text(
            "SELECT platform, count(*) FROM events WHERE deadline_at >= :s AND deadline_at < :e "
            "AND state = 'closed' AND closed_at <= deadline_at GROUP BY platform"), {"s": start, "e": end}).all())
        reworked = dict(conn.execute(text(
            "SELECT e.platform, count(DISTINCT e.id) FROM events e JOIN event_actions a ON a.event_id = e.id "
            "WHERE a.action = 'rework' AND e.deadline_at >= :s AND e.deadline_at < :e AND e.state != 'rejected' "
            "GROUP BY e.platform"), {"s": start, "e": end}).all())
    assert p["received"].to_dict() == received
    assert p["closed_on_time"].to_dict() == on_time
    assert p["reworked"].to_dict() == {k: reworked.get(k, 0) for k in p.index}


def test_sample_derived_flags_equal_the_action_aggregation(replayed):
    for as_of in (None, "2026-03-15"):
        a = read_facts(replayed, "2025-10/2026-09", as_of=as_of)
        b = read_facts(replayed, "2025-10/2026-09", as_of=as_of, flags="actions")
        assert len(a) > 5_000
        assert (a["flags"].to_numpy() == b["flags"].to_numpy()).all()
        assert (a["state"].astype(str).to_numpy() == b["state"].astype(str).to_numpy()).all()


def test_sample_ranking_of_grids(replayed):
    r = rank(assess(replayed, "2026-Q3", by="grid"), "on_time_rate")
    ranked = r[r["rank"].notna()]
    assert len(ranked) > 40 and (ranked["due"] >= 20).all()
    values = ranked["on_time_rate"].to_numpy()
    assert (np.diff(values) <= 1e-9).all()    # better first
