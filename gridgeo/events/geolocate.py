"""Where an event is: its grid, and how that was found.

Every event keeps ``located_by``:

``coordinates``
    The reported position (any supported CRS) lies in a grid of the plan in force on
    the day it was reported.
``snapped``
    Just outside every grid (GPS drift), within the locator's tolerance of one:
    snapped to the nearest, with the distance kept in ``locate_distance_m``.
``address``
    No usable position: the address matched the standard address register
    (households) with ``address_confidence`` of at least :data:`MIN_CONFIDENCE`.
``reporter_grid``
    A patrol event with neither: the grid of the grid worker who reported it.
``outside``
    A valid position farther than the tolerance from every grid: another
    jurisdiction (routing escalates it).
``unlocated``
    Nothing to go on: the command room's "unlocated" queue.
``manual``
    Placed by hand afterwards (the ``locate`` action with a grid code).

The locator is built once per plan version (from ``store.read("grids", plan=...)``)
and the address register once per state of the households layer; both are cached on
the :class:`Geolocator`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, func, or_, select

from gridgeo import crs as _crs
from gridgeo.config import get_settings
from gridgeo.errors import InvalidCoordinates, OutsideJurisdiction
from gridgeo.events.address import AddressRegister
from gridgeo.locate import Locator
from gridgeo.store import Store, schema
from gridgeo.timezone import CHINA as CST, china_date

__all__ = ["CST", "MIN_CONFIDENCE", "Geolocator", "Location", "get_geolocator"]

#: Lowest address-match confidence that places an event; below it the event is unlocated
#: (the best candidate is still recorded in ``address_match``).
MIN_CONFIDENCE = 0.6
#: How long small lookups are cached (see Geolocator._cached).
CACHE_SECONDS = 2.0


@dataclass
class Location:
    """How one event was located."""

    located_by: str
    grid_code: str | None = None
    plan_version: str | None = None
    lon: float | None = None  # WGS84
    lat: float | None = None
    distance_m: float | None = None
    address_confidence: float | None = None
    address_match: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def outside(self) -> bool:
        return self.located_by == "outside"


_P = schema.plans
# Store.plan_in_force's query, built once: it runs on every intake.
_PLAN_IN_FORCE = (
    select(_P.c.id, _P.c.version)
    .where(_P.c.status != "draft", _P.c.effective_from <= bindparam("at"),
           or_(_P.c.effective_to.is_(None), _P.c.effective_to > bindparam("at")))
    .order_by(_P.c.effective_from.desc(), _P.c.id.desc())
    .limit(1)
)


class Geolocator:
    """Locates events against one store, caching locators and the address register."""

    def __init__(self, store: Store, *, tolerance_m: float | None = None,
                 min_confidence: float = MIN_CONFIDENCE):
        self.store = store
        self.tolerance_m = get_settings().snap_tolerance_m if tolerance_m is None else tolerance_m
        self.min_confidence = min_confidence
        self._lock = threading.Lock()
        self._locators: dict[int, Locator] = {}
        self._villages: dict[int, dict[str, list[str]]] = {}
        self._register: tuple[tuple, AddressRegister] | None = None
        self._staff: tuple[tuple, dict[str, list[str]]] | None = None
        self._cache: dict = {}

    # Small lookups (plan of a day, catalogue, staff, "did the households change") are
    # kept CACHE_SECONDS: they run on every intake and change rarely. Writes through
    # gridgeo.events call invalidate(); other writers are seen within CACHE_SECONDS.

    def _cached(self, key, fn):
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = fn()
        self._cache[key] = (now, value)
        return value

    def invalidate(self) -> None:
        """Forget the cached lookups (after an edit of the catalogue, plans, staff ...)."""
        self._cache.clear()

    def categories(self, codes=None) -> dict[str, dict]:
        """Category rows by code (all, or those of ``codes`` that exist)."""
        def load():
            with self.store.engine.connect() as c:
                return {r["code"]: dict(r) for r in c.execute(select(schema.categories)).mappings()}

        cats = self._cached("categories", load)
        return cats if codes is None else {k: cats[k] for k in codes if k in cats}

    # -- caches ------------------------------------------------------------------------

    def locator(self, plan: dict, conn=None) -> Locator:
        """The locator of ``plan`` (a row of ``plans``), built on first use."""
        loc = self._locators.get(plan["id"])
        if loc is None:
            with self._lock:
                loc = self._locators.get(plan["id"])
                if loc is None:
                    # On the caller's connection: a second one could wait for a pool that
                    # the requests queued on this lock hold.
                    grids = self.store.read("grids", plan=plan["id"], conn=conn)
                    loc = Locator.from_frame(grids, "code", plan=plan["version"], tolerance=self.tolerance_m)
                    self._villages[plan["id"]] = (
                        grids.groupby("village_code")["code"].apply(list).to_dict() if len(grids) else {}
                    )
                    self._locators[plan["id"]] = loc
        return loc

    def village_grids(self, plan: dict, conn=None) -> dict[str, list[str]]:
        """Village code -> grid codes, in ``plan``."""
        self.locator(plan, conn)
        return self._villages[plan["id"]]

    def _fingerprint(self, conn, table) -> tuple:
        return tuple(conn.execute(select(func.count(), func.max(table.c.id))).one())

    def register(self, conn=None) -> AddressRegister:
        """The address register, rebuilt when the households layer changed."""
        if self._register is not None and self._cached("register-checked", lambda: True):
            return self._register[1]
        with self.store.engine.connect() if conn is None else _nullctx(conn) as c:
            fp = self._fingerprint(c, schema.households) + tuple(
                c.execute(select(func.count()).select_from(schema.divisions)).one())
            self._cache["register-checked"] = (time.monotonic(), True)
            if self._register is None or self._register[0] != fp:
                with self._lock:
                    if self._register is None or self._register[0] != fp:
                        households = self.store.read("households", conn=c)
                        divisions = self.store.read("divisions", conn=c)
                        self._register = (fp, AddressRegister(households, divisions))
        return self._register[1]

    def staff_grids(self, conn=None) -> dict[str, list[str]]:
        """Staff code -> the grids they work in (instructors, who serve several, excluded)."""
        if self._staff is not None and self._cached("staff-checked", lambda: True):
            return self._staff[1]
        with self.store.engine.connect() if conn is None else _nullctx(conn) as c:
            fp = self._fingerprint(c, schema.staff)
            self._cache["staff-checked"] = (time.monotonic(), True)
            if self._staff is None or self._staff[0] != fp:
                st = schema.staff
                rows = c.execute(select(st.c.code, st.c.grid_code).where(st.c.role != "instructor")).all()
                grids: dict[str, list[str]] = {}
                for code, grid in rows:
                    grids.setdefault(code, []).append(grid)
                self._staff = (fp, grids)
        return self._staff[1]

    def plan_for(self, when: dt.datetime, conn=None) -> dict | None:
        """The plan in force on the (CST) day of ``when`` (as Store.plan_in_force)."""
        day = china_date(when)

        def load():
            with self.store.engine.connect() if conn is None else _nullctx(conn) as c:
                row = c.execute(_PLAN_IN_FORCE, {"at": day}).mappings().first()
            return dict(row) if row is not None else None

        return self._cached(("plan", day), load)

    # -- one event ---------------------------------------------------------------------

    def locate(self, *, reported_at: dt.datetime, lon: float | None = None, lat: float | None = None,
               crs: str | None = None, address: str | None = None, source: str | None = None,
               reporter_staff_code: str | None = None, grid_code: str | None = None,
               conn=None) -> Location:
        """Locate one event (the rules of the module doc; :meth:`locate_frame` for one row).

        ``grid_code`` places it by hand (``manual``), if the grid is in the plan.

        Raises
        ------
        InvalidCoordinates
            Coordinates that are not numbers, out of range or look swapped.
        UnknownCRS
            An unknown ``crs`` name.
        """
        if grid_code:
            plan = self.plan_for(reported_at, conn)
            version = plan["version"] if plan else None
            if plan is None or not any(grid_code in v for v in self.village_grids(plan, conn).values()):
                raise InvalidCoordinates(f"grid {grid_code!r} is not in plan {version!r}")
            return Location("manual", grid_code, version)
        x, y = to_wgs84_checked(lon, lat, crs)
        out = self.locate_arrays({
            "reported_at": [reported_at], "x": [x], "y": [y], "address": [address],
            "source": [source], "reporter_staff_code": [reporter_staff_code]})
        return location_from_row({k: v[0] for k, v in out.items()}, (x, y))

    # -- many events -------------------------------------------------------------------

    def locate_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Locate many events at once (the same rules as :meth:`locate`).

        Parameters
        ----------
        frame : DataFrame (or a dict of equal-length lists)
            ``reported_at`` (aware), ``x``, ``y`` (WGS84, NaN where none), ``address``,
            ``source``, ``reporter_staff_code``.

        Returns
        -------
        DataFrame
            Indexed like ``frame`` (a RangeIndex for a dict): ``located_by``, ``grid_code``, ``plan_version``,
            ``x``, ``y`` (WGS84 of the position used, NaN where none),
            ``locate_distance_m``, ``address_confidence``, ``address_match``, and
            ``swapped`` (coordinates in no grid that look like lat/lon swapped).
        """
        out = self.locate_arrays(frame)
        index = frame.index if isinstance(frame, pd.DataFrame) else pd.RangeIndex(len(out["x"]))
        return pd.DataFrame({k: pd.Series(v, index=index, dtype=object if v.dtype == object else v.dtype)
                             for k, v in out.items()}, index=index)

    #: Up to this many points, Locator.locate_one (microseconds each) beats the vectorised
    #: locate_detail (a DataFrame per call); past it, the vectorised path wins.
    ONE_BY_ONE = 64

    def _detail(self, loc: Locator, x: np.ndarray, y: np.ndarray):
        """(code, snapped, distance_m, swapped) arrays for points (NaN = no point)."""
        n = len(x)
        if n > self.ONE_BY_ONE:
            det = loc.locate_detail(x, y)
            return (det["code"].to_numpy(dtype=object), det["snapped"].to_numpy(dtype=bool),
                    det["distance_m"].to_numpy(dtype=float), det["swapped"].to_numpy(dtype=bool))
        code = np.full(n, None, dtype=object)
        snapped = np.zeros(n, dtype=bool)
        dist = np.full(n, np.nan)
        swapped = np.zeros(n, dtype=bool)
        for i in range(n):
            if not (np.isfinite(x[i]) and np.isfinite(y[i])):
                continue
            try:
                hit = loc.locate_one(float(x[i]), float(y[i]))
            except OutsideJurisdiction:
                continue
            except InvalidCoordinates:
                swapped[i] = bool(_crs.looks_swapped(x[i], y[i]))
                continue
            code[i], snapped[i], dist[i] = hit.code, hit.snapped, hit.distance_m
        return code, snapped, dist, swapped

    def locate_arrays(self, frame) -> dict[str, np.ndarray]:
        """:meth:`locate_frame` as a dict of numpy arrays (no pandas on the hot path)."""
        n = len(frame["x"])
        located_by = np.full(n, "unlocated", dtype=object)
        grid_code = np.full(n, None, dtype=object)
        plan_version = np.full(n, None, dtype=object)
        xs = np.asarray(frame["x"], dtype=float).copy()
        ys = np.asarray(frame["y"], dtype=float).copy()
        dist = np.full(n, np.nan)
        conf = np.full(n, np.nan)
        match = np.full(n, None, dtype=object)
        swapped = np.zeros(n, dtype=bool)
        if n:
            reported = frame["reported_at"]
            if n == 1 or not isinstance(reported, pd.Series):
                days = np.array([china_date(t if isinstance(t, dt.datetime) else pd.Timestamp(t).to_pydatetime())
                                 for t in reported], dtype=object)
            else:
                days = pd.to_datetime(reported, utc=True).dt.tz_convert(CST).dt.date.to_numpy()
            plan_ids = np.full(n, -1)
            plans: dict[int, dict] = {}
            for day in set(days):
                plan = self.plan_for(dt.datetime.combine(day, dt.time(12), CST))
                if plan is not None:
                    plans[plan["id"]] = plan
                    plan_ids[days == day] = plan["id"]
            addr_all = np.asarray(frame["address"], dtype=object)
            src_all = np.asarray(frame["source"], dtype=object)
            staff_all = np.asarray(frame["reporter_staff_code"], dtype=object)
            for pid, plan in plans.items():
                idx = np.flatnonzero(plan_ids == pid)
                loc = self.locator(plan)
                vg = self.village_grids(plan)
                plan_version[idx] = plan["version"]
                x, y = xs[idx], ys[idx]
                has = np.isfinite(x) & np.isfinite(y)
                code, snap, dst, swp = self._detail(loc, x, y)
                found = has & np.array([c is not None for c in code], dtype=bool)
                by = np.where(snap, "snapped", "coordinates")
                located_by[idx[found]] = by[found]
                grid_code[idx[found]] = code[found]
                dist[idx[found]] = dst[found]
                located_by[idx[has & ~found]] = "outside"
                swapped[idx] = swp & has
                # Addresses, for events without a usable position (or outside every grid).
                addr = addr_all[idx]
                want = ~found & np.array([isinstance(a, str) and a.strip() != "" for a in addr], dtype=bool)
                if want.any():
                    register = self.register()
                    ms = [register.match(a) for a in addr[want]]
                    rows = idx[want]
                    pts = [k for k, m in enumerate(ms) if m.lon is not None]
                    g = np.full(len(ms), None, dtype=object)
                    if pts:
                        g[pts] = loc.locate(np.array([ms[k].lon for k in pts]), np.array([ms[k].lat for k in pts]))
                    for k, m in enumerate(ms):
                        if m.lon is None and m.village_code is not None:
                            grids = vg.get(m.village_code, [])
                            g[k] = grids[0] if len(grids) == 1 else None
                            label = f"village {m.village_code}"
                        else:
                            label = m.address
                        if label is not None:
                            conf[rows[k]] = m.confidence
                            match[rows[k]] = label
                        if m.confidence >= self.min_confidence and g[k] is not None:
                            located_by[rows[k]] = "address"
                            grid_code[rows[k]] = g[k]
                            xs[rows[k]] = np.nan if m.lon is None else m.lon
                            ys[rows[k]] = np.nan if m.lat is None else m.lat
                            dist[rows[k]] = np.nan
                # Patrols with neither: the reporter's grid.
                patrol = np.flatnonzero((located_by[idx] == "unlocated") & (src_all[idx] == "patrol"))
                if patrol.size:
                    staff = self.staff_grids()
                    known = {c for v in vg.values() for c in v}
                    for k in patrol:
                        st = staff_all[idx[k]]
                        mine = sorted(set(staff.get(st, [])) & known) if isinstance(st, str) else []
                        if len(mine) == 1:
                            located_by[idx[k]] = "reporter_grid"
                            grid_code[idx[k]] = mine[0]
            # Positions are kept for events placed by coordinates or address, and outside
            # ones; the reported position of an event left unlocated places nothing.
            placed = np.isin(located_by, ["coordinates", "snapped", "address", "outside"])
            xs[~placed] = np.nan
            ys[~placed] = np.nan
        return {
            "located_by": located_by, "grid_code": grid_code, "plan_version": plan_version,
            "x": xs, "y": ys, "locate_distance_m": dist, "address_confidence": conf,
            "address_match": match, "swapped": swapped,
        }


def to_wgs84_checked(lon, lat, crs: str | None) -> tuple[float, float]:
    """One reported position in WGS84 (NaN, NaN when none).

    Raises
    ------
    InvalidCoordinates
        Only one of lon / lat, non-numbers, non-finite or out-of-range values.
    UnknownCRS
    """
    if lon is None and lat is None:
        return float("nan"), float("nan")
    if lon is None or lat is None:
        raise InvalidCoordinates("give both lon and lat, or neither")
    x, y = _crs.check_lonlat(lon, lat)
    name = _crs.normalize_name(crs or "wgs84")
    if name in ("gcj02", "bd09"):
        cx, cy = _crs.to_wgs84(x, y, name)
        x, y = float(cx), float(cy)
    return x, y


def swapped_error(x: float, y: float) -> InvalidCoordinates:
    return InvalidCoordinates(
        f"lon={x!r}, lat={y!r} is outside China but would be inside with lon and lat swapped: "
        "the coordinates look swapped (give lon first)")


def location_from_row(row, reported_xy=None) -> Location:
    """A :class:`Location` from one row of :meth:`Geolocator.locate_frame`.

    Raises InvalidCoordinates when the row's coordinates look swapped.
    """
    if row["swapped"]:
        raise swapped_error(*(reported_xy or (row["x"], row["y"])))

    def num(v):
        return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)

    notes = []
    if row["plan_version"] is None:
        notes.append("no grid plan in force on the day reported")
    return Location(row["located_by"], row["grid_code"], row["plan_version"], num(row["x"]), num(row["y"]),
                    num(row["locate_distance_m"]), num(row["address_confidence"]), row["address_match"],
                    notes)


class _nullctx:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        return False


_GEOLOCATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GLOCK = threading.Lock()


def get_geolocator(store: Store) -> Geolocator:
    """The geolocator of ``store``, one per Store object (its caches live as long)."""
    g = _GEOLOCATORS.get(store)
    if g is None:
        with _GLOCK:
            g = _GEOLOCATORS.get(store)
            if g is None:
                g = Geolocator(store)
                _GEOLOCATORS[store] = g
    return g
