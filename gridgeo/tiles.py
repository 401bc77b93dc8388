"""Vector tiles (Mapbox Vector Tile 2.1) of the public layers, for maps at province scale.

``render_tile(store, layer, z, x, y)`` gives the tile ``z/x/y`` (XYZ, Web Mercator) of:

- ``grids``: the grids of the plan in force (or ``plan``), with ``code``, ``name``,
  ``village_code``, ``households``, ``population``, ``buildings``: a map colours them from
  these attributes, so one tile set serves every map;
- ``roads``: roads and rivers with ``kind``, ``rank``, ``name``;
- ``villages``: village and community boundaries with ``code`` and ``name``.

Every grid feature has its code as the feature id (15 digits, an integer). Below
:data:`DETAIL_ZOOM` grid tiles are *light*: the id and a simplified outline only (a
province's 100,000 grids make four tiles at zoom 6 of about 0.8 MB each, instead of 2.4 MB
with every attribute); a map colours them from the id as from the ``code``. Below
:data:`OVERVIEW_ZOOM` they are cut from the plan's overview, its grids simplified once and
held in memory (on both databases). Roads and villages are light below DETAIL_ZOOM too
(:data:`LIGHT_ATTRS`, simplified to a unit).

On PostgreSQL PostGIS encodes the tile (``ST_AsMVT`` over ``ST_AsMVTGeom``, the tile's
envelope found by the spatial index), except the overview's; on SQLite the layer is held in
memory in Web Mercator with an STRtree (per plan), clipped with a 64-unit buffer and
encoded by mapbox-vector-tile, except light grid tiles, which :func:`encode_polygons` writes
with numpy (mapbox-vector-tile takes some 20 s for a tile of 50,000 grids; this, under a
second). Both give the same features and attributes (the tests compare them with the store).
:func:`warm` fills the cache with a province map's opening tiles (``gridgeo serve`` runs it
in a background thread at start, ``GRIDGEO_TILES_WARM``).
Tiles are cached in the process (:class:`TileCache`, 64 MB, by store, layer, plan, z, x,
y and the layer's :func:`revision`): an import of roads, villages or grids, or an edit of a
plan, is a line of the audit log, and a tile asked for after it is made anew from the data
(in every process of the service: each asks the database, one indexed query a tile); the
layers held in memory for an older revision are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from sqlalchemy import text

from gridgeo.errors import InvalidInput, NotFound
from gridgeo.store import Store

__all__ = ["LAYERS", "LIGHT_ATTRS", "OVERVIEW_ZOOM", "MAX_ZOOM", "DETAIL_ZOOM", "encode_polygons", "grid_bounds", "warm", "EXTENT", "BUFFER", "InvalidTile", "render_tile", "tile_bounds", "clear_cache",
           "CACHE", "revision"]

#: The deepest zoom served (a tile some 10 m across at 22).
MAX_ZOOM = 22
#: From this zoom grid tiles carry every attribute and the full geometry. Below it (a tile
#: over 10 km, a province in four tiles at 6) a grid tile is light: each grid with only its
#: code, as the feature id (the 15 digits as an integer), its outline simplified to one tile
#: unit, and a grid smaller than :data:`MIN_UNITS` drawn as a square of that size, so that
#: every grid is in every tile it meets, however far out.
DETAIL_ZOOM = 12
#: Below this zoom (a tile over 80 km) light grid tiles are cut from the plan's *overview*:
#: every grid of the plan simplified once to half the tolerance of zoom OVERVIEW_ZOOM - 1
#: (some 76 m), held in memory per plan, so that a province map's opening tiles need neither
#: the full geometry nor a simplification of it per tile (PostGIS took 2.6 s for each zoom-6
#: tile of 25,000 grids, 8 s at zoom 4). On SQLite the light tiles from this zoom to
#: DETAIL_ZOOM - 1 come from a finer overview (half the tolerance of zoom 11, some 10 m), of
#: which the coarse one is made: the full layer is read into memory only from DETAIL_ZOOM on.
OVERVIEW_ZOOM = 9
MIN_UNITS = 4
#: Light tiles are simplified to this many units: a map draws a tile of zoom z over 512 px at
#: zoom z + 1 (protomaps-leaflet), 8 units a pixel, so 4 units is half a pixel (one on a
#: screen of twice the density), and a zoom-6 tile of 25,000 grids carries about half the
#: vertices it did at one unit.
LIGHT_UNITS = 4
EXTENT = 4096
BUFFER = 64
HALF = 20037508.342789244  # half the Web Mercator world, metres
LAYERS = {
    "grids": ["code", "name", "village_code", "households", "population", "buildings"],
    "roads": ["code", "name", "kind", "rank"],
    "villages": ["code", "name"],
}
#: Below DETAIL_ZOOM roads and village outlines are light too: simplified to LIGHT_UNITS,
#: with only the attributes a zoomed-out map draws them by (the names are labels from 14 on).
LIGHT_ATTRS = {"roads": ["kind", "rank"], "villages": ["code"]}


class InvalidTile(InvalidInput):
    """A tile address that does not exist: z, x or y out of range, an unknown layer."""

    status = 404
    code = "no-such-tile"


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Web Mercator bounds of tile z/x/y; :class:`InvalidTile` outside the tile grid."""
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidTile(f"no tile {z}/{x}/{y}: z is 0..{MAX_ZOOM}, x and y 0..2^z-1")
    size = 2 * HALF / 2**z
    x0 = -HALF + x * size
    y1 = HALF - y * size
    return x0, y1 - size, x0 + size, y1


class TileCache:
    """A bounded LRU of encoded tiles (bytes), shared by the threads of a process."""

    def __init__(self, max_bytes: int = 64 * 2**20):
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.size += len(value)
            while self.size > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self.size -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.size = 0


CACHE = TileCache()
_FRAMES: dict = {}
_FRAMES_LOCK = threading.Lock()
_BUILDING = threading.Lock()
_TO_LONLAT = Transformer.from_crs(3857, 4326, always_xy=True)


def _mercator(xy: np.ndarray) -> np.ndarray:
    """Lon/lat to Web Mercator (EPSG:3857, a sphere of the WGS84 major radius): the formula,
    as pyproj has it, without pyproj's cost per point (13 M points at province scale)."""
    lat = np.clip(xy[:, 1], -85.06, 85.06)
    r = HALF / np.pi
    return np.column_stack([np.radians(xy[:, 0]) * r, np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * r])


def clear_cache() -> None:
    """Forget every cached tile and layer (after a change to the layers)."""
    CACHE.clear()
    with _FRAMES_LOCK:
        _FRAMES.clear()


def grid_bounds(store: Store, plan_id: int, prefix: str | None = None) -> tuple[float, float, float, float] | None:
    """Lon/lat bounds of the grids of plan ``plan_id`` (whose code starts with ``prefix``),
    without reading their geometry on PostgreSQL; on SQLite from the plan's overview (read
    once, then the opening tiles need no read; its simplification moves an edge by at most
    some 10 m). None if there are none."""
    if store.dialect == "postgresql":
        sql = text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                   "(SELECT ST_Extent(geometry) AS e FROM grids WHERE plan_id = :p AND code LIKE :like) q")
        with store.engine.connect() as conn:
            row = conn.execute(sql, {"p": plan_id, "like": (prefix or "") + "%"}).one()
        return None if row[0] is None else tuple(float(v) for v in row)
    geoms, _, ids = _overview(store, revision(store, "grids", plan_id))
    if prefix:
        rest = 15 - len(prefix)
        lo, hi = int(prefix + "0" * rest), int(prefix + "9" * rest)
        geoms = geoms[(ids >= lo) & (ids <= hi)]
    if not len(geoms):
        return None
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    (lon0, lon1), (lat0, lat1) = _TO_LONLAT.transform([x0, x1], [y0, y1])
    return float(lon0), float(lat0), float(lon1), float(lat1)


def warm(store: Store, *, min_grids: int, max_tiles: int = 64, stop: threading.Event | None = None) -> int:
    """Fill the cache with the grid tiles of the plan in force that a province map opens on:
    every zoom whose tiles over the plan's extent number at most ``max_tiles`` (on SQLite
    the layer is read and simplified on the way). Only with more than ``min_grids`` grids
    (the maps draw fewer inline); ``stop`` set ends it early. Returns the tiles made."""
    plan = store.plan_in_force()
    if plan is None:
        return 0
    with store.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM grids WHERE plan_id = :p"), {"p": plan["id"]}).scalar()
    if n <= min_grids:
        return 0
    bounds = grid_bounds(store, int(plan["id"]))
    if bounds is None:
        return 0
    (x0, x1), (y0, y1) = _mercator(np.array([[bounds[0], bounds[1]], [bounds[2], bounds[3]]])).T
    made, at = 0, revision(store, "grids", int(plan["id"]))
    for z in range(DETAIL_ZOOM):
        size = 2 * HALF / 2**z
        tx = range(int((x0 + HALF) // size), int((x1 + HALF) // size) + 1)
        ty = range(int((HALF - y1) // size), int((HALF - y0) // size) + 1)
        if len(tx) * len(ty) > max_tiles:
            break
        for x in tx:
            for y in ty:
                if stop is not None and stop.is_set():
                    return made
                render_tile(store, "grids", z, x, y, at=at)
                made += 1
    return made


def _plan_id(store: Store, layer: str, plan) -> int | None:
    if layer != "grids":
        return None
    p = store.plan(plan) if plan is not None else store.plan_in_force()
    if p is None:
        raise NotFound("no plan is in force: there are no grids to tile")
    return int(p["id"])


#: The audit lines that change a layer's tiles: an import of the layer's table (a line with
#: no entity id; a check-in is a ``grids`` line with the grid's code) and, for grids, every
#: line of the plan (draft, edit, undo, publish).
_REVISION_SQL = {
    "grids": ("SELECT max(id) FROM audit_log WHERE (entity = 'plans' AND entity_id = :plan) "
              "OR (entity = 'grids' AND entity_id IS NULL)"),
    "roads": "SELECT max(id) FROM audit_log WHERE entity = 'roads' AND entity_id IS NULL",
    "villages": "SELECT max(id) FROM audit_log WHERE entity = 'divisions' AND entity_id IS NULL",
}


def revision(store: Store, layer: str, plan=None) -> tuple[int | None, int]:
    """``(plan id, revision)`` of ``layer``'s tiles (the plan: grids only; the plan in force
    or ``plan``): the revision is the last audit line that changed the layer, so it grows
    with every import of it and every edit of the plan, and tiles made before are not
    served again (nor, through the answer's ETag, kept by a browser)."""
    if layer not in LAYERS:
        raise InvalidTile(f"no tile layer {layer[:40]!r}: use one of {', '.join(LAYERS)}")
    plan_id = _plan_id(store, layer, plan)
    with store.engine.connect() as conn:
        rev = conn.execute(text(_REVISION_SQL[layer]), {"plan": str(plan_id)}).scalar()
    return plan_id, int(rev or 0)


def render_tile(store: Store, layer: str, z: int, x: int, y: int, *, plan=None,
                at: tuple[int | None, int] | None = None) -> bytes:
    """The MVT tile ``z/x/y`` of ``layer`` (see the module notes), from the cache if there.
    ``at``: the layer's :func:`revision`, if the caller has it already."""
    bounds = tile_bounds(z, x, y)
    plan_id, rev = at if at is not None else revision(store, layer, plan)
    key = (store.url, layer, plan_id, rev, z, x, y)
    cached = CACHE.get(key)
    if cached is not None:
        return cached
    if layer == "grids" and (z < OVERVIEW_ZOOM or (z < DETAIL_ZOOM and store.dialect != "postgresql")):
        data = _encode_overview(store, (plan_id, rev), z, bounds)
    elif store.dialect == "postgresql":
        data = _postgis(store, layer, plan_id, z, x, y)
    else:
        data = _encode(store, layer, (plan_id, rev), z, bounds)
    CACHE.put(key, data)
    return data


# -- PostgreSQL: PostGIS encodes ---------------------------------------------------------

_SOURCES = {
    "grids": ("grids", "plan_id = :plan"),
    "roads": ("roads", "TRUE"),
    "villages": ("divisions", "level IN ('village', 'community') AND geometry IS NOT NULL"),
}


def _postgis(store: Store, layer: str, plan_id, z: int, x: int, y: int) -> bytes:
    table, where = _SOURCES[layer]
    where = where.replace('plan_id', 't.plan_id')
    if layer == "grids" and z < DETAIL_ZOOM:
        # light: the code as the feature id, simplified to LIGHT_UNITS, the smallest as squares
        unit = 2 * HALF / 2**z / EXTENT
        sql = text(f"""
            WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env,
                              ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}), 4326) AS box)
            SELECT ST_AsMVT(q, :layer, {EXTENT}, 'geom', 'id') FROM (
                SELECT g.id, ST_AsMVTGeom(
                    CASE WHEN greatest(ST_XMax(g.m) - ST_XMin(g.m), ST_YMax(g.m) - ST_YMin(g.m)) < :small
                         THEN ST_Expand(ST_PointOnSurface(g.m), :half)
                         ELSE ST_Simplify(g.m, :tol, true) END,
                    b.env, {EXTENT}, {BUFFER}, true) AS geom
                FROM (SELECT t.code::bigint AS id, ST_Transform(ST_Simplify(t.geometry, :deg, true), 3857) AS m
                      FROM {table} t, b WHERE {where} AND t.geometry && b.box) g, b
                ORDER BY g.id
            ) q WHERE q.geom IS NOT NULL
        """)
        # simplified first in degrees (half a unit: a degree is 111 km of Web Mercator or more),
        # so that a province's millions of vertices are not all projected
        params = {"tol": LIGHT_UNITS * unit, "small": MIN_UNITS * unit, "half": MIN_UNITS * unit / 2,
                  "deg": unit / 2 / 111_320}
    else:
        light = layer != "grids" and z < DETAIL_ZOOM
        cols = ", ".join(f"t.{c}" for c in (LIGHT_ATTRS[layer] if light else LAYERS[layer]))
        fid = ", t.code::bigint AS id" if layer == "grids" else ""
        geom = "ST_Transform(t.geometry, 3857)"
        params = {}
        if light:  # roads and villages zoomed out: simplified to a unit (in degrees first, as grids)
            unit = 2 * HALF / 2**z / EXTENT
            geom = "ST_Simplify(ST_Transform(ST_Simplify(t.geometry, :deg, true), 3857), :unit, true)"
            params = {"unit": LIGHT_UNITS * unit, "deg": unit / 2 / 111_320}
        sql = text(f"""
            WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env,
                              ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}), 4326) AS box)
            SELECT ST_AsMVT(q, :layer, {EXTENT}, 'geom'{", 'id'" if fid else ""}) FROM (
                SELECT {cols}{fid}, ST_AsMVTGeom({geom}, b.env, {EXTENT}, {BUFFER}, true) AS geom
                FROM {table} t, b
                WHERE {where} AND t.geometry && b.box
                ORDER BY t.code
            ) q WHERE q.geom IS NOT NULL
        """)
    with store.engine.connect() as conn:
        data = conn.execute(sql, {"z": z, "x": x, "y": y, "layer": layer, "plan": plan_id, **params}).scalar()
    return bytes(data or b"")


# -- SQLite: in memory, mapbox-vector-tile encodes ----------------------------------------

def _frame(store: Store, layer: str, at: tuple):
    """The layer in Web Mercator with an STRtree, held per store, layer, plan and revision
    (``at``: the plan id and the :func:`revision`)."""
    key = (store.url, layer, *at)
    with _FRAMES_LOCK:
        held = _FRAMES.get(key)
    if held is not None:
        return held
    return _build_once(key, lambda: _build_frame(store, layer, at[0]))


def _build_once(key, build):
    """``build()`` kept under ``key``, built by one thread: the first tiles of a map come
    together, so one reads the layer while the others wait, then finds it built."""
    with _BUILDING:
        with _FRAMES_LOCK:
            held = _FRAMES.get(key)
        if held is None:
            held = build()
            with _FRAMES_LOCK:
                # what was held for another revision of the same layer and plan is stale
                for old in [k for k in _FRAMES if k[:3] == key[:3] and k[3] != key[3]]:
                    del _FRAMES[old]
                _FRAMES[key] = held
    return held


def _build_frame(store: Store, layer: str, plan_id):
    cols = LAYERS[layer]
    if layer == "grids":
        sql, params = f"SELECT {', '.join(cols)}, geometry FROM grids WHERE plan_id = :plan", {"plan": plan_id}
    elif layer == "villages":
        sql, params = (f"SELECT {', '.join(cols)}, geometry FROM divisions WHERE level IN ('village', 'community') "
                       "AND geometry IS NOT NULL"), {}
    else:
        sql, params = f"SELECT {', '.join(cols)}, geometry FROM roads", {}
    if store.dialect == "postgresql":
        sql = sql.replace(", geometry FROM", ", ST_AsBinary(geometry) FROM")
    rows = store.tuples(sql + " ORDER BY code", params)
    frame = pd.DataFrame(rows, columns=[*cols, "geometry"])
    wkb = frame.pop("geometry").to_numpy(dtype=object)
    geoms = shapely.transform(shapely.from_wkb([bytes(w) if w is not None else None for w in wkb]) if len(wkb)
                              else np.array([], dtype=object), _mercator)
    props = frame.astype(object).where(frame.notna(), None)
    ids = pd.to_numeric(frame["code"], errors="coerce").fillna(0).astype(np.int64).to_numpy() \
        if layer == "grids" else None
    return geoms, shapely.STRtree(geoms), props, ids


def _level(store: Store, z: int) -> int:
    """The overview a light grid tile of zoom ``z`` is cut from (see :data:`OVERVIEW_ZOOM`)."""
    return OVERVIEW_ZOOM - 1 if z < OVERVIEW_ZOOM else DETAIL_ZOOM - 1


def _overview(store: Store, at: tuple, level: int = OVERVIEW_ZOOM - 1):
    """The plan's grids simplified once for the light tiles up to zoom ``level`` (in Web
    Mercator, with an STRtree and the codes as integers), held per store, plan, revision
    (``at``) and level."""
    key = (store.url, "overview", *at, level)
    with _FRAMES_LOCK:
        held = _FRAMES.get(key)
    if held is not None:
        return held
    if level < DETAIL_ZOOM - 1 and store.dialect != "postgresql":
        _overview(store, at, DETAIL_ZOOM - 1)  # the coarse one is made from the fine one
    return _build_once(key, lambda: _build_overview(store, at, level))


def _tolerance(level: int) -> float:
    """Half the simplification of a light tile of zoom ``level``, in Web Mercator metres: the
    overview's error and the tile's add up to at most :data:`LIGHT_UNITS` and a half."""
    return LIGHT_UNITS * 2 * HALF / 2**level / EXTENT / 2


def _build_overview(store: Store, at: tuple, level: int):
    plan_id = at[0]
    deg = _tolerance(level) / 111_320  # in degrees: a degree is 111 km of Web Mercator or more
    if store.dialect == "postgresql":  # simplified by PostGIS, next to the data
        rows = store.tuples("SELECT code, ST_AsBinary(ST_Simplify(geometry, :deg, true)) FROM grids "
                            "WHERE plan_id = :plan ORDER BY code", {"deg": deg, "plan": plan_id})
        geoms = shapely.from_wkb([bytes(r[1]) for r in rows]) if rows else np.array([], dtype=object)
        codes = [r[0] for r in rows]
    elif level < DETAIL_ZOOM - 1:  # SQLite: from the finer overview, already in memory
        fine, _, ids = _FRAMES[(store.url, "overview", *at, DETAIL_ZOOM - 1)]
        geoms = shapely.simplify(fine, _tolerance(level), preserve_topology=False)
        gone = shapely.is_empty(geoms) | shapely.is_missing(geoms)
        geoms[gone] = fine[gone]
        return geoms, shapely.STRtree(geoms), ids
    else:
        # read and simplified 10,000 grids at a time: the full geometry is never all in memory
        parts, codes = [np.array([], dtype=object)], []
        for rows in store.batches("SELECT code, geometry FROM grids WHERE plan_id = :plan ORDER BY code",
                                  {"plan": plan_id}, size=10_000):
            full = shapely.from_wkb([r[1] for r in rows])
            simple = shapely.simplify(full, deg, preserve_topology=False)
            gone = shapely.is_empty(simple) | shapely.is_missing(simple)
            simple[gone] = full[gone]  # a grid smaller than the tolerance keeps its outline (a square)
            parts.append(simple)
            codes += [r[0] for r in rows]
        geoms = np.concatenate(parts)
    geoms = shapely.transform(geoms, _mercator) if len(geoms) else geoms
    ids = pd.to_numeric(pd.Series(codes, dtype=object), errors="coerce").fillna(0).astype(np.int64).to_numpy()
    return geoms, shapely.STRtree(geoms), ids


def _overview_at(store: Store, at: tuple, z: int, hits: np.ndarray) -> np.ndarray:
    """The grids ``hits`` of the overview as light tiles of zoom ``z`` draw them. Below
    OVERVIEW_ZOOM all of them are made at once (every tile holds thousands; at zoom 5 and
    less, often all) and held per zoom."""
    geoms = _overview(store, at, _level(store, z))[0]
    if z >= OVERVIEW_ZOOM:
        return _light(geoms[hits], z)
    key = (store.url, "overview", *at, "z", z)
    with _FRAMES_LOCK:
        held = _FRAMES.get(key)
    if held is None:
        held = _light(geoms, z)
        with _FRAMES_LOCK:
            _FRAMES[key] = held
    return held[hits]


def _encode_overview(store: Store, at: tuple, z: int, bounds) -> bytes:
    """A light grid tile cut from the plan's overview (``at``: plan id and revision)."""
    _, tree, ids = _overview(store, at, _level(store, z))
    x0, y0, x1, y1 = bounds
    pad = (x1 - x0) * BUFFER / EXTENT
    hits = np.sort(tree.query(shapely.box(x0 - pad, y0 - pad, x1 + pad, y1 + pad), predicate="intersects"))
    if len(hits) == 0:
        return b""
    clipped = shapely.clip_by_rect(_overview_at(store, at, z, hits), x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    return encode_polygons("grids", clipped, ids[hits], bounds)


def _light(geoms: np.ndarray, z: int) -> np.ndarray:
    """The grids as light tiles at zoom ``z`` draw them (see :data:`DETAIL_ZOOM`): simplified
    to :data:`LIGHT_UNITS` tile units, the smallest as squares of :data:`MIN_UNITS` units."""
    unit = 2 * HALF / 2**z / EXTENT
    simple = shapely.simplify(geoms, LIGHT_UNITS * unit, preserve_topology=False)
    b = shapely.bounds(geoms)
    small = (np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) < MIN_UNITS * unit) | shapely.is_empty(simple)
    if small.any():
        p = shapely.point_on_surface(geoms[small])
        h = MIN_UNITS * unit / 2
        px, py = shapely.get_x(p), shapely.get_y(p)
        simple[small] = shapely.box(px - h, py - h, px + h, py + h)
    return simple


def _encode(store: Store, layer: str, at: tuple, z: int, bounds) -> bytes:
    import mapbox_vector_tile

    geoms, tree, props, ids = _frame(store, layer, at)
    x0, y0, x1, y1 = bounds
    pad = (x1 - x0) * BUFFER / EXTENT
    hits = np.sort(tree.query(shapely.box(x0 - pad, y0 - pad, x1 + pad, y1 + pad), predicate="intersects"))
    if len(hits) == 0:
        return b""
    if ids is not None and z < DETAIL_ZOOM:
        # the tile's grids simplified for it (the cost goes with the tile's grids, not the layer's)
        clipped = shapely.clip_by_rect(_light(geoms[hits], z), x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        return encode_polygons(layer, clipped, ids[hits], bounds)
    chosen = geoms[hits]
    if layer in LIGHT_ATTRS and z < DETAIL_ZOOM:  # roads and villages zoomed out: light
        chosen = shapely.simplify(chosen, LIGHT_UNITS * (x1 - x0) / EXTENT, preserve_topology=False)
        props = props[LIGHT_ATTRS[layer]]
    clipped = shapely.clip_by_rect(chosen, x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    keep = ~shapely.is_empty(clipped) & ~shapely.is_missing(clipped)
    rows = props.iloc[hits[keep]].to_dict(orient="records")  # the tile's features only
    features = [{"geometry": g, "properties": {k: v for k, v in row.items() if v is not None},
                 **({"id": int(ids[i])} if ids is not None else {})}
                for g, i, row in zip(clipped[keep], hits[keep], rows)]
    return mapbox_vector_tile.encode(
        [{"name": layer, "features": features}],
        default_options={"quantize_bounds": bounds, "extents": EXTENT})


# -- light tiles: grids below DETAIL_ZOOM, encoded with numpy ------------------------------

def _varints(values: np.ndarray) -> np.ndarray:
    """Protocol-buffer varints of non-negative integers (uint64), concatenated, as bytes."""
    v = np.asarray(values, dtype=np.uint64)
    n = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        n += v >= np.uint64(1 << (7 * k))
    ends = np.cumsum(n)
    out = np.empty(int(ends[-1]) if len(v) else 0, dtype=np.uint8)
    starts = ends - n
    for b in range(int(n.max()) if len(v) else 0):
        m = n > b
        byte = (v[m] >> np.uint64(7 * b)) & np.uint64(0x7F)
        out[starts[m] + b] = (byte | np.where(n[m] > b + 1, 0x80, 0).astype(np.uint64)).astype(np.uint8)
    return out


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.uint64)
    n = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        n += v >= np.uint64(1 << (7 * k))
    return n


def _zigzag(v: np.ndarray) -> np.ndarray:
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def encode_polygons(layer: str, geoms: np.ndarray, ids: np.ndarray, bounds, extent: int = EXTENT) -> bytes:
    """One MVT layer of polygons with feature ids and no attributes, encoded with numpy
    (no Python loop over features): ``geoms`` (Polygon/MultiPolygon, Web Mercator, already
    clipped to the buffered tile) are quantized to the tile's ``extent``; repeated points
    and rings that collapse are dropped (a polygon whose exterior collapses goes with its
    holes; a feature left with no ring is left out); exterior rings are written clockwise
    (positive area in tile coordinates, y down), holes anticlockwise, as the MVT 2.1
    specification has them."""
    x0, y0, x1, y1 = bounds
    parts, owner = shapely.get_parts(geoms, return_index=True)
    keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, owner = parts[keep], owner[keep]
    if not len(parts):
        return b""
    _, coords, (ring_off, poly_off) = shapely.to_ragged_array(parts)
    qx = np.rint((coords[:, 0] - x0) * (extent / (x1 - x0))).astype(np.int64)
    qy = np.rint((y1 - coords[:, 1]) * (extent / (y1 - y0))).astype(np.int64)
    n_rings = len(ring_off) - 1
    ring_of = np.repeat(np.arange(n_rings), np.diff(ring_off))
    poly_of_ring = np.repeat(np.arange(len(parts)), np.diff(poly_off))
    first_of_poly = np.zeros(n_rings, dtype=bool)
    first_of_poly[poly_off[:-1][np.diff(poly_off) > 0]] = True
    # drop each ring's closing point and points repeating the previous one
    last = np.zeros(len(qx), dtype=bool)
    last[ring_off[1:] - 1] = True
    same = np.zeros(len(qx), dtype=bool)
    same[1:] = (qx[1:] == qx[:-1]) & (qy[1:] == qy[:-1]) & (ring_of[1:] == ring_of[:-1])
    v = ~last & ~same
    qx, qy, ring_of = qx[v], qy[v], ring_of[v]
    count = np.bincount(ring_of, minlength=n_rings)
    # twice the signed area of each ring (surveyor's formula, tile coordinates)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    nxt = np.arange(len(qx)) + 1
    ends = start + count - 1
    nxt[ends[count > 0]] = start[count > 0]
    cross = qx * qy[nxt] - qx[nxt] * qy
    area2 = np.bincount(ring_of, weights=cross, minlength=n_rings)
    ok = (count >= 3) & (area2 != 0)
    poly_ok = np.zeros(len(parts), dtype=bool)
    poly_ok[poly_of_ring[first_of_poly & ok]] = True
    ok &= poly_ok[poly_of_ring]
    if not ok.any():
        return b""
    # orientation: exterior positive, holes negative; reverse the others
    flip = np.where(first_of_poly, area2 < 0, area2 > 0) & ok
    pos = np.arange(len(qx)) - start[ring_of]
    src = np.where(flip[ring_of], start[ring_of] + count[ring_of] - 1 - pos, np.arange(len(qx)))
    qx, qy = qx[src], qy[src]
    vk = ok[ring_of]
    qx, qy, ring_of, pos = qx[vk], qy[vk], ring_of[vk], pos[vk]
    rings = np.flatnonzero(ok)
    count = count[rings]
    feature_of_ring = owner[poly_of_ring[rings]]
    # deltas from the previous point of the feature (the first from 0, 0)
    feat_of_pt = np.repeat(feature_of_ring, count)
    dx = np.diff(qx, prepend=0)
    dy = np.diff(qy, prepend=0)
    newf = np.ones(len(qx), dtype=bool)
    newf[1:] = feat_of_pt[1:] != feat_of_pt[:-1]
    dx[newf] = qx[newf]
    dy[newf] = qy[newf]
    # commands: per ring MoveTo(1) x y, LineTo(n-1) ..., ClosePath: 2 n + 3 integers
    size = 2 * count + 3
    r_start = np.cumsum(size) - size
    cmd = np.empty(int(size.sum()), dtype=np.uint64)
    cmd[r_start] = 9
    cmd[r_start + 3] = 2 | ((count - 1) << 3)
    cmd[r_start + size - 1] = 15
    k = np.arange(len(qx)) - np.repeat(np.cumsum(count) - count, count)
    px = np.repeat(r_start, count) + 1 + 2 * k + (k > 0)
    cmd[px] = _zigzag(dx)
    cmd[px + 1] = _zigzag(dy)
    # features: [0x12 len] [0x08 id] [0x18 3] [0x22 len] geometry, as one varint stream
    feats, first_ring = np.unique(feature_of_ring, return_index=True)
    cmd_feat = np.repeat(feature_of_ring, size)
    glen = np.bincount(np.searchsorted(feats, cmd_feat), weights=_varint_sizes(cmd), minlength=len(feats)).astype(np.int64)
    fid = np.asarray(ids, dtype=np.uint64)[feats]
    flen = 1 + _varint_sizes(fid) + 2 + 1 + _varint_sizes(glen) + glen
    head = np.column_stack([np.full(len(feats), 0x12), flen, np.full(len(feats), 0x08), fid,
                            np.full(len(feats), 0x18), np.full(len(feats), 3), np.full(len(feats), 0x22),
                            glen]).astype(np.uint64)
    ncmd = np.bincount(np.searchsorted(feats, cmd_feat), minlength=len(feats))
    total = 8 * len(feats) + len(cmd)
    stream = np.empty(total, dtype=np.uint64)
    f_start = np.cumsum(8 + ncmd) - (8 + ncmd)
    stream[(f_start[:, None] + np.arange(8)).ravel()] = head.ravel()
    fpos = np.searchsorted(feats, cmd_feat)
    stream[np.arange(len(cmd)) + 8 * (fpos + 1)] = cmd
    body = _varints(stream).tobytes()
    name = layer.encode()
    layer_msg = (b"\x78\x02" + b"\x0a" + _varints(np.array([len(name)])).tobytes() + name + body
                 + b"\x28" + _varints(np.array([extent])).tobytes())
    return b"\x1a" + _varints(np.array([len(layer_msg)])).tobytes() + layer_msg
