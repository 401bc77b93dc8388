"""Vector tiles at province scale: 100,000 grids (the sample's 52 tiled 1,923 times, as
tests/maps does for 10,000), served by /tiles on SQLite (mapbox-vector-tile) and, with
GRIDGEO_BENCH_POSTGRES_URL, on PostgreSQL (PostGIS ST_AsMVT).

Prints, for a zoom-14 tile in the middle and a zoom-8 tile over a thousand grids: the first
answer (layer read and indexed on SQLite, the query on PostgreSQL), an uncached tile, and a
tile from the cache, through the application (TestClient), and the ratio uncached / cached.

    .venv/bin/python benchmarks/bench_province_tiles.py [COPIES]
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]


def tile_of(lon, lat, z):
    n = 2**z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def build(store, copies: int) -> tuple[float, float]:
    """Write ``copies`` shifted copies of the sample's grids as one plan in force."""
    from gridgeo.store import schema

    g = gpd.read_file(ROOT / "data/sample/township.gpkg", layer="grids")
    x0, y0, x1, y1 = g.total_bounds
    side = int(np.ceil(np.sqrt(copies)))
    k = np.arange(copies)
    dx = np.repeat((k % side) * (x1 - x0) * 1.02, len(g))
    dy = np.repeat((k // side) * (y1 - y0) * 1.02, len(g))
    geoms = np.tile(g.geometry.to_numpy(), copies)
    geoms = shapely.transform(geoms, lambda xy: xy)  # new objects, not the same ones repeated
    coords = shapely.get_coordinates(geoms)
    counts = shapely.get_num_coordinates(geoms)
    shift = np.column_stack([np.repeat(dx, counts), np.repeat(dy, counts)])
    geoms = shapely.set_coordinates(geoms, coords + shift)
    prefix = np.repeat([f"{i:04d}" for i in k], len(g))
    village = np.char.add(prefix.astype(str), np.tile(g["village_code"].str[4:].to_numpy().astype(str), copies))
    code = np.char.add(prefix.astype(str), np.tile(g["code"].str[4:].to_numpy().astype(str), copies))
    with store.engine.begin() as conn:
        conn.execute(insert(schema.plans), [{"id": 1, "version": "province", "status": "published",
                                              "effective_from": dt.date(2020, 1, 1),
                                              "created_at": dt.datetime.now(dt.timezone.utc)}])
        conn.execute(insert(schema.divisions), [{"code": v, "name": v, "level": "village"}
                                                for v in np.unique(village)])
        wkb = shapely.to_wkb(geoms)
        rows = pd.DataFrame({"plan_id": 1, "code": code, "name": code, "village_code": village,
                             "households": np.tile(g["households"].to_numpy(), copies), "geometry": wkb})
        conn.execute(insert(schema.grids), rows.to_dict(orient="records"))
    return float(np.mean(shapely.get_x(shapely.centroid(geoms)))), float(np.mean(shapely.get_y(shapely.centroid(geoms))))


def measure(url: str, copies: int) -> None:
    from fastapi.testclient import TestClient

    from gridgeo.api.deps import get_store
    from gridgeo.api.main import create_app
    from gridgeo.store import Store
    from gridgeo.tiles import clear_cache

    store = Store(url)
    store.migrate()
    t = time.perf_counter()
    lon, lat = build(store, copies)
    n = len(store.read("grids"))
    print(f"{store.dialect}: {n:,} grids written in {time.perf_counter() - t:.1f} s")
    app = create_app()
    app.dependency_overrides[get_store] = lambda: store
    clear_cache()
    with TestClient(app) as c:
        for z in (14, 8):
            x, y = tile_of(lon, lat, z)
            t = time.perf_counter()
            first = c.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
            t_first = time.perf_counter() - t
            t = time.perf_counter()
            c.get(f"/tiles/grids/{z}/{x + 1}/{y}.mvt")
            t_new = time.perf_counter() - t
            reps = 200
            t = time.perf_counter()
            for _ in range(reps):
                c.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
            t_cached = (time.perf_counter() - t) / reps
            print(f"  z{z} tile ({len(first.content) / 1e3:.0f} kB): first {t_first * 1e3:.0f} ms, "
                  f"another {t_new * 1e3:.1f} ms, from the cache {t_cached * 1e3:.2f} ms "
                  f"({t_new / t_cached:.0f}x)")
    store.close()


if __name__ == "__main__":
    os.environ.setdefault("GRIDGEO_REQUEST_LOG", "false")
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 1923
    with tempfile.TemporaryDirectory() as d:
        measure(f"sqlite:///{d}/province.db", copies)
    if os.environ.get("GRIDGEO_BENCH_POSTGRES_URL"):
        measure(os.environ["GRIDGEO_BENCH_POSTGRES_URL"], copies)
