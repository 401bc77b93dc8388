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

Platform and department always come from the event's (main) category. The deadline is
the reported time plus the category's ``deadline_hours``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "COMMAND_ROOM",
    "ESCALATION_TARGETS",
    "LEADERSHIP",
    "PLATFORM_OFFICES",
    "Route",
    "deadline",
    "route_event",
    "route_frame",
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


def _local(category: dict, related: list[dict]) -> tuple[str, str, str | None, tuple, tuple]:
    """Route kind, unit and reason by rules 4-6."""
    cats = [category, *related]
    platforms = tuple(dict.fromkeys(c["platform"] for c in cats))
    departments = tuple(dict.fromkeys(c["department"] for c in cats))
    if len(platforms) > 1:
        return ("command_room", COMMAND_ROOM,
                f"涉及多个平台（{'、'.join(platforms)}），由综合指挥室协调", departments, platforms)
    if len(departments) > 1:
        office = PLATFORM_OFFICES[platforms[0]]
        return ("platform_office", office,
                f"涉及平台内多个部门（{'、'.join(departments)}），由{office}协调", departments, platforms)
    return ("department", category["department"], None, departments, platforms)


def route_event(category: dict, related: list[dict] | tuple = (), *, outside: bool = False,
                beyond_level: str | None = None) -> Route:
    """Route one event.

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
    related = list(related)
    kind, unit, reason, departments, platforms = _local(category, related)
    platform = category["platform"]
    if outside:
        return Route("escalate", "12345", platform, category["department"], OUTSIDE_REASON,
                     departments, platforms)
    if beyond_level:
        return Route("escalate", "county_center", platform, category["department"],
                     f"{BEYOND_REASON}：{beyond_level}" if beyond_level is not True else BEYOND_REASON,
                     departments, platforms)
    if bool(category.get("major")) or any(bool(c.get("major")) for c in related):
        why = "重大事项，提交领导小组研判后交办"
        return Route("leadership", LEADERSHIP, platform, unit, why if reason is None else f"{why}；{reason}",
                     departments, platforms)
    return Route(kind, unit, platform, unit, reason, departments, platforms)


def route_frame(events: pd.DataFrame, categories: pd.DataFrame) -> pd.DataFrame:
    """Route many single-category events at once (rules 1, 3 and 6; a batch has no
    related categories or beyond-level notes).

    Parameters
    ----------
    events : DataFrame
        ``category_code`` and ``outside`` (bool).
    categories : DataFrame
        The catalogue (``code``, ``platform``, ``department``, ``major``).

    Returns
    -------
    DataFrame
        ``route``, ``route_target``, ``route_reason``, ``platform``, ``department``,
        indexed like ``events``.
    """
    cat = categories.set_index("code")
    codes = events["category_code"]
    platform = codes.map(cat["platform"]).to_numpy(dtype=object)
    department = codes.map(cat["department"]).to_numpy(dtype=object)
    major = codes.map(cat["major"]).fillna(False).to_numpy(dtype=bool)
    outside = events["outside"].to_numpy(dtype=bool)
    route = np.where(outside, "escalate", np.where(major, "leadership", "department")).astype(object)
    target = np.where(outside, "12345", np.where(major, LEADERSHIP, department)).astype(object)
    reason = np.where(outside, OUTSIDE_REASON,
                      np.where(major, "重大事项，提交领导小组研判后交办", None)).astype(object)
    return pd.DataFrame({"route": route, "route_target": target, "route_reason": reason,
                         "platform": platform, "department": department}, index=events.index)


def deadline(reported_at: dt.datetime, hours: int, extended_hours: int = 0) -> dt.datetime:
    """Reported time + the category's hours (+ any extension)."""
    return reported_at + dt.timedelta(hours=int(hours) + int(extended_hours))
