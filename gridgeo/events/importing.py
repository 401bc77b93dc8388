"""Importing events from files: CSV or GeoPackage, through the intake rules.

The project's standard for imports holds: every row is read and checked first, and
either all rows are written, in one transaction, or none (:class:`ImportFailed` carries
a report naming file, row, field and problem for every bad row). Nothing valid is
dropped: events outside the jurisdiction, without a place or possibly duplicated are
imported like the others and wait in the command room's queues (``located_by``
``outside`` / ``unlocated``, ``duplicate_flag``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from gridgeo import crs as _crs
from gridgeo.errors import ImportFailed
from gridgeo.events.db import write_txn
from gridgeo.events.geolocate import get_geolocator
from gridgeo.events.intake import SOURCE_ROLES, insert_events, prepare_events
from gridgeo.events.workflow import REPORT
from gridgeo.layers import LAYERS
from gridgeo.store import Store, schema
from gridgeo.validate import Report, check_layer, check_references

__all__ = ["ImportResult", "import_events", "read_events"]

Progress = Callable[[str], None]


@dataclass
class ImportResult:
    """What an import wrote, and how the events were located and routed."""

    events: int = 0
    history: int = 0
    located_by: dict[str, int] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    report: Report = field(default_factory=Report)


def _read_gpkg(path: Path, report: Report) -> pd.DataFrame | None:
    """An events layer of a GeoPackage: attributes, and lon/lat from point geometry
    (in WGS84) when the layer has no lon/lat columns."""
    import pyogrio

    try:
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
        layer = "events" if "events" in names else names[0]
        frame = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # the reader's own message is the useful part
        report.error(path, "events", None, None, f"cannot read the file: {exc}")
        return None
    frame = frame.reset_index(drop=True)
    geom = frame.geometry if "geometry" in frame else None
    df = pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
    if geom is not None and not ({"lon", "lat"} <= set(df.columns)):
        if geom.crs is not None and geom.crs.to_epsg() not in (4326, 4490):
            geom = geom.to_crs(4326)
        has = geom.notna() & ~geom.is_empty
        df["lon"] = np.where(has, geom.x.where(has), np.nan)
        df["lat"] = np.where(has, geom.y.where(has), np.nan)
        df["crs"] = np.where(has, "wgs84", None)
    df.insert(0, "_row", np.arange(1, len(df) + 1))
    return df.assign(_file=str(path))


def read_events(store: Store, paths: Iterable[str | Path], *, crs: str | None = None,
                report: Report | None = None, allow_existing: set[str] | None = None,
                encoding: str | None = None, sheet: str | None = None) -> tuple[pd.DataFrame, Report]:
    """Read and check event files (the ``events`` layer: CSV, ``.xlsx`` or plain Parquet
    as :func:`gridgeo.io.reading.read_table` reads them, with ``encoding`` and ``sheet``,
    or a GeoPackage layer with point geometry or lon/lat columns).

    Returns the typed frame (``lon``/``lat``/``crs`` as reported, ``_file``/``_row``
    for reports) and the report. Codes already in the store are errors, except those
    in ``allow_existing``. ``crs`` applies to rows that name none.
    """
    from gridgeo.io import read_sources

    report = report if report is not None else Report()
    frames = []
    csvs = []
    for path in map(Path, paths):
        if path.suffix.lower() == ".gpkg":
            if not path.exists():
                report.error(path, "events", None, None, "no such file")
                continue
            df = _read_gpkg(path, report)
            if df is not None:
                frames.append(df)
        else:
            csvs.append(path)
    if csvs:
        sources, report = read_sources(csvs, layer="events", report=report, encoding=encoding, sheet=sheet)
        frames.extend(s.frame for s in sources)
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(), report
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if crs is not None:
        has_xy = frame.get("lon", pd.Series("", index=frame.index)).astype(str).str.strip().ne("")
        given = frame.get("crs", pd.Series("", index=frame.index)).fillna("").astype(str).str.strip()
        frame["crs"] = np.where(has_xy & (given == ""), crs, frame.get("crs"))
    spec = LAYERS["events"]
    with store.engine.connect() as conn:
        existing = set(conn.execute(select(schema.events.c.code)).scalars())
        categories = set(conn.execute(select(schema.categories.c.code)).scalars())
    existing -= allow_existing or set()
    frame = check_layer(frame, spec, report, existing=existing)
    check_references(frame, "events", "category_code", categories, "category", report)
    # lon and lat come together, and in range.
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=float)
    one = np.isfinite(lon) ^ np.isfinite(lat)
    out = np.isfinite(lon) & np.isfinite(lat) & ~_crs.lonlat_valid(lon, lat)
    for mask, msg in ((one, "lon and lat go together: give both or neither"),
                      (out, "lon must be within [-180, 180] and lat within [-90, 90]")):
        for f, r in zip(frame["_file"].to_numpy()[mask], frame["_row"].to_numpy()[mask]):
            report.error(f, "events", int(r), "lon", msg)
    return frame, report


def _report_swapped(prepared: pd.DataFrame, frame: pd.DataFrame, report: Report) -> None:
    bad = prepared["swapped"].to_numpy(dtype=bool)
    for f, r, lo, la in zip(frame["_file"].to_numpy()[bad], frame["_row"].to_numpy()[bad],
                            frame["lon"].to_numpy()[bad], frame["lat"].to_numpy()[bad]):
        report.error(f, "events", int(r), "lon", f"({lo}, {la}) look swapped: lon first, then lat")


def report_history(prepared: pd.DataFrame, *, at: dt.datetime | None = None) -> pd.DataFrame:
    """The first history line (``report``) of each prepared event."""
    n = len(prepared)
    roles = prepared["source"].map(SOURCE_ROLES).to_numpy(dtype=object)
    actor = prepared["reporter_name"].where(prepared["reporter_name"].notna(),
                                            prepared["reporter_staff_code"]).to_numpy(dtype=object)
    actor = np.where(pd.isna(actor), prepared["source"].to_numpy(dtype=object), actor)
    data = [{"source": s, "located_by": lb, "route": r}
            for s, lb, r in zip(prepared["source"], prepared["located_by"], prepared["route"])]
    return pd.DataFrame({
        "code": prepared["code"].to_numpy(dtype=object),
        "seq": np.ones(n, dtype=int),
        "at": prepared["reported_at"].to_numpy() if at is None else [at] * n,
        "action": [REPORT] * n, "actor": actor, "role": roles,
        "from_state": [None] * n, "to_state": ["reported"] * n, "note": [None] * n,
        "data": pd.Series(data, dtype=object, index=None),
    })


def import_events(store: Store, paths: Iterable[str | Path], *, crs: str | None = None,
                  actor: str = "cli", progress: Progress | None = None, encoding: str | None = None,
                  sheet: str | None = None) -> ImportResult:
    """Import event files through the intake rules, all rows or none.

    Raises
    ------
    ImportFailed
        With every problem found (file, row, field); nothing was written.
    """
    store.check()
    paths = list(paths)
    if progress:
        progress(f"reading {len(paths)} file(s)")
    frame, report = read_events(store, paths, crs=crs, encoding=encoding, sheet=sheet)
    if not report.ok:
        raise ImportFailed(report)
    if len(frame) == 0:
        report.error(paths[0] if paths else "", "events", None, None, "no events in the file(s)")
        raise ImportFailed(report)
    if progress:
        progress(f"locating and routing {len(frame):,} events")
    prepared = prepare_events(store, frame)
    _report_swapped(prepared, frame, report)
    if not report.ok:
        raise ImportFailed(report)
    history = report_history(prepared)
    if progress:
        progress("writing")
    with write_txn(store) as conn:
        counts = insert_events(conn, prepared.drop(columns=["swapped"]), history, actor=actor)
        Store.audit(conn, actor=actor, action="events.import", entity="events",
                    detail={"files": [str(p) for p in paths], "rows": int(len(prepared))})
    get_geolocator(store).invalidate()
    return ImportResult(
        events=counts["events"], history=counts["event_actions"],
        located_by=prepared["located_by"].value_counts().to_dict(),
        routes=prepared["route"].value_counts().to_dict(),
        duplicates=int(prepared["duplicate_flag"].sum()), report=report)


def bare_events(store: Store, codes: Iterable[str]) -> tuple[set[str], set[str]]:
    """Of ``codes`` in the store: (those without any history, those with some).

    Events imported by ``gridgeo import`` (the plain layer import, e.g. ``init --sample``)
    have no history; the events pipeline can take them over.
    """
    ev, ea = schema.events, schema.event_actions
    codes = list(codes)
    bare, kept = set(), set()
    with store.engine.connect() as conn:
        for i in range(0, len(codes), 5000):
            part = codes[i:i + 5000]
            rows = conn.execute(select(ev.c.code, func.count(ea.c.id))
                                .select_from(ev.outerjoin(ea, ea.c.event_id == ev.c.id))
                                .where(ev.c.code.in_(part)).group_by(ev.c.code)).all()
            for code, n in rows:
                (kept if n else bare).add(code)
    return bare, kept
