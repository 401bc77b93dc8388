"""Possible duplicates (重复上报): the same category, close in space and time.

A new event is flagged when an *open* event of the same category lies within
``radius_m`` metres (default 100) and ``window_hours`` hours (default 72) of it; the
candidates are kept on the event (code, metres, hours apart) and the command room can
``merge`` it into one of them. Both settings can be given per call or in the
environment: ``GRIDGEO_DUPLICATE_RADIUS_M``, ``GRIDGEO_DUPLICATE_WINDOW_HOURS``.
"""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import bindparam, literal, select, text, union_all

from gridgeo.events.workflow import FINAL_STATES
from gridgeo.store import schema

__all__ = ["candidates_frame", "distance_m", "duplicate_settings", "find_candidates"]

_R = 6_371_008.8  # mean Earth radius, metres
MAX_CANDIDATES = 10


def duplicate_settings() -> tuple[float, float]:
    """(radius in metres, window in hours), from the environment or the defaults."""
    return (float(os.environ.get("GRIDGEO_DUPLICATE_RADIUS_M", 100.0)),
            float(os.environ.get("GRIDGEO_DUPLICATE_WINDOW_HOURS", 72.0)))


def distance_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres (haversine), vectorised."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * _R * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


# Open = not final, written into the SQL itself: a bound IN list would be expanded again
# on every execution of every branch of the UNION below.
_OPEN_CLAUSE = text(f"events.state NOT IN ({', '.join(repr(s) for s in sorted(FINAL_STATES))})")


def _candidates_query():
    ev = schema.events
    # Answered from ix_events_category_code_pos_lat_pos_lon_reported_at_state: a band of
    # latitude of one category, filtered in the index; only matches touch the table.
    return select(ev.c.code, ev.c.reported_at, ev.c.pos_lon, ev.c.pos_lat).where(
        ev.c.category_code == bindparam("category"),
        ev.c.pos_lat >= bindparam("y0"), ev.c.pos_lat <= bindparam("y1"),
        ev.c.pos_lon >= bindparam("x0"), ev.c.pos_lon <= bindparam("x1"),
        ev.c.reported_at >= bindparam("t0"),
        ev.c.reported_at <= bindparam("t1"),
        _OPEN_CLAUSE,
    )


_CANDIDATES = _candidates_query()


_MANY: dict[int, object] = {}


def _many_query(k: int):
    """``k`` candidate queries in one statement (UNION ALL), built once per ``k``."""
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
                         window_hours: float | None = None) -> list[list[dict]]:
    """:func:`find_candidates` for several events in one round trip.

    ``events`` are dicts with ``category_code``, ``reported_at``, ``pos_lon``, ``pos_lat``
    (None when unknown); the answer lists candidates per event, nearest first.
    """
    r, w = duplicate_settings()
    radius_m = r if radius_m is None else radius_m
    window_hours = w if window_hours is None else window_hours
    span = dt.timedelta(hours=window_hours)
    asks = [i for i, e in enumerate(events) if e["pos_lon"] is not None and e["pos_lat"] is not None]
    out: list[list[dict]] = [[] for _ in events]
    for start in range(0, len(asks), 200):  # SQLite allows 500 terms in a compound SELECT
        chunk = asks[start:start + 200]
        params = {}
        for k, i in enumerate(chunk):
            e = events[i]
            dy = radius_m / 110_574.0 * 1.01
            dx = radius_m / (111_320.0 * max(np.cos(np.radians(e["pos_lat"])), 0.01)) * 1.01
            params.update({f"c{k}": e["category_code"], f"t0_{k}": e["reported_at"] - span,
                           f"t1_{k}": e["reported_at"] + span, f"x0_{k}": e["pos_lon"] - dx,
                           f"x1_{k}": e["pos_lon"] + dx, f"y0_{k}": e["pos_lat"] - dy,
                           f"y1_{k}": e["pos_lat"] + dy})
        for q, code, at, lon, lat in conn.execute(_many_query(len(chunk)), params).all():
            i = chunk[q]
            e = events[i]
            d = float(distance_m(e["pos_lon"], e["pos_lat"], lon, lat))
            if d <= radius_m:
                out[i].append({"code": code, "distance_m": round(d, 1),
                               "hours": round(abs((at - e["reported_at"]).total_seconds()) / 3600.0, 1)})
    for lst in out:
        lst.sort(key=lambda c: (c["distance_m"], c["code"]))
    return out


def find_candidates(conn, *, category_code: str, reported_at: dt.datetime, lon: float | None,
                    lat: float | None, radius_m: float | None = None, window_hours: float | None = None,
                    exclude_code: str | None = None) -> list[dict]:
    """Open events of ``category_code`` within the radius and the window of a new one.

    Events without a position (address-less, unlocated) are never candidates: without
    a place there is no "same place". Returns dicts ``{code, distance_m, hours}``,
    nearest first.
    """
    if lon is None or lat is None or not (np.isfinite(lon) and np.isfinite(lat)):
        return []
    r, w = duplicate_settings()
    radius_m = r if radius_m is None else radius_m
    window_hours = w if window_hours is None else window_hours
    span = dt.timedelta(hours=window_hours)
    dy = radius_m / 110_574.0 * 1.01
    dx = radius_m / (111_320.0 * max(np.cos(np.radians(lat)), 0.01)) * 1.01
    rows = conn.execute(_CANDIDATES, {
        "category": category_code, "t0": reported_at - span, "t1": reported_at + span,
        "x0": lon - dx, "x1": lon + dx, "y0": lat - dy, "y1": lat + dy,
    }).all()
    rows = [r for r in rows if r[0] != exclude_code]
    if not rows:
        return []
    d = distance_m(lon, lat, np.array([r[2] for r in rows]), np.array([r[3] for r in rows]))
    out = [
        {"code": r[0], "distance_m": round(float(di), 1),
         "hours": round(abs((r[1] - reported_at).total_seconds()) / 3600.0, 1)}
        for r, di in zip(rows, d) if di <= radius_m
    ]
    return sorted(out, key=lambda c: (c["distance_m"], c["code"]))[:MAX_CANDIDATES]


def candidates_frame(new: pd.DataFrame, existing: pd.DataFrame | None = None, *,
                     radius_m: float | None = None, window_hours: float | None = None) -> pd.Series:
    """Duplicate candidates of many events at once.

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
    r, w = duplicate_settings()
    radius_m = r if radius_m is None else radius_m
    window_hours = w if window_hours is None else window_hours
    result = pd.Series([None] * len(new), index=new.index, dtype=object)
    if len(new) == 0:
        return result
    frames = [new.assign(_new=True)]
    if existing is not None and len(existing):
        frames.append(existing.assign(_new=False))
    allf = pd.concat(frames, ignore_index=True)
    if "open_until" not in allf:
        allf["open_until"] = pd.NaT
    x = allf["x"].to_numpy(dtype=float)
    y = allf["y"].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return result
    # A local equirectangular plane is exact to well under a metre at 100 m.
    lat0 = float(np.nanmean(y[ok]))
    kx, ky = 111_320.0 * np.cos(np.radians(lat0)), 110_574.0
    pts = shapely.points(np.where(ok, x * kx, 0.0), np.where(ok, y * ky, 0.0))
    pts[~ok] = None
    tree = shapely.STRtree(pts)
    is_new = allf["_new"].to_numpy(dtype=bool)
    queries = np.flatnonzero(is_new & ok)
    qi, qj = tree.query(pts[queries], predicate="dwithin", distance=radius_m * 1.01)
    qi = queries[qi]
    keep = (qi != qj) & ok[qj]
    qi, qj = qi[keep], qj[keep]
    cat = allf["category_code"].to_numpy(dtype=object)
    t = pd.to_datetime(allf["reported_at"], utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    until = pd.to_datetime(allf["open_until"], utc=True).to_numpy(dtype="datetime64[ns]")
    until = np.where(np.isnat(until), np.iinfo(np.int64).max, until.astype(np.int64))
    dt_h = (t[qi] - t[qj]) / 3.6e12
    same = cat[qi] == cat[qj]
    in_window = np.abs(dt_h) <= window_hours
    # For two new events, only the earlier is a candidate for the later, while open.
    earlier = ~is_new[qj] | (t[qj] < t[qi]) | ((t[qj] == t[qi]) & (qj < qi))
    open_then = ~is_new[qj] | (until[qj] > t[qi])
    keep = same & in_window & earlier & open_then
    qi, qj, dt_h = qi[keep], qj[keep], dt_h[keep]
    d = distance_m(x[qi], y[qi], x[qj], y[qj])
    keep = d <= radius_m
    qi, qj, d, dt_h = qi[keep], qj[keep], d[keep], dt_h[keep]
    if len(qi) == 0:
        return result
    codes = allf["code"].to_numpy(dtype=object)
    order = np.lexsort((codes[qj].astype(str), d, qi))
    pos = np.flatnonzero(is_new)  # allf rows of `new`, in order
    row_of = np.full(len(allf), -1)
    row_of[pos] = np.arange(len(pos))
    lists: dict[int, list] = {}
    for a, b, dd, hh in zip(qi[order], qj[order], d[order], dt_h[order]):
        lst = lists.setdefault(int(row_of[a]), [])
        if len(lst) < MAX_CANDIDATES:
            lst.append({"code": codes[b], "distance_m": round(float(dd), 1), "hours": round(abs(float(hh)), 1)})
    for k, lst in lists.items():
        result.iloc[k] = lst
    return result
