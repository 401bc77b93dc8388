"""Vector tiles (Mapbox Vector Tile 2.1) of the public layers, for maps at province scale.

``render_tile(store, layer, z, x, y)`` gives the tile ``z/x/y`` (XYZ, Web Mercator) of:

- ``grids``: the grids of the plan in force (or ``plan``), with ``code``, ``name``,
  ``village_code``, ``households``, ``population``, ``buildings``: a map colours them from
  these attributes, so one tile set serves every map;
- ``roads``: roads and rivers with ``kind``, ``rank``, ``name``;
- ``villages``: village and community boundaries with ``code`` and ``name``.

On PostgreSQL PostGIS encodes the tile (``ST_AsMVT`` over ``ST_AsMVTGeom``, the tile's
envelope found by the spatial index); on SQLite the layer is held in memory in Web
Mercator with an STRtree (per plan), clipped with a 64-unit buffer and encoded by
mapbox-vector-tile. Both give the same features and attributes (the tests compare them).
Tiles are cached in the process (:class:`TileCache`, 64 MB, by store, layer, plan, z, x,
y): a new plan is a new key, but a change to the roads or villages shows in the tiles only
after :func:`clear_cache` or a restart.
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

__all__ = ["LAYERS", "MAX_ZOOM", "EXTENT", "BUFFER", "InvalidTile", "render_tile", "tile_bounds", "clear_cache",
           "CACHE"]

#: The deepest zoom served (a tile some 10 m across at 22).
MAX_ZOOM = 22
EXTENT = 4096
BUFFER = 64
HALF = 20037508.342789244  # half the Web Mercator world, metres
LAYERS = {
    "grids": ["code", "name", "village_code", "households", "population", "buildings"],
    "roads": ["code", "name", "kind", "rank"],
    "villages": ["code", "name"],
}


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
_TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)


def clear_cache() -> None:
    """Forget every cached tile and layer (after a change to the layers)."""
    CACHE.clear()
    with _FRAMES_LOCK:
        _FRAMES.clear()


def _plan_id(store: Store, layer: str, plan) -> int | None:
    if layer != "grids":
        return None
    p = store.plan(plan) if plan is not None else store.plan_in_force()
    if p is None:
        raise NotFound("no plan is in force: there are no grids to tile")
    return int(p["id"])


def render_tile(store: Store, layer: str, z: int, x: int, y: int, *, plan=None) -> bytes:
    """The MVT tile ``z/x/y`` of ``layer`` (see the module notes), from the cache if there."""
    if layer not in LAYERS:
        raise InvalidTile(f"no tile layer {layer[:40]!r}: use one of {', '.join(LAYERS)}")
    bounds = tile_bounds(z, x, y)
    plan_id = _plan_id(store, layer, plan)
    key = (store.url, layer, plan_id, z, x, y)
    cached = CACHE.get(key)
    if cached is not None:
        return cached
    if store.dialect == "postgresql":
        data = _postgis(store, layer, plan_id, z, x, y)
    else:
        data = _encode(store, layer, plan_id, bounds)
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
    cols = ", ".join(f"t.{c}" for c in LAYERS[layer])
    sql = text(f"""
        WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env,
                          ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}), 4326) AS box)
        SELECT ST_AsMVT(q, :layer, {EXTENT}, 'geom') FROM (
            SELECT {cols}, ST_AsMVTGeom(ST_Transform(t.geometry, 3857), b.env, {EXTENT}, {BUFFER}, true) AS geom
            FROM {table} t, b
            WHERE {where.replace('plan_id', 't.plan_id')} AND t.geometry && b.box
            ORDER BY t.code
        ) q WHERE q.geom IS NOT NULL
    """)
    with store.engine.connect() as conn:
        data = conn.execute(sql, {"z": z, "x": x, "y": y, "layer": layer, "plan": plan_id}).scalar()
    return bytes(data or b"")


# -- SQLite: in memory, mapbox-vector-tile encodes ----------------------------------------

def _frame(store: Store, layer: str, plan_id):
    """The layer in Web Mercator with an STRtree, held per store, layer and plan."""
    key = (store.url, layer, plan_id)
    with _FRAMES_LOCK:
        held = _FRAMES.get(key)
    if held is not None:
        return held
    if layer == "grids":
        frame = store.read("grids", plan=plan_id)
    elif layer == "villages":
        frame = store.read("divisions")
        frame = frame[frame["level"].isin(["village", "community"]).to_numpy() & frame.geometry.notna().to_numpy()]
    else:
        frame = store.read("roads")
    frame = frame.sort_values("code", kind="stable").reset_index(drop=True)
    geoms = shapely.transform(frame.geometry.to_numpy(), lambda xy: np.column_stack(
        _TO_MERCATOR.transform(xy[:, 0], xy[:, 1])))
    props = pd.DataFrame(frame[LAYERS[layer]]).astype(object).where(frame[LAYERS[layer]].notna(), None)
    held = (geoms, shapely.STRtree(geoms), props.to_dict(orient="records"))
    with _FRAMES_LOCK:
        _FRAMES[key] = held
    return held


def _encode(store: Store, layer: str, plan_id, bounds) -> bytes:
    import mapbox_vector_tile

    geoms, tree, props = _frame(store, layer, plan_id)
    x0, y0, x1, y1 = bounds
    pad = (x1 - x0) * BUFFER / EXTENT
    hits = np.sort(tree.query(shapely.box(x0 - pad, y0 - pad, x1 + pad, y1 + pad), predicate="intersects"))
    if len(hits) == 0:
        return b""
    clipped = shapely.clip_by_rect(geoms[hits], x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    keep = ~shapely.is_empty(clipped)
    features = [{"geometry": g, "properties": {k: v for k, v in props[i].items() if v is not None}}
                for g, i in zip(clipped[keep], hits[keep])]
    return mapbox_vector_tile.encode(
        [{"name": layer, "features": features}],
        default_options={"quantize_bounds": bounds, "extents": EXTENT})
