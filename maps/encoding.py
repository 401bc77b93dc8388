"""Geometry for the browser: simplified together, rounded, and compactly encoded.

A map of 10,000 grids as plain GeoJSON is tens of megabytes. gridgeo sends less:

- **Simplified together.** Grids of a plan form a coverage (no overlaps, shared edges
  with the same vertices on both sides). :func:`simplify` simplifies it with
  ``shapely.coverage_simplify``, which simplifies each shared edge once, so
  neighbouring grids keep a common boundary: no slivers, no gaps. A layer that is not a
  valid coverage (a draft with overlaps) is simplified grid by grid instead.
- **Rounded.** Coordinates are rounded to ``decimals`` (6: about 0.1 m) as integers;
  a vertex shared by two grids rounds the same way in both.
- **Shared edges sent once.** :func:`encode_topology` cuts the rings into *arcs* at the
  vertices where the neighbouring grids change (as TopoJSON does) and sends each arc
  once; a ring is a list of arc references. Interior edges, half of a coverage's
  vertices, are no longer sent twice, and the boundaries between villages come free:
  they are the arcs whose two sides lie in different villages.
- **Encoded.** Each arc, and each point sequence, is written as the differences of
  consecutive integers in Google's encoded-polyline form (zigzag, 5-bit groups, one
  printable ASCII character each): typically 2-4 characters per vertex against ~25 in
  GeoJSON. ``gridgeo-maps.js`` decodes it.

Everything is vectorised over all vertices at once; no Python loop runs per grid.
"""

from __future__ import annotations

import numpy as np
import shapely

from gridgeo import crs as _crs

__all__ = [
    "METRES_PER_DEGREE",
    "auto_tolerance",
    "simplify",
    "to_display",
    "encode_topology",
    "encode_points",
    "encode_lines",
    "encode_series",
]

#: Metres per degree of latitude; tolerances in metres are turned into degrees with it.
METRES_PER_DEGREE = 111_320.0


def auto_tolerance(geoms, *, pixels: int = 2000, floor_m: float = 0.5, cap_m: float = 10.0) -> float:
    """A simplification tolerance in metres for drawing ``geoms``.

    A twentieth of a pixel when the whole layer spans ``pixels`` screen pixels, between
    ``floor_m`` and ``cap_m``: invisible at the zoom the map opens at, and within a
    pixel or two at street level. The sample township (15 km) gets 0.5 m, a
    prefecture (200 km) 5 m.
    """
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) == 0:
        return floor_m
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    lat = np.radians((y0 + y1) / 2)
    span = max((x1 - x0) * np.cos(lat), y1 - y0) * METRES_PER_DEGREE
    return float(np.clip(span / pixels / 20, floor_m, cap_m))


def simplify(geoms, tolerance_m: float) -> np.ndarray:
    """Simplify polygons together, keeping shared edges shared (see the module notes).

    Parameters
    ----------
    geoms : array_like of shapely geometries
        Polygons or MultiPolygons in lon/lat degrees.
    tolerance_m : float
        In metres; 0 or less leaves the geometry as it is.
    """
    geoms = np.asarray(geoms, dtype=object)
    if tolerance_m <= 0 or len(geoms) == 0:
        return geoms
    tol = tolerance_m / METRES_PER_DEGREE
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    out = geoms.copy()
    part = geoms[present]
    if shapely.coverage_is_valid(part):
        out[present] = shapely.coverage_simplify(part, tol)
    else:
        out[present] = shapely.simplify(part, tol, preserve_topology=True)
    return out


def to_display(geoms, crs: str = "wgs84") -> np.ndarray:
    """Geometries in the coordinate system the base map draws in (``wgs84`` or ``gcj02``).

    AMap tiles are GCJ-02: WGS84 data drawn on them lands some 500 m off, so every
    vertex is converted with :func:`gridgeo.crs.convert` (vectorised over all of them).
    """
    geoms = np.asarray(geoms, dtype=object)
    if crs == "wgs84" or len(geoms) == 0:
        return geoms

    def shift(xy: np.ndarray) -> np.ndarray:
        lon, lat = _crs.convert(xy[:, 0], xy[:, 1], "wgs84", crs)
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, shift)


# -- encoding ------------------------------------------------------------------------

def _varints(values: np.ndarray) -> str:
    """Zigzag + 5-bit group encoding of integers, as one ASCII string (vectorised).

    Each value is written low group first, one character per group (group + 63, plus
    0x20 when another group follows), as in Google's encoded polylines.
    """
    v = np.asarray(values, dtype=np.int64)
    if v.size == 0:
        return ""
    z = np.where(v < 0, ~(v << 1), v << 1).astype(np.uint64)
    groups = np.ones(len(z), dtype=np.int64)
    limit = np.uint64(32)
    while True:
        more = z >= limit
        if not more.any():
            break
        groups += more
        limit = limit * np.uint64(32)
    which = np.repeat(np.arange(len(z)), groups)
    k = np.arange(len(which)) - np.repeat(np.cumsum(groups) - groups, groups)
    chunk = (z[which] >> (np.uint64(5) * k.astype(np.uint64))) & np.uint64(31)
    chunk |= np.where(k < groups[which] - 1, np.uint64(0x20), np.uint64(0))
    return (chunk + np.uint64(63)).astype(np.uint8).tobytes().decode("ascii")


def _quantize(coords: np.ndarray, decimals: int) -> np.ndarray:
    """lon/lat -> integer lat/lon (the encoded-polyline order), rounded to ``decimals``."""
    return np.round(coords[:, ::-1] * 10.0**decimals).astype(np.int64)


def encode_points(lon, lat, decimals: int = 5) -> dict:
    """Encode a point sequence for ``GG.decodePoints``: ``{enc, n, scale}``."""
    coords = np.column_stack([np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)])
    q = _quantize(coords, decimals)
    deltas = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    return {"enc": _varints(deltas.ravel()), "n": int(len(q)), "scale": 10**decimals}


def encode_lines(geoms, decimals: int = 5) -> dict:
    """Encode (multi)lines for ``GG.decodeLines``: ``{enc, n, scale, lens, parts}``.

    Every vertex of every part goes into one encoded point sequence; ``lens`` gives the
    vertices of each part and ``parts`` the parts of each geometry (0 for a missing or
    empty one), so the browser splits the sequence again. Vectorised over all vertices.
    """
    geoms = np.asarray(geoms, dtype=object)
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    keep = ~shapely.is_empty(parts) & np.isin(shapely.get_type_id(parts),
                                              [shapely.GeometryType.LINESTRING, shapely.GeometryType.LINEARRING])
    parts, part_of = parts[keep], part_of[keep]
    coords = shapely.get_coordinates(parts)
    pts = encode_points(coords[:, 0], coords[:, 1], decimals) if len(coords) else {
        "enc": "", "n": 0, "scale": 10**decimals}
    return {**pts, "lens": shapely.get_num_coordinates(parts).astype(int).tolist(),
            "parts": np.bincount(part_of, minlength=len(geoms)).astype(int).tolist()}


def encode_series(values) -> str:
    """Encode integers (e.g. sorted minutes) for ``GG.decodeSeries`` as deltas."""
    v = np.asarray(values, dtype=np.int64)
    return _varints(np.diff(v, prepend=np.int64(0)))


def _ring_vertices(geoms, decimals: int):
    """Rings of the polygons of ``geoms`` as quantized vertices, without the closing one.

    Returns ``q`` (lat/lon integers), ``ring`` (ring of each vertex), the number of
    rings, ``poly`` (rings per polygon) and ``feat`` (polygons per geometry).
    """
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    keep = (shapely.get_type_id(parts) == shapely.GeometryType.POLYGON) & ~shapely.is_empty(parts)
    parts, part_of = parts[keep], part_of[keep]
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    q = _quantize(coords, decimals)
    keep = np.ones(len(q), dtype=bool)
    if len(q):
        # the closing vertex, and vertices that rounding made equal to the one before
        keep[1:] = ~((q[1:] == q[:-1]).all(axis=1) & (coord_of[1:] == coord_of[:-1]))
        per_ring = np.bincount(coord_of, minlength=len(rings))
        keep[(np.cumsum(per_ring) - 1)[per_ring > 0]] = False
    return (q[keep], coord_of[keep], len(rings), np.bincount(ring_of, minlength=len(parts)),
            np.bincount(part_of, minlength=len(geoms)), part_of[ring_of])


def encode_topology(geoms, decimals: int = 6, groups=None, layers=None) -> dict:
    """Encode polygons as shared arcs for ``GG.decodeTopology`` (gridgeo-maps.js).

    Parameters
    ----------
    geoms : array_like of Polygon / MultiPolygon
    decimals : int
        Coordinates are rounded to this many decimals of a degree.
    groups : array_like, optional
        A label per geometry (e.g. its village code). The result then has ``mesh``: the
        arcs on the outer boundary or between geometries of different groups.
    layers : array_like of int, optional
        With ``groups``: the layer (0, 1, ...) of each geometry, when several layers
        share one topology (the plan map's two plans, whose unchanged grids then share
        every arc). ``mesh`` is then a list, one list of arcs per layer, each computed
        within its layer.

    Returns
    -------
    dict
        ``arcs`` (encoded vertices of every arc, each from its first vertex to its
        last), ``arcLen`` (vertices per arc), ``refs`` (encoded: for each ring, in order,
        its arcs as ``2 * arc + reversed``), ``nref``, ``ringArcs`` (arcs per ring),
        ``poly`` (rings per polygon), ``feat`` (polygons per geometry), ``scale`` and,
        with ``groups``, ``mesh`` (arc numbers).

    Notes
    -----
    A vertex is a *junction* when the rings through it do not all have the same two
    neighbours there (three grids meet, or a shared edge ends); a ring with no junction
    (an island, an enclave) is cut at its smallest vertex, which the enclosing ring
    shares. Rings are rotated to start at a junction and cut at every junction; an arc
    is identified by its two end vertices and the vertex next to the smaller end, so
    the same edge met in either direction is one arc.
    """
    geoms = np.asarray(geoms, dtype=object)
    q, ring, n_rings, poly, feat, feature_of_ring = _ring_vertices(geoms, decimals)
    scale = 10**decimals
    n = np.bincount(ring, minlength=n_rings)
    start = np.r_[0, np.cumsum(n)[:-1]].astype(np.int64)
    N = len(q)
    if N == 0:
        return {"arcs": "", "arcLen": [], "refs": "", "nref": 0, "ringArcs": n.tolist(),
                "poly": poly.tolist(), "feat": feat.tolist(), "scale": scale,
                **({"mesh": []} if groups is not None else {})}
    pos = np.arange(N) - start[ring]
    size = n[ring]
    vid = np.unique(q[:, 0] * np.int64(1 << 31) + q[:, 1], return_inverse=True)[1].ravel()
    V = int(vid.max()) + 1
    prev_v = vid[start[ring] + (pos - 1) % size]
    next_v = vid[start[ring] + (pos + 1) % size]
    pair = np.minimum(prev_v, next_v) * np.int64(V) + np.maximum(prev_v, next_v)
    order = np.lexsort((pair, vid))
    sv, sp = vid[order], pair[order]
    first = np.r_[True, (sv[1:] != sv[:-1]) | (sp[1:] != sp[:-1])]
    junction = (np.bincount(sv[first], minlength=V) > 1)[vid]
    nonempty = n > 0
    has_junction = np.bincount(ring, weights=junction, minlength=n_rings) > 0
    ring_min = np.full(n_rings, V, dtype=np.int64)
    ring_min[nonempty] = np.minimum.reduceat(vid, start[nonempty])
    junction |= ~has_junction[ring] & (vid == ring_min[ring])
    # Rotate every ring to start at its first junction.
    first_j = np.full(n_rings, 0, dtype=np.int64)
    first_j[nonempty] = np.minimum.reduceat(np.where(junction, pos, N), start[nonempty])
    src = start[ring] + (pos + first_j[ring]) % size
    vid, junction, q = vid[src], junction[src], q[src]
    # One occurrence of an arc starts at each junction and runs to the next (inclusive).
    occ = np.flatnonzero(junction)
    occ_ring = ring[occ]
    occ_len = np.diff(np.r_[occ, N])  # vertices before the next arc starts
    same_ring_next = np.r_[occ_ring[1:] == occ_ring[:-1], False]
    end_at = np.where(same_ring_next, np.r_[occ[1:], 0], start[occ_ring])
    first_v, end_v = vid[occ], vid[end_at]
    second_v = np.where(occ_len > 1, vid[np.minimum(occ + 1, N - 1)], end_v)
    before_end = np.where(occ_len > 1, vid[occ + occ_len - 1], first_v)
    lo, hi = np.minimum(first_v, end_v), np.maximum(first_v, end_v)
    beside = np.where(first_v < end_v, second_v,
                      np.where(first_v > end_v, before_end, np.minimum(second_v, before_end)))
    korder = np.lexsort((beside, hi, lo))
    kl, kh, kb = lo[korder], hi[korder], beside[korder]
    new = np.r_[True, (kl[1:] != kl[:-1]) | (kh[1:] != kh[:-1]) | (kb[1:] != kb[:-1])]
    key_id = np.empty(len(occ), dtype=np.int64)
    key_id[korder] = np.cumsum(new) - 1
    # Number arcs in order of first use; the first use is each arc's representative.
    rep_occ = np.full(int(key_id.max()) + 1, len(occ), dtype=np.int64)
    np.minimum.at(rep_occ, key_id, np.arange(len(occ)))
    arc_rank = np.empty(len(rep_occ), dtype=np.int64)
    arc_rank[np.argsort(rep_occ, kind="stable")] = np.arange(len(rep_occ))
    arc_id = arc_rank[key_id]
    rep = rep_occ[np.argsort(arc_rank)]  # representative occurrence of arc 0, 1, ...
    forward = (first_v == first_v[rep[arc_id]]) & (second_v == second_v[rep[arc_id]])
    # Vertices of each arc: its representative's run, then the end vertex.
    lens = occ_len[rep] + 1
    offsets = np.r_[0, np.cumsum(lens)[:-1]]
    idx = np.arange(lens.sum()) - np.repeat(offsets, lens) + np.repeat(occ[rep], lens)
    is_end = np.zeros(len(idx), dtype=bool)
    is_end[offsets + lens - 1] = True
    idx[is_end] = end_at[rep]
    coords = q[idx]
    deltas = np.diff(coords, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    deltas[offsets] = coords[offsets]
    refs = 2 * arc_id + (~forward)
    out = {
        "arcs": _varints(deltas.ravel()),
        "arcLen": lens.tolist(),
        "refs": _varints(np.diff(refs, prepend=np.int64(0))),
        "nref": int(len(refs)),
        "ringArcs": np.bincount(occ_ring, minlength=n_rings).tolist(),
        "poly": poly.tolist(),
        "feat": feat.tolist(),
        "scale": scale,
    }
    if groups is not None:
        codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1].ravel()
        g = codes[feature_of_ring[occ_ring]]
        layer = (np.zeros(len(geoms), dtype=np.int64) if layers is None
                 else np.asarray(layers, dtype=np.int64))
        occ_layer = layer[feature_of_ring[occ_ring]]
        meshes = []
        for k in range(int(layer.max()) + 1 if len(layer) else 1):
            mine = occ_layer == k
            uses = np.bincount(arc_id[mine], minlength=len(rep))
            gmin = np.full(len(rep), np.iinfo(np.int64).max)
            gmax = np.full(len(rep), -1)
            np.minimum.at(gmin, arc_id[mine], g[mine])
            np.maximum.at(gmax, arc_id[mine], g[mine])
            meshes.append(np.flatnonzero((uses == 1) | ((uses > 1) & (gmin != gmax))).tolist())
        out["mesh"] = meshes[0] if layers is None else meshes
    return out
