"""Coverage of a month of patrols: gridgeo.patrols against a per-track peer.

A synthetic town of 10 x 10 grids of 500 m (households spread at random, 200 a grid; a
road lattice every 100 m) and W workers (default 100), one grid each, who patrol every day
of D days (default 30) for H hours (default 2) at 1 Hz: a walk along the roads of their
grid at 1.2 m/s with 3 m of GPS noise. That is W x D tracks of 3,600 H points each
(21.6 M points by default).

gridgeo
    :func:`gridgeo.patrols.patrol_coverage`: distance, time patrolled and household and
    road coverage (50 m) per grid and per worker, vectorised (projection, location of
    every vertex, bincounts, one STRtree ``dwithin`` query of track pieces against the
    households and road points).
peer
    What one writes with shapely first: a loop over the tracks, each projected and asked
    of an STRtree of the households and road points (``query(track, "dwithin", 50)``),
    the covered sets united and summed per grid (exact distances). It runs on the first
    ``--peer-share`` of the tracks (default 10 %) and its time is scaled up to all of
    them; gridgeo's covered households and road on that same share are compared with it
    (they agree but for targets within 1.4 m, gridgeo's cell, of the 50 m edge).

    .venv/bin/python benchmarks/bench_patrols.py
    .venv/bin/python benchmarks/bench_patrols.py --workers 20 --days 5 --hours 1   # a quick run
"""

from __future__ import annotations

import argparse
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from gridgeo.patrols import patrol_coverage

X0, Y0 = 450_000.0, 3_142_000.0  # EPSG:4549, about 119.49E 28.40N
CELL, SIDE, STEP = 500.0, 10, 100.0
TO_LL = Transformer.from_crs(4549, 4326, always_xy=True)
TO_M = Transformer.from_crs(4326, 4549, always_xy=True)


def ll(x, y):
    return TO_LL.transform(np.asarray(x) + X0, np.asarray(y) + Y0)


def town(rng):
    boxes = [shapely.box(i * CELL, j * CELL, (i + 1) * CELL, (j + 1) * CELL) for j in range(SIDE) for i in range(SIDE)]
    codes = [f"331124201{1 + k // 10:03d}{1 + k % 10:03d}" for k in range(SIDE * SIDE)]
    to_ll = lambda g: shapely.transform(g, lambda xy: np.column_stack(ll(xy[:, 0], xy[:, 1])))  # noqa: E731
    grids = gpd.GeoDataFrame({"code": codes, "name": codes, "village_code": [c[:12] for c in codes]},
                             geometry=to_ll(np.array(boxes, dtype=object)), crs=4326)
    n = 200 * SIDE * SIDE
    hx, hy = rng.uniform(0, CELL * SIDE, n), rng.uniform(0, CELL * SIDE, n)
    households = gpd.GeoDataFrame({"households": np.ones(n, int)}, geometry=shapely.points(*ll(hx, hy)), crs=4326)
    ticks = np.arange(0, CELL * SIDE + 1, STEP)
    lines = [shapely.LineString([(t, 0), (t, CELL * SIDE)]) for t in ticks] + \
            [shapely.LineString([(0, t), (CELL * SIDE, t)]) for t in ticks]
    roads = gpd.GeoDataFrame({"kind": ["road"] * len(lines)}, geometry=to_ll(np.array(lines, dtype=object)), crs=4326)
    return grids, households, roads


def tracks(rng, workers: int, days: int, hours: float):
    """Walks along the road lattice of each worker's grid, one fix a second (vectorised:
    random lattice steps, interpolated)."""
    seconds = int(hours * 3600)
    speed = 1.2
    n_tracks = workers * days
    steps_per = int(np.ceil(seconds * speed / STEP)) + 2
    nodes = int(CELL / STEP)  # 5 steps per grid side
    grid_of = np.repeat(np.arange(workers) % (SIDE * SIDE), days)
    gx, gy = (grid_of % SIDE) * CELL, (grid_of // SIDE) * CELL
    # Random lattice walk: each step moves one node east, west, north or south, kept in the grid.
    i = np.zeros((n_tracks, steps_per), int)
    j = np.zeros((n_tracks, steps_per), int)
    i[:, 0], j[:, 0] = rng.integers(0, nodes + 1, n_tracks), rng.integers(0, nodes + 1, n_tracks)
    moves = rng.integers(0, 4, (n_tracks, steps_per))
    for s in range(1, steps_per):  # over steps (a few hundred), not points or tracks
        di = np.where(moves[:, s] == 0, 1, np.where(moves[:, s] == 1, -1, 0))
        dj = np.where(moves[:, s] == 2, 1, np.where(moves[:, s] == 3, -1, 0))
        ni, nj = i[:, s - 1] + di, j[:, s - 1] + dj
        bounce = (ni < 0) | (ni > nodes) | (nj < 0) | (nj > nodes)
        i[:, s] = np.where(bounce, i[:, s - 1] - di, ni)
        j[:, s] = np.where(bounce, j[:, s - 1] - dj, nj)
    d = np.arange(seconds) * speed / STEP  # position along the walk, in steps
    k = np.floor(d).astype(int)
    f = d - k
    x = gx[:, None] + STEP * (i[:, k] + (i[:, k + 1] - i[:, k]) * f)
    y = gy[:, None] + STEP * (j[:, k] + (j[:, k + 1] - j[:, k]) * f)
    x += rng.normal(0, 3, x.shape)
    y += rng.normal(0, 3, y.shape)
    lon, lat = ll(x.ravel(), y.ravel())
    geoms = shapely.linestrings(np.column_stack([lon, lat]), indices=np.repeat(np.arange(n_tracks), seconds))
    start = 1_793_000_000 + np.arange(n_tracks) * 86_400.0
    users = np.repeat([f"w{w:03d}" for w in range(workers)], days)
    t = np.arange(seconds, dtype=float)
    frame = pd.DataFrame({"username": users, "geometry": geoms, "times": [t] * n_tracks, "start": start})
    return frame, grid_of


def peer(patrols, targets, target_grid, target_hh, target_road, radius, ngrid):
    """Per track: the targets within ``radius`` of the line (an STRtree of the targets,
    ``dwithin``), united over the tracks, summed per grid."""
    tree = shapely.STRtree(targets)
    covered = np.zeros(len(targets), bool)
    for geom in patrols["geometry"]:
        xy = shapely.get_coordinates(geom)
        line = shapely.linestrings(np.column_stack(TO_M.transform(xy[:, 0], xy[:, 1])))
        covered[tree.query(line, predicate="dwithin", distance=radius)] = True
    return (np.bincount(target_grid[covered], target_hh[covered], minlength=ngrid),
            np.bincount(target_grid[covered], target_road[covered], minlength=ngrid))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--peer-share", type=float, default=0.1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(16)
    t = time.perf_counter()
    grids, households, roads = town(rng)
    patrols, grid_of = tracks(rng, args.workers, args.days, args.hours)
    points = int(shapely.get_num_coordinates(patrols["geometry"].to_numpy()).sum())
    worker_grids = {f"w{w:03d}": [grids["code"].iloc[w % (SIDE * SIDE)]] for w in range(args.workers)}
    print(f"synthesized {len(patrols):,} tracks, {points:,} points, {len(households):,} households, "
          f"{shapely.length(roads.to_crs(4549).geometry.values).sum() / 1000:,.0f} km of road "
          f"in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    out = patrol_coverage(patrols, grids, households, roads, worker_grids=worker_grids, radius=50.0)
    ours = time.perf_counter() - t
    g = out["grid"]
    print(f"\ngridgeo  patrol_coverage: {ours:.2f} s ({points / ours / 1e6:.1f} M points/s)  "
          f"mean household coverage {g['household_coverage'].mean():.3f}, road {g['road_coverage'].mean():.3f}, "
          f"{g['distance_m'].sum() / 1000:,.0f} km, {g['patrolled_s'].sum() / 3600:,.0f} h")

    # The peer, on a share of the tracks; gridgeo again on the same share for the comparison.
    share = patrols.iloc[:: max(1, round(1 / args.peer_share))]  # every worker, some days
    sub = patrol_coverage(share, grids, households, roads, worker_grids=worker_grids, radius=50.0)["grid"]
    hxy = shapely.get_coordinates(households.geometry.values)
    from gridgeo.locate import Locator
    from gridgeo.patrols.coverage import road_targets

    loc = Locator.from_frame(grids, "code")
    index = pd.Index(grids["code"])
    hh_grid = index.get_indexer(loc.locate(hxy[:, 0], hxy[:, 1]))
    to_m = lambda geoms: shapely.transform(np.asarray(geoms, dtype=object),  # noqa: E731
                                           lambda xy: np.column_stack(TO_M.transform(xy[:, 0], xy[:, 1])))
    rpts, rgrid, rw = road_targets(to_m(roads.geometry.values), to_m(grids.geometry.values), 10.0)
    targets = np.concatenate([shapely.points(np.column_stack(TO_M.transform(hxy[:, 0], hxy[:, 1]))), rpts])
    t = time.perf_counter()
    p_hh, p_road = peer(share, targets, np.concatenate([hh_grid, rgrid]),
                        np.concatenate([households["households"].to_numpy(float), np.zeros(len(rpts))]),
                        np.concatenate([np.zeros(len(hxy)), rw]), 50.0, len(grids))
    theirs = (time.perf_counter() - t) * len(patrols) / len(share)
    diff_hh = np.abs(p_hh - sub["households_covered"].to_numpy()).sum()
    diff_road = np.abs(p_road - sub["road_covered_m"].to_numpy()).sum()
    print(f"peer     per-track STRtree dwithin: {theirs:.1f} s for all tracks (measured on {len(share):,}, scaled)  "
          f"-> gridgeo is {theirs / ours:.1f}x faster")
    print(f"agreement on that share: {int(diff_hh)} households and {diff_road:.0f} m of road differ "
          f"(of {int(sub['households_covered'].sum()):,} households and {sub['road_covered_m'].sum() / 1000:,.1f} km covered)")


if __name__ == "__main__":
    main()
