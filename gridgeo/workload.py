"""Workload: each grid's and each grid worker's households, people and events.

Everything comes from the events table as the events pipeline keeps it
(:func:`gridgeo.assess.read_facts`): an event's grid is its ``grid_code``, its platform
its ``platform``, its deadline its ``deadline_at`` (after extensions), its state its
``state``. Events the pipeline never saw (a plain layer import) are placed by the
locator of the plan in force on the day they were reported, and dated by their
category (:mod:`gridgeo.assess.facts`), so there is one rule for both.

An event's *status* at ``as_of`` (default now; :data:`STATUSES`) is ``rejected``,
``closed`` (resolved, verified or closed: handled), ``overdue`` (not yet resolved, not
suspended, past its deadline) or ``open`` (the rest, suspended included).

Periods are local (China Standard Time) calendar dates; see :func:`parse_period`.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import and_, select

from gridgeo.assess.facts import (CLOSED_STATES, STATUSES, _positions, as_utc, event_status, read_facts,
                                  self_reported)
from gridgeo.assess.periods import CST, InvalidPeriod, InvalidQuery, Period, default_period, parse_period
from gridgeo.config import get_settings
from gridgeo.coverage import WORKER_ROLES, staffing
from gridgeo.layers import PLATFORMS, STAFF_ROLES
from gridgeo.plan.bands import parse_band
from gridgeo.store import Store, frame_from_rows, schema

__all__ = [
    "CLOSED_STATES",
    "CST",
    "MEASURES",
    "STATUSES",
    "InvalidPeriod",
    "InvalidQuery",
    "LABELS",
    "Period",
    "band_of",
    "default_period",
    "parse_period",
    "per_grid",
    "per_worker",
    "read_events",
    "village_prefix",
    "workload",
]


def village_prefix(store: Store, village: str | None) -> str | None:
    """A division code prefix for ``village``: a code (or code prefix) as given, or the
    code of the division with this name (村, 社区, 乡镇 or 街道)."""
    if not village:
        return None
    village = village.strip()
    if village.isdigit():
        return village
    d = schema.divisions
    with store.engine.connect() as conn:
        codes = conn.execute(select(d.c.code).where(d.c.name == village).order_by(d.c.code)).scalars().all()
    if len(codes) != 1:
        why = "no division" if not codes else f"{len(codes)} divisions ({', '.join(codes)})"
        raise InvalidQuery(f"{why} called {village!r}: give the 12-digit code")
    return codes[0]


def _check_platform(platform: str | None) -> None:
    if platform is not None and platform not in PLATFORMS:
        raise InvalidQuery(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")


def _period(store: Store, period) -> Period:
    return parse_period(period) if period is not None else default_period(store)


def read_events(
    store: Store,
    period: Period | str | None = None,
    *,
    grids: gpd.GeoDataFrame | None = None,
    platform: str | None = None,
    village: str | None = None,
    now: dt.datetime | None = None,
) -> gpd.GeoDataFrame:
    """Events reported in ``period``, placed and classified (see the module notes).

    Parameters
    ----------
    store : Store
    period : Period or str, optional
        Default :func:`default_period`.
    grids : GeoDataFrame, optional
        Not used to place events any more (their grid is the pipeline's, or the plan of
        their day's); kept so that callers need not change.
    platform : str, optional
        Keep one platform (``stability``, ``market``, ``enforcement``, ``service``).
    village : str, optional
        Keep events in grids whose code starts with this.
    now : datetime, optional
        ``as_of`` for the status; default the present.

    Returns
    -------
    geopandas.GeoDataFrame
        ``code``, ``source``, ``category_code``, ``category``, ``platform``,
        ``reported_at`` (UTC), ``deadline``, ``state``, ``status``, ``grid_code``,
        ``department`` and a
        WGS84 point ``geometry`` (None where there is no position), ordered by
        ``reported_at``. ``attrs["period"]`` is the period.
    """
    period = _period(store, period)
    _check_platform(platform)
    as_of = as_utc(now)
    facts = read_facts(store, period, as_of=as_of)
    facts = facts[facts["received"].to_numpy()]
    start, end = period.bounds()
    t, cat = schema.events, schema.categories
    q = (select(t.c.id, t.c.code, t.c.source, cat.c.name.label("category"), t.c.reported_at, t.c.pos_lon,
                t.c.pos_lat, t.c.located_by, t.c.geometry, t.c.lon, t.c.lat, t.c.crs)
         .select_from(t.outerjoin(cat, cat.c.code == t.c.category_code))
         .where(and_(t.c.reported_at >= start, t.c.reported_at < end, t.c.reported_at <= as_of)))
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    shown = frame_from_rows(rows, [c.name for c in q.selected_columns], geometry=None).set_index("id")
    shown = shown.reindex(facts["id"].to_numpy())
    # Position: where the pipeline put it; else (never located by it) the reported one.
    lon = pd.to_numeric(shown["pos_lon"], errors="coerce").to_numpy(dtype=float, copy=True)
    lat = pd.to_numeric(shown["pos_lat"], errors="coerce").to_numpy(dtype=float, copy=True)
    raw = shown["located_by"].isna().to_numpy() & np.isnan(lon)
    if raw.any():
        lon[raw], lat[raw] = _positions(shown[raw])
    frame = pd.DataFrame({
        "code": shown["code"].to_numpy(dtype=object),
        "source": shown["source"].to_numpy(dtype=object),
        "category_code": facts["category_code"].to_numpy(dtype=object),
        "category": shown["category"].to_numpy(dtype=object),
        "platform": facts["platform"].to_numpy(dtype=object),
        "reported_at": pd.to_datetime(shown["reported_at"], utc=True).to_numpy(),
        "deadline": pd.to_datetime(facts["deadline"].to_numpy(), unit="s", utc=True),
        "state": facts["state"].astype(str).to_numpy(dtype=object),
        "status": event_status(facts["state"], facts["deadline"], as_of.timestamp()),
        "grid_code": facts["grid_code"].to_numpy(dtype=object),
        "department": facts["department"].to_numpy(dtype=object),
    })
    frame["reported_at"] = pd.to_datetime(frame["reported_at"], utc=True)
    keep = np.ones(len(frame), dtype=bool)
    if platform is not None:
        keep &= (frame["platform"] == platform).to_numpy()
    if village:
        keep &= frame["grid_code"].fillna("").str.startswith(village).to_numpy()
    geometry = shapely.points(lon, lat)
    geometry[~(np.isfinite(lon) & np.isfinite(lat))] = None
    out = gpd.GeoDataFrame(frame[keep].reset_index(drop=True),
                           geometry=gpd.GeoSeries(geometry[keep], crs=4326), crs=4326)
    out = out.sort_values(["reported_at", "code"], kind="stable", ignore_index=True)
    out.attrs["period"] = period
    return out


#: Workload measures, code -> (label, unit) as the maps show them.
MEASURES = {
    "per_worker": ("网格员人均事件数", "件/人"),
    "per_100_households": ("每百户事件数", "件/百户"),
    "open": ("未办结事件", "件"),
    "overdue": ("超期事件", "件"),
}

#: Workload columns -> Chinese labels.
LABELS = {
    "code": "编码", "name": "名称", "village_code": "村社编码", "village": "村社", "households": "户数",
    "population": "人口", "workers": "网格员（专兼职）", "events": "事件数", "open": "在办",
    "overdue": "超期", "closed": "已办结", "rejected": "不予受理", "per_worker": "网格员人均事件数",
    "per_100_households": "每百户事件数", "need_workers": "应配网格员", "missing": "缺配岗位",
    "shortfall": "配备缺口", "understaffed": "人员不足", "band": "户数区间", "above_band": "超出户数上限",
    "below_band": "低于户数下限", "roles": "岗位", "grids": "所在网格", "n_grids": "网格数",
    "events_share": "分摊事件数", "self_reported": "本人上报",
}


def band_of(store: Store, *, at: dt.date | None = None, plan: int | str | None = None) -> tuple[float, float]:
    """The households band of a plan: the planner's, for a plan it made (its report's
    ``params.band``), else ``GRIDGEO_GRID_BAND`` (300:500)."""
    p = store.plan(plan) if plan is not None else store.plan_in_force(at)
    band = ((p or {}).get("report") or {}).get("params", {}).get("band") if p else None
    if band:
        return parse_band(band)
    return get_settings().grid_band


def _grid_events(store: Store, period: Period, platform: str | None, as_of) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events reported in the period (from the facts) with their status; and the facts."""
    facts = read_facts(store, period, as_of=as_of)
    ev = facts[facts["received"].to_numpy()]
    if platform is not None:
        ev = ev[(ev["platform"] == platform).to_numpy()]
    ev = ev.assign(status=event_status(ev["state"], ev["deadline"], facts.attrs["as_of"].timestamp()))
    return ev, facts


def per_grid(
    store: Store,
    period: Period | str | None = None,
    *,
    at: dt.date | None = None,
    plan: int | str | None = None,
    platform: str | None = None,
    village: str | None = None,
    now: dt.datetime | None = None,
    grids: gpd.GeoDataFrame | None = None,
    households_per_worker: int | None = None,
) -> pd.DataFrame:
    """Workload of each grid over a period: people, staff, events and flags.

    Parameters
    ----------
    store : Store
    period : Period or str, optional
        Default :func:`default_period`.
    at, plan : optional
        The grids: the plan in force on ``at`` (default today) or plan ``plan``.
    platform : str, optional
        Count one platform's events.
    village : str, optional
        Grids whose code starts with this (a village or township code).
    now : datetime, optional
        ``as_of`` for the statuses (default the present).
    grids : GeoDataFrame, optional
        The grids themselves, when the caller has read them already (``at`` and
        ``plan`` are then not used).
    households_per_worker : int, optional
        The staffing rule (default ``GRIDGEO_HOUSEHOLDS_PER_WORKER``).

    Returns
    -------
    pandas.DataFrame
        Indexed by grid code (every grid of the plan, filtered by ``village``): ``name``,
        ``village_code``, ``households``, ``population``, ``workers`` (full- and
        part-time, :data:`gridgeo.coverage.WORKER_ROLES`), ``events`` (reported in the
        period), ``open``, ``overdue``, ``closed``, ``rejected`` (their status at
        ``as_of``; the four add up to ``events``), ``per_worker`` (NaN with no worker),
        ``per_100_households`` (NaN with no household), ``need_workers``, ``missing``
        (required roles nobody holds), ``shortfall`` (what is missing, in words),
        ``understaffed`` (:func:`gridgeo.coverage.staffing`'s ``short``),
        ``above_band`` / ``below_band`` (households outside :func:`band_of`). ``attrs``:
        ``period``, ``as_of``, ``plan_version``, ``band``, ``platform`` and ``unplaced``
        (events of the period in no grid of the plan: no position, outside, or in a grid
        of another plan).
    """
    _check_platform(platform)
    if grids is None:
        grids = store.read("grids", at=at, plan=plan)
    period = _period(store, period)
    events, facts = _grid_events(store, period, platform, as_utc(now))
    plan_version = grids.attrs.get("plan_version")
    if village:
        grids = grids[grids["code"].str.startswith(village)]
    codes = grids["code"].to_numpy(dtype=object)
    staff = staffing(grids, store.read("staff"), households_per_worker=households_per_worker)
    counts = (pd.crosstab(events["grid_code"].to_numpy(dtype=object), events["status"].to_numpy(dtype=object))
              .reindex(index=codes, columns=list(STATUSES), fill_value=0))
    out = pd.DataFrame(index=pd.Index(codes, dtype=object, name="code"))
    out["name"] = grids["name"].to_numpy(dtype=object)
    out["village_code"] = grids["village_code"].to_numpy(dtype=object)
    out["households"] = grids["households"].to_numpy()
    out["population"] = grids["population"].to_numpy() if "population" in grids else 0
    out["workers"] = staff["workers"].to_numpy()
    out["events"] = counts.sum(axis=1).to_numpy()
    for status in STATUSES:
        out[status] = counts[status].to_numpy()
    out["per_worker"] = out["events"] / out["workers"].where(out["workers"] > 0)
    out["per_100_households"] = 100 * out["events"] / out["households"].where(out["households"] > 0)
    out["need_workers"] = staff["need_workers"].to_numpy()
    out["missing"] = staff["missing"].to_numpy()
    out["shortfall"] = staff["shortfall"].to_numpy()
    out["understaffed"] = staff["short"].to_numpy()
    lo, hi = band_of(store, at=at, plan=plan) if plan_version is None else band_of(store, plan=plan_version)
    out["above_band"] = (out["households"] > hi).to_numpy()
    out["below_band"] = (out["households"] < lo).to_numpy()
    placed = events["grid_code"].isin(set(codes)).to_numpy()
    if village:
        # Events of other villages are not "unplaced"; events in no grid at all are.
        elsewhere = events["grid_code"].notna().to_numpy() & ~events["grid_code"].fillna("").str.startswith(village).to_numpy()
        placed = placed | elsewhere
    out.attrs.update(
        period=period,
        as_of=facts.attrs["as_of"],
        plan_version=plan_version,
        band=(lo, hi),
        unplaced=int((~placed).sum()),
        platform=platform,
    )
    return out


def per_worker(
    store: Store,
    period: Period | str | None = None,
    *,
    at: dt.date | None = None,
    plan: int | str | None = None,
    platform: str | None = None,
    village: str | None = None,
    now: dt.datetime | None = None,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Workload of each person on the staff roster, from the grids they serve.

    A person serving several grids gets the households, people and events of all of
    them (each event once). ``events_share`` divides each grid's events equally among
    its workers (full- and part-time) and adds up a worker's shares, so that over all
    workers it adds up to the events of staffed grids; it is NaN for grid heads and
    instructors who are nobody's worker. ``self_reported``: events the person reported
    in the period (``reporter_staff_code``).

    Parameters
    ----------
    table : DataFrame, optional
        :func:`per_grid` of the same arguments, when the caller has it.

    Returns
    -------
    pandas.DataFrame
        Indexed by staff code: ``name``, ``roles`` (Chinese labels), ``grids``,
        ``n_grids``, ``households``, ``population``, ``events``, ``open``, ``overdue``,
        ``events_share``, ``self_reported``. ``attrs`` as :func:`per_grid`'s.
    """
    if table is None:
        table = per_grid(store, period, at=at, plan=plan, platform=platform, village=village, now=now)
    staff = store.read("staff")
    staff = staff[staff["grid_code"].isin(set(table.index))]
    pairs = staff[["code", "grid_code"]].drop_duplicates()
    g = table.reindex(pairs["grid_code"].to_numpy())
    worker_pairs = staff.loc[staff["role"].isin(WORKER_ROLES), ["code", "grid_code"]].drop_duplicates()
    share = (table["events"] / table["workers"].where(table["workers"] > 0)).reindex(worker_pairs["grid_code"].to_numpy())
    sums = pd.DataFrame({
        "code": pairs["code"].to_numpy(dtype=object),
        "households": g["households"].to_numpy(),
        "population": g["population"].to_numpy(),
        "events": g["events"].to_numpy(),
        "open": g["open"].to_numpy(),
        "overdue": g["overdue"].to_numpy(),
    }).groupby("code", sort=True).sum()
    shares = pd.Series(share.to_numpy(), index=worker_pairs["code"].to_numpy()).groupby(level=0).sum()
    people = staff.sort_values(["code", "grid_code", "role"])
    roles = (people[["code", "role"]].drop_duplicates().assign(r=lambda f: f["role"].map(STAFF_ROLES) + "、")
             .groupby("code")["r"].sum().str[:-1])
    grid_list = (people[["code", "grid_code"]].drop_duplicates().assign(g=lambda f: f["grid_code"] + ",")
                 .groupby("code")["g"].sum().str[:-1])
    names = people.drop_duplicates("code").set_index("code")["name"]
    out = pd.DataFrame(index=pd.Index(sums.index, dtype=object, name="code"))
    out["name"] = names.reindex(out.index).to_numpy()
    out["roles"] = roles.reindex(out.index).to_numpy()
    out["grids"] = grid_list.reindex(out.index).to_numpy()
    out["n_grids"] = pairs.groupby("code").size().reindex(out.index).to_numpy()
    for col in ("households", "population", "events", "open", "overdue"):
        out[col] = sums[col].to_numpy()
    out["events_share"] = shares.reindex(out.index).to_numpy()
    own = self_reported(store, table.attrs["period"], table.attrs["as_of"], platform=platform)
    out["self_reported"] = own.reindex(out.index).fillna(0).astype(int).to_numpy()
    out.attrs.update(table.attrs)
    return out


def workload(store: Store, period: Period | str | None = None, by: str = "grid", **kwargs) -> pd.DataFrame:
    """:func:`per_grid` (``by="grid"``) or :func:`per_worker` (``by="worker"``)."""
    if by == "grid":
        return per_grid(store, period, **kwargs)
    if by == "worker":
        return per_worker(store, period, **kwargs)
    raise InvalidQuery(f"unknown workload grouping {by!r}: use grid or worker")
