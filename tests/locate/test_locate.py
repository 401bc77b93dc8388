"""gridgeo.locate: the point-in-grid locator and its rules (issue 3).

Most layers here sit on a dyadic lattice (multiples of 1/128 degree from 120E, 30N), so
that vertices, edge midpoints and quarter points are exactly representable: a point
"on an edge" is then really on it, and the rules for boundaries can be checked exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, box

from gridgeo import crs
from gridgeo.errors import (
    InvalidCoordinates,
    InvalidGeometry,
    InvalidInput,
    OutsideJurisdiction,
    UnknownCRS,
)
from gridgeo.locate import LocateResult, Locator, locate_frame, metric_crs

S = 1.0 / 128  # lattice step in degrees: about 750 m east-west, 870 m north-south here
GEOD = Geod(ellps="WGS84")


def X(u: float) -> float:
    return 120.0 + u * S


def Y(v: float) -> float:
    return 30.0 + v * S


def poly(*uv) -> Polygon:
    return Polygon([(X(u), Y(v)) for u, v in uv])


def sq(u0, v0, u1, v1) -> Polygon:
    return box(X(u0), Y(v0), X(u1), Y(v1))


def layer(items: dict, crs_=4326) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": list(items), "name": [f"grid {c}" for c in items]},
        geometry=list(items.values()),
        crs=crs_,
    )


GRIDS = {
    # four squares meeting at a vertex (1, 1)
    "A": sq(0, 0, 1, 1),
    "B": sq(1, 0, 2, 1),
    "C": sq(0, 1, 1, 2),
    "D": sq(1, 1, 2, 2),
    # three grids meeting at (5, 1) with sloping edges
    "W3": poly((4, 0), (5, 1), (5, 2), (4, 2)),
    "E3": poly((5, 1), (6, 0), (6, 2), (5, 2)),
    "S3": poly((4, 0), (6, 0), (5, 1)),
    # four triangles meeting at (9, 1)
    "N4": poly((8, 2), (9, 1), (10, 2)),
    "E4": poly((10, 2), (9, 1), (10, 0)),
    "S4": poly((10, 0), (9, 1), (8, 0)),
    "W4": poly((8, 0), (9, 1), (8, 2)),
    # a T-junction: (14, 1) is a vertex of R1 and R2 but lies mid-edge on L
    "L": sq(12, 0, 14, 2),
    "R1": sq(14, 0, 15, 1),
    "R2": sq(14, 1, 15, 2),
    # a ring whose hole is exactly another grid
    "O": Polygon(sq(0, 4, 4, 8).exterior.coords, [sq(1, 5, 3, 7).exterior.coords]),
    "I": sq(1, 5, 3, 7),
    # a grid in two parts
    "M": MultiPolygon([sq(6, 4, 7, 5), sq(8, 4, 9, 5)]),
    # a ring with an empty hole
    "H": Polygon(sq(11, 4, 15, 8).exterior.coords, [sq(12, 5, 14, 7).exterior.coords]),
}


@pytest.fixture(scope="module")
def grids() -> gpd.GeoDataFrame:
    return layer(GRIDS)


@pytest.fixture(scope="module")
def loc(grids) -> Locator:
    return Locator.from_frame(grids, plan="2024-v1")


@pytest.fixture(scope="module")
def loc_fine(grids) -> Locator:
    """The same layer with very coarse cells, so nearly every point takes the exact test."""
    return Locator.from_frame(grids, plan="2024-v1", cells_per_grid=1)


def _exact_inside(geom, px: Fraction, py: Fraction) -> bool:
    """Even-odd point in polygon in exact rational arithmetic (a test oracle)."""
    inside = False
    for part in shapely.get_parts(geom):
        for ring in shapely.get_rings(part):
            c = [(Fraction(a), Fraction(b)) for a, b in shapely.get_coordinates(ring)]
            for (ax, ay), (bx, by) in zip(c[:-1], c[1:]):
                if (ay > py) != (by > py) and ax + (py - ay) * (bx - ax) / (by - ay) > px:
                    inside = not inside
    return inside


def east_of(x, y, grids=GRIDS) -> list:
    """The oracle for rule 2: the grid holding ``(x + e, y + d)`` for ``0 < d << e``,
    here e = 1e-30 and d = 1e-60, exactly (finite offsets in floats can cross an edge
    that leaves the point almost due east)."""
    eps, delta = Fraction(1, 10**30), Fraction(1, 10**60)
    out = []
    for xi, yi in zip(x, y):
        near = [c for c, g in grids.items() if shapely.dwithin(g, shapely.Point(xi, yi), 1e-6)]
        hit = sorted(
            c for c in near if _exact_inside(grids[c], Fraction(xi) + eps, Fraction(yi) + delta)
        )
        assert len(hit) <= 1
        out.append(hit[0] if hit else None)
    return out


def touching(x, y, grids=GRIDS) -> list:
    """Rule 4: the smallest code among grids whose closed polygon holds the point."""
    out = []
    for xi, yi in zip(x, y):
        hit = sorted(c for c, g in grids.items() if shapely.intersects_xy(g, xi, yi))
        out.append(hit[0] if hit else None)
    return out


def boundary_points():
    """Every vertex, edge midpoint and edge quarter point of the layer (all exact)."""
    pts = []
    for g in GRIDS.values():
        for ring in shapely.get_rings(shapely.get_parts(g)):
            c = shapely.get_coordinates(ring)
            a, b = c[:-1], c[1:]
            for t in (0.0, 0.25, 0.5, 0.75):
                pts.append(a + t * (b - a))
    pts = np.unique(np.concatenate(pts), axis=0)
    return pts[:, 0], pts[:, 1]


# -- inside ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "u, v, code",
    [
        (0.5, 0.5, "A"),
        (1.5, 0.5, "B"),
        (0.5, 1.5, "C"),
        (1.5, 1.5, "D"),
        (4.5, 1.5, "W3"),
        (5.5, 1.5, "E3"),
        (5.0, 0.5, "S3"),
        (9.0, 1.7, "N4"),
        (9.7, 1.0, "E4"),
        (9.0, 0.3, "S4"),
        (8.3, 1.0, "W4"),
        (13.0, 1.0, "L"),
        (14.5, 0.5, "R1"),
        (14.5, 1.5, "R2"),
        (0.5, 4.5, "O"),
        (3.5, 7.5, "O"),
        (2.0, 6.0, "I"),
        (6.5, 4.5, "M"),
        (8.5, 4.5, "M"),
        (11.5, 7.5, "H"),
    ],
)
def test_inside(loc, loc_fine, u, v, code):
    for locator in (loc, loc_fine):
        assert locator.locate_one(X(u), Y(v)) == LocateResult(code, False, 0.0, "2024-v1")
        assert locator.locate([X(u)], [Y(v)]).tolist() == [code]


def test_codes_sorted_and_attributes_kept_out(loc, grids):
    assert list(loc.codes) == sorted(GRIDS)
    assert len(loc) == len(grids)
    assert "name" not in repr(loc.__slots__)


# -- boundaries: rule 2 and rule 4 ---------------------------------------------------


def test_every_vertex_and_edge_point_has_exactly_the_rule_grid(loc, loc_fine):
    x, y = boundary_points()
    expected = [e if e is not None else t for e, t in zip(east_of(x, y), touching(x, y))]
    assert None not in expected
    for locator in (loc, loc_fine):
        assert locator.locate(x, y).tolist() == expected
        assert [locator.locate_one(a, b).code for a, b in zip(x, y)] == expected
        detail = locator.locate_detail(x, y)
        assert not detail["snapped"].any() and (detail["distance_m"] == 0).all()
    # the answer always covers the point (closed polygon)
    for xi, yi, code in zip(x, y, expected):
        assert shapely.intersects_xy(GRIDS[code], xi, yi)


@pytest.mark.parametrize(
    "u, v, code, why",
    [
        (1.0, 0.5, "B", "vertical edge A|B: the grid to the east"),
        (0.5, 1.0, "C", "horizontal edge A|C: the grid to the north"),
        (1.0, 1.0, "D", "vertex of four squares: north-east"),
        (5.0, 1.0, "E3", "vertex of three grids"),
        (4.5, 0.5, "S3", "sloping edge W3|S3: east of it is S3"),
        (5.5, 0.5, "E3", "sloping edge S3|E3: east of it is E3"),
        (5.0, 1.5, "E3", "vertical edge W3|E3"),
        (9.0, 1.0, "E4", "centre of four triangles"),
        (8.5, 1.5, "N4", "diagonal W4|N4"),
        (14.0, 1.0, "R2", "T-junction: vertex of R1 and R2 on L's edge"),
        (14.0, 0.5, "R1", "L|R1"),
        (1.0, 6.0, "I", "west side of the hole: the inner grid is east"),
        (3.0, 6.0, "O", "east side of the hole: the ring is east"),
        (2.0, 7.0, "O", "north side of the hole: the ring is north"),
        (2.0, 5.0, "I", "south side of the hole"),
        (2.0, 1.0, "B", "outer east edge, vertex of B and D: smallest code"),
        (2.0, 0.5, "B", "outer east edge of B"),
        (0.5, 2.0, "C", "outer north edge of C"),
        (12.0, 6.0, "H", "edge of an empty hole"),
    ],
)
def test_named_boundary_cases(loc, u, v, code, why):
    assert loc.locate_one(X(u), Y(v)) == LocateResult(code, False, 0.0, "2024-v1"), why


def test_sjoin_within_gives_vertices_no_grid(grids, loc):
    pts = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy([X(1.0), X(5.0)], [Y(1.0), Y(1.0)]), crs=4326
    )
    joined = gpd.sjoin(pts, grids, predicate="within", how="left")
    assert joined["code"].isna().all()
    assert loc.locate([X(1.0), X(5.0)], [Y(1.0), Y(1.0)]).tolist() == ["D", "E3"]


def test_exact_on_and_next_to_a_sloping_edge(monkeypatch):
    # Two grids sharing a sloping edge whose direction has many significant bits, so that
    # orientation products round. Points exactly on it (eighths of the edge, exactly
    # representable) and within a few ulps of it.
    import gridgeo.locate as module

    calls = []
    exact_left = module._exact_left
    monkeypatch.setattr(module, "_exact_left", lambda *a: calls.append(a) or exact_left(*a))
    u = 8 * 0x2F5A1E7F13 * 2.0**-46  # about 0.0145 degrees, a multiple of 8 ulps of 120
    v = 8 * 0x3B2C4D5E6F * 2.0**-48  # about 0.0072 degrees, a multiple of 8 ulps of 30
    a = (120.0 + 2.0**-10, 30.0 + 2.0**-12)
    b = (a[0] + u, a[1] + v)
    g1 = Polygon([a, b, (a[0] - 0.01, b[1] + 0.01)])
    g2 = Polygon([a, (b[0] + 0.01, a[1] - 0.005), b])
    on_x = np.array([a[0] + k * u / 8 for k in range(1, 8)])
    on_y = np.array([a[1] + k * v / 8 for k in range(1, 8)])
    assert (
        not shapely.contains_xy(g1, on_x, on_y).any()
        and not shapely.contains_xy(g2, on_x, on_y).any()
    )
    t = np.linspace(0.01, 0.99, 300)
    x = a[0] + t * u
    y = a[1] + t * v
    xs = np.concatenate([on_x] + [x + k * 1.5e-14 for k in (-2, -1, 0, 1, 2)])
    ys = np.concatenate([on_y] + [y] * 5)
    for cpg in (1, 64):
        loc = Locator.from_frame(layer({"g1": g1, "g2": g2}), cells_per_grid=cpg)
        got = loc.locate(xs, ys)
        assert got.tolist() == [loc.locate_one(p, q).code for p, q in zip(xs, ys)]
        in1 = shapely.contains_xy(g1, xs, ys)  # GEOS predicates are exact
        in2 = shapely.contains_xy(g2, xs, ys)
        assert (got[in1] == "g1").all() and (got[in2] == "g2").all()
        assert (got[:7] == "g2").all()  # on the edge: the grid east of it
    assert len(calls) >= 2 * 2 * 7  # the exact fallback decided the points on the edge


# -- snapping, outside --------------------------------------------------------------------


def metres_east(lon, lat, d):
    """Longitude ``d`` metres east of ``lon`` at ``lat``, and the geodesic distance."""
    lon2 = lon + d / (111_320.0 * math.cos(math.radians(lat)))
    return lon2, GEOD.inv(lon, lat, lon2, lat)[2]


def test_snapped_within_tolerance_with_metric_distance(loc):
    lon, dist = metres_east(X(2), Y(0.5), 30.0)  # 30 m east of B's outer edge
    r = loc.locate_one(lon, Y(0.5))
    assert r.code == "B" and r.snapped and r.plan == "2024-v1"
    assert r.distance_m == pytest.approx(dist, rel=1e-3)
    detail = loc.locate_detail([lon], [Y(0.5)])
    assert (
        detail.loc[0, "code"] == "B" and detail.loc[0, "snapped"] and not detail.loc[0, "outside"]
    )
    assert detail.loc[0, "distance_m"] == pytest.approx(dist, rel=1e-3)
    assert loc.locate([lon], [Y(0.5)]).tolist() == ["B"]


def test_snapped_into_an_empty_hole(loc):
    lon, dist = metres_east(X(12), Y(6), 20.0)  # 20 m inside H's hole, from its west side
    r = loc.locate_one(lon, Y(6))
    assert (r.code, r.snapped) == ("H", True)
    assert r.distance_m == pytest.approx(dist, rel=1e-3)


def test_beyond_tolerance_is_outside(loc, grids):
    lon, _ = metres_east(X(2), Y(0.5), 80.0)
    with pytest.raises(OutsideJurisdiction, match="2024-v1"):
        loc.locate_one(lon, Y(0.5))
    assert loc.locate([lon], [Y(0.5)]).tolist() == [None]
    d = loc.locate_detail([lon], [Y(0.5)])
    assert d.loc[0, "outside"] and not d.loc[0, "snapped"] and np.isnan(d.loc[0, "distance_m"])
    wide = Locator.from_frame(grids, tolerance=100.0)
    assert wide.locate_one(lon, Y(0.5)).snapped
    none = Locator.from_frame(grids, tolerance=0.0)
    with pytest.raises(OutsideJurisdiction):
        none.locate_one(metres_east(X(2), Y(0.5), 1.0)[0], Y(0.5))
    assert none.locate_one(X(2), Y(0.5)).code == "B"  # on the edge is not snapping


def test_middle_of_empty_hole_and_far_away_are_outside(loc):
    with pytest.raises(OutsideJurisdiction):
        loc.locate_one(X(13), Y(6))
    for lon, lat in [(139.6917, 35.6895), (0.0, 0.0), (-74.0, 40.7)]:  # Tokyo, null island, NYC
        with pytest.raises(OutsideJurisdiction):
            loc.locate_one(lon, lat)


def test_snapping_picks_the_nearest_grid(loc):
    # in the gap between the square cluster (ends at u=2) and W3 (starts at u=4), near W3
    lon, dist = metres_east(X(4), Y(1.5), -10.0)
    r = loc.locate_one(lon, Y(1.5))
    assert (r.code, r.snapped) == ("W3", True) and r.distance_m == pytest.approx(dist, rel=1e-3)


# -- coordinate systems -------------------------------------------------------------------


@pytest.mark.parametrize("system", ["gcj02", "GCJ-02", "bd09", "baidu"])
def test_gcj02_and_bd09_input_converted_first(loc, system):
    lon, lat = X(1) - 0.001, Y(0.5)  # about 100 m inside A, west of B
    assert loc.locate_one(lon, lat).code == "A"
    slon, slat = crs.convert(lon, lat, "wgs84", system)
    assert loc.locate([slon], [slat]).tolist() != ["A"]  # the offset matters here
    assert loc.locate([slon], [slat], crs=system).tolist() == ["A"]
    assert loc.locate_one(float(slon), float(slat), crs=system).code == "A"
    assert loc.locate_detail([slon], [slat], crs=system).loc[0, "code"] == "A"


def test_cgcs2000_is_wgs84_and_unknown_crs_raises(loc):
    assert loc.locate_one(X(0.5), Y(0.5), crs="cgcs2000").code == "A"
    with pytest.raises(UnknownCRS):
        loc.locate_one(X(0.5), Y(0.5), crs="mars")
    with pytest.raises(UnknownCRS):
        loc.locate([X(0.5)], [Y(0.5)], crs="EPSG:3857")


def test_metric_crs_zones():
    assert metric_crs(120.3).to_epsg() == 4549
    assert metric_crs(117.0).to_epsg() == 4548
    assert metric_crs(75.0).to_epsg() == 4534
    assert metric_crs(135.0).to_epsg() == 4554
    assert "Gauss-Kruger CM 120E" in metric_crs(121.4).name
    assert metric_crs(-0.1, 51.5).to_epsg() is None  # azimuthal equidistant elsewhere


# -- invalid input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lon, lat",
    [
        (math.nan, 30.0),
        (120.0, math.nan),
        (math.inf, 30.0),
        (120.0, -math.inf),
        (181.0, 30.0),
        (-180.5, 30.0),
        (120.0, 90.5),
        ("x", 30.0),
        (None, 30.0),
    ],
)
def test_invalid_coordinates_raise(loc, lon, lat):
    with pytest.raises(InvalidCoordinates):
        loc.locate_one(lon, lat)


def test_swapped_coordinates(loc):
    with pytest.raises(InvalidCoordinates, match="swapped"):
        loc.locate_one(Y(0.5), X(0.5))  # lat first: lat > 90
    with pytest.raises(InvalidCoordinates, match="swapped"):
        loc.locate_one(43.82, 87.62)  # Urumqi lat first: both in range
    detail = loc.locate_detail([Y(0.5), 43.82, X(0.5)], [X(0.5), 87.62, Y(0.5)])
    assert detail["swapped"].tolist() == [True, True, False]
    assert detail["invalid"].tolist() == [True, False, False]
    assert detail["code"].tolist() == [None, None, "A"]


def test_invalid_rows_in_arrays_are_flagged(loc):
    lon = np.array([X(0.5), np.nan, np.inf, 200.0, X(0.5), -np.inf])
    lat = np.array([Y(0.5), Y(0.5), Y(0.5), Y(0.5), 95.0, np.nan])
    assert loc.locate(lon, lat).tolist() == ["A", None, None, None, None, None]
    detail = loc.locate_detail(lon, lat)
    assert detail["invalid"].tolist() == [False, True, True, True, True, True]
    assert detail["outside"].tolist() == [False, True, True, True, True, True]
    assert detail["code"].dtype == object


def test_array_shapes_series_index_and_empty(loc):
    lon = np.full((2, 3), X(0.5))
    lat = np.full((2, 3), Y(1.5))
    assert loc.locate(lon, lat).shape == (2, 3)
    assert (loc.locate(lon, lat) == "C").all()
    s = pd.Series([X(0.5), X(1.5)], index=["p", "q"])
    detail = loc.locate_detail(s, pd.Series([Y(0.5), Y(0.5)], index=["p", "q"]))
    assert list(detail.index) == ["p", "q"] and detail["code"].tolist() == ["A", "B"]
    assert detail.attrs["plan"] == "2024-v1"
    assert list(detail.columns) == [
        "code",
        "snapped",
        "distance_m",
        "outside",
        "invalid",
        "swapped",
    ]
    assert loc.locate([], []).shape == (0,)
    assert len(loc.locate_detail(np.array([]), np.array([]))) == 0


# -- overlaps, duplicates, building ------------------------------------------------------


def test_overlapping_grids_smallest_code_wins():
    lay = layer({"X2": sq(1, 1, 3, 3), "X1": sq(0, 0, 2, 2), "X3": sq(1.5, 1.5, 2.5, 2.5)})
    for cpg in (1, 256):
        loc = Locator.from_frame(lay, cells_per_grid=cpg)
        u = [0.5, 1.5, 2.5, 1.75, 2.25]
        v = [0.5, 1.5, 2.5, 1.75, 2.25]
        want = ["X1", "X1", "X2", "X1", "X2"]
        assert loc.locate([X(a) for a in u], [Y(b) for b in v]).tolist() == want
        assert [loc.locate_one(X(a), Y(b)).code for a, b in zip(u, v)] == want


def test_rows_sharing_a_code_and_integer_codes(tmp_path):
    lay = gpd.GeoDataFrame(
        {"code": [7, 3, 7]}, geometry=[sq(0, 0, 1, 1), sq(1, 0, 2, 1), sq(2, 0, 3, 1)], crs=4326
    )
    loc = Locator.from_frame(lay)
    assert loc.locate([X(0.5), X(1.5), X(2.5)], [Y(0.5)] * 3).tolist() == [7, 3, 7]
    loc.save(tmp_path / "ints.npz")
    back = Locator.load(tmp_path / "ints.npz")
    assert back.locate_one(X(2.5), Y(0.5)).code == 7


def test_layer_in_another_crs_is_reprojected(grids):
    projected = grids.to_crs(4549)
    loc = Locator.from_frame(projected)
    assert loc.locate([X(0.5), X(2.0), X(9.7)], [Y(0.5), Y(6.0), Y(1.0)]).tolist() == [
        "A",
        "I",
        "E4",
    ]
    cgcs = grids.set_crs(4490, allow_override=True)
    assert Locator.from_frame(cgcs).locate_one(X(0.5), Y(0.5)).code == "A"


@pytest.mark.parametrize(
    "frame, error",
    [
        (gpd.GeoDataFrame({"code": ["a"]}, geometry=[box(120, 30, 120.01, 30.01)]), UnknownCRS),
        (
            gpd.GeoDataFrame({"id": ["a"]}, geometry=[box(120, 30, 120.01, 30.01)], crs=4326),
            InvalidInput,
        ),
        (
            gpd.GeoDataFrame({"code": [None]}, geometry=[box(120, 30, 120.01, 30.01)], crs=4326),
            InvalidInput,
        ),
        (
            gpd.GeoDataFrame(
                {"code": ["a", 1]}, geometry=[box(120, 30, 120.01, 30.01)] * 2, crs=4326
            ),
            InvalidInput,
        ),
        (
            gpd.GeoDataFrame(
                {"code": ["bow"]},
                geometry=[Polygon([(120, 30), (120.01, 30.01), (120.01, 30), (120, 30.01)])],
                crs=4326,
            ),
            InvalidGeometry,
        ),
        (
            gpd.GeoDataFrame({"code": ["pt"]}, geometry=[shapely.Point(120, 30)], crs=4326),
            InvalidGeometry,
        ),
        (gpd.GeoDataFrame({"code": ["e"]}, geometry=[Polygon()], crs=4326), InvalidGeometry),
        (gpd.GeoDataFrame({"code": []}, geometry=[], crs=4326), InvalidGeometry),
    ],
)
def test_bad_layers_raise(frame, error):
    with pytest.raises(error):
        Locator.from_frame(frame)


# -- persistence ------------------------------------------------------------------------


def test_save_load_round_trip_identical(loc, tmp_path):
    path = tmp_path / "plan.idx"  # any name: no suffix is added
    loc.save(path)
    assert path.exists()
    back = Locator.load(path)
    assert (back.plan, back.tolerance, list(back.codes)) == (
        loc.plan,
        loc.tolerance,
        list(loc.codes),
    )
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(X(-1), X(16), 20_000), boundary_points()[0]])
    y = np.concatenate([rng.uniform(Y(-1), Y(9), 20_000), boundary_points()[1]])
    a, b = loc.locate_detail(x, y), back.locate_detail(x, y)
    pd.testing.assert_frame_equal(a, b)
    inside = np.flatnonzero(~a["outside"].to_numpy())[:2000]
    assert [back.locate_one(x[i], y[i]).code for i in inside] == a["code"].to_numpy()[
        inside
    ].tolist()
    with np.load(path, allow_pickle=False) as z:  # a plain npz, no pickled objects
        assert "table" in z.files


def test_pickle_round_trip(loc):
    import pickle

    back = pickle.loads(pickle.dumps(loc))
    x, y = boundary_points()
    assert back.locate(x, y).tolist() == loc.locate(x, y).tolist()
    assert back.locate_one(X(0.5), Y(0.5)) == loc.locate_one(X(0.5), Y(0.5))


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", meta=np.array('{"format": "something"}'))
    with pytest.raises(InvalidInput):
        Locator.load(tmp_path / "other.npz")


# -- agreement with sjoin on an irregular layer ------------------------------------------


@pytest.fixture(scope="module")
def voronoi():
    rng = np.random.default_rng(11)
    region = box(120.0, 30.0, 120.1, 30.08)
    seeds = shapely.multipoints(rng.uniform((120.0, 30.0), (120.1, 30.08), size=(300, 2)))
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=region.buffer(0.1)))
    cells = shapely.segmentize(shapely.intersection(cells, region), 0.001)
    codes = [f"33010{i:04d}" for i in rng.permutation(len(cells))]
    return gpd.GeoDataFrame({"code": codes}, geometry=cells, crs=4326)


def test_agrees_with_sjoin_off_boundaries(voronoi):
    rng = np.random.default_rng(5)
    n = 30_000
    x = rng.uniform(119.99, 120.11, n)  # some outside the layer, some snapped
    y = rng.uniform(29.99, 30.09, n)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326)
    joined = gpd.sjoin(pts, voronoi, predicate="within", how="left")
    assert not joined.index.duplicated().any()
    theirs = joined["code"].astype(object).where(joined["code"].notna(), None).to_numpy()
    answers = []
    for cpg in (1, 16, 256):
        loc = Locator.from_frame(voronoi, cells_per_grid=cpg, tolerance=0.0)
        ours = loc.locate(x, y)
        assert (ours == theirs).all()
        answers.append(ours)
    snapping = Locator.from_frame(voronoi).locate_detail(x, y)
    differ = snapping["code"].to_numpy() != theirs
    assert (snapping["snapped"].to_numpy() == differ).all()  # only snapped points differ
    assert 0 < differ.sum() < 0.02 * n


def test_locate_one_matches_locate(voronoi):
    loc = Locator.from_frame(voronoi)
    rng = np.random.default_rng(8)
    x = rng.uniform(120.0, 120.1, 5000)
    y = rng.uniform(30.0, 30.08, 5000)
    verts = shapely.get_coordinates(voronoi.geometry.array)[::7]  # exact shared vertices
    x, y = np.concatenate([x, verts[:, 0]]), np.concatenate([y, verts[:, 1]])
    many = loc.locate(x, y)
    assert None not in many.tolist()
    assert [loc.locate_one(p, q).code for p, q in zip(x, y)] == many.tolist()
    # the vertices follow rule 2 (or rule 4 on the layer's outer edge), checked exactly
    vx, vy = verts[:150, 0], verts[:150, 1]
    layer_ = dict(zip(voronoi["code"], voronoi.geometry))
    want = [e or t for e, t in zip(east_of(vx, vy, layer_), touching(vx, vy, layer_))]
    assert loc.locate(vx, vy).tolist() == want


# -- the GeoDataFrame helper ---------------------------------------------------------------


def test_locate_frame_geodataframe(loc):
    pts = gpd.GeoDataFrame(
        {"event": ["e1", "e2", "e3"]},
        geometry=gpd.points_from_xy(
            [X(0.5), metres_east(X(2), Y(0.5), 30)[0], 139.7], [Y(0.5), Y(0.5), 35.7]
        ),
        crs=4326,
        index=[10, 11, 12],
    )
    out = locate_frame(pts, loc)
    assert list(out.index) == [10, 11, 12] and out["event"].tolist() == ["e1", "e2", "e3"]
    assert out["grid_code"].tolist() == ["A", "B", None]
    assert out["snapped"].tolist() == [False, True, False]
    assert (
        out["distance_m"].iloc[0] == 0
        and 29 < out["distance_m"].iloc[1] < 31
        and np.isnan(out["distance_m"].iloc[2])
    )
    assert out.attrs["plan"] == "2024-v1"
    assert "grid_code" not in pts.columns  # the input is not modified
    # projected points are brought back to lon/lat
    assert locate_frame(pts.to_crs(4549), loc)["grid_code"].tolist()[:2] == ["A", "B"]


def test_locate_frame_dataframe_with_gcj02_columns(loc):
    lon, lat = crs.convert([X(1) - 0.001, X(1.5)], [Y(0.5), Y(1.5)], "wgs84", "gcj02")
    df = pd.DataFrame({"lng": lon, "lat": lat, "n": [1, 2]})
    out = locate_frame(df, loc, crs="gcj02", lon="lng")
    assert out["grid_code"].tolist() == ["A", "D"]
    with pytest.raises(InvalidGeometry):
        locate_frame(gpd.GeoDataFrame(geometry=[box(120, 30, 121, 31)], crs=4326), loc)
