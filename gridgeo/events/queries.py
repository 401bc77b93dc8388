"""Reading events: one with its history, lists with filters and paging, supervision,
the command room's queues and the reporter's view."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import and_, case, func, or_, select

from gridgeo.errors import InvalidEvent, NotFound
from gridgeo.events.intake import hash_token
from gridgeo.events.records import event_record, history_record, iso, now_utc
from gridgeo.events.workflow import OVERDUE_STATES, QUEUE_STATES, STATES, UNDISPATCHED_STATES
from gridgeo.store import Store, schema
from gridgeo.store.sql import contains, starts_with
from gridgeo.store.types import FIRST_DAY, LAST_DAY, in_time_range

__all__ = ["QUEUES", "command_room", "monthly", "get_event", "list_events", "queue_counts", "reporter_view",
           "supervision", "warning_counts"]

MAX_LIMIT = 1000
#: The furthest a page may start: past any real table, well inside what the databases'
#: OFFSET takes (a larger one was a 500 from SQLite).
MAX_OFFSET = 2**31 - 1


def _select():
    ev, cat = schema.events, schema.categories
    return select(ev, cat.c.name.label("category_name")).select_from(
        ev.outerjoin(cat, cat.c.code == ev.c.category_code))


def _history(conn, event_id: int) -> list[dict]:
    ea = schema.event_actions
    rows = conn.execute(select(ea).where(ea.c.event_id == event_id).order_by(ea.c.seq)).mappings().all()
    return [history_record(r) for r in rows]


def get_event(store: Store, code: str, *, history: bool = True, now: dt.datetime | None = None) -> dict:
    """One event with its history (oldest first); :class:`NotFound` if there is none."""
    ev = schema.events
    with store.engine.connect() as conn:
        row = conn.execute(_select().where(ev.c.code == code)).mappings().first()
        if row is None:
            raise NotFound(f"no event {code!r}")
        out = event_record(row, now=now)
        if history:
            out["history"] = _history(conn, row["id"])
    return out


def _overdue_clause(now: dt.datetime):
    ev = schema.events
    return and_(ev.c.deadline_at < now, ev.c.state.in_(sorted(OVERDUE_STATES)))


def _due_soon_clause(now: dt.datetime):
    """临期: an open event whose early warning is yellow and whose deadline has not passed
    (past it, the event is overdue: red). The level is the one the deadline sweeper last
    recorded on the event (``events.warning``, by
    :func:`gridgeo.events.deadlines.warning_levels`, the one definition of the warning)."""
    ev = schema.events
    return and_(ev.c.warning == "yellow", ev.c.deadline_at >= now,
                ev.c.state.in_(sorted(OVERDUE_STATES)))


def _filters(*, state=None, grid=None, village=None, platform=None, department=None,
             category=None, source=None, located_by=None, overdue=None, duplicate=None,
             since=None, until=None, now=None, due_soon=None, text=None, bbox=None,
             extension_requested=None) -> list:
    ev = schema.events
    conds = []

    def many(col, value):
        values = [value] if isinstance(value, str) else list(value)
        values = [v for part in values for v in str(part).split(",") if v]
        if values:
            conds.append(col.in_(values))

    if state:
        many(ev.c.state, state)
        unknown = [s for v in ([state] if isinstance(state, str) else state) for s in str(v).split(",")
                   if s and s not in STATES]
        if unknown:
            raise InvalidEvent(f"unknown state {unknown[0]!r}: use {', '.join(STATES)}")
    if grid:
        many(ev.c.grid_code, grid)
    if village:
        conds.append(starts_with(ev.c.grid_code, village))
    if platform:
        many(ev.c.platform, platform)
    if department:
        many(ev.c.department, department)
    if category:
        many(ev.c.category_code, category)
    if source:
        many(ev.c.source, source)
    if located_by:
        many(ev.c.located_by, located_by)
    if overdue is not None:
        clause = _overdue_clause(now or now_utc())
        conds.append(clause if overdue else ~clause | ev.c.deadline_at.is_(None))
    if due_soon is not None:
        clause = _due_soon_clause(now or now_utc())
        conds.append(clause if due_soon else ~clause | ev.c.deadline_at.is_(None))
    if text:
        # An event code, or words of the description or address (matched literally).
        words = str(text).strip()[:100]
        conds.append(or_(starts_with(ev.c.code, words), contains(ev.c.description, words),
                         contains(ev.c.address, words)))
    if duplicate is not None:
        conds.append(ev.c.duplicate_flag.is_(bool(duplicate)))
    if extension_requested is not None:  # an extension request (申请延期) waits for its answer
        col = ev.c.extension_requested_hours
        conds.append(col.is_not(None) if extension_requested else col.is_(None))
    if since is not None:
        conds.append(ev.c.reported_at >= since)
    if until is not None:
        conds.append(ev.c.reported_at < until)
    if bbox is not None:  # lon/lat x0, y0, x1, y1: events placed inside it
        x0, y0, x1, y1 = bbox
        conds.extend([ev.c.pos_lon >= x0, ev.c.pos_lon <= x1, ev.c.pos_lat >= y0, ev.c.pos_lat <= y1])
    return conds


def list_events(store: Store, *, limit: int = 50, offset: int = 0, order: str = "-reported_at",
                now: dt.datetime | None = None, **filters) -> dict:
    """Events matching the filters, a page at a time.

    Filters (all optional, combined with AND; list-valued ones accept lists or
    comma-separated text): ``state``, ``grid``, ``village`` (code or prefix),
    ``platform``, ``department``, ``category``, ``source``, ``located_by``,
    ``overdue`` (bool), ``due_soon`` (bool: 临期, the yellow early warning),
    ``duplicate`` (bool), ``since`` / ``until`` (reported time, aware datetimes, until
    exclusive), ``text`` (an event code's start, or words in the description or address),
    ``bbox`` (lon/lat ``x0, y0, x1, y1``: placed inside).

    Returns ``{"total", "limit", "offset", "items"}``.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidEvent(f"limit must be between 1 and {MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidEvent(f"offset must be between 0 and {MAX_OFFSET}")
    for name in ("since", "until"):
        if filters.get(name) is not None and not in_time_range(filters[name]):
            raise InvalidEvent(f"{name} must fall between {FIRST_DAY} and {LAST_DAY}")
    now = now or now_utc()
    ev = schema.events
    conds = _filters(now=now, **filters)
    key = order.lstrip("-")
    if key not in ("reported_at", "deadline_at", "updated_at", "code"):
        raise InvalidEvent(f"cannot order by {key!r}: use reported_at, deadline_at, updated_at or code")
    col = ev.c[key]
    ordering = [col.desc() if order.startswith("-") else col.asc(), ev.c.id.desc() if order.startswith("-") else ev.c.id]
    q = _select().where(*conds).order_by(*ordering).limit(limit).offset(offset)
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(ev).where(*conds)).scalar()
        rows = conn.execute(q).mappings().all()
    return {"total": total, "limit": limit, "offset": offset,
            "items": [event_record(r, now=now) for r in rows]}


def supervision(store: Store, *, now: dt.datetime | None = None, limit: int = 50, offset: int = 0,
                **filters) -> dict:
    """督办: overdue events (past their deadline, not resolved), latest first by lateness,
    with how late they are and how often they were chased; plus the escalated events
    still tracked and the suspended (挂账) ones.

    ``filters`` as in :func:`list_events` (platform, department, grid, village ...).
    """
    now = now or now_utc()
    ev, ea = schema.events, schema.event_actions
    base = _filters(now=now, **filters)
    overdue = [*base, _overdue_clause(now)]
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(ev).where(*overdue)).scalar()
        rows = conn.execute(_select().where(*overdue)
                            .order_by(ev.c.deadline_at.asc(), ev.c.id).limit(limit).offset(offset)).mappings().all()
        # How often each event of the page was chased: counted for the page's events only
        # (a correlated count per candidate row cost a second on the sample year).
        chased = dict(conn.execute(select(ea.c.event_id, func.count())
                                   .where(ea.c.event_id.in_([r["id"] for r in rows]), ea.c.action == "supervise")
                                   .group_by(ea.c.event_id)).all()) if rows else {}
        by_platform = dict(conn.execute(select(ev.c.platform, func.count()).where(*overdue)
                                        .group_by(ev.c.platform)).all())
        escalated = conn.execute(_select().where(*base, ev.c.state == "escalated")
                                 .order_by(ev.c.updated_at.asc()).limit(limit)).mappings().all()
        n_escalated = conn.execute(select(func.count()).select_from(ev)
                                   .where(*base, ev.c.state == "escalated")).scalar()
        suspended = conn.execute(_select().where(*base, ev.c.state == "suspended")
                                 .order_by(ev.c.updated_at.asc()).limit(limit)).mappings().all()
        n_suspended = conn.execute(select(func.count()).select_from(ev)
                                   .where(*base, ev.c.state == "suspended")).scalar()
    items = []
    for r in rows:
        rec = event_record(r, now=now)
        rec["supervised"] = chased.get(r["id"], 0)
        items.append(rec)
    return {
        "as_of": iso(now),
        "overdue": {"total": total, "limit": limit, "offset": offset,
                    "by_platform": {k or "none": v for k, v in by_platform.items()}, "items": items},
        "escalated": {"total": n_escalated, "items": [event_record(r, now=now) for r in escalated]},
        "suspended": {"total": n_suspended, "items": [event_record(r, now=now) for r in suspended]},
    }


#: The command room's queues as filters of :func:`list_events` (the states of each are
#: :data:`gridgeo.events.workflow.QUEUE_STATES`), plus the deadline warnings: 超期 (overdue)
#: and 临期 (due soon). :func:`command_room`, :func:`queue_counts` and the console's queue
#: pages all read them from here.
QUEUES: dict[str, dict] = {
    **{name: {"state": sorted(states)} for name, states in QUEUE_STATES.items()},
    "unlocated": {"located_by": "unlocated", "state": sorted(QUEUE_STATES["unlocated"])},
    "outside": {"located_by": "outside", "state": sorted(QUEUE_STATES["outside"])},
    "duplicates": {"duplicate": True, "state": sorted(QUEUE_STATES["duplicates"])},
    "extension_requests": {"extension_requested": True, "state": sorted(QUEUE_STATES["extension_requests"])},
    "overdue": {"overdue": True},
    "due_soon": {"due_soon": True},
}
#: The queues the API's command room answers with (``due_soon`` is the console's).
COMMAND_ROOM_QUEUES = (*QUEUE_STATES, "overdue")


def queue_counts(store: Store, *, now: dt.datetime | None = None, **filters) -> dict[str, int]:
    """How many events wait in each of :data:`QUEUES` (within ``filters``, e.g. a scope),
    in one pass over the events."""
    now = now or now_utc()
    ev = schema.events
    base = _filters(now=now, **filters)
    cols = [func.coalesce(func.sum(case((and_(*_filters(now=now, **spec)), 1), else_=0)), 0).label(name)
            for name, spec in QUEUES.items()]
    with store.engine.connect() as conn:
        row = conn.execute(select(*cols).select_from(ev).where(*base)).mappings().one()
    return {name: int(row[name]) for name in QUEUES}


def command_room(store: Store, *, now: dt.datetime | None = None, limit: int = 20) -> dict:
    """The command room's queues: what waits for it, and the feedback coming back."""
    now = now or now_utc()
    ev = schema.events
    queues = {name: _filters(now=now, **QUEUES[name]) for name in COMMAND_ROOM_QUEUES}
    out = {"as_of": iso(now)}
    with store.engine.connect() as conn:
        for name, conds in queues.items():
            n = conn.execute(select(func.count()).select_from(ev).where(*conds)).scalar()
            rows = conn.execute(_select().where(*conds).order_by(ev.c.reported_at.asc()).limit(limit)).mappings().all()
            out[name] = {"total": n, "items": [event_record(r, now=now, with_actions=False) for r in rows]}
        # Feedback: results and ratings of the last 7 days (双反馈).
        since = now - dt.timedelta(days=7)
        rows = conn.execute(_select().where(or_(ev.c.resolved_at >= since, ev.c.closed_at >= since))
                            .order_by(ev.c.updated_at.desc()).limit(limit)).mappings().all()
        out["feedback"] = {"items": [event_record(r, now=now, with_actions=False) for r in rows]}
        # The early warning (临期预警) of every open event, by level.
        out["warnings"] = warning_counts(store, now, conn=conn)
    return out


_PUBLIC_ACTIONS = {"report", "accept", "reject", "merge", "review", "dispatch", "escalate", "start",
                   "resolve", "verify", "close", "rate", "extend", "rework", "suspend", "resume", "return"}
_PUBLIC_NOTES = {"reject", "resolve", "close", "merge", "escalate"}


def reporter_view(store: Store, code: str, token: str, *, now: dt.datetime | None = None) -> dict:
    """What the reporter sees of their event, given its code and their token.

    A wrong token answers exactly like an unknown event (:class:`NotFound`), so that
    codes cannot be probed. The view holds no other person's data: no reporter, no
    actor names, no internal notes (only results and reasons given to the public). A
    merged event shows the progress of the event it was merged into.
    """
    ev = schema.events
    with store.engine.connect() as conn:
        row = conn.execute(_select().where(ev.c.code == code)).mappings().first()
        if row is None or not token or row["reporter_token_hash"] != hash_token(token):
            raise NotFound(f"no event {code!r} with this token")
        history = _history(conn, row["id"])
        merged = None
        if row["duplicate_of"]:
            m = conn.execute(_select().where(ev.c.code == row["duplicate_of"])).mappings().first()
            if m is not None:
                merged = {"code": m["code"], "state": m["state"], "state_label": STATES[m["state"]],
                          "updated_at": iso(m["updated_at"]), "result": m["result"]}
    now = now or now_utc()
    return {
        "code": row["code"],
        "state": row["state"],
        "state_label": STATES[row["state"]],
        "category_code": row["category_code"],
        "category_name": row["category_name"],
        "reported_at": iso(row["reported_at"]),
        "updated_at": iso(row["updated_at"]),
        "deadline_at": iso(row["deadline_at"]),
        "department": row["department"] if row["state"] not in UNDISPATCHED_STATES else None,
        "escalated_to": row["escalated_to"],
        "result": row["result"],
        "satisfaction": row["satisfaction"],
        "can_rate": row["state"] == "closed" and row["satisfaction"] is None,
        "merged_into": merged,
        "timeline": [
            {"at": h["at"], "action": h["action"], "action_label": h["action_label"],
             "state": h["to_state"], "state_label": STATES.get(h["to_state"], h["to_state"]),
             "note": h["note"] if h["action"] in _PUBLIC_NOTES else None}
            for h in history if h["action"] in _PUBLIC_ACTIONS
        ],
    }


def history_frame(store: Store, codes: Sequence[str] | None = None):
    """The history of some (or all) events as a DataFrame, for analysis."""
    import pandas as pd

    ea, ev = schema.event_actions, schema.events
    q = select(ev.c.code, ea.c.seq, ea.c.at, ea.c.action, ea.c.actor, ea.c.role, ea.c.from_state,
               ea.c.to_state, ea.c.note, ea.c.data).select_from(ea.join(ev, ev.c.id == ea.c.event_id))
    if codes is not None:
        q = q.where(ev.c.code.in_(list(codes)))
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(ev.c.code, ea.c.seq)).all()
    return pd.DataFrame(rows, columns=["code", "seq", "at", "action", "actor", "role", "from_state",
                                       "to_state", "note", "data"])


def monthly(store: Store, *, months: int = 12, now: dt.datetime | None = None, **filters) -> list[dict]:
    """Events reported and closed per China month, the last ``months`` months up to the
    month of ``now`` (``filters`` as in :func:`list_events`, e.g. a scope): a list of
    ``{"month": "2026-07", "received": n, "closed": n}``, oldest first."""
    import pandas as pd

    from gridgeo.timezone import CHINA

    now = (now or now_utc()).astimezone(CHINA)
    last = pd.Period(now.strftime("%Y-%m"), freq="M")
    first = last - (months - 1)
    start = first.start_time.tz_localize(CHINA).to_pydatetime()
    ev = schema.events
    conds = _filters(now=now, **filters)
    with store.engine.connect() as conn:
        reported = conn.execute(select(ev.c.reported_at).where(*conds, ev.c.reported_at >= start)).scalars().all()
        closed = conn.execute(select(ev.c.closed_at).where(*conds, ev.c.closed_at >= start)).scalars().all()
    index = pd.period_range(first, last, freq="M")

    def per_month(values) -> pd.Series:
        if not values:
            return pd.Series(0, index=index)
        stamps = pd.to_datetime(pd.Series(values), utc=True).dt.tz_convert(CHINA).dt.tz_localize(None)
        return stamps.dt.to_period("M").value_counts().reindex(index, fill_value=0)

    got, done = per_month(reported), per_month(closed)
    return [{"month": str(p), "received": int(got[p]), "closed": int(done[p])} for p in index]


def warning_counts(store: Store, now: dt.datetime | None = None, *, conn=None) -> dict[str, int]:
    """Open events (those that can be late) by early-warning level: green, yellow, red
    (:func:`gridgeo.events.deadlines.warning_levels`, over arrays)."""
    import numpy as np
    import pandas as pd

    from gridgeo.events.deadlines import warning_levels

    now = now or now_utc()
    ev = schema.events
    q = (select(ev.c.reported_at, ev.c.deadline_at, ev.c.deadline_workdays)
         .where(ev.c.state.in_(sorted(OVERDUE_STATES)), ev.c.deadline_at.is_not(None)))
    if conn is None:
        with store.engine.connect() as c:
            rows = c.execute(q).all()
    else:
        rows = conn.execute(q).all()
    out = {"green": 0, "yellow": 0, "red": 0}
    if not rows:
        return out
    frame = pd.DataFrame(rows, columns=["reported", "deadline", "workdays"])
    epoch = pd.Timestamp(0, tz="UTC")
    rep = (pd.to_datetime(frame["reported"], utc=True) - epoch).dt.total_seconds().to_numpy()
    due = (pd.to_datetime(frame["deadline"], utc=True) - epoch).dt.total_seconds().to_numpy()
    levels = warning_levels(now.timestamp(), rep, due, frame["workdays"].notna().to_numpy(),
                            np.ones(len(frame), bool))
    got = pd.Series(levels).value_counts()
    out.update({k: int(v) for k, v in got.items()})
    return out
