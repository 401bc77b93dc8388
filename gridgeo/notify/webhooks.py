"""Webhook subscriptions (administrators) and the deliveries the console shows."""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
import socket
from urllib.parse import urlsplit

from sqlalchemy import func, select

from gridgeo.config import get_settings
from gridgeo.errors import InvalidInput, NotFound
from gridgeo.events.db import write_txn
from gridgeo.events.records import iso, now_utc
from gridgeo.notify.outbox import EVENT_TYPES
from gridgeo.store import Store, schema

__all__ = ["SECRET_PREFIX", "check_destination", "create_webhook", "delete_webhook", "delivery_counts", "list_deliveries", "list_webhooks",
           "new_secret", "retry_delivery"]

#: Standard Webhooks' secret prefix (the secret is base64 of 24 to 64 random bytes).
SECRET_PREFIX = "whsec_"
MAX_URL = 2000
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
DELIVERY_STATES = ("pending", "delivered", "dead")


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 to 64 bytes."""
    body = secret.removeprefix(SECRET_PREFIX) if isinstance(secret, str) else ""
    try:
        raw = base64.b64decode(body, validate=True)
    except (ValueError, TypeError):
        raw = b""
    if not secret.startswith(SECRET_PREFIX) or not 24 <= len(raw) <= 64:
        raise InvalidInput("secret must be whsec_ followed by the base64 of 24 to 64 random bytes "
                           "(leave it out and one is made)")
    return secret


def check_url(url: str) -> str:
    if not isinstance(url, str) or len(url) > MAX_URL or not _URL.match(url):
        raise InvalidInput(f"url must be an http:// or https:// address of at most {MAX_URL} characters, "
                           f"not {str(url)[:80]!r}")
    check_destination(urlsplit(url).hostname, resolve=False)
    return url


#: Cloud metadata services outside the link-local ranges (Alibaba Cloud's; AWS's IPv6 one is
#: fd00:ec2::254).
_METADATA = frozenset({ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")})


def _refusal(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why the server must not fetch from ``addr`` under the settings, or None."""
    s = get_settings()
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback or addr.is_unspecified:
        return None if s.notify_allow_loopback else "a loopback address (GRIDGEO_NOTIFY_ALLOW_LOOPBACK)"
    if addr.is_link_local or addr in _METADATA:
        return None if s.notify_allow_link_local else \
            "a link-local or cloud metadata address (GRIDGEO_NOTIFY_ALLOW_LINK_LOCAL)"
    if addr.is_multicast or addr.is_reserved:
        return "a multicast or reserved address"
    return None


def check_destination(host: str | None, *, resolve: bool = True) -> None:
    """Refuse a host the server must not send to: a loopback address unless
    ``GRIDGEO_NOTIFY_ALLOW_LOOPBACK``, a link-local or cloud metadata address unless
    ``GRIDGEO_NOTIFY_ALLOW_LINK_LOCAL``, multicast and reserved ones always. An address is
    checked as written (any form the resolver takes: ``0x7f000001``, ``127.1``, IPv4-mapped
    IPv6); a name, with ``resolve``, by every address it resolves to (a name that does not
    resolve is left to the send to fail), else ``localhost`` only. Raises :class:`InvalidInput`."""
    if not host:
        raise InvalidInput("the URL names no host")
    name = host.strip("[]").rstrip(".").lower()
    addrs: list = []
    try:
        addrs = [ipaddress.ip_address(name.split("%", 1)[0])]
    except ValueError:
        if resolve or name == "localhost" or name.endswith(".localhost") or _numeric(name):
            try:
                infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            except (OSError, UnicodeError):
                infos = []
            addrs = [ipaddress.ip_address(i[4][0].split("%", 1)[0]) for i in infos]
            if not infos and (name == "localhost" or name.endswith(".localhost")):
                addrs = [ipaddress.ip_address("127.0.0.1")]
    for addr in addrs:
        why = _refusal(addr)
        if why is not None:
            raise InvalidInput(f"the URL points at {why}: the server does not send there")


def _numeric(name: str) -> bool:
    """A host written as a number the resolver reads as an IPv4 address (``2130706433``,
    ``0x7f.1``, ``127.1``)."""
    return bool(re.fullmatch(r"[0-9a-fx.]+", name)) and any(c.isdigit() for c in name)


def check_types(types: list[str]) -> list[str]:
    if not types or not isinstance(types, list):
        raise InvalidInput(f"event_types must list some of {', '.join(EVENT_TYPES)} (or '*': every one)")
    bad = [t for t in types if t != "*" and t not in EVENT_TYPES]
    if bad:
        raise InvalidInput(f"unknown event types {bad[:5]!r:.200}: use {', '.join(EVENT_TYPES)} or '*'")
    return sorted(set(types))


def _hook(row) -> dict:
    return {"id": row["id"], "url": row["url"], "event_types": row["event_types"],
            "description": row["description"], "active": bool(row["active"]),
            "created_at": iso(row["created_at"]), "created_by": row["created_by"]}


def create_webhook(store: Store, url: str, event_types: list[str], *, secret: str | None = None,
                   description: str | None = None, actor: str) -> dict:
    """Subscribe ``url`` to ``event_types``; the answer holds the secret (shown this once)."""
    url, types = check_url(url), check_types(event_types)
    secret = check_secret(secret) if secret is not None else new_secret()
    wh = schema.webhooks
    with write_txn(store) as conn:
        hook_id = conn.execute(wh.insert().returning(wh.c.id).values(
            url=url, secret=secret, event_types=types, description=description, active=True,
            created_at=now_utc(), created_by=actor)).scalar_one()
        Store.audit(conn, actor=actor, action="webhook.create", entity="webhooks", entity_id=str(hook_id),
                    detail={"url": url, "event_types": types})
        row = conn.execute(select(wh).where(wh.c.id == hook_id)).mappings().one()
    return {**_hook(row), "secret": secret}


def list_webhooks(store: Store) -> list[dict]:
    wh = schema.webhooks
    with store.engine.connect() as conn:
        return [_hook(r) for r in conn.execute(select(wh).order_by(wh.c.id)).mappings()]


def delete_webhook(store: Store, hook_id: int, *, actor: str) -> dict:
    """Stop a subscription (its pending deliveries die; the history of deliveries stays)."""
    wh, dl = schema.webhooks, schema.deliveries
    with write_txn(store) as conn:
        done = conn.execute(wh.update().where(wh.c.id == hook_id, wh.c.active.is_(True))
                            .values(active=False)).rowcount
        if not done:
            raise NotFound(f"no active webhook {hook_id}")
        conn.execute(dl.update().where(dl.c.channel == "webhook", dl.c.target == str(hook_id),
                                       dl.c.state == "pending")
                     .values(state="dead", last_error="webhook deleted"))
        Store.audit(conn, actor=actor, action="webhook.delete", entity="webhooks", entity_id=str(hook_id))
        return _hook(conn.execute(select(wh).where(wh.c.id == hook_id)).mappings().one())


def _delivery(row) -> dict:
    return {"id": row["id"], "channel": row["channel"], "target": row["target"],
            "event_code": row["event_code"], "event_type": row["event_type"],
            "delivery_key": row["delivery_key"], "state": row["state"], "attempts": row["attempts"],
            "next_at": iso(row["next_at"]) if row["state"] == "pending" else None,
            "last_status": row["last_status"], "last_error": row["last_error"], "receipt": row["receipt"],
            "created_at": iso(row["created_at"]), "delivered_at": iso(row["delivered_at"])}


def list_deliveries(store: Store, *, state: str | None = None, event_code: str | None = None,
                    limit: int = 50, offset: int = 0) -> dict:
    """Deliveries, newest first (``state='dead'``: the dead-letter list), with counts by state."""
    if state is not None and state not in DELIVERY_STATES:
        raise InvalidInput(f"state must be one of {', '.join(DELIVERY_STATES)}, not {state!r:.40}")
    dl = schema.deliveries
    q = select(dl)
    if state:
        q = q.where(dl.c.state == state)
    if event_code:
        q = q.where(dl.c.event_code == event_code)
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(dl.c.id.desc()).limit(limit).offset(offset)).mappings().all()
    return {**delivery_counts(store), "items": [_delivery(r) for r in rows]}


def delivery_counts(store: Store) -> dict:
    """Deliveries by state, and the outbox rows not yet fanned out."""
    dl = schema.deliveries
    with store.engine.connect() as conn:
        counts = dict(conn.execute(select(dl.c.state, func.count()).group_by(dl.c.state)).all())
        backlog = conn.execute(select(func.count()).select_from(schema.outbox)
                               .where(schema.outbox.c.dispatched.is_(False))).scalar_one()
    return {"counts": {s: counts.get(s, 0) for s in DELIVERY_STATES}, "outbox_backlog": backlog}


def retry_delivery(store: Store, delivery_id: int, *, actor: str) -> dict:
    """Put a dead delivery back in the queue (same delivery key: the receiver still drops a
    duplicate)."""
    dl = schema.deliveries
    with write_txn(store) as conn:
        done = conn.execute(dl.update().where(dl.c.id == delivery_id, dl.c.state == "dead")
                            .values(state="pending", attempts=0, next_at=now_utc())).rowcount
        if not done:
            raise NotFound(f"no dead delivery {delivery_id}")
        Store.audit(conn, actor=actor, action="delivery.retry", entity="deliveries", entity_id=str(delivery_id))
        row = conn.execute(select(dl).where(dl.c.id == delivery_id)).mappings().one()
    return _delivery(row)
