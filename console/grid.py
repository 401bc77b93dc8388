"""The grid worker's page (``/grid``): their grids on a map with their events, what waits for
their check (verify or send back), the open events, the households and the staff. Built
for a phone-sized screen first.

Scope and masking are the core's: events through :func:`gridgeo.auth.scoped` (their grids
only), households through :func:`gridgeo.households.households_in` and
:func:`gridgeo.auth.mask_household`.
"""

from __future__ import annotations

import json

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from gridgeo import auth
from gridgeo.api.resources import get_lookup
from gridgeo.console.base import Current, StoreDep, render, require_role
from gridgeo.console.events import grid_names
from gridgeo.events import queries
from gridgeo.events.workflow import OPEN_STATES, waiting_for
from gridgeo.households import households_in
from gridgeo.layers import STAFF_ROLES
from gridgeo.lookup import Lookup
from gridgeo.store import schema

router = APIRouter(include_in_schema=False)

HOUSEHOLDS_SHOWN = 100


@router.get("/grid")
def grid_page(request: Request, store: StoreDep, who: Current, lookup: Annotated[Lookup, Depends(get_lookup)]):
    require_role(who, {"grid_worker"})
    principal = who.principal
    grids = sorted(principal.grids)
    scope = auth.scoped(principal, grid=None, platform=None, department=None)
    to_check = queries.list_events(store, state=waiting_for(principal.role), order="updated_at",
                                   limit=50, **scope)
    open_events = queries.list_events(store, state=sorted(OPEN_STATES), order="deadline_at", limit=100, **scope)
    frame = store.read("grids", where=schema.grids.c.code.in_(grids)) if grids else None
    grid_json = frame[["code", "name", "households", "geometry"]].to_json(drop_id=True) if frame is not None \
        and len(frame) else None
    points = [[e["code"], e["position"]["lat"], e["position"]["lon"], e["overdue"]]
              for e in open_events["items"] if e.get("position")]
    households = households_in(store, grids=grids, limit=HOUSEHOLDS_SHOWN, lookup=lookup) if grids else {"total": 0, "items": []}
    st = schema.staff
    with store.engine.connect() as conn:
        staff = [dict(r) for r in conn.execute(
            select(st.c.code, st.c.name, st.c.phone, st.c.role, st.c.grid_code)
            .where(st.c.grid_code.in_(grids)).order_by(st.c.grid_code, st.c.role, st.c.code)).mappings()]
    mask = lambda items: [auth.mask_event(e, principal) for e in items]  # noqa: E731
    names = {c: n for c, n in zip(frame["code"], frame["name"]) if n} if frame is not None else {}
    names |= grid_names(store, [e for e in to_check["items"] + open_events["items"] if e.get("grid_code") not in names])
    return render(request, "grid.html", {
        "names": names,
        "grids": frame.drop(columns="geometry").to_dict("records") if frame is not None else [],
        "grid_json": grid_json, "events_json": json.dumps(points),
        "to_check": mask(to_check["items"]), "open": mask(open_events["items"]),
        "open_total": open_events["total"],
        "households": [auth.mask_household(h, principal) for h in households["items"]],
        "households_total": households["total"], "staff": staff, "staff_roles": STAFF_ROLES})
