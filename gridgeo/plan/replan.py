"""Re-planning from the plan in force (稳定调整): change only what has to change.

A department rarely plans from scratch: a division is in force, people know their grid
and their grid worker. :func:`replan` starts from the grids in force:

* a village whose grids in force are valid and in the band keeps them exactly: codes,
  names, boundaries (and so its staff);
* a village that breaks a rule is divided again, and only it: its grids in force do not
  tile it any more (its boundary changed, or a grid is in pieces or wraps another), a grid
  of it is outside the band (its households grew or shrank, or the band changed), or it
  has no grid in force (a new village). There the division starts from the old grids
  (:func:`gridgeo.plan.partition.partition_from`): the old grid count when the band still
  allows it, grids merged or halved only when the count must change, then the fewest
  households moved that brings every grid into the band. Grids continuing an old grid keep
  its code; new grids take the next free numbers; all of them are named by the pattern
  (:func:`gridgeo.plan.divide.grid_name`), so that no old name (a village's only grid)
  stands beside the new ones.

The report says, per village, whether it was touched and why, and how many households and
address points change grid (``report["villages"]``, ``report["replan"]``).
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo import crs as _crs
from gridgeo.config import get_settings
from gridgeo.plan.bands import DEFAULT_BAND, parse_band
from gridgeo.plan.blocks import Metric
from gridgeo.plan.divide import Plan, _locate, divide, jsonable, prepare_households, prepare_villages
from gridgeo.plan.metrics import enclaves

__all__ = ["check_in_force", "replan", "grid_changes"]


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def check_in_force(villages: gpd.GeoDataFrame, households: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, *,
                   band: tuple[float, float] = DEFAULT_BAND, tolerance_m2: float | None = None,
                   snap_m: float | None = None) -> dict[str, str | None]:
    """Why each village's grids in force cannot stay as they are (None: they can).

    ``villages`` and ``households`` as :func:`~gridgeo.plan.divide.prepare_villages` and
    :func:`~gridgeo.plan.divide.prepare_households` return them (a ``workload`` column).
    A village's only grid below the floor is in order (it cannot be split).
    """
    lo, hi = parse_band(band)
    settings = get_settings()
    tol = settings.area_tolerance_m2 if tolerance_m2 is None else tolerance_m2
    snap = settings.snap_tolerance_m if snap_m is None else snap_m
    g = grids[grids["village_code"].astype(str).isin(set(villages["code"]))].reset_index(drop=True)
    g = g[~(g.geometry.isna() | g.geometry.is_empty)].reset_index(drop=True)
    out: dict[str, str | None] = {}
    if len(g):
        gi, _ = _locate(g.geometry.to_numpy(), households.geometry.to_numpy(), snap)
        ok = gi >= 0
        work = np.bincount(gi[ok], weights=households["workload"].to_numpy(float)[ok], minlength=len(g))
    else:
        work = np.zeros(0)
    metric = Metric(_crs.metric_epsg(float(np.mean(villages.total_bounds[[0, 2]]))))
    gv = g["village_code"].astype(str).to_numpy()
    codes = g["code"].astype(str).to_numpy()
    geoms = g.geometry.to_numpy()
    vgeom = dict(zip(villages["code"], villages.geometry))
    single = shapely.get_type_id(geoms) == 3
    holes = enclaves(geoms, np.array([vgeom[v] for v in gv], dtype=object), metric, tol) if len(g) else single
    for code, vg in vgeom.items():
        mine = np.flatnonzero(gv == code)
        if len(mine) == 0:
            out[code] = "no grid in force: a new village, or one the plan in force left out"
            continue
        cover = shapely.union_all(geoms[mine])
        gap, spill = shapely.difference(vg, cover), shapely.difference(cover, vg)
        over = float(metric.area(geoms[mine]).sum() - metric.area(np.array([cover]))[0])
        moved = float(metric.area(np.array([gap, spill])).sum())
        if moved > tol or over > tol:
            out[code] = (f"its grids in force do not tile it as it is now ({moved:,.0f} m² uncovered or "
                         f"outside, {max(over, 0):,.0f} m² overlapping): its boundary changed")
            continue
        broken = [c for c, s, h in zip(codes[mine], single[mine], holes[mine]) if not s or h]
        if broken:
            out[code] = f"grid(s) {', '.join(broken[:3])} in pieces or wrapped around other land"
            continue
        w = work[mine]
        if len(mine) == 1 and w[0] < lo:
            out[code] = None  # a village below the floor is one grid
            continue
        high = [f"{c} holds {_fmt(x)}, above the ceiling {_fmt(hi)}" for c, x in zip(codes[mine], w) if x > hi + 1e-9]
        low = [f"{c} holds {_fmt(x)}, below the floor {_fmt(lo)}" for c, x in zip(codes[mine], w) if x < lo - 1e-9]
        if high or low:
            bad = high + low
            out[code] = "grid " + "; ".join(bad[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "")
            continue
        out[code] = None
    return out


def grid_changes(old_codes, new_codes, households: pd.Series, villages) -> pd.DataFrame:
    """Households and address points changing grid, per village.

    ``old_codes`` / ``new_codes``: the grid of each address point in the two plans (None:
    in none); ``households`` their household counts; ``villages`` the village of each.
    Returns village_code, addresses_changing, households_changing, addresses, households.
    """
    old = pd.Series(old_codes, dtype=object).fillna("").to_numpy()
    new = pd.Series(new_codes, dtype=object).fillna("").to_numpy()
    frame = pd.DataFrame({"village_code": pd.Series(villages, dtype=object).fillna("").to_numpy(),
                          "changed": old != new,
                          "households": np.asarray(households, dtype=float)})
    frame["hh_changed"] = frame["households"] * frame["changed"]
    out = frame.groupby("village_code").agg(addresses_changing=("changed", "sum"),
                                            households_changing=("hh_changed", "sum"),
                                            addresses=("changed", "size"), households=("households", "sum"))
    return out.astype(int).reset_index()


def replan(villages: gpd.GeoDataFrame, households: gpd.GeoDataFrame | None, roads, current: gpd.GeoDataFrame, *,
           band: tuple[float, float] = DEFAULT_BAND, per_village: int | Mapping[str, int] | None = None,
           workload: Mapping[str, float] | None = None, snap_m: float | None = None, **kwargs) -> Plan:
    """Re-plan ``villages`` starting from the grids in force ``current`` (module notes).

    Parameters
    ----------
    current : geopandas.GeoDataFrame
        The grids in force: code, name, village_code, geometry.
    per_village : int or {village code: int}, optional
        Grid counts asked for: a village whose count in force differs is divided again.
    kwargs
        Passed to :func:`~gridgeo.plan.divide.divide` (seed, road_factor, staff, strict ...).

    Returns
    -------
    Plan
        As :func:`~gridgeo.plan.divide.divide`; ``report["replan"]`` holds the villages kept
        and divided again (with why), and the households and addresses changing grid;
        every row of ``report["villages"]`` says ``touched``, ``why``,
        ``households_changing`` and ``addresses_changing``.
    """
    lo, hi = parse_band(band)
    settings = get_settings()
    snap = settings.snap_tolerance_m if snap_m is None else float(snap_m)
    vil = prepare_villages(villages)
    hh = prepare_households(households, workload)
    cur = current[current["village_code"].astype(str).isin(set(vil["code"]))]
    why = check_in_force(vil, hh, cur, band=(lo, hi), snap_m=snap)
    counts = cur.groupby(cur["village_code"].astype(str)).size()
    asked = ({c: int(per_village) for c in vil["code"]} if isinstance(per_village, int | np.integer)
             else dict(per_village or {}))
    for code, k in asked.items():
        if code in why and why[code] is None and int(counts.get(code, 0)) != int(k):
            why[code] = f"{k} grid(s) asked for, {int(counts.get(code, 0))} in force"
    keep = [c for c, r in why.items() if r is None]
    # Where the band still allows the old count, keep it: fewer households move.
    wv = _village_workload(vil, hh, snap)
    counts_used = dict(asked)
    for code, r in why.items():
        k = int(counts.get(code, 0))
        if code not in counts_used and k >= 1 and (r is None or lo <= wv.get(code, 0.0) / k <= hi):
            counts_used[code] = k
    plan = divide(vil, households, roads, band=(lo, hi), per_village=counts_used or None, workload=workload,
                  snap_m=snap, anchor=cur, keep=keep, **kwargs)
    # What changes: every address point located in both.
    pts = hh.geometry.to_numpy()
    gi, _ = _locate(cur.geometry.to_numpy(), pts, snap) if len(cur) else (np.full(len(hh), -1), None)
    old = np.where(gi >= 0, cur["code"].astype(str).to_numpy()[np.maximum(gi, 0)] if len(cur) else None, None)
    new = plan.assignment["grid_code"].to_numpy(dtype=object)
    bvil = plan.blocks["village_code"].to_numpy()
    vil_of = np.where(plan.assignment["block"].to_numpy() >= 0, bvil[np.maximum(plan.assignment["block"].to_numpy(), 0)], None)
    changes = grid_changes(old, new, hh["households"], vil_of).set_index("village_code")
    rows = []
    for row in plan.report["villages"]:
        c = row["code"]
        ch = changes.loc[c] if c in changes.index else None
        rows.append({**row, "touched": why.get(c) is not None, "why": why.get(c) or "",
                     "households_changing": int(ch["households_changing"]) if ch is not None else 0,
                     "addresses_changing": int(ch["addresses_changing"]) if ch is not None else 0})
    report = dict(plan.report)
    report["villages"] = rows
    total_hh = float(hh["households"].sum())
    moved_hh = int(sum(r["households_changing"] for r in rows))
    report["replan"] = {
        "from": "grids in force",
        "kept": sorted(keep),
        "divided_again": {c: r for c, r in sorted(why.items()) if r is not None},
        "households_changing": moved_hh,
        "addresses_changing": int(sum(r["addresses_changing"] for r in rows)),
        "households_changing_share": round(moved_hh / total_hh, 4) if total_hh else 0.0,
        "grids_kept": int(plan.grids["code"].isin(set(cur["code"].astype(str))).sum()),
        "grids_new": sorted(set(plan.grids["code"]) - set(cur["code"].astype(str))),
        "grids_ended": sorted(set(cur["code"].astype(str)) - set(plan.grids["code"])),
    }
    report["params"] = {**report["params"], "from_scratch": False}
    plan.report = jsonable(report)
    return plan


def _village_workload(vil: gpd.GeoDataFrame, hh: gpd.GeoDataFrame, snap: float) -> dict[str, float]:
    vi, _ = _locate(vil.geometry.to_numpy(), hh.geometry.to_numpy(), snap)
    ok = vi >= 0
    w = np.bincount(vi[ok], weights=hh["workload"].to_numpy(float)[ok], minlength=len(vil))
    return dict(zip(vil["code"], w))
