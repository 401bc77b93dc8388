"""Grid plans: rows, drafts with their report, GeoJSON, diffs, edits and staffing."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gridgeo.api.schemas.base import Schema
from gridgeo.api.schemas.geojson import Feature, FeatureCollection


class Plan(Schema):
    """A plan row."""

    id: int
    version: str
    name: str | None = None
    status: str = Field(description="draft, published, ...")
    effective_from: str | None = Field(None, description="ISO date.")
    effective_to: str | None = Field(None, description="ISO date.")
    created_at: str | None = None
    note: str | None = None


class PlanListed(Plan):
    grids: int | None = None


class Draft(Plan):
    """A saved draft with the planner's report."""

    metrics: dict[str, Any] | None = None
    problems: list[Any] | None = None
    villages: list[dict[str, Any]] | None = None
    replan: dict[str, Any] | None = None


class PlanGrids(FeatureCollection):
    """The plan's grids; ``plan`` the row, ``report`` the planner's metrics, villages,
    per-grid figures, problems and edits."""

    plan: Plan
    report: dict[str, Any]


class Blocks(FeatureCollection):
    """Blocks (``properties.block`` is the id an edit moves) with their grid and workload."""

    features: list[Feature]
    plan: Plan


class Move(Schema):
    from_grid: str | None = None
    to_grid: str | None = None
    points: int
    households: float | None = None


class Diff(Schema):
    from_plan: str
    to_plan: str
    points: int
    households: int
    moves: list[Move]
    changes: list[dict[str, Any]]
    truncated: bool
    villages: list[dict[str, Any]] = []


class EditResult(Schema):
    """What an edit changed (also logged in the plan's report), band warnings, and the
    figures of the villages it touched and of the whole plan, each labelled (``scope``)."""

    action: str = Field(description="move_blocks, move_households, split_grid or merge_grids.")
    to_grid: str
    at: str
    actor: str | None = None
    households_before: dict[str, float] | None = None
    households_after: dict[str, float] | None = None
    added: list[str] = []
    removed: list[str] = []
    warnings: list[str] = Field(description="Grids now outside the band.")
    metrics: dict[str, Any] = Field(description="The villages touched: scope, share_in_band, polsby_popper_mean ...")
    plan_metrics: dict[str, Any] = Field(description="The whole plan (scope: plan).")
    grids: list[dict[str, Any]] = Field(description="The grids touched: workload, deviation, polsby_popper, in_band.")
    preview: bool = Field(description="True: checked and measured, nothing written.")


class Undone(Schema):
    """The edit undone, and the figures after."""

    plan: str
    undone: dict[str, Any]
    metrics: dict[str, Any]
    plan_metrics: dict[str, Any]


class Renumbering(Schema):
    grids: list[dict[str, Any]] = Field(description="code, name, village_code, renumbered, changes")
    changes: int


class Staffing(Schema):
    grids: list[dict[str, Any]] = Field(description="Per grid: staff needed and present, what is missing.")
    short: int = Field(description="Grids short of staff.")


class StaffTransition(Schema):
    """Where the staff of the plan in force go if the plan is published."""

    proposals: list[dict[str, Any]] = Field(description="code, name, role, from_grid, to_grid (null: left without a grid), shared_households, why, reason (kept, shares, follows, filled; stranded: unknown_grid, no_post, no_overlap)")
    unstaffed: list[dict[str, Any]] = Field(description="grid, name, missing (网格长 / 网格指导员 / 网格员)")
    stranded: list[dict[str, Any]] = Field(description="staff posts left without a grid: code, name, role, from_grid, why, reason")
    moves: int
    notes: list[str] = []
