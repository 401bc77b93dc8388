"""The phone app (移动端) of grid workers: ``/field``, an installable page (PWA) that works
without signal.

- ``GET /field``: the page (report an event with the phone's position, camera photo,
  category and address; the events of the worker's grids waiting for their check, to verify
  or send back with a photo; the list of what waits to be sent).
- ``GET /field/data``: what the page shows, as JSON (the catalogue, the tasks, the CSRF
  token); the service worker keeps the last answer for when there is no signal.
- ``POST /field/events``: a report (multipart: the part ``event`` as JSON, photos as parts
  ``photos``), ``POST /field/events/{code}/actions``: verify or rework (parts ``action``,
  ``version``, ``note``, ``photos``). Both take the session's cookie and the CSRF token in
  the header ``X-CSRF-Token``, and an ``Idempotency-Key``: the phone makes one key per
  queued report or action, so a send cut off half-way and sent again is done once.
- ``POST /field/patrols``: a patrol the page recorded (the app's JSON track, as ``POST
  /v1/patrols`` takes it), with its Idempotency-Key; ``POST /field/checkins``: a check-in
  (签到) at the phone's position, with the time it was made.
- ``GET /field/manifest.webmanifest`` and ``GET /sw.js`` (the service worker, at the root so
  that it may control ``/field``).

Every rule is the core's: intake with its idempotency keys
(:func:`gridgeo.events.intake.prepare_intake`), actions with theirs
(:func:`gridgeo.events.service.take_action`), photos (:mod:`gridgeo.photos`: decoded,
re-encoded, attached idempotently), scope (:mod:`gridgeo.auth`). The browser side is
``static/field/`` (field.js; outbox.js, the queue and its sender, shared with sw.js, which sends
it by Background Sync where the browser has it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridgeo import auth
from gridgeo.api.uploads import read_upload
from gridgeo.config import get_settings
from gridgeo.console.base import STATIC_DIR, Current, Refused, StoreDep, render, require_csrf, require_role, \
    secure_headers
from gridgeo.errors import InvalidEvent, InvalidInput, MalformedBody, NotFound
from gridgeo.events import catalogue, queries
from gridgeo.events.intake import EventIn, position_from_photos, prepare_intake, submit_intake
from gridgeo.events.service import NOTE_REQUIRED, take_action
from gridgeo.events.workflow import ACTIONS, STATES, waiting_for
from gridgeo.layers import MAX_LENGTHS
from gridgeo.patrols import check_in, clean_track, parse_json, record_patrol
from gridgeo.photos import add_photos, ingest
from gridgeo.sessions import Session

router = APIRouter(include_in_schema=False)

#: Who uses the phone app.
ROLES = frozenset({"grid_worker"})
#: The actions the phone app takes on a task.
FIELD_ACTIONS = ("verify", "rework")
FIELD_DIR = STATIC_DIR / "field"
_MAX = MAX_LENGTHS["events"]


async def header_checked(request: Request, who: Current) -> Session:
    """A state-changing request of the phone app (multipart, read by the route): the CSRF
    token in the header ``X-CSRF-Token`` and this server's origin, else 403."""
    require_csrf(request, who, request.headers.get("x-csrf-token") or "")
    require_role(who, ROLES)
    return who


HeaderChecked = Annotated[Session, Depends(header_checked)]


class FieldReport(BaseModel):
    """A report from the phone: the browser gives WGS84 coordinates and the time it was made
    (a report queued without signal keeps the time it was made)."""

    model_config = ConfigDict(extra="forbid")

    category_code: str = Field(min_length=1, max_length=_MAX["category_code"])
    description: str | None = Field(None, max_length=_MAX["description"])
    address: str | None = Field(None, max_length=_MAX["address"])
    lon: float | None = None
    lat: float | None = None
    reported_at: dt.datetime | None = None


async def _multipart(request: Request) -> tuple[dict, list[bytes]]:
    """The form's text fields and its photos (each bounded by GRIDGEO_MAX_PHOTO_BYTES; the
    body as a whole is bounded before, by the API's BodyGuard)."""
    if not request.headers.get("content-type", "").lower().startswith(
            ("multipart/form-data", "application/x-www-form-urlencoded")):
        raise MalformedBody("send a form: multipart/form-data (with photos) or application/x-www-form-urlencoded")
    settings = get_settings()
    try:
        form = await request.form(max_files=settings.max_photos_per_report, max_fields=8,
                                  max_part_size=64 * 1024)
    except Exception:  # noqa: BLE001 - a body that is no form (or too many parts): 400, never a 500
        raise MalformedBody("the form could not be read (multipart, at most "
                            f"{settings.max_photos_per_report} photos)") from None
    try:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        photos = [await read_upload(p) for p in form.getlist("photos")]
    finally:
        await form.close()
    return fields, photos


def _key(request: Request) -> str:
    key = request.headers.get("idempotency-key")
    if not key:
        raise InvalidEvent("the phone app sends an Idempotency-Key with every report and action")
    return key


@router.get("/field")
def field_page(request: Request, who: Current):
    require_role(who, ROLES)
    return render(request, "field.html", {"actions": {a: ACTIONS[a].label for a in FIELD_ACTIONS}})


@router.get("/field/data")
def field_data(store: StoreDep, who: Current):
    """The catalogue and the worker's tasks (events of their grids waiting for their check)."""
    require_role(who, ROLES)
    principal = who.principal
    scope = auth.scoped(principal, grid=None, platform=None, department=None)
    tasks = queries.list_events(store, state=waiting_for(principal.role), order="updated_at", limit=100, **scope)
    keep = ("code", "version", "state", "category_code", "category_name", "description", "address",
            "grid_code", "reported_at", "deadline_at")
    items = [{k: e.get(k) for k in keep} | {"state_label": STATES.get(e["state"], e["state"])}
             for e in (auth.mask_event(e, principal) for e in tasks["items"])]
    categories = [{"code": c["code"], "name": c["name"]} for c in catalogue.list_categories(store)]
    body = {"user": principal.name, "username": principal.username, "grids": sorted(principal.grids), "csrf": who.csrf,
            "categories": categories, "tasks": items, "note_required": sorted(NOTE_REQUIRED & set(FIELD_ACTIONS))}
    return secure_headers(JSONResponse(body, headers={"Vary": "Cookie"}))


@router.post("/field/events")
async def field_report(request: Request, store: StoreDep, who: HeaderChecked):
    """One report from the phone, with its photos, done once per Idempotency-Key."""
    key = _key(request)
    fields, uploads = await _multipart(request)
    try:
        body = FieldReport.model_validate_json(fields.get("event") or "")
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidEvent(f"the report (part 'event') is not valid: {where}") from None
    if body.reported_at is not None and body.reported_at.tzinfo is None:
        raise InvalidEvent("reported_at needs a time zone offset")
    principal = who.principal
    ev = EventIn(source="patrol", category_code=body.category_code, reported_at=body.reported_at,
                 description=body.description, address=body.address, lon=body.lon, lat=body.lat,
                 crs="wgs84" if body.lon is not None else None, reporter_name=principal.name,
                 reporter_staff_code=principal.staff_code)
    photos = await anyio.to_thread.run_sync(lambda: [ingest(data) for data in uploads]) if uploads else []
    if photos:
        ev = position_from_photos(replace(ev, attachments=[p.digest for p in photos]), [p.gps for p in photos])
    prepared = prepare_intake(store, ev, idempotency_key=key, actor=principal.actor)
    result = await asyncio.wrap_future(submit_intake(store, prepared))
    code = result.event["code"]
    attached = []
    if photos:  # after the commit, idempotent: a retry attaches what is missing, nothing twice
        attached = await anyio.to_thread.run_sync(lambda: add_photos(
            store, code, photos, stage="before", actor=principal.actor, role=principal.role, check_state=False))
    return secure_headers(JSONResponse(
        {"code": code, "state": result.event["state"], "grid_code": result.event.get("grid_code"),
         "replayed": result.replayed, "photos": len(attached)}, status_code=201))


@router.post("/field/events/{code}/actions")
async def field_action(code: str, request: Request, store: StoreDep, who: HeaderChecked):
    """Verify or rework a task from the phone, with "after" photos, done once per
    Idempotency-Key (the photos are attached first: attaching is idempotent too)."""
    key = _key(request)
    fields, uploads = await _multipart(request)
    action = fields.get("action")
    if action not in FIELD_ACTIONS:
        raise InvalidEvent(f"action: the phone app takes {' or '.join(FIELD_ACTIONS)}")
    try:
        version = int(fields.get("version") or "")
    except ValueError:
        raise InvalidEvent("version: the version of the event the phone showed") from None
    note = (fields.get("note") or "")[:4000] or None
    principal = who.principal
    code = code[:32]
    allow = lambda row: auth.sees_event(principal, row)  # noqa: E731

    def run():
        photos = [ingest(data) for data in uploads]
        event = queries.get_event(store, code)
        if not allow(event):
            raise NotFound(f"no event {code!r}")
        if photos and event["version"] == version:  # not for a retry of an action already taken
            add_photos(store, code, photos, stage="after", actor=principal.actor, role=principal.role)
        return take_action(store, code, action, role=principal.role, actor=principal.actor, version=version,
                           note=note, data={}, allow=allow, idempotency_key=key)

    event = await anyio.to_thread.run_sync(run)
    return secure_headers(JSONResponse({"code": code, "state": event["state"], "version": event["version"],
                                        "state_label": STATES.get(event["state"], event["state"])}))


@router.post("/field/patrols")
async def field_patrol(request: Request, store: StoreDep, who: HeaderChecked):
    """A patrol recorded by the page (``{"crs": "wgs84", "points": [[lon, lat, epoch_ms], ...]}``),
    cleaned and kept once per Idempotency-Key (the core's, as ``POST /v1/patrols``)."""
    key = _key(request)
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        raise MalformedBody("send the track as application/json")
    data = await request.body()
    principal = who.principal

    def run():
        raw = parse_json(data)
        return record_patrol(store, raw, clean_track(raw), username=principal.username,
                             staff_code=principal.staff_code, idempotency_key=key)

    record = await anyio.to_thread.run_sync(run)
    return secure_headers(JSONResponse(record, status_code=201))


class FieldCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lon: float
    lat: float
    at: dt.datetime


@router.post("/field/checkins")
async def field_checkin(request: Request, store: StoreDep, who: HeaderChecked):
    """A check-in (签到) at the phone's position (WGS84) at the time it was made; sent again
    (the answer was lost), the same worker and time make one check-in."""
    _key(request)
    try:
        body = FieldCheckIn.model_validate_json(await request.body())
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidInput(f"the check-in is not valid: {where}") from None
    principal = who.principal
    answer = await anyio.to_thread.run_sync(lambda: check_in(
        store, username=principal.username, staff_code=principal.staff_code, grids=sorted(principal.grids),
        lon=body.lon, lat=body.lat, at=body.at))
    return secure_headers(JSONResponse(answer, status_code=201))


@router.get("/field/manifest.webmanifest")
def manifest():
    return FileResponse(FIELD_DIR / "manifest.webmanifest", media_type="application/manifest+json",
                        headers={"Cache-Control": "public, max-age=3600"})


@router.get("/sw.js")
def service_worker():
    """The service worker, served from the root (its scope is ``/field``); never cached by
    the browser's HTTP cache, so that a new version is picked up at the next visit."""
    return FileResponse(FIELD_DIR / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
