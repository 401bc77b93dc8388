"""The gridgeo HTTP API. Thin: every route calls gridgeo."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import problems
from api.routers import events, grids, health, lookup, maps, open311, plans, stats
from gridgeo import __version__


def create_app() -> FastAPI:
    # FastAPIOffline serves the Swagger UI and ReDoc assets itself: /docs works with no
    # network, like everything else gridgeo shows.
    app = FastAPIOffline(
        title="gridgeo",
        version=__version__,
        description="Grid management for grassroots governance (网格化管理): grids, lookups, events.",
    )
    problems.install(app)
    app.include_router(health.router)
    app.include_router(grids.router)
    # -- further routers, one line each --
    app.include_router(plans.router)
    app.include_router(lookup.router)
    app.include_router(events.router)
    app.include_router(open311.router)
    app.include_router(maps.router)
    app.include_router(stats.router)
    return app


app = create_app()
