"""The outbox: what happened, written in the transaction of the change."""

from __future__ import annotations

import datetime as dt

from gridgeo.store import schema

__all__ = ["EVENT_TYPES", "event_type", "event_types", "record"]

#: The event types a receiver may ask for, with their labels; a history action not listed
#: here is sent as ``event.<action>``.
EVENT_TYPES = {
    "event.reported": "新事件",
    "event.dispatched": "分流交办",
    "event.warning": "临期预警",
    "event.overdue": "超期",
    "event.escalated": "上报上级",
    "event.closed": "结案",
    "event.accepted": "受理",
    "event.rejected": "不予受理",
    "event.resolved": "办结",
    "event.extended": "延期",
    "event.extension_asked": "申请延期",
    "event.county_update": "上级平台反馈",
}
_OF_ACTION = {"report": "event.reported", "dispatch": "event.dispatched", "warn": "event.warning",
              "overdue": "event.overdue", "escalate": "event.escalated", "close": "event.closed",
              "accept": "event.accepted", "reject": "event.rejected", "resolve": "event.resolved",
              "extend": "event.extended", "grant_extension": "event.extended",
              "ask_extension": "event.extension_asked", "county_update": "event.county_update",
              "county": "event.county_update"}  # "county": history lines written before the machine had the county's actions
#: Actions told as several event types: the county closing an escalated event is its
#: report (event.county_update) and the closure here (event.closed), so both sides are told.
_ALSO = {"county_close": ("event.county_update", "event.closed")}
_INSERT = schema.outbox.insert()


def event_type(action: str) -> str:
    """The (first) event type of a history action."""
    return event_types(action)[0]


def event_types(action: str) -> tuple[str, ...]:
    """The event types a history action is told as (most actions: one)."""
    return _ALSO.get(action) or (_OF_ACTION.get(action, f"event.{action}"),)


def record(conn, rows: list[tuple[str, str, int | None, dt.datetime]]) -> None:
    """Write outbox rows ``(event_code, action, seq, at)`` on the caller's connection (in
    its transaction: they commit with the change, or not at all); an action told as
    several types writes a row for each."""
    if rows:
        conn.execute(_INSERT, [{"event_code": c, "event_type": et, "seq": s, "at": t, "dispatched": False}
                               for c, a, s, t in rows for et in event_types(a)])
