"""An offline vector base map of the jurisdiction, built from the store's own layers.

``gridgeo map basemap OUT.mbtiles`` (or ``OUT.pmtiles``) writes the store's roads, rivers
and village outlines (and, with ``--households``, the household points, no attribute) as
Mapbox Vector Tiles, so that a fresh install has a real base map with no download. GDAL's
MVT writer (through pyogrio) tiles each layer into its own MBTiles (each layer with its
zoom range); the tiles of the layers are then merged tile by tile (a vector tile is a
list of layers: the decoded tiles concatenated are one valid tile with every layer) into
one MBTiles 1.3 archive, converted to PMTiles 3 by the ``pmtiles`` package when the name
ends in ``.pmtiles``.

Served by ``gridgeo serve`` at ``/maps/basemap/{z}/{x}/{y}`` with ``GRIDGEO_MAP_BASEMAP=archive``
and ``GRIDGEO_MAP_TILES=OUT.mbtiles`` (:mod:`gridgeo.maps.archive`) and drawn in the browser
by protomaps-leaflet (vendored): layers ``roads`` (roads and rivers: ``kind``, ``rank``,
``name``, as ``/tiles/roads`` has them, so that one style draws both), ``villages``
(outlines: ``code``, ``name``) and ``households`` (zoom 14 on).

The archive is served to anyone who can open the maps (as ``/tiles``): households are
left out unless asked for, as the household register is read with a token only.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from gridgeo.errors import InvalidInput
from gridgeo.store import Store

__all__ = ["BasemapBuildError", "build_basemap", "LAYER_ZOOMS"]

#: Each layer's zoom range (the whole archive spans min_zoom..max_zoom, clipped to these).
LAYER_ZOOMS = {"villages": (0, 22), "roads": (0, 22), "households": (14, 22)}


class BasemapBuildError(InvalidInput):
    """A base map that cannot be built: bad zooms or output name, nothing to draw."""

    code = "basemap-build-error"


def _layers(store: Store, households: bool) -> dict[str, gpd.GeoDataFrame]:
    roads = store.read("roads")[["name", "kind", "rank", "geometry"]]
    div = store.read("divisions")
    div = div[div["level"].isin(["village", "community"]).to_numpy() & div.geometry.notna().to_numpy()]
    layers = {
        "villages": gpd.GeoDataFrame(div[["code", "name"]], geometry=div.geometry.boundary, crs=div.crs),
        "roads": roads,
    }
    if households:
        layers["households"] = store.read("households")[["geometry"]]
    return {name: frame.to_crs(4326) for name, frame in layers.items() if len(frame)}


def _merge(parts: dict[str, Path], out: Path, meta: dict[str, str]) -> int:
    """Merge per-layer MBTiles into ``out``: tile data decompressed, concatenated, gzipped."""
    tiles: dict[tuple[int, int, int], list[bytes]] = {}
    vector_layers = []
    for name, part in parts.items():
        with sqlite3.connect(part) as db:
            for z, x, y, data in db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles"):
                data = bytes(data)
                tiles.setdefault((z, x, y), []).append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
            row = db.execute("SELECT value FROM metadata WHERE name = 'json'").fetchone()
            if row:
                vector_layers += json.loads(row[0]).get("vector_layers", [])
    if not tiles:
        raise BasemapBuildError("the store's layers gave no tile: are roads and village boundaries loaded?")
    zooms = [z for z, _, _ in tiles]
    meta = {**meta, "format": "pbf", "type": "baselayer", "minzoom": str(min(zooms)), "maxzoom": str(max(zooms)),
            "json": json.dumps({"vector_layers": vector_layers}, ensure_ascii=False)}
    with sqlite3.connect(out) as db:
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
        db.execute("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
        db.executemany("INSERT INTO metadata VALUES (?, ?)", list(meta.items()))
        db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                       ((z, x, y, gzip.compress(b"".join(data), mtime=0)) for (z, x, y), data in tiles.items()))
    return len(tiles)


def build_basemap(store: Store, out: str | Path, *, min_zoom: int = 8, max_zoom: int = 16,
                  households: bool = False, name: str | None = None) -> dict:
    """Write the offline vector base map of ``store`` to ``out`` (``.mbtiles`` or ``.pmtiles``).

    Returns ``{"path", "tiles", "layers", "min_zoom", "max_zoom", "bytes"}``. An existing
    file is replaced only once the new one is complete.

    Raises
    ------
    BasemapBuildError
        Zooms outside 0..18 or reversed, another file extension, nothing to draw.
    """
    out = Path(out)
    kind = out.suffix.lower()
    if kind not in (".mbtiles", ".pmtiles"):
        raise BasemapBuildError(f"{out.name}: the base map is written as .mbtiles or .pmtiles")
    if not (0 <= min_zoom <= max_zoom <= 18):
        raise BasemapBuildError(f"zooms {min_zoom}..{max_zoom}: give 0 <= min_zoom <= max_zoom <= 18")
    layers = _layers(store, households)
    if not layers:
        raise BasemapBuildError("the store has no roads, rivers or village boundaries to draw")
    county = store.read("divisions")
    top = county[county["level"] == county["level"].iloc[0]] if len(county) else pd.DataFrame({"name": []})
    title = name or (f"{top['name'].iloc[0]}底图" if len(top) else "gridgeo 底图")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gridgeo-basemap-", dir=out.parent) as tmp:
        parts = {}
        for layer, frame in layers.items():
            lo, hi = LAYER_ZOOMS[layer]
            lo, hi = max(lo, min_zoom), min(hi, max_zoom)
            if lo > hi:
                continue
            part = Path(tmp) / f"{layer}.mbtiles"
            pyogrio.write_dataframe(frame, part, driver="MVT", layer=layer,
                                    dataset_options={"MINZOOM": lo, "MAXZOOM": hi, "NAME": layer, "FORMAT": "MBTILES"})
            parts[layer] = part
        merged = Path(tmp) / "merged.mbtiles"
        count = _merge(parts, merged, {"name": title, "description": "gridgeo: roads, rivers, villages",
                                       "attribution": "gridgeo 本地底图"})
        if kind == ".pmtiles":
            from pmtiles.convert import mbtiles_to_pmtiles

            final = Path(tmp) / "merged.pmtiles"
            mbtiles_to_pmtiles(str(merged), str(final), None)
        else:
            final = merged
        final.replace(out)
    return {"path": str(out), "tiles": count, "layers": list(parts), "min_zoom": min_zoom, "max_zoom": max_zoom,
            "bytes": out.stat().st_size}
