"""The administrator's page (``/admin``): users with their roles and scopes, passwords,
sessions and API tokens. Every change is the core's (:mod:`gridgeo.auth`,
:mod:`gridgeo.sessions`), audited there with the administrator as the actor. A generated
password or a new token is shown once, on the page that made it, and never again.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from gridgeo import auth, sessions
from gridgeo.console.base import Checked, Current, Refused, StoreDep, render, require_role
from gridgeo.errors import GridgeoError
from gridgeo.events import catalogue
from gridgeo.layers import ACCOUNT_ROLES, PLATFORMS

router = APIRouter(include_in_schema=False)

ADMIN = frozenset({"admin"})
#: The fields of the form that adds a user.
ADD_FIELDS = ("username", "name", "role", "grids", "staff_code", "department", "platform")


def _page(request: Request, store, who, *, message: str | None = None, error: str | None = None,
          secret: dict | None = None, entered: dict | None = None, status: int = 200):
    users = auth.list_users(store)
    tokens = [t for t in auth.list_tokens(store) if t["revoked_at"] is None]
    with store.engine.connect() as conn:
        departments = sorted({d for ds in catalogue.dispatch_targets(conn).values() for d in ds})
    return render(request, "admin.html", {
        "users": users, "tokens": tokens, "roles": ACCOUNT_ROLES, "platforms": PLATFORMS,
        "departments": departments, "message": message, "error": error, "secret": secret,
        "entered": entered or {}}, status=status)


@router.get("/admin")
def admin(request: Request, store: StoreDep, who: Current):
    require_role(who, ADMIN)
    return _page(request, store, who)


def _text(form, name: str, limit: int = 200) -> str | None:
    value = form.get(name)
    return value.strip()[:limit] or None if isinstance(value, str) else None


@router.post("/admin")
def change(request: Request, store: StoreDep, who: Checked):
    """One administrative change, named by the form's ``do``."""
    require_role(who, ADMIN)
    form = request.state.form
    # The user name as typed (up to a bound): the core refuses a long one, never cut it to fit.
    do, username, actor = form.get("do"), _text(form, "username", 1000), who.principal.actor
    try:
        if do == "add":
            role = _text(form, "role", 32)
            auth.create_user(store, username or "", role=role or "", name=_text(form, "name", 100),
                             grids=[g for g in (_text(form, "grids", 2000) or "").replace("，", ",").split(",")
                                    if g.strip()],
                             department=_text(form, "department"), platform=_text(form, "platform", 16),
                             staff_code=_text(form, "staff_code", 64), actor=actor)
            password = sessions.new_password()
            sessions.set_password(store, username, password, actor=actor)
            return _page(request, store, who, message=f"已添加用户 {username}",
                         secret={"what": f"{username} 的初始密码", "value": password})
        if do == "password":
            password = sessions.new_password()
            sessions.set_password(store, username or "", password, actor=actor)
            return _page(request, store, who, message=f"已重置 {username} 的密码，其登录已全部退出",
                         secret={"what": f"{username} 的新密码", "value": password})
        if do in ("disable", "enable"):
            if username == who.principal.username:
                raise Refused(400, "不能停用自己的账号")
            auth.set_active(store, username or "", do == "enable", actor=actor)
            if do == "disable":
                sessions.revoke_sessions(store, username or "", actor=actor)
            return _page(request, store, who, message=f"已{'启用' if do == 'enable' else '停用'} {username}")
        if do == "logout":
            n = sessions.revoke_sessions(store, username or "", actor=actor)
            return _page(request, store, who, message=f"已退出 {username} 的 {n} 个登录")
        if do == "token":
            token, record = auth.create_token(store, username or "", label=_text(form, "label", 100) or "",
                                              days=90, actor=actor)
            return _page(request, store, who, message=f"已为 {username} 签发令牌（90 天）",
                         secret={"what": f"{username} 的接口令牌 {record['prefix']}…", "value": token})
        if do == "revoke":
            try:
                token_id = int(form.get("token_id") or "")
            except ValueError:
                raise Refused(400, "令牌编号不正确") from None
            auth.revoke_token(store, token_id, actor=actor)
            return _page(request, store, who, message=f"已吊销令牌 {token_id}")
    except Refused:
        raise
    except GridgeoError as exc:
        # A refused new user: the form again as it was typed (never a password: none is typed).
        entered = {k: _text(form, k, 2000) or "" for k in ADD_FIELDS} if do == "add" else None
        return _page(request, store, who, error=getattr(exc, "zh", None) or str(exc), entered=entered,
                     status=422)
    raise Refused(400, "未知的操作")
