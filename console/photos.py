"""Photos (附件) on the console's event page: the images themselves, served under the
event's scope for the logged-in user (a page's ``<img>`` cannot send the API's bearer
token). Every rule is :mod:`gridgeo.photos`' and :mod:`gridgeo.auth`'s."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gridgeo import auth
from gridgeo.console.base import Current, Refused, StoreDep
from gridgeo.errors import NotFound, RoleNotAllowed
from gridgeo.photos import list_photos, read_photo

router = APIRouter(include_in_schema=False)


def _allow(who):
    try:
        auth.event_filters(who.principal, "reading events")
    except RoleNotAllowed:
        raise Refused(403, "您的角色不查看事件") from None
    return lambda row: auth.sees_event(who.principal, row)


def photos_of(store, who, code: str) -> list[dict]:
    """The event's photos for its page, with the console's own image addresses."""
    try:
        items = list_photos(store, code, allow=_allow(who))
    except NotFound:
        return []
    for p in items:
        p["src"] = f"/events/{code}/photos/{p['id']}"
        p["thumb"] = f"/events/{code}/photos/{p['id']}/thumbnail"
    return items


def _image(store, who, code: str, photo_id: int, thumbnail: bool) -> Response:
    try:
        data = read_photo(store, code[:32], photo_id, thumbnail=thumbnail, allow=_allow(who))
    except NotFound:
        raise Refused(404, f"未找到事件 {code[:32]} 的照片 {photo_id}") from None
    return Response(data, media_type="image/jpeg", headers={
        "Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"})


@router.get("/events/{code}/photos/{photo_id}")
def photo(code: str, photo_id: int, store: StoreDep, who: Current):
    return _image(store, who, code, photo_id, False)


@router.get("/events/{code}/photos/{photo_id}/thumbnail")
def thumbnail(code: str, photo_id: int, store: StoreDep, who: Current):
    return _image(store, who, code, photo_id, True)
