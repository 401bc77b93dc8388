"""The leadership's dashboard (驾驶舱, ``/dashboard``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gridgeo.console.base import Current, StoreDep, render, require_role

router = APIRouter(include_in_schema=False)

READERS = frozenset({"leadership", "command_room", "admin"})


@router.get("/dashboard")
def dashboard(request: Request, store: StoreDep, who: Current):
    require_role(who, READERS)
    return render(request, "dashboard.html", {})
