"""Plans in the store (drafts, publishing, diffs, manual edits), the plan CLI and the plan API.

Every store test runs on SQLite and on PostgreSQL + PostGIS (the ``store`` fixture).
"""

from __future__ import annotations

import datetime as dt
import json
import math

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from gridgeo.cli import app as cli_app
from gridgeo.errors import IllegalTransition, InvalidPlan, NotFound
from gridgeo.io import import_files
from gridgeo.locate import Locator
from gridgeo.plan import lifecycle
from gridgeo.plan.blocks import Metric
from gridgeo.tiles import render_tile

X0, Y0 = 119.40, 28.40
V1, V2 = "331124201201", "331124201202"
METRIC = Metric(4549)


def _points(geom, n, seed, prefix, village):
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = geom.bounds
    pts = []
    while len(pts) < n:
        xy = rng.uniform((x0, y0), (x1, y1), size=(n, 2))
        pts.extend(xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])].tolist())
    pts = np.array(pts[:n])
    return gpd.GeoDataFrame({
        "code": [f"{prefix}{i:04d}" for i in range(n)],
        "address": [f"测试乡{village[-3:]}村{i + 1}号" for i in range(n)],
        "village_code": village,
        "households": 3,
        "population": 7,
    }, geometry=shapely.points(pts), crs=4326)


@pytest.fixture
def township(tmp_path):
    """Two villages: V1 (900 households, a road across it) and V2 (240, below the floor).

    The plan in force, v1 (2024-01-01), has one grid per village."""
    v1 = shapely.box(X0, Y0, X0 + 0.012, Y0 + 0.010)
    v2 = shapely.box(X0 + 0.012, Y0, X0 + 0.020, Y0 + 0.010)
    div = gpd.GeoDataFrame({
        "code": ["331124", "331124201", V1, V2],
        "name": ["松阳县", "测试乡", "东村", "西村"],
        "level": ["county", "township", "village", "village"],
        "parent_code": [None, "331124", "331124201", "331124201"],
    }, geometry=[None, shapely.union(v1, v2), v1, v2], crs=4326)
    grids = gpd.GeoDataFrame({"code": [V1 + "001", V2 + "001"], "name": ["东村网格", "西村网格"],
                              "village_code": [V1, V2], "kind": "basic"}, geometry=[v1, v2], crs=4326)
    hh = gpd.GeoDataFrame(
        np.concatenate([_points(v1, 300, 1, "A", V1).to_numpy(), _points(v2, 80, 2, "B", V2).to_numpy()]),
        columns=["code", "address", "village_code", "households", "population", "geometry"])
    hh = gpd.GeoDataFrame(hh, geometry="geometry", crs=4326)
    hh["households"] = hh["households"].astype(int)
    hh["population"] = hh["population"].astype(int)
    roads = gpd.GeoDataFrame({"code": ["R1"], "name": ["中心路"], "kind": ["road"]},
                             geometry=[shapely.LineString([(X0 + 0.006, Y0 - 0.001), (X0 + 0.006, Y0 + 0.011)])],
                             crs=4326)
    path = tmp_path / "township.gpkg"
    div.to_file(path, layer="divisions")
    grids.to_file(path, layer="grids")
    hh.to_file(path, layer="households")
    roads.to_file(path, layer="roads")
    staff = tmp_path / "staff.csv"
    staff.write_text("code,name,phone,role,grid_code\n"
                     f"P1,张三,13800000001,grid_head,{V1}001\n"
                     f"P2,李四,13800000002,full_time_worker,{V1}001\n", encoding="utf-8")
    return {"gpkg": path, "staff": staff, "households": hh, "v1": v1, "v2": v2}


@pytest.fixture
def loaded(store, township):
    import_files(store, [township["gpkg"], township["staff"]], plan_version="v1",
                 effective_from=dt.date(2024, 1, 1))
    return store


def _draft(store, **kw):
    plan = lifecycle.plan_from_store(store, band=(300, 500), seed=1, **kw)
    return plan, lifecycle.save_draft(store, plan, actor="test")


def _locate(grids, hh):
    loc = Locator.from_frame(grids, "code", tolerance=50)
    g = hh.geometry.to_numpy()
    return np.asarray(loc.locate(shapely.get_x(g), shapely.get_y(g)), dtype=object)


# -- drafts and publishing ---------------------------------------------------------------------


def test_draft_is_saved_with_its_grids_report_and_audit(loaded):
    plan, row = _draft(loaded)
    assert row["status"] == "draft" and row["effective_from"] is None and row["version"].startswith("draft-")
    grids = loaded.read("grids", plan=row["id"])
    assert sorted(grids["code"]) == sorted(plan.grids["code"])
    assert len(grids[grids["village_code"] == V1]) == 2 and len(grids[grids["village_code"] == V2]) == 1
    assert grids["households"].sum() == 1140
    report = loaded.plan(row["id"])["report"]
    assert report["metrics"]["contiguous"] and len(report["blocks"]["block"]) == len(plan.blocks)
    log = loaded.audit_log("plans", str(row["id"]))
    assert list(log["action"]) == ["plan.draft"]
    # the draft is not in force
    assert loaded.plan_in_force(dt.date(2030, 1, 1))["version"] == "v1"


def test_draft_of_some_villages_carries_the_others_over(loaded):
    plan, row = _draft(loaded, villages=[V1])
    grids = loaded.read("grids", plan=row["id"])
    assert sorted(grids["code"]) == sorted([*plan.grids["code"], V2 + "001"])
    assert loaded.plan(row["id"])["report"]["carried_over"] == [V2]


def test_publish_ends_the_plan_in_force(loaded):
    _, row = _draft(loaded)
    pub = lifecycle.publish(loaded, row["id"], dt.date(2025, 3, 1), actor="test")
    assert pub["status"] == "published" and pub["version"] == "2025-03-01"
    assert pub["effective_from"] == dt.date(2025, 3, 1)
    v1 = loaded.plan("v1")
    assert v1["effective_to"] == dt.date(2025, 3, 1)
    assert loaded.plan_in_force(dt.date(2025, 2, 28))["version"] == "v1"
    assert loaded.plan_in_force(dt.date(2025, 3, 1))["version"] == "2025-03-01"
    assert "plan.publish" in set(loaded.audit_log("plans", str(row["id"]))["action"])
    with pytest.raises(IllegalTransition, match="only a draft"):
        lifecycle.publish(loaded, row["id"], dt.date(2026, 1, 1))
    # a draft cannot take effect before the newest published plan
    _, row2 = _draft(loaded)
    with pytest.raises(IllegalTransition, match="takes effect on or after 2025-02-01"):
        lifecycle.publish(loaded, row2["id"], dt.date(2025, 2, 1))
    assert loaded.plan(row2["id"])["status"] == "draft"


def test_publish_refuses_a_draft_that_leaves_a_gap(loaded):
    _, row = _draft(loaded, villages=[V1])
    # drop V2's carried-over grid: the jurisdiction is no longer covered
    from gridgeo.store import schema

    with loaded.engine.begin() as conn:
        conn.execute(schema.grids.delete().where(schema.grids.c.plan_id == row["id"],
                                                 schema.grids.c.village_code == V2))
    with pytest.raises(InvalidPlan, match=f"village {V2} has no grid at all"):
        lifecycle.publish(loaded, row["id"], dt.date(2025, 3, 1))
    assert loaded.plan(row["id"])["status"] == "draft"
    assert loaded.plan("v1")["effective_to"] is None


def test_diff_lists_households_that_change_grid(loaded, township):
    plan, row = _draft(loaded)
    changes = lifecycle.diff(loaded, "v1", row["id"])
    hh = loaded.read("households")
    before = _locate(loaded.read("grids", plan="v1"), hh)
    after = _locate(loaded.read("grids", plan=row["id"]), hh)
    expected = set(hh["code"][before != after])
    assert set(changes["code"]) == expected and len(expected) > 0
    assert set(changes["from_grid"]) == {V1 + "001"}  # V1 is split; V2's single grid keeps its code
    assert changes["to_grid"].isin(plan.grids["code"]).all()
    assert changes["address"].str.startswith("测试乡").all()
    assert (changes.attrs["from_plan"], changes.attrs["to_plan"]) == ("v1", row["version"])
    # per village, with why the planner touched it (the draft started from v1)
    per = {v["village_code"]: v for v in changes.attrs["villages"]}
    assert set(per) == {V1} and per[V1]["addresses_changing"] == len(expected)
    assert per[V1]["households_changing"] == changes["households"].sum() and "above the ceiling" in per[V1]["why"]
    assert len(lifecycle.diff(loaded, row["id"])) == len(changes)  # one plan named: against the plan in force
    assert len(lifecycle.diff(loaded, "v1", "v1")) == 0


# -- manual edits --------------------------------------------------------------------------------


def _border_block(store, row, src, dst):
    """A block of grid src sharing an edge with grid dst whose move keeps src in one piece."""
    r, grids = lifecycle.read_plan(store, row["id"])
    blocks = lifecycle._blocks(r, grids)
    target = grids.set_index("code").geometry[dst]
    mine = blocks[blocks["grid_code"] == src]
    shared = [shapely.intersection(g.boundary, target.boundary).length for g in mine.geometry]
    cands = mine[np.array(shared) > 0].sort_values("households", ascending=False)
    rest_ok = []
    for b in cands["block"]:
        rest = blocks[(blocks["grid_code"] == src) & (blocks["block"] != b)].geometry.to_numpy()
        if shapely.coverage_union_all(rest).geom_type == "Polygon":
            rest_ok.append(int(b))
    return rest_ok, blocks


def test_move_blocks_between_grids(loaded):
    plan, row = _draft(loaded)
    a, b = sorted(plan.grids.loc[plan.grids["village_code"] == V1, "code"])
    ok, blocks = _border_block(loaded, row, a, b)
    block = ok[0]
    moved = float(blocks.set_index("block").loc[block, "households"])
    c = plan.grids.set_index("code").geometry[b].centroid  # the draft's tile, before the edit
    tile = (14, int((c.x + 180) / 360 * 2**14), int((1 - math.asinh(math.tan(math.radians(c.y))) / math.pi) / 2 * 2**14))
    seen = _tile_households(loaded, row["id"], tile)
    res = lifecycle.move_blocks(loaded, row["id"], [block], b, actor="tester")
    grids = loaded.read("grids", plan=row["id"]).set_index("code")
    before = plan.grids.set_index("code")["households"]
    assert grids.loc[a, "households"] == before[a] - moved and grids.loc[b, "households"] == before[b] + moved
    assert grids["households"].sum() == 1140
    geom = grids.geometry
    assert geom[a].geom_type == "Polygon" and geom[b].geom_type == "Polygon"
    assert METRIC.area(np.array([shapely.symmetric_difference(shapely.union(geom[a], geom[b]), loaded.read("divisions").set_index("code").geometry[V1])]))[0] < 0.01
    assert res["from_grids"] == [a] and res["to_grid"] == b
    log = loaded.audit_log("plans", str(row["id"]))
    assert list(log["action"]) == ["plan.draft", "plan.edit"] and log["actor"].iloc[-1] == "tester"
    report = loaded.plan(row["id"])["report"]
    assert report["edits"][-1]["blocks"] == [block]
    assert dict(zip(report["blocks"]["block"], report["blocks"]["grid_code"]))[block] == b
    # the draft's vector tile (the map editor's and the maps' source) shows the edit at once
    assert seen[b] == before[b] and _tile_households(loaded, row["id"], tile)[b] == before[b] + moved


def _tile_households(store, plan_id, tile) -> dict:
    layer = mapbox_vector_tile.decode(render_tile(store, "grids", *tile, plan=plan_id))["grids"]
    return {f["properties"]["code"]: f["properties"]["households"] for f in layer["features"]}


def test_invalid_edits_are_refused_and_nothing_is_written(loaded):
    plan, row = _draft(loaded)
    a, b = sorted(plan.grids.loc[plan.grids["village_code"] == V1, "code"])
    r, grids = lifecycle.read_plan(loaded, row["id"])
    blocks = lifecycle._blocks(r, grids)
    # every block of a: the grid would be empty
    all_a = blocks.loc[blocks["grid_code"] == a, "block"].astype(int).tolist()
    with pytest.raises(InvalidPlan, match=f"grid {a} would have no block left"):
        lifecycle.move_blocks(loaded, row["id"], all_a, b)
    # a block far from b: b would be in two pieces
    target = grids.set_index("code").geometry[b]
    far = blocks[(blocks["grid_code"] == a)].assign(d=lambda f: shapely.distance(f.geometry.to_numpy(), target)).sort_values("d")
    with pytest.raises(InvalidPlan, match=f"grid {b} would be in 2 pieces"):
        lifecycle.move_blocks(loaded, row["id"], [int(far["block"].iloc[-1])], b)
    # across the village boundary
    with pytest.raises(InvalidPlan, match="never crosses a village boundary"):
        lifecycle.move_blocks(loaded, row["id"], [all_a[0]], V2 + "001")
    with pytest.raises(NotFound):
        lifecycle.move_blocks(loaded, row["id"], [10**9], b)
    assert list(loaded.audit_log("plans", str(row["id"]))["action"]) == ["plan.draft"]
    after = loaded.read("grids", plan=row["id"])
    assert list(shapely.to_wkb(after.geometry.to_numpy())) == list(shapely.to_wkb(grids.geometry.to_numpy()))
    # a published plan cannot be edited
    lifecycle.publish(loaded, row["id"], dt.date(2025, 3, 1))
    with pytest.raises(IllegalTransition, match="only a draft can be edited"):
        lifecycle.move_blocks(loaded, row["id"], [all_a[0]], b)


def test_move_a_household(loaded):
    plan, row = _draft(loaded)
    a, b = sorted(plan.grids.loc[plan.grids["village_code"] == V1, "code"])
    hh = loaded.read("households")
    grids = loaded.read("grids", plan=row["id"])
    where = _locate(grids, hh)
    target = grids.set_index("code").geometry[b]
    mine = hh[where == a].assign(d=lambda f: shapely.distance(f.geometry.to_numpy(), target.boundary)).sort_values("d")
    done = None
    for code in mine["code"][:10]:
        try:
            done = lifecycle.move_households(loaded, row["id"], [code], b, actor="tester")
            break
        except InvalidPlan:
            continue
    assert done is not None
    after = loaded.read("grids", plan=row["id"])
    assert _locate(after, hh[hh["code"] == code])[0] == b
    new_where = _locate(after, hh)
    assert (new_where != where).sum() == 1  # only that address point changed grid
    totals = after.set_index("code")["households"]
    assert totals[a] == plan.grids.set_index("code")["households"][a] - 3
    assert totals.sum() == 1140
    assert list(loaded.audit_log("plans", str(row["id"]))["action"]) == ["plan.draft", "plan.edit"]


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_plan_from_files(township, tmp_path):
    out, rep = tmp_path / "out.gpkg", tmp_path / "r.json"
    path = str(township["gpkg"])
    res = CliRunner().invoke(cli_app, ["plan", "new", "--villages", path, "--households", path, "--roads", path,
                                       "--band", "300:500", "--out", str(out), "--report", str(rep)])
    assert res.exit_code == 0, res.output
    grids = gpd.read_file(out, layer="grids")
    assert len(grids) == 3 and grids["households"].sum() == 1140
    report = json.loads(rep.read_text(encoding="utf-8"))
    assert report["metrics"]["grids"] == 3 and "polsby_popper_mean" in report["metrics"]
    res = CliRunner().invoke(cli_app, ["plan", "new", "--villages", path, "--households", path, "--band", "460:500",
                                       "--out", str(out)])
    assert res.exit_code == 1 and "cannot be split into grids of 460-500" in " ".join(res.output.split())


def test_cli_plan_draft_publish_diff(loaded, tmp_path):
    url = loaded.url
    run = CliRunner().invoke
    res = run(cli_app, ["plan", "new", "--save-draft", "--version", "d1", "-d", url])
    assert res.exit_code == 0, res.output
    assert loaded.plan("d1")["status"] == "draft"
    res = run(cli_app, ["plan", "diff", "v1", "d1", "--out", str(tmp_path / "d.csv"), "-d", url])
    assert res.exit_code == 0, res.output and (tmp_path / "d.csv").exists()
    res = run(cli_app, ["plan", "publish", "d1", "--effective-from", "2025-06-01", "-d", url])
    assert res.exit_code == 0, res.output
    assert loaded.plan_in_force(dt.date(2025, 6, 1))["version"] == "d1"
    res = run(cli_app, ["plan", "staffing", "d1", "-d", url])
    assert res.exit_code == 0 and "short of staff" in res.output


# -- API ----------------------------------------------------------------------------------------


@pytest.fixture
def client(loaded):
    from helpers.authn import headers_for

    app = create_app()
    app.dependency_overrides[get_store] = lambda: loaded
    with TestClient(app) as c:
        c.headers.update(headers_for(loaded, "planner", name="规划员"))
        yield c


def test_api_plan_life_cycle(client, loaded):
    r = client.post("/v1/plans", json={"band": [300, 500], "seed": 1, "version": "api-1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "draft" and body["version"] == "api-1" and body["metrics"]["grids"] == 3
    assert r.headers["location"] == f"/v1/plans/{body['id']}"
    r = client.get(f"/v1/plans/{body['id']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert len(fc["features"]) == 3 and fc["plan"]["status"] == "draft"
    assert "blocks" not in fc["report"] and fc["report"]["metrics"]["contiguous"]
    blocks = client.get("/v1/plans/api-1/blocks").json()
    assert len(blocks["features"]) == body["metrics"]["blocks"]
    diff = client.get("/v1/plans/api-1/diff", params={"against": "v1"}).json()
    assert diff["from_plan"] == "v1" and diff["to_plan"] == "api-1" and diff["points"] > 0
    assert sum(m["points"] for m in diff["moves"]) == diff["points"]
    staffing = client.get("/v1/plans/api-1/staffing").json()
    assert len(staffing["grids"]) == 3
    r = client.post("/v1/plans/api-1/publish", json={"effective_from": "2025-05-01"})
    assert r.status_code == 200 and r.json()["status"] == "published"
    r = client.post("/v1/plans/api-1/publish", json={"effective_from": "2025-06-01"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/illegal-transition"
    r = client.post("/v1/plans/api-1/edits", json={"to_grid": V1 + "001", "blocks": [0]})
    assert r.status_code == 409


def test_api_problems(client):
    r = client.post("/v1/plans", json={"band": [460, 500]})
    assert r.status_code == 422 and r.json()["type"] == "/problems/infeasible-band"
    assert V1 in r.json()["detail"]
    r = client.post("/v1/plans", json={"band": [500, 300]})
    assert r.status_code == 422 and r.json()["title"] == "invalid request"
    assert client.get("/v1/plans/nope").status_code == 404
    r = client.post("/v1/plans", json={"band": [300, 500], "version": "e1"})
    assert r.status_code == 201
    r = client.post("/v1/plans/e1/edits", json={"to_grid": V2 + "001", "blocks": [0]})
    assert r.status_code == 422 and r.json()["type"] == "/problems/invalid-plan"
