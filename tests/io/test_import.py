"""Import, validation and export, on SQLite and PostgreSQL + PostGIS.

Each import failure the foundation issue names is fed through a deliberately broken
file; the test checks the report names file, row and field, and that the database is
exactly as it was before.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from helpers.tiny import D, V1, V2, X0, Y0
from gridgeo.errors import ImportFailed
from gridgeo.io import export_layer, import_files, validate_files
from gridgeo.layers import LAYERS


def load_tiny(store, tiny, **kw):
    return import_files(store, [tiny["gpkg"], tiny["staff"], tiny["categories"]],
                        plan_version="v1", effective_from=dt.date(2024, 1, 1), **kw)


def snapshot(store):
    """Every row of every table, to compare before and after a failed import."""
    out = {}
    for name in LAYERS:
        frame = store.read(name, plan="v1") if name == "grids" and store.plans().shape[0] else store.read(name)
        frame = pd.DataFrame(frame)
        if "geometry" in frame:
            frame["geometry"] = shapely.to_wkt(frame["geometry"].to_numpy())
        out[name] = frame.to_dict("records")
    out["plans"] = store.plans().to_dict("records")
    out["audit"] = len(store.audit_log())
    return out


def broken(tiny, layer, frame, name=None):
    """Write ``frame`` as the only layer ``layer`` of a new GeoPackage."""
    path = tiny["dir"] / (name or f"broken_{layer}.gpkg")
    frame.to_file(path, layer=layer)
    return path


def expect_failure(store, paths, *, field=None, row=None, contains, **kw):
    before = snapshot(store)
    with pytest.raises(ImportFailed) as info:
        import_files(store, paths, **kw)
    problems = info.value.report.errors
    hits = [p for p in problems if contains in p.message
            and (field is None or p.field == field) and (row is None or p.row == row)]
    assert hits, f"no error containing {contains!r} at row {row} field {field}: {problems}"
    assert all(p.file for p in hits)
    assert snapshot(store) == before, "a failed import changed the database"
    return hits


def test_tiny_import_roundtrip(store, tiny):
    result = load_tiny(store, tiny)
    assert result.counts == {"divisions": 4, "categories": 2, "grids": 4, "households": 5, "staff": 4}
    assert result.report.ok
    grids = store.read("grids", at=dt.date(2025, 6, 1))
    assert grids.attrs["plan_version"] == "v1"
    assert list(grids["code"]) == [V1 + "001", V1 + "002", V2 + "001", V2 + "002"]
    # Totals come from the households inside each grid.
    assert grids.set_index("code").loc[V1 + "002", "households"] == 2
    assert grids["households"].sum() == 8 and grids["population"].sum() == 19
    assert grids.crs.to_epsg() == 4326
    assert grids.geometry.geom_equals_exact(tiny["grids"].geometry, tolerance=1e-12).all()
    log = store.audit_log(entity="grids")
    assert len(log) == 1 and log.iloc[0]["action"] == "import"


def test_missing_crs(store, tiny):
    path = tiny["dir"] / "households.csv"
    path.write_text("code,address,lon,lat\nH1,某地1号,119.401,28.401\n", encoding="utf-8")
    load_tiny(store, tiny)
    expect_failure(store, [path], field="crs", contains="no coordinate system")


def test_unknown_crs_name(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "households.csv"
    path.write_text("code,address,lon,lat\nH9,某地9号,119.401,28.401\n", encoding="utf-8")
    with pytest.raises(Exception, match="unknown coordinate system 'mars'"):
        import_files(store, [path], crs="mars")


def test_unknown_crs_per_row(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "households.csv"
    path.write_text("code,address,lon,lat,crs\nH8,某地8号,119.401,28.401,wgs84\nH9,某地9号,119.401,28.401,mars\n",
                    encoding="utf-8")
    expect_failure(store, [path], field="crs", row=2, contains="unknown coordinate system")


def test_swapped_lon_lat(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "households.csv"
    path.write_text("code,address,lon,lat\nH8,某地8号,119.402,28.402\nH9,某地9号,28.403,119.403\n",
                    encoding="utf-8")
    expect_failure(store, [path], field="geometry", row=2, contains="swapped", crs="wgs84")


def test_projected_input_is_reprojected(store, tiny):
    load_tiny(store, tiny)
    h = tiny["households"].iloc[[0]].assign(code="H100").to_crs(4549)
    path = tiny["dir"] / "households.geojson"
    h.to_file(path)
    import_files(store, [path])
    got = store.read("households").set_index("code").loc["H100", "geometry"]
    assert got.distance(tiny["households"].geometry.iloc[0]) < 1e-8


def test_gcj02_input_is_converted(store, tiny):
    from gridgeo.crs import convert

    load_tiny(store, tiny)
    lon, lat = convert(X0 + 0.003, Y0 + 0.004, "wgs84", "gcj02")
    path = tiny["dir"] / "households.csv"
    path.write_text(f"code,address,lon,lat\nH7,某地7号,{lon:.10f},{lat:.10f}\n", encoding="utf-8")
    import_files(store, [path], crs="gcj02")
    got = store.read("households").set_index("code").loc["H7", "geometry"]
    assert abs(got.x - (X0 + 0.003)) < 1e-7 and abs(got.y - (Y0 + 0.004)) < 1e-7


def bowtie(x, y, d):
    return shapely.Polygon([(x, y), (x + d, y + d), (x + d, y), (x, y + d), (x, y)])


def test_invalid_geometry_reported_then_repaired(store, tiny):
    div = tiny["divisions"].copy()
    div.loc[2, "geometry"] = bowtie(X0, Y0, D)
    path = broken(tiny, "divisions", div)
    hits = expect_failure(store, [path], field="geometry", row=3, contains="invalid geometry")
    assert "Self-intersection" in hits[0].message and "--repair" in hits[0].message
    # With --repair it goes in, reported as a warning. The grids would then leave the
    # repaired village, so only the divisions are imported here.
    result = import_files(store, [path], repair=True)
    assert result.counts["divisions"] == 4
    assert any("repaired" in p.message for p in result.report.warnings)
    v = store.read("divisions").set_index("code").loc[V1, "geometry"]
    assert v.is_valid and v.geom_type in ("Polygon", "MultiPolygon")


def test_grids_overlapping(store, tiny):
    grids = tiny["grids"].copy()
    h = D / 2
    grids.loc[0, "geometry"] = box_(X0, Y0, X0 + h + 0.001, Y0 + D)  # 100 m into its neighbour
    path = broken(tiny, "grids", grids)
    hits = expect_failure(store, [divisions_file(tiny), path], field="geometry", row=1, contains="overlaps")
    assert V1 + "002" in hits[0].message and "m²" in hits[0].message


def box_(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def divisions_file(tiny):
    path = tiny["dir"] / "divisions.geojson"
    if not path.exists():
        tiny["divisions"].to_file(path)
    return path


def test_grid_leaving_its_village(store, tiny):
    grids = tiny["grids"].copy()
    # The west grid of V2 reaches 0.002 degree into V1: it leaves its village (and
    # overlaps V1's grid, reported too).
    grids.loc[2, "geometry"] = box_(X0 + D - 0.002, Y0, X0 + D + D / 2, Y0 + D)
    path = broken(tiny, "grids", grids)
    expect_failure(store, [divisions_file(tiny), path], field="geometry", row=3, contains="leaves its village")


def test_gap(store, tiny):
    grids = tiny["grids"].copy()
    grids.loc[3, "geometry"] = box_(X0 + D + D / 2, Y0, X0 + 2 * D, Y0 + D - 0.002)  # north strip uncovered
    path = broken(tiny, "grids", grids)
    hits = expect_failure(store, [divisions_file(tiny), path], field="geometry", contains="gap: village " + V2)
    assert "near 119.4" in hits[0].message


def test_village_without_grid_is_a_gap(store, tiny):
    path = broken(tiny, "grids", tiny["grids"].iloc[:2])
    expect_failure(store, [divisions_file(tiny), path], contains=f"gap: village {V2} has no grid at all")


def test_duplicated_codes(store, tiny):
    grids = tiny["grids"].copy()
    grids.loc[1, "code"] = grids.loc[0, "code"]
    path = broken(tiny, "grids", grids)
    hits = expect_failure(store, [divisions_file(tiny), path], field="code", row=2, contains="duplicated code")
    assert "also in row 1" in hits[0].message


def test_duplicated_code_against_store(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "households.csv"
    path.write_text("code,address,lon,lat\nH001,某地,119.401,28.401\n", encoding="utf-8")
    expect_failure(store, [path], field="code", row=1, contains="already in the store", crs="wgs84")
    # With --replace it updates the row in place.
    import_files(store, [path], crs="wgs84", replace=True)
    h = store.read("households").set_index("code")
    assert len(h) == 5 and h.loc["H001", "address"] == "某地"


def test_household_in_no_grid(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "households.csv"
    path.write_text("code,address,lon,lat\nH20,测试乡20号,119.4015,28.4015\nH21,外地1号,119.45,28.45\n",
                    encoding="utf-8")
    hits = expect_failure(store, [path], field="geometry", row=2, contains="is in no grid", crs="wgs84")
    assert "H21" in hits[0].message and "外地1号" in hits[0].message


def test_grid_code_must_extend_village_code(store, tiny):
    grids = tiny["grids"].copy()
    grids.loc[3, "code"] = "331124201299002"
    path = broken(tiny, "grids", grids)
    expect_failure(store, [divisions_file(tiny), path], field="code", row=4, contains="does not start with")


def test_bad_values(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "categories.csv"
    path.write_text(
        "code,name,platform,department,deadline_hours,major\n"
        "BM001,社保咨询,service,人力社保,48,false\n"
        "BM002,养老服务,welfare,民政,abc,maybe\n"
        ",低保,service,民政,72,false\n",
        encoding="utf-8",
    )
    before = snapshot(store)
    with pytest.raises(ImportFailed) as info:
        import_files(store, [path])
    got = {(p.row, p.field) for p in info.value.report.errors}
    assert {(2, "platform"), (2, "deadline_hours"), (2, "major"), (3, "code")} <= got
    assert snapshot(store) == before


def test_missing_column(store, tiny):
    path = tiny["dir"] / "categories.csv"
    path.write_text("code,name,platform\nX,某,service\n", encoding="utf-8")
    expect_failure(store, [path], field="department", contains="required column is missing")


def test_staff_on_unknown_grid(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "staff.csv"
    path.write_text(f"code,name,phone,role,grid_code\nP9,赵六,13800000009,grid_head,{V2}009\n", encoding="utf-8")
    expect_failure(store, [path], field="grid_code", row=1, contains="not a known grid")


def test_failure_in_one_layer_writes_no_layer(store, tiny):
    """A batch with good divisions and bad households writes neither."""
    h = tiny["households"].copy()
    h.loc[4, "geometry"] = shapely.Point(X0 + 0.5, Y0 + 0.5)
    div = divisions_file(tiny)
    grids = broken(tiny, "grids", tiny["grids"], "grids.gpkg")
    hh = broken(tiny, "households", h, "households.gpkg")
    expect_failure(store, [div, grids, hh], field="geometry", row=5, contains="in no grid")
    assert store.is_empty()


def test_new_plan_ends_the_previous_one(store, tiny):
    load_tiny(store, tiny)
    path = broken(tiny, "grids", tiny["grids"], "grids2.gpkg")
    result = import_files(store, [path], plan_version="v2", effective_from=dt.date(2026, 1, 1))
    assert result.plan_version == "v2"
    plans = store.plans().set_index("version")
    assert plans.loc["v1", "effective_to"] == dt.date(2026, 1, 1)
    assert store.plan_in_force(dt.date(2025, 12, 31))["version"] == "v1"
    assert store.plan_in_force(dt.date(2026, 1, 1))["version"] == "v2"
    # An older effective date than the newest plan is refused.
    path3 = broken(tiny, "grids", tiny["grids"], "grids3.gpkg")
    with pytest.raises(ImportFailed, match="takes effect on or after"):
        import_files(store, [path3], plan_version="v3", effective_from=dt.date(2025, 6, 1))
    assert len(store.plans()) == 2


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp", ".parquet", ".csv"])
def test_export_reimport_every_format(store, tiny, suffix, tmp_path):
    """Every spatial layer survives export and import through every format."""
    load_tiny(store, tiny)
    out = tmp_path / f"out{suffix}"
    paths = []
    for layer in ("divisions", "grids", "households"):
        path = out.with_name(f"{layer}{suffix}")
        n = export_layer(store, layer, path)
        assert n == {"divisions": 4, "grids": 4, "households": 5}[layer]
        paths.append(path)
    report = validate_files(paths, crs="wgs84" if suffix == ".csv" else None)
    assert report.ok, report
    from gridgeo.io import read_sources

    sources, report = read_sources(paths, crs="wgs84" if suffix == ".csv" else None)
    assert report.ok, report
    by = {s.layer: s.frame for s in sources}
    g = by["grids"].sort_values("code")
    assert list(g["code"]) == sorted(tiny["grids"]["code"])
    norm = shapely.normalize
    assert shapely.equals_exact(norm(g.geometry.to_numpy()), norm(tiny["grids"].geometry.to_numpy()), 1e-7).all()
    assert list(by["households"]["code"].astype(str)) == [f"H{i:03d}" for i in range(1, 6)]


def test_export_tables_and_all(store, tiny, tmp_path):
    load_tiny(store, tiny)
    assert export_layer(store, "staff", tmp_path / "staff.csv") == 4
    back = pd.read_csv(tmp_path / "staff.csv", dtype=str)
    assert set(back["role"]) == {"grid_head", "full_time_worker", "instructor"}
    for layer in LAYERS:
        export_layer(store, layer, tmp_path / "all.gpkg")
    import pyogrio

    names = set(pyogrio.list_layers(tmp_path / "all.gpkg")[:, 0])
    assert names == set(LAYERS)


def test_unreadable_and_unknown_files(store, tiny):
    bad = tiny["dir"] / "grids.geojson"
    bad.write_text("{not json", encoding="utf-8")
    expect_failure(store, [bad], contains="cannot read the file")
    odd = tiny["dir"] / "stuff.csv"
    odd.write_text("a,b\n1,2\n", encoding="utf-8")
    expect_failure(store, [odd], contains="cannot tell which layer")
    expect_failure(store, [tiny["dir"] / "nope.gpkg"], contains="no such file")


# -- imports add or refuse; replacing says what it removes (issue 13, item 4) ----------


def staff_file(tiny, rows, name="staff.csv"):
    path = tiny["dir"] / name
    path.write_text("code,name,phone,role,grid_code\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


def roster(store, grid):
    s = store.read("staff")
    return sorted(s[s["grid_code"] == grid][["code", "role"]].itertuples(index=False, name=None))


def test_staff_import_adds_and_never_removes(store, tiny):
    """One row for a grid of six people used to replace the whole roster, silently."""
    load_tiny(store, tiny)
    before = roster(store, V1 + "001")
    path = staff_file(tiny, [f"P9,赵六,13800000009,part_time_worker,{V1}001"])
    result = import_files(store, [path])
    assert result.counts == {"staff": 1} and not result.removed
    assert roster(store, V1 + "001") == sorted(before + [("P9", "part_time_worker")])
    assert "removed" not in store.audit_log(entity="staff").iloc[-1]["detail"]
    # The same person again, in the same role on the same grid: refused, nothing written.
    hits = expect_failure(store, [path], field="code", row=1, contains="is already part_time_worker of grid")
    assert "--replace" in hits[0].message


def test_staff_replace_says_whom_it_removes(store, tiny):
    load_tiny(store, tiny)
    path = staff_file(tiny, [f"P9,赵六,13800000009,grid_head,{V1}001"])
    # Before anything is written, validation lists the people --replace would remove.
    report = validate_files([path], store=store, replace=True)
    said = sorted(p.message for p in report.warnings)
    assert said == [f"--replace removes 张三 (P1, grid_head) from grid {V1}001",
                    f"--replace removes 李四 (P2, full_time_worker) from grid {V1}001",
                    f"--replace removes 王五 (P3, instructor) from grid {V1}001"]
    assert len(store.read("staff")) == 4
    result = import_files(store, [path], replace=True)
    assert sorted(p.message for p in result.report.warnings) == said
    gone = {(r["code"], r["grid_code"]) for r in result.removed["staff"]}
    assert gone == {("P1", V1 + "001"), ("P2", V1 + "001"), ("P3", V1 + "001")}
    assert "removed: staff 3: 张三 (P1, grid_head)" in "\n".join(result.summary())
    assert roster(store, V1 + "001") == [("P9", "grid_head")]
    assert roster(store, V1 + "002") == [("P3", "instructor")]   # other grids keep their people
    detail = store.audit_log(entity="staff").iloc[-1]["detail"]
    assert detail["rows"] == 1
    assert {(r["code"], r["name"], r["role"], r["grid_code"]) for r in detail["removed"]} == {
        ("P1", "张三", "grid_head", V1 + "001"), ("P2", "李四", "full_time_worker", V1 + "001"),
        ("P3", "王五", "instructor", V1 + "001")}


def test_replace_of_other_layers_lists_what_it_overwrites(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "households.csv"
    path.write_text("code,address,lon,lat\nH001,某地,119.401,28.401\nH099,新地,119.402,28.402\n", encoding="utf-8")
    result = import_files(store, [path], crs="wgs84", replace=True)
    assert result.replaced == {"households": ["H001"]} and not result.removed
    assert store.audit_log(entity="households").iloc[-1]["detail"]["replaced"] == ["H001"]
    assert len(store.read("households")) == 6


def test_cli_import_prints_whom_replace_removes(store, tiny):
    from typer.testing import CliRunner

    from gridgeo.cli import app

    load_tiny(store, tiny)
    path = staff_file(tiny, [f"P9,赵六,13800000009,grid_head,{V1}001"])
    r = CliRunner().invoke(app, ["import", str(path), "--database", store.url])
    assert r.exit_code == 0 and "imported: staff 1" in r.output and "removed" not in r.output
    r = CliRunner().invoke(app, ["import", str(path), "--database", store.url])
    assert r.exit_code == 1 and "nothing was written" in r.output
    r = CliRunner().invoke(app, ["import", str(path), "--database", store.url, "--replace"])
    assert r.exit_code == 0, r.output
    assert "removed: staff 3" in r.output and "张三" in r.output and "李四" in r.output


def test_events_are_never_replaced_by_an_import(store, tiny):
    load_tiny(store, tiny)
    path = tiny["dir"] / "events.csv"
    path.write_text("code,source,category_code,reported_at,description,lon,lat\n"
                    "E1,app,ZZ001,2026-01-05T09:00:00+08:00,井盖缺失,119.402,28.402\n", encoding="utf-8")
    import_files(store, [path])
    expect_failure(store, [path], field="code", row=1, contains="an import does not replace events", replace=True)


# -- an empty plan (issue 13, item 5) --------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".csv"])
def test_empty_grids_layer_is_refused(store, tiny, suffix):
    """A grids layer with no features used to become a plan and end the one in force."""
    load_tiny(store, tiny)
    if suffix == ".gpkg":
        path = broken(tiny, "grids", tiny["grids"].iloc[:0], name="empty.gpkg")
    else:
        path = tiny["dir"] / "grids.csv"
        path.write_text("code,name,village_code,kind,wkt\n", encoding="utf-8")
    hits = expect_failure(store, [path], contains="has no features", plan_version="v2",
                          effective_from=dt.date(2025, 1, 1), crs="wgs84", layer="grids")
    assert hits[0].file.endswith(path.name)
    assert store.plan_in_force(dt.date(2025, 6, 1))["version"] == "v1"


def test_partial_plan_is_refused(store, tiny):
    """A plan leaving a village of the plan in force without grids is refused (a gap)."""
    load_tiny(store, tiny)
    path = broken(tiny, "grids", tiny["grids"][tiny["grids"]["village_code"] == V1], name="half.gpkg")
    expect_failure(store, [path], contains=f"gap: village {V2} has no grid at all",
                   plan_version="v2", effective_from=dt.date(2025, 1, 1))


def test_the_plan_life_cycle_refuses_an_empty_plan(store, tiny):
    """put_in_force, the one function that publishes (import and `plans publish`)."""
    from gridgeo.errors import InvalidPlan
    from gridgeo.plan.lifecycle import publish, put_in_force
    from gridgeo.store import schema

    load_tiny(store, tiny)
    with store.engine.begin() as conn:
        conn.execute(schema.plans.insert().values(version="draft-empty", name="空", status="draft",
                                                  created_at=dt.datetime.now(dt.timezone.utc)))
    with pytest.raises(InvalidPlan, match="has no grid"):
        publish(store, "draft-empty", dt.date(2025, 1, 1))
    with pytest.raises(InvalidPlan, match="has no grid"), store.engine.begin() as conn:
        put_in_force(conn, store, store.plan("draft-empty")["id"], dt.date(2025, 1, 1), version="x")
    # The plan API publishes through the same function.
    from fastapi.testclient import TestClient

    from helpers.authn import headers_for
    from gridgeo.api.deps import get_store
    from gridgeo.api.main import create_app

    api = create_app()
    api.dependency_overrides[get_store] = lambda: store
    with TestClient(api) as client:
        r = client.post("/v1/plans/draft-empty/publish", json={"effective_from": "2025-01-01"},
                        headers=headers_for(store, "admin"))
    assert r.status_code == 422 and "has no grid" in r.text, r.text
    assert store.plan_in_force(dt.date(2025, 6, 1))["version"] == "v1"


# -- field lengths (issue 13, item 8) ---------------------------------------------------


def test_every_text_column_has_a_limit_within_the_store():
    from gridgeo.layers import MAX_LENGTHS
    from gridgeo.store import schema

    for name, spec in LAYERS.items():
        text = {c.name for c in spec.columns if c.kind == "str"}
        assert set(MAX_LENGTHS[name]) == text, name
        for col, limit in MAX_LENGTHS[name].items():
            length = getattr(schema.LAYER_TABLES[name].c[col].type, "length", None)
            assert length is None or limit <= length, (name, col)


@pytest.mark.parametrize("layer", list(LAYERS))
def test_too_long_values_are_errors_with_row_and_field(layer):
    """Every text column of every layer: one character over its limit is an error."""
    from gridgeo.layers import MAX_LENGTHS
    from gridgeo.validate import Report, coerce

    spec = LAYERS[layer]
    for col, limit in MAX_LENGTHS[layer].items():
        frame = pd.DataFrame({c.name: ["1"] for c in spec.columns})
        frame[col] = ["x" * limit + "x"]
        frame.insert(0, "_row", [7])
        frame["_file"] = f"{layer}.csv"
        report = Report()
        coerce(frame, spec, report)
        hits = [p for p in report.errors if p.field == col and "more than" in p.message]
        assert len(hits) == 1 and hits[0].row == 7 and hits[0].file == f"{layer}.csv", (layer, col, report)
        assert hits[0].message == f"{limit + 1:,} characters, more than the {limit:,} allowed"


def test_huge_address_refused_with_a_short_message(store, tiny):
    """A 10 MB address used to be imported, then slowed every address lookup."""
    load_tiny(store, tiny)
    path = tiny["dir"] / "households.csv"
    huge = "地" * 10_000_000
    path.write_text(f"code,address,lon,lat\nH100,{huge},119.401,28.401\nH101,{'x' * 500},119.402,28.402\n"
                    f"{'C' * 70},某地,119.401,28.401\n", encoding="utf-8")
    hits = expect_failure(store, [path], field="address", row=1, crs="wgs84",
                          contains="10,000,000 characters, more than the 500 allowed")
    assert len(str(hits[0])) < 200
    expect_failure(store, [path], field="code", row=3, crs="wgs84", contains="more than the 64 allowed")
    path.write_text(f"code,address,lon,lat\nH101,{'x' * 500},119.402,28.402\n", encoding="utf-8")
    assert import_files(store, [path], crs="wgs84").counts == {"households": 1}


def test_event_intake_takes_the_same_limits():
    from gridgeo.errors import InvalidEvent
    from gridgeo.events.intake import EventIn, _validate
    from gridgeo.layers import MAX_LENGTHS

    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for name in ("description", "address", "reporter_name"):
        limit = MAX_LENGTHS["events"][name]
        _validate(EventIn(source="app", category_code="ZZ001", reported_at=now, **{name: "x" * limit}), now)
        with pytest.raises(InvalidEvent, match=f"{name} has more than {limit} characters"):
            _validate(EventIn(source="app", category_code="ZZ001", reported_at=now, **{name: "x" * (limit + 1)}), now)
