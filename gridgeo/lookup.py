"""Point-in-grid lookups against the store: which grid, village, township and staff.

:class:`Lookup` keeps one :class:`~gridgeo.locate.Locator` per plan version (built once,
saved to the cache folder so that a new worker loads it instead of building it) and a
directory of what a lookup returns about each grid (names, village, township, staff).
Every answer says which plan version answered, as MapIt does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select

from gridgeo.config import get_settings
from gridgeo.errors import GridgeoError, OutsideJurisdiction
from gridgeo.io.arrays import EMPTY, NULL_INT32, from_numpy, strings
from gridgeo.locate import Locator
from gridgeo.store import Store, schema, today

if TYPE_CHECKING:  # the batch path (Lookup.batch, Batch.table) is Arrow and numpy only: pandas
    # is imported where a frame is asked for, so `gridgeo locate` of a CSV starts without it
    import pandas as pd

__all__ = ["BATCH_COLUMNS", "Batch", "DIRECTORY_COLUMNS", "Lookup", "MANY_COLUMNS", "MAX_BATCH"]

#: The most points one batch lookup takes (the API refuses more).
MAX_BATCH = 100_000

log = logging.getLogger(__name__)

_ROLE_COLUMNS = {
    "grid_head": "grid_head",
    "full_time_worker": "workers",
    "part_time_worker": "workers",
    "instructor": "instructor",
}


class Lookup:
    """Lookups against a store, one locator per plan version.

    Parameters
    ----------
    store : Store
    cache_dir : path, optional
        Where built locators are saved (default ``GRIDGEO_CACHE_DIR``); None keeps them
        in memory only.
    tolerance : float, optional
        Snapping distance in metres (default ``GRIDGEO_SNAP_TOLERANCE_M``).
    directory_ttl : float
        Seconds a grid directory (names, staff) is reused before it is read again.
    """

    #: A directory whose last read took longer than this (a province's: 3-4 s) is read
    #: again in a background thread when it expires, and lookups answer from the rows they
    #: have meanwhile (at most ``directory_ttl`` plus one read old), instead of the request
    #: that finds it expired waiting for the read. Quicker reads are made in the request.
    background_after_s: float = 1.0

    def __init__(self, store: Store, *, cache_dir: str | Path | None = "default",
                 tolerance: float | None = None, directory_ttl: float = 10.0):
        settings = get_settings()
        self.store = store
        self.tolerance = settings.snap_tolerance_m if tolerance is None else float(tolerance)
        self.cache_dir = Path(settings.cache_dir) if cache_dir == "default" else (
            Path(cache_dir) if cache_dir else None)
        self.directory_ttl = directory_ttl
        self._locators: dict[tuple, Locator] = {}
        self._directories: dict[int, tuple[float, tuple[pa.Table, pa.Table]]] = {}
        self._plans: dict[dt.date, tuple[float, dict]] = {}
        self._checked: dict[int, tuple[float, Locator]] = {}
        self._answers: dict[int, tuple] = {}
        self._tables: dict[int, tuple[tuple, Locator, pa.Table]] = {}
        self._lock = threading.Lock()
        self._refreshing: dict[int, threading.Thread] = {}
        self._refresh_lock = threading.Lock()

    # -- plans and indexes ---------------------------------------------------------

    def plan_at(self, at: dt.date | None = None) -> dict[str, Any]:
        """The plan in force on ``at`` (default today); OutsideJurisdiction if none."""
        at = at or today()
        hit = self._plans.get(at)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.directory_ttl:
            return hit[1]
        plan = self.store.plan_in_force(at)
        if plan is None:
            raise OutsideJurisdiction(f"no grid plan is in force on {at.isoformat()}")
        self._plans[at] = (now, plan)
        return plan

    def _fingerprint(self, plan_id: int) -> tuple:
        g = schema.grids
        with self.store.engine.connect() as conn:
            n, top = conn.execute(
                select(func.count(g.c.id), func.max(g.c.id)).where(g.c.plan_id == plan_id)
            ).one()
        return (plan_id, int(n), int(top or 0))

    def locator(self, plan: dict[str, Any]) -> Locator:
        """The locator of ``plan``: from memory, else the cache folder, else built.

        Whether the plan's grids changed (a draft being edited) is checked at most once
        per ``directory_ttl`` seconds.
        """
        now = time.monotonic()
        seen = self._checked.get(plan["id"])
        if seen is not None and now - seen[0] < self.directory_ttl:
            return seen[1]
        key = self._fingerprint(plan["id"])
        loc = self._locators.get(key)
        if loc is not None:
            self._checked[plan["id"]] = (now, loc)
            return loc
        with self._lock:
            loc = self._locators.get(key)
            if loc is not None:
                return loc
            path = None
            if self.cache_dir is not None:
                digest = hashlib.sha1(f"{self.store.url}|{key}|{self.tolerance}".encode()).hexdigest()[:16]
                path = self.cache_dir / f"locator-{plan['version']}-{digest}.npz"
            if path is not None and path.exists():
                try:
                    loc = Locator.load(path)
                except (GridgeoError, OSError, ValueError, KeyError):
                    loc = None  # a stale or partial file: rebuild it below
            if loc is None:
                grids = self.store.read("grids", plan=plan["id"])
                loc = Locator.from_frame(grids, "code", plan=plan["version"], tolerance=self.tolerance)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{threading.get_ident()}.tmp.npz")
                    loc.save(tmp)
                    tmp.replace(path)  # atomic: a concurrent worker never reads half a file
            self._locators = {k: v for k, v in self._locators.items() if k[0] != key[0]}
            self._locators[key] = loc
            self._checked[plan["id"]] = (now, loc)
            return loc

    def prepare(self, at: dt.date | None = None) -> None:
        """Build what the first lookup of the plan in force on ``at`` would: its locator
        (from the cache folder, else built) and its directory (a province's: some 10 s), so
        that no request waits for them (``gridgeo serve`` runs it at start, in the thread
        that warms the tiles)."""
        plan = self.plan_at(at)
        self.locator(plan)
        self._rows(plan)

    def _rows(self, plan: dict[str, Any]) -> tuple[pa.Table, pa.Table]:
        """What the directory is made of, read once per refresh (TTL-cached): a row per grid
        of ``plan`` in code order (code, name, village_code, kind, households, population,
        and village_name, township_code, township_name from the divisions), and the staff of
        those grids in staff-code order (code, name, phone, role, grid_code).

        Reused for ``directory_ttl``, or ten times what reading it took, whichever is longer
        (a province's, 100,000 grids and 450,000 staff, is not read every 10 s); then read
        again, in the background if the read is slow (:attr:`background_after_s`)."""
        hit = self._directories.get(plan["id"])
        if hit is not None:
            if time.monotonic() - hit[0] < max(self.directory_ttl, 10 * hit[2]):
                return hit[1]
            if hit[2] >= self.background_after_s:
                self._refresh_later(plan)
                return hit[1]
        return self._read_rows(plan)

    def _refresh_later(self, plan: dict[str, Any]) -> None:
        """Read ``plan``'s directory again in a thread of its own (one at a time per plan),
        and make its answer index, so that the requests that follow find both ready."""
        with self._refresh_lock:
            running = self._refreshing.get(plan["id"])
            if running is not None and running.is_alive():
                return

            def refresh() -> None:
                try:
                    self._answer_index(plan, self._read_rows(plan))
                except Exception:  # the next expired lookup tries again; the old rows serve
                    log.exception("reading the lookup directory of plan %s failed", plan["version"])

            thread = threading.Thread(target=refresh, name=f"gridgeo-directory-{plan['id']}", daemon=True)
            self._refreshing[plan["id"]] = thread
            thread.start()

    def wait_refreshed(self, timeout: float | None = None) -> None:
        """Wait for the background directory reads under way (tests, and a clean stop)."""
        for thread in list(self._refreshing.values()):
            thread.join(timeout)

    def _read_rows(self, plan: dict[str, Any]) -> tuple[pa.Table, pa.Table]:
        """Read the directory's rows of ``plan`` (see :meth:`_rows`) and keep them."""
        now = time.monotonic()
        g, d, s = schema.grids, schema.divisions, schema.staff
        with self.store.engine.connect() as conn:
            grids = conn.execute(
                select(g.c.code, g.c.name, g.c.village_code, g.c.kind, g.c.households, g.c.population)
                .where(g.c.plan_id == plan["id"]).order_by(g.c.code)).all()
            divisions = conn.execute(select(d.c.code, d.c.name, d.c.parent_code)).all()
            staff = conn.execute(
                select(s.c.code, s.c.name, s.c.phone, s.c.role, s.c.grid_code)
                .where(s.c.grid_code.in_(select(g.c.code).where(g.c.plan_id == plan["id"])))
                .order_by(s.c.code)).all()
        grid_types = {"households": np.int64, "population": np.int64}
        table = _table(grids, ("code", "name", "village_code", "kind", "households", "population"), grid_types)
        div = _table(divisions, ("code", "name", "parent_code"))

        def division(codes: pa.Array, column: str) -> pa.Array:
            return div.column(column).take(pc.index_in(codes, value_set=div.column("code")))

        table = table.append_column("village_name", division(table.column("village_code"), "name"))
        table = table.append_column("township_code", division(table.column("village_code"), "parent_code"))
        table = table.append_column("township_name", division(table.column("township_code"), "name"))
        rows = (table, _table(staff, ("code", "name", "phone", "role", "grid_code")))
        self._directories[plan["id"]] = (now, rows, time.monotonic() - now)
        return rows

    def directory(self, plan: dict[str, Any]) -> pd.DataFrame:
        """The grids of ``plan`` as a lookup names them, indexed by grid code: the grid
        columns of :meth:`_rows` (a grid's staff are in its answer, :meth:`one`)."""
        return self._rows(plan)[0].to_pandas().set_index("code", drop=False)

    # -- lookups -------------------------------------------------------------------

    def one(self, lon: float, lat: float, *, crs: str = "wgs84", at: dt.date | None = None) -> dict[str, Any]:
        """Look up one point.

        Returns
        -------
        dict
            ``grid`` (code, name, kind, households, population), ``village``,
            ``township``, ``staff`` (grid_head, workers, instructor), ``plan_version``,
            ``snapped`` and ``distance_m``.

        Raises
        ------
        InvalidCoordinates
            NaN, infinite, out-of-range or swapped coordinates.
        OutsideJurisdiction
            No grid within the snapping tolerance, or no plan in force at ``at``.
        """
        plan = self.plan_at(at)
        res = self.locator(plan).locate_one(lon, lat, crs=crs)
        answer = dict(self._grid_answer(plan, res.code)[0])
        answer["snapped"] = bool(res.snapped)
        answer["distance_m"] = round(float(res.distance_m), 2)
        return answer

    def one_json(self, lon: float, lat: float, *, crs: str = "wgs84", at: dt.date | None = None) -> str:
        """:meth:`one` as JSON text, from answers serialised once per grid (the HTTP path)."""
        plan = self.plan_at(at)
        res = self.locator(plan).locate_one(lon, lat, crs=crs)
        head = self._grid_answer(plan, res.code)[1]
        snapped = "true" if res.snapped else "false"
        return f'{head}, "snapped": {snapped}, "distance_m": {round(float(res.distance_m), 2)!r}}}'

    def _grid_answer(self, plan: dict[str, Any], code: str) -> tuple[dict, str]:
        """The answer about grid ``code`` of ``plan`` but for snapping: the dict, and its
        JSON text without the closing brace. Made when a grid is first asked about, from
        the directory's rows (:meth:`_rows`, with its TTL), and kept until they are read
        again: the staff sorted by grid once (Arrow), a grid's found by binary search. (All
        grids' answers made at once took 30-45 s at 100,000 grids, longer than the TTL.)"""
        rows = self._rows(plan)
        _, made, codes, staff_grids, staff = self._answer_index(plan, rows)
        got = made.get(code)
        if got is None:
            i = int(np.searchsorted(codes, code))
            if i == len(codes) or codes[i] != code:
                raise KeyError(code)
            row = rows[0].slice(i, 1).to_pylist()[0]
            lo, hi = np.searchsorted(staff_grids, code, "left"), np.searchsorted(staff_grids, code, "right")
            people = {"grid_head": [], "workers": [], "instructor": []}
            for p in staff.slice(int(lo), int(hi - lo)).select(["code", "name", "phone", "role"]).to_pylist():
                people[_ROLE_COLUMNS[p["role"]]].append(p)
            row.update(grid_head=(people["grid_head"] or [None])[0], workers=people["workers"],
                       instructor=(people["instructor"] or [None])[0])
            answer = _answer(row, plan["version"], False, 0.0)
            del answer["snapped"], answer["distance_m"]
            got = made[code] = (answer, json.dumps(answer, ensure_ascii=False)[:-1])
        return got

    def _answer_index(self, plan: dict[str, Any], rows: tuple[pa.Table, pa.Table]) -> tuple:
        """The answers made so far from ``rows`` and what finds a grid's: (rows, answers by
        grid code, grid codes in order, the staff's grid codes in order, the staff sorted
        by grid then code). Made again when the rows are read again."""
        held = self._answers.get(plan["id"])
        if held is None or held[0] is not rows:
            grids, staff = rows
            staff = staff.take(pc.sort_indices(staff, [("grid_code", "ascending"), ("code", "ascending")]))
            held = (rows, {}, np.asarray(grids.column("code").to_pylist(), dtype=str),
                    np.asarray(staff.column("grid_code").to_pylist(), dtype=str), staff)
            self._answers[plan["id"]] = held
        return held

    def batch(self, lon, lat, *, crs: str = "wgs84", at: dt.date | None = None) -> Batch:
        """Look up many points as arrays: the grid of each point as a row of the plan's
        directory (:meth:`directory_table`), joined by array indexing, never per point.

        Returns
        -------
        Batch
        """
        plan = self.plan_at(at)
        loc = self.locator(plan)
        found = loc.locate_index(np.asarray(lon, float), np.asarray(lat, float), crs=crs)
        table = self.directory_table(plan, loc)
        index = found.pop("index")
        index[index < 0] = table.num_rows - 1  # the last row: no grid
        return Batch(plan_version=plan["version"], directory=table, index=index, **found)

    def directory_table(self, plan: dict[str, Any], locator: Locator) -> pa.Table:
        """What a batch answers about each grid of ``plan`` (:data:`DIRECTORY_COLUMNS`),
        one row per grid in the order of ``locator.codes``, and a last row of nulls for
        points in no grid. Built once per plan and directory refresh."""
        rows = self._rows(plan)
        hit = self._tables.get(plan["id"])
        if hit is not None and hit[0] is rows and hit[1] is locator:
            return hit[2]
        grids, staff = rows
        # the grid head of each grid: the first by staff code (staff come in code order, and
        # index_in gives a value's first place in the value set)
        heads = staff.filter(pc.is_in(staff.column("role"), value_set=strings(
            [r for r, c in _ROLE_COLUMNS.items() if c == "grid_head"])))
        codes = strings([str(c) for c in locator.codes])
        row = pc.index_in(codes, value_set=grids.column("code"))
        head = pc.index_in(codes, value_set=heads.column("grid_code"))
        columns = {
            "grid_code": codes,
            "grid_name": grids.column("name").take(row),
            "village_code": grids.column("village_code").take(row),
            "village_name": grids.column("village_name").take(row),
            "township_code": grids.column("township_code").take(row),
            "township_name": grids.column("township_name").take(row),
            "grid_head_name": heads.column("name").take(head),
            "grid_head_phone": heads.column("phone").take(head),
        }
        # a last row of nulls: points in no grid
        table = pa.table({k: pa.concat_arrays([_flat(v).cast(pa.string()), pa.nulls(1, pa.string())])
                          for k, v in columns.items()})
        self._tables[plan["id"]] = (rows, locator, table)
        return table

    def many(self, lon, lat, *, crs: str = "wgs84", at: dt.date | None = None) -> pd.DataFrame:
        """Look up many points (vectorised); one row per point.

        Columns: grid_code, grid_name, village_code, village_name, township_code,
        township_name, snapped, distance_m, outside, invalid, swapped; ``attrs`` holds
        ``plan_version``. :meth:`batch` gives the same as arrays, with the grid head.
        """
        return self.batch(lon, lat, crs=crs, at=at).frame(MANY_COLUMNS)


#: What a batch says about a point's grid, in this order (:meth:`Lookup.directory_table`).
DIRECTORY_COLUMNS = ("grid_code", "grid_name", "village_code", "village_name", "township_code",
                     "township_name", "grid_head_name", "grid_head_phone")
#: How each point was found.
FLAG_COLUMNS = ("snapped", "distance_m", "outside", "invalid", "swapped")
#: The columns of :meth:`Lookup.many` (and of the batch lookup's records), in order.
MANY_COLUMNS = (*DIRECTORY_COLUMNS[:6], *FLAG_COLUMNS)
#: Every column of a :class:`Batch`.
BATCH_COLUMNS = (*DIRECTORY_COLUMNS, *FLAG_COLUMNS)


@dataclass(frozen=True)
class Batch:
    """Many points looked up, as arrays in input order.

    Attributes
    ----------
    plan_version : str
        The plan that answered.
    directory : pyarrow.Table
        :meth:`Lookup.directory_table`: a row per grid, the last one all nulls.
    index : numpy.ndarray
        The row of ``directory`` of each point (the last row where no grid).
    snapped, distance_m, outside, invalid, swapped : numpy.ndarray
        As in :meth:`gridgeo.locate.Locator.locate_detail` (distance NaN where no grid).
    """

    plan_version: str
    directory: pa.Table
    index: np.ndarray
    snapped: np.ndarray
    distance_m: np.ndarray
    outside: np.ndarray
    invalid: np.ndarray
    swapped: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @property
    def located(self) -> int:
        """Points that found a grid."""
        return int(len(self.index) - np.count_nonzero(self.outside))

    def distance(self) -> np.ndarray:
        """Distances in metres rounded to centimetres, as every answer gives them."""
        return np.round(self.distance_m, 2)

    def table(self, columns: tuple[str, ...] = BATCH_COLUMNS) -> pa.Table:
        """The points as an Arrow table of ``columns``: directory columns dictionary-encoded
        over the directory (no copy per point), distance NaN as null."""
        grids = self.directory.num_rows - 1
        index = from_numpy(self.index.astype(np.int32))
        out = {}
        for name in columns:
            if name in DIRECTORY_COLUMNS:  # dictionary-encoded: the directory is the dictionary
                values = self.directory.column(name).combine_chunks()
                null = values.is_null().take(index)  # the last row's too
                out[name] = pa.DictionaryArray.from_arrays(  # no nulls in a dictionary (Parquet)
                    pc.if_else(null, NULL_INT32, index), values.slice(0, grids).fill_null(EMPTY))
            elif name == "distance_m":
                dist = self.distance()
                out[name] = from_numpy(dist, mask=np.isnan(dist))
            else:
                out[name] = from_numpy(getattr(self, name))
        return pa.table(out)

    def frame(self, columns: tuple[str, ...] = BATCH_COLUMNS) -> pd.DataFrame:
        """The points as a DataFrame (text as object columns with None where no grid);
        ``attrs["plan_version"]``. Distances as located (NaN where no grid)."""
        import pandas as pd

        out = {}
        for name in columns:
            if name in DIRECTORY_COLUMNS:
                values = self.directory.column(name).to_numpy(zero_copy_only=False)
                out[name] = pd.Series(np.asarray(values, dtype=object)[self.index], dtype=object)
            else:
                out[name] = getattr(self, name)
        frame = pd.DataFrame(out)
        frame.attrs["plan_version"] = self.plan_version
        return frame


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _table(rows, names: tuple[str, ...], types: dict[str, type] | None = None) -> pa.Table:
    """Result rows as an Arrow table of ``names`` (text unless ``types`` says otherwise)."""
    columns = list(zip(*rows)) if rows else [()] * len(names)
    types = types or {}
    return pa.table({n: from_numpy(np.array(c, dtype=types[n])) if n in types else strings(c)
                     for n, c in zip(names, columns)})


def _answer(row: dict, version: str, snapped: bool, distance: float) -> dict[str, Any]:
    return {
        "grid": {
            "code": row["code"],
            "name": row["name"],
            "kind": row["kind"],
            "households": int(row["households"]),
            "population": int(row["population"]),
        },
        "village": {"code": row["village_code"], "name": _none(row["village_name"])},
        "township": {"code": _none(row["township_code"]), "name": _none(row["township_name"])},
        "staff": {
            "grid_head": row["grid_head"],
            "workers": row["workers"],
            "instructor": row["instructor"],
        },
        "plan_version": version,
        "snapped": bool(snapped),
        "distance_m": round(float(distance), 2),
    }


def _none(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else v
