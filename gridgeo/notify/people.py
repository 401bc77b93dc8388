"""People's channels (通知人员): apprise URLs (DingTalk ``dingtalk://``, WeCom ``wecombot://``,
Feishu ``feishu://``, e-mail ``mailto://``, SMS gateways, ...), for one user or for a role,
with the event types wanted and quiet hours (China time).

Who gets what:

- a channel for a **user** gets the events of its types that the user's scope holds
  (:func:`gridgeo.auth.sees_event`: a department its department's, a grid worker its grids');
- a channel for a **role** that sees every event (command room, leadership, administrator)
  gets every event of its types;
- left out, the types are the role's defaults (:data:`DEFAULT_TYPES`): the department on
  dispatch and when its deadline is extended, the platform office on dispatch and on a
  department's request for an extension (申请延期), the grid worker on a new event in its grids,
  the command room on red and on escalation.

A message due in quiet hours waits for their end (not counted as an attempt).
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

from sqlalchemy import select

from gridgeo.auth import ALL_EVENTS, Principal, sees_event
from gridgeo.errors import InvalidInput, NotFound
from gridgeo.events.db import write_txn
from gridgeo.events.records import iso, now_utc
from gridgeo.layers import ACCOUNT_ROLES
from gridgeo.notify.outbox import EVENT_TYPES
from gridgeo.notify.webhooks import check_destination, check_types
from gridgeo.store import Store, schema
from gridgeo.timezone import CHINA

__all__ = ["DEFAULT_TYPES", "create_channel", "delete_channel", "in_quiet_hours", "list_channels",
           "message", "recipients", "send"]

DEFAULT_TYPES = {
    "department": ["event.dispatched", "event.extended"],
    "platform_office": ["event.dispatched", "event.extension_asked"],
    "grid_worker": ["event.reported"],
    "command_room": ["event.overdue", "event.escalated"],
    "leadership": ["event.overdue", "event.escalated"],
    "admin": ["event.overdue"],
}
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_URL = 2000


#: apprise schemes whose URL names the host it sends to (the others name a service's own:
#: dingtalk://TOKEN, wecombot://KEY ...): those hosts are checked as webhooks' are.
HOSTED_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos",
                            "apprise", "apprises"})


def check_channel_url(url: str, *, resolve: bool) -> None:
    """Refuse an apprise URL whose host the server must not send to
    (:func:`gridgeo.notify.webhooks.check_destination`)."""
    parts = urlsplit(url)
    if parts.scheme.lower() in HOSTED_SCHEMES:
        try:
            host = parts.hostname
        except ValueError:
            raise InvalidInput("url names no valid host") from None
        check_destination(host, resolve=resolve)


def _mask_url(url: str) -> str:
    """The scheme and host only: an apprise URL carries its service's tokens."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host[:40]}/…"


def _channel(row) -> dict:
    return {"id": row["id"], "name": row["name"], "role": row["role"], "username": row["username"],
            "url": _mask_url(row["url"]), "event_types": row["event_types"],
            "quiet_hours": [row["quiet_start"], row["quiet_end"]] if row["quiet_start"] else None,
            "active": bool(row["active"]), "created_at": iso(row["created_at"])}


def create_channel(store: Store, name: str, url: str, *, role: str | None = None, username: str | None = None,
                   event_types: list[str] | None = None, quiet_hours: tuple[str, str] | None = None,
                   actor: str) -> dict:
    """A channel for ``username`` or for every user of ``role``."""
    import apprise

    if (role is None) == (username is None):
        raise InvalidInput("a channel is for a user (username) or for a role (role), one of the two")
    if isinstance(url, str) and len(url) <= MAX_URL:
        check_channel_url(url, resolve=False)
    if not isinstance(url, str) or len(url) > MAX_URL or apprise.Apprise.instantiate(url) is None:
        raise InvalidInput("url is not an apprise URL this server can send to "
                           "(dingtalk://, wecombot://, feishu://, mailto://, json://, ...)")
    us = schema.users
    with store.engine.connect() as conn:
        if username is not None:
            user = conn.execute(select(us.c.role).where(us.c.username == username)).first()
            if user is None:
                raise NotFound(f"no user {username!r}")
            role_of = user[0]
        else:
            if role not in ACCOUNT_ROLES:
                raise InvalidInput(f"role must be one of {', '.join(ACCOUNT_ROLES)}, not {role!r:.40}")
            if role not in ALL_EVENTS:
                raise InvalidInput(f"a {role} sees only its own events: give the channel to each user "
                                   "(username), not to the role")
            role_of = role
    types = check_types(event_types) if event_types else DEFAULT_TYPES.get(role_of, [])
    if not types:
        raise InvalidInput(f"event_types: the role {role_of} has no default; name some of {', '.join(EVENT_TYPES)}")
    quiet = (None, None)
    if quiet_hours:
        if len(quiet_hours) != 2 or not all(isinstance(q, str) and _HHMM.match(q) for q in quiet_hours):
            raise InvalidInput("quiet_hours is a pair of HH:MM (China time), e.g. [\"22:00\", \"07:30\"]")
        quiet = tuple(quiet_hours)
    ch = schema.channels
    with write_txn(store) as conn:
        cid = conn.execute(ch.insert().returning(ch.c.id).values(
            name=name, role=role, username=username, url=url, event_types=types, quiet_start=quiet[0],
            quiet_end=quiet[1], active=True, created_at=now_utc())).scalar_one()
        Store.audit(conn, actor=actor, action="channel.create", entity="channels", entity_id=str(cid),
                    detail={"name": name, "role": role, "username": username, "event_types": types})
        row = conn.execute(select(ch).where(ch.c.id == cid)).mappings().one()
    return _channel(row)


def list_channels(store: Store) -> list[dict]:
    ch = schema.channels
    with store.engine.connect() as conn:
        return [_channel(r) for r in conn.execute(select(ch).order_by(ch.c.id)).mappings()]


def delete_channel(store: Store, channel_id: int, *, actor: str) -> dict:
    ch, dl = schema.channels, schema.deliveries
    with write_txn(store) as conn:
        if not conn.execute(ch.update().where(ch.c.id == channel_id, ch.c.active.is_(True))
                            .values(active=False)).rowcount:
            raise NotFound(f"no active channel {channel_id}")
        conn.execute(dl.update().where(dl.c.channel == "person", dl.c.target == str(channel_id),
                                       dl.c.state == "pending").values(state="dead", last_error="channel deleted"))
        Store.audit(conn, actor=actor, action="channel.delete", entity="channels", entity_id=str(channel_id))
        return _channel(conn.execute(select(ch).where(ch.c.id == channel_id)).mappings().one())


def recipients(conn, event_type: str, event: dict | None) -> list[str]:
    """The ids (as text) of the active channels that get this event type of this event."""
    ch, us = schema.channels, schema.users
    rows = conn.execute(select(ch.c.id, ch.c.role, ch.c.username, ch.c.event_types)
                        .where(ch.c.active.is_(True))).all()
    out = []
    for cid, role, username, types in rows:  # a handful of channels
        if event_type not in types and "*" not in types:
            continue
        if username is not None:
            u = conn.execute(select(us).where(us.c.username == username, us.c.active.is_(True))).mappings().first()
            if u is None or event is None:
                continue
            p = Principal(u["username"], u["name"], u["role"], frozenset(u["grids"] or ()), u["department"],
                          u["platform"], u["staff_code"])
            if not sees_event(p, event):
                continue
        out.append(str(cid))
    return out


def in_quiet_hours(start: str | None, end: str | None, now: dt.datetime) -> dt.datetime | None:
    """When the quiet hours around ``now`` end (UTC), or None outside them."""
    if not start or not end:
        return None
    local = now.astimezone(CHINA)
    s, e = (dt.time.fromisoformat(start), dt.time.fromisoformat(end))
    t = local.time()
    inside = (s <= t < e) if s < e else (t >= s or t < e)
    if not inside:
        return None
    end_at = dt.datetime.combine(local.date(), e, CHINA)
    if end_at <= local:
        end_at += dt.timedelta(days=1)
    return end_at.astimezone(dt.timezone.utc)


def message(payload: dict) -> tuple[str, str]:
    """Title and body of a message for people (Chinese labels)."""
    ev = payload.get("data", {}).get("event") or {}
    label = EVENT_TYPES.get(payload["type"], payload["type"])
    title = f"【{label}】{ev.get('category_name') or ev.get('category_code') or ''} {ev.get('code', '')}".strip()
    lines = [f"事件：{ev.get('code', '')}", f"状态：{ev.get('state_label') or ''}",
             f"网格：{ev.get('grid_code') or '未定位'}", f"责任部门：{ev.get('department') or ''}",
             f"办理时限：{ev.get('deadline_at') or ''}（{ev.get('warning_label') or ''}）"]
    if ev.get("description"):
        lines.append(f"描述：{ev['description'][:200]}")
    return title, "\n".join(lines)


def send(url: str, payload: dict) -> str | None:
    """Send through apprise; None when sent, else why not."""
    import apprise

    try:
        check_channel_url(url, resolve=True)
    except InvalidInput as exc:
        return str(exc)
    a = apprise.Apprise()
    if not a.add(url):
        return "the channel's URL is not one apprise can send to"
    title, body = message(payload)
    return None if a.notify(title=title, body=body) else "apprise could not deliver the message"
