"""The dependencies routers declare, each once, as ``Annotated`` aliases (the layout of
FastAPI's full-stack project template): a parameter ``store: StoreDep`` gets the store,
``principal: Admin`` the caller if they are the administrator (401/403 otherwise).

- resources: :data:`StoreDep`, :data:`LookupDep` (providers in :mod:`gridgeo.api.resources`);
- the caller: :data:`PrincipalDep` (anyone, the anonymous public included: the route
  decides), and the role-requiring aliases below (:func:`gridgeo.api.auth.roles`);
- query parameters several routers share: :data:`AtQuery`, :data:`PlanQuery`.

Routers import from here only; routes that must act on ``Depends`` directly (a
router-wide guard) use :func:`roles`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Query

from gridgeo.api.auth import PrincipalDep, roles
from gridgeo.api.resources import get_lookup, get_store
from gridgeo.auth import ALL_EVENTS, HOUSEHOLD_READERS, PLAN_READERS, PLAN_WRITERS, Principal
from gridgeo.lookup import Lookup
from gridgeo.store import Store

__all__ = ["get_store", "get_lookup", "roles", "StoreDep", "LookupDep", "PrincipalDep", "Admin",
           "PlanWriter", "CatalogueEditor", "CommandRoomReader", "HouseholdReader", "AtQuery", "PlanQuery",
           "PLAN_READERS", "PLAN_WRITERS", "HOUSEHOLD_READERS"]

# -- resources --------------------------------------------------------------------------

StoreDep = Annotated[Store, Depends(get_store)]
LookupDep = Annotated[Lookup, Depends(get_lookup)]

# -- who may call -----------------------------------------------------------------------

#: Who reads and writes plans, who reads the household register: gridgeo.auth's, once
#: (PLAN_READERS, PLAN_WRITERS, HOUSEHOLD_READERS, imported above).

Admin = Annotated[Principal, roles("admin", what="managing users and tokens")]
PlanWriter = Annotated[Principal, roles(*PLAN_WRITERS, what="changing plans")]
CatalogueEditor = Annotated[Principal, roles("command_room", "admin", what="editing the catalogue")]
CommandRoomReader = Annotated[Principal, roles(*ALL_EVENTS, what="the command room's queues")]
HouseholdReader = Annotated[Principal, roles(*HOUSEHOLD_READERS, what="the household register")]

# -- shared query parameters ------------------------------------------------------------

AtQuery = Annotated[dt.date | None, Query(description="Answer from the plan in force on this date (default today).")]
PlanQuery = Annotated[str | None, Query(description="Answer from this plan version instead of a date.")]
