"""Patrols (巡查), check-ins (签到) and their figures over HTTP, both databases."""

from __future__ import annotations

import datetime as dt

import gpxpy.gpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from gridgeo import crs
from gridgeo.patrols.tracks import segment_m
from helpers.apps import app_for
from helpers.authn import headers_for
from helpers.events_world import G11, G12, X0, Y0

T0 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def gpx(lon, lat, seconds) -> bytes:
    g = gpxpy.gpx.GPX()
    trk, seg = gpxpy.gpx.GPXTrack(), gpxpy.gpx.GPXTrackSegment()
    for x, y, s in zip(lon, lat, seconds):
        seg.points.append(gpxpy.gpx.GPXTrackPoint(y, x, time=T0 + dt.timedelta(seconds=float(s))))
    trk.segments.append(seg)
    g.tracks.append(trk)
    return g.to_xml().encode()


@pytest.fixture
def client(world, monkeypatch):
    app = app_for(world, monkeypatch, max_track_bytes=200_000)
    with TestClient(app) as c:
        yield c


def test_patrols_checkins_and_stats(client, world):
    gw = headers_for(world, "grid_worker", name="李四", grids=[G11], staff_code="P2")
    other = headers_for(world, "grid_worker", name="赵六", grids=[G12])
    cr = headers_for(world, "command_room")
    # Walk east through G11, 22 m north of household H001 (X0+0.002, Y0+0.002), ~390 m in 400 s.
    n = 401
    lon = np.linspace(X0 + 0.0005, X0 + 0.0045, n)
    lat = np.full(n, Y0 + 0.0022)
    t = np.arange(n, dtype=float)
    lon_bad = lon.copy()
    lon_bad[200] += 0.05  # one GPS jump, 5 km away
    r = client.post("/v1/patrols", files={"file": ("walk.gpx", gpx(lon_bad, lat, t), "application/gpx+xml")},
                    headers={**gw, "Idempotency-Key": "trk-1"})
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["cleaned"] and p["cleaning"]["impossible_speed"] == 1 and p["points"] == n - 1
    expected = segment_m(lon[:-1], lat[:-1], lon[1:], lat[1:]).sum()
    assert p["distance_m"] == pytest.approx(expected, rel=1e-3) and p["duration_s"] == 400
    assert p["started_at"] == "2026-11-03T09:00:00+08:00" and p["username"].startswith("grid_worker")
    again = client.post("/v1/patrols", files={"file": ("walk.gpx", gpx(lon_bad, lat, t), "application/gpx+xml")},
                        headers={**gw, "Idempotency-Key": "trk-1"})
    assert again.status_code == 201 and again.json()["id"] == p["id"] and again.headers["idempotent-replayed"] == "true"
    assert client.post("/v1/patrols", files={"file": ("w.gpx", gpx(lon, lat, t), "application/gpx+xml")},
                       headers={**gw, "Idempotency-Key": "trk-1"}).status_code == 422
    # The app's JSON in GCJ-02, in the other worker's grid G12, far from its household.
    glon, glat = crs.convert(np.full(50, X0 + 0.009), np.linspace(Y0 + 0.001, Y0 + 0.002, 50), "wgs84", "gcj02")
    ms = int(T0.timestamp() * 1000)
    r2 = client.post("/v1/patrols", headers=other, json={"crs": "gcj02", "points": [
        [float(a), float(b), ms + 5000 * i] for i, (a, b) in enumerate(zip(glon, glat))]})
    assert r2.status_code == 201 and r2.json()["cleaning"]["converted_from"] == "gcj02" and not r2.json()["cleaned"]
    # Broken tracks: refused with the reason; too big: 413 before it is read.
    bad = client.post("/v1/patrols", files={"file": ("x.gpx", b"<gpx><trk>", "application/gpx+xml")}, headers=gw)
    assert bad.status_code == 422 and "GPX" in bad.json()["detail"]
    backwards = client.post("/v1/patrols", files={"file": ("b.gpx", gpx(lon, lat, -t), "application/gpx+xml")}, headers=gw)
    assert backwards.status_code == 422 and "times not moving forward" in backwards.json()["detail"]
    assert client.post("/v1/patrols", headers=gw, json={"points": []}).status_code == 422
    huge = client.post("/v1/patrols", files={"file": ("h.gpx", b"<gpx>" + b" " * 300_000, "application/gpx+xml")}, headers=gw)
    assert huge.status_code == 413
    assert client.post("/v1/patrols", headers=cr, json={"points": []}).status_code == 403
    # Lists: a worker sees their own.
    assert [x["id"] for x in client.get("/v1/patrols", headers=gw).json()["items"]] == [p["id"]]
    assert client.get("/v1/patrols", headers=cr).json()["total"] == 2
    # Check-ins: verified inside their grid; not verified in another's, saying why.
    at = (T0 + dt.timedelta(hours=1)).isoformat()
    ok = client.post("/v1/checkins", headers=gw, json={"lon": X0 + 0.002, "lat": Y0 + 0.005, "at": at})
    assert ok.status_code == 201 and ok.json()["verified"] and ok.json()["grid_code"] == G11
    far = client.post("/v1/checkins", headers=gw, json={"lon": X0 + 0.007, "lat": Y0 + 0.005, "grid_code": G12, "at": at})
    assert far.status_code == 201 and not far.json()["verified"] and "not one of the worker's grids" in far.json()["reasons"][0]
    near = client.post("/v1/checkins", headers=gw, json={"lon": X0 - 0.0005, "lat": Y0 + 0.005, "at": at})  # ~49 m west of G11
    assert client.post("/v1/checkins", headers=gw, json={"lon": X0, "lat": Y0, "at": "2099-01-01T00:00:00+08:00"}
                       ).status_code == 422
    assert near.json()["verified"] and 40 < near.json()["distance_m"] < 60
    # Figures: G11's one household 22 m from the track is covered; G12's is not.
    by_grid = client.get("/v1/stats/patrols", params={"period": "2026-11", "by": "grid"}, headers=cr)
    assert by_grid.status_code == 200, by_grid.text
    rows = {row["grid_code"]: row for row in by_grid.json()["items"]}
    assert rows[G11]["households"] == 1 and rows[G11]["household_coverage"] == 1.0 and rows[G11]["patrols"] == 1
    assert rows[G11]["distance_km"] == pytest.approx(expected / 1000, abs=1e-3) and rows[G11]["hours"] == pytest.approx(0.11)
    assert rows[G12]["households"] == 2 and rows[G12]["households_covered"] == 0 and rows[G12]["patrols"] == 1
    assert rows[G11]["checkins"] == 2 and rows[G11]["checkins_verified"] == 2 and rows[G12]["checkins_verified"] == 0
    assert by_grid.json()["radius_m"] == 50 and by_grid.json()["labels"]["household_coverage"] == "户覆盖率"
    by_worker = client.get("/v1/stats/patrols", params={"period": "2026-11", "by": "worker"}, headers=cr).json()
    mine = next(row for row in by_worker["items"] if row["name"] == "李四")
    assert mine["household_coverage"] == 1.0 and mine["patrols"] == 1 and mine["staff_code"] == "P2"
    assert next(row for row in by_worker["items"] if row["name"] == "赵六")["household_coverage"] == 0
    assert client.get("/v1/stats/patrols", params={"period": "2026-10"}, headers=cr).json()["items"][0]["patrols"] == 0
    csv = client.get("/v1/stats/patrols", params={"period": "2026-11", "format": "csv", "lang": "zh"}, headers=cr)
    assert csv.status_code == 200 and "户覆盖率" in csv.text
