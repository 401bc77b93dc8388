"""Log-in, log-out and the password: ``/``, ``/login``, ``/logout``, ``/password``; and the
console's static files (``/static/``).

The log-in form carries its own CSRF token (double submit: a random value in a
``SameSite=Strict`` cookie and in the form), since no session exists yet. A log-in always
opens a new session (:func:`gridgeo.sessions.log_in`); a session cookie the browser already
had is ended, never reused.
"""

from __future__ import annotations

import hmac
import secrets
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from gridgeo import sessions
from gridgeo.config import get_settings
from gridgeo.console.base import (COOKIE, LOGIN_COOKIE, STATIC_DIR, Checked, Current, Refused, StoreDep, form_of,
                                  home, redirect, render, same_origin)
from gridgeo.errors import InvalidPassword, LoginThrottled, NotFound, Unauthenticated

router = APIRouter(include_in_schema=False)

#: What /static/ serves: scripts, style sheets and images, nothing else (no update.sh).
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}


@router.get("/static/{path:path}")
def static(path: str):
    target = (STATIC_DIR / path).resolve()
    if (STATIC_DIR.resolve() not in target.parents or target.suffix not in STATIC_TYPES
            or not target.is_file()):
        raise NotFound(f"no static file {path!r}")
    return FileResponse(target, media_type=STATIC_TYPES[target.suffix],
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def _safe_next(value) -> str | None:
    """A path on this server to go back to after the log-in (never another site)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")) \
            and len(value) < 2000 and not any(c in value for c in "\r\n\\"):
        return value
    return None


def _cookie(response: Response, name: str, value: str, *, max_age: int | None, same_site: str) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite=same_site,
                        secure=get_settings().secure_cookies)


@router.get("/")
def root(request: Request, store: StoreDep):
    try:
        who = sessions.session(store, request.cookies.get(COOKIE))
    except Unauthenticated:
        return redirect("/login")
    return redirect(home(who.principal.role))


def _login_page(request: Request, *, error: str | None = None, status: int = 200, username: str = "",
                next_path: str | None = None):
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", {
        "login_csrf": token, "error": error, "username": username,
        "next": next_path or _safe_next(request.query_params.get("next")) or "",
        "expired": request.query_params.get("expired") == "1" and not error}, status=status)
    _cookie(response, LOGIN_COOKIE, token, max_age=3600, same_site="strict")
    return response


@router.get("/login")
def login_form(request: Request):
    return _login_page(request)


@router.post("/login")
async def login(request: Request, store: StoreDep):
    form = await form_of(request)
    username, password = form.get("username"), form.get("password")
    sent, expected = form.get("csrf"), request.cookies.get(LOGIN_COOKIE)
    next_path = _safe_next(form.get("next"))
    if (not isinstance(sent, str) or not expected
            or not hmac.compare_digest(sent.encode(), expected.encode()) or not same_origin(request)):
        raise Refused(403, "登录页面已失效，请刷新后重试")
    if not isinstance(username, str) or not isinstance(password, str) or not username.strip() or not password:
        return _login_page(request, error="请输入用户名和密码", status=422,
                           username=username if isinstance(username, str) else "", next_path=next_path)
    try:
        token = sessions.log_in(store, username[:200], password[:1000], client=_client(request))
    except LoginThrottled as exc:
        response = _login_page(request, error=str(exc).split(" (")[0], status=429, username=username[:64],
                               next_path=next_path)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthenticated:
        return _login_page(request, error=sessions.WRONG, status=401, username=username[:64],
                           next_path=next_path)
    # Never carry a session over a log-in: whatever the browser had is ended.
    sessions.log_out(store, request.cookies.get(COOKIE))
    who = sessions.session(store, token)
    response = redirect(next_path or home(who.principal.role))
    _cookie(response, COOKIE, token, max_age=int(get_settings().session_hours * 3600), same_site="lax")
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, store: StoreDep, who: Checked):
    sessions.log_out(store, request.cookies.get(COOKIE))
    response = redirect("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/password")
def password_form(request: Request, who: Current):
    return render(request, "password.html", {"done": request.query_params.get("done") == "1"})


@router.post("/password")
async def change_password(request: Request, store: StoreDep, who: Checked):
    form = request.state.form
    old, new, again = form.get("old"), form.get("new"), form.get("again")
    if not all(isinstance(v, str) for v in (old, new, again)):
        raise Refused(400, "请求格式不正确")
    error = None
    if new != again:
        error = "两次输入的新密码不一致"
    else:
        try:
            token = sessions.change_password(store, request.cookies.get(COOKIE), old[:1000], new[:1000],
                                             client=_client(request))
        except LoginThrottled as exc:
            error = str(exc).split(" (")[0]
        except Unauthenticated as exc:
            error = str(exc).split(" (")[0]
        except InvalidPassword as exc:
            error = str(exc).split(" (")[0]
    if error:
        return render(request, "password.html", {"error": error}, status=422)
    response = redirect("/password?done=1")
    _cookie(response, COOKIE, token, max_age=int(get_settings().session_hours * 3600), same_site="lax")
    return response
