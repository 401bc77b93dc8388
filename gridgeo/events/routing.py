"""Routing (分流交办): who handles an event, from the event catalogue (事项清单).

The rules, in order (seeds: 衢州 实施意见 四(四), 板桥 实施方案 三(三)):

1. **Outside jurisdiction** (the position is in no grid of the plan) -> escalated to the
   county 12345 platform, which passes it to the right place.
2. **Beyond this level** (事权不在本级或本级难以处置, said at intake or by the command
   room) -> escalated to the county social-governance command centre.
3. **Major categories** (重大事项) -> the leadership group (领导小组) reviews first; the
   unit it then goes to is worked out by rules 4-6 and kept in ``department``.
4. **Several platforms** (the event's category and its related categories span more than
   one) -> the command room (综合指挥室) coordinates.
5. **Several departments of one platform** -> that platform's coordinating office
   (平台日常管理机构, :data:`PLATFORM_OFFICES`).
6. Otherwise -> the category's department.

Platform and department always come from the event's (main) category. Deadlines are
:mod:`gridgeo.events.deadlines`'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "COMMAND_ROOM",
    "ESCALATION_TARGETS",
    "LEADERSHIP",
    "PLATFORM_OFFICES",
    "Route",
    "route_event",
    "route_frame",
    "route_many",
]

#: The office that runs each platform day to day (coordinates several departments).
PLATFORM_OFFICES = {
    "stability": "综治办",
    "market": "食安办",
    "enforcement": "综合执法办",
    "service": "便民服务中心",
}
COMMAND_ROOM = "综合指挥室"
LEADERSHIP = "领导小组"
#: Where an escalation goes: code -> name.
ESCALATION_TARGETS = {
    "county_center": "县社会治理综合指挥中心",
    "12345": "县12345平台",
}
OUTSIDE_REASON = "事发地不在本辖区，转县12345平台分流处置"
BEYOND_REASON = "事权不在本级或本级难以处置，上报县社会治理综合指挥中心"


@dataclass(frozen=True)
class Route:
    """Where an event goes.

    Attributes
    ----------
    route
        ``department``, ``platform_office``, ``command_room``, ``leadership`` or
        ``escalate``.
    target
        Who receives it: a department, an office, 综合指挥室, 领导小组, or the escalation
        target's code (:data:`ESCALATION_TARGETS`).
    platform, department
        The event's platform, and the unit a dispatch goes to (for ``leadership``, the
        one it goes to after the review; for ``escalate``, the category's department).
    reason
        Why, for every route but ``department``.
    departments, platforms
        Everything involved.
    """

    route: str
    target: str
    platform: str
    department: str
    reason: str | None = None
    departments: tuple[str, ...] = field(default_factory=tuple)
    platforms: tuple[str, ...] = field(default_factory=tuple)


MAJOR_REASON = "重大事项，提交领导小组研判后交办"


def _route(owner: np.ndarray, platform_all: np.ndarray, department_all: np.ndarray, major_all: np.ndarray,
           outside: np.ndarray, beyond: np.ndarray, *, details: bool = False) -> dict[str, np.ndarray]:
    """Rules 1-6 over arrays: the one implementation behind every routing function.

    Parameters
    ----------
    owner : int array, sorted
        For each category an event involves, the event's number (0..n-1); each event's
        main category is its first row, its related ones follow in the order given.
    platform_all, department_all, major_all : arrays like ``owner``
        The platform, department and major flag of each of those categories.
    outside : bool array (n,)
    beyond : object array (n,)
        Why the event is beyond this level: text, ``True`` (said, no reason), or None / "".
    details : bool
        Also give ``platforms`` and ``departments``: tuples of everything involved.
    """
    n = len(outside)
    first = np.searchsorted(owner, np.arange(n))  # each event's main category
    ends = np.append(first[1:], len(owner))
    platform, department = platform_all[first], department_all[first]

    def distinct(values: np.ndarray) -> np.ndarray:
        """Number of distinct values per event."""
        k = pd.factorize(values, use_na_sentinel=False)[0].astype(np.int64)
        width = int(k.max(initial=0)) + 1
        return np.bincount(np.unique(owner * width + k) // width, minlength=n)

    several_platforms = distinct(platform_all) > 1
    several_departments = ~several_platforms & (distinct(department_all) > 1)
    major = np.bincount(owner, weights=major_all.astype(float), minlength=n) > 0
    beyond_said = np.array([b is True or (isinstance(b, str) and b != "") for b in beyond], dtype=bool)

    # Rules 4-6: the unit in charge locally (also where a major event goes after review).
    office = np.array([PLATFORM_OFFICES.get(p) for p in platform], dtype=object)
    unit = np.where(several_platforms, COMMAND_ROOM, np.where(several_departments, office, department)).astype(object)
    route = np.where(several_platforms, "command_room",
                     np.where(several_departments, "platform_office", "department")).astype(object)
    reason = np.full(n, None, dtype=object)
    listed = np.flatnonzero(several_platforms | several_departments) if not details else np.arange(n)
    mentioned = {"platforms": np.empty(n, dtype=object), "departments": np.empty(n, dtype=object)}
    for i in listed:  # only events with related categories (all of them for details)
        ps = tuple(dict.fromkeys(platform_all[first[i]:ends[i]]))
        ds = tuple(dict.fromkeys(department_all[first[i]:ends[i]]))
        mentioned["platforms"][i], mentioned["departments"][i] = ps, ds
        if several_platforms[i]:
            reason[i] = f"涉及多个平台（{'、'.join(ps)}），由综合指挥室协调"
        elif several_departments[i]:
            reason[i] = f"涉及平台内多个部门（{'、'.join(ds)}），由{office[i]}协调"
    target, dept = unit.copy(), unit.copy()

    # Rules 1-3 come first: applied last, in reverse order, each overriding the next.
    for i in np.flatnonzero(major):
        reason[i] = MAJOR_REASON if reason[i] is None else f"{MAJOR_REASON}；{reason[i]}"
    route[major], target[major] = "leadership", LEADERSHIP
    for i in np.flatnonzero(beyond_said):
        reason[i] = BEYOND_REASON if beyond[i] is True else f"{BEYOND_REASON}：{beyond[i]}"
    route[beyond_said], target[beyond_said], dept[beyond_said] = "escalate", "county_center", department[beyond_said]
    reason[outside] = OUTSIDE_REASON
    route[outside], target[outside], dept[outside] = "escalate", "12345", department[outside]
    out = {"route": route, "route_target": target, "route_reason": reason, "platform": platform,
           "department": dept}
    if details:
        out.update(mentioned)
    return out


def route_frame(events: pd.DataFrame, categories: pd.DataFrame) -> pd.DataFrame:
    """Route many events at once, by every rule of the module.

    Parameters
    ----------
    events : DataFrame
        ``category_code`` and ``outside`` (bool); optionally ``related_categories``
        (a list of codes per event, or None) and ``beyond_level`` (why the event is
        beyond this level, or None).
    categories : DataFrame
        The catalogue (``code``, ``platform``, ``department``, ``major``); it holds the
        related categories too. Unknown codes give no platform and no department.

    Returns
    -------
    DataFrame
        ``route``, ``route_target``, ``route_reason``, ``platform``, ``department``
        (see :class:`Route`), indexed like ``events``; object columns (None, not NaN).
    """
    n = len(events)
    cat = categories.drop_duplicates("code", keep="last").set_index("code")
    owner = np.arange(n)
    codes = events["category_code"].to_numpy(dtype=object)
    if "related_categories" in events and n:
        rel = pd.Series(events["related_categories"].to_numpy(dtype=object)).explode()
        rel = rel[rel.notna()]
        if len(rel):  # main rows first, then a stable sort by event keeps each event's order
            owner = np.concatenate([owner, rel.index.to_numpy(dtype=np.intp)])
            codes = np.concatenate([codes, rel.to_numpy(dtype=object)])
            order = np.argsort(owner, kind="stable")
            owner, codes = owner[order], codes[order]
    codes_s = pd.Series(codes, dtype=object)
    cols = _route(owner, codes_s.map(cat["platform"]).to_numpy(dtype=object),
                  codes_s.map(cat["department"]).to_numpy(dtype=object),
                  codes_s.map(cat["major"]).fillna(False).to_numpy(dtype=bool),
                  events["outside"].to_numpy(dtype=bool),
                  events["beyond_level"].to_numpy(dtype=object) if "beyond_level" in events
                  else np.full(n, None, dtype=object))
    return pd.DataFrame({k: pd.Series(v, index=events.index, dtype=object) for k, v in cols.items()})


def route_many(categories: list[dict], related: list[list[dict]] | None = None, *,
               outside: list[bool] | None = None, beyond_level: list | None = None) -> list[Route]:
    """Route several events given as catalogue rows (what the intake holds): the same
    rules as :func:`route_frame`, without building DataFrames for a handful of events.

    ``categories[i]`` is event i's category row; ``related[i]`` its related rows,
    ``outside[i]`` and ``beyond_level[i]`` as in :func:`route_event`.
    """
    n = len(categories)
    related = related if related is not None else [[] for _ in range(n)]
    rows = [c for i in range(n) for c in (categories[i], *related[i])]
    owner = np.repeat(np.arange(n), [1 + len(r) for r in related])
    cols = _route(owner, np.array([c["platform"] for c in rows], dtype=object),
                  np.array([c["department"] for c in rows], dtype=object),
                  np.array([bool(c.get("major")) for c in rows], dtype=bool),
                  np.array(outside if outside is not None else [False] * n, dtype=bool),
                  np.array(beyond_level if beyond_level is not None else [None] * n, dtype=object),
                  details=True)
    return [Route(cols["route"][i], cols["route_target"][i], cols["platform"][i], cols["department"][i],
                  cols["route_reason"][i], cols["departments"][i], cols["platforms"][i]) for i in range(n)]


def route_event(category: dict, related: list[dict] | tuple = (), *, outside: bool = False,
                beyond_level: str | bool | None = None) -> Route:
    """Route one event (:func:`route_many` of one).

    Parameters
    ----------
    category : dict
        The event's category row (``platform``, ``department``, ``major``).
    related : list of dict
        Rows of the other categories the event involves.
    outside : bool
        Located outside every grid (rule 1).
    beyond_level : str, optional
        Why it is beyond this level (rule 2), when someone said so.
    """
    return route_many([category], [list(related)], outside=[outside], beyond_level=[beyond_level])[0]

