"""Coordinate systems used in China, converted vectorised.

Phones and web maps in China report one of four systems:

``wgs84``
    GPS, EPSG:4326. What gridgeo stores.
``cgcs2000``
    China Geodetic Coordinate System 2000, EPSG:4490. Differs from WGS84 by a few
    centimetres, far below grid scale, so it is treated as WGS84.
``gcj02``
    The obfuscated "Mars" system required for published maps (AMap, Tencent, WeChat).
    PROJ does not know it.
``bd09``
    Baidu's further offset of GCJ-02.

The forward transform WGS84 -> GCJ-02 is the published formula. Its inverse has no
closed form: the common one-step inverse is 1-3 m off, so :func:`convert` iterates a
fixed point until the residual is below ``1e-9`` degrees (about 0.1 mm).

The offset is applied only inside mainland China. The outline used is Natural Earth's
1:110m China polygon, extended one degree over the sea (never over another country) so
that coastal islands such as Shengsi are inside; Taiwan is outside; Hong Kong and Macau
are inside (the 1:110m data does not separate them).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

import numpy as np
import shapely

from gridgeo.errors import InvalidCoordinates, UnknownCRS

__all__ = [
    "GK_ZONES_LON",
    "LAT_RANGE",
    "LON_RANGE",
    "NAMES",
    "check_lonlat",
    "convert",
    "in_china",
    "invalid_lonlat_message",
    "lonlat_ok",
    "lonlat_valid",
    "metric_epsg",
    "looks_swapped",
    "normalize_name",
    "to_wgs84",
]

#: The names :func:`convert` accepts, with the EPSG code where there is one.
NAMES: dict[str, int | None] = {"wgs84": 4326, "cgcs2000": 4490, "gcj02": None, "bd09": None}

_ALIASES = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "4326": "wgs84",
    "gps": "wgs84",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
    "4490": "cgcs2000",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "gcj": "gcj02",
    "amap": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
    "baidu": "bd09",
}

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as the GCJ-02 formula uses it
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
_TOL = 1e-9  # degrees, ~0.1 mm
_MAX_ITER = 30


#: Where a longitude and a latitude in degrees may lie (both ends included). Every check
#: of "is this a lon/lat pair" uses these: :func:`lonlat_ok` (one point, pure Python, for
#: the lookup hot path), :func:`lonlat_valid` (arrays) and :func:`check_lonlat` (raises).
LON_RANGE = (-180.0, 180.0)
LAT_RANGE = (-90.0, 90.0)
_RANGE_TEXT = (f"need finite lon in [{LON_RANGE[0]:g}, {LON_RANGE[1]:g}] "
               f"and lat in [{LAT_RANGE[0]:g}, {LAT_RANGE[1]:g}]")


def lonlat_ok(lon: float, lat: float) -> bool:
    """Whether one point is a finite lon/lat pair in range (NaN and infinities are not).

    Pure Python (chained comparisons are False for NaN), so that a one-point lookup
    does not pay for a NumPy call; :func:`lonlat_valid` is the same rule over arrays.
    """
    return LON_RANGE[0] <= lon <= LON_RANGE[1] and LAT_RANGE[0] <= lat <= LAT_RANGE[1]


def lonlat_valid(lon, lat) -> np.ndarray:
    """:func:`lonlat_ok` over arrays (broadcast together): True where finite and in range."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    with np.errstate(invalid="ignore"):
        return ((lon >= LON_RANGE[0]) & (lon <= LON_RANGE[1])
                & (lat >= LAT_RANGE[0]) & (lat <= LAT_RANGE[1]))


def invalid_lonlat_message(lon, lat) -> str:
    """What is wrong with a pair that fails :func:`lonlat_ok`, with a hint when it looks
    swapped (latitude given first)."""
    msg = f"invalid coordinates lon={lon!r}, lat={lat!r}: {_RANGE_TEXT}"
    try:
        swapped = bool(looks_swapped(float(lon), float(lat)))
    except (TypeError, ValueError, OverflowError):
        swapped = False
    if swapped:
        msg += "; they look swapped (give lon first)"
    return msg


def check_lonlat(lon, lat) -> tuple[float, float]:
    """One point as ``(lon, lat)`` floats, or :class:`~gridgeo.errors.InvalidCoordinates`
    saying what is wrong: not numbers, not finite, or out of range."""
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError, OverflowError):
        raise InvalidCoordinates(f"coordinates must be numbers, not ({lon!r}, {lat!r})") from None
    if not lonlat_ok(x, y):
        raise InvalidCoordinates(invalid_lonlat_message(x, y))
    return x, y


def normalize_name(name: str) -> str:
    """Return the canonical CRS name for ``name`` (``"GCJ-02"`` -> ``"gcj02"``).

    Raises
    ------
    UnknownCRS
        If the name is not one of :data:`NAMES` or a known alias.
    """
    key = str(name).strip().lower()
    try:
        return _ALIASES[key]
    except KeyError:
        raise UnknownCRS(
            f"unknown coordinate system {name!r}: use one of {', '.join(NAMES)}"
        ) from None


@lru_cache(maxsize=1)
def _china():
    text = resources.files("gridgeo.data").joinpath("china_outline.geojson").read_text()
    geom = shapely.geometry.shape(json.loads(text)["features"][0]["geometry"])
    shapely.prepare(geom)
    return geom


def in_china(lon, lat) -> np.ndarray:
    """Whether each point lies in mainland China (see the module notes for the outline)."""
    lon, lat = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    inside = np.zeros(lon.shape, dtype=bool)
    finite = np.isfinite(lon) & np.isfinite(lat)
    # A bounding box test first: most callers pass points that are all far inside or far out.
    box = finite & (lon > 72.0) & (lon < 137.0) & (lat > 17.0) & (lat < 55.0)
    if box.any():
        inside[box] = shapely.contains_xy(_china(), lon[box], lat[box])
    return inside


def looks_swapped(lon, lat) -> np.ndarray:
    """True where a point is outside China as given but inside it with lon and lat swapped."""
    return ~in_china(lon, lat) & in_china(lat, lon)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    ax = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * ax + common
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * ax + common
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlon, dlat


def _wgs_to_gcj(lon, lat):
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def _gcj_to_bd(lon, lat):
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _invert(forward, lon, lat):
    """Solve ``forward(x) = (lon, lat)`` by fixed-point iteration, to ``_TOL`` degrees."""
    x, y = lon.copy(), lat.copy()
    active = np.ones(lon.shape, dtype=bool)
    for _ in range(_MAX_ITER):
        fx, fy = forward(x[active], y[active])
        ex, ey = fx - lon[active], fy - lat[active]
        x[active] -= ex
        y[active] -= ey
        done = (np.abs(ex) < _TOL) & (np.abs(ey) < _TOL)
        idx = np.flatnonzero(active)
        active[idx[done]] = False
        if not active.any():
            break
    return x, y


def _step(lon, lat, src: str, dst: str, mask):
    """One hop along bd09 <-> gcj02 <-> wgs84, applied where ``mask`` is true."""
    out_lon, out_lat = lon.copy(), lat.copy()
    if not mask.any():
        return out_lon, out_lat
    x, y = lon[mask], lat[mask]
    if (src, dst) == ("wgs84", "gcj02"):
        x, y = _wgs_to_gcj(x, y)
    elif (src, dst) == ("gcj02", "wgs84"):
        x, y = _invert(_wgs_to_gcj, x, y)
    elif (src, dst) == ("gcj02", "bd09"):
        x, y = _gcj_to_bd(x, y)
    elif (src, dst) == ("bd09", "gcj02"):
        x, y = _invert(_gcj_to_bd, x, y)
    else:  # pragma: no cover - _PATHS only holds the hops above
        raise AssertionError((src, dst))
    out_lon[mask], out_lat[mask] = x, y
    return out_lon, out_lat


_ORDER = ["wgs84", "gcj02", "bd09"]


def convert(lon, lat, src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates between ``wgs84``, ``cgcs2000``, ``gcj02`` and ``bd09``.

    Parameters
    ----------
    lon, lat : array_like
        Longitudes and latitudes in degrees, any shape (broadcast together).
    src, dst : str
        Source and target system names (see :data:`NAMES`; aliases such as
        ``"GCJ-02"`` or ``"EPSG:4326"`` are accepted).

    Returns
    -------
    lon, lat : numpy.ndarray
        Float arrays. Points outside mainland China, and non-finite values, are
        returned unchanged: the offsets apply only inside China.

    Notes
    -----
    CGCS2000 is treated as WGS84. Inverse transforms (GCJ-02 -> WGS84, BD-09 ->
    GCJ-02) iterate until the forward transform reproduces the input within 1e-9
    degrees, so a round trip is exact to well under a centimetre.
    """
    src = normalize_name(src)
    dst = normalize_name(dst)
    lon, lat = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    lon, lat = lon.copy(), lat.copy()
    src = "wgs84" if src == "cgcs2000" else src
    dst = "wgs84" if dst == "cgcs2000" else dst
    if src == dst:
        return lon, lat
    # The offset applies where the WGS84 position is in China. Going forward that is the
    # input; going back it is the result, so the inverse is computed for every finite
    # point first and undone where its result falls outside. Round trips are exact for
    # points inside the outline; within about a kilometre of it GCJ-02 is not one-to-one
    # (a point just outside and its shifted neighbour just inside share one image), and
    # the shifted one is taken.
    finite = np.isfinite(lon) & np.isfinite(lat)
    i, j = _ORDER.index(src), _ORDER.index(dst)
    stepdir = 1 if j > i else -1
    mask = in_china(lon, lat) if src == "wgs84" else finite
    out_lon, out_lat = lon, lat
    for k in range(i, j, stepdir):
        out_lon, out_lat = _step(out_lon, out_lat, _ORDER[k], _ORDER[k + stepdir], mask)
    if src != "wgs84":
        wgs_lon, wgs_lat = (out_lon, out_lat) if dst == "wgs84" else convert(lon, lat, src, "wgs84")
        outside = finite & ~in_china(wgs_lon, wgs_lat)
        out_lon[outside], out_lat[outside] = lon[outside], lat[outside]
    return out_lon, out_lat


def to_wgs84(lon, lat, src: str) -> tuple[np.ndarray, np.ndarray]:
    """Shorthand for ``convert(lon, lat, src, "wgs84")``."""
    return convert(lon, lat, src, "wgs84")


def metric_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Krüger zone (central meridian form) for ``lon``.

    EPSG:4534 is the zone of 75E and EPSG:4554 that of 135E; Zhejiang is mostly in
    EPSG:4549 (120E). Areas and distances are computed in this CRS. Zone ``k`` covers
    ``[73.5 + 3k, 76.5 + 3k)`` (a point on a zone edge belongs to the eastern zone);
    longitudes west or east of China get the nearest end zone.
    """
    zone = int(math.floor((float(lon) - 73.5) / 3.0))
    return 4534 + min(max(zone, 0), 20)


#: Longitudes covered by the zones of :func:`metric_epsg` (73.5E to 136.5E).
GK_ZONES_LON = (73.5, 136.5)


@lru_cache(maxsize=64)
def to_metric(target: int | str):
    """A ``pyproj.Transformer`` from lon/lat (EPSG:4326, x = lon) to ``target``, cached.

    For the Gauss-Krüger zones of :func:`metric_epsg` (EPSG:4534-4554) it is built from
    the PROJ pipeline that ``Transformer.from_crs(4326, epsg)`` resolves to (CGCS2000
    and WGS84 are one datum at this scale: the EPSG database gives a null shift), so the
    same numbers come out without the database look-up, which takes about half a second
    per transformer. Other targets (an EPSG code or a PROJ string) go through
    ``from_crs``. Transformers are thread-safe (pyproj >= 3.1).
    """
    from pyproj import Transformer

    if isinstance(target, int | np.integer) and 4534 <= int(target) <= 4554:
        cm = 75 + 3 * (int(target) - 4534)
        return Transformer.from_pipeline(
            "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
            f"+step +proj=tmerc +lat_0=0 +lon_0={cm} +k=1 +x_0=500000 +y_0=0 +ellps=GRS80")
    return Transformer.from_crs(4326, target, always_xy=True)
