"""Intake: events from any source, located, routed, checked for duplicates and stored
durably -- one at a time (the service) or many (a file, the replay).

The service path has three steps:

1. :func:`prepare_intake` (the request's own thread): validate, compute the request's
   fingerprint, look the categories up (cached);
2. :func:`locate_prepared` (the group-commit writer, before its transaction): locate the
   whole batch at once (:meth:`Geolocator.locate_frame`), route each event, date its
   deadline;
3. :func:`write_intakes` (inside the batch's transaction): idempotency keys, event
   numbers, duplicates, bulk inserts of events, history lines, audit lines and the
   stored answers of the keys.

:func:`report_event` does all three and returns once the transaction has committed.
:func:`prepare_events` and :func:`insert_events` are the batch path of imports and the
replay: the same location, routing, deadline and duplicate rules over a DataFrame.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import struct
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import bindparam, select, text

from gridgeo import crs as _crs
from gridgeo.auth import REPORTER_TOKEN_PREFIX, hash_token  # what is kept of a token: its SHA-256
from gridgeo.errors import IdempotencyKeyReused, InvalidCoordinates, InvalidEvent
from gridgeo.events.batcher import committer
from gridgeo.events.db import CST, allocate_codes, bump_counters, write_txn
from gridgeo.events.duplicates import candidates_frame, duplicate_settings, find_candidates_many, stored_open_events
from gridgeo.events.geolocate import get_geolocator, location_from_row
from gridgeo.events.records import event_record, now_utc
from gridgeo.events.deadlines import deadline, deadline_seconds
from gridgeo.events.routing import route_frame, route_many
from gridgeo.events.workflow import REPORT
from gridgeo.layers import MAX_LENGTHS, SOURCES
from gridgeo.notify import outbox
from gridgeo.notify.reporter import mobile_number
from gridgeo.store import Store, schema
from gridgeo.store.bulk import insert_frame, python_values
from gridgeo.store.types import FIRST_DAY, LAST_DAY, in_time_range

__all__ = [
    "EventIn",
    "IntakeResult",
    "Prepared",
    "hash_token",
    "insert_events",
    "prepare_events",
    "prepare_intake",
    "purge_idempotency_keys",
    "report_event",
    "submit_intake",
]

#: The role an intake's first history line is written under, by source.
SOURCE_ROLES = {
    "patrol": "grid_worker",
    "hotline": "reporter",
    "petition": "reporter",
    "app": "reporter",
    "inspection": "department",
    "department": "department",
}
#: How far in the future a report time may be (phone clocks drift).
MAX_CLOCK_SKEW = dt.timedelta(minutes=10)
_URL = re.compile(r"^https?://\S+$")
#: Control characters refused in an event's text, whichever door it comes in by: tab, line
#: feed and carriage return are text; the rest cannot be shown, and XML 1.0 (Open311's
#: requests.xml) cannot carry them at all.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class EventIn:
    """An event as reported.

    Coordinates are in ``crs`` (``wgs84``, ``cgcs2000``, ``gcj02``, ``bd09``); an
    event may carry only an address, or nothing (it then waits in the unlocated
    queue). ``related_categories`` are other catalogue lines the event involves
    (several departments or platforms). ``beyond_level`` says why it is beyond this
    level, when the reporter (a department, a worker) knows it is.
    """

    source: str
    category_code: str
    reported_at: dt.datetime | None = None
    description: str | None = None
    lon: float | None = None
    lat: float | None = None
    crs: str | None = None
    address: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_staff_code: str | None = None
    photos: list[str] = field(default_factory=list)
    related_categories: list[str] = field(default_factory=list)
    beyond_level: str | None = None
    #: Digests of the photos uploaded with the report (gridgeo.photos): part of the
    #: request, so a retry with the same key must carry the same photos.
    attachments: list[str] = field(default_factory=list)
    #: Where the coordinates came from when the reporter gave none: ``photo`` (the EXIF
    #: GPS of an uploaded photo, see :func:`position_from_photos`).
    position_from: str | None = None
    #: The reporter agrees to be told the outcome (双反馈) by SMS at ``reporter_phone``,
    #: which must then be a mobile number (gridgeo.notify.reporter).
    notify_reporter: bool = False

    def fingerprint(self) -> str:
        """SHA-256 of the request, to tell a retry from a different request."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["reported_at"] = self.reported_at.isoformat() if self.reported_at else None
        d["photos"] = list(self.photos)
        d["related_categories"] = list(self.related_categories)
        d["attachments"] = list(self.attachments)
        return hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class IntakeResult:
    """What an intake answers: the event, the reporter's token (shown once), and whether
    this is the stored answer to an earlier request with the same key."""

    event: dict
    token: str | None
    replayed: bool = False
    #: The answer as JSON text, serialised once (what the API sends, what a retry gets).
    text: str | None = None

    def body(self) -> dict:
        return {**self.event, "reporter_token": self.token}

    def json(self) -> str:
        if self.text is None:
            self.text = json.dumps(self.body(), ensure_ascii=False)
        return self.text


@dataclass
class Prepared:
    """An intake on its way: validated (step 1), then located and routed (step 2)."""

    ev: EventIn
    key: str | None
    fingerprint: str
    categories: dict
    who: str
    now: dt.datetime
    token: str = ""
    values: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


#: What people call the intake's text fields (the Chinese messages).
INTAKE_FIELDS_ZH = {"category_code": "事项编码", "description": "描述", "address": "地址", "reporter_name": "反映人姓名",
                    "reporter_phone": "反映人电话", "reporter_staff_code": "人员编号", "beyond_level": "超出本级事权的说明"}


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _validate(ev: EventIn, now: dt.datetime) -> EventIn:
    if ev.source not in SOURCES:
        raise InvalidEvent(f"source {ev.source!r} is not one of {', '.join(SOURCES)}",
                           zh=f"来源须为：{'、'.join(SOURCES.values())}")
    when = ev.reported_at or now
    if when.tzinfo is None:
        raise InvalidEvent("reported_at has no time zone offset (write e.g. 2026-03-01T09:30:00+08:00)",
                           zh="上报时间须带时区（如 2026-03-01T09:30:00+08:00）")
    if not in_time_range(when):
        raise InvalidEvent(f"reported_at {when.isoformat()} is not a date gridgeo takes "
                           f"({FIRST_DAY} to {LAST_DAY})", zh=f"上报时间须在 {FIRST_DAY} 至 {LAST_DAY} 之间")
    if when > now + MAX_CLOCK_SKEW:
        raise InvalidEvent(f"reported_at {when.isoformat()} is in the future", zh="上报时间不能晚于现在")
    crs = None
    if ev.lon is not None or ev.lat is not None:
        if ev.lon is None or ev.lat is None:
            raise InvalidCoordinates("give both lon and lat, or neither")
        _crs.check_lonlat(ev.lon, ev.lat)
        crs = _crs.normalize_name(ev.crs or "wgs84")
    bad = [p for p in ev.photos if not isinstance(p, str) or not _URL.match(p)]
    if bad:
        raise InvalidEvent(f"photos must be http(s) URLs: {bad[0]!r}", zh="照片须为 http(s) 地址")
    out = EventIn(
        source=ev.source, category_code=_clean(ev.category_code) or "", reported_at=when,
        description=_clean(ev.description), lon=ev.lon, lat=ev.lat, crs=crs,
        address=_clean(ev.address), reporter_name=_clean(ev.reporter_name),
        reporter_phone=_clean(ev.reporter_phone), reporter_staff_code=_clean(ev.reporter_staff_code),
        photos=list(ev.photos),
        related_categories=[c for c in dict.fromkeys(ev.related_categories) if c != ev.category_code],
        beyond_level=_clean(ev.beyond_level), attachments=list(ev.attachments),
        position_from=ev.position_from, notify_reporter=ev.notify_reporter,
    )
    if not isinstance(out.notify_reporter, bool):
        raise InvalidEvent(f"notify_reporter must be true or false, not {out.notify_reporter!r:.40}",
                           zh="是否接收办理结果须为“是”或“否”")
    if out.notify_reporter:
        mobile_number(out.reporter_phone)  # the outcome goes by SMS: a number it can reach
    # The limits of the events layer, whichever door the event comes in by (API, Open311).
    for name in ("category_code", "description", "address", "reporter_name", "reporter_phone",
                 "reporter_staff_code", "beyond_level"):
        value = getattr(out, name) or ""
        limit = MAX_LENGTHS["events"].get(name)
        if limit is not None and len(value) > limit:
            raise InvalidEvent(f"{name} has more than {limit} characters",
                               zh=f"{INTAKE_FIELDS_ZH.get(name, name)}不能超过 {limit} 个字符（填写了 {len(value)} 个）")
        if CONTROL_CHARACTERS.search(value):
            raise InvalidEvent(f"{name} holds a control character (only tab and line breaks are text)",
                               zh=f"{INTAKE_FIELDS_ZH.get(name, name)}含有控制字符（只能是文字、制表符和换行）")
    return out


#: Ways a position may be taken when the report carries none.
POSITION_SOURCES = ("photo",)


def position_from_photos(ev: EventIn, gps: list[tuple[float, float] | None]) -> EventIn:
    """The event located by its photos when the reporter gave no coordinates: the EXIF
    GPS (WGS84, as phones write it) of the first photo that has one, recorded as
    ``position_from = "photo"`` on the event and in its first history line. Coordinates
    the reporter gave always win."""
    if ev.lon is not None or ev.lat is not None:
        return ev
    found = next((g for g in gps if g is not None), None)
    if found is None:
        return ev
    from dataclasses import replace

    return replace(ev, lon=found[0], lat=found[1], crs="wgs84", position_from="photo")


_WKB_POINT = struct.Struct("<BIdd")


def _point_wkb(lon: float, lat: float) -> bytes:
    """WKB of a 2D point, little-endian: what shapely.to_wkb writes, without the object."""
    return _WKB_POINT.pack(1, 1, lon, lat)


def prepare_intake(store: Store, ev: EventIn, *, idempotency_key: str | None = None,
                   actor: str | None = None, now: dt.datetime | None = None) -> Prepared:
    """Step 1: validate one event and look its categories up; nothing is written.

    Raises
    ------
    InvalidEvent, InvalidCoordinates, UnknownCRS
    """
    now = now or now_utc()
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise InvalidEvent("Idempotency-Key must have 1 to 255 characters")
    fingerprint = ev.fingerprint()
    ev = _validate(ev, now)
    codes = [ev.category_code, *ev.related_categories]
    cats = get_geolocator(store).categories(codes)
    missing = [c for c in codes if c not in cats]
    if missing:
        raise InvalidEvent(f"unknown category {', '.join(map(repr, missing))}: see GET /v1/categories",
                           zh=f"事项清单中没有事项“{'、'.join(missing)}”")
    who = actor or ev.reporter_name or ev.reporter_staff_code or SOURCES[ev.source]
    return Prepared(ev, idempotency_key, fingerprint, cats, who, now)


def locate_prepared(store: Store, items: list[Prepared]) -> list:
    """Step 2: locate a batch at once, route and date each event.

    Returns, per item, None when done or the exception that fails it (coordinates that
    look swapped).
    """
    n = len(items)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    crs = np.array([it.ev.crs for it in items], dtype=object)
    for i, it in enumerate(items):
        if it.ev.lon is not None:
            x[i], y[i] = it.ev.lon, it.ev.lat
    for name in ("gcj02", "bd09"):
        sel = crs == name
        if sel.any():
            x[sel], y[sel] = _crs.to_wgs84(x[sel], y[sel], name)
    located = get_geolocator(store).locate_arrays({
        "reported_at": [it.ev.reported_at for it in items], "x": x, "y": y,
        "address": [it.ev.address for it in items], "source": [it.ev.source for it in items],
        "reporter_staff_code": [it.ev.reporter_staff_code for it in items]})
    errors: list = [None] * n
    locs: list = [None] * n
    for i, it in enumerate(items):
        try:
            locs[i] = location_from_row({k: v[i] for k, v in located.items()}, (it.ev.lon, it.ev.lat))
        except InvalidCoordinates as exc:
            errors[i] = exc
    routes = route_many([it.categories[it.ev.category_code] for it in items],
                        [[it.categories[c] for c in it.ev.related_categories] for it in items],
                        outside=[loc is not None and loc.outside for loc in locs],
                        beyond_level=[it.ev.beyond_level for it in items])
    for i, it in enumerate(items):
        ev, loc, route = it.ev, locs[i], routes[i]
        if loc is None:
            continue
        category = it.categories[ev.category_code]
        it.token = REPORTER_TOKEN_PREFIX + secrets.token_urlsafe(16)
        it.values = {
            "source": ev.source, "category_code": ev.category_code, "description": ev.description,
            "reported_at": ev.reported_at, "lon": ev.lon, "lat": ev.lat, "crs": ev.crs,
            "address": ev.address, "reporter_name": ev.reporter_name,
            "reporter_phone": ev.reporter_phone, "reporter_staff_code": ev.reporter_staff_code,
            "geometry": _point_wkb(loc.lon, loc.lat) if loc.lon is not None else None,
            "pos_lon": loc.lon, "pos_lat": loc.lat, "grid_code": loc.grid_code,
            "state": "reported", "version": 1, "created_at": it.now,
            "photos": ev.photos or None, "related_categories": ev.related_categories or None,
            "located_by": loc.located_by, "plan_version": loc.plan_version,
            "locate_distance_m": loc.distance_m, "address_confidence": loc.address_confidence,
            "address_match": loc.address_match, "platform": route.platform,
            "department": route.department, "route": route.route, "route_target": route.target,
            "route_reason": route.reason,
            "deadline_at": deadline(ev.reported_at, category["deadline_hours"],
                                    workdays=category.get("deadline_workdays")),
            "deadline_workdays": category.get("deadline_workdays"),
            "extended_hours": 0, "reporter_token_hash": hash_token(it.token), "updated_at": it.now,
            "duplicate_flag": False, "duplicate_candidates": None, "position_from": ev.position_from,
            "notify_reporter": ev.notify_reporter,
        }
        it.data = {"source": ev.source, "located_by": loc.located_by, "route": route.route}
        if ev.position_from:
            it.data["position_from"] = ev.position_from
        if loc.notes:
            it.data["notes"] = loc.notes
    return errors


# Statements of the hot path, built once (building one costs more than running it).
_KEYS = select(schema.idempotency_keys.c.key, schema.idempotency_keys.c.request_hash,
               schema.idempotency_keys.c.response).where(
    schema.idempotency_keys.c.key.in_(bindparam("keys", expanding=True)))
_INSERT_EVENTS = schema.events.insert().returning(schema.events.c.id, sort_by_parameter_order=True)
_INSERT_ACTION = schema.event_actions.insert()
_INSERT_AUDIT = schema.audit_log.insert()
_INSERT_KEY = schema.idempotency_keys.insert()
#: Transaction-level locks on keys, taken in the order given (unnest keeps array order).
_LOCK_KEYS = text("SELECT pg_advisory_xact_lock(h) FROM unnest(CAST(:h AS bigint[])) AS h")


def _key_lock_id(key: str) -> int:
    """The PostgreSQL advisory lock number of an Idempotency-Key: 64 bits of its hash,
    the same in every process (Python's ``hash`` is not)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"gridgeo-idemkey").digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_keys(conn, keys: list[str]) -> None:
    """Hold the batch's keys until the transaction ends, before looking them up.

    Several server processes on one PostgreSQL database each write their own batches.
    Without the lock, the same key sent to two of them at once (a client retrying
    through a load balancer) is looked up by both, found by neither and inserted by
    both; the second insert fails its whole batch (a 500 for a lone request). With it,
    the second process waits here, then finds the first one's committed answer and
    replays it. Locks are taken in one sorted order, so two batches cannot deadlock on
    them. SQLite needs none: its write transaction (``BEGIN IMMEDIATE``) holds the
    whole database.
    """
    if keys and conn.dialect.name == "postgresql":
        conn.execute(_LOCK_KEYS, {"h": sorted({_key_lock_id(k) for k in keys})}).all()


def _replayed(key: str, fingerprint: str, stored_hash: str, response: str) -> IntakeResult:
    if stored_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for a different request; "
            "use a new key for a new event (a retry must repeat the request exactly)")
    body = json.loads(response)
    token = body.pop("reporter_token", None)
    return IntakeResult(body, token, replayed=True, text=response)


def write_intakes(conn, items: list[Prepared], errors: list | None = None) -> list:
    """Step 3: write located intakes in the caller's transaction.

    Returns one :class:`IntakeResult` or exception per item: a key already used by a
    different request, or an item that failed step 2, fails alone.
    """
    results: list = list(errors) if errors is not None else [None] * len(items)
    keys = [it.key for it in items if it.key is not None]
    stored = {}
    if keys:
        _lock_keys(conn, keys)
        stored = {r[0]: (r[1], r[2]) for r in conn.execute(_KEYS, {"keys": keys}).all()}
    first_of: dict[str, int] = {}
    todo: list[int] = []
    aliases: list[tuple[int, int]] = []
    for i, it in enumerate(items):
        if it.key is not None and it.key in stored:
            try:
                results[i] = _replayed(it.key, it.fingerprint, *stored[it.key])
            except IdempotencyKeyReused as exc:
                results[i] = exc
        elif it.key is not None and it.key in first_of:
            aliases.append((i, first_of[it.key]))
        elif results[i] is None:
            if it.key is not None:
                first_of[it.key] = i
            todo.append(i)
    if todo:
        # Numbers of the day: one counter update per day in the batch.
        by_day: dict[str, list[int]] = {}
        for i in todo:
            by_day.setdefault(items[i].values["reported_at"].astimezone(CST).strftime("%Y%m%d"), []).append(i)
        for day, idx in sorted(by_day.items()):  # one order of counter locks: no deadlock
            for i, code in zip(idx, allocate_codes(conn, day, len(idx))):
                items[i].values["code"] = code
        # Against the store and the events before it in this batch (not yet in the table).
        found = find_candidates_many(conn, [items[i].values for i in todo])
        for n, i in enumerate(todo):
            items[i].values["duplicate_flag"] = bool(found[n])
            items[i].values["duplicate_candidates"] = found[n] or None
        ids = conn.execute(_INSERT_EVENTS, [items[i].values for i in todo]).scalars().all()
        actions, audits, keyrows = [], [], []
        for i, event_id in zip(todo, ids):
            it = items[i]
            v = it.values
            role = SOURCE_ROLES[it.ev.source]
            actions.append({"event_id": event_id, "seq": 1, "at": it.now, "action": REPORT, "actor": it.who,
                            "role": role, "from_state": None, "to_state": "reported", "note": None,
                            "data": it.data})
            # Store.audit's row, written in bulk.
            audits.append({"at": it.now, "actor": it.who, "action": f"event.{REPORT}", "entity": "events",
                           "entity_id": v["code"],
                           "detail": {"role": role, **it.data, "grid_code": v["grid_code"],
                                      "duplicate_candidates": [c["code"] for c in v["duplicate_candidates"] or []]}})
            record = event_record(v, now=it.now, category_name=it.categories[it.ev.category_code]["name"])
            results[i] = IntakeResult(record, it.token)
            if it.key is not None:
                keyrows.append({"key": it.key, "request_hash": it.fingerprint, "event_code": v["code"],
                                "status": 201, "response": results[i].json(), "created_at": it.now})
        conn.execute(_INSERT_ACTION, actions)
        conn.execute(_INSERT_AUDIT, audits)
        # The outbox row of each new event commits with it (gridgeo.notify).
        outbox.record(conn, [(items[i].values["code"], REPORT, 1, items[i].now) for i in todo])
        if keyrows:
            conn.execute(_INSERT_KEY, keyrows)
    for i, j in aliases:  # the same key twice in one batch: the second is a retry of the first
        first = results[j]
        if isinstance(first, IntakeResult):
            try:
                results[i] = _replayed(items[i].key, items[i].fingerprint, items[j].fingerprint, first.json())
            except IdempotencyKeyReused as exc:
                results[i] = exc
        else:
            results[i] = first
    return results


def _writer(store: Store):
    def prepare(items):
        return locate_prepared(store, items)

    def write(conn, items, errors):
        return write_intakes(conn, items, errors)

    return committer(store, "intake", write, prepare)


def submit_intake(store: Store, prepared: Prepared):
    """Queue a prepared intake for the store's group commit; a future of its result
    (:class:`IntakeResult`), resolved after the commit."""
    return _writer(store).submit(prepared)


def report_event(store: Store, ev: EventIn, *, idempotency_key: str | None = None,
                 actor: str | None = None, now: dt.datetime | None = None) -> IntakeResult:
    """Take in one event and commit it.

    Parameters
    ----------
    store : Store
    ev : EventIn
    idempotency_key : str, optional
        A key chosen by the client for this request. A retry with the same key (and
        the same request) returns the first answer and creates nothing; the same key
        with a different request raises :class:`IdempotencyKeyReused`.
    actor : str, optional
        Who entered it (default: the reporter or the source).

    Returns
    -------
    IntakeResult
        The stored event and the reporter's token (only its hash is kept on the event;
        the stored answer of an idempotency key holds it until the key is purged).
        Returned once the transaction holding the event has committed.

    Raises
    ------
    InvalidEvent, InvalidCoordinates, UnknownCRS, IdempotencyKeyReused
    """
    prepared = prepare_intake(store, ev, idempotency_key=idempotency_key, actor=actor, now=now)
    return submit_intake(store, prepared).result()


def purge_idempotency_keys(store: Store, older_than: dt.timedelta = dt.timedelta(hours=24)) -> int:
    """Forget idempotency keys (and the tokens in their stored answers) older than this."""
    ik = schema.idempotency_keys
    with write_txn(store) as conn:
        return conn.execute(ik.delete().where(ik.c.created_at < now_utc() - older_than)).rowcount


# -- batch -----------------------------------------------------------------------------


def prepare_events(store: Store, frame: pd.DataFrame, *, categories: pd.DataFrame | None = None,
                   open_until: pd.Series | None = None) -> pd.DataFrame:
    """Locate, route, date and check for duplicates many validated events at once.

    Parameters
    ----------
    frame : (Geo)DataFrame
        The events layer as :func:`gridgeo.events.importing.read_events` gives it:
        typed columns, ``lon``/``lat`` in each row's ``crs``.
    categories : DataFrame, optional
        The catalogue (default: the store's).
    open_until : Series, optional
        When each event stopped being open (the replay knows), for duplicates.

    Returns
    -------
    DataFrame
        Columns of the ``events`` table, ready for :func:`insert_events`; also
        ``swapped`` (coordinates that look swapped: callers report those rows).
    """
    if categories is None:
        categories = store.read("categories")
    n = len(frame)
    # Reported positions in WGS84: each row's lon/lat in its own crs (default wgs84).
    x = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=float).copy()
    y = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=float).copy()
    names = frame["crs"].fillna("wgs84").astype(str).str.strip().str.lower().to_numpy(dtype=object) \
        if "crs" in frame else np.full(n, "wgs84", dtype=object)
    for name in ("gcj02", "bd09"):
        sel = (names == name) & np.isfinite(x) & np.isfinite(y)
        if sel.any():
            x[sel], y[sel] = _crs.to_wgs84(x[sel], y[sel], name)
    reported = pd.to_datetime(frame["reported_at"], utc=True)
    empty = pd.Series(None, index=frame.index, dtype=object)
    work = pd.DataFrame({
        "reported_at": reported, "x": x, "y": y,
        "address": frame["address"] if "address" in frame else empty,
        "source": frame["source"],
        "reporter_staff_code": frame["reporter_staff_code"] if "reporter_staff_code" in frame else empty,
    }, index=frame.index)
    loc = get_geolocator(store).locate_frame(work)
    routed = route_frame(pd.DataFrame({"category_code": frame["category_code"],
                                       "outside": loc["located_by"].to_numpy() == "outside"},
                                      index=frame.index), categories)
    cats = categories.set_index("code")
    hours = frame["category_code"].map(cats["deadline_hours"]).astype(float)
    workdays = (frame["category_code"].map(cats["deadline_workdays"]).astype(float)
                if "deadline_workdays" in cats else pd.Series(np.nan, index=frame.index))
    out = pd.DataFrame(index=frame.index)
    for c in ("code", "source", "category_code", "description", "lon", "lat", "crs", "address",
              "reporter_name", "reporter_phone", "reporter_staff_code"):
        out[c] = frame[c] if c in frame else None
    out["reported_at"] = reported
    px, py = loc["x"].to_numpy(dtype=float), loc["y"].to_numpy(dtype=float)
    has = np.isfinite(px) & np.isfinite(py)
    pts = np.full(n, None, dtype=object)
    if has.any():
        pts[has] = shapely.points(px[has], py[has])
    out["geometry"] = pts
    out["pos_lon"] = np.where(has, px, np.nan)
    out["pos_lat"] = np.where(has, py, np.nan)
    for c in ("grid_code", "located_by", "plan_version", "locate_distance_m", "address_confidence",
              "address_match", "swapped"):
        out[c] = loc[c]
    for c in ("platform", "department", "route", "route_target", "route_reason"):
        out[c] = routed[c]
    due = deadline_seconds((reported - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float),
                           hours.to_numpy(), workdays.to_numpy())
    out["deadline_at"] = pd.to_datetime(due, unit="s", utc=True)
    out["deadline_workdays"] = workdays.astype("Int64")
    out["extended_hours"] = 0
    dup_in = pd.DataFrame({"code": out["code"], "category_code": out["category_code"],
                           "reported_at": reported, "x": out["pos_lon"], "y": out["pos_lat"]},
                          index=frame.index)
    if open_until is not None:
        dup_in["open_until"] = open_until
    cands = candidates_frame(dup_in, _open_events_near(store, reported))
    out["duplicate_candidates"] = cands
    out["duplicate_flag"] = cands.notna()
    out["state"] = "reported"
    out["version"] = 1
    return out


def _open_events_near(store: Store, reported: pd.Series) -> pd.DataFrame | None:
    """Open events of the store in the batch's time span (plus the window), for duplicates."""
    if len(reported) == 0:
        return None
    _, window = duplicate_settings()
    span = dt.timedelta(hours=window)
    with store.engine.connect() as conn:
        return stored_open_events(conn, reported.min().to_pydatetime() - span, reported.max().to_pydatetime() + span)


def insert_events(conn, events: pd.DataFrame, history: pd.DataFrame, *, actor: str,
                  now: dt.datetime | None = None, audit_each: bool = True) -> dict[str, int]:
    """Bulk-insert prepared events and their history lines, in the caller's transaction.

    The rows go through :func:`gridgeo.store.bulk.insert_frame` (a column at a time, the
    driver's executemany or COPY): what is stored is what ``table.insert()`` would store.

    Parameters
    ----------
    events : DataFrame
        From :func:`prepare_events` (plus any life-cycle columns).
    history : DataFrame
        ``code``, ``seq``, ``at``, ``action``, ``actor``, ``role``, ``from_state``,
        ``to_state``, ``note``, ``data``.
    actor : str
        Who ran the import (kept in each audit line's detail).
    audit_each : bool
        One audit line per history line (True) or one for the batch.
    """
    now = now or now_utc()
    ev = schema.events
    events = events.assign(created_at=now)
    if "updated_at" not in events:
        events = events.assign(updated_at=now)
    cols = [c for c in ev.c.keys() if c in events.columns and c != "id"]
    insert_frame(conn, ev, events[cols])
    ids = _ids(conn, events["code"])
    bump_counters(conn, events["code"])
    hist = history.assign(event_id=history["code"].map(ids))
    hcols = ["event_id", "seq", "at", "action", "actor", "role", "from_state", "to_state", "note", "data"]
    insert_frame(conn, schema.event_actions, hist[hcols])
    if audit_each:
        role, seq, at, note = (python_values(hist[c]) for c in ("role", "seq", "at", "note"))
        detail = [{"role": r, "seq": s, "at": a.isoformat(), "note": n, "by": actor}
                  for r, s, a, n in zip(role, seq, at, note)]
        insert_frame(conn, schema.audit_log, pd.DataFrame({
            "at": pd.Series(now, index=hist.index), "actor": hist["actor"],
            "action": "event." + hist["action"], "entity": "events", "entity_id": hist["code"],
            "detail": pd.Series(detail, index=hist.index, dtype=object)}))
    else:
        Store.audit(conn, actor=actor, action="events.import", entity="events",
                    detail={"events": len(events), "history": len(hist)})
    return {"events": len(events), "event_actions": len(hist)}


def _ids(conn, codes: pd.Series) -> dict:
    ev = schema.events
    out = {}
    codes = list(codes)
    for i in range(0, len(codes), 10000):
        out.update(conn.execute(select(ev.c.code, ev.c.id).where(ev.c.code.in_(codes[i:i + 10000]))).all())
    return out
