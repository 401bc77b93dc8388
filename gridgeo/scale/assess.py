"""The assessment (考核) of :mod:`gridgeo.assess` over an archive, on dask:
:func:`assess_archive` / :func:`assess_archive_many`.

Events and their histories as partitioned Parquet, written by
:func:`~gridgeo.scale.archive.export_archive`. Each partition (a month of events, with the
histories of those events) becomes the same per-event facts as
:func:`gridgeo.assess.read_facts` on its worker, by the same rules: the scope
(:func:`~gridgeo.assess.facts.in_scope`) as the Parquet reader's filter, the facts by
:func:`~gridgeo.assess.facts.derive_facts` with the partition's actions as the history, the
sums by the in-process functions. The worker sends back only sums per unit,
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

from gridgeo.assess.facts import (
    Columns,
    FrameHistory,
    as_utc,
    derive_facts,
    frame_columns,
    in_scope,
    marks,
    received,
)
from gridgeo.assess.indicators import (
    COUNTS,
    _label,
    _Names,
    _order,
    _sums,
    _table_from,
    _worker_table_from,
    parse_groupings,
)
from gridgeo.assess.periods import InvalidQuery, Period, parse_period
from gridgeo.scale.archive import _archive_parts, archive_info
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


def _arrow() -> Columns:
    """The archive's event columns as ``pyarrow.dataset`` expressions: the scope
    (:func:`~gridgeo.assess.facts.in_scope`) becomes a filter the Parquet reader applies."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    return Columns(
        column=ds.field,
        time=lambda when: pa.scalar(when, type=pa.timestamp("us", tz="UTC")),
        null=lambda col: col.is_null(),
    )


def _seconds(values: pd.Series) -> np.ndarray:
    """Seconds since the epoch (float, NaN for none) of a UTC time column."""
    us = values.astype("datetime64[us, UTC]").array.asi8
    out = us / 1e6
    out[values.isna().to_numpy()] = np.nan
    return out


def _read_scope(path: Path, period: Period, as_of: dt.datetime) -> pd.DataFrame:
    """The events of one partition that can count in ``period`` (the scope of
    :func:`gridgeo.assess.read_facts`, pushed down to the Parquet reader)."""
    import pyarrow.dataset as ds

    table = ds.dataset(path, format="parquet", partitioning=None).to_table(
        columns=_FACT_READ, filter=in_scope(_arrow(), period, as_of)
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


def partition_facts(
    events: pd.DataFrame,
    actions: pd.DataFrame,
    categories: pd.DataFrame,
    period: Period | str,
    as_of: dt.datetime | dt.date | str | None = None,
    *,
    flags: str = "derived",
) -> pd.DataFrame:
    """The facts of :func:`gridgeo.assess.read_facts` for the events of one partition, by
    the same rules (:func:`~gridgeo.assess.facts.in_scope`,
    :func:`~gridgeo.assess.facts.derive_facts`).

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
    ev = events[in_scope(frame_columns(events), period, as_of).to_numpy()]
    rows = ev[["id", "grid_code", "platform", "department", "category_code", "state",
               "satisfaction", "extended_hours"]].assign(
        reported=_seconds(ev["reported_at"]),
        deadline_at=_seconds(ev["deadline_at"]),
        closed=_seconds(ev["closed_at"]),
        marks=marks(frame_columns(ev), as_of),
    )
    return derive_facts(rows, categories, period, as_of, FrameHistory(actions, as_of), flags=flags)


def _unit_sums(facts: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of ``column`` (None as :data:`_NONE_KEY`): every count, the summed
    ratings and the number of facts (so that a unit with only empty rows still exists)."""
    codes, units = pd.factorize(facts[column].to_numpy(dtype=object))
    k = len(units)
    index = [*units, _NONE_KEY]
    codes = np.where(codes < 0, k, codes)
    out = pd.DataFrame(_sums(facts, codes, k + 1), index=pd.Index(index, dtype=object))
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
    own = received(frame_columns(ev), period, as_of) & ev["reporter_staff_code"].notna()
    reporters = ev.loc[own.to_numpy(), "reporter_staff_code"].astype(object).value_counts()
    return {"sums": sums, "closed": closed, "self_reported": reporters, "facts": len(facts)}


def _names(path: Path) -> pd.Series:
    """code -> name of one of the archive's reference tables."""
    table = pd.read_parquet(path, columns=["code", "name"])
    return pd.Series(table["name"].to_numpy(dtype=object), index=table["code"].to_numpy(dtype=object),
                     dtype=object)


class _ArchiveNames(_Names):
    """Unit names from the archive's ``reference/`` tables, and the self-reported counts
    of the partitions, in place of the store's."""

    def __init__(self, root: Path, self_reported: pd.Series):
        super().__init__(None)
        ref = root / "reference"
        self._grids = _names(ref / "grids.parquet")
        self._divisions = _names(ref / "divisions.parquet")
        self._categories = _names(ref / "categories.parquet")
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
