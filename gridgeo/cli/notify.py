"""``gridgeo notify``: the outbox worker and the deadline sweeper as commands."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from gridgeo.cli.common import DatabaseOpt, open_store, out

app = typer.Typer(help="Notifications (通知): deliver the outbox, sweep for early warnings.",
                  no_args_is_help=True)


@app.command("run")
def run(
    database: DatabaseOpt = None,
    once: Annotated[bool, typer.Option(help="One round (sweep, fan out, deliver what is due), then exit.")] = False,
) -> None:
    """Deliver notifications and hand-offs, and sweep for events turning yellow or red.

    ``gridgeo serve`` runs the same worker in each of its processes
    (GRIDGEO_OUTBOX_WORKER); run this instead when that is off, or next to it: any number
    of workers share one database."""
    from gridgeo.notify.worker import OutboxWorker, run_once

    store = open_store(database)
    if once:
        out.print(run_once(store))
        return
    worker = OutboxWorker(store).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        worker.stop()


@app.command("sweep")
def sweep(database: DatabaseOpt = None) -> None:
    """Record the open events that turned yellow (临期) or red (超期) since the last sweep."""
    from gridgeo.notify.worker import sweep_warnings

    got = sweep_warnings(open_store(database))
    out.print(f"yellow {got['yellow']:,}, red {got['red']:,}")
