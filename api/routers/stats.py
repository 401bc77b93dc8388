"""Statistics: assessment (考核), workload and coverage, as JSON or CSV.

Thin: every figure comes from :mod:`gridgeo.assess`, :mod:`gridgeo.workload` and
:mod:`gridgeo.coverage`; bad periods, groupings and indicators are their
:class:`~gridgeo.errors.GridgeoError` (422 problems through gridgeo.api.problems).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gridgeo.api.deps import AtQuery, PlanQuery, StoreDep, roles
from gridgeo.api.schemas.base import VALIDATED
from gridgeo.api.schemas.patrols import PatrolStats
from gridgeo.api.schemas.stats import Assessment, Coverage, Workload
from gridgeo.auth import ACCOUNT_ROLES
from gridgeo.assess import DEFINITIONS, GROUPINGS, LABELS, RANKABLE, assess_many, rank
from gridgeo.assess.export import records, to_csv
from gridgeo.assess.facts import as_utc
from gridgeo.assess.periods import InvalidQuery
from gridgeo.coverage import coverage as coverage_of
from gridgeo.patrols.service import LABELS as PATROL_LABELS
from gridgeo.patrols.service import patrol_stats, stats_records
from gridgeo.timezone import CHINA
from gridgeo.workload import LABELS as WORKLOAD_LABELS
from gridgeo.workload import default_period, parse_period, per_grid, per_worker, village_prefix

#: Aggregates (no personal data) for every user account; not for the anonymous public.
router = APIRouter(prefix="/v1/stats", tags=["stats"], dependencies=[roles(*ACCOUNT_ROLES, what="statistics")])

PeriodQ = Annotated[str | None, Query(description="2026, 2026-Q3, 2026-07, 2026-07-15 or a range 2025-10/2026-09; "
                                                  "default the twelve months up to the latest event.")]
AsOfQ = Annotated[str | None, Query(description="The moment the figures describe: an ISO date (its end, CST) or "
                                                "time; default now.")]
FormatQ = Annotated[Literal["json", "csv"], Query(description="json, or csv (UTF-8 with BOM, for Excel).")]
LangQ = Annotated[Literal["en", "zh"], Query(description="CSV column names: en (codes) or zh (中文).")]
VillageQ = Annotated[str | None, Query(description="Village or township: a code, a code prefix, or its name.")]
PlatformQ = Annotated[str | None, Query(description="stability, market, enforcement or service; default all.")]


#: With format=csv: the table, UTF-8 with a BOM (for Excel).
CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


def _csv(table, name: str, lang: str, labels=None) -> Response:
    body = to_csv(table, chinese=lang == "zh", labels=labels)
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _iso(when: dt.datetime) -> str:
    return when.astimezone(CHINA).isoformat(timespec="seconds")


@router.get("/assessment", summary="Assessment (考核) per grid, village, township, worker, department or platform",
            response_model=Assessment, **VALIDATED, responses=CSV)
def assessment(
    store: StoreDep,
    period: PeriodQ = None,
    by: Annotated[str, Query(description=f"One of {', '.join(GROUPINGS)}.")] = "grid",
    as_of: AsOfQ = None,
    rank_by: Annotated[str | None, Query(alias="rank", description=f"Rank the units by one of {', '.join(RANKABLE)}.")] = None,
    min_volume: Annotated[int | None, Query(ge=0, description="Ranking: least events in the indicator's denominator "
                                                               "(default GRIDGEO_RANKING_MIN_VOLUME).")] = None,
    roles: Annotated[str | None, Query(description="by=worker: the staff roles counted, comma-separated "
                                                   "(grid_head, full_time_worker, part_time_worker, instructor); "
                                                   "default all.")] = None,
    format: FormatQ = "json",
    lang: LangQ = "en",
):
    """Counts (received, accepted, dispatched, escalated, due, closed, closed on time,
    reworked, extended, overdue now, rated, satisfied), hours to close (mean, p90),
    satisfaction and the rates 立案率, 派遣率, 结案率, 按期结案率, 返工率, 延期率 and 满意率,
    per unit, with the total. ``definitions`` says what each counts."""
    if by not in GROUPINGS:
        raise InvalidQuery(f"unknown grouping {by!r}: use one of {', '.join(GROUPINGS)}")
    if rank_by is not None and rank_by not in RANKABLE:
        raise InvalidQuery(f"cannot rank by {rank_by!r}: use one of {', '.join(RANKABLE)}")
    p = parse_period(period) if period else default_period(store)
    role_list = [r.strip() for r in roles.split(",") if r.strip()] if roles else None
    tables = assess_many(store, p, [by, "total"] if by != "total" else ["total"], as_of=as_utc(as_of),
                         roles=role_list)
    table = tables[by]
    ranking = None
    if rank_by is not None:
        table = rank(table, rank_by, min_volume=min_volume)
        ranking = {k: table.attrs[k] for k in ("indicator", "min_volume", "explanation", "explanation_zh")}
    if format == "csv":
        return _csv(table, f"assessment-{by}-{p.start:%Y%m%d}-{p.end:%Y%m%d}", lang)
    return {
        "period": p.as_dict(),
        "as_of": _iso(table.attrs["as_of"]),
        "by": by,
        "units": int(len(table)),
        "rows": records(table),
        "total": records(tables["total"])[0],
        "ranking": ranking,
        "labels": {k: v for k, v in LABELS.items() if k in table.columns or k == "code"},
        "definitions": DEFINITIONS,
    }


@router.get("/workload", summary="Workload per grid or per worker", response_model=Workload, **VALIDATED,
            responses=CSV)
def workload(
    store: StoreDep,
    period: PeriodQ = None,
    by: Annotated[str, Query(description="grid or worker.")] = "grid",
    platform: PlatformQ = None,
    village: VillageQ = None,
    at: AtQuery = None,
    plan: PlanQuery = None,
    as_of: AsOfQ = None,
    format: FormatQ = "json",
    lang: LangQ = "en",
):
    """Households, people, workers, the period's events by status (open, overdue,
    closed, rejected), events per worker and per 100 households; grids outside the
    households band or under-staffed are flagged."""
    if by not in ("grid", "worker"):
        raise InvalidQuery(f"unknown workload grouping {by!r}: use grid or worker")
    prefix = village_prefix(store, village)
    p = parse_period(period) if period else default_period(store)
    table = per_grid(store, p, at=at, plan=plan, platform=platform, village=prefix, now=as_utc(as_of))
    if by == "worker":
        table = per_worker(store, p, platform=platform, village=prefix, table=table)
    if format == "csv":
        return _csv(table, f"workload-{by}-{p.start:%Y%m%d}-{p.end:%Y%m%d}", lang, WORKLOAD_LABELS)
    a = table.attrs
    body = {
        "period": p.as_dict(),
        "as_of": _iso(a["as_of"]),
        "by": by,
        "plan_version": a.get("plan_version"),
        "band": list(a["band"]),
        "platform": platform,
        "unplaced_events": a["unplaced"],
        "rows": records(table),
        "labels": {k: v for k, v in WORKLOAD_LABELS.items() if k in table.columns or k == "code"},
    }
    if by == "grid":
        body["flagged"] = {
            "above_band": table.index[table["above_band"]].tolist(),
            "below_band": table.index[table["below_band"]].tolist(),
            "understaffed": table.index[table["understaffed"]].tolist(),
        }
    return body


@router.get("/coverage", summary="Coverage of the plan in force: villages, grids' staff, households in no grid",
            response_model=Coverage, **VALIDATED, responses=CSV)
def coverage(
    store: StoreDep,
    at: AtQuery = None,
    plan: PlanQuery = None,
    village: VillageQ = None,
    format: FormatQ = "json",
    table: Annotated[Literal["villages", "townships", "grids", "households_outside"],
                     Query(description="With format=csv: which table.")] = "villages",
    lang: LangQ = "en",
):
    """The share of each village's area and households inside the plan's grids; grids
    without a grid head, workers or an instructor; the household points in no grid."""
    prefix = village_prefix(store, village)
    cov = coverage_of(store, at=at, plan=plan, village=prefix)
    if format == "csv":
        return _csv(cov[table], f"coverage-{table}-{cov['plan_version'] or 'none'}", lang,
                    {"area_km2": "面积(km²)", "covered_km2": "网格覆盖面积(km²)", "area_share": "面积覆盖率",
                     "households_in_grids": "网格内户数", "households_share": "户数覆盖率",
                     "grid_households": "网格登记户数", "township_code": "乡镇街道编码", "grids": "网格数"})
    grids = cov["grids"][["name", "households", "grid_head", "full_time_worker", "part_time_worker", "instructor",
                          "workers", "need_workers", "missing", "shortfall", "completeness", "short",
                          "no_grid_head", "no_workers", "no_instructor"]]
    return {
        "plan_version": cov["plan_version"],
        "summary": cov["summary"],
        "villages": records(cov["villages"]),
        "townships": records(cov["townships"]),
        "grids": records(grids),
        "households_outside": records(cov["households_outside"], index=None),
    }


@router.get("/patrols", summary="Patrols (巡查) per grid or per worker: distance, time, coverage, check-ins",
            response_model=PatrolStats, **VALIDATED, responses=CSV)
def patrols(
    store: StoreDep,
    period: PeriodQ = None,
    by: Annotated[Literal["grid", "worker"], Query(description="grid or worker")] = "grid",
    format: FormatQ = "json",
    lang: LangQ = "en",
):
    """For each grid (or worker) over the period: patrols, kilometres, hours patrolled
    (pauses over 5 minutes left out), and coverage: the share of the households and of the
    road length within GRIDGEO_PATROL_COVERAGE_M (50 m) of a track; for a worker, of their
    own grids by their own tracks. Check-ins (签到) and how many were verified."""
    per = parse_period(period) if period else default_period(store)
    table = patrol_stats(store, per, by)
    if format == "csv":
        return _csv(table, f"patrols-{by}-{per.label}", lang, PATROL_LABELS)
    return {**table.attrs, "labels": PATROL_LABELS, "items": stats_records(table)}
