"""Patrol figures per grid and per worker: distance, time patrolled, coverage.

Coverage (巡查覆盖率) is the share of a grid's households, and of its road length, within
``radius`` metres (``GRIDGEO_PATROL_COVERAGE_M``, 50) of some track of the period. For a
worker it is the same share over the grids they serve, counting their own tracks only.

Everything runs over whole arrays (no Python loop over points, tracks, households or
grids):

1. every segment's length (on the WGS84 ellipsoid) and time go to the grid of its first
   vertex (:class:`gridgeo.locate.Locator`, on the vertex's cell, see 3) and to its worker
   (``numpy.bincount``); gaps over :data:`~gridgeo.patrols.tracks.PAUSE_SECONDS` are
   pauses, not time patrolled;
2. the targets are the households (weighted by their ``households``) and points along the
   roads clipped to each grid, one every ``road_step`` metres (weighted by the length
   each stands for);
3. the track vertices are taken to the cells of a 2 m lattice, once per worker (thirty
   days of a worker walking the same streets are a few tens of thousands of cells, not
   millions of fixes; a distance is then off by at most 1.4 m), and a KD-tree of the cells
   (scipy) says for every target whether a cell lies within ``radius``: for the grids, of
   anyone's cells; for the workers, of their own (the worker as a third coordinate, far
   apart, so that one query answers every worker).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

from gridgeo.crs import metric_epsg
from gridgeo.locate import Locator
from gridgeo.patrols.tracks import PAUSE_SECONDS, track_m

__all__ = ["patrol_coverage", "road_targets"]

@lru_cache(maxsize=8)
def _to_metric(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def road_targets(roads: np.ndarray, grids: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points along the roads inside each grid (metric geometries): ``(points, grid index,
    metres each stands for)``. Roads are clipped to the grids they cross (pairs from an
    STRtree); each piece of length L gets ceil(L / step) points at the middles of equal
    parts."""
    if len(roads) == 0 or len(grids) == 0:
        return np.array([], dtype=object), np.array([], dtype=np.int64), np.array([])
    ri, gi = shapely.STRtree(roads).query(grids, predicate="intersects")[::-1]
    pieces = shapely.intersection(roads[ri], grids[gi])
    length = shapely.length(pieces)
    has = length > 0
    pieces, gi, length = pieces[has], gi[has], length[has]
    n = np.maximum(np.ceil(length / step).astype(np.int64), 1)
    owner = np.repeat(np.arange(len(pieces)), n)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(n) - n, n)
    part = length[owner] / n[owner]
    points = shapely.line_interpolate_point(pieces[owner], (k + 0.5) * part)
    return points, gi[owner], part


def _cells(lon, lat, worker, lon0, lat0, cell_m):
    """The (worker, cell) of each track vertex on a lattice of ``cell_m`` metres (in
    degrees about (lon0, lat0)): ``(cell of each vertex, the cells' centres lon and lat,
    their workers)``. Thirty days of one worker walking the same streets are a few tens of
    thousands of cells, not hundreds of thousands of fixes."""
    q_lat = cell_m / 111_320.0
    q_lon = q_lat / np.cos(np.radians(lat0))
    ix = np.floor((lon - lon0) / q_lon).astype(np.int64) + (1 << 20)
    iy = np.floor((lat - lat0) / q_lat).astype(np.int64) + (1 << 20)
    key = (worker.astype(np.int64) << 42) | (ix << 21) | iy
    of_vertex, key = pd.factorize(key)
    cx = ((key >> 21) & ((1 << 21) - 1)) - (1 << 20)
    cy = (key & ((1 << 21) - 1)) - (1 << 20)
    return of_vertex, lon0 + (cx + 0.5) * q_lon, lat0 + (cy + 0.5) * q_lat, key >> 42


def patrol_coverage(patrols: pd.DataFrame, grids, households, roads, *, worker_grids: dict[str, list[str]],
                    radius: float = 50.0, road_step: float = 10.0, cell_m: float = 2.0) -> dict[str, pd.DataFrame]:
    """Distance, time and coverage per grid and per worker.

    Parameters
    ----------
    patrols : DataFrame
        One row per track: ``username``, ``geometry`` (shapely LineStrings, WGS84), ``times``
        (seconds since the track's start, one per vertex), ``start`` (epoch seconds).
    grids : GeoDataFrame
        ``code``, ``name``, ``village_code``, geometry (WGS84): the plan in force.
    households : GeoDataFrame
        Points with ``households``.
    roads : GeoDataFrame
        Lines (roads; rivers are left out by the caller).
    worker_grids : dict
        username -> the grid codes the worker serves (their coverage is over these).
    radius : float
        Metres from a track within which a household or a piece of road is covered.
    road_step : float
        Metres of road each road point stands for.
    cell_m : float
        Track vertices are taken to the centre of a lattice cell of this many metres
        (2 by default; GPS fixes are good to a few metres) before distances to the targets
        are measured and grids found, so a distance is off by at most ``cell_m / sqrt(2)``
        (1.4 m), and a segment starting that close to a grid's edge may count for the
        grid across it. Segment lengths and times use the fixes themselves.

    Returns
    -------
    dict
        ``grid``: indexed by grid code; ``worker``: indexed by username. Columns:
        ``patrols``, ``distance_m``, ``patrolled_s``, ``households``, ``households_covered``,
        ``household_coverage``, ``road_m``, ``road_covered_m``, ``road_coverage``.
    """
    codes = grids["code"].to_numpy(dtype=object)
    ngrid = len(codes)
    grid_geoms = np.asarray(grids.geometry.values, dtype=object)
    workers = np.array(sorted(set(worker_grids) | set(patrols["username"])), dtype=object)
    nworker = len(workers)
    cxy = shapely.get_coordinates(shapely.centroid(grid_geoms)) if ngrid else np.array([[120.0, 30.0]])
    lon0, lat0 = float(np.nanmean(cxy[:, 0])), float(np.nanmean(cxy[:, 1]))
    tr = _to_metric(metric_epsg(lon0))

    def metric(lon, lat):
        return tr.transform(lon, lat) if len(lon) else (np.array([]), np.array([]))

    def project(geoms):
        return shapely.transform(np.asarray(geoms, dtype=object), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    # -- targets: households and road points, with their grid ----------------------------
    loc = Locator.from_frame(grids, "code") if ngrid else None
    code_index = pd.Series(np.arange(ngrid), index=codes) if ngrid else pd.Series(dtype=np.int64)

    # Position in ``codes`` of each of the locator's (sorted) codes, -1 appended for "none".
    order = np.r_[pd.Index(codes).get_indexer(loc.codes), -1].astype(np.int64) if loc is not None else None

    def grid_of(lon, lat):
        if not len(lon) or loc is None:
            return np.full(len(lon), -1, dtype=np.int64)
        return order[loc.locate_index(lon, lat)["index"]]

    hh_xy = shapely.get_coordinates(np.asarray(households.geometry.values, dtype=object))
    hh_grid = grid_of(hh_xy[:, 0], hh_xy[:, 1])
    hh_weight = households["households"].to_numpy(dtype=float) if len(households) else np.array([])
    inside = hh_grid >= 0
    hx, hy = metric(hh_xy[inside, 0], hh_xy[inside, 1])
    road_geoms = np.asarray(roads.geometry.values, dtype=object) if len(roads) else np.array([], dtype=object)
    if len(road_geoms) and ngrid:
        rpts, rgrid, rweight = road_targets(project(road_geoms), project(grid_geoms), road_step)
    else:
        rpts, rgrid, rweight = np.array([], dtype=object), np.array([], dtype=np.int64), np.array([])
    rxy = shapely.get_coordinates(rpts) if len(rpts) else np.empty((0, 2))
    target_xy = np.concatenate([np.column_stack([hx, hy]).reshape(-1, 2), rxy])
    target_grid = np.concatenate([hh_grid[inside], rgrid]).astype(np.int64)
    target_hh = np.concatenate([hh_weight[inside], np.zeros(len(rxy))])
    target_road = np.concatenate([np.zeros(len(hx)), rweight])

    # -- tracks: vertices, segments, grids ------------------------------------------------
    geoms = np.asarray(patrols["geometry"].to_numpy(), dtype=object)
    worker_index = pd.Series(np.arange(nworker), index=workers)
    p_worker = worker_index.reindex(patrols["username"]).to_numpy(dtype=np.int64) if len(patrols) else np.array([], np.int64)
    if len(geoms):
        xy, vidx = shapely.get_coordinates(geoms, return_index=True)
        t = np.concatenate([np.asarray(v, dtype=float) for v in patrols["times"]]) + np.repeat(
            patrols["start"].to_numpy(dtype=float), shapely.get_num_coordinates(geoms))
    else:
        xy, vidx, t = np.empty((0, 2)), np.array([], np.int64), np.array([])
    lon, lat = xy[:, 0], xy[:, 1]
    # Vertices to cells; the cells (far fewer) are located, each vertex takes its cell's grid.
    if len(lon):
        of_vertex, clon, clat, cw = _cells(lon, lat, p_worker[vidx], lon0, lat0, cell_m)
        vgrid = grid_of(clon, clat)[of_vertex]
    else:
        clon = clat = cw = np.array([])
        vgrid = np.array([], np.int64)
    same = vidx[1:] == vidx[:-1]
    seg_len = track_m(lon, lat)[same] if len(lon) > 1 else np.array([])
    seg_dt = np.diff(t)[same] if len(t) > 1 else np.array([])
    seg_dt = np.where(seg_dt <= PAUSE_SECONDS, seg_dt, 0.0)
    seg_grid = vgrid[:-1][same] if len(vgrid) > 1 else np.array([], np.int64)
    seg_worker = p_worker[vidx[:-1][same]] if len(vidx) > 1 else np.array([], np.int64)
    in_grid = seg_grid >= 0
    g_dist = np.bincount(seg_grid[in_grid], seg_len[in_grid], minlength=ngrid)
    g_time = np.bincount(seg_grid[in_grid], seg_dt[in_grid], minlength=ngrid)
    w_dist = np.bincount(seg_worker, seg_len, minlength=nworker)
    w_time = np.bincount(seg_worker, seg_dt, minlength=nworker)
    # Patrols per grid: distinct (patrol, grid) pairs among the vertices.
    run = np.r_[True, (vidx[1:] != vidx[:-1]) | (vgrid[1:] != vgrid[:-1])] if len(vidx) else np.array([], bool)
    run &= vgrid >= 0  # the first vertex of each stay of a patrol in a grid
    pg = pd.unique(vidx[run].astype(np.int64) * (ngrid + 1) + vgrid[run])
    g_patrols = np.bincount(pg % (ngrid + 1), minlength=ngrid + 1)[:ngrid]
    w_patrols = np.bincount(p_worker, minlength=nworker)

    # -- coverage: targets within radius of a cell some track passed through ----------------
    member = np.zeros((nworker, max(ngrid, 1)), dtype=bool)
    for w, gs in worker_grids.items():  # the roster: one row per worker
        member[int(worker_index[w]), code_index.reindex(gs).dropna().to_numpy(dtype=np.int64)] = True
    covered_any = np.zeros(len(target_xy), dtype=bool)
    w_cov_hh, w_cov_road = np.zeros(nworker), np.zeros(nworker)
    if len(clon) and len(target_xy):
        cx, cy = metric(clon, clat)
        # Any worker: the nearest cell of all.
        tree = cKDTree(np.column_stack([cx, cy]))
        dist, _ = tree.query(target_xy, k=1, distance_upper_bound=radius)
        covered_any = dist <= radius
        # Each worker over their own grids: (target, worker) pairs, the worker as a third
        # coordinate far apart, one query for all.
        pw, pt = np.nonzero(member[:, target_grid]) if ngrid else (np.array([], np.int64),) * 2
        if len(pw):
            far = 10.0 * (np.ptp(cx) + np.ptp(cy) + np.ptp(target_xy) + radius + 1.0)
            tree3 = cKDTree(np.column_stack([cx, cy, cw * far]))
            d3, _ = tree3.query(np.column_stack([target_xy[pt], pw * far]), k=1, distance_upper_bound=radius)
            mine = d3 <= radius
            w_cov_hh = np.bincount(pw[mine], target_hh[pt[mine]], minlength=nworker)
            w_cov_road = np.bincount(pw[mine], target_road[pt[mine]], minlength=nworker)
    g_hh = np.bincount(target_grid, target_hh, minlength=ngrid)
    g_road = np.bincount(target_grid, target_road, minlength=ngrid)
    g_cov_hh = np.bincount(target_grid[covered_any], target_hh[covered_any], minlength=ngrid)
    g_cov_road = np.bincount(target_grid[covered_any], target_road[covered_any], minlength=ngrid)
    w_hh = member.astype(float) @ g_hh if ngrid else np.zeros(nworker)
    w_road = member.astype(float) @ g_road if ngrid else np.zeros(nworker)

    def share(a, b):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)

    def frame(index, name, patrols_n, dist, time_s, hh, cov_hh, road, cov_road):
        return pd.DataFrame({
            "patrols": patrols_n.astype(int), "distance_m": dist, "patrolled_s": time_s,
            "households": hh, "households_covered": cov_hh, "household_coverage": share(cov_hh, hh),
            "road_m": road, "road_covered_m": cov_road, "road_coverage": share(cov_road, road),
        }, index=pd.Index(index, name=name))

    return {
        "grid": frame(codes, "grid_code", g_patrols, g_dist, g_time, g_hh, g_cov_hh, g_road, g_cov_road),
        "worker": frame(workers, "username", w_patrols, w_dist, w_time, w_hh, w_cov_hh, w_road, w_cov_road),
    }
