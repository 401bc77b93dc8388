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
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from gridgeo.config import get_settings
from gridgeo.errors import GridgeoError, OutsideJurisdiction
from gridgeo.locate import Locator
from gridgeo.store import Store, schema, today

__all__ = ["Lookup", "MAX_BATCH"]

#: The most points one batch lookup takes (the API refuses more).
MAX_BATCH = 100_000

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

    def __init__(self, store: Store, *, cache_dir: str | Path | None = "default",
                 tolerance: float | None = None, directory_ttl: float = 10.0):
        settings = get_settings()
        self.store = store
        self.tolerance = settings.snap_tolerance_m if tolerance is None else float(tolerance)
        self.cache_dir = Path(settings.cache_dir) if cache_dir == "default" else (
            Path(cache_dir) if cache_dir else None)
        self.directory_ttl = directory_ttl
        self._locators: dict[tuple, Locator] = {}
        self._directories: dict[int, tuple[float, pd.DataFrame]] = {}
        self._plans: dict[dt.date, tuple[float, dict]] = {}
        self._checked: dict[int, tuple[float, Locator]] = {}
        self._answers: dict[int, tuple[float, dict[str, dict]]] = {}
        self._lock = threading.Lock()

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

    def directory(self, plan: dict[str, Any]) -> pd.DataFrame:
        """What a lookup says about each grid of ``plan``, indexed by grid code."""
        now = time.monotonic()
        hit = self._directories.get(plan["id"])
        if hit is not None and now - hit[0] < self.directory_ttl:
            return hit[1]
        grids = pd.DataFrame(self.store.read("grids", plan=plan["id"]).drop(columns="geometry"))
        div = pd.DataFrame(self.store.read("divisions").drop(columns="geometry"))
        names = div.set_index("code")["name"]
        parents = div.set_index("code")["parent_code"]
        d = grids[["code", "name", "village_code", "kind", "households", "population"]].copy()
        d["village_name"] = d["village_code"].map(names)
        d["township_code"] = d["village_code"].map(parents)
        d["township_name"] = d["township_code"].map(names)
        staff = self.store.read("staff", where=schema.staff.c.grid_code.in_(list(d["code"])))
        people = staff.assign(person=[{"code": c, "name": n, "phone": p, "role": r}
                                      for c, n, p, r in zip(staff["code"], staff["name"],
                                                            staff["phone"], staff["role"])])
        for column in ("grid_head", "workers", "instructor"):
            roles = [r for r, c in _ROLE_COLUMNS.items() if c == column]
            sel = people[people["role"].isin(roles)].groupby("grid_code")["person"].agg(list)
            d[column] = d["code"].map(sel)
            d[column] = [v if isinstance(v, list) else [] for v in d[column]]
        d["grid_head"] = [v[0] if v else None for v in d["grid_head"]]
        d["instructor"] = [v[0] if v else None for v in d["instructor"]]
        d = d.set_index("code", drop=False)
        self._directories[plan["id"]] = (now, d)
        return d

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
        answer = dict(self._answers_for(plan)[res.code][0])
        answer["snapped"] = bool(res.snapped)
        answer["distance_m"] = round(float(res.distance_m), 2)
        return answer

    def one_json(self, lon: float, lat: float, *, crs: str = "wgs84", at: dt.date | None = None) -> str:
        """:meth:`one` as JSON text, from answers serialised once per grid (the HTTP path)."""
        plan = self.plan_at(at)
        res = self.locator(plan).locate_one(lon, lat, crs=crs)
        head = self._answers_for(plan)[res.code][1]
        snapped = "true" if res.snapped else "false"
        return f'{head}, "snapped": {snapped}, "distance_m": {round(float(res.distance_m), 2)!r}}}'

    def _answers_for(self, plan: dict[str, Any]) -> dict[str, tuple[dict, str]]:
        """The answer about each grid of ``plan`` but for snapping, by code (TTL-cached):
        the dict, and its JSON text without the closing brace."""
        now = time.monotonic()
        hit = self._answers.get(plan["id"])
        if hit is not None and now - hit[0] < self.directory_ttl:
            return hit[1]
        d = self.directory(plan)
        answers = {}
        for code, row in d.iterrows():
            answer = _answer(row, plan["version"], False, 0.0)
            del answer["snapped"], answer["distance_m"]
            answers[code] = (answer, json.dumps(answer, ensure_ascii=False)[:-1])
        self._answers[plan["id"]] = (now, answers)
        return answers

    def many(self, lon, lat, *, crs: str = "wgs84", at: dt.date | None = None) -> pd.DataFrame:
        """Look up many points (vectorised); one row per point.

        Columns: grid_code, grid_name, village_code, village_name, township_code,
        township_name, snapped, distance_m, outside, invalid, swapped; ``attrs`` holds
        ``plan_version``.
        """
        plan = self.plan_at(at)
        detail = self.locator(plan).locate_detail(np.asarray(lon, float), np.asarray(lat, float), crs=crs)
        d = self.directory(plan)[["name", "village_code", "village_name", "township_code", "township_name"]]
        joined = d.reindex(detail["code"].to_numpy())
        out = pd.DataFrame({
            "grid_code": detail["code"].to_numpy(),
            "grid_name": joined["name"].to_numpy(),
            "village_code": joined["village_code"].to_numpy(),
            "village_name": joined["village_name"].to_numpy(),
            "township_code": joined["township_code"].to_numpy(),
            "township_name": joined["township_name"].to_numpy(),
            "snapped": detail["snapped"].to_numpy(),
            "distance_m": detail["distance_m"].to_numpy(),
            "outside": detail["outside"].to_numpy(),
            "invalid": detail["invalid"].to_numpy(),
            "swapped": detail["swapped"].to_numpy(),
        })
        # object dtype keeps None as None where pandas would infer str and make it NaN
        for col in ("grid_code", "grid_name", "village_code", "village_name", "township_code", "township_name"):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
        out.attrs["plan_version"] = plan["version"]
        return out


def _answer(row: pd.Series, version: str, snapped: bool, distance: float) -> dict[str, Any]:
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
