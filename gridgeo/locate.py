"""Point-in-grid lookup: which grid (网格) of a plan holds a point.

A :class:`Locator` is built from one grid layer (one plan version) and maps points to
grid codes. It keeps nothing but the geometry and the codes; attributes stay in the
store. The store builds one locator per plan and says which plan answered; the locator
echoes its ``plan`` label in every result.

Rules
-----
These are the answers users depend on. They hold for every entry point
(:meth:`Locator.locate`, :meth:`Locator.locate_detail`, :meth:`Locator.locate_one`,
:func:`locate_frame`) and are tested.

1. **Inside.** A point strictly inside one grid belongs to that grid. The test is exact:
   orientation signs are computed in floating point with a proven error bound and,
   where the bound cannot decide, in exact rational arithmetic. Never "close enough".
2. **Shared edges and vertices (half-open rule).** A point on an edge or vertex shared by
   several grids belongs to exactly one of them: the grid that contains the points
   immediately *east* of it; on an east-west edge, the grid immediately *north*.
   Formally the point is located as ``(lon + e, lat + d)`` with ``0 < d << e``
   infinitesimal, which lies inside exactly one grid of a partition. Because the
   arithmetic is exact this holds on sloping edges too, at T-junctions, and whatever
   order the vertices are stored in. ``geopandas.sjoin(predicate="within")`` gives such
   points no grid at all; ``"intersects"`` gives them several.
3. **Overlaps.** Where grids overlap (bad data), the grid with the smallest code wins.
   Codes are compared with Python's ``<``; they must be all strings or all integers.
4. **Outer edge.** A point on the boundary of a grid but with no grid east of it (the
   outer edge of the layer, or the edge of a gap) belongs to that grid, not snapped,
   at distance 0; if several grids touch it, the smallest code.
5. **Snapping.** A point outside every grid but within ``tolerance`` metres of one (50 m
   by default, ``<=``) is snapped to the nearest grid, flagged ``snapped`` with its
   distance in metres; equidistant grids go to the smallest code. Distances are
   measured in the CGCS2000 3-degree Gauss-Krüger zone of the layer's centre (EPSG:4534
   to 4554, central meridians 75E to 135E), an azimuthal equidistant projection
   for layers outside that range.
6. **Outside.** Farther away, the point is outside the plan's jurisdiction: ``None`` in
   arrays, :class:`~gridgeo.errors.OutsideJurisdiction` from :meth:`Locator.locate_one`
   (the API answers 404).
7. **Invalid input.** NaN, infinite, ``lon`` outside [-180, 180] or ``lat`` outside
   [-90, 90]: :meth:`Locator.locate_one` raises
   :class:`~gridgeo.errors.InvalidCoordinates`; arrays give ``None`` and flag the row
   ``invalid`` in :meth:`Locator.locate_detail`. A point outside China that would be in
   China with lon and lat swapped (:func:`gridgeo.crs.looks_swapped`) and is in no grid
   raises InvalidCoordinates from ``locate_one`` ("look swapped") and is flagged
   ``swapped`` in arrays.
8. **Coordinate systems.** Input in ``gcj02`` or ``bd09`` is converted to WGS84 with
   :func:`gridgeo.crs.convert` (iterated inverse, sub-millimetre) before the lookup;
   ``cgcs2000`` is treated as WGS84.

How it is fast
--------------
The layer's bounding box is cut into a coarse raster of about ``cells_per_grid`` cells
per grid. A cell that no edge touches lies inside one grid (or none) and answers by
integer arithmetic from a table. A cell an edge touches (a *block*) is cut into 4 x 4
sub-cells with a table of their own; untouched sub-cells answer from it too. The few
points left (about 4% of uniformly spread points) get the exact test: the block keeps
its candidate grids, smallest code first, and for each the grid's non-horizontal edges
in the block's row that reach the block from the east, or from the west when those are
fewer. A ray from the point over those edges alone crosses the grid's boundary as often,
modulo 2, as a ray to infinity, so the test is a handful of orientation signs. No Python
loop runs over points. Misses go to shapely STRtrees for the outer-edge and snapping
rules. The index saves to a numpy ``.npz`` file (no pickle) and loads in a fraction of a
second. About 64 MB and 2 s to build for 10,000 grids of 40 vertices.
"""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import shapely
from pyproj import CRS

from gridgeo import crs as _crs
from gridgeo.errors import (
    InvalidCoordinates,
    InvalidGeometry,
    InvalidInput,
    OutsideJurisdiction,
    UnknownCRS,
)

if TYPE_CHECKING:  # pandas and geopandas are imported where used: a locator loaded from its
    # file locates arrays without them (``gridgeo locate`` of a CSV starts without pandas)
    import geopandas as gpd
    import pandas as pd

__all__ = ["LocateResult", "Locator", "locate_frame", "metric_crs"]

#: Shewchuk's bound on the rounding error of a 2x2 orientation determinant computed in
#: double precision (``ccwerrboundA``): when ``|det|`` is at least this times
#: ``|l| + |r|`` its sign is right.
_ERRBOUND = (3.0 + 16.0 * 2.0**-53) * 2.0**-53
_SUB_SHIFT = 2
_SUB = 1 << _SUB_SHIFT  # sub-cells per block side; a power of two keeps the arithmetic exact
_SUB_MASK = _SUB - 1
_SUB2 = _SUB * _SUB
_NONE = -1  # table and sub-table: no grid
_HARD = -2  # sub-table: needs the exact test
_OVER = -3  # while building: more than one grid holds the point
_NO_GRID = np.iinfo(np.int32).max
_STEP = 1 << 18  # edges or blocks per build step, to bound memory
_BLOCK_STEP = 1 << 16  # blocks per build step
_PAINT_CELLS = 1 << 20  # fine cells painted per build step
_FORMAT = "gridgeo.locator"
_FORMAT_VERSION = 1
_ARRAYS = (
    "table",
    "sub",
    "cand_ptr",
    "cand_g",
    "tptr",
    "t_edge",
    "t_info",
    "ex0",
    "ey0",
    "ex1",
    "ey1",
)
_WGS84_NAMES = frozenset({"wgs84", "cgcs2000"})
_M_PER_DEG_LAT = 110_574.0  # the shortest degree of latitude (at the equator)
_M_PER_DEG_LON_EQ = 111_320.0


class LocateResult(NamedTuple):
    """The answer for one point.

    Attributes
    ----------
    code
        The grid's code.
    snapped : bool
        True when the point was outside every grid and snapped to the nearest one.
    distance_m : float
        0.0 inside (or on the edge of) a grid, the distance in metres when snapped.
    plan : str or None
        The plan version that answered (the locator's ``plan``).
    """

    code: Any
    snapped: bool
    distance_m: float
    plan: str | None


def metric_crs(lon: float, lat: float = 30.0) -> CRS:
    """The metric CRS gridgeo measures distances in, for data centred on ``lon, lat``.

    The CGCS2000 3-degree Gauss-Krüger zone whose central meridian is nearest to
    ``lon`` (EPSG:4534, CM 75E, to EPSG:4554, CM 135E); outside 73.5E-136.5E, an
    azimuthal equidistant projection centred on the point.
    """
    if _crs.GK_ZONES_LON[0] <= lon < _crs.GK_ZONES_LON[1]:
        return CRS.from_epsg(_crs.metric_epsg(lon))
    return CRS.from_proj4(f"+proj=aeqd +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m")


def _exact_left(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> bool:
    """Whether ``p`` is strictly left of the line ``a -> b``, in exact arithmetic."""
    f = Fraction
    fax, fay = f(ax), f(ay)
    return (f(bx) - fax) * (f(py) - fay) - (f(by) - fay) * (f(px) - fax) > 0


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted unique values (numpy's hash-based ``unique`` is slower on large int arrays)."""
    a = np.sort(a)
    if a.size:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def _ramp(counts: np.ndarray) -> np.ndarray:
    """``[0..counts[0]-1, 0..counts[1]-1, ...]`` without a Python loop."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


# -- building the index -------------------------------------------------------------
#
# Coordinates map to cells by ``fcol(x) = floor((x - x0) * invwf)`` (fine columns) and
# ``fcol(x) >> 2`` (coarse columns), rows likewise. Every path, the build, the vectorised
# lookup and the pure-Python one, uses exactly these float operations. They are monotone,
# which is what makes the per-row edge lists complete (an edge can only cross a point's
# row line if the point's row lies between its end points' rows), and the padded edge
# rasterisation conservative.


class _Frame:
    """The raster geometry: origin, fine cell size, coarse and fine dimensions."""

    def __init__(self, x0, y0, invwf, invhf, ncols, nrows):
        self.x0, self.y0 = float(x0), float(y0)
        self.invwf, self.invhf = float(invwf), float(invhf)
        self.wf, self.hf = 1.0 / self.invwf, 1.0 / self.invhf
        self.ncols, self.nrows = int(ncols), int(nrows)
        self.nfc, self.nfr = self.ncols * _SUB, self.nrows * _SUB

    def fcol(self, x):
        return np.floor((x - self.x0) * self.invwf)

    def frow(self, y):
        return np.floor((y - self.y0) * self.invhf)


def _layer_edges(geoms: np.ndarray):
    """Every ring edge of every grid: ``x1, y1, x2, y2, grid``, zero-length ones dropped."""
    parts, part_grid = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    i = np.flatnonzero(coord_ring[:-1] == coord_ring[1:])
    x1, y1, x2, y2 = coords[i, 0], coords[i, 1], coords[i + 1, 0], coords[i + 1, 1]
    grid = part_grid[ring_part[coord_ring[i]]].astype(np.int64)
    keep = (x1 != x2) | (y1 != y2)
    return x1[keep], y1[keep], x2[keep], y2[keep], grid[keep], coords


def _choose_frame(coords: np.ndarray, ngrid: int, cells_per_grid: int) -> _Frame:
    xmin, ymin = coords.min(axis=0)
    xmax, ymax = coords.max(axis=0)
    k = max(math.cos(math.radians((ymin + ymax) / 2.0)), 0.05)  # square cells on the ground
    target = min(max(cells_per_grid * ngrid, 64), 1 << 23)
    width, height = max(xmax - xmin, 1e-9), max(ymax - ymin, 1e-9)
    side = math.sqrt(width * k * height / target)
    w = max(side / k, width / 4096.0, 1e-9)
    h = max(side, height / 4096.0, 1e-9)
    invwf, invhf = _SUB / w, _SUB / h
    ncols = (int(math.floor((xmax - xmin) * invwf)) >> _SUB_SHIFT) + 1
    nrows = (int(math.floor((ymax - ymin) * invhf)) >> _SUB_SHIFT) + 1
    return _Frame(xmin, ymin, invwf, invhf, ncols, nrows)


def _cover(x1, y1, x2, y2, fr: _Frame, shift: int):
    """Yield ``(cell, edge)`` chunks: the cells of the raster ``shift`` levels coarser
    than the fine one (0: fine, ``_SUB_SHIFT``: coarse) that each edge may touch.

    Padded so that any point on an edge, wherever its cell is computed to be, is in a
    listed cell: a cell no edge touches lies entirely inside one face of the layer. Each
    edge is walked along its major axis, so the interpolated minor coordinate is off by
    no more than the rounding of the cell boundaries, far below the padding.
    """
    pad = max(1e-9, 1e-6 * min(fr.wf, fr.hf))
    step = _STEP >> (2 * (_SUB_SHIFT - shift))  # fine cells are many more per edge
    ncol = fr.nfc >> shift
    steep = np.abs(y2 - y1) > np.abs(x2 - x1)
    for swap in (False, True):
        which = np.flatnonzero(steep == swap)
        if swap:  # walk rows, then the columns each row slab holds
            u1, v1, u2, v2 = y1[which], x1[which], y2[which], x2[which]
            axes = (fr.y0, fr.invhf, fr.hf, fr.nfr, fr.x0, fr.invwf, fr.nfc)
        else:
            u1, v1, u2, v2 = x1[which], y1[which], x2[which], y2[which]
            axes = (fr.x0, fr.invwf, fr.wf, fr.nfc, fr.y0, fr.invhf, fr.nfr)
        for s in range(0, len(which), step):
            sl = slice(s, s + step)
            cu, cv, rep = _walk(u1[sl], v1[sl], u2[sl], v2[sl], *axes, shift, pad)
            cell = cu * ncol + cv if swap else cv * ncol + cu
            yield cell, which[s + rep]


def _walk(u1, v1, u2, v2, u0, invu, wu, nu, v0, invv, nv, shift, pad):
    """Cells ``(cu, cv)`` each segment may touch, walking along ``u`` (its major axis)."""
    scale = 1 << shift
    nu, nv = nu >> shift, nv >> shift
    ul, uh = np.minimum(u1, u2), np.maximum(u1, u2)
    c_lo = np.clip(np.floor((ul - pad - u0) * invu).astype(np.int64) >> shift, 0, nu - 1)
    c_hi = np.clip(np.floor((uh + pad - u0) * invu).astype(np.int64) >> shift, 0, nu - 1)
    nc = c_hi - c_lo + 1
    rep = np.repeat(np.arange(len(u1)), nc)
    cu = c_lo[rep] + _ramp(nc)
    lo, hi = ul[rep], uh[rep]
    du = (u2 - u1)[rep]  # never 0: u is the major axis of a segment of non-zero length
    ta = np.clip((np.clip(u0 + cu * (wu * scale) - pad, lo, hi) - u1[rep]) / du, 0.0, 1.0)
    tb = np.clip((np.clip(u0 + (cu + 1) * (wu * scale) + pad, lo, hi) - u1[rep]) / du, 0.0, 1.0)
    del lo, hi, du
    dv = (v2 - v1)[rep]
    va, vb = v1[rep] + ta * dv, v1[rep] + tb * dv
    del ta, tb, dv
    r_lo = np.clip(
        np.floor((np.minimum(va, vb) - pad - v0) * invv).astype(np.int64) >> shift, 0, nv - 1
    )
    r_hi = np.clip(
        np.floor((np.maximum(va, vb) + pad - v0) * invv).astype(np.int64) >> shift, 0, nv - 1
    )
    del va, vb
    nr = r_hi - r_lo + 1
    rep2 = np.repeat(np.arange(len(cu)), nr)
    return cu[rep2], r_lo[rep2] + _ramp(nr), rep[rep2]


def _intervals(ax, ay, bx, by, grid, fr: _Frame, yc: np.ndarray):
    """Runs of fine cell centres inside each grid, per fine row: ``row, grid, first, last``.

    Crossings of each fine row centre line, paired even-odd per grid (whole grids only).
    """
    r0 = np.clip(fr.frow(ay) - 1, 0, fr.nfr - 1).astype(np.int64)
    r1 = np.clip(fr.frow(by) + 1, 0, fr.nfr - 1).astype(np.int64)
    n = r1 - r0 + 1
    rep = np.repeat(np.arange(len(ay)), n)
    r = r0[rep] + _ramp(n)
    ycr = yc[r]
    ok = (ay[rep] <= ycr) & (ycr < by[rep])
    rep, r, ycr = rep[ok], r[ok], ycr[ok]
    xint = ax[rep] + (ycr - ay[rep]) * ((bx - ax) / (by - ay))[rep]
    g = grid[rep]
    del rep, ycr, ok
    order = np.lexsort((xint, r, g))
    xint, r, g = xint[order], r[order], g[order]
    if len(g) % 2 or np.any(g[0::2] != g[1::2]) or np.any(r[0::2] != r[1::2]):
        raise InvalidGeometry("a grid ring does not close")  # pragma: no cover
    cs = np.floor((xint[0::2] - fr.x0) * fr.invwf - 0.5) + 1
    ce = np.ceil((xint[1::2] - fr.x0) * fr.invwf - 0.5) - 1
    cs = np.clip(cs, 0, fr.nfc).astype(np.int64)
    ce = np.clip(ce, -1, fr.nfc - 1).astype(np.int64)
    r, g = r[0::2], g[0::2]
    ok = cs <= ce
    return r[ok], g[ok], cs[ok], ce[ok]


def _paint(ax, ay, bx, by, grid, fr: _Frame, blocks: np.ndarray):
    """Which grid holds each fine cell centre, by scanlines at fine row centres.

    Returns the label of sub-cell (0, 0) of every coarse cell and the labels of all
    sub-cells of ``blocks``: a grid index, ``_NONE``, or ``_OVER`` where grids overlap.
    Only centres away from every edge need be right; the others are re-tested exactly.
    """
    yc = fr.y0 + (np.arange(fr.nfr) + 0.5) * fr.hf
    parts = []
    # Edges come grouped by grid, so whole grids can be processed a slice at a time.
    cuts = _unique(np.searchsorted(grid, grid[:: _STEP >> 2], side="left"))
    for e0, e1 in zip(cuts, np.append(cuts[1:], len(grid))):
        parts.append(_intervals(ax[e0:e1], ay[e0:e1], bx[e0:e1], by[e0:e1], grid[e0:e1], fr, yc))
    r, g, cs, ce = (np.concatenate(v) for v in zip(*parts))
    del parts
    order = np.argsort(r, kind="stable")
    r, g, cs, ce = r[order], g[order], cs[order], ce[order]
    del order

    coarse = np.empty(fr.nrows * fr.ncols, dtype=np.int32)
    sub = np.empty((len(blocks), _SUB2), dtype=np.int32)
    width = fr.nfc + 1
    step = max(1, _PAINT_CELLS // (_SUB * width))  # coarse rows per step
    for R0 in range(0, fr.nrows, step):
        R1 = min(fr.nrows, R0 + step)
        i0, i1 = np.searchsorted(r, (R0 * _SUB, R1 * _SUB))
        rr = r[i0:i1] - R0 * _SUB
        lo, hi = rr * width + cs[i0:i1], rr * width + ce[i0:i1] + 1
        size = (R1 - R0) * _SUB * width
        cnt = np.zeros(size, dtype=np.int32)
        np.add.at(cnt, lo, 1)
        np.add.at(cnt, hi, -1)
        cnt = np.cumsum(cnt.reshape(-1, width), axis=1, dtype=np.int32)
        tot = np.zeros(size, dtype=np.int32)
        gp1 = (g[i0:i1] + 1).astype(np.int32)
        np.add.at(tot, lo, gp1)
        np.add.at(tot, hi, -gp1)
        tot = np.cumsum(tot.reshape(-1, width), axis=1, dtype=np.int32)
        lab = np.where(cnt == 1, tot - 1, np.where(cnt == 0, _NONE, _OVER))[:, : fr.nfc]
        del cnt, tot
        lab = lab.reshape(R1 - R0, _SUB, fr.ncols, _SUB).transpose(0, 2, 1, 3).reshape(-1, _SUB2)
        base = R0 * fr.ncols
        coarse[base : R1 * fr.ncols] = lab[:, 0]
        j0, j1 = np.searchsorted(blocks, (base, R1 * fr.ncols))
        sub[j0:j1] = lab[blocks[j0:j1] - base]
    return coarse, sub


def _holders(parts, part_grid, fr: _Frame, fine: np.ndarray):
    """Exact ``(i, grid)`` pairs: the grids whose closed polygon holds the centre of fine
    cell ``fine[i]``."""
    x = fr.x0 + (fine % fr.nfc + 0.5) * fr.wf
    y = fr.y0 + (fine // fr.nfc + 0.5) * fr.hf
    i, j = shapely.STRtree(parts).query(shapely.points(x, y), predicate="intersects")
    return i, part_grid[j].astype(np.int64)


def _min_per(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, _NO_GRID, dtype=np.int64)
    np.minimum.at(out, index, values)
    return out


def _build_index(geoms: np.ndarray, cells_per_grid: int) -> tuple[_Frame, dict[str, np.ndarray]]:
    """Build the lookup arrays for ``geoms`` (sorted by code: index order is code order)."""
    ngrid = len(geoms)
    x1, y1, x2, y2, grid, coords = _layer_edges(geoms)
    fr = _choose_frame(coords, ngrid, cells_per_grid)
    del coords
    parts, part_grid = shapely.get_parts(geoms, return_index=True)

    # 1. Coarse cells touched by edges (blocks) with the grids whose edges touch them,
    #    then a bitmap of the fine cells touched.
    touch = _unique(
        np.concatenate(
            [_unique(cell * ngrid + grid[e]) for cell, e in _cover(x1, y1, x2, y2, fr, _SUB_SHIFT)]
        )
    )
    blocks = _unique(touch // ngrid)
    nblock = len(blocks)
    fine = np.zeros(fr.nfr * fr.nfc, dtype=bool)
    for cell, _ in _cover(x1, y1, x2, y2, fr, 0):
        fine[cell] = True
    del cell
    rows, cols = blocks // fr.ncols, blocks % fr.ncols
    ramp = np.arange(_SUB)
    touched_sub = fine.reshape(fr.nrows, _SUB, fr.ncols, _SUB)[
        rows[:, None, None], ramp[None, :, None], cols[:, None, None], ramp[None, None, :]
    ].reshape(nblock, _SUB2)
    del fine, rows, cols

    # 2. Labels of the cells no edge touches, by scanlines.
    horiz = y1 == y2
    low = y1 <= y2
    ax = np.where(low, x1, x2)[~horiz]
    ay = np.where(low, y1, y2)[~horiz]
    bx = np.where(low, x2, x1)[~horiz]
    by = np.where(low, y2, y1)[~horiz]
    egrid = grid[~horiz]
    del x1, y1, x2, y2, grid, horiz, low
    coarse, sublab = _paint(ax, ay, bx, by, egrid, fr, blocks)

    # Overlapping grids (bad data): resolve those labels exactly; smallest code wins.
    extra = []
    over = np.flatnonzero(coarse == _OVER)
    over = over[~np.isin(over, blocks)]
    if over.size:
        fine = (over // fr.ncols) * _SUB * fr.nfc + (over % fr.ncols) * _SUB
        i, g = _holders(parts, part_grid, fr, fine)
        best = _min_per(i, g, len(over))
        coarse[over] = np.where(best == _NO_GRID, _NONE, best)
    ob, os_ = np.nonzero(sublab == _OVER)
    if ob.size:
        cell = blocks[ob]
        fine = (
            ((cell // fr.ncols) * _SUB + os_ // _SUB) * fr.nfc
            + (cell % fr.ncols) * _SUB
            + os_ % _SUB
        )
        i, g = _holders(parts, part_grid, fr, fine)
        best = _min_per(i, g, len(ob))
        sublab[ob, os_] = np.where(best == _NO_GRID, _NONE, best)
        extra.append(ob[i] * ngrid + g)

    # 3. The coarse table, with a border of _NONE so lookups clamp instead of testing.
    table = np.full((fr.nrows + 2, fr.ncols + 2), _NONE, dtype=np.int32)
    table[1:-1, 1:-1] = coarse.reshape(fr.nrows, fr.ncols)
    del coarse
    table[1 + blocks // fr.ncols, 1 + blocks % fr.ncols] = -2 - np.arange(nblock, dtype=np.int32)

    # 4. Candidates of each block, sorted by block then grid (smallest code first): grids
    #    with an edge in it and grids holding one of its sub-cell centres.
    keys = [np.searchsorted(blocks, touch // ngrid) * ngrid + touch % ngrid]
    del touch
    for b0 in range(0, nblock, _BLOCK_STEP):
        lab = sublab[b0 : b0 + _BLOCK_STEP]
        k = (np.arange(b0, b0 + len(lab), dtype=np.int64)[:, None] * ngrid + lab)[lab >= 0]
        keys.append(_unique(k))
    del lab, k
    cand = _unique(np.concatenate(keys + extra))
    del keys, extra
    cand_b, cand_g = cand // ngrid, cand % ngrid
    cand_ptr = np.searchsorted(cand_b, np.arange(nblock + 1))

    # 5. Sub-tables: the grid holding each untouched sub-cell (or _NONE); _HARD for the
    #    touched ones, which need the exact test.
    sub = np.where(touched_sub, _HARD, sublab).astype(np.int32)
    del sublab, touched_sub, cand

    # 6. Edge lists per (coarse row, grid), in two orders: east-most first and west-most
    #    first. The edges of a grid reaching a column from the east (or west) are then a
    #    prefix of its group; each candidate takes the shorter of the two.
    er0 = fr.frow(ay).astype(np.int64) >> _SUB_SHIFT
    er1 = fr.frow(by).astype(np.int64) >> _SUB_SHIFT
    cmin = fr.fcol(np.minimum(ax, bx)).astype(np.int64) >> _SUB_SHIFT
    cmax = fr.fcol(np.maximum(ax, bx)).astype(np.int64) >> _SUB_SHIFT
    n = er1 - er0 + 1
    edge = np.repeat(np.arange(len(ay), dtype=np.int32), n)
    gkey = (er0[edge] + _ramp(n)) * ngrid + egrid[edge]
    del er0, er1, n
    span = fr.ncols + 1
    key = gkey * span + (fr.ncols - cmax[edge])
    order = np.argsort(key, kind="stable")
    key_e = key[order]
    eref_e = edge[order]
    key = gkey * span + cmin[edge]
    del gkey, cmin, cmax
    order = np.argsort(key, kind="stable")
    key_w = key[order]
    eref_w = edge[order]
    del key, order, edge
    cell = blocks[cand_b]
    del cand_b
    ck = (cell // fr.ncols) * ngrid + cand_g
    c = cell % fr.ncols
    start = np.searchsorted(key_e, ck * span, side="left")
    n_e = np.searchsorted(key_e, ck * span + (fr.ncols - c), side="right") - start
    n_w = np.searchsorted(key_w, ck * span + c, side="right") - start
    del key_e, key_w, ck, cell, c
    west = n_w < n_e
    en = np.where(west, n_w, n_e)
    es = np.where(west, start + len(eref_e), start)
    eref = np.concatenate([eref_e, eref_w])
    del n_w, n_e, start, eref_e, eref_w
    # Flatten to one list per block of (edge, candidate slot * 2 + west) pairs.
    slot = np.arange(len(cand_g), dtype=np.int64) - np.repeat(cand_ptr[:-1], np.diff(cand_ptr))
    rep = np.repeat(np.arange(len(cand_g)), en)
    t_edge = eref[es[rep] + _ramp(en)]
    t_info = (slot * 2 + west)[rep].astype(np.int32)
    tstart = np.concatenate(([0], np.cumsum(en)))
    del rep, eref, es, slot, west
    arrays = {
        "table": table.ravel(),
        "sub": sub.ravel(),
        "cand_ptr": cand_ptr.astype(np.int32),
        "cand_g": cand_g.astype(np.int32),
        "tptr": tstart[cand_ptr].astype(np.int64),
        "t_edge": t_edge,
        "t_info": t_info,
        "ex0": ax,
        "ey0": ay,
        "ex1": bx,
        "ey1": by,
    }
    return fr, arrays


class Locator:
    """Maps points to the codes of the grids that hold them (see the module rules).

    Build one with :meth:`from_frame` or :meth:`load`; the constructor is private.

    Attributes
    ----------
    plan : str or None
        The plan version label echoed in results.
    tolerance : float
        Snapping distance in metres.
    codes : numpy.ndarray
        The grid codes, sorted (object dtype). One entry per input row.
    metric_crs : pyproj.CRS
        The CRS distances are measured in.
    """

    __slots__ = (
        "plan",
        "tolerance",
        "codes",
        "metric_crs",
        "_codes_ext",
        "_geoms",
        "_part_grid",
        "_tree_ll",
        "_tree_m",
        "_to_metric",
        "_near_box",
        "_fr",
        "_a",
        "_x0",
        "_y0",
        "_invwf",
        "_invhf",
        "_nfc",
        "_nfr",
        "_stride",
        "_mv",
        "_inside",
    )

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_frame(
        cls,
        grids: gpd.GeoDataFrame,
        code: str = "code",
        *,
        plan: str | None = None,
        tolerance: float = 50.0,
        cells_per_grid: int = 256,
    ) -> Locator:
        """Build a locator from a grid layer.

        Parameters
        ----------
        grids : geopandas.GeoDataFrame
            One row per grid, Polygon or MultiPolygon geometry, valid and non-empty.
            In EPSG:4326 lon/lat (EPSG:4490 is taken as is); another CRS is reprojected.
            Several rows may share a code (the parts of one grid).
        code : str
            The column holding the grid codes (strings or integers, no nulls). Other
            columns are ignored.
        plan : str, optional
            The plan version label echoed in every result.
        tolerance : float
            Snapping distance in metres (rule 5); 0 turns snapping off.
        cells_per_grid : int
            Coarse raster cells per grid (each boundary cell is cut in 16 more), a
            speed/memory trade-off that never changes an answer. The default gives an
            index of about 64 MB for 10,000 grids, with about 4% of uniformly spread
            points needing the exact test.

        Returns
        -------
        Locator

        Raises
        ------
        UnknownCRS
            If the layer has no CRS.
        InvalidGeometry
            If a geometry is missing, empty, not polygonal or not valid.
        InvalidInput
            If the code column is missing, has nulls, or mixes types.
        """
        if grids.crs is None:
            raise UnknownCRS("the grid layer has no CRS: set it (EPSG:4326 for lon/lat)")
        if code not in grids.columns:
            raise InvalidInput(f"the grid layer has no column {code!r}")
        if not (tolerance >= 0 and math.isfinite(tolerance)):
            raise InvalidInput(f"tolerance must be a finite number >= 0, not {tolerance!r}")
        if cells_per_grid < 1:
            raise InvalidInput(f"cells_per_grid must be >= 1, not {cells_per_grid!r}")
        if grids.crs.to_epsg() not in (4326, 4490):
            grids = grids.to_crs(4326)
        geoms = np.asarray(grids.geometry.array, dtype=object)
        codes = grids[code].to_numpy(dtype=object)
        _check_layer(geoms, codes)
        order = np.array(sorted(range(len(codes)), key=codes.__getitem__), dtype=np.int64)
        self = cls.__new__(cls)
        self.plan = plan
        self.tolerance = float(tolerance)
        self.codes = codes[order]
        self._geoms = geoms[order]
        self._fr, self._a = _build_index(self._geoms, cells_per_grid)
        self._finish()
        return self

    def _finish(self) -> None:
        """Derived state: lookup views, result cache, trees and the metric CRS."""
        fr = self._fr
        self._x0, self._y0, self._invwf, self._invhf = fr.x0, fr.y0, fr.invwf, fr.invhf
        self._nfc, self._nfr = fr.nfc, fr.nfr
        self._stride = fr.ncols + 2
        self._codes_ext = np.empty(len(self.codes) + 1, dtype=object)
        self._codes_ext[:-1] = self.codes
        self._codes_ext[-1] = None  # index -1 -> None
        # memoryviews index to Python int/float in ~30 ns: locate_one's fast path
        self._mv = tuple(memoryview(self._a[name]) for name in _ARRAYS)
        self._inside = [LocateResult(c, False, 0.0, self.plan) for c in self.codes]
        parts, part_grid = shapely.get_parts(self._geoms, return_index=True)
        self._part_grid = part_grid
        self._tree_ll = shapely.STRtree(parts)
        xmin, ymin, xmax, ymax = shapely.total_bounds(parts)
        self.metric_crs = metric_crs((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)
        epsg = self.metric_crs.to_epsg() if self.metric_crs.srs.startswith("EPSG:") else None
        self._to_metric = _crs.to_metric(epsg if epsg is not None else self.metric_crs.srs)
        to_m = self._to_metric

        def project(xy):
            return np.column_stack(to_m.transform(xy[:, 0], xy[:, 1]))

        self._tree_m = shapely.STRtree(shapely.transform(parts, project))
        # degrees that surely exceed the tolerance, for a cheap "far away" test
        dlat = self.tolerance / _M_PER_DEG_LAT * 1.01 + 1e-9
        far_lat = min(max(abs(ymin), abs(ymax)) + dlat, 89.0)
        dlon = self.tolerance / (_M_PER_DEG_LON_EQ * math.cos(math.radians(far_lat))) * 1.01 + 1e-9
        self._near_box = (xmin - dlon, ymin - dlat, xmax + dlon, ymax + dlat)

    # -- persistence ----------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path``: a numpy ``.npz`` file, arrays, WKB and JSON, no pickle.

        Codes must be strings or integers (they go into JSON). Load with :meth:`load`.
        """
        codes = [c.item() if isinstance(c, np.generic) else c for c in self.codes]
        if not all(isinstance(c, (str, int)) for c in codes):
            raise InvalidInput("only string or integer grid codes can be saved")
        fr = self._fr
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "plan": self.plan,
            "tolerance": self.tolerance,
            "sub": _SUB,
            "ncols": fr.ncols,
            "nrows": fr.nrows,
            "codes": codes,
        }
        wkb = shapely.to_wkb(self._geoms)
        sizes = np.fromiter((len(b) for b in wkb), dtype=np.int64, count=len(wkb))
        # written aside and renamed, so a worker never loads half a file
        tmp = f"{os.fspath(path)}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    meta=np.array(json.dumps(meta, ensure_ascii=False)),
                    frame=np.array([fr.x0, fr.y0, fr.invwf, fr.invhf]),
                    wkb=np.frombuffer(b"".join(wkb), dtype=np.uint8),
                    wkb_offsets=np.concatenate([[0], np.cumsum(sizes)]),
                    **self._a,
                )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Locator:
        """Read an index written by :meth:`save`. Answers are identical to the original's.

        Raises
        ------
        InvalidInput
            If the file is not a locator index of this version.
        """
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if (
                meta.get("format") != _FORMAT
                or meta.get("version") != _FORMAT_VERSION
                or meta.get("sub") != _SUB
            ):
                raise InvalidInput(
                    f"{path}: not a gridgeo locator index of version {_FORMAT_VERSION}"
                )
            self = cls.__new__(cls)
            self.plan = meta["plan"]
            self.tolerance = float(meta["tolerance"])
            codes = np.empty(len(meta["codes"]), dtype=object)
            codes[:] = meta["codes"]
            self.codes = codes
            x0, y0, invwf, invhf = (float(v) for v in z["frame"])
            self._fr = _Frame(x0, y0, invwf, invhf, meta["ncols"], meta["nrows"])
            blob = z["wkb"].tobytes()
            off = z["wkb_offsets"].tolist()
            self._geoms = shapely.from_wkb(
                np.array([blob[off[i] : off[i + 1]] for i in range(len(off) - 1)], dtype=object)
            )
            self._a = {name: np.ascontiguousarray(z[name]) for name in _ARRAYS}
        self._finish()
        return self

    def __getstate__(self) -> dict:
        # pickling (e.g. to worker processes) carries the arrays; views and trees are rebuilt
        fr = self._fr
        return {
            "plan": self.plan,
            "tolerance": self.tolerance,
            "codes": self.codes,
            "wkb": shapely.to_wkb(self._geoms),
            "frame": (fr.x0, fr.y0, fr.invwf, fr.invhf, fr.ncols, fr.nrows),
            "arrays": self._a,
        }

    def __setstate__(self, state: dict) -> None:
        self.plan = state["plan"]
        self.tolerance = state["tolerance"]
        self.codes = state["codes"]
        self._geoms = shapely.from_wkb(state["wkb"])
        self._fr = _Frame(*state["frame"])
        self._a = state["arrays"]
        self._finish()

    # -- lookups --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        fr = self._fr
        return (
            f"<Locator plan={self.plan!r} grids={len(self.codes)} tolerance={self.tolerance:g} m "
            f"cells={fr.ncols}x{fr.nrows} blocks={len(self._a['cand_ptr']) - 1}>"
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the lookup arrays (geometry and trees not included)."""
        return sum(a.nbytes for a in self._a.values())

    def locate(self, lon, lat, crs: str = "wgs84") -> np.ndarray:
        """Grid codes of many points: the fast path.

        Parameters
        ----------
        lon, lat : array_like
            Coordinates in degrees, same shape (or broadcastable).
        crs : str
            ``"wgs84"`` (default), ``"cgcs2000"``, ``"gcj02"`` or ``"bd09"`` (aliases
            accepted, see :func:`gridgeo.crs.normalize_name`).

        Returns
        -------
        numpy.ndarray
            Object array of codes, ``None`` where no grid (outside, or invalid input).
            Snapped points (rule 5) get the code of the grid they snap to.
        """
        x, y = self._prepare(lon, lat, crs)
        g, _, _ = self._run(x.ravel(), y.ravel())
        return self._codes_ext[g].reshape(x.shape)

    def locate_detail(self, lon, lat, crs: str = "wgs84") -> pd.DataFrame:
        """Grid codes of many points, with how each was found.

        Parameters
        ----------
        lon, lat, crs
            As in :meth:`locate`.

        Returns
        -------
        pandas.DataFrame
            One row per point (the index of ``lon`` if it is a Series), columns

            ``code``
                The grid code, None where no grid (object dtype).
            ``snapped`` (bool)
                Outside every grid, snapped to the nearest within the tolerance.
            ``distance_m`` (float)
                0 inside, metres when snapped, NaN when no grid.
            ``outside`` (bool)
                No grid (``code`` is None), whatever the reason.
            ``invalid`` (bool)
                NaN, infinite or out-of-range coordinates.
            ``swapped`` (bool)
                In no grid, and lon/lat look swapped (:func:`gridgeo.crs.looks_swapped`).

            ``attrs["plan"]`` holds the plan label.
        """
        import pandas as pd

        index = lon.index if isinstance(lon, pd.Series) else None
        found = self.locate_index(lon, lat, crs)
        g = found.pop("index")
        if index is None:
            index = pd.RangeIndex(len(g))
        out = pd.DataFrame({"code": pd.Series(self._codes_ext[g], dtype=object, index=index), **found},
                           index=index)
        out.attrs["plan"] = self.plan
        return out

    def locate_index(self, lon, lat, crs: str = "wgs84") -> dict[str, np.ndarray]:
        """:meth:`locate_detail` as arrays, the grid as its position in :attr:`codes`.

        For joins by array indexing (``directory[index]``) instead of by code.

        Returns
        -------
        dict of numpy.ndarray
            ``index`` (int64: the grid's position in :attr:`codes`, -1 where no grid),
            ``snapped``, ``distance_m``, ``outside``, ``invalid``, ``swapped`` as in
            :meth:`locate_detail`; flattened.
        """
        x, y = self._prepare(lon, lat, crs)
        x, y = x.ravel(), y.ravel()
        g, dist, snapped = self._run(x, y, detail=True)
        outside = g < 0
        invalid = np.zeros(len(x), dtype=bool)
        swapped = np.zeros(len(x), dtype=bool)
        miss = np.flatnonzero(outside)
        if miss.size:
            mx, my = x[miss], y[miss]
            invalid[miss] = ~_crs.lonlat_valid(mx, my)
            swapped[miss] = _crs.looks_swapped(mx, my)
        return {"index": g.astype(np.int64, copy=False), "snapped": snapped, "distance_m": dist,
                "outside": outside, "invalid": invalid, "swapped": swapped}

    def locate_one(self, lon: float, lat: float, crs: str = "wgs84") -> LocateResult:
        """The grid of one point, in pure Python on the common path (about a microsecond).

        Parameters
        ----------
        lon, lat : float
            Coordinates in degrees.
        crs : str
            As in :meth:`locate`.

        Returns
        -------
        LocateResult
            ``(code, snapped, distance_m, plan)``.

        Raises
        ------
        InvalidCoordinates
            NaN, infinite or out-of-range coordinates, or lon/lat that look swapped.
        OutsideJurisdiction
            No grid holds the point and none is within the tolerance.
        UnknownCRS
            Unknown ``crs`` name.
        """
        try:
            x = float(lon)
            y = float(lat)
        except (TypeError, ValueError):
            raise InvalidCoordinates(
                f"coordinates must be numbers, not ({lon!r}, {lat!r})"
            ) from None
        if not _crs.lonlat_ok(x, y):
            raise InvalidCoordinates(_crs.invalid_lonlat_message(x, y))
        if crs != "wgs84":
            name = _crs.normalize_name(crs)
            if name not in _WGS84_NAMES:
                cx, cy = _crs.to_wgs84(x, y, name)
                x, y = float(cx), float(cy)
        g = self._find_one(x, y)
        if g >= 0:
            return self._inside[g]
        if bool(_crs.looks_swapped(x, y)):
            raise InvalidCoordinates(
                f"lon={x!r}, lat={y!r} is outside China but would be inside with lon and lat "
                "swapped: the coordinates look swapped (give lon first)"
            )
        gs, dist, snapped = self._resolve_misses(np.array([x]), np.array([y]))
        if gs[0] < 0:
            raise OutsideJurisdiction(
                f"no grid of plan {self.plan!r} holds lon={x!r}, lat={y!r} "
                f"or lies within {self.tolerance:g} m of it"
            )
        return LocateResult(self.codes[gs[0]], bool(snapped[0]), float(dist[0]), self.plan)

    # -- internals ------------------------------------------------------------------

    def _prepare(self, lon, lat, crs: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        if x.shape != y.shape:
            x, y = np.broadcast_arrays(x, y)
        name = _crs.normalize_name(crs)
        if name not in _WGS84_NAMES:
            x, y = _crs.to_wgs84(x, y, name)
        return x, y

    def _run(self, x: np.ndarray, y: np.ndarray, detail: bool = False):
        """Grid index (-1 for none) of each point, with distances and snapped flags."""
        g = self._lookup(x, y)
        dist = snapped = None
        if detail:
            dist = np.where(g >= 0, 0.0, np.nan)
            snapped = np.zeros(len(x), dtype=bool)
        miss = np.flatnonzero(g < 0)
        if miss.size:
            mg, md, ms = self._resolve_misses(x[miss], y[miss])
            g[miss] = mg
            if detail:
                dist[miss] = md
                snapped[miss] = ms
        return g, dist, snapped

    def _lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Grid index of each point by rules 1-3 (-1 where none), vectorised.

        Written for speed: in-place operations, buffers reused, ``np.take``.
        """
        # floor(v / 4) == floor(floor(v) / 4): the coarse cell, without the fine floor
        cx = np.subtract(x, self._x0)
        cx *= self._invwf  # the fine column is floor(cx)
        np.fmax(cx, -_SUB, out=cx)  # fmax/fmin also send NaN to the border
        np.fmin(cx, self._nfc, out=cx)
        cx *= 1.0 / _SUB
        np.floor(cx, out=cx)
        cy = np.subtract(y, self._y0)
        cy *= self._invhf
        np.fmax(cy, -_SUB, out=cy)
        np.fmin(cy, self._nfr, out=cy)
        cy *= 1.0 / _SUB
        np.floor(cy, out=cy)
        cy *= self._stride
        cy += cx
        cy += self._stride + 1  # the border
        idx = cx.view(np.intp)
        np.copyto(idx, cy, casting="unsafe")
        del cy
        g = np.take(self._a["table"], idx)
        del idx, cx
        blk = np.flatnonzero(g < _NONE)
        if not blk.size:
            return g
        b = np.take(g, blk).astype(np.intp)
        np.subtract(-2, b, out=b)
        xb, yb = np.take(x, blk), np.take(y, blk)
        sx = np.floor((xb - self._x0) * self._invwf).astype(np.intp)  # fine column
        sy = np.floor((yb - self._y0) * self._invhf).astype(np.intp)
        sx &= _SUB_MASK
        sy &= _SUB_MASK
        sy <<= _SUB_SHIFT
        sy |= sx
        sy += b * _SUB2
        gb = np.take(self._a["sub"], sy)
        g[blk] = gb
        hard = np.flatnonzero(gb == _HARD)
        if hard.size:
            g[np.take(blk, hard)] = self._exact(
                np.take(xb, hard), np.take(yb, hard), np.take(b, hard)
            )
        return g

    def _paths(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """How :meth:`_lookup` answers each point: 0 table, 1 sub-table, 2 exact test.

        For tuning and benchmarks; off-table points count as 0.
        """
        fx = np.clip(np.floor((x - self._x0) * self._invwf), -_SUB, self._nfc)
        fy = np.clip(np.floor((y - self._y0) * self._invhf), -_SUB, self._nfr)
        cx, cy = np.floor(fx / _SUB), np.floor(fy / _SUB)
        v = self._a["table"][((cy + 1) * self._stride + cx + 1).astype(np.intp)]
        path = np.zeros(len(x), dtype=np.int8)
        blk = np.flatnonzero(v < _NONE)
        si = (fy[blk] - _SUB * cy[blk]) * _SUB + (fx[blk] - _SUB * cx[blk])
        s = self._a["sub"][(-2 - v[blk].astype(np.int64)) * _SUB2 + si.astype(np.int64)]  # noqa
        path[blk] = np.where(s == _HARD, 2, 1)
        return path

    def _exact(self, px: np.ndarray, py: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Rules 1-3 for points in blocks ``b``: crossing counts, vectorised."""
        a = self._a
        take = np.take
        ts = take(a["tptr"], b)
        tn = take(a["tptr"], b + 1) - ts
        pt = np.repeat(np.arange(len(px)), tn)
        j = np.arange(len(pt), dtype=np.int64) + np.repeat(ts - (np.cumsum(tn) - tn), tn)
        e = take(a["t_edge"], j)
        qy = take(py, pt)
        ay = take(a["ey0"], e)
        by = take(a["ey1"], e)
        st = np.flatnonzero((ay <= qy) & (qy < by))  # edges crossing the point's row line
        j, e, pt = take(j, st), take(e, st), take(pt, st)
        ay, by, qy = take(ay, st), take(by, st), take(qy, st)
        ax = take(a["ex0"], e)
        bx = take(a["ex1"], e)
        qx = take(px, pt)
        lt = (bx - ax) * (qy - ay)
        rt = (by - ay) * (qx - ax)
        det = lt - rt
        left = det > 0  # the crossing is east of the point
        unsure = np.flatnonzero(np.abs(det) < (np.abs(lt) + np.abs(rt)) * _ERRBOUND)
        for t in unsure:  # only points on an edge or within ~1e-16 of one
            left[t] = _exact_left(ax[t], ay[t], bx[t], by[t], qx[t], qy[t])
        info = take(a["t_info"], j)
        counted = np.flatnonzero(left != (info & 1).astype(bool))  # west rays count the rest
        slot = take(info, counted) >> 1
        pt = take(pt, counted)
        out = np.full(len(px), _NONE, dtype=np.int32)
        if not len(pt):
            return out
        # Parity per (point, candidate slot). The triples come sorted by point, then slot,
        # so runs of equal pairs are contiguous; the lowest odd slot is the smallest code.
        new_run = np.empty(len(pt), dtype=bool)
        new_run[0] = True
        np.not_equal(pt[1:], pt[:-1], out=new_run[1:])
        new_run[1:] |= slot[1:] != slot[:-1]
        run = np.flatnonzero(new_run)
        odd = run[(np.diff(run, append=len(pt)) & 1).astype(bool)]
        op, oslot = take(pt, odd), take(slot, odd)
        first = np.flatnonzero(np.diff(op, prepend=-1) != 0)
        op, oslot = take(op, first), take(oslot, first)
        out[op] = take(a["cand_g"], take(a["cand_ptr"], take(b, op)) + oslot)
        return out

    def _find_one(self, x: float, y: float) -> int:
        """:meth:`_lookup` for one point in pure Python, with the same arithmetic."""
        fc = math.floor((x - self._x0) * self._invwf)
        fr = math.floor((y - self._y0) * self._invhf)
        if not (0 <= fc < self._nfc and 0 <= fr < self._nfr):
            return _NONE
        table, sub, cand_ptr, cand_g, tptr, t_edge, t_info, ex0, ey0, ex1, ey1 = self._mv
        v = table[((fr >> _SUB_SHIFT) + 1) * self._stride + (fc >> _SUB_SHIFT) + 1]
        if v >= _NONE:
            return v
        b = -2 - v
        s = sub[b * _SUB2 + (fr & _SUB_MASK) * _SUB + (fc & _SUB_MASK)]
        if s != _HARD:
            return s
        odd = 0  # bit k: parity of candidate slot k
        for j in range(tptr[b], tptr[b + 1]):
            e = t_edge[j]
            ay = ey0[e]
            by = ey1[e]
            if ay <= y < by:
                ax = ex0[e]
                bx = ex1[e]
                lt = (bx - ax) * (y - ay)
                rt = (by - ay) * (x - ax)
                det = lt - rt
                if abs(det) >= (abs(lt) + abs(rt)) * _ERRBOUND:
                    left = det > 0
                else:
                    left = _exact_left(ax, ay, bx, by, x, y)
                info = t_info[j]
                if left != (info & 1):
                    odd ^= 1 << (info >> 1)
        if not odd:
            return _NONE
        return cand_g[cand_ptr[b] + (odd & -odd).bit_length() - 1]

    def _resolve_misses(self, x: np.ndarray, y: np.ndarray):
        """Rules 4-6 for points no grid holds by rules 1-3: (grid, distance_m, snapped)."""
        g = np.full(len(x), _NONE, dtype=np.int32)
        dist = np.full(len(x), np.nan)
        snapped = np.zeros(len(x), dtype=bool)
        bx0, by0, bx1, by1 = self._near_box
        near = np.flatnonzero((x >= bx0) & (x <= bx1) & (y >= by0) & (y <= by1))
        if not near.size:
            return g, dist, snapped
        pi, pj = self._tree_ll.query(shapely.points(x[near], y[near]), predicate="intersects")
        if pi.size:  # on a grid's edge with no grid east of it: rule 4
            best = _min_per(pi, self._part_grid[pj], len(near))
            on = best != _NO_GRID
            g[near[on]] = best[on]
            dist[near[on]] = 0.0
            near = near[~on]
        if near.size and self.tolerance > 0:
            mx, my = self._to_metric.transform(x[near], y[near])
            (pi, pj), d = self._tree_m.query_nearest(
                shapely.points(mx, my),
                max_distance=self.tolerance,
                return_distance=True,
                all_matches=True,
            )
            if pi.size:  # all_matches: every grid at the nearest distance; smallest code
                best = _min_per(pi, self._part_grid[pj], len(near))
                hit = best != _NO_GRID
                nearest = np.full(len(near), np.inf)
                np.minimum.at(nearest, pi, d)
                g[near[hit]] = best[hit]
                dist[near[hit]] = nearest[hit]
                snapped[near[hit]] = True
        return g, dist, snapped


def _check_layer(geoms: np.ndarray, codes: np.ndarray) -> None:
    def some(idx) -> str:
        shown = ", ".join(repr(codes[i]) for i in idx[:5])
        return shown + (f" (and {len(idx) - 5} more)" if len(idx) > 5 else "")

    import pandas as pd

    if not len(geoms):
        raise InvalidGeometry("the grid layer is empty")
    null_code = np.flatnonzero(pd.isna(codes))
    if null_code.size:
        raise InvalidInput(f"{null_code.size} grid(s) have no code (rows {list(null_code[:5])})")
    kinds = {type(c.item() if isinstance(c, np.generic) else c) for c in codes}
    if len(kinds) > 1:
        raise InvalidInput(f"grid codes mix types {sorted(k.__name__ for k in kinds)}")
    missing = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if missing.size:
        raise InvalidGeometry(f"grid(s) without geometry: {some(missing)}")
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
    if not polygonal.all():
        raise InvalidGeometry(f"grid(s) that are not polygons: {some(np.flatnonzero(~polygonal))}")
    bad = np.flatnonzero(~shapely.is_valid(geoms))
    if bad.size:
        raise InvalidGeometry(f"invalid grid geometry: {some(bad)}")


def locate_frame(
    frame: pd.DataFrame,
    locator: Locator,
    *,
    crs: str | None = None,
    lon: str = "lon",
    lat: str = "lat",
) -> pd.DataFrame:
    """Add ``grid_code``, ``snapped`` and ``distance_m`` columns to a table of points.

    Parameters
    ----------
    frame : pandas.DataFrame or geopandas.GeoDataFrame
        A GeoDataFrame of points (its geometry is used, reprojected to lon/lat if its
        CRS is projected), or a DataFrame with ``lon`` and ``lat`` columns.
    locator : Locator
    crs : str, optional
        The lon/lat flavour of the coordinates (``"gcj02"``, ``"bd09"``, ...). Default
        ``"wgs84"``; for a GeoDataFrame with a geographic CRS, that CRS.
    lon, lat : str
        Column names for a plain DataFrame.

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame`` with the three columns (see :meth:`Locator.locate_detail`;
        ``grid_code`` is None where no grid). ``attrs["plan"]`` holds the plan label.

    Raises
    ------
    InvalidGeometry
        If a GeoDataFrame holds non-point geometries.
    """
    import geopandas as gpd
    import pandas as pd

    if isinstance(frame, gpd.GeoDataFrame) and frame._geometry_column_name in frame.columns:
        geom = frame.geometry
        if geom.crs is not None and not geom.crs.is_geographic:
            geom = geom.to_crs(4326)
        elif geom.crs is not None and crs is None and geom.crs.to_epsg() not in (4326, 4490):
            geom = geom.to_crs(4326)
        arr = np.asarray(geom.array, dtype=object)
        kind = shapely.get_type_id(arr)
        if not np.all((kind == 0) | shapely.is_missing(arr)):
            raise InvalidGeometry("locate_frame needs point geometries")
        xs, ys = shapely.get_x(arr), shapely.get_y(arr)
        xs = np.where(shapely.is_missing(arr), np.nan, xs)
        ys = np.where(shapely.is_missing(arr), np.nan, ys)
    else:
        xs = frame[lon].to_numpy(dtype=np.float64, na_value=np.nan)
        ys = frame[lat].to_numpy(dtype=np.float64, na_value=np.nan)
    detail = locator.locate_detail(xs, ys, crs=crs or "wgs84")
    out = frame.copy()
    out["grid_code"] = pd.Series(detail["code"].to_numpy(), dtype=object, index=out.index)
    out["snapped"] = detail["snapped"].to_numpy()
    out["distance_m"] = detail["distance_m"].to_numpy()
    out.attrs["plan"] = locator.plan
    return out
