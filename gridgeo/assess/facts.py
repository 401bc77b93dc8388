"""What assessment needs to know about each event, read in one SQL statement.

:func:`read_facts` returns one row per event that can count in a period: its grid,
platform, department and category; its times as seconds since the epoch (reported,
deadline, closed, last updated); its state; and a bit mask of the actions taken on it
up to ``as_of`` (:data:`FLAG_BITS`), aggregated in the database from ``event_actions``
(``SUM(DISTINCT bit)`` per event). Everything after that is vectorised pandas: the
cohort masks (:func:`add_cohorts`) and the groupings (:mod:`gridgeo.assess.indicators`).

The events table is the one source: ``grid_code``, ``platform``, ``department``,
``deadline_at`` (after approved extensions), ``closed_at``, ``satisfaction`` and
``state``, as the events pipeline (:mod:`gridgeo.events`) keeps them. Two fallbacks
cover events that were imported as a plain layer and never went through the pipeline
(``located_by`` is null): their platform, department and deadline follow from their
category (reported time + the category's hours + any extension), and their grid is
found by :class:`gridgeo.locate.Locator` of the plan in force on the day they were
reported (the locator the events pipeline uses, :func:`gridgeo.events.geolocate.get_geolocator`).
Events the pipeline left without a grid (outside, unlocated) stay without one.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from functools import lru_cache

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import (Float, Integer, and_, case, cast, extract, func, literal_column, or_, select,
                        type_coerce)

from gridgeo import crs as _crs
from gridgeo.assess.periods import CST, InvalidQuery, Period, parse_period
from gridgeo.events.workflow import ACTIONS, OVERDUE_STATES, RESOLVED_STATES, STATES
from gridgeo.store import Store, schema
from gridgeo.store.types import FIRST_DAY, LAST_DAY, in_time_range

__all__ = [
    "CLOSED_STATES",
    "FLAG_BITS",
    "STATUSES",
    "add_cohorts",
    "as_utc",
    "epoch",
    "event_status",
    "locate_unplaced",
    "read_facts",
    "self_reported",
]

#: Actions whose taking (up to ``as_of``) the facts record, as bits of ``flags``.
FLAG_BITS = {"accept": 1, "dispatch": 2, "escalate": 4, "rework": 8, "extend": 16, "rate": 32}

#: Event statuses for maps and workload, code -> label (:func:`event_status`).
STATUSES = {"open": "在办", "overdue": "超期", "closed": "已办结", "rejected": "不予受理"}
#: States counted as handled (办结) by :func:`event_status`: resolved by the department,
#: whether or not verified and closed yet.
CLOSED_STATES = tuple(s for s in STATES if s in RESOLVED_STATES)  # the workflow's, in life-cycle order


def as_utc(when: dt.datetime | dt.date | str | None) -> dt.datetime:
    """An aware UTC datetime from a datetime (naive = China Standard Time), a date (the end
    of that local day) or ISO text; None means now."""
    if when is None:
        return dt.datetime.now(dt.timezone.utc)
    if isinstance(when, str):
        text = when.strip()
        try:
            when = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidQuery(f"as_of {text!r} is not an ISO date or time (2026-10-08 or "
                               "2026-10-08T12:00:00+08:00)") from None
    if isinstance(when, dt.date) and not in_time_range(when):
        raise InvalidQuery(f"as_of {when.isoformat()} must fall between {FIRST_DAY} and {LAST_DAY}")
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=CST)
        return when.astimezone(dt.timezone.utc)
    if isinstance(when, dt.date):
        end = dt.datetime.combine(when + dt.timedelta(days=1), dt.time(), CST) - dt.timedelta(microseconds=1)
        return end.astimezone(dt.timezone.utc)
    raise InvalidQuery(f"as_of {when!r} is not a date or time")


def epoch(col, dialect: str):
    """Seconds since 1970 (UTC) of a timestamp column, as a float, on either database."""
    if dialect == "sqlite":
        # UTCDateTime keeps naive UTC text on SQLite; julianday reads it, fractions included.
        return type_coerce((type_coerce(func.julianday(col), Float) - 2440587.5) * 86400.0, Float)
    return type_coerce(cast(extract("epoch", col), Float), Float)


def _ts(when: dt.datetime) -> float:
    return when.timestamp()


def read_facts(
    store: Store,
    period: Period | str,
    *,
    as_of: dt.datetime | dt.date | str | None = None,
    place: bool = True,
    flags: str = "derived",
) -> pd.DataFrame:
    """One row per event that can count in ``period`` as of ``as_of``.

    Read: events reported in the period, events whose deadline falls in it, and events
    due before its end still open (or changed after ``as_of``); all reported before the
    period ends and by ``as_of``. :func:`add_cohorts` then says which count where.

    The events come in one statement (times as epoch seconds computed in the
    database); rows come back as plain tuples and become numpy columns at once (no
    Python work per event). The action flags (:data:`FLAG_BITS`) come one of two ways,
    with the same result (a test checks it on the sample year):

    ``"actions"``
        Every event's actions up to ``as_of``, aggregated per event in the database
        (``MAX(CASE ...) ... GROUP BY event_id`` over ``event_actions``).
    ``"derived"`` (default; about 3x faster on SQLite for a year)
        What the events table says already: ``escalated_to``, ``extended_hours`` and
        ``satisfaction`` are set by the escalate, extend and rate actions and only by
        them; whether an event was accepted and dispatched follows from its state (and
        whether it was escalated) by the state machine
        (:func:`derivable_flags`: e.g. a closed event never escalated was dispatched);
        reworks are read from ``event_actions`` through its (action, at) index. The
        events the state leaves in doubt (a rejection before or after acceptance, an
        escalation before or after dispatch) and those changed after ``as_of`` get the
        ``"actions"`` aggregation, for them alone.

    Parameters
    ----------
    store : Store
    period : Period or str
    as_of : datetime, date or ISO text, optional
        The moment the figures describe (default: now). Actions after it are ignored,
        states are those the events had then (replayed from ``event_actions`` for events
        changed since), ``closed_at`` after it is not closed. Deadlines are the stored
        ones (after every approved extension). A date means the end of that local day.
    place : bool
        Locate events that never went through the pipeline (see the module notes).
    flags : {"derived", "actions"}
        How the action flags are found (above).

    Returns
    -------
    pandas.DataFrame
        ``id``, ``grid_code``, ``platform``, ``department``, ``category_code``, ``state``
        (at ``as_of``), ``reported``, ``deadline``, ``closed`` (float seconds since the
        epoch, NaN for none), ``satisfaction`` (float, NaN unless rated by ``as_of``),
        ``flags`` (int, :data:`FLAG_BITS`), with the cohort columns of
        :func:`add_cohorts`. ``attrs`` holds ``period`` and ``as_of`` (aware UTC).
    """
    period = parse_period(period)
    as_of = as_utc(as_of)
    start, end = period.bounds()
    d = store.dialect
    ev, cat = schema.events, schema.categories
    reported = epoch(ev.c.reported_at, d)
    # Events routed by the pipeline carry their deadline; others follow their category.
    fallback = reported + 3600.0 * (func.coalesce(cat.c.deadline_hours, 0) + ev.c.extended_hours)
    deadline = case((ev.c.deadline_at.is_not(None), epoch(ev.c.deadline_at, d)),
                    (cat.c.deadline_hours.is_not(None), fallback), else_=None)
    if flags not in ("derived", "actions"):
        raise InvalidQuery(f"flags must be 'derived' or 'actions', not {flags!r}")
    # 1: changed after as_of (its state then is replayed); 2: never located by the
    # pipeline; 4: escalated; 8: extended.
    bits = (case((ev.c.updated_at > as_of, 1), else_=0)
            + case((and_(ev.c.grid_code.is_(None), ev.c.located_by.is_(None)), 2), else_=0)
            + case((ev.c.escalated_to.is_not(None), 4), else_=0)
            + case((ev.c.extended_hours > 0, 8), else_=0))
    # The state as its number in STATES: small ints cost Python nothing to fetch.
    state = case(*[(ev.c.state == name, i) for i, name in enumerate(STATES)], else_=-1)
    cols = [
        ev.c.id,
        ev.c.grid_code,
        func.coalesce(ev.c.platform, cat.c.platform).label("platform"),
        func.coalesce(ev.c.department, cat.c.department).label("department"),
        ev.c.category_code,
        state.label("state"),
        reported.label("reported"),
        type_coerce(deadline, Float).label("deadline"),
        epoch(ev.c.closed_at, d).label("closed"),
        ev.c.satisfaction,
        bits.label("bits"),
    ]
    cutoff = min(end, as_of)
    scope = and_(
        ev.c.reported_at <= as_of,
        ev.c.reported_at < end,
        or_(
            ev.c.reported_at >= start,
            ev.c.deadline_at.is_(None),
            ev.c.deadline_at >= start,
            # the backlog: due before the period, open (now, or then)
            and_(ev.c.deadline_at < cutoff,
                 or_(ev.c.state.in_(sorted(OVERDUE_STATES)), ev.c.updated_at > as_of)),
        ),
    )
    q = select(*cols).select_from(ev.outerjoin(cat, cat.c.code == ev.c.category_code)).where(scope)
    with store.engine.connect() as conn:
        data = _columns(_tuples(conn, q), len(cols))
        facts = pd.DataFrame({
            "id": np.asarray(data[0], dtype=np.int64),
            **{c.name: pd.Series(np.asarray(data[i], dtype=object), dtype=object)
               for i, c in enumerate(cols[1:5], 1)},
            "state": pd.Categorical.from_codes(np.asarray(data[5], dtype=np.int64), categories=list(STATES)),
            # epoch seconds to the millisecond: julianday arithmetic leaves ~1e-5 s of noise
            **{name: np.round(np.asarray(data[i], dtype=float), 3) for i, name in
               ((6, "reported"), (7, "deadline"), (8, "closed"))},
            "satisfaction": np.asarray(data[9], dtype=float),
        })
        bits = np.asarray(data[10], dtype=np.int64)
        del data
        changed = (bits & 1) > 0
        ids = facts["id"].to_numpy()
        if flags == "actions":
            facts["flags"] = _flags(conn, ids, as_of, d)
        else:
            facts["flags"] = _derived_flags(conn, facts, bits, as_of, d)
        if changed.any():
            facts.loc[changed, "state"] = _states_then(conn, facts.loc[changed, "id"], as_of)
    if place:
        todo = (bits & 2) > 0
        if todo.any():
            facts.loc[todo, "grid_code"] = locate_unplaced(store, facts.loc[todo, "id"])
    # Not closed, not rated by then.
    a = _ts(as_of)
    late_close = facts["closed"].to_numpy() > a
    facts.loc[late_close, "closed"] = np.nan
    rated = (facts["flags"].to_numpy() & FLAG_BITS["rate"]) > 0
    facts.loc[~rated, "satisfaction"] = np.nan
    facts.attrs.update(period=period, as_of=as_of)
    return add_cohorts(facts, period, as_of)


def _tuples(conn, q) -> list[tuple]:
    """The rows of ``q`` as the driver's plain tuples: the selected columns need no
    conversion, and a million Row objects cost more than the query."""
    result = conn.execute(q)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _columns(rows, n: int) -> list[np.ndarray]:
    """Result rows as ``n`` object-array columns (one C-level copy)."""
    if not rows:
        return [np.empty(0, dtype=object)] * n
    table = np.empty((len(rows), n), dtype=object)
    table[:] = rows
    return [table[:, i] for i in range(n)]


def _flags(conn, ids: np.ndarray, as_of: dt.datetime, dialect: str) -> np.ndarray:
    """The :data:`FLAG_BITS` of each event of ``ids``: its actions up to ``as_of``,
    aggregated per event in the database (one row per event that has any)."""
    out = np.zeros(len(ids), dtype=np.int64)
    if not len(ids):
        return out
    ea = schema.event_actions
    flags = sum(func.max(case((ea.c.action == a, b), else_=0)) for a, b in FLAG_BITS.items())
    # ``|| ''`` keeps SQLite's planner off the (action, at) index, which it prefers
    # here for no good reason (a walk of every flagged action per statement).
    action = ea.c.action.concat("") if dialect == "sqlite" else ea.c.action
    base = (select(ea.c.event_id, flags.label("flags"))
            .where(action.in_(list(FLAG_BITS)), ea.c.at <= as_of).group_by(ea.c.event_id))
    rows = []
    if len(ids) <= 200_000:
        # Not too many: each found through the (event_id, seq) index.
        for i in range(0, len(ids), 5_000):
            chunk = [int(x) for x in ids[i:i + 5_000]]
            rows.extend(_tuples(conn, base.where(ea.c.event_id.in_(chunk))))
    else:
        # Many: one pass over the actions of their id range. On SQLite, ``+event_id``
        # keeps the planner from walking the (event_id, seq) index with a table lookup
        # per line for the GROUP BY's order: a straight read and a sort are about 1.5x
        # faster. PostgreSQL plans this itself.
        key = ea.c.event_id
        if dialect == "sqlite":
            key = type_coerce(literal_column("+event_actions.event_id"), Integer)
        rows = _tuples(
            conn,
            select(key.label("event_id"), flags.label("flags"))
            .where(action.in_(list(FLAG_BITS)), ea.c.at <= as_of,
                   ea.c.event_id.between(int(ids.min()), int(ids.max())))
            .group_by(key))
    cols = _columns(rows, 2)
    fid = np.asarray(cols[0], dtype=np.int64)
    fval = np.asarray(cols[1], dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids[order], fid)
    pos = np.minimum(pos, len(ids) - 1)
    hit = ids[order][pos] == fid
    out[order[pos[hit]]] = fval[hit]
    return out


_TRACKED = frozenset({"accept", "dispatch", "escalate"})


@lru_cache(maxsize=1)
def derivable_flags() -> dict[tuple[str, bool], tuple[int | None, int | None]]:
    """(state, escalated) -> (accepted, dispatched), from the state machine.

    Every path of :data:`gridgeo.events.workflow.ACTIONS` from ``reported`` is followed
    (normal and major events), noting which of accept, dispatch and escalate it took.
    Where every path to a state, with (or without) an escalation, agrees whether an
    accept (a dispatch) was taken, that is 1 or 0; where paths disagree, None: the
    event's history must say.
    """
    start = ("reported", frozenset())
    seen = {start}
    todo = deque([start])
    while todo:
        state, taken = todo.popleft()
        for action in ACTIONS.values():
            for major in (False, True):
                target = action.target(state, major=major)
                if target is None:
                    continue
                node = (target, taken | ({action.name} & _TRACKED))
                if node not in seen:
                    seen.add(node)
                    todo.append(node)
    out = {}
    for state in STATES:
        for escalated in (False, True):
            paths = [taken for s, taken in seen if s == state and ("escalate" in taken) == escalated]

            def agreed(name, paths=paths):
                values = {name in taken for taken in paths}
                return int(values.pop()) if len(values) == 1 else None

            out[(state, escalated)] = (agreed("accept"), agreed("dispatch")) if paths else (None, None)
    return out


def _derived_flags(conn, facts: pd.DataFrame, bits: np.ndarray, as_of: dt.datetime, dialect: str) -> np.ndarray:
    """:data:`FLAG_BITS` from the events' own columns and states (see :func:`read_facts`)."""
    states = list(STATES)
    table = derivable_flags()
    acc = np.array([[-1 if table[(s, e)][0] is None else table[(s, e)][0] for s in states] for e in (False, True)])
    dis = np.array([[-1 if table[(s, e)][1] is None else table[(s, e)][1] for s in states] for e in (False, True)])
    code = pd.Categorical(facts["state"], categories=states).codes.astype(np.int64)
    esc = ((bits & 4) > 0).astype(np.int64)
    known = code >= 0
    a = np.where(known, acc[esc, np.maximum(code, 0)], -1)
    p = np.where(known, dis[esc, np.maximum(code, 0)], -1)
    out = (np.where(a == 1, FLAG_BITS["accept"], 0) | np.where(p == 1, FLAG_BITS["dispatch"], 0)
           | np.where(esc == 1, FLAG_BITS["escalate"], 0)
           | np.where((bits & 8) > 0, FLAG_BITS["extend"], 0)
           | np.where(np.isfinite(facts["satisfaction"].to_numpy(dtype=float)), FLAG_BITS["rate"], 0))
    ids = facts["id"].to_numpy()
    ea = schema.event_actions
    # Reworks are few: through the (action, at) index.
    reworked = np.asarray(conn.execute(
        select(ea.c.event_id).where(ea.c.action == "rework", ea.c.at <= as_of).distinct()).scalars().all(),
        dtype=np.int64)
    out = out | np.where(np.isin(ids, reworked), FLAG_BITS["rework"], 0)
    # In doubt, or changed since as_of: their history says.
    doubt = (a < 0) | (p < 0) | ((bits & 1) > 0)
    if doubt.any():
        out[doubt] = _flags(conn, ids[doubt], as_of, dialect)
    return out.astype(np.int64)


def _states_then(conn, ids: pd.Series, as_of: dt.datetime) -> np.ndarray:
    """The state of each event at ``as_of``: the to-state of its last action by then."""
    ea = schema.event_actions
    id_list = ids.to_numpy()
    parts = []
    for i in range(0, len(id_list), 20_000):
        chunk = [int(x) for x in id_list[i:i + 20_000]]
        parts.extend(conn.execute(
            select(ea.c.event_id, ea.c.seq, ea.c.to_state)
            .where(ea.c.event_id.in_(chunk), ea.c.at <= as_of)).all())
    hist = pd.DataFrame.from_records(parts, columns=["event_id", "seq", "to_state"])
    last = hist.sort_values(["event_id", "seq"]).drop_duplicates("event_id", keep="last")
    state = pd.Series(last["to_state"].to_numpy(), index=last["event_id"].to_numpy())
    # An event with no history line by then keeps the state it was reported in.
    return ids.map(state).fillna("reported").to_numpy(dtype=object)


def _positions(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lon/lat of each event: the stored geometry, else lon/lat converted from crs."""
    n = len(events)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    if "geometry" in events:
        wkb = events["geometry"].to_numpy(dtype=object)
        geoms = shapely.from_wkb(wkb) if n else np.array([], dtype=object)
        has = ~shapely.is_missing(geoms) if n else np.zeros(0, bool)
        if has.any():
            lon[has] = shapely.get_x(geoms[has])
            lat[has] = shapely.get_y(geoms[has])
    todo = np.isnan(lon)
    if todo.any() and {"lon", "lat"} <= set(events.columns):
        x = pd.to_numeric(events["lon"], errors="coerce").to_numpy(dtype=float)
        y = pd.to_numeric(events["lat"], errors="coerce").to_numpy(dtype=float)
        names = events["crs"] if "crs" in events else pd.Series("wgs84", index=events.index)
        names = names.fillna("wgs84").astype(str).str.lower().to_numpy()
        for name in np.unique(names[todo]):
            sel = todo & (names == name)
            if name in _crs.NAMES:
                lon[sel], lat[sel] = _crs.to_wgs84(x[sel], y[sel], name)
    return lon, lat


def locate_unplaced(store: Store, ids, *, frame: pd.DataFrame | None = None) -> np.ndarray:
    """Grid codes of events the pipeline never located (object array, None for none).

    Each is placed by the :class:`~gridgeo.locate.Locator` of the plan in force on the
    (CST) day it was reported, as the events pipeline places events: exact, a point on a
    shared edge to exactly one grid, snapped within ``GRIDGEO_SNAP_TOLERANCE_M``.

    Parameters
    ----------
    ids : array_like of int
        Event ids.
    frame : DataFrame, optional
        The events' ``reported_at`` (aware), ``geometry`` (WKB), ``lon``, ``lat``,
        ``crs``, in the order of ``ids``, when the caller has them; else they are read.
    """
    from gridgeo.events.geolocate import get_geolocator

    ids = np.asarray(ids, dtype=np.int64)
    out = np.full(len(ids), None, dtype=object)
    if not len(ids):
        return out
    if frame is None:
        ev = schema.events
        rows = []
        with store.engine.connect() as conn:
            for i in range(0, len(ids), 20_000):
                chunk = [int(x) for x in ids[i:i + 20_000]]
                rows.extend(conn.execute(select(ev.c.id, ev.c.reported_at, ev.c.geometry, ev.c.lon, ev.c.lat,
                                                ev.c.crs).where(ev.c.id.in_(chunk))).all())
        frame = (pd.DataFrame.from_records(rows, columns=["id", "reported_at", "geometry", "lon", "lat", "crs"])
                 .set_index("id").reindex(ids))
    lon, lat = _positions(frame)
    days = pd.to_datetime(frame["reported_at"], utc=True).dt.tz_convert(CST).dt.date.to_numpy()
    plans = store.plans()
    plans = plans[plans["status"] != "draft"]
    geo = get_geolocator(store)
    has = np.isfinite(lon) & np.isfinite(lat)
    # The plan in force on each day: of those effective then, the one that took effect
    # last (as Store.plan_in_force); later plans overwrite earlier ones.
    best = np.full(len(ids), -1, dtype=np.int64)
    plans = plans[plans["effective_from"].notna()].sort_values(["effective_from", "id"])
    for row in plans.itertuples(index=False):  # a handful of plans, not events
        until = dt.date.max if pd.isna(row.effective_to) else row.effective_to
        best[(days >= row.effective_from) & (days < until)] = row.id
    for pid in np.unique(best[has & (best >= 0)]):
        sel = has & (best == pid)
        plan = store.plan(int(pid))
        out[sel] = geo.locator(plan).locate(lon[sel], lat[sel])
    return out


def self_reported(store: Store, period: Period, as_of: dt.datetime, *, platform: str | None = None) -> pd.Series:
    """Events each staff member reported in ``period`` (by ``as_of``), by staff code:
    the ``reporter_staff_code`` the intake keeps (网格员巡查上报)."""
    ev = schema.events
    start, end = period.bounds()
    conds = [ev.c.reported_at >= start, ev.c.reported_at < end, ev.c.reported_at <= as_of,
             ev.c.reporter_staff_code.is_not(None)]
    if platform is not None:
        conds.append(ev.c.platform == platform)
    q = select(ev.c.reporter_staff_code, func.count()).where(*conds).group_by(ev.c.reporter_staff_code)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    return pd.Series({code: n for code, n in rows}, dtype=np.int64)


def event_status(state, deadline, as_of: float) -> np.ndarray:
    """``rejected``, ``closed`` (resolved, verified or closed: :data:`CLOSED_STATES`),
    ``overdue`` (in :data:`~gridgeo.events.workflow.OVERDUE_STATES` and past its deadline
    at ``as_of``, seconds since the epoch) or ``open`` (the rest, suspended included)."""
    state = pd.Series(np.asarray(state, dtype=object))
    deadline = np.asarray(deadline, dtype=float)
    return np.select(
        [state.eq("rejected").to_numpy(), state.isin(CLOSED_STATES).to_numpy(),
         state.isin(sorted(OVERDUE_STATES)).to_numpy() & (deadline < as_of)],
        ["rejected", "closed", "overdue"],
        "open",
    )


def add_cohorts(facts: pd.DataFrame, period: Period, as_of: dt.datetime) -> pd.DataFrame:
    """Add the boolean cohort columns every count is a sum of (see :mod:`gridgeo.assess`).

    ``received``, ``accepted``, ``dispatched``, ``escalated`` (reported in the period);
    ``due``, ``closed_`` (closed by ``as_of``), ``on_time``, ``reworked``, ``extended``,
    ``rated``, ``satisfied`` (due in the period); ``overdue``; and ``hours`` (reported to
    closed, for the closed ones, else NaN).
    """
    start, end = (_ts(t) for t in period.bounds())
    a = _ts(as_of)
    reported = facts["reported"].to_numpy(dtype=float)
    deadline = facts["deadline"].to_numpy(dtype=float)
    closed = facts["closed"].to_numpy(dtype=float)
    flags = facts["flags"].to_numpy(dtype=np.int64)
    state = facts["state"]
    seen = reported <= a

    def has(action):
        return (flags & FLAG_BITS[action]) > 0

    received = seen & (reported >= start) & (reported < end)
    rejected = state.eq("rejected").to_numpy()
    with np.errstate(invalid="ignore"):
        due = seen & ~rejected & (deadline >= start) & (deadline < end) & (deadline <= a)
        is_closed = due & np.isfinite(closed)
        on_time = is_closed & (closed <= deadline)
        overdue = (seen & state.isin(sorted(OVERDUE_STATES)).to_numpy()
                   & (deadline < min(end, a)))
    sat = facts["satisfaction"].to_numpy(dtype=float)
    rated = is_closed & np.isfinite(sat)
    return facts.assign(
        received=received,
        accepted=received & has("accept"),
        dispatched=received & has("dispatch"),
        escalated=received & has("escalate"),
        due=due,
        closed_=is_closed,
        on_time=on_time,
        reworked=due & has("rework"),
        extended=due & has("extend"),
        overdue=overdue,
        rated=rated,
        satisfied=rated & (sat >= 4),
        hours=np.where(is_closed, (closed - reported) / 3600.0, np.nan),
    )
