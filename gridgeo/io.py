"""Reading, importing and exporting layers: GeoPackage, GeoJSON, Shapefile, GeoParquet, CSV.

An import reads every file, validates everything (:mod:`gridgeo.validate`), and only
then writes, in one transaction: when anything is wrong nothing is written and
:class:`~gridgeo.errors.ImportFailed` carries the report.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely
from sqlalchemy import bindparam, select

from gridgeo import crs as _crs
from gridgeo.config import get_settings
from gridgeo.errors import GridgeoError, IllegalTransition, ImportFailed, StoreError, UnknownCRS
from gridgeo.layers import IMPORT_ORDER, LAYERS, get_layer
from gridgeo.store import Store, schema, today
from gridgeo.timezone import CHINA
from gridgeo.validate import (
    Report,
    check_grids,
    check_households,
    check_layer,
    check_references,
)

__all__ = [
    "FORMATS",
    "ImportResult",
    "Source",
    "export_layer",
    "end_plan_in_force",
    "import_files",
    "read_sources",
    "validate_files",
    "validate_store",
    "write_frame",
]

#: File suffix -> format name.
FORMATS = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "ESRI Shapefile",
    ".parquet": "GeoParquet",
    ".geoparquet": "GeoParquet",
    ".csv": "CSV",
}

Progress = Callable[[str], None]


@dataclass
class Source:
    """One layer read from one file, with its coordinates already in WGS84."""

    file: str
    layer: str
    frame: pd.DataFrame


@dataclass
class ImportResult:
    """What an import wrote."""

    counts: dict[str, int] = field(default_factory=dict)
    plan_version: str | None = None
    report: Report = field(default_factory=Report)


def _format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise GridgeoError(
            f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}"
        ) from None


def _layer_for(path: Path, layer: str | None, report: Report) -> str | None:
    name = layer or path.stem.lower()
    if name in LAYERS:
        return name
    report.error(path, layer or "?", None, None,
                 f"cannot tell which layer this file holds: name it one of "
                 f"{', '.join(LAYERS)} or pass --layer")
    return None


def _to_wgs84(geoms: np.ndarray, src: str) -> np.ndarray:
    """Convert geometries from gcj02 / bd09 to WGS84, all coordinates in one call."""
    def fn(xy):
        lon, lat = _crs.convert(xy[:, 0], xy[:, 1], src, "wgs84")
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, fn)


def _declared_crs(name: str | None):
    """A --crs value as ('name', gcj02/bd09 name) or ('pyproj', CRS)."""
    if name is None:
        return None
    try:
        canon = _crs.normalize_name(name)
        return ("name", canon)
    except UnknownCRS:
        pass
    try:
        return ("pyproj", pyproj.CRS.from_user_input(name))
    except pyproj.exceptions.CRSError:
        raise UnknownCRS(
            f"unknown coordinate system {name!r}: use wgs84, cgcs2000, gcj02, bd09 or an EPSG code"
        ) from None


def _reproject(frame: gpd.GeoDataFrame, file_crs, declared, path, layer, report) -> gpd.GeoDataFrame | None:
    """Bring ``frame`` to EPSG:4326 from its file CRS or the declared one."""
    if declared is None and file_crs is None:
        report.error(path, layer, None, "crs",
                     "the file declares no coordinate system: pass --crs (wgs84, cgcs2000, gcj02, bd09 or EPSG:xxxx)")
        return None
    if declared is not None and declared[0] == "name":
        if file_crs is not None and declared[1] in ("wgs84", "cgcs2000"):
            epsg = pyproj.CRS.from_user_input(file_crs).to_epsg()
            if epsg not in (4326, 4490):
                report.warning(path, layer, None, "crs",
                               f"the file says EPSG:{epsg}, --crs says {declared[1]}: --crs wins")
        geoms = frame.geometry.to_numpy()
        if declared[1] in ("gcj02", "bd09"):
            geoms = _to_wgs84(geoms, declared[1])
        return frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index), crs=4326)
    target = declared[1] if declared is not None else pyproj.CRS.from_user_input(file_crs)
    epsg = target.to_epsg()
    if epsg in (4326, 4490):
        return frame.set_crs(4326, allow_override=True)
    if not target.is_projected and not target.is_geographic:
        report.error(path, layer, None, "crs", f"coordinate system {target.name!r} cannot be used")
        return None
    return frame.set_crs(target, allow_override=True).to_crs(4326)


def _read_csv(path: Path, spec, declared, report) -> pd.DataFrame | None:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        report.error(path, spec.name, None, None, "the file is not UTF-8 text")
        return None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        report.error(path, spec.name, None, None, f"cannot read the CSV: {exc}")
        return None
    df.insert(0, "_row", np.arange(1, len(df) + 1))
    if spec.geometry is None:
        return df
    if spec.name == "events":
        return _event_points(df, path, report)
    if {"lon", "lat"} <= set(df.columns):
        lon = pd.to_numeric(df["lon"].replace("", None), errors="coerce").to_numpy(dtype=float)
        lat = pd.to_numeric(df["lat"].replace("", None), errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(lon) | np.isnan(lat)
        given = (df["lon"] != "") | (df["lat"] != "")
        for r, lo, la in zip(df["_row"][bad & given.to_numpy()], df["lon"][bad & given.to_numpy()],
                             df["lat"][bad & given.to_numpy()]):
            report.error(path, spec.name, int(r), "lon", f"({lo!r}, {la!r}) are not numbers")
        geoms = shapely.points(lon, lat)
        geoms[bad] = None
    elif "wkt" in df.columns or "geometry" in df.columns:
        col = "wkt" if "wkt" in df.columns else "geometry"
        text = np.where(df[col].to_numpy(dtype=object) == "", None, df[col].to_numpy(dtype=object))
        geoms = shapely.from_wkt(text, on_invalid="ignore")
        unreadable = pd.notna(text) & shapely.is_missing(geoms)
        for r in df["_row"][unreadable]:
            report.error(path, spec.name, int(r), col, "not a readable WKT geometry")
        df = df.drop(columns=[col])
    else:
        report.error(path, spec.name, None, "lon",
                     "a CSV needs lon and lat columns (points) or a wkt column")
        return None
    frame = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, index=df.index))
    if "crs" in df.columns and declared is None:
        names = df["crs"].str.strip().str.lower()
        known = names.isin(list(_crs.NAMES))
        for r, v in zip(df["_row"][~known], df["crs"][~known]):
            report.error(path, spec.name, int(r), "crs", f"unknown coordinate system {v!r}")
        geoms = frame.geometry.to_numpy().copy()
        for name in ("gcj02", "bd09"):
            sel = (names == name).to_numpy()
            if sel.any():
                geoms[sel] = _to_wgs84(geoms[sel], name)
        return frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index), crs=4326)
    return _reproject(frame, None, declared, path, spec.name, report)


def _event_points(df: pd.DataFrame, path, report) -> gpd.GeoDataFrame:
    """Events keep lon/lat/crs as reported; their geometry is the WGS84 position."""
    lon = pd.to_numeric(df.get("lon", pd.Series("", index=df.index)).replace("", None), errors="coerce")
    lat = pd.to_numeric(df.get("lat", pd.Series("", index=df.index)).replace("", None), errors="coerce")
    lon, lat = lon.to_numpy(dtype=float), lat.to_numpy(dtype=float)
    has = ~np.isnan(lon) & ~np.isnan(lat)
    names = df.get("crs", pd.Series("", index=df.index)).str.strip().str.lower()
    names = names.where(names != "", "wgs84")
    known = names.isin(list(_crs.NAMES)).to_numpy()
    for r, v in zip(df["_row"][~known], names[~known]):
        report.error(path, "events", int(r), "crs", f"unknown coordinate system {v!r}")
    x, y = lon.copy(), lat.copy()
    for name in ("gcj02", "bd09"):
        sel = has & (names == name).to_numpy()
        if sel.any():
            x[sel], y[sel] = _crs.convert(lon[sel], lat[sel], name, "wgs84")
    geoms = shapely.points(x, y)
    geoms[~has] = None
    df = df.assign(crs=names.where(has, None))
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, index=df.index), crs=4326)


def _read_spatial(path: Path, fmt: str, gpkg_layer: str | None, spec, declared, report):
    try:
        if fmt == "GeoParquet":
            frame = gpd.read_parquet(path)
            file_crs = frame.crs
        else:
            frame = pyogrio.read_dataframe(path, layer=gpkg_layer)
            file_crs = frame.crs if isinstance(frame, gpd.GeoDataFrame) else None
    except Exception as exc:  # the reader's own message is the useful part
        report.error(path, spec.name, None, None, f"cannot read the file: {exc}")
        return None
    frame = frame.reset_index(drop=True)
    # Shapefile field names stop at 10 characters: map them back.
    renames = {c.name[:10]: c.name for c in spec.columns if len(c.name) > 10 and c.name[:10] in frame}
    frame = frame.rename(columns=renames)
    frame.insert(0, "_row", np.arange(1, len(frame) + 1))
    if spec.geometry is None:
        return pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
    if not isinstance(frame, gpd.GeoDataFrame):
        report.error(path, spec.name, None, "geometry", "the layer has no geometry column")
        return None
    if frame.geometry.name != "geometry":
        frame = frame.rename_geometry("geometry")
    return _reproject(frame, file_crs, declared, path, spec.name, report)


def read_sources(paths: Iterable[str | Path], *, layer: str | None = None,
                 crs: str | None = None, report: Report | None = None) -> tuple[list[Source], Report]:
    """Read files into :class:`Source` layers in WGS84, collecting problems in ``report``.

    A GeoPackage yields each of its layers whose name is a gridgeo layer (or, with
    ``layer``, its only layer or the one of that name); other files hold one layer,
    named by ``layer`` or by the file name (``households.csv``).
    """
    report = report if report is not None else Report()
    declared = _declared_crs(crs)
    sources = []
    for path in map(Path, paths):
        if not path.exists():
            report.error(path, layer or "?", None, None, "no such file")
            continue
        fmt = _format(path)
        if fmt == "GPKG":
            try:
                names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
            except Exception as exc:
                report.error(path, layer or "?", None, None, f"cannot read the file: {exc}")
                continue
            if layer:
                pick = [(layer if layer in names else names[0], layer)] if (layer in names or len(names) == 1) else []
                if not pick:
                    report.error(path, layer, None, None, f"no layer {layer!r} in the file (it has {', '.join(names)})")
            else:
                pick = [(n, n) for n in names if n in LAYERS]
                skipped = [n for n in names if n not in LAYERS]
                if skipped:
                    report.warning(path, "?", None, None, f"layers ignored: {', '.join(skipped)}")
                if not pick:
                    report.error(path, "?", None, None, f"no gridgeo layer in the file (it has {', '.join(names)})")
            for file_layer, name in pick:
                frame = _read_spatial(path, fmt, file_layer, LAYERS[name], declared, report)
                if frame is not None:
                    sources.append(Source(str(path), name, frame.assign(_file=str(path))))
            continue
        name = _layer_for(path, layer, report)
        if name is None:
            continue
        spec = LAYERS[name]
        if fmt == "CSV":
            frame = _read_csv(path, spec, declared, report)
        else:
            frame = _read_spatial(path, fmt, None, spec, declared, report)
        if frame is not None:
            sources.append(Source(str(path), name, frame.assign(_file=str(path))))
    return sources, report


def _existing_keys(store: Store | None, layer: str) -> set[str]:
    if store is None:
        return set()
    spec = get_layer(layer)
    table = schema.LAYER_TABLES[layer]
    if not spec.key or layer == "grids":
        return set()
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(table.c[spec.key]))}


def _validate(store: Store | None, sources: list[Source], report: Report, *, repair: bool,
              replace: bool, progress: Progress | None) -> dict[str, pd.DataFrame]:
    """Single-layer then cross-layer checks; returns the typed frames by layer."""
    settings = get_settings()
    by_layer: dict[str, list[pd.DataFrame]] = {}
    for src in sources:
        by_layer.setdefault(src.layer, []).append(src.frame)
    frames: dict[str, pd.DataFrame] = {}
    for name in IMPORT_ORDER:
        if name not in by_layer:
            continue
        if progress:
            progress(f"checking {name}")
        parts = by_layer[name]
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        if isinstance(parts[0], gpd.GeoDataFrame):
            frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=4326)
        frames[name] = check_layer(frame, LAYERS[name], report,
                                   existing=_existing_keys(store, name), repair=repair, replace=replace)
    # Cross-layer checks against the batch first, then the store.
    if progress and frames:
        progress("checking across layers")
    divisions = frames.get("divisions")
    stored_div = store.read("divisions") if store is not None else None
    if divisions is not None and stored_div is not None and len(stored_div):
        stored_div = stored_div[~stored_div["code"].isin(divisions["code"])]
        all_div = pd.concat([stored_div.assign(_row=0, _file="(store)"), divisions], ignore_index=True)
        all_div = gpd.GeoDataFrame(all_div, geometry="geometry", crs=4326)
    else:
        all_div = divisions if divisions is not None else stored_div
    if divisions is not None:
        codes = set(all_div["code"])
        check_references(divisions, "divisions", "parent_code", codes, "division", report)
    villages = None
    if all_div is not None and len(all_div):
        villages = all_div[all_div["level"].isin(["village", "community"])]
        villages = villages[villages.geometry.notna()]
    grids = frames.get("grids")
    if grids is not None:
        if villages is None or len(villages) == 0:
            report.error(grids["_file"].iloc[0] if len(grids) else "", "grids", None, "village_code",
                         "no villages or communities are known: import divisions first (or with the grids)")
        else:
            check_grids(grids, villages, report, tolerance_m2=settings.area_tolerance_m2)
    plan_grids = grids if grids is not None else (store.read("grids") if store is not None else None)
    households = frames.get("households")
    if households is not None and villages is not None:
        check_references(households, "households", "village_code", set(villages["code"]),
                         "village or community", report)
    if plan_grids is not None and len(plan_grids):
        if households is not None:
            check_households(households, plan_grids, report)
        elif grids is not None and store is not None:
            stored_h = store.read("households")
            if len(stored_h):
                check_households(stored_h.assign(_row=None, _file="(store)"), plan_grids, report)
    elif households is not None and len(households):
        report.warning(households["_file"].iloc[0], "households", None, None,
                       "no grid plan to check the households against")
    staff = frames.get("staff")
    if staff is not None:
        if plan_grids is not None and len(plan_grids):
            check_references(staff, "staff", "grid_code", set(plan_grids["code"]), "grid of the plan", report)
        else:
            report.error(staff["_file"].iloc[0] if len(staff) else "", "staff", None, "grid_code",
                         "no grid plan: import grids first (or with the staff)")
    events = frames.get("events")
    if events is not None:
        known = set(frames["categories"]["code"]) if "categories" in frames else set()
        known |= _existing_keys(store, "categories")
        check_references(events, "events", "category_code", known, "category", report)
    return frames


def validate_files(paths, *, store: Store | None = None, layer=None, crs=None, repair=False,
                   replace=False, progress: Progress | None = None) -> Report:
    """Validate files as one batch (against ``store`` when given); nothing is written."""
    sources, report = read_sources(paths, layer=layer, crs=crs)
    _validate(store, sources, report, repair=repair, replace=replace, progress=progress)
    return report


def validate_store(store: Store, *, at: dt.date | None = None) -> Report:
    """Re-run the cross-layer checks on what the database holds, for the plan in force."""
    report = Report()
    settings = get_settings()
    divisions = store.read("divisions")
    grids = store.read("grids", at=at)
    label = f"(database, plan {grids.attrs.get('plan_version')})"
    if len(grids) == 0:
        report.error(label, "grids", None, None, "no grid plan is in force")
        return report
    grids = grids.assign(_row=None, _file=label)
    villages = divisions[divisions["level"].isin(["village", "community"]) & divisions.geometry.notna()]
    check_grids(grids, villages, report, tolerance_m2=settings.area_tolerance_m2)
    households = store.read("households")
    check_households(households.assign(_row=None, _file=label), grids, report)
    staff = store.read("staff").assign(_row=None, _file=label)
    check_references(staff, "staff", "grid_code", set(grids["code"]), "grid of the plan", report)
    return report


def _records(frame: pd.DataFrame, table) -> list[dict]:
    cols = [c for c in table.c.keys() if c in frame.columns and c != "id"]
    out = pd.DataFrame(frame[cols])
    if "geometry" in cols:
        out["geometry"] = shapely.to_wkb(np.asarray(out["geometry"].to_numpy(), dtype=object))
    out = out.astype(object).where(pd.notna(out), None)
    for c in cols:
        if c in ("reported_at",):
            out[c] = [v.to_pydatetime() if v is not None else None for v in out[c]]
    return out.to_dict("records")


def _write_rows(conn, table, rows: list[dict], key: str | None, replace: bool) -> None:
    if not rows:
        return
    if replace and key:
        existing = {r[0] for r in conn.execute(select(table.c[key]).where(table.c[key].in_([r[key] for r in rows])))}
        updates = [dict(r, _key=r[key]) for r in rows if r[key] in existing]
        rows = [r for r in rows if r[key] not in existing]
        if updates:
            cols = {c: bindparam(c) for c in updates[0] if c not in ("_key", key)}
            conn.execute(table.update().where(table.c[key] == bindparam("_key")).values(cols), updates)
    if rows:
        conn.execute(table.insert(), rows)


def _grid_totals(grids: gpd.GeoDataFrame, households: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """Fill households / population / buildings of grids that do not give them."""
    grids = grids.copy()
    cols = ["households", "population", "buildings"]
    if households is None or len(households) == 0:
        for c in cols:
            grids[c] = grids[c].fillna(0).astype(int)
        return grids
    tree = shapely.STRtree(grids.geometry.to_numpy())
    hi, gi = tree.query(households.geometry.to_numpy(), predicate="intersects")
    # A household on a shared edge counts once, in the first grid the tree returns.
    _, first = np.unique(hi, return_index=True)
    hi, gi = hi[first], gi[first]
    for c in cols:
        vals = pd.to_numeric(households[c], errors="coerce").fillna(1 if c == "households" else 0).to_numpy()
        sums = np.bincount(gi, weights=vals[hi], minlength=len(grids))
        grids[c] = grids[c].fillna(pd.Series(sums, index=grids.index)).astype(int)
    return grids


def import_files(
    store: Store,
    paths: Iterable[str | Path],
    *,
    layer: str | None = None,
    crs: str | None = None,
    repair: bool = False,
    replace: bool = False,
    plan_version: str | None = None,
    plan_name: str | None = None,
    effective_from: dt.date | None = None,
    actor: str = "cli",
    progress: Progress | None = None,
) -> ImportResult:
    """Validate and import files into ``store`` in one transaction.

    Parameters
    ----------
    store : Store
        A migrated store.
    paths : iterable of paths
        The files; all of them form one batch (one validation, one transaction).
    layer : str, optional
        The layer the files hold, when their names do not say it.
    crs : str, optional
        The coordinate system of the input, for files that declare none (CSV) or
        declare a wrong one; ``gcj02`` and ``bd09`` are converted to WGS84.
    repair : bool
        Repair invalid polygons instead of refusing them.
    replace : bool
        Update rows whose code is already in the store instead of refusing them.
    plan_version, plan_name, effective_from : optional
        For a grid layer: the new plan's version label (default the effective date),
        name, and the date it takes effect (default today). The plan in force then
        ends on that date.

    Raises
    ------
    ImportFailed
        When validation finds an error. Nothing is written.
    """
    store.check()
    sources, report = read_sources(paths, layer=layer, crs=crs)
    frames = _validate(store, sources, report, repair=repair, replace=replace, progress=progress)
    if not report.ok:
        raise ImportFailed(report)
    if not frames:
        report.error("", "?", None, None, "nothing to import")
        raise ImportFailed(report)
    result = ImportResult(report=report)
    if "grids" in frames:
        households = frames.get("households")
        if households is None:
            households = store.read("households")
        frames["grids"] = _grid_totals(frames["grids"], households)
    try:
        with store.engine.begin() as conn:
            for name in IMPORT_ORDER:
                if name not in frames:
                    continue
                if progress:
                    progress(f"writing {name}")
                frame = frames[name]
                table = schema.LAYER_TABLES[name]
                files = sorted(set(frame["_file"]))
                detail = {"files": files, "rows": int(len(frame))}
                if name == "grids":
                    plan_id, version = _new_plan(conn, store, plan_version, plan_name, effective_from, files)
                    frame = frame.assign(plan_id=plan_id, kind=frame["kind"].fillna("basic"))
                    result.plan_version = version
                    detail["plan"] = version
                    _write_rows(conn, table, _records(frame, table), None, False)
                else:
                    if name == "events":
                        now = dt.datetime.now(dt.timezone.utc)
                        frame = frame.assign(created_at=now, state="reported")
                    if name == "households":
                        frame = frame.assign(
                            households=frame["households"].fillna(1),
                            population=frame["population"].fillna(0),
                            buildings=frame["buildings"].fillna(0),
                        )
                    if name == "staff":
                        conn.execute(table.delete().where(table.c.grid_code.in_(sorted(set(frame["grid_code"])))))
                    key = get_layer(name).key if name != "staff" else None
                    _write_rows(conn, table, _records(frame, table), key, replace)
                Store.audit(conn, actor=actor, action="import", entity=name, detail=detail)
                result.counts[name] = int(len(frame))
    except GridgeoError:
        raise
    except Exception as exc:
        raise StoreError(f"the database refused the import, nothing was written: {exc}") from exc
    return result


def _new_plan(conn, store: Store, version, name, effective_from, files) -> tuple[int, str]:
    plans = schema.plans
    start = effective_from or today()
    version = version or start.isoformat()
    if conn.execute(select(plans.c.id).where(plans.c.version == version)).first():
        raise ImportFailed(_single_error(files, "grids", "plan", f"plan version {version!r} exists already"))
    try:
        end_plan_in_force(conn, store, start)
    except IllegalTransition as exc:
        raise ImportFailed(_single_error(files, "grids", "effective_from", str(exc))) from None
    res = conn.execute(plans.insert().values(
        version=version, name=name or f"网格划分 {version}", status="published",
        effective_from=start, created_at=dt.datetime.now(dt.timezone.utc),
        note=f"imported from {', '.join(files)}",
    ))
    return res.inserted_primary_key[0], version


def end_plan_in_force(conn, store: Store, start: dt.date) -> dict | None:
    """Make way for a plan taking effect on ``start``, inside the caller's transaction.

    The published plan in force on ``start`` ends that day (its ``effective_to``); it is
    returned, or None. Raises :class:`IllegalTransition` when a published plan already
    takes effect on or after ``start``: plans follow each other in time.
    """
    plans = schema.plans
    later = conn.execute(
        select(plans.c.version).where(plans.c.status != "draft", plans.c.effective_from >= start)
    ).first()
    if later:
        raise IllegalTransition(f"plan {later[0]!r} takes effect on or after {start}: choose a later date")
    current = store.plan_in_force(start, conn=conn)
    if current is not None:
        conn.execute(plans.update().where(plans.c.id == current["id"]).values(effective_to=start))
    return current


def _single_error(files, layer, fld, message) -> Report:
    r = Report()
    r.error(files[0] if files else "", layer, None, fld, message)
    return r


def write_frame(frame: pd.DataFrame, path: str | Path, *, layer: str | None = None) -> Path:
    """Write a (Geo)DataFrame to ``path``; the format comes from the suffix.

    CSV gets ``lon``/``lat`` columns for points and a ``wkt`` column for other
    geometries; a GeoPackage may take several layers (``layer`` names this one).
    """
    path = Path(path)
    fmt = _format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    is_geo = isinstance(frame, gpd.GeoDataFrame)
    if fmt == "CSV":
        out = pd.DataFrame(frame.drop(columns="geometry")) if is_geo else frame.copy()
        if is_geo:
            geoms = frame.geometry.to_numpy()
            if len(frame) and (shapely.get_type_id(geoms[~shapely.is_missing(geoms)]) == 0).all():
                out["lon"] = shapely.get_x(geoms)
                out["lat"] = shapely.get_y(geoms)
            else:
                out["wkt"] = shapely.to_wkt(geoms, rounding_precision=7)
        out.to_csv(path, index=False, lineterminator="\n")
    elif fmt == "GeoParquet":
        if not is_geo:
            raise GridgeoError(f"{path}: GeoParquet needs a layer with geometry; use CSV for tables")
        frame.to_parquet(path, index=False)
    else:
        if not is_geo and fmt != "GPKG":
            raise GridgeoError(f"{path}: {fmt} needs a layer with geometry; use CSV or GeoPackage for tables")
        kwargs = {"layer": layer} if fmt == "GPKG" and layer else {}
        if fmt == "GPKG" and path.exists():
            kwargs["append"] = False
        with warnings.catch_warnings():
            if fmt == "ESRI Shapefile":
                kwargs["encoding"] = "UTF-8"
                # Field names are cut to 10 characters; the importer maps them back.
                warnings.filterwarnings("ignore", message="Normalized/laundered field name")
            pyogrio.write_dataframe(frame, path, driver=fmt, **kwargs)
    return path


def export_layer(store: Store, layer: str, path: str | Path, *, at: dt.date | None = None,
                 plan: int | str | None = None) -> int:
    """Export a layer of ``store`` to ``path``; returns the number of rows written."""
    frame = store.read(layer, at=at, plan=plan)
    if layer == "grids":
        frame = frame.drop(columns=["plan_id"], errors="ignore")
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.tz_convert(CHINA).dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(
                r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    write_frame(frame, path, layer=layer)
    return len(frame)
