"""Coverage under a plan: staffing of each grid, ground and households covered.

Staffing (one definition, used by the maps, the workload tables and the planner,
:func:`gridgeo.plan.staffing`). The provincial rule (seeds/000, 深化网格建设) is that every
grid has one grid head (网格长), full- and part-time workers (专兼职网格员) and an
instructor (网格指导员). gridgeo reads it as:

- three *required roles*: at least one grid head, one full-time worker and one
  instructor; a grid's ``completeness`` is the share of them filled, ``missing`` lists
  the ones nobody holds;
- enough workers: ``need_workers = ceil(households / households_per_worker)``
  (``GRIDGEO_HOUSEHOLDS_PER_WORKER``, 200), and at least one, full- and part-time
  workers both counting.

A grid is ``short`` (under-staffed) when a required role is empty or it has fewer
workers than it needs.

Coverage (:func:`coverage`): the share of each village's (community's) area and
households inside the grids of the plan; grids without a grid head, workers or an
instructor; households in no grid (placed by :class:`gridgeo.locate.Locator` with
snapping off: a household 10 m outside every grid is a gap in the plan).
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.config import get_settings
from gridgeo.errors import InvalidInput
from gridgeo.crs import metric_epsg
from gridgeo.layers import STAFF_ROLES
from gridgeo.locate import Locator

__all__ = ["REQUIRED_ROLES", "WORKER_ROLES", "coverage", "staffing", "missing_roles", "missing_by_grid"]

#: Roles every grid must have at least one of.
REQUIRED_ROLES = ("grid_head", "full_time_worker", "instructor")
#: The grid's workers (网格员), as the glossary has them: full- and part-time.
WORKER_ROLES = ("full_time_worker", "part_time_worker")


def staffing(
    grids,
    staff: pd.DataFrame | None,
    *,
    households_per_worker: int | None = None,
    separator: str = "、",
) -> pd.DataFrame:
    """One row per grid: who holds each role, what it needs, what is missing.

    Parameters
    ----------
    grids : DataFrame or array_like of str
        The grids to report on: a frame with ``code`` (and ``households``, ``name``),
        or just their codes (households then unknown: 0). Staff on other grids are
        ignored; grids with no staff get empty names and completeness 0.
    staff : DataFrame or None
        The ``staff`` layer (``code``, ``name``, ``role``, ``grid_code``).
    households_per_worker : int, optional
        Default ``GRIDGEO_HOUSEHOLDS_PER_WORKER``.
    separator : str
        Joins several names in one role.

    Returns
    -------
    pandas.DataFrame
        Indexed by grid code, in the order given: ``name``, ``households``; for each
        role of :data:`gridgeo.layers.STAFF_ROLES` a column of names (``grid_head`` ...) and
        a count (``n_grid_head`` ...); ``workers`` (people in :data:`WORKER_ROLES`),
        ``need_workers``, ``workers_short`` (how many more are needed), ``missing``
        (Chinese labels of the empty required roles, joined by ``separator``; empty
        when none), ``n_missing``, ``completeness`` (0 to 1), ``short`` (bool) and
        ``shortfall`` (all that is missing, in Chinese), ``shortfall_en`` (in English).
    """
    hpw = int(households_per_worker or get_settings().households_per_worker)
    if hpw <= 0:
        raise InvalidInput(f"households_per_worker must be a positive number, not {hpw}")
    if isinstance(grids, pd.DataFrame):
        codes = grids["code"].astype(str).to_numpy(dtype=object)
        households = (pd.to_numeric(grids["households"], errors="coerce").fillna(0).astype(int).to_numpy()
                      if "households" in grids else np.zeros(len(grids), dtype=int))
        names = grids["name"].astype(str).to_numpy(dtype=object) if "name" in grids else np.full(len(grids), "", dtype=object)
    else:
        codes = pd.Series(grids, dtype=object).astype(str).to_numpy(dtype=object)
        households = np.zeros(len(codes), dtype=int)
        names = np.full(len(codes), "", dtype=object)
    index = pd.Index(codes, dtype=object, name="code")
    if staff is None or not len(staff):
        staff = pd.DataFrame(columns=["code", "name", "role", "grid_code"])
    rows = staff.loc[staff["grid_code"].astype(str).isin(set(codes))].copy()
    rows["grid_code"] = rows["grid_code"].astype(str)
    who = "code" if "code" in rows else "name"
    if "name" not in rows:
        rows["name"] = rows[who]
    # One person once per grid and role.
    rows = rows.drop_duplicates(["grid_code", "role", who]).sort_values(["grid_code", "role", "name"], kind="stable")
    # Names joined per grid and role by a grouped string sum (no Python call per group).
    joined = (
        (rows["name"].astype(str) + separator).groupby([rows["grid_code"], rows["role"]], sort=False).sum()
        .str[: -len(separator) or None]
    )
    table = (joined.unstack("role") if len(joined) else pd.DataFrame(index=pd.Index([], name="grid_code")))
    table = table.reindex(index=index, columns=list(STAFF_ROLES)).astype(object).fillna("")
    counts = (rows.groupby(["grid_code", "role"]).size().unstack("role") if len(rows)
              else pd.DataFrame(index=pd.Index([], name="grid_code")))
    counts = counts.reindex(index=index, columns=list(STAFF_ROLES)).fillna(0).astype(int)
    out = pd.DataFrame(index=index)
    out["name"] = names
    out["households"] = households
    for role in STAFF_ROLES:
        out[role] = table[role].to_numpy(dtype=object)
    for role in STAFF_ROLES:
        out[f"n_{role}"] = counts[role].to_numpy()
    out["workers"] = counts[list(WORKER_ROLES)].sum(axis=1).to_numpy()
    out["need_workers"] = np.maximum(1, np.ceil(households / hpw)).astype(int)
    out["workers_short"] = np.maximum(out["need_workers"] - out["workers"], 0)
    lacking = counts[list(REQUIRED_ROLES)].to_numpy() == 0
    # The empty roles as a bit mask, looked up in a table of every combination's label.
    mask = lacking.astype(int) @ (1 << np.arange(len(REQUIRED_ROLES)))
    labels = np.array(
        [separator.join(STAFF_ROLES[r] for i, r in enumerate(REQUIRED_ROLES) if m >> i & 1)
         for m in range(1 << len(REQUIRED_ROLES))],
        dtype=object,
    )
    out["missing"] = labels[mask]
    out["n_missing"] = lacking.sum(axis=1)
    out["completeness"] = 1.0 - out["n_missing"] / len(REQUIRED_ROLES)
    few = out["workers_short"].to_numpy() > 0
    out["short"] = (out["n_missing"].to_numpy() > 0) | few
    gap = out["workers_short"].astype(str)
    zh = pd.Series(out["missing"].to_numpy(dtype=object), index=index).astype(str)
    zh = zh.where(zh == "", "缺" + zh)
    more = pd.Series(np.where(few, "网格员缺" + gap + "名", ""), index=index)
    out["shortfall"] = (zh + np.where((zh != "") & few, "；", "") + more).to_numpy(dtype=object)
    head, full, instr = lacking[:, 0], lacking[:, 1], lacking[:, 2]
    en = pd.Series([""] * len(out), index=index, dtype=object)
    en = en.str.cat(np.where(head, "no grid head; ", ""))
    en = en.str.cat(np.where(instr, "no instructor; ", ""))
    en = en.str.cat(np.where(few, gap + " worker(s) short; ", ""))
    en = en.str.cat(np.where(full & ~few, "no full-time worker; ", ""))
    out["shortfall_en"] = en.str.rstrip("; ").to_numpy(dtype=object)
    return out


def missing_roles(codes, staff) -> np.ndarray:
    """For each grid code, how many :data:`REQUIRED_ROLES` nobody holds: the ``n_missing``
    of :func:`staffing` alone, without the names (a province's 100,000 grids in a fraction
    of the time, for a map that colours by it). ``staff`` is the staff layer, or a
    :class:`gridgeo.store.Store` to count in the database (the roster is not read)."""
    codes = pd.Index(pd.Series(codes, dtype=object).astype(str))
    if hasattr(staff, "engine"):
        from sqlalchemy import distinct, func, select

        from gridgeo.store import schema

        t = schema.staff
        q = (select(t.c.grid_code, func.count(distinct(t.c.role)))
             .where(t.c.role.in_(REQUIRED_ROLES)).group_by(t.c.grid_code))
        with staff.engine.connect() as conn:
            rows = conn.execute(q).all()
        held = pd.Series([r[1] for r in rows], index=[str(r[0]) for r in rows], dtype=int)
    elif staff is None or not len(staff):
        return np.full(len(codes), len(REQUIRED_ROLES))
    else:
        s = staff.loc[staff["role"].isin(REQUIRED_ROLES).to_numpy(), ["grid_code", "role"]].astype(str)
        held = s.drop_duplicates()["grid_code"].value_counts()
    return len(REQUIRED_ROLES) - held.reindex(codes, fill_value=0).to_numpy()


def missing_by_grid(store, plan_id: int, prefix: str | None = None) -> pd.DataFrame:
    """``code``, ``village_code`` and ``n_missing`` (as :func:`missing_roles`) of every grid of
    plan ``plan_id`` whose code starts with ``prefix``, counted by the database in one query
    (neither the grids nor the roster read): a province map's page needs nothing more."""
    roles = ", ".join(f"'{r}'" for r in REQUIRED_ROLES)
    held = " + ".join(f"max(CASE WHEN role = '{r}' THEN 1 ELSE 0 END)" for r in REQUIRED_ROLES)
    # both from covering indexes (grids: plan_id, code, village_code; staff: grid_code, role)
    sql = (f"SELECT g.code, g.village_code, coalesce(h.n, 0) FROM grids g LEFT JOIN "
           f"(SELECT grid_code, {held} AS n FROM staff WHERE role IN ({roles}) GROUP BY grid_code) h "
           f"ON h.grid_code = g.code WHERE g.plan_id = :plan AND g.code LIKE :like")
    like = (prefix or "").replace("\\", "").replace("%", "").replace("_", "") + "%"
    rows = store.tuples(sql + " ORDER BY g.code", {"plan": int(plan_id), "like": like})
    frame = pd.DataFrame(rows, columns=["code", "village_code", "held"])
    frame["n_missing"] = len(REQUIRED_ROLES) - frame.pop("held").astype(int)
    return frame


def _locate_households(households: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> np.ndarray:
    if not len(households) or not len(grids):
        return np.full(len(households), None, dtype=object)
    loc = Locator.from_frame(grids, "code", tolerance=0)
    geoms = households.geometry.to_numpy()
    return loc.locate(shapely.get_x(geoms), shapely.get_y(geoms))


def coverage(
    store,
    *,
    at: dt.date | None = None,
    plan: int | str | None = None,
    village: str | None = None,
    households_per_worker: int | None = None,
) -> dict:
    """Coverage of the plan in force on ``at`` (default today), or of ``plan``.

    Parameters
    ----------
    village : str, optional
        A division code prefix (a village or a township).

    Returns
    -------
    dict
        ``plan_version``;
        ``villages``: DataFrame indexed by village code: ``name``, ``township_code``,
        ``grids``, ``area_km2``, ``covered_km2``, ``area_share`` (of the village's area
        inside its grids), ``households`` (the households layer's, by village),
        ``households_in_grids`` (of those, inside some grid), ``households_share``,
        ``grid_households`` (the grids' own count);
        ``townships``: the same summed per township;
        ``grids``: :func:`staffing` of every grid, with ``no_grid_head``,
        ``no_workers``, ``no_instructor``;
        ``households_outside``: DataFrame of the household points in no grid (``code``,
        ``address``, ``village_code``, ``households``, ``lon``, ``lat``);
        ``summary``: counts and shares for the whole area.
    """
    grids = store.read("grids", at=at, plan=plan)
    plan_version = grids.attrs.get("plan_version")
    divisions = store.read("divisions")
    households = store.read("households")
    if village:
        grids = grids[grids["code"].str.startswith(village)]
        households = households[households["village_code"].fillna("").str.startswith(village)]
    villages = divisions[divisions["level"].isin(["village", "community"])]
    if village:
        villages = villages[villages["code"].str.startswith(village)]
    villages = villages.set_index("code")
    # Areas in the Gauss-Krüger zone of the data.
    ref = villages.geometry if len(villages) else grids.geometry
    lon0 = float(ref.union_all().centroid.x) if len(ref) and not ref.is_empty.all() else 120.0
    epsg = metric_epsg(lon0)
    vm = villages.geometry.to_crs(epsg)
    gm = gpd.GeoSeries(grids.geometry.to_numpy(), crs=4326).to_crs(epsg)
    by_village = pd.Series(gm.to_numpy(), index=grids["village_code"].to_numpy())
    # Union of each village's grids (a handful per village), clipped to the village.
    unions = (gpd.GeoSeries(by_village.to_numpy(), index=by_village.index, crs=epsg)
              .groupby(level=0).agg(lambda s: shapely.union_all(s.to_numpy())) if len(by_village)
              else pd.Series(dtype=object))
    vgeom = vm.reindex(villages.index).to_numpy()
    ugeom = pd.Series(unions).reindex(villages.index).to_numpy(dtype=object)
    # A village with no grid (or no plan at all) reindexes to NaN, which shapely refuses.
    ugeom = np.where(pd.isna(ugeom), None, ugeom)
    has = ~shapely.is_missing(vgeom) & ~shapely.is_missing(ugeom)
    covered = np.zeros(len(villages))
    if has.any():
        covered[has] = shapely.area(shapely.intersection(vgeom[has], ugeom[has]))
    area = np.where(shapely.is_missing(vgeom), np.nan, shapely.area(vgeom))
    hh_grid = _locate_households(households, grids)
    hh_n = pd.to_numeric(households["households"], errors="coerce").fillna(1).to_numpy()
    hv = households["village_code"].to_numpy(dtype=object)
    inside = pd.notna(hh_grid)
    hh_total = pd.Series(hh_n).groupby(hv).sum()
    hh_in = pd.Series(hh_n[inside]).groupby(hv[inside]).sum()
    n_grids = grids.groupby("village_code").size()
    grid_hh = grids.groupby("village_code")["households"].sum()
    vt = pd.DataFrame(index=pd.Index(villages.index, dtype=object, name="code"))
    vt["name"] = villages["name"].to_numpy()
    vt["township_code"] = villages["parent_code"].to_numpy()
    vt["grids"] = n_grids.reindex(vt.index).fillna(0).astype(int).to_numpy()
    vt["area_km2"] = area / 1e6
    vt["covered_km2"] = covered / 1e6
    vt["area_share"] = covered / np.where(area > 0, area, np.nan)
    vt["households"] = hh_total.reindex(vt.index).fillna(0).astype(int).to_numpy()
    vt["households_in_grids"] = hh_in.reindex(vt.index).fillna(0).astype(int).to_numpy()
    vt["households_share"] = vt["households_in_grids"] / vt["households"].where(vt["households"] > 0)
    vt["grid_households"] = grid_hh.reindex(vt.index).fillna(0).astype(int).to_numpy()
    names = divisions.set_index("code")["name"]
    sums = vt.groupby("township_code")[["grids", "area_km2", "covered_km2", "households", "households_in_grids",
                                         "grid_households"]].sum()
    tt = pd.DataFrame(index=pd.Index(sums.index, dtype=object, name="code"))
    tt["name"] = names.reindex(tt.index).to_numpy()
    tt = tt.join(sums)
    tt["area_share"] = tt["covered_km2"] / tt["area_km2"].where(tt["area_km2"] > 0)
    tt["households_share"] = tt["households_in_grids"] / tt["households"].where(tt["households"] > 0)
    staff = staffing(grids, store.read("staff"), households_per_worker=households_per_worker)
    staff["village_code"] = grids["village_code"].to_numpy()
    staff["no_grid_head"] = staff["n_grid_head"] == 0
    staff["no_workers"] = staff["workers"] == 0
    staff["no_instructor"] = staff["n_instructor"] == 0
    outside = households.loc[~inside, ["code", "address", "village_code", "households"]].copy()
    geoms = households.geometry.to_numpy()[~inside]
    outside["lon"] = shapely.get_x(geoms) if len(geoms) else []
    outside["lat"] = shapely.get_y(geoms) if len(geoms) else []
    outside = pd.DataFrame(outside).reset_index(drop=True)
    total_area = float(np.nansum(area))
    summary = {
        "plan_version": plan_version,
        "villages": int(len(vt)),
        "grids": int(len(grids)),
        "area_km2": round(total_area / 1e6, 3),
        "covered_km2": round(float(covered.sum()) / 1e6, 3),
        "area_share": round(float(covered.sum() / total_area), 6) if total_area > 0 else None,
        "households": int(hh_n.sum()),
        "households_in_grids": int(hh_n[inside].sum()),
        "households_share": round(float(hh_n[inside].sum() / hh_n.sum()), 6) if hh_n.sum() > 0 else None,
        "household_points_outside": int((~inside).sum()),
        "households_outside": int(hh_n[~inside].sum()),
        "grids_without_grid_head": staff.index[staff["no_grid_head"]].tolist(),
        "grids_without_workers": staff.index[staff["no_workers"]].tolist(),
        "grids_without_instructor": staff.index[staff["no_instructor"]].tolist(),
        "grids_understaffed": staff.index[staff["short"]].tolist(),
        "villages_without_grids": vt.index[vt["grids"] == 0].tolist(),
    }
    return {"plan_version": plan_version, "villages": vt, "townships": tt, "grids": staff,
            "households_outside": outside, "summary": summary}
