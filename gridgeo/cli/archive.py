"""``gridgeo archive``: events and their histories as partitioned Parquet, for dask.

An archive is what ``gridgeo report --archive DIR`` assesses and ``gridgeo locate DIR``
locates on a dask cluster when a year of events outgrows one machine
(:mod:`gridgeo.scale`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridgeo.cli.common import DatabaseOpt, err, open_store, out, progress

app = typer.Typer(
    help="Event archives for dask: export events and histories to partitioned Parquet, show one. "
    "Assess with `gridgeo report --archive DIR`.",
    no_args_is_help=True,
)


@app.command("export")
def export(
    directory: Annotated[
        Path, typer.Argument(help="The archive directory to write (empty or new).")
    ],
    partition_on: Annotated[
        str, typer.Option(help="One partition per month or year of reporting (CST).")
    ] = "month",
    chunk: Annotated[
        int, typer.Option(help="Events read and written per step.", min=1000)
    ] = 100_000,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing archive.")
    ] = False,
    database: DatabaseOpt = None,
) -> None:
    """Export every event and its history (event_actions) to DIRECTORY as partitioned Parquet.

    events/month=YYYY-MM/*.parquet is GeoParquet (one row per event, its WGS84 position);
    actions/month=YYYY-MM/*.parquet holds the histories of those events; reference/ holds the
    catalogue, grid and division names and the staff roster the assessment labels rows with.

    Example: gridgeo archive export /shared/archive then
    gridgeo report --archive /shared/archive --period 2026 --scheduler tcp://10.0.0.5:8786
    """
    from gridgeo.scale.archive import export_archive

    store = open_store(database)
    total = store.counts().get("events", 0)
    with progress(max(1, -(-total // chunk)), "exporting") as step:
        info = export_archive(
            store,
            directory,
            partition_on=partition_on,
            chunk=chunk,
            overwrite=overwrite,
            progress=step,
        )
    parts = info["partitions"]
    span = f"{parts[0]} to {parts[-1]}" if parts else "none"
    out.print(
        f"{info['events']:,} events and {info['actions']:,} actions in {len(parts)} partitions "
        f"({info['partition_on']} {span}) -> {directory}"
    )
    year = parts[-1][:4] if parts else "2026"
    err.print(f"assess it with: gridgeo report --archive {directory} --period {year}")


@app.command("info")
def info(
    directory: Annotated[
        Path, typer.Argument(help="An archive written by `gridgeo archive export`.")
    ],
) -> None:
    """What an archive holds: when it was exported, its partitions, events and actions."""
    from gridgeo.scale.archive import archive_info

    meta = archive_info(directory)
    parts = meta["partitions"]
    out.print(f"archive {directory}: exported {meta['exported_at']} from {meta['source']}")
    out.print(
        f"{meta['events']:,} events, {meta['actions']:,} actions, {len(parts)} partitions by "
        f"{meta['partition_on']}" + (f": {parts[0]} to {parts[-1]}" if parts else "")
    )
