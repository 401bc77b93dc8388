"""Tile archives on disk, served by gridgeo itself: an intranet base map with no tile server.

An MBTiles file (SQLite, the MBTiles 1.3 specification: ``tiles(zoom_level, tile_column,
tile_row, tile_data)`` with TMS rows, ``metadata(name, value)``) or a PMTiles 3 file, of
raster tiles (png, jpg, webp) or vector tiles (MVT, ``pbf``, as ``gridgeo map basemap``
writes them: :mod:`gridgeo.maps.basemap`), named by ``GRIDGEO_MAP_TILES``, is served at
``/maps/basemap/{z}/{x}/{y}`` and drawn under every map with ``GRIDGEO_MAP_BASEMAP=archive``
(vector tiles by protomaps-leaflet in the browser). Gzipped vector tiles are sent as they
are stored, with ``Content-Encoding: gzip``. The archive is opened read-only; nothing is
written to it.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from gridgeo.errors import InvalidInput, NotFound

__all__ = ["ArchiveError", "TileArchive", "open_archive", "MAX_ZOOM", "MEDIA_TYPES"]

#: The deepest zoom a tile may be asked for (2^24 tiles a side, a few metres a tile).
MAX_ZOOM = 24
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
               "pbf": "application/vnd.mapbox-vector-tile"}
#: PMTiles tile types (header ``tile_type``) -> MBTiles format names.
_PM_TYPES = {1: "pbf", 2: "png", 3: "jpg", 4: "webp"}


class ArchiveError(InvalidInput):
    """A tile archive that cannot be served (missing, not MBTiles or PMTiles, unknown tiles)."""

    status = 422
    code = "tile-archive-error"


@dataclass
class TileArchive:
    path: Path
    format: str
    min_zoom: int
    max_zoom: int
    attribution: str
    pmtiles: bool = False

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def vector(self) -> bool:
        return self.format == "pbf"

    def _reader(self):
        local = _LOCAL.__dict__.setdefault("readers", {})
        reader = local.get(self.path)
        if reader is None:
            import mmap

            from pmtiles.reader import Reader

            with open(self.path, "rb") as f:
                view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            reader = Reader(lambda offset, length: view[offset:offset + length])
            local[self.path] = reader
        return reader

    def _conn(self) -> sqlite3.Connection:
        local = _LOCAL.__dict__.setdefault("conns", {})
        conn = local.get(self.path)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=True)
            local[self.path] = conn
        return conn

    def tile(self, z: int, x: int, y: int) -> bytes:
        """The tile at ``z/x/y`` (XYZ numbering, rows from the north); for a vector archive,
        a tile absent within its zooms is empty (``b""``), as vector tiles leave out empty ones.

        Raises
        ------
        NotFound
            Outside the tile grid (z beyond 0..MAX_ZOOM, x or y beyond 0..2^z-1) or not in the archive
            (vector archives: beyond their zooms).
        """
        if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
            raise NotFound(f"no tile {z}/{x}/{y}: z is 0..{MAX_ZOOM}, x and y 0..2^z-1")
        if self.pmtiles:
            data = self._reader().get(z, x, y)
        else:
            row = self._conn().execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                (z, x, (1 << z) - 1 - y)).fetchone()
            data = None if row is None else row[0]
        if data is None:
            if self.vector and self.min_zoom <= z <= self.max_zoom:
                return b""  # nothing there: an empty vector tile, as /tiles answers
            raise NotFound(f"the base map has no tile {z}/{x}/{y}")
        return bytes(data)


_LOCAL = threading.local()


def _open_pmtiles(file: Path) -> TileArchive:
    from pmtiles.reader import Reader

    try:
        with open(file, "rb") as f:
            head = f.read(16384)
        if head[:7] != b"PMTiles" or head[7] != 3:
            raise ValueError("not a PMTiles 3 header")
        reader = Reader(lambda offset, length: head[offset:offset + length])
        header = reader.header()
        meta = reader.metadata() if header["metadata_offset"] + header["metadata_length"] <= len(head) else {}
    except Exception as exc:  # a damaged header: whatever the reader raised
        raise ArchiveError(f"{file.name} is not a PMTiles archive: {str(exc)[:200]}") from None
    fmt = _PM_TYPES.get(int(getattr(header["tile_type"], "value", header["tile_type"])))
    if fmt is None:
        raise ArchiveError(f"{file.name} holds tiles of unknown type {header['tile_type']}")
    if header["addressed_tiles_count"] == 0:
        raise ArchiveError(f"{file.name} holds no tile")
    return TileArchive(file.resolve(), fmt, int(header["min_zoom"]), int(header["max_zoom"]),
                       str(meta.get("attribution", "")), pmtiles=True)


@lru_cache(maxsize=8)
def open_archive(path: str) -> TileArchive:
    """Check and describe the MBTiles or PMTiles archive at ``path`` (cached per path)."""
    file = Path(path)
    if not file.is_file():
        raise ArchiveError(f"no tile archive at {path!r} (GRIDGEO_MAP_TILES)")
    if file.suffix.lower() == ".pmtiles":
        return _open_pmtiles(file)
    try:
        with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as conn:
            meta = dict(conn.execute("SELECT name, value FROM metadata").fetchall())
            zooms = conn.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ArchiveError(f"{file.name} is not an MBTiles archive: {exc}") from None
    fmt = str(meta.get("format", "png")).lower()
    if fmt not in MEDIA_TYPES:
        raise ArchiveError(f"{file.name} holds {fmt!r} tiles: png, jpg, webp or pbf (vector) tiles are drawn")
    if zooms[0] is None:
        raise ArchiveError(f"{file.name} holds no tile")
    return TileArchive(file.resolve(), fmt, int(zooms[0]), int(zooms[1]), str(meta.get("attribution", "")))
