"""Batch geolocation in-process against dask (gridgeo.scale) on the same points.

Run from the repository root::

    python benchmarks/bench_dask.py                          # 3,000,000 points, 10,000 grids
    python benchmarks/bench_dask.py --points 300000 --grids 1000   # a quick run

The grids and points are those of ``bench_locate.py`` (Voronoi grids of about 40
vertices over a 1 x 1 degree box in Zhejiang; 1% of the points outside, 0.1% on
vertices), written as GeoParquet in ``--partitions`` files. Both sides do the whole job
of ``gridgeo locate``: read the GeoParquet, locate every point, add the columns, write
GeoParquet.

``in-process``
    One process: ``geopandas.read_parquet`` of the directory, ``Locator.locate_detail``,
    one output file.
``dask threads``
    :func:`gridgeo.scale.locate.locate_parquet` on dask's thread pool in this process.
``dask LocalCluster``
    The same on a :class:`distributed.LocalCluster` of ``--workers`` processes (one
    thread each): the locator is scattered to each worker once, each partition is read,
    located and written by a worker. Cluster start-up and imports are timed apart.

On a machine of 2 cores dask has little to win: the in-process locator already runs at
tens of millions of points a second, and reading and writing Parquet dominate. What
dask buys is a job that no longer has to fit in one machine's memory or time. Every
run checks that the three outputs agree, point for point.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_locate import make_grids, make_points

from gridgeo.scale.locate import _locate_partition, _name_table, locate_parquet
from gridgeo.locate import Locator


def in_process(
    src: Path, dst: Path, locator: Locator, names: pd.DataFrame
) -> tuple[int, list[float]]:
    """The job in one process; its size and the seconds to read, locate and write."""
    t = [time.perf_counter()]
    frame = gpd.read_parquet(src)
    t.append(time.perf_counter())
    out = _locate_partition(frame, locator, _name_table(names), "wgs84", "lon", "lat", True)
    t.append(time.perf_counter())
    out.to_parquet(dst, index=False)
    t.append(time.perf_counter())
    return len(out), list(np.diff(t))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=3_000_000)
    ap.add_argument("--grids", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", help="work directory (default: a temporary one, removed after)")
    args = ap.parse_args(argv)

    work = Path(args.dir or tempfile.mkdtemp(prefix="gridgeo-bench-dask-"))
    try:
        t = time.perf_counter()
        grids = make_grids(args.grids)
        grids["code"] = [f"331124{i:09d}" for i in range(len(grids))]
        locator = Locator.from_frame(grids, "code", plan="bench")
        names = pd.DataFrame(
            {
                "name": [f"网格{i}" for i in range(len(grids))],
                "village_code": grids["code"].str[:12].to_numpy(),
                "village_name": "村",
            },
            index=grids["code"].to_numpy(),
        )
        x, y = make_points(grids, args.points)
        src = work / "points"
        src.mkdir(parents=True, exist_ok=True)
        pts = gpd.GeoDataFrame(
            {"pid": np.arange(len(x)), "source": "patrol"},
            geometry=gpd.GeoSeries(shapely.points(x, y), crs=4326),
        )
        for i, part in enumerate(np.array_split(np.arange(len(pts)), args.partitions)):
            pts.iloc[part].to_parquet(src / f"part-{i:03d}.parquet", index=False)
        del pts
        print(
            f"{len(grids):,} grids, {len(x):,} points in {args.partitions} GeoParquet files "
            f"(set-up {time.perf_counter() - t:.1f} s); {os.cpu_count()} cores"
        )

        t = time.perf_counter()
        n, (t_read, t_locate, t_write) = in_process(src, work / "in.parquet", locator, names)
        t_in = time.perf_counter() - t
        print(
            f"in-process           {t_in:7.2f} s  {n / t_in / 1e6:6.2f} M points/s  "
            f"(read {t_read:.2f} s, locate and add columns {t_locate:.2f} s, write {t_write:.2f} s)"
        )

        # imports are a one-time cost, like the cluster's start: not timed
        importlib.import_module("dask_geopandas")

        t = time.perf_counter()
        locate_parquet(
            src, work / "threads", locator=locator, names=names, crs="wgs84", client="threads"
        )
        t_th = time.perf_counter() - t
        print(
            f"dask threads         {t_th:7.2f} s  {n / t_th / 1e6:6.2f} M points/s  "
            f"{t_th / t_in:5.2f}x the in-process time"
        )

        from distributed import Client, LocalCluster

        t = time.perf_counter()
        with (
            LocalCluster(
                n_workers=args.workers, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            for module in ("gridgeo.scale", "dask_geopandas"):
                client.run(importlib.import_module, module)
            t_up = time.perf_counter() - t
            t = time.perf_counter()
            locate_parquet(
                src, work / "cluster", locator=locator, names=names, crs="wgs84", client=client
            )
            t_cl = time.perf_counter() - t
        print(
            f"dask LocalCluster    {t_cl:7.2f} s  {n / t_cl / 1e6:6.2f} M points/s  "
            f"{t_cl / t_in:5.2f}x the in-process time ({args.workers} workers; "
            f"start-up {t_up:.1f} s not counted)"
        )

        want = pd.read_parquet(work / "in.parquet", columns=["pid", "grid_code", "distance_m"])
        for name in ("threads", "cluster"):
            got = pd.read_parquet(work / name, columns=["pid", "grid_code", "distance_m"])
            got = got.sort_values("pid").reset_index(drop=True)
            pd.testing.assert_frame_equal(got, want, check_exact=True)
        print(f"outputs agree point for point ({int(want['grid_code'].notna().sum()):,} in a grid)")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
