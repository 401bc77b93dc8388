"""``gridgeo events``: import event files, replay the sample year, housekeeping."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gridgeo.cli.common import DatabaseOpt, EncodingOpt, SheetOpt, open_store, out, progress, run_import

app = typer.Typer(help="Events (事件): import, replay the sample year, housekeeping.",
                  no_args_is_help=True)


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Event files (CSV, .xlsx, Parquet, GeoPackage) imported as one batch.")],
    database: DatabaseOpt = None,
    crs: Annotated[Optional[str], typer.Option(help="CRS of rows that name none: wgs84, cgcs2000, gcj02, bd09.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Also write every problem found to this CSV file.")] = None,
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
) -> None:
    """Import events through the intake rules, all rows or none.

    Events are located, routed, dated and checked for duplicates. A bad row fails the
    import with a report naming the file, row and field of every problem. Valid events
    outside the jurisdiction or without a place go to the command room's queues, not dropped."""
    from gridgeo.events.importing import import_events

    result = run_import(lambda step: import_events(open_store(database), files, crs=crs, progress=step,
                                                      encoding=encoding, sheet=sheet),
                        report=report, steps=4, what="importing events")
    out.print(f"imported {result.events:,} events ({result.history:,} history lines)")
    out.print(f"located by: {_counts(result.located_by)}")
    out.print(f"routes: {_counts(result.routes)}; possible duplicates: {result.duplicates:,}")


@app.command()
def replay(
    database: DatabaseOpt = None,
    folder: Annotated[Optional[Path], typer.Option(help="Folder with events.csv and event_actions.csv (default: the sample).")] = None,
    refused: Annotated[Optional[Path], typer.Option(help="Write the trails the state machine refused to this CSV.")] = None,
) -> None:
    """Replay the sample year (events and their action trails) through intake and the state machine.

    Events of a plain ``gridgeo init --sample`` are taken over."""
    from rich.table import Table

    from gridgeo.events.replay import replay_sample
    from gridgeo.events.workflow import STATES

    store = open_store(database)
    with progress(5, "replaying") as step:
        result = replay_sample(store, folder, progress=step)
    out.print(f"replayed {result.events:,} events, {result.actions:,} actions "
              f"({result.history:,} history lines, {result.implied_reviews} implied leadership reviews, "
              f"{result.adopted:,} plain-imported events taken over) in {result.seconds} s")
    table = Table("final state", "", "events")
    for state, n in result.final_states.items():
        table.add_row(state, STATES[state], f"{n:,}")
    out.print(table)
    out.print(f"located by: {_counts(result.located_by)}")
    out.print(f"routes: {_counts(result.routes)}")
    out.print(f"possible duplicates flagged: {result.duplicates_flagged:,} "
              f"({result.duplicates_rejected_as_such} of them rejected as 重复上报 in the trail)")
    out.print(f"trails refused by the state machine: {len(result.refused)}")
    if len(result.refused):
        out.print(result.refused.head(20).to_string(index=False))
    if refused:
        from gridgeo.io.exporting import neutralise_formulas

        neutralise_formulas(result.refused).to_csv(refused, index=False)


@app.command("purge-keys")
def purge_keys(
    database: DatabaseOpt = None,
    hours: Annotated[float, typer.Option(help="Forget idempotency keys older than this.")] = 24.0,
) -> None:
    """Forget old idempotency keys (their stored answers hold reporters' tokens)."""
    import datetime as dt

    from gridgeo.events.intake import purge_idempotency_keys

    n = purge_idempotency_keys(open_store(database), dt.timedelta(hours=hours))
    out.print(f"{n} idempotency key(s) purged")
