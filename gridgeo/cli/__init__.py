"""The ``gridgeo`` command line: the Typer app and the command groups registered on it.

This package is the composition root of the core (it may import every part of it; nothing in
the core imports it). Each module holds one command group; :mod:`gridgeo.cli.common` holds
what they share. Layers above the core (the maps) add their commands through the
``gridgeo.cli`` entry point group, so that the core never imports them.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer
from typer.core import TyperGroup

from gridgeo.cli import archive, data, events, locate, notify, plan, report, serve, users
from gridgeo.cli.common import deprecated, err, fail
from gridgeo.errors import GridgeoError

__all__ = ["app"]

#: Old spellings of command groups, still taken (hidden) with a note on stderr. The old
#: ``gridgeo plan OPTIONS`` (now ``plan new``) is resolved by the plan group (cli/plan.py).
ALIASES = {"plans": "plan"}


class _Gridgeo(TyperGroup):
    """The root group: resolves the old spellings, and prints any gridgeo error the same way."""

    def resolve_command(self, ctx, args):  # noqa: D102 - click's
        if args and args[0] in ALIASES:
            new = ALIASES[args[0]]
            deprecated(f"gridgeo {args[0]}", f"gridgeo {new}")
            args = [new, *args[1:]]
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):  # noqa: D102 - click's
        try:
            return super().invoke(ctx)
        except GridgeoError as exc:
            fail(exc)


app = typer.Typer(
    cls=_Gridgeo,
    help="gridgeo: grid management for grassroots governance (网格化管理).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(data.app)  # init, import, validate, export, info
app.add_typer(serve.app)  # serve
app.add_typer(locate.app)  # locate
app.add_typer(plan.app, name="plan")
app.add_typer(events.app, name="events")
app.add_typer(report.app)  # report
app.add_typer(archive.app, name="archive")
app.add_typer(users.app, name="users")
app.add_typer(notify.app, name="notify")


def _register_plugins() -> None:
    """Commands of the layers above the core (``gridgeo map``), from the entry point group."""
    for ep in entry_points(group="gridgeo.cli"):
        try:
            register = ep.load()
        except ImportError as exc:  # a plugin that is not installed must not take the CLI down
            err.print(f"[yellow]warning:[/yellow] command plugin {ep.name!r} not loaded: {exc}")
            continue
        register(app)


_register_plugins()
