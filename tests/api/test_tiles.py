"""Vector tiles (/tiles/{layer}/{z}/{x}/{y}.mvt) on both databases: the features a tile
holds are those that meet it, with their attributes; cached; hostile addresses refused."""

from __future__ import annotations

import datetime as dt
import math

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import shapely.geometry
from fastapi.testclient import TestClient

from gridgeo.io import import_files
from helpers.apps import app_for
from helpers.tiny import D, X0, Y0


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _lonlat_box(z: int, x: int, y: int) -> shapely.Polygon:
    """The tile's bounds in lon/lat (an independent formula: the inverse Web Mercator)."""
    n = 2**z

    def lat(t):
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * t / n))))

    return shapely.box(x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y))


@pytest.fixture
def client(sample_store, monkeypatch):
    from gridgeo.tiles import clear_cache

    clear_cache()
    with TestClient(app_for(sample_store, monkeypatch)) as c:
        yield c
    clear_cache()


def test_a_tile_holds_the_grids_that_meet_it_with_their_attributes(client, sample_store):
    from gridgeo.tiles import CACHE

    grids = sample_store.read("grids")
    c = grids.geometry.union_all().centroid
    z = 14
    x, y = _tile_of(c.x, c.y, z)
    r = client.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = mapbox_vector_tile.decode(r.content)["grids"]
    assert layer["extent"] == 4096
    got = {f["properties"]["code"]: f["properties"] for f in layer["features"]}
    box = _lonlat_box(z, x, y)
    inner = shapely.buffer(box, -1e-5)  # the buffer: grids just outside may come in; these must
    must = set(grids.loc[shapely.intersects(grids.geometry.to_numpy(), inner), "code"])
    may = set(grids.loc[shapely.intersects(grids.geometry.to_numpy(), shapely.buffer(box, 0.002)), "code"])
    assert must and must <= set(got) <= may
    row = grids.set_index("code").loc[sorted(must)[0]]
    props = got[sorted(must)[0]]
    assert props["households"] == row["households"] and props["village_code"] == row["village_code"]
    assert props["name"] == row["name"]
    # geometry in tile units: polygons within the buffered extent
    assert {f["geometry"]["type"] for f in layer["features"]} <= {"Polygon", "MultiPolygon"}
    xy = np.concatenate([np.asarray(shapely.get_coordinates(shapely.geometry.shape(f["geometry"])))
                         for f in layer["features"]])
    assert xy.min() >= -64 and xy.max() <= 4096 + 64 and xy.max() > 3000
    # from the cache the second time, the same bytes
    hits = CACHE.hits
    assert client.get(f"/tiles/grids/{z}/{x}/{y}.mvt").content == r.content and CACHE.hits == hits + 1
    # roads and villages too; a tile far away is empty
    roads = mapbox_vector_tile.decode(client.get(f"/tiles/roads/{z - 2}/{x >> 2}/{y >> 2}.mvt").content)
    assert {f["properties"]["kind"] for f in roads["roads"]["features"]} == {"road", "river"}
    villages = mapbox_vector_tile.decode(client.get(f"/tiles/villages/{z}/{x}/{y}.mvt").content)
    assert villages["villages"]["features"]
    assert client.get("/tiles/grids/14/0/0.mvt").content == b""


@pytest.mark.parametrize("url, status", [
    ("/tiles/grids/23/0/0.mvt", 422),                # beyond the deepest zoom
    ("/tiles/grids/" + "9" * 30 + "/0/0.mvt", 422),  # a huge z
    ("/tiles/grids/3/8/0.mvt", 404),                 # x beyond 2^z - 1
    ("/tiles/grids/3/0/8.mvt", 404),
    ("/tiles/grids/-1/0/0.mvt", 422),
    ("/tiles/buildings/3/0/0.mvt", 404),             # no such layer
    ("/tiles/grids/a/b/c.mvt", 422),
    ("/tiles/grids/3/0/0.png", 404),
    ("/tiles/..%2F..%2Fetc/3/0/0.mvt", 404),
    ("/tiles/grids/3/0/0.mvt?plan=no-such-plan", 404),
])
def test_hostile_tile_addresses(client, url, status):
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:200])


# -- light tiles: below DETAIL_ZOOM each grid is its code (the feature id) and an outline ----

def _codes(layer) -> list[str]:
    return [f"{f['id']:015d}" for f in layer["features"]]


@pytest.mark.parametrize("z", [4, 8, 11])
def test_light_tiles_keep_every_grid_code(client, sample_store, z):
    """Zoomed out, a grid tile carries no attributes but every grid that meets it, by its code
    as the feature id, however small the grid is at that zoom (at 4 a grid is under a unit)."""
    from gridgeo.tiles import DETAIL_ZOOM

    assert z < DETAIL_ZOOM
    grids = sample_store.read("grids")
    assert "geometry" not in sample_store.read("grids", geometry=False).columns
    x0, y0, x1, y1 = grids.total_bounds
    seen: dict[str, int] = {}
    (tx0, ty1), (tx1, ty0) = _tile_of(x0, y0, z), _tile_of(x1, y1, z)
    for x in range(tx0, tx1 + 1):
        for y in range(ty0, ty1 + 1):
            r = client.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
            assert r.status_code == 200
            layer = mapbox_vector_tile.decode(r.content)["grids"]
            assert all(f["properties"] == {} for f in layer["features"])
            assert {f["geometry"]["type"] for f in layer["features"]} <= {"Polygon", "MultiPolygon"}
            for f in layer["features"]:
                g = shapely.geometry.shape(f["geometry"])
                assert g.area > 0
            codes = _codes(layer)
            assert len(codes) == len(set(codes))
            must = set(grids.loc[shapely.intersects(grids.geometry.to_numpy(),
                                                    shapely.buffer(_lonlat_box(z, x, y), -1e-5)), "code"])
            assert must <= set(codes) <= set(grids["code"])
            for c in codes:
                seen[c] = seen.get(c, 0) + 1
    assert set(seen) == set(grids["code"])
    # light tiles are smaller than the detailed tiles over the same ground
    z2 = DETAIL_ZOOM
    x, y = _tile_of(*grids.geometry.union_all().centroid.coords[0], z2)
    detail = mapbox_vector_tile.decode(client.get(f"/tiles/grids/{z2}/{x}/{y}.mvt").content)["grids"]
    assert {"code", "name", "households"} <= set(detail["features"][0]["properties"])
    assert all(f"{f['id']:015d}" == f["properties"]["code"] for f in detail["features"])


def test_roads_and_villages_are_light_when_zoomed_out(client, sample_store):
    """Below DETAIL_ZOOM roads and village outlines are simplified to a tile unit and carry
    only what a zoomed-out map draws them by (kind and rank; the village code)."""
    from gridgeo.tiles import DETAIL_ZOOM, LIGHT_ATTRS

    roads = sample_store.read("roads")
    x0, y0, x1, y1 = roads.total_bounds
    for layer, z in (("roads", 9), ("villages", 9), ("roads", DETAIL_ZOOM)):
        tiles = {_tile_of(x0, y0, z), _tile_of(x1, y1, z), _tile_of(x0, y1, z), _tile_of(x1, y0, z)}
        feats = [f for x, y in tiles for f in mapbox_vector_tile.decode(
            client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt").content).get(layer, {}).get("features", [])]
        assert feats, (layer, z)
        keys = set().union(*(f["properties"] for f in feats))
        if z < DETAIL_ZOOM:
            assert keys <= set(LIGHT_ATTRS[layer]) and keys, (layer, keys)
            if layer == "roads":
                assert {f["properties"]["kind"] for f in feats} == {"road", "river"}
                light = sum(len(shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))) for f in feats)
                assert light < shapely.get_num_coordinates(roads.geometry.to_numpy()).sum()
        else:
            assert {"name", "kind", "rank"} <= keys


def test_the_numpy_encoder_writes_what_the_decoder_reads():
    """encode_polygons against mapbox-vector-tile's decoder: ids, rings and holes, winding
    (exterior clockwise in tile coordinates), a feature collapsing to nothing left out."""
    from gridgeo.tiles import EXTENT, encode_polygons

    bounds = (0.0, 0.0, 4096.0, 4096.0)  # one metre per unit: tile y runs down from 4096
    square = shapely.box(100, 100, 1100, 1100)
    holed = shapely.Polygon([(2000, 2000), (3000, 2000), (3000, 3000), (2000, 3000)],
                            [[(2200, 2200), (2200, 2800), (2800, 2800), (2800, 2200)]])
    multi = shapely.MultiPolygon([shapely.box(100, 3000, 400, 3300), shapely.box(500, 3000, 800, 3300)])
    speck = shapely.box(3500, 100, 3500.2, 100.2)  # under a unit: nothing left
    cw = shapely.Polygon([(3500, 500), (3500, 900), (3900, 900), (3900, 500)])  # given clockwise
    ids = np.array([331124002001001, 2, 3, 4, 5], dtype=np.uint64)
    data = encode_polygons("grids", np.array([square, holed, multi, speck, cw]), ids, bounds)
    layer = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})["grids"]
    assert layer["extent"] == EXTENT and layer["version"] == 2
    got = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in layer["features"]}
    assert sorted(got) == [2, 3, 5, 331124002001001]
    flipped = {k: shapely.transform(g, lambda xy: np.column_stack([xy[:, 0], 4096 - xy[:, 1]]))
               for k, g in got.items()}
    for k, want in [(331124002001001, square), (2, holed), (3, multi), (5, cw)]:
        assert flipped[k].is_valid and abs(flipped[k].area - want.area) < 1e-6, k
        assert flipped[k].symmetric_difference(want).area < 1e-6, k
    assert isinstance(got[3], shapely.MultiPolygon) and len(got[2].interiors) == 1
    assert encode_polygons("grids", np.array([speck]), ids[:1], bounds) == b""
    assert encode_polygons("grids", np.array([], dtype=object), ids[:0], bounds) == b""


def test_warming_fills_the_cache_with_the_opening_tiles(sample_store):
    from gridgeo.tiles import CACHE, clear_cache, warm

    clear_cache()
    assert warm(sample_store, min_grids=52) == 0  # a map of 52 grids is drawn inline: nothing to warm
    made = warm(sample_store, min_grids=10, max_tiles=4)
    assert made >= 12 and CACHE.size > 0  # zooms 0-11 over a township: one to four tiles each
    clear_cache()


@pytest.mark.parametrize("url, status", [
    ("/tiles/grids/22/" + str(2**22) + "/0.mvt", 422),  # x = 2^z at the deepest zoom
    ("/tiles/grids/5/" + "9" * 40 + "/1.mvt", 422),     # a huge x
    ("/tiles/grids/5/1/-3.mvt", 422),
    ("/tiles/grids/0/0/0.mvt?plan=" + "x" * 200, 422),
    ("/tiles/grids/5/1.5/1.mvt", 422),
])
def test_more_hostile_tile_addresses(client, url, status):
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:200])


def test_an_empty_light_tile_is_an_empty_answer(client):
    r = client.get("/tiles/grids/6/0/0.mvt")
    assert r.status_code == 200 and r.content == b"" and mapbox_vector_tile.decode(r.content) == {}


def test_a_tile_follows_an_import_and_a_browser_revalidates_it(world, monkeypatch, tmp_path):
    """Tiles are cached (in the process and, by ETag, in the browser), but an import of the
    layer is seen at once: the next tile is made from the data, with a new ETag."""
    z = 14
    x, y = _tile_of(X0 + D, Y0 + D / 2, z)
    with TestClient(app_for(world, monkeypatch)) as c:
        url = f"/tiles/roads/{z}/{x}/{y}.mvt"
        first = c.get(url)
        assert first.status_code == 200 and first.content == b""  # the township has no roads yet
        etag = first.headers["etag"]
        assert "no-cache" in first.headers["cache-control"]
        again = c.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        grid_url = f"/tiles/grids/{z}/{x}/{y}.mvt"
        grid_etag = c.get(grid_url).headers["etag"]

        road = gpd.GeoDataFrame({"code": ["R1"], "name": ["松阳大道"], "kind": ["road"], "rank": ["县道"]},
                                geometry=[shapely.LineString([(X0, Y0 + D / 2), (X0 + 2 * D, Y0 + D / 2)])],
                                crs=4326)
        path = tmp_path / "roads.gpkg"
        road.to_file(path, layer="roads")
        import_files(world, [path], effective_from=dt.date(2024, 1, 1))

        after = c.get(url, headers={"If-None-Match": etag})
        assert after.status_code == 200 and after.headers["etag"] != etag
        names = [f["properties"]["name"] for f in mapbox_vector_tile.decode(after.content)["roads"]["features"]]
        assert names == ["松阳大道"]
        # the grids did not change: their tile is still the browser's
        assert c.get(grid_url, headers={"If-None-Match": grid_etag}).status_code == 304


def test_the_start_up_warm_up_prepares_the_lookup_a_click_asks(sample_store, monkeypatch):
    """Above the tiled threshold the server's start-up warms the opening tiles, then the
    lookup of the plan in force (its locator and directory), which a click on a tiled grid
    asks: the first click does not make the map's tiles wait for their build."""
    import time

    from gridgeo.api.resources import _lookup_for

    app = app_for(sample_store, monkeypatch, map_tiled_grids=10, tiles_warm="true")
    lookup = _lookup_for(sample_store)
    plan = lookup.plan_at()
    assert plan["id"] not in lookup._directories
    with TestClient(app):
        deadline = time.monotonic() + 120
        while plan["id"] not in lookup._directories and time.monotonic() < deadline:
            time.sleep(0.1)
        assert plan["id"] in lookup._directories and plan["id"] in lookup._checked
