"""Events: one event with its history, pages of events, the command room's queues, the
reporter's view, the life cycle and the catalogue."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gridgeo.api.schemas.base import TIME, Schema


class Position(Schema):
    lon: float
    lat: float
    crs: str = "wgs84"


class HistoryEntry(Schema):
    """One action taken on the event."""

    seq: int
    at: str = Field(description=TIME)
    action: str
    action_label: str | None = None
    actor: str | None = None
    role: str | None = None
    role_label: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    note: str | None = None
    data: Any = None


class Event(Schema):
    """An event (reporter contacts masked unless the caller's role needs them)."""

    code: str
    state: str
    state_label: str | None = None
    version: int = Field(description="Send it back with an action (or If-Match).")
    source: str
    category_code: str
    category_name: str | None = None
    description: str | None = None
    lon: float | None = None
    lat: float | None = None
    crs: str | None = None
    position: Position | None = Field(None, description="Where the event is, in WGS84.")
    address: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_staff_code: str | None = None
    notify_reporter: bool | None = Field(None, description="The reporter agreed to be told the outcome by SMS (双反馈).")
    grid_code: str | None = None
    village_code: str | None = None
    located_by: str | None = None
    plan_version: str | None = None
    platform: str | None = None
    department: str | None = None
    route: str | None = None
    reported_at: str | None = Field(None, description=TIME)
    deadline_at: str | None = Field(None, description=TIME)
    overdue: bool | None = None
    late_hours: float | None = None
    deadline_kind: str | None = Field(None, description="workdays (工作日) or hours (小时).")
    deadline_workdays: int | None = Field(None, description="The deadline in working days, when it is in working days.")
    extended_days: int | None = Field(None, description="Extensions in working days.")
    extension_requested_hours: int | None = Field(
        None, description="Hours of the department's extension request (申请延期) awaiting an answer; null: none.")
    warning: str | None = Field(None, description="Early warning (临期预警): green, yellow (near its deadline) or red (overdue).")
    warning_label: str | None = None
    duplicate_flag: bool | None = None
    allowed_actions: dict[str, list[str]] | None = Field(None, description="Action -> roles that may take it now.")
    history: list[HistoryEntry] | None = Field(None, description="Every action, oldest first.")


class CreatedEvent(Event):
    reporter_token: str = Field(description="The reporter's token (shown once): follow and rate the event.")


class EventPage(Schema):
    total: int = Field(description="Events that match, on every page.")
    limit: int
    offset: int
    next_offset: int | None = None
    items: list[Event]


class Queue(Schema):
    total: int | None = None
    items: list[Event]


class Overdue(Queue):
    limit: int | None = None
    offset: int | None = None
    by_platform: dict[str, int] | None = None


class Supervision(Schema):
    as_of: str = Field(description=TIME)
    overdue: Overdue
    escalated: Queue
    suspended: Queue


class CommandRoom(Schema):
    """The command room's queues; ``feedback``: results and ratings of the last 7 days."""

    as_of: str = Field(description=TIME)
    to_accept: Queue
    unlocated: Queue
    outside: Queue
    duplicates: Queue
    to_review: Queue
    to_dispatch: Queue
    to_close: Queue
    extension_requests: Queue | None = Field(None, description="Extension requests (申请延期) awaiting an answer.")
    overdue: Queue
    feedback: Schema
    warnings: dict[str, int] | None = Field(None, description="Open events by early warning (临期预警): green, yellow, red.")


class TimelineEntry(Schema):
    at: str = Field(description=TIME)
    action: str
    action_label: str | None = None
    state: str | None = None
    state_label: str | None = None
    note: str | None = None


class ReporterView(Schema):
    """What the reporter may see of their event."""

    code: str
    state: str
    state_label: str | None = None
    category_code: str | None = None
    category_name: str | None = None
    reported_at: str | None = Field(None, description=TIME)
    updated_at: str | None = Field(None, description=TIME)
    deadline_at: str | None = Field(None, description=TIME)
    department: str | None = None
    escalated_to: str | None = None
    result: str | None = None
    satisfaction: int | None = None
    can_rate: bool
    merged_into: str | None = None
    timeline: list[TimelineEntry]


class StateInfo(Schema):
    code: str
    label: str
    final: bool


class RoleInfo(Schema):
    code: str
    label: str


class ActionInfo(Schema):
    code: str
    label: str
    roles: list[str]
    moves: dict[str, str] = Field(description="From state -> to state.")
    major_moves: dict[str, str]
    needs: list[str] = Field(description="Fields the action's data must hold.")
    once: bool


class AccountRoleInfo(RoleInfo):
    acts_as: str | None = Field(description="The workflow actor the account role acts as (none: it takes no action).")


class Workflow(Schema):
    states: list[StateInfo]
    roles: list[RoleInfo] = Field(description="The workflow's actors.")
    account_roles: list[AccountRoleInfo] | None = Field(None, description="User accounts' roles and the actor each acts as.")
    actions: list[ActionInfo]
    reject_reasons: dict[str, str]


class Category(Schema):
    code: str
    name: str | None = None
    platform: str | None = None
    department: str | None = None
    deadline_hours: int | None = None
    deadline_workdays: int | None = Field(None, description="When set, the deadline is this many working days (工作日).")
    major: bool | None = None
    description: str | None = None
