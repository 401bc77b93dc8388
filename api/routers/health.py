"""Liveness and database health."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gridgeo.api.deps import StoreDep
from gridgeo.api.schemas.base import VALIDATED
from gridgeo.api.schemas.health import Health
from gridgeo import __version__
from gridgeo.errors import StoreError

router = APIRouter(tags=["health"])


@router.get("/health", summary="Service and database health", response_model=Health, **VALIDATED,
            responses={503: {"model": Health, "description": "The database does not answer, or its schema is old."}})
def health(store: StoreDep):
    """200 when the database answers and its schema is current, 503 otherwise."""
    started = time.perf_counter()
    try:
        store.check()
        plan = store.plan_in_force()
    except StoreError as exc:
        return JSONResponse(
            {"status": "error", "database": store.dialect, "detail": str(exc), "version": __version__},
            status_code=503,
        )
    return {
        "status": "ok",
        "version": __version__,
        "database": store.dialect,
        "schema": store.revision(),
        "plan_in_force": plan["version"] if plan else None,
        "database_ms": round((time.perf_counter() - started) * 1000, 2),
    }
