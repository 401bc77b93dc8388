"""The gridgeo HTTP API. Thin: every route calls gridgeo."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from gridgeo.api import problems
from gridgeo.api.fastpath import FastLookup
from gridgeo.api.metrics import Metrics
from gridgeo.api.metrics import router as metrics_router
from gridgeo.api.middleware import BodyGuard, ObserveRequests, RateLimit, enable_request_log, install_log_redaction
from gridgeo.api.routers import events, grids, health, lookup, maps, notify, ogc, open311, patrols, photos, plans, stats, tiles, users
from gridgeo import __version__
from gridgeo.config import get_settings
from gridgeo.console import install as install_console

#: The public lookup endpoints, rate limited per client IP (GRIDGEO_LOOKUP_RATE). Anonymous
#: event reports are limited too (GRIDGEO_PUBLIC_INTAKE_RATE); callers with a token are not.
RATE_LIMITED_PATHS = ("/v1/lookup",)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """The outbox worker and deadline sweeper run in the server's process
    (``GRIDGEO_OUTBOX_WORKER``; off, run ``gridgeo notify run`` on its own)."""
    worker = None
    if get_settings().outbox_worker:
        from gridgeo.api.resources import _open_store, get_store
        from gridgeo.notify.worker import OutboxWorker

        override = app.dependency_overrides.get(get_store)  # a test's store
        worker = OutboxWorker(override() if override else _open_store()).start()
    stop_warming = _warm_tiles(app) if get_settings().tiles_warm else None
    try:
        yield
    finally:
        if worker is not None:
            worker.stop()
        if stop_warming is not None:
            stop_warming.set()


def _warm_tiles(app: FastAPI):
    """Fill the tile cache in a background thread (gridgeo.tiles.warm: a province map's
    opening tiles, only above GRIDGEO_MAP_TILED_GRIDS grids), then, if it did, prepare the
    lookup of the plan in force (a click on a tiled grid asks it; at 100,000 grids its
    first build took some 10 s, which the map's tiles waited for); the event that stops it."""
    import logging
    import threading

    from gridgeo.api.resources import _lookup_for, _open_store, get_store
    from gridgeo.maps.base import tiled_threshold
    from gridgeo.tiles import warm

    stop = threading.Event()

    def run():
        try:
            override = app.dependency_overrides.get(get_store)
            store = override() if override else _open_store()
            if warm(store, min_grids=tiled_threshold(), stop=stop) and not stop.is_set():
                _lookup_for(store).prepare()
        except Exception:  # a cold cache is slower, not wrong: say so and carry on
            logging.getLogger("gridgeo.tiles").exception("warming the tile cache failed")

    threading.Thread(target=run, name="gridgeo-tiles-warm", daemon=True).start()
    return stop


def create_app() -> FastAPI:
    # FastAPIOffline serves the Swagger UI and ReDoc assets itself: /docs works with no
    # network, like everything else gridgeo shows.
    app = FastAPIOffline(
        lifespan=_lifespan,
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
    app.include_router(photos.router)
    app.include_router(patrols.router)
    app.include_router(open311.router)
    app.include_router(maps.router)
    app.include_router(ogc.router)
    app.include_router(tiles.router)
    app.include_router(stats.router)
    app.include_router(users.router)
    app.include_router(notify.router)
    app.include_router(metrics_router)
    # The web console (工作台) at /: its pages, /static/ and its handlers (gridgeo.console).
    install_console(app)
    # Innermost first: the lookup's hot path (plain lookups without FastAPI's routing),
    # then operations: the body guard, the rate limits, then metrics
    # and the JSON request log around everything, 413s and 429s included.
    settings = get_settings()
    app.state.metrics = Metrics()
    app.add_middleware(FastLookup, metrics=app.state.metrics)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)
    app.add_middleware(RateLimit, paths=RATE_LIMITED_PATHS, rate=settings.lookup_rate, burst=settings.lookup_burst)
    app.add_middleware(RateLimit, paths=("/v1/events",), methods=("POST",), anonymous_only=True,
                       rate=settings.public_intake_rate, burst=settings.public_intake_burst)
    # The reporter's status page takes a token: limited per client IP against guessing.
    app.add_middleware(RateLimit, pattern=r"/v1/events/[^/]+/status", route="/v1/events/{code}/status",
                       methods=("GET",), rate=settings.reporter_status_rate, burst=settings.reporter_status_burst)
    app.add_middleware(ObserveRequests, metrics=app.state.metrics, log=settings.request_log)
    install_log_redaction()
    if settings.request_log:
        enable_request_log()
    return app


app = create_app()
