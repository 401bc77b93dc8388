"""Tile archives on disk, served by gridgeo itself: an intranet base map with no tile server.

An MBTiles file (SQLite, the MBTiles 1.3 specification: ``tiles(zoom_level, tile_column,
tile_row, tile_data)`` with TMS rows, ``metadata(name, value)``) of raster tiles (png,
jpg, webp), named by ``GRIDGEO_MAP_TILES``, is served at ``/maps/basemap/{z}/{x}/{y}``
and drawn under every map with ``GRIDGEO_MAP_BASEMAP=archive``. The archive is opened
read-only; nothing is written to it.
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
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


class ArchiveError(InvalidInput):
    """A tile archive that cannot be served (missing, not MBTiles, vector tiles)."""

    status = 422
    code = "tile-archive-error"


@dataclass
class TileArchive:
    path: Path
    format: str
    min_zoom: int
    max_zoom: int
    attribution: str

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    def _conn(self) -> sqlite3.Connection:
        local = _LOCAL.__dict__.setdefault("conns", {})
        conn = local.get(self.path)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=True)
            local[self.path] = conn
        return conn

    def tile(self, z: int, x: int, y: int) -> bytes:
        """The tile at ``z/x/y`` (XYZ numbering, rows from the north).

        Raises
        ------
        NotFound
            Outside the tile grid (z beyond 0..MAX_ZOOM, x or y beyond 0..2^z-1) or not in the archive.
        """
        if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
            raise NotFound(f"no tile {z}/{x}/{y}: z is 0..{MAX_ZOOM}, x and y 0..2^z-1")
        row = self._conn().execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, x, (1 << z) - 1 - y)).fetchone()
        if row is None:
            raise NotFound(f"the base map has no tile {z}/{x}/{y}")
        return bytes(row[0])


_LOCAL = threading.local()


@lru_cache(maxsize=8)
def open_archive(path: str) -> TileArchive:
    """Check and describe the MBTiles archive at ``path`` (cached per path)."""
    file = Path(path)
    if not file.is_file():
        raise ArchiveError(f"no tile archive at {path!r} (GRIDGEO_MAP_TILES)")
    try:
        with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as conn:
            meta = dict(conn.execute("SELECT name, value FROM metadata").fetchall())
            zooms = conn.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ArchiveError(f"{file.name} is not an MBTiles archive: {exc}") from None
    fmt = str(meta.get("format", "png")).lower()
    if fmt not in MEDIA_TYPES:
        raise ArchiveError(f"{file.name} holds {fmt!r} tiles: raster archives (png, jpg, webp) are drawn; "
                           "vector tiles are not yet")
    if zooms[0] is None:
        raise ArchiveError(f"{file.name} holds no tile")
    return TileArchive(file.resolve(), fmt, int(zooms[0]), int(zooms[1]), str(meta.get("attribution", "")))
