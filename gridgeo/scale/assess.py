"""The assessment (考核) of :mod:`gridgeo.assess` over an archive, on dask:
:func:`assess_archive` / :func:`assess_archive_many`.

Events and their histories as partitioned Parquet, written by
:func:`~gridgeo.scale.archive.export_archive`. Each partition (a month of events, with the
histories of those events) becomes the same per-event facts as
:func:`gridgeo.assess.read_facts` on its worker; the worker sends back only sums per unit,
the hours of the events closed in the period and the self-reported counts. These add up
exactly: counts are sums, means are sums over counts, and the p90 is taken from the
gathered hours with the in-process method, so the tables equal
:func:`gridgeo.assess.assess_many`'s (same rows, columns, dtypes and labels).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridgeo.assess.facts import FLAG_BITS, add_cohorts, as_utc, derivable_flags
from gridgeo.assess.indicators import (
    COUNTS,
    _label,
    _Names,
    _order,
    _table_from,
    _worker_table_from,
    parse_groupings,
)
from gridgeo.assess.periods import InvalidQuery, Period, parse_period
from gridgeo.events.workflow import OVERDUE_STATES, STATES
from gridgeo.scale.archive import _archive_parts, _objects, archive_info
from gridgeo.scale.cluster import _compute, dask_client

__all__ = ["assess_archive", "assess_archive_many", "partition_facts"]

_FACT_READ = [
    "id",
    "grid_code",
    "platform",
    "department",
    "category_code",
    "state",
    "reported_at",
    "deadline_at",
    "closed_at",
    "updated_at",
    "satisfaction",
    "extended_hours",
    "escalated_to",
    "located_by",
    "reporter_staff_code",
]
#: The grouping keys partial sums are kept for (village and township come from grids).
_KEYS = {
    "grid": "grid_code",
    "platform": "platform",
    "department": "department",
    "category": "category_code",
}
_NONE_KEY = "\uffff"  # stands for None while partial sums are added up (never a real code)


def _us(when: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly."""
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _micros(values: pd.Series) -> np.ndarray:
    """Microseconds since the epoch (int64; NaT as the minimum int64) of a UTC time column."""
    return values.astype("datetime64[us, UTC]").array.asi8


def _seconds(values: pd.Series) -> np.ndarray:
    us = _micros(values)
    out = us / 1e6
    out[values.isna().to_numpy()] = np.nan
    return out


def _read_scope(path: Path, period: Period, as_of: dt.datetime) -> pd.DataFrame:
    """The events of one partition that can count in ``period`` (the scope of
    :func:`gridgeo.assess.read_facts`, pushed down to the Parquet reader)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    start, end = period.bounds()
    ts = pa.timestamp("us", tz="UTC")
    cutoff = min(end, as_of)

    def t(when):
        return pa.scalar(when, type=ts)

    f = ds.field
    scope = (
        (f("reported_at") <= t(as_of))
        & (f("reported_at") < t(end))
        & (
            (f("reported_at") >= t(start))
            | f("deadline_at").is_null()
            | (f("deadline_at") >= t(start))
            | (
                (f("deadline_at") < t(cutoff))
                & (f("state").isin(sorted(OVERDUE_STATES)) | (f("updated_at") > t(as_of)))
            )
        )
    )
    table = ds.dataset(path, format="parquet", partitioning=None).to_table(
        columns=_FACT_READ, filter=scope
    )
    return table.to_pandas()


def _read_actions(path: Path | None, ids: np.ndarray, as_of: dt.datetime) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.dataset as ds

    cols = ["event_id", "seq", "at", "action", "to_state"]
    if path is None or not path.exists() or not len(ids):
        return pd.DataFrame(
            {
                "event_id": pd.Series(dtype=np.int64),
                "seq": pd.Series(dtype=np.int64),
                "at": pd.Series(dtype="datetime64[us, UTC]"),
                "action": pd.Series(dtype=object),
                "to_state": pd.Series(dtype=object),
            }
        )
    filt = (ds.field("at") <= pa.scalar(as_of, type=pa.timestamp("us", tz="UTC"))) & ds.field(
        "event_id"
    ).isin(pa.array(ids, type=pa.int64()))
    return (
        ds.dataset(path, format="parquet", partitioning=None)
        .to_table(columns=cols, filter=filt)
        .to_pandas()
    )


def _action_flags(ids: np.ndarray, actions: pd.DataFrame) -> np.ndarray:
    """:data:`FLAG_BITS` of each event of ``ids`` from its actions (as the SQL aggregation)."""
    acts = actions[actions["action"].isin(list(FLAG_BITS)).to_numpy()]
    bits = pd.DataFrame(
        {
            "event_id": acts["event_id"].to_numpy(dtype=np.int64),
            "bit": acts["action"].map(FLAG_BITS).to_numpy(dtype=np.int64),
        }
    ).drop_duplicates()
    per = bits.groupby("event_id")["bit"].sum()
    return per.reindex(ids).fillna(0).to_numpy(dtype=np.int64)


def _derived(
    state: pd.Series,
    bits: np.ndarray,
    satisfaction: np.ndarray,
    ids: np.ndarray,
    actions: pd.DataFrame,
) -> np.ndarray:
    """The ``"derived"`` flags of :func:`gridgeo.assess.read_facts`, from a partition's events
    and their histories (the same rule, the same table of the state machine)."""
    states = list(STATES)
    table = derivable_flags()
    acc = np.array(
        [
            [-1 if table[(s, e)][0] is None else table[(s, e)][0] for s in states]
            for e in (False, True)
        ]
    )
    dis = np.array(
        [
            [-1 if table[(s, e)][1] is None else table[(s, e)][1] for s in states]
            for e in (False, True)
        ]
    )
    code = pd.Categorical(state, categories=states).codes.astype(np.int64)
    esc = ((bits & 4) > 0).astype(np.int64)
    known = code >= 0
    a = np.where(known, acc[esc, np.maximum(code, 0)], -1)
    p = np.where(known, dis[esc, np.maximum(code, 0)], -1)
    out = (
        np.where(a == 1, FLAG_BITS["accept"], 0)
        | np.where(p == 1, FLAG_BITS["dispatch"], 0)
        | np.where(esc == 1, FLAG_BITS["escalate"], 0)
        | np.where((bits & 8) > 0, FLAG_BITS["extend"], 0)
        | np.where(np.isfinite(satisfaction), FLAG_BITS["rate"], 0)
    )
    reworked = actions.loc[actions["action"].eq("rework").to_numpy(), "event_id"].to_numpy(
        dtype=np.int64
    )
    out = out | np.where(np.isin(ids, reworked), FLAG_BITS["rework"], 0)
    doubt = (a < 0) | (p < 0) | ((bits & 1) > 0)
    if doubt.any():
        out[doubt] = _action_flags(ids[doubt], actions)
    return out.astype(np.int64)


def _states_then(ids: np.ndarray, actions: pd.DataFrame) -> np.ndarray:
    """The state of each event at ``as_of`` (``actions`` are those up to it): the to-state
    of its last action, or ``reported``."""
    acts = actions[np.isin(actions["event_id"].to_numpy(dtype=np.int64), ids)]
    last = acts.sort_values(["event_id", "seq"]).drop_duplicates("event_id", keep="last")
    state = pd.Series(last["to_state"].to_numpy(dtype=object), index=last["event_id"].to_numpy())
    return pd.Series(ids).map(state).fillna("reported").to_numpy(dtype=object)


def partition_facts(
    events: pd.DataFrame,
    actions: pd.DataFrame,
    categories: pd.DataFrame,
    period: Period | str,
    as_of: dt.datetime | dt.date | str | None = None,
    *,
    flags: str = "derived",
) -> pd.DataFrame:
    """The facts of :func:`gridgeo.assess.read_facts` for the events of one partition.

    Parameters
    ----------
    events : DataFrame
        Archive event rows (:data:`_FACT_READ` columns, times as UTC datetimes); those
        outside the scope of ``period`` are dropped here.
    actions : DataFrame
        Their actions (``event_id``, ``seq``, ``at``, ``action``, ``to_state``); later
        ones than ``as_of`` are ignored.
    categories : DataFrame
        The catalogue: ``code``, ``platform``, ``department``, ``deadline_hours``.
    period, as_of, flags
        As for :func:`~gridgeo.assess.read_facts`.

    Returns
    -------
    pandas.DataFrame
        The same columns, dtypes and values as ``read_facts`` gives for these events.
    """
    period = parse_period(period)
    as_of = as_utc(as_of)
    if flags not in ("derived", "actions"):
        raise InvalidQuery(f"flags must be 'derived' or 'actions', not {flags!r}")
    start, end = (_us(t) for t in period.bounds())
    a_us = _us(as_of)
    cutoff = min(end, a_us)
    rep_us = _micros(events["reported_at"])
    dl_us = _micros(events["deadline_at"])
    up_us = _micros(events["updated_at"])
    has_dl = events["deadline_at"].notna().to_numpy()
    has_up = events["updated_at"].notna().to_numpy()
    state_text = events["state"].astype(object).to_numpy()
    open_state = pd.Series(state_text).isin(sorted(OVERDUE_STATES)).to_numpy()
    changed_all = has_up & (up_us > a_us)
    scope = (
        (rep_us <= a_us)
        & (rep_us < end)
        & (
            (rep_us >= start)
            | ~has_dl
            | (has_dl & (dl_us >= start))
            | (has_dl & (dl_us < cutoff) & (open_state | changed_all))
        )
    )
    ev = events[scope]
    cats = categories.drop_duplicates("code").set_index("code")
    category = _objects(ev["category_code"])
    platform = _objects(ev["platform"])
    department = _objects(ev["department"])
    platform = platform.where(platform.notna(), _objects(category.map(cats["platform"])))
    department = department.where(department.notna(), _objects(category.map(cats["department"])))
    reported = _seconds(ev["reported_at"])
    hours = category.map(cats["deadline_hours"]).to_numpy(dtype=float, na_value=np.nan)
    extended = ev["extended_hours"].to_numpy(dtype=float)
    deadline = np.where(
        ev["deadline_at"].notna().to_numpy(),
        _seconds(ev["deadline_at"]),
        np.where(np.isfinite(hours), reported + 3600.0 * (hours + extended), np.nan),
    )
    state = ev["state"].astype(object).to_numpy()
    codes = pd.Categorical(state, categories=list(STATES)).codes.astype(np.int64)
    facts = pd.DataFrame(
        {
            "id": ev["id"].to_numpy(dtype=np.int64),
            "grid_code": _objects(ev["grid_code"]).to_numpy(),
            "platform": platform.to_numpy(),
            "department": department.to_numpy(),
            "category_code": category.to_numpy(),
            "state": pd.Categorical.from_codes(codes, categories=list(STATES)),
            "reported": np.round(reported, 3),
            "deadline": np.round(deadline, 3),
            "closed": np.round(_seconds(ev["closed_at"]), 3),
            "satisfaction": ev["satisfaction"].to_numpy(dtype=float, na_value=np.nan),
        }
    )
    for col in ("grid_code", "platform", "department", "category_code"):
        facts[col] = pd.Series(facts[col].to_numpy(dtype=object), dtype=object)
    changed = changed_all[scope]
    bits = (
        changed.astype(np.int64)
        + 2 * (ev["grid_code"].isna() & ev["located_by"].isna()).to_numpy().astype(np.int64)
        + 4 * ev["escalated_to"].notna().to_numpy().astype(np.int64)
        + 8 * (ev["extended_hours"].to_numpy(dtype=np.int64) > 0).astype(np.int64)
    )
    acts = actions[_micros(actions["at"]) <= a_us] if len(actions) else actions
    ids = facts["id"].to_numpy()
    if flags == "actions":
        facts["flags"] = _action_flags(ids, acts)
    else:
        facts["flags"] = _derived(facts["state"], bits, facts["satisfaction"].to_numpy(), ids, acts)
    if changed.any():
        facts.loc[changed, "state"] = _states_then(ids[changed], acts)
    a = as_of.timestamp()
    facts.loc[facts["closed"].to_numpy() > a, "closed"] = np.nan
    rated = (facts["flags"].to_numpy() & FLAG_BITS["rate"]) > 0
    facts.loc[~rated, "satisfaction"] = np.nan
    facts.attrs.update(period=period, as_of=as_of)
    return add_cohorts(facts, period, as_of)


def _unit_sums(facts: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of ``column`` (None as :data:`_NONE_KEY`): every count, the summed
    ratings and the number of facts (so that a unit with only empty rows still exists)."""
    codes, units = pd.factorize(facts[column].to_numpy(dtype=object))
    k = len(units)
    index = [*units, _NONE_KEY]
    codes = np.where(codes < 0, k, codes)
    rated = facts["rated"].to_numpy(dtype=bool)
    sat = facts["satisfaction"].to_numpy(dtype=float)[rated]
    out = pd.DataFrame(
        {
            name: np.bincount(codes[facts[col].to_numpy(dtype=bool)], minlength=k + 1)
            for name, col in COUNTS.items()
        },
        index=pd.Index(index, dtype=object),
    )
    out["_sat"] = np.bincount(codes[rated], weights=sat, minlength=k + 1)
    out["_n"] = np.bincount(codes, minlength=k + 1)
    return out[out["_n"] > 0]


def _partials(
    events_path: str,
    actions_path: str | None,
    categories: pd.DataFrame,
    period: Period,
    as_of: dt.datetime,
    flags: str,
) -> dict[str, Any]:
    """What one partition sends back: sums per unit, the closed events' hours, the
    self-reported counts."""
    ev = _read_scope(Path(events_path), period, as_of)
    ids = ev["id"].to_numpy(dtype=np.int64)
    actions = _read_actions(Path(actions_path) if actions_path else None, ids, as_of)
    facts = partition_facts(ev, actions, categories, period, as_of, flags=flags)
    sums = {by: _unit_sums(facts, col) for by, col in _KEYS.items()}
    done = facts["closed_"].to_numpy(dtype=bool)
    closed = facts.loc[done, ["id", *_KEYS.values(), "hours"]].reset_index(drop=True)
    for col in _KEYS.values():
        closed[col] = closed[col].where(closed[col].notna(), _NONE_KEY)
    start, end = (_us(t) for t in period.bounds())
    rep = _micros(ev["reported_at"])
    own = (
        (rep >= start)
        & (rep < end)
        & (rep <= _us(as_of))
        & ev["reporter_staff_code"].notna().to_numpy()
    )
    reporters = ev.loc[own, "reporter_staff_code"].astype(object).value_counts()
    return {"sums": sums, "closed": closed, "self_reported": reporters, "facts": len(facts)}


class _ArchiveNames(_Names):
    """Unit names from the archive's ``reference/`` tables, and the self-reported counts
    of the partitions, in place of the store's."""

    def __init__(self, root: Path, self_reported: pd.Series):
        super().__init__(None)
        ref = root / "reference"
        grids = pd.read_parquet(ref / "grids.parquet")
        self._grids = pd.Series(
            grids["name"].to_numpy(dtype=object),
            index=grids["code"].to_numpy(dtype=object),
            dtype=object,
        )
        div = pd.read_parquet(ref / "divisions.parquet")
        self._divisions = pd.Series(
            div["name"].to_numpy(dtype=object),
            index=div["code"].to_numpy(dtype=object),
            dtype=object,
        )
        cats = pd.read_parquet(ref / "categories.parquet")
        self._categories = pd.Series(
            cats["name"].to_numpy(dtype=object),
            index=cats["code"].to_numpy(dtype=object),
            dtype=object,
        )
        staff = pd.read_parquet(ref / "staff.parquet")
        self._staff = staff.astype(object)
        self._self_reported = self_reported

    def self_reported(self, period: Period, as_of: dt.datetime) -> pd.Series:
        return self._self_reported


def _add_up(parts: list[dict[str, Any]]) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.Series]:
    sums = {}
    for by in _KEYS:
        frames = [p["sums"][by] for p in parts if len(p["sums"][by])]
        if frames:
            joined = pd.concat(frames)
            sums[by] = joined.groupby(level=0, sort=False).sum()
        else:
            sums[by] = pd.DataFrame(
                {c: pd.Series(dtype=np.int64) for c in [*COUNTS, "_n"]}
                | {"_sat": pd.Series(dtype=float)},
                index=pd.Index([], dtype=object),
            )
    closed_frames = [p["closed"] for p in parts if len(p["closed"])]
    if closed_frames:
        closed = (
            pd.concat(closed_frames, ignore_index=True)
            .sort_values("id", kind="stable")
            .reset_index(drop=True)
        )
    else:
        closed = pd.DataFrame(
            {
                "id": pd.Series(dtype=np.int64),
                **{c: pd.Series(dtype=object) for c in _KEYS.values()},
                "hours": pd.Series(dtype=float),
            }
        )
    own = [p["self_reported"] for p in parts if len(p["self_reported"])]
    reporters = (
        pd.concat(own).groupby(level=0).sum().astype(np.int64) if own else pd.Series(dtype=np.int64)
    )
    return sums, closed, reporters


def _table_of(sums: pd.DataFrame, closed_keys: np.ndarray, hours: np.ndarray) -> pd.DataFrame:
    """The in-process :func:`~gridgeo.assess.indicators._table` from added-up sums (indexed
    by unit, None as :data:`_NONE_KEY`) and the unit and hours of each closed event."""
    keys = [k for k in sums.index if k != _NONE_KEY]  # units, not events
    if _NONE_KEY in set(sums.index):
        keys.append(_NONE_KEY)
    aligned = sums.reindex(pd.Index(keys, dtype=object))
    counts = {name: aligned[name].to_numpy(dtype=np.int64) for name in COUNTS}
    codes = pd.Index(keys, dtype=object).get_indexer(closed_keys).astype(np.int64)
    index = [None if k == _NONE_KEY else k for k in keys]
    return _table_from(index, counts, codes, hours, aligned["_sat"].to_numpy(dtype=float))


def _prefix_sums(grid: pd.DataFrame, n: int) -> pd.DataFrame:
    """Sums of villages (``n`` = 12) or townships (9) from the sums of their grids."""
    cut = pd.Series(grid.index, dtype=object).str[:n]  # the None key is one character: kept
    return grid.groupby(cut.to_numpy(dtype=object), sort=False).sum()


def _grouped(
    by: str,
    sums: dict[str, pd.DataFrame],
    closed: pd.DataFrame,
    names: _ArchiveNames,
    roles: Sequence[str] | None,
) -> pd.DataFrame:
    hours = closed["hours"].to_numpy(dtype=float)
    grid_keys = closed["grid_code"].to_numpy(dtype=object)
    if by in _KEYS:
        return _table_of(sums[by], closed[_KEYS[by]].to_numpy(dtype=object), hours)
    if by in ("village", "township"):
        n = 12 if by == "village" else 9
        cut = pd.Series(grid_keys, dtype=object).str[:n].to_numpy(dtype=object)
        return _table_of(_prefix_sums(sums["grid"], n), cut, hours)
    if by == "total":
        total = sums["grid"].sum().to_frame().T
        total.index = pd.Index(["all"], dtype=object)
        return _table_of(total, np.full(len(closed), "all", dtype=object), hours)
    if by == "worker":
        grid_table = _table_of(sums["grid"], grid_keys, hours)
        grids = pd.Series(grid_keys, dtype=object)
        done = pd.DataFrame(
            {"grid": grids.where(grids != _NONE_KEY, None).to_numpy(dtype=object), "hours": hours}
        )
        return _worker_table_from(grid_table, done, names, roles)
    raise InvalidQuery(f"unknown grouping {by!r}")


def assess_archive_many(
    archive: str | os.PathLike,
    period: Period | str,
    by: str | Iterable[str] = "grid",
    *,
    as_of: dt.datetime | dt.date | str | None = None,
    roles: Sequence[str] | None = None,
    client: Any = None,
    flags: str = "derived",
    progress: Callable[[str], None] | None = None,
) -> dict[str, pd.DataFrame]:
    """:func:`gridgeo.assess.assess_many` over an archive, on dask.

    One task per partition of the archive computes the facts of its events
    (:func:`partition_facts`) and sends back sums per unit, the hours of its events
    closed in the period and who reported what; those add up to the in-process tables.

    Parameters
    ----------
    archive : path
        Written by :func:`export_archive`; a path every worker can read.
    period, by, as_of, roles
        As for :func:`gridgeo.assess.assess_many`.
    client
        Where dask runs (see the module notes).
    flags : {"derived", "actions"}
        As for :func:`gridgeo.assess.read_facts` (the same result either way).
    progress : callable, optional
        Called with a message at each stage.

    Returns
    -------
    dict
        Grouping -> table, in the order asked; each as :func:`gridgeo.assess.assess` gives.
    """
    import dask

    groupings = parse_groupings(by)
    period = parse_period(period)
    as_of = as_utc(as_of)
    root = Path(archive).resolve()
    info = archive_info(root)
    categories = pd.read_parquet(root / "reference" / "categories.parquet")
    categories = categories[["code", "platform", "department", "deadline_hours"]].astype(
        {"code": object, "platform": object, "department": object}
    )
    parts = _archive_parts(root, info, period, as_of)
    if progress:
        progress(f"assessing {len(parts)} partitions")
    with dask_client(client) as scheduler:
        tasks = [
            dask.delayed(_partials, pure=False)(ev, act, categories, period, as_of, flags)
            for ev, act in parts
        ]
        results = list(_compute(*tasks, scheduler=scheduler)) if tasks else []
    sums, closed, reporters = _add_up(results)
    names = _ArchiveNames(root, reporters)
    stub = pd.DataFrame()
    stub.attrs.update(period=period, as_of=as_of)
    out = {}
    for g in groupings:
        if progress:
            progress(f"by {g}")
        table = _order(_grouped(g, sums, closed, names, roles), g)
        table = _label(table, g, names, stub, roles)
        table.index.name = "code"
        table.attrs.update(period=period, as_of=as_of, by=g)
        out[g] = table
    return out


def assess_archive(
    archive: str | os.PathLike,
    period: Period | str,
    by: str = "grid",
    *,
    as_of: dt.datetime | dt.date | str | None = None,
    roles: Sequence[str] | None = None,
    client: Any = None,
    chinese: bool = False,
) -> pd.DataFrame:
    """:func:`gridgeo.assess.assess` over an archive, on dask (see :func:`assess_archive_many`)."""
    from gridgeo.assess.indicators import GROUPINGS, to_chinese

    if by not in GROUPINGS:
        raise InvalidQuery(f"unknown grouping {by!r}: use {', '.join(GROUPINGS)}")
    table = assess_archive_many(archive, period, [by], as_of=as_of, roles=roles, client=client)[by]
    return to_chinese(table) if chinese else table
