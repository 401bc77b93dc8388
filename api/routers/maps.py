"""Interactive maps (HTML) of coverage, workload, events, patrols and plans.

The coverage map is public (grids and their staff, as posted on the notice boards); the
workload and plan maps need a user token, the events map one of the command room, the
leadership group or the administrator. A browser cannot send a header: the page's URL
carries ``?ticket=``, a map ticket from ``POST /maps/tickets`` (sent with the token in
the Authorization header; valid GRIDGEO_TICKET_SECONDS, for the map pages only), or
the token itself as ``?access_token=`` (accepted on the map pages only; prefer tickets).

Building a map is CPU work (geometry, folium): it runs in the heavy-work thread pool
(GRIDGEO_HEAVY_THREADS at once), never on the event loop nor in the pool of the other routes.

The pages load Leaflet and the plugins from ``/maps/assets`` (the files vendored in
``maps/assets``), by relative links, so they work behind a path prefix and make no
request off the server; ``inline=true`` returns one self-contained file instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gridgeo.api.auth import roles, ticket_secret
from gridgeo.api.deps import HOUSEHOLD_READERS, AtQuery, PlanQuery, PrincipalDep, StoreDep
from gridgeo.api.middleware import run_heavy
from gridgeo.auth import ACCOUNT_ROLES, ALL_EVENTS, EVENT_READERS, Principal, authenticate, event_filters, issue_map_ticket
from gridgeo.config import get_settings
from gridgeo.crs import lonlat_ok
from gridgeo.errors import InvalidInput, NotFound, Unauthenticated
from gridgeo.layers import PLATFORMS
from gridgeo.maps import archive, offline
from gridgeo.maps.base import BASEMAPS, get_basemap
from gridgeo.maps.coverage import coverage_from_store
from gridgeo.maps.events import events_from_store
from gridgeo.maps.patrols import patrol_from_store
from gridgeo.maps.plan import plan_from_store
from gridgeo.maps.workload import workload_from_store

router = APIRouter(prefix="/maps", tags=["maps"])

VillageQ = Annotated[str | None, Query(description="Village or community: 12-digit code, a code prefix (township), or its name.")]
PeriodQ = Annotated[str | None, Query(description="2026, 2026-Q1, 2026-03, 2026-03-05 or a range 2025-10/2026-09; default the twelve months up to the latest event.")]
PlatformQ = Annotated[Literal[tuple(PLATFORMS)] | None,  # type: ignore[valid-type]
                       Query(description="One of the four platforms; default all.")]
BasemapQ = Annotated[str | None, Query(description=f"Base map: {', '.join(BASEMAPS)} (default $GRIDGEO_MAP_BASEMAP, else none).")]
InlineQ = Annotated[bool, Query(description="Inline the scripts: one self-contained HTML file.")]

_HTML = {200: {"content": {"text/html": {}}, "description": "An HTML page with the map."}}


def _basemap(name: str | None, depth: int):
    """The base map asked for; a tile archive is linked where this router serves it."""
    return get_basemap(name, archive_url="../" * depth + "basemap/{z}/{x}/{y}")


async def _page(build, inline: bool, depth: int, **kwargs) -> HTMLResponse:
    """The page of the map ``build(**kwargs)`` makes, built and rendered in the heavy pool."""
    assets = None if inline else "../" * depth + "assets"

    def render() -> str:
        return offline.render_html(build(**kwargs), assets_url=assets)

    return HTMLResponse(await run_heavy(render))


_bearer = HTTPBearer(auto_error=False)


def _reads_households(principal: Principal) -> bool:
    """Whether the map may draw the households (the roles of GET /v1/households)."""
    return principal.role in HOUSEHOLD_READERS


@router.post("/tickets", summary="A short-lived ticket for the map pages' URLs",
             responses={401: {"description": "No valid token in the Authorization header."}})
async def ticket(store: StoreDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]):
    """A ticket to put in a map page's URL (``/maps/events?ticket=...``) instead of the
    token: it opens the map pages only, as the token's user, for GRIDGEO_TICKET_SECONDS
    (default 5 minutes), and dies with the token. Send the token in the Authorization
    header (a ticket or a token in the URL cannot get one)."""
    if credentials is None:
        raise Unauthenticated("send the token as Authorization: Bearer <token> to get a map ticket")
    principal = authenticate(store, credentials.credentials)
    seconds = get_settings().ticket_seconds
    value, expires = issue_map_ticket(credentials.credentials, ticket_secret(), seconds)
    return {"ticket": value, "username": principal.username, "expires_in": seconds,
            "expires_at": dt.datetime.fromtimestamp(expires, dt.timezone.utc).isoformat()}


@router.get("/coverage", response_class=HTMLResponse, responses=_HTML,
            summary="Grids coloured by staffing completeness")
async def coverage(store: StoreDep, principal: PrincipalDep, village: VillageQ = None, at: AtQuery = None,
                   plan: PlanQuery = None, basemap: BasemapQ = None, inline: InlineQ = False):
    """Grids of the plan in force coloured by staffing (grid head, full-time worker,
    instructor), village boundaries, tooltips with the people of each grid, over the
    roads and rivers; the households too for those who read the household register.
    Above GRIDGEO_MAP_TILED_GRIDS grids (20,000), the grids, roads and village outlines are
    drawn from /tiles (vector tiles) and coloured from each tile's grid codes."""
    return await _page(coverage_from_store, inline, 0, store=store, village=village, at=at, plan=plan,
                       basemap=_basemap(basemap, 0), households=_reads_households(principal),
                       tiles_url="../tiles/")


@router.get("/workload", response_class=HTMLResponse, responses=_HTML,
            summary="Events per worker, per 100 households, open or overdue, per grid")
async def workload(
    store: StoreDep,
    principal: Annotated[Principal, roles(*ACCOUNT_ROLES, what="the workload map")],
    measure: Annotated[Literal["per_worker", "per_100_households", "open", "overdue"],
                       Query(description="What the colours show.")] = "per_worker",
    village: VillageQ = None, period: PeriodQ = None, platform: PlatformQ = None,
    at: AtQuery = None, plan: PlanQuery = None, basemap: BasemapQ = None, inline: InlineQ = False,
):
    """A choropleth of the grids' events over the period, with a legend. Above
    GRIDGEO_MAP_TILED_GRIDS grids the grids are drawn from /tiles, as on the coverage map,
    coloured from each tile's grid codes."""
    return await _page(workload_from_store, inline, 0, store=store, measure=measure, period=period,
                       platform=platform, village=village, at=at, plan=plan, basemap=_basemap(basemap, 0),
                       households=_reads_households(principal), tiles_url="../tiles/")


@router.get("/events", response_class=HTMLResponse, responses=_HTML,
            summary="Events as clusters and heat, with a time slider")
async def events(store: StoreDep,
                 principal: Annotated[Principal, roles(*EVENT_READERS, what="the events map")],
                 village: VillageQ = None, period: PeriodQ = None,
                 platform: PlatformQ = None, at: AtQuery = None, plan: PlanQuery = None, basemap: BasemapQ = None,
                 inline: InlineQ = False):
    """The period's events clustered (coloured by platform and status) and as heat,
    with a slider over the period and platform switches. Only the events of the caller's
    scope: a grid worker's map shows their own grids and their events."""
    return await _page(events_from_store, inline, 0, store=store, period=period, platform=platform,
                       village=village, at=at, plan=plan, basemap=_basemap(basemap, 0),
                       scope=event_filters(principal, "the events map"),
                       households=_reads_households(principal), tiles_url="../tiles/")


#: Who sees the patrol map: those who see every event (every grid, every track), and grid
#: workers (their grids, the tracks inside them), as GET /v1/patrols.
PATROL_MAP_READERS = ("grid_worker", *sorted(ALL_EVENTS))


@router.get("/patrols", response_class=HTMLResponse, responses=_HTML,
            summary="Patrol tracks over the grids, grids coloured by patrol coverage")
async def patrols(store: StoreDep,
                  principal: Annotated[Principal, roles(*PATROL_MAP_READERS, what="the patrol map")],
                  village: VillageQ = None,
                  period: Annotated[str | None, Query(description="2026, 2026-Q1, 2026-03, 2026-03-05 or a range; "
                                                                   "default this month.")] = None,
                  basemap: BasemapQ = None, inline: InlineQ = False):
    """The period's patrol tracks (switchable) over the grids, each grid coloured by the
    share of its households within GRIDGEO_PATROL_COVERAGE_M of a track; tooltips with
    patrols, distance, time, coverage of households and roads, check-ins (the figures of
    GET /v1/stats/patrols). A grid worker's map shows their own grids and the tracks
    inside them only."""
    scope = sorted(principal.grids) if principal.role == "grid_worker" else None
    return await _page(patrol_from_store, inline, 0, store=store, period=period, village=village,
                       grids_in_scope=scope, basemap=_basemap(basemap, 0),
                       households=_reads_households(principal))


@router.get("/plans/{id}", response_class=HTMLResponse, responses=_HTML,
            dependencies=[roles("planner", "admin", "command_room", "leadership", what="plan maps")],
            summary="A plan beside the plan in force, changed grids highlighted")
async def plan(
    store: StoreDep,
    id: Annotated[str, Path(description="Plan id or version.")],
    against: Annotated[str | None, Query(description="Compare with this plan (id or version) instead of the plan in force.")] = None,
    at: Annotated[dt.date | None, Query(description="Compare with the plan in force on this date (default today).")] = None,
    village: VillageQ = None, basemap: BasemapQ = None, inline: InlineQ = False,
):
    """Two maps side by side, kept on the same view: the plan in force and plan ``id``."""
    return await _page(plan_from_store, inline, 1, store=store, plan=id, against=against, at=at,
                       village=village, basemap=_basemap(basemap, 1))


#: The largest box (degrees each way) the ground is read for: a neighbourhood, not a county.
GROUND_SPAN = 0.2


@router.get("/ground", summary="Roads and rivers around a place, for a small map (gridgeo-maps.js GG.lines)",
            responses={200: {"content": {"application/json": {}}}})
async def ground(store: StoreDep,
                 principal: Annotated[Principal, roles(*ACCOUNT_ROLES, what="the ground")],
                 bbox: Annotated[str, Query(max_length=200, description="lon/lat x0,y0,x1,y1 (WGS84), at most "
                                                                        f"{GROUND_SPAN} degrees each way.")]):
    """The store's roads and rivers within ``bbox`` (and about a kilometre around it), as the
    maps draw them (gridgeo.maps.ground: the same classes, colours and encoding):
    ``{"roads": spec, "rivers": spec}``, each for ``GG.lines`` of gridgeo-maps.js. The
    console's event page draws them under the event's grid."""
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox.split(","))
    except ValueError:
        raise InvalidInput(f"bbox must be four numbers x0,y0,x1,y1, not {bbox[:60]!r}") from None
    if not (lonlat_ok(x0, y0) and lonlat_ok(x1, y1)) or not (0 <= x1 - x0 <= GROUND_SPAN and 0 <= y1 - y0 <= GROUND_SPAN):
        raise InvalidInput(f"bbox must be lon/lat x0,y0,x1,y1 with x0<=x1, y0<=y1, at most {GROUND_SPAN} degrees "
                           "each way")

    def build() -> str:
        import folium

        from gridgeo.maps.base import Basemap
        from gridgeo.maps.ground import add_ground, read_ground

        layers = add_ground(folium.Map(tiles=None), read_ground(store, (x0, y0, x1, y1), households=False),
                            Basemap())
        return '{"roads":%s,"rivers":%s}' % (layers[0].payload, layers[1].payload)

    return Response(await run_heavy(build), media_type="application/json",
                    headers={"Cache-Control": "private, max-age=300"})


@router.get("/basemap/{z}/{x}/{y}", summary="A tile of the base map archive (GRIDGEO_MAP_TILES)",
            responses={200: {"content": {"image/png": {}}}, 404: {"description": "No such tile."}})
def basemap_tile(z: Annotated[int, Path(ge=0, le=archive.MAX_ZOOM)], x: Annotated[int, Path(ge=0)],
                 y: Annotated[int, Path(ge=0)]):
    """The base map's tile z/x/y (XYZ numbering), from the MBTiles or PMTiles file GRIDGEO_MAP_TILES
    (raster, or vector tiles as `gridgeo map basemap` builds them)."""
    import os

    path = os.environ.get("GRIDGEO_MAP_TILES")
    if not path:
        raise NotFound("no tile archive is configured (GRIDGEO_MAP_TILES)")
    tiles = archive.open_archive(path)
    data = tiles.tile(z, x, y)
    headers = {"Cache-Control": "public, max-age=86400"}
    if tiles.vector and data[:2] == b"\x1f\x8b":  # gzipped MVT, as MBTiles and PMTiles store them
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=tiles.media_type, headers=headers)


@router.get("/assets/{path:path}", include_in_schema=False)
def asset(path: str):
    """The vendored Leaflet files the map pages link to."""
    try:
        file = offline.asset_file(path)
    except offline.OfflineError:
        raise NotFound(f"no map asset {path!r}") from None
    return FileResponse(file, headers={"Cache-Control": "public, max-age=86400"})
