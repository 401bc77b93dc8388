"""``divide``: villages and households in, a plan of balanced, compact grids out.

Rules the result follows (each is tested):

* Grids tile each village exactly: their union is the village, they do not overlap, and
  no grid crosses a village boundary.
* Each grid is one polygon. It has a hole only where its village has one (a lake, or
  another village inside it); no grid lies inside another.
* A village in several parts (an exclave) is planned part by part: every part has its
  own grids, and a part below the band's floor is one grid. With ``exclaves="attach"``
  such a small part joins the nearest grid of its village instead; that grid is then a
  MultiPolygon, the only exception to the rule above, and the report lists it.
* Every household is in exactly one grid: an address point on a shared edge (on a
  road between two grids) belongs to the grid east of it, or north of it on an
  east-west edge, the rule of :mod:`gridgeo.locate`; one outside every village but
  within the snapping distance belongs to the nearest grid; farther out it is in no
  grid of this plan and the report counts it.
* Workloads lie inside the band. The number of grids of a village part comes from the
  band (the count whose mean is closest to the middle of the band) or from
  ``per_village``; a part below the floor is one grid. When no count can meet the band,
  or a single address holds more than the ceiling, :class:`InfeasibleBand` says which
  village and why (with ``strict=False`` the plan is made anyway and the report says it).
* Codes are the village code and three digits, numbered west to east, north to south
  (the rule of ``data/README.md``: ``round(√n)`` latitude bands of the grid centroids).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo import crs as _crs
from gridgeo.config import get_settings
from gridgeo.errors import InfeasibleBand, InvalidGeometry, InvalidInput, UnknownCRS
from gridgeo.plan.bands import DEFAULT_BAND, grids_for, parse_band, split_count
from gridgeo.plan.blocks import Metric, block_graph, cut_part
from gridgeo.plan.metrics import enclaves, evaluate
from gridgeo.plan.partition import Objective, _csr, _regrow, partition, partition_from

__all__ = ["Plan", "divide", "grid_name", "jsonable", "number_grids", "prepare_villages",
           "prepare_households", "road_lines"]

COUNT_COLUMNS = ("households", "population", "buildings")
#: Grids one village (part) may be divided into: a band or count asking for more is
#: refused before any work (codes have three digits; no village holds a thousand grids).
MAX_GRIDS = 999
GRID_COLUMNS = ["code", "name", "village_code", "kind", "households", "population", "buildings",
                "workload", "geometry"]


@dataclass
class Plan:
    """A division of villages into grids.

    Attributes
    ----------
    grids : geopandas.GeoDataFrame
        code, name, village_code, kind, households, population, buildings, workload,
        geometry (EPSG:4326): the ``grids`` layer of :mod:`gridgeo.layers` plus workload.
    blocks : geopandas.GeoDataFrame
        The blocks the grids are made of: block (id), village_code, grid_code,
        households, population, buildings, workload, geometry. Manual edits move these.
    assignment : pandas.DataFrame
        One row per input household (same index): grid_code, block, snapped (placed on
        the nearest grid from outside every village), None where in no grid.
    report : dict
        Parameters, metrics, per-village and per-grid figures, problems; see
        :func:`divide`.
    """

    grids: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    assignment: pd.DataFrame
    report: dict = field(default_factory=dict)

    def to_file(self, path: str | Path) -> Path:
        """Write the grids (layer ``grids``, importable as is) and blocks to a GeoPackage."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        self.grids.to_file(path, layer="grids", driver="GPKG")
        self.blocks.to_file(path, layer="blocks", driver="GPKG")
        return path


def jsonable(value):
    """``value`` with numpy scalars and arrays, NaN and tuples made plain JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if not np.isfinite(value) else float(value)
    if value is pd.NA or value is None:
        return None
    return value


# -- inputs ------------------------------------------------------------------------


def _to_wgs84(frame: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    if frame.crs is None:
        raise UnknownCRS(f"the {what} layer has no CRS: set it (EPSG:4326 for lon/lat)")
    if frame.crs.to_epsg() in (4326, 4490):
        return frame.set_crs(4326, allow_override=True)
    return frame.to_crs(4326)


def prepare_villages(villages: gpd.GeoDataFrame, code: str = "code") -> gpd.GeoDataFrame:
    """code, name, geometry of the villages and communities to plan.

    A divisions layer may be passed as is: with a ``level`` column only villages and
    communities are kept.

    Raises
    ------
    InvalidGeometry
        A missing, empty, non-polygonal or invalid village boundary.
    InvalidInput
        No code column, no village, or a code given twice.
    """
    v = _to_wgs84(villages, "villages")
    if code not in v.columns:
        raise InvalidInput(f"the villages layer has no {code!r} column")
    if "level" in v.columns:
        v = v[v["level"].isin(["village", "community"])]
    v = v[~(v.geometry.isna() | v.geometry.is_empty)] if "level" in villages.columns else v
    out = gpd.GeoDataFrame(
        {"code": v[code].astype(str).to_numpy(),
         "name": (v["name"].astype(str).to_numpy() if "name" in v.columns else v[code].astype(str).to_numpy()),
         "township": _township_names(villages, v, code)},
        geometry=v.geometry.to_numpy(), crs=4326)
    if len(out) == 0:
        raise InvalidInput("no villages to plan")
    dup = out["code"][out["code"].duplicated()].unique()
    if len(dup):
        raise InvalidInput(f"village code(s) given twice: {', '.join(dup[:5])}")
    geoms = out.geometry.to_numpy()
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if bad.any():
        raise InvalidGeometry(f"village(s) without a boundary: {', '.join(out['code'][bad][:5])}")
    wrong = ~np.isin(shapely.get_type_id(geoms), (3, 6))
    if wrong.any():
        raise InvalidGeometry(f"village(s) whose boundary is not a polygon: {', '.join(out['code'][wrong][:5])}")
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        reasons = shapely.is_valid_reason(geoms[invalid])
        shown = "; ".join(f"{c}: {r}" for c, r in zip(out["code"][invalid][:5], reasons[:5]))
        raise InvalidGeometry(f"invalid village boundary ({shown}): repair it (gridgeo import --repair)")
    return out.sort_values("code", kind="stable").reset_index(drop=True)


def _township_names(layer: gpd.GeoDataFrame, v: gpd.GeoDataFrame, code: str) -> np.ndarray:
    """The township (乡镇/街道) name of each village: a ``township`` column, else the
    name of the township or street row of a divisions layer whose code is the village
    code's first nine digits, else empty."""
    if "township" in v.columns:
        return v["township"].fillna("").astype(str).to_numpy()
    if "level" in layer.columns and "name" in layer.columns:
        towns = layer[layer["level"].isin(["township", "street", "town"])]
        names = dict(zip(towns[code].astype(str), towns["name"].astype(str)))
        return np.array([names.get(c[:9], "") for c in v[code].astype(str)], dtype=object)
    return np.full(len(v), "", dtype=object)


def grid_name(township: str, village: str, seq: int, count: int) -> str:
    """A grid's name, the sample's pattern: ``{township}{village}第{n}网格`` in a village of
    several grids, ``{village}网格`` for a village's only grid."""
    return f"{village}网格" if count == 1 else f"{township}{village}第{seq}网格"


def prepare_households(households: gpd.GeoDataFrame | None,
                       workload: Mapping[str, float] | None = None) -> gpd.GeoDataFrame:
    """Household points with households / population / buildings and their workload.

    ``households`` defaults to 1 per point, population and buildings to 0. The workload
    of a point is ``sum(weight * column)`` over ``workload`` (default: households only).
    """
    weights = dict(workload or {"households": 1.0})
    if households is None or len(households) == 0:
        empty = gpd.GeoDataFrame({c: pd.Series(dtype=float) for c in (*COUNT_COLUMNS, "workload")},
                                 geometry=gpd.GeoSeries([], crs=4326), crs=4326)
        return empty
    h = _to_wgs84(households, "households")
    geoms = h.geometry.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if ok.any() and not (shapely.get_type_id(geoms[ok]) == 0).all():
        raise InvalidGeometry("the households layer must hold points")
    h = h[ok].copy()
    for c in COUNT_COLUMNS:
        default = 1 if c == "households" else 0
        if c in h.columns:
            h[c] = pd.to_numeric(h[c], errors="coerce").fillna(default)
        else:
            h[c] = default
    unknown = [c for c in weights if c not in h.columns]
    if unknown:
        raise InvalidInput(f"workload column(s) not in the households layer: {', '.join(unknown)}")
    wl = np.zeros(len(h))
    for c, f in weights.items():
        wl += float(f) * pd.to_numeric(h[c], errors="coerce").fillna(0).to_numpy(dtype=float)
    if not np.isfinite(wl).all() or not all(0 <= float(f) < math.inf for f in weights.values()):
        raise InvalidInput(f"workload weights {weights!r} must be finite numbers >= 0")
    h["workload"] = wl
    return h


def road_lines(roads) -> np.ndarray:
    """The road and river lines as an array of LineString (lon/lat)."""
    if roads is None or len(roads) == 0:
        return np.array([], dtype=object)
    if isinstance(roads, gpd.GeoDataFrame | gpd.GeoSeries):
        r = _to_wgs84(gpd.GeoDataFrame(geometry=roads.geometry if isinstance(roads, gpd.GeoDataFrame) else roads), "roads")
        geoms = r.geometry.to_numpy()
    else:
        geoms = np.asarray(roads, dtype=object)
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    parts = shapely.get_parts(geoms)
    return parts[np.isin(shapely.get_type_id(parts), (1, 2))]


def number_grids(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Order of units west→east, north→south: ``round(√n)`` latitude bands from the north,
    west to east inside each (the numbering rule of docs/rules.md and data/README.md)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    n = len(lon)
    if n == 0:
        return np.array([], dtype=np.int64)
    rows = max(1, round(math.sqrt(n)))
    span = lat.max() - lat.min()
    band = np.zeros(n, dtype=int) if span == 0 else np.minimum(
        ((lat.max() - lat) / (span / rows)).astype(int), rows - 1)
    return np.lexsort((lon, band))


def _locate(geoms: np.ndarray, points: np.ndarray, tolerance: float):
    """Index of the geometry holding each point (gridgeo.locate rules), -1 if none."""
    from gridgeo.locate import Locator

    n = len(points)
    out = np.full(n, -1, dtype=np.int64)
    snapped = np.zeros(n, dtype=bool)
    if n == 0 or len(geoms) == 0:
        return out, snapped
    frame = gpd.GeoDataFrame({"code": np.arange(len(geoms), dtype=np.int64)}, geometry=geoms, crs=4326)
    loc = Locator.from_frame(frame, "code", tolerance=tolerance, cells_per_grid=16)
    detail = loc.locate_detail(shapely.get_x(points), shapely.get_y(points))
    codes = detail["code"].to_numpy(dtype=object)
    found = pd.notna(codes)
    out[found] = codes[found].astype(np.int64)
    snapped = detail["snapped"].to_numpy(dtype=bool)
    return out, snapped


# -- the planner ---------------------------------------------------------------------


@dataclass
class _Part:
    village: int  # row of the villages frame
    geom: object
    workload: float = 0.0
    atoms: float = 0.0  # largest workload of one address point
    k: int = 1
    rule: str = "band"
    attach: bool = False
    blocks: np.ndarray | None = None
    near: np.ndarray | None = None  # road lines crossing the part
    labels: np.ndarray | None = None
    anchors: np.ndarray | None = None  # rows of the anchor grids in this part
    kept: bool = False  # the anchor grids stay as they are
    fixed: dict | None = None  # label -> row of the anchor grid whose code it keeps


def divide(
    villages: gpd.GeoDataFrame,
    households: gpd.GeoDataFrame | None,
    roads=None,
    *,
    band: tuple[float, float] = DEFAULT_BAND,
    per_village: int | Mapping[str, int] | None = None,
    target: float | None = None,
    tolerance: float = 0.05,
    workload: Mapping[str, float] | None = None,
    seed: int = 0,
    road_factor: float = 0.4,
    cells_per_grid: int = 16,
    starts: int = 1,
    shape_weights: Mapping[str, float] | None = None,
    block_share: float = 0.05,
    exclaves: str = "own",
    strict: bool = True,
    snap_m: float | None = None,
    staff: pd.DataFrame | None = None,
    households_per_worker: int | None = None,
    progress: Callable[[str], None] | None = None,
    anchor: gpd.GeoDataFrame | None = None,
    keep: Iterable[str] = (),
    anchor_weight: float = 10.0,
) -> Plan:
    """Divide villages into grids of balanced workload that follow roads and are compact.

    Parameters
    ----------
    villages : geopandas.GeoDataFrame
        Polygons with a ``code`` column (and ``name``); a divisions layer may be passed
        as is (only villages and communities are planned).
    households : geopandas.GeoDataFrame
        Address points with ``households`` (default 1), ``population``, ``buildings``.
    roads : geopandas.GeoDataFrame, optional
        Road and river lines; grid boundaries prefer them.
    band : (float, float)
        Floor and ceiling of a grid's workload.
    per_village : int or {village code: int}, optional
        The number of grids of every (or of some) village instead of the band's choice.
    target : float, optional
        Preferred mean workload when the band allows several counts (default: the middle).
    tolerance : float
        Wanted |w - mean| / mean inside a village; the refinement aims at it within the
        band.
    workload : {column: weight}, optional
        How address points weigh (default ``{"households": 1}``); e.g.
        ``{"households": 1, "population": 0.1}``. The band applies to this workload.
    seed : int
        The result is the same for the same inputs and seed.
    road_factor : float
        Cost of a grid boundary along a road or river relative to one across open land.
    cells_per_grid : int
        Lattice cells per wanted grid in faces larger than two cells.
    starts : int
        METIS starts per village part; the best after refinement (by the refinement's own
        objective) is kept. One by default: a second start rarely ends better once the
        road-aware stage has run, and costs a refinement of the whole part.
    shape_weights : {"cut_weight", "compactness_weight", "balance_weight": float}, optional
        Weights of the refinement's shape term (advanced; see
        :mod:`gridgeo.plan.partition`).
    block_share : float
        Blocks holding more than this share of the target workload are halved.
    exclaves : {"own", "attach"}
        What a village part below the floor becomes: its own grid, or part of the
        nearest grid of its village (a MultiPolygon).
    strict : bool
        Raise :class:`InfeasibleBand` when a village cannot meet the band; with False,
        plan anyway and list the problems in the report.
    snap_m : float, optional
        Households within this distance outside every village belong to the nearest grid
        (default: the ``snap_tolerance_m`` setting, 50 m).
    staff : pandas.DataFrame, optional
        Current staff (code, role, grid_code): the report then holds the staffing
        suggestions and the grids whose staff fall short.
    households_per_worker : int, optional
        Staffing rule (default: the ``households_per_worker`` setting).
    anchor : geopandas.GeoDataFrame, optional
        The grids in force (code, name, village_code, geometry): re-planning starts from
        them (see :mod:`gridgeo.plan.replan`). Their boundaries become block edges; a
        village divided again starts from its old grids and moves as few households as
        the band allows (``anchor_weight``), its grids keeping their codes and names
        where they continue an old grid.
    keep : iterable of str
        Village codes whose anchor grids stay exactly as they are (geometry, code, name).

    Returns
    -------
    Plan

    Raises
    ------
    InfeasibleBand
        (``strict``) a village whose workload no count of grids can hold in the band, or
        an address holding more than the ceiling.
    InvalidGeometry, UnknownCRS, InvalidInput
        Unusable inputs (a band, target, weights or exclaves option out of range, a missing
        column).
    """
    t0 = time.perf_counter()
    timing: dict[str, float] = {}
    lo, hi = parse_band(band)
    if target is not None and not 0 < float(target) < math.inf:
        raise InvalidInput(f"target {target!r} must be a number > 0")
    if exclaves not in ("own", "attach"):
        raise InvalidInput(f"exclaves must be 'own' or 'attach', not {exclaves!r}")
    settings = get_settings()
    snap = settings.snap_tolerance_m if snap_m is None else float(snap_m)
    say = progress or (lambda _m: None)

    say("reading the inputs")
    vil = prepare_villages(villages)
    hh = prepare_households(households, workload)
    lines = road_lines(roads)
    metric = Metric(_crs.metric_epsg(float(np.mean(vil.total_bounds[[0, 2]]))))
    wts = hh["workload"].to_numpy(dtype=float)
    pts = hh.geometry.to_numpy()

    # Village parts, and the households in each.
    parts_geom, parts_vil = shapely.get_parts(vil.geometry.to_numpy(), return_index=True)
    part_of, _ = _locate(parts_geom, pts, snap)
    placed = part_of >= 0
    pw = np.bincount(part_of[placed], weights=wts[placed], minlength=len(parts_geom))
    patom = np.zeros(len(parts_geom))
    if placed.any():
        np.maximum.at(patom, part_of[placed], wts[placed])
    parts = [_Part(int(vi), g, float(w), float(a)) for vi, g, w, a in zip(parts_vil, parts_geom, pw, patom)]
    timing["inputs_s"] = time.perf_counter() - t0

    # How many grids each part gets.
    reasons, problems = _allocate(vil, parts, (lo, hi), per_village, target, exclaves)
    if reasons and strict:
        raise InfeasibleBand(reasons)
    problems = [{"severity": "error", "message": r} for r in reasons] + problems
    anc = _anchor_parts(anchor, vil, parts, parts_geom, set(map(str, keep)), snap)

    # Blocks.
    t1 = time.perf_counter()
    say("cutting villages into blocks")
    road_tree = shapely.STRtree(lines) if len(lines) else None
    for j, p in enumerate(parts):
        if p.k <= 1 or p.attach:
            p.blocks = np.array([p.geom], dtype=object)
            continue
        mine = part_of == j
        area = float(metric.area(np.array([p.geom]))[0])
        cell = float(np.clip(math.sqrt(area / (cells_per_grid * p.k)), 20.0, 2000.0))
        near = lines[road_tree.query(p.geom, predicate="intersects")] if road_tree is not None else lines
        p.near = near
        cut = near
        if p.anchors is not None and len(p.anchors) > 1:
            cut = np.concatenate([near, shapely.get_parts(shapely.boundary(anc["geometry"][p.anchors]))])
        p.blocks = cut_part(
            p.geom, cut, shapely.get_coordinates(pts[mine]), wts[mine], metric,
            cell_m=cell, max_block_weight=max(block_share * p.workload / p.k, 1e-9))
    offsets = np.cumsum([0] + [len(p.blocks) for p in parts])
    all_blocks = np.concatenate([p.blocks for p in parts])
    block_part = np.repeat(np.arange(len(parts)), [len(p.blocks) for p in parts])
    block_of, snapped = _locate(all_blocks, pts, snap)
    inb = block_of >= 0
    bsum = {c: np.bincount(block_of[inb], weights=hh[c].to_numpy(dtype=float)[inb],
                           minlength=len(all_blocks)) for c in (*COUNT_COLUMNS, "workload")}
    timing["blocks_s"] = time.perf_counter() - t1

    # Partition.
    t2 = time.perf_counter()
    say("partitioning")
    part_notes = []
    for j, p in enumerate(parts):
        if p.k <= 1 or p.attach:
            p.labels = np.zeros(len(p.blocks), dtype=np.int64)
            if p.anchors is not None and len(p.anchors) and not p.attach:
                if p.kept:
                    p.fixed = {0: int(p.anchors[0])}
                else:  # one grid where there were several: it continues the heaviest
                    start = _anchor_labels(p.blocks, anc["geometry"][p.anchors])
                    sw = bsum["workload"][offsets[j]:offsets[j + 1]]
                    w = np.bincount(np.maximum(start, 0), weights=np.where(start >= 0, sw, 0),
                                    minlength=len(p.anchors))
                    p.fixed = {0: int(p.anchors[int(np.argmax(w))])}
            continue
        sl = slice(offsets[j], offsets[j + 1])
        g = block_graph(p.blocks, p.geom, bsum["workload"][sl], metric, p.near)
        if p.anchors is not None and len(p.anchors):
            start = _anchor_labels(p.blocks, anc["geometry"][p.anchors])
            if p.kept:
                labels = _regrow(_csr(g, g.edge_len), start, len(p.anchors)) if (start < 0).any() else start
                p.labels = labels
                p.fixed = {lab: int(p.anchors[lab]) for lab in range(len(p.anchors))}
                part_notes.append({"village": vil["code"][p.village], "part": j, "blocks": int(g.n),
                                   "grids": p.k, "kept": True})
                continue
            obj = Objective(target=max(bsum["workload"][sl].sum() / p.k, 1e-9), low=lo, high=hi,
                            road_factor=road_factor, tolerance=tolerance, **dict(shape_weights or {}))
            res, origin = partition_from(g, p.k, obj, start, seed=seed * 7919 + 101 * j,
                                         anchor_weight=anchor_weight)
            if not _broken_grids(p.blocks, res.labels, p.k, p.geom, metric, settings.area_tolerance_m2):
                p.labels = res.labels
                p.fixed = {lab: int(p.anchors[o]) for lab, o in enumerate(origin) if o >= 0}
                part_notes.append({"village": vil["code"][p.village], "part": j, "blocks": int(g.n),
                                   "grids": p.k, "from": "in force", "rounds": res.rounds,
                                   "moves": res.moves, "repairs": res.repairs})
                continue
        if len(p.blocks) < p.k:
            problems.append({"severity": "error", "village": vil["code"][p.village],
                             "message": f"village {vil['code'][p.village]}: only {len(p.blocks)} block(s) for {p.k} grids"})
        t = bsum["workload"][sl].sum() / p.k
        low, high = t * (1 - tolerance), t * (1 + tolerance)
        if lo <= t <= hi:
            low, high = max(low, lo), min(high, hi)
        obj = Objective(target=max(t, 1e-9), low=low, high=high, road_factor=road_factor,
                        tolerance=tolerance, **dict(shape_weights or {}))
        # The partition's repairs can still leave a grid wrapped around another (an
        # enclave) on some inputs; such a result breaks a hard rule, so the part is
        # partitioned again from other, still deterministic, seeds.
        for attempt in range(_ATTEMPTS):
            res = partition(g, p.k, obj, seed=seed * 7919 + 101 * j + 7 * attempt, starts=starts)
            broken = _broken_grids(p.blocks, res.labels, p.k, p.geom, metric, settings.area_tolerance_m2)
            if not broken:
                break
        if broken:
            problems.append({"severity": "error", "village": vil["code"][p.village],
                             "message": f"village {vil['code'][p.village]}: no partition without an enclave "
                                        f"or a split grid in {_ATTEMPTS} attempts"})
        p.labels = res.labels
        part_notes.append({"village": vil["code"][p.village], "part": j, "blocks": int(g.n), "grids": p.k,
                           "seed": res.seed, "rounds": res.rounds, "moves": res.moves,
                           "repairs": res.repairs})
    timing["partition_s"] = time.perf_counter() - t2

    # Grids: the union of their blocks, numbered per village.
    t3 = time.perf_counter()
    say("building grids")
    grids, block_grid = _build_grids(vil, parts, offsets, all_blocks, bsum, problems, anc)
    blocks = gpd.GeoDataFrame({
        "block": np.arange(len(all_blocks), dtype=np.int64),
        "village_code": vil["code"].to_numpy()[[parts[i].village for i in block_part]],
        "grid_code": block_grid,
        **{c: (np.rint(bsum[c]).astype(np.int64) if c != "workload" else np.round(bsum[c], 3))
           for c in (*COUNT_COLUMNS, "workload")},
    }, geometry=all_blocks, crs=4326)
    assignment = pd.DataFrame({
        "grid_code": np.where(inb, block_grid[np.maximum(block_of, 0)], None),
        "block": np.where(inb, block_of, -1),
        "snapped": snapped & inb,
    }, index=hh.index)
    timing["grids_s"] = time.perf_counter() - t3

    # Report.
    t4 = time.perf_counter()
    exempt = grids.loc[grids["_exempt"], "code"].tolist()
    grids = grids.drop(columns="_exempt")
    metrics, per_grid = evaluate(grids, vil, lines, band=(lo, hi), exempt=exempt,
                                 tolerance_m2=settings.area_tolerance_m2)
    timing["metrics_s"] = time.perf_counter() - t4
    metrics["blocks"] = int(len(all_blocks))
    metrics["runtime_s"] = round(time.perf_counter() - t0, 3)
    hv = hh["village_code"].astype("string") if "village_code" in hh.columns else None
    mismatch = 0
    if hv is not None:
        gv = pd.Series(np.where(inb, blocks["village_code"].to_numpy()[np.maximum(block_of, 0)], None), index=hh.index)
        mismatch = int((inb & hv.notna().to_numpy() & (hv.to_numpy() != gv.to_numpy())).sum())
    report = {
        "params": {"band": [lo, hi], "per_village": per_village if not isinstance(per_village, Mapping) else dict(per_village),
                   "target": target, "tolerance": tolerance, "workload": dict(workload or {"households": 1.0}),
                   "seed": seed, "road_factor": road_factor, "cells_per_grid": cells_per_grid, "starts": starts,
                   "block_share": block_share, "exclaves": exclaves, "strict": strict, "snap_m": snap},
        "metrics": metrics,
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "households": {
            "points": int(len(hh)),
            "households": int(round(hh["households"].sum())),
            "placed_points": int(inb.sum()),
            "snapped_points": int((snapped & inb).sum()),
            "outside_points": int((~inb).sum()),
            "village_code_differs": mismatch,
        },
        "villages": _village_rows(vil, parts, grids),
        "grids": per_grid.merge(grids[["code", "name", "households", "population"]], on="code")
                         .to_dict("records"),
        "partition": part_notes,
        "problems": problems,
    }
    if staff is not None:
        from gridgeo.plan.staffing import staffing

        table = staffing(grids, staff, households_per_worker=households_per_worker)
        report["staffing"] = table.to_dict("records")
    return Plan(grids=grids, blocks=blocks, assignment=assignment, report=jsonable(report))


def _allocate(vil, parts: list[_Part], band, per_village, target, exclaves):
    """Set k (and attach) of every part; return (infeasibility reasons, other problems)."""
    lo, hi = band
    reasons: list[str] = []
    problems: list[dict] = []
    by_village: dict[int, list[int]] = {}
    for j, p in enumerate(parts):
        by_village.setdefault(p.village, []).append(j)
    for vi, idx in by_village.items():
        code, name = vil["code"][vi], vil["name"][vi]
        label = f"village {code} ({name})" if name != code else f"village {code}"
        own = idx
        if exclaves == "attach" and len(idx) > 1:
            main = max(idx, key=lambda j: (parts[j].workload, shapely.area(parts[j].geom)))
            for j in idx:
                if j != main and parts[j].workload < lo:
                    parts[j].attach, parts[j].k, parts[j].rule = True, 0, "attached"
            own = [j for j in idx if not parts[j].attach]
        want = None
        if isinstance(per_village, Mapping):
            want = per_village.get(code)
        elif per_village is not None:
            want = int(per_village)
        if want is not None:
            if want < len(own):
                reasons.append(f"{label} is in {len(own)} parts and needs a grid in each, "
                               f"but {want} grid(s) were asked for")
                counts = [1] * len(own)
            else:
                counts = split_count(int(want), [parts[j].workload for j in own])
            for j, k in zip(own, counts):
                p = parts[j]
                # one grid for a part below the floor: exempt from the band, as when counted
                p.k, p.rule = k, ("below floor" if k == 1 and p.workload < lo else "per_village")
                mean = p.workload / k
                if not (lo <= mean <= hi) and not (k == 1 and p.workload < lo):
                    where = f"{label}" + (f" part {own.index(j) + 1}" if len(own) > 1 else "")
                    reasons.append(f"{where}: {k} grid(s) for a workload of {p.workload:,.0f} "
                                   f"average {mean:,.1f}, outside the band {lo:,.0f}-{hi:,.0f}")
        else:
            for n_part, j in enumerate(own, 1):
                p = parts[j]
                k, why, rule = grids_for(p.workload, (lo, hi), target)
                p.k, p.rule = k, rule
                where = label + (f" part {n_part} of {len(own)}" if len(own) > 1 else "")
                if why:
                    reasons.append(f"{where}: {why}")
                elif rule == "below floor" and len(own) > 1:
                    problems.append({"severity": "warning", "village": code,
                                     "message": f"{where} holds {p.workload:,.0f}, below the floor "
                                                f"{lo:,.0f}: one grid of its own (exclaves='attach' "
                                                "joins it to the nearest grid instead)"})
        for n_part, j in enumerate(own, 1):
            p = parts[j]
            if p.k > MAX_GRIDS:  # refused even when lenient: there is no such plan to make
                raise InfeasibleBand([f"{label}: {p.k:,} grids asked for; "
                                      f"a village takes at most {MAX_GRIDS}"])
            if p.k >= 2 and p.atoms > hi:
                reasons.append(f"{label}: one address holds a workload of {p.atoms:,.0f}, "
                               f"above the ceiling {hi:,.0f}, and an address cannot be split")
    return reasons, problems


_ATTEMPTS = 6


def _anchor_parts(anchor, vil, parts: list[_Part], parts_geom, keep: set[str], snap: float):
    """The anchor grids (the plan in force) by village part; sets ``anchors``, ``kept`` and,
    for kept parts, ``k`` of every part. Returns the anchor columns, or None."""
    if anchor is None or len(anchor) == 0:
        return None
    a = _to_wgs84(anchor, "grids in force")
    for col in ("code", "village_code"):
        if col not in a.columns:
            raise InvalidInput(f"the grids to start from have no {col!r} column")
    a = a[a["village_code"].astype(str).isin(set(vil["code"])) & ~(a.geometry.isna() | a.geometry.is_empty)]
    if len(a) == 0:
        return None
    geoms = a.geometry.to_numpy()
    codes = a["code"].astype(str).to_numpy()
    anc = {"geometry": geoms, "code": codes,
           "name": a["name"].astype(str).to_numpy() if "name" in a.columns else codes}
    _, part = shapely.STRtree(parts_geom).query_nearest(shapely.point_on_surface(geoms), all_matches=False)
    vcode = vil["code"].to_numpy()
    part_village = np.array([vcode[p.village] for p in parts], dtype=object)
    part = np.where(part_village[part] == a["village_code"].astype(str).to_numpy(), part, -1)
    for j, p in enumerate(parts):
        p.anchors = np.flatnonzero(part == j)
        p.kept = bool(vcode[p.village] in keep and len(p.anchors) and not p.attach)
        if p.kept:
            p.k = len(p.anchors)
            p.rule = "below floor" if p.k == 1 and p.rule == "below floor" else "kept"
    return anc


def _anchor_labels(blocks: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """The anchor grid (index into ``anchors``) holding each block, -1 where none does."""
    out = np.full(len(blocks), -1, dtype=np.int64)
    bi, ai = shapely.STRtree(anchors).query(shapely.point_on_surface(blocks), predicate="within")
    out[bi] = ai
    return out


def _broken_grids(blocks, labels, k, village, metric, tolerance_m2) -> bool:
    """Whether the grids of one part would break a hard rule: a grid in pieces, or one
    holding another (a hole over land of its village)."""
    geoms = np.array([shapely.union_all(blocks[labels == c]) for c in range(k)], dtype=object)
    if (shapely.get_type_id(geoms) != 3).any():
        return True
    return bool(enclaves(geoms, np.array([village] * k, dtype=object), metric, tolerance_m2).any())


def _build_grids(vil, parts: list[_Part], offsets, all_blocks, bsum, problems, anc=None):
    """The grid layer from the parts' labels; returns it and the grid code of each block.

    A grid continuing an anchor grid (``_Part.fixed``) keeps its code, and a kept one its
    geometry and name; in a village divided again every grid is named by the pattern
    (:func:`grid_name`: a continued grid by its code's number), so that an old name does
    not stand beside new ones (a village's only grid, 青岚村网格, covering half of it). The
    others are numbered after the codes kept in their village."""
    rows = []  # (village row, geometry, block indices, exempt, anchor row or -1, kept)
    for j, p in enumerate(parts):
        if p.attach:
            continue
        base = offsets[j]
        fixed = p.fixed or {}
        for lab in range(max(p.k, 1)):
            idx = base + np.flatnonzero(p.labels == lab)
            if len(idx) == 0:
                problems.append({"severity": "error", "village": vil["code"][p.village],
                                 "message": f"village {vil['code'][p.village]}: a grid got no block"})
                continue
            if p.kept and lab in fixed:
                geom = anc["geometry"][fixed[lab]]
            else:
                geom = p.geom if len(idx) == 1 and p.k <= 1 else shapely.coverage_union_all(all_blocks[idx])
            rows.append((p.village, geom, idx, p.k <= 1 and p.rule == "below floor", fixed.get(lab, -1),
                         bool(p.kept)))
    # Parts attached to the nearest grid of their village.
    for j, p in enumerate(parts):
        if not p.attach:
            continue
        cands = [r for r in range(len(rows)) if rows[r][0] == p.village]
        dist = shapely.distance(np.array([rows[r][1] for r in cands]), p.geom)
        r = cands[int(np.argmin(dist))]
        v, geom, idx, ex, fx, kp = rows[r]
        rows[r] = (v, shapely.union(geom, p.geom), np.concatenate([idx, [offsets[j]]]), ex, fx, kp)
    vrow = np.array([r[0] for r in rows], dtype=np.int64)
    geoms = np.array([r[1] for r in rows], dtype=object)
    cent = shapely.centroid(geoms)
    cx, cy = shapely.get_x(cent), shapely.get_y(cent)
    codes = np.empty(len(rows), dtype=object)
    names = np.empty(len(rows), dtype=object)
    vcodes, vnames = vil["code"].to_numpy(), vil["name"].to_numpy()
    towns = vil["township"].to_numpy() if "township" in vil.columns else np.full(len(vil), "", dtype=object)
    fixed = np.array([r[4] for r in rows], dtype=np.int64)
    for vi in np.unique(vrow):
        sel = np.flatnonzero(vrow == vi)
        if len(sel) > 999:
            raise InfeasibleBand([f"village {vcodes[vi]} would need {len(sel)} grids: codes allow 999"])
        taken: set[int] = set()
        for r in sel[fixed[sel] >= 0]:
            code = anc["code"][fixed[r]]
            if code.startswith(vcodes[vi]) and code[len(vcodes[vi]):].isdigit() and code not in codes[sel]:
                seq = int(code[len(vcodes[vi]):])
                codes[r] = code
                names[r] = anc["name"][fixed[r]] if rows[r][5] else grid_name(towns[vi], vnames[vi], seq, len(sel))
                taken.add(seq)
        free = sel[pd.isna(codes[sel])]
        order = free[number_grids(cx[free], cy[free])]
        seqs = [n for n in range(1, len(sel) + len(taken) + 1) if n not in taken][:len(order)]
        for seq, r in zip(seqs, order):
            codes[r] = f"{vcodes[vi]}{seq:03d}"
            names[r] = grid_name(towns[vi], vnames[vi], seq, len(sel))
    block_grid = np.empty(len(all_blocks), dtype=object)
    for r, (_, _, idx, _, _, _) in enumerate(rows):
        block_grid[idx] = codes[r]
    sums = {c: np.array([bsum[c][r[2]].sum() for r in rows]) for c in (*COUNT_COLUMNS, "workload")}
    grids = gpd.GeoDataFrame({
        "code": codes.astype(str),
        "name": names.astype(str),
        "village_code": vcodes[vrow],
        "kind": "basic",
        **{c: np.rint(sums[c]).astype(np.int64) for c in COUNT_COLUMNS},
        "workload": np.round(sums["workload"], 3),
        "_exempt": np.array([r[3] for r in rows], dtype=bool),
    }, geometry=geoms, crs=4326)
    grids = grids.sort_values("code", kind="stable").reset_index(drop=True)
    return grids, block_grid


def _village_rows(vil, parts: list[_Part], grids) -> list[dict]:
    out = []
    n_grids = grids.groupby("village_code").size()
    for vi in range(len(vil)):
        mine = [p for p in parts if p.village == vi]
        w = sum(p.workload for p in mine)
        k = int(n_grids.get(vil["code"][vi], 0))
        out.append({
            "code": vil["code"][vi], "name": vil["name"][vi], "workload": round(w, 3), "grids": k,
            "parts": len(mine), "mean": round(w / k, 3) if k else None,
            "rule": ",".join(sorted({p.rule for p in mine})),
        })
    return out
