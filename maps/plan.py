"""The plan map: a draft grid plan beside the plan in force, changes highlighted.

Two maps side by side (folium's DualMap, kept on the same view by Leaflet.Sync): the
plan in force on the left, the draft on the right. Each grid is coloured by what the
draft does to it (:func:`gridgeo.compare.compare_grids`): unchanged, renumbered,
boundary changed, new (draft only) or removed (current only). The map is built from
two grid layers, so it shows whatever the planner produces: a plan in the store, a
GeoDataFrame in a notebook, or a file.
"""

from __future__ import annotations

import datetime as dt

import folium
import geopandas as gpd
import pandas as pd
import shapely
from folium.plugins import DualMap

from gridgeo.compare import CHANGES, compare_grids
from gridgeo.store import Store
from gridgeo.maps import elements, encoding, offline
from gridgeo.maps.base import Basemap, MapError, add_grids, encode_together, get_basemap, grid_set
from gridgeo.maps.ground import Ground, add_ground, read_ground

__all__ = ["plan_map", "plan_from_store", "CHANGE_STYLES"]

#: Fill colour of each change.
CHANGE_STYLES = {
    "unchanged": "#d9d9d9",
    "renumbered": "#80b1d3",
    "changed": "#ff7f00",
    "new": "#33a02c",
    "removed": "#e31a1c",
}

TOOLTIP = [
    ("code", "网格编码"),
    ("village", "所属村社"),
    ("households", "户数"),
    ("change_label", "变化"),
    ("match", "对应网格"),
]


def _styles() -> list[dict]:
    out = []
    for key, colour in CHANGE_STYLES.items():
        highlight = key not in ("unchanged",)
        out.append({"color": "#7a0177" if key == "changed" else "#ffffff",
                    "weight": 2.2 if highlight else 1.0, "fillColor": colour,
                    "fillOpacity": 0.75 if highlight else 0.45, "opacity": 1})
    return out


def plan_map(
    draft: gpd.GeoDataFrame,
    current: gpd.GeoDataFrame,
    villages: pd.DataFrame | None = None,
    *,
    draft_label: str = "调整方案（草案）",
    current_label: str = "现行方案",
    basemap: Basemap | None = None,
    tolerance_m: float | None = None,
    ground: Ground | None = None,
) -> DualMap:
    """Build the plan map: ``current`` on the left, ``draft`` on the right.

    Parameters
    ----------
    draft, current : GeoDataFrame
        Grid layers (``code``, ``name``, ``village_code``, polygons; EPSG:4326).
        Either may be empty (a first plan, a withdrawn one), not both.
    villages : DataFrame, optional
        ``code`` and ``name`` of villages, for names.
    """
    if len(draft) == 0 and len(current) == 0:
        raise MapError("both plans are empty: nothing to draw")
    basemap = basemap or get_basemap()
    dc, cc = compare_grids(draft, current)
    if tolerance_m is None:
        tolerance_m = encoding.auto_tolerance(pd.concat([draft.geometry, current.geometry]).to_numpy())
    keys = list(CHANGE_STYLES)
    dm = DualMap(layout="horizontal", tiles=None, control_scale=False, maxZoom=basemap.max_zoom)
    offline.use_assets(dm, offline.SYNC)
    sides = [(dm.m1, current.reset_index(drop=True), cc.reset_index(drop=True), current_label),
             (dm.m2, draft.reset_index(drop=True), dc.reset_index(drop=True), draft_label)]
    sets = [grid_set(g, villages, basemap, tolerance_m=tolerance_m, encode=False) if len(g) else None
            for _, g, _, _ in sides]
    # One topology for both plans: the grids a draft leaves alone are sent once.
    encode_together([s for s in sets if s is not None])
    bounds = None
    counts = {}
    for (m, grids, changes, label), gs in zip(sides, sets):
        offline.use_assets(m, offline.LEAFLET, offline.GRIDGEO)
        basemap.add_to(m)
        elements.ScaleBar().add_to(m)
        if gs is None:
            elements.Title(label, "（无网格）").add_to(m)
            folium.LayerControl(position="topright", collapsed=False).add_to(m)
            continue
        gs.frame["change_label"] = changes["change"].map(CHANGES).to_numpy()
        gs.frame["match"] = changes["match"].to_numpy()
        cls = pd.Categorical(changes["change"], categories=keys).codes
        layer = add_grids(m, gs, cls, _styles(), TOOLTIP, name="网格（按变化）")
        add_ground(m, ground, basemap)
        counts[label] = changes["change"].value_counts()
        shown = [k for k in keys if counts[label].get(k, 0)]
        elements.Legend(
            "与另一方案相比",
            [(CHANGE_STYLES[k], f"{CHANGES[k]}  {counts[label][k]}") for k in shown],
            note=f"{len(grids)} 个网格",
        ).add_to(m)
        plan = grids.attrs.get("plan_version")
        elements.Title(label, f"方案 {plan}" if plan else None).add_to(m)
        elements.Search([layer]).add_to(m)
        elements.fullscreen(m, fullscreenElement=folium.JsCode("document.body"))
        folium.LayerControl(position="topright", collapsed=False).add_to(m)
        bounds = gs.bounds if bounds is None else [
            [min(bounds[0][0], gs.bounds[0][0]), min(bounds[0][1], gs.bounds[0][1])],
            [max(bounds[1][0], gs.bounds[1][0]), max(bounds[1][1], gs.bounds[1][1])],
        ]
    dm.fit_bounds(bounds, padding=(20, 20))
    return dm


def plan_from_store(
    store: Store,
    plan: int | str,
    *,
    against: int | str | None = None,
    at: dt.date | None = None,
    village: str | None = None,
    basemap: Basemap | None = None,
) -> DualMap:
    """Plan ``plan`` (id or version) beside the plan in force on ``at`` (default today),
    or beside plan ``against``; optionally only the grids of one village (code prefix
    or name)."""
    from gridgeo.plan.lifecycle import read_plan
    from gridgeo.workload import village_prefix

    row, draft = read_plan(store, plan)
    current = read_plan(store, against)[1] if against is not None else store.read("grids", at=at)
    prefix = village_prefix(store, village)
    if prefix:
        draft = draft[draft["village_code"].str.startswith(prefix)]
        current = current[current["village_code"].str.startswith(prefix)]
    status = {"draft": "草案", "published": "已发布", "retired": "已废止"}.get(row["status"], "")
    label = f"调整方案（{status}）" if status else "调整方案"
    cur = current.attrs.get("plan_version")
    both = pd.concat([draft.geometry, current.geometry])
    ground = read_ground(store, shapely.total_bounds(both.to_numpy()) if len(both) else None)
    return plan_map(draft, current, store.read("divisions"), draft_label=label,
                    current_label="现行方案" if against is None else f"方案 {cur}",
                    basemap=basemap, ground=ground)
