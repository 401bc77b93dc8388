"""What a new grid plan changes: grid by grid, a draft against the plan in force.

Grids are matched by geometry, not by code: a new division renumbers grids west to
east, north to south, so a grid whose boundary did not move may get another code.

Each draft grid is

``unchanged``
    the same area (symmetric difference at most ``tolerance_m2``) as a current grid
    with the same code;
``renumbered``
    the same area as a current grid with another code;
``changed``
    overlapping current grids but equal to none (its boundary moved);
``new``
    overlapping no current grid (newly covered ground).

Each current grid is ``unchanged`` or ``renumbered`` likewise, ``changed`` when draft
grids overlap it but none equals it, and ``removed`` when none overlaps it. Areas are
measured in the CGCS2000 Gauss-Krüger zone of the data (:func:`gridgeo.crs.metric_epsg`).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.config import get_settings
from gridgeo.crs import metric_epsg

__all__ = ["CHANGES", "compare_grids"]

#: Change statuses, code -> label.
CHANGES = {
    "unchanged": "未变",
    "renumbered": "编码变更",
    "changed": "边界调整",
    "new": "新增",
    "removed": "撤销",
}


def compare_grids(
    draft: gpd.GeoDataFrame,
    current: gpd.GeoDataFrame,
    *,
    tolerance_m2: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Classify the grids of ``draft`` and of ``current`` (see the module notes).

    Parameters
    ----------
    draft, current : GeoDataFrame
        Grid layers (``code`` and polygon geometry, EPSG:4326).
    tolerance_m2 : float, optional
        Areas below this are noise (default ``GRIDGEO_AREA_TOLERANCE_M2``, 1 m²).

    Returns
    -------
    draft_changes, current_changes : pandas.DataFrame
        Indexed like the inputs, with ``change`` (a key of :data:`CHANGES`) and
        ``match`` (the code of the equal grid on the other side, or of the one it
        overlaps most; None when nothing overlaps).
    """
    tol = get_settings().area_tolerance_m2 if tolerance_m2 is None else tolerance_m2
    both = pd.concat([draft.geometry, current.geometry])
    if len(both) == 0:
        empty = pd.DataFrame({"change": pd.Series(dtype=object), "match": pd.Series(dtype=object)})
        return empty.copy(), empty.copy()
    # Most grids of a draft are the current ones untouched: match identical geometries
    # first (normalised WKB), and measure areas only for the rest.
    d_wkb = shapely.to_wkb(shapely.normalize(draft.geometry.to_numpy()))
    c_wkb = pd.Index(shapely.to_wkb(shapely.normalize(current.geometry.to_numpy())))
    first_c = ~c_wkb.duplicated()
    same = pd.Index(c_wkb[first_c]).get_indexer(d_wkb)
    exact_d = np.flatnonzero(same >= 0)
    exact_c = np.flatnonzero(first_c)[same[exact_d]]
    rest_d = np.setdiff1d(np.arange(len(draft)), exact_d)
    rest_c = np.setdiff1d(np.arange(len(current)), exact_c)
    x0, _, x1, _ = both.total_bounds
    epsg = metric_epsg((x0 + x1) / 2)
    d = draft.geometry.iloc[rest_d].to_crs(epsg).to_numpy()
    c = current.geometry.iloc[rest_c].to_crs(epsg).to_numpy()
    pi, pj = shapely.STRtree(c).query(d, predicate="intersects")
    inter = shapely.area(shapely.intersection(d[pi], c[pj]))
    symdiff = shapely.area(d[pi]) + shapely.area(c[pj]) - 2 * inter
    real = inter > tol
    di = np.r_[exact_d, rest_d[pi[real]]]
    ci = np.r_[exact_c, rest_c[pj[real]]]
    inter = np.r_[np.full(len(exact_d), np.inf), inter[real]]
    symdiff = np.r_[np.zeros(len(exact_d)), symdiff[real]]
    d_codes = draft["code"].to_numpy(dtype=object)
    c_codes = current["code"].to_numpy(dtype=object)

    def side(n: int, mine: np.ndarray, other: np.ndarray, my_codes, other_codes, alone: str):
        change = np.full(n, alone, dtype=object)
        match = np.full(n, None, dtype=object)
        if len(mine):
            # best partner: equal if any, else the largest overlap
            order = np.lexsort((-inter, symdiff > tol, mine))
            first = order[np.unique(mine[order], return_index=True)[1]]
            who, partner = mine[first], other[first]
            equal = symdiff[first] <= tol
            same_code = my_codes[who] == other_codes[partner]
            change[who] = np.where(equal, np.where(same_code, "unchanged", "renumbered"), "changed")
            match[who] = other_codes[partner]
        return pd.DataFrame({"change": change, "match": match})

    draft_changes = side(len(draft), di, ci, d_codes, c_codes, "new").set_index(draft.index)
    current_changes = side(len(current), ci, di, c_codes, d_codes, "removed").set_index(current.index)
    return draft_changes, current_changes
