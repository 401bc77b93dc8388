"""Cutting a village into blocks, and the block adjacency graph.

A *block* is the smallest piece the planner moves between grids. Each village part (a
village in two pieces has two parts) is cut along its roads and rivers: the part's
rings and the road lines inside it are noded together once and polygonized, which
gives the *faces*. Faces that are large for the number of grids wanted are cut further
by a square lattice (the fallback where there are no roads at all), and blocks that
still hold too much workload are halved, quadtree fashion, while they hold more than
one address point.

Everything is cut in lon/lat, where the data lives: all lines of a part are noded in
one union and polygonized, so two neighbouring blocks share exactly the same vertices.
Nothing is reprojected before a topology operation (bending straight edges would
invent slivers); lengths and areas are measured by projecting the resulting pieces to
the CGCS2000 Gauss-Krüger zone of the data (:func:`gridgeo.crs.metric_epsg`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from gridgeo.crs import to_metric

__all__ = ["BlockGraph", "Metric", "cut_part", "block_graph", "clip_lines"]

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQ = 111_320.0
#: Vertex spacing (about 10 m) at which lon/lat edges are densified before projecting.
_DENSIFY_DEG = 1e-4
#: A block edge whose middle lies this close to a road or river line runs along it.
_ON_ROAD_DEG = 1e-9
#: Cut lines are clipped to a region grown by this much, so that they cross its edge
#: and get noded onto it; a line ending a rounding error short of the edge would be a
#: dangle, ignored by polygonize. The 1e-9 degree stubs beyond are dangles themselves.
_CLIP_DEG = 1e-9


class Metric:
    """Projection of lon/lat pieces to metres, for measuring only."""

    def __init__(self, epsg: int):
        self.epsg = epsg
        self._tf = to_metric(int(epsg))

    def xy(self, coords: np.ndarray) -> np.ndarray:
        x, y = self._tf.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def geoms(self, geoms: np.ndarray, densify: bool = True) -> np.ndarray:
        """``geoms`` in metres. Edges are straight in lon/lat: they are densified first, so
        that a lon/lat sliver with vertices on one straight edge measures ~0, not the
        lens between the projected chord and the projected curve."""
        geoms = np.asarray(geoms, dtype=object)
        if densify:
            geoms = shapely.segmentize(geoms, _DENSIFY_DEG)
        return shapely.transform(geoms, self.xy)

    def area(self, geoms: np.ndarray) -> np.ndarray:
        return shapely.area(self.geoms(geoms))

    def length(self, geoms: np.ndarray) -> np.ndarray:
        return shapely.length(self.geoms(geoms))


def _lines(geoms) -> np.ndarray:
    """The LineString parts of ``geoms`` (intersections may add points)."""
    parts = shapely.get_parts(np.asarray(geoms, dtype=object))
    if len(parts) == 0:
        return parts
    return parts[shapely.get_type_id(parts) == 1]


def _faces(linework: np.ndarray, part) -> np.ndarray:
    """Polygonize noded ``linework``; keep the faces inside ``part`` (not its holes)."""
    faces = shapely.get_parts(shapely.polygonize(linework))
    if len(faces) == 0:
        return faces
    rep = shapely.point_on_surface(faces)
    inside = shapely.contains_xy(part, shapely.get_x(rep), shapely.get_y(rep))
    return faces[inside]


def clip_lines(lines, region) -> np.ndarray:
    """``lines`` clipped to ``region`` so that they cross its edge (see ``_CLIP_DEG``)."""
    return _lines(shapely.intersection(lines, shapely.buffer(region, _CLIP_DEG, quad_segs=1)))


def _lattice_lines(box, step_x: float, step_y: float) -> np.ndarray:
    """Vertical and horizontal lines of a lattice anchored at lon/lat 0 over ``box``."""
    x0, y0, x1, y1 = box
    xs = np.arange(np.floor(x0 / step_x) + 1, np.ceil(x1 / step_x)) * step_x
    ys = np.arange(np.floor(y0 / step_y) + 1, np.ceil(y1 / step_y)) * step_y
    pad_x, pad_y = step_x, step_y
    vert = shapely.linestrings(
        np.stack([np.column_stack([xs, np.full_like(xs, y0 - pad_y)]),
                  np.column_stack([xs, np.full_like(xs, y1 + pad_y)])], axis=1)) if len(xs) else []
    horiz = shapely.linestrings(
        np.stack([np.column_stack([np.full_like(ys, x0 - pad_x), ys]),
                  np.column_stack([np.full_like(ys, x1 + pad_x), ys])], axis=1)) if len(ys) else []
    return np.concatenate([np.asarray(vert, dtype=object), np.asarray(horiz, dtype=object)])


def _quadtree_cuts(blocks: np.ndarray, xy: np.ndarray, weight: np.ndarray, max_weight: float, *,
                   min_cell_m: float, max_levels: int) -> np.ndarray:
    """Split lines of a quadtree over the heavy blocks, all levels at once, clipped to them.

    Cells start as the bounding boxes of the blocks; a cell is split in four at its
    middle while it holds more than ``max_weight`` on at least two address points and is
    at least ``2 * min_cell_m`` wide and high. Computed on the points alone (numpy per
    level), so the blocks are polygonized once.
    """
    if len(xy) == 0 or len(blocks) == 0:
        return np.array([], dtype=object)
    tree = shapely.STRtree(blocks)
    pi, bi = tree.query(shapely.points(xy), predicate="intersects")
    _, first = np.unique(pi, return_index=True)
    pi, bi = pi[first], bi[first]
    w = weight[pi]
    cells = shapely.bounds(blocks)  # x0, y0, x1, y1 per cell
    owner = np.arange(len(blocks))  # block of each cell
    cell_of = bi.copy()  # cell of each located point
    px, py = xy[pi, 0], xy[pi, 1]
    lat0 = float(np.mean(xy[:, 1]))
    min_dx = 2 * min_cell_m / (_M_PER_DEG_LON_EQ * np.cos(np.radians(lat0)))
    min_dy = 2 * min_cell_m / _M_PER_DEG_LAT
    lines = []
    for _ in range(max_levels):
        cw = np.bincount(cell_of, weights=w, minlength=len(cells))
        cn = np.bincount(cell_of, minlength=len(cells))
        # more than one distinct point: compare a cell's extreme coordinates
        xmin = np.full(len(cells), np.inf)
        xmax = np.full(len(cells), -np.inf)
        ymin, ymax = xmin.copy(), xmax.copy()
        np.minimum.at(xmin, cell_of, px)
        np.maximum.at(xmax, cell_of, px)
        np.minimum.at(ymin, cell_of, py)
        np.maximum.at(ymax, cell_of, py)
        spread = (cn >= 2) & ((xmax > xmin) | (ymax > ymin))
        size_ok = ((cells[:, 2] - cells[:, 0]) >= min_dx) & ((cells[:, 3] - cells[:, 1]) >= min_dy)
        split = np.flatnonzero((cw > max_weight) & spread & size_ok)
        if not len(split):
            break
        c = cells[split]
        mx, my = (c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2
        lines.append((np.column_stack([mx, c[:, 1], mx, c[:, 3]]), owner[split]))
        lines.append((np.column_stack([c[:, 0], my, c[:, 2], my]), owner[split]))
        # Children: 0 = SW, 1 = SE, 2 = NW, 3 = NE, appended after the existing cells.
        base = len(cells) + 4 * np.arange(len(split))
        kids = np.concatenate([
            np.column_stack([c[:, 0], c[:, 1], mx, my]), np.column_stack([mx, c[:, 1], c[:, 2], my]),
            np.column_stack([c[:, 0], my, mx, c[:, 3]]), np.column_stack([mx, my, c[:, 2], c[:, 3]]),
        ])
        order = np.argsort(np.tile(np.arange(len(split)), 4) * 4 + np.repeat(np.arange(4), len(split)),
                           kind="stable")
        cells = np.concatenate([cells, kids[order]])
        owner = np.concatenate([owner, np.repeat(owner[split], 4)])
        where = np.full(len(cells), -1)
        where[split] = np.arange(len(split))
        j = where[cell_of]
        moving = j >= 0
        quad = (px[moving] >= mx[j[moving]]).astype(int) + 2 * (py[moving] >= my[j[moving]]).astype(int)
        cell_of[moving] = base[j[moving]] + quad
    if not lines:
        return np.array([], dtype=object)
    seg = np.concatenate([s for s, _ in lines])
    own = np.concatenate([o for _, o in lines])
    segs = shapely.linestrings(seg.reshape(-1, 2, 2))
    grown = shapely.buffer(blocks, _CLIP_DEG, quad_segs=1)
    return _lines(shapely.intersection(segs, grown[own]))


def cut_part(part, roads: np.ndarray, xy: np.ndarray, weight: np.ndarray, metric: Metric, *,
             cell_m: float, max_block_weight: float, min_cell_m: float = 20.0,
             max_levels: int = 6) -> np.ndarray:
    """Cut one village part into blocks.

    Parameters
    ----------
    part : shapely.Polygon
        The village part, lon/lat.
    roads : numpy.ndarray of LineString
        Road and river lines (any extent; clipped here).
    xy, weight : numpy.ndarray
        The address points of the part (lon, lat) and their workloads.
    metric : Metric
    cell_m : float
        Lattice step in metres for faces larger than two cells.
    max_block_weight : float
        Blocks holding more than this (and more than one address point) are halved.
    min_cell_m : float
        No block is halved below this size.

    Returns
    -------
    numpy.ndarray of Polygon
        The blocks, tiling ``part``. Road lines inside the part are block edges wherever
        they cross a lattice cell or split a face, dead ends included.
    """
    rings = _lines(shapely.boundary(part))
    inside = _lines(shapely.intersection(roads, part)) if len(roads) else np.array([], dtype=object)
    linework = shapely.union_all(np.concatenate([rings, inside]))
    faces0 = _faces(shapely.get_parts(linework), part)
    area0 = metric.area(faces0)
    # The lattice: faces larger than two cells are cut in cells of cell_m.
    big = area0 > 2.0 * cell_m * cell_m
    if big.any():
        lat0 = float(np.mean(shapely.bounds(part)[[1, 3]]))
        sx = cell_m / (_M_PER_DEG_LON_EQ * np.cos(np.radians(lat0)))
        sy = cell_m / _M_PER_DEG_LAT
        region = shapely.coverage_union_all(faces0[big])
        grid = _lines(shapely.intersection(_lattice_lines(shapely.bounds(region), sx, sy),
                                           shapely.buffer(region, _CLIP_DEG, quad_segs=1)))
        if len(grid):
            linework = shapely.union_all(np.concatenate([shapely.get_parts(linework), grid]))
    blocks = _faces(shapely.get_parts(linework), part) if big.any() else faces0
    # Heavy blocks are halved both ways, quadtree fashion, while a cell holds more than
    # max_block_weight on several address points and is larger than min_cell_m.
    cuts = _quadtree_cuts(blocks, xy, weight, max_block_weight,
                          min_cell_m=min_cell_m, max_levels=max_levels)
    if len(cuts):
        linework = shapely.union_all(np.concatenate([shapely.get_parts(linework), cuts]))
        blocks = _faces(shapely.get_parts(linework), part)
    return blocks


@dataclass
class BlockGraph:
    """The adjacency of the blocks of one village part, measured in metres.

    Two blocks are adjacent when they share a stretch of edge (touching at a point is
    not enough: a grid made of such blocks would not be one polygon). ``outer`` marks
    blocks on the part's outer ring; ``lake_block``/``lake_id`` the blocks on each of its
    holes (a lake, or another village inside it).
    """

    n: int
    weight: np.ndarray
    area: np.ndarray
    perimeter: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_len: np.ndarray
    edge_road: np.ndarray  # length of the shared edge that runs along a road or river
    outer: np.ndarray
    lake_block: np.ndarray
    lake_id: np.ndarray
    n_lakes: int
    atoms: np.ndarray | None = None  # largest single address workload per block


def block_graph(blocks: np.ndarray, part, weight: np.ndarray, metric: Metric,
                roads: np.ndarray | None = None) -> BlockGraph:
    """The :class:`BlockGraph` of ``blocks`` (a polygonized coverage of ``part``).

    Shared edges are found by matching segments: blocks polygonized from one noded
    linework have identical vertices on both sides of an edge, so an edge is a segment
    that occurs twice. A segment that occurs once lies on the part's outer ring or on
    one of its holes. A shared segment runs along a road when its middle lies on a road
    line (the lines were noded into the blocks, so their vertices are the roads').
    """
    n = len(blocks)
    rings, ring_owner = shapely.get_rings(blocks, return_index=True)
    coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
    same = ring_idx[:-1] == ring_idx[1:]
    p, q = coords[:-1][same], coords[1:][same]
    owner = ring_owner[ring_idx[:-1][same]]
    pm, qm = metric.xy(p), metric.xy(q)
    seg_len = np.hypot(*(qm - pm).T)
    perimeter = np.bincount(owner, weights=seg_len, minlength=n)
    fwd = (p[:, 0] < q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] < q[:, 1]))
    a = np.where(fwd[:, None], p, q)
    b = np.where(fwd[:, None], q, p)
    order = np.lexsort((b[:, 1], b[:, 0], a[:, 1], a[:, 0]))
    key = np.column_stack([a, b])[order]
    start = np.ones(len(order), dtype=bool)
    start[1:] = np.any(key[1:] != key[:-1], axis=1)
    group = np.cumsum(start) - 1
    size = np.bincount(group)
    twin = size[group] == 2
    first = order[twin & start]
    second = order[twin & ~start]
    u, v = owner[first], owner[second]
    keep = u != v
    u, v, ln, seg = u[keep], v[keep], seg_len[first][keep], first[keep]
    on_road = np.zeros(len(seg), dtype=bool)
    if roads is not None and len(roads) and len(seg):
        mid = shapely.points((p[seg] + q[seg]) / 2)
        hit, _ = shapely.STRtree(roads).query(mid, predicate="dwithin", distance=_ON_ROAD_DEG)
        on_road[hit] = True
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    pair, inv = np.unique(lo * n + hi, return_inverse=True)
    edge_len = np.bincount(inv, weights=ln, minlength=len(pair))
    edge_road = np.bincount(inv, weights=ln * on_road, minlength=len(pair))
    edge_u, edge_v = pair // n, pair % n
    # Segments found once: on the outer ring or on a hole of the part.
    single = order[size[group] == 1]
    holes = list(part.interiors)
    outer = np.zeros(n, dtype=bool)
    lake_block = np.array([], dtype=np.int64)
    lake_id = np.array([], dtype=np.int64)
    if len(single):
        mid = shapely.points((p[single] + q[single]) / 2)
        d = np.column_stack([shapely.distance(mid, part.exterior)]
                            + [shapely.distance(mid, h) for h in holes])
        ring = np.argmin(d, axis=1)
        outer[owner[single][ring == 0]] = True
        if holes:
            sel = ring > 0
            lk = np.unique(np.column_stack([owner[single][sel], ring[sel] - 1]), axis=0)
            lake_block, lake_id = lk[:, 0], lk[:, 1]
    return BlockGraph(
        n=n,
        weight=np.asarray(weight, dtype=float),
        area=metric.area(blocks),
        perimeter=perimeter,
        edge_u=edge_u.astype(np.int64),
        edge_v=edge_v.astype(np.int64),
        edge_len=edge_len,
        edge_road=edge_road,
        outer=outer,
        lake_block=lake_block.astype(np.int64),
        lake_id=lake_id.astype(np.int64),
        n_lakes=len(holes),
    )
