"""Lookups against the store, the lookup API and `gridgeo locate`, on both databases."""

from __future__ import annotations

import datetime as dt
import math
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from gridgeo.api.resources import _lookup_for
from helpers.tiny import D, V1, V2, X0, Y0
from gridgeo.cli import app as cli
from gridgeo.crs import convert
from gridgeo.errors import InvalidCoordinates, OutsideJurisdiction
from gridgeo.io import import_files
from gridgeo.lookup import MAX_BATCH, Lookup

M_PER_DEG_LON = 111_320 * math.cos(math.radians(Y0 + D / 2))


@pytest.fixture
def loaded(store, tiny):
    import_files(store, [tiny["gpkg"], tiny["staff"], tiny["categories"]],
                 plan_version="v1", effective_from=dt.date(2024, 1, 1))
    return store


@pytest.fixture
def lookup(loaded, tmp_path):
    return Lookup(loaded, cache_dir=tmp_path / "cache")


@pytest.fixture
def client(loaded):
    _lookup_for.cache_clear()
    app = create_app()
    app.dependency_overrides[get_store] = lambda: loaded
    with TestClient(app) as c:
        yield c


def test_one_point_with_its_village_township_and_staff(lookup):
    got = lookup.one(X0 + 0.002, Y0 + 0.005)
    assert got["grid"]["code"] == V1 + "001" and got["grid"]["name"] == "东村一网格"
    assert got["village"] == {"code": V1, "name": "东村"}
    assert got["township"] == {"code": "331124201", "name": "测试乡"}
    assert got["staff"]["grid_head"]["name"] == "张三"
    assert [w["name"] for w in got["staff"]["workers"]] == ["李四"]
    assert got["staff"]["instructor"]["name"] == "王五"
    assert got["plan_version"] == "v1" and got["snapped"] is False and got["distance_m"] == 0
    # A grid with no staff says so rather than failing.
    east = lookup.one(X0 + 0.018, Y0 + 0.005)
    assert east["grid"]["code"] == V2 + "002"
    assert east["staff"] == {"grid_head": None, "workers": [], "instructor": None}


def test_shared_edge_goes_to_one_grid_always_the_same(lookup):
    # On the edge between V1 001 and V1 002: the grid east of it (the locator's rule).
    x = X0 + D / 2
    assert lookup.one(x, Y0 + 0.004)["grid"]["code"] == V1 + "002"
    many = lookup.many(np.full(3, x), np.array([Y0 + 0.001, Y0 + 0.004, Y0 + 0.009]))
    assert list(many["grid_code"]) == [V1 + "002"] * 3


def test_snapping_and_outside(lookup):
    lat = Y0 + 0.005
    near = lookup.one(X0 - 20 / M_PER_DEG_LON, lat)
    assert near["snapped"] and near["grid"]["code"] == V1 + "001"
    assert abs(near["distance_m"] - 20) < 0.5
    with pytest.raises(OutsideJurisdiction, match="50 m"):
        lookup.one(X0 - 200 / M_PER_DEG_LON, lat)
    tight = Lookup(lookup.store, cache_dir=None, tolerance=10)
    with pytest.raises(OutsideJurisdiction):
        tight.one(X0 - 20 / M_PER_DEG_LON, lat)


def test_invalid_and_swapped(lookup):
    for lon, lat in [(math.nan, 28.4), (math.inf, 28.4), (200.0, 28.4), (119.4, 95.0)]:
        with pytest.raises(InvalidCoordinates):
            lookup.one(lon, lat)
    with pytest.raises(InvalidCoordinates, match="swapped"):
        lookup.one(Y0 + 0.005, X0 + 0.002)


def test_gcj02_and_bd09_input(lookup):
    lon, lat = X0 + 0.013, Y0 + 0.004
    for name in ("gcj02", "bd09"):
        glon, glat = convert(lon, lat, "wgs84", name)
        assert lookup.one(float(glon), float(glat), crs=name)["grid"]["code"] == V2 + "001"
    # Taken as WGS84, the GCJ-02 coordinates land ~500 m away, in the wrong grid.
    glon, glat = convert(lon, lat, "wgs84", "gcj02")
    assert 300 < (float(glon) - lon) * M_PER_DEG_LON < 700
    assert lookup.one(float(glon), float(glat))["grid"]["code"] == V2 + "002"


def test_versioned_lookup_says_which_plan_answered(lookup, tiny):
    # Plan v2, from 2026-01-01: each village is a single grid.
    merged = tiny["grids"].dissolve("village_code", as_index=False)
    merged = merged.assign(code=merged["village_code"] + "001", name=["东村网格", "西村网格"], kind="basic")
    path = tiny["dir"] / "grids_v2.gpkg"
    merged[["code", "name", "village_code", "kind", "geometry"]].to_file(path, layer="grids")
    import_files(lookup.store, [path], plan_version="v2", effective_from=dt.date(2026, 1, 1))
    pt = (X0 + 0.007, Y0 + 0.005)
    old = lookup.one(*pt, at=dt.date(2025, 12, 31))
    new = lookup.one(*pt, at=dt.date(2026, 1, 1))
    assert (old["plan_version"], old["grid"]["code"]) == ("v1", V1 + "002")
    assert (new["plan_version"], new["grid"]["code"]) == ("v2", V1 + "001")
    with pytest.raises(OutsideJurisdiction, match="no grid plan is in force on 2023-01-01"):
        lookup.one(*pt, at=dt.date(2023, 1, 1))


def test_many_is_vectorised_and_flags_why(lookup):
    lon = np.array([X0 + 0.002, X0 + 0.013, X0 - 0.5, math.nan, Y0 + 0.005])
    lat = np.array([Y0 + 0.005, Y0 + 0.004, Y0, 28.4, X0 + 0.002])
    got = lookup.many(lon, lat)
    assert list(got["grid_code"]) == [V1 + "001", V2 + "001", None, None, None]
    assert list(got["village_name"][:2]) == ["东村", "西村"]
    assert list(got["outside"]) == [False, False, True, True, True]
    assert list(got["invalid"]) == [False, False, False, True, True]  # lat 119.4 is out of range
    assert list(got["swapped"]) == [False, False, False, False, True]
    assert got.attrs["plan_version"] == "v1"


def test_locator_is_cached_on_disk_for_new_workers(lookup, tmp_path):
    lookup.one(X0 + 0.002, Y0 + 0.005)
    files = list((tmp_path / "cache").glob("locator-v1-*.npz"))
    assert len(files) == 1
    fresh = Lookup(lookup.store, cache_dir=tmp_path / "cache")
    plan = fresh.plan_at()
    loc = fresh.locator(plan)
    assert loc.plan == "v1" and len(loc) == 4
    assert fresh.one(X0 + 0.002, Y0 + 0.005)["grid"]["code"] == V1 + "001"


# -- the HTTP API ---------------------------------------------------------------------


def test_get_lookup(client):
    r = client.get("/v1/lookup", params={"lon": X0 + 0.002, "lat": Y0 + 0.005})
    assert r.status_code == 200
    body = r.json()
    assert body["grid"]["code"] == V1 + "001" and body["plan_version"] == "v1"
    assert body["village"]["name"] == "东村" and body["staff"]["grid_head"]["name"] == "张三"


def test_get_lookup_fast_path_answers_as_the_route(client, loaded):
    """Plain lookups are answered by gridgeo.api.fastpath.FastLookup without FastAPI's
    routing; an ``at=`` sends the same lookup through the route: the bodies must match."""
    from gridgeo.crs import convert
    from gridgeo.store import today

    points = [(X0 + 0.002, Y0 + 0.005, None), (X0 + 0.013, Y0 + 0.004, "wgs84"),
              (X0 + 0.01, Y0 + 0.005, None),  # on the shared edge: the east rule
              (X0 - 0.0003, Y0 + 0.005, None)]  # outside but within 50 m: snapped
    glon, glat = convert(X0 + 0.018, Y0 + 0.007, "wgs84", "gcj02")
    points.append((float(glon), float(glat), "gcj02"))
    for lon, lat, crs in points:
        q = {"lon": repr(lon), "lat": repr(lat), **({"crs": crs} if crs else {})}
        fast = client.get("/v1/lookup", params=q)
        routed = client.get("/v1/lookup", params={**q, "at": today().isoformat()})
        assert fast.status_code == routed.status_code == 200
        assert fast.json() == routed.json() and fast.headers["content-type"] == "application/json"
    assert client.get("/v1/lookup", params={"lon": repr(X0 - 0.0003), "lat": repr(Y0 + 0.005)}).json()["snapped"]
    # what the fast path does not take goes to the route, and gets the route's answer
    for q in ({"lon": "11_9.4", "lat": Y0}, {"lon": " 119.4", "lat": Y0}, {"lon": X0, "lon2": 1, "lat": Y0},
              {"lon": X0, "lat": Y0, "crs": ""}, {"lon": "nan", "lat": Y0}, {"lon": X0 - 0.5, "lat": Y0}):
        r = client.get("/v1/lookup", params=q)
        routed = client.get("/v1/lookup", params={**q, "at": today().isoformat()})
        assert (r.status_code, r.json()) == (routed.status_code, routed.json()), q
        assert r.headers["content-type"] == routed.headers["content-type"], q
    # and the metrics count the fast answers under the route's template
    text = client.get("/metrics").text
    assert 'gridgeo_http_requests_total{method="GET",route="/v1/lookup",status="200"}' in text


def _fallthroughs(client) -> dict[str, float]:
    """gridgeo_lookup_fallthroughs_total by reason, from /metrics."""
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("gridgeo_lookup_fallthroughs_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('reason="', 1)[1].split('"', 1)[0]] = float(value)
    return out


def test_fast_path_fallthroughs_are_counted_by_reason(client):
    inside = {"lon": X0 + 0.002, "lat": Y0 + 0.005}
    assert client.get("/v1/lookup", params=inside).status_code == 200
    assert _fallthroughs(client) == {}  # a fast answer is no fall-through
    assert client.get("/v1/lookup", params={**inside, "at": "2024-06-01"}).status_code == 200
    assert client.get("/v1/lookup", params={"lon": "nan", "lat": Y0}).status_code == 422
    assert client.get("/v1/lookup", params={"lon": X0 - 0.5, "lat": Y0}).status_code == 404
    assert client.get("/v1/lookup", params={**inside, "crs": "mars"}).status_code == 422
    assert client.get("/v1/lookup", params={"lon": Y0 + 0.005, "lat": X0 + 0.002}).status_code == 422
    assert client.get("/v1/lookup?lon=1&lat").status_code == 422  # strict parsing: a field without "="
    assert client.get("/v1/lookup", params={"lon": X0 - 0.5, "lat": Y0}).status_code == 404
    assert _fallthroughs(client) == {"query": 3.0, "outside-jurisdiction": 2.0, "unknown-crs": 1.0,
                                     "invalid-coordinates": 1.0}


def test_fast_path_lets_bugs_raise(loaded):
    """Only the exceptions that mean "the route answers this" fall through: a bug in the
    lookup (here a store that is not one) raises instead of being retried by the route."""
    app = create_app()
    app.dependency_overrides[get_store] = lambda: "not a store"
    with TestClient(app) as client, pytest.raises(AttributeError):
        client.get("/v1/lookup", params={"lon": X0 + 0.002, "lat": Y0 + 0.005})


@pytest.mark.parametrize(
    ("params", "status", "type_", "words"),
    [
        ({"lon": X0 - 0.5, "lat": Y0}, 404, "outside-jurisdiction", "no grid of plan"),
        ({"lon": "nan", "lat": Y0}, 422, "invalid-coordinates", ""),
        ({"lon": 200, "lat": Y0}, 422, "invalid-coordinates", ""),
        ({"lon": Y0 + 0.005, "lat": X0 + 0.002}, 422, "invalid-coordinates", "swapped"),
        ({"lon": X0, "lat": Y0, "crs": "mars"}, 422, "unknown-crs", "mars"),
        ({"lon": "east", "lat": Y0}, 422, "invalid-request", "lon"),
        ({"lat": Y0}, 422, "invalid-request", "lon"),
        ({"lon": X0 + 0.002, "lat": Y0 + 0.005, "at": "2020-01-01"}, 404, "outside-jurisdiction", "no grid plan"),
    ],
)
def test_get_lookup_errors_are_problems(client, params, status, type_, words):
    r = client.get("/v1/lookup", params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == f"/problems/{type_}" and words in body["detail"]


def test_post_lookup_shapes(client):
    pts = [[X0 + 0.002, Y0 + 0.005], [X0 + 0.013, Y0 + 0.004], [X0 - 0.5, Y0]]
    a = client.post("/v1/lookup", json={"points": pts}).json()
    b = client.post("/v1/lookup", json={"lon": [p[0] for p in pts], "lat": [p[1] for p in pts]}).json()
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": f"p{i}", "properties": {}, "geometry": {"type": "Point", "coordinates": p}}
        for i, p in enumerate(pts)]}
    c = client.post("/v1/lookup", json=fc).json()
    for body in (a, b, c):
        assert body["plan_version"] == "v1" and body["count"] == 3 and body["located"] == 2
        assert [r["grid_code"] for r in body["results"]] == [V1 + "001", V2 + "001", None]
    assert [r["id"] for r in c["results"]] == ["p0", "p1", "p2"]
    gcj = np.column_stack(convert(np.array(pts)[:2, 0], np.array(pts)[:2, 1], "wgs84", "gcj02")).tolist()
    d = client.post("/v1/lookup", params={"crs": "gcj02"}, json={"points": gcj}).json()
    assert [r["grid_code"] for r in d["results"]] == [V1 + "001", V2 + "001"]


def test_post_lookup_refuses_bad_bodies(client):
    r = client.post("/v1/lookup", json={"points": [[X0, Y0]] * (MAX_BATCH + 1)})
    assert r.status_code == 413 and "100,000" in r.json()["detail"]
    for body, words in [
        ({"points": [[X0, "north"]]}, "points[0]"),
        ({"lon": [1, 2], "lat": [1]}, "same length"),
        ({"type": "FeatureCollection", "features": [{"geometry": {"type": "Polygon"}}]}, "features[0]"),
        ({"nothing": 1}, "give points"),
        ([1, 2], "body"),
        # what the columnar readers refuse goes to the plain reader, which names the place
        ({"points": [[X0, Y0], [X0, True]]}, "points[1]"),
        ({"points": [[X0, Y0], [X0]]}, "points[1]"),
        ({"points": [[X0, None]]}, "points[0]"),
        ({"lon": [X0, "east"], "lat": [Y0, Y0]}, "numbers"),
        ({"type": "FeatureCollection", "features": [
            {"geometry": {"type": "Point", "coordinates": [X0, Y0]}},
            {"geometry": {"type": "Point", "coordinates": [X0]}}]}, "features[1]"),
        ({"type": "FeatureCollection", "features": [{"geometry": {"type": "Point", "coordinates": ["a", 1]}}]},
         "features[0]"),
        ({"type": "FeatureCollection", "features": [{"properties": {}}]}, "features[0]"),
    ]:
        r = client.post("/v1/lookup", json=body)
        assert r.status_code == 422, (body, r.text)
        assert words in r.json()["detail"]


BATCH = [[X0 + 0.002, Y0 + 0.005], [X0 + 0.018, Y0 + 0.005], [X0 - 0.0003, Y0 + 0.005],  # snapped
         [X0 - 0.5, Y0], [X0, 119.4]]  # outside; invalid


def test_post_lookup_answer_forms(client):
    """Every answer form says the same about each point; the default keeps its shape."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from gridgeo.lookup import MANY_COLUMNS

    records = client.post("/v1/lookup", json={"points": BATCH}).json()
    assert [list(r) for r in records["results"]] == [list(MANY_COLUMNS)] * len(BATCH)
    assert [r["grid_code"] for r in records["results"]] == [V1 + "001", V2 + "002", V1 + "001", None, None]
    assert [r["snapped"] for r in records["results"]] == [False, False, True, False, False]
    assert 0 < records["results"][2]["distance_m"] < 50 and records["results"][3]["distance_m"] is None
    assert [r["invalid"] for r in records["results"]] == [False] * 4 + [True]
    expected = {c: [r[c] for r in records["results"]] for c in MANY_COLUMNS}

    got = client.post("/v1/lookup", params={"format": "columns"}, json={"points": BATCH}).json()
    assert {k: got[k] for k in ("plan_version", "count", "located")} == {"plan_version": "v1", "count": 5, "located": 3}
    assert {c: got["columns"][c] for c in MANY_COLUMNS} == expected
    assert got["columns"]["grid_head_name"][0] == "张三" and got["columns"]["grid_head_name"][3] is None

    r = client.post("/v1/lookup", headers={"Accept": "application/geo+json"}, json={"points": BATCH})
    assert r.headers["content-type"] == "application/geo+json"
    features = r.json()["features"]
    assert [f["geometry"]["coordinates"] for f in features] == BATCH
    assert {c: [f["properties"][c] for f in features] for c in MANY_COLUMNS} == expected

    r = client.post("/v1/lookup", headers={"Accept": "text/csv"}, json={"points": BATCH})
    assert r.headers["content-type"].startswith("text/csv") and r.content.startswith("\ufeff".encode())
    table = pd.read_csv(io.StringIO(r.content.decode("utf-8-sig")), dtype=str, keep_default_na=False)
    assert list(table["grid_code"]) == [c or "" for c in expected["grid_code"]]
    assert list(table["village_name"])[:2] == ["东村", "西村"]
    assert table["lon"].astype(float).tolist() == [p[0] for p in BATCH]

    for accept, read in [("application/vnd.apache.parquet", lambda b: pq.read_table(io.BytesIO(b))),
                         ("text/csv;q=0.5, application/vnd.apache.arrow.stream",
                          lambda b: pa.ipc.open_stream(b).read_all())]:
        r = client.post("/v1/lookup", headers={"Accept": accept}, json={"points": BATCH})
        table = read(r.content)
        assert table.schema.metadata[b"plan_version"] == b"v1"
        for c in MANY_COLUMNS:
            assert table[c].to_pylist() == expected[c], (accept, c)
    # format= wins over Accept; an unknown one is refused
    r = client.post("/v1/lookup", params={"format": "json"}, headers={"Accept": "text/csv"}, json={"points": BATCH})
    assert r.json()["results"] == records["results"]
    assert client.post("/v1/lookup", params={"format": "xml"}, json={"points": BATCH}).status_code == 422
    for form in ("json", "columns", "geojson", "csv", "parquet", "arrow"):  # no points at all
        assert client.post("/v1/lookup", params={"format": form}, json={"points": []}).status_code == 200


def test_post_lookup_feature_ids_by_either_reader(client):
    """A FeatureCollection is read into columns by Arrow, or by the plain reader when
    its ids mix types: the answers are the same, each feature's id echoed as given."""
    import io

    from gridgeo.api.batch import _features_by_arrow, parse_body

    def fc(ids, where="id", crs=None):
        feats = [{"type": "Feature", "properties": {"名称": "商铺", **({"id": i} if where == "properties" else {})},
                  **({"id": i} if where == "id" and i is not None else {}),
                  "geometry": {"type": "Point", "coordinates": p}} for i, p in zip(ids, BATCH)]
        return {"type": "FeatureCollection", **({"crs": crs} if crs else {}), "features": feats}

    import orjson

    plain = client.post("/v1/lookup", json={"points": BATCH}).json()["results"]
    cases = [
        (["a", 'quo"te', "back\\slash", "户1", "ctl\x01x"], "id", True),
        ([1, 2, 3, 4, 5], "id", True),
        (["p0", "p1", "p2", "p3", "p4"], "properties", True),
        ([1, "b", None, 2.5, {"k": 1}], "id", False),  # mixed: the plain reader
    ]
    for ids, where, columnar in cases:
        body = fc(ids, where)
        assert (_features_by_arrow(orjson.dumps(body)) is not None) == columnar, ids
        got = client.post("/v1/lookup", json=body).json()["results"]
        assert [r.pop("id") for r in got] == ids
        assert got == plain
    # a GeoJSON crs member, read by both readers alike
    gcj = np.column_stack(convert(np.array(BATCH)[:3, 0], np.array(BATCH)[:3, 1], "wgs84", "gcj02")).tolist()
    body = fc(["x", "y", "z"], crs={"type": "name", "properties": {"name": "gcj02"}})
    for feature, p in zip(body["features"], gcj):
        feature["geometry"]["coordinates"] = p
    assert parse_body(orjson.dumps(body)).crs == "gcj02"
    codes = [r["grid_code"] for r in client.post("/v1/lookup", json=body).json()["results"]]
    assert codes == [V1 + "001", V2 + "002", V1 + "001"]
    # ids a spreadsheet would run are quoted in CSV only
    body = fc(["=HYPERLINK(\"x\")", "-12.5", "@a", "ok", "+86 1"])
    r = client.post("/v1/lookup", params={"format": "csv"}, json=body)
    table = pd.read_csv(io.StringIO(r.content.decode("utf-8-sig")), dtype=str, keep_default_na=False)
    assert list(table["id"]) == ["'=HYPERLINK(\"x\")", "-12.5", "'@a", "ok", "'+86 1"]
    assert [r["id"] for r in client.post("/v1/lookup", json=body).json()["results"]][0] == '=HYPERLINK("x")'


def test_post_lookup_of_the_sample(sample_store):
    _lookup_for.cache_clear()
    app = create_app()
    app.dependency_overrides[get_store] = lambda: sample_store
    households = sample_store.read("households")
    with TestClient(app) as c:
        body = c.post("/v1/lookup", json={"lon": households.geometry.x.tolist(),
                                           "lat": households.geometry.y.tolist()}).json()
    assert body["count"] == len(households) == body["located"]
    got = pd.Series([r["village_code"] for r in body["results"]])
    assert (got.to_numpy() == households["village_code"].to_numpy()).all()


# -- the CLI --------------------------------------------------------------------------


def test_locate_command_csv_gcj02(loaded, tmp_path):
    url = loaded.url
    lon, lat = convert(np.array([X0 + 0.002, X0 + 0.013, X0 - 0.5]), np.array([Y0 + 0.005, Y0 + 0.004, Y0]),
                       "wgs84", "gcj02")
    src = tmp_path / "points.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "lon": lon, "lat": lat}).to_csv(src, index=False)
    out = tmp_path / "located.csv"
    r = CliRunner().invoke(cli, ["locate", str(src), "--crs", "gcj02", "--out", str(out), "--database", url])
    assert r.exit_code == 0, r.output
    assert "3 points, 2 in a grid" in r.output
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(got["id"]) == ["a", "b", "c"]
    assert list(got["grid_code"]) == [V1 + "001", V2 + "001", ""]
    assert list(got["village_name"])[:2] == ["东村", "西村"]
    # CSV without --crs is refused: a CSV declares no coordinate system.
    r = CliRunner().invoke(cli, ["locate", str(src), "--out", str(out), "--database", url])
    assert r.exit_code == 2 and "--crs" in r.output


def test_locate_command_geoparquet(loaded, tmp_path):
    pts = gpd.GeoDataFrame({"id": [1, 2]}, geometry=[shapely.Point(X0 + 0.002, Y0 + 0.005),
                                                       shapely.Point(X0 + 0.018, Y0 + 0.005)], crs=4326)
    src = tmp_path / "points.parquet"
    pts.to_parquet(src)
    out = tmp_path / "located.gpkg"
    r = CliRunner().invoke(cli, ["locate", str(src), "--out", str(out), "--database", loaded.url])
    assert r.exit_code == 0, r.output
    got = gpd.read_file(out)
    assert list(got["grid_code"]) == [V1 + "001", V2 + "002"] and got.crs.to_epsg() == 4326


def test_a_lookup_makes_the_answer_of_its_grid_only(sample_store):
    """A point's answer is made for its grid when first asked (a province's 100,000 answers
    made at once took longer than the directory's TTL, so every lookup paid for all of
    them), and it names that grid's staff as the roster has them, in staff-code order."""
    lk = Lookup(sample_store, cache_dir=None)
    grids = sample_store.read("grids")
    staff = sample_store.read("staff").sort_values("code")
    picked = grids.iloc[[3, 40]]
    for geom, code in zip(picked.geometry, picked["code"]):
        p = geom.representative_point()
        answer = lk.one(p.x, p.y)
        assert answer["grid"]["code"] == code
        mine = staff[staff["grid_code"] == code]
        workers = mine[mine["role"].isin(["full_time_worker", "part_time_worker"])]["name"].tolist()
        assert [w["name"] for w in answer["staff"]["workers"]] == workers
        heads = mine[mine["role"] == "grid_head"]["name"].tolist()
        assert (answer["staff"]["grid_head"] or {}).get("name") == (heads[0] if heads else None)
    plan = lk.plan_at()
    assert sorted(lk._answers[plan["id"]][1]) == sorted(picked["code"])


def test_a_slow_directory_is_read_again_in_the_background(loaded):
    """When a directory that was slow to read expires, the lookup that finds it answers at
    once from the rows it has and a thread reads them again (a province's read took the
    request 3-4 s); the lookups after that read see the roster's change. A quick read is
    still made in the request, so a small county sees a change at the first lookup."""
    from sqlalchemy import update

    from gridgeo.store import schema

    lk = Lookup(loaded, cache_dir=None, directory_ttl=0.0)
    point = (X0 + 0.002, Y0 + 0.005)
    plan = lk.plan_at()

    def head() -> str:
        return lk.one(*point)["staff"]["grid_head"]["name"]

    def rename(old: str, new: str) -> None:
        with loaded.engine.begin() as conn:
            conn.execute(update(schema.staff).where(schema.staff.c.name == old).values(name=new))

    def expire() -> None:  # past the TTL and ten times the last read's time
        read_at, _, took = lk._directories[plan["id"]]
        while time.monotonic() - read_at <= 10 * took:
            time.sleep(0.01)

    assert head() == "张三"
    rename("张三", "张三丰")
    expire()
    assert head() == "张三丰"  # a quick read: made in the request
    assert not lk._refreshing

    lk.background_after_s = 0.0  # every read counts as slow
    rename("张三丰", "张三")
    expire()
    assert head() == "张三丰"  # answered from the rows it had
    assert plan["id"] in lk._refreshing
    lk.wait_refreshed(10)
    assert head() == "张三"
    batch = lk.batch([point[0]], [point[1]])
    assert batch.table()["grid_head_name"][0].as_py() == "张三"
