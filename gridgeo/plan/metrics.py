"""Metrics of a division into grids, for any grid layer (gridgeo's or another method's).

Topology (overlaps, gaps, shared boundaries, holes) is computed in lon/lat, where the
data lives; only the resulting pieces are projected to the CGCS2000 Gauss-Krüger zone
of the layer to measure areas and lengths (see :mod:`gridgeo.validate`).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo import crs as _crs
from gridgeo.plan.blocks import Metric

__all__ = ["evaluate", "enclaves", "ROAD_TOLERANCE_DEG"]

#: A boundary within this distance of a road or river line lies "on" it (about 1 m).
ROAD_TOLERANCE_DEG = 1e-5


def _round(x, nd=4):
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def evaluate(grids: gpd.GeoDataFrame, villages: gpd.GeoDataFrame, roads=None, *,
             band: tuple[float, float] | None = None, workload: str = "workload",
             exempt=(), tolerance_m2: float = 1.0) -> tuple[dict, pd.DataFrame]:
    """Measure a grid layer.

    Parameters
    ----------
    grids : geopandas.GeoDataFrame
        ``code``, ``village_code``, a workload column and the geometry (lon/lat).
    villages : geopandas.GeoDataFrame
        ``code`` and geometry of the villages the grids divide.
    roads : geopandas.GeoDataFrame or array of lines, optional
        Roads and rivers, for the share of inter-grid boundary lying on them.
    band : (float, float), optional
        The workload band.
    exempt : iterable of str
        Codes of grids the band does not apply to (villages below the floor).

    Returns
    -------
    metrics : dict
        ``deviation_max`` / ``deviation_mean`` (|w - mean| / mean, the mean taken over the
        grids of the same village), ``share_in_band`` (grids the band applies to),
        ``polsby_popper_mean`` / ``_min`` (4πA/P²), ``road_share`` (inter-grid boundary
        length on roads or rivers, within about 1 m, over all inter-grid boundary),
        ``contiguous`` and the offending grids, ``gap_area_m2``, ``overlap_area_m2``.
    per_grid : pandas.DataFrame
        One row per grid: code, village_code, workload, deviation, polsby_popper,
        area_km2, in_band, exempt.
    """
    g = grids.reset_index(drop=True)
    geoms = g.geometry.to_numpy()
    n = len(g)
    codes = g["code"].astype(str).to_numpy()
    vcodes = g["village_code"].astype(str).to_numpy()
    if n == 0:
        return {"grids": 0}, pd.DataFrame()
    center = float(np.mean(shapely.total_bounds(geoms)[[0, 2]]))
    m = Metric(_crs.metric_epsg(center))
    mg = m.geoms(geoms)
    area = shapely.area(mg)
    perim = shapely.length(mg)
    pp = np.where(perim > 0, 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2, 0.0)
    wl = pd.to_numeric(g[workload], errors="coerce").fillna(0).to_numpy(dtype=float)
    vmean = pd.Series(wl).groupby(vcodes).transform("mean").to_numpy()
    dev = np.where(vmean > 0, np.abs(wl - vmean) / np.where(vmean > 0, vmean, 1), 0.0)
    exempt = np.isin(codes, list(exempt))
    if band is not None:
        in_band = (wl >= band[0] - 1e-9) & (wl <= band[1] + 1e-9)
    else:
        in_band = np.ones(n, dtype=bool)
    v = villages.assign(code=villages["code"].astype(str)).drop_duplicates("code").set_index("code")
    vgeom = v.geometry.reindex(vcodes).to_numpy()
    # Contiguity: one polygon, and no hole other than a hole of the village itself.
    single = shapely.get_type_id(geoms) == 3
    with_holes = enclaves(geoms, vgeom, m, tolerance_m2)
    # Overlaps, and boundaries shared inside a village.
    tree = shapely.STRtree(geoms)
    li, ri = tree.query(geoms, predicate="intersects")
    keep = li < ri
    li, ri = li[keep], ri[keep]
    overlap = float(m.area(shapely.intersection(geoms[li], geoms[ri])).sum()) if len(li) else 0.0
    same = vcodes[li] == vcodes[ri]
    li, ri = li[same], ri[same]
    shared_len = road_len = 0.0
    if len(li):
        shared = shapely.intersection(shapely.boundary(geoms[li]), shapely.boundary(geoms[ri]))
        shared_len = float(m.length(shared).sum())
        lines = _road_lines(roads)
        if shared_len > 0 and len(lines):
            zone = shapely.union_all(shapely.buffer(lines, ROAD_TOLERANCE_DEG, quad_segs=2))
            shapely.prepare(zone)
            road_len = float(m.length(shapely.intersection(shared, zone)).sum())
    # Gaps: village area covered by no grid.
    gap = 0.0
    for code, idx in pd.Series(np.arange(n)).groupby(vcodes):
        if code not in v.index:
            continue
        cover = shapely.union_all(geoms[idx.to_numpy()])
        rest = shapely.difference(v.geometry[code], cover)
        if not rest.is_empty:
            gap += float(m.area(np.array([rest]))[0])
    applies = ~exempt
    metrics = {
        "grids": int(n),
        "workload_total": _round(wl.sum(), 2),
        "workload_mean": _round(wl.mean(), 2),
        "deviation_max": _round(dev.max()),
        "deviation_mean": _round(dev.mean()),
        "share_in_band": _round(in_band[applies].mean()) if applies.any() else None,
        "share_in_band_all": _round(in_band.mean()),
        "grids_outside_band": codes[applies & ~in_band].tolist(),
        "grids_exempt_below_floor": codes[exempt].tolist(),
        "polsby_popper_mean": _round(pp.mean()),
        "polsby_popper_min": _round(pp.min()),
        "road_share": _round(road_len / shared_len) if shared_len > 0 else None,
        "inter_grid_boundary_km": _round(shared_len / 1000, 3),
        "contiguous": bool(single.all() and not with_holes.any()),
        "grids_not_one_polygon": codes[~single].tolist(),
        "grids_with_holes": codes[with_holes].tolist(),
        "gap_area_m2": _round(gap, 2),
        "overlap_area_m2": _round(overlap, 2),
    }
    per_grid = pd.DataFrame({
        "code": codes,
        "village_code": vcodes,
        "workload": wl,
        "deviation": np.round(dev, 4),
        "polsby_popper": np.round(pp, 4),
        "area_km2": np.round(area / 1e6, 4),
        "in_band": in_band,
        "exempt": exempt,
    })
    return metrics, per_grid


def enclaves(geoms: np.ndarray, villages: np.ndarray, metric: Metric | None = None,
             tolerance_m2: float = 1.0) -> np.ndarray:
    """Whether each grid has a hole holding land of its village (``villages``: the
    village geometry of each grid). A hole that is a hole of the village is allowed."""
    geoms = np.asarray(geoms, dtype=object)
    out = np.zeros(len(geoms), dtype=bool)
    if len(geoms) == 0:
        return out
    if metric is None:
        metric = Metric(_crs.metric_epsg(float(np.mean(shapely.total_bounds(geoms)[[0, 2]]))))
    parts, pidx = shapely.get_parts(geoms, return_index=True)
    rings, ridx = shapely.get_rings(parts, return_index=True)
    first = np.zeros(len(rings), dtype=bool)
    first[np.unique(ridx, return_index=True)[1]] = True
    owner = pidx[ridx[~first]]
    if len(owner):
        hole = shapely.polygons(rings[~first])
        vg = np.asarray(villages, dtype=object)[owner]
        known = ~shapely.is_missing(vg)
        inter = np.zeros(len(hole))
        if known.any():
            inter[known] = metric.area(shapely.intersection(hole[known], vg[known]))
        out[owner[inter > tolerance_m2]] = True
    return out


def _road_lines(roads) -> np.ndarray:
    if roads is None:
        return np.array([], dtype=object)
    if isinstance(roads, gpd.GeoDataFrame | gpd.GeoSeries):
        geoms = roads.geometry.to_numpy() if isinstance(roads, gpd.GeoDataFrame) else roads.to_numpy()
    else:
        geoms = np.asarray(roads, dtype=object)
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    return geoms
