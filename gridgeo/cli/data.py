"""``gridgeo init|import|validate|export|info``: the database and the layers in it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from gridgeo.cli.common import (AtOpt, DatabaseOpt, EffectiveFromOpt, EncodingOpt, SheetOpt, open_store,
                                out, print_report, progress, run_import)
from gridgeo.layers import LAYERS

app = typer.Typer()


@app.command()
def init(
    database: DatabaseOpt = None,
    sample: Annotated[bool, typer.Option("--sample/--no-sample", help="Load the sample township if the database is empty.")] = False,
    replay: Annotated[bool, typer.Option("--replay/--no-replay", help="With --sample: also replay its year of events through the workflow.")] = True,
) -> None:
    """Create or upgrade the database schema; optionally load the sample data."""
    from gridgeo.sample import load_sample

    store = open_store(database, check=False)
    store.migrate()
    out.print(f"schema ready: {store}")
    if not sample:
        return
    if not store.is_empty():
        out.print("the database holds data already: sample not loaded")
        return
    with progress(12, "loading the sample") as step:
        result = load_sample(store, progress=step)
    out.print("sample loaded: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    if replay:
        from gridgeo.events.replay import replay_sample

        with progress(5, "replaying the sample year of events") as step:
            done = replay_sample(store, progress=step)
        out.print(f"sample year replayed: {done.events:,} events, {done.actions:,} actions "
                  f"through the intake rules and the state machine")


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Files to import as one batch (.gpkg .geojson .shp .parquet "
                                                     ".csv .xlsx; tables with lon/lat or wkt columns).")],
    database: DatabaseOpt = None,
    layer: Annotated[Optional[str], typer.Option(help=f"Layer the files hold: {', '.join(LAYERS)}. Default: from the file or layer name.")] = None,
    crs: Annotated[Optional[str], typer.Option(help="CRS of the input when it declares none or a wrong one: wgs84, cgcs2000, gcj02, bd09, EPSG:xxxx.")] = None,
    repair: Annotated[bool, typer.Option(help="Repair invalid polygons instead of refusing them.")] = False,
    replace: Annotated[bool, typer.Option(help="Update rows whose code is already in the database; staff: the "
                                               "file becomes the roster of the grids it names (says whom it removes).")] = False,
    plan: Annotated[Optional[str], typer.Option(help="Version label of the new grid plan (default: its effective date).")] = None,
    plan_name: Annotated[Optional[str], typer.Option(help="Name of the new grid plan.")] = None,
    effective_from: EffectiveFromOpt = None,
    report: Annotated[Optional[Path], typer.Option(help="Also write every problem found to this CSV file.")] = None,
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
) -> None:
    """Validate files and import them in one transaction; nothing is written if anything is wrong."""
    from gridgeo.io import import_files

    result = run_import(
        lambda step: import_files(open_store(database), files, layer=layer, crs=crs, repair=repair,
                                  replace=replace, plan_version=plan, plan_name=plan_name,
                                  effective_from=effective_from, progress=step, encoding=encoding,
                                  sheet=sheet),
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
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
) -> None:
    """Check files (or the database) for every import error, writing nothing. Exits 1 on errors."""
    from gridgeo.io import validate_files, validate_store

    if files:
        store = None if standalone else _store_if_ready(database)
        with progress(2 * len(LAYERS) + 2, "validating") as step:
            rep = validate_files(files, store=store, layer=layer, crs=crs, replace=replace,
                                 progress=step, encoding=encoding, sheet=sheet)
    else:
        rep = validate_store(open_store(database))
    print_report(rep)
    if report:
        rep.to_csv(report)
    gaps = sum("gap:" in p.message for p in rep.errors)
    overlaps = sum("overlaps" in p.message for p in rep.errors)
    out.print(f"{len(rep.errors)} error(s), {len(rep.warnings)} warning(s); gaps: {gaps}, overlaps: {overlaps}")
    if rep.errors:
        raise typer.Exit(1)


def _store_if_ready(url: str | None):
    """The store to check files against, or None where there is no migrated database yet."""
    from gridgeo.errors import StoreError

    try:
        return open_store(url)
    except StoreError:
        return None


@app.command()
def export(
    layer: Annotated[str, typer.Argument(help=f"Layer to export: {', '.join(LAYERS)}, or 'all' (GeoPackage only).")],
    output: Annotated[Path, typer.Argument(help="Output file; the format comes from the suffix.")],
    database: DatabaseOpt = None,
    at: AtOpt = None,
    plan: Annotated[Optional[str], typer.Option(help="For grids: this plan version instead.")] = None,
) -> None:
    """Export a layer (or every layer) to GeoPackage, GeoJSON, Shapefile, GeoParquet or CSV."""
    from gridgeo.io import export_layer

    store = open_store(database)
    layers = list(LAYERS) if layer == "all" else [layer]
    if layer == "all" and output.suffix.lower() != ".gpkg":
        raise typer.BadParameter("'all' writes one GeoPackage: use a .gpkg file", param_hint="OUTPUT")
    if layer != "all" and layer not in LAYERS:
        raise typer.BadParameter(f"use one of {', '.join(LAYERS)} or all", param_hint="LAYER")
    if layer == "all" and output.exists():
        output.unlink()
    with progress(len(layers), "exporting") as step:
        for name in layers:
            n = export_layer(store, name, output, at=at, plan=plan)
            step(f"{name}: {n}")
            out.print(f"{name}: {n} rows -> {output}")


@app.command()
def info(database: DatabaseOpt = None) -> None:
    """Show what is in the database: tables, plans and the plan in force."""
    store = open_store(database)
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
