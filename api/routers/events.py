"""Events: intake, lists, one event with its history, actions, supervision, the command
room's queues, the reporter's view and rating, and the event catalogue.

Who is calling comes from the bearer token (gridgeo.api.auth): intake is open to the anonymous
public; reading and acting are scoped by gridgeo.auth (a grid worker sees the events of
their grids, a department what was routed to it, a platform office its platform; an
event outside the caller's scope answers 404, like an unknown one) and personal data is
masked for roles that do not need it. The reporter follows and rates their own event
with the token given at intake.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Literal

from dataclasses import replace

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridgeo.api.deps import CatalogueEditor, CommandRoomReader, PrincipalDep, StoreDep
from gridgeo.api.middleware import run_heavy
from gridgeo.api.problems import problem
from gridgeo.api.uploads import read_upload
from gridgeo.api.schemas.base import VALIDATED
from gridgeo.api.schemas.events import (Category, CommandRoom, CreatedEvent, Event, EventPage, ReporterView,
                                        Supervision, Workflow)
from gridgeo import auth
from gridgeo.auth import Principal
from gridgeo.config import get_settings
from gridgeo.errors import (IllegalTransition, InvalidEvent, MalformedBody, NotFound, RoleNotAllowed, StaleVersion,
                            Unauthenticated, VersionRequired)
from gridgeo.events import catalogue, queries
from gridgeo.events.intake import EventIn, position_from_photos, prepare_intake, submit_intake
from gridgeo.events.service import take_action
from gridgeo.events.workflow import (ACTIONS, ACTOR_OF_ACCOUNT, FINAL_STATES, OVERDUE_STATES, REJECT_REASONS, STATES,
                                     WORKFLOW_ACTORS)
from gridgeo.photos import add_photos, ingest
from gridgeo.layers import ACCOUNT_ROLES, MAX_LENGTHS, PLATFORMS, SOURCES
from gridgeo.timezone import CHINA as CST

router = APIRouter(tags=["events"])


def _refusal(exc: Exception):
    """409/403 problems that also list what is allowed (the handler in gridgeo.api.problems gives
    the same type, title and detail; this adds the machine-readable lists)."""
    zh = {"detail_zh": exc.zh} if getattr(exc, "zh", None) else {}
    if isinstance(exc, IllegalTransition):
        return problem(409, "illegal transition", str(exc), "/problems/illegal-transition",
                       state=exc.state, allowed_actions=exc.allowed, **zh)
    if isinstance(exc, RoleNotAllowed):
        return problem(403, "role not allowed", str(exc), "/problems/role-not-allowed", allowed_roles=exc.roles,
                       **zh)
    if isinstance(exc, StaleVersion):
        return problem(409, "stale version", str(exc), "/problems/stale-version", current_version=exc.current,
                       **zh)
    raise exc


def _scoped(principal: Principal, what: str, **requested) -> dict:
    """The caller's filters narrowed to their scope (raises for roles that read no events)."""
    return auth.scoped(principal, what, **requested)


# -- schemas at the edge ----------------------------------------------------------------


#: The text limits of the events layer (the import's too).
_MAX = MAX_LENGTHS["events"]


class EventCreate(BaseModel):
    """An event as reported. Give coordinates (in ``crs``), an address, both or neither."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "source": "app", "category_code": "ZF003", "description": "路边垃圾堆积",
        "lon": 119.4921714, "lat": 28.4201021, "crs": "gcj02",
        "reporter_name": "黄敏", "reporter_phone": "19944667827",
        "photos": ["https://example.org/p/1.jpg"]}})

    source: Literal[tuple(SOURCES)] = Field(description="; ".join(f"{k} {v}" for k, v in SOURCES.items()))  # type: ignore[valid-type]
    category_code: str = Field(min_length=1, max_length=_MAX["category_code"], description="事项编码 (GET /v1/categories)")
    reported_at: dt.datetime | None = Field(None, description="Time reported, with offset; default now.")
    description: str | None = Field(None, max_length=_MAX["description"])
    lon: float | None = None
    lat: float | None = None
    crs: str | None = Field(None, description="wgs84 (default), cgcs2000, gcj02 or bd09")
    address: str | None = Field(None, max_length=_MAX["address"])
    reporter_name: str | None = Field(None, max_length=_MAX["reporter_name"])
    reporter_phone: str | None = Field(None, max_length=_MAX["reporter_phone"])
    reporter_staff_code: str | None = Field(None, max_length=_MAX["reporter_staff_code"], description="For patrols: the grid worker's code.")
    photos: list[str] = Field(default_factory=list, max_length=20, description="Photo URLs.")
    related_categories: list[str] = Field(default_factory=list, max_length=10,
                                          description="Other categories the event involves.")
    beyond_level: str | None = Field(None, max_length=500, description="Why it is beyond this level, if known.")
    notify_reporter: bool = Field(False, description="The reporter agrees to be told by SMS, at reporter_phone (a "
                                  "mobile number), when the event is closed or not accepted (双反馈).")


class ActionIn(BaseModel):
    """An action on an event. ``version`` (or an ``If-Match`` header) is the version the
    caller saw; ``data`` holds the action's fields (see GET /v1/workflow)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "action": "extend", "version": 4, "note": "需等待材料", "data": {"hours": 48}}})

    action: str
    version: int | None = None
    note: str | None = Field(None, max_length=4000)
    data: dict[str, Any] = Field(default_factory=dict)
    token: str | None = Field(None, description="The reporter's token, when the reporter acts (no bearer token).")


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    satisfaction: int = Field(ge=1, le=5, description="1 (very dissatisfied) to 5 (very satisfied)")
    comment: str | None = Field(None, max_length=1000)


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    platform: Literal[tuple(PLATFORMS)] | None = None  # type: ignore[valid-type]
    department: str | None = Field(None, max_length=200)
    deadline_hours: int | None = Field(None, gt=0, le=catalogue.MAX_DEADLINE_HOURS)
    deadline_workdays: int | None = Field(None, gt=0, le=catalogue.MAX_DEADLINE_WORKDAYS,
                                          description="A deadline in working days (工作日) instead of hours.")
    major: bool | None = None
    description: str | None = None


# -- intake ------------------------------------------------------------------------------


def _intake_body() -> dict:
    """The request body of POST /v1/events in the OpenAPI document: JSON, or multipart
    with the event as JSON text and its photos."""
    schema = EventCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"required": True, "content": {
        "application/json": {"schema": schema},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["event"],
            "properties": {"event": {"type": "string", "description": "The event as JSON (the fields above)."},
                           "photos": {"type": "array", "items": {"type": "string", "format": "binary"},
                                      "description": "Photos of the scene (JPEG, PNG, WebP, HEIC)."}}}}}}


def _event_body(raw: bytes | str) -> EventCreate:
    """The event of a request body, validated as FastAPI would (422 with the fields)."""
    try:
        return EventCreate.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))}
                                      for e in exc.errors(include_url=False)]) from None


@router.post("/v1/events", status_code=201, summary="Report an event", response_model=CreatedEvent,
             responses={201: {"description": "Stored (committed). Holds the reporter's token, shown once."},
                        200: {"description": "Not used: a retry answers 201 with Idempotent-Replayed: true."},
                        413: {"description": "A photo, or the report's photos together, over the limit."},
                        415: {"description": "A photo that does not decode as JPEG, PNG, WebP or HEIC."},
                        422: {"description": "Invalid event, or Idempotency-Key reused with another request."}},
             openapi_extra={"requestBody": _intake_body(), "parameters": [{
                 "name": "Idempotency-Key", "in": "header", "required": False,
                 "schema": {"type": "string", "maxLength": 255},
                 "description": "Client-chosen key (1-255 characters); a retry with the same key and "
                                "request returns the first answer and creates nothing."}]})
async def create_event(store: StoreDep, principal: PrincipalDep, request: Request):
    """Take in one event: locate it, route it, date its deadline, flag duplicates, and
    commit before answering. Without a token only the public's source (``app``) is
    taken: patrols, the hotline, letters and visits, inspections and departments report
    with a user's token. The answer's ``reporter_token`` lets the reporter follow
    the event (GET /v1/events/{code}/status) and rate it.

    As ``multipart/form-data`` the event is the part ``event`` (JSON text) and its photos
    the parts ``photos``: each is decoded, re-encoded without metadata and stored; with no
    coordinates in the event, the first photo's EXIF GPS locates it (``position_from``:
    ``photo``). The answer lists the photos (``photos_attached``)."""
    ctype = request.headers.get("content-type", "").lower()
    uploads: list = []
    if ctype.startswith("multipart/form-data"):
        settings = get_settings()
        form = await request.form(max_files=settings.max_photos_per_report, max_fields=4)
        event_part = form.get("event")
        if event_part is None:
            raise MalformedBody("multipart report: the event goes in a part named 'event' (JSON text)")
        raw = await event_part.read() if hasattr(event_part, "read") else event_part
        body = _event_body(raw)
        uploads = [await read_upload(part) for part in form.getlist("photos")]
        await form.close()
    else:
        body = _event_body(await request.body())
    if principal.anonymous and body.source not in auth.PUBLIC_SOURCES:
        raise Unauthenticated(f"source {body.source!r} is reported by staff with a token; the public "
                              f"reports with source {' or '.join(map(repr, sorted(auth.PUBLIC_SOURCES)))}")
    if body.reported_at is not None and body.reported_at.tzinfo is None:
        raise InvalidEvent("reported_at needs a time zone offset, e.g. 2026-03-01T09:30:00+08:00")
    # Read from the headers directly (documented in openapi_extra): a declared header
    # parameter costs a validation per request on the busiest endpoint.
    idempotency_key = request.headers.get("idempotency-key")
    ev = EventIn(**body.model_dump())
    photos = []
    if uploads:
        photos = await run_heavy(lambda: [ingest(data) for data in uploads])
        ev = position_from_photos(replace(ev, attachments=[p.digest for p in photos]), [p.gps for p in photos])
    # Validation, location and routing are CPU work on warm caches; the write waits for
    # the group commit without holding a thread (see gridgeo.events.batcher).
    actor = None if principal.anonymous else principal.actor
    prepared = prepare_intake(store, ev, idempotency_key=idempotency_key, actor=actor)
    result = await asyncio.wrap_future(submit_intake(store, prepared))
    headers = {"Location": f"/v1/events/{result.event['code']}", "ETag": f'"{result.event["version"]}"'}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    if not photos:
        return Response(result.json(), status_code=201, media_type="application/json", headers=headers)
    # After the commit: attaching is idempotent, so a retry after a failure here (same
    # key, same photos) attaches what is missing and nothing twice.
    # Not the reporter's name: photo records are shown to roles that see it masked.
    role, actor = ("reporter", "reporter") if principal.anonymous else (principal.role, principal.actor)
    attached = await anyio.to_thread.run_sync(lambda: add_photos(
        store, result.event["code"], photos, stage="before", actor=actor, role=role, check_state=False))
    return JSONResponse({**result.body(), "photos_attached": attached}, status_code=201, headers=headers)


# -- reading -----------------------------------------------------------------------------


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=CST)
    return value


# A page holds up to queries.MAX_LIMIT events: documented, not validated again.
@router.get("/v1/events", summary="Events, filtered and paged", responses={200: {"model": EventPage}})
def list_events(
    store: StoreDep,
    principal: PrincipalDep,
    state: Annotated[list[str] | None, Query(description=f"One or more of {', '.join(STATES)} (repeat or comma-separate).")] = None,
    grid: Annotated[list[str] | None, Query(description="Grid code(s).")] = None,
    village: Annotated[str | None, Query(description="Village/community code (or a prefix of grid codes).")] = None,
    platform: Annotated[list[str] | None, Query(description=f"{', '.join(PLATFORMS)}")] = None,
    department: Annotated[list[str] | None, Query()] = None,
    category: Annotated[list[str] | None, Query()] = None,
    source: Annotated[list[str] | None, Query()] = None,
    located_by: Annotated[list[str] | None, Query(description="coordinates, snapped, address, reporter_grid, outside, unlocated, manual")] = None,
    overdue: Annotated[bool | None, Query(description="Past the deadline and not resolved.")] = None,
    duplicate: Annotated[bool | None, Query(description="Flagged as a possible duplicate.")] = None,
    since: Annotated[dt.datetime | None, Query(description="Reported at or after (no offset: +08:00).")] = None,
    until: Annotated[dt.datetime | None, Query(description="Reported before (no offset: +08:00).")] = None,
    order: Annotated[str, Query(description="reported_at, deadline_at, updated_at or code; '-' for descending.")] = "-reported_at",
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=queries.MAX_OFFSET)] = 0,
):
    """A page of events (``total`` counts all that match) with the links to the next page.
    Only the events of the caller's scope; reporter contacts masked unless the role needs them."""
    scope = _scoped(principal, "reading events", grid=grid, platform=platform, department=department)
    page = queries.list_events(store, state=state, village=village, **scope, category=category, source=source,
                               located_by=located_by, overdue=overdue, duplicate=duplicate,
                               since=_aware(since), until=_aware(until), order=order,
                               limit=limit, offset=offset)
    page["next_offset"] = offset + limit if offset + limit < page["total"] else None
    return _mask_deep(page, principal)


@router.get("/v1/events/{code}", summary="One event with its history", response_model=Event, **VALIDATED)
def get_event(code: str, store: StoreDep, principal: PrincipalDep, response: Response):
    """The event, its history (every action: who, role, when, note) and the actions now
    allowed. An event outside the caller's scope answers 404, like an unknown one."""
    auth.event_filters(principal, "reading events")
    event = queries.get_event(store, code)
    if not auth.sees_event(principal, event):
        raise NotFound(f"no event {code!r}")
    response.headers["ETag"] = f'"{event["version"]}"'
    return auth.mask_event(event, principal)


@router.post("/v1/events/{code}/actions", summary="Take an action on an event", response_model=Event, **VALIDATED,
             responses={403: {"description": "The role may not take this action (allowed_roles)."},
                        409: {"description": "Illegal in this state (allowed_actions), or a stale version."},
                        428: {"description": "No version given (body or If-Match)."}})
def post_action(
    code: str,
    body: ActionIn,
    store: StoreDep,
    principal: PrincipalDep,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
):
    """Move the event through its life cycle, in the role of the caller's token (or as
    the reporter, with the event's token in the body and no bearer token). The version
    must be the one the caller saw (``version`` in the body or ``If-Match: "<version>"``):
    a stale one gets 409. An event outside the caller's scope answers 404."""
    if principal.anonymous:
        if not body.token:
            raise Unauthenticated("acting on an event needs a token: Authorization: Bearer <token> "
                                  "(or the reporter's token in the body)")
        role, actor, allow = "reporter", "reporter", None
    else:
        auth.event_filters(principal, "acting on events")
        role, actor = principal.role, principal.actor
        allow = lambda row: auth.sees_event(principal, row)  # noqa: E731
    version = body.version
    if version is None and if_match:
        try:
            version = int(if_match.strip().removeprefix("W/").strip('"'))
        except ValueError:
            raise InvalidEvent(f"If-Match {if_match!r} is not a version number") from None
    if version is None:
        raise VersionRequired("send the version you saw: \"version\" in the body or an If-Match header")
    try:
        event = take_action(store, code, body.action, role=role, actor=actor, version=version,
                            note=body.note, data=body.data, token=body.token, allow=allow)
    except (IllegalTransition, RoleNotAllowed, StaleVersion) as exc:
        return _refusal(exc)
    response.headers["ETag"] = f'"{event["version"]}"'
    return auth.mask_event(event, principal)


# -- supervision and the command room ------------------------------------------------------


@router.get("/v1/supervision", summary="Overdue events (督办), escalated and suspended ones",
            responses={200: {"model": Supervision}})
def supervision(
    store: StoreDep,
    principal: PrincipalDep,
    platform: Annotated[list[str] | None, Query()] = None,
    department: Annotated[list[str] | None, Query()] = None,
    grid: Annotated[list[str] | None, Query()] = None,
    village: str | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=queries.MAX_OFFSET)] = 0,
):
    """Overdue = past the deadline and not yet resolved (states: {states}); each with
    ``late_hours`` and how often it was chased (``supervised``). Escalated events stay
    here, tracked, until they come back; suspended (挂账) ones are listed apart."""
    scope = _scoped(principal, "supervision", grid=grid, platform=platform, department=department)
    page = queries.supervision(store, village=village, limit=limit, offset=offset, **scope)
    return _mask_deep(page, principal)


supervision.__doc__ = supervision.__doc__.format(states=", ".join(sorted(OVERDUE_STATES)))


@router.get("/v1/command-room", summary="The command room's queues and feedback",
            responses={200: {"model": CommandRoom}})
def command_room(store: StoreDep,
                 principal: CommandRoomReader,
                 limit: Annotated[int, Query(ge=1, le=100)] = 20):
    """To accept, unlocated, outside, possible duplicates, to review, to dispatch, to
    close, overdue; and the results and ratings of the last 7 days (双反馈).
    For the command room, the leadership group and the administrator."""
    return _mask_deep(queries.command_room(store, limit=limit), principal)


def _mask_deep(value, principal: Principal):
    """Mask every event record (a dict with reporter fields) inside a nested answer."""
    if isinstance(value, dict):
        if "reporter_name" in value or "reporter_phone" in value:
            return auth.mask_event(value, principal)
        return {k: _mask_deep(v, principal) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_deep(v, principal) for v in value]
    return value


# -- the reporter ------------------------------------------------------------------------


@router.get("/v1/events/{code}/status", summary="The reporter's view of their event", response_model=ReporterView,
            **VALIDATED)
def reporter_status(
    code: str,
    store: StoreDep,
    x_reporter_token: Annotated[str | None, Header(description="The token given at intake.")] = None,
    token: Annotated[str | None, Query(description="The token, when a header cannot be sent (a link in an SMS).")] = None,
):
    """State, timeline, result: what the reporter may see of this event and nothing else.
    A wrong token answers 404, like an unknown event."""
    return queries.reporter_view(store, code, x_reporter_token or token or "")


@router.post("/v1/events/{code}/rating", summary="The reporter rates the result (1-5)", response_model=ReporterView,
             **VALIDATED)
def rate(
    code: str,
    body: RatingIn,
    store: StoreDep,
    x_reporter_token: Annotated[str | None, Header()] = None,
):
    """Once, on a closed event. Answers the reporter's view."""
    tok = x_reporter_token or body.token or ""
    queries.reporter_view(store, code, tok)  # 404 for a wrong token, before anything else
    try:
        take_action(store, code, "rate", role="reporter", actor="reporter", token=tok,
                    note=body.comment, data={"satisfaction": body.satisfaction})
    except (IllegalTransition, RoleNotAllowed, StaleVersion) as exc:
        return _refusal(exc)
    return queries.reporter_view(store, code, tok)


# -- the machine and the catalogue ----------------------------------------------------------


@router.get("/v1/workflow", summary="States, actions and roles of the life cycle", response_model=Workflow, **VALIDATED)
def workflow():
    """The state machine as data: what each action needs, where it may be taken, who may take it."""
    return {
        "states": [{"code": s, "label": label, "final": s in FINAL_STATES} for s, label in STATES.items()],
        "roles": [{"code": r, "label": label} for r, label in WORKFLOW_ACTORS.items()],
        "account_roles": [{"code": r, "label": ACCOUNT_ROLES[r], "acts_as": a} for r, a in ACTOR_OF_ACCOUNT.items()],
        "actions": [{"code": a.name, "label": a.label, "roles": list(a.roles), "moves": dict(a.moves),
                     "major_moves": dict(a.major_moves), "needs": list(a.needs), "once": a.once}
                    for a in ACTIONS.values()],
        "reject_reasons": REJECT_REASONS,
    }


@router.get("/v1/categories", summary="The event catalogue (事项清单)", tags=["categories"],
            response_model=list[Category], **VALIDATED)
def list_categories(store: StoreDep, platform: str | None = None):
    return catalogue.list_categories(store, platform=platform)


@router.get("/v1/categories/{code}", summary="One category", tags=["categories"], response_model=Category, **VALIDATED)
def get_category(code: str, store: StoreDep):
    return catalogue.get_category(store, code)


@router.put("/v1/categories/{code}", summary="Create or edit a category (command room)", tags=["categories"],
            response_model=Category, **VALIDATED, responses={201: {"model": Category, "description": "Created."}})
def put_category(code: str, body: CategoryIn, store: StoreDep, response: Response,
                 principal: CatalogueEditor):
    """New events use the new platform, department and deadline; reported ones keep theirs.
    For the command room and the administrator."""
    row, created = catalogue.put_category(store, code, body.model_dump(exclude_unset=True),
                                          actor=principal.actor)
    response.status_code = 201 if created else 200
    return row
