"""The event catalogue (事项清单): categories with their platform, department, deadline
and whether they are major. Loaded from ``data/`` by the import (``categories`` layer),
read and edited here."""

from __future__ import annotations

from sqlalchemy import select

from gridgeo.errors import InvalidEvent, NotFound
from gridgeo.events.db import write_txn
from gridgeo.layers import PLATFORMS
from gridgeo.store import Store, schema

__all__ = ["dispatch_targets", "get_category", "list_categories", "put_category"]

_FIELDS = ("name", "platform", "department", "deadline_hours", "deadline_workdays", "major", "description")
#: The longest deadline a category may set: a year (deadlines are dates, and dates end).
MAX_DEADLINE_HOURS = 24 * 366
#: The same in working days (a year has about 250).
MAX_DEADLINE_WORKDAYS = 250


def list_categories(store: Store, *, platform: str | None = None) -> list[dict]:
    """Every category, by code (optionally of one platform)."""
    cat = schema.categories
    q = select(cat).order_by(cat.c.code)
    if platform:
        q = q.where(cat.c.platform == platform)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def dispatch_targets(conn) -> dict[str, list[str]]:
    """Where an event may be dispatched: platform -> its departments, as the catalogue's
    categories pair them (on the caller's connection, inside its transaction)."""
    cat = schema.categories
    out: dict[str, list[str]] = {}
    for platform, department in conn.execute(select(cat.c.platform, cat.c.department).distinct()
                                             .order_by(cat.c.platform, cat.c.department)):
        out.setdefault(platform, []).append(department)
    return out


def get_category(store: Store, code: str) -> dict:
    cat = schema.categories
    with store.engine.connect() as conn:
        row = conn.execute(select(cat).where(cat.c.code == code)).mappings().first()
    if row is None:
        raise NotFound(f"no category {code!r}")
    return dict(row)


def put_category(store: Store, code: str, values: dict, *, actor: str) -> tuple[dict, bool]:
    """Create or update category ``code``; returns (the category, created?).

    Events already reported keep their deadline and routing; new ones use the new
    values. The change is audited with the old and new values.
    """
    values = {k: v for k, v in values.items() if k in _FIELDS}
    cat = schema.categories
    if not code or len(code) > cat.c.code.type.length:
        raise InvalidEvent(f"a category code has 1 to {cat.c.code.type.length} characters")
    if values.get("platform") is not None and values["platform"] not in PLATFORMS:
        raise InvalidEvent(f"platform must be one of {', '.join(PLATFORMS)}")
    hours = values.get("deadline_hours")
    if hours is not None and not 0 < int(hours) <= MAX_DEADLINE_HOURS:
        raise InvalidEvent(f"deadline_hours must be between 1 and {MAX_DEADLINE_HOURS}")
    days = values.get("deadline_workdays")
    if days is not None and not 0 < int(days) <= MAX_DEADLINE_WORKDAYS:
        raise InvalidEvent(f"deadline_workdays must be between 1 and {MAX_DEADLINE_WORKDAYS} (or null: hours)")
    with write_txn(store) as conn:
        old = conn.execute(select(cat).where(cat.c.code == code)).mappings().first()
        if old is None:
            missing = [f for f in ("name", "platform", "department", "deadline_hours") if values.get(f) in (None, "")]
            if missing:
                raise InvalidEvent(f"a new category needs {', '.join(missing)}")
            conn.execute(cat.insert().values(code=code, **{"major": False, **values}))
        else:
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                conn.execute(cat.update().where(cat.c.code == code).values(**values))
        Store.audit(conn, actor=actor, action="category.put", entity="categories", entity_id=code,
                    detail={"old": dict(old) if old else None, "new": values})
        row = conn.execute(select(cat).where(cat.c.code == code)).mappings().first()
    from gridgeo.events.geolocate import get_geolocator

    get_geolocator(store).invalidate()
    return dict(row), old is None
