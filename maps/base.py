"""What every gridgeo map has: an offline Leaflet map, an optional base map, the grid
and village layers, search, layer control, fullscreen and a scale bar.

Base maps
---------
None by default: a map then makes no request at all. ``GRIDGEO_MAP_BASEMAP`` (or the
``basemap`` argument, CLI option and API parameter) chooses another:

``tianditu``
    天地图 vector and imagery tiles with Chinese annotation; needs a key, from
    ``GRIDGEO_TIANDITU_KEY``. The tiles are CGCS2000, drawn as WGS84 (centimetres).
    The key is written into the page, as the browser must send it with every tile.
``amap``
    高德地图 road and satellite tiles. They are GCJ-02: everything drawn is converted to
    GCJ-02 first (:func:`gridgeo.crs.convert`), or it would land some 500 m off.
``xyz``
    An intranet tile server: ``GRIDGEO_MAP_XYZ_URL`` is its URL template
    (``http://tiles.county.gov.internal/{z}/{x}/{y}.png``) and ``GRIDGEO_MAP_XYZ_CRS`` the
    coordinates its tiles are drawn in: ``wgs84`` or ``cgcs2000`` (default; drawn as is)
    or ``gcj02`` (everything drawn is shifted, as for AMap).
``archive``
    An MBTiles or PMTiles file (``GRIDGEO_MAP_TILES``, its coordinates ``GRIDGEO_MAP_XYZ_CRS``)
    served by gridgeo itself at ``/maps/basemap/{z}/{x}/{y}`` (:mod:`gridgeo.maps.archive`):
    for the maps the API serves, not for saved files. Raster tiles are drawn by Leaflet;
    vector tiles (the offline base map ``gridgeo map basemap`` builds from the store's own
    layers, :mod:`gridgeo.maps.basemap`) by protomaps-leaflet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.errors import GridgeoError
from gridgeo.maps import elements, encoding, offline

__all__ = ["BASEMAPS", "Basemap", "MapError", "get_basemap", "new_map", "GridSet", "grid_set",
           "encode_together", "add_grids", "finish", "tiled_threshold", "draws_tiled", "may_draw_tiled",
           "add_tiled_grids"]

#: Base map choices, code -> label.
BASEMAPS = {"none": "无底图", "tianditu": "天地图", "amap": "高德地图", "xyz": "内网瓦片服务",
            "archive": "本地瓦片包"}
#: The coordinates an XYZ server's or an archive's tiles may be drawn in.
TILE_CRS = {"wgs84": "wgs84", "cgcs2000": "wgs84", "gcj02": "gcj02"}


class MapError(GridgeoError, ValueError):
    """A map that cannot be drawn as asked (unknown base map, missing key, no grids)."""

    status = 422
    code = "map-error"


@dataclass(frozen=True)
class Basemap:
    """A base map choice: ``kind`` in :data:`BASEMAPS`, and the Tianditu key."""

    kind: str = "none"
    key: str | None = None
    url: str | None = None  # xyz, archive: the tile URL template
    tile_crs: str = "wgs84"  # xyz, archive
    max_native: int = 18
    attribution: str = ""
    vector: bool = False  # archive: vector tiles (gridgeo map basemap), drawn by protomaps-leaflet

    @property
    def crs(self) -> str:
        """The coordinate system the tiles are drawn in: ``gcj02`` for AMap."""
        return "gcj02" if self.kind == "amap" else self.tile_crs

    @property
    def max_zoom(self) -> int:
        return 18 if self.kind != "none" else 19

    def add_to(self, m: folium.Map) -> None:
        """Add the base layers (radio buttons in the layer control) to ``m``."""
        if self.kind == "tianditu":
            url = ("https://t{s}.tianditu.gov.cn/%s_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                   "&LAYER=%s&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
                   "&TILECOL={x}&tk=" + str(self.key))
            attr = "&copy; 天地图 (tianditu.gov.cn)"
            for label, base, notes in (("天地图矢量", "vec", "cva"), ("天地图影像", "img", "cia")):
                group = folium.FeatureGroup(name=label, overlay=False, show=label == "天地图矢量")
                for layer in (base, notes):
                    folium.TileLayer(url % (layer, layer), attr=attr, subdomains="01234567",
                                     max_zoom=18, control=False).add_to(group)
                group.add_to(m)
        elif self.kind == "archive" and self.vector:
            elements.VectorBase(self.url, max_data_zoom=self.max_native,
                                attribution=self.attribution or BASEMAPS[self.kind]).add_to(m)
        elif self.kind in ("xyz", "archive"):
            folium.TileLayer(self.url, name=BASEMAPS[self.kind], attr=self.attribution or BASEMAPS[self.kind],
                             max_zoom=19, max_native_zoom=self.max_native).add_to(m)
        elif self.kind == "amap":
            url = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
            sat = "https://webst0{s}.is.autonavi.com/appmaptile?style=6&x={x}&y={y}&z={z}"
            attr = "&copy; 高德地图 (amap.com)"
            folium.TileLayer(url, name="高德地图", attr=attr, subdomains="1234", max_zoom=18).add_to(m)
            folium.TileLayer(sat, name="高德影像", attr=attr, subdomains="1234", max_zoom=18,
                             show=False).add_to(m)


def _tile_crs() -> str:
    name = (os.environ.get("GRIDGEO_MAP_XYZ_CRS") or "cgcs2000").strip().lower()
    if name not in TILE_CRS:
        raise MapError(f"GRIDGEO_MAP_XYZ_CRS={name!r}: use one of {', '.join(TILE_CRS)}")
    return TILE_CRS[name]


def get_basemap(kind: str | None = None, *, key: str | None = None, archive_url: str | None = None) -> Basemap:
    """The base map ``kind`` (default ``GRIDGEO_MAP_BASEMAP``, else none).

    ``archive_url`` is where the API serves the tile archive, relative to the map page
    (``basemap/{z}/{x}/{y}``); without it (a saved file) the archive cannot be drawn.

    Raises
    ------
    MapError
        For an unknown kind, Tianditu without a key (``GRIDGEO_TIANDITU_KEY``), an XYZ
        base map without its template, an archive that is missing or cannot be served.
    """
    kind = (kind or os.environ.get("GRIDGEO_MAP_BASEMAP") or "none").strip().lower()
    if kind not in BASEMAPS:
        raise MapError(f"unknown base map {kind!r}: use one of {', '.join(BASEMAPS)}")
    if kind == "xyz":
        url = (os.environ.get("GRIDGEO_MAP_XYZ_URL") or "").strip()
        if not all(p in url for p in ("{z}", "{x}", "{y}")) or not url.startswith(("http://", "https://", "/")):
            raise MapError("the xyz base map needs GRIDGEO_MAP_XYZ_URL, a tile URL template with {z}, {x} "
                           "and {y} (http://host/{z}/{x}/{y}.png)")
        return Basemap(kind, url=url, tile_crs=_tile_crs())
    if kind == "archive":
        from gridgeo.maps.archive import open_archive

        path = os.environ.get("GRIDGEO_MAP_TILES")
        if not path:
            raise MapError("the archive base map needs GRIDGEO_MAP_TILES, the path of an MBTiles or PMTiles file")
        archive = open_archive(path)
        if archive_url is None:
            raise MapError("the tile archive is served by gridgeo serve: open the map from /maps/... "
                           "(a saved file cannot load it)")
        return Basemap(kind, url=archive_url, tile_crs=_tile_crs(), max_native=archive.max_zoom,
                       attribution=archive.attribution, vector=archive.vector)
    if kind == "tianditu":
        key = key or os.environ.get("GRIDGEO_TIANDITU_KEY")
        if not key:
            raise MapError("the Tianditu base map needs a key: set GRIDGEO_TIANDITU_KEY")
    return Basemap(kind, key)


#: Above this many grids (``GRIDGEO_MAP_TILED_GRIDS``) the maps the API serves draw the
#: grids from ``/tiles/grids`` instead of inlining them.
TILED_GRIDS = 20_000


def tiled_threshold() -> int:
    """``GRIDGEO_MAP_TILED_GRIDS`` (default 20,000): more grids than this are drawn from tiles."""
    raw = (os.environ.get("GRIDGEO_MAP_TILED_GRIDS") or str(TILED_GRIDS)).strip().replace(",", "").replace("_", "")
    if not raw.isdigit():
        raise MapError(f"GRIDGEO_MAP_TILED_GRIDS={raw[:20]!r}: give a number of grids (e.g. 20000)")
    return int(raw)


def may_draw_tiled(basemap: Basemap, tiles_url: str | None) -> bool:
    """Whether a map could draw its grids from vector tiles, given enough of them: served by
    the API (``tiles_url``) over a base map in WGS84/CGCS2000 (tiles are not shifted to
    GCJ-02: with AMap or a GCJ-02 server the grids stay inline)."""
    return tiles_url is not None and basemap.crs == "wgs84"


def draws_tiled(n_grids: int, basemap: Basemap, tiles_url: str | None) -> bool:
    """Whether a map of ``n_grids`` draws them from vector tiles: :func:`may_draw_tiled` and
    more than :func:`tiled_threshold`."""
    return may_draw_tiled(basemap, tiles_url) and n_grids > tiled_threshold()


#: What a click on a grid drawn from the tiles shows (the tiles carry these attributes).
TILE_TOOLTIP = [("code", "网格编码"), ("households", "户数"), ("population", "人口")]


def add_tiled_grids(m: folium.Map, tiles_url: str, codes, cls, styles: list[dict], labels: list[str], *,
                    class_title: str, name: str, plan: str | None = None, prefix: str | None = None):
    """The grids of ``plan`` (``codes``, each of class ``cls`` drawn in ``styles[cls]``) from
    the vector tiles under ``tiles_url`` (where the API serves ``/tiles``, relative to the
    page), with the roads, rivers and village outlines of the tiles, added to ``m``. A click
    on a grid shows what its tile carries, then its village and staff from the API's lookup
    (``/v1/lookup``, beside ``/tiles``)."""
    query = f"?plan={plan}" if plan else ""
    return elements.TiledGrids(
        f"{tiles_url}grids/{{z}}/{{x}}/{{y}}.mvt{query}", codes, cls, styles, labels, tooltip=TILE_TOOLTIP,
        class_title=class_title, ground_url=f"{tiles_url}roads/{{z}}/{{x}}/{{y}}.mvt",
        villages_url=f"{tiles_url}villages/{{z}}/{{x}}/{{y}}.mvt", prefix=prefix, name=name,
        lookup_url=f"{tiles_url}../v1/lookup").add_to(m)


def new_map(basemap: Basemap, **kwargs) -> folium.Map:
    """A folium map with no default tiles, loading Leaflet from the vendored assets."""
    m = folium.Map(tiles=None, control_scale=False, zoom_control=True, maxZoom=basemap.max_zoom,
                   **kwargs)
    offline.use_assets(m, offline.LEAFLET, offline.GRIDGEO)
    basemap.add_to(m)
    elements.ScaleBar().add_to(m)
    elements.AttributionPrefix().add_to(m)
    return m


# -- grids, villages -----------------------------------------------------------------

@dataclass
class GridSet:
    """Grids ready to draw: simplified, in the base map's CRS, encoded as a topology.

    ``topology`` is None while the set waits to be encoded together with others
    (:func:`encode_together`); then ``share_with`` names the set holding the topology
    and ``feature_range`` this set's features in it.
    """

    frame: pd.DataFrame
    geoms: np.ndarray  # simplified, display CRS
    villages: pd.DataFrame  # code, name, label point lon/lat (display CRS), grids
    bounds: list  # [[south, west], [north, east]] in the display CRS
    tolerance_m: float
    decimals: int
    topology: dict | None = None
    mesh: list | None = None
    feature_range: tuple[int, int] | None = None
    share_with: GridSet | None = None
    layer: elements.GridLayer | None = None


def _village_names(frame: pd.DataFrame, villages: pd.DataFrame | None) -> pd.Series:
    names = pd.Series(frame["village_code"].to_numpy(), index=frame.index, dtype=object)
    if villages is not None and len(villages):
        lookup = pd.Series(villages["name"].to_numpy(), index=villages["code"].to_numpy())
        names = names.map(lookup).fillna(names)
    return names


def grid_set(grids: gpd.GeoDataFrame, villages: pd.DataFrame | None, basemap: Basemap, *,
             tolerance_m: float | None = None, encode: bool = True) -> GridSet:
    """Prepare ``grids`` for drawing (see :mod:`gridgeo.maps.encoding`).

    ``villages`` (the divisions layer, or any frame with ``code`` and ``name``) names
    the villages; without it villages are shown by code. The frame returned has the
    grid columns plus ``village`` (name). With ``encode=False`` the topology is left
    for :func:`encode_together`.
    """
    if len(grids) == 0:
        plan = grids.attrs.get("plan_version")
        raise MapError(f"no grids to draw: plan {plan} has none here" if plan
                       else "no grids to draw: no plan is in force (or the plan asked for has none)")
    if grids.crs is not None and grids.crs.to_epsg() != 4326:
        grids = grids.to_crs(4326)
    frame = pd.DataFrame(grids.drop(columns="geometry")).reset_index(drop=True)
    frame["village"] = _village_names(frame, villages).to_numpy()
    geoms = grids.geometry.to_numpy()
    tol = encoding.auto_tolerance(geoms) if tolerance_m is None else float(tolerance_m)
    decimals = 6 if tol < 2.5 else 5  # rounding stays below the simplification
    simple = encoding.to_display(encoding.simplify(geoms, tol), basemap.crs)
    # Village labels: a point inside the largest grid of each village.
    area = shapely.area(simple)
    biggest = (pd.DataFrame({"v": frame["village_code"], "a": area})
               .sort_values(["v", "a"], ascending=[True, False]).drop_duplicates("v").index.to_numpy())
    points = shapely.point_on_surface(simple[biggest])
    vill = pd.DataFrame({
        "code": frame["village_code"].to_numpy()[biggest],
        "name": frame["village"].to_numpy()[biggest],
        "lon": shapely.get_x(points),
        "lat": shapely.get_y(points),
    })
    vill["grids"] = frame["village_code"].value_counts().reindex(vill["code"]).to_numpy()
    x0, y0, x1, y1 = shapely.total_bounds(simple)
    gs = GridSet(frame, simple, vill, [[y0, x0], [y1, x1]], tol, decimals)
    if encode:
        gs.topology = encoding.encode_topology(simple, decimals, groups=frame["village_code"].to_numpy())
        gs.mesh = gs.topology.pop("mesh")
    return gs


def encode_together(sets: list[GridSet]) -> None:
    """Encode several grid sets as one topology, held by the first.

    Arcs common to them (the unchanged grids of two plans) are then sent once.
    """
    geoms = np.concatenate([s.geoms for s in sets])
    groups = np.concatenate([s.frame["village_code"].to_numpy(dtype=str) for s in sets])
    layers = np.repeat(np.arange(len(sets)), [len(s.frame) for s in sets])
    topo = encoding.encode_topology(geoms, min(s.decimals for s in sets), groups=groups, layers=layers)
    meshes = topo.pop("mesh")
    start = 0
    for i, s in enumerate(sets):
        s.feature_range = (start, start + len(s.frame))
        start += len(s.frame)
        s.mesh = meshes[i]
        s.topology = topo if i == 0 else None
        s.share_with = None if i == 0 else sets[0]


VILLAGE_STYLE = {"color": "#222222", "weight": 2.6, "opacity": 0.9}
#: Grid labels appear from this zoom on.
GRID_LABEL_ZOOM = 15


def add_grids(m: folium.Map, gs: GridSet, classes, styles, tooltip, *, name: str = "网格",
              class_name: str = "gg-grid", show_villages: bool = True,
              labels: bool | None = None) -> elements.GridLayer:
    """Add the grid layer, the village boundaries and (for up to 60 villages) their names."""
    wanted = list(dict.fromkeys(["code", "name", "village", *[c for c, _ in tooltip]]))
    for col in wanted:
        if col not in gs.frame:  # e.g. a draft file without households: shown as "—"
            gs.frame[col] = None
    props, lookups = elements.columns(gs.frame, wanted)
    share = gs.share_with.layer if gs.share_with is not None else None
    if gs.share_with is not None and share is None:
        raise ValueError("add the grid set holding the shared topology first")
    layer = elements.GridLayer(gs.topology, props, lookups, classes, styles, tooltip=tooltip,
                               name=name, class_name=class_name, share=share,
                               feature_range=gs.feature_range)
    layer.add_to(m)
    gs.layer = layer
    if show_villages:
        elements.MeshLayer(layer, gs.mesh or [], VILLAGE_STYLE).add_to(m)
    if labels is None:
        labels = True
    # Village names always (from zoom 12 on when there are very many); grid numbers and
    # names when zoomed in, at a point inside each grid.
    pts = encoding.encode_points(gs.villages["lon"], gs.villages["lat"], 5)
    elements.LabelLayer(pts, gs.villages["name"].astype(str).tolist(), show=bool(labels),
                        min_zoom=0 if len(gs.villages) <= 200 else 12).add_to(m)
    inside = shapely.point_on_surface(gs.geoms)
    placed = ~shapely.is_missing(inside) & ~shapely.is_empty(inside)
    codes = gs.frame["code"].astype(str).str[-3:]
    names = (codes + " " + gs.frame["name"].fillna("").astype(str)).to_numpy()[placed]
    gpts = encoding.encode_points(shapely.get_x(inside[placed]), shapely.get_y(inside[placed]), 5)
    elements.LabelLayer(gpts, names.tolist(), name="网格编号（放大后显示）", min_zoom=GRID_LABEL_ZOOM,
                        class_name="gg-grid-label", show=bool(labels)).add_to(m)
    return layer


def finish(m: folium.Map, layers, bounds, *, title: str | None = None, subtitle: str | None = None,
           collapsed: bool = False) -> folium.Map:
    """Search (over ``layers``, if any), title, fullscreen, layer control, and the view
    fitted to ``bounds``."""
    if layers:
        elements.Search(layers).add_to(m)
    elements.fullscreen(m)
    if title:
        elements.Title(title, subtitle).add_to(m)
    folium.LayerControl(position="topright", collapsed=collapsed).add_to(m)
    m.fit_bounds(bounds, padding=(20, 20))
    return m


def display_points(lon, lat, basemap: Basemap) -> tuple[np.ndarray, np.ndarray]:
    """Point coordinates in the base map's CRS."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if basemap.crs == "wgs84":
        return lon, lat
    from gridgeo import crs as _crs

    return _crs.convert(lon, lat, "wgs84", basemap.crs)
