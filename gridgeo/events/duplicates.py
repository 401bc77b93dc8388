"""Possible duplicates (重复上报): the same category, close in space and time.

The rule, defined once here (:func:`_match`) and applied by every path -- one intake, a
group-commit batch, an import, the replay of a year:

    An event is a possible duplicate of an *open* event of the same category recorded
    before it, within ``radius_m`` metres (default 100) and ``window_hours`` hours
    (default 72, either way) of it.

"Recorded before" is the store (every event already in it) and, within a batch, the
events before it: in arrival order for intakes, in report order for imports and the
replay (an event of the batch must then still be open at the later one's report time).
Up to :data:`MAX_CANDIDATES` candidates are kept on the event, nearest first (code,
metres, hours apart), and the command room can ``merge`` it into one of them. Both
settings can be given per call or in the environment: ``GRIDGEO_DUPLICATE_RADIUS_M``,
``GRIDGEO_DUPLICATE_WINDOW_HOURS``.

Distances are great-circle distances (haversine, :func:`distance_m`) on WGS84
positions. The other metric of gridgeo, the CGCS2000 Gauss-Krüger zone of the data
(:func:`gridgeo.crs.metric_epsg`), is for areas and polygon distances of a plan; here the
two points are anywhere (an event outside the jurisdiction, a county on a zone edge), and
at 100 m the two differ by less than 15 cm (the zone's scale error is below 0.14%), well
under the accuracy of a phone's position. Database queries and spatial indexes only
pre-select with a generous box; the haversine decides.
"""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import bindparam, literal, select, text, union_all

from gridgeo.events.workflow import FINAL_STATES, OPEN_STATES
from gridgeo.store import schema

__all__ = ["MAX_CANDIDATES", "candidates_frame", "distance_m", "duplicate_settings", "find_candidates",
           "find_candidates_many", "stored_open_events"]

_R = 6_371_008.8  # mean Earth radius, metres
#: Metres per degree, the small ends (so that a box of ``radius`` in degrees holds the circle).
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQ = 111_320.0
MAX_CANDIDATES = 10
#: Below this many (new x all) pairs, every pair is tested; above, an STRtree pre-selects.
_BRUTE_PAIRS = 200_000


def duplicate_settings() -> tuple[float, float]:
    """(radius in metres, window in hours), from the environment or the defaults."""
    return (float(os.environ.get("GRIDGEO_DUPLICATE_RADIUS_M", 100.0)),
            float(os.environ.get("GRIDGEO_DUPLICATE_WINDOW_HOURS", 72.0)))


def _settings(radius_m: float | None, window_hours: float | None) -> tuple[float, float]:
    r, w = duplicate_settings()
    return (r if radius_m is None else float(radius_m)), (w if window_hours is None else float(window_hours))


def distance_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres (haversine), vectorised: the distance of duplicates."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * _R * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _box(lon, lat, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-widths in degrees (dx, dy) of a box that holds every point within ``radius_m``."""
    lat = np.asarray(lat, dtype=float)
    dy = np.full(lat.shape, radius_m / _M_PER_DEG_LAT * 1.01)
    dx = radius_m / (_M_PER_DEG_LON_EQ * np.maximum(np.cos(np.radians(lat)), 0.01)) * 1.01
    return dx, dy


# -- the rule ------------------------------------------------------------------------------


def _pairs(x: np.ndarray, y: np.ndarray, ok: np.ndarray, queries: np.ndarray, radius_m: float):
    """Index pairs (query, other) that may lie within ``radius_m``: a superset, decided later."""
    n = len(x)
    if len(queries) * n <= _BRUTE_PAIRS:
        return np.repeat(queries, n), np.tile(np.arange(n), len(queries))
    # A local plane through the data's mean latitude, scaled so that it never shrinks a
    # distance by more than the 1% margin at 100 m: only a pre-selection.
    lat0 = float(np.mean(y[ok]))
    kx, ky = _M_PER_DEG_LON_EQ * np.cos(np.radians(lat0)), _M_PER_DEG_LAT
    pts = shapely.points(np.where(ok, x * kx, 0.0), np.where(ok, y * ky, 0.0))
    pts[~ok] = None
    qi, qj = shapely.STRtree(pts).query(pts[queries], predicate="dwithin", distance=radius_m * 1.01)
    return queries[qi], qj


def _match(code: np.ndarray, cat: np.ndarray, t: np.ndarray, x: np.ndarray, y: np.ndarray,
           is_new: np.ndarray, rank: np.ndarray, until: np.ndarray, radius_m: float,
           window_hours: float) -> dict[int, list[dict]]:
    """The duplicate rule over arrays: candidates of each new row, nearest first.

    Parameters
    ----------
    code, cat : object arrays
        Event code and category of every row (new events and stored ones).
    t : int64 array
        Report time, nanoseconds since the epoch (UTC).
    x, y : float arrays
        WGS84 position (NaN when unknown: such an event neither has nor is a candidate).
    is_new : bool array
        Rows to find candidates for; the others are stored events, open now.
    rank : int array
        Order of recording among the new rows: a new row is a candidate for another
        only if recorded before it.
    until : int64 array
        For new rows, when the event stopped being open (int64 max: still open).

    Returns
    -------
    dict
        Row number -> list of ``{code, distance_m, hours}`` (at most MAX_CANDIDATES),
        for the new rows that have any.
    """
    ok = np.isfinite(x) & np.isfinite(y)
    queries = np.flatnonzero(is_new & ok)
    if len(queries) == 0 or ok.sum() < 2:
        return {}
    qi, qj = _pairs(x, y, ok, queries, radius_m)
    dt_h = (t[qi] - t[qj]) / 3.6e12
    keep = ((qi != qj) & ok[qj] & (cat[qi] == cat[qj]) & (np.abs(dt_h) <= window_hours)
            & (~is_new[qj] | ((rank[qj] < rank[qi]) & (until[qj] > t[qi]))))
    qi, qj, dt_h = qi[keep], qj[keep], dt_h[keep]
    d = distance_m(x[qi], y[qi], x[qj], y[qj])
    keep = d <= radius_m
    qi, qj, d, dt_h = qi[keep], qj[keep], d[keep], dt_h[keep]
    order = np.lexsort((code[qj].astype(str), d, qi))
    out: dict[int, list[dict]] = {}
    for a, b, dd, hh in zip(qi[order], qj[order], d[order], dt_h[order]):
        lst = out.setdefault(int(a), [])
        if len(lst) < MAX_CANDIDATES:
            lst.append({"code": code[b], "distance_m": round(float(dd), 1), "hours": round(abs(float(hh)), 1)})
    return out


_NEVER = np.iinfo(np.int64).max


def _ns(values) -> np.ndarray:
    """Aware datetimes (or NaT) as int64 nanoseconds since the epoch; NaT -> int64 max."""
    arr = pd.to_datetime(pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values,
                         utc=True).to_numpy(dtype="datetime64[ns]")
    return np.where(np.isnat(arr), _NEVER, arr.astype(np.int64))


# -- many events at once (imports, the replay) ----------------------------------------------


def candidates_frame(new: pd.DataFrame, existing: pd.DataFrame | None = None, *,
                     radius_m: float | None = None, window_hours: float | None = None) -> pd.Series:
    """Duplicate candidates of many events at once, recorded in report order.

    Parameters
    ----------
    new : DataFrame
        ``code``, ``category_code``, ``reported_at`` (aware), ``x``, ``y`` (WGS84, NaN
        when unknown) and optionally ``open_until`` (aware or NaT: when the event stopped
        being open; NaT = still open). An earlier event of the batch is a candidate for a
        later one while it is open at the later one's report time.
    existing : DataFrame, optional
        Events already in the store, same columns; candidates for the new ones.

    Returns
    -------
    Series
        Indexed like ``new``: a list of ``{code, distance_m, hours}`` (nearest first),
        or None where there is no candidate.
    """
    radius_m, window_hours = _settings(radius_m, window_hours)
    result = pd.Series([None] * len(new), index=new.index, dtype=object)
    if len(new) == 0:
        return result
    frames = [new.assign(_new=True)]
    if existing is not None and len(existing):
        frames.append(existing.assign(_new=False))
    allf = pd.concat(frames, ignore_index=True)
    t = _ns(allf["reported_at"])
    is_new = allf["_new"].to_numpy(dtype=bool)
    rank = np.empty(len(allf), dtype=np.int64)  # report order, ties by position
    rank[np.lexsort((np.arange(len(allf)), t))] = np.arange(len(allf))
    until = _ns(allf["open_until"]) if "open_until" in allf else np.full(len(allf), _NEVER)
    found = _match(allf["code"].to_numpy(dtype=object), allf["category_code"].to_numpy(dtype=object), t,
                   allf["x"].to_numpy(dtype=float), allf["y"].to_numpy(dtype=float), is_new, rank, until,
                   radius_m, window_hours)
    for k, lst in found.items():  # rows of `new` come first in allf
        result.iloc[k] = lst
    return result


def stored_open_events(conn, lo: dt.datetime, hi: dt.datetime) -> pd.DataFrame | None:
    """Open, placed events of the store reported between ``lo`` and ``hi``: the stored
    candidates of a batch (``existing`` of :func:`candidates_frame`)."""
    ev = schema.events
    rows = conn.execute(select(ev.c.code, ev.c.category_code, ev.c.reported_at, ev.c.pos_lon, ev.c.pos_lat)
                        .where(ev.c.reported_at >= lo, ev.c.reported_at <= hi,
                               ev.c.state.in_(sorted(OPEN_STATES)), ev.c.pos_lon.is_not(None))).all()
    if not rows:
        return None
    return pd.DataFrame({"code": [r[0] for r in rows], "category_code": [r[1] for r in rows],
                         "reported_at": pd.to_datetime([r[2] for r in rows], utc=True),
                         "x": [r[3] for r in rows], "y": [r[4] for r in rows]})


# -- a few events against the store (intakes) -----------------------------------------------

# Open = not final, written into the SQL itself: a bound IN list would be expanded again
# on every execution of every branch of the UNION below.
_OPEN_CLAUSE = text(f"events.state NOT IN ({', '.join(repr(s) for s in sorted(FINAL_STATES))})")
_MANY: dict[int, object] = {}


def _many_query(k: int):
    """``k`` box queries in one statement (UNION ALL), built once per ``k``.

    Each is answered from ix_events_category_code_pos_lat_pos_lon_reported_at_state: a
    band of latitude of one category, filtered in the index; only matches touch the table.
    """
    q = _MANY.get(k)
    if q is None:
        ev = schema.events
        parts = [
            select(literal(i).label("q"), ev.c.code, ev.c.reported_at, ev.c.pos_lon, ev.c.pos_lat).where(
                ev.c.category_code == bindparam(f"c{i}"),
                ev.c.pos_lat >= bindparam(f"y0_{i}"), ev.c.pos_lat <= bindparam(f"y1_{i}"),
                ev.c.pos_lon >= bindparam(f"x0_{i}"), ev.c.pos_lon <= bindparam(f"x1_{i}"),
                ev.c.reported_at >= bindparam(f"t0_{i}"), ev.c.reported_at <= bindparam(f"t1_{i}"),
                _OPEN_CLAUSE,
            )
            for i in range(k)
        ]
        q = parts[0] if k == 1 else union_all(*parts)
        _MANY[k] = q
    return q


def find_candidates_many(conn, events: list[dict], *, radius_m: float | None = None,
                         window_hours: float | None = None, exclude: set[str] | frozenset = frozenset()
                         ) -> list[list[dict]]:
    """Duplicate candidates of a few events in arrival order, in one round trip.

    ``events`` are dicts with ``code``, ``category_code``, ``reported_at`` (aware),
    ``pos_lon``, ``pos_lat`` (None when unknown), not yet in the store; each is checked
    against the open events of the store and the events before it in the list. Codes in
    ``exclude`` are never candidates. Returns the candidates per event, nearest first.
    """
    radius_m, window_hours = _settings(radius_m, window_hours)
    span = dt.timedelta(hours=window_hours)
    asks = [i for i, e in enumerate(events) if e["pos_lon"] is not None and e["pos_lat"] is not None]
    stored: dict[str, tuple] = {}
    for start in range(0, len(asks), 200):  # SQLite allows 500 terms in a compound SELECT
        chunk = asks[start:start + 200]
        dx, dy = _box([events[i]["pos_lon"] for i in chunk], [events[i]["pos_lat"] for i in chunk], radius_m)
        params = {}
        for k, i in enumerate(chunk):
            e = events[i]
            params.update({f"c{k}": e["category_code"], f"t0_{k}": e["reported_at"] - span,
                           f"t1_{k}": e["reported_at"] + span, f"x0_{k}": e["pos_lon"] - dx[k],
                           f"x1_{k}": e["pos_lon"] + dx[k], f"y0_{k}": e["pos_lat"] - dy[k],
                           f"y1_{k}": e["pos_lat"] + dy[k]})
        for q, code, at, lon, lat in conn.execute(_many_query(len(chunk)), params).all():
            if code not in exclude:
                stored[code] = (events[chunk[q]]["category_code"], at, lon, lat)
    n, rows = len(events), list(stored.values())
    found = _match(
        np.array([e.get("code") for e in events] + list(stored), dtype=object),
        np.array([e["category_code"] for e in events] + [r[0] for r in rows], dtype=object),
        _ns([e["reported_at"] for e in events] + [r[1] for r in rows]),
        np.array([np.nan if e["pos_lon"] is None else e["pos_lon"] for e in events] + [r[2] for r in rows],
                 dtype=float),
        np.array([np.nan if e["pos_lat"] is None else e["pos_lat"] for e in events] + [r[3] for r in rows],
                 dtype=float),
        np.arange(n + len(rows)) < n,       # the new events; the stored ones are open now
        np.arange(n + len(rows)),           # arrival order: the list's
        np.full(n + len(rows), _NEVER),     # the new ones stay open
        radius_m, window_hours)
    return [found.get(i, []) for i in range(n)]


def find_candidates(conn, *, category_code: str, reported_at: dt.datetime, lon: float | None,
                    lat: float | None, radius_m: float | None = None, window_hours: float | None = None,
                    exclude_code: str | None = None) -> list[dict]:
    """Open events of the store that one new event would be a possible duplicate of
    (:func:`find_candidates_many` of one). Events without a position are never
    candidates: without a place there is no "same place"."""
    if lon is None or lat is None or not (np.isfinite(lon) and np.isfinite(lat)):
        return []
    return find_candidates_many(conn, [{"code": exclude_code, "category_code": category_code,
                                        "reported_at": reported_at, "pos_lon": lon, "pos_lat": lat}],
                                radius_m=radius_m, window_hours=window_hours,
                                exclude={exclude_code} if exclude_code else frozenset())[0]
