"""The patrol map (巡查地图): the period's patrol tracks over the grids, each grid coloured
by its patrol coverage (户覆盖率: the share of its households within
``GRIDGEO_PATROL_COVERAGE_M`` of a track).

Every figure is :func:`gridgeo.patrols.patrol_stats`'s (distance, time patrolled, coverage
of households and roads, check-ins), so the map, ``GET /v1/stats/patrols`` and the
assessment report say the same. The tooltips give them formatted for people (公里, 小时
and 分, per cent). Tracks are simplified (a few metres, below what a GPS fix is good to)
and sent encoded; the layer control switches them off and on.

A caller with a scope (a grid worker: their grids) sees those grids only, and the tracks
only where they run inside them: a worker of another grid sees nothing of a track outside
their own grids.
"""

from __future__ import annotations

import datetime as dt

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.store import Store
from gridgeo.maps import elements, encoding
from gridgeo.maps.base import Basemap, MapError, add_grids, finish, get_basemap, grid_set, new_map
from gridgeo.maps.ground import Ground, add_ground, read_ground

__all__ = ["patrol_map", "patrol_from_store", "COVERAGE_CLASSES", "coverage_class", "format_km",
           "format_duration", "format_share"]

#: Household coverage classes: (upper limit, exclusive except the last; label; fill colour).
COVERAGE_CLASSES = [
    (0.2, "低于 20%", "#d73027"),
    (0.4, "20% – 40%", "#fc8d59"),
    (0.6, "40% – 60%", "#fee08b"),
    (0.8, "60% – 80%", "#91cf60"),
    (np.inf, "80% 及以上", "#1a9850"),
]
NO_VALUE = "#bdbdbd"
TRACK_COLOUR = "#4a1486"
TRACK_STYLE = {"color": TRACK_COLOUR, "weight": 3.0, "minZoom": 0, "label": "巡查轨迹", "opacity": 0.85}

TOOLTIP = [
    ("code", "网格编码"),
    ("village", "所属村社"),
    ("households", "户数"),
    ("patrols", "巡查次数"),
    ("distance_label", "巡查里程"),
    ("time_label", "巡查时长"),
    ("coverage_label", "覆盖率（住户）"),
    ("road_label", "覆盖率（道路）"),
    ("checkins", "签到次数"),
]


def coverage_class(share) -> np.ndarray:
    """The class in :data:`COVERAGE_CLASSES` of each share (0..1); NaN (no household):
    ``len(COVERAGE_CLASSES)``, the grey class."""
    v = np.asarray(share, dtype=float)
    limits = np.array([c[0] for c in COVERAGE_CLASSES[:-1]])
    return np.where(np.isfinite(v), np.searchsorted(limits, v, side="right"), len(COVERAGE_CLASSES))


def format_km(km) -> np.ndarray:
    """Distances for people: ``850 米`` under a kilometre, ``12.3 公里`` above; 0 as ``0 米``."""
    km = pd.Series(np.asarray(km, dtype=float))
    metres = (km * 1000).round(0)
    short = metres.map("{:,.0f} 米".format)
    long = km.map("{:,.1f} 公里".format)
    return np.where(km < 1, short, long).astype(object)


def format_duration(hours) -> np.ndarray:
    """Hours for people: ``2 小时 05 分``, ``35 分``, ``0 分``."""
    minutes = np.round(np.asarray(hours, dtype=float) * 60).astype(np.int64)
    h, m = pd.Series(minutes // 60), pd.Series(minutes % 60)
    with_h = h.map("{:,} 小时 ".format) + m.map("{:02d} 分".format)
    return np.where(h > 0, with_h, m.map("{} 分".format)).astype(object)


def format_share(share, none: str = "无住户") -> np.ndarray:
    """Shares as per cent with one decimal (``82.5%``); NaN as ``none``."""
    v = pd.Series(np.asarray(share, dtype=float))
    return np.where(v.notna(), (v * 100).map("{:.1f}%".format), none).astype(object)


def _track_lines(tracks: pd.DataFrame, basemap: Basemap, tolerance_m: float) -> dict:
    geoms = np.asarray(tracks["geometry"].to_numpy() if len(tracks) else [], dtype=object)
    if len(geoms):
        geoms = shapely.simplify(geoms, tolerance_m / encoding.METRES_PER_DEGREE, preserve_topology=False)
    return encoding.encode_lines(encoding.to_display(geoms, basemap.crs), 6)


def patrol_map(
    grids: gpd.GeoDataFrame,
    table: pd.DataFrame,
    tracks: pd.DataFrame,
    villages: pd.DataFrame | None = None,
    *,
    radius_m: float = 50.0,
    basemap: Basemap | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    tolerance_m: float | None = None,
    track_tolerance_m: float = 3.0,
    ground: Ground | None = None,
) -> folium.Map:
    """Build the patrol map.

    Parameters
    ----------
    grids : GeoDataFrame
        The grids drawn (WGS84).
    table : DataFrame
        :func:`gridgeo.patrols.patrol_stats` ``by="grid"`` (indexed by grid code); grids
        missing from it have no figures.
    tracks : DataFrame
        ``geometry``: the tracks drawn (shapely lines, WGS84), already clipped to the scope.
    radius_m : float
        The coverage distance the table was computed with (for the legend).
    track_tolerance_m : float
        Tracks are simplified to this many metres before they are sent.
    """
    basemap = basemap or get_basemap()
    gs = grid_set(grids, villages, basemap, tolerance_m=tolerance_m)
    frame = gs.frame
    joined = table.reindex(frame["code"].to_numpy())
    patrols = joined["patrols"].fillna(0).to_numpy(dtype=np.int64)
    frame["patrols"] = patrols
    frame["checkins"] = joined["checkins"].fillna(0).to_numpy(dtype=np.int64)
    frame["households"] = joined["households"].to_numpy()  # those the coverage counts
    frame["distance_label"] = format_km(joined["distance_km"].fillna(0))
    frame["time_label"] = format_duration(joined["hours"].fillna(0))
    frame["coverage_label"] = format_share(joined["household_coverage"], "无住户")
    frame["road_label"] = format_share(joined["road_coverage"], "无道路")
    cls = coverage_class(joined["household_coverage"])
    styles = [{"color": "#ffffff", "weight": 1.0, "fillColor": c, "fillOpacity": 0.6, "opacity": 1}
              for _, _, c in COVERAGE_CLASSES]
    styles.append({"color": "#ffffff", "weight": 1.0, "fillColor": NO_VALUE, "fillOpacity": 0.5,
                   "opacity": 1, "dashArray": "4 3"})
    m = new_map(basemap)
    layer = add_grids(m, gs, cls, styles, TOOLTIP, name="网格（按巡查覆盖率）")
    add_ground(m, ground, basemap)
    lines = _track_lines(tracks, basemap, track_tolerance_m)
    elements.LineLayer(lines, np.zeros(len(lines["parts"]), dtype=int), [TRACK_STYLE], [],
                       name="巡查轨迹", class_name="gg-track").add_to(m)
    counts = pd.Series(cls).value_counts().reindex(range(len(COVERAGE_CLASSES) + 1), fill_value=0)
    items = [(c, f"{label}（{counts[i]:,} 个网格）") for i, (_, label, c) in enumerate(COVERAGE_CLASSES)]
    if counts[len(COVERAGE_CLASSES)]:
        items.append((NO_VALUE, f"无住户（{counts[len(COVERAGE_CLASSES)]:,} 个网格）"))
    items.append((TRACK_COLOUR, "巡查轨迹"))
    km = float(joined["distance_km"].fillna(0).sum())
    hours = float(joined["hours"].fillna(0).sum())
    note = (f"住户 {radius_m:g} 米内有巡查轨迹即为覆盖；共 {len(tracks):,} 条轨迹，"
            f"{format_km([km])[0]}，{format_duration([hours])[0]}")
    elements.Legend("巡查覆盖率（住户）", items, note=note).add_to(m)
    return finish(m, [layer], gs.bounds, title=title or "网格巡查", subtitle=subtitle)


def _clip(tracks: pd.DataFrame, area) -> pd.DataFrame:
    """The tracks' parts inside ``area`` (vectorised over the tracks); empty ones dropped."""
    if not len(tracks):
        return tracks
    geoms = np.asarray(tracks["geometry"].to_numpy(), dtype=object)
    hit = shapely.intersects(geoms, area)
    out = tracks[hit].copy()
    clipped = shapely.intersection(geoms[hit], area)
    # only the line parts (a track along the edge may leave points), one geometry per track
    parts, of = shapely.get_parts(clipped, return_index=True)
    keep = shapely.get_type_id(parts) == shapely.GeometryType.LINESTRING
    geoms_out = np.full(len(out), None, dtype=object)
    if keep.any():
        shapely.multilinestrings(parts[keep], indices=of[keep], out=geoms_out)
    have = np.zeros(len(out), dtype=bool)
    have[of[keep]] = True
    out["geometry"] = geoms_out
    return out[have].reset_index(drop=True)


def default_period(today: dt.date | None = None):
    """This month (China time)."""
    from gridgeo.timezone import CHINA
    from gridgeo.workload import parse_period

    today = today or dt.datetime.now(CHINA).date()
    return parse_period(f"{today.year}-{today.month:02d}")


def patrol_from_store(
    store: Store,
    *,
    period: str | None = None,
    village: str | None = None,
    grids_in_scope: list[str] | None = None,
    basemap: Basemap | None = None,
    households: bool = True,
) -> folium.Map:
    """The patrol map over ``period`` (default this month), under the plan in force at its
    end (as :func:`gridgeo.patrols.patrol_stats`). ``grids_in_scope`` (a grid worker's
    grids) keeps those grids and the tracks inside them."""
    from gridgeo.patrols import patrol_stats, patrol_tracks
    from gridgeo.workload import parse_period, village_prefix

    p = parse_period(period) if period else default_period()
    plan = store.plan_in_force(p.end)
    if plan is None:
        raise MapError(f"no grids to draw: no plan is in force on {p.end.isoformat()}")
    prefix = village_prefix(store, village)
    tracks = patrol_tracks(store, p)
    table = patrol_stats(store, p, "grid", tracks=tracks)
    grids = store.read("grids", plan=plan["id"])
    if grids_in_scope is not None:
        grids = grids[grids["code"].isin(list(grids_in_scope))]
    if prefix:
        grids = grids[grids["code"].str.startswith(prefix)]
    if grids_in_scope is not None or prefix:
        area = shapely.union_all(grids.geometry.to_numpy()) if len(grids) else shapely.Polygon()
        tracks = _clip(tracks, area)
    ground = read_ground(store, grids.total_bounds if len(grids) else None, households=households)
    return patrol_map(grids, table, tracks, store.read("divisions"), radius_m=table.attrs["radius_m"],
                      basemap=basemap, ground=ground,
                      subtitle=f"{p.start:%Y-%m-%d} 至 {p.end:%Y-%m-%d} · 网格划分方案 {plan['version']}")
