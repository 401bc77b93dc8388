"""Statistics: assessment, workload and coverage (the JSON forms; CSV on request)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gridgeo.api.schemas.base import TIME, Schema

Row = dict[str, Any]


class Period(Schema):
    start: str
    end: str
    label: str | None = None


class Assessment(Schema):
    period: Period
    as_of: str = Field(description=TIME)
    by: str
    units: int
    rows: list[Row] = Field(description="One row per unit: counts, hours and rates.")
    total: Row
    ranking: dict[str, Any] | None = None
    labels: dict[str, str]
    definitions: dict[str, Any] = Field(description="What each indicator counts.")


class Workload(Schema):
    period: Period
    as_of: str = Field(description=TIME)
    by: str
    plan_version: str | None = None
    band: list[float]
    platform: str | None = None
    unplaced_events: int
    rows: list[Row]
    labels: dict[str, str]
    flagged: dict[str, list[str]] | None = Field(None, description="by=grid: grids above or below the band, "
                                                                   "understaffed.")


class Coverage(Schema):
    plan_version: str | None = None
    summary: dict[str, Any]
    villages: list[Row]
    townships: list[Row]
    grids: list[Row]
    households_outside: list[Row]
