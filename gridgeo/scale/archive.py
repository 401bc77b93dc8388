"""The archive: a store's events and their histories as partitioned Parquet, for dask.

Written by :func:`export_archive`, described by :func:`archive_info`, assessed by
:func:`gridgeo.scale.assess.assess_archive_many`. Layout::

    ARCHIVE/archive.json                          format, version, counts, when
    ARCHIVE/events/month=2026-07/part-00000.parquet    GeoParquet, one row per event
    ARCHIVE/actions/month=2026-07/part-00000.parquet   the histories of those events
    ARCHIVE/reference/{categories,grids,divisions,staff}.parquet   names, catalogue, roster

An event's actions sit under the month the *event* was reported in, so a partition holds
whole histories and no shuffle is needed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridgeo.assess.indicators import _Names
from gridgeo.assess.periods import CST, InvalidQuery, Period
from gridgeo.errors import InvalidInput

__all__ = ["ARCHIVE_FORMAT", "InvalidArchive", "archive_info", "export_archive"]

ARCHIVE_FORMAT = "gridgeo.archive"
_ARCHIVE_VERSION = 1

_PARTITION_KEYS = {"month": "%Y-%m", "year": "%Y"}
#: Event columns an archive keeps (with a point ``geometry``, WGS84).
_EVENT_COLUMNS = [
    "id",
    "code",
    "source",
    "category_code",
    "reported_at",
    "grid_code",
    "located_by",
    "state",
    "platform",
    "department",
    "deadline_at",
    "extended_hours",
    "escalated_to",
    "satisfaction",
    "reporter_staff_code",
    "updated_at",
    "closed_at",
    "lon",
    "lat",
    "crs",
]
_EVENT_TEXT = [
    "code",
    "source",
    "category_code",
    "grid_code",
    "located_by",
    "state",
    "platform",
    "department",
    "escalated_to",
    "reporter_staff_code",
    "crs",
]
_EVENT_TIMES = ["reported_at", "deadline_at", "updated_at", "closed_at"]
_ACTION_COLUMNS = ["event_id", "seq", "at", "action", "role", "from_state", "to_state"]


class InvalidArchive(InvalidInput):
    """A directory that is not a gridgeo archive, or an output that would be overwritten."""

    status = 422
    code = "invalid-archive"


def _prepare_output(dst: Path, overwrite: bool) -> None:
    if dst.exists() and (dst.is_file() or any(dst.iterdir())):
        if not overwrite:
            raise InvalidArchive(f"{dst} exists and is not empty (--overwrite replaces it)")
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    dst.mkdir(parents=True, exist_ok=True)


def _text(values: pd.Series) -> pd.Series:
    """A string column (typed even when every value is missing)."""
    return pd.Series(values, dtype=object).astype("str")


def export_archive(
    store,
    directory: str | os.PathLike,
    *,
    partition_on: str = "month",
    chunk: int = 100_000,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write the store's events and their histories as an archive of partitioned Parquet.

    Events go to ``events/month=YYYY-MM/`` by the (CST) month they were reported in, as
    GeoParquet with their WGS84 position as a point; each event's actions go to
    ``actions/month=YYYY-MM/`` under the same month, so that a partition holds whole
    histories. ``reference/`` holds the catalogue (事项清单), the grid and division names
    and the staff roster (without phone numbers), which the assessment labels its rows
    with. The store is read in chunks of ``chunk`` events (one file per chunk and month).

    Events that never went through the events pipeline (no grid and no ``located_by``)
    are placed here, as :func:`gridgeo.assess.read_facts` places them: by the locator
    of the plan in force on the day they were reported.

    On PostgreSQL the export reads one snapshot (repeatable read); on SQLite, export
    while nothing writes to the events for a consistent archive.

    Parameters
    ----------
    store : Store
    directory : path
        The archive; must be empty or missing unless ``overwrite``.
    partition_on : {"month", "year"}
    chunk : int
        Events read and written per step.
    overwrite : bool
        Replace an existing archive.
    progress : callable, optional
        Called with a message after each chunk.

    Returns
    -------
    dict
        The archive's ``archive.json``: ``events``, ``actions``, ``partitions`` (the
        months or years), ``exported_at`` ...
    """
    import geopandas as gpd
    import shapely
    from sqlalchemy import select

    from gridgeo.assess.facts import locate_unplaced
    from gridgeo.store import schema

    if partition_on not in _PARTITION_KEYS:
        raise InvalidQuery(
            f"partition_on must be one of {', '.join(_PARTITION_KEYS)}, not {partition_on!r}"
        )
    root = Path(directory).resolve()
    _prepare_output(root, overwrite)
    ev, ea = schema.events, schema.event_actions
    fmt = _PARTITION_KEYS[partition_on]
    n_events = n_actions = 0
    keys: set[str] = set()
    exported_at = dt.datetime.now(dt.UTC)
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        cols = [ev.c[c] for c in _EVENT_COLUMNS] + [ev.c.geometry]
        last, step = -1, 0
        while True:
            rows = conn.execute(
                select(*cols).where(ev.c.id > last).order_by(ev.c.id).limit(chunk)
            ).all()
            if not rows:
                break
            frame = pd.DataFrame.from_records(rows, columns=[*_EVENT_COLUMNS, "geometry"])
            last = int(frame["id"].iloc[-1])
            for col in _EVENT_TIMES:
                frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[us, UTC]")
            unplaced = (frame["grid_code"].isna() & frame["located_by"].isna()).to_numpy()
            if unplaced.any():
                sub = frame.loc[unplaced, ["reported_at", "geometry", "lon", "lat", "crs"]]
                frame.loc[unplaced, "grid_code"] = locate_unplaced(
                    store, frame.loc[unplaced, "id"], frame=sub
                )
            wkb = frame.pop("geometry").to_numpy(dtype=object)
            geoms = shapely.from_wkb(wkb) if len(wkb) else np.array([], dtype=object)
            for col in _EVENT_TEXT:
                frame[col] = _text(frame[col])
            for col in ("satisfaction", "lon", "lat"):
                frame[col] = pd.to_numeric(frame[col]).astype(float)
            frame["id"] = frame["id"].astype(np.int64)
            frame["extended_hours"] = frame["extended_hours"].fillna(0).astype(np.int64)
            key = (
                frame["reported_at"]
                .dt.tz_convert(CST)
                .dt.strftime(fmt)
                .to_numpy(dtype=object)
            )
            events = gpd.GeoDataFrame(
                frame, geometry=gpd.GeoSeries(geoms, index=frame.index, crs=4326)
            )
            acts = pd.DataFrame.from_records(
                conn.execute(
                    select(*[ea.c[c] for c in _ACTION_COLUMNS])
                    .where(ea.c.event_id.between(int(frame["id"].iloc[0]), last))
                    .order_by(ea.c.event_id, ea.c.seq)
                ).all(),
                columns=_ACTION_COLUMNS,
            )
            acts["event_id"] = acts["event_id"].astype(np.int64)
            acts["seq"] = acts["seq"].astype(np.int64)
            acts["at"] = pd.to_datetime(acts["at"], utc=True).astype("datetime64[us, UTC]")
            for col in ("action", "role", "from_state", "to_state"):
                acts[col] = _text(acts[col])
            act_key = (
                pd.Series(key, index=frame["id"].to_numpy())
                .reindex(acts["event_id"].to_numpy())
                .to_numpy()
            )
            for k in np.unique(key):  # a handful of months per chunk
                sel = key == k
                part = root / "events" / f"{partition_on}={k}"
                part.mkdir(parents=True, exist_ok=True)
                events[sel].to_parquet(part / f"part-{step:05d}.parquet", index=False)
                asel = act_key == k
                if asel.any():
                    apart = root / "actions" / f"{partition_on}={k}"
                    apart.mkdir(parents=True, exist_ok=True)
                    acts[asel].to_parquet(apart / f"part-{step:05d}.parquet", index=False)
                keys.add(str(k))
            n_events += len(frame)
            n_actions += len(acts)
            step += 1
            if progress:
                progress(f"exported {n_events:,} events, {n_actions:,} actions")
    _export_reference(store, root / "reference")
    info = {
        "format": ARCHIVE_FORMAT,
        "version": _ARCHIVE_VERSION,
        "exported_at": exported_at.isoformat(timespec="seconds"),
        "source": store.dialect,
        "partition_on": partition_on,
        "partitions": sorted(keys),
        "events": n_events,
        "actions": n_actions,
    }
    (root / "archive.json").write_text(
        json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return info


def _export_reference(store, ref: Path) -> None:
    """The small tables the assessment names its units from (as :class:`_Names` reads them)."""
    from sqlalchemy import select

    from gridgeo.store import schema

    ref.mkdir(parents=True, exist_ok=True)
    names = _Names(store)
    grids = names.grids()
    pd.DataFrame(
        {"code": _text(grids.index.to_series()).to_numpy(), "name": _text(grids).to_numpy()}
    ).to_parquet(ref / "grids.parquet", index=False)
    div = names.divisions()
    pd.DataFrame(
        {"code": _text(div.index.to_series()).to_numpy(), "name": _text(div).to_numpy()}
    ).to_parquet(ref / "divisions.parquet", index=False)
    staff = names.staff()[["code", "name", "role", "grid_code"]].reset_index(drop=True)
    staff.astype({c: "str" for c in staff.columns}).to_parquet(ref / "staff.parquet", index=False)
    c = schema.categories
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(c.c.code, c.c.name, c.c.platform, c.c.department, c.c.deadline_hours)
        ).all()
    cats = pd.DataFrame(rows, columns=["code", "name", "platform", "department", "deadline_hours"])
    cats = cats.astype(
        {
            "code": "str",
            "name": "str",
            "platform": "str",
            "department": "str",
            "deadline_hours": np.int64,
        }
    )
    cats.to_parquet(ref / "categories.parquet", index=False)


def archive_info(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``archive.json`` of an archive.

    Raises
    ------
    InvalidArchive
        Not an archive written by :func:`export_archive` (of this version).
    """
    root = Path(directory)
    try:
        info = json.loads((root / "archive.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InvalidArchive(
            f"{root} is not a gridgeo archive (no archive.json): "
            "write one with `gridgeo archive export`"
        ) from None
    if info.get("format") != ARCHIVE_FORMAT or info.get("version") != _ARCHIVE_VERSION:
        raise InvalidArchive(f"{root}: not a gridgeo archive of version {_ARCHIVE_VERSION}")
    return info


def _archive_parts(
    root: Path, info: dict, period: Period, as_of: dt.datetime
) -> list[tuple[str, str | None]]:
    """(events, actions) directories of the partitions that can hold events in scope:
    those that start before the period ends and before ``as_of``."""
    key = info["partition_on"]
    last = min(period.bounds()[1], as_of).astimezone(CST)
    out = []
    for value in info["partitions"]:
        first = dt.datetime.strptime(value, _PARTITION_KEYS[key]).replace(tzinfo=CST)
        if first > last:
            continue
        ev = root / "events" / f"{key}={value}"
        act = root / "actions" / f"{key}={value}"
        out.append((str(ev), str(act) if act.exists() else None))
    return out
