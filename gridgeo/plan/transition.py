"""Carrying the staff over to a new plan (人员随网格调整).

When a plan is published, every grid head (网格长), instructor (网格指导员) and worker
(网格员) sits on a grid of the plan in force. :func:`staff_transition` maps each new grid
to the old grids it overlaps, counted in households (and in area where no household
tells), and proposes where each person goes:

* a grid head, and an instructor, is one post per grid: the posts of the old plan are
  matched to the new grids by the households they share (an optimal assignment,
  :func:`scipy.optimize.linear_sum_assignment`, over pairs that share something), so a
  grid that stays keeps its head, and a grid split in two keeps its head in the part with
  most of its households;
* a worker follows most of the households of the old grid (the new grid sharing most);
  a new grid left with no worker then takes one from a neighbour that has several and
  shares households with it.

The result lists the proposals, the new grids left without a head, an instructor or a
worker, and the staff left without a grid (*stranded*): :func:`gridgeo.plan.lifecycle.publish`
refuses a plan that strands staff unless told to (and then says who).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.optimize import linear_sum_assignment

from gridgeo import crs as _crs
from gridgeo.config import get_settings
from gridgeo.plan.blocks import Metric

__all__ = ["Transition", "staff_transition", "overlap"]

HEAD_ROLES = ("grid_head", "instructor")
WORKER_ROLES = ("full_time_worker", "part_time_worker")
ROLE_LABELS = {"grid_head": "网格长", "instructor": "网格指导员", "full_time_worker": "专职网格员",
               "part_time_worker": "兼职网格员", "worker": "网格员"}


@dataclass
class Transition:
    """Where the staff go. ``proposals``: one row per staff post (code, name, role,
    from_grid, to_grid (None: stranded), shared_households, why, and reason: ``kept``,
    ``shares`` (a head's or instructor's post matched by households shared), ``follows`` (a
    worker following most households), ``filled`` (a worker given to a grid that had none),
    ``unknown_grid``, ``no_post``, ``no_overlap`` (the last three: stranded)); ``unstaffed``: new grids
    missing a role (grid, name, missing); ``stranded``: the staff posts left without a grid;
    ``overlap``: households shared by each (old grid, new grid) pair."""

    proposals: pd.DataFrame
    unstaffed: pd.DataFrame
    stranded: pd.DataFrame
    overlap: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        from gridgeo.plan.divide import jsonable

        return jsonable({
            "proposals": self.proposals.to_dict("records"),
            "unstaffed": self.unstaffed.to_dict("records"),
            "stranded": self.stranded.to_dict("records"),
            "moves": int((self.proposals["to_grid"].notna()
                          & (self.proposals["to_grid"] != self.proposals["from_grid"])).sum()),
            "notes": self.notes,
        })


def _locate(grids: gpd.GeoDataFrame, points: np.ndarray, tolerance: float) -> np.ndarray:
    from gridgeo.locate import Locator

    out = np.full(len(points), -1, dtype=np.int64)
    if len(grids) == 0 or len(points) == 0:
        return out
    frame = gpd.GeoDataFrame({"i": np.arange(len(grids))}, geometry=grids.geometry.to_numpy(), crs=4326)
    got = Locator.from_frame(frame, "i", tolerance=tolerance, cells_per_grid=16).locate(
        shapely.get_x(points), shapely.get_y(points))
    got = pd.Series(got, dtype=object)
    ok = got.notna().to_numpy()
    out[ok] = got[ok].astype(np.int64).to_numpy()
    return out


def overlap(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, households: gpd.GeoDataFrame | None, *,
            tolerance: float = 50.0) -> np.ndarray:
    """``S[i, j]``: households of old grid ``i`` that lie in new grid ``j``, plus a
    billionth of their shared area in m² (so that grids without households still match
    by land, and ties go to the larger share of land). Shared land under the area tolerance
    (``GRIDGEO_AREA_TOLERANCE_M2``) is numerical noise where two grids meet, not a share:
    counted, it sent a worker to a grid of another village that shares no household."""
    S = np.zeros((len(old), len(new)))
    if len(old) == 0 or len(new) == 0:
        return S
    if households is not None and len(households):
        pts = households.geometry.to_numpy()
        w = pd.to_numeric(households.get("households", pd.Series(1, index=households.index)),
                          errors="coerce").fillna(1).to_numpy(float)
        a, b = _locate(old, pts, tolerance), _locate(new, pts, tolerance)
        ok = (a >= 0) & (b >= 0)
        S += np.bincount(a[ok] * len(new) + b[ok], weights=w[ok], minlength=S.size).reshape(S.shape)
    og, ng = old.geometry.to_numpy(), new.geometry.to_numpy()
    oi, ni = shapely.STRtree(ng).query(og, predicate="intersects")
    if len(oi):
        m = Metric(_crs.metric_epsg(float(np.mean(shapely.total_bounds(og)[[0, 2]]))))
        area = m.area(shapely.intersection(og[oi], ng[ni]))
        area = np.where(area >= get_settings().area_tolerance_m2, area, 0.0)
        np.add.at(S, (oi, ni), area * 1e-9)
    return S


def staff_transition(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, households: gpd.GeoDataFrame | None,
                     staff: pd.DataFrame | None, *, tolerance: float = 50.0) -> Transition:
    """Propose where each staff post of ``old`` (the plan in force) goes in ``new``.

    Parameters
    ----------
    old, new : geopandas.GeoDataFrame
        Grids (code, name, geometry) of the plan in force and of the new plan.
    households : geopandas.GeoDataFrame
        Address points with ``households``.
    staff : pandas.DataFrame
        code, name, role, grid_code (the staff table).
    """
    old = old.reset_index(drop=True)
    new = new.reset_index(drop=True)
    ocode = old["code"].astype(str).to_numpy()
    ncode = new["code"].astype(str).to_numpy()
    nname = new["name"].astype(str).to_numpy() if "name" in new.columns else ncode
    S = overlap(old, new, households, tolerance=tolerance)
    st = (staff if staff is not None else pd.DataFrame(columns=["code", "name", "role", "grid_code"])).copy()
    st = st.reset_index(drop=True)
    for c in ("code", "name", "role", "grid_code"):
        if c not in st.columns:
            st[c] = ""
    oindex = {c: i for i, c in enumerate(ocode)}
    orow = np.array([oindex.get(str(g), -1) for g in st["grid_code"]], dtype=np.int64)
    to = np.full(len(st), None, dtype=object)
    shared = np.zeros(len(st))
    why = np.full(len(st), "", dtype=object)
    reason = np.full(len(st), "", dtype=object)
    notes: list[str] = []
    role = st["role"].astype(str).to_numpy()
    hh_of = np.floor(S + 1e-9)  # households shared (the area term is below one)
    # Heads and instructors: one post per grid, an optimal assignment by households shared.
    for r in HEAD_ROLES:
        rows = np.flatnonzero((role == r) & (orow >= 0))
        if len(rows) == 0 or len(new) == 0:
            continue
        M = S[orow[rows]]
        pr, pc = linear_sum_assignment(-M)
        good = M[pr, pc] > 0
        for i, j in zip(rows[pr[good]], pc[good]):
            to[i] = ncode[j]
            shared[i] = hh_of[orow[i], j]
            reason[i] = "kept" if ncode[j] == st["grid_code"][i] else "shares"
            why[i] = ("grid kept" if ncode[j] == st["grid_code"][i]
                      else f"{shared[i]:,.0f} households of {st['grid_code'][i]} are in {ncode[j]}")
    # Workers: follow most of the households of their old grid.
    wrows = np.flatnonzero(np.isin(role, WORKER_ROLES) & (orow >= 0))
    if len(wrows) and len(new):
        best = np.argmax(S[orow[wrows]], axis=1)
        has = S[orow[wrows], best] > 0
        for i, j in zip(wrows[has], best[has]):
            to[i] = ncode[j]
            shared[i] = hh_of[orow[i], j]
            reason[i] = "kept" if ncode[j] == st["grid_code"][i] else "follows"
            why[i] = ("grid kept" if ncode[j] == st["grid_code"][i]
                      else f"most households of {st['grid_code'][i]} ({shared[i]:,.0f}) go to {ncode[j]}")
        # A new grid without a worker takes one from a grid that has several, by households shared.
        count = dict(pd.Series(to[wrows]).value_counts())
        for j in np.argsort(-S.sum(axis=0), kind="stable"):
            if count.get(ncode[j], 0) > 0:
                continue
            donors = [i for i in wrows if to[i] is not None and count.get(to[i], 0) > 1 and S[orow[i], j] > 0]
            if not donors:
                continue
            i = max(donors, key=lambda i: S[orow[i], j])
            count[to[i]] -= 1
            to[i] = ncode[j]
            shared[i] = hh_of[orow[i], j]
            count[ncode[j]] = 1
            reason[i] = "filled"
            why[i] = f"{ncode[j]} had no worker; {shared[i]:,.0f} households of {st['grid_code'][i]} are in it"
    unknown = orow < 0
    why[unknown] = [f"grid {g} is not in the plan in force" for g in st["grid_code"][unknown]]
    reason[unknown] = "unknown_grid"
    left = (orow >= 0) & pd.isna(to)
    why[left & np.isin(role, HEAD_ROLES)] = "no new grid left for this post (every grid it shares households with has one)"
    reason[left & np.isin(role, HEAD_ROLES)] = "no_post"
    why[left & ~np.isin(role, HEAD_ROLES)] = "no new grid shares households or land with the old grid"
    reason[left & ~np.isin(role, HEAD_ROLES)] = "no_overlap"
    proposals = pd.DataFrame({
        "code": st["code"].astype(str).to_numpy(), "name": st["name"].astype(str).to_numpy(),
        "role": role, "from_grid": st["grid_code"].astype(str).to_numpy(), "to_grid": to,
        "shared_households": shared.astype(int), "why": why, "reason": reason})
    proposals["to_grid"] = proposals["to_grid"].astype(object).where(proposals["to_grid"].notna(), None)
    # A person holding posts on several grids is stranded only if none is carried over.
    carried = set(proposals.loc[proposals["to_grid"].notna(), "code"] + "|" + proposals.loc[proposals["to_grid"].notna(), "role"])
    key = proposals["code"] + "|" + proposals["role"]
    stranded = proposals[left & ~key.isin(carried).to_numpy()][["code", "name", "role", "from_grid", "why", "reason"]]
    stranded = stranded.drop_duplicates(["code", "role"]).reset_index(drop=True)
    # New grids missing a role.
    got = proposals[proposals["to_grid"].notna()]
    miss = []
    for j, code in enumerate(ncode):
        mine = set(got.loc[got["to_grid"] == code, "role"])
        lack = [ROLE_LABELS[r] for r in HEAD_ROLES if r not in mine]
        if not mine & set(WORKER_ROLES):
            lack.append(ROLE_LABELS["worker"])
        if lack:
            miss.append({"grid": code, "name": nname[j], "missing": lack})
    unstaffed = pd.DataFrame(miss, columns=["grid", "name", "missing"])
    pairs = np.argwhere(hh_of > 0)
    ov = pd.DataFrame({"from_grid": ocode[pairs[:, 0]] if len(pairs) else [],
                       "to_grid": ncode[pairs[:, 1]] if len(pairs) else [],
                       "households": hh_of[pairs[:, 0], pairs[:, 1]].astype(int) if len(pairs) else []})
    return Transition(proposals, unstaffed, stranded, ov, notes)
