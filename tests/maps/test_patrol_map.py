"""The patrol map (/maps/patrols): tracks over the grids, grids coloured by patrol coverage,
scoped like the events map; opened in headless Chromium with the network off.

Two workers patrol the events township in November 2026: 李四 (grid G11) walks east
through G11 22 m north of its one household (covered: 100 %), 赵六 (grid G12) walks in
G12 far from its households (0 %). Both databases.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from helpers.apps import app_for
from helpers.authn import headers_for
from helpers.browser import chromium
from helpers.events_world import G11, G12, G21, G22, X0, Y0
from gridgeo.maps.patrols import COVERAGE_CLASSES, coverage_class, format_duration, format_km, format_share
from gridgeo.patrols.tracks import segment_m

MS0 = 1_793_667_600_000  # 2026-11-03 09:00 +08:00, epoch ms
GREEN, RED = COVERAGE_CLASSES[-1][2], COVERAGE_CLASSES[0][2]


def walk(lon0, lat0, lon1, lat1, n, step_s=1.0):
    lon, lat = np.linspace(lon0, lon1, n), np.linspace(lat0, lat1, n)
    return {"points": [[float(a), float(b), MS0 + int(i * step_s * 1000)] for i, (a, b) in enumerate(zip(lon, lat))]}


@pytest.fixture
def patrolled(world, monkeypatch):
    app = app_for(world, monkeypatch)
    client = TestClient(app)
    client.__enter__()
    who = {"w11": headers_for(world, "grid_worker", name="李四", grids=[G11]),
           "w12": headers_for(world, "grid_worker", name="赵六", grids=[G12]),
           "w21": headers_for(world, "grid_worker", name="王五", grids=[G21]),
           "cr": headers_for(world, "command_room"), "lead": headers_for(world, "leadership"),
           "dept": headers_for(world, "department", department="综治办")}
    a = walk(X0 + 0.0005, Y0 + 0.0022, X0 + 0.0045, Y0 + 0.0022, 401)  # G11, ~390 m
    b = walk(X0 + 0.009, Y0 + 0.001, X0 + 0.009, Y0 + 0.002, 50, 5.0)  # G12, ~110 m
    for user, track in (("w11", a), ("w12", b)):
        r = client.post("/v1/patrols", json=track, headers=who[user])
        assert r.status_code == 201, r.text
    client.who = who
    client.tracks = {"w11": a, "w12": b}
    yield client
    client.__exit__(None, None, None)


def payloads(html: str, call: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(rf"GG\.{call}\((\{{.*?\}})\s*\);", html, re.S)]


def track_layer(html: str) -> dict:
    (spec,) = [s for s in payloads(html, "lines") if s["className"] == "gg-track"]
    return spec


def decoded_points(spec: dict) -> np.ndarray:
    """The encoded polyline points of a GG.lines payload (lat/lon), decoded as Google's."""
    values, shift, acc, out = [], 0, 0, []
    for ch in spec["enc"]:
        b = ord(ch) - 63
        acc |= (b & 0x1F) << shift
        shift += 5
        if b < 0x20:
            values.append(~(acc >> 1) if acc & 1 else acc >> 1)
            acc = shift = 0
    q = np.cumsum(np.array(values, dtype=np.int64).reshape(-1, 2), axis=0)
    return q / spec["scale"]


def test_formats_for_people():
    assert list(format_km([0, 0.85, 12.34, 1234.5])) == ["0 米", "850 米", "12.3 公里", "1,234.5 公里"]
    assert list(format_duration([0, 35 / 60, 2 + 5 / 60, 30])) == ["0 分", "35 分", "2 小时 05 分", "30 小时 00 分"]
    assert list(format_share([0.825, np.nan, 1.0])) == ["82.5%", "无住户", "100.0%"]
    assert list(coverage_class([0, 0.1999, 0.2, 0.79, 0.8, 1.0, np.nan])) == [0, 0, 1, 3, 4, 4, 5]


def test_patrol_map_scope(patrolled, world):
    c, who = patrolled, patrolled.who
    url = "/maps/patrols?period=2026-11"
    assert c.get(url, headers={"Authorization": ""}).status_code == 401
    assert c.get(url, headers=who["dept"]).status_code == 403  # no patrol map for a department
    # the command room: every grid, both tracks
    r = c.get(url, headers=who["cr"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
    (grids,) = payloads(r.text, "polygons")
    assert sorted(grids["props"]["code"]) == sorted([G11, G12, G21, G22])
    assert track_layer(r.text)["parts"] == [1, 1]
    # a worker: their grid, and of the tracks only what runs inside it
    for user, mine, lon_range in (("w11", G11, (X0 + 0.0005, X0 + 0.0045)), ("w12", G12, (X0 + 0.009, X0 + 0.009))):
        r = c.get(url, headers=who[user])
        assert r.status_code == 200
        (grids,) = payloads(r.text, "polygons")
        assert grids["props"]["code"] == [mine]
        spec = track_layer(r.text)
        assert spec["parts"] == [1]
        latlon = decoded_points(spec)
        assert lon_range[0] - 1e-5 <= latlon[:, 1].min() and latlon[:, 1].max() <= lon_range[1] + 1e-5
    # a worker of a grid no one patrolled sees no track at all
    r = c.get(url, headers=who["w21"])
    assert r.status_code == 200 and track_layer(r.text)["parts"] == [] and track_layer(r.text)["n"] == 0
    # another month: no tracks, every grid at 0 % (or without households)
    r = c.get("/maps/patrols?period=2026-10", headers=who["cr"])
    assert r.status_code == 200 and track_layer(r.text)["parts"] == []
    # hostile input: a bad period is a problem, not a 500; a huge one is refused
    bad = c.get("/maps/patrols?period=2026-13", headers=who["cr"])
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert c.get("/maps/patrols?period=" + "9" * 5000, headers=who["cr"]).status_code in (414, 422)
    assert c.get("/maps/patrols?period=2026-11&village=%00%27", headers=who["cr"]).status_code in (200, 404, 422)


def test_patrol_map_in_chromium(patrolled, world, tmp_path):
    c = patrolled
    grids = world.read("grids").set_index("code")
    with chromium() as browser:
        ctx = browser.new_context(offline=True, viewport={"width": 1366, "height": 768})
        blocked, errors = [], []

        def route(r):
            url = r.request.url
            if url.startswith("http://testserver/"):
                resp = c.get(url[len("http://testserver"):], headers=c.who["lead"])
                r.fulfill(status=resp.status_code, body=resp.content,
                          headers={"content-type": resp.headers.get("content-type", "")})
            elif url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                blocked.append(url)
                r.abort()

        ctx.route("**/*", route)
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("http://testserver/maps/patrols?period=2026-11", wait_until="load")
        page.wait_for_function("document.querySelectorAll('path.gg-grid').length > 0")
        assert errors == [] and blocked == []
        assert page.evaluate("document.querySelectorAll('path.gg-grid').length") == 4
        names = page.evaluate("Object.keys(window)")
        grid = next(n for n in names if n.startswith("grid_layer_"))
        mp = next(n for n in names if n.startswith("map_"))
        track = next(n for n in names if n.startswith("line_layer_")
                     and page.evaluate(f"{n}.gg.spec.className") == "gg-track")
        fills = page.evaluate(f"""(() => {{ const g = {grid}.gg, out = {{}};
            g.layers.forEach((l, i) => out[g.spec.props.code[i]] = l._path.getAttribute('fill')); return out; }})()""")
        assert fills[G11] == GREEN and fills[G12] == RED
        # the tracks are drawn (two polylines on the map) and the layer control switches them
        assert page.evaluate(f"{mp}.hasLayer({track})") and page.evaluate(f"{track}.getLayers().length") == 2
        legend = page.evaluate("document.querySelector('.gg-legend').innerText")
        assert "巡查覆盖率" in legend and "80% 及以上" in legend and "巡查轨迹" in legend
        toggle = page.locator(".leaflet-control-layers-overlays label", has_text="巡查轨迹").locator("input")
        toggle.click()
        assert not page.evaluate(f"{mp}.hasLayer({track})")
        toggle.click()
        assert page.evaluate(f"{mp}.hasLayer({track})")
        # hover over G11: its figures in Chinese, formatted for people
        inside = shapely.point_on_surface(grids.geometry[G11])
        xy = page.evaluate(f"{mp}.latLngToContainerPoint([{inside.y}, {inside.x + 0.0008}])")
        page.mouse.move(xy["x"], xy["y"])
        page.mouse.move(xy["x"] + 1, xy["y"] + 1)
        page.wait_for_selector(".gg-tooltip")
        text = page.evaluate("document.querySelector('.gg-tooltip').innerText")
        pts = np.array(c.tracks["w11"]["points"])
        metres = segment_m(pts[:-1, 0], pts[:-1, 1], pts[1:, 0], pts[1:, 1]).sum()
        for expected in (G11, "巡查次数", "巡查里程", f"{metres:,.0f} 米", "巡查时长", "7 分", "覆盖率（住户）",
                         "100.0%", "签到次数"):
            assert expected in text, (expected, text)
        page.screenshot(path=str(tmp_path / "patrols.png"))
        ctx.close()
