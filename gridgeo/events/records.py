"""Events as plain dicts (what the API and the CLI show), from database rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import lru_cache

import shapely

from gridgeo.events.deadlines import LEVELS, warning_level
from gridgeo.events.workflow import ACTIONS, OVERDUE_STATES, STATES, WORKFLOW_ACTORS, allowed_actions
from gridgeo.timezone import CHINA as CST

__all__ = ["CST", "event_record", "history_record", "iso", "now_utc"]


#: Columns shown as they are.
_PLAIN = (
    "code", "state", "version", "source", "category_code", "description", "lon", "lat", "crs",
    "address", "reporter_name", "reporter_phone", "reporter_staff_code", "grid_code", "photos",
    "related_categories", "located_by", "plan_version", "locate_distance_m", "address_confidence",
    "address_match", "platform", "department", "route", "route_target", "route_reason",
    "extended_hours", "extended_days", "deadline_workdays", "escalated_to", "reject_reason", "duplicate_flag", "duplicate_candidates",
    "duplicate_of", "result", "satisfaction", "position_from", "notify_reporter", "extension_requested_hours",
)
_TIMES = ("reported_at", "deadline_at", "created_at", "updated_at", "resolved_at", "closed_at")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in China Standard Time (+08:00), as events are reported."""
    if value is None:
        return None
    return value.astimezone(CST).isoformat(timespec="seconds")


def late_hours(deadline_at: dt.datetime | None, state: str, now: dt.datetime) -> float | None:
    """Hours past the deadline of an unresolved event; None when not overdue."""
    if deadline_at is None or state not in OVERDUE_STATES or now <= deadline_at:
        return None
    return round((now - deadline_at).total_seconds() / 3600.0, 1)


def event_record(row: Mapping, *, now: dt.datetime | None = None, category_name: str | None = None,
                 with_actions: bool = True) -> dict:
    """One event as a dict: columns, labels, position, lateness and the allowed actions."""
    now = now or now_utc()
    out = {k: row.get(k) for k in _PLAIN}
    out["state_label"] = STATES.get(row["state"], row["state"])
    if category_name is not None or "category_name" in row:
        out["category_name"] = category_name if category_name is not None else row.get("category_name")
    for k in _TIMES:
        out[k] = iso(row.get(k))
    if row.get("pos_lon") is not None:
        out["position"] = {"lon": round(row["pos_lon"], 7), "lat": round(row["pos_lat"], 7), "crs": "wgs84"}
    elif row.get("geometry") is not None:  # rows written before 0002 have a geometry only
        geom = row["geometry"]
        pt = shapely.from_wkb(geom) if isinstance(geom, (bytes, bytearray, memoryview)) else geom
        out["position"] = {"lon": round(pt.x, 7), "lat": round(pt.y, 7), "crs": "wgs84"}
    else:
        out["position"] = None
    grid = row.get("grid_code")
    out["village_code"] = grid[:12] if grid else None
    late = late_hours(row.get("deadline_at"), row["state"], now)
    out["overdue"] = late is not None
    out["late_hours"] = late
    out["extended_days"] = row.get("extended_days") or 0
    out["deadline_kind"] = "workdays" if row.get("deadline_workdays") else "hours"
    level = warning_level(now, row.get("reported_at"), row.get("deadline_at"),
                          bool(row.get("deadline_workdays")), row["state"] in OVERDUE_STATES)
    out["warning"], out["warning_label"] = level, LEVELS[level]
    out["duplicate_flag"] = bool(row.get("duplicate_flag"))
    out["notify_reporter"] = bool(row.get("notify_reporter"))
    if with_actions:
        out["allowed_actions"] = _allowed(row["state"], row.get("route") == "leadership",
                                          row.get("satisfaction") is not None,
                                          row.get("extension_requested_hours") is not None)
    return out


@lru_cache(maxsize=None)
def _allowed_cached(state: str, major: bool, rated: bool, pending: bool) -> tuple:
    done = {"rate"} if rated else set()
    return tuple((a, tuple(ACTIONS[a].roles))
                 for a in allowed_actions(state, major=major, done=done, pending=pending))


def _allowed(state: str, major: bool, rated: bool, pending: bool = False) -> dict:
    """Action -> roles allowed now (a fresh dict: callers may change it); ``pending``: an
    extension request waits for its answer."""
    return {a: list(r) for a, r in _allowed_cached(state, major, rated, pending)}


#: History lines that are no workflow action: the intake, a merge seen from the event kept,
#: the sweeper's early warnings (gridgeo.notify.worker: ``warn`` yellow, ``overdue`` red).
HISTORY_ONLY = {"report": "上报", "absorb": "合并重复件",
                "warn": f"{LEVELS['yellow']}预警", "overdue": f"{LEVELS['red']}预警"}
#: Who writes a history line without being a workflow actor.
SYSTEM_ACTORS = {"system": "系统"}


def history_record(row: Mapping) -> dict:
    """One line of an event's history."""
    label = ACTIONS[row["action"]].label if row["action"] in ACTIONS else HISTORY_ONLY.get(
        row["action"], row["action"])
    return {
        "seq": row["seq"],
        "at": iso(row["at"]),
        "action": row["action"],
        "action_label": label,
        "actor": row["actor"],
        "role": row["role"],
        "role_label": WORKFLOW_ACTORS.get(row["role"]) or SYSTEM_ACTORS.get(row["role"], row["role"]),
        "from_state": row["from_state"],
        "to_state": row["to_state"],
        "note": row["note"],
        "data": row["data"],
    }
