"""Interactive maps (HTML) of coverage, workload, events and plans.

The coverage map is public (grids and their staff, as posted on the notice boards); the
workload and plan maps need a user token, the events map one of the command room, the
leadership group or the administrator. A browser sends it as ``?access_token=``.

The pages load Leaflet and the plugins from ``/maps/assets`` (the files vendored in
``maps/assets``), by relative links, so they work behind a path prefix and make no
request off the server; ``inline=true`` returns one self-contained file instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse, HTMLResponse

from gridgeo.api.auth import roles
from gridgeo.api.deps import get_store
from gridgeo.auth import ALL_EVENTS, ACCOUNT_ROLES
from gridgeo.errors import NotFound
from gridgeo.store import Store
from gridgeo.maps import offline
from gridgeo.maps.base import BASEMAPS, get_basemap
from gridgeo.maps.coverage import coverage_from_store
from gridgeo.maps.events import events_from_store
from gridgeo.maps.plan import plan_from_store
from gridgeo.maps.workload import workload_from_store

router = APIRouter(prefix="/maps", tags=["maps"])

VillageQ = Annotated[str | None, Query(description="Village or community: 12-digit code, a code prefix (township), or its name.")]
PeriodQ = Annotated[str | None, Query(description="2026, 2026-Q1, 2026-03, 2026-03-05 or a range 2025-10/2026-09; default the twelve months up to the latest event.")]
PlatformQ = Annotated[Literal["stability", "market", "enforcement", "service"] | None, Query(description="One of the four platforms; default all.")]
AtQ = Annotated[dt.date | None, Query(description="Grids of the plan in force on this date (default today).")]
PlanQ = Annotated[str | None, Query(description="Grids of this plan version instead.")]
BasemapQ = Annotated[str | None, Query(description=f"Base map: {', '.join(BASEMAPS)} (default $GRIDGEO_MAP_BASEMAP, else none).")]
InlineQ = Annotated[bool, Query(description="Inline the scripts: one self-contained HTML file.")]

_HTML = {200: {"content": {"text/html": {}}, "description": "An HTML page with the map."}}


def _page(m, inline: bool, depth: int) -> HTMLResponse:
    assets = None if inline else "../" * depth + "assets"
    return HTMLResponse(offline.render_html(m, assets_url=assets))


@router.get("/coverage", response_class=HTMLResponse, responses=_HTML,
            summary="Grids coloured by staffing completeness")
def coverage(store: Annotated[Store, Depends(get_store)], village: VillageQ = None, at: AtQ = None,
             plan: PlanQ = None, basemap: BasemapQ = None, inline: InlineQ = False):
    """Grids of the plan in force coloured by staffing (grid head, full-time worker,
    instructor), village boundaries, tooltips with the people of each grid."""
    m = coverage_from_store(store, village=village, at=at, plan=plan, basemap=get_basemap(basemap))
    return _page(m, inline, 0)


@router.get("/workload", response_class=HTMLResponse, responses=_HTML,
            dependencies=[roles(*ACCOUNT_ROLES, what="the workload map")],
            summary="Events per worker, per 100 households, open or overdue, per grid")
def workload(
    store: Annotated[Store, Depends(get_store)],
    measure: Annotated[Literal["per_worker", "per_100_households", "open", "overdue"],
                       Query(description="What the colours show.")] = "per_worker",
    village: VillageQ = None, period: PeriodQ = None, platform: PlatformQ = None,
    at: AtQ = None, plan: PlanQ = None, basemap: BasemapQ = None, inline: InlineQ = False,
):
    """A choropleth of the grids' events over the period, with a legend."""
    m = workload_from_store(store, measure=measure, period=period, platform=platform, village=village,
                            at=at, plan=plan, basemap=get_basemap(basemap))
    return _page(m, inline, 0)


@router.get("/events", response_class=HTMLResponse, responses=_HTML,
            dependencies=[roles(*ALL_EVENTS, what="the events map")],
            summary="Events as clusters and heat, with a time slider")
def events(store: Annotated[Store, Depends(get_store)], village: VillageQ = None, period: PeriodQ = None,
           platform: PlatformQ = None, at: AtQ = None, plan: PlanQ = None, basemap: BasemapQ = None,
           inline: InlineQ = False):
    """The period's events clustered (coloured by platform and status) and as heat,
    with a slider over the period and platform switches."""
    m = events_from_store(store, period=period, platform=platform, village=village, at=at, plan=plan,
                          basemap=get_basemap(basemap))
    return _page(m, inline, 0)


@router.get("/plans/{id}", response_class=HTMLResponse, responses=_HTML,
            dependencies=[roles("planner", "admin", "command_room", "leadership", what="plan maps")],
            summary="A plan beside the plan in force, changed grids highlighted")
def plan(
    store: Annotated[Store, Depends(get_store)],
    id: Annotated[str, Path(description="Plan id or version.")],
    against: Annotated[str | None, Query(description="Compare with this plan (id or version) instead of the plan in force.")] = None,
    at: Annotated[dt.date | None, Query(description="Compare with the plan in force on this date (default today).")] = None,
    village: VillageQ = None, basemap: BasemapQ = None, inline: InlineQ = False,
):
    """Two maps side by side, kept on the same view: the plan in force and plan ``id``."""
    m = plan_from_store(store, id, against=against, at=at, village=village, basemap=get_basemap(basemap))
    return _page(m, inline, 1)


@router.get("/assets/{path:path}", include_in_schema=False)
def asset(path: str):
    """The vendored Leaflet files the map pages link to."""
    try:
        file = offline.asset_file(path)
    except offline.OfflineError:
        raise NotFound(f"no map asset {path!r}") from None
    return FileResponse(file, headers={"Cache-Control": "public, max-age=86400"})
