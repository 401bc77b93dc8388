"""Importing layers: validate a batch of files, then write it in one transaction.

An import reads every file (:mod:`gridgeo.io.reading`), validates everything
(:mod:`gridgeo.validate`), and only then writes, in one transaction: when anything is
wrong nothing is written and :class:`~gridgeo.errors.ImportFailed` carries the report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import bindparam, select

from gridgeo.config import get_settings
from gridgeo.errors import GridgeoError, IllegalTransition, ImportFailed, InvalidPlan, StoreError
from gridgeo.io.reading import Source, read_sources
from gridgeo.layers import IMPORT_ORDER, LAYERS, get_layer
from gridgeo.store import Store, schema, today
from gridgeo.validate import (
    Report,
    check_grids,
    check_households,
    check_layer,
    check_references,
)

__all__ = [
    "ImportResult",
    "Progress",
    "staff_removed",
    "import_files",
    "validate_files",
    "validate_store",
]

Progress = Callable[[str], None]


@dataclass
class ImportResult:
    """What an import wrote, and what it took away.

    Attributes
    ----------
    counts : dict
        Rows written, by layer.
    plan_version : str or None
        The grid plan the import published.
    ended_plan : str or None
        The plan that was in force on the new plan's first day and ends that day.
    replaced : dict
        With ``replace``: by layer, the codes of rows that were in the store and were
        overwritten in place.
    removed : dict
        With ``replace``: by layer, the rows taken out of the store (today only staff: the
        people of a replaced roster the file does not list), as dicts.
    report : Report
        Warnings (errors make the import fail).
    """

    counts: dict[str, int] = field(default_factory=dict)
    plan_version: str | None = None
    ended_plan: str | None = None
    replaced: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[dict]] = field(default_factory=dict)
    report: Report = field(default_factory=Report)

    def summary(self) -> list[str]:
        """What happened, one line each, for people (the CLI prints these)."""
        lines = ["imported: " + ", ".join(f"{k} {v}" for k, v in self.counts.items())]
        for layer, codes in self.replaced.items():
            lines.append(f"replaced (updated in place): {layer} {len(codes)}: {_some(codes)}")
        for layer, rows in self.removed.items():
            lines.append(f"removed: {layer} {len(rows)}: " + _some([_who(r) for r in rows]))
        if self.plan_version:
            ended = f"; plan {self.ended_plan} ends that day" if self.ended_plan else ""
            lines.append(f"grid plan {self.plan_version} published{ended}")
        return lines


def _some(items: list[str], n: int = 20) -> str:
    return "; ".join(items[:n]) + (f" (and {len(items) - n} more)" if len(items) > n else "")


def _who(row) -> str:
    return f"{row['name']} ({row['code']}, {row['role']}) from grid {row['grid_code']}"


#: A staff row is one person in one role on one grid (the store's unique key): a person
#: may serve several grids.
_STAFF_KEY = ["code", "grid_code", "role"]


def staff_removed(stored: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    """The people a replacing staff import takes off the rosters.

    Importing staff with ``replace`` makes the file the roster of every grid it names:
    the rows of ``stored`` on those grids that the file does not list (same person, grid
    and role) are removed. Without ``replace`` nobody is.
    """
    on_grids = stored[stored["grid_code"].isin(set(staff["grid_code"].dropna()))]
    listed = pd.MultiIndex.from_frame(staff[_STAFF_KEY].astype(str))
    kept = pd.MultiIndex.from_frame(on_grids[_STAFF_KEY].astype(str)).isin(listed)
    return on_grids[~kept].sort_values(["grid_code", "code", "role"])


def _check_roster(staff: pd.DataFrame, stored: pd.DataFrame, report: Report, replace: bool) -> None:
    """An import adds people or refuses; with ``replace`` it says whom it removes."""
    if replace:
        file0 = staff["_file"].iloc[0] if len(staff) else ""
        for row in staff_removed(stored, staff).to_dict("records"):
            report.warning(file0, "staff", None, "grid_code", f"--replace removes {_who(row)}")
        return
    known = pd.MultiIndex.from_frame(stored[_STAFF_KEY].astype(str))
    clash = pd.MultiIndex.from_frame(staff[_STAFF_KEY].astype(str)).isin(known)
    for row in staff[clash].to_dict("records"):
        report.error(row["_file"], "staff", None if pd.isna(row["_row"]) else int(row["_row"]), "code",
                     f"{row['name']} ({row['code']}) is already {row['role']} of grid {row['grid_code']}: "
                     "an import adds people; import with --replace to make the file the roster of "
                     "the grids it names")


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
        if len(grids) == 0:
            # Published, it would end the plan in force and leave every village without a
            # grid (the plan life cycle refuses it too: put_in_force).
            files = ", ".join(s.file for s in sources if s.layer == "grids")
            report.error(files, "grids", None, None, "the grids layer has no features: a plan must "
                         "cover the villages it divides, an empty one is refused")
        elif villages is None or len(villages) == 0:
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
        if store is not None:
            _check_roster(staff, store.read("staff"), report, replace)
    events = frames.get("events")
    if events is not None:
        known = set(frames["categories"]["code"]) if "categories" in frames else set()
        known |= _existing_keys(store, "categories")
        check_references(events, "events", "category_code", known, "category", report)
    return frames


def validate_files(paths, *, store: Store | None = None, layer=None, crs=None, repair=False,
                   replace=False, progress: Progress | None = None, encoding: str | None = None,
                   sheet: str | None = None) -> Report:
    """Validate files as one batch (against ``store`` when given); nothing is written.
    ``encoding`` and ``sheet`` are for tables (:func:`gridgeo.io.reading.read_table`)."""
    sources, report = read_sources(paths, layer=layer, crs=crs, encoding=encoding, sheet=sheet)
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


def _write_rows(conn, table, rows: list[dict], key: str | None, replace: bool) -> list[str]:
    """Insert ``rows``; with ``replace``, rows whose ``key`` is in the table update it.
    Returns the keys updated in place."""
    updates: list[dict] = []
    if not rows:
        return []
    if replace and key:
        existing = {r[0] for r in conn.execute(select(table.c[key]).where(table.c[key].in_([r[key] for r in rows])))}
        updates = [dict(r, _key=r[key]) for r in rows if r[key] in existing]
        rows = [r for r in rows if r[key] not in existing]
        if updates:
            cols = {c: bindparam(c) for c in updates[0] if c not in ("_key", key)}
            conn.execute(table.update().where(table.c[key] == bindparam("_key")).values(cols), updates)
    if rows:
        conn.execute(table.insert(), rows)
    return sorted(r["_key"] for r in updates)


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
    encoding: str | None = None,
    sheet: str | None = None,
) -> ImportResult:
    """Validate and import files into ``store`` in one transaction.

    Parameters
    ----------
    store : Store
        A migrated store.
    paths : iterable of paths
        The files; all of them form one batch (one validation, one transaction). Tables
        may be CSV (UTF-8 or GB18030/GBK, or ``encoding``), ``.xlsx`` (the first sheet, or
        ``sheet``) or plain Parquet (:func:`gridgeo.io.reading.read_table`).
    layer : str, optional
        The layer the files hold, when their names do not say it.
    crs : str, optional
        The coordinate system of the input, for files that declare none (CSV) or
        declare a wrong one; ``gcj02`` and ``bd09`` are converted to WGS84.
    repair : bool
        Repair invalid polygons instead of refusing them.
    replace : bool
        Update rows whose code is already in the store instead of refusing them; for
        staff, make the file the roster of every grid it names (the people it does not
        list leave those grids). What is replaced or removed is said in the report
        (before anything is written), in the result, and in the audit log. Without it an
        import only adds: a row already in the store is an error.
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
    sources, report = read_sources(paths, layer=layer, crs=crs, encoding=encoding, sheet=sheet)
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
                    plan_id, version, start = _new_plan(conn, plan_version, plan_name, effective_from, files)
                    frame = frame.assign(plan_id=plan_id, kind=frame["kind"].fillna("basic"))
                    _write_rows(conn, table, _records(frame, table), None, False)
                    ended = _publish(conn, store, plan_id, version, start, files)
                    result.plan_version = version
                    result.ended_plan = ended["version"] if ended else None
                    detail.update(plan=version, ended=result.ended_plan)
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
                    if name == "staff" and replace:
                        # The file becomes the roster of the grids it names; who leaves
                        # them is said in the result and recorded in the audit line.
                        removed = staff_removed(store.read("staff", conn=conn), frame)
                        conn.execute(table.delete().where(table.c.grid_code.in_(sorted(set(frame["grid_code"])))))
                        gone = removed[["code", "name", "role", "grid_code"]].to_dict("records")
                        if gone:
                            result.removed[name] = detail["removed"] = gone
                    key = get_layer(name).key if name != "staff" else None
                    updated = _write_rows(conn, table, _records(frame, table), key, replace)
                    if updated:
                        result.replaced[name] = detail["replaced"] = updated
                Store.audit(conn, actor=actor, action="import", entity=name, detail=detail)
                result.counts[name] = int(len(frame))
    except GridgeoError:
        raise
    except Exception as exc:
        raise StoreError(f"the database refused the import, nothing was written: {exc}") from exc
    return result


def _new_plan(conn, version, name, effective_from, files) -> tuple[int, str, dt.date]:
    """Insert the imported plan as a draft; :func:`_publish` puts it in force once its grids
    are written. Returns its id, its version label and its effective date."""
    from gridgeo.plan.lifecycle import _new_version

    start = effective_from or today()
    version = version or start.isoformat()
    res = conn.execute(schema.plans.insert().values(
        version=_new_version(conn, today()), name=name or f"网格划分 {version}", status="draft",
        created_at=dt.datetime.now(dt.timezone.utc), note=f"imported from {', '.join(files)}",
    ))
    return res.inserted_primary_key[0], version, start


def _publish(conn, store: Store, plan_id: int, version: str, start: dt.date, files) -> dict | None:
    """Publish the imported plan by the plan life cycle's one rule; its refusals become
    import errors (nothing is written)."""
    from gridgeo.plan.lifecycle import put_in_force

    try:
        return put_in_force(conn, store, plan_id, start, version=version)
    except IllegalTransition as exc:
        fld = "plan" if "exists already" in str(exc) else "effective_from"
        raise ImportFailed(_single_error(files, "grids", fld, str(exc))) from None
    except InvalidPlan as exc:
        raise ImportFailed(_single_error(files, "grids", None, str(exc))) from None


def _single_error(files, layer, fld, message) -> Report:
    r = Report()
    r.error(files[0] if files else "", layer, None, fld, message)
    return r
