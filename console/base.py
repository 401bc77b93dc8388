"""What every console page shares: the templates, who is logged in, CSRF, formatting.

- :func:`current` (a dependency) gives the live :class:`~gridgeo.sessions.Session` of the
  request's cookie, or sends the browser to the log-in page (:class:`LoginRequired`).
- :func:`checked` (a dependency of every state-changing route) also checks the CSRF token
  (a form field ``csrf`` or the header ``X-CSRF-Token``, derived from the session by
  :func:`gridgeo.sessions.csrf_token`) and, when the browser sends one, that the ``Origin``
  is this server; otherwise the request is refused with 403 and nothing is done.
- :func:`render` fills a template with the session, the navigation of the role and the
  formatting filters (China time, numbers and durations for people).
"""

from __future__ import annotations

import datetime as dt
import hmac
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridgeo import sessions
from gridgeo.api.resources import get_store
from gridgeo.auth import ALL_EVENTS
from gridgeo.errors import Unauthenticated
from gridgeo.layers import ACCOUNT_ROLES, PLATFORMS
from gridgeo.sessions import Session
from gridgeo.store import Store
from gridgeo.timezone import CHINA

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
#: The session cookie (HttpOnly, SameSite=Lax, Secure with GRIDGEO_SECURE_COOKIES).
COOKIE = sessions.SESSION_COOKIE
#: The log-in form's own CSRF cookie (double submit: no session exists yet).
LOGIN_COOKIE = "gg_login"
#: Addresses that are not the console's pages: a 404 there stays the API's problem document.
NOT_PAGES = ("/v1/", "/maps", "/static/", "/docs", "/redoc", "/openapi", "/metrics", "/open311/", "/ogc", "/tiles/")

StoreDep = Annotated[Store, Depends(get_store)]

# -- navigation ---------------------------------------------------------------------------

#: (path, label, roles) of the navigation bar, in order.
NAV = [
    ("/command", "指挥室", ALL_EVENTS - {"leadership"}),
    ("/dashboard", "驾驶舱", frozenset({"leadership", "command_room", "admin"})),
    ("/events", "事件查询", ALL_EVENTS | {"platform_office", "department", "grid_worker"}),
    ("/supervision", "督办", ALL_EVENTS | {"platform_office", "department"}),
    ("/tasks", "我的任务", frozenset({"platform_office", "department"})),
    ("/grid", "我的网格", frozenset({"grid_worker"})),
    ("/field", "移动上报", frozenset({"grid_worker"})),
    ("/plans", "网格方案", frozenset({"planner", "admin", "command_room", "leadership"})),
    ("/admin", "用户与令牌", frozenset({"admin"})),
    ("/password", "修改密码", frozenset(ACCOUNT_ROLES)),
]
#: Where each role lands after the log-in.
HOME = {"command_room": "/command", "admin": "/admin", "leadership": "/dashboard",
        "platform_office": "/tasks", "department": "/tasks", "grid_worker": "/grid",
        "planner": "/plans"}


def home(role: str | None) -> str:
    return HOME.get(role or "", "/password")


# -- who is logged in ---------------------------------------------------------------------


class LoginRequired(Exception):
    """No live session: the browser goes to the log-in page (and comes back after)."""

    def __init__(self, next_path: str = "/", expired: bool = False):
        self.next_path = next_path
        self.expired = expired


class Refused(Exception):
    """A request the console refuses with a page: ``status`` and a message in Chinese."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message


def _next_of(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return path if request.method == "GET" else "/"


async def current(request: Request, store: StoreDep) -> Session:
    """The live session of the request's cookie (else :class:`LoginRequired`)."""
    token = request.cookies.get(COOKIE)
    try:
        who = sessions.session(store, token)
    except Unauthenticated:
        raise LoginRequired(_next_of(request), expired=bool(token)) from None
    request.state.session = who
    return who


Current = Annotated[Session, Depends(current)]


def require_role(who: Session, roles) -> None:
    if who.principal.role not in roles:
        raise Refused(403, f"“{ACCOUNT_ROLES.get(who.principal.role, who.principal.role)}”无权使用此页面")


def same_origin(request: Request) -> bool:
    """No ``Origin`` (older browsers, same-origin GETs) or this server's own."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    return origin != "null" and parts.netloc == host


async def form_of(request: Request) -> dict:
    """The request's form fields (no files; bounded in number and size: the body's size is
    bounded before, by the API's BodyGuard)."""
    try:
        form = await request.form(max_files=0, max_fields=500, max_part_size=64 * 1024)
    except Exception:  # noqa: BLE001 - a body that is no form: refused below, never a 500
        raise Refused(400, "请求格式不正确") from None
    request.state.form = form
    return form


def require_csrf(request: Request, who: Session, sent) -> None:
    """403 unless ``sent`` is the session's CSRF token and the request comes from this
    server's origin: the one check of every state-changing console request (forms, the
    phone app's multipart posts, the event page's photo upload)."""
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), who.csrf.encode()) \
            or not same_origin(request):
        raise Refused(403, "请求已失效（缺少或错误的安全校验码），请刷新页面后重试")


async def checked(request: Request, who: Current) -> Session:
    """The session of a state-changing request whose CSRF token and origin are right."""
    form = await form_of(request)
    require_csrf(request, who, request.headers.get("x-csrf-token") or form.get("csrf") or "")
    return who


Checked = Annotated[Session, Depends(checked)]


# -- formatting -----------------------------------------------------------------------------


def _parse(value) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(CHINA) if value.tzinfo else value.replace(tzinfo=CHINA)


def china_time(value, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in China time, as people read it."""
    moment = _parse(value)
    return moment.strftime(fmt) if moment else "—"


def duration(hours) -> str:
    """``37.4`` -> ``1天13小时`` (whole hours past a day); ``3.25`` -> ``3.2小时``; ``48`` -> ``2天``."""
    if hours is None:
        return "—"
    hours = float(hours)
    if hours != hours:  # NaN
        return "—"
    if abs(hours) >= 24:
        days, rest = divmod(round(abs(hours)), 24)
        return ("-" if hours < 0 else "") + f"{days}天" + (f"{rest}小时" if rest else "")
    rest = round(hours, 1)
    return f"{rest:g}小时" if rest else "0小时"


def number(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def percent(value) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value * 100:.1f}%"


TEMPLATES.env.filters.update(china_time=china_time, duration=duration, number=number, percent=percent,
                             urlquote=lambda v: quote(str(v), safe=""))
TEMPLATES.env.globals.update(PLATFORMS=PLATFORMS, ACCOUNT_ROLES=ACCOUNT_ROLES)


def render(request: Request, template: str, context: dict | None = None, *, status: int = 200,
           who: Session | None = None) -> HTMLResponse:
    """The page ``template`` for the logged-in user (or the log-in page with none)."""
    who = who or getattr(request.state, "session", None)
    ctx = {"who": who, "nav": [], "path": request.url.path}
    if who is not None:
        role = who.principal.role
        ctx["nav"] = [(p, label) for p, label, roles in NAV if role in roles]
        ctx["csrf"] = who.csrf
        ctx["role_label"] = ACCOUNT_ROLES.get(role, role)
    ctx.update(context or {})
    ctx.setdefault("section", None)
    response = TEMPLATES.TemplateResponse(request, template, ctx, status_code=status)
    secure_headers(response)
    return response


def secure_headers(response: Response) -> Response:
    """Headers every console page carries: no framing, no sniffing, nothing loaded from
    elsewhere (the CSP allows only this server), no caching of personal data."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(url: str) -> RedirectResponse:
    return secure_headers(RedirectResponse(url, status_code=303))


# -- handlers -------------------------------------------------------------------------------


def install_handlers(app) -> None:
    """What the console answers when a page cannot be shown."""

    async def login_required(request: Request, exc: LoginRequired):
        target = "/login"
        if exc.next_path and exc.next_path != "/":
            target += "?next=" + quote(exc.next_path, safe="")
        if exc.expired:
            target += ("&" if "?" in target else "?") + "expired=1"
        response = redirect(target)
        if request.headers.get("hx-request"):
            # htmx follows redirects inside the page; send the whole browser instead.
            response = secure_headers(Response(status_code=204, headers={"HX-Redirect": target}))
        response.delete_cookie(COOKIE, path="/")
        return response

    async def refused(request: Request, exc: Refused):
        return render(request, "error.html", {"status": exc.status, "message": exc.message},
                      status=exc.status)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Refused, refused)

    # An address nobody serves: a page in Chinese for a browser that asked for a page (a
    # mistyped or stale console link), the API's problem document for everything else.
    answer_api = app.exception_handlers.get(StarletteHTTPException)

    async def no_such_page(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404 and request.method in ("GET", "HEAD") \
                and "text/html" in request.headers.get("accept", "") \
                and not request.url.path.startswith(NOT_PAGES):
            return render(request, "error.html", {"status": 404, "message": "没有这个页面：地址有误或已失效。"},
                          status=404)
        if answer_api is None:
            raise exc
        return await answer_api(request, exc)

    app.add_exception_handler(StarletteHTTPException, no_such_page)
