"""Photos of events (附件): attach, list, read, delete, under the event's scope.

A photo belongs to an event and a stage: ``before`` (处置前: the scene as reported) or
``after`` (处置后: the result, attached by whoever resolves or verifies it). Who may read
a photo is who may read its event (the caller's ``allow`` on the event's row, or the
reporter's token); anyone else is told there is no such event. Deleting is audit-logged
and keeps the row; a photo of an event merged into another is listed with that other
event too (``from_event``), so merging never loses one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import or_, select, update

from gridgeo.errors import IllegalTransition, InvalidEvent, NotFound
from gridgeo.events.db import write_txn
from gridgeo.events.records import iso, now_utc
from gridgeo.photos.images import Decoded, decode_photo
from gridgeo.photos.storage import get_storage
from gridgeo.store import Store, schema

__all__ = ["PHOTO_WRITERS", "STAGES", "STAGE_STATES", "add_photos", "delete_photo", "ingest",
           "list_photos", "read_photo"]

#: Stages of a photo, code -> label.
STAGES = {"before": "处置前", "after": "处置后"}
#: States in which photos of each stage may be added: the scene while the event is open;
#: the result from the start of the work until it is verified.
STAGE_STATES = {
    "before": frozenset({"reported", "reviewing", "accepted", "dispatched", "returned", "in_progress",
                         "suspended", "escalated"}),
    "after": frozenset({"in_progress", "resolved", "verified"}),
}
#: Account roles that add photos to the events of their scope: those that act on events
#: (the API and the console's event page ask it).
PHOTO_WRITERS = ("command_room", "grid_worker", "department", "platform_office")


def ingest(data: bytes) -> Decoded:
    """Decode, re-encode and store one upload (photo and thumbnail); idempotent.
    CPU work: callers serving requests run it off their event loop."""
    photo = decode_photo(data)
    storage = get_storage()
    storage.put(photo.digest, photo.data)
    storage.put(photo.thumb_digest, photo.thumbnail)
    return photo


def photo_record(row: Mapping, code: str) -> dict:
    base = f"/v1/events/{code}/photos/{row['id']}"
    out = {
        "id": row["id"], "stage": row["stage"], "stage_label": STAGES[row["stage"]],
        "url": base, "thumbnail_url": f"{base}/thumbnail",
        "width": row["width"], "height": row["height"], "size": row["size"],
        "source_format": row["source_format"], "digest": row["digest"], "taken_at": iso(row["taken_at"]),
        "gps": ({"lon": round(row["gps_lon"], 7), "lat": round(row["gps_lat"], 7), "crs": "wgs84"}
                if row["gps_lon"] is not None else None),
        "added_at": iso(row["added_at"]), "added_by": row["added_by"],
    }
    if row.get("event_code") and row["event_code"] != code:
        out["from_event"] = row["event_code"]
    return out


def _event(conn, code: str, allow: Callable[[Mapping], bool] | None) -> dict:
    ev = schema.events
    row = conn.execute(select(ev.c.id, ev.c.code, ev.c.state, ev.c.grid_code, ev.c.department, ev.c.platform,
                              ev.c.reporter_token_hash).where(ev.c.code == code)).mappings().first()
    if row is None or (allow is not None and not allow(row)):
        raise NotFound(f"no event {code!r}")
    return dict(row)


def _rows(conn, event: Mapping, include_deleted: bool = False):
    """Photos of the event and of the events merged into it (duplicate_of)."""
    ph, ev = schema.photos, schema.events
    q = (select(ph, ev.c.code.label("event_code")).select_from(ph.join(ev, ev.c.id == ph.c.event_id))
         .where(or_(ph.c.event_id == event["id"], ev.c.duplicate_of == event["code"]))
         .order_by(ph.c.added_at, ph.c.id))
    if not include_deleted:
        q = q.where(ph.c.deleted_at.is_(None))
    return conn.execute(q).mappings().all()


def list_photos(store: Store, code: str, *, allow: Callable[[Mapping], bool] | None = None) -> list[dict]:
    """The photos of an event (and of events merged into it), oldest first."""
    with store.engine.connect() as conn:
        event = _event(conn, code, allow)
        return [photo_record(r, code) for r in _rows(conn, event)]


def add_photos(store: Store, code: str, photos: Sequence[Decoded], *, stage: str = "before", actor: str,
               role: str, allow: Callable[[Mapping], bool] | None = None,
               at: dt.datetime | None = None, check_state: bool = True) -> list[dict]:
    """Attach stored photos to an event, in one transaction; the same photo at the same
    stage again is not added twice (a retried upload). Returns the event's photos.

    Raises
    ------
    NotFound (the event, or out of the caller's scope), InvalidEvent (stage),
    IllegalTransition (a stage the event's state does not take)
    """
    if stage not in STAGES:
        raise InvalidEvent(f"stage {stage!r}: use {' or '.join(STAGES)} ({', '.join(STAGES.values())})")
    at = at or now_utc()
    ph = schema.photos
    with write_txn(store) as conn:
        event = _event(conn, code, allow)
        if check_state and event["state"] not in STAGE_STATES[stage]:
            raise IllegalTransition(
                f"photos {STAGES[stage]} ({stage}) are not taken in state {event['state']!r}: "
                f"only in {', '.join(sorted(STAGE_STATES[stage]))}", state=event["state"])
        existing = {r.digest: r for r in conn.execute(
            select(ph.c.id, ph.c.digest, ph.c.deleted_at).where(ph.c.event_id == event["id"], ph.c.stage == stage))}
        for photo in dict((p.digest, p) for p in photos).values():
            old = existing.get(photo.digest)
            if old is not None and old.deleted_at is None:
                continue
            if old is not None:  # added again after a deletion
                conn.execute(update(ph).where(ph.c.id == old.id).values(deleted_at=None, deleted_by=None,
                                                                       added_at=at, added_by=actor))
                photo_id = old.id
            else:
                photo_id = conn.execute(ph.insert().values(
                    event_id=event["id"], stage=stage, digest=photo.digest, thumb_digest=photo.thumb_digest,
                    source_format=photo.source_format, width=photo.width, height=photo.height,
                    size=len(photo.data), gps_lon=photo.gps[0] if photo.gps else None,
                    gps_lat=photo.gps[1] if photo.gps else None, taken_at=photo.taken_at,
                    added_at=at, added_by=actor, added_role=role).returning(ph.c.id)).scalar()
            Store.audit(conn, actor=actor, action="photo.add", entity="events", entity_id=code,
                        detail={"photo": photo_id, "stage": stage, "digest": photo.digest, "role": role})
        return [photo_record(r, code) for r in _rows(conn, event)]


def _photo(conn, event: Mapping, photo_id: int) -> Mapping:
    for row in _rows(conn, event):
        if row["id"] == photo_id:
            return row
    raise NotFound(f"no photo {photo_id} of event {event['code']!r}")


def read_photo(store: Store, code: str, photo_id: int, *, thumbnail: bool = False,
               allow: Callable[[Mapping], bool] | None = None) -> bytes:
    """The JPEG bytes of a photo (or its thumbnail) of an event in the caller's scope."""
    with store.engine.connect() as conn:
        event = _event(conn, code, allow)
        row = _photo(conn, event, photo_id)
    return get_storage().get(row["thumb_digest"] if thumbnail else row["digest"])


def delete_photo(store: Store, code: str, photo_id: int, *, actor: str, role: str, reason: str | None = None,
                 allow: Callable[[Mapping], bool] | None = None) -> list[dict]:
    """Take a photo off its event (audit-logged; the row and the file are kept)."""
    ph = schema.photos
    with write_txn(store) as conn:
        event = _event(conn, code, allow)
        row = _photo(conn, event, photo_id)
        conn.execute(update(ph).where(ph.c.id == row["id"]).values(deleted_at=now_utc(), deleted_by=actor))
        Store.audit(conn, actor=actor, action="photo.delete", entity="events", entity_id=code,
                    detail={"photo": row["id"], "stage": row["stage"], "digest": row["digest"], "role": role,
                            "reason": reason})
        return [photo_record(r, code) for r in _rows(conn, event)]
