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

Each rule is written once, for the store and for archives on dask alike. Which events can
count in a period (:func:`in_scope`), which were received (:func:`received`) and what is
marked on each (:func:`marks`) are written once over a column form (:class:`Columns`):
SQL here, a Parquet filter and pandas masks for an archive's partitions. The facts follow from
the events' values by one pandas function, :func:`derive_facts`, which :func:`read_facts`
calls after its one SQL read and :func:`gridgeo.scale.assess.partition_facts` on each
partition; the actions come from a :class:`History` (``event_actions``, or the partition's
actions: :class:`FrameHistory`).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, reduce
from typing import Any, Protocol

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Float, Integer, case, cast, extract, func, literal_column, select, type_coerce

from gridgeo import crs as _crs
from gridgeo.assess.periods import CST, InvalidQuery, Period, parse_period
from gridgeo.events.deadlines import deadline_seconds
from gridgeo.events.workflow import ACTIONS, OVERDUE_STATES, RESOLVED_STATES, STATES
from gridgeo.store import Store, schema
from gridgeo.store.types import FIRST_DAY, LAST_DAY, in_time_range

__all__ = [
    "CLOSED_STATES",
    "FLAG_BITS",
    "MARKS",
    "SQL",
    "STATUSES",
    "Columns",
    "FrameHistory",
    "History",
    "add_cohorts",
    "as_utc",
    "derive_facts",
    "epoch",
    "event_status",
    "frame_columns",
    "in_scope",
    "locate_unplaced",
    "marks",
    "read_facts",
    "received",
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


# -- which events count, and what is known of each: one definition, any column form ---------


@dataclass(frozen=True)
class Columns:
    """A *column form*: how :func:`in_scope`, :func:`received` and :func:`marks` are
    written once and read as SQL (:data:`SQL`), pandas (:func:`frame_columns`) or a Parquet
    filter (:func:`gridgeo.scale.assess._arrow`).

    Called with a column name, it gives that column; ``time`` turns an aware datetime into
    a value to compare with, ``null`` says a column is missing, ``isin`` that it holds one
    of some values, ``pack`` folds conditions into one int (condition ``i`` is bit
    ``1 << i``). A missing value compares false, as NULL does in a SQL condition (no
    comparison here is negated, so the forms agree).
    """

    column: Callable[[str], Any]
    time: Callable[[dt.datetime], Any] = lambda when: when  # noqa: E731
    null: Callable[[Any], Any] = lambda col: col.isna()  # noqa: E731
    isin: Callable[[Any, list], Any] = lambda col, values: col.isin(values)  # noqa: E731
    pack: Callable[[list], Any] = lambda conds: sum(  # noqa: E731
        np.where(np.asarray(c, dtype=bool), 1 << i, 0) for i, c in enumerate(conds))

    def __call__(self, name: str):
        return self.column(name)


#: The events table in SQLAlchemy expressions.
SQL = Columns(
    column=lambda name: schema.events.c[name],
    null=lambda col: col.is_(None),
    isin=lambda col, values: col.in_(values),
    pack=lambda conds: reduce(operator.add, [case((c, 1 << i), else_=0) for i, c in enumerate(conds)]),
)


def frame_columns(frame: pd.DataFrame) -> Columns:
    """The columns of a frame of events (times as aware datetimes) as boolean Series."""
    return Columns(column=frame.__getitem__, time=pd.Timestamp)


def received(c: Columns, period: Period, as_of: dt.datetime):
    """Reported in ``period`` and by ``as_of`` (上报), in the column form ``c``."""
    start, end = (c.time(t) for t in period.bounds())
    reported = c("reported_at")
    return (reported >= start) & (reported < end) & (reported <= c.time(as_of))


def in_scope(c: Columns, period: Period, as_of: dt.datetime):
    """Which events can count in ``period`` as of ``as_of``, in the column form ``c``.

    Events reported in the period, events whose deadline falls in it, and events due
    before its end still open (or changed after ``as_of``); all reported before the
    period ends and by ``as_of``. :func:`add_cohorts` then says which count where.
    """
    start, end = period.bounds()
    cutoff = c.time(min(end, as_of))
    now, start, end = c.time(as_of), c.time(start), c.time(end)
    reported, deadline = c("reported_at"), c("deadline_at")
    return ((reported <= now) & (reported < end)
            & ((reported >= start) | c.null(deadline) | (deadline >= start)
               # the backlog: due before the period, open (now, or then)
               | ((deadline < cutoff)
                  & (c.isin(c("state"), sorted(OVERDUE_STATES)) | (c("updated_at") > now)))))


#: What :func:`derive_facts` needs to know of each event besides its values, in the order
#: of their bits (:func:`marks`).
MARKS = ("changed", "unplaced", "escalated", "extended")


def marks(c: Columns, as_of: dt.datetime):
    """The :data:`MARKS` of each event as one int of bits, in the column form ``c``:
    changed after ``as_of`` (its state then is replayed from its history); never located
    by the pipeline (placed by :func:`locate_unplaced`); escalated; extended."""
    return c.pack([
        c("updated_at") > c.time(as_of),
        c.null(c("grid_code")) & c.null(c("located_by")),
        ~c.null(c("escalated_to")),
        c("extended_hours") > 0,
    ])


def _mark(bits: np.ndarray, name: str) -> np.ndarray:
    return (bits & (1 << MARKS.index(name))) > 0


# -- the histories: where the action flags and past states come from -----------------------


class History(Protocol):
    """The actions taken on the events up to ``as_of``, as :func:`derive_facts` asks for them."""

    def flags(self, ids: np.ndarray) -> np.ndarray:
        """The :data:`FLAG_BITS` of each event of ``ids`` (int64, in their order)."""

    def reworked(self) -> np.ndarray:
        """Ids of the events sent back for rework (any, not only those asked about)."""

    def steps(self, ids: np.ndarray) -> pd.DataFrame:
        """``event_id``, ``seq``, ``to_state`` of the actions of the events of ``ids``."""


class FrameHistory:
    """:class:`History` from a frame of actions (``event_id``, ``seq``, ``at``, ``action``,
    ``to_state``), those after ``as_of`` left out."""

    def __init__(self, actions: pd.DataFrame, as_of: dt.datetime):
        self.actions = actions[(actions["at"] <= pd.Timestamp(as_of)).to_numpy()] if len(actions) else actions

    def flags(self, ids: np.ndarray) -> np.ndarray:
        # The pandas form of _flags' SQL aggregation: each flagged action once per event.
        acts = self.actions[self.actions["action"].isin(list(FLAG_BITS)).to_numpy()]
        bits = pd.DataFrame({"event_id": acts["event_id"].to_numpy(dtype=np.int64),
                             "bit": acts["action"].map(FLAG_BITS).to_numpy(dtype=np.int64)}).drop_duplicates()
        return bits.groupby("event_id")["bit"].sum().reindex(ids).fillna(0).to_numpy(dtype=np.int64)

    def reworked(self) -> np.ndarray:
        return self.actions.loc[self.actions["action"].eq("rework").to_numpy(), "event_id"].to_numpy(dtype=np.int64)

    def steps(self, ids: np.ndarray) -> pd.DataFrame:
        return self.actions[np.isin(self.actions["event_id"].to_numpy(dtype=np.int64), ids)]


class _StoredHistory:
    """:class:`History` read from ``event_actions`` (through its indexes)."""

    def __init__(self, conn, as_of: dt.datetime, dialect: str):
        self.conn, self.as_of, self.dialect = conn, as_of, dialect

    def flags(self, ids: np.ndarray) -> np.ndarray:
        return _flags(self.conn, ids, self.as_of, self.dialect)

    def reworked(self) -> np.ndarray:
        ea = schema.event_actions
        # Reworks are few: through the (action, at) index.
        q = select(ea.c.event_id).where(ea.c.action == "rework", ea.c.at <= self.as_of).distinct()
        return np.asarray(self.conn.execute(q).scalars().all(), dtype=np.int64)

    def steps(self, ids: np.ndarray) -> pd.DataFrame:
        ea = schema.event_actions
        parts = []
        for i in range(0, len(ids), 20_000):
            chunk = [int(x) for x in ids[i:i + 20_000]]
            parts.extend(self.conn.execute(
                select(ea.c.event_id, ea.c.seq, ea.c.to_state)
                .where(ea.c.event_id.in_(chunk), ea.c.at <= self.as_of)).all())
        return pd.DataFrame.from_records(parts, columns=["event_id", "seq", "to_state"])


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
    _check_flags(flags)
    d = store.dialect
    ev, c = schema.events, SQL
    # The state as its number in STATES: small ints cost Python nothing to fetch.
    state = case(*[(ev.c.state == name, i) for i, name in enumerate(STATES)], else_=-1)
    cols = [
        ev.c.id, ev.c.grid_code, ev.c.platform, ev.c.department, ev.c.category_code,
        state.label("state"),
        epoch(ev.c.reported_at, d).label("reported"),
        epoch(ev.c.deadline_at, d).label("deadline_at"),
        epoch(ev.c.closed_at, d).label("closed"),
        ev.c.satisfaction, ev.c.extended_hours,
        marks(c, as_of).label("marks"),
    ]
    q = select(*cols).where(in_scope(c, period, as_of))
    with store.engine.connect() as conn:
        data = _columns(_tuples(conn, q), len(cols))
        rows = pd.DataFrame({
            **{col.name: pd.Series(data[i], dtype=object) for i, col in enumerate(cols[:5])},
            "state": pd.Categorical.from_codes(np.asarray(data[5], dtype=np.int64), categories=list(STATES)),
            **{col.name: np.asarray(data[i], dtype=float) for i, col in enumerate(cols[6:11], 6)},
            "marks": np.asarray(data[11], dtype=np.int64),
        })
        del data
        facts = derive_facts(rows, _categories(conn), period, as_of, _StoredHistory(conn, as_of, d), flags=flags)
    if place:
        todo = _mark(rows["marks"].to_numpy(), "unplaced")
        if todo.any():
            facts.loc[todo, "grid_code"] = locate_unplaced(store, facts.loc[todo, "id"])
    return facts


def _check_flags(flags: str) -> None:
    if flags not in ("derived", "actions"):
        raise InvalidQuery(f"flags must be 'derived' or 'actions', not {flags!r}")


def _categories(conn) -> pd.DataFrame:
    """The catalogue's routing columns (a few dozen rows)."""
    cat = schema.categories
    rows = conn.execute(select(cat.c.code, cat.c.platform, cat.c.department, cat.c.deadline_hours,
                               cat.c.deadline_workdays)).all()
    return pd.DataFrame.from_records(rows, columns=["code", "platform", "department", "deadline_hours",
                                                    "deadline_workdays"])


def derive_facts(
    rows: pd.DataFrame,
    categories: pd.DataFrame,
    period: Period,
    as_of: dt.datetime,
    history: History,
    *,
    flags: str = "derived",
) -> pd.DataFrame:
    """The facts of :func:`read_facts` from the events' own values: the one definition,
    whichever the source (the store, or a partition of an archive:
    :func:`gridgeo.scale.assess.partition_facts`).

    An event's platform and department are its own, else its category's; its deadline is
    the stored one, else the reported time plus its category's hours and any extension;
    its action flags come from :func:`_derived_flags` (or its history, for ``flags =
    "actions"``); an event changed after ``as_of`` gets the state it had then; closed or
    rated after ``as_of`` is not closed or rated.

    Parameters
    ----------
    rows : DataFrame
        The events in scope (:func:`in_scope`): ``id``; ``grid_code``, ``platform``,
        ``department``, ``category_code`` (None or NaN for none); ``state`` (names or a
        categorical of :data:`~gridgeo.events.workflow.STATES`); ``reported``,
        ``deadline_at``, ``closed`` (float seconds since the epoch, NaN for none);
        ``satisfaction``; ``extended_hours``; ``marks`` (:func:`marks`).
    categories : DataFrame
        The catalogue: ``code``, ``platform``, ``department``, ``deadline_hours``.
    period, as_of
        Parsed (:func:`parse_period`, :func:`as_utc`).
    history : History
        The events' actions up to ``as_of``.
    flags : {"derived", "actions"}
        As for :func:`read_facts`.
    """
    _check_flags(flags)
    cats = categories.drop_duplicates("code").set_index("code")
    category = _objects(rows["category_code"])

    def own_or_category(col: str) -> np.ndarray:
        own = _objects(rows[col])
        missing = own.isna().to_numpy()
        if missing.any():  # events imported as a plain layer, never routed
            own[missing] = _objects(category[missing].map(cats[col])).to_numpy()
        return own.to_numpy()

    reported = rows["reported"].to_numpy(dtype=float)
    deadline = rows["deadline_at"].to_numpy(dtype=float, copy=True)
    todo = np.isnan(deadline)
    if todo.any():  # events imported as a plain layer: the catalogue's deadline (one definition)
        hours = category[todo].map(cats["deadline_hours"]).to_numpy(dtype=float, na_value=np.nan)
        workdays = (category[todo].map(cats["deadline_workdays"]).to_numpy(dtype=float, na_value=np.nan)
                    if "deadline_workdays" in cats else np.nan)
        extended = rows["extended_hours"].to_numpy(dtype=float)[todo]
        deadline[todo] = deadline_seconds(reported[todo], hours, workdays, extended)
    facts = pd.DataFrame({
        "id": rows["id"].to_numpy(dtype=np.int64),
        "grid_code": pd.Series(_objects(rows["grid_code"]).to_numpy(), dtype=object),
        "platform": pd.Series(own_or_category("platform"), dtype=object),
        "department": pd.Series(own_or_category("department"), dtype=object),
        "category_code": pd.Series(category.to_numpy(), dtype=object),
        "state": pd.Categorical(rows["state"], categories=list(STATES)),
        # epoch seconds to the millisecond: julianday arithmetic leaves ~1e-5 s of noise
        "reported": np.round(reported, 3),
        "deadline": np.round(deadline, 3),
        "closed": np.round(rows["closed"].to_numpy(dtype=float), 3),
        "satisfaction": rows["satisfaction"].to_numpy(dtype=float, na_value=np.nan),
    })
    bits = np.asarray(rows["marks"], dtype=np.int64)
    ids = facts["id"].to_numpy()
    if flags == "actions":
        facts["flags"] = history.flags(ids)
    else:
        facts["flags"] = _derived_flags(facts, bits, history)
    changed = _mark(bits, "changed")
    if changed.any():
        facts.loc[changed, "state"] = _states_then(ids[changed], history.steps(ids[changed]))
    # Not closed, not rated by then.
    facts.loc[facts["closed"].to_numpy() > _ts(as_of), "closed"] = np.nan
    rated = (facts["flags"].to_numpy() & FLAG_BITS["rate"]) > 0
    facts.loc[~rated, "satisfaction"] = np.nan
    facts.attrs.update(period=period, as_of=as_of)
    return add_cohorts(facts, period, as_of)


def _objects(values: pd.Series) -> pd.Series:
    """Object values with None for missing, whatever the column's dtype."""
    s = pd.Series(np.asarray(values, dtype=object), dtype=object)
    return s.where(pd.notna(s).to_numpy(), None)


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


def _derived_flags(facts: pd.DataFrame, bits: np.ndarray, history: History) -> np.ndarray:
    """:data:`FLAG_BITS` from the events' own columns and states (see :func:`read_facts`)."""
    states = list(STATES)
    table = derivable_flags()
    acc = np.array([[-1 if table[(s, e)][0] is None else table[(s, e)][0] for s in states] for e in (False, True)])
    dis = np.array([[-1 if table[(s, e)][1] is None else table[(s, e)][1] for s in states] for e in (False, True)])
    code = facts["state"].cat.codes.to_numpy().astype(np.int64)
    esc = _mark(bits, "escalated").astype(np.int64)
    known = code >= 0
    a = np.where(known, acc[esc, np.maximum(code, 0)], -1)
    p = np.where(known, dis[esc, np.maximum(code, 0)], -1)
    out = (np.where(a == 1, FLAG_BITS["accept"], 0) | np.where(p == 1, FLAG_BITS["dispatch"], 0)
           | np.where(esc == 1, FLAG_BITS["escalate"], 0)
           | np.where(_mark(bits, "extended"), FLAG_BITS["extend"], 0)
           | np.where(np.isfinite(facts["satisfaction"].to_numpy(dtype=float)), FLAG_BITS["rate"], 0))
    ids = facts["id"].to_numpy()
    out = out | np.where(np.isin(ids, history.reworked()), FLAG_BITS["rework"], 0)
    # In doubt, or changed since as_of: their history says.
    doubt = (a < 0) | (p < 0) | _mark(bits, "changed")
    if doubt.any():
        out[doubt] = history.flags(ids[doubt])
    return out.astype(np.int64)


def _states_then(ids: np.ndarray, steps: pd.DataFrame) -> np.ndarray:
    """The state of each event of ``ids`` at ``as_of``: the to-state of its last action by
    then (``steps``: :meth:`History.steps`)."""
    last = steps.sort_values(["event_id", "seq"]).drop_duplicates("event_id", keep="last")
    state = pd.Series(last["to_state"].to_numpy(dtype=object), index=last["event_id"].to_numpy())
    # An event with no history line by then keeps the state it was reported in.
    return pd.Series(ids).map(state).fillna("reported").to_numpy(dtype=object)


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
    conds = [received(SQL, period, as_of), ev.c.reporter_staff_code.is_not(None)]
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

    # The rule self-reported events are selected by (in SQL and on archives), on these seconds.
    is_received = received(Columns(column={"reported_at": reported}.__getitem__, time=_ts), period, as_of)
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
        received=is_received,
        accepted=is_received & has("accept"),
        dispatched=is_received & has("dispatch"),
        escalated=is_received & has("escalate"),
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
