"""The workload map: a choropleth of each grid's events over a period.

Measures (:data:`gridgeo.workload.MEASURES`): events per worker (full- and part-time
workers, 网格员), events per 100 households, open events, overdue events. Classes
are quantiles of the grids' values, rounded to readable limits; grids with no value
(no worker, no household) are grey.
"""

from __future__ import annotations

import datetime as dt

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from gridgeo.layers import PLATFORMS
from gridgeo.store import Store
from gridgeo.workload import MEASURES, parse_period, per_grid, village_prefix
from gridgeo.maps import elements
from gridgeo.maps.base import (
    Basemap, MapError, add_grids, add_tiled_grids, draws_tiled, finish, get_basemap, grid_set,
    may_draw_tiled, new_map)
from gridgeo.maps.ground import Ground, add_ground, read_ground

__all__ = ["workload_map", "tiled_workload_map", "workload_from_store", "breaks"]

#: Five classes, light to dark (ColorBrewer YlOrRd), and the colour of "no value".
COLOURS = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"]
NO_VALUE = "#bdbdbd"

TOOLTIP = [
    ("code", "网格编码"),
    ("village", "所属村社"),
    ("households", "户数"),
    ("workers", "网格员（专兼职）"),
    ("events", "事件数"),
    ("open", "未办结"),
    ("overdue", "其中超期"),
    ("per_worker", "人均事件数"),
    ("per_100_households", "每百户事件数"),
]


def _nice(x: float) -> float:
    """Round a class limit to two significant digits."""
    if x <= 0 or not np.isfinite(x):
        return 0.0
    mag = 10 ** np.floor(np.log10(x) - 1)
    return float(np.round(x / mag) * mag)


def breaks(values, k: int = 5) -> list[float]:
    """Upper limits of up to ``k`` classes: quantiles of ``values``, rounded, distinct.

    The last limit is the maximum, so every value falls in a class.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return []
    qs = [_nice(x) for x in np.quantile(v, np.linspace(0, 1, k + 1)[1:-1])]
    limits = sorted({q for q in qs if q < v.max()})
    return limits + [float(v.max())]


def workload_map(
    grids: gpd.GeoDataFrame,
    table: pd.DataFrame,
    villages: pd.DataFrame | None = None,
    *,
    measure: str = "per_worker",
    basemap: Basemap | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    note: str | None = None,
    tolerance_m: float | None = None,
    ground: Ground | None = None,
) -> folium.Map:
    """Build the workload map from grids and a per-grid table.

    Parameters
    ----------
    grids : GeoDataFrame
        The grids drawn.
    table : DataFrame
        Indexed by grid code, with the columns of :func:`gridgeo.workload.per_grid`
        (at least ``measure``); grids missing from it have no value.
    measure : str
        A key of :data:`gridgeo.workload.MEASURES`.
    """
    if measure not in MEASURES:
        raise MapError(f"unknown measure {measure!r}: use one of {', '.join(MEASURES)}")
    basemap = basemap or get_basemap()
    gs = grid_set(grids, villages, basemap, tolerance_m=tolerance_m)
    frame = gs.frame
    joined = table.reindex(frame["code"].to_numpy())
    for col in ("workers", "events", "open", "overdue", "per_worker", "per_100_households"):
        if col in joined:
            frame[col] = joined[col].to_numpy()
    if "households" not in frame and "households" in joined:
        frame["households"] = joined["households"].to_numpy()
    values = pd.to_numeric(joined[measure], errors="coerce").to_numpy(dtype=float)
    cls, styles, items = _classes(values, measure)
    label, unit = MEASURES[measure]
    m = new_map(basemap)
    layer = add_grids(m, gs, cls, styles, TOOLTIP, name=f"网格（{label}）")
    add_ground(m, ground, basemap)
    elements.Legend(f"{label}（{unit}）", items, note=note).add_to(m)
    return finish(m, [layer], gs.bounds, title=title or f"网格事件工作量：{label}", subtitle=subtitle)


def _classes(values: np.ndarray, measure: str) -> tuple[np.ndarray, list[dict], list[tuple[str, str]]]:
    """Each grid's class (:func:`breaks` of ``values``; no value: the last), the classes'
    styles and the legend's items (colour, label), one per class drawn."""
    limits = breaks(values)
    cls = np.where(np.isfinite(values), np.searchsorted(limits, values, side="left"), len(COLOURS))
    cls = np.minimum(cls, len(COLOURS))
    styles = [{"color": "#ffffff", "weight": 1.0, "fillColor": c, "fillOpacity": 0.8, "opacity": 1}
              for c in COLOURS]
    styles.append({"color": "#ffffff", "weight": 1.0, "fillColor": NO_VALUE, "fillOpacity": 0.6,
                   "opacity": 1, "dashArray": "4 3"})
    items, lower = [], 0.0
    for i, upper in enumerate(limits):
        lo = "" if i == 0 else f"{lower:g} – "
        items.append((COLOURS[i], f"{lo}{upper:g}" if i else f"≤ {upper:g}"))
        lower = upper
    if (~np.isfinite(values)).any():
        items.append((NO_VALUE, "无数据（无网格员或无住户）" if measure.startswith("per_") else "无数据"))
    return cls, styles, items


def tiled_workload_map(table: pd.DataFrame, bounds, *, measure: str = "per_worker", tiles_url: str,
                       prefix: str | None = None, plan: str | None = None, basemap: Basemap | None = None,
                       title: str | None = None, subtitle: str | None = None,
                       note: str | None = None) -> folium.Map:
    """The workload map of a province: the grids drawn from the vector tiles the coverage
    map draws (``tiles_url``: where ``/tiles`` is, relative to the page), coloured by the
    classes of ``measure`` in ``table`` (:func:`gridgeo.workload.per_grid`, indexed by
    code), each tile's ``code`` looked up in the classes the page carries; roads, rivers and
    village outlines from the tiles too. A click on a grid shows its code, households,
    population and class."""
    if measure not in MEASURES:
        raise MapError(f"unknown measure {measure!r}: use one of {', '.join(MEASURES)}")
    basemap = basemap or get_basemap()
    values = pd.to_numeric(table[measure], errors="coerce").to_numpy(dtype=float)
    cls, styles, items = _classes(values, measure)
    label, unit = MEASURES[measure]
    # each class's label by its index (classes not drawn have none; "no value" is the last)
    labels = [""] * len(styles)
    for i, (colour, text) in enumerate(items):
        labels[len(COLOURS) if colour == NO_VALUE else i] = text
    m = new_map(basemap)
    add_tiled_grids(m, tiles_url, table.index, cls, styles, labels, class_title=f"{label}（{unit}）",
                    name=f"网格（{label}）", plan=plan, prefix=prefix)
    elements.Legend(f"{label}（{unit}）", items,
                    note=(note + "；" if note else "") + f"共 {len(table):,} 个网格").add_to(m)
    x0, y0, x1, y1 = bounds
    return finish(m, [], [[y0, x0], [y1, x1]], title=title or f"网格事件工作量：{label}", subtitle=subtitle)


def workload_from_store(
    store: Store,
    *,
    measure: str = "per_worker",
    period: str | None = None,
    platform: str | None = None,
    village: str | None = None,
    at: dt.date | None = None,
    plan: int | str | None = None,
    basemap: Basemap | None = None,
    households: bool = True,
    tiles_url: str | None = None,
) -> folium.Map:
    """The workload map over ``period`` (default: the twelve months up to the latest
    event), for one platform or all, of the plan in force or ``plan``. With ``tiles_url``
    (where the API serves ``/tiles``) and more grids than ``GRIDGEO_MAP_TILED_GRIDS``, the
    grids are drawn from the vector tiles the coverage map draws (:func:`tiled_workload_map`)."""
    prefix = village_prefix(store, village)
    basemap = basemap or get_basemap()
    tiled = False
    if may_draw_tiled(basemap, tiles_url):
        grids = store.read("grids", at=at, plan=plan, geometry=False)  # their geometry is in the tiles
        n = int(grids["code"].str.startswith(prefix).sum()) if prefix else len(grids)
        tiled = draws_tiled(n, basemap, tiles_url)
    if not tiled:
        grids = store.read("grids", at=at, plan=plan)
    table = per_grid(store, parse_period(period) if period else None, platform=platform,
                     village=prefix, grids=grids)
    if prefix:
        grids = grids[grids["code"].str.startswith(prefix)]
    p = table.attrs["period"]
    scope = PLATFORMS[platform] if platform else "全部平台"
    note = (f"{p.start:%Y-%m-%d} 至 {p.end:%Y-%m-%d}，{scope}；另有 {table.attrs['unplaced']:,} 件"
            "未落入网格（无坐标或在辖区外）")
    label = MEASURES[measure][0] if measure in MEASURES else measure
    subtitle = f"{p.start:%Y-%m-%d} 至 {p.end:%Y-%m-%d} · {scope}"
    if tiled:
        from gridgeo.tiles import grid_bounds

        bounds = grid_bounds(store, grids.attrs["plan_id"], prefix)
        return tiled_workload_map(table, bounds, measure=measure, tiles_url=tiles_url, prefix=prefix,
                                  plan=grids.attrs.get("plan_version"), basemap=basemap,
                                  title=f"网格事件工作量：{label}", subtitle=subtitle, note=note)
    return workload_map(grids, table, store.read("divisions"), measure=measure, basemap=basemap,
                        title=f"网格事件工作量：{label}", note=note,
                        ground=read_ground(store, grids.total_bounds if len(grids) else None,
                                           households=households),
                        subtitle=subtitle)
