"""What every ``gridgeo`` command shares, declared once: the consoles, the ``--database``
and date options, opening the store, the progress bar, the table of import problems, the
import runner and how an error is printed.

Errors need no ``try`` in a command: a :class:`~gridgeo.errors.GridgeoError` raised anywhere
below the ``gridgeo`` command is printed by :func:`fail` (the root group in
:mod:`gridgeo.cli` catches it), so commands only handle what they want to say differently.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, Optional, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridgeo.errors import GridgeoError, ImportFailed, InternalError

#: Results, tables and anything a script may pipe on.
out = Console()
#: Progress, warnings, errors and notes: never mixed into a command's output.
err = Console(stderr=True)

R = TypeVar("R")


# -- options --------------------------------------------------------------------------------

DatabaseOpt = Annotated[
    Optional[str],
    typer.Option("--database", "-d", help="Database URL (default: $GRIDGEO_DATABASE_URL or sqlite:///gridgeo.db).",
                 envvar="GRIDGEO_DATABASE_URL", show_envvar=False),
]


def parse_date(value: str | dt.date | None) -> dt.date | None:
    """An ISO date (2026-01-31) from the command line; a usage error (exit 2) otherwise.

    Used as the ``parser`` of the date options, so Click names the option in the message.
    """
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-01-31") from None


AtOpt = Annotated[
    Optional[dt.date],
    typer.Option(parser=parse_date, metavar="DATE",
                 help="The plan in force on this date (default today)."),
]
EffectiveFromOpt = Annotated[
    Optional[dt.date],
    typer.Option(parser=parse_date, metavar="DATE",
                 help="Date the plan takes effect (default today); the plan in force until "
                      "then ends that day."),
]

#: The text encoding of CSV input, and the sheet of a workbook: every command reading tables.
EncodingOpt = Annotated[
    Optional[str],
    typer.Option(help="Text encoding of CSV input (default: detected: UTF-8 with or without BOM, "
                      "GB18030/GBK as Excel and WPS save it); e.g. gb18030, utf-8, big5."),
]
SheetOpt = Annotated[Optional[str], typer.Option(help="Sheet of .xlsx input (default: the first).")]

#: The scheduler option's help, shared by ``locate``, ``report`` and ``archive``.
SCHEDULER_HELP = (
    "Where dask runs: a scheduler address (tcp://host:8786), local (a cluster of one worker "
    "per core on this machine), local:N, or threads (this process; the default). Default "
    "$GRIDGEO_DASK_SCHEDULER. On a cluster every worker needs gridgeo installed and the paths "
    "on a shared file system."
)


def scheduler_from(option: str | None) -> str | None:
    """The ``--scheduler`` value, else ``$GRIDGEO_DASK_SCHEDULER``, else None (threads)."""
    return option or os.environ.get("GRIDGEO_DASK_SCHEDULER") or None


# -- the store, progress and problems ----------------------------------------------------------

def open_store(url: str | None, *, check: bool = True):
    """The store at ``url`` (default: the settings'), checked to be migrated unless ``check=False``.

    Raises
    ------
    StoreError
        The database is missing or not migrated (the message says to run ``gridgeo init``).
    """
    from gridgeo.store import Store

    store = Store(url)
    if check:
        store.check()
    return store


@contextmanager
def progress(total: int, what: str) -> Iterator[Callable[[str], None]]:
    """A progress bar over named steps on stderr; yields the callback the core functions take.

    Shown only on a terminal, and gone when done, so that output piped on stays clean.
    """
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(what, total=total)

        def step(message: str) -> None:
            bar.update(task, description=message, advance=1)

        yield step
        bar.update(task, completed=total)


def print_report(report, *, console: Console = out, limit: int = 200) -> None:
    """The problems of a :class:`~gridgeo.validate.Report` as a table: severity, file, layer,
    row, field, message; the first ``limit`` of them."""
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


# -- errors -----------------------------------------------------------------------------------

def fail(exc: GridgeoError) -> NoReturn:
    """Print ``exc`` on stderr the way the command line reports errors, and exit 1.

    A failed import lists its problems; an :class:`~gridgeo.errors.InternalError` is a bug in
    gridgeo, so its traceback is printed too, for the bug report.
    """
    if isinstance(exc, ImportFailed):
        print_report(exc.report, console=err)
        err.print(f"[red]import failed: {len(exc.report.errors)} error(s); nothing was written[/red]")
        raise typer.Exit(1)
    if isinstance(exc, InternalError):
        from rich.traceback import Traceback

        err.print(Traceback.from_exception(type(exc), exc, exc.__traceback__))
        err.print(f"[red]internal error (a bug in gridgeo, please report it):[/red] {exc}")
        raise typer.Exit(1)
    # One line, whatever the terminal's width (the terminal wraps it; a log keeps it whole).
    err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
    raise typer.Exit(1)


def deprecated(old: str, new: str) -> None:
    """One line on stderr: the spelling ``old`` still works but is now ``new``."""
    # typer.echo, not rich: one line, never wrapped to the terminal's width.
    typer.echo(f"note: `{old}` is now `{new}`; the old spelling will be removed.", err=True)


def run_import(run: Callable[[Callable[[str], None]], R], *, report: Path | None, steps: int,
               what: str) -> R:
    """Run an import (``run(progress)``) under a progress bar; print its problems and write
    them to ``report`` whether it succeeds or fails. A failure exits 1."""
    try:
        with progress(steps, what) as step:
            result = run(step)
    except ImportFailed as exc:
        if report:
            exc.report.to_csv(report)
        fail(exc)
    print_report(result.report)
    if report:
        result.report.to_csv(report)
    return result
