"""Patrol figures per grid and per worker: distance, time patrolled, coverage.

Coverage (巡查覆盖率) is the share of a grid's households, and of its road length, within
``radius`` metres (``GRIDGEO_PATROL_COVERAGE_M``, 50) of some track of the period. For a
worker it is the same share over the grids they serve, counting their own tracks only.

Everything runs over whole arrays (no Python loop over points, tracks, households or
grids):

1. every track vertex is placed in a metric CRS (the CGCS2000 Gauss-Krüger zone of the
   data, as areas are) and in a grid (:class:`gridgeo.locate.Locator`); each segment's
   length and time go to the grid of its first vertex and to its worker
   (``numpy.bincount``); gaps over :data:`~gridgeo.patrols.tracks.PAUSE_SECONDS` are
   pauses, not time patrolled;
2. the targets are the households (weighted by their ``households``) and points along the
   roads clipped to each grid, one every ``road_step`` metres (weighted by the length
   each stands for);
3. tracks are simplified (``tolerance`` metres, 1 by default: a covered distance is off by
   at most that), cut into short pieces, and a shapely STRtree of the targets answers
   which pieces pass within ``radius`` of which targets in one ``query(predicate="dwithin")``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from gridgeo.crs import metric_epsg
from gridgeo.locate import Locator
from gridgeo.patrols.tracks import PAUSE_SECONDS

__all__ = ["patrol_coverage", "road_targets"]

#: Vertices per piece of track queried against the targets.
PIECE_VERTICES = 24


def _metric(lon: np.ndarray, lat: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    tr = Transformer.from_crs(4326, epsg, always_xy=True)
    return tr.transform(lon, lat)


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


def patrol_coverage(patrols: pd.DataFrame, grids, households, roads, *, worker_grids: dict[str, list[str]],
                    radius: float = 50.0, road_step: float = 10.0, tolerance: float = 1.0) -> dict[str, pd.DataFrame]:
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
    centre = float(np.nanmean(shapely.get_coordinates(shapely.centroid(grid_geoms))[:, 0])) if ngrid else 120.0
    epsg = metric_epsg(centre)
    tr = Transformer.from_crs(4326, epsg, always_xy=True)

    def project(geoms):
        return shapely.transform(np.asarray(geoms, dtype=object), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    # -- targets: households and road points, with their grid ----------------------------
    loc = Locator.from_frame(grids, "code") if ngrid else None
    code_index = {c: i for i, c in enumerate(codes)}
    hh_geoms = np.asarray(households.geometry.values, dtype=object)
    hh_xy = shapely.get_coordinates(hh_geoms)
    hh_grid_codes = loc.locate(hh_xy[:, 0], hh_xy[:, 1]) if len(hh_xy) and loc else np.array([], dtype=object)
    hh_grid = pd.Series(hh_grid_codes, dtype=object).map(code_index).fillna(-1).to_numpy(dtype=np.int64)
    hh_weight = households["households"].to_numpy(dtype=float) if len(households) else np.array([])
    inside = hh_grid >= 0
    hx, hy = _metric(hh_xy[inside, 0], hh_xy[inside, 1], epsg) if inside.any() else (np.array([]), np.array([]))
    road_geoms = np.asarray(roads.geometry.values, dtype=object) if len(roads) else np.array([], dtype=object)
    rpts, rgrid, rweight = road_targets(project(road_geoms), project(grid_geoms), road_step) if len(road_geoms) \
        else (np.array([], dtype=object), np.array([], dtype=np.int64), np.array([]))
    target_pts = np.concatenate([shapely.points(hx, hy), rpts]) if len(hx) or len(rpts) else np.array([], dtype=object)
    target_grid = np.concatenate([hh_grid[inside], rgrid]).astype(np.int64)
    target_hh = np.concatenate([hh_weight[inside], np.zeros(len(rpts))])
    target_road = np.concatenate([np.zeros(len(hx)), rweight])

    # -- tracks: vertices, segments, grids ------------------------------------------------
    geoms = np.asarray(patrols["geometry"].to_numpy(), dtype=object)
    worker_index = {w: i for i, w in enumerate(workers)}
    p_worker = patrols["username"].map(worker_index).to_numpy(dtype=np.int64) if len(patrols) else np.array([], np.int64)
    xy, vidx = shapely.get_coordinates(geoms, return_index=True) if len(geoms) else (np.empty((0, 2)), np.array([], np.int64))
    t = (np.concatenate([np.asarray(v, dtype=float) for v in patrols["times"]]) + np.repeat(
        patrols["start"].to_numpy(dtype=float), shapely.get_num_coordinates(geoms))) if len(geoms) else np.array([])
    mx, my = _metric(xy[:, 0], xy[:, 1], epsg) if len(xy) else (np.array([]), np.array([]))
    vgrid_codes = loc.locate(xy[:, 0], xy[:, 1]) if len(xy) and loc else np.array([], dtype=object)
    vgrid = pd.Series(vgrid_codes, dtype=object).map(code_index).fillna(-1).to_numpy(dtype=np.int64)
    same = vidx[1:] == vidx[:-1] if len(vidx) else np.array([], bool)
    seg_len = np.hypot(np.diff(mx), np.diff(my))[same] if len(mx) else np.array([])
    seg_dt = np.diff(t)[same] if len(t) else np.array([])
    seg_dt = np.where(seg_dt <= PAUSE_SECONDS, seg_dt, 0.0)
    seg_grid = vgrid[:-1][same] if len(vgrid) else np.array([], np.int64)
    seg_worker = p_worker[vidx[:-1][same]] if len(vidx) else np.array([], np.int64)
    in_grid = seg_grid >= 0
    g_dist = np.bincount(seg_grid[in_grid], seg_len[in_grid], minlength=ngrid)
    g_time = np.bincount(seg_grid[in_grid], seg_dt[in_grid], minlength=ngrid)
    w_dist = np.bincount(seg_worker, seg_len, minlength=nworker)
    w_time = np.bincount(seg_worker, seg_dt, minlength=nworker)
    # Patrols per grid: distinct (patrol, grid) pairs among the vertices.
    pg = np.unique(vidx[vgrid >= 0].astype(np.int64) * (ngrid + 1) + vgrid[vgrid >= 0]) if len(vidx) else np.array([], np.int64)
    g_patrols = np.bincount(pg % (ngrid + 1), minlength=ngrid + 1)[:ngrid]
    w_patrols = np.bincount(p_worker, minlength=nworker)

    # -- coverage: pieces of simplified tracks within radius of targets --------------------
    covered_any = np.zeros(len(target_pts), dtype=bool)
    w_cov_hh = np.zeros(nworker)
    w_cov_road = np.zeros(nworker)
    member = np.zeros((nworker, max(ngrid, 1)), dtype=bool)
    for w, gs in worker_grids.items():
        ix = [code_index[g] for g in gs if g in code_index]
        member[worker_index[w], ix] = True
    if len(geoms) and len(target_pts):
        lines = shapely.linestrings(np.column_stack([mx, my]), indices=vidx)
        lines = shapely.simplify(lines, tolerance)
        sxy, sidx = shapely.get_coordinates(lines, return_index=True)
        # Pieces of PIECE_VERTICES vertices, each sharing its first vertex with the previous
        # piece's last: vertex k of a track goes to piece k // (P - 1) (and the one before).
        start_of = np.r_[0, np.flatnonzero(np.diff(sidx)) + 1]
        rank = np.arange(len(sidx)) - np.repeat(start_of, np.diff(np.r_[start_of, len(sidx)]))
        step = PIECE_VERTICES - 1
        piece_key = sidx.astype(np.int64) * (len(sidx) + 1) + rank // step
        boundary = (rank % step == 0) & (rank > 0)  # also ends the previous piece
        keys = np.concatenate([piece_key, piece_key[boundary] - 1])
        pts = np.concatenate([sxy, sxy[boundary]])
        order = np.lexsort((np.concatenate([rank, rank[boundary]]), keys))
        keys, pts = keys[order], pts[order]
        piece_ids, piece_of = np.unique(keys, return_inverse=True)
        ok = np.bincount(piece_of)[piece_of] >= 2  # a lone end vertex is in the piece before
        kept, piece_of = np.unique(piece_of[ok], return_inverse=True)
        pieces = shapely.linestrings(pts[ok], indices=piece_of)
        piece_patrol = piece_ids[kept] // (len(sidx) + 1)
        hit_piece, hit_target = shapely.STRtree(target_pts).query(pieces, predicate="dwithin", distance=radius)
        covered_any[np.unique(hit_target)] = True
        # Per worker: distinct (worker, target) pairs, kept where the target's grid is theirs.
        pair = np.unique(p_worker[piece_patrol[hit_piece]].astype(np.int64) * len(target_pts) + hit_target)
        pw, pt = pair // len(target_pts), pair % len(target_pts)
        mine = member[pw, target_grid[pt]]
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
