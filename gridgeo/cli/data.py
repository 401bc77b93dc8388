"""The ``gridgeo`` command line."""

from __future__ import annotations

import datetime as dt
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridgeo.config import get_settings
from gridgeo.errors import GridgeoError, ImportFailed
from gridgeo.layers import LAYERS

app = typer.Typer(
    help="gridgeo: grid management for grassroots governance (网格化管理).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

DatabaseOpt = Annotated[
    Optional[str],
    typer.Option("--database", "-d", help="Database URL (default: $GRIDGEO_DATABASE_URL or sqlite:///gridgeo.db).",
                 envvar="GRIDGEO_DATABASE_URL", show_envvar=False),
]


def _store(url: str | None, *, check: bool = True):
    from gridgeo.store import Store

    store = Store(url)
    if check:
        store.check()
    return store


@contextmanager
def _progress(total: int, what: str):
    """A progress bar over named steps; yields the callback the core functions take."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(what, total=total)

        def step(message: str) -> None:
            bar.update(task, description=message, advance=1)

        yield step
        bar.update(task, completed=total)


def _fail(exc: GridgeoError) -> None:
    if isinstance(exc, ImportFailed):
        _print_report(exc.report, console=err)
        err.print(f"[red]import failed: {len(exc.report.errors)} error(s); nothing was written[/red]")
        raise typer.Exit(1)
    err.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1)


def run_import(run, *, report: Path | None, steps: int, what: str):
    """Run an import (``run(progress)``) under a progress bar; print its problems and write
    them to ``report`` whether it succeeds or fails. A failure exits 1."""
    try:
        with _progress(steps, what) as step:
            result = run(step)
    except GridgeoError as exc:
        if report and isinstance(exc, ImportFailed):
            exc.report.to_csv(report)
        _fail(exc)
    _print_report(result.report)
    if report:
        result.report.to_csv(report)
    return result


def _print_report(report, *, console: Console = out, limit: int = 200) -> None:
    if not report.problems:
        return
    table = Table("severity", "file", "layer", "row", "field", "message", show_lines=False)
    for p in report.problems[:limit]:
        colour = "red" if p.severity == "error" else "yellow"
        table.add_row(f"[{colour}]{p.severity}[/{colour}]", Path(p.file).name if p.file else "",
                      p.layer, "" if p.row is None else str(p.row), p.field or "", p.message)
    console.print(table)
    if len(report.problems) > limit:
        console.print(f"... and {len(report.problems) - limit} more (use --report FILE.csv for all)")


def _parse_date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-01-31", param_hint=name) from None


@app.command()
def init(
    database: DatabaseOpt = None,
    sample: Annotated[bool, typer.Option("--sample/--no-sample", help="Load the sample township if the database is empty.")] = False,
    replay: Annotated[bool, typer.Option("--replay/--no-replay", help="With --sample: also replay its year of events through the workflow.")] = True,
) -> None:
    """Create or upgrade the database schema; optionally load the sample data."""
    from gridgeo.sample import load_sample

    try:
        store = _store(database, check=False)
        store.migrate()
        out.print(f"schema ready: {store}")
        if sample:
            if store.is_empty():
                with _progress(12, "loading the sample") as step:
                    result = load_sample(store, progress=step)
                out.print("sample loaded: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
                if replay:
                    from gridgeo.events.replay import replay_sample

                    with _progress(5, "replaying the sample year of events") as step:
                        done = replay_sample(store, progress=step)
                    out.print(f"sample year replayed: {done.events:,} events, {done.actions:,} actions "
                              f"through the intake rules and the state machine")
            else:
                out.print("the database holds data already: sample not loaded")
    except GridgeoError as exc:
        _fail(exc)


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Files to import as one batch (.gpkg .geojson .shp .parquet .csv).")],
    database: DatabaseOpt = None,
    layer: Annotated[Optional[str], typer.Option(help=f"Layer the files hold: {', '.join(LAYERS)}. Default: from the file or layer name.")] = None,
    crs: Annotated[Optional[str], typer.Option(help="CRS of the input when it declares none or a wrong one: wgs84, cgcs2000, gcj02, bd09, EPSG:xxxx.")] = None,
    repair: Annotated[bool, typer.Option(help="Repair invalid polygons instead of refusing them.")] = False,
    replace: Annotated[bool, typer.Option(help="Update rows whose code is already in the database; staff: the "
                                               "file becomes the roster of the grids it names (says whom it removes).")] = False,
    plan: Annotated[Optional[str], typer.Option(help="Version label of the new grid plan (default: its effective date).")] = None,
    plan_name: Annotated[Optional[str], typer.Option(help="Name of the new grid plan.")] = None,
    effective_from: Annotated[Optional[str], typer.Option(help="Date the new grid plan takes effect (default: today).")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Also write every problem found to this CSV file.")] = None,
) -> None:
    """Validate files and import them in one transaction; nothing is written if anything is wrong."""
    from gridgeo.io import import_files

    start = _parse_date(effective_from, "--effective-from")
    result = run_import(
        lambda step: import_files(_store(database), files, layer=layer, crs=crs, repair=repair,
                                  replace=replace, plan_version=plan, plan_name=plan_name,
                                  effective_from=start, progress=step),
        report=report, steps=2 * len(LAYERS) + 2, what="importing")
    for line in result.summary():
        out.print(line)


@app.command()
def validate(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Files to check as one batch; none: check the plan in force in the database.")] = None,
    database: DatabaseOpt = None,
    layer: Annotated[Optional[str], typer.Option(help="Layer the files hold, when their names do not say it.")] = None,
    crs: Annotated[Optional[str], typer.Option(help="CRS of the input when it declares none.")] = None,
    standalone: Annotated[bool, typer.Option(help="Check the files on their own, without the database.")] = False,
    replace: Annotated[bool, typer.Option(help="Check as `import --replace` would, listing what it would remove.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Also write every problem found to this CSV file.")] = None,
) -> None:
    """Check files (or the database) for every import error, writing nothing. Exits 1 on errors."""
    from gridgeo.io import validate_files

    try:
        if files:
            store = None if standalone else _store_if_ready(database)
            with _progress(2 * len(LAYERS) + 2, "validating") as step:
                rep = validate_files(files, store=store, layer=layer, crs=crs, replace=replace, progress=step)
        else:
            rep = _validate_store(_store(database))
    except GridgeoError as exc:
        _fail(exc)
    _print_report(rep)
    if report:
        rep.to_csv(report)
    gaps = sum("gap:" in p.message for p in rep.errors)
    overlaps = sum("overlaps" in p.message for p in rep.errors)
    out.print(f"{len(rep.errors)} error(s), {len(rep.warnings)} warning(s); gaps: {gaps}, overlaps: {overlaps}")
    if rep.errors:
        raise typer.Exit(1)


def _store_if_ready(url):
    from gridgeo.errors import StoreError

    try:
        return _store(url)
    except StoreError:
        return None


def _validate_store(store):
    from gridgeo.io import validate_store

    return validate_store(store)


@app.command()
def export(
    layer: Annotated[str, typer.Argument(help=f"Layer to export: {', '.join(LAYERS)}, or 'all' (GeoPackage only).")],
    output: Annotated[Path, typer.Argument(help="Output file; the format comes from the suffix.")],
    database: DatabaseOpt = None,
    at: Annotated[Optional[str], typer.Option(help="For grids: the plan in force on this date (default today).")] = None,
    plan: Annotated[Optional[str], typer.Option(help="For grids: this plan version instead.")] = None,
) -> None:
    """Export a layer (or every layer) to GeoPackage, GeoJSON, Shapefile, GeoParquet or CSV."""
    from gridgeo.io import export_layer

    when = _parse_date(at, "--at")
    try:
        store = _store(database)
        layers = list(LAYERS) if layer == "all" else [layer]
        if layer == "all" and output.suffix.lower() != ".gpkg":
            raise typer.BadParameter("'all' writes one GeoPackage: use a .gpkg file", param_hint="OUTPUT")
        if layer != "all" and layer not in LAYERS:
            raise typer.BadParameter(f"use one of {', '.join(LAYERS)} or all", param_hint="LAYER")
        if layer == "all" and output.exists():
            output.unlink()
        with _progress(len(layers), "exporting") as step:
            for name in layers:
                n = export_layer(store, name, output, at=when, plan=plan)
                step(f"{name}: {n}")
                out.print(f"{name}: {n} rows -> {output}")
    except GridgeoError as exc:
        _fail(exc)


@app.command()
def info(database: DatabaseOpt = None) -> None:
    """Show what is in the database: tables, plans and the plan in force."""
    try:
        store = _store(database)
        out.print(f"database: {store}  (schema {store.revision()})")
        table = Table("table", "rows")
        for name, n in store.counts().items():
            table.add_row(name, f"{n:,}")
        out.print(table)
        plans = store.plans()
        if len(plans):
            ptable = Table(*[str(c) for c in plans.columns])
            for row in plans.itertuples(index=False):
                ptable.add_row(*["" if v is None else str(v) for v in row])
            out.print(ptable)
        current = store.plan_in_force()
        out.print(f"plan in force today: {current['version'] if current else 'none'}")
    except GridgeoError as exc:
        _fail(exc)


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


# -- commands defined in their own modules ---------------------------------------------
# Core capabilities (locate, plan, events, report ...) register from gridgeo modules, one
# line each below. Layers above the core (maps) register through the "gridgeo.cli" entry
# point group, so that the core never imports them.
_CORE_COMMANDS: list[str] = [
    "gridgeo.cli_locate",
    "gridgeo.cli_plan",
    "gridgeo.cli_events",
    "gridgeo.cli_report",
    "gridgeo.cli_archive",
    "gridgeo.cli_users",
]


def _register_commands() -> None:
    import importlib
    from importlib.metadata import entry_points

    for module in _CORE_COMMANDS:
        importlib.import_module(module).register(app)
    for ep in entry_points(group="gridgeo.cli"):
        try:
            register = ep.load()
        except ImportError as exc:  # a plugin that is not installed must not take the CLI down
            err.print(f"[yellow]warning:[/yellow] command plugin {ep.name!r} not loaded: {exc}")
            continue
        register(app)


_register_commands()

