"""Taking actions on events: the state machine applied to stored events.

:func:`take_action` is the one write path after intake. In one transaction it reads
the event, checks the caller's version (optimistic concurrency), asks the machine
(:func:`gridgeo.events.workflow.transition`), applies the action's effects (deadline,
department, escalation target, rating ...), writes the new state with ``version + 1``
guarded by the old version, appends the history line and the audit line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import shapely
from sqlalchemy import select

from gridgeo.errors import IdempotencyKeyReused, InvalidEvent, NotFound, RoleNotAllowed, StaleVersion
from gridgeo.events.catalogue import dispatch_targets
from gridgeo.events.db import write_txn
from gridgeo.events.geolocate import get_geolocator
from gridgeo.events.intake import _lock_keys, hash_token
from gridgeo.events.records import now_utc
from gridgeo.events.deadlines import deadline, extend
from gridgeo.events.routing import ESCALATION_TARGETS, route_event
from gridgeo.events.workflow import (ACTIONS, OPEN_STATES, REJECT_REASONS, ROUTABLE_STATES, STATES,
                                     WORKFLOW_ACTORS, actor_for, transition)
from gridgeo.layers import PLATFORMS
from gridgeo.notify import outbox
from gridgeo.store import Store, schema

__all__ = ["take_action"]

#: Actions whose note (the reason) may not be empty.
NOTE_REQUIRED = frozenset({"return", "rework", "suspend", "ask_extension", "refuse_extension"})
MAX_EXTENSION_HOURS = 24 * 30
MAX_EXTENSION_DAYS = 60


def _deadline(row: dict, category: dict) -> dt.datetime:
    """The event's deadline under ``category`` with its extensions (gridgeo.events.deadlines)."""
    return deadline(row["reported_at"], category.get("deadline_hours"), row["extended_hours"],
                    workdays=category.get("deadline_workdays"), extended_days=row.get("extended_days") or 0)


def _event_row(conn, code: str) -> dict:
    ev = schema.events
    row = conn.execute(select(ev).where(ev.c.code == code)).mappings().first()
    if row is None:
        raise NotFound(f"no event {code!r}", zh=f"未找到事件 {code}")
    return dict(row)


def _category(conn, code: str | None) -> dict | None:
    if code is None:
        return None
    cat = schema.categories
    row = conn.execute(select(cat).where(cat.c.code == code)).mappings().first()
    return dict(row) if row is not None else None


#: What the console calls an action's fields (for the Chinese messages).
FIELDS_ZH = {"hours": "延期小时数", "days": "延期工作日数", "satisfaction": "满意度", "reason": "原因",
             "into": "并入的事件编号", "department": "部门", "platform": "平台", "to": "上报对象",
             "category_code": "事项编码", "grid_code": "网格编码", "address": "地址", "crs": "坐标系"}


def _field(name: str) -> str:
    return FIELDS_ZH.get(name, name)


def _int(data: dict, name: str, lo: int, hi: int) -> int:
    value = data.get(name)
    try:
        n = int(value)
        if n != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise InvalidEvent(f"{name} must be a whole number, not {value!r:.40}",
                           zh=f"{_field(name)}须为整数") from None
    if not lo <= n <= hi:
        raise InvalidEvent(f"{name} must be between {lo} and {hi}, not {n}",
                           zh=f"{_field(name)}须在 {lo} 至 {hi} 之间（填写的是 {n}）")
    return n


def _text(data: dict, name: str, max_length: int) -> str | None:
    """``data[name]`` as text, None when absent or empty (an action's data is free JSON:
    a list or an object where text belongs is refused here, not by the database)."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidEvent(f"data.{name} must be text of at most {max_length} characters, "
                           f"not {value!r:.80}", zh=f"{_field(name)}须为不超过 {max_length} 个字符的文字")
    return value


def take_action(store: Store, code: str, action: str, *, role: str, actor: str,
                version: int | None = None, note: str | None = None, data: dict | None = None,
                token: str | None = None, at: dt.datetime | None = None,
                allow: Callable[[Mapping], bool] | None = None,
                within: Callable[[Any, Mapping], None] | None = None,
                idempotency_key: str | None = None) -> dict:
    """Take ``action`` on event ``code`` as ``actor`` in ``role``; commit; return the event.

    Parameters
    ----------
    version : int, optional
        The version the caller saw. A different current version raises
        :class:`StaleVersion` (409). The API requires it; internal callers may pass None.
    note : str, optional
        Free text; the reason for ``return``, ``rework``, ``suspend``, ``escalate``,
        ``reject``; the result for ``resolve``.
    data : dict, optional
        The action's fields:

        - ``reject``: ``reason`` (``duplicate``, ``invalid``, ``untrue``, ``not_ours``, ``other``)
        - ``merge``: ``into`` (the code of the open event this one duplicates)
        - ``dispatch``: optional ``department``, ``platform``, ``category_code`` (re-routes)
        - ``escalate``: optional ``to`` (``county_center``, ``12345`` or a name), ``reason``
        - ``extend``: ``hours`` (> 0) or ``days`` (working days)
        - ``ask_extension``: ``hours`` (> 0), with the reason as ``note`` (the
          department asks; ``grant_extension`` moves the deadline by them,
          ``refuse_extension`` with a reason as ``note`` does not)
        - ``rate``: ``satisfaction`` (1-5), optional ``comment``
        - ``locate``: ``grid_code``, or ``lon``/``lat``/``crs``, or ``address``
        - ``county_update``, ``county_close``: ``status`` and ``message_id`` of the
          county's callback (kept in the history)
    token : str, optional
        The reporter's token; required for the ``reporter`` role.
    allow : callable, optional
        The caller's scope: given the event's row, False makes the event unknown to this
        caller (:class:`NotFound`), checked in the same transaction as the action.
    within : callable, optional
        Called with the connection and the event's row inside the action's transaction,
        before the machine is asked: what the caller records with the action (the
        county's callback records its message id, refused when replayed). The ``county``
        role acts only this way (:func:`gridgeo.notify.handoff.accept_callback`).
    idempotency_key : str, optional
        A client's key (1-255 characters) for a retried request (the phone app sending what
        it queued without signal): the key is recorded in the action's transaction, and the
        same request sent again with it takes no action and returns the event as it is now
        (the key with another request: :class:`IdempotencyKeyReused`). Keys share the table
        of intake's keys (:mod:`gridgeo.events.intake`).

    Returns
    -------
    dict
        The event after the action, with its history.

    Raises
    ------
    NotFound, IllegalTransition (409), RoleNotAllowed (403), StaleVersion (409), InvalidEvent (422),
    IdempotencyKeyReused (422) for a key sent before with another request
    """
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise InvalidEvent("Idempotency-Key must have 1 to 255 characters")
    role = actor_for(role)  # an account role acts as its workflow actor; admin and planner take no action
    data = dict(data or {})
    note = note.strip() if isinstance(note, str) and note.strip() else None
    at = at or now_utc()
    fingerprint = _action_fingerprint(code, action, role, actor, version, note, data)
    with write_txn(store) as conn:
        row = _event_row(conn, code)
        if allow is not None and not allow(row):
            raise NotFound(f"no event {code!r}", zh=f"未找到事件 {code}（不存在，或不在您的管辖范围内）")
        # A retry of a request already done (its key recorded): the event as it is now.
        if idempotency_key is None or not _replayed(conn, idempotency_key, fingerprint):
            _act(conn, store, row, code, action, role, actor, version, note, data, token, at, within)
            if idempotency_key is not None:
                conn.execute(schema.idempotency_keys.insert().values(
                    key=idempotency_key, request_hash=fingerprint, event_code=code, status=200,
                    response=json.dumps({"action": action, "version": row["version"] + 1}), created_at=at))
    from gridgeo.events.queries import get_event

    return get_event(store, code)


def stale_zh(code: str, current, seen) -> str:
    """The stale version (someone else acted first), in Chinese."""
    return (f"该事件已被他人修改（{code} 现为第 {current} 版，您看到的是第 {seen} 版）：有人先办理了，"
            "请重新载入后再操作")


def _action_fingerprint(code, action, role, actor, version, note, data) -> str:
    """SHA-256 of an action's request, to tell a retry from a different request."""
    d = {"code": code, "action": action, "role": role, "actor": actor, "version": version, "note": note,
         "data": data}
    return hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _replayed(conn, key: str, fingerprint: str) -> bool:
    """True when ``key`` was recorded for this very request (a retry: nothing to do)."""
    _lock_keys(conn, [key])
    keys = schema.idempotency_keys
    old = conn.execute(select(keys.c.request_hash).where(keys.c.key == key)).scalar()
    if old is None:
        return False
    if old != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for a different request; "
            "use a new key for a new action (a retry must repeat the request exactly)")
    return True


def _act(conn, store, row, code, action, role, actor, version, note, data, token, at, within) -> None:
    """The action's checks and writes, in the caller's transaction."""
    if role == "reporter" and (token is None or row["reporter_token_hash"] != hash_token(token)):
        raise RoleNotAllowed("the reporter role needs the event's reporter token", roles=["reporter"],
                             zh="反映人须凭该事件的查询码办理")
    if role == "county" and within is None:
        raise RoleNotAllowed("the county platform acts only through its signed callback "
                             "(POST /v1/escalations/callback)", roles=["county"],
                             zh="上级平台只能通过签名回调办理")
    if within is not None:
        within(conn, row)
    if action in ACTIONS and role not in ACTIONS[action].roles:  # a role that never may: 403 before 409
        spec = ACTIONS[action]
        raise RoleNotAllowed(f"role {role!r} may not {action!r}; roles allowed: {', '.join(spec.roles)}",
                             roles=list(spec.roles),
                             zh=f"{WORKFLOW_ACTORS.get(role, role)}不能“{spec.label}”，此操作由"
                                f"{'、'.join(WORKFLOW_ACTORS.get(r, r) for r in spec.roles)}办理")
    if version is not None and int(version) != row["version"]:
        raise StaleVersion(
            f"event {code} is at version {row['version']}, not {version}: "
            "someone changed it meanwhile; reload it and try again", current=row["version"],
            zh=stale_zh(code, row["version"], version))
    done = {"rate"} if row["satisfaction"] is not None else set()
    target = transition(row["state"], action, role, major=row["route"] == "leadership",
                        done=done, event=code, pending=row.get("extension_requested_hours") is not None)
    spec = ACTIONS[action]
    if action in NOTE_REQUIRED and note is None:
        raise InvalidEvent(f"{action!r} needs a note saying why", zh=f"“{ACTIONS[action].label}”须填写原因")
    for name in spec.needs:
        if name == "reason" and (data.get("reason") or note):
            continue
        if data.get(name) in (None, ""):
            raise InvalidEvent(f"{action!r} needs data.{name}", zh=f"“{ACTIONS[action].label}”须填写{_field(name)}")
    changes: dict[str, Any] = {}
    extra: list = []  # (statement) to run after the update, e.g. on a merge target
    record_data = dict(data)
    _effects(conn, store, row, action, note, data, at, changes, record_data, extra, actor, role)
    ev = schema.events
    changes.update(state=target, version=row["version"] + 1, updated_at=at)
    if target == "closed" and row["state"] != "closed":
        changes["closed_at"] = at
    res = conn.execute(ev.update().where(ev.c.id == row["id"], ev.c.version == row["version"])
                       .values(**changes))
    if res.rowcount != 1:  # another writer won between our read and this update
        current = conn.execute(select(ev.c.version).where(ev.c.id == row["id"])).scalar()
        raise StaleVersion(f"event {code} was changed meanwhile (now version {current}); "
                           "reload it and try again", current=current, zh=stale_zh(code, current, row["version"]))
    conn.execute(schema.event_actions.insert().values(
        event_id=row["id"], seq=row["version"] + 1, at=at, action=action, actor=actor, role=role,
        from_state=row["state"], to_state=target, note=note, data=record_data or None))
    outbox.record(conn, [(code, action, row["version"] + 1, at)])
    Store.audit(conn, actor=actor, action=f"event.{action}", entity="events", entity_id=code,
                detail={"role": role, "from": row["state"], "to": target, "note": note,
                        "data": record_data or None, "version": row["version"] + 1})
    for fn in extra:
        fn()


def _dispatch(conn, row: dict, role: str, data: dict, changes: dict) -> None:
    """Where a dispatch sends the event: the routed unit, or a target of the catalogue.

    The rules (the catalogue, :func:`gridgeo.events.catalogue.dispatch_targets`, pairs
    platforms and departments):

    - ``data.category_code`` re-routes the event by that category (its platform and
      department, as routing gives them);
    - ``data.department`` / ``data.platform`` name the unit: a department of the catalogue,
      of that platform (a department alone keeps the event's platform when it has that
      department there, else takes the one platform that has it);
    - a platform office dispatches inside the event's platform (its own: it sees no other)
      only; across platforms the command room dispatches.

    Raises
    ------
    InvalidEvent
        An unknown category, platform or department, or a pair the catalogue does not have.
    RoleNotAllowed
        A platform office sending the event to another platform.
    """
    wanted = _text(data, "category_code", 32)
    if wanted and wanted != row["category_code"]:
        category = _category(conn, wanted)
        if category is None:
            raise InvalidEvent(f"unknown category {data['category_code']!r}",
                               zh=f"事项清单中没有事项“{data['category_code']}”")
        route = route_event(category, [])
        changes.update(category_code=category["code"], platform=route.platform,
                       department=route.department, route=route.route, route_target=route.target,
                       route_reason=route.reason,
                       deadline_workdays=category["deadline_workdays"],
                       deadline_at=_deadline(row, category))
    department = _text(data, "department", 200)
    platform = _text(data, "platform", 16)
    if platform is not None and platform not in PLATFORMS:
        raise InvalidEvent(f"data.platform must be one of {', '.join(PLATFORMS)}, not {platform!r}",
                           zh=f"平台须为：{'、'.join(PLATFORMS.values())}")
    current = changes.get("platform") or row["platform"]
    if department is not None or platform is not None:
        targets = dispatch_targets(conn)
        listing = "; ".join(f"{p}: {'、'.join(ds)}" for p, ds in targets.items()) or "none"
        if department is None:
            department = changes.get("department") or row["department"]
        elif platform is None:
            having = [p for p, ds in targets.items() if department in ds]
            platform = current if current in having else having[0] if len(having) == 1 else None
            if platform is None and having:
                raise InvalidEvent(f"department {department!r} is in several platforms "
                                   f"({', '.join(having)}): give data.platform too",
                                   zh=f"部门“{department}”属于多个平台，请同时选择平台")
        platform = platform or current
        if department not in targets.get(platform, ()):
            raise InvalidEvent(f"{department!r} is not a department of platform {platform!r} in the "
                               f"catalogue; dispatch targets: {listing}",
                               zh=f"“{department}”不是{PLATFORMS.get(platform, platform)}在事项清单中的部门")
    department = department or changes.get("department") or row["department"]
    platform = platform or current
    if not department:
        raise InvalidEvent("dispatch needs data.department: the event has no routed department",
                           zh="该事件没有默认的责任部门，请选择分派的部门")
    if role == "platform_office" and platform != row["platform"]:
        raise RoleNotAllowed(f"a platform office dispatches inside its platform ({row['platform']!r}) only, "
                             f"not to {platform!r}: across platforms the command room dispatches",
                             roles=["command_room"], zh="平台协调办公室只能在本平台内分派；跨平台分派由综合指挥室办理")
    changes.update(department=department, platform=platform)


def _extend(conn, row: dict, hours: int, days: int, changes: dict, record_data: dict) -> None:
    """Move the deadline by ``hours`` (calendar) and ``days`` (working days): an extension,
    granted directly (``extend``) or on a department's request (``grant_extension``)."""
    base = row["deadline_at"]
    if base is None:
        base = _deadline(row, _category(conn, row["category_code"]) or {"deadline_hours": 0})
    new = extend(base, hours=hours, days=days)
    changes.update(deadline_at=new, extended_hours=row["extended_hours"] + hours, warning=None,
                   extended_days=(row.get("extended_days") or 0) + days)
    record_data.update(deadline_from=base.isoformat(), deadline_to=new.isoformat())
    record_data.update({k: v for k, v in (("hours", hours), ("days", days)) if v})


def _effects(conn, store, row, action, note, data, at, changes, record_data, extra, actor, role) -> None:
    """The fields an action changes besides the state (and what the history keeps)."""
    ev = schema.events
    if action == "reject":
        reason = _text(data, "reason", 32) or "other"
        if reason not in REJECT_REASONS:
            raise InvalidEvent(f"reason must be one of {', '.join(REJECT_REASONS)}, not {reason!r}",
                               zh=f"不予受理的原因须为：{'、'.join(REJECT_REASONS.values())}")
        changes.update(reject_reason=reason, result=note or REJECT_REASONS[reason])
    elif action == "merge":
        into = str(data["into"])
        if into == row["code"]:
            raise InvalidEvent("an event cannot be merged into itself", zh="事件不能并入它自己")
        master = conn.execute(select(ev.c.id, ev.c.code, ev.c.state, ev.c.version, ev.c.category_code)
                              .where(ev.c.code == into)).mappings().first()
        if master is None:
            raise NotFound(f"no event {into!r} to merge into")
        if master["state"] not in OPEN_STATES:
            raise InvalidEvent(f"event {into} is {master['state']}: merge into an open event",
                               zh=f"事件 {into} {STATES.get(master['state'], master['state'])}，只能并入未办结的事件")
        changes.update(duplicate_of=into, reject_reason="duplicate",
                       result=note or f"重复上报，已并入事件 {into}")
        record_data["into"] = into

        def absorb():
            res = conn.execute(ev.update().where(ev.c.id == master["id"], ev.c.version == master["version"])
                               .values(version=master["version"] + 1, updated_at=at))
            if res.rowcount != 1:
                raise StaleVersion(f"event {into} was changed meanwhile; try the merge again")
            conn.execute(schema.event_actions.insert().values(
                event_id=master["id"], seq=master["version"] + 1, at=at, action="absorb",
                actor=actor, role="command_room",
                from_state=master["state"], to_state=master["state"], note=note,
                data={"duplicate": row["code"]}))

        extra.append(absorb)
    elif action == "dispatch":
        _dispatch(conn, row, role, data, changes)
        department, platform = changes["department"], changes["platform"]
        record_data.update(department=department, platform=platform)
        if row["deadline_at"] is None and "deadline_at" not in changes:
            cat = _category(conn, row["category_code"])
            if cat is not None:
                changes["deadline_at"] = _deadline(row, cat)
                changes["deadline_workdays"] = cat["deadline_workdays"]
    elif action == "escalate":
        to = (_text(data, "to", 200)
              or (row["route_target"] if row["route"] == "escalate" else "county_center"))
        reason = _text(data, "reason", 4000) or note or row["route_reason"]
        if not reason:
            raise InvalidEvent("escalate needs a reason (note or data.reason)", zh="上报上级须填写原因")
        changes["escalated_to"] = ESCALATION_TARGETS.get(to, to)
        record_data.update(to=to, reason=reason)
    elif action == "resolve":
        changes.update(resolved_at=at, result=note or row["result"])
    elif action == "county_close":
        changes["result"] = note or ACTIONS[action].label
    elif action == "extend":
        # data.hours (calendar hours) or data.days (working days), or both
        hours = _int(data, "hours", 1, MAX_EXTENSION_HOURS) if data.get("hours") is not None else 0
        days = _int(data, "days", 1, MAX_EXTENSION_DAYS) if data.get("days") is not None else 0
        if not hours and not days:
            raise InvalidEvent("extend needs data.hours (hours) or data.days (working days)",
                               zh="延期须填写小时数或工作日数")
        _extend(conn, row, hours, days, changes, record_data)
    elif action == "ask_extension":  # the department asks; the deadline moves on approval
        hours = _int(data, "hours", 1, MAX_EXTENSION_HOURS)
        changes["extension_requested_hours"] = hours
        record_data["hours"] = hours
    elif action == "grant_extension":  # the hours asked for
        hours = row["extension_requested_hours"]
        _extend(conn, row, hours, 0, changes, record_data)
        changes["extension_requested_hours"] = None
    elif action == "refuse_extension":
        changes["extension_requested_hours"] = None
        record_data["hours"] = row["extension_requested_hours"]
    elif action == "return" and row.get("extension_requested_hours") is not None:
        # the department gives the event back: its request goes with it
        changes["extension_requested_hours"] = None
    elif action == "supervise":
        if row["deadline_at"] is not None and at > row["deadline_at"]:
            record_data["late_hours"] = round((at - row["deadline_at"]).total_seconds() / 3600.0, 1)
    elif action == "rate":
        changes["satisfaction"] = _int(data, "satisfaction", 1, 5)
    elif action == "locate":
        geo = get_geolocator(store)
        loc = geo.locate(reported_at=row["reported_at"], lon=data.get("lon"), lat=data.get("lat"),
                         crs=_text(data, "crs", 32), address=_text(data, "address", 500),
                         grid_code=_text(data, "grid_code", 15), conn=conn)
        if loc.located_by in ("unlocated",) and not data.get("grid_code"):
            raise InvalidEvent("these data do not place the event in a grid: give grid_code, "
                               "lon/lat or a register address",
                               zh="无法据此确定事件所在网格：请填写网格编码、经纬度或登记的地址")
        changes.update(grid_code=loc.grid_code, located_by=loc.located_by, plan_version=loc.plan_version,
                       locate_distance_m=loc.distance_m, address_confidence=loc.address_confidence,
                       address_match=loc.address_match)
        if loc.lon is not None:
            changes.update(geometry=shapely.Point(loc.lon, loc.lat), pos_lon=loc.lon, pos_lat=loc.lat)
        cat = _category(conn, row["category_code"])
        if cat is not None and row["state"] in ROUTABLE_STATES:
            route = route_event(cat, [], outside=loc.outside)
            changes.update(route=route.route, route_target=route.target, route_reason=route.reason,
                           platform=route.platform, department=route.department)
        record_data.update(located_by=loc.located_by, grid_code=loc.grid_code)

