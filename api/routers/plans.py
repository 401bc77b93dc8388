"""Grid plans (网格划分方案): drafts from the planner, publishing, diffs, manual edits, staffing."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from gridgeo.api.deps import PLAN_READERS, PlanWriter, StoreDep, roles
from gridgeo.api.schemas.geojson import MEDIA_TYPE as GEOJSON
from gridgeo.api.schemas.geojson import GeoJSONResponse
from gridgeo.api.schemas.plans import (Blocks, Diff, Draft, EditResult, Plan, PlanGrids, PlanListed, Renumbering,
                                       Staffing, StaffTransition, Undone)
from gridgeo.plan import lifecycle
from gridgeo.plan.bands import DEFAULT_BAND, parse_band
from gridgeo.plan.divide import jsonable

router = APIRouter(prefix="/v1/plans", tags=["plans"], dependencies=[roles(*PLAN_READERS, what="plans")])


def _json(body: Any, status: int = 200, media_type: str = "application/json", **headers) -> Response:
    return Response(json.dumps(jsonable(body), ensure_ascii=False), status_code=status,
                    media_type=media_type, headers=headers or None)


def _row(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k != "report"}
    for k in ("effective_from", "effective_to", "created_at"):
        if out.get(k) is not None:
            out[k] = out[k].isoformat()
    return out


def _public_report(report: dict | None) -> dict:
    """The report without the stored blocks (served by /blocks)."""
    return {k: v for k, v in (report or {}).items() if k != "blocks"}


class PlanRequest(BaseModel):
    """What to plan and how; the villages, households, roads and staff come from the store."""

    villages: list[str] | None = Field(None, description="Village / community codes; default all.")
    within: str | None = Field(None, description="Only villages whose code starts with this (a township code).")
    band: tuple[float, float] = Field(DEFAULT_BAND, description="Floor and ceiling of a grid's workload.")
    per_village: int | dict[str, int] | None = Field(None, description="Grids per village (or per village code).")
    target: float | None = Field(
        None, gt=0, description="Preferred mean workload (default: middle of the band).")
    tolerance: float = Field(0.05, ge=0, le=1, description="Wanted |w - mean| / mean within a village.")
    workload: dict[str, float] | None = Field(None, description='Weights of point columns, e.g. {"households": 1, "population": 0.1}.')
    seed: int = 0
    exclaves: Literal["own", "attach"] = "own"
    strict: bool = Field(True, description="Refuse (422) when a village cannot meet the band; false: plan anyway.")
    from_scratch: bool = Field(False, description="Divide every village anew instead of starting from the plan in force.")
    version: str | None = Field(
        None, max_length=64, description="Version label of the draft (default draft-YYYYMMDD-N).")
    name: str | None = Field(None, max_length=200)
    note: str | None = None

    @model_validator(mode="after")
    def _band_order(self):
        self.band = parse_band(self.band)  # InvalidInput is a ValueError: a 422 like the others
        return self


class PublishRequest(BaseModel):
    effective_from: dt.date | None = Field(None, description="Date the plan takes effect (default today, CST).")
    version: str | None = Field(
        None, max_length=64,
        description="Version label (default: the date, for a draft-... label).")
    allow_stranded: bool = Field(False, description="Publish even if staff are left without a grid (else 409 with the list).")


#: Blocks or households one edit takes at most (a village's worth; more is a mistake).
MAX_EDIT_ITEMS = 20_000


class EditRequest(BaseModel):
    """Move blocks (ids from /blocks) or households (codes) to a grid of their village."""

    to_grid: str = Field(max_length=32)
    blocks: list[int] | None = Field(None, max_length=MAX_EDIT_ITEMS)
    households: list[str] | None = Field(None, max_length=MAX_EDIT_ITEMS)
    preview: bool = Field(False, description="Check and measure the edit, write nothing (live figures while editing).")

    @model_validator(mode="after")
    def _one_kind(self):
        if bool(self.blocks) == bool(self.households):
            raise ValueError("give either blocks or households")
        return self


@router.post("", status_code=201, summary="Plan grids for villages in the store and save a draft", response_model=Draft)
def create_plan(body: PlanRequest, store: StoreDep, principal: PlanWriter):
    """Runs the planner on the store's villages (all, or those asked for) and saves a draft.
    Answers with the draft (id, version) and the report's metrics and problems."""
    plan = lifecycle.plan_from_store(
        store, villages=body.villages, within=body.within, band=body.band, per_village=body.per_village,
        target=body.target, tolerance=body.tolerance, workload=body.workload, seed=body.seed,
        exclaves=body.exclaves, strict=body.strict, from_scratch=body.from_scratch)
    row = lifecycle.save_draft(store, plan, version=body.version, name=body.name, note=body.note, actor=principal.actor)
    report = _public_report(row.get("report"))
    body_out = {**_row(row), "metrics": report.get("metrics"), "problems": report.get("problems"),
                "villages": report.get("villages"), "replan": report.get("replan")}
    return _json(body_out, 201, Location=f"/v1/plans/{row['id']}")


@router.get("", summary="Every plan", response_model=list[PlanListed])
def list_plans(store: StoreDep):
    frame = store.plans()
    return _json([{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items()}
                  for r in frame.astype(object).where(frame.notna(), None).to_dict("records")])


@router.get("/{ref}", summary="A plan's grids as GeoJSON, with its status and report",
            response_model=PlanGrids, response_class=GeoJSONResponse)
def get_plan(ref: str, store: StoreDep):
    """A FeatureCollection of the plan's grids; ``plan`` holds the plan row and ``report``
    the planner's metrics, villages, per-grid figures, problems and edits."""
    row, grids = lifecycle.read_plan(store, ref)
    frame = grids.drop(columns=["plan_id"], errors="ignore")
    fc = json.loads(frame.to_json(drop_id=True)) if len(frame) else {"type": "FeatureCollection", "features": []}
    fc["plan"] = _row(row)
    fc["report"] = _public_report(row.get("report"))
    return _json(fc, media_type=GEOJSON)


@router.get("/{ref}/blocks", summary="The blocks a draft's grids are made of, as GeoJSON",
            response_model=Blocks, response_class=GeoJSONResponse)
def get_blocks(ref: str, store: StoreDep):
    """Blocks with their id, village, grid and workload: what a manual edit moves."""
    row, _, blocks = lifecycle.plan_blocks(store, ref)
    fc = json.loads(blocks.to_json(drop_id=True)) if len(blocks) else {"type": "FeatureCollection", "features": []}
    fc["plan"] = _row(row)
    return _json(fc, media_type=GEOJSON)


@router.post("/{ref}/publish", summary="Publish a draft with an effective date", response_model=Plan)
def publish_plan(ref: str, body: PublishRequest, store: StoreDep, principal: PlanWriter):
    """Validates the draft and publishes it; the plan in force ends on ``effective_from``.
    409 when the plan is not a draft or a later plan exists; 422 when the draft breaks a rule."""
    row = lifecycle.publish(store, ref, body.effective_from, version=body.version, actor=principal.actor,
                            allow_stranded=body.allow_stranded)
    return _json(_row(row))


@router.get("/{ref}/transition", summary="Where the staff go if this plan is published", response_model=StaffTransition)
def plan_transition(
    ref: str, store: StoreDep,
    effective_from: Annotated[dt.date | None, Query(description="From the plan in force on this date (default today).")] = None,
):
    """Each grid head, instructor and worker of the plan in force, and the grid of this plan
    proposed for them (the one sharing most of their households); the grids left without a
    head, instructor or worker; the staff left without a grid (publishing refuses them
    unless ``allow_stranded``)."""
    return _json(lifecycle.transition(store, ref, effective_from).to_dict())


@router.get("/{ref}/diff", summary="Households and addresses that change grid between two plans", response_model=Diff)
def plan_diff(
    ref: str,
    store: StoreDep,
    against: Annotated[str | None, Query(description="The other plan (id or version); the diff goes from it to this plan (default: the plan in force).")] = None,
    limit: Annotated[int, Query(ge=0, le=1_000_000, description="Changes listed at most.")] = 10_000,
):
    frame = lifecycle.diff(store, against, ref) if against is not None else lifecycle.diff(store, ref)
    summary = (frame.groupby(["from_grid", "to_grid"], dropna=False)["households"].agg(["size", "sum"])
               .reset_index().rename(columns={"size": "points", "sum": "households"}))
    return _json({
        "from_plan": frame.attrs["from_plan"], "to_plan": frame.attrs["to_plan"],
        "points": int(len(frame)), "households": int(frame["households"].sum()) if len(frame) else 0,
        "moves": summary.astype(object).where(summary.notna(), None).to_dict("records"),
        "changes": frame.head(limit).astype(object).where(frame.head(limit).notna(), None).to_dict("records"),
        "truncated": len(frame) > limit,
        "villages": frame.attrs.get("villages") or [],
    })


@router.post("/{ref}/edits", summary="Move blocks or households between grids of a draft", response_model=EditResult)
def edit_plan(ref: str, body: EditRequest, store: StoreDep, principal: PlanWriter):
    """Every edit is validated (one polygon per grid, no hole, no empty grid, never across a
    village boundary: 422 otherwise, nothing written) and logged; band violations come back
    as warnings."""
    if body.blocks:
        res = lifecycle.move_blocks(store, ref, body.blocks, body.to_grid, actor=principal.actor, preview=body.preview)
    else:
        res = lifecycle.move_households(store, ref, body.households, body.to_grid, actor=principal.actor,
                                        preview=body.preview)
    return _json(res)


class SplitRequest(BaseModel):
    """Split a grid along its blocks: the blocks listed become a new grid."""

    grid: str = Field(max_length=32)
    blocks: list[int] = Field(min_length=1, max_length=MAX_EDIT_ITEMS)
    preview: bool = False


class MergeRequest(BaseModel):
    """Merge grid ``other`` into ``grid`` (same village, sharing an edge)."""

    grid: str = Field(max_length=32)
    other: str = Field(max_length=32)
    preview: bool = False


@router.post("/{ref}/split", summary="Split a grid of a draft along blocks", response_model=EditResult)
def split_grid(ref: str, body: SplitRequest, store: StoreDep, principal: PlanWriter):
    """The blocks listed leave ``grid`` and form a new grid (next free code of the village).
    422 with the reason when either grid would not be one polygon without holes."""
    return _json(lifecycle.split_grid(store, ref, body.grid, body.blocks, actor=principal.actor, preview=body.preview))


@router.post("/{ref}/merge", summary="Merge two grids of a draft", response_model=EditResult)
def merge_grids(ref: str, body: MergeRequest, store: StoreDep, principal: PlanWriter):
    """``other`` joins ``grid`` and ends. 422 across villages, or when the two do not make
    one polygon."""
    return _json(lifecycle.merge_grids(store, ref, body.grid, body.other, actor=principal.actor,
                                       preview=body.preview))


@router.post("/{ref}/undo", summary="Undo the last edit of a draft", response_model=Undone)
def undo_edit(ref: str, store: StoreDep, principal: PlanWriter):
    """The village of the last edit not undone comes back as it was before it; 422 when
    there is none."""
    return _json(lifecycle.undo(store, ref, actor=principal.actor))


@router.get("/{ref}/renumber", summary="The codes the numbering rule would give the plan's grids",
            response_model=Renumbering)
def renumber_preview(ref: str, store: StoreDep):
    """Per grid: its code and the code of the numbering rule (west→east in latitude bands
    from the north); re-planning keeps the codes of continuing grids, so they can differ."""
    frame = lifecycle.renumber_preview(store, ref)
    return _json({"grids": frame.to_dict("records"), "changes": int(frame["changes"].sum())})


@router.get("/{ref}/staffing", summary="Staff each grid needs and has", response_model=Staffing)
def plan_staffing(
    ref: str,
    store: StoreDep,
    households_per_worker: Annotated[int | None, Query(ge=1, description="Default: the setting.")] = None,
    short_only: Annotated[bool, Query(description="Only grids short of staff.")] = False,
):
    frame = lifecycle.plan_staffing(store, ref, households_per_worker=households_per_worker)
    if short_only:
        frame = frame[frame["short"]]
    return _json({"grids": frame.to_dict("records"), "short": int(frame["short"].sum())})
