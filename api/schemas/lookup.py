"""``/v1/lookup``: which grid holds a point, and many points."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gridgeo.api.schemas.base import Schema


class Person(Schema):
    code: str | None = None
    name: str | None = None
    phone: str | None = None
    role: str | None = None


class Staff(Schema):
    grid_head: Person | None = None
    workers: list[Person] = []
    instructor: Person | None = None


class Unit(Schema):
    code: str
    name: str | None = None


class GridSummary(Unit):
    kind: str | None = None
    households: int | None = None
    population: int | None = None


class LookupAnswer(Schema):
    """The grid, village, township and staff for a point."""

    grid: GridSummary
    village: Unit | None = None
    township: Unit | None = None
    staff: Staff
    plan_version: str = Field(description="The plan that answered.")
    snapped: bool = Field(description="Outside every grid but within the snapping tolerance of this one.")
    distance_m: float = Field(description="Distance to the grid when snapped, else 0.")


class BatchResult(Schema):
    """One point of a batch, in input order; ``id`` from a GeoJSON feature, if given."""

    grid_code: str | None = None
    grid_name: str | None = None
    village_code: str | None = None
    village_name: str | None = None
    township_code: str | None = None
    township_name: str | None = None
    snapped: bool
    distance_m: float | None = None
    outside: bool = Field(description="No grid within the snapping tolerance.")
    invalid: bool = Field(description="NaN, infinite or out-of-range coordinates.")
    swapped: bool = Field(description="Looks like [lat, lon].")
    id: Any = None


class BatchAnswer(Schema):
    plan_version: str
    count: int
    located: int = Field(description="Points that found a grid.")
    results: list[BatchResult]
