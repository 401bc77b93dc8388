"""The web console (工作台): the service's pages for the people who run the four platforms.

Server-rendered (Jinja2 templates) with a little htmx, mounted at ``/`` of the API's app
(:func:`install`): ``/v1``, ``/maps`` and ``/docs`` are unchanged. Every rule is the core's:
log-in, sessions and throttling (:mod:`gridgeo.sessions`), scope and masking
(:mod:`gridgeo.auth`), the life cycle (:mod:`gridgeo.events.service` and
:mod:`gridgeo.events.workflow`), reads (:mod:`gridgeo.events.queries`), assessment
(:mod:`gridgeo.assess`). From the API the console takes only the process-wide store
(:mod:`gridgeo.api.resources`), so that a test's store override reaches both (an
import-linter contract in pyproject.toml says so).

Modules: :mod:`.base` (templates, the session and CSRF dependencies, formatting),
:mod:`.login` (log-in, log-out, password), :mod:`.events` (command room, event page and its
actions, search, supervision, task lists), :mod:`.grid` (the grid worker's page), :mod:`.field` (the grid worker's phone app, offline-capable),
:mod:`.photos` (the images of an event's photos), :mod:`.dashboard` (the leadership's 驾驶舱), :mod:`.plans` (the planner's plans: report, map, renumbering and staff before publication), :mod:`.editor` (the map editor of a draft), :mod:`.admin` (users,
passwords, sessions, tokens).
"""

from __future__ import annotations

__all__ = ["install"]


def install(app) -> None:
    """Add the console's pages, its static files and its handlers to ``app``."""
    from gridgeo.console import admin, base, dashboard, editor, events, field, grid, login, photos, plans

    for module in (login, events, photos, grid, field, dashboard, plans, editor, admin):
        app.include_router(module.router)
    base.install_handlers(app)
