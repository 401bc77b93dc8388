"""A province on one map: the coverage map of 100,000 grids (the sample's 52 tiled 1,923
times, as bench_province_tiles.py builds them, with the sample's staff repeated per copy)
served by `gridgeo serve`'s application on 127.0.0.1 and opened in headless Chromium (the
system's, no name resolves).

Prints: the page (time to answer, size); the map opened (navigation until every grid tile
in view is drawn) with a cold tile cache and again with a warm one; a zoom-in and a click on
a grid (interactive: until the tiles are drawn / the popup shows); a tile from the cache
(ms); and the peer: the same map inlining every grid (GRIDGEO_MAP_TILED_GRIDS above the
count), its page time and size, and the ratio.

    .venv/bin/python benchmarks/bench_province_map.py [COPIES] [--no-peer] [--no-sqlite]

With GRIDGEO_BENCH_POSTGRES_URL (an empty database, PostGIS installed) the same on PostgreSQL.
The cold open starts with nothing read: on SQLite the first tiles read the layer; then the
open after the warm-up `gridgeo serve` does at start (timed here, not left to run).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

_spec = importlib.util.spec_from_file_location("bench_province_tiles", ROOT / "benchmarks/bench_province_tiles.py")
tiles_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiles_bench)

DRAWN = """() => { const t = [...document.querySelectorAll('canvas.leaflet-tile')];
                   return t.length > 0 && t.every(c => c.classList.contains('leaflet-tile-loaded')); }"""


def add_staff(store, copies: int) -> int:
    from gridgeo.store import schema

    staff = pd.read_csv(ROOT / "data/sample/staff.csv", dtype=str)
    k = np.repeat([f"{i:04d}" for i in range(copies)], len(staff))
    rows = pd.DataFrame({
        "code": np.char.add(k.astype(str), np.tile(staff["code"].to_numpy().astype(str), copies)),
        "name": np.tile(staff["name"].to_numpy(), copies),
        "phone": np.tile(staff["phone"].to_numpy(), copies),
        "role": np.tile(staff["role"].to_numpy(), copies),
        "grid_code": np.char.add(k.astype(str), np.tile(staff["grid_code"].str[4:].to_numpy().astype(str), copies)),
    })
    # a few gaps, as a real roster has: every 7th copy lacks its first instructor
    gaps = (rows["role"] == "instructor") & (np.arange(len(rows)) % 7 == 0)
    rows = rows[~gaps.to_numpy()]
    with store.engine.begin() as conn:
        conn.execute(insert(schema.staff), rows.to_dict(orient="records"))
    return len(rows)


def serve(app) -> tuple[str, object]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def open_map(browser, url: str) -> tuple[float, object, list[str]]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    off = []
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                  else (off.append(r.request.url), r.abort()))
    page = context.new_page()
    t = time.perf_counter()
    page.goto(url, wait_until="load", timeout=600_000)
    page.wait_for_function(DRAWN, timeout=600_000, polling=50)
    return time.perf_counter() - t, page, off


def measure(url: str, copies: int, peer: bool) -> None:
    import httpx

    from gridgeo.api.deps import get_store
    from gridgeo.api.main import create_app
    from gridgeo.api.resources import _lookup_for
    from gridgeo.store import Store
    from gridgeo.tiles import CACHE, clear_cache, warm
    from helpers.browser import chromium

    store = Store(url)
    store.migrate()
    t = time.perf_counter()
    lon, lat = tiles_bench.build(store, copies)
    n_staff = add_staff(store, copies)
    n = len(store.read("grids", geometry=False))
    print(f"{store.dialect}: {n:,} grids, {n_staff:,} staff written in {time.perf_counter() - t:.1f} s")
    if store.dialect == "postgresql":  # what autovacuum does a while after a bulk load: the
        # visibility map set, so that the page's query reads its covering indexes alone
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE grids")
            conn.exec_driver_sql("VACUUM ANALYZE staff")
    from gridgeo.store import schema

    middle = store.read("grids", where=schema.grids.c.code == f"{copies // 2:04d}" + "24002001001")
    glon, glat = middle.geometry.iloc[0].representative_point().coords[0]
    app = create_app()  # GRIDGEO_TILES_WARM=false: the warm-up is timed below, not left running
    app.dependency_overrides[get_store] = lambda: store
    base, server = serve(app)
    clear_cache()
    with httpx.Client(base_url=base, timeout=600) as http, chromium() as browser:
        t = time.perf_counter()
        page = http.get("/maps/coverage")
        t_page = time.perf_counter() - t
        assert page.status_code == 200 and "GG.tiledGrids(" in page.text, page.text[:300]
        print(f"  tiled coverage page, nothing read yet: {t_page:.2f} s, {len(page.content) / 1e6:.2f} MB")
        t = time.perf_counter()
        http.get("/maps/coverage")
        print(f"  the page again: {time.perf_counter() - t:.2f} s")
        for label in ("cold tile cache", "after the warm-up gridgeo serve does at start", "warm tile cache"):
            if label.startswith("cold"):
                clear_cache()
            if label.startswith("after"):
                clear_cache()
                t = time.perf_counter()
                made = warm(store, min_grids=20_000)
                _lookup_for(store).prepare()  # as gridgeo serve's warm-up does after the tiles
                print(f"  warm-up (gridgeo.tiles.warm, then Lookup.prepare, in a background thread at start): {made} tiles, "
                      f"{time.perf_counter() - t:.1f} s, {CACHE.size / 1e6:.1f} MB")
            t_open, p, off = open_map(browser, base + "/maps/coverage")
            assert not off, off
            tiles = p.evaluate("document.querySelectorAll('canvas.leaflet-tile-loaded').length")
            zoom = p.evaluate("Object.keys(window).filter(k => k.startsWith('map_')).map(k => window[k].getZoom())[0]")
            print(f"  opened and drawn ({label}): {t_open:.2f} s ({tiles} tiles at zoom {zoom})")
            # where the time went, from the browser's own timings (ms from the start of navigation)
            got = p.evaluate("""() => {
                const nav = performance.getEntriesByType('navigation')[0];
                const t = performance.getEntriesByType('resource').filter(r => r.name.includes('/tiles/'));
                const grids = t.filter(r => r.name.includes('/tiles/grids/'));
                return [nav.responseEnd, nav.loadEventEnd, t.length, grids.length,
                        grids.reduce((a, r) => a + r.encodedBodySize, 0),
                        Math.min(...t.map(r => r.startTime)), Math.max(...t.map(r => r.responseEnd)),
                        [...new Set(grids.map(r => r.name.split('/tiles/grids/')[1].split('/')[0]))]]; }""")
            print(f"    page answered at {got[0] / 1e3:.2f} s, loaded {got[1] / 1e3:.2f} s; {got[2]} tiles asked "
                  f"({got[3]} of grids, zoom {', '.join(got[7])}: {got[4] / 1e6:.2f} MB) from {got[5] / 1e3:.2f} s, "
                  f"the last answered at {got[6] / 1e3:.2f} s; drawn {t_open - got[6] / 1e3:.2f} s after")
            if label.startswith("warm"):
                if os.environ.get("GRIDGEO_BENCH_SCREENSHOT"):
                    p.screenshot(path=os.environ["GRIDGEO_BENCH_SCREENSHOT"] + f".{store.dialect}.png")
                m = p.evaluate("Object.keys(window).filter(k => k.startsWith('map_'))[0]")
                box = p.locator(f"#{m}").bounding_box()

                def click():  # on a grid in the middle of the province
                    xy = p.evaluate(f"(() => {{ const q = {m}.latLngToContainerPoint([{glat}, {glon}]); "
                                    "return [q.x, q.y]; })()")
                    p.mouse.click(box["x"] + xy[0], box["y"] + xy[1])

                t = time.perf_counter()
                click()
                p.wait_for_selector(".leaflet-popup-content", timeout=60_000)
                t_click0 = time.perf_counter() - t
                p.evaluate(f"{m}.closePopup()")
                t = time.perf_counter()
                p.evaluate(f"{m}.setView([{glat}, {glon}], {zoom + 3}, {{animate: false}})")
                p.wait_for_timeout(50)
                p.wait_for_function(DRAWN, timeout=600_000, polling=50)
                t_zoom = time.perf_counter() - t
                t = time.perf_counter()
                click()
                p.wait_for_selector(".leaflet-popup-content", timeout=60_000)
                t_click = time.perf_counter() - t
                print(f"  a click to a grid's popup at the opening zoom: {t_click0 * 1e3:.0f} ms; zoom in 3 levels, "
                      f"drawn: {t_zoom:.2f} s; a click there: {t_click * 1e3:.0f} ms")
            p.context.close()
        # a tile from the cache, over HTTP
        x, y = tiles_bench.tile_of(lon, lat, 12)
        http.get(f"/tiles/grids/12/{x}/{y}.mvt")
        reps = 200
        t = time.perf_counter()
        for _ in range(reps):
            http.get(f"/tiles/grids/12/{x}/{y}.mvt")
        t_tile = (time.perf_counter() - t) / reps
        print(f"  a grid tile from the cache over HTTP: {t_tile * 1e3:.2f} ms "
              f"(cache {CACHE.size / 1e6:.1f} MB, {CACHE.hits:,} hits)")
        # A lookup that finds the directory expired: it waited for the province's read (the
        # peer: background_after_s = inf, as before), or answers from the rows it has while a
        # thread reads them again. The expiry is simulated (the TTL is ten times a read).
        lk = _lookup_for(store)
        plan = lk.plan_at()
        for background in (False, True):
            lk.background_after_s = 1.0 if background else float("inf")
            read_at, rows, took = lk._directories[plan["id"]]
            lk._directories[plan["id"]] = (read_at - 1e6, rows, took)
            t = time.perf_counter()
            got = http.get("/v1/lookup", params={"lon": glon, "lat": glat})
            t_exp = time.perf_counter() - t
            assert got.status_code == 200, got.text[:300]
            lk.wait_refreshed()
            if background:
                print(f"  a lookup finding the directory expired: {t_exp * 1e3:.0f} ms, the directory read "
                      f"again in the background ({lk._directories[plan['id']][2]:.1f} s); waiting for the "
                      f"read, as before: {t_wait:.2f} s ({t_wait / t_exp:.0f}x)")
            t_wait = t_exp
        if peer:
            os.environ["GRIDGEO_MAP_TILED_GRIDS"] = str(n + 1)
            t = time.perf_counter()
            inline = http.get("/maps/coverage")
            t_inline = time.perf_counter() - t
            assert inline.status_code == 200 and "GG.polygons(" in inline.text
            print(f"peer, every grid inlined: page {t_inline:.1f} s, {len(inline.content) / 1e6:.1f} MB "
                  f"({t_inline / t_page:.0f}x the tiled page's time, "
                  f"{len(inline.content) / len(page.content):.0f}x its size)")
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            p = context.new_page()
            t = time.perf_counter()
            p.goto(base + "/maps/coverage", wait_until="load", timeout=900_000)
            p.wait_for_function("document.querySelectorAll('path.gg-grid').length > 0", timeout=900_000)
            t_peer = time.perf_counter() - t
            print(f"  opened and drawn: {t_peer:.1f} s")
            context.close()
            os.environ.pop("GRIDGEO_MAP_TILED_GRIDS")
    server.should_exit = True
    clear_cache()
    store.close()


def main(copies: int, peer: bool) -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    if "--no-sqlite" not in sys.argv:
        with tempfile.TemporaryDirectory() as d:
            measure(f"sqlite:///{d}/province.db", copies, peer)
    if os.environ.get("GRIDGEO_BENCH_POSTGRES_URL"):
        measure(os.environ["GRIDGEO_BENCH_POSTGRES_URL"], copies, peer)
    print(f"load average after: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")


if __name__ == "__main__":
    os.environ.setdefault("GRIDGEO_REQUEST_LOG", "false")
    os.environ["GRIDGEO_TILES_WARM"] = "false"
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 1923, "--no-peer" not in sys.argv)
