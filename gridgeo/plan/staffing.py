"""Staffing suggestions for grids, and the grids whose current staff fall short."""

from __future__ import annotations

import pandas as pd

__all__ = ["staffing"]

_ROLES = ("grid_head", "instructor", "full_time_worker", "part_time_worker")


def staffing(grids: pd.DataFrame, staff: pd.DataFrame | None, *,
             households_per_worker: int | None = None) -> pd.DataFrame:
    """What each grid needs and has.

    Every grid needs one grid head (网格长), one instructor (网格指导员) and
    ``ceil(households / households_per_worker)`` workers, at least one (网格员, full-time
    and part-time both count), at least one of them full-time: the rule of
    :func:`gridgeo.coverage.staffing`, which this reports in the planner's columns.

    Parameters
    ----------
    grids : pandas.DataFrame
        ``code`` and ``households`` (and ``name``) of each grid.
    staff : pandas.DataFrame or None
        The staff table (``code``, ``role``, ``grid_code``), matched by grid code.
    households_per_worker : int, optional
        Default: the ``households_per_worker`` setting (``GRIDGEO_HOUSEHOLDS_PER_WORKER``).

    Returns
    -------
    pandas.DataFrame
        code, name, households, need_grid_head, need_instructor, need_workers,
        grid_head, instructor, full_time_worker, part_time_worker, workers, short
        (True when anything is missing) and missing (what, in words).
    """
    # One definition of staffing for the planner, the maps and the workload tables.
    from gridgeo.coverage import staffing as _staffing

    grids = pd.DataFrame({"code": grids["code"].astype(str).to_numpy(),
                          "name": grids["name"].astype(str).to_numpy() if "name" in grids else "",
                          "households": grids["households"].to_numpy()})
    table = _staffing(grids, staff, households_per_worker=households_per_worker)
    out = pd.DataFrame({"code": table.index.to_numpy(), "name": table["name"].to_numpy(),
                        "households": table["households"].to_numpy()})
    out["need_grid_head"] = 1
    out["need_instructor"] = 1
    out["need_workers"] = table["need_workers"].to_numpy()
    for role in _ROLES:
        out[role] = table[f"n_{role}"].to_numpy()
    out["workers"] = table["workers"].to_numpy()
    out["short"] = table["short"].to_numpy()
    out["missing"] = table["shortfall_en"].to_numpy()
    return out
