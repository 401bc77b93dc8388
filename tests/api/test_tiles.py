"""Vector tiles (/tiles/{layer}/{z}/{x}/{y}.mvt) on both databases: the features a tile
holds are those that meet it, with their attributes; cached; hostile addresses refused."""

from __future__ import annotations

import math

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import shapely.geometry
from fastapi.testclient import TestClient

from helpers.apps import app_for


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
