"""The maps, built from the sample and opened in headless Chromium with the network off.

The browser is the distribution's Chromium (apt ``chromium``; ``GRIDGEO_CHROMIUM``
overrides the path), driven by Playwright; nothing is downloaded. Every page is opened
in an offline browser context whose every request is intercepted: a request for
anything but the page's own file (or, for the API, the test server) is aborted and
fails the test. Screenshots go to the test's tmp folder; with
``GRIDGEO_UPDATE_SCREENSHOTS=1`` the coverage map's also goes to docs/img/coverage.png
(with a grid's tooltip open). Without Chromium or a CJK font the browser tests are skipped
locally and fail in CI.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from helpers.browser import chromium
from helpers.paths import ROOT, SAMPLE
from gridgeo.compare import compare_grids
from gridgeo.coverage import staffing
from gridgeo.store import Store
from gridgeo.workload import CST, InvalidPeriod, Period, parse_period, per_grid, read_events

KINDS = ["coverage", "workload", "events", "plan"]
UNDERSTAFFED = {"331124201207001": "网格指导员", "331124201203001": "专职网格员", "331124002002002": "网格长"}



# -- the sample, a draft plan, the saved maps -----------------------------------------------

@pytest.fixture(scope="module")
def sample_db(sample_copy, tmp_path_factory):
    """A SQLite store with the sample and a second plan (two grids merged), from 2030."""
    from gridgeo.io import import_files

    folder = tmp_path_factory.mktemp("maps")
    store = sample_copy()
    grids = store.read("grids")
    draft, merged = merge_two_neighbours(grids)
    path = folder / "draft.gpkg"
    draft.drop(columns=["plan_id"], errors="ignore").to_file(path, layer="grids")
    import_files(store, [path], plan_version="2030-01", effective_from=dt.date(2030, 1, 1))
    store.merged = merged  # the two codes merged into the first
    yield store
    store.close()


def merge_two_neighbours(grids: gpd.GeoDataFrame):
    """Grids with the first two neighbouring grids of one village merged into the first."""
    g = grids.reset_index(drop=True)
    tree = shapely.STRtree(g.geometry.to_numpy())
    a, b = tree.query(g.geometry.to_numpy(), predicate="touches")
    shared = shapely.length(shapely.intersection(g.geometry.to_numpy()[a], g.geometry.to_numpy()[b]))
    ok = (a < b) & (shared > 0) & (g["village_code"].to_numpy()[a] == g["village_code"].to_numpy()[b])
    i, j = a[ok][0], b[ok][0]
    draft = g.copy()
    draft.loc[i, "geometry"] = shapely.coverage_union_all(g.geometry.to_numpy()[[i, j]])
    draft = draft.drop(index=j).drop(columns=["households", "population", "buildings"])
    return gpd.GeoDataFrame(draft, geometry="geometry", crs=4326), (g["code"][i], g["code"][j])


@pytest.fixture(scope="module")
def saved_maps(sample_db, tmp_path_factory):
    """The four maps saved with the CLI, as a user would: kind -> path."""
    from gridgeo.cli import app

    folder = tmp_path_factory.mktemp("saved")
    runner = CliRunner()
    out = {}
    with pytest.MonkeyPatch.context() as env:
        env.delenv("GRIDGEO_MAP_BASEMAP", raising=False)  # the default: no base map
        for kind in KINDS:
            path = folder / f"{kind}.html"
            r = runner.invoke(app, ["map", kind, "--database", sample_db.url, "--out", str(path)])
            assert r.exit_code == 0, r.output
            assert f"{kind} map -> " in r.output
            out[kind] = path
    return out


# -- the browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """Chromium for this module's tests; closed after them, since Playwright's sync API holds
    a running event loop in the main thread while it is open."""
    with chromium() as b:
        yield b


class Opened:
    """A page opened offline: its console errors and every request it made."""

    def __init__(self, browser, url: str, client=None, ready="document.querySelectorAll('path.gg-grid').length > 0"):
        self.context = browser.new_context(offline=True, viewport={"width": 1280, "height": 800})
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.errors: list[str] = []

        def route(r):
            url = r.request.url
            if url.startswith(("file:", "data:", "blob:")):
                r.continue_()
            elif client is not None and url.startswith("http://testserver/"):
                resp = client.get(url[len("http://testserver"):])
                r.fulfill(status=resp.status_code, body=resp.content,
                          headers={"content-type": resp.headers.get("content-type", "")})
            else:
                self.blocked.append(url)
                r.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url, wait_until="load")
        self.page.wait_for_function(ready)
        self.settle()

    def settle(self):
        self.page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def var(self, prefix: str, index: int = 0) -> str:
        """The name of the index-th global folium variable starting with prefix."""
        names = self.js(f"Object.keys(window).filter(k => k.startsWith('{prefix}_'))")
        assert len(names) > index, (prefix, names)
        return names[index]

    def off_machine(self) -> list[str]:
        return self.blocked + [u for u in self.requests
                               if not u.startswith(("file:", "data:", "blob:", "http://testserver/"))]

    def close(self):
        self.context.close()


@pytest.fixture
def open_map(browser):
    opened = []

    def _open(path_or_url, client=None, **kw) -> Opened:
        url = path_or_url if isinstance(path_or_url, str) else path_or_url.as_uri()
        o = Opened(browser, url, client, **kw)
        opened.append(o)
        return o

    yield _open
    for o in opened:
        o.close()


def grid_count(store: Store, kind: str) -> int:
    n = len(store.read("grids"))
    return n + len(store.read("grids", plan="2030-01")) if kind == "plan" else n


# -- the four maps in the browser ---------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_map_opens_offline_with_one_path_per_grid(kind, saved_maps, sample_db, open_map, tmp_path):
    html = saved_maps[kind].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", html), "assets must be inlined"
    o = open_map(saved_maps[kind])
    assert o.errors == []
    assert o.off_machine() == []
    assert o.js("document.querySelectorAll('path.gg-grid').length") == grid_count(sample_db, kind)
    # every map: layer control, fullscreen, scale bar, search (the plan map: on both sides)
    sides = 2 if kind == "plan" else 1
    for selector in (".leaflet-control-layers", ".leaflet-control-zoom-fullscreen",
                     ".leaflet-control-scale", ".gg-search-input"):
        assert o.js(f"document.querySelectorAll('{selector}').length") == sides, selector
    assert "村社边界" in o.js("document.querySelector('.leaflet-control-layers').innerText")
    shot = tmp_path / f"{kind}.png"
    o.page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_coverage_colours_and_chinese_tooltips(saved_maps, sample_db, open_map):
    o = open_map(saved_maps["coverage"])
    layer = o.var("grid_layer")
    staff = staffing(sample_db.read("grids")["code"], sample_db.read("staff"))
    # fill colour by the number of missing roles
    fills = o.js(f"""(() => {{ const g = {layer}.gg, out = {{}};
        g.layers.forEach((l, i) => out[g.spec.props.code[i]] = l._path.getAttribute('fill'));
        return out; }})()""")
    expected = {0: "#1a9850", 1: "#fdae61", 2: "#d73027"}
    assert fills == {c: expected[min(n, 2)] for c, n in staff["n_missing"].items()}
    assert {c for c, f in fills.items() if f != "#1a9850"} == set(UNDERSTAFFED)
    # hover over a point inside the grid without a grid head: its people, in Chinese
    code = "331124002002002"
    grids = sample_db.read("grids").set_index("code")
    inside = shapely.point_on_surface(grids.geometry[code])
    mp = o.var("map")
    xy = o.js(f"{mp}.latLngToContainerPoint([{inside.y}, {inside.x}])")
    o.page.mouse.move(xy["x"], xy["y"])
    o.page.mouse.move(xy["x"] + 1, xy["y"] + 1)
    o.page.wait_for_selector(".gg-tooltip")
    text = o.js("document.querySelector('.gg-tooltip').innerText")
    row = staff.loc[code]
    for expected_text in [code, grids["name"][code], "双溪社区", f"{grids['households'][code]:,}",
                          "网格长", row["full_time_worker"], row["instructor"], "缺配"]:
        assert expected_text in text, (expected_text, text)
    assert re.search(r"缺配\s+网格长", text)
    if os.environ.get("GRIDGEO_UPDATE_SCREENSHOTS") == "1":  # the README's picture
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        o.page.screenshot(path=str(ROOT / "docs" / "img" / "coverage.png"))


def test_ground_roads_rivers_households_and_labels(saved_maps, sample_db, open_map):
    """The ground under the grids: roads and rivers by rank, switched in the layer control;
    grid labels and households when zoomed in; village names always."""
    from gridgeo.maps.ground import ROAD_CLASSES, road_class

    roads = sample_db.read("roads")
    o = open_map(saved_maps["coverage"])
    mp = o.var("map")
    road, river = o.var("line_layer", 0), o.var("line_layer", 1)
    assert o.js(f"{road}.gg.spec.parts.length") == int((roads["kind"] == "road").sum())
    assert o.js(f"{river}.gg.spec.parts.length") == int((roads["kind"] == "river").sum())
    # by rank: the classes the browser has are the ranks' classes
    ranks = roads.loc[roads["kind"] == "road", "rank"]
    got = sorted(o.js(f"{road}.gg.spec.cls"))
    assert got == sorted(road_class(ranks, ROAD_CLASSES).tolist())
    # zoomed out (a county's view): village roads not drawn, the others thinner
    o.js(f"void {mp}.setZoom({ROAD_CLASSES[-1][4] - 2}, {{animate: false}})")
    o.settle()
    shown = o.js(f"{road}.getLayers().length")
    assert shown == int((road_class(ranks, ROAD_CLASSES) < len(ROAD_CLASSES) - 1).sum()) > 0
    width_out = o.js(f"{road}.getLayers()[0].options.weight")
    assert o.js(f"{mp}.hasLayer({road}) && {mp}.hasLayer({river})")
    assert o.js("!!document.querySelector('.leaflet-ggGround-pane canvas')")
    # village names at once, grid labels and households not yet
    villages = sample_db.read("grids")["village_code"].nunique()
    assert o.js("document.querySelectorAll('.gg-label').length") == villages
    assert o.js("document.querySelectorAll('.gg-grid-label').length") == 0
    homes = o.var("point_layer")
    assert not o.js(f"{homes}.visible()")
    # switched off and on in the layer control
    control = o.page.locator(".leaflet-control-layers-overlays label", has_text="道路").locator("input")
    control.uncheck()
    assert not o.js(f"{mp}.hasLayer({road})") and o.js(f"{mp}.hasLayer({river})")
    control.check()
    assert o.js(f"{mp}.hasLayer({road})")
    o.page.locator(".leaflet-control-layers-overlays label", has_text="河流").locator("input").uncheck()
    assert not o.js(f"{mp}.hasLayer({river})")
    o.page.locator(".leaflet-control-layers-overlays label", has_text="河流").locator("input").check()
    # zoomed in on a household: every road drawn, thicker; grid labels and households shown
    house = sample_db.read("households").geometry.iloc[0]
    o.js(f"void {mp}.setView([{house.y}, {house.x}], 17, {{animate: false}})")
    o.settle()
    assert o.js(f"{road}.getLayers().length") == len(ranks)
    assert o.js(f"{road}.getLayers()[0].options.weight") > width_out
    assert o.js(f"{homes}.visible()") and o.js(f"{homes}.getLayers().length") == len(sample_db.read("households"))
    assert o.js("document.querySelectorAll('.gg-grid-label').length") > 0
    assert o.errors == [] and o.off_machine() == []
    if os.environ.get("GRIDGEO_UPDATE_SCREENSHOTS") == "1":  # the README's picture of the ground
        o.js(f"void {mp}.setView([{house.y}, {house.x}], 16, {{animate: false}})")
        o.settle()
        o.page.wait_for_timeout(300)
        o.page.screenshot(path=str(ROOT / "docs" / "img" / "ground.png"))


def test_search_by_grid_code_and_village_name(saved_maps, sample_db, open_map):
    grids = sample_db.read("grids").set_index("code")
    shangyuan = shapely.point_on_surface(grids.geometry["331124201201001"])  # 上源村's one grid
    o = open_map(saved_maps["coverage"])
    mp = o.var("map")
    start = o.js(f"{mp}.getZoom()")
    box = o.page.locator(".gg-search-input")
    box.fill("331124002003")
    first = o.js("document.querySelector('.gg-search-results li').innerText")
    assert first.startswith("331124002003") and "锦城社区" in first
    box.fill("上源村")
    item = o.page.locator(".gg-search-results li").first
    assert item.get_attribute("class") == "gg-search-village"
    item.click()
    o.page.wait_for_timeout(400)  # the view moves; nothing is asserted on time
    assert o.js(f"{mp}.getZoom()") > start
    assert o.js(f"{mp}.getBounds().contains(L.latLng({shangyuan.y}, {shangyuan.x}))")
    box.fill("331124201207001")
    box.press("Enter")
    o.page.wait_for_selector(".gg-tooltip")
    assert "樟林村" in o.js("document.querySelector('.gg-tooltip').innerText")
    box.fill("no such grid")
    assert o.js("document.querySelector('.gg-search-results').innerText") == "无匹配结果"


def test_events_map_clusters_heat_and_time_slider(saved_maps, sample_db, open_map):
    events = read_events(sample_db)
    placed = events[events.geometry.notna()]
    o = open_map(saved_maps["events"])
    data, clusters, heat = o.var("event_data"), o.var("event_clusters"), o.var("event_heat")
    assert o.js(f"{data}.spec.n") == len(placed)
    o.page.wait_for_function(f"{clusters}.getLayers().length === {len(placed)}")
    assert o.js(f"{heat}._latlngs.length") == len(placed)
    # clusters on the map, not 20,000 markers
    drawn = o.js("document.querySelectorAll('.marker-cluster').length + document.querySelectorAll('path.gg-event').length")
    assert 0 < drawn < 400
    # step 1 of the slider: October 2025
    assert o.page.locator(".gg-slider").get_attribute("max") == "12"
    o.js("(() => { const s = document.querySelector('.gg-slider'); s.value = 1; s.dispatchEvent(new Event('input')); })()")
    october = placed[(placed["reported_at"].dt.tz_convert(CST).dt.month == 10)
                     & (placed["reported_at"].dt.tz_convert(CST).dt.year == 2025)]
    label = o.js("document.querySelector('.gg-time-label').innerText")
    assert label.startswith("2025年10月") and f"{len(october):,} 件" in label
    # markercluster adds markers in chunks: wait until they are all in
    o.page.wait_for_function(f"{clusters}.getLayers().length === {len(october)}")
    assert o.js(f"{heat}._latlngs.length") == len(october)
    # switch off 综治工作
    o.page.locator(".gg-platform", has_text="综治工作").locator("input").uncheck()
    others = int((october["platform"] != "stability").sum())
    o.page.wait_for_function(f"{clusters}.getLayers().length === {others}")
    assert o.js(f"{heat}._latlngs.length") == others
    # a marker's popup, in Chinese
    o.js(f"void {clusters}.zoomToShowLayer({data}.markers[{data}.selected[0]], () => {data}.markers[{data}.selected[0]].openPopup())")
    o.page.wait_for_selector(".gg-popup")
    popup = o.js("document.querySelector('.gg-popup').innerText")
    assert "事项" in popup and "上报时间" in popup and "2025-10" in popup
    assert o.errors == [] and o.off_machine() == []


def test_workload_map_classes_follow_the_table(saved_maps, sample_db, open_map):
    from gridgeo.maps.workload import breaks

    table = per_grid(sample_db)
    o = open_map(saved_maps["workload"])
    layer = o.var("grid_layer")
    got = o.js(f"(() => {{ const s = {layer}.gg.spec; const o = {{}}; s.props.code.forEach((c, i) => o[c] = [s.cls[i], s.props.per_worker[i]]); return o; }})()")
    limits = breaks(table["per_worker"])
    for code, (cls, value) in got.items():
        assert value == pytest.approx(round(table.loc[code, "per_worker"], 1))
        assert cls == int(np.searchsorted(limits, table.loc[code, "per_worker"]))
    assert got[table["per_worker"].idxmax()][0] == 4
    legend = o.js("document.querySelector('.gg-legend').innerText")
    assert "人均事件数" in legend and "2025-10-01 至 2026-09-30" in legend


def test_plan_map_shows_the_draft_beside_the_plan_in_force(saved_maps, sample_db, open_map):
    o = open_map(saved_maps["plan"])
    current, draft = o.var("grid_layer", 0), o.var("grid_layer", 1)
    kept, gone = sample_db.merged

    def changes(layer):
        return o.js(f"(() => {{ const s = {layer}.gg.spec, o = {{}}; s.props.code.forEach((c, i) => o[c] = s.lookups.change_label ? s.lookups.change_label[s.props.change_label[i]] : s.props.change_label[i]); return o; }})()")

    left, right = changes(current), changes(draft)
    assert {c for c, v in left.items() if v != "未变"} == {kept, gone}
    assert left[kept] == left[gone] == "边界调整"
    assert {c for c, v in right.items() if v != "未变"} == {kept}
    titles = o.js("[...document.querySelectorAll('.gg-title')].map(t => t.innerText)")
    assert titles[0].startswith("现行方案") and "2024-01" in titles[0]
    assert titles[1].startswith("调整方案") and "2030-01" in titles[1]
    # the two maps move together
    maps = o.js("Object.keys(window).filter(k => k.startsWith('map_'))")
    o.js(f"void {maps[1]}.setView([28.45, 119.42], 15, {{animate: false}})")
    o.settle()
    assert o.js(f"{maps[0]}.getZoom()") == 15


def test_topology_round_trip_through_the_browser(browser):
    """Holes, an enclave, a multipolygon, a missing and an empty geometry, shared edges."""
    from gridgeo.maps.encoding import encode_topology
    from gridgeo.maps.elements import to_js

    outer = shapely.box(120, 29, 120.01, 29.01)
    inner = shapely.box(120.004, 29.004, 120.006, 29.006)
    left, right = shapely.box(121, 30, 121.005, 30.01), shapely.box(121.005, 30, 121.01, 30.01)
    geoms = [outer.difference(inner), inner, left, right,
             shapely.MultiPolygon([shapely.box(122, 30, 122.001, 30.001), shapely.box(122.002, 30, 122.003, 30.001)]),
             None, shapely.Polygon()]
    topo = encode_topology(geoms, 6, groups=["a", "a", "b", "c", "d", "e", "f"])
    assert len(topo["mesh"]) > 0
    page = browser.new_page()
    page.set_content("<script>" + (ROOT / "maps/assets/gridgeo/gridgeo-maps.js").read_text() + "</script>")
    out = page.evaluate(f"(() => {{ const t = {to_js(topo)}; return [GG.decodeTopology(t), GG.topologyArcs(t, t.mesh)]; }})()")
    page.close()
    shapes, mesh = out
    for src, rings in zip(geoms, shapes):
        if src is None or src.is_empty:
            assert rings == []
            continue
        polys = [shapely.Polygon([(x, y) for y, x in p[0]], [[(x, y) for y, x in h] for h in p[1:]]) for p in rings]
        rec = shapely.union_all(polys)
        assert rec.is_valid and rec.symmetric_difference(src).area < 1e-12
    # the shared edge of left|right is sent once; the village mesh includes it (b != c)
    lines = shapely.MultiLineString([[(x, y) for y, x in a] for a in mesh])
    assert lines.covers(shapely.LineString([(121.005, 30.001), (121.005, 30.009)]))
    # the enclave's ring is in the same village as its surroundings: not on the mesh
    assert not lines.intersects(shapely.Point(120.005, 29.004))


# -- size and scale --------------------------------------------------------------------------

def synthetic_grids(copies: int = 196):
    """The sample's 52 grids tiled ``copies`` times (14 x 14: 10,192 grids, 1.35 M vertices)."""
    g = gpd.read_file(SAMPLE / "township.gpkg", layer="grids")
    staff = pd.read_csv(SAMPLE / "staff.csv", dtype=str)
    x0, y0, x1, y1 = g.total_bounds
    side = int(np.ceil(np.sqrt(copies)))
    frames, staffs = [], []
    for k in range(copies):
        dx, dy = (k % side) * (x1 - x0) * 1.02, (k // side) * (y1 - y0) * 1.02
        c = g.copy()
        c["geometry"] = shapely.transform(g.geometry.to_numpy(), lambda xy, d=(dx, dy): xy + d)
        c["village_code"] = f"{k:03d}" + c["village_code"].str[3:]
        c["code"] = f"{k:03d}" + c["code"].str[3:]
        s = staff.copy()
        s["grid_code"] = f"{k:03d}" + s["grid_code"].str[3:]
        frames.append(c)
        staffs.append(s)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=4326), pd.concat(staffs, ignore_index=True)


@pytest.mark.slow
def test_10000_grids_make_a_map_under_8_mb_that_renders(open_map, tmp_path):
    from gridgeo.maps import coverage_map, save

    grids, staff = synthetic_grids()
    assert len(grids) >= 10_000
    path = save(coverage_map(grids, staff), tmp_path / "coverage-10k.html")
    size = path.stat().st_size
    print(f"10,192 grids: {size / 1e6:.2f} MB")
    assert size < 8_000_000
    o = open_map(path)
    assert o.errors == [] and o.off_machine() == []
    assert o.js("document.querySelectorAll('path.gg-grid').length") == len(grids)
    o.page.screenshot(path=str(tmp_path / "coverage-10k.png"))


def test_simplification_keeps_the_coverage_a_coverage():
    from gridgeo.maps.encoding import auto_tolerance, simplify

    g = gpd.read_file(SAMPLE / "township.gpkg", layer="grids")
    geoms = g.geometry.to_numpy()
    simple = simplify(geoms, 5.0)
    assert shapely.coverage_is_valid(simple)
    assert shapely.get_num_coordinates(simple).sum() < shapely.get_num_coordinates(geoms).sum()
    # the union is still the township: no gaps opened between neighbours
    epsg = 4549
    a = gpd.GeoSeries([shapely.union_all(geoms)], crs=4326).to_crs(epsg)
    b = gpd.GeoSeries([shapely.coverage_union_all(simple)], crs=4326).to_crs(epsg)
    assert a.symmetric_difference(b).area.iloc[0] / a.area.iloc[0] < 1e-3
    assert auto_tolerance(geoms) == 0.5


# -- offline assets ------------------------------------------------------------------------------

def test_assets_are_vendored_with_their_licences():
    from gridgeo.maps.offline import ASSET_DIR, vendored

    versions = vendored()
    assert versions == {"leaflet": "1.9.4", "leaflet.fullscreen": "3.0.2", "leaflet.heat": "0.2.0",
                        "leaflet.markercluster": "1.5.3", "leaflet.sync": "0.2.4", "simpleheat": "0.2.0",
                        "protomaps-leaflet": "5.1.0"}
    for name in versions:
        assert list((ASSET_DIR / name).glob("*LICEN*")), name
    assert (ASSET_DIR / "update.sh").read_text().count("npm pack") >= 1


def test_no_map_module_names_a_remote_script_host():
    # the same patterns as the repository hook
    pattern = re.compile(r"unpkg|cdn|cdnjs|code\.jquery|maxcdn|netdna", re.IGNORECASE)
    for path in sorted((ROOT / "maps").glob("*.py")):
        hits = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
        assert not hits, f"{path.name}: lines {hits}"


def test_a_map_that_would_load_from_the_network_is_refused():
    import folium
    from folium.plugins import MiniMap

    from gridgeo.maps.offline import OfflineError, render_html

    m = folium.Map(tiles=None)
    with pytest.raises(OfflineError):
        render_html(m)  # folium's own links, never replaced
    from gridgeo.maps.base import get_basemap, new_map

    m = new_map(get_basemap("none"))
    MiniMap().add_to(m)
    with pytest.raises(OfflineError, match="network"):
        render_html(m)


# -- base maps -------------------------------------------------------------------------------

def test_no_base_map_by_default(saved_maps, monkeypatch):
    monkeypatch.delenv("GRIDGEO_MAP_BASEMAP", raising=False)
    html = saved_maps["coverage"].read_text(encoding="utf-8")
    assert "var tile_layer_" not in html and "tianditu" not in html and "autonavi" not in html


def test_tianditu_needs_a_key_from_the_environment(sample_db, monkeypatch):
    from gridgeo.maps import MapError, coverage_from_store, get_basemap, render_html

    monkeypatch.delenv("GRIDGEO_TIANDITU_KEY", raising=False)
    with pytest.raises(MapError, match="GRIDGEO_TIANDITU_KEY"):
        get_basemap("tianditu")
    monkeypatch.setenv("GRIDGEO_TIANDITU_KEY", "0123abcd")
    monkeypatch.setenv("GRIDGEO_MAP_BASEMAP", "tianditu")
    html = render_html(coverage_from_store(sample_db))
    assert "tianditu.gov.cn" in html and "tk=0123abcd" in html
    with pytest.raises(MapError, match="unknown base map"):
        get_basemap("osm")


def _decode_points(enc: str, n: int, scale: int) -> np.ndarray:
    """A second, independent decoder of the encoded points (Python)."""
    vals, result, shift = [], 0, 0
    for ch in enc:
        b = ord(ch) - 63
        result |= (b & 0x1F) << shift
        shift += 5
        if b < 0x20:
            vals.append(~(result >> 1) if result & 1 else result >> 1)
            result, shift = 0, 0
    xy = np.cumsum(np.array(vals, dtype=np.int64).reshape(n, 2), axis=0) / scale
    return xy[:, ::-1]  # lon, lat


def test_amap_converts_everything_drawn_to_gcj02(sample_db):
    from gridgeo import crs
    from gridgeo.maps.base import Basemap, grid_set
    from gridgeo.maps.events import event_spec

    grids = sample_db.read("grids")
    wgs = grid_set(grids, None, Basemap("none"))
    gcj = grid_set(grids, None, Basemap("amap"))
    x0, y0 = wgs.geoms[0].exterior.coords[0]
    lon, lat = (float(v) for v in crs.convert(x0, y0, "wgs84", "gcj02"))
    assert gcj.geoms[0].exterior.coords[0] == pytest.approx((lon, lat), abs=1e-9)
    assert 300 < np.hypot((lon - x0) * 98_000, (lat - y0) * 111_000) < 800  # metres: AMap's offset
    events = read_events(sample_db, "2026-03")
    spec = event_spec(events, parse_period("2026-03"), Basemap("amap"))
    placed = events[events.geometry.notna()].sort_values("reported_at", kind="stable")
    x, y = crs.convert(placed.geometry.x.to_numpy(), placed.geometry.y.to_numpy(), "wgs84", "gcj02")
    got = _decode_points(spec["pos"], spec["n"], spec["scale"])
    assert np.abs(got - np.column_stack([x, y])).max() < 1e-5


# -- the API ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(sample_db):
    from fastapi.testclient import TestClient

    from gridgeo.api.deps import get_store
    from gridgeo.api.main import create_app

    from helpers.authn import headers_for

    app = create_app()
    app.dependency_overrides[get_store] = lambda: sample_db
    with TestClient(app) as c:
        c.headers.update(headers_for(sample_db, "admin"))
        yield c


def test_api_maps_need_a_token_but_coverage(client, sample_db):
    from helpers.authn import headers_for

    token = headers_for(sample_db, "command_room")["Authorization"].split()[1]
    anonymous = {"Authorization": ""}
    assert client.get("/maps/coverage", headers=anonymous).status_code == 200  # the public notice board
    for url in ("/maps/workload", "/maps/events?period=2026-03", "/maps/plans/2030-01"):
        assert client.get(url, headers=anonymous).status_code == 401, url
    # a browser opens a map with the token in the address (RFC 6750 2.3)
    r = client.get("/maps/events?period=2026-03&access_token=" + token, headers=anonymous)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    # the grid worker's events map: their grids, their events, no one else's
    mine = "331124002001001"
    worker = headers_for(sample_db, "grid_worker", grids=[mine])
    r = client.get("/maps/events?period=2026-03", headers=worker)
    assert r.status_code == 200
    data = json.loads(re.search(r"GG\.events\((\{.*?\})\);", r.text, re.S).group(1))
    events = read_events(sample_db, "2026-03")
    assert data["grids"] == [mine] and data["n"] == int((events["grid_code"] == mine).sum()) > 0
    grid_layer = json.loads(re.search(r"GG\.polygons\((\{.*?\})\s*\);", r.text, re.S).group(1))
    assert grid_layer["props"]["code"] == [mine]
    # the households are drawn for those who read the register, never for the public
    assert "GG.points(" in r.text
    assert "GG.points(" not in client.get("/maps/coverage", headers=anonymous).text
    assert "GG.points(" in client.get("/maps/coverage").text  # the administrator
    # a department: its events only, and no households (it does not read the register)
    dept = events["department"].value_counts().index[0]
    r = client.get("/maps/events?period=2026-03", headers=headers_for(sample_db, "department", department=dept))
    data = json.loads(re.search(r"GG\.events\((\{.*?\})\);", r.text, re.S).group(1))
    assert data["n"] == int(((events["department"] == dept) & events.geometry.notna()).sum()) < len(events)
    assert "GG.points(" not in r.text and "GG.lines(" in r.text


@pytest.mark.parametrize("url", [
    "/maps/coverage", "/maps/coverage?village=上源村", "/maps/workload?measure=overdue&period=2026-Q1",
    "/maps/workload?platform=market&village=331124002", "/maps/events?period=2026-03&platform=service",
    "/maps/plans/2030-01", "/maps/plans/2", "/maps/plans/2030-01?against=2024-01&village=331124002",
])
def test_api_serves_the_maps(client, url):
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    links = re.findall(r'<script src="([^"]+)"|<link rel="stylesheet" href="([^"]+)"', r.text)
    assert links
    for script, css in links:
        link = script or css
        assert not link.startswith(("http:", "https:", "//", "/")), link  # relative: works under a prefix
        resolved = httpx.URL("http://testserver" + url).join(link)
        assert client.get(resolved.raw_path.decode()).status_code == 200, link


def test_api_map_opens_offline_from_the_server(client, open_map, sample_db):
    o = open_map("http://testserver/maps/workload?period=2026", client)
    assert o.errors == [] and o.off_machine() == []
    assert any("/maps/assets/leaflet/leaflet.js" in u for u in o.requests)
    assert o.js("document.querySelectorAll('path.gg-grid').length") == grid_count(sample_db, "workload")
    o2 = open_map("http://testserver/maps/plans/2030-01?inline=true", client)
    assert o2.errors == [] and o2.off_machine() == []
    assert not any("/maps/assets/" in u for u in o2.requests)


def make_mbtiles(path, bounds, zooms, fmt="png"):
    """An MBTiles archive covering ``bounds`` (lon/lat) at ``zooms``: one light tile image
    repeated (PIL), TMS rows as the specification has them; returns the number of tiles."""
    import io
    import math
    import sqlite3

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (222, 235, 247)).save(buf, format="PNG")
    png = buf.getvalue()
    x0, y0, x1, y1 = bounds

    def tile(lon, lat, z):
        n = 2**z
        return (int((lon + 180) / 360 * n),
                int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n))

    rows = []
    for z in zooms:
        (a, b), (c, d) = tile(x0, y1, z), tile(x1, y0, z)
        rows += [(z, x, 2**z - 1 - y, png) for x in range(a, c + 1) for y in range(b, d + 1)]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
        db.executemany("INSERT INTO metadata VALUES (?, ?)",
                       [("name", "测试底图"), ("format", fmt), ("attribution", "测试瓦片包")])
        db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def test_base_map_from_a_tile_archive_served_by_gridgeo(client, open_map, sample_db, tmp_path, monkeypatch):
    from gridgeo.maps import MapError, get_basemap
    from gridgeo.maps.archive import ArchiveError, open_archive

    x0, y0, x1, y1 = sample_db.read("grids").total_bounds
    path = tmp_path / "county.mbtiles"
    assert make_mbtiles(path, (x0 - 0.3, y0 - 0.3, x1 + 0.3, y1 + 0.3), range(10, 15)) > 50
    monkeypatch.setenv("GRIDGEO_MAP_BASEMAP", "archive")
    monkeypatch.setenv("GRIDGEO_MAP_TILES", str(path))
    o = open_map("http://testserver/maps/coverage", client)
    o.page.wait_for_function("document.querySelectorAll('img.leaflet-tile-loaded').length > 0")
    o.settle()
    assert o.errors == [] and o.off_machine() == []
    tiles = [u for u in o.requests if "/maps/basemap/" in u]
    z = o.js(f"{o.var('map')}.getZoom()")
    assert tiles and all(f"/maps/basemap/{z}/" in u for u in tiles)
    assert o.js("[...document.querySelectorAll('img.leaflet-tile-loaded')].every(i => i.naturalWidth === 256)")
    assert "测试瓦片包" in o.js("document.querySelector('.leaflet-control-attribution').innerText")
    # hostile tile addresses: out of range, huge, negative, not numbers, path tricks
    for url, status in [("/maps/basemap/25/0/0", 422), ("/maps/basemap/3/8/0", 404), ("/maps/basemap/3/0/8", 404),
                        ("/maps/basemap/-1/0/0", 422), ("/maps/basemap/" + "9" * 40 + "/0/0", 422),
                        ("/maps/basemap/a/b/c", 422), ("/maps/basemap/12/0/0", 404),
                        ("/maps/basemap/3/0/0/../../../../etc/passwd", 404), ("/maps/basemap/3/0/0.png", 422)]:
        r = client.get(url)
        assert r.status_code == status, (url, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json"), url
    # a saved file cannot load the archive; tiles of an unknown format are refused, and so is no archive
    with pytest.raises(MapError, match="gridgeo serve"):
        get_basemap("archive")
    make_mbtiles(tmp_path / "odd.mbtiles", (x0, y0, x1, y1), [12], fmt="tiff")
    with pytest.raises(ArchiveError, match="'tiff' tiles"):
        open_archive(str(tmp_path / "odd.mbtiles"))
    (tmp_path / "junk.mbtiles").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ArchiveError, match="not an MBTiles"):
        open_archive(str(tmp_path / "junk.mbtiles"))
    # an intranet XYZ server in GCJ-02: the grids are shifted as for AMap
    monkeypatch.setenv("GRIDGEO_MAP_XYZ_URL", "http://tiles.county.internal/{z}/{x}/{y}.png")
    monkeypatch.setenv("GRIDGEO_MAP_XYZ_CRS", "gcj02")
    xyz = get_basemap("xyz")
    assert xyz.crs == "gcj02" and xyz.url.startswith("http://tiles.county.internal/")
    monkeypatch.setenv("GRIDGEO_MAP_XYZ_URL", "tiles/{z}/{x}.png")
    with pytest.raises(MapError, match="GRIDGEO_MAP_XYZ_URL"):
        get_basemap("xyz")


def _tile_of(lon, lat, z):
    import math

    n = 2**z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def test_offline_vector_base_map_built_from_the_store(client, open_map, sample_db, tmp_path, monkeypatch):
    """`gridgeo map basemap` builds the base map from the store's layers (GDAL's MVT writer);
    gridgeo serves it (MBTiles and PMTiles alike) and protomaps-leaflet draws it, offline."""
    import gzip

    import mapbox_vector_tile

    from gridgeo.cli import app
    from gridgeo.maps.archive import ArchiveError, open_archive
    from gridgeo.tiles import tile_bounds

    runner = CliRunner()
    paths = {}
    for ext, extra in (("pmtiles", []), ("mbtiles", ["--households"])):
        paths[ext] = tmp_path / f"county.{ext}"
        r = runner.invoke(app, ["map", "basemap", str(paths[ext]), "--database", sample_db.url,
                                "--min-zoom", "10", "--max-zoom", "15", *extra])
        assert r.exit_code == 0, r.output
        assert "base map -> " in r.output and "zoom 10–15" in r.output
    pm, mb = open_archive(str(paths["pmtiles"])), open_archive(str(paths["mbtiles"]))
    assert (pm.vector, pm.pmtiles, pm.min_zoom, pm.max_zoom) == (True, True, 10, 15)
    assert (mb.vector, mb.pmtiles, mb.max_zoom) == (True, False, 15)
    # a tile holds the store's roads and rivers there, with their attributes; households only when asked
    roads = sample_db.read("roads")
    road = roads[roads["name"].notna()].iloc[0]
    point = road.geometry.interpolate(0.5, normalized=True)
    z, x, y = _tile_of(point.x, point.y, 15)
    layers = {ext: mapbox_vector_tile.decode(gzip.decompress(a.tile(z, x, y)))
              for ext, a in (("pmtiles", pm), ("mbtiles", mb))}
    x0, y0, x1, y1 = tile_bounds(z, x, y)
    box = gpd.GeoSeries([shapely.box(x0, y0, x1, y1)], crs=3857).to_crs(4326).iloc[0]
    inside = roads[roads.intersects(box)]
    for ext, tile in layers.items():
        names = {f["properties"].get("name") for f in tile["roads"]["features"]}
        assert road["name"] in names and names <= set(inside["name"]) | {None}, ext
        assert {f["properties"]["kind"] for f in tile["roads"]["features"]} == set(inside["kind"])
    assert "households" not in layers["pmtiles"]
    homes = sample_db.read("households")
    pad = (x1 - x0) * 80 / 4096  # GDAL's default tile buffer
    padded = gpd.GeoSeries([shapely.box(x0 - pad, y0 - pad, x1 + pad, y1 + pad)], crs=3857).to_crs(4326).iloc[0]
    drawn = len(layers["mbtiles"]["households"]["features"])
    assert 0 < int(homes.intersects(box).sum()) <= drawn <= int(homes.intersects(padded).sum())

    monkeypatch.setenv("GRIDGEO_MAP_BASEMAP", "archive")
    monkeypatch.setenv("GRIDGEO_MAP_TILES", str(paths["pmtiles"]))
    r = client.get(f"/maps/basemap/{z}/{x}/{y}")
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert r.headers["content-encoding"] == "gzip" and mapbox_vector_tile.decode(r.content)["roads"]
    assert client.get(f"/maps/basemap/{z}/{x + 40}/{y}").content == b""  # nothing there: an empty tile
    assert client.get(f"/maps/basemap/16/{x * 2}/{y * 2}").status_code == 404  # beyond its zooms
    o = open_map("http://testserver/maps/coverage", client)
    o.page.wait_for_function("document.querySelectorAll('.leaflet-tile-loaded').length > 0")
    o.settle()
    assert o.errors == [] and o.off_machine() == []
    tiles = [u for u in o.requests if "/maps/basemap/" in u]
    assert tiles and all("http://testserver/maps/basemap/" in u for u in tiles)
    # drawn: the canvas tiles hold the background, the roads' orange and the rivers' blue
    colours = o.js("""() => {
        const seen = {bg: 0, road: 0, river: 0};
        for (const c of document.querySelectorAll('canvas.leaflet-tile-loaded')) {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 0; i < d.length; i += 4) {
                const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
                if (r === 0xf3 && g === 0xef && b === 0xe6) seen.bg++;
                else if (r > 200 && g > 120 && g < 200 && b < 110) seen.road++;
                else if (b > 150 && r < 130 && b > g) seen.river++;
            }
        }
        return seen; }""")
    assert colours["bg"] > 0 and colours["road"] > 0 and colours["river"] > 0, colours
    assert "本地底图" in o.js("document.querySelector('.leaflet-control-layers').innerText")
    # damaged and foreign archives are refused with a reason
    bad = tmp_path / "bad.pmtiles"
    bad.write_bytes(b"PMTiles\x03" + b"\xff" * 50)
    with pytest.raises(ArchiveError, match="not a PMTiles"):
        open_archive(str(bad))
    (tmp_path / "other.pmtiles").write_bytes(paths["mbtiles"].read_bytes())
    with pytest.raises(ArchiveError, match="not a PMTiles"):
        open_archive(str(tmp_path / "other.pmtiles"))
    r = runner.invoke(app, ["map", "basemap", str(tmp_path / "x.geojson"), "--database", sample_db.url])
    assert r.exit_code != 0 and ".mbtiles or .pmtiles" in r.output


def test_a_province_map_draws_its_grids_from_vector_tiles(client, open_map, sample_db, monkeypatch):
    """Above GRIDGEO_MAP_TILED_GRIDS grids the coverage map loads the grids from /tiles and
    colours them by the staffing classes (gridgeo.coverage.staffing) of each tile's codes."""
    from gridgeo.maps.coverage import CLASSES, staffing_classes

    monkeypatch.setenv("GRIDGEO_MAP_TILED_GRIDS", "10")  # the sample's 52 grids are "many"
    grids = sample_db.read("grids")
    _, cls = staffing_classes(grids["code"], sample_db.read("staff"))
    expected = dict(zip(grids["code"], cls.tolist()))
    r = client.get("/maps/coverage")
    assert "GG.tiledGrids(" in r.text and "GG.polygons(" not in r.text and "GG.lines(" not in r.text
    spec = json.loads(re.search(r"GG\.tiledGrids\((\{.*?\})\);", r.text, re.S).group(1))
    assert {c: spec["cls"].get(c, spec["base"]) for c in expected} == expected
    assert len(spec["cls"]) == sum(v != spec["base"] for v in expected.values()) < len(expected)
    assert f"共 {len(grids)} 个网格" in r.text
    o = open_map("http://testserver/maps/coverage", client,
                 ready="document.querySelectorAll('canvas.leaflet-tile-loaded').length > 0")
    o.page.wait_for_function("document.querySelectorAll('path.gg-grid').length === 0")
    o.settle()
    assert o.errors == [] and o.off_machine() == []
    asked = [u for u in o.requests if "/tiles/" in u]
    assert {u.split("/tiles/")[1].split("/")[0] for u in asked} == {"grids", "roads", "villages"}
    assert all(u.startswith("http://testserver/tiles/") for u in asked)
    assert not any("/tiles/grids/0/" in u for u in asked)  # not Leaflet's opening view, before the fit
    # the fills on the canvas are the classes' colours
    seen = o.js("""(colours) => {
        const hex = colours.map(h => [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16)));
        const found = hex.map(() => 0);
        for (const c of document.querySelectorAll('canvas.leaflet-tile-loaded')) {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 0; i < d.length; i += 4) {
                hex.forEach((h, k) => { if (d[i + 3] > 60 && Math.abs(d[i] - h[0]) < 4 && Math.abs(d[i + 1] - h[1]) < 4
                                           && Math.abs(d[i + 2] - h[2]) < 4) found[k]++; });
            }
        }
        return found; }""", [c for _, c in CLASSES])
    for k in set(expected.values()):
        assert seen[k] > 0, (k, seen)
    # a click on an understaffed grid shows its code, households and class, from the tile
    code = next(c for c, k in expected.items() if k == 1)
    row = grids[grids["code"] == code].iloc[0]
    pt = row.geometry.representative_point()
    m = o.var("map")
    o.js(f"{m}.setView([{pt.y}, {pt.x}], 15, {{animate: false}})")
    o.page.wait_for_timeout(300)
    o.page.wait_for_function("[...document.querySelectorAll('canvas.leaflet-tile-loaded')].length > 0")
    o.page.wait_for_timeout(400)
    xy = o.js(f"(() => {{ const p = {m}.latLngToContainerPoint([{pt.y}, {pt.x}]); return [p.x, p.y]; }})()")
    box = o.page.locator(f"#{m}").bounding_box()
    o.page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    o.page.wait_for_selector(".leaflet-popup-content")
    text = o.js("document.querySelector('.leaflet-popup-content').innerText")
    assert code in text and CLASSES[1][0] in text and f"{int(row['households']):,}" in text
    # then the grid's village and staff, from the lookup API beside /tiles
    o.page.wait_for_function("document.querySelector('.leaflet-popup-content').innerText.includes('网格指导员')")
    text = o.js("document.querySelector('.leaflet-popup-content').innerText")
    staff = sample_db.read("staff")
    names = staff.loc[staff["grid_code"] == code, "name"].tolist()
    village = sample_db.read("divisions").set_index("code").loc[row["village_code"], "name"]
    assert names and all(n in text for n in names) and village in text and code in text
    assert any(u.startswith("http://testserver/v1/lookup?lon=") for u in o.requests)
    # zoomed out the tiles are light (the code only, as the feature id): the popup still names
    # the grid by its code, and its class, and says what zooming in shows
    o.js(f"{m}.closePopup(); {m}.setView([{pt.y}, {pt.x}], 10, {{animate: false}})")
    o.page.wait_for_timeout(300)
    o.page.wait_for_function("[...document.querySelectorAll('canvas.leaflet-tile-loaded')].length > 0")
    o.page.wait_for_timeout(400)
    assert any(re.search(r"/tiles/grids/9/", u) for u in o.requests)
    xy = o.js(f"(() => {{ const p = {m}.latLngToContainerPoint([{pt.y}, {pt.x}]); return [p.x, p.y]; }})()")
    o.page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    o.page.wait_for_selector(".leaflet-popup-content")
    text = o.js("document.querySelector('.leaflet-popup-content').innerText")
    shown = re.findall(r"\d{15}", text)
    assert shown and shown[0] in expected and CLASSES[expected[shown[0]]][0] in text and "放大后显示" in text
    # a village: only its grids are drawn (by code prefix)
    spec = json.loads(re.search(r"GG\.tiledGrids\((\{.*?\})\);",
                                client.get("/maps/coverage?village=331124002").text, re.S).group(1))
    assert spec["prefix"] == "331124002"
    # a threshold that is not a number is a clear error; below it the grids are inline again
    monkeypatch.setenv("GRIDGEO_MAP_TILED_GRIDS", "many")
    r = client.get("/maps/coverage")
    assert r.status_code == 422 and "GRIDGEO_MAP_TILED_GRIDS" in r.text
    monkeypatch.setenv("GRIDGEO_MAP_TILED_GRIDS", "52")
    assert "GG.polygons(" in client.get("/maps/coverage").text


def test_a_province_workload_map_draws_the_same_tiles(client, open_map, sample_db, monkeypatch):
    """Above GRIDGEO_MAP_TILED_GRIDS the workload map takes its grids from the tiles the
    coverage map draws (one tile set), coloured by the classes of the inline map."""
    from gridgeo.maps.workload import COLOURS, breaks

    monkeypatch.setenv("GRIDGEO_MAP_TILED_GRIDS", "10")
    table = per_grid(sample_db, "2026")
    limits = breaks(table["per_worker"])
    values = table["per_worker"].to_numpy(dtype=float)
    expected = dict(zip(table.index, np.where(np.isfinite(values), np.searchsorted(limits, values), len(COLOURS))))
    r = client.get("/maps/workload?period=2026")
    assert r.status_code == 200 and "GG.tiledGrids(" in r.text and "GG.polygons(" not in r.text
    spec = json.loads(re.search(r"GG\.tiledGrids\((\{.*?\})\);", r.text, re.S).group(1))
    assert {c: spec["cls"].get(c, spec["base"]) for c in expected} == expected
    assert spec["url"].startswith("../tiles/grids/") and spec["styles"][expected[table["per_worker"].idxmax()]]["fillColor"] == COLOURS[-1]
    o = open_map("http://testserver/maps/workload?period=2026", client,
                 ready="document.querySelectorAll('canvas.leaflet-tile-loaded').length > 0")
    o.settle()
    assert o.errors == [] and o.off_machine() == []
    assert {u.split("/tiles/")[1].split("/")[0] for u in o.requests if "/tiles/" in u} == {"grids", "roads", "villages"}
    assert "人均事件数" in o.js("document.querySelector('.gg-legend').innerText")
    # the events map too: its events over the same tiles; a grid worker's few grids stay inline
    r = client.get("/maps/events?period=2026-03&village=331124002")
    assert "GG.tiledGrids(" in r.text and "GG.events(" in r.text and "GG.polygons(" not in r.text
    spec = json.loads(re.search(r"GG\.tiledGrids\((\{.*?\})\);", r.text, re.S).group(1))
    assert spec["prefix"] == "331124002" and spec["cls"] == {} and len(spec["styles"]) == 1
    from helpers.authn import headers_for

    worker = headers_for(sample_db, "grid_worker", grids=["331124002001001"])
    assert "GG.polygons(" in client.get("/maps/events?period=2026-03", headers=worker).text


@pytest.mark.parametrize("url, status, words", [
    ("/maps/events?period=2026-13", 422, "period"),
    ("/maps/workload?measure=happiness", 422, "measure"),
    ("/maps/workload?platform=weather", 422, "platform"),
    ("/maps/coverage?village=不存在村", 422, "不存在村"),
    ("/maps/coverage?basemap=osm", 422, "base map"),
    ("/maps/plans/nope", 404, "nope"),
    ("/maps/assets/../offline.py", 404, ""),
    ("/maps/assets/update.sh", 404, "update.sh"),
])
def test_api_map_errors_are_problems(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.text


# -- the CLI ---------------------------------------------------------------------------------------

def test_cli_map_commands():
    from gridgeo.cli import app

    r = CliRunner().invoke(app, ["map", "--help"])
    assert r.exit_code == 0
    for kind in KINDS:
        assert kind in r.output


def test_cli_map_plan_from_a_draft_file(sample_db, tmp_path):
    from gridgeo.cli import app

    draft, _ = merge_two_neighbours(sample_db.read("grids"))
    path = tmp_path / "draft.geojson"
    draft.drop(columns=["plan_id"], errors="ignore").to_file(path)
    out = tmp_path / "plan.html"
    r = CliRunner().invoke(app, ["map", "plan", "--database", sample_db.url, "--draft", str(path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "边界调整" in out.read_text(encoding="utf-8")
    r = CliRunner().invoke(app, ["map", "workload", "--database", sample_db.url, "--period", "2026-13",
                                 "--out", str(tmp_path / "x.html")])
    assert r.exit_code == 1 and "period" in r.output


# -- the numbers behind the maps (both databases) -----------------------------------------------

def test_staffing_flags_the_understaffed_grids(sample_store):
    table = staffing(sample_store.read("grids")["code"], sample_store.read("staff"))
    assert len(table) == 52
    assert dict(table.loc[table["n_missing"] > 0, "missing"]) == UNDERSTAFFED
    assert (table["completeness"] == 1).sum() == 49
    assert table["n_grid_head"].sum() == 51 and table["n_instructor"].sum() == 51
    assert table["workers"].sum() == 78 + 63  # full- and part-time workers
    # the province map's fast count of missing roles is the same rule
    from gridgeo.coverage import missing_roles

    staff = sample_store.read("staff")
    assert np.array_equal(missing_roles(table.index, staff), table["n_missing"].to_numpy())
    assert np.array_equal(missing_roles(table.index, sample_store), table["n_missing"].to_numpy())
    fewer = staff[staff["role"] != "instructor"]
    assert np.array_equal(missing_roles(table.index, fewer), staffing(table.index, fewer)["n_missing"].to_numpy())
    assert np.array_equal(missing_roles(["331124002001999"], None), [3])
    # and the database's count of them, for a province map's page
    from gridgeo.coverage import missing_by_grid

    plan = sample_store.plan_in_force()
    counted = missing_by_grid(sample_store, plan["id"])
    assert counted["code"].tolist() == table.index.tolist()
    assert np.array_equal(counted["n_missing"].to_numpy(), table["n_missing"].to_numpy())
    assert set(missing_by_grid(sample_store, plan["id"], "331124002")["code"].str[:9]) == {"331124002"}


def test_workload_per_grid(sample_store):
    table = per_grid(sample_store)
    period = table.attrs["period"]
    assert period == Period(dt.date(2025, 10, 1), dt.date(2026, 9, 30))
    assert table["events"].sum() + table.attrs["unplaced"] == 22_000
    assert np.array_equal(table[["open", "overdue", "closed", "rejected"]].sum(axis=1), table["events"])
    worked = table["workers"] > 0
    assert np.allclose(table.loc[worked, "per_worker"], table.loc[worked, "events"] / table.loc[worked, "workers"])
    assert np.allclose(table["per_100_households"], 100 * table["events"] / table["households"])
    market = per_grid(sample_store, "2026-Q1", platform="market")
    assert 0 < market["events"].sum() < table["events"].sum() / 4


def test_events_are_read_placed_and_classified(sample_store):
    events = read_events(sample_store, "2026-03")
    local = events["reported_at"].dt.tz_convert(CST)
    assert len(events) > 0 and (local.dt.month == 3).all() and (local.dt.year == 2026).all()
    assert set(events["status"]) <= {"open", "overdue", "closed", "rejected"}
    placed = events[events["grid_code"].notna()]
    grids = sample_store.read("grids").set_index("code").to_crs(4549)
    at = placed.geometry.to_crs(4549).to_numpy()
    distance = shapely.distance(grids.geometry.reindex(placed["grid_code"]).to_numpy(), at)
    assert (distance == 0).mean() > 0.98 and distance.max() <= 50.01  # inside, or snapped
    # GCJ-02 and BD-09 reports are converted before they are placed
    assert len(placed) / len(events) > 0.9


def test_periods():
    assert parse_period("2026") == Period(dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert parse_period("2026-Q1") == Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    assert parse_period("2026q4").end == dt.date(2026, 12, 31)
    assert parse_period("2026-02") == Period(dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert parse_period("2025-10/2026-09") == Period(dt.date(2025, 10, 1), dt.date(2026, 9, 30))
    assert parse_period("2026-03-05") == Period(dt.date(2026, 3, 5), dt.date(2026, 3, 5))
    assert len(parse_period("2025-10/2026-09").steps()) == 12
    weeks = parse_period("2026-03").steps()
    assert weeks[0] == Period(dt.date(2026, 3, 1), dt.date(2026, 3, 7)) and weeks[-1].end == dt.date(2026, 3, 31)
    assert len(parse_period("2026-03-01/2026-03-10").steps()) == 10
    start, end = parse_period("2026-03").bounds()
    assert start == dt.datetime(2026, 2, 28, 16, tzinfo=dt.timezone.utc)
    for bad in ["2026-13", "last year", "2026-09/2026-01", ""]:
        with pytest.raises(InvalidPeriod):
            parse_period(bad)


def test_compare_grids():
    g = gpd.read_file(SAMPLE / "township.gpkg", layer="grids")
    draft, (kept, gone) = merge_two_neighbours(g)
    draft.loc[draft["code"] == g["code"].iloc[-1], "code"] = "331124999999999"  # renumbered
    dc, cc = compare_grids(draft, g)
    assert dict(dc["change"].value_counts()) == {"unchanged": 49, "changed": 1, "renumbered": 1}
    assert set(g.loc[cc["change"] == "changed", "code"]) == {kept, gone}
    assert (cc.loc[g["code"] == g["code"].iloc[-1], "match"] == "331124999999999").all()
    dc, cc = compare_grids(g.iloc[:3], g.iloc[2:])
    assert list(dc["change"]) == ["new", "new", "unchanged"]
    assert (cc["change"].iloc[1:] == "removed").all()
