"""The gridgeo HTTP API. Thin: every route calls gridgeo."""

from __future__ import annotations

from fastapi import FastAPI

from api import problems
from api.routers import grids, health
from gridgeo import __version__


def create_app() -> FastAPI:
    app = FastAPI(
        title="gridgeo",
        version=__version__,
        description="Grid management for grassroots governance (网格化管理): grids, lookups, events.",
    )
    problems.install(app)
    app.include_router(health.router)
    app.include_router(grids.router)
    # -- further routers, one line each --
    return app


app = create_app()
