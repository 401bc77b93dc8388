"""``gridgeo serve``: the HTTP API (gridgeo.api) under uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from gridgeo.cli.common import DatabaseOpt, err
# The body of serve() keeps the names it had in gridgeo/cli.py (_store, _fail), so that
# changes to it made before the cli/ package existed apply unchanged.
from gridgeo.cli.common import fail as _fail
from gridgeo.cli.common import open_store as _store
from gridgeo.config import get_settings
from gridgeo.errors import GridgeoError

app = typer.Typer()


@app.command()
def serve(
    database: DatabaseOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (use PostgreSQL for more than one).")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request (JSON lines, no query strings).")] = True,
) -> None:
    """Serve the HTTP API (docs at /docs) with uvicorn."""
    import secrets

    import uvicorn

    from gridgeo.config import uvicorn_options

    url = database or get_settings().database_url
    os.environ["GRIDGEO_DATABASE_URL"] = url
    try:
        _store(url)
    except GridgeoError as exc:
        _fail(exc)
    if workers > 1 and url.startswith("sqlite"):
        err.print("[yellow]warning:[/yellow] several workers on SQLite serialise their writes; use PostgreSQL")
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics sums every worker's counters (prometheus_client's multi-process mode);
        # a fresh directory per start, as the mode requires.
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gridgeo-metrics-")
    if not access_log:
        os.environ["GRIDGEO_REQUEST_LOG"] = "false"
    # One map-ticket secret per start, shared by the workers (they inherit the environment).
    os.environ.setdefault("GRIDGEO_TICKET_SECRET", secrets.token_urlsafe(32))
    get_settings.cache_clear()
    uvicorn.run("gridgeo.api.main:app", host=host, port=port, workers=workers, reload=reload,
                log_level="info", **uvicorn_options())
