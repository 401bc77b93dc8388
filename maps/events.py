"""The events map: a period's events as clusters and heat, with a time slider.

Markers are filled with the colour of the event's platform and ringed with that of its
status (:data:`gridgeo.workload.STATUSES`). A year of events is never 20,000 markers on
the map: Leaflet.markercluster groups them by zoom, and the heat layer shows density.
The events are embedded once (positions and times encoded, the rest as small integer
codes); the slider steps through the period month by month (week by week, or day by
day, for shorter periods) and the switches hide platforms; both filter the clusters and
the heat together.
"""

from __future__ import annotations

import datetime as dt

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.layers import PLATFORMS
from gridgeo.store import Store
from gridgeo.workload import STATUSES, Period, read_events, village_prefix
from gridgeo.maps import elements, encoding
from gridgeo.maps.base import (
    Basemap, add_grids, add_tiled_grids, display_points, draws_tiled, finish, get_basemap,
    grid_set, may_draw_tiled, new_map)
from gridgeo.maps.ground import Ground, add_ground, read_ground

__all__ = ["events_map", "tiled_events_map", "events_from_store", "PLATFORM_COLOURS", "STATUS_COLOURS"]

PLATFORM_COLOURS = {
    "stability": "#377eb8", "market": "#4daf4a", "enforcement": "#ff7f00", "service": "#984ea3",
}
STATUS_COLOURS = {"open": "#ffffff", "overdue": "#e31a1c", "closed": "#7f7f7f", "rejected": "#000000"}

TOOLTIP = [("code", "网格编码"), ("village", "所属村社"), ("households", "户数")]


def _step_label(step: Period) -> str:
    if step.days == 1:
        return step.start.isoformat()
    if step.start.day == 1 and (step.end + dt.timedelta(days=1)).day == 1:
        return f"{step.start.year}年{step.start.month}月"
    return f"{step.start:%Y-%m-%d} 至 {step.end:%m-%d}"


def event_spec(events: gpd.GeoDataFrame, period: Period, basemap: Basemap) -> dict:
    """The compact form of ``events`` that ``GG.events`` (gridgeo-maps.js) reads.

    Events without a position are left out (the map says how many).
    """
    geoms = events.geometry.to_numpy()
    placed = ~shapely.is_missing(geoms)
    ev = events[placed]
    lon, lat = display_points(shapely.get_x(geoms[placed]), shapely.get_y(geoms[placed]), basemap)
    start, _ = period.bounds()
    t0 = pd.Timestamp(start)
    minutes = ((pd.to_datetime(ev["reported_at"], utc=True) - t0).dt.total_seconds() // 60).astype(np.int64)
    order = np.argsort(minutes.to_numpy(), kind="stable")
    ev, lon, lat, minutes = ev.iloc[order], lon[order], lat[order], minutes.to_numpy()[order]
    names = ev["category"].fillna("未知事项").astype(str).to_numpy()
    categories, cat_idx = np.unique(names, return_inverse=True)
    grids, grid_idx = np.unique(ev["grid_code"].fillna("").astype(str).to_numpy(), return_inverse=True)
    steps = []
    for s in period.steps():
        a, b = s.bounds()
        steps.append([int((pd.Timestamp(a) - t0).total_seconds() // 60),
                      int((pd.Timestamp(b) - t0).total_seconds() // 60), _step_label(s)])
    pts = encoding.encode_points(lon, lat, 5)
    return {
        "pos": pts["enc"],
        "n": pts["n"],
        "scale": pts["scale"],
        "t0": int(t0.timestamp() * 1000),
        "t": encoding.encode_series(minutes),
        "p": pd.Categorical(ev["platform"], categories=list(PLATFORMS)).codes.astype(int).clip(min=0).tolist(),
        "s": pd.Categorical(ev["status"], categories=list(STATUSES)).codes.astype(int).clip(min=0).tolist(),
        "c": cat_idx.astype(int).tolist(),
        "categories": categories.tolist(),
        "g": grid_idx.astype(int).tolist(),
        "grids": grids.tolist(),
        "code": ev["code"].astype(str).tolist(),
        "steps": steps,
        "platforms": [[k, v, PLATFORM_COLOURS[k]] for k, v in PLATFORMS.items()],
        "statuses": [[k, v, STATUS_COLOURS[k]] for k, v in STATUSES.items()],
        "period": f"{period.start:%Y-%m-%d} 至 {period.end:%Y-%m-%d}",
    }


def events_map(
    events: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    villages: pd.DataFrame | None = None,
    *,
    period: Period | None = None,
    basemap: Basemap | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    tolerance_m: float | None = None,
    ground: Ground | None = None,
) -> folium.Map:
    """Build the events map.

    Parameters
    ----------
    events : GeoDataFrame
        From :func:`gridgeo.workload.read_events` (``reported_at``, ``platform``,
        ``status``, ``category``, ``code``, ``grid_code``, WGS84 point geometry).
    grids : GeoDataFrame
        The grids drawn under the events (and searched).
    period : Period, optional
        Default ``events.attrs["period"]``.
    """
    period = period or events.attrs.get("period")
    if period is None:
        raise ValueError("events_map needs the period (events.attrs['period'] or period=)")
    basemap = basemap or get_basemap()
    gs = grid_set(grids, villages, basemap, tolerance_m=tolerance_m)
    m = new_map(basemap)
    layer = add_grids(m, gs, np.zeros(len(gs.frame), dtype=int), [GRID_STYLE], TOOLTIP, name="网格")
    add_ground(m, ground, basemap)
    spec = _add_events(m, events, period, basemap)
    return finish(m, [layer], gs.bounds, title=title or "事件分布", subtitle=subtitle or spec["period"])


GRID_STYLE = {"color": "#5f6b7a", "weight": 1.0, "fillColor": "#ffffff", "fillOpacity": 0.35, "opacity": 0.9}


def _add_events(m: folium.Map, events: gpd.GeoDataFrame, period: Period, basemap: Basemap) -> dict:
    """The events' heat, clusters, slider and legend; the events' spec."""
    spec = event_spec(events, period, basemap)
    data = elements.EventData(spec).add_to(m)
    elements.EventHeat(data).add_to(m)
    elements.EventClusters(data).add_to(m)
    elements.EventControl(data).add_to(m)
    unplaced = len(events) - spec["n"]
    note = f"共 {len(events):,} 件，{unplaced:,} 件无坐标未上图" if unplaced else f"共 {len(events):,} 件"
    elements.Legend("事件平台（填色）", [(c, PLATFORMS[k]) for k, c in PLATFORM_COLOURS.items()],
                    note=note).add_to(m)
    return spec


def tiled_events_map(events: gpd.GeoDataFrame, codes, bounds, *, tiles_url: str, prefix: str | None = None,
                     plan: str | None = None, period: Period | None = None, basemap: Basemap | None = None,
                     title: str | None = None, subtitle: str | None = None) -> folium.Map:
    """The events map of a province: the events as :func:`events_map` draws them, over the
    grids (``codes``, of the plan ``plan``) drawn from the vector tiles the coverage map
    draws (``tiles_url``: where ``/tiles`` is, relative to the page), with the roads, rivers
    and village outlines of the tiles; ``bounds`` is ``x0, y0, x1, y1``."""
    period = period or events.attrs.get("period")
    if period is None:
        raise ValueError("tiled_events_map needs the period (events.attrs['period'] or period=)")
    basemap = basemap or get_basemap()
    m = new_map(basemap)
    add_tiled_grids(m, tiles_url, codes, np.zeros(len(codes), dtype=int), [GRID_STYLE], ["网格"],
                    class_title="图层", name="网格", plan=plan, prefix=prefix)
    spec = _add_events(m, events, period, basemap)
    x0, y0, x1, y1 = bounds
    return finish(m, [], [[y0, x0], [y1, x1]], title=title or "事件分布", subtitle=subtitle or spec["period"])


def events_from_store(
    store: Store,
    *,
    period: str | None = None,
    platform: str | None = None,
    village: str | None = None,
    at: dt.date | None = None,
    plan: int | str | None = None,
    basemap: Basemap | None = None,
    scope: dict | None = None,
    households: bool = True,
    tiles_url: str | None = None,
) -> folium.Map:
    """The events map over ``period`` (default: the twelve months up to the latest
    event), for one platform or all, over the grids of the plan in force or ``plan``.

    ``scope`` (:func:`gridgeo.auth.event_filters` of the caller) keeps the events the
    caller sees; a grid worker's map shows their own grids only. With ``tiles_url`` (where
    the API serves ``/tiles``) and more grids than ``GRIDGEO_MAP_TILED_GRIDS``, the grids
    are drawn from the vector tiles the coverage map draws (:func:`tiled_events_map`).
    """
    from gridgeo.auth import in_scope

    prefix = village_prefix(store, village)
    basemap = basemap or get_basemap()
    tiled = False
    if may_draw_tiled(basemap, tiles_url) and not (scope and "grid" in scope):  # a worker's grids: inline
        grids = store.read("grids", at=at, plan=plan, geometry=False)  # their geometry is in the tiles
        n = int(grids["code"].str.startswith(prefix).sum()) if prefix else len(grids)
        tiled = draws_tiled(n, basemap, tiles_url)
    if not tiled:
        grids = store.read("grids", at=at, plan=plan)
    events = read_events(store, period, platform=platform, village=prefix)
    p = events.attrs["period"]
    if scope:
        events = events[in_scope(scope, events)].reset_index(drop=True)
        if "grid" in scope:
            grids = grids[grids["code"].isin(list(scope["grid"]))]
    if prefix:
        grids = grids[grids["code"].str.startswith(prefix)]
    label = f" · {PLATFORMS[platform]}" if platform else ""
    if tiled:
        from gridgeo.tiles import grid_bounds

        return tiled_events_map(events, grids["code"], grid_bounds(store, grids.attrs["plan_id"], prefix),
                                tiles_url=tiles_url, prefix=prefix, plan=grids.attrs.get("plan_version"),
                                period=p, basemap=basemap, subtitle=f"{p.start:%Y-%m-%d} 至 {p.end:%Y-%m-%d}{label}")
    ground = read_ground(store, grids.total_bounds if len(grids) else None, households=households)
    return events_map(events, grids, store.read("divisions"), period=p, basemap=basemap, ground=ground,
                      subtitle=f"{p.start:%Y-%m-%d} 至 {p.end:%Y-%m-%d}{label}")
