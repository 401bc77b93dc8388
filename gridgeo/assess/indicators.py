"""Counts, times, satisfaction and the six rates, per unit of a grouping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import select

from gridgeo.assess.facts import read_facts, self_reported
from gridgeo.assess.periods import InvalidQuery, Period
from gridgeo.layers import PLATFORMS, STAFF_ROLES
from gridgeo.store import Store, schema

__all__ = [
    "COUNTS",
    "DEFINITIONS",
    "GROUPINGS",
    "LABELS",
    "RATES",
    "assess",
    "assess_many",
    "parse_groupings",
    "to_chinese",
]

#: Groupings, code -> Chinese label.
GROUPINGS = {
    "grid": "网格",
    "village": "村社",
    "township": "乡镇街道",
    "worker": "网格人员",
    "department": "责任部门",
    "platform": "平台",
    "category": "事项",
    "total": "合计",
}

#: Count columns -> the cohort column (of the facts) each one sums.
COUNTS = {
    "received": "received",
    "accepted": "accepted",
    "dispatched": "dispatched",
    "escalated": "escalated",
    "due": "due",
    "closed": "closed_",
    "closed_on_time": "on_time",
    "reworked": "reworked",
    "extended": "extended",
    "overdue": "overdue",
    "rated": "rated",
    "satisfied": "satisfied",
}

#: Rates -> (numerator, denominator) count columns.
RATES = {
    "acceptance_rate": ("accepted", "received"),
    "dispatch_rate": ("dispatched", "accepted"),
    "closure_rate": ("closed", "due"),
    "on_time_rate": ("closed_on_time", "due"),
    "rework_rate": ("reworked", "due"),
    "extension_rate": ("extended", "due"),
    "satisfied_rate": ("satisfied", "rated"),
}

#: Column -> Chinese label (for notebooks, CSV and spreadsheets: :func:`to_chinese`).
LABELS = {
    "code": "编码",
    "name": "名称",
    "roles": "岗位",
    "grids": "所在网格",
    "n_grids": "网格数",
    "self_reported": "本人上报",
    "received": "上报数",
    "accepted": "立案数",
    "dispatched": "派遣数",
    "escalated": "上报上级数",
    "due": "应结案数",
    "closed": "结案数",
    "closed_on_time": "按期结案数",
    "reworked": "返工数",
    "extended": "延期数",
    "overdue": "当前超期数",
    "rated": "评价数",
    "satisfied": "满意数",
    "hours_to_close_mean": "平均结案用时(小时)",
    "hours_to_close_p90": "结案用时P90(小时)",
    "satisfaction_mean": "平均满意度",
    "acceptance_rate": "立案率",
    "dispatch_rate": "派遣率",
    "closure_rate": "结案率",
    "on_time_rate": "按期结案率",
    "rework_rate": "返工率",
    "extension_rate": "延期率",
    "satisfied_rate": "满意率",
    "rank": "排名",
    "volume": "基数",
    "eligible": "参与排名",
    "tied": "并列(按规则区分)",
}

#: What each column counts, in a sentence (for API answers and report files; the module
#: docstring of :mod:`gridgeo.assess` has the full rules).
DEFINITIONS = {
    "received": "events reported in the period",
    "accepted": "received events accepted (立案), whatever became of them later",
    "dispatched": "received events dispatched (分流交办) at least once",
    "escalated": "received events escalated to the county centre or 12345 at least once",
    "due": "events whose deadline (after approved extensions) falls in the period and has passed by as_of, "
           "rejected ones excepted",
    "closed": "due events closed (结案) by as_of",
    "closed_on_time": "closed events with closed_at <= deadline_at",
    "reworked": "due events sent back for rework at least once",
    "extended": "due events whose deadline was extended at least once",
    "overdue": "events open at as_of, not resolved or suspended, past a deadline that fell before the end of "
               "the period (a snapshot: older backlog included)",
    "rated": "closed events rated by the reporter by as_of",
    "satisfied": "rated events rated 4 or 5",
    "hours_to_close_mean": "mean of closed_at - reported_at over the closed events, hours",
    "hours_to_close_p90": "90th percentile (linear interpolation) of the same, hours",
    "satisfaction_mean": "mean rating (1-5) of the rated events",
    **{rate: f"{num} / {den}" for rate, (num, den) in RATES.items()},
    "worker": "everyone on the staff roster with every event in the grids they serve; a person with several "
              "grids counts all of them, an event counts once for each person of its grid",
}

NO_UNIT = "（未落入网格）"
NO_DEPARTMENT = "（未分派）"


def parse_groupings(by: str | Iterable[str]) -> list[str]:
    """Groupings from ``"grid"``, ``"grid,department"``, a list, or ``"all"``.

    Raises
    ------
    InvalidQuery
        (422) An unknown grouping.
    """
    items = [by] if isinstance(by, str) else list(by)
    names = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    if not names:
        raise InvalidQuery(f"no grouping given: use one or more of {', '.join(GROUPINGS)}, or all")
    if names == ["all"]:
        return [g for g in GROUPINGS if g != "total"]
    unknown = [n for n in names if n not in GROUPINGS]
    if unknown:
        raise InvalidQuery(f"unknown grouping {unknown[0]!r}: use {', '.join(GROUPINGS)}, or all")
    return list(dict.fromkeys(names))


class _Names:
    """Names of units, read once per report (small tables)."""

    def __init__(self, store: Store):
        self.store = store
        self._grids = self._divisions = self._staff = self._categories = None

    def grids(self) -> pd.Series:
        if self._grids is None:
            g = schema.grids
            with self.store.engine.connect() as conn:
                rows = conn.execute(select(g.c.code, g.c.name).order_by(g.c.plan_id)).all()
            frame = pd.DataFrame(rows, columns=["code", "name"]).drop_duplicates("code", keep="last")
            # The plan in force names its grids; older plans name the codes it dropped.
            current = self.store.read("grids")
            names = pd.Series(frame["name"].to_numpy(), index=frame["code"].to_numpy(), dtype=object)
            if len(current):
                names.update(pd.Series(current["name"].to_numpy(), index=current["code"].to_numpy()))
            self._grids = names
        return self._grids

    def divisions(self) -> pd.Series:
        if self._divisions is None:
            d = schema.divisions
            with self.store.engine.connect() as conn:
                rows = conn.execute(select(d.c.code, d.c.name)).all()
            self._divisions = pd.Series(dict(rows), dtype=object)
        return self._divisions

    def staff(self) -> pd.DataFrame:
        if self._staff is None:
            self._staff = self.store.read("staff")
        return self._staff

    def categories(self) -> pd.Series:
        if self._categories is None:
            c = schema.categories
            with self.store.engine.connect() as conn:
                rows = conn.execute(select(c.c.code, c.c.name)).all()
            self._categories = pd.Series(dict(rows), dtype=object)
        return self._categories

    def self_reported(self, period: Period, as_of: dt.datetime) -> pd.Series:
        """Events each staff member reported in ``period``, by staff code."""
        return self_reported(self.store, period, as_of)


def _keys(facts: pd.DataFrame, by: str, names: _Names, roles: Sequence[str] | None
          ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The facts (repeated for many-to-many groupings), the unit number of each row
    (-1: none) and the unit codes."""
    if by in ("grid", "village", "township"):
        codes, grids = pd.factorize(facts["grid_code"].to_numpy(dtype=object))
        if by == "grid":
            return facts, codes, np.asarray(grids, dtype=object)
        # Villages and townships are prefixes of the grid codes: cut the few distinct codes.
        cut = pd.Series(np.asarray(grids, dtype=object), dtype=object).str[:12 if by == "village" else 9]
        sub, units = pd.factorize(cut.to_numpy(dtype=object))
        return facts, np.where(codes >= 0, sub[np.maximum(codes, 0)], -1), np.asarray(units, dtype=object)
    if by in ("platform", "department", "category"):
        col = "category_code" if by == "category" else by
        codes, units = pd.factorize(facts[col].to_numpy(dtype=object))
        return facts, codes, np.asarray(units, dtype=object)
    if by == "total":
        return facts, np.zeros(len(facts), dtype=np.int64), np.array(["all"], dtype=object)
    raise InvalidQuery(f"unknown grouping {by!r}: use {', '.join(GROUPINGS)}")


def _worker_grids(staff: pd.DataFrame, roles: Sequence[str] | None) -> pd.DataFrame:
    """(worker, grid) pairs: each person once per grid they serve, whatever their roles there."""
    if roles is not None:
        unknown = [r for r in roles if r not in STAFF_ROLES]
        if unknown:
            raise InvalidQuery(f"unknown role {unknown[0]!r}: use {', '.join(STAFF_ROLES)}")
        staff = staff[staff["role"].isin(list(roles))]
    return (staff[["code", "grid_code"]].rename(columns={"code": "worker", "grid_code": "grid"})
            .astype(object).drop_duplicates())


def _p90(codes: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """The 90th percentile of ``values`` per unit (linear interpolation, as numpy's
    default), NaN for units with none; one sort, no loop over units."""
    out = np.full(k, np.nan)
    if not len(values):
        return out
    order = np.lexsort((values, codes))
    c, v = codes[order], values[order]
    counts = np.bincount(c, minlength=k)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    pos = 0.9 * (counts[has] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts[has] - 1)
    a, b = v[first[has] + lo], v[first[has] + hi]
    out[has] = a + (pos - lo) * (b - a)
    return out


def _table(facts: pd.DataFrame, codes: np.ndarray, units: np.ndarray) -> pd.DataFrame:
    """Sums, means and p90 per unit; rows with no unit (code -1) form a unit of their own
    (index None), so that the rows add up to the total."""
    codes = np.asarray(codes, dtype=np.int64)
    k = len(units)
    index = list(units)
    if (codes < 0).any():
        codes = np.where(codes < 0, k, codes)
        k += 1
        index.append(None)
    sums = _sums(facts, codes, k)
    done = facts["closed_"].to_numpy(dtype=bool)
    return _table_from(index, sums, codes[done], facts["hours"].to_numpy(dtype=float)[done], sums["_sat"])


def _sums(facts: pd.DataFrame, codes: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per unit (``codes`` numbers them 0 to ``k - 1``): each count of :data:`COUNTS`, and
    the summed ratings as ``_sat`` (also what :mod:`gridgeo.scale.assess` sends back per
    partition)."""
    rated = facts["rated"].to_numpy(dtype=bool)
    sat = facts["satisfaction"].to_numpy(dtype=float)[rated]
    out = {name: np.bincount(codes[facts[col].to_numpy(dtype=bool)], minlength=k) for name, col in COUNTS.items()}
    out["_sat"] = np.bincount(codes[rated], weights=sat, minlength=k)
    return out


def _table_from(index: list, counts: dict, done_codes: np.ndarray, hours: np.ndarray,
                satisfaction_sum: np.ndarray) -> pd.DataFrame:
    """The table of :func:`_table` from its sums: the counts per unit (unit numbers index
    ``index``), the unit and hours of each closed event, and the summed ratings per unit.
    :mod:`gridgeo.scale.assess` adds these up over partitions and finishes here too."""
    k = len(index)
    out = pd.DataFrame(index=pd.Index(index, dtype=object, name="code"))
    for name in COUNTS:
        out[name] = np.asarray(counts[name]).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_done = out["closed"].to_numpy()
        out["hours_to_close_mean"] = (np.bincount(done_codes, weights=hours, minlength=k)
                                      / np.where(n_done > 0, n_done, np.nan))
        out["hours_to_close_p90"] = _p90(done_codes, hours, k)
        n_rated = out["rated"].to_numpy()
        out["satisfaction_mean"] = satisfaction_sum / np.where(n_rated > 0, n_rated, np.nan)
        for rate, (num, den) in RATES.items():
            d = out[den].to_numpy()
            out[rate] = out[num].to_numpy() / np.where(d > 0, d, np.nan)
    return out


def _order(table: pd.DataFrame, by: str) -> pd.DataFrame:
    codes = pd.Series(table.index, dtype=object)
    if by == "platform":
        rank = codes.map({p: i for i, p in enumerate(PLATFORMS)}).fillna(len(PLATFORMS))
    else:
        rank = pd.Series(0, index=codes.index)
    # Units in code order, platforms in their usual order, "no unit" last.
    order = np.lexsort((codes.fillna("\uffff").astype(str).to_numpy(), rank.to_numpy(), codes.isna().to_numpy()))
    return table.iloc[order]


def _label(table: pd.DataFrame, by: str, names: _Names, facts: pd.DataFrame, roles) -> pd.DataFrame:
    codes = pd.Series(table.index, index=table.index, dtype=object)
    if by == "grid":
        name = codes.map(names.grids())
    elif by in ("village", "township"):
        name = codes.map(names.divisions())
    elif by == "platform":
        name = codes.map(PLATFORMS)
    elif by == "department":
        name = codes
    elif by == "category":
        name = codes.map(names.categories())
    elif by == "total":
        name = pd.Series(GROUPINGS["total"], index=table.index)
    else:  # worker
        staff = names.staff()
        if roles is not None:
            staff = staff[staff["role"].isin(list(roles))]
        people = staff.drop_duplicates("code").set_index("code")["name"]
        name = codes.map(people)
    none = NO_DEPARTMENT if by in ("platform", "department", "category") else NO_UNIT
    name = name.where(codes.notna(), none)
    out = table.copy()
    out.insert(0, "name", name.astype(object).where(name.notna(), None).to_numpy())
    if by == "worker":
        out = _worker_columns(out, names, facts, roles)
    return out


def _worker_columns(out: pd.DataFrame, names: _Names, facts: pd.DataFrame, roles) -> pd.DataFrame:
    staff = names.staff()
    if roles is not None:
        staff = staff[staff["role"].isin(list(roles))]
    staff = staff.sort_values(["code", "grid_code", "role"])
    role_labels = (staff[["code", "role"]].drop_duplicates().assign(label=lambda f: f["role"].map(STAFF_ROLES) + "、")
                   .groupby("code")["label"].sum().str[:-1])
    grid_list = (staff[["code", "grid_code"]].drop_duplicates().assign(g=lambda f: f["grid_code"] + ",")
                 .groupby("code")["g"].sum().str[:-1])
    n_grids = staff[["code", "grid_code"]].drop_duplicates().groupby("code").size()
    codes = pd.Series(out.index, index=out.index, dtype=object)
    out.insert(1, "roles", codes.map(role_labels).to_numpy())
    out.insert(2, "grids", codes.map(grid_list).to_numpy())
    out.insert(3, "n_grids", pd.array(codes.map(n_grids).fillna(0).astype(int).to_numpy(), dtype="Int64"))
    own = names.self_reported(facts.attrs["period"], facts.attrs["as_of"])
    out.insert(4, "self_reported", pd.array(codes.map(own).fillna(0).astype(int).to_numpy(), dtype="Int64"))
    return out


def _worker_table(facts: pd.DataFrame, names: _Names, roles) -> pd.DataFrame:
    """Per person: the sums of the grids they serve (counts and totals add), and the
    p90 from the closed events of those grids. Grids first, so that a year of events is
    never repeated once per person."""
    gcodes, grids = pd.factorize(facts["grid_code"].to_numpy(dtype=object))
    grid_table = _table(facts, gcodes, np.asarray(grids, dtype=object))
    done = facts["closed_"].to_numpy(dtype=bool)
    closed = pd.DataFrame({"grid": facts["grid_code"].to_numpy(dtype=object)[done],
                           "hours": facts["hours"].to_numpy(dtype=float)[done]})
    return _worker_table_from(grid_table, closed, names, roles)


def _worker_table_from(grid_table: pd.DataFrame, closed: pd.DataFrame, names: _Names,
                       roles) -> pd.DataFrame:
    """:func:`_worker_table` from the grid table (:func:`_table` by grid) and the closed
    events' ``grid`` and ``hours`` (also how :mod:`gridgeo.scale.assess` combines partitions)."""
    pairs = _worker_grids(names.staff(), roles)
    workers = pd.Index(sorted(set(pairs["worker"])), dtype=object, name="code")
    grid_table = grid_table[grid_table.index.notna()]
    sums = grid_table[list(COUNTS)].copy()
    sums["_hours"] = (grid_table["hours_to_close_mean"] * grid_table["closed"]).fillna(0.0)
    sums["_sat"] = (grid_table["satisfaction_mean"] * grid_table["rated"]).fillna(0.0)
    joined = pairs.merge(sums, left_on="grid", right_index=True, how="left").fillna(0)
    out = joined.drop(columns="grid").groupby("worker").sum().reindex(workers).fillna(0)
    for col in COUNTS:
        out[col] = out[col].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["hours_to_close_mean"] = out.pop("_hours") / out["closed"].where(out["closed"] > 0)
        out["satisfaction_mean"] = out.pop("_sat") / out["rated"].where(out["rated"] > 0)
        per = closed.merge(pairs, on="grid")
        wcodes = workers.get_indexer(per["worker"].to_numpy(dtype=object))
        out["hours_to_close_p90"] = _p90(wcodes, per["hours"].to_numpy(dtype=float), len(workers))
        for rate, (num, den) in RATES.items():
            d = out[den].to_numpy()
            out[rate] = out[num].to_numpy() / np.where(d > 0, d, np.nan)
    columns = [*COUNTS, "hours_to_close_mean", "hours_to_close_p90", "satisfaction_mean", *RATES]
    return out[columns]


def _one(facts: pd.DataFrame, by: str, names: _Names, roles) -> pd.DataFrame:
    if by == "worker":
        # Every worker on the roster has a row, with or without events.
        table = _worker_table(facts, names, roles)
    else:
        rows, codes, units = _keys(facts, by, names, roles)
        table = _table(rows, codes, units)
    table = _order(table, by)
    out = _label(table, by, names, facts, roles)
    out.index.name = "code"
    return out


def assess_many(
    store: Store,
    period: Period | str,
    by: str | Iterable[str] = "grid",
    *,
    as_of: dt.datetime | dt.date | str | None = None,
    roles: Sequence[str] | None = None,
    facts: pd.DataFrame | None = None,
    progress=None,
) -> dict[str, pd.DataFrame]:
    """:func:`assess` for several groupings, reading the events once.

    Returns a dict grouping -> table, in the order asked.
    """
    groupings = parse_groupings(by)
    if facts is None:
        if progress:
            progress("reading events")
        facts = read_facts(store, period, as_of=as_of)
    names = _Names(store)
    out = {}
    for g in groupings:
        if progress:
            progress(f"by {g}")
        table = _one(facts, g, names, roles)
        table.attrs.update(period=facts.attrs["period"], as_of=facts.attrs["as_of"], by=g)
        out[g] = table
    return out


def assess(
    store: Store,
    period: Period | str,
    by: str = "grid",
    *,
    as_of: dt.datetime | dt.date | str | None = None,
    roles: Sequence[str] | None = None,
    facts: pd.DataFrame | None = None,
    chinese: bool = False,
) -> pd.DataFrame:
    """The assessment (考核) of ``period`` per unit of one grouping.

    See :mod:`gridgeo.assess` for what each column counts.

    Parameters
    ----------
    store : Store
    period : Period or str
        ``2026-Q3``, ``2026-07``, ``2026``, ``2025-10/2026-09`` ...
    by : str
        ``grid``, ``village``, ``township``, ``worker``, ``department``, ``platform``,
        ``category`` or ``total``.
    as_of : datetime, date or ISO text, optional
        The moment the figures describe (default now).
    roles : list of str, optional
        For ``worker``: the staff roles counted (default every role on the roster).
    facts : DataFrame, optional
        From :func:`~gridgeo.assess.facts.read_facts`, to group one read several ways.
    chinese : bool
        Chinese column labels (:data:`LABELS`).

    Returns
    -------
    pandas.DataFrame
        Indexed by unit code (None: events in no grid, or with no department), with
        ``name``, the counts of :data:`COUNTS`, ``hours_to_close_mean``,
        ``hours_to_close_p90``, ``satisfaction_mean`` and the rates of :data:`RATES`
        (NaN where the denominator is 0). ``attrs``: ``period``, ``as_of``, ``by``.

    Raises
    ------
    InvalidQuery, InvalidPeriod
        (422) An unknown grouping, role or a period that cannot be read.
    """
    if by not in GROUPINGS:
        raise InvalidQuery(f"unknown grouping {by!r}: use {', '.join(GROUPINGS)}")
    table = assess_many(store, period, [by], as_of=as_of, roles=roles, facts=facts)[by]
    return to_chinese(table) if chinese else table


def to_chinese(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with Chinese column and index labels (:data:`LABELS`); attrs kept."""
    out = table.rename(columns=LABELS)
    out.index = out.index.rename(LABELS.get(out.index.name, out.index.name))
    out.attrs = dict(table.attrs)
    return out
