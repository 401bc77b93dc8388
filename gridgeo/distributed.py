"""Scale-out: batch geolocation and assessment of archives too large for one machine, on dask.

Two jobs run on a dask cluster and give the same answers as the in-process path:

:func:`locate_parquet`
    Every point of a partitioned (Geo)Parquet data set gets the columns ``gridgeo locate``
    adds (grid, village, snapped, distance_m, outside, invalid, swapped), by the same
    :class:`~gridgeo.locate.Locator`: it is built (or loaded) once, here, and shipped to
    each worker once; each partition is located by
    :meth:`~gridgeo.locate.Locator.locate_detail` and written by its worker as one
    GeoParquet file of the output directory.
:func:`assess_archive` / :func:`assess_archive_many`
    The assessment (考核) of :mod:`gridgeo.assess` over an *archive*: events and their
    histories as partitioned Parquet, written by :func:`export_archive`. Each partition
    (a month of events, with the histories of those events) becomes the same per-event
    facts as :func:`gridgeo.assess.read_facts` on its worker; the worker sends back only
    sums per unit, the hours of the events closed in the period and the self-reported
    counts. These add up exactly: counts are sums, means are sums over counts, and the
    p90 is taken from the gathered hours with the in-process method, so the tables equal
    :func:`gridgeo.assess.assess_many`'s (same rows, columns, dtypes and labels).

Where dask runs (the ``client`` argument of every function here, ``--scheduler`` on the
command line):

``None`` / ``"threads"``
    dask's thread pool in this process (``"sync"``: one thread, for debugging).
``"local"`` / ``"local:N"``
    A :class:`distributed.LocalCluster` on this machine (one worker process per core, or
    ``N``), started for the call and closed after it.
``"tcp://host:8786"`` (any scheduler address)
    A running cluster (``dask scheduler`` and ``dask worker tcp://host:8786`` on each
    machine). Workers need gridgeo installed (the same version), and every path given
    must be one every worker can read and write (a shared file system).
a :class:`distributed.Client`
    Used as it is, and left open.

Archive layout (:func:`export_archive`)::

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
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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
from gridgeo.assess.periods import CST, InvalidQuery, Period, parse_period
from gridgeo.errors import GridgeoError, UnknownCRS
from gridgeo.events.workflow import OVERDUE_STATES, STATES

__all__ = [
    "ARCHIVE_FORMAT",
    "LOCATE_COLUMNS",
    "InvalidArchive",
    "archive_info",
    "assess_archive",
    "assess_archive_many",
    "dask_client",
    "export_archive",
    "locate_parquet",
    "partition_facts",
]

ARCHIVE_FORMAT = "gridgeo.archive"
_ARCHIVE_VERSION = 1
#: Columns ``gridgeo locate`` and :func:`locate_parquet` add to every point.
LOCATE_COLUMNS = [
    "grid_code",
    "grid_name",
    "village_code",
    "village_name",
    "snapped",
    "distance_m",
    "outside",
    "invalid",
    "swapped",
]
_TEXT_COLUMNS = ("grid_code", "grid_name", "village_code", "village_name")
_FLAG_COLUMNS = ("snapped", "outside", "invalid", "swapped")
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


class InvalidArchive(GridgeoError, ValueError):
    """A directory that is not a gridgeo archive, or an output that would be overwritten."""

    status = 422
    code = "invalid-archive"


# -- where dask runs -------------------------------------------------------------------------


_LOCAL_SCHEDULERS = ("threads", "sync", "synchronous", "processes")


@contextmanager
def dask_client(client: Any = None) -> Iterator[Any]:
    """What to compute on, from a ``client`` argument (see the module notes).

    Yields the value for ``dask.compute(..., scheduler=...)``: None (dask's default, the
    thread pool, or a :class:`distributed.Client` made current elsewhere), a local
    scheduler name, or a :class:`distributed.Client`. A cluster or client made here is
    closed on leaving.

    Raises
    ------
    GridgeoError
        An address no scheduler answers at.
    """
    if client is None or (isinstance(client, str) and client in _LOCAL_SCHEDULERS):
        yield client
        return
    if not isinstance(client, str):
        yield client  # a distributed.Client (or anything dask.compute takes)
        return
    from distributed import Client, LocalCluster

    text = client.strip()
    if text == "local" or text.startswith("local:"):
        n = int(text.partition(":")[2] or 0) or (os.cpu_count() or 1)
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as c,
        ):
            yield c
        return
    try:
        c = Client(text, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise GridgeoError(f"no dask scheduler answers at {text}: {exc}") from None
    try:
        yield c
    finally:
        c.close()


def _is_client(scheduler: Any) -> bool:
    return type(scheduler).__name__ == "Client" and hasattr(scheduler, "scatter")


class _Shared:
    """A large object passed to every task, tokenised by a fixed name rather than by
    pickling it (which dask does to unknown objects, a few times per graph)."""

    __slots__ = ("token", "value")

    def __init__(self, value: Any):
        self.value = value
        self.token = uuid.uuid4().hex

    def __dask_tokenize__(self):
        return ("gridgeo-shared", self.token)


def _share(value: Any, scheduler: Any) -> Any:
    """Ship ``value`` to the workers once: scattered to every worker of a cluster,
    wrapped for the local schedulers."""
    shared = _Shared(value)  # one object, even for a tuple (scatter would split it)
    if _is_client(scheduler):
        return scheduler.scatter(shared, broadcast=True, hash=False)
    return shared


def _unshare(value: Any) -> Any:
    return value.value if isinstance(value, _Shared) else value


def _compute(*collections, scheduler: Any):
    import dask

    if scheduler is None:
        return dask.compute(*collections)
    return dask.compute(*collections, scheduler=scheduler)


# -- batch geolocation -----------------------------------------------------------------------


def _is_geoparquet(path: Path) -> bool:
    import pyarrow.dataset as ds

    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise InvalidArchive(f"{path}: no Parquet files")
    meta = ds.dataset(files[0], format="parquet").schema.metadata or {}
    return b"geo" in meta


def _prepare_output(dst: Path, overwrite: bool) -> None:
    if dst.exists() and (dst.is_file() or any(dst.iterdir())):
        if not overwrite:
            raise InvalidArchive(f"{dst} exists and is not empty (--overwrite replaces it)")
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    dst.mkdir(parents=True, exist_ok=True)


def _name_table(names: pd.DataFrame | None) -> tuple[pd.Index, dict[str, np.ndarray]] | None:
    """Grid names as plain object arrays, a None appended for "no grid" (built once, shipped
    with the locator: a few rows per grid)."""
    if names is None:
        return None
    index = pd.Index(names.index.to_numpy(dtype=object), dtype=object)
    cols = {}
    for out, col in (
        ("grid_name", "name"),
        ("village_code", "village_code"),
        ("village_name", "village_name"),
    ):
        values = _objects(names[col]).to_numpy(dtype=object)
        cols[out] = np.append(values, np.array([None], dtype=object))
    return index, cols


def _locate_partition(
    part: pd.DataFrame, locator, names, crs: str, lon: str, lat: str, geo: bool
) -> pd.DataFrame:
    """One partition with the columns of ``gridgeo locate`` (as :class:`~gridgeo.lookup.Lookup`'s
    ``many`` and the command make them). ``names`` is from :func:`_name_table`."""
    import shapely

    if geo:
        if part.crs is not None and part.crs.to_epsg() not in (4326, 4490):
            part = part.to_crs(4326)
        geoms = part.geometry.to_numpy()
        missing = shapely.is_missing(geoms)
        if len(geoms) and not (shapely.get_type_id(geoms[~missing]) == 0).all():
            raise GridgeoError("the layer must hold points")
        x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    else:
        x = pd.to_numeric(part[lon], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        y = pd.to_numeric(part[lat], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    detail = locator.locate_detail(np.asarray(x, dtype=float), np.asarray(y, dtype=float), crs=crs)
    codes = detail["code"].to_numpy(dtype=object)
    added, empty = {"grid_code": codes}, {}
    if names is not None:
        index, cols = names
        found, grids = pd.factorize(codes)  # a few hundred distinct codes: match those
        pos = index.get_indexer(pd.Index(grids, dtype=object))
        pos = np.append(np.where(pos < 0, len(index), pos), len(index))
        at = pos[found]  # "no grid" (-1) takes the None at the end
        used = np.unique(at)
        for col, values in cols.items():
            added[col] = values[at]
            empty[col] = all(v is None for v in values[used])  # per grid, not per point
    else:
        for col in _TEXT_COLUMNS[1:]:
            added[col] = np.full(len(codes), None, dtype=object)
            empty[col] = True
    for col in ("snapped", "distance_m", "outside", "invalid", "swapped"):
        added[col] = detail[col].to_numpy()
    empty["grid_code"] = bool(added["outside"].all())
    out = part.drop(columns=[c for c in LOCATE_COLUMNS if c in part.columns])
    for col in LOCATE_COLUMNS:
        values = added[col]
        if col in _TEXT_COLUMNS:
            # A column with no value at all gets a string dtype, so that every file of the
            # output has the same schema (not Arrow's null type).
            dtype = pd.StringDtype("python") if empty[col] else object
            values = pd.Series(values, index=out.index, dtype=dtype)
        out[col] = values
    return out


_SUMMARY_COLUMNS = ["file", "rows", "located", "snapped", "outside", "invalid", "swapped"]


def _locate_and_write(
    part: pd.DataFrame,
    shared,
    crs: str,
    lon: str,
    lat: str,
    geo: bool,
    dst: str,
    partition_info: dict | None = None,
) -> pd.DataFrame:
    """Locate one partition and write it as ``part-NNNNN.parquet`` of ``dst``; its counts.
    ``shared`` holds the locator and the names (:func:`_name_table`)."""
    number = (partition_info or {}).get("number", 0)
    locator, names = _unshare(shared)
    out = _locate_partition(part, locator, names, crs, lon, lat, geo)
    path = os.path.join(dst, f"part-{number:05d}.parquet")
    out.to_parquet(path, index=False)
    outside = out["outside"].to_numpy(dtype=bool)
    return pd.DataFrame(
        {
            "file": [path],
            "rows": [len(out)],
            "located": [int((~outside).sum())],
            **{c: [int(out[c].to_numpy(dtype=bool).sum())] for c in _FLAG_COLUMNS},
        }
    )


def locate_parquet(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    store=None,
    locator=None,
    names: pd.DataFrame | None = None,
    at: dt.date | None = None,
    plan: int | str | None = None,
    crs: str | None = None,
    lon: str = "lon",
    lat: str = "lat",
    client: Any = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Add grid codes to every point of a partitioned (Geo)Parquet data set, on dask.

    The columns are those of ``gridgeo locate``: ``grid_code``, ``grid_name``,
    ``village_code``, ``village_name``, ``snapped``, ``distance_m``, ``outside``,
    ``invalid``, ``swapped`` (see :mod:`gridgeo.locate` for the rules); the result is the
    same, row for row, as the command on the same points.

    Parameters
    ----------
    src : path
        A GeoParquet file or a directory of them (read with ``dask_geopandas.read_parquet``;
        a layer in a projected CRS is reprojected to lon/lat), or Parquet with ``lon`` and
        ``lat`` columns (read with ``dask.dataframe.read_parquet``; ``crs`` is needed).
        Each file (or row group of a large file) is a partition.
    dst : path
        A directory; one GeoParquet (or Parquet) file per partition, ``part-NNNNN.parquet``.
    store : Store, optional
        Locate with the plan in force on ``at`` (default today), or ``plan``, of this
        store, with its grid and village names.
    locator : Locator, optional
        Or locate with this locator (then ``names``, a frame indexed by grid code with
        ``name``, ``village_code`` and ``village_name``, gives the names; else they are
        empty).
    crs : str, optional
        The coordinates' system (``wgs84``, ``cgcs2000``, ``gcj02``, ``bd09``); it
        overrides a GeoParquet's own, as ``--crs`` does.
    lon, lat : str
        Coordinate columns of plain Parquet.
    client
        Where dask runs (see the module notes).
    overwrite : bool
        Replace a ``dst`` that holds files.

    Returns
    -------
    dict
        ``rows``, ``located``, ``snapped``, ``outside``, ``invalid``, ``swapped``,
        ``partitions``, ``plan``, ``files`` and ``seconds``.

    Raises
    ------
    UnknownCRS
        Plain Parquet without ``crs``.
    InvalidArchive
        No Parquet in ``src``, or ``dst`` not empty without ``overwrite``.
    """
    import dask.dataframe as dd

    t0 = time.perf_counter()
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if (store is None) == (locator is None):
        raise ValueError("give a store or a locator")
    if store is not None:
        from gridgeo.lookup import Lookup

        lookup = Lookup(store)
        p = store.plan(plan) if plan is not None else lookup.plan_at(at)
        locator = lookup.locator(p)
        names = lookup.directory(p)[["name", "village_code", "village_name"]]
    if not src.exists():
        raise InvalidArchive(f"{src} does not exist")
    geo = _is_geoparquet(src)
    if geo:
        import dask_geopandas

        frame = dask_geopandas.read_parquet(src)
        declared = "wgs84" if frame.crs is not None else None
    else:
        frame = dd.read_parquet(src)
        declared = None
        for col in (lon, lat):
            if col not in frame.columns:
                raise InvalidArchive(f"{src}: no column {col!r} and no geometry")
    source_crs = crs or declared
    if source_crs is None:
        raise UnknownCRS(
            f"{src} declares no coordinate system: give crs (wgs84, cgcs2000, gcj02, bd09)"
        )
    from gridgeo import crs as _crs

    source_crs = _crs.normalize_name(source_crs)  # an unknown name fails here, not on a worker
    _prepare_output(dst, overwrite)
    meta = pd.DataFrame(
        {c: pd.Series(dtype=object if c == "file" else np.int64) for c in _SUMMARY_COLUMNS}
    )
    with dask_client(client) as scheduler:
        shared = _share((locator, _name_table(names)), scheduler)  # to each worker, once
        parts = frame.map_partitions(
            _locate_and_write,
            shared,
            source_crs,
            lon,
            lat,
            geo,
            str(dst),
            meta=meta,
            enforce_metadata=False,
            align_dataframes=False,
        )
        (counts,) = _compute(parts, scheduler=scheduler)
    summary = {c: int(counts[c].sum()) for c in _SUMMARY_COLUMNS[1:]}
    summary.update(
        partitions=len(counts),
        plan=locator.plan,
        files=sorted(counts["file"]),
        seconds=round(time.perf_counter() - t0, 3),
        dst=str(dst),
    )
    return summary


# -- archives --------------------------------------------------------------------------------


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


# -- assessment over an archive ----------------------------------------------------------------


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


def _objects(values: pd.Series) -> pd.Series:
    """Object values with None for missing, as the store's rows give them."""
    s = pd.Series(values.to_numpy(dtype=object), index=values.index, dtype=object)
    return s.where(values.notna().to_numpy(), None)


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
