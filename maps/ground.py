"""The ground under the grids: roads and rivers by rank, and the households.

Every map draws the store's roads and rivers (layer ``roads``, ``kind`` road or river)
as two layers the layer control switches (道路, 河流): major roads always, minor ones
from zoom 13, each thinner when zoomed out; and, from zoom 16, the households (address
points of the ``households`` layer, no attribute: a dot per address) as a third layer.
Lines and points are sent encoded (:func:`gridgeo.maps.encoding.encode_lines`) and drawn
on a canvas in a pane over the grids that lets the mouse through to them.

The public coverage page (``/maps/coverage`` without a token) draws no households: the
household register is read with a token only (as ``GET /v1/households``).
"""

from __future__ import annotations

from dataclasses import dataclass

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.store import Store
from gridgeo.maps import elements, encoding
from gridgeo.maps.base import Basemap

__all__ = ["Ground", "ROAD_CLASSES", "RIVER_CLASSES", "read_ground", "add_ground", "road_class"]

#: Road classes, drawn in this order: (label, ranks, colour, weight at zoom 16, first zoom).
ROAD_CLASSES = [
    ("干线道路", ("高速公路", "国道", "省道", "县道", "主干路", "快速路"), "#e8912d", 5.0, 0),
    ("次要道路", ("乡道", "次干路"), "#f2b950", 3.6, 0),
    ("支路、村道", (), "#8c8c8c", 2.2, 13),  # every other rank
]
#: River classes: (label, ranks, colour, weight at zoom 16, first zoom).
RIVER_CLASSES = [
    ("河流", ("江", "河", "河流"), "#3d85c6", 5.0, 0),
    ("溪、渠", (), "#6fa8dc", 2.6, 12),
]
HOUSEHOLD_STYLE = {"radius": 2.2, "color": "#5b4636", "weight": 0.6, "fillColor": "#b08968",
                   "fillOpacity": 0.9, "opacity": 0.9}
HOUSEHOLD_ZOOM = 16


def road_class(ranks, classes) -> np.ndarray:
    """The class (index into ``classes``) of each rank; unknown ranks take the last one."""
    ranks = pd.Series(ranks, dtype=object).fillna("").astype(str).str.strip()
    out = np.full(len(ranks), len(classes) - 1, dtype=int)
    for i, (_, names, *_rest) in reversed(list(enumerate(classes[:-1]))):
        out[ranks.isin(names).to_numpy()] = i
    return out


@dataclass
class Ground:
    """Roads and rivers (GeoDataFrame, ``kind``, ``rank``, ``name``) and household points."""

    roads: gpd.GeoDataFrame
    households: gpd.GeoDataFrame | None = None


def _within(frame: gpd.GeoDataFrame, bounds, margin: float) -> gpd.GeoDataFrame:
    if bounds is None or len(frame) == 0:
        return frame
    x0, y0, x1, y1 = bounds
    box = shapely.box(x0 - margin, y0 - margin, x1 + margin, y1 + margin)
    return frame[shapely.intersects(frame.geometry.to_numpy(), box)]


def read_ground(store: Store, bounds=None, *, households: bool = True) -> Ground:
    """The ground within ``bounds`` (lon/lat ``x0, y0, x1, y1``, with a margin of about
    1 km; default everything) from the store; ``households=False`` leaves them out."""
    roads = _within(store.read("roads"), bounds, 0.01)
    homes = _within(store.read("households")[["geometry"]], bounds, 0.002) if households else None
    return Ground(roads, homes)


def _lines(m, frame, classes, basemap: Basemap, *, name: str, class_name: str) -> elements.LineLayer:
    cls = road_class(frame["rank"], classes) if len(frame) else np.zeros(0, dtype=int)
    order = np.argsort(-cls, kind="stable")  # minor lines first, major ones drawn over them
    frame = frame.iloc[order]
    geoms = encoding.to_display(frame.geometry.to_numpy(), basemap.crs)
    styles = [{"color": colour, "weight": weight, "minZoom": zoom, "label": label}
              for label, _, colour, weight, zoom in classes]
    names = frame["name"].astype(object).where(frame["name"].notna(), None).tolist()
    layer = elements.LineLayer(encoding.encode_lines(geoms, 5), cls[order], styles, names,
                               name=name, class_name=class_name)
    return layer.add_to(m)


def add_ground(m: folium.Map, ground: Ground | None, basemap: Basemap) -> list:
    """Add the roads, rivers and (if read) households layers to ``m``; return them."""
    if ground is None:
        return []
    roads = ground.roads
    kind = roads["kind"].astype(str).to_numpy() if len(roads) else np.array([], dtype=str)
    out = [
        _lines(m, roads[kind == "road"], ROAD_CLASSES, basemap, name="道路", class_name="gg-road"),
        _lines(m, roads[kind == "river"], RIVER_CLASSES, basemap, name="河流", class_name="gg-river"),
    ]
    if ground.households is not None:
        geoms = ground.households.geometry.to_numpy()
        from gridgeo.maps.base import display_points

        lon, lat = display_points(shapely.get_x(geoms), shapely.get_y(geoms), basemap)
        out.append(elements.PointLayer(encoding.encode_points(lon, lat, 5), HOUSEHOLD_STYLE,
                                       name="住户（放大后显示）", min_zoom=HOUSEHOLD_ZOOM).add_to(m))
    return out
