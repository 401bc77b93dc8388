"""OGC API – Features (/ogc) as GIS clients read it: GDAL's OAPIF driver (through pyogrio)
and OWSLib against a live server this module starts on 127.0.0.1, over a copy of the
sample (with its year of events); scope and masking; hostile parameters."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import httpx
import pytest
import shapely
from sqlalchemy import text

from gridgeo import auth
from gridgeo.store import Store

from helpers.authn import headers_for
from helpers.live_server import Server

#: A box over the west of the sample township (lon/lat): some of everything, not all.
BOX = (119.40, 28.40, 119.45, 28.45)
PUBLIC = {"grids": "grids", "villages": "divisions", "roads": "roads", "rivers": "roads"}


def _expected(store, collection: str):
    """The public collection's features, read from the store directly (not through /ogc)."""
    if collection == "grids":
        return store.read("grids")
    if collection == "villages":
        d = store.read("divisions")
        return d[d["level"].isin(["village", "community"]) & d.geometry.notna()]
    roads = store.read("roads")
    return roads[roads["kind"] == ("road" if collection == "roads" else "river")]


def _count(store, where: str, **params) -> int:
    """Events counted in the store by SQL (not through the functions /ogc calls)."""
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM events WHERE {where}"), params).scalar()


@pytest.fixture(scope="module")
def server(replayed, tmp_path_factory):
    """``gridgeo serve`` over a private copy of the replayed sample (its events placed by
    the pipeline), in its own process: GDAL holds the GIL while it waits for an answer,
    so a server in a thread of this process would never answer it."""
    folder = tmp_path_factory.mktemp("ogc-server")
    with closing(sqlite3.connect(replayed.url.removeprefix("sqlite:///"))) as a, \
            closing(sqlite3.connect(folder / "ogc.db")) as b:
        a.backup(b)
    store = Store(f"sqlite:///{folder / 'ogc.db'}")
    with Server(store.url, folder) as srv:
        srv.start()
        yield srv.base, store
    store.close()


def test_landing_conformance_and_openapi(server):
    base, _ = server
    landing = httpx.get(base + "/ogc").json()
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    conf = httpx.get(rels["conformance"]).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    api = httpx.get(rels["service-desc"])
    assert api.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    assert "/ogc/collections/{collection_id}/items" in api.json()["paths"]
    ids = [c["id"] for c in httpx.get(rels["data"]).json()["collections"]]
    assert ids == ["grids", "villages", "roads", "rivers", "households", "events"]


@pytest.mark.parametrize("collection", list(PUBLIC))
def test_gdal_reads_every_public_collection_with_bbox_and_paging(server, collection):
    import pyogrio

    base, store = server
    expected = _expected(store, collection)
    url = f"OAPIF:{base}/ogc"
    # small pages: the driver follows the next links
    size = min(7, len(expected) - 1)
    frame = pyogrio.read_dataframe(url, layer=collection, PAGE_SIZE=size)
    assert len(frame) == len(expected) > size
    assert sorted(frame["code"]) == sorted(expected["code"])
    a = frame.set_index("code").geometry
    b = expected.set_index("code").geometry.reindex(a.index)
    assert shapely.equals_exact(a.to_numpy(), b.to_numpy(), tolerance=1e-7).all()
    # bbox: what intersects the box, no more, no less
    inside = expected[shapely.intersects(expected.geometry.to_numpy(), shapely.box(*BOX))]
    boxed = pyogrio.read_dataframe(url, layer=collection, bbox=BOX, PAGE_SIZE=2)
    assert 0 < len(inside) < len(expected)
    assert sorted(boxed["code"]) == sorted(inside["code"])


def test_owslib_reads_the_collections_and_pages(server):
    from owslib.ogcapi.features import Features

    base, store = server
    api = Features(base + "/ogc")
    assert {c["id"] for c in api.collections()["collections"]} >= set(PUBLIC)
    grids = _expected(store, "grids")
    codes, offset = [], 0
    while True:
        page = api.collection_items("grids", limit=10, offset=offset)
        assert page["numberMatched"] == len(grids)
        codes += [f["id"] for f in page["features"]]
        if not any(link["rel"] == "next" for link in page["links"]):
            break
        offset += 10
    assert codes == sorted(grids["code"]) and offset == 50
    boxed = api.collection_items("villages", bbox=list(BOX), limit=100)
    villages = _expected(store, "villages")
    inside = villages[shapely.intersects(villages.geometry.to_numpy(), shapely.box(*BOX))]
    assert sorted(f["id"] for f in boxed["features"]) == sorted(inside["code"])
    one = api.collection_item("grids", grids["code"].iloc[3])
    assert one["properties"]["village"] and one["properties"]["households"] == int(grids["households"].iloc[3])
    assert "grid_head" not in one["properties"]  # no staff names in public


def test_households_and_events_need_a_token_and_keep_to_the_scope(server, tmp_path):
    base, store = server
    for collection in ("households", "events"):
        r = httpx.get(f"{base}/ogc/collections/{collection}/items")
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    # a grid worker: the households and events of their grid, contacts shown (they visit)
    mine = "331124002001001"
    worker = headers_for(store, "grid_worker", grids=[mine])
    homes = httpx.get(f"{base}/ogc/collections/households/items?limit=1000", headers=worker).json()
    assert homes["numberMatched"] == homes["numberReturned"] > 0
    assert {f["properties"]["grid_code"] for f in homes["features"]} == {mine}
    assert any("*" not in (f["properties"]["contact_phone"] or "*") for f in homes["features"])
    r = httpx.get(f"{base}/ogc/collections/events/items?limit=1000", headers=worker).json()
    assert {f["properties"]["grid_code"] for f in r["features"]} == {mine}
    assert r["numberMatched"] == _count(store, "grid_code = :g", g=mine) > 0
    assert any("*" not in (f["properties"]["reporter_phone"] or "*") for f in r["features"])
    # the planner: every household, contacts masked; no events
    planner = headers_for(store, "planner")
    page = httpx.get(f"{base}/ogc/collections/households/items?limit=50&bbox={','.join(map(str, BOX))}",
                     headers=planner).json()
    phones = [f["properties"]["contact_phone"] for f in page["features"] if f["properties"]["contact_phone"]]
    assert phones and all("****" in p for p in phones)
    for f in page["features"]:
        x, y = f["geometry"]["coordinates"]
        assert BOX[0] <= x <= BOX[2] and BOX[1] <= y <= BOX[3]
    assert httpx.get(f"{base}/ogc/collections/events/items", headers=planner).status_code == 403
    # a platform office: its platform's events, reporters masked; a month by datetime (China days)
    office = headers_for(store, "platform_office", platform="market")
    r = httpx.get(f"{base}/ogc/collections/events/items?datetime=2026-03-01/2026-03-31&limit=1000",
                  headers=office).json()
    march = _count(store, "platform = 'market' AND reported_at >= :a AND reported_at < :b",
                   a="2026-02-28 16:00:00", b="2026-03-31 16:00:00")
    assert r["numberMatched"] == march > 0
    assert {f["properties"]["platform"] for f in r["features"]} == {"market"}
    # citizens' names masked; staff reporters (a patrol, an inspection, a department) named
    citizen = [f["properties"]["reporter_name"] for f in r["features"] if f["properties"]["reporter_name"]
               and f["properties"]["source"] not in auth.STAFF_SOURCES]
    assert citizen and all("*" in n for n in citizen)
    # the command room through GDAL, with its token in a header: events in the box
    import pyogrio

    room = headers_for(store, "command_room")
    header_file = tmp_path / "headers.txt"  # GDAL_HTTP_HEADER_FILE: what QGIS's "API header" does
    header_file.write_text(f"Authorization: {room['Authorization']}\n")
    pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": str(header_file)})
    try:
        got = pyogrio.read_dataframe(f"OAPIF:{base}/ogc", layer="events", bbox=BOX, PAGE_SIZE=1000)
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": None})
        header_file.unlink()
    inside = _count(store, "pos_lon BETWEEN :x0 AND :x1 AND pos_lat BETWEEN :y0 AND :y1",
                    x0=BOX[0], x1=BOX[2], y0=BOX[1], y1=BOX[3])
    assert len(got) == inside > 0
    assert (got.geometry.x.between(BOX[0], BOX[2]) & got.geometry.y.between(BOX[1], BOX[3])).all()


@pytest.mark.parametrize("query, status, words", [
    ("bbox=1,2,3", 400, "four numbers"),
    ("bbox=a,b,c,d", 400, "four numbers"),
    ("bbox=120,30,119,31", 400, "lower corner"),
    ("bbox=0,0,500,10", 400, "-180..180"),
    ("bbox=nan,1,2,3", 400, "four numbers"),
    ("bbox=" + ",".join(["1" * 60] * 4), 422, "bbox"),
    ("datetime=yesterday", 400, "datetime"),
    ("datetime=../..", 400, "interval"),
    ("datetime=2026-03-05/2026-03-01", 400, "before"),
    ("datetime=9999-01-01", 400, "between"),
    ("limit=0", 422, "limit"),
    ("offset=-1", 422, "offset"),
    ("f=xml", 400, "json"),
    ("bbox-crs=EPSG:3857", 400, "CRS84"),
])
def test_hostile_parameters_are_problems(server, query, status, words):
    base, _ = server
    r = httpx.get(f"{base}/ogc/collections/grids/items?{query}")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and words in r.text


def test_huge_limit_is_answered_with_the_largest_page_and_unknowns_are_404(server):
    base, _ = server
    r = httpx.get(f"{base}/ogc/collections/roads/items?limit=100000000000")
    assert r.status_code == 200 and r.json()["numberReturned"] == r.json()["numberMatched"]
    for url in ("/ogc/collections/nope/items", "/ogc/collections/nope", "/ogc/collections/grids/items/nope",
                "/ogc/collections/..%2F..%2Fetc/items"):
        assert httpx.get(base + url).status_code == 404, url
    # a time on a collection that has none, a plan on another collection
    assert httpx.get(f"{base}/ogc/collections/roads/items?datetime=2026-01-01").status_code == 400
    assert httpx.get(f"{base}/ogc/collections/roads/items?plan=2024-01").status_code == 400
    assert httpx.get(f"{base}/ogc/collections/grids/items?plan=no-such-plan").status_code == 404
    # grids by date: before the first plan there is none
    assert httpx.get(f"{base}/ogc/collections/grids/items?datetime=2000-01-01").json()["numberMatched"] == 0
