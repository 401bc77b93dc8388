"""Patrol tracks (巡查轨迹): read from GPX or the app's JSON, converted to WGS84, cleaned.

A track is arrays of lon, lat (WGS84) and time (seconds, UTC epoch). What is wrong with
a track is either cleaned, and the answer says what was dropped, or refused:

- refused (:class:`~gridgeo.errors.InvalidTrack`): not GPX or the app's JSON, no points,
  a point without a time, fewer than two points left after cleaning;
- cleaned: points with invalid coordinates (NaN, out of range), points whose time does
  not move forward (a repeated fix, a clock going backwards), points reached at an
  impossible speed (``GRIDGEO_PATROL_MAX_SPEED_MPS``, a GPS jump) are dropped.

GCJ-02 and BD-09 tracks (phones with AMap or Baidu SDKs) are converted to WGS84 like every
other input (:func:`gridgeo.crs.to_wgs84`). GPX is WGS84 by its definition; the app's JSON
says its ``crs``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import gpxpy
import gpxpy.gpx
import numpy as np

from gridgeo import crs as _crs
from gridgeo.config import get_settings
from gridgeo.errors import InvalidTrack
from gridgeo.store.types import FIRST_DAY, LAST_DAY

__all__ = ["Track", "clean_track", "segment_m", "parse_gpx", "parse_json", "PAUSE_SECONDS"]

#: Times a track may carry (the store's dates, :data:`gridgeo.store.types.FIRST_DAY` on).
_FIRST_S = dt.datetime.combine(FIRST_DAY, dt.time(), dt.timezone.utc).timestamp()
_LAST_S = dt.datetime.combine(LAST_DAY, dt.time(23, 59, 59), dt.timezone.utc).timestamp()
#: A gap between two fixes longer than this is a pause: not counted as time patrolled.
PAUSE_SECONDS = 300.0


@dataclass
class Track:
    """A track in WGS84 with its times (seconds since the epoch, UTC), and what cleaning did."""

    lon: np.ndarray
    lat: np.ndarray
    t: np.ndarray
    source_format: str
    crs: str = "wgs84"
    cleaning: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t)

    @property
    def started_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(self.t[0]), dt.timezone.utc)

    @property
    def ended_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(self.t[-1]), dt.timezone.utc)

    def segment_lengths(self) -> np.ndarray:
        return track_m(self.lon, self.lat)

    @property
    def distance_m(self) -> float:
        return float(self.segment_lengths().sum())

    @property
    def duration_s(self) -> float:
        """Time patrolled: the sum of the gaps between fixes, pauses excluded."""
        gaps = np.diff(self.t)
        return float(gaps[gaps <= PAUSE_SECONDS].sum())


_A, _E2 = 6_378_137.0, 0.00669437999014  # WGS84 semi-major axis and eccentricity squared


def metres_per_degree(lat) -> tuple[np.ndarray, np.ndarray]:
    """Metres per degree of longitude and of latitude at ``lat`` on the WGS84 ellipsoid
    (the radii of curvature: prime vertical times cos(lat), and meridian)."""
    phi = np.radians(np.asarray(lat, dtype=float))
    sin = np.sin(phi)
    w = 1.0 - _E2 * sin * sin
    root = np.sqrt(w)
    k = np.pi / 180.0 * _A
    return k * np.sqrt(1.0 - sin * sin) / root, k * (1.0 - _E2) / (w * root)


def segment_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Lengths in metres of short segments (GPS fixes metres apart), vectorised, on the
    WGS84 ellipsoid: the differences of longitude and latitude scaled by the radii of
    curvature at the segment's middle latitude (to a few millimetres per kilometre for
    segments up to a few kilometres; a sphere would be 0.2 % off east-west here)."""
    lon1, lat1, lon2, lat2 = (np.asarray(a, dtype=float) for a in (lon1, lat1, lon2, lat2))
    kx, ky = metres_per_degree((lat1 + lat2) * 0.5)
    return np.hypot((lon2 - lon1) * kx, (lat2 - lat1) * ky)


def track_m(lon, lat) -> np.ndarray:
    """Lengths of the segments between consecutive points of long arrays (as
    :func:`segment_m`, the radii taken once per point and averaged per segment)."""
    kx, ky = metres_per_degree(lat)
    return np.hypot(np.diff(lon) * (kx[:-1] + kx[1:]) * 0.5, np.diff(lat) * (ky[:-1] + ky[1:]) * 0.5)


def parse_gpx(data: bytes | str) -> Track:
    """The points of every track segment (and of routes, when there are no tracks) of a
    GPX file, in order. Raises InvalidTrack for anything gpxpy cannot read."""
    try:
        text = data.decode("utf-8-sig", errors="strict") if isinstance(data, bytes) else data
        gpx = gpxpy.parse(text)
    except (gpxpy.gpx.GPXException, ValueError, UnicodeDecodeError) as exc:
        raise InvalidTrack(f"not a GPX file gridgeo can read: {str(exc)[:200]}") from None
    points = [p for trk in gpx.tracks for seg in trk.segments for p in seg.points]
    if not points:
        points = [p for rte in gpx.routes for p in rte.points]
    if not points:
        raise InvalidTrack("the GPX file has no track points (<trkpt>)")
    missing = [i for i, p in enumerate(points) if p.time is None]
    if missing:
        raise InvalidTrack(f"{len(missing)} of {len(points)} track points have no <time> "
                           f"(first: point {missing[0] + 1}); a patrol needs the time of each point")
    lon = np.fromiter((p.longitude for p in points), float, len(points))
    lat = np.fromiter((p.latitude for p in points), float, len(points))
    t = np.fromiter(((p.time if p.time.tzinfo else p.time.replace(tzinfo=dt.timezone.utc)).timestamp()
                     for p in points), float, len(points))
    return Track(lon, lat, t, "gpx", "wgs84")


def _times(values) -> np.ndarray:
    """Times as epoch seconds: ISO 8601 text with an offset, or epoch milliseconds (what
    a browser's Geolocation API gives)."""
    arr = np.asarray(values, dtype=object)
    if arr.size and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in arr):
        return arr.astype(float) / 1000.0
    out = np.empty(arr.size)
    for i, v in enumerate(arr):  # text times: the app sends numbers
        if not isinstance(v, str):
            raise InvalidTrack(f"point {i + 1}: time {v!r} is neither epoch milliseconds nor ISO 8601 text")
        try:
            when = dt.datetime.fromisoformat(v)
        except ValueError:
            raise InvalidTrack(f"point {i + 1}: time {v!r} is not ISO 8601") from None
        if when.tzinfo is None:
            raise InvalidTrack(f"point {i + 1}: time {v!r} has no offset (write e.g. +08:00)")
        out[i] = when.timestamp()
    return out


def parse_json(data: bytes | str | dict) -> Track:
    """The app's JSON: ``{"crs": "gcj02", "points": [[lon, lat, t], ...]}`` with ``t`` in
    epoch milliseconds (or ISO 8601 text with an offset); ``crs`` defaults to wgs84."""
    try:
        doc = json.loads(data) if isinstance(data, (bytes, str)) else data
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidTrack(f"the track is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("points"), list):
        raise InvalidTrack('the track must be {"crs": ..., "points": [[lon, lat, time], ...]}')
    pts = doc["points"]
    if not pts:
        raise InvalidTrack("the track has no points")
    bad = next((i for i, p in enumerate(pts) if not isinstance(p, list) or len(p) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p[:2])), None)
    if bad is not None:
        raise InvalidTrack(f"point {bad + 1} is not [lon, lat, time]: {str(pts[bad])[:80]}")
    crs = doc.get("crs") or "wgs84"
    if not isinstance(crs, str):
        raise InvalidTrack(f"crs must be a name (wgs84, gcj02, bd09, cgcs2000), not {crs!r:.40}")
    name = _crs.normalize_name(crs)
    try:
        coords = np.array([p[:2] for p in pts], dtype=float)
        t = _times([p[2] for p in pts])
    except OverflowError:
        raise InvalidTrack("a coordinate or time is too large a number") from None
    return Track(coords[:, 0].copy(), coords[:, 1].copy(), t, "json", name)


def _speed_outliers(lon, lat, t, max_speed: float) -> np.ndarray:
    """Points to drop as GPS jumps: reached too fast from the previous point and left too
    fast to the next (a spike), or such an end point. Vectorised, repeated until none."""
    keep = np.ones(len(t), dtype=bool)
    for _ in range(20):
        idx = np.flatnonzero(keep)
        if len(idx) < 3:
            break
        d = segment_m(lon[idx[:-1]], lat[idx[:-1]], lon[idx[1:]], lat[idx[1:]])
        fast = d / np.maximum(np.diff(t[idx]), 1e-9) > max_speed
        into = np.r_[False, fast]   # reached too fast
        out_of = np.r_[fast, False]  # left too fast
        spike = into & out_of
        # End points: a jump at the first or last fix, with the neighbour's own step sane.
        spike[0] = fast[0] and not fast[1]
        spike[-1] = fast[-1] and not fast[-2]
        if not spike.any():
            break
        keep[idx[spike]] = False
    return ~keep


def clean_track(track: Track, *, max_speed: float | None = None) -> Track:
    """The track in WGS84 with bad points dropped; ``cleaning`` says what and how many.

    Raises InvalidTrack when fewer than two points are left.
    """
    max_speed = get_settings().patrol_max_speed_mps if max_speed is None else max_speed
    lon, lat, t = track.lon.astype(float), track.lat.astype(float), track.t.astype(float)
    n = len(t)
    notes: dict = {"received": n}
    with np.errstate(invalid="ignore"):
        ok = _crs.lonlat_valid(lon, lat) & (t >= _FIRST_S) & (t <= _LAST_S)  # NaN compares False
    if (~ok).any():
        notes["invalid_coordinates"] = int((~ok).sum())  # or a time out of range
    lon, lat, t = lon[ok], lat[ok], t[ok]
    if track.crs in ("gcj02", "bd09") and len(t):
        lon, lat = _crs.to_wgs84(lon, lat, track.crs)
        notes["converted_from"] = track.crs
    # Time must move forward: keep a point only when later than every point before it.
    if len(t):
        before = np.r_[-np.inf, np.maximum.accumulate(t)[:-1]]
        forward = t > before
        if (~forward).any():
            notes["time_not_forward"] = int((~forward).sum())
        lon, lat, t = lon[forward], lat[forward], t[forward]
    jumps = _speed_outliers(lon, lat, t, max_speed) if len(t) >= 3 else np.zeros(len(t), bool)
    if jumps.any():
        notes["impossible_speed"] = int(jumps.sum())
        lon, lat, t = lon[~jumps], lat[~jumps], t[~jumps]
    notes["kept"] = int(len(t))
    notes["dropped"] = n - int(len(t))
    if len(t) < 2:
        reasons = [f"{notes[k]} {label}" for k, label in (
            ("invalid_coordinates", "with invalid coordinates"), ("time_not_forward", "with times not moving forward"),
            ("impossible_speed", f"reached faster than {max_speed:g} m/s")) if notes.get(k)]
        raise InvalidTrack(f"the track has {len(t)} usable point(s) of {n}"
                           + (f" (dropped: {', '.join(reasons)})" if reasons else "")
                           + "; a patrol needs at least two")
    return Track(lon, lat, t, track.source_format, track.crs, notes)
