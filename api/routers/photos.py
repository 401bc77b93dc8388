"""Photos of events (附件): add (处置前 before / 处置后 after), list, read, thumbnails,
delete. Read under the event's scope: a caller who may not see the event (another grid's
worker, the anonymous public without the reporter's token) is told there is no such
event (404). The reporter reads their own event's photos with its token
(``X-Reporter-Token`` or ``?token=``) and may add photos of the scene with it."""

from __future__ import annotations

import hmac
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Form, Header, Query, Request, Response, UploadFile

from gridgeo.api.deps import PrincipalDep, StoreDep
from gridgeo.api.middleware import run_heavy
from gridgeo.api.schemas.base import VALIDATED
from gridgeo.api.schemas.photos import PhotoAdded, PhotoList
from gridgeo.api.uploads import read_upload
from gridgeo import auth
from gridgeo.auth import Principal, hash_token
from gridgeo.errors import InvalidEvent, Unauthenticated
from gridgeo.photos import (PHOTO_WRITERS, STAGES, add_photos, delete_photo, ingest, list_photos,
                            read_photo)

router = APIRouter(tags=["photos"])

#: Roles that take photos off an event (audit-logged).
PHOTO_DELETERS = ("command_room",)


def _scope(principal: Principal, token: str | None, what: str):
    """(allow, role, actor) of the caller on an event's row."""
    if principal.anonymous:
        if not token:
            return (lambda row: False), "reporter", "reporter"  # 404, like an unknown event
        digest = hash_token(token.strip())
        return (lambda row: bool(row["reporter_token_hash"])
                and hmac.compare_digest(row["reporter_token_hash"], digest)), "reporter", "reporter"
    auth.event_filters(principal, what)  # 403 for roles that read no events
    return (lambda row: auth.sees_event(principal, row)), principal.role, principal.actor


@router.get("/v1/events/{code}/photos", summary="An event's photos", response_model=PhotoList, **VALIDATED)
def get_photos(code: str, store: StoreDep, principal: PrincipalDep,
               x_reporter_token: Annotated[str | None, Header()] = None,
               token: Annotated[str | None, Query(description="The reporter's token.")] = None):
    """The photos of the event (and of events merged into it), each with its URL and its
    thumbnail's URL, stage (before/after), size and, when the photo had one, its GPS."""
    allow, _, _ = _scope(principal, x_reporter_token or token, "reading events")
    return {"code": code, "items": list_photos(store, code, allow=allow)}


@router.post("/v1/events/{code}/photos", status_code=201, summary="Add a photo to an event",
             response_model=PhotoAdded, **VALIDATED,
             responses={413: {"description": "Over GRIDGEO_MAX_PHOTO_BYTES or GRIDGEO_MAX_PHOTO_PIXELS."},
                        415: {"description": "Not a JPEG, PNG, WebP or HEIC image (decided by decoding)."},
                        409: {"description": "A stage the event's state does not take."}})
async def post_photo(code: str, request: Request, store: StoreDep, principal: PrincipalDep,
                     file: UploadFile,
                     stage: Annotated[str, Form(description="before (处置前) or after (处置后)")] = "before",
                     token: Annotated[str | None, Form(description="The reporter's token (no bearer token).")] = None):
    """Attach a photo: ``before`` (处置前, the scene; while the event is open) or ``after``
    (处置后, the result; from the start of the work until verified, by whoever resolves or
    verifies it). The image is decoded (JPEG, PNG, WebP or HEIC), re-encoded without
    metadata, thumbnailed and stored content-addressed; the same photo twice is kept
    once. Answers the event's photos."""
    if stage not in STAGES:
        raise InvalidEvent(f"stage {stage!r}: use {' or '.join(STAGES)}")
    if principal.anonymous:
        if not token:
            raise Unauthenticated("adding a photo needs a token: Authorization: Bearer <token> "
                                  "(or the reporter's token in the form)")
        if stage != "before":
            raise InvalidEvent("the reporter adds photos of the scene (stage before) only")
    else:
        auth.require(principal, PHOTO_WRITERS, "adding photos")
    allow, role, actor = _scope(principal, token, "adding photos")
    data = await read_upload(file)
    photo = await run_heavy(ingest, data)
    items = await anyio.to_thread.run_sync(lambda: add_photos(store, code, [photo], stage=stage, actor=actor,
                                                              role=role, allow=allow))
    added = next(p for p in items if p["digest"] == photo.digest and p["stage"] == stage)
    return {"code": code, "photo": added, "items": items}


def _jpeg(data: bytes, digest_etag: str) -> Response:
    return Response(data, media_type="image/jpeg", headers={
        "Cache-Control": "private, max-age=86400", "ETag": f'"{digest_etag}"',
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'"})


@router.get("/v1/events/{code}/photos/{photo_id}", summary="A photo (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def get_photo(code: str, photo_id: int, store: StoreDep, principal: PrincipalDep,
              x_reporter_token: Annotated[str | None, Header()] = None,
              token: Annotated[str | None, Query(description="The reporter's token.")] = None):
    allow, _, _ = _scope(principal, x_reporter_token or token, "reading events")
    return _jpeg(read_photo(store, code, photo_id, allow=allow), f"{code}-{photo_id}")


@router.get("/v1/events/{code}/photos/{photo_id}/thumbnail", summary="A photo's thumbnail (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def get_thumbnail(code: str, photo_id: int, store: StoreDep, principal: PrincipalDep,
                  x_reporter_token: Annotated[str | None, Header()] = None,
                  token: Annotated[str | None, Query(description="The reporter's token.")] = None):
    allow, _, _ = _scope(principal, x_reporter_token or token, "reading events")
    return _jpeg(read_photo(store, code, photo_id, thumbnail=True, allow=allow), f"{code}-{photo_id}-t")


@router.delete("/v1/events/{code}/photos/{photo_id}", summary="Take a photo off an event (audit-logged)",
               response_model=PhotoList, **VALIDATED)
def remove_photo(code: str, photo_id: int, store: StoreDep, principal: PrincipalDep,
                 reason: Annotated[str | None, Query(max_length=500)] = None):
    """The command room takes a photo off an event; the audit log keeps who, when, why
    and which photo (the file itself is kept)."""
    auth.require(principal, PHOTO_DELETERS, "deleting photos")
    allow, role, actor = _scope(principal, None, "deleting photos")
    return {"code": code, "items": delete_photo(store, code, photo_id, actor=actor, role=role, reason=reason,
                                                allow=allow)}
