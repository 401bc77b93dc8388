"""Users, API tokens, roles, scopes and the masking of personal data.

Who may do what is decided here, once, so the API (and anything else that serves
events) only asks:

- :func:`authenticate` turns a bearer token into a :class:`Principal` (or raises
  :class:`~gridgeo.errors.Unauthenticated`). Tokens are 256 random bits shown once;
  only their SHA-256 is stored (a slow password hash buys nothing for random tokens).
- :func:`require` refuses a principal whose role is not among those given.
- :func:`event_filters` narrows event queries to the principal's scope, and
  :func:`sees_event` checks one event: a grid worker sees the events of their own
  grids, a department what was routed to it, a platform office its platform; the
  command room, the leadership group and the administrator see everything. The planner
  works on plans and sees no events. The public reporter has no account: they report
  anonymously and follow their own event with the token it gave them.
- :func:`mask_event` and :func:`mask_household` hide personal data (reporter name and
  phone, household contacts) from roles that do not need it: ``黄敏`` -> ``黄*``,
  ``19944667827`` -> ``199****7827``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select, update

from gridgeo.errors import InvalidUser, NotFound, RoleNotAllowed, Unauthenticated
from gridgeo.layers import ACCOUNT_ROLES
from gridgeo.store import Store, schema

__all__ = [
    "ACCOUNT_ROLES",
    "Principal",
    "authenticate",
    "create_token",
    "create_user",
    "demo_users",
    "event_filters",
    "list_tokens",
    "list_users",
    "mask_event",
    "mask_household",
    "mask_name",
    "mask_phone",
    "principal_of",
    "require",
    "revoke_token",
    "scoped",
    "sees_event",
]

# ACCOUNT_ROLES (gridgeo.layers): the roles a principal may have, code -> label.

#: Roles that see every event.
ALL_EVENTS = frozenset({"admin", "command_room", "leadership"})
#: Roles that see some events (their scope).
SCOPED_EVENTS = frozenset({"platform_office", "department", "grid_worker"})
#: Roles that may read events at all.
EVENT_READERS = ALL_EVENTS | SCOPED_EVENTS
#: Plans are read by the planner, the command room, the leadership group and the
#: administrator, and made, edited and published by the planner and the administrator.
PLAN_READERS = ("planner", "admin", "command_room", "leadership")
PLAN_WRITERS = ("planner", "admin")
#: Who reads the household register (GET /v1/households, the OGC households collection,
#: the households drawn on maps); contacts only for some of them (:func:`mask_household`).
HOUSEHOLD_READERS = ("admin", "planner", "command_room", "leadership", "grid_worker")
#: Event sources the anonymous public may report from (the others are entered by staff:
#: grid workers' patrols, the hotline and petition desks, inspections, departments).
PUBLIC_SOURCES = frozenset({"app"})
#: Who needs the reporter's name and phone: the command room calls back (双反馈), the
#: grid worker visits (only events of their own grids reach them).
REPORTER_CONTACT_ROLES = frozenset({"command_room", "grid_worker"})
#: Sources whose reporter is staff: a grid worker on patrol, a department's inspector or
#: desk. Their names and work phones are in the roster (the lookup answers them), so they
#: are not masked; citizens' (the hotline, petitions, the app) are.
STAFF_SOURCES = frozenset({"patrol", "inspection", "department"})
#: Who needs household contacts: the grid worker of the household's grid, the command room.
HOUSEHOLD_CONTACT_ROLES = frozenset({"command_room", "grid_worker"})

#: Every secret gridgeo issues starts with a prefix of its own (API tokens ``ggt_``, the
#: reporter's token ``ggr_``, map tickets ``ggm_``): log redaction and secret scanners find
#: them wherever they appear, whatever carries them.
TOKEN_PREFIX = "ggt_"
REPORTER_TOKEN_PREFIX = "ggr_"
#: How long a token is trusted from the process cache before the database is asked
#: again (a revocation takes effect within this many seconds on every worker).
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user with one role and its scope, or the anonymous public."""

    username: str | None
    name: str
    role: str | None
    grids: frozenset[str] = field(default_factory=frozenset)
    department: str | None = None
    platform: str | None = None
    staff_code: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.username is None

    @property
    def actor(self) -> str:
        """The name the history and the audit log keep."""
        return self.name or self.username or "public"

    def describe(self) -> dict:
        return {"username": self.username, "name": self.name, "role": self.role,
                "role_label": ACCOUNT_ROLES.get(self.role or "", None), "grids": sorted(self.grids),
                "department": self.department, "platform": self.platform,
                "staff_code": self.staff_code}


#: The caller with no token: may report events, look up points, read public data.
ANONYMOUS = Principal(None, "public", None)


def require(principal: Principal, roles: Iterable[str], what: str) -> None:
    """Raise :class:`Unauthenticated` (no token) or :class:`RoleNotAllowed` unless the
    principal's role is one of ``roles``."""
    roles = list(roles)
    if principal.role in roles:
        return
    if principal.anonymous:
        raise Unauthenticated(f"{what} needs a token: send Authorization: Bearer <token>")
    raise RoleNotAllowed(f"{what}: not for the role {principal.role!r}", roles=roles)


# -- scope -------------------------------------------------------------------------------


def event_filters(principal: Principal, what: str = "reading events") -> dict:
    """The filters every event query of this principal must carry (empty: all events).

    Raises for roles that read no events. The filters combine with the caller's own by
    AND, so asking for another grid gives nothing rather than an error.
    """
    require(principal, EVENT_READERS, what)
    if principal.role == "grid_worker":
        return {"grid": sorted(principal.grids) or ["-"]}
    if principal.role == "department":
        return {"department": [principal.department or "-"]}
    if principal.role == "platform_office":
        return {"platform": [principal.platform or "-"]}
    return {}


#: The event columns each key of :func:`event_filters` restricts.
FILTER_COLUMNS = {"grid": "grid_code", "department": "department", "platform": "platform"}


def in_scope(filters: Mapping, frame) -> "np.ndarray":
    """Which rows of an events frame (``grid_code``, ``department``, ``platform``) the
    filters of :func:`event_filters` keep: the same filters the event queries apply in
    SQL, applied to a frame (vectorised)."""
    import numpy as np

    keep = np.ones(len(frame), dtype=bool)
    for key, values in filters.items():
        keep &= frame[FILTER_COLUMNS[key]].isin(list(values)).to_numpy()
    return keep


def narrow(requested, forced):
    """AND of a list filter the caller asked for and the one the scope forces."""
    if forced is None:
        return requested
    if not requested:
        return forced
    values = [v for part in ([requested] if isinstance(requested, str) else requested)
              for v in str(part).split(",") if v]
    kept = [v for v in values if v in set(forced)]
    return kept or ["-"]


def scoped(principal: Principal, what: str = "reading events", **requested) -> dict:
    """The caller's list filters (``grid=``, ``platform=``, ``department=``) narrowed to
    their scope (:func:`event_filters`, :func:`narrow`); raises for roles that read no events."""
    forced = event_filters(principal, what)
    for key in forced:
        requested.setdefault(key, None)
    return {k: narrow(v, forced.get(k)) for k, v in requested.items()}


def sees_event(principal: Principal, event: Mapping) -> bool:
    """Whether the principal's scope holds this event (a mapping with grid_code,
    department and platform)."""
    if principal.role in ALL_EVENTS:
        return True
    if principal.role == "grid_worker":
        return event.get("grid_code") in principal.grids
    if principal.role == "department":
        return principal.department is not None and event.get("department") == principal.department
    if principal.role == "platform_office":
        return principal.platform is not None and event.get("platform") == principal.platform
    return False


# -- masking -----------------------------------------------------------------------------


def mask_name(name: str | None) -> str | None:
    """``黄敏`` -> ``黄*``, ``欧阳娜娜`` -> ``欧***``, ``Li Lei`` -> ``L*****``."""
    if not name:
        return name
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_phone(phone: str | None) -> str | None:
    """``19944667827`` -> ``199****7827``; short numbers keep their last two digits."""
    if not phone:
        return phone
    if len(phone) >= 8:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    keep = 4 if len(phone) >= 6 else 2 if len(phone) >= 3 else 0
    return "*" * (len(phone) - keep) + phone[len(phone) - keep:]


def mask_event(event: dict, principal: Principal) -> dict:
    """The event as this principal may see it (a copy when anything is masked)."""
    if principal.role in REPORTER_CONTACT_ROLES or event.get("source") in STAFF_SOURCES:
        return event
    out = dict(event)
    out["reporter_name"] = mask_name(event.get("reporter_name"))
    out["reporter_phone"] = mask_phone(event.get("reporter_phone"))
    if isinstance(event.get("history"), list):
        # The intake line names the reporter as its actor.
        name = event.get("reporter_name")
        out["history"] = [{**h, "actor": mask_name(h.get("actor"))}
                          if h.get("action") == "report" and name and h.get("actor") == name else h
                          for h in event["history"]]
    return out


def mask_household(row: dict, principal: Principal) -> dict:
    """A household record as this principal may see it."""
    if principal.role == "command_room" or (
            principal.role == "grid_worker" and row.get("grid_code") in principal.grids):
        return row
    out = dict(row)
    out["contact_name"] = mask_name(row.get("contact_name"))
    out["contact_phone"] = mask_phone(row.get("contact_phone"))
    return out


# -- users and tokens --------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def hash_token(token: str) -> str:
    """What is kept of a token (an API token or a reporter's): its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def _user_record(row: Mapping) -> dict:
    return {"username": row["username"], "name": row["name"], "role": row["role"],
            "role_label": ACCOUNT_ROLES.get(row["role"]), "grids": list(row["grids"] or []),
            "department": row["department"], "platform": row["platform"],
            "staff_code": row["staff_code"], "active": bool(row["active"]),
            "created_at": row["created_at"].isoformat() if row["created_at"] else None}


#: A user name: 1 to 64 letters (any script), digits, ``.``, ``_``, ``-`` or ``@``; no spaces.
USERNAME = re.compile(r"[\w.@-]{1,64}")


def check_username(username: str) -> None:
    """Refuse a user name that breaks :data:`USERNAME` (never cut one to fit)."""
    if not username or len(username) > 64:
        raise InvalidUser("username: 1 to 64 characters" + (" (this one is longer)" if username else ""),
                          zh="用户名须为 1 至 64 个字符" + ("，此用户名过长" if username else ""))
    if not USERNAME.fullmatch(username):
        raise InvalidUser("username: only letters, digits and . _ - @ (no spaces)",
                          zh="用户名只能包含字母、数字和 . _ - @，不能有空格或其他符号")


def create_user(store: Store, username: str, *, role: str, name: str | None = None,
                grids: Iterable[str] | None = None, department: str | None = None,
                platform: str | None = None, staff_code: str | None = None,
                actor: str = "admin") -> dict:
    """Add a user. A grid worker needs grids (given, or those of ``staff_code`` in the
    staff register); a department its department; a platform office its platform."""
    from gridgeo.layers import PLATFORMS

    username = (username or "").strip()
    check_username(username)
    if role not in ACCOUNT_ROLES:
        raise InvalidUser(f"role {role!r} unknown: use {', '.join(ACCOUNT_ROLES)}",
                          zh=f"请选择角色：{'、'.join(ACCOUNT_ROLES.values())}")
    grids = sorted({g.strip() for g in (grids or []) if g and g.strip()})
    with store.engine.begin() as conn:
        if conn.execute(select(schema.users.c.id).where(schema.users.c.username == username)).first():
            raise InvalidUser(f"user {username!r} exists", zh=f"用户名“{username}”已被使用")
        if staff_code and not grids and role == "grid_worker":
            st = schema.staff
            grids = sorted({r[0] for r in conn.execute(
                select(st.c.grid_code).where(st.c.code == staff_code))})
            if not grids:
                raise InvalidUser(f"staff code {staff_code!r} serves no grid in the staff register",
                                  zh=f"人员编号“{staff_code}”在网格人员名册中没有所属网格")
        if role == "grid_worker" and not grids:
            raise InvalidUser("a grid worker needs grids (--grid) or a staff code (--staff)",
                              zh="网格员须填写网格编码或人员编号")
        if role == "department" and not department:
            raise InvalidUser("a department user needs its department (as in the catalogue)",
                              zh="责任部门账号须选择部门（事项清单中的部门）")
        if role == "platform_office" and platform not in PLATFORMS:
            raise InvalidUser(f"a platform office needs its platform: {', '.join(PLATFORMS)}",
                              zh="平台协调办公室账号须选择平台")
        values = dict(username=username, name=(name or username)[:100], role=role,
                      grids=grids or None, department=department if role == "department" else None,
                      platform=platform if role == "platform_office" else None,
                      staff_code=staff_code, active=True, created_at=_now())
        conn.execute(schema.users.insert().values(**values))
        store.audit(conn, actor=actor, action="create", entity="user", entity_id=username,
                    detail={"role": role, "grids": grids, "department": values["department"],
                            "platform": values["platform"]})
    return get_user(store, username)


def get_user(store: Store, username: str) -> dict:
    with store.engine.connect() as conn:
        row = conn.execute(select(schema.users).where(schema.users.c.username == username)).mappings().first()
    if row is None:
        raise NotFound(f"no user {username!r}")
    return _user_record(row)


def list_users(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.users).order_by(schema.users.c.username)).mappings().all()
    return [_user_record(r) for r in rows]


def set_active(store: Store, username: str, active: bool, *, actor: str = "admin") -> dict:
    """Switch a user off (their tokens stop working) or back on."""
    with store.engine.begin() as conn:
        n = conn.execute(update(schema.users).where(schema.users.c.username == username)
                         .values(active=bool(active))).rowcount
        if not n:
            raise NotFound(f"no user {username!r}")
        store.audit(conn, actor=actor, action="activate" if active else "deactivate",
                    entity="user", entity_id=username)
    _CACHE.clear()
    return get_user(store, username)


def create_token(store: Store, username: str, *, label: str = "", days: float | None = 90,
                 actor: str = "admin") -> tuple[str, dict]:
    """Issue a token for a user: ``(token, record)``. The token is shown this once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = _now()
    expires = now + dt.timedelta(days=days) if days else None
    with store.engine.begin() as conn:
        uid = conn.execute(select(schema.users.c.id).where(schema.users.c.username == username)).scalar()
        if uid is None:
            raise NotFound(f"no user {username!r}")
        tid = conn.execute(schema.api_tokens.insert().values(
            user_id=uid, token_hash=hash_token(token), prefix=token[:12], label=label[:100],
            created_at=now, expires_at=expires).returning(schema.api_tokens.c.id)).scalar()
        store.audit(conn, actor=actor, action="issue", entity="token", entity_id=str(tid),
                    detail={"user": username, "label": label, "expires_at": expires.isoformat() if expires else None})
    return token, {"id": tid, "username": username, "prefix": token[:12], "label": label,
                   "created_at": now.isoformat(), "expires_at": expires.isoformat() if expires else None}


def list_tokens(store: Store, username: str | None = None) -> list[dict]:
    t, u = schema.api_tokens, schema.users
    q = select(t.c.id, t.c.prefix, t.c.label, t.c.created_at, t.c.expires_at, t.c.revoked_at,
               u.c.username).select_from(t.join(u, u.c.id == t.c.user_id)).order_by(t.c.id)
    if username:
        q = q.where(u.c.username == username)
    with store.engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    iso = lambda v: v.isoformat() if v else None  # noqa: E731
    return [{"id": r["id"], "username": r["username"], "prefix": r["prefix"], "label": r["label"],
             "created_at": iso(r["created_at"]), "expires_at": iso(r["expires_at"]),
             "revoked_at": iso(r["revoked_at"])} for r in rows]


def revoke_token(store: Store, token_id: int, *, actor: str = "admin") -> None:
    """Revoke a token (by id); every worker stops accepting it within CACHE_SECONDS."""
    with store.engine.begin() as conn:
        n = conn.execute(update(schema.api_tokens).where(schema.api_tokens.c.id == token_id,
                                                         schema.api_tokens.c.revoked_at.is_(None))
                         .values(revoked_at=_now())).rowcount
        if not n:
            raise NotFound(f"no live token {token_id}")
        store.audit(conn, actor=actor, action="revoke", entity="token", entity_id=str(token_id))
    _CACHE.clear()


class _Cache:
    """hash -> (principal, expiry) for CACHE_SECONDS, per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: dict[tuple[int, str], tuple[Principal, float]] = {}

    def get(self, key):
        hit = self._items.get(key)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        return None

    def put(self, key, principal):
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (principal, time.monotonic() + CACHE_SECONDS)

    def clear(self):
        with self._lock:
            self._items.clear()


_CACHE = _Cache()


def authenticate(store: Store, token: str) -> Principal:
    """The principal a bearer token stands for; :class:`Unauthenticated` if the token is
    unknown, revoked, expired or its user switched off (one message for all: a caller
    learns nothing about which)."""
    return _authenticate_digest(store, hash_token(token.strip()))


def _authenticate_digest(store: Store, digest: str) -> Principal:
    """The principal of the token whose SHA-256 is ``digest`` (see :func:`authenticate`)."""
    key = (id(store), digest)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    t, u = schema.api_tokens, schema.users
    q = (select(u.c.username, u.c.name, u.c.role, u.c.grids, u.c.department, u.c.platform,
                u.c.staff_code, u.c.active, t.c.expires_at, t.c.revoked_at)
         .select_from(t.join(u, u.c.id == t.c.user_id)).where(t.c.token_hash == digest))
    with store.engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    if (row is None or not row["active"] or row["revoked_at"] is not None
            or (row["expires_at"] is not None and row["expires_at"] <= _now())):
        raise Unauthenticated("the token is not valid (unknown, revoked, expired or its user is off)")
    p = principal_of(row)
    _CACHE.put(key, p)
    return p


def principal_of(row: Mapping) -> Principal:
    """The principal of a ``users`` row (a token's or a console session's)."""
    return Principal(row["username"], row["name"], row["role"], frozenset(row["grids"] or ()),
                     row["department"], row["platform"], row["staff_code"])


# -- map tickets -------------------------------------------------------------------------
# A browser cannot send a header when it opens a map page, so the map URL carries a
# credential. Not the API token (long-lived, good for everything): a ticket for the map
# pages only, valid a few minutes, bound to the token it was issued for (revoking the
# token voids it) and signed (HMAC-SHA256) with the server's secret: nothing is stored.

MAP_TICKET_PREFIX = "ggm_"


def _ticket_signature(secret: bytes, expires: int, digest: str) -> str:
    return hmac.new(secret, f"maps|{expires}|{digest}".encode(), hashlib.sha256).hexdigest()


def issue_map_ticket(token: str, secret: bytes, seconds: int, now: float | None = None) -> tuple[str, int]:
    """(a map ticket for the holder of ``token``, its expiry as a Unix time)."""
    expires = int((time.time() if now is None else now) + seconds)
    digest = hash_token(token.strip())
    return f"{MAP_TICKET_PREFIX}{expires}.{digest}.{_ticket_signature(secret, expires, digest)}", expires


def check_map_ticket(store: Store, ticket: str, secret: bytes, now: float | None = None) -> Principal:
    """The principal a map ticket stands for; :class:`Unauthenticated` if it is forged,
    expired or its token is no longer valid."""
    expires, _, rest = ticket.removeprefix(MAP_TICKET_PREFIX).partition(".")
    digest, _, signature = rest.partition(".")
    if (not ticket.startswith(MAP_TICKET_PREFIX) or not expires.isdigit()
            or not hmac.compare_digest(signature, _ticket_signature(secret, int(expires), digest))):
        raise Unauthenticated("the map ticket is not valid")
    if int(expires) <= (time.time() if now is None else now):
        raise Unauthenticated("the map ticket has expired: ask for a new one (POST /maps/tickets)")
    return _authenticate_digest(store, digest)


# -- demo users --------------------------------------------------------------------------


def demo_users(store: Store, *, days: float = 30) -> list[dict]:
    """The sample's demo users, one per role, created when missing, each with a fresh
    token (the previous demo tokens revoked). Returns rows with the token to print.

    The scoped ones take their scope from the data: the first grid worker of the staff
    register, the department and platform of the catalogue's first category.
    """
    with store.engine.connect() as conn:
        st, cat = schema.staff, schema.categories
        worker = conn.execute(select(st.c.code, st.c.name).where(st.c.role == "full_time_worker")
                              .order_by(st.c.grid_code, st.c.code).limit(1)).first()
        first = conn.execute(select(cat.c.department, cat.c.platform)
                             .order_by(cat.c.platform, cat.c.code).limit(1)).first()
    wanted = [
        dict(username="demo-admin", role="admin", name="演示·系统管理员"),
        dict(username="demo-planner", role="planner", name="演示·社会发展科"),
        dict(username="demo-command", role="command_room", name="演示·综合指挥室"),
        dict(username="demo-leader", role="leadership", name="演示·领导小组"),
        dict(username="demo-platform", role="platform_office", name="演示·平台协调办",
             platform=first.platform if first else "stability"),
        dict(username="demo-department", role="department", name="演示·责任部门",
             department=first.department if first else None),
    ]
    if worker is not None:
        wanted.append(dict(username="demo-worker", role="grid_worker", name=f"演示·网格员{worker.name}",
                           staff_code=worker.code))
    existing = {u["username"] for u in list_users(store)}
    out = []
    for spec in wanted:
        if spec["username"] not in existing:
            if spec["role"] == "department" and not spec.get("department"):
                continue
            create_user(store, actor="gridgeo demo", **spec)
        for tok in list_tokens(store, spec["username"]):
            if tok["revoked_at"] is None and tok["label"] == "demo":
                revoke_token(store, tok["id"], actor="gridgeo demo")
        token, _ = create_token(store, spec["username"], label="demo", days=days, actor="gridgeo demo")
        out.append({**get_user(store, spec["username"]), "token": token})
    return out
