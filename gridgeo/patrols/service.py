"""Patrols (巡查) and check-ins (签到) in the store, and their figures per period.

- :func:`record_patrol`: a cleaned track kept as a line (WGS84) with the seconds of each
  vertex since its start; an ``Idempotency-Key`` makes a retried upload one patrol (the
  same key with another track is refused).
- :func:`check_in`: a grid worker's mark at a grid, verified by position: inside the grid,
  or within ``GRIDGEO_CHECKIN_DISTANCE_M`` of it, and the grid one of theirs.
- :func:`patrol_stats`: distance, time patrolled and coverage per grid or worker over a
  period (:mod:`gridgeo.patrols.coverage`), under the plan in force at the period's end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Integer, and_, cast, func, select

from gridgeo import crs as _crs
from gridgeo.config import get_settings
from gridgeo.errors import IdempotencyKeyReused, InvalidInput, InvalidTrack, NotFound, OutsideJurisdiction
from gridgeo.events.db import write_txn
from gridgeo.events.intake import MAX_CLOCK_SKEW
from gridgeo.events.records import iso, now_utc
from gridgeo.patrols.coverage import patrol_coverage
from gridgeo.patrols.tracks import Track
from gridgeo.store import Store, schema
from gridgeo.store.types import in_time_range
from gridgeo.timezone import CHINA

__all__ = ["BY", "check_in", "list_patrols", "patrol_stats", "patrol_tracks", "record_patrol", "track_fingerprint"]

#: Groupings of the patrol figures.
BY = ("grid", "worker")
#: Labels of the figures (Chinese, for people).
LABELS = {"patrols": "巡查次数", "distance_km": "巡查里程(公里)", "hours": "巡查时长(小时)",
          "households": "户数", "households_covered": "覆盖户数", "household_coverage": "户覆盖率",
          "road_km": "道路长度(公里)", "road_covered_km": "覆盖道路(公里)", "road_coverage": "道路覆盖率",
          "checkins": "签到次数", "checkins_verified": "有效签到", "grid_code": "网格编码", "grid_name": "网格名称",
          "village_code": "村社区编码", "username": "账号", "staff_code": "人员编码"}


def track_fingerprint(track: Track) -> str:
    """SHA-256 of a track as received (to tell a retry from another track)."""
    h = hashlib.sha256()
    for a in (track.lon, track.lat, track.t):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    h.update(track.crs.encode())
    return h.hexdigest()


def _record(row, *, replayed: bool = False) -> dict:
    return {"id": row["id"], "username": row["username"], "staff_code": row["staff_code"],
            "started_at": iso(row["started_at"]), "ended_at": iso(row["ended_at"]), "points": row["points"],
            "distance_m": round(row["distance_m"], 1), "duration_s": round(row["duration_s"], 1),
            "source_format": row["source_format"], "crs": row["crs"], "cleaning": row["cleaning"],
            "cleaned": bool((row["cleaning"] or {}).get("dropped")), "replayed": replayed}


def record_patrol(store: Store, raw: Track, cleaned: Track, *, username: str, staff_code: str | None,
                  idempotency_key: str | None = None) -> dict:
    """Keep a cleaned track (``raw`` as received, for the request's fingerprint).

    Raises IdempotencyKeyReused for a key sent before with another track.
    """
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise InvalidTrack("Idempotency-Key must have 1 to 255 characters")
    fingerprint = track_fingerprint(raw)
    pt = schema.patrols
    with write_txn(store) as conn:
        if idempotency_key is not None:
            old = conn.execute(select(pt).where(pt.c.idempotency_key == idempotency_key)).mappings().first()
            if old is not None:
                if old["request_hash"] != fingerprint or old["username"] != username:
                    raise IdempotencyKeyReused(f"Idempotency-Key {idempotency_key!r} was used for another track")
                return _record(old, replayed=True)
        t0 = float(cleaned.t[0])
        values = dict(
            username=username, staff_code=staff_code, started_at=cleaned.started_at, ended_at=cleaned.ended_at,
            points=len(cleaned), distance_m=cleaned.distance_m, duration_s=cleaned.duration_s,
            geometry=shapely.linestrings(np.column_stack([cleaned.lon, cleaned.lat])),
            times=np.round(cleaned.t - t0, 3).tolist(), source_format=cleaned.source_format, crs=cleaned.crs,
            cleaning=cleaned.cleaning, idempotency_key=idempotency_key, request_hash=fingerprint,
            created_at=now_utc())
        pid = conn.execute(pt.insert().values(**values).returning(pt.c.id)).scalar()
        Store.audit(conn, actor=username, action="patrol.record", entity="patrols", entity_id=str(pid),
                    detail={"points": len(cleaned), "cleaning": cleaned.cleaning})
        row = conn.execute(select(pt).where(pt.c.id == pid)).mappings().one()
    return _record(row)


def list_patrols(store: Store, *, username: str | list[str] | None = None, period=None, limit: int = 100,
                 offset: int = 0) -> dict:
    """Patrols, newest first (no geometry)."""
    pt = schema.patrols
    conds = []
    if username is not None:
        conds.append(pt.c.username.in_([username] if isinstance(username, str) else username))
    if period is not None:
        start, end = period.bounds()
        conds += [pt.c.started_at < end, pt.c.ended_at >= start]
    cols = [c for c in pt.c if c.name not in ("geometry", "times")]
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(pt).where(and_(True, *conds))).scalar()
        rows = conn.execute(select(*cols).where(and_(True, *conds)).order_by(pt.c.started_at.desc(), pt.c.id.desc())
                            .limit(limit).offset(offset)).mappings().all()
    return {"total": total, "limit": limit, "offset": offset, "items": [_record(r) for r in rows]}


def check_in(store: Store, *, username: str, staff_code: str | None, grids: list[str], lon: float, lat: float,
             crs: str = "wgs84", grid_code: str | None = None, at: dt.datetime | None = None) -> dict:
    """Record a check-in (签到) at ``grid_code`` (default: the worker's grid holding the
    point). Verified when the grid is one of the worker's and the point is inside it or
    within GRIDGEO_CHECKIN_DISTANCE_M of it; an unverified check-in is kept too, saying why.
    A check-in sent with its time ``at`` is kept once: the same worker, moment and position
    again (a retry) answers the first one (``replayed``)."""
    from gridgeo.crs import metric_epsg
    from pyproj import Transformer

    _crs.check_lonlat(lon, lat)
    name = _crs.normalize_name(crs or "wgs84")
    x, y = (float(v[0]) for v in _crs.to_wgs84(np.array([lon]), np.array([lat]), name)) if name != "wgs84" \
        else (float(lon), float(lat))
    now = now_utc()
    given = at is not None
    at = at or now
    if at.tzinfo is None:
        raise InvalidInput("the check-in time needs an offset, e.g. 2026-03-01T09:30:00+08:00")
    if at > now + MAX_CLOCK_SKEW or not in_time_range(at):
        raise InvalidInput(f"check-in time {at.isoformat()} is in the future or out of range")
    plan = store.plan_in_force(at.astimezone(CHINA).date())
    if plan is None:
        raise OutsideJurisdiction("no grid plan is in force today")
    grid_frame = store.read("grids", plan=plan["id"])
    candidates = grid_frame[grid_frame["code"].isin([grid_code] if grid_code else grids)]
    if grid_code and candidates.empty:
        raise NotFound(f"no grid {grid_code!r} in the plan in force")
    if candidates.empty:
        raise InvalidInput("the worker serves no grid of the plan in force")
    tr = Transformer.from_crs(4326, metric_epsg(x), always_xy=True)
    geoms = shapely.transform(np.asarray(candidates.geometry.values, dtype=object),
                              lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    px, py = tr.transform(x, y)
    dist = shapely.distance(geoms, shapely.Point(px, py))
    best = int(np.argmin(dist))
    code = str(candidates["code"].iloc[best])
    distance = float(dist[best])
    limit = get_settings().checkin_distance_m
    reasons = []
    if code not in grids:
        reasons.append(f"grid {code} is not one of the worker's grids")
    if distance > limit:
        reasons.append(f"the position is {distance:,.0f} m from grid {code} (more than {limit:g} m)")
    verified = not reasons
    ci = schema.checkins
    with write_txn(store) as conn:
        if given:  # sent again (the phone's answer was lost): the same worker, moment and place is one check-in
            old = conn.execute(select(ci.c.id).where(ci.c.username == username, ci.c.at == at, ci.c.lon == x,
                                                     ci.c.lat == y)).scalar()
            if old is not None:
                return {"id": old, "username": username, "grid_code": code, "at": iso(at),
                        "position": {"lon": round(x, 7), "lat": round(y, 7), "crs": "wgs84"},
                        "distance_m": round(distance, 1), "verified": verified, "reasons": reasons,
                        "replayed": True}
        cid = conn.execute(ci.insert().values(
            username=username, staff_code=staff_code, grid_code=code, at=at, lon=x, lat=y,
            distance_m=distance, verified=verified, created_at=now_utc()).returning(ci.c.id)).scalar()
        Store.audit(conn, actor=username, action="checkin", entity="grids", entity_id=code,
                    detail={"checkin": cid, "verified": verified, "distance_m": round(distance, 1)})
    return {"id": cid, "username": username, "grid_code": code, "at": iso(at),
            "position": {"lon": round(x, 7), "lat": round(y, 7), "crs": "wgs84"},
            "distance_m": round(distance, 1), "verified": verified, "reasons": reasons, "replayed": False}


def _patrol_frame(store: Store, period) -> pd.DataFrame:
    pt = schema.patrols
    start, end = period.bounds()
    with store.engine.connect() as conn:
        rows = conn.execute(select(pt.c.username, pt.c.started_at, pt.c.times, pt.c.geometry)
                            .where(pt.c.started_at >= start, pt.c.started_at < end)
                            .order_by(pt.c.id)).all()
    frame = pd.DataFrame(rows, columns=["username", "started_at", "times", "geometry"])
    frame["geometry"] = shapely.from_wkb(frame["geometry"].to_numpy(dtype=object)) if len(frame) else []
    frame["start"] = [r.timestamp() for r in frame["started_at"]] if len(frame) else []
    return frame


def patrol_tracks(store: Store, period) -> pd.DataFrame:
    """The tracks of the patrols started in ``period``: ``username``, ``started_at``,
    ``times``, ``start`` (epoch seconds) and ``geometry`` (shapely LineStrings, WGS84), in
    the order they were kept (what :func:`patrol_stats` counts)."""
    return _patrol_frame(store, period)


def _worker_grids(store: Store) -> tuple[dict[str, list[str]], dict[str, dict]]:
    u = schema.users
    with store.engine.connect() as conn:
        rows = conn.execute(select(u.c.username, u.c.name, u.c.staff_code, u.c.grids)
                            .where(u.c.role == "grid_worker")).all()
    return ({r.username: list(r.grids or []) for r in rows},
            {r.username: {"name": r.name, "staff_code": r.staff_code} for r in rows})


def patrol_stats(store: Store, period, by: str = "grid", *, radius: float | None = None,
                 tracks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Patrol figures per grid or per worker over ``period`` (a
    :class:`gridgeo.assess.periods.Period`): patrols, distance_km, hours, households and
    road length, what of them was covered (within ``radius`` m of a track), check-ins.
    ``tracks``: the period's tracks already read (:func:`patrol_tracks`)."""
    if by not in BY:
        raise InvalidInput(f"by {by!r}: use {' or '.join(BY)}")
    radius = get_settings().patrol_coverage_m if radius is None else radius
    plan = store.plan_in_force(period.end)
    if plan is None:
        raise OutsideJurisdiction(f"no grid plan is in force on {period.end.isoformat()}")
    grids = store.read("grids", plan=plan["id"])
    households = store.read("households")
    roads = store.read("roads")
    roads = roads[roads["kind"] == "road"] if len(roads) else roads
    worker_grids, people = _worker_grids(store)
    patrols = _patrol_frame(store, period) if tracks is None else tracks
    figures = patrol_coverage(patrols, grids, households, roads, worker_grids=worker_grids, radius=radius)[by]
    start, end = period.bounds()
    ci = schema.checkins
    key = ci.c.grid_code if by == "grid" else ci.c.username
    with store.engine.connect() as conn:
        counts = conn.execute(select(key, func.count(), func.sum(cast(ci.c.verified, Integer)))
                              .where(ci.c.at >= start, ci.c.at < end).group_by(key)).all()
    checks = pd.DataFrame(counts, columns=[figures.index.name, "checkins", "checkins_verified"]).set_index(
        figures.index.name)
    out = pd.DataFrame(index=figures.index)
    if by == "grid":
        names = grids.set_index("code")
        out["grid_name"] = names["name"].reindex(out.index)
        out["village_code"] = names["village_code"].reindex(out.index)
    else:
        out["name"] = [people.get(w, {}).get("name", w) for w in out.index]
        out["staff_code"] = [people.get(w, {}).get("staff_code") for w in out.index]
        out["grids"] = ["、".join(worker_grids.get(w, [])) for w in out.index]
    out["patrols"] = figures["patrols"]
    out["distance_km"] = (figures["distance_m"] / 1000).round(3)
    out["hours"] = (figures["patrolled_s"] / 3600).round(2)
    out["households"] = figures["households"].round(0).astype(int)
    out["households_covered"] = figures["households_covered"].round(0).astype(int)
    out["household_coverage"] = figures["household_coverage"].round(4)
    out["road_km"] = (figures["road_m"] / 1000).round(3)
    out["road_covered_km"] = (figures["road_covered_m"] / 1000).round(3)
    out["road_coverage"] = figures["road_coverage"].round(4)
    out["checkins"] = checks["checkins"].reindex(out.index).fillna(0).astype(int)
    out["checkins_verified"] = checks["checkins_verified"].reindex(out.index).fillna(0).astype(int)
    out.attrs.update(period=period.as_dict(), by=by, radius_m=radius, plan_version=plan["version"])
    return out


def stats_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN as None)."""
    out = frame.reset_index()
    return json.loads(out.to_json(orient="records", force_ascii=False))
