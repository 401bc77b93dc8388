#!/usr/bin/env python
"""Make the gridgeo sample data set: a synthetic township and street in Songyang county.

Everything here is invented: the township 青岚乡, the street 城东街道, their villages,
communities, households, people, staff and events. Only the setting is real: the
coordinates lie in Songyang county (松阳县, Lishui, Zhejiang, code 331124), around
119.35-119.50E, 28.38-28.50N. See ``data/README.md`` for what each file holds.

Usage::

    python data/make_sample.py [--seed 20261122] [--out data/sample]

The output is deterministic: the same seed gives byte-identical files (the GeoPackage
timestamps are pinned with ``OGR_CURRENT_DATE``).

How the map is made
-------------------
Shapes are drawn in a local metric frame (metres east/north of 119.425E 28.44N, an
equirectangular approximation good to well under 0.1 % here) and converted to lon/lat.
Every boundary line of every level (the outline, the river, the township/street divider,
village, community and grid edges) is collected, noded once on a 1e-7 degree grid and
polygonized. Each face is labelled with its grid, and grids, villages and the
township/street are unions of faces: shared edges are therefore exactly shared (the same
vertices on both sides) and the tiling has no gap and no overlap at any level.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely import LineString, MultiPoint, Point, Polygon

try:
    from gridgeo.crs import convert
    from gridgeo.layers import LAYERS, SOURCES
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gridgeo.crs import convert
    from gridgeo.layers import LAYERS, SOURCES

DEFAULT_SEED = 20261122
DEFAULT_OUT = Path(__file__).resolve().parent / "sample"
FILES = ("township.gpkg", "staff.csv", "categories.csv", "events.csv", "event_actions.csv")

# -- the setting -------------------------------------------------------------------------

COUNTY = ("331124", "松阳县")
TOWNSHIP = ("331124201", "青岚乡")
STREET = ("331124002", "城东街道")

#: Village names; 青岚村 is the township seat (乡政府驻地).
VILLAGE_NAMES = ["上源村", "茶岙村", "杉坑村", "云岭村", "梅湾村", "下洋村", "樟林村",
                 "高坪村", "桂岙村", "岩背村", "松岗村", "岚下村"]
SEAT_VILLAGE = "青岚村"
COMMUNITY_NAMES = ["岚湖社区", "双溪社区", "锦城社区", "文昌社区", "茶都社区"]
RIVER_NAME = "岚溪"

#: Reporting period, local time (+08:00): one year.
PERIOD_START = np.datetime64("2025-10-01T00:00:00", "s")
PERIOD_END = np.datetime64("2026-10-01T00:00:00", "s")  # exclusive
N_EVENTS = 22_000
TARGET_HOUSEHOLDS = 20_000

#: Public holidays in the period (days off): fewer patrols and inspections.
HOLIDAYS = [("2025-10-01", "2025-10-08"), ("2026-01-01", "2026-01-03"),
            ("2026-02-15", "2026-02-23"), ("2026-04-04", "2026-04-06"),
            ("2026-05-01", "2026-05-05"), ("2026-06-19", "2026-06-21")]

# Local metric frame: metres east / north of (LON0, LAT0).
LON0, LAT0 = 119.425, 28.44
MX = 97958.5   # metres per degree of longitude at LAT0
MY = 110826.6  # metres per degree of latitude at LAT0
PREC = 1e-7    # coordinate grid of every stored geometry, degrees (about 1 cm)
MARGIN = 2.5   # metres a household keeps from every grid edge

OUTLINE = [(-7200, 1500), (-6600, 4200), (-4600, 6000), (-1600, 6500), (1400, 5900),
           (3500, 4300), (4500, 1900), (6700, 900), (7100, -2200), (6200, -4700),
           (3900, -5400), (2000, -3900), (-900, -3500), (-3900, -2700), (-6300, -900)]
RIVER = [(-8200, 500), (-6000, 1100), (-4200, 600), (-2300, 1100), (-600, 500),
         (1200, -100), (2800, 150), (4400, -350), (5900, 150), (8200, -700)]
DIVIDER_X = 2400.0           # where the township/street divider leaves the river
DIVIDER_SOUTH = (1700, -4500)  # and where it ends, beyond the outline
SEAT = (-600.0, 850.0)       # township seat, on the north bank
CORES = [((4600.0, -900.0), 1200.0, 1.0), ((5800.0, -2800.0), 700.0, 0.4)]  # urban density


# -- small helpers -----------------------------------------------------------------------

def to_deg(geom):
    """Local metres -> lon/lat (vectorised over geometries)."""
    return shapely.transform(geom, lambda c: c / np.array([MX, MY]) + np.array([LON0, LAT0]))


def to_m(geom):
    """Lon/lat -> local metres."""
    return shapely.transform(geom, lambda c: (c - np.array([LON0, LAT0])) * np.array([MX, MY]))


def xy_to_deg(x, y):
    return LON0 + np.asarray(x) / MX, LAT0 + np.asarray(y) / MY


def deg_to_xy(lon, lat):
    return (np.asarray(lon) - LON0) * MX, (np.asarray(lat) - LAT0) * MY


def wiggle(coords, rng, amp=0.12, min_len=40.0):
    """Midpoint displacement: a natural-looking line through the same end points."""
    pts = np.asarray(coords, dtype=float)
    while True:
        seg = np.diff(pts, axis=0)
        length = np.hypot(seg[:, 0], seg[:, 1])
        split = length > min_len
        if not split.any():
            return pts
        normal = np.column_stack([-seg[:, 1], seg[:, 0]]) / np.maximum(length, 1e-9)[:, None]
        off = np.clip(rng.normal(0.0, amp, len(seg)), -2 * amp, 2 * amp) * length
        mid = (pts[:-1] + pts[1:]) / 2 + normal * off[:, None]
        pts = np.insert(pts, np.flatnonzero(split) + 1, mid[split], axis=0)


def chaikin(coords, iterations=3):
    """Corner cutting: a smooth curve for rivers and roads (end points kept)."""
    pts = np.asarray(coords, dtype=float)
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        inner = np.empty((2 * len(q), 2))
        inner[0::2], inner[1::2] = q, r
        pts = np.vstack([pts[:1], inner, pts[-1:]])
    return pts


def sample_in(poly, n, rng, density=None, dmax=1.0, proposal=None):
    """``n`` points inside ``poly`` (metres), optionally thinned by ``density(x, y)``.

    ``proposal(m)`` may supply candidate points; the default is uniform over the bounds.
    """
    shapely.prepare(poly)
    minx, miny, maxx, maxy = poly.bounds
    xs, ys, have = [], [], 0
    for _ in range(200):
        m = max(64, 3 * (n - have))
        if proposal is None:
            x = rng.uniform(minx, maxx, m)
            y = rng.uniform(miny, maxy, m)
        else:
            x, y = proposal(m)
        keep = shapely.contains_xy(poly, x, y)
        if density is not None:
            keep &= rng.random(m) * dmax < density(x, y)
        xs.append(x[keep])
        ys.append(y[keep])
        have += int(keep.sum())
        if have >= n:
            break
    x, y = np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    if len(x) < n:
        raise RuntimeError(f"could not place {n} points in a polygon of {poly.area:.0f} m²")
    return x, y


def kmeans(pts, weights, k, rng, iters=40):
    """Weighted Lloyd iterations; the centres of ``k`` well-spread, equal-mass clusters."""
    p = weights / weights.sum()
    centres = pts[rng.choice(len(pts), size=k, replace=False, p=p)].copy()
    for _ in range(iters):
        d = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        lab = d.argmin(1)
        w = np.bincount(lab, weights, minlength=k)
        ok = w > 0
        cx = np.bincount(lab, weights * pts[:, 0], minlength=k)
        cy = np.bincount(lab, weights * pts[:, 1], minlength=k)
        centres[ok] = np.column_stack([cx[ok] / w[ok], cy[ok] / w[ok]])
    return centres


def urban_density(x, y):
    d = np.full(np.shape(x), 0.06)
    for (cx, cy), s, w in CORES:
        d = d + w * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    return d


def order_by_rows(lon, lat):
    """Order units west→east, north→south: √n latitude bands from the north, west→east in each."""
    lon, lat = np.asarray(lon), np.asarray(lat)
    n = len(lon)
    rows = max(1, round(math.sqrt(n)))
    span = lat.max() - lat.min()
    band = np.zeros(n, dtype=int) if span == 0 else np.minimum(
        ((lat.max() - lat) / (span / rows)).astype(int), rows - 1)
    return np.lexsort((lon, band))


def polys(geom):
    """The polygons of a (multi)polygon or collection, as a list."""
    return [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"]


def lines_of(geom):
    """The non-empty LineStrings of any geometry."""
    parts = shapely.get_parts(geom)
    out = []
    for g in parts:
        if g.geom_type == "LineString" and not g.is_empty:
            out.append(g)
        elif g.geom_type in ("MultiLineString", "GeometryCollection"):
            out.extend(lines_of(g))
    return out


# -- names and phones --------------------------------------------------------------------

SURNAMES = list("叶周吴徐李潘王刘张陈毛何朱程卢郑蓝雷钟杨黄林洪阙包应季邱华")
SURNAME_W = np.array([9, 8, 8, 7, 7, 6, 6, 6, 6, 6, 5, 4, 4, 4, 4, 3, 3, 3, 2, 3, 3, 3, 2,
                      2, 2, 2, 2, 1, 1], dtype=float)
GIVEN = list("建国伟军华明芳英丽红平文志勇海燕霞敏强林春秀美玲忠荣兴福金水根松梅兰桂菊杰浩宇"
             "欣怡晨涛斌磊静婷萍琴新德祥贵元成军亮鹏飞雪娟俊慧佳瑶云峰")
PHONE_PREFIX = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
                "152", "153", "155", "156", "157", "158", "159", "173", "177", "180", "181",
                "182", "183", "185", "186", "187", "188", "189", "191", "199"]


def make_names(rng, n):
    s = rng.choice(len(SURNAMES), size=n, p=SURNAME_W / SURNAME_W.sum())
    g1 = rng.integers(0, len(GIVEN), n)
    g2 = rng.integers(0, len(GIVEN), n)
    two = rng.random(n) < 0.7
    return [SURNAMES[a] + GIVEN[b] + (GIVEN[c] if t else "") for a, b, c, t in zip(s, g1, g2, two)]


def make_phones(rng, n, taken=None):
    """``n`` distinct synthetic 11-digit mobile numbers (not in ``taken``)."""
    taken = set() if taken is None else taken
    out = []
    while len(out) < n:
        m = n - len(out)
        pre = rng.integers(0, len(PHONE_PREFIX), m)
        num = rng.integers(0, 10 ** 8, m)
        for p, v in zip(pre, num):
            s = f"{PHONE_PREFIX[p]}{v:08d}"
            if s not in taken:
                taken.add(s)
                out.append(s)
    return out


# -- geography ---------------------------------------------------------------------------

def build_geography(rng, rural_total):
    """Outline, river, divider, villages, communities, grids; all as exact tilings."""
    outline = wiggle(OUTLINE + [OUTLINE[0]], rng, amp=0.11, min_len=45.0)
    j_m = Polygon(outline)
    if not j_m.is_valid:
        j_m = max(polys(shapely.make_valid(j_m)), key=lambda p: p.area)
        outline = np.asarray(j_m.exterior.coords)
    river_pts = np.asarray(RIVER, dtype=float)
    river_pts[1:-1, 1] += rng.normal(0, 120, len(river_pts) - 2)
    river_m = LineString(chaikin(wiggle(river_pts, rng, amp=0.05, min_len=300.0), 4))

    # divider: from the river at DIVIDER_X south, to beyond the outline
    cut = shapely.intersection(river_m, LineString([(DIVIDER_X, -9000), (DIVIDER_X, 9000)]))
    p = shapely.get_parts(cut)[0]
    px, py = p.x, p.y
    south = wiggle([(px, py - 150), (px - 250, py - 1700), DIVIDER_SOUTH], rng, amp=0.1,
                   min_len=45.0)
    divider_m = LineString(np.vstack([[(px, py + 30)], south]))

    # the street: south of the river, east of the divider
    rc = np.asarray(river_m.coords)
    east = rc[rc[:, 0] > px]
    s_approx = Polygon(np.vstack([[(px, py)], south, [(south[-1][0], -20000), (20000, -20000),
                                                   (20000, east[-1][1])], east[::-1]]))
    s_approx = shapely.make_valid(s_approx)
    s_m = shapely.intersection(j_m, s_approx)
    t_m = shapely.difference(j_m, s_approx)
    env = shapely.box(*j_m.buffer(4000).bounds)

    # villages: relaxed seeds, perturbed Voronoi edges
    sx, sy = sample_in(t_m, 6000, rng)
    seeds_v = kmeans(np.column_stack([sx, sy]), np.ones(len(sx)), 13, rng)
    edges = shapely.voronoi_polygons(MultiPoint(seeds_v), extend_to=env, only_edges=True)
    v_edges = [LineString(wiggle(np.asarray(e.coords), rng, amp=0.1, min_len=40.0))
               for e in shapely.get_parts(edges)]
    v_cells = polys(shapely.polygonize(
        shapely.get_parts(shapely.unary_union(v_edges + [env.exterior]))))
    v_lines = [shapely.intersection(shapely.unary_union(v_edges), t_m)]

    # communities and their grids: straight Voronoi edges (street blocks)
    sx, sy = sample_in(s_m, 8000, rng)
    dens = urban_density(sx, sy)
    pts = np.column_stack([sx, sy])
    seeds_c = kmeans(pts, dens, 5, rng)
    c_cells = list(shapely.get_parts(
        shapely.voronoi_polygons(MultiPoint(seeds_c), extend_to=env, ordered=True)))
    c_lines = [shapely.intersection(shapely.unary_union([c.exterior for c in c_cells]), s_m)]

    # the township's households fix how many street grids there are
    n_street_grids = round((TARGET_HOUSEHOLDS - rural_total - 150) / 400) + 2
    c_polys = [shapely.intersection(c, s_m) for c in c_cells]
    mass = np.array([urban_density(*sample_in(c, 2000, rng)).mean() * c.area for c in c_polys])
    k_c = np.clip(np.round(mass / mass.sum() * n_street_grids), 3, 12).astype(int)
    g_cells, g_lines = [], []
    for ci, c in enumerate(c_polys):
        gx, gy = sample_in(c, 4000, rng, density=urban_density, dmax=1.1)
        seeds_g = kmeans(np.column_stack([gx, gy]), np.ones(len(gx)), int(k_c[ci]), rng)
        cells = list(shapely.get_parts(
            shapely.voronoi_polygons(MultiPoint(seeds_g), extend_to=env, ordered=True)))
        g_cells.append(cells)
        g_lines.append(shapely.intersection(
            shapely.unary_union([g.exterior for g in cells]), c))

    # node everything once on the storage grid and polygonize
    linework = [LineString(outline), river_m, divider_m] + v_lines + c_lines + g_lines
    linework_deg = to_deg(np.array(lines_of(shapely.GeometryCollection(linework)), dtype=object))
    noded = shapely.unary_union(linework_deg, grid_size=PREC)
    faces = np.array(polys(shapely.polygonize(shapely.get_parts(noded))), dtype=object)
    rp = shapely.point_on_surface(faces)
    rx, ry = deg_to_xy(shapely.get_x(rp), shapely.get_y(rp))
    inside = shapely.contains_xy(j_m.buffer(1.0), rx, ry)
    faces, rx, ry = faces[inside], rx[inside], ry[inside]
    in_street = shapely.contains_xy(s_approx, rx, ry)

    # label: ("v", village cell) or ("c", community, grid cell)
    def cell_of(cells, x, y, seeds):
        lab = np.full(len(x), -1)
        for i, cell in enumerate(cells):
            hit = shapely.contains_xy(cell, x, y) & (lab < 0)
            lab[hit] = i
        if seeds is not None:  # perturbed cells: name each by the seed inside it
            owner = np.full(len(cells), -1)
            for i, cell in enumerate(cells):
                inside = np.flatnonzero(shapely.contains_xy(cell, seeds[:, 0], seeds[:, 1]))
                if len(inside):
                    owner[i] = inside[0]
            lab = np.where(lab >= 0, owner[np.maximum(lab, 0)], -1)
            miss = lab < 0
            if miss.any():  # a stray loop of the wiggled edges: nearest seed
                dx = x[miss, None] - seeds[None, :, 0]
                dy = y[miss, None] - seeds[None, :, 1]
                lab[miss] = (dx * dx + dy * dy).argmin(1)
        return lab

    face_unit = np.empty(len(faces), dtype=object)
    t_idx = np.flatnonzero(~in_street)
    vl = cell_of(v_cells, rx[t_idx], ry[t_idx], seeds_v)
    for i, v in zip(t_idx, vl):
        face_unit[i] = ("v", int(v), 0)
    s_idx = np.flatnonzero(in_street)
    cl = cell_of(c_cells, rx[s_idx], ry[s_idx], None)
    for ci in range(5):
        sel = s_idx[cl == ci]
        gl = cell_of(g_cells[ci], rx[sel], ry[sel], None)
        for i, g in zip(sel, gl):
            face_unit[i] = ("c", ci, int(g))
    if any(u is None or u[1] < 0 or u[2] < 0 for u in face_unit):
        raise RuntimeError("a face could not be labelled")

    units = sorted(set(face_unit))
    unit_geom = {}
    for u in units:
        members = faces[[fu == u for fu in face_unit]]
        unit_geom[u] = shapely.coverage_union_all(members)
    # a unit in pieces (a sliver cut off by an edge): give the small pieces to the
    # neighbour of the same parent that shares the longest border with them
    for u in units:
        parts = polys(unit_geom[u])
        if len(parts) <= 1:
            continue
        parts.sort(key=lambda p: -p.area)
        unit_geom[u] = parts[0]
        for piece in parts[1:]:
            best, best_len = None, 0.0
            for w in units:
                same_parent = w[0] == "v" if u[0] == "v" else w[:2] == u[:2]
                if w == u or not same_parent:
                    continue
                shared = shapely.intersection(piece.boundary, unit_geom[w].boundary).length
                if shared > best_len:
                    best, best_len = w, shared
            if best is None:
                raise RuntimeError(f"orphan piece of {u}")
            unit_geom[best] = shapely.coverage_union_all([unit_geom[best], piece])
    for u, g in unit_geom.items():
        if g.geom_type != "Polygon" or not g.is_valid:
            raise RuntimeError(f"unit {u} is not one valid polygon: {g.geom_type}")

    # villages -> codes and names, ordered by position
    v_units = [u for u in units if u[0] == "v"]
    v_geo = [unit_geom[u] for u in v_units]
    cen = shapely.centroid(np.array(v_geo, dtype=object))
    order = order_by_rows(shapely.get_x(cen), shapely.get_y(cen))
    seat_pt = to_deg(Point(SEAT))
    seat_i = next(i for i, g in enumerate(v_geo) if g.contains(seat_pt))
    names = iter(VILLAGE_NAMES)
    villages = []
    for rank, i in enumerate(order):
        code = f"{TOWNSHIP[0]}{201 + rank:03d}"
        name = SEAT_VILLAGE if i == seat_i else next(names)
        villages.append(dict(code=code, name=name, level="village", parent_code=TOWNSHIP[0],
                             geometry=v_geo[i], seat=i == seat_i, street=False))
    grids = [dict(code=v["code"] + "001", name=v["name"] + "网格", village_code=v["code"],
                  kind="basic", geometry=v["geometry"]) for v in villages]

    # communities and their grids
    c_geo = [shapely.coverage_union_all([unit_geom[u] for u in units if u[:2] == ("c", ci)])
             for ci in range(5)]
    cen = shapely.centroid(np.array(c_geo, dtype=object))
    order = order_by_rows(shapely.get_x(cen), shapely.get_y(cen))
    communities = []
    for rank, ci in enumerate(order):
        code = f"{STREET[0]}{1 + rank:03d}"
        name = COMMUNITY_NAMES[rank]
        if c_geo[ci].geom_type != "Polygon":
            raise RuntimeError(f"community {name} is not one polygon")
        communities.append(dict(code=code, name=name, level="community", parent_code=STREET[0],
                                geometry=c_geo[ci], seat=False, street=True))
        g_units = [u for u in units if u[:2] == ("c", ci)]
        g_geo = [unit_geom[u] for u in g_units]
        gcen = shapely.centroid(np.array(g_geo, dtype=object))
        for seq, gi in enumerate(order_by_rows(shapely.get_x(gcen), shapely.get_y(gcen)), 1):
            grids.append(dict(code=f"{code}{seq:03d}", name=f"{STREET[1]}{name}第{seq}网格",
                              village_code=code, kind="basic", geometry=g_geo[gi]))

    villages_df = pd.DataFrame(villages + communities)
    grids_df = pd.DataFrame(grids)

    # dedicated grids: the street's smallest grid holds a school campus, its largest
    # (on the fringe) the industrial park
    street_grids = grids_df.index[grids_df["code"].str.startswith(STREET[0])]
    area = to_m(np.array(grids_df.loc[street_grids, "geometry"], dtype=object))
    area = shapely.area(area)
    school = street_grids[int(np.argmin(area))]
    park = street_grids[int(np.argmax(area))]
    grids_df.loc[[school, park], "kind"] = "dedicated"
    grids_df.loc[school, "name"] += "（城东中学专属网格）"
    grids_df.loc[park, "name"] += "（工业园区专属网格）"
    grids_df["role"] = ""
    grids_df.loc[school, "role"] = "school"
    grids_df.loc[park, "role"] = "park"

    township = shapely.coverage_union_all([v["geometry"] for v in villages])
    street = shapely.coverage_union_all([c["geometry"] for c in communities])
    for g in (township, street):
        if g.geom_type != "Polygon":
            raise RuntimeError("township or street is not one polygon")
    return dict(j_m=j_m, river_m=river_m, divider_m=divider_m, s_approx=s_approx,
                township=township, street=street, villages=villages_df, grids=grids_df)


# -- roads and rivers --------------------------------------------------------------------

def build_roads(rng, geo, hamlets):
    """County, township and village roads; the street network; the river and two streams."""
    river_m = geo["river_m"]
    j_m = geo["j_m"]
    township, street = geo["township"], geo["street"]
    jur = shapely.coverage_union_all([township, street])
    rows = []

    # the county road follows the north bank, crosses near the street and becomes its
    # main avenue
    bank = river_m.offset_curve(200.0)
    bc = np.asarray(bank.coords)
    if bc[0, 0] > bc[-1, 0]:
        bc = bc[::-1]
    bc = bc[bc[:, 0] < 900]
    tail = np.array([(1900, -500), (2800, -1150), (3800, -1450), (5000, -1650),
                     (6200, -1800), (7700, -2050)], dtype=float)
    county_m = LineString(chaikin(np.vstack([bc[::4], tail]), 3))
    county = shapely.set_precision(to_deg(county_m), PREC)
    for part in lines_of(shapely.intersection(county, township, grid_size=PREC)):
        rows.append(("road", "松岚线", "县道", part))
    for part in lines_of(shapely.intersection(county, street, grid_size=PREC)):
        rows.append(("road", "城东大道", "主干路", part))

    # hamlets join the network by the shortest way, nearest first: 乡道 from the
    # county road, 村道 between hamlets
    network = [county_m]
    order = np.argsort([h["d_road"] for h in hamlets], kind="stable")
    for i in order:
        h = hamlets[i]
        target = shapely.union_all(network)
        link = shapely.shortest_line(Point(h["x"], h["y"]), target)
        a, b = np.asarray(link.coords)
        if np.hypot(*(a - b)) < 30:
            continue
        line = LineString(wiggle([a, b], rng, amp=0.08, min_len=60.0))
        network.append(line)
        to_county = shapely.distance(Point(b), county_m) < 1.0
        rank = "乡道" if to_county and line.length > 600 else "村道"
        name = f"{h['village']}{'线' if rank == '乡道' else '村道'}"
        clipped = shapely.intersection(shapely.set_precision(to_deg(line), PREC), township,
                                       grid_size=PREC)
        for part in lines_of(clipped):
            rows.append(("road", name, rank, part))

    # the street: main roads along the community boundaries, branch roads along some grid
    # boundaries (both share the boundary's vertices), a riverside road, the divider road
    villages, grids = geo["villages"], geo["grids"]
    comm = villages[villages["level"] == "community"].reset_index(drop=True)
    main_names = iter(["文昌路", "锦城路", "双溪路", "茶都路", "长松路", "东湖路", "建设路",
                       "新桥路", "凤栖路", "紫荆路"])
    cg = np.array(comm["geometry"], dtype=object)
    for a in range(len(cg)):
        for b in range(a + 1, len(cg)):
            shared = shapely.line_merge(shapely.intersection(cg[a].boundary, cg[b].boundary))
            for part in lines_of(shared):
                if part.length * MX > 150:
                    rows.append(("road", next(main_names, f"城东{len(rows)}路"), "主干路", part))
    branch = ["学府路", "桂花巷", "梅园巷", "樟树巷", "竹园路", "丰乐路", "安康路", "和平巷",
              "兴业路", "振兴路", "育才路", "青年路", "朝阳路", "玉兰巷", "金桥路", "银杏路",
              "荷花巷", "仓前巷", "清风路", "明月巷", "书院路", "柳营路", "桃源路", "花园路",
              "富民路", "广场路", "鹤溪路", "云栖巷", "松风巷", "茶韵路", "翠竹巷", "永安路",
              "迎春路", "望岚路", "状元巷", "双桥路", "通济路", "后街巷", "古井巷", "裕民路",
              "求是路", "新风路", "德政路", "秀水巷", "怡园路", "春晖路", "石榴巷", "锦绣路"]
    branch_names = iter(branch)
    for _, crow in comm.iterrows():
        gg = grids[grids["village_code"] == crow["code"]].reset_index(drop=True)
        geoms = np.array(gg["geometry"], dtype=object)
        for a in range(len(geoms)):
            for b in range(a + 1, len(geoms)):
                if not shapely.intersects(geoms[a], geoms[b]):
                    continue
                shared = shapely.line_merge(
                    shapely.intersection(geoms[a].boundary, geoms[b].boundary))
                for part in lines_of(shared):
                    if part.length * MX > 120 and rng.random() < 0.45:
                        name = next(branch_names, None)
                        if name is None:
                            continue
                        rows.append(("road", name, "支路", part))
    # riverside road, 40 m inside the street
    rs = river_m.offset_curve(-40.0)
    riverside = shapely.intersection(shapely.set_precision(to_deg(rs), PREC), street.buffer(-1e-5),
                                     grid_size=PREC)
    parts = lines_of(shapely.line_merge(riverside))
    if parts:
        rows.append(("road", "滨溪路", "主干路", max(parts, key=lambda p: p.length)))
    # along the divider: the township/street boundary away from the river
    shared = shapely.line_merge(shapely.intersection(township.boundary, street.boundary))
    river_deg = to_deg(river_m)
    dry = shapely.difference(shared, river_deg.buffer(2 / MX))
    for part in lines_of(shapely.line_merge(dry)):
        if part.length * MX > 300:
            rows.append(("road", "环城西路", "主干路", part))

    # rivers: the main river, and two streams coming down to it through hamlets
    river_in = shapely.intersection(river_deg, jur, grid_size=PREC)
    for part in lines_of(shapely.line_merge(river_in)):
        rows.append(("river", RIVER_NAME, "河流", part))
    north = [h for h in hamlets if h["street"] is False and h["y"] > shapely.get_y(
        shapely.line_interpolate_point(river_m, river_m.project(Point(h["x"], h["y"])))) + 900]
    north.sort(key=lambda h: -h["y"])
    used = set()
    streams = 0
    for h in north:
        if h["village"] in used or streams >= 2:
            continue
        top = (h["x"] + rng.normal(0, 200), h["y"] + 1600)
        if not j_m.buffer(-200).contains(Point(top)):
            continue
        foot = shapely.line_interpolate_point(river_m, river_m.project(Point(h["x"], h["y"])))
        mid = (h["x"], h["y"])
        pts = np.vstack([wiggle([top, mid], rng, 0.12, 80.0)[:-1],
                         wiggle([mid, (foot.x, foot.y)], rng, 0.12, 80.0)])
        line = LineString(chaikin(pts, 2))
        stream = shapely.intersection(shapely.set_precision(to_deg(line), PREC), township,
                                      grid_size=PREC)
        for part in lines_of(shapely.line_merge(stream)):
            rows.append(("river", h["village"][:-1] + "坑", "河流", part))
        used.add(h["village"])
        streams += 1

    roads = pd.DataFrame(rows, columns=["kind", "name", "rank", "geometry"])
    roads = roads[[g.length * MX > 20 for g in roads["geometry"]]].reset_index(drop=True)
    kind_order = roads["kind"].map({"river": 0, "road": 1})
    rank_order = roads["rank"].map({"河流": 0, "县道": 1, "主干路": 2, "乡道": 3, "支路": 4,
                                    "村道": 5})
    start = shapely.get_point(np.array(roads["geometry"], dtype=object), 0)
    roads = roads.assign(_k=kind_order, _r=rank_order, _x=shapely.get_x(start),
                         _y=-shapely.get_y(start))
    roads = roads.sort_values(["_k", "_r", "name", "_x", "_y"], kind="stable")
    roads = roads.reset_index(drop=True)
    roads["code"] = [("HL" if k == "river" else "R") + f"{i:03d}" for i, k in
                     zip(roads.groupby("kind").cumcount() + 1, roads["kind"])]
    return roads[["code", "name", "kind", "rank", "geometry"]]


# -- hamlets and households --------------------------------------------------------------

def build_hamlets(rng, geo, rural_counts):
    """Hamlet centres (自然村) in each village: 1-4, in the valleys near the river."""
    river_m = geo["river_m"]
    villages = geo["villages"]
    hamlets = []
    counts = iter(rural_counts)
    for _, v in villages[villages["level"] == "village"].iterrows():
        vm = to_m(v["geometry"])
        inner = vm.buffer(-150.0)
        if inner.is_empty:
            inner = vm.buffer(-MARGIN * 4)
        total = 900 if v["seat"] else int(next(counts))
        x, y = sample_in(inner, 400, rng)
        d = shapely.distance(river_m, shapely.points(x, y))
        w = np.exp(-d / 700.0)
        k = 3 if v["seat"] else int(rng.integers(1, 5))
        chosen = []
        if v["seat"]:
            chosen.append((SEAT[0], SEAT[1]))
        while len(chosen) < k and w.sum() > 0:
            i = rng.choice(len(x), p=w / w.sum())
            chosen.append((x[i], y[i]))
            w = w * (np.hypot(x - x[i], y - y[i]) > 500)
        share = rng.dirichlet(np.full(len(chosen), 2.0))
        if v["seat"]:
            share = np.r_[0.6, 0.4 * share[1:] / share[1:].sum()] if len(chosen) > 1 else share
        hh = np.maximum(np.round(share * total).astype(int), 15)
        for (hx, hy), n in zip(chosen, hh):
            hamlets.append(dict(village=v["name"], village_code=v["code"], x=float(hx),
                                y=float(hy), households=int(n), street=False,
                                seat=bool(v["seat"]) and (hx, hy) == SEAT))
    county_m = geo["river_m"].offset_curve(200.0)
    for h in hamlets:
        h["d_road"] = float(shapely.distance(county_m, Point(h["x"], h["y"])))
    return hamlets


def build_households(rng, geo, hamlets, roads):
    """Address points: hamlet clusters in the township, houses and apartments in the street."""
    river_m = geo["river_m"]
    grids = geo["grids"]
    vil = geo["villages"].set_index("code")
    streams = roads[(roads["kind"] == "river") & (roads["name"] != RIVER_NAME)]
    streams_m = to_m(shapely.union_all(np.array(streams["geometry"], dtype=object)))
    shapely.prepare(river_m)
    shapely.prepare(streams_m)
    recs = []  # arrays per grid

    def keep_dry(x, y):
        p = shapely.points(x, y)
        return ~shapely.dwithin(river_m, p, 15.0) & ~shapely.dwithin(streams_m, p, 6.0)

    for gi, g in grids.iterrows():
        gm = to_m(g["geometry"])
        inner = gm.buffer(-MARGIN)
        shapely.prepare(inner)
        vrow = vil.loc[g["village_code"]]
        if vrow["level"] == "village":
            hs = [h for h in hamlets if h["village_code"] == g["village_code"]]
            xs, ys, hhs = [], [], []
            for h in hs:
                n_pts = max(1, round(h["households"] / 1.07))
                sigma = 35.0 + 4.0 * math.sqrt(n_pts)

                def prop(m, h=h, sigma=sigma):
                    return (rng.normal(h["x"], sigma, m), rng.normal(h["y"], sigma, m))

                x, y = sample_in(inner, n_pts, rng, proposal=prop,
                                 density=lambda x, y: keep_dry(x, y).astype(float))
                xs.append(x)
                ys.append(y)
                per = rng.choice([1, 2, 3], size=n_pts, p=[0.93, 0.06, 0.01])
                hhs.append(per)
            x, y, per = np.concatenate(xs), np.concatenate(ys), np.concatenate(hhs)
            apt = np.zeros(len(x), dtype=bool)
            compound = np.full(len(x), -1)
        else:
            if g["role"] == "school":
                target = int(rng.integers(30, 61))
            elif g["role"] == "park":
                target = int(rng.integers(90, 151))
            else:
                target = int(rng.integers(300, 501))
            cx, cy = gm.centroid.x, gm.centroid.y
            core = float(urban_density(cx, cy)) / 1.06
            p_apt = 0.0 if g["role"] == "school" else float(np.clip(0.15 + 0.7 * core, 0.1, 0.85))
            n_apt = int(round(target * p_apt))
            sizes = []
            while sum(sizes) < n_apt:
                sizes.append(int(rng.choice([12, 18, 24, 30, 36, 48, 54],
                                            p=[.2, .2, .2, .15, .12, .08, .05])))
            if sizes:
                excess = sum(sizes) - n_apt
                if sizes[-1] - excess >= 6:
                    sizes[-1] -= excess
                else:
                    sizes.pop()
            ax, ay, comp = [], [], []
            n_comp = max(1, math.ceil(len(sizes) / 12)) if sizes else 0
            per_comp = np.array_split(np.arange(len(sizes)), n_comp) if n_comp else []
            core_poly = gm.buffer(-40.0)
            if core_poly.is_empty:
                core_poly = inner
            for k, idx in enumerate(per_comp):
                ccx, ccy = sample_in(core_poly, 1, rng)
                theta = rng.uniform(-0.35, 0.35)
                cols = max(1, math.ceil(math.sqrt(len(idx) * 1.3)))
                ii = np.arange(len(idx) * 3)
                lx = (ii % cols - (cols - 1) / 2) * 26.0 + rng.normal(0, 2.0, len(ii))
                ly = -(ii // cols) * 34.0 + rng.normal(0, 2.0, len(ii))
                px = ccx[0] + lx * math.cos(theta) - ly * math.sin(theta)
                py = ccy[0] + lx * math.sin(theta) + ly * math.cos(theta)
                ok = shapely.contains_xy(inner, px, py) & keep_dry(px, py)
                px, py = px[ok][:len(idx)], py[ok][:len(idx)]
                if len(px) < len(idx):
                    fx, fy = sample_in(inner, len(idx) - len(px), rng,
                                       density=lambda x, y: keep_dry(x, y).astype(float))
                    px, py = np.r_[px, fx], np.r_[py, fy]
                ax.append(px)
                ay.append(py)
                comp.append(np.full(len(idx), k))
            rest = target - sum(sizes)
            per_h = rng.choice([1, 2, 3], size=rest, p=[0.84, 0.13, 0.03])
            per_h = per_h[np.cumsum(per_h) <= rest]
            if per_h.sum() < rest:
                per_h = np.r_[per_h, np.ones(rest - per_h.sum(), dtype=int)]
            n_h = len(per_h)
            lanes_x, lanes_y = sample_in(inner, int(rng.integers(4, 12)), rng)

            def prop(m, lanes_x=lanes_x, lanes_y=lanes_y, inner=inner):
                li = rng.integers(0, len(lanes_x), m)
                clustered = rng.random(m) < 0.7
                minx, miny, maxx, maxy = inner.bounds
                x = np.where(clustered, rng.normal(lanes_x[li], 70.0), rng.uniform(minx, maxx, m))
                y = np.where(clustered, rng.normal(lanes_y[li], 70.0), rng.uniform(miny, maxy, m))
                return x, y

            hx, hy = sample_in(inner, n_h, rng, proposal=prop,
                               density=lambda x, y: keep_dry(x, y).astype(float))
            x = np.concatenate(ax + [hx]) if ax else hx
            y = np.concatenate(ay + [hy]) if ay else hy
            per = np.r_[np.array(sizes, dtype=int), per_h]
            apt = np.r_[np.ones(len(sizes), dtype=bool), np.zeros(n_h, dtype=bool)]
            compound = np.r_[np.concatenate(comp) if comp else np.zeros(0, int), np.full(n_h, -1)]
        recs.append(pd.DataFrame(dict(x=x, y=y, households=per, apartment=apt,
                                      compound=compound, grid=gi)))
    hh = pd.concat(recs, ignore_index=True)
    hh["village_code"] = grids["village_code"].to_numpy()[hh["grid"]]
    hh["grid_code"] = grids["code"].to_numpy()[hh["grid"]]
    lon, lat = xy_to_deg(hh["x"].to_numpy(), hh["y"].to_numpy())
    hh["lon"], hh["lat"] = np.round(lon, 7), np.round(lat, 7)
    hh["street"] = hh["village_code"].str.startswith(STREET[0])
    hh["vname"] = vil.loc[hh["village_code"], "name"].to_numpy()

    # population: 1-5 persons per household (smaller, older households in the hills)
    rows = np.repeat(np.arange(len(hh)), hh["households"].to_numpy())
    street_rows = hh["street"].to_numpy()[rows]
    size = np.where(street_rows,
                    rng.choice([1, 2, 3, 4, 5], size=len(rows), p=[.12, .28, .33, .19, .08]),
                    rng.choice([1, 2, 3, 4, 5], size=len(rows), p=[.18, .32, .22, .18, .10]))
    hh["population"] = np.bincount(rows, size, minlength=len(hh)).astype(int)
    hh["buildings"] = 1

    # addresses
    hh["road"] = ""
    hh["number"] = 0
    hh["building"] = 0
    # township: village + running number, north to south, west to east
    t = ~hh["street"]
    hh.loc[t, "_band"] = np.floor((90 - hh.loc[t, "lat"]) / 0.0009).to_numpy()
    tt = hh[t].sort_values(["village_code", "_band", "lon"], kind="stable")
    hh.loc[tt.index, "number"] = tt.groupby("village_code").cumcount().to_numpy() + 1
    # street: each house, and each apartment compound, takes a number on its nearest road,
    # odd on the left and even on the right, counted along the road
    sroads = roads[(roads["kind"] == "road") & roads["rank"].isin(["主干路", "支路"])]
    rgeo = np.array(sroads["geometry"], dtype=object)
    s = hh.index[hh["street"]]
    is_apt = hh.loc[s, "apartment"].to_numpy()
    unit = np.where(is_apt, "c" + hh.loc[s, "grid"].astype(str) + "_" +
                    hh.loc[s, "compound"].astype(str), "h" + s.astype(str))
    pts = shapely.points(hh.loc[s, "lon"].to_numpy(), hh.loc[s, "lat"].to_numpy())
    near = shapely.STRtree(rgeo).query_nearest(pts, all_matches=False)[1]
    road_geom = rgeo[near]
    along = shapely.line_locate_point(road_geom, pts)
    ahead = shapely.line_interpolate_point(road_geom, along + 1e-5)
    back = shapely.line_interpolate_point(road_geom, np.maximum(along - 1e-5, 0))
    dx = shapely.get_x(ahead) - shapely.get_x(back)
    dy = shapely.get_y(ahead) - shapely.get_y(back)
    px = hh.loc[s, "lon"].to_numpy() - shapely.get_x(back)
    py = hh.loc[s, "lat"].to_numpy() - shapely.get_y(back)
    units = pd.DataFrame(dict(unit=unit, road=sroads["name"].to_numpy()[near], along=along,
                              left=(dx * py - dy * px) > 0))
    first = units.groupby("unit", sort=True).head(1)  # a compound's first building
    first = first.sort_values(["road", "left", "along", "unit"], kind="stable")
    rank = first.groupby(["road", "left"]).cumcount().to_numpy()
    number = pd.Series(2 * rank + np.where(first["left"], 1, 2), index=first["unit"].to_numpy())
    road_of = pd.Series(first["road"].to_numpy(), index=first["unit"].to_numpy())
    hh.loc[s, "road"] = road_of.loc[unit].to_numpy()
    hh.loc[s, "number"] = number.loc[unit].to_numpy()
    # buildings (幢) of a compound: north to south, west to east
    apt_rows = hh.loc[s[is_apt]].sort_values(["grid", "compound", "lat", "lon"],
                                             ascending=[True, True, False, True], kind="stable")
    bld_no = apt_rows.groupby(["grid", "compound"]).cumcount().to_numpy() + 1
    hh.loc[apt_rows.index, "building"] = bld_no
    num_txt = hh["number"].astype(str)
    prefix = np.where(hh["street"], COUNTY[1] + STREET[1], COUNTY[1] + TOWNSHIP[1])
    bld = np.where(hh["building"] > 0, hh["building"].astype(str) + "幢", "")
    hh["address"] = prefix + hh["vname"] + hh["road"] + num_txt + "号" + bld
    if hh["address"].duplicated().any():
        raise RuntimeError("duplicated addresses")

    hh = hh.sort_values(["village_code", "grid_code", "lat", "lon"],
                        ascending=[True, True, False, True], kind="stable").reset_index(drop=True)
    hh["code"] = [f"H{i:06d}" for i in range(1, len(hh) + 1)]
    hh["contact_name"] = make_names(rng, len(hh))
    hh["contact_phone"] = make_phones(rng, len(hh))
    return hh


# -- staff -------------------------------------------------------------------------------

def build_staff(rng, grids):
    """The roster: one row per person and grid; instructors serve several grids."""
    codes = grids["code"].tolist()
    n = len(codes)
    rows = []
    # instructors: township cadres, each serving a run of neighbouring grids
    t_grids = [c for c in codes if c.startswith(TOWNSHIP[0])]
    s_grids = [c for c in codes if c.startswith(STREET[0])]
    instructor_of = {}
    for group, per in ((t_grids, 3), (s_grids, 4)):
        k = math.ceil(len(group) / per)
        for i, chunk in enumerate(np.array_split(np.array(group), k)):
            for c in chunk:
                instructor_of[c] = (group is s_grids, i)
    # the under-staffed: no instructor, no full-time worker, no grid head
    pick = rng.choice(n, size=3, replace=False)
    no_instructor, no_full, no_head = (codes[i] for i in pick)
    people = []
    for c in codes:
        if c != no_head:
            people.append((c, "grid_head"))
        if c != no_full:
            people += [(c, "full_time_worker")] * int(rng.choice([1, 2, 3], p=[.5, .35, .15]))
        people += [(c, "part_time_worker")] * int(rng.choice([0, 1, 2, 3], p=[.2, .35, .3, .15]))
    inst_keys = sorted(set(instructor_of.values()))
    n_people = len(people) + len(inst_keys)
    names = make_names(rng, n_people)
    phones = make_phones(rng, n_people)
    pid = 0
    for c, role in people:
        pid += 1
        rows.append((pid, role, c))
    inst_id = {}
    for key in inst_keys:
        pid += 1
        inst_id[key] = pid
    for c in codes:
        if c != no_instructor:
            rows.append((inst_id[instructor_of[c]], "instructor", c))
    role_order = {r: i for i, r in enumerate(["grid_head", "full_time_worker",
                                              "part_time_worker", "instructor"])}
    staff = pd.DataFrame(rows, columns=["pid", "role", "grid_code"])
    staff["code"] = [f"P{p:05d}" for p in staff["pid"]]
    staff["name"] = [names[p - 1] for p in staff["pid"]]
    staff["phone"] = [phones[p - 1] for p in staff["pid"]]
    staff["_r"] = staff["role"].map(role_order)
    staff = staff.sort_values(["grid_code", "_r", "code"], kind="stable").reset_index(drop=True)
    understaffed = {no_instructor: "no instructor", no_full: "no full-time worker",
                    no_head: "no grid head"}
    return staff[["code", "name", "phone", "role", "grid_code"]], understaffed


# -- categories --------------------------------------------------------------------------

# code, name, department, deadline hours, major, description, frequency, where, season,
# affinity by source (patrol, hotline, petition, app, inspection, department), phrases
CATEGORIES = [
    ("ZZ001", "邻里纠纷", "综治办", 72, False, "邻里之间的矛盾纠纷，村（社区）调委会先行调解", 6, "any", "flat",
     (3, 2, 1, 1, 0, .3), ["邻里因宅基地边界发生争执", "邻居之间因噪音问题产生矛盾", "相邻住户因排水问题发生纠纷"]),
    ("ZZ002", "婚姻家庭纠纷", "司法所", 72, False, "婚姻、赡养、继承等家庭矛盾纠纷调解", 3, "any", "flat",
     (2, 1, 1, .5, 0, .3), ["夫妻因家庭琐事多次争吵，需调解", "子女赡养老人问题产生矛盾", "兄弟因老宅继承发生纠纷"]),
    ("ZZ003", "山林土地权属纠纷", "司法所", 168, False, "山林、承包地、宅基地权属和流转纠纷", 2.5, "rural", "flat",
     (2, 1, 2, .3, 0, .5), ["两户村民因山林界址发生争议", "承包地流转费用引发纠纷", "茶园承包合同到期引发争议"]),
    ("ZZ004", "劳资纠纷", "人力社保所", 120, False, "拖欠工资等劳动争议，联合劳动保障监察处置", 2.5, "industrial", "winter",
     (1, 2, 2, 1, .3, 1), ["工人反映被拖欠工资", "工地农民工讨要工资", "企业未依法签订劳动合同"]),
    ("ZZ005", "社区矫正对象管理", "司法所", 24, False, "社区矫正对象日常监管和异常情况报告", 1, "any", "flat",
     (2, 0, 0, 0, .5, 2), ["社区矫正对象未按时报到", "社区矫正对象擅自离开居住地"]),
    ("ZZ006", "安置帮教", "司法所", 168, False, "刑满释放人员安置帮教", .8, "any", "flat",
     (2, 0, 0, 0, 0, 1.5), ["刑满释放人员有就业帮扶需求", "安置帮教对象定期走访发现困难"]),
    ("ZZ007", "流动人口登记", "派出所", 120, False, "流动人口居住登记和信息变更", 4, "urban", "cny",
     (3, .2, 0, .5, .5, 1), ["新增流动人口未办理居住登记", "外来务工人员信息变更需更新", "新到外来务工人员需集中登记"]),
    ("ZZ008", "出租房屋管理", "派出所", 120, False, "出租房屋登记备案和安全管理", 2.5, "urban", "flat",
     (3, .3, 0, .5, 1, .5), ["出租房屋未登记备案", "出租屋存在群租现象", "出租房屋安全设施不全"]),
    ("ZZ009", "禁毒线索", "派出所", 24, False, "涉毒线索核查，禁毒宣传", .4, "any", "flat",
     (1, .5, 0, .3, 0, 1), ["发现疑似吸毒人员异常活动", "出租屋内发现可疑吸毒工具"]),
    ("ZZ010", "治安隐患", "派出所", 48, False, "社会治安隐患排查", 2, "urban", "flat",
     (2, 1.5, 0, 1, .3, .3), ["夜间路段照明不足存在治安隐患", "发现可疑人员多次徘徊", "小区内电动车被盗"]),
    ("ZZ011", "重点人员动态", "综治办", 24, False, "重点人员动态管控", 1, "any", "flat",
     (2, 0, 0, 0, 0, 1), ["重点人员近期情绪异常", "重点人员外出未报备"]),
    ("ZZ012", "反邪教", "综治办", 72, False, "邪教宣传品和活动线索", .5, "any", "flat",
     (1, 0, 0, 0, 0, .5), ["发现邪教宣传品", "可疑人员散发不明宣传单"]),
    ("ZZ013", "群体性事件", "综治办", 24, True, "群体性事件及苗头，报领导小组研判", .15, "any", "flat",
     (1, .5, 1, .3, 0, .3), ["多名群众聚集反映征地补偿问题", "业主聚集维权"]),
    ("ZZ014", "信访事项", "信访办", 360, False, "群众来信来访事项", 1.5, "any", "flat",
     (0, .3, 6, .2, 0, .5), ["来访群众反映历史遗留问题", "群众来信反映村务公开问题", "来访反映低保评定不公"]),
    ("ZZ015", "精神障碍患者管理", "卫生院", 48, False, "严重精神障碍患者随访和管控", .6, "any", "flat",
     (2, .3, 0, 0, 0, .5), ["严重精神障碍患者未按时服药", "家属反映患者情绪不稳定"]),
    ("ZZ016", "校园周边安全", "派出所", 48, False, "校园及周边治安和交通安全", 1, "school", "school",
     (1.5, 1, 0, 1, 1, .3), ["学校门口上下学时段交通拥堵", "校园周边有人员聚集滋事"]),
    ("ZZ017", "防溺水隐患", "综治办", 24, False, "溪流、山塘防溺水隐患", .8, "river", "summer",
     (2, .5, 0, .5, .5, 0), ["溪边缺少防溺水警示牌", "有未成年人在溪中游泳"]),
    ("SC001", "食品安全", "市场监管所", 48, False, "食品生产经营环节的安全问题", 3, "urban", "flat",
     (1, 1.5, .2, 1.5, 2, .5), ["餐馆后厨卫生条件差", "超市销售过期食品", "农村家宴未申报"]),
    ("SC002", "无证经营", "市场监管所", 120, False, "无照无证经营", 2, "urban", "flat",
     (1.5, 1, 0, 1, 1, .3), ["发现无营业执照经营的小作坊", "流动摊点无证销售"]),
    ("SC003", "价格违法", "市场监管所", 72, False, "未明码标价、哄抬价格等", 1, "market", "flat",
     (.5, 2, 0, 1.5, .5, .2), ["商家未明码标价", "节日期间哄抬价格"]),
    ("SC004", "假冒伪劣商品", "市场监管所", 72, False, "假冒伪劣商品和农资", 1, "urban", "flat",
     (.5, 1.5, 0, 1.5, 1, .5), ["销售疑似假冒品牌商品", "农资店销售劣质化肥"]),
    ("SC005", "消费投诉", "市场监管所", 168, False, "消费者投诉和消费纠纷", 2.5, "urban", "flat",
     (.2, 3, .2, 2, 0, .3), ["预付卡商家关门无法退款", "购买商品质量问题商家拒绝退换"]),
    ("SC006", "农产品质量安全", "农业农村办", 72, False, "农产品和茶叶的农药残留、质量安全", 1.2, "rural", "tea",
     (1.5, .5, 0, .5, 2, .5), ["茶园农药使用不规范", "农产品抽检农药残留超标"]),
    ("SC007", "特种设备安全", "市场监管所", 48, False, "电梯、锅炉等特种设备安全", .6, "urban", "flat",
     (.5, 1, 0, .5, 2, .3), ["小区电梯故障频繁", "电梯年检标志过期"]),
    ("SC008", "药品安全", "市场监管所", 72, False, "药品、医疗器械经营使用", .5, "urban", "flat",
     (.5, 1, 0, .5, 1.5, .3), ["药店处方药未凭处方销售", "诊所药品储存不规范"]),
    ("SC009", "民宿经营管理", "文旅办", 120, False, "民宿证照、消防和服务质量", .6, "rural", "summer",
     (1, .5, 0, .5, 1.5, .3), ["民宿未取得相关许可", "民宿消防设施不全"]),
    ("SC010", "农贸市场秩序", "市场监管所", 72, False, "农贸市场计量、活禽和经营秩序", 1.2, "market", "flat",
     (1.5, 1, 0, 1, 1, .2), ["农贸市场商户短斤缺两", "市场内违规宰杀活禽"]),
    ("SC011", "校园食品安全", "市场监管所", 24, False, "学校食堂和校园周边食品安全", .4, "school", "school",
     (.5, 1, 0, 1, 2, .2), ["学校周边小卖部销售三无食品", "学生反映食堂饭菜有异味"]),
    ("SC012", "食物中毒事件", "市场监管所", 24, True, "疑似食物中毒等食品安全事故", .05, "any", "flat",
     (.5, 1, 0, .5, 0, .5), ["多人聚餐后出现呕吐腹泻症状"]),
    ("SC013", "违法广告", "市场监管所", 72, False, "虚假和违法广告", .4, "urban", "flat",
     (.5, 1, 0, 1, 1, .3), ["店铺宣传使用绝对化用语", "张贴虚假医疗广告"]),
    ("ZF001", "违章搭建", "综合行政执法中队", 168, False, "未经审批的建筑物、构筑物", 3, "any", "flat",
     (3, 1, .5, 1, .5, .5), ["村民在自家屋顶违规加盖", "未经审批搭建彩钢棚", "沿街店铺违规搭建雨棚"]),
    ("ZF002", "占道经营", "综合行政执法中队", 24, False, "占用道路、人行道经营", 3, "market", "flat",
     (3, 1.5, 0, 1.5, .5, 0), ["流动摊贩占道经营", "店外经营占用人行道"]),
    ("ZF003", "环境卫生", "综合行政执法中队", 24, False, "垃圾清运、公厕和村容村貌", 4, "any", "flat",
     (3, 1.5, 0, 2, .3, 0), ["垃圾桶满溢未及时清运", "道路两侧垃圾堆积", "公厕卫生状况差"]),
    ("ZF004", "乱堆乱放", "综合行政执法中队", 48, False, "杂物、建筑垃圾乱堆放", 2.5, "any", "flat",
     (3, 1, 0, 1, 0, 0), ["楼道堆放杂物", "建筑垃圾随意堆放"]),
    ("ZF005", "户外广告违规", "综合行政执法中队", 72, False, "户外广告和小广告", .8, "urban", "flat",
     (2, .5, 0, .5, .5, 0), ["违规设置户外广告牌", "小广告乱贴乱画"]),
    ("ZF006", "五水共治", "五水共治办", 72, False, "河道保洁、污水直排等治水问题", 2, "river", "flood",
     (2, 1, 0, 1, 1, .5), ["河道漂浮垃圾较多", "有排污口向溪中排放污水", "河面出现死鱼"]),
    ("ZF007", "违法用地", "自然资源所", 168, False, "未经批准占用土地", 1, "rural", "flat",
     (2, .5, .5, .5, 1, 1), ["未经批准占用耕地建房", "农田内堆放建筑渣土"]),
    ("ZF008", "环境污染", "生态环境站", 72, False, "废气、噪声、固废等环境污染", 1.2, "any", "flat",
     (1, 1.5, .3, 1.5, 1, .5), ["企业夜间排放刺鼻废气", "施工噪音扰民"]),
    ("ZF009", "安全生产隐患", "安监站", 48, False, "企业和经营场所的安全生产隐患", 2, "industrial", "flood",
     (2, .5, 0, .5, 3, .5), ["企业车间安全通道堵塞", "工人未佩戴安全防护用品", "危化品存放不规范"]),
    ("ZF010", "消防隐患", "消防工作站", 24, False, "消防设施和用火用电安全", 2.5, "any", "winter",
     (2.5, 1, 0, 1, 2, .3), ["电动车在楼道内充电", "消防栓损坏", "沿街店铺消防通道被占用"]),
    ("ZF011", "重大安全隐患", "安监站", 24, True, "可能造成重大事故的安全隐患", .1, "industrial", "flood",
     (1, .5, 0, .3, 1, .5), ["厂房出现明显裂缝存在坍塌风险", "燃气管道疑似泄漏"]),
    ("ZF012", "三改一拆", "综合行政执法中队", 360, False, "旧住宅区、旧厂区、城中村改造和违法建筑拆除", .8, "any", "flat",
     (1, .3, .3, .3, 1, 1), ["旧厂房违法建筑列入拆除计划", "城中村违建整治"]),
    ("ZF013", "餐饮油烟扰民", "综合行政执法中队", 72, False, "餐饮油烟和夜间经营扰民", 1, "urban", "summer",
     (1, 2, 0, 1.5, .5, 0), ["餐馆油烟直排扰民", "夜宵烧烤摊油烟扰民"]),
    ("ZF014", "露天焚烧", "生态环境站", 24, False, "秸秆、垃圾露天焚烧", .8, "rural", "autumn",
     (2, 1, 0, 1, .5, 0), ["农田露天焚烧秸秆", "村民露天焚烧垃圾"]),
    ("ZF015", "地质灾害隐患", "自然资源所", 24, True, "滑坡、崩塌等地质灾害险情", .6, "rural", "flood",
     (2, .3, 0, .3, 1.5, .5), ["山体出现裂缝有滑坡风险", "房屋后坡出现落石"]),
    ("ZF016", "防汛隐患", "应急管理站", 24, False, "山塘、河堤等防汛隐患", 1, "river", "flood",
     (2, .5, 0, .5, 1, .5), ["山塘水位偏高需加强巡查", "河堤出现渗水"]),
    ("ZF017", "非法采砂", "自然资源所", 72, False, "河道非法采砂", .3, "river", "flat",
     (1.5, 1, 0, .5, .5, .5), ["夜间河道有人非法采砂"]),
    ("ZF018", "渣土运输", "综合行政执法中队", 48, False, "渣土车抛洒滴漏、未密闭运输", .6, "urban", "flat",
     (1.5, 1, 0, 1, .5, 0), ["渣土车沿途抛洒", "渣土车未密闭运输"]),
    ("BM001", "社保咨询", "人力社保所", 120, False, "养老、失业等社会保险咨询办理", 2, "any", "flat",
     (1, 2, 0, 2, 0, 0), ["咨询城乡居民养老保险缴费", "咨询社保卡补办"]),
    ("BM002", "医保办理", "医保服务站", 120, False, "医疗保险参保、报销和备案", 1.5, "any", "flat",
     (1, 1.5, 0, 2, 0, 0), ["咨询异地就医备案", "咨询医保报销材料"]),
    ("BM003", "养老服务", "民政办", 168, False, "居家养老、养老补贴", 1.5, "any", "flat",
     (1.5, 1, 0, 1, 0, .3), ["高龄老人申请居家养老服务", "咨询高龄补贴"]),
    ("BM004", "低保救助", "民政办", 360, False, "最低生活保障申请和动态管理", 1, "any", "flat",
     (1.5, .5, .5, .5, 0, .3), ["困难家庭申请低保", "低保对象家庭情况发生变化"]),
    ("BM005", "残疾人帮扶", "残联", 168, False, "残疾人证办理和帮扶", .6, "any", "flat",
     (1.5, .5, 0, .5, 0, .3), ["申请办理残疾人证", "残疾人申请辅具适配"]),
    ("BM006", "户籍办理", "派出所", 120, False, "落户、迁移等户籍业务", 1, "any", "flat",
     (.5, 1, 0, 1.5, 0, 0), ["咨询新生儿落户", "咨询户口迁移"]),
    ("BM007", "农技服务", "农业农村办", 168, False, "茶叶等农业技术指导", 1.2, "rural", "tea",
     (1.5, .5, 0, 1, 0, .3), ["茶农咨询病虫害防治", "申请农技人员上门指导"]),
    ("BM008", "就业创业服务", "人力社保所", 168, False, "就业登记、创业扶持", .8, "any", "flat",
     (1, 1, 0, 1.5, 0, 0), ["咨询创业担保贷款", "办理求职登记"]),
    ("BM009", "公共设施报修", "村镇建设办", 72, False, "路灯、道路、窨井盖等公共设施", 3, "any", "flat",
     (2.5, 2, 0, 2.5, .3, 0), ["路灯不亮", "道路出现坑洼", "窨井盖缺失"]),
    ("BM010", "供水供电故障", "村镇建设办", 24, False, "停水停电等公用事业故障", 1.5, "any", "summer",
     (1, 2.5, 0, 2, 0, 0), ["停水未提前通知", "小区频繁停电"]),
    ("BM011", "医疗卫生服务", "卫生院", 72, False, "家庭医生签约和公共卫生服务", .8, "any", "flat",
     (1, 1, 0, 1, 0, .3), ["咨询家庭医生签约", "慢病患者需要上门随访"]),
    ("BM012", "证明开具", "便民服务中心", 72, False, "各类证明和事项代办", 1, "any", "flat",
     (.5, 1, 0, 2, 0, 0), ["咨询开具居住证明", "咨询代办事项所需材料"]),
    ("BM013", "临时救助", "民政办", 120, False, "因病、因灾等临时困难救助", .6, "any", "flat",
     (1.5, .5, .3, .5, 0, .3), ["因病致困申请临时救助", "火灾受灾户申请救助"]),
    ("BM014", "退役军人服务", "退役军人服务站", 168, False, "退役军人优待和帮扶", .4, "any", "flat",
     (1, .5, .3, .5, 0, .3), ["咨询退役军人优待证申领"]),
    ("BM015", "独居老人关怀", "民政办", 48, False, "独居、空巢老人探访关怀", 1, "rural", "winter",
     (2, .5, 0, .3, 0, 0), ["独居老人生活困难需要帮扶", "高龄独居老人冬季取暖有困难"]),
    ("BM016", "计生服务", "卫生院", 120, False, "生育登记和育儿补贴", .4, "any", "flat",
     (1, .5, 0, 1, 0, 0), ["咨询生育登记", "咨询育儿补贴申领"]),
]
PLATFORM_OF = {"ZZ": "stability", "SC": "market", "ZF": "enforcement", "BM": "service"}

SEASONS = {  # weight by month, January first
    "flat": [1] * 12,
    "flood": [.7, .7, .8, .9, 1.3, 2.5, 2.2, 1.4, 1.1, .8, .7, .7],
    "summer": [.8, .8, .8, .9, 1.0, 1.4, 1.8, 1.8, 1.2, .9, .8, .8],
    "winter": [1.8, 1.4, .9, .8, .8, .8, .8, .8, .8, .9, 1.2, 1.6],
    "cny": [1.3, 2.0, 1.6, .9, .85, .85, .85, .85, .85, .85, .85, .9],
    "tea": [.7, .8, 2.2, 2.4, 1.4, .7, .7, .7, .7, .7, .7, .7],
    "autumn": [.7, .7, .7, .7, .7, .8, .8, .8, 1.0, 1.8, 1.8, 1.0],
    "school": [1.1, .4, 1.1, 1.1, 1.1, 1.1, .3, .3, 1.2, 1.1, 1.1, 1.1],
}


def build_categories():
    rows = [dict(code=c[0], name=c[1], platform=PLATFORM_OF[c[0][:2]], department=c[2],
                 deadline_hours=c[3], major="true" if c[4] else "false",
                 deadline_workdays="",  # every sample deadline is in hours
                 description=c[5])
            for c in CATEGORIES]
    return pd.DataFrame(rows)


# -- events ------------------------------------------------------------------------------

SOURCE_LIST = list(SOURCES)  # patrol, hotline, petition, app, inspection, department
SOURCE_SHARE = {"patrol": .55, "hotline": .18, "petition": .04, "app": .12, "inspection": .06,
                "department": .05}
#: coordinate system by source: wgs84, cgcs2000, gcj02, bd09
CRS_BY_SOURCE = {"patrol": (.72, .12, .16, 0), "hotline": (.25, 0, .60, .15),
                 "petition": (.7, 0, .3, 0), "app": (.08, 0, .87, .05),
                 "inspection": (.55, .25, .20, 0), "department": (.45, .05, .40, .10)}
ADDRESS_ONLY = {"patrol": 0, "hotline": .08, "petition": .8, "app": .01, "inspection": .02,
                "department": .12}
NOTHING = {"patrol": 0, "hotline": .015, "petition": 0, "app": .015, "inspection": 0,
           "department": .01}
WEEKDAY = {  # Monday first
    "patrol": [1, 1, 1, 1, 1, .35, .25], "hotline": [1, 1, 1, 1, 1, .85, .8],
    "petition": [1, 1, 1, 1, 1, .05, .05], "app": [1, 1, 1, 1, 1, 1.1, 1.1],
    "inspection": [1, 1, 1, 1, 1, .1, .05], "department": [1, 1, 1, 1, 1, .15, .1]}
HOLIDAY = {"patrol": .4, "hotline": .9, "petition": .05, "app": 1.1, "inspection": .1,
           "department": .1}
_OFFICE = [0, 0, 0, 0, 0, 0, 0, .1, 1.5, 2, 2, 1.5, .2, .3, 1.8, 2, 1.8, .6, .05, 0, 0, 0, 0, 0]
HOURS = {
    "patrol": [.01, .01, .01, .01, .01, .02, .05, .3, 1.5, 2, 2, 1.5, .5, .6, 1.8, 2, 1.8, .8,
               .3, .2, .15, .1, .05, .02],
    "hotline": [.1, .06, .05, .05, .06, .1, .3, .8, 1.5, 1.8, 1.8, 1.5, 1, 1.2, 1.6, 1.6, 1.5,
                1.3, 1.1, 1.2, 1.2, .9, .5, .2],
    "app": [.15, .08, .05, .04, .04, .08, .3, .8, 1.2, 1.3, 1.2, 1.1, 1, 1, 1.1, 1.1, 1.1, 1.2,
            1.4, 1.7, 1.8, 1.6, 1, .4],
    "petition": _OFFICE, "inspection": _OFFICE, "department": _OFFICE,
}


def _variant_addresses(rng, addr, street):
    """Addresses as people say them: prefixes dropped or added, numbers written differently."""
    addr = pd.Series(addr, dtype=object).reset_index(drop=True)
    street = np.asarray(street)
    out = addr.copy()
    u = rng.random(len(addr))
    county = COUNTY[1]
    out[(u >= .40) & (u < .60)] = addr.str.replace(county, "", n=1, regex=False)
    sel = (u >= .60) & (u < .70)
    for unit in (TOWNSHIP[1], STREET[1]):
        out[sel] = out[sel].str.replace(county + unit, "", n=1, regex=False)
    sel = (u >= .70) & (u < .80)
    out[sel] = "浙江省丽水市" + addr[sel]
    sel = (u >= .80) & (u < .90)
    with_bld = addr.str.contains("幢", regex=False)
    alt = np.where(rng.random(len(addr)) < .5, "栋", "号楼")
    out[sel & with_bld] = [a.replace("幢", b) for a, b in zip(addr[sel & with_bld],
                                                               alt[sel & with_bld])]
    out[sel & ~with_bld] = addr[sel & ~with_bld].str.replace("号", "号附近", n=1, regex=False)
    sel = (u >= .90) & street
    out[sel] = [a.replace(c, "", 1) for a, c in zip(addr[sel], [
        next((n for n in COMMUNITY_NAMES if n in a), "") for a in addr[sel]])]
    return out.to_numpy()


def build_events(rng, geo, hh, staff):
    n = N_EVENTS
    cat_codes = np.array([c[0] for c in CATEGORIES])
    freq = np.array([c[6] for c in CATEGORIES], dtype=float)
    where = np.array([c[7] for c in CATEGORIES])
    season = np.array([c[8] for c in CATEGORIES])
    aff = np.array([c[9] for c in CATEGORIES], dtype=float)
    phrases = [c[10] for c in CATEGORIES]

    src = rng.choice(SOURCE_LIST, size=n, p=[SOURCE_SHARE[s] for s in SOURCE_LIST])
    cat = np.empty(n, dtype=int)
    for si, s in enumerate(SOURCE_LIST):
        sel = src == s
        w = freq * aff[:, si]
        cat[sel] = rng.choice(len(CATEGORIES), size=int(sel.sum()), p=w / w.sum())

    # when: day by source (weekday, holidays) and category season, hour by source
    days = np.arange(PERIOD_START.astype("datetime64[D]"), PERIOD_END.astype("datetime64[D]"))
    weekday = (days.astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    month = days.astype("datetime64[M]").astype(int) % 12
    holiday = np.zeros(len(days), dtype=bool)
    for a, b in HOLIDAYS:
        holiday |= (days >= np.datetime64(a)) & (days <= np.datetime64(b))
    day = np.empty(n, dtype=int)
    for s in SOURCE_LIST:
        base = np.array(WEEKDAY[s])[weekday] * np.where(holiday, HOLIDAY[s], 1.0)
        for se in SEASONS:
            sel = (src == s) & (season[cat] == se)
            if sel.any():
                w = base * np.array(SEASONS[se])[month]
                day[sel] = rng.choice(len(days), size=int(sel.sum()), p=w / w.sum())
    hour = np.empty(n, dtype=int)
    for s in SOURCE_LIST:
        sel = src == s
        w = np.array(HOURS[s], dtype=float)
        hour[sel] = rng.choice(24, size=int(sel.sum()), p=w / w.sum())
    secs = hour * 3600 + rng.integers(0, 3600, n)
    at = days[day].astype("datetime64[s]") + secs.astype("timedelta64[s]")

    # where: pools of candidate positions (metres) per kind of place
    hx, hy = deg_to_xy(hh["lon"].to_numpy(), hh["lat"].to_numpy())
    hw = hh["households"].to_numpy() ** 0.8 * np.where(hh["street"], 1.3, 1.0)
    grids = geo["grids"]
    jur_m = to_m(shapely.coverage_union_all([geo["township"], geo["street"]]))
    shapely.prepare(jur_m)

    def near(points_x, points_y, sigma, m):
        i = rng.integers(0, len(points_x), m)
        return (rng.normal(points_x[i], sigma), rng.normal(points_y[i], sigma))

    school = grids[grids["role"] == "school"].iloc[0]
    park = grids[grids["role"] == "park"].iloc[0]
    sch = to_m(school["geometry"]).centroid
    park_m = to_m(park["geometry"])
    # the city market: in the street grid nearest the urban core, the township market at
    # the seat
    core = Point(CORES[0][0])
    sg = grids[grids["code"].str.startswith(STREET[0]) & (grids["role"] == "")]
    gm = to_m(np.array(sg["geometry"], dtype=object))
    market_city = shapely.point_on_surface(gm[int(np.argmin(shapely.distance(gm, core)))])
    market_town = Point(SEAT[0] + 60, SEAT[1] - 40)
    hot = {
        "market": (np.array([market_city.x] * 3 + [market_town.x]),
                   np.array([market_city.y] * 3 + [market_town.y]), 55.0),
        "school": (np.array([sch.x]), np.array([sch.y]), 90.0),
    }
    river = shapely.intersection(geo["river_m"], jur_m)
    pool_rv = shapely.line_interpolate_point(river, rng.uniform(0, 1, 4000), normalized=True)
    rvx = shapely.get_x(pool_rv) + rng.normal(0, 12, 4000)
    rvy = shapely.get_y(pool_rv) + rng.normal(0, 12, 4000)
    pkx, pky = sample_in(park_m.buffer(-5), 3000, rng)

    x = np.empty(n)
    y = np.empty(n)
    kind = where[cat]
    # one event in ten away from the register goes to a hot spot
    spot = rng.random(n) < 0.08
    kind = np.where(spot & np.isin(kind, ["any", "urban"]),
                    np.where(rng.random(n) < .6, "market", "school"), kind)
    for k in np.unique(kind):
        sel = np.flatnonzero(kind == k)
        m = len(sel)
        if k in ("any", "urban", "rural"):
            w = hw * (1.0 if k == "any" else np.where(hh["street"], 1.0, 0.0) if k == "urban"
                      else np.where(hh["street"], 0.0, 1.0))
            i = rng.choice(len(hx), size=m, p=w / w.sum())
            x[sel], y[sel] = hx[i], hy[i]
        elif k in hot:
            px, py, sig = hot[k]
            x[sel], y[sel] = near(px, py, sig, m)
        elif k == "industrial":
            i = rng.integers(0, len(pkx), m)
            x[sel], y[sel] = pkx[i], pky[i]
        elif k == "river":
            i = rng.integers(0, len(rvx), m)
            x[sel], y[sel] = rvx[i], rvy[i]
    # GPS scatter around the true place, by how the position was taken
    jitter = np.select([src == "patrol", src == "app", src == "inspection", src == "department"],
                       [15.0, 25.0, 10.0, 30.0], 0.0)
    jx = x + rng.normal(0, 1, n) * jitter
    jy = y + rng.normal(0, 1, n) * jitter
    ok = shapely.contains_xy(jur_m, jx, jy)
    x, y = np.where(ok, jx, x), np.where(ok, jy, y)
    out = ~shapely.contains_xy(jur_m, x, y)  # hot spot scatter may leave the jurisdiction
    if out.any():
        i = rng.choice(len(hx), size=int(out.sum()), p=hw / hw.sum())
        x[out], y[out] = hx[i], hy[i]

    # what is known: address only, nothing, far outside, just outside (GPS drift)
    u = rng.random(n)
    p_nothing = np.array([NOTHING[s] for s in src])
    p_addr = np.array([ADDRESS_ONLY[s] for s in src])
    nothing = u < p_nothing
    addr_only = (u >= p_nothing) & (u < p_nothing + p_addr)
    located = ~nothing & ~addr_only
    v = rng.random(n)
    far = located & (src != "patrol") & (v < 0.0125)
    edge = located & ~far & (rng.random(n) < 0.0105)
    ring = jur_m.exterior
    if far.any():
        m = int(far.sum())
        t = shapely.line_interpolate_point(ring, rng.uniform(0, 1, m), normalized=True)
        ang = rng.uniform(0, 2 * np.pi, m)
        dist = rng.uniform(2500, 7000, m)
        fx = shapely.get_x(t) + np.cos(ang) * dist
        fy = shapely.get_y(t) + np.sin(ang) * dist
        bad = shapely.dwithin(jur_m, shapely.points(fx, fy), 2000.0)
        while bad.any():
            ang[bad] = rng.uniform(0, 2 * np.pi, int(bad.sum()))
            fx[bad] = shapely.get_x(t[bad]) + np.cos(ang[bad]) * dist[bad]
            fy[bad] = shapely.get_y(t[bad]) + np.sin(ang[bad]) * dist[bad]
            bad = shapely.dwithin(jur_m, shapely.points(fx, fy), 2000.0)
        x[far], y[far] = fx, fy
    if edge.any():
        m = int(edge.sum())
        # start from households near the outline where there are any
        near_edge = np.flatnonzero(shapely.distance(ring, shapely.points(hx, hy)) < 600)
        i = rng.choice(near_edge, size=m)
        base = shapely.points(hx[i], hy[i])
        foot = shapely.line_interpolate_point(ring, shapely.line_locate_point(ring, base))
        fx, fy = shapely.get_x(foot), shapely.get_y(foot)
        dx, dy = fx - hx[i], fy - hy[i]
        norm = np.hypot(dx, dy)
        d = rng.uniform(3, 48, m)
        ex = fx + dx / norm * d
        ey = fy + dy / norm * d
        pts = shapely.points(ex, ey)
        good = ~shapely.contains_xy(jur_m, ex, ey) & (shapely.distance(jur_m, pts) < 49.5)
        x[np.flatnonzero(edge)[good]] = ex[good]
        y[np.flatnonzero(edge)[good]] = ey[good]
        edge[np.flatnonzero(edge)[~good]] = False

    lon, lat = xy_to_deg(x, y)
    lon, lat = np.round(lon, 7), np.round(lat, 7)

    # which grid and which register address the place belongs to
    pts = shapely.points(lon, lat)
    ggeo = np.array(grids["geometry"], dtype=object)
    gtree = shapely.STRtree(ggeo)
    gi = np.full(n, -1)
    q = gtree.query(pts, predicate="intersects")
    order = np.lexsort((q[1], q[0]))
    q = q[:, order]
    first = np.r_[True, q[0, 1:] != q[0, :-1]]
    gi[q[0, first]] = q[1, first]
    miss = gi < 0
    if miss.any():
        gi[miss] = gtree.query_nearest(pts[miss], all_matches=False)[1]
    hpts = shapely.points(hh["lon"].to_numpy(), hh["lat"].to_numpy())
    nh = shapely.STRtree(hpts).query_nearest(pts, all_matches=False)[1]

    # reporters
    reporter_staff = np.full(n, "", dtype=object)
    reporter_name = np.full(n, "", dtype=object)
    reporter_phone = np.full(n, "", dtype=object)
    workers = staff[staff["role"] != "instructor"]
    role_w = workers["role"].map({"grid_head": .15, "full_time_worker": .7,
                                  "part_time_worker": .25}).to_numpy()
    for g, code in enumerate(grids["code"]):
        sel = np.flatnonzero((src == "patrol") & (gi == g))
        if not len(sel):
            continue
        wk = workers[workers["grid_code"] == code]
        w = role_w[(workers["grid_code"] == code).to_numpy()]
        j = rng.choice(len(wk), size=len(sel), p=w / w.sum())
        reporter_staff[sel] = wk["code"].to_numpy()[j]
        reporter_name[sel] = wk["name"].to_numpy()[j]
    public = np.isin(src, ["hotline", "app", "petition"])
    reporter_name[public] = make_names(rng, int(public.sum()))
    reporter_phone[public] = make_phones(rng, int(public.sum()))
    # some hotline callers keep their name to themselves; the platform still has the number
    reporter_name[public & (src == "hotline") & (rng.random(n) < 0.06)] = "匿名"
    dept = np.array([c[2] for c in CATEGORIES])
    insp = src == "inspection"
    reporter_name[insp] = dept[cat[insp]]
    handed = src == "department"
    from_dept = rng.choice(["县公安局", "县市场监管局", "县综合行政执法局", "县自然资源和规划局",
                            "县民政局", "县信访局"], size=n)
    reporter_name[handed] = np.char.add(from_dept[handed].astype(str), "移交")

    # addresses
    reg_addr = hh["address"].to_numpy()[nh]
    street_ev = hh["street"].to_numpy()[nh]
    address = np.full(n, "", dtype=object)
    with_addr = addr_only | (located & np.isin(src, ["hotline", "petition", "department"])) \
        | (located & (src == "app") & (rng.random(n) < .5))
    with_addr &= ~far  # the register knows no address out there
    address[with_addr] = _variant_addresses(rng, reg_addr[with_addr], street_ev[with_addr])

    # description: the place and what happened
    vname = hh["vname"].to_numpy()[nh]
    road = hh["road"].to_numpy()[nh]
    place = np.where(street_ev, vname + road + "附近", vname)
    pick = rng.random(n)
    desc = [ph[int(p * len(ph))] for ph, p in zip((phrases[c] for c in cat), pick)]
    description = np.where(far | nothing, "", place) + np.array(desc, dtype=object)

    # coordinates as reported, in the device's system
    crs_names = np.array(["wgs84", "cgcs2000", "gcj02", "bd09"])
    crs = np.empty(n, dtype=object)
    for s in SOURCE_LIST:
        sel = src == s
        crs[sel] = rng.choice(crs_names, size=int(sel.sum()), p=CRS_BY_SOURCE[s])
    rep_lon, rep_lat = lon.copy(), lat.copy()
    for name in ("gcj02", "bd09"):
        sel = crs == name
        rep_lon[sel], rep_lat[sel] = convert(lon[sel], lat[sel], "wgs84", name)
    rep_lon, rep_lat = np.round(rep_lon, 7), np.round(rep_lat, 7)
    crs[~located] = ""
    lon_txt = np.where(located, np.char.mod("%.7f", rep_lon), "")
    lat_txt = np.where(located, np.char.mod("%.7f", rep_lat), "")

    ev = pd.DataFrame(dict(source=src, category_code=cat_codes[cat], at=at,
                           description=description, lon=lon_txt, lat=lat_txt, crs=crs,
                           address=address, reporter_name=reporter_name,
                           reporter_phone=reporter_phone, reporter_staff_code=reporter_staff))
    flags = pd.DataFrame(dict(far=far, edge=edge, nothing=nothing, addr_only=addr_only,
                              grid=grids["code"].to_numpy()[gi], cat=cat))
    order = np.lexsort((np.arange(n), at))
    ev = ev.iloc[order].reset_index(drop=True)
    flags = flags.iloc[order].reset_index(drop=True)
    dstr = ev["at"].dt.strftime("%Y%m%d")
    ev.insert(0, "code", "E" + dstr + (ev.groupby(dstr).cumcount() + 1).map("{:05d}".format))
    ev.insert(3, "reported_at", ev["at"].dt.strftime("%Y-%m-%dT%H:%M:%S+08:00"))
    return ev, flags


# -- event life cycle --------------------------------------------------------------------

def build_actions(rng, ev, flags):
    """Each event's trail: accept/reject, dispatch, start, resolve, verify, close, rate."""
    n = len(ev)
    cat_i = flags["cat"].to_numpy()
    deadline = np.array([c[3] for c in CATEGORIES])[cat_i] * 3600
    major = np.array([c[4] for c in CATEGORIES])[cat_i]
    dept_of = np.array([c[2] for c in CATEGORIES])
    dept = dept_of[cat_i]
    src = ev["source"].to_numpy()
    t0 = ev["at"].to_numpy().astype("datetime64[s]").astype(np.int64)
    hour = (t0 % 86400) // 3600
    U = rng.uniform
    minute, hour_s, day_s = 60, 3600, 86400

    # accepted by the command room: at once in office hours, otherwise by the duty
    # officer or the next morning
    office = (hour >= 8) & (hour < 18)
    duty = rng.random(n) < 0.5
    next_morning = (t0 // day_s) * day_s + np.where(hour >= 18, day_s, 0) + 8 * hour_s
    t_acc = np.where(office | duty, t0 + U(5, 60, n) * minute,
                     next_morning + U(0, 60, n) * minute).astype(np.int64)
    rejected = ~major & (rng.random(n) < 0.05)
    escalated = ~rejected & (rng.random(n) < np.where(major, 0.35, 0.017))
    handled = ~rejected & ~escalated
    returned = handled & (rng.random(n) < 0.04)
    extended = handled & (rng.random(n) < 0.05)
    rework = handled & (rng.random(n) < 0.03)
    suspended = handled & (rng.random(n) < 0.003)
    overdue = ~rejected & (rng.random(n) < 0.08)

    t_disp = t_acc + (U(5, 90, n) * minute).astype(np.int64)
    t_ret = t_disp + (U(1, 24, n) * hour_s).astype(np.int64)
    t_redisp = t_ret + (U(10, 120, n) * minute).astype(np.int64)
    last = np.where(returned, t_redisp, t_disp)
    t_esc = t_acc + (U(30, 240, n) * minute).astype(np.int64)
    wait = U(15, 60, n) * minute + U(0, 1, n) * np.minimum(12 * hour_s, 0.2 * deadline)
    t_start = last + wait.astype(np.int64)
    t_start = np.where(escalated, t_esc + (U(4, 48, n) * hour_s).astype(np.int64), t_start)
    ext_h = np.select([deadline <= 24 * hour_s, deadline <= 72 * hour_s], [24, 48], 168)
    ext_h = np.where(extended, ext_h, 0)
    due = t0 + deadline + ext_h * hour_s
    before = np.maximum(t0 + deadline - t_start, 2 * hour_s)
    t_ext = t_start + (U(.2, .6, n) * before).astype(np.int64)
    room = np.maximum(due - t_start, 2 * hour_s)
    target = np.where(overdue, due + U(.05, 1.0, n) * deadline + U(1, 12, n) * hour_s,
                      t_start + U(.15, .9, n) * room).astype(np.int64)
    # an extension is asked for because the original deadline cannot be met
    target = np.where(extended & ~overdue,
                      t0 + deadline + (U(.1, .9, n) * ext_h * hour_s).astype(np.int64), target)
    v_close = (U(10, 120, n) * minute).astype(np.int64)
    v_check = (U(30, 480, n) * minute).astype(np.int64)
    floor = np.where(extended, t_ext, t_start) + 600
    t_res = np.maximum(floor, target - v_close - v_check)
    t_ver = t_res + v_check
    t_close = t_ver + v_close
    t_res1 = t_start + ((t_res - t_start) * 0.4).astype(np.int64)
    t_rew = t_start + ((t_res - t_start) * 0.55).astype(np.int64)
    t_susp = t_start + (U(1, 48, n) * hour_s).astype(np.int64)
    t_sup = due + (U(0, 4, n) * hour_s).astype(np.int64)
    late = ~suspended & (t_close > due) & (t_sup < t_close) & (t_sup > last)
    rate_p = pd.Series(src).map({"patrol": .55, "hotline": .8, "petition": .8, "app": .8,
                                 "inspection": .3, "department": .3}).to_numpy()
    rated = ~rejected & ~suspended & (rng.random(n) < rate_p)
    t_rate = t_close + (U(1, 72, n) * hour_s).astype(np.int64)
    p_good = np.array([.03, .04, .10, .28, .55])
    p_bad = np.array([.12, .15, .28, .28, .17])
    bad = (t_close > due) | rework
    rating = np.where(bad, rng.choice(5, n, p=p_bad), rng.choice(5, n, p=p_good)) + 1

    reject_note = rng.choice(["重复上报", "非本级事权，已告知反映人", "信息不实", "无效信息"], n,
                             p=[.45, .25, .15, .15])
    wrong = dept_of[rng.integers(0, len(dept_of), n)]
    wrong = np.where(wrong == dept, "综治办", wrong)
    wrong = np.where(wrong == dept, "便民服务中心", wrong)
    esc_note = np.where(src == "hotline", "转县12345平台", "上报县社会治理综合指挥中心")
    ext_note = np.char.add(np.char.add("延期", ext_h.astype(str)), "小时")

    rows = []  # (mask, time, action, role, note, rating, order)

    def add(mask, t, action, role, note="", rate=None, order=0):
        idx = np.flatnonzero(mask)
        note = np.broadcast_to(np.asarray(note, dtype=object), (n,))[idx]
        rate = np.full(len(idx), "", dtype=object) if rate is None else rate[idx].astype(str)
        rows.append(pd.DataFrame(dict(ev=idx, t=np.asarray(t)[idx], action=action,
                                      actor_role=role, note=note, rating=rate, o=order)))

    add(rejected, t_acc, "reject", "command_room", reject_note, order=1)
    add(~rejected, t_acc, "accept", "command_room", order=1)
    add(escalated, t_esc, "escalate", "command_room", esc_note, order=2)
    add(handled & returned, t_disp, "dispatch", "command_room", wrong, order=2)
    add(handled & ~returned, t_disp, "dispatch", "command_room", dept, order=2)
    add(returned, t_ret, "return", "department", "非本部门职责", order=3)
    add(returned, t_redisp, "dispatch", "platform_office", dept, order=4)
    add(~rejected, t_start, "start", "department", order=5)
    add(extended, t_ext, "extend", "platform_office", ext_note, order=6)
    add(suspended, t_susp, "suspend", "command_room", "挂账：需县级部门协调", order=7)
    add(rework & ~suspended, t_res1, "resolve", "department", order=7)
    add(rework & ~suspended, t_rew, "rework", "grid_worker", "核查未通过：整改不到位", order=8)
    add(~rejected & ~suspended, t_res, "resolve", "department", order=9)
    add(late, t_sup, "supervise", "command_room", "超期督办", order=9)
    add(~rejected & ~suspended, t_ver, "verify", "grid_worker", order=10)
    add(~rejected & ~suspended, t_close, "close", "command_room", order=11)
    add(rated, t_rate, "rate", "reporter", rate=rating, order=12)
    act = pd.concat(rows, ignore_index=True)
    act = act.sort_values(["ev", "t", "o"], kind="stable").reset_index(drop=True)
    # strictly increasing times within an event (ties moved on by a second)
    k = act.groupby("ev").cumcount().to_numpy()
    t = act["t"].to_numpy() - k
    t = pd.Series(t).groupby(act["ev"].to_numpy()).cummax().to_numpy() + k
    act["t"] = t
    end = PERIOD_END.astype(np.int64)
    act = act[act["t"] < end].reset_index(drop=True)
    act["seq"] = act.groupby("ev").cumcount() + 1
    act["event_code"] = ev["code"].to_numpy()[act["ev"]]
    act["at"] = pd.Series(act["t"].to_numpy().astype("datetime64[s]")).dt.strftime(
        "%Y-%m-%dT%H:%M:%S+08:00")
    return act[["event_code", "seq", "at", "action", "actor_role", "note", "rating"]]


# -- output ------------------------------------------------------------------------------

def write_csv(df, path):
    df.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def write_gpkg(layers, path):
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2026-01-01T00:00:00Z"})
    if path.exists():
        path.unlink()
    for name, frame, gtype in layers:
        pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG", geometry_type=gtype,
                                layer_options={"GEOMETRY_NAME": "geometry"})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    r_geo, r_hh, r_roads, r_staff, r_ev, r_act = np.random.default_rng(args.seed).spawn(6)

    rural = r_hh.lognormal(np.log(330), 0.35, 12).clip(150, 700).round().astype(int)
    geo = build_geography(r_geo, int(rural.sum()) + 900)
    hamlets = build_hamlets(r_hh, geo, rural)
    roads = build_roads(r_roads, geo, hamlets)
    hh = build_households(r_hh, geo, hamlets, roads)

    grids = geo["grids"].copy()
    sums = hh.groupby("grid_code")[["households", "population", "buildings"]].sum()
    for c in ("households", "population", "buildings"):
        grids[c] = grids["code"].map(sums[c]).fillna(0).astype(int)
    staff, understaffed = build_staff(r_staff, grids)
    cats = build_categories()
    ev, flags = build_events(r_ev, geo, hh, staff)
    actions = build_actions(r_act, ev, flags)

    # layers, columns exactly as gridgeo.layers says
    vil = geo["villages"]
    divisions = pd.concat([
        pd.DataFrame([dict(code=COUNTY[0], name=COUNTY[1], level="county", parent_code=None,
                           geometry=None),
                      dict(code=TOWNSHIP[0], name=TOWNSHIP[1], level="township",
                           parent_code=COUNTY[0], geometry=geo["township"]),
                      dict(code=STREET[0], name=STREET[1], level="street",
                           parent_code=COUNTY[0], geometry=geo["street"])]),
        vil[["code", "name", "level", "parent_code", "geometry"]],
    ], ignore_index=True).sort_values("code", kind="stable").reset_index(drop=True)

    def gdf(frame, layer):
        cols = LAYERS[layer].column_names
        return gpd.GeoDataFrame(frame[cols], geometry=gpd.GeoSeries(
            list(frame["geometry"]), index=frame.index), crs="EPSG:4326")

    hh_out = hh.assign(geometry=shapely.points(hh["lon"].to_numpy(), hh["lat"].to_numpy()))
    grids = grids.sort_values("code", kind="stable").reset_index(drop=True)
    write_gpkg([("divisions", gdf(divisions, "divisions"), "Polygon"),
                ("grids", gdf(grids, "grids"), "Polygon"),
                ("households", gdf(hh_out, "households"), "Point"),
                ("roads", gdf(roads, "roads"), "LineString")], out / "township.gpkg")
    write_csv(staff, out / "staff.csv")
    write_csv(cats, out / "categories.csv")
    write_csv(ev[LAYERS["events"].column_names], out / "events.csv")
    write_csv(actions, out / "event_actions.csv")

    if not args.quiet:
        n_loc = (ev["lon"] != "").sum()
        closed = actions.loc[actions["action"] == "close", "event_code"].nunique()
        print(f"villages {int((vil['level'] == 'village').sum())}, communities "
              f"{int((vil['level'] == 'community').sum())}, grids {len(grids)}, "
              f"household points {len(hh)}, households {int(hh['households'].sum())}, "
              f"population {int(hh['population'].sum())}")
        print(f"roads {int((roads['kind'] == 'road').sum())}, rivers "
              f"{int((roads['kind'] == 'river').sum())}, staff rows {len(staff)}, "
              f"categories {len(cats)}")
        print(f"events {len(ev)} (located {n_loc}, gcj02 "
              f"{(ev['crs'] == 'gcj02').sum() / n_loc:.1%} of located, address only "
              f"{int(flags['addr_only'].sum())}, nothing {int(flags['nothing'].sum())}, far "
              f"{int(flags['far'].sum())}, just outside {int(flags['edge'].sum())}); "
              f"actions {len(actions)}, closed {closed}")
        print("under-staffed: " + ", ".join(f"{g} ({why})" for g, why in understaffed.items()))
        for name in FILES:
            p = out / name
            digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            print(f"  {name:20s} {p.stat().st_size / 1e6:6.2f} MB  sha256 {digest}")
        print(f"done in {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
