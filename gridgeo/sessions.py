"""Passwords, log-in sessions and login throttling: how a person (not a program) signs in.

Programs use API tokens (:mod:`gridgeo.auth`); people use the console with a user name and a
password, and a session. Both end in the same :class:`~gridgeo.auth.Principal`, so every rule
after the log-in (scope, masking, the workflow) is the one :mod:`gridgeo.auth` and
:mod:`gridgeo.events` already apply. The console (``gridgeo.console``) and the command line
(``gridgeo users add/password/demo``) call this module; neither hashes nor checks anything
itself.

- Passwords are hashed with argon2id (``pwdlib``; by default its recommended costs, RFC 9106's
  second option: 64 MiB, 3 passes, 4 lanes; ``GRIDGEO_PASSWORD_MEMORY_KIB`` and
  ``GRIDGEO_PASSWORD_TIME_COST`` lower them on a small server, not below OWASP's minimum of
  19 MiB and 2 passes, which the tests use); only the hash is stored (``users.password_hash``). A new password has 8 to 128 characters and is not the
  user name. Setting one ends every session of the user.
- A session is 256 random bits with the prefix ``ggs_`` (log redaction and secret scanners
  find it), kept as its SHA-256 like a token. It ends after ``GRIDGEO_SESSION_IDLE_MINUTES``
  without a request and ``GRIDGEO_SESSION_HOURS`` after the log-in, and when revoked (log-out,
  a password change, the user switched off). A log-in always makes a new session: a session
  value planted before the log-in is never promoted (no session fixation).
- The CSRF token of a session is derived from it (HMAC-SHA256 keyed by the session value):
  only the holder of the cookie can know it, and nothing more is stored.
- Wrong passwords are throttled per account (``GRIDGEO_LOGIN_FAILURES_PER_ACCOUNT`` within
  ``GRIDGEO_LOGIN_WINDOW_MINUTES``) and per client address
  (``GRIDGEO_LOGIN_FAILURES_PER_CLIENT``), in the database, so every worker and server sees
  the same counts; while throttled, a try is refused before its password is checked.
  A log-in answers the same for an unknown user and a wrong password.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import delete, func, select, update

from gridgeo.auth import Principal, hash_token, principal_of
from gridgeo.config import get_settings
from gridgeo.errors import InvalidPassword, LoginThrottled, NotFound, Unauthenticated
from gridgeo.store import Store, schema

__all__ = [
    "SESSION_COOKIE",
    "SESSION_PREFIX",
    "Session",
    "change_password",
    "check_new_password",
    "csrf_token",
    "hash_password",
    "log_in",
    "log_out",
    "new_password",
    "revoke_sessions",
    "session",
    "set_password",
    "verify_password",
]

SESSION_PREFIX = "ggs_"
#: The cookie that carries the session (the console sets it; the map pages accept it too).
SESSION_COOKIE = "gg_session"
MIN_PASSWORD = 8
#: Longer passwords are refused before hashing: argon2 of a megabyte costs nothing more
#: in safety and much in time.
MAX_PASSWORD = 128
#: A session's last request is written at most this often (one write a minute, not one
#: per page).
TOUCH_SECONDS = 60
#: What a failed log-in says, whatever failed (unknown user, wrong password, user off).
WRONG = "用户名或密码错误"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _hasher():
    s = get_settings()
    return _hasher_for(s.password_time_cost, s.password_memory_kib, s.password_parallelism)


@lru_cache(maxsize=4)
def _hasher_for(time_cost: int, memory_kib: int, parallelism: int):
    """argon2id with these costs (a hash names its own costs, so any hash verifies)."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to check against when the user does not exist: the answer takes as long."""
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches ``password_hash`` (False for no hash; as slow either way)."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        _hasher().verify("x", _dummy_hash())
        return False
    try:
        return _hasher().verify(password, password_hash or _dummy_hash()) and password_hash is not None
    except Exception:  # noqa: BLE001 - a hash pwdlib cannot read is no match
        return False


def check_new_password(username: str, password: str) -> None:
    """Raise :class:`InvalidPassword` unless ``password`` may be set for ``username``."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidPassword(f"密码须为 {MIN_PASSWORD} 至 {MAX_PASSWORD} 个字符 "
                              f"(a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters)")
    if password.strip().lower() == (username or "").strip().lower():
        raise InvalidPassword("密码不能与用户名相同 (the password may not be the user name)")
    if len(set(password)) < 3:
        raise InvalidPassword("密码过于简单 (the password needs at least 3 different characters)")


def new_password() -> str:
    """A random password to hand out (16 characters, about 95 bits)."""
    return secrets.token_urlsafe(12)


def set_password(store: Store, username: str, password: str, *, actor: str = "admin",
                 now: dt.datetime | None = None) -> None:
    """Set ``username``'s password (checked, hashed) and end every session of theirs."""
    check_new_password(username, password)
    digest = hash_password(password)
    now = now or _now()
    u = schema.users
    with store.engine.begin() as conn:
        uid = conn.execute(select(u.c.id).where(u.c.username == username)).scalar()
        if uid is None:
            raise NotFound(f"no user {username!r}")
        conn.execute(update(u).where(u.c.id == uid).values(password_hash=digest, password_changed_at=now))
        _revoke(conn, uid, now)
        store.audit(conn, actor=actor, action="password", entity="user", entity_id=username)


def _revoke(conn, user_id: int, now: dt.datetime, keep: str | None = None) -> int:
    s = schema.sessions
    q = update(s).where(s.c.user_id == user_id, s.c.revoked_at.is_(None))
    if keep is not None:
        q = q.where(s.c.token_hash != keep)
    return conn.execute(q.values(revoked_at=now)).rowcount


def revoke_sessions(store: Store, username: str, *, actor: str = "admin") -> int:
    """End every session of ``username`` (e.g. a lost phone); returns how many."""
    u = schema.users
    with store.engine.begin() as conn:
        uid = conn.execute(select(u.c.id).where(u.c.username == username)).scalar()
        if uid is None:
            raise NotFound(f"no user {username!r}")
        n = _revoke(conn, uid, _now())
        store.audit(conn, actor=actor, action="revoke-sessions", entity="user", entity_id=username,
                    detail={"sessions": n})
    return n


# -- throttling ---------------------------------------------------------------------------


def _throttle(conn, username: str, client: str, now: dt.datetime) -> None:
    """Raise :class:`LoginThrottled` while the account or the client has too many recent
    failures."""
    settings = get_settings()
    since = now - dt.timedelta(minutes=settings.login_window_minutes)
    f = schema.login_failures
    for column, key, limit, whom in ((f.c.username, username, settings.login_failures_per_account, "该账号"),
                                     (f.c.client, client, settings.login_failures_per_client, "该地址")):
        n, oldest = conn.execute(select(func.count(), func.min(f.c.at))
                                 .where(column == key, f.c.at >= since)).one()
        if n >= limit > 0:
            wait = max(1, int((oldest + dt.timedelta(minutes=settings.login_window_minutes) - now)
                              .total_seconds()) + 1)
            raise LoginThrottled(f"{whom}密码错误次数过多，请 {max(1, round(wait / 60))} 分钟后再试 "
                                 f"(too many wrong passwords; try again in {wait} s)", retry_after=wait)


# -- sessions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A live session: who, and the CSRF token its forms carry."""

    principal: Principal
    csrf: str
    expires_at: dt.datetime
    has_password: bool = True


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session, derived from it (nothing stored)."""
    return hmac.new(session_token.encode(), b"gridgeo csrf", hashlib.sha256).hexdigest()


def _clip(text: str | None, n: int = 64) -> str:
    return (text or "")[:n]


def log_in(store: Store, username: str, password: str, *, client: str,
           now: dt.datetime | None = None) -> str:
    """Check the password and open a new session; returns the session value (the cookie).

    Raises :class:`LoginThrottled` while the account or the client is throttled (the
    password is not even checked) and :class:`Unauthenticated` (one message for every
    reason) when the log-in fails, counting the failure.
    """
    now = now or _now()
    username, client = _clip((username or "").strip()), _clip(client)
    u = schema.users
    with store.engine.begin() as conn:
        _throttle(conn, username, client, now)
        row = conn.execute(select(u.c.id, u.c.active, u.c.password_hash)
                           .where(u.c.username == username)).mappings().first()
    ok = verify_password(password, row["password_hash"] if row else None)
    if not ok or not row["active"]:
        with store.engine.begin() as conn:
            conn.execute(schema.login_failures.insert().values(at=now, username=username, client=client))
        raise Unauthenticated(WRONG)
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    expires = now + dt.timedelta(hours=get_settings().session_hours)
    with store.engine.begin() as conn:
        conn.execute(delete(schema.login_failures).where(schema.login_failures.c.username == username))
        conn.execute(schema.sessions.insert().values(
            token_hash=hash_token(token), user_id=row["id"], created_at=now, last_seen_at=now,
            expires_at=expires, client=client))
        store.audit(conn, actor=username, action="login", entity="user", entity_id=username,
                    detail={"client": client})
    return token


def session(store: Store, token: str | None, *, now: dt.datetime | None = None) -> Session:
    """The live session of a cookie's value; :class:`Unauthenticated` when there is none
    (unknown, revoked, idle too long, past its end, or its user switched off)."""
    if not token or not token.startswith(SESSION_PREFIX) or len(token) > 100:
        raise Unauthenticated("请先登录 (no session)")
    now = now or _now()
    s, u = schema.sessions, schema.users
    digest = hash_token(token)
    with store.engine.connect() as conn:
        row = conn.execute(select(s.c.id, s.c.last_seen_at, s.c.expires_at, s.c.revoked_at,
                                  u.c.username, u.c.name, u.c.role, u.c.grids, u.c.department,
                                  u.c.platform, u.c.staff_code, u.c.active, u.c.password_hash)
                           .select_from(s.join(u, u.c.id == s.c.user_id))
                           .where(s.c.token_hash == digest)).mappings().first()
    idle = dt.timedelta(minutes=get_settings().session_idle_minutes)
    if (row is None or row["revoked_at"] is not None or not row["active"]
            or now >= row["expires_at"] or now - row["last_seen_at"] >= idle):
        raise Unauthenticated("会话已过期，请重新登录 (the session has ended)")
    if (now - row["last_seen_at"]).total_seconds() >= TOUCH_SECONDS:
        with store.engine.begin() as conn:
            conn.execute(update(s).where(s.c.id == row["id"]).values(last_seen_at=now))
    return Session(principal_of(row), csrf_token(token), row["expires_at"],
                   row["password_hash"] is not None)


def log_out(store: Store, token: str | None) -> None:
    """End the session (nothing happens for an unknown one)."""
    if not token:
        return
    s = schema.sessions
    with store.engine.begin() as conn:
        conn.execute(update(s).where(s.c.token_hash == hash_token(token), s.c.revoked_at.is_(None))
                     .values(revoked_at=_now()))


def change_password(store: Store, token: str, old: str, new: str, *, client: str,
                    now: dt.datetime | None = None) -> str:
    """The session's user changes their password, giving the old one: every session of
    theirs ends, and a new one is returned for this browser. A wrong old password counts
    as a failed log-in (and is throttled like one)."""
    now = now or _now()
    current = session(store, token, now=now)
    username = current.principal.username
    u = schema.users
    with store.engine.begin() as conn:
        _throttle(conn, _clip(username), _clip(client), now)
        digest = conn.execute(select(u.c.password_hash).where(u.c.username == username)).scalar()
    if not verify_password(old, digest):
        with store.engine.begin() as conn:
            conn.execute(schema.login_failures.insert().values(at=now, username=_clip(username),
                                                               client=_clip(client)))
        raise Unauthenticated("原密码不正确 (the current password is wrong)")
    if new == old:
        raise InvalidPassword("新密码不能与原密码相同 (the new password is the old one)")
    set_password(store, username, new, actor=username, now=now)
    return log_in(store, username, new, client=client, now=now)
