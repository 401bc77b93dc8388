"""Patrols (巡查) and check-ins (签到)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gridgeo.api.schemas.base import TIME, Schema
from gridgeo.api.schemas.events import Position


class Patrol(Schema):
    id: int
    username: str
    staff_code: str | None = None
    started_at: str = Field(description=TIME)
    ended_at: str = Field(description=TIME)
    points: int = Field(description="Points kept.")
    distance_m: float
    duration_s: float = Field(description="Time patrolled: gaps over 5 minutes are pauses.")
    source_format: str
    crs: str = Field(description="The coordinate system it came in (kept in WGS84).")
    cleaning: dict[str, Any] | None = Field(None, description="received, kept, dropped, and why: invalid_coordinates, "
                                                              "time_not_forward, impossible_speed, converted_from")
    cleaned: bool = Field(description="Whether any point was dropped.")
    replayed: bool = False


class PatrolPage(Schema):
    total: int
    limit: int
    offset: int
    items: list[Patrol]


class CheckIn(Schema):
    id: int
    username: str
    grid_code: str
    at: str = Field(description=TIME)
    position: Position
    distance_m: float = Field(description="From the grid (0 inside).")
    verified: bool
    reasons: list[str]
    replayed: bool = Field(False, description="The same worker's check-in at the same moment, sent again: the first one.")


class PatrolRow(Schema):
    patrols: int
    distance_km: float
    hours: float
    households: int
    households_covered: int
    household_coverage: float | None = None
    road_km: float
    road_covered_km: float
    road_coverage: float | None = None
    checkins: int
    checkins_verified: int


class PatrolStats(Schema):
    period: dict[str, Any]
    by: str
    radius_m: float
    plan_version: str
    labels: dict[str, str]
    items: list[PatrolRow]
