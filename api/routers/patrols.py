"""Patrols (巡查) and check-ins (签到) of grid workers.

``POST /v1/patrols`` takes a track as GPX (multipart, part ``file``) or as the app's JSON
(``{"crs": "gcj02", "points": [[lon, lat, epoch_ms], ...]}``); it is converted to WGS84,
cleaned (the answer's ``cleaning`` says what was dropped) or refused (422 saying why), and
kept as a line with its times. An ``Idempotency-Key`` makes a retried upload one patrol.
``POST /v1/checkins`` marks that a worker was at a grid, verified by position.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gridgeo.api.deps import PrincipalDep, StoreDep, roles
from gridgeo.api.middleware import run_heavy
from gridgeo.api.schemas.base import VALIDATED
from gridgeo.api.schemas.patrols import CheckIn, Patrol, PatrolPage
from gridgeo.api.uploads import read_upload
from gridgeo.auth import ALL_EVENTS, Principal, require
from gridgeo.config import get_settings
from gridgeo.errors import InvalidTrack, MalformedBody
from gridgeo.patrols import check_in, clean_track, list_patrols, parse_gpx, parse_json, record_patrol
from gridgeo.assess.periods import parse_period

router = APIRouter(tags=["patrols"])

Worker = Annotated[Principal, roles("grid_worker", what="patrols and check-ins")]


def _track_body() -> dict:
    return {"required": True, "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["points"],
            "properties": {"crs": {"type": "string", "description": "wgs84 (default), gcj02, bd09, cgcs2000"},
                           "points": {"type": "array", "description": "[lon, lat, time] with time in epoch "
                                      "milliseconds (or ISO 8601 with an offset)",
                                      "items": {"type": "array", "items": {}, "minItems": 3, "maxItems": 3}}}}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary", "description": "A GPX file (WGS84)."}}}}}}


def _read(data: bytes, kind: str):
    raw = parse_gpx(data) if kind == "gpx" else parse_json(data)
    return raw, clean_track(raw)


@router.post("/v1/patrols", status_code=201, summary="Upload a patrol track (GPX or the app's JSON)",
             response_model=Patrol, **VALIDATED,
             responses={422: {"description": "A track that cannot be used: says why."},
                        413: {"description": "Over GRIDGEO_MAX_TRACK_BYTES."}},
             openapi_extra={"requestBody": _track_body(), "parameters": [{
                 "name": "Idempotency-Key", "in": "header", "required": False,
                 "schema": {"type": "string", "maxLength": 255},
                 "description": "A retry with the same key and track returns the first answer."}]})
async def post_patrol(request: Request, store: StoreDep, principal: Worker):
    """Keep a patrol of the calling grid worker. Points with invalid coordinates, times
    not moving forward or reached at an impossible speed are dropped and counted in
    ``cleaning``; a track with fewer than two usable points is refused."""
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=2)
        part = form.get("file")
        if part is None:
            raise MalformedBody("a GPX track goes in a file part named 'file'")
        data = await read_upload(part, limit=get_settings().max_track_bytes, what="track")
        await form.close()
        kind = "gpx"
    else:
        data = await request.body()
        kind = "json"
    if not data:
        raise InvalidTrack("the request has no track")
    raw, cleaned = await run_heavy(_read, data, kind)
    key = request.headers.get("idempotency-key")
    record = await anyio.to_thread.run_sync(lambda: record_patrol(
        store, raw, cleaned, username=principal.username, staff_code=principal.staff_code, idempotency_key=key))
    headers = {"Idempotent-Replayed": "true"} if record["replayed"] else {}
    return JSONResponse(record, status_code=201, headers=headers)


@router.get("/v1/patrols", summary="Patrols: a grid worker's own, or everyone's for the command room",
            response_model=PatrolPage, **VALIDATED)
def get_patrols(store: StoreDep, principal: PrincipalDep,
                period: Annotated[str | None, Query(description="2026, 2026-Q3, 2026-07 or a range")] = None,
                worker: Annotated[str | None, Query(description="A username (the command room).")] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0):
    require(principal, ("grid_worker", *sorted(ALL_EVENTS)), "reading patrols")
    who = principal.username if principal.role == "grid_worker" else worker
    return list_patrols(store, username=who, period=parse_period(period) if period else None,
                        limit=limit, offset=offset)


class CheckInIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "lon": 119.4921714, "lat": 28.4201021, "crs": "wgs84"}})

    lon: float
    lat: float
    crs: str | None = Field(None, description="wgs84 (default; what a browser gives), gcj02, bd09, cgcs2000")
    grid_code: str | None = Field(None, max_length=15, description="Default: the worker's grid holding the point.")
    at: dt.datetime | None = Field(None, description="When, with offset (a check-in made offline and sent later); "
                                                     "default now.")


@router.post("/v1/checkins", status_code=201, summary="Check in (签到) at a grid", response_model=CheckIn,
             **VALIDATED)
def post_checkin(body: CheckInIn, store: StoreDep, principal: Worker):
    """A location-verified mark that the worker was at one of their grids: ``verified``
    when inside it or within GRIDGEO_CHECKIN_DISTANCE_M of it (``reasons`` says why not)."""
    return check_in(store, username=principal.username, staff_code=principal.staff_code,
                    grids=sorted(principal.grids), lon=body.lon, lat=body.lat, crs=body.crs or "wgs84",
                    grid_code=body.grid_code, at=body.at)
