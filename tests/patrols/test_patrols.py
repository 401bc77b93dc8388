"""Patrol tracks and their figures (gridgeo.patrols): GPX good and broken, cleaning, and
coverage on a hand-built pair of grids whose answer is worked out below."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import gpxpy.gpx
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from gridgeo import crs
from gridgeo.errors import InvalidTrack
from gridgeo.patrols import clean_track, parse_gpx, parse_json, patrol_coverage
from gridgeo.patrols.tracks import segment_m

# -- the hand-built township, drawn in metres (CGCS2000 GK zone 120E, EPSG:4549) ---------
# Grid A is [0,1000] x [0,1000] m from the origin, grid B the square east of it. Worker w1
# (grid A) walks y = 500 from x = 0 to 990 at 1 m/s, one fix a second; worker w2 (grid B)
# walks x = 1500 from y = 100 to 200 the same way.
X0, Y0 = 450_000.0, 3_142_000.0  # about 119.49E 28.40N
TO_LL = Transformer.from_crs(4549, 4326, always_xy=True)


def ll(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(TO_LL.transform(xy[:, 0] + X0, xy[:, 1] + Y0)))


GRIDS = gpd.GeoDataFrame({"code": ["331124201201001", "331124201201002"], "name": ["A", "B"],
                          "village_code": ["331124201201"] * 2},
                         geometry=[ll(shapely.box(0, 0, 1000, 1000)), ll(shapely.box(1000, 0, 2000, 1000))], crs=4326)
# Households of A at these distances from w1's line y = 500: 0, 20, 48 covered; 52, 100,
# 300 not; a point of 3 households 30 m away covered: 1 + 1 + 1 + 3 = 6 of 9. (Distances
# are measured to within 1.4 m: the 2 m cells of gridgeo.patrols.coverage.)
HH_A = [(500, 500, 1), (500, 520, 1), (500, 452, 1), (500, 552, 1), (500, 600, 1), (500, 800, 1), (200, 530, 3)]
# Households of B: 20 m from w2's line (covered), and 300 m away (not): 1 of 2.
HH_B = [(1520, 150, 1), (1500, 500, 1)]
HOUSEHOLDS = gpd.GeoDataFrame({"households": [h for *_, h in HH_A + HH_B]},
                              geometry=[ll(shapely.Point(x, y)) for x, y, _ in HH_A + HH_B], crs=4326)
# Roads: x = 300 across A (1000 m, of which y in [450, 550] is within 50 m of w1: 100 m),
# and y = 900 across A and B (1000 m in each, 400 m from w1 and 700 m from w2: none).
ROADS = gpd.GeoDataFrame({"kind": ["road", "road"]},
                         geometry=[ll(shapely.LineString([(300, 0), (300, 1000)])),
                                   ll(shapely.LineString([(0, 900), (2000, 900)]))], crs=4326)
T0 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.timezone.utc).timestamp()


def walk(x0, y0, x1, y1, seconds):
    t = np.arange(seconds + 1, dtype=float)
    line = shapely.LineString(np.column_stack([x0 + (x1 - x0) * t / seconds, y0 + (y1 - y0) * t / seconds]))
    return ll(line), t


def test_coverage_on_the_hand_built_grids():
    a, ta = walk(0, 500, 990, 500, 990)
    b, tb = walk(1500, 100, 1500, 200, 100)
    patrols = pd.DataFrame({"username": ["w1", "w2"], "geometry": [a, b], "times": [ta, tb], "start": [T0, T0]})
    out = patrol_coverage(patrols, GRIDS, HOUSEHOLDS, ROADS, worker_grids={"w1": [GRIDS.code[0]], "w2": [GRIDS.code[1]]},
                          radius=50.0)
    g, w = out["grid"], out["worker"]
    A, B = GRIDS.code
    assert g.loc[A, "households"] == 9 and g.loc[A, "households_covered"] == 6
    assert g.loc[A, "household_coverage"] == pytest.approx(6 / 9)
    assert g.loc[B, "households"] == 2 and g.loc[B, "household_coverage"] == pytest.approx(0.5)
    assert g.loc[A, "road_m"] == pytest.approx(2000, rel=1e-6) and g.loc[A, "road_covered_m"] == pytest.approx(100, rel=1e-6)
    assert g.loc[B, "road_m"] == pytest.approx(1000, rel=1e-6) and g.loc[B, "road_covered_m"] == 0
    assert g.loc[A, "distance_m"] == pytest.approx(990, rel=1e-4) and g.loc[A, "patrolled_s"] == 990
    assert g.loc[B, "distance_m"] == pytest.approx(100, rel=1e-4) and g.loc[B, "patrolled_s"] == 100
    assert list(g["patrols"]) == [1, 1]
    assert w.loc["w1", "household_coverage"] == pytest.approx(6 / 9) and w.loc["w1", "road_coverage"] == pytest.approx(0.05)
    assert w.loc["w2", "household_coverage"] == pytest.approx(0.5) and w.loc["w2", "road_coverage"] == 0
    assert w.loc["w1", "distance_m"] == pytest.approx(990, rel=1e-4) and w.loc["w2", "patrols"] == 1
    # A worker's coverage counts their own grids only: w2 walking w1's line covers nothing of B.
    out2 = patrol_coverage(patrols.assign(username=["w2", "w2"]), GRIDS, HOUSEHOLDS, ROADS,
                           worker_grids={"w1": [A], "w2": [B]}, radius=50.0)
    assert out2["worker"].loc["w2", "households_covered"] == 1 and out2["worker"].loc["w1", "patrols"] == 0
    # A larger radius takes in the 52 m and 100 m households.
    wide = patrol_coverage(patrols, GRIDS, HOUSEHOLDS, ROADS, worker_grids={}, radius=102.0)["grid"]
    assert wide.loc[A, "households_covered"] == 8


def gpx_text(lon, lat, t, *, times=True) -> str:
    g = gpxpy.gpx.GPX()
    trk = gpxpy.gpx.GPXTrack()
    seg = gpxpy.gpx.GPXTrackSegment()
    for x, y, s in zip(lon, lat, t):
        seg.points.append(gpxpy.gpx.GPXTrackPoint(y, x, time=dt.datetime.fromtimestamp(s, dt.timezone.utc) if times else None))
    trk.segments.append(seg)
    g.tracks.append(trk)
    return g.to_xml()


def test_gpx_good_and_broken():
    line, t = walk(0, 500, 600, 500, 600)
    xy = shapely.get_coordinates(line)
    good = clean_track(parse_gpx(gpx_text(xy[:, 0], xy[:, 1], T0 + t).encode()))
    assert len(good) == 601 and good.cleaning["dropped"] == 0 and good.distance_m == pytest.approx(600, rel=2e-3)
    assert good.duration_s == 600 and good.started_at.timestamp() == T0
    # A GPS jump 2 km away for one fix, a repeated fix and a clock step back: cleaned, said.
    lon, lat, tt = xy[:, 0].copy(), xy[:, 1].copy(), T0 + t
    lon[300] += 0.02
    tt[100] = tt[99]
    tt[200] = tt[150]
    fixed = clean_track(parse_gpx(gpx_text(lon, lat, tt)))
    assert fixed.cleaning == {"received": 601, "time_not_forward": 2, "impossible_speed": 1, "kept": 598, "dropped": 3}
    assert fixed.distance_m == pytest.approx(600, rel=2e-3)
    # Pauses are not patrol time: a gap of 20 minutes in the middle (600 s less the 1 s step it replaces).
    paused = t + np.where(t > 300, 1200, 0)
    assert clean_track(parse_gpx(gpx_text(xy[:, 0], xy[:, 1], T0 + paused))).duration_s == 599
    # Refused, saying why.
    with pytest.raises(InvalidTrack, match="not a GPX"):
        parse_gpx(b"<gpx><trk><trkseg><trkpt lat='x'")
    with pytest.raises(InvalidTrack, match="not a GPX"):
        parse_gpx(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InvalidTrack, match="no track points"):
        parse_gpx(gpxpy.gpx.GPX().to_xml())
    with pytest.raises(InvalidTrack, match="have no <time>"):
        parse_gpx(gpx_text(xy[:, 0], xy[:, 1], t, times=False))
    with pytest.raises(InvalidTrack, match="usable point.*times not moving forward"):
        clean_track(parse_gpx(gpx_text(xy[:, 0], xy[:, 1], T0 - t)))  # the clock runs backwards throughout


def test_app_json_in_gcj02_is_converted():
    line, t = walk(0, 500, 300, 500, 300)
    xy = shapely.get_coordinates(line)
    glon, glat = crs.convert(xy[:, 0], xy[:, 1], "wgs84", "gcj02")
    doc = {"crs": "gcj02", "points": [[float(a), float(b), int((T0 + s) * 1000)] for a, b, s in zip(glon, glat, t)]}
    tr = clean_track(parse_json(doc))
    assert tr.cleaning["converted_from"] == "gcj02"
    assert segment_m(tr.lon, tr.lat, xy[:, 0], xy[:, 1]).max() < 0.01
    with pytest.raises(InvalidTrack, match="no points"):
        parse_json({"points": []})
    with pytest.raises(InvalidTrack, match="point 2 is not"):
        parse_json({"points": [[119.4, 28.4, 1], [119.4, "x", 2]]})
    with pytest.raises(InvalidTrack, match="no offset"):
        parse_json({"points": [[119.4, 28.4, "2026-11-03T09:00:00"], [119.41, 28.4, "2026-11-03T09:00:10"]]})


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_patrols_in_the_assessment_report(world, tmp_path):
    """`gridgeo report` (json and xlsx) carries the patrol tables beside the assessment."""
    import json

    from openpyxl import load_workbook
    from typer.testing import CliRunner

    from gridgeo.auth import create_user
    from gridgeo.cli import app
    from gridgeo.patrols import record_patrol
    from helpers.events_world import G11, X0, Y0

    create_user(world, "lisi", role="grid_worker", name="李四", grids=[G11], actor="test")
    n = 200
    lon, lat = np.linspace(X0 + 0.001, X0 + 0.003, n), np.full(n, Y0 + 0.0021)
    raw = parse_json({"points": [[float(a), float(b), int((T0 + s) * 1000)] for s, (a, b) in enumerate(zip(lon, lat))]})
    record_patrol(world, raw, clean_track(raw), username="lisi", staff_code=None)
    run = lambda *a: CliRunner().invoke(app, ["report", "--database", world.url, "--period", "2026-11", *a])  # noqa: E731
    r = run("--by", "grid,worker", "--format", "json")
    assert r.exit_code == 0, r.output
    tables = json.loads(r.output)["tables"]
    grid = {row["code"]: row for row in tables["patrols_grid"]}
    assert grid[G11]["households_covered"] == 1 and grid[G11]["patrols"] == 1
    assert tables["patrols_worker"][0]["code"] == "lisi" and tables["patrols_worker"][0]["household_coverage"] == 1.0
    out = tmp_path / "r.xlsx"
    assert run("--by", "grid", "--format", "xlsx", "--out", out).exit_code == 0
    sheet = load_workbook(out)["巡查·网格"]
    assert "户覆盖率" in [c.value for c in sheet[1]]
