"""The coverage map: grids coloured by staffing completeness, with village boundaries.

Tooltips (in Chinese) give the grid code, name, village, households, grid head,
full- and part-time workers, instructor and what is missing. Staffing follows
:func:`gridgeo.coverage.staffing`: a grid needs a grid head, a full-time worker and
an instructor.
"""

from __future__ import annotations

import datetime as dt

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from gridgeo.coverage import missing_by_grid, missing_roles, staffing
from gridgeo.store import Store, schema
from gridgeo.tiles import grid_bounds
from gridgeo.maps import elements
from gridgeo.maps.base import (
    Basemap, add_grids, add_tiled_grids, draws_tiled, finish, get_basemap, grid_set,
    may_draw_tiled, new_map)
from gridgeo.maps.ground import Ground, add_ground, read_ground

__all__ = ["coverage_map", "coverage_from_store", "CLASSES"]

#: Staffing classes: (label, fill colour) by number of required roles missing (0, 1, 2+).
CLASSES = [
    ("配齐（网格长、专职网格员、指导员）", "#1a9850"),
    ("缺一类", "#fdae61"),
    ("缺两类及以上", "#d73027"),
]

TOOLTIP = [
    ("code", "网格编码"),
    ("village", "所属村社"),
    ("households", "户数"),
    ("population", "人口"),
    ("grid_head", "网格长"),
    ("full_time_worker", "专职网格员"),
    ("part_time_worker", "兼职网格员"),
    ("instructor", "网格指导员"),
    ("missing_label", "缺配"),
]


def coverage_map(
    grids: gpd.GeoDataFrame,
    staff: pd.DataFrame,
    villages: pd.DataFrame | None = None,
    *,
    basemap: Basemap | None = None,
    title: str | None = None,
    tolerance_m: float | None = None,
    ground: Ground | None = None,
) -> folium.Map:
    """Build the coverage map from a grid layer and the staff roster.

    Parameters
    ----------
    grids : GeoDataFrame
        Grids (``code``, ``name``, ``village_code``, ``households`` ...), EPSG:4326.
    staff : DataFrame
        The ``staff`` layer.
    villages : DataFrame, optional
        ``code`` and ``name`` of villages/communities (the divisions layer).
    basemap : Basemap, optional
        Default :func:`gridgeo.maps.base.get_basemap` (none unless configured).
    title : str, optional
        Shown over the map.
    tolerance_m : float, optional
        Simplification tolerance; default from the extent (:func:`gridgeo.maps.encoding.auto_tolerance`).
    ground : Ground, optional
        Roads, rivers and households drawn with the grids (:mod:`gridgeo.maps.ground`).
    """
    basemap = basemap or get_basemap()
    gs = grid_set(grids, villages, basemap, tolerance_m=tolerance_m)
    table, cls = staffing_classes(gs.frame["code"], staff)
    frame = gs.frame
    for col in ("grid_head", "full_time_worker", "part_time_worker", "instructor"):
        frame[col] = table[col].to_numpy()
    frame["missing_label"] = table["missing"].where(table["missing"] != "", "无").to_numpy()
    if "population" not in frame:
        frame["population"] = pd.NA
    m = new_map(basemap)
    layer = add_grids(m, gs, cls, STYLES, TOOLTIP, name="网格（按人员配备）")
    add_ground(m, ground, basemap)
    _legend(m, cls, len(frame), len(gs.villages))
    plan = grids.attrs.get("plan_version")
    subtitle = f"网格划分方案 {plan}" if plan else None
    return finish(m, [layer], gs.bounds, title=title or "网格覆盖与人员配备", subtitle=subtitle)


STYLES = [{"color": "#ffffff", "weight": 1.2, "fillColor": colour, "fillOpacity": 0.55, "opacity": 1}
          for _, colour in CLASSES]


def staffing_classes(codes, staff: pd.DataFrame):
    """The staffing table of ``codes`` (:func:`gridgeo.coverage.staffing`) and each grid's
    class in :data:`CLASSES` (required roles missing: 0, 1, 2 or more)."""
    table = staffing(codes, staff)
    return table, table["n_missing"].clip(upper=2).to_numpy()


def _legend(m, cls, n_grids: int, n_villages: int) -> None:
    counts = pd.Series(cls).value_counts().reindex(range(3), fill_value=0)
    elements.Legend(
        "网格人员配备",
        [(colour, f"{label}  {counts[i]:,}") for i, (label, colour) in enumerate(CLASSES)],
        note=f"共 {n_grids:,} 个网格、{n_villages:,} 个村社",
    ).add_to(m)


def tiled_coverage_map(grids: pd.DataFrame, staff: pd.DataFrame | Store, bounds, *, tiles_url: str,
                       prefix: str | None = None, basemap: Basemap | None = None,
                       title: str | None = None) -> folium.Map:
    """The coverage map of a province: the grids drawn from vector tiles (``tiles_url``:
    where ``/tiles`` is, relative to the page), coloured by the same staffing classes from
    each tile's ``code`` (only the codes not in the commonest class are sent); roads,
    rivers and village outlines from the tiles too. ``grids`` needs ``code`` and
    ``village_code`` (no geometry), and ``n_missing`` if counted already
    (:func:`gridgeo.coverage.missing_by_grid`); ``bounds`` is ``x0, y0, x1, y1``; ``prefix`` limits the
    drawn grids to codes starting with it (a village or township). A click on a grid shows
    its code, households, population and class."""
    basemap = basemap or get_basemap()
    missing = grids["n_missing"].to_numpy() if "n_missing" in grids else missing_roles(grids["code"], staff)
    cls = np.minimum(missing, 2)  # as staffing_classes, without the names
    m = new_map(basemap)
    plan = grids.attrs.get("plan_version")
    add_tiled_grids(m, tiles_url, grids["code"], cls, STYLES, [c for c, _ in CLASSES], class_title="人员配备",
                    name="网格（按人员配备）", plan=plan, prefix=prefix)
    _legend(m, cls, len(grids), grids["village_code"].nunique())
    x0, y0, x1, y1 = bounds
    subtitle = f"网格划分方案 {plan}" if plan else None
    return finish(m, [], [[y0, x0], [y1, x1]], title=title or "网格覆盖与人员配备", subtitle=subtitle)


def coverage_from_store(
    store: Store,
    *,
    village: str | None = None,
    at: dt.date | None = None,
    plan: int | str | None = None,
    basemap: Basemap | None = None,
    households: bool = True,
    tiles_url: str | None = None,
) -> folium.Map:
    """The coverage map of the plan in force (or ``plan``), optionally of one village
    (a 12-digit code, a code prefix such as a township, or a name), over its ground
    (``households=False``: roads and rivers only, as the public page). With ``tiles_url``
    (where the API serves ``/tiles``) and more grids than ``GRIDGEO_MAP_TILED_GRIDS``, the
    grids are drawn from vector tiles (:func:`tiled_coverage_map`)."""
    from gridgeo.workload import village_prefix

    basemap = basemap or get_basemap()
    prefix = village_prefix(store, village)
    where = schema.grids.c.village_code.startswith(prefix) if prefix else None
    if may_draw_tiled(basemap, tiles_url):
        # each grid's code and missing roles, counted by the database: drawn from tiles, the
        # grids' geometry is not read, nor the roster
        row = store.plan(plan) if plan is not None else store.plan_in_force(at)
        if row is not None:
            codes = missing_by_grid(store, row["id"], prefix)
            if draws_tiled(len(codes), basemap, tiles_url):
                codes.attrs.update(plan_version=row["version"], plan_id=row["id"])
                bounds = grid_bounds(store, row["id"], prefix)
                return tiled_coverage_map(codes, store, bounds, tiles_url=tiles_url, prefix=prefix,
                                          basemap=basemap)
    grids = store.read("grids", at=at, plan=plan, where=where)
    staff = store.read("staff")
    divisions = store.read("divisions")
    ground = read_ground(store, grids.total_bounds if len(grids) else None, households=households)
    return coverage_map(grids, staff, divisions, basemap=basemap, ground=ground)
