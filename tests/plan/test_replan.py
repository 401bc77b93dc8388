"""Re-planning from the plan in force, and the staff carried over when a plan is published.

Small hand-built villages only (the sample-scale figures are in benchmarks/bench_plan.py).
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from gridgeo.errors import StaffStranded
from gridgeo.io import import_files
from gridgeo.plan import divide, lifecycle
from gridgeo.plan.divide import Plan
from gridgeo.plan.replan import replan
from gridgeo.plan.transition import staff_transition
from helpers.tiny import D, V1, V2, X0, Y0, make_tiny

BAND = (300, 500)


def _points(geom, n, seed, prefix, village, per_point=3):
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = geom.bounds
    pts = []
    while len(pts) < n:
        xy = rng.uniform((x0, y0), (x1, y1), size=(n, 2))
        pts.extend(xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])].tolist())
    return gpd.GeoDataFrame({"code": [f"{prefix}{i:04d}" for i in range(n)], "village_code": village,
                             "households": per_point}, geometry=shapely.points(np.array(pts[:n])), crs=4326)


@pytest.fixture(scope="module")
def two_villages():
    """東村 (900 households, a road across) and 西村 (780), both planned from scratch."""
    v1 = shapely.box(X0, Y0, X0 + 0.012, Y0 + 0.010)
    v2 = shapely.box(X0 + 0.012, Y0, X0 + 0.024, Y0 + 0.010)
    vil = gpd.GeoDataFrame({"code": [V1, V2], "name": ["东村", "西村"], "township": "测试乡"},
                           geometry=[v1, v2], crs=4326)
    hh = pd.concat([_points(v1, 300, 1, "A", V1), _points(v2, 260, 2, "B", V2)], ignore_index=True)
    roads = gpd.GeoDataFrame(geometry=[shapely.LineString([(X0 + 0.006, Y0 - 0.001), (X0 + 0.006, Y0 + 0.011)])],
                             crs=4326)
    first = divide(vil, hh, roads, band=BAND, seed=1)
    return vil, hh, roads, first


def test_grid_names_carry_the_township(two_villages):
    *_, first = two_villages
    assert list(first.grids["name"]) == ["测试乡东村第1网格", "测试乡东村第2网格", "测试乡西村第1网格", "测试乡西村第2网格"]


def test_replanning_an_unchanged_valid_plan_changes_nothing(two_villages):
    vil, hh, roads, first = two_villages
    again = replan(vil, hh, roads, first.grids, band=BAND, seed=5)
    assert list(again.grids["code"]) == list(first.grids["code"])
    assert list(again.grids["name"]) == list(first.grids["name"])
    assert all(shapely.equals(a, b) for a, b in zip(again.grids.geometry, first.grids.geometry))
    assert list(again.grids["households"]) == list(first.grids["households"])
    r = again.report["replan"]
    assert r["divided_again"] == {} and r["households_changing"] == 0 and r["addresses_changing"] == 0
    assert sorted(r["kept"]) == [V1, V2] and r["grids_new"] == [] and r["grids_ended"] == []
    assert [v["touched"] for v in again.report["villages"]] == [False, False]
    # the blocks nest in the kept grids, so a manual edit still has blocks to move
    assert again.blocks.groupby("grid_code").size().min() > 1


def test_a_kept_village_below_the_floor_stays_exempt_from_the_band(two_villages):
    """西村 (780 households) below a floor of 800 is one grid, exempt from the band; planning
    again from that plan kept it but counted it out of band (the sample's four one-grid
    villages pulled its share in band to 92.6 %)."""
    vil, hh, roads, _ = two_villages
    band = (800, 1000)
    first = divide(vil, hh, roads, band=band, seed=1)
    west = first.grids.loc[first.grids["village_code"] == V2, "code"].tolist()
    assert len(west) == 1 and first.report["metrics"]["grids_exempt_below_floor"] == west
    again = replan(vil, hh, roads, first.grids, band=band, seed=5)
    assert again.report["replan"]["kept"] == [V1, V2]
    m = again.report["metrics"]
    assert m["grids_exempt_below_floor"] == west and m["grids_outside_band"] == [] and m["share_in_band"] == 1.0


def test_growing_one_community_by_40_percent_changes_only_its_grids(two_villages):
    vil, hh, roads, first = two_villages
    grown = pd.concat([hh, _points(vil.geometry[1], 104, 3, "C", V2)], ignore_index=True)  # 780 -> 1,092
    # names in force of another pattern: a kept grid keeps its own, a village divided again
    # is named by the pattern throughout (no old name beside the new ones)
    in_force = first.grids.assign(name=first.grids["name"].str.replace("测试乡", "旧称", regex=False))
    again = replan(vil, grown, roads, in_force, band=BAND, seed=1)
    old, new = in_force.set_index("code"), again.grids.set_index("code")
    # the other village: identical grids
    for code in old.index[old["village_code"] == V1]:
        assert shapely.equals(new.geometry[code], old.geometry[code]) and new.loc[code, "name"] == old.loc[code, "name"]
    # the grown one: three grids in the band, the two old codes kept, one new
    mine = new[new["village_code"] == V2]
    assert sorted(mine.index) == [V2 + "001", V2 + "002", V2 + "003"]
    assert mine["households"].between(*BAND).all() and mine["households"].sum() == 1092
    assert mine["name"].tolist() == ["测试乡西村第1网格", "测试乡西村第2网格", "测试乡西村第3网格"]
    assert again.report["metrics"]["contiguous"] and again.report["metrics"]["share_in_band"] == 1.0
    rows = {v["code"]: v for v in again.report["villages"]}
    assert not rows[V1]["touched"] and rows[V1]["households_changing"] == 0
    assert rows[V2]["touched"] and "above the ceiling 500" in rows[V2]["why"]
    # close to the old division: the new grid needs at least 300 households; little more moves
    assert 300 <= rows[V2]["households_changing"] <= 420
    # households located in the old and new grids agree with the report
    from gridgeo.plan.divide import _locate

    pts = grown.geometry.to_numpy()
    o, _ = _locate(first.grids.geometry.to_numpy(), pts, 50)
    n, _ = _locate(again.grids.geometry.to_numpy(), pts, 50)
    moved = first.grids["code"].to_numpy()[o] != again.grids["code"].to_numpy()[n]
    assert int(grown["households"][moved].sum()) == again.report["replan"]["households_changing"]
    assert set(grown["village_code"][moved]) == {V2}


def _box(x0, x1):
    return shapely.box(X0 + x0 * D, Y0, X0 + x1 * D, Y0 + D)


def test_staff_proposals_on_a_hand_built_case():
    """Old: A1 | A2 | A3 | A4. New: A1 kept; A2 split in A2 (west, 20 households) and A5
    (east, 30); A3 and A4 merged into A3. Staff: a head on each old grid, workers on A2 (two)
    and A4, an instructor on A1, one on a grid not in the plan."""
    old = gpd.GeoDataFrame({"code": ["A1", "A2", "A3", "A4"], "name": ["一", "二", "三", "四"]},
                           geometry=[_box(0, 1), _box(1, 2), _box(2, 3), _box(3, 4)], crs=4326)
    new = gpd.GeoDataFrame({"code": ["A1", "A2", "A5", "A3"], "name": ["一", "二", "五", "三"]},
                           geometry=[_box(0, 1), _box(1, 1.5), _box(1.5, 2), _box(2, 4)], crs=4326)
    hh = gpd.GeoDataFrame({"households": [10, 20, 30, 5, 8]}, geometry=shapely.points(
        [(X0 + 0.5 * D, Y0 + D / 2), (X0 + 1.2 * D, Y0 + D / 2), (X0 + 1.8 * D, Y0 + D / 2),
         (X0 + 2.5 * D, Y0 + D / 2), (X0 + 3.5 * D, Y0 + D / 2)]), crs=4326)
    staff = pd.DataFrame({
        "code": ["H1", "H2", "H3", "H4", "W1", "W2", "W4", "I1", "I9"],
        "name": ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬"],
        "role": ["grid_head"] * 4 + ["full_time_worker", "part_time_worker", "full_time_worker",
                                     "instructor", "instructor"],
        "grid_code": ["A1", "A2", "A3", "A4", "A2", "A2", "A4", "A1", "B9"]})
    t = staff_transition(old, new, hh, staff)
    to = dict(zip(t.proposals["code"], t.proposals["to_grid"]))
    # A1 kept: its head and instructor stay
    assert to["H1"] == "A1" and to["I1"] == "A1"
    # A2 split: its head goes with most of its households (30 in A5); A2 keeps no head
    assert to["H2"] == "A5"
    # A3 + A4 merged: the head sharing more households (A4's, 8 > 5) gets it; A3's is stranded
    assert to["H4"] == "A3" and to["H3"] is None
    # workers: both of A2 followed its households to A5, then the west half (no worker) took one
    assert sorted([to["W1"], to["W2"]]) == ["A2", "A5"] and to["W4"] == "A3"
    assert to["I9"] is None and "not in the plan in force" in t.proposals.set_index("code").loc["I9", "why"]
    assert list(t.stranded["code"]) == ["H3"]  # I9 was on no grid of the plan in force already
    missing = {r.grid: set(r.missing) for r in t.unstaffed.itertuples()}
    assert missing == {"A1": {"网格员"}, "A2": {"网格长", "网格指导员"}, "A5": {"网格指导员"}, "A3": {"网格指导员"}}
    pairs = {(r.from_grid, r.to_grid): r.households for r in t.overlap.itertuples()}
    assert pairs == {("A1", "A1"): 10, ("A2", "A2"): 20, ("A2", "A5"): 30, ("A3", "A3"): 5, ("A4", "A3"): 8}


def test_a_sliver_where_grids_meet_sends_no_worker_to_another_village():
    """Two villages' grids overlapping by a numerical sliver (a hundredth of a m², as where
    the sample's villages meet): 东 is split, its new east half has no worker, and 西 has
    two; no 西 worker is sent across the village boundary for the sliver, the half is
    listed as missing a worker."""
    old = gpd.GeoDataFrame({"code": ["E1", "W1"], "name": ["东", "西"]},
                           geometry=[_box(0, 1), _box(1 - 1e-10, 2)], crs=4326)
    new = gpd.GeoDataFrame({"code": ["E1", "E2", "W1"], "name": ["东", "东二", "西"]},
                           geometry=[_box(0, 0.5), _box(0.5, 1), _box(1 - 1e-10, 2)], crs=4326)
    hh = gpd.GeoDataFrame({"households": [10, 20]}, geometry=shapely.points(
        [(X0 + 0.2 * D, Y0 + D / 2), (X0 + 1.5 * D, Y0 + D / 2)]), crs=4326)
    staff = pd.DataFrame({"code": ["E", "W", "V"], "name": ["甲", "乙", "丙"],
                          "role": ["full_time_worker", "full_time_worker", "part_time_worker"],
                          "grid_code": ["E1", "W1", "W1"]})
    t = staff_transition(old, new, hh, staff)
    assert dict(zip(t.proposals["code"], t.proposals["to_grid"])) == {"E": "E1", "W": "W1", "V": "W1"}
    assert "网格员" in t.unstaffed.set_index("grid").loc["E2", "missing"]


@pytest.fixture
def tiny_store(store, tmp_path):
    files = make_tiny(tmp_path)
    staff = tmp_path / "more" / "staff.csv"
    staff.parent.mkdir()
    staff.write_text(files["staff"].read_text(encoding="utf-8") + f"P4,赵六,13800000004,grid_head,{V1}002\n",
                     encoding="utf-8")
    import_files(store, [files["gpkg"], staff], plan_version="v1", effective_from=dt.date(2024, 1, 1))
    return store, files


def _merged_draft(store, files):
    """A draft joining 东村's two grids into one (西村 as it is)."""
    g = files["grids"]
    one = gpd.GeoDataFrame({"code": [V1 + "001"], "name": ["东村网格"], "village_code": [V1], "kind": ["basic"],
                            "households": [3], "population": [8], "buildings": [0], "workload": [3.0]},
                           geometry=[shapely.union(g.geometry[0], g.geometry[1])], crs=4326)
    blocks = one.rename(columns={"code": "grid_code"}).assign(block=[0])
    plan = Plan(grids=one, blocks=blocks[["block", "village_code", "grid_code", "households", "population",
                                          "buildings", "workload", "geometry"]],
                assignment=pd.DataFrame(), report={"params": {"band": [1, 10]}})
    return lifecycle.save_draft(store, plan, version="merged", actor="test")


def test_publishing_refuses_to_strand_staff_then_carries_them_over(tiny_store):
    store, files = tiny_store
    row = _merged_draft(store, files)
    t = lifecycle.transition(store, row["id"])
    # two heads for one grid: the one of the grid with more households (002: 2 > 1) gets it
    assert list(t.stranded["code"]) == ["P1"]
    assert list(t.stranded["reason"]) == ["no_post"] and set(t.proposals["reason"]) == {"kept", "shares", "no_post"}
    with pytest.raises(StaffStranded) as exc:
        lifecycle.publish(store, row["id"], dt.date(2025, 1, 1), actor="test")
    assert [s["code"] for s in exc.value.stranded] == ["P1"] and "allow_stranded" in str(exc.value)
    assert store.plan_in_force(dt.date(2025, 6, 1))["version"] == "v1"  # nothing written
    assert set(store.read("staff")["grid_code"]) == {V1 + "001", V1 + "002"}
    lifecycle.publish(store, row["id"], dt.date(2025, 1, 1), actor="test", allow_stranded=True)
    staff = store.read("staff").sort_values(["code", "role"])
    posts = list(zip(staff["code"], staff["role"], staff["grid_code"]))
    # P4 moved to the merged grid; P3 instructed both old grids: one post left; P1 stranded
    assert posts == [("P1", "grid_head", V1 + "001"), ("P2", "full_time_worker", V1 + "001"),
                     ("P3", "instructor", V1 + "001"), ("P4", "grid_head", V1 + "001")]
    log = store.audit_log("plans", str(row["id"]))
    detail = log[log["action"] == "plan.publish"]["detail"].iloc[0]
    assert [s["code"] for s in detail["staff_stranded"]] == ["P1"]
    assert {(m["code"], m["to"]) for m in detail["staff_moved"]} == {("P4", V1 + "001"), ("P3", V1 + "001")}


def test_replanning_in_the_store_and_the_api(tiny_store):
    """With a plan in force, planning starts from it; from scratch on request; the API's
    publish answers 409 with the stranded staff, and the transition and diff default."""
    from helpers.authn import headers_for

    store, files = tiny_store
    plan = lifecycle.plan_from_store(store, band=(1, 10), seed=1)
    assert plan.report["replan"]["plan"] == "v1" and plan.report["replan"]["households_changing"] == 0
    assert sorted(plan.grids["code"]) == sorted(files["grids"]["code"])
    scratch = lifecycle.plan_from_store(store, band=(1, 10), seed=1, from_scratch=True)
    assert "replan" not in scratch.report and scratch.report["params"]["from_scratch"]
    row = _merged_draft(store, files)
    app = create_app()
    app.dependency_overrides[get_store] = lambda: store
    with TestClient(app) as c:
        c.headers.update(headers_for(store, "planner", name="规划员"))
        t = c.get("/v1/plans/merged/transition").json()
        assert [s["code"] for s in t["stranded"]] == ["P1"] and t["moves"] == 2
        diff = c.get("/v1/plans/merged/diff").json()  # against the plan in force
        assert diff["from_plan"] == "v1" and diff["points"] == 1
        assert diff["villages"] == [{"village_code": V1, "addresses_changing": 1, "households_changing": 2,
                                     "addresses": 2, "households": 3, "why": ""}]
        r = c.post("/v1/plans/merged/publish", json={"effective_from": "2025-01-01"})
        assert r.status_code == 409 and r.json()["type"] == "/problems/staff-stranded"
        assert [s["code"] for s in r.json()["stranded"]] == ["P1"]
        r = c.post("/v1/plans/merged/publish", json={"effective_from": "2025-01-01", "allow_stranded": True})
        assert r.status_code == 200 and r.json()["status"] == "published"
    assert row["id"] == store.plan_in_force(dt.date(2025, 6, 1))["id"]


def test_editing_a_draft_split_merge_undo_and_refusals(tiny_store):
    """The editor's operations through the API (the core behind it is the CLI's too): a
    preview writes nothing; split along blocks; the villages touched and the plan measured
    apart; renumbering preview; refusals in words; merge; undo back to the start."""
    from helpers.authn import headers_for

    store, files = tiny_store
    plan = lifecycle.plan_from_store(store, band=(1, 10), seed=1)  # both villages kept, cut in blocks
    row = lifecycle.save_draft(store, plan, version="edit", actor="test")
    start = store.read("grids", plan=row["id"]).set_index("code")
    b = plan.blocks[plan.blocks["grid_code"] == V1 + "001"]
    north = b["block"][shapely.get_y(shapely.centroid(b.geometry.to_numpy())) > Y0 + D / 2].astype(int).tolist()
    assert 0 < len(north) < len(b)
    app = create_app()
    app.dependency_overrides[get_store] = lambda: store
    with TestClient(app) as c:
        c.headers.update(headers_for(store, "planner", name="规划员"))
        r = c.post("/v1/plans/edit/split", json={"grid": V1 + "001", "blocks": north, "preview": True})
        assert r.status_code == 200, r.text
        assert r.json()["preview"] and r.json()["added"] == [V1 + "003"]
        assert len(store.read("grids", plan=row["id"])) == 4  # nothing written
        r = c.post("/v1/plans/edit/split", json={"grid": V1 + "001", "blocks": north})
        body = r.json()
        assert r.status_code == 200 and body["to_grid"] == V1 + "003" and not body["preview"]
        assert body["metrics"]["scope"] == f"villages {V1}" and body["metrics"]["grids"] == 3
        assert body["plan_metrics"]["scope"] == "plan" and body["plan_metrics"]["grids"] == 5
        assert {g["code"] for g in body["grids"]} == {V1 + "001", V1 + "003"}
        grids = store.read("grids", plan=row["id"]).set_index("code")
        assert grids.loc[V1 + "003", "name"] == "测试乡东村第3网格"
        assert shapely.equals(shapely.union(grids.geometry[V1 + "001"], grids.geometry[V1 + "003"]),
                              start.geometry[V1 + "001"])
        # the numbering rule would put the new northern grid first
        ren = c.get("/v1/plans/edit/renumber").json()
        assert ren["changes"] > 0 and {g["code"]: g["renumbered"] for g in ren["grids"]}[V1 + "003"] == V1 + "001"
        # refusals, in words, nothing written
        r = c.post("/v1/plans/edit/merge", json={"grid": V1 + "002", "other": V2 + "001"})
        assert r.status_code == 422 and "never crosses a village boundary" in r.json()["detail"]
        assert r.json()["reasons"] == [{"rule": "merge_across_villages", "grid": V1 + "002", "other": V2 + "001",
                                        "village": V1, "other_village": V2}]
        r = c.post("/v1/plans/edit/split", json={"grid": V1 + "002", "blocks": north})
        assert r.status_code == 422 and f"is not in grid {V1}002" in r.json()["detail"]
        r = c.post("/v1/plans/edit/edits", json={"to_grid": V2 + "001", "blocks": north[:1]})
        assert r.status_code == 422 and r.json()["type"] == "/problems/invalid-plan"
        r = c.post("/v1/plans/edit/split", json={"grid": V1 + "002", "blocks": list(range(100_001))})
        assert r.status_code == 422  # too many items for one edit
        r = c.post("/v1/plans/edit/merge", json={"grid": V1 + "002", "other": V1 + "003"})
        assert r.status_code == 200 and r.json()["removed"] == [V1 + "003"]
        assert sorted(store.read("grids", plan=row["id"])["code"]) == [V1 + "001", V1 + "002", V2 + "001", V2 + "002"]
        assert c.post("/v1/plans/edit/undo").json()["undone"]["action"] == "merge_grids"
        assert V1 + "003" in set(store.read("grids", plan=row["id"])["code"])
        assert c.post("/v1/plans/edit/undo").json()["undone"]["action"] == "split_grid"
        r = c.post("/v1/plans/edit/undo")
        assert r.status_code == 422 and "no edit to undo" in r.json()["detail"]
    end = store.read("grids", plan=row["id"]).set_index("code")
    assert sorted(end.index) == sorted(start.index)
    assert all(shapely.equals(end.geometry[k], start.geometry[k]) for k in start.index)
    assert list(end.loc[start.index, "households"]) == list(start["households"])
    assert len(lifecycle._blocks(store.plan(row["id"]), end.reset_index())) == len(plan.blocks)
    assert [e["action"] for e in store.audit_log("plans", str(row["id"]))["action"].pipe(
        lambda s: pd.DataFrame({"action": s})).to_dict("records")] == [
        "plan.draft", "plan.edit", "plan.edit", "plan.undo", "plan.undo"]
