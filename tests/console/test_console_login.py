"""The console's log-in, sessions and CSRF, without a browser: the core (gridgeo.sessions) on
both databases, and hostile requests through the application (TestClient): wrong passwords
throttled, huge and malformed bodies, session fixation, log-out revocation, forged posts,
open redirects, the CLI's passwords."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from gridgeo import sessions
from gridgeo.auth import create_user
from gridgeo.errors import InvalidPassword, LoginThrottled, Unauthenticated
from gridgeo.store import Store, schema
from helpers.apps import app_for

PASSWORD = "correct horse 7"
NOW = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.timezone.utc)


def _user(store, username="zhang", role="command_room", **scope):
    create_user(store, username, role=role, name="张三", actor="test", **scope)
    sessions.set_password(store, username, PASSWORD, actor="test")
    return username


def test_sessions_on_both_databases(store, monkeypatch):
    """Log-in, time-outs, revocation and throttling in the core, on SQLite and PostgreSQL."""
    monkeypatch.setenv("GRIDGEO_LOGIN_FAILURES_PER_ACCOUNT", "2")
    monkeypatch.setenv("GRIDGEO_SESSION_IDLE_MINUTES", "30")
    monkeypatch.setenv("GRIDGEO_SESSION_HOURS", "12")
    from gridgeo.config import get_settings

    get_settings.cache_clear()
    try:
        user = _user(store)
        with store.engine.connect() as conn:
            digest = conn.execute(
                select(schema.users.c.password_hash).where(schema.users.c.username == user)).scalar()
        assert digest.startswith("$argon2id$") and PASSWORD not in digest

        token = sessions.log_in(store, user, PASSWORD, client="10.0.0.1", now=NOW)
        assert token.startswith("ggs_")
        live = sessions.session(store, token, now=NOW + dt.timedelta(minutes=29))
        assert live.principal.username == user and live.principal.role == "command_room"
        assert live.csrf == sessions.csrf_token(token) and live.csrf != token
        # idle: 30 minutes after the last request (the request at +29 min counted)
        sessions.session(store, token, now=NOW + dt.timedelta(minutes=58))
        with pytest.raises(Unauthenticated):
            sessions.session(store, token, now=NOW + dt.timedelta(minutes=58 + 31))
        # absolute: 12 hours after the log-in, however busy
        token = sessions.log_in(store, user, PASSWORD, client="10.0.0.1", now=NOW)
        for minutes in range(0, 12 * 60, 25):
            sessions.session(store, token, now=NOW + dt.timedelta(minutes=minutes))
        with pytest.raises(Unauthenticated):
            sessions.session(store, token, now=NOW + dt.timedelta(hours=12, minutes=1))

        # a password change (here by an administrator) ends every session
        other = sessions.log_in(store, user, PASSWORD, client="10.0.0.1")
        sessions.set_password(store, user, PASSWORD + "x", actor="test")
        with pytest.raises(Unauthenticated):
            sessions.session(store, other)

        # throttling per account: after 2 failures even the right password is refused
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                sessions.log_in(store, user, "wrong password", client="10.0.0.2", now=NOW)
        with pytest.raises(LoginThrottled) as caught:
            sessions.log_in(store, user, PASSWORD + "x", client="10.0.0.3", now=NOW + dt.timedelta(minutes=1))
        assert 0 < caught.value.retry_after <= 15 * 60
        # ... until the failures leave the window
        assert sessions.log_in(store, user, PASSWORD + "x", client="10.0.0.3", now=NOW + dt.timedelta(minutes=16))
        # an unknown user answers as a wrong password does
        with pytest.raises(Unauthenticated, match=sessions.WRONG):
            sessions.log_in(store, "nobody", PASSWORD, client="10.0.0.4")
        with pytest.raises(InvalidPassword):
            sessions.set_password(store, user, "short", actor="test")
        with pytest.raises(InvalidPassword):
            sessions.set_password(store, user, user + "", actor="test")
    finally:
        get_settings.cache_clear()


# -- through the application ------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_world(tmp_path_factory):
    """The events township on SQLite, once for the HTTP tests of this module (the store's
    part of sessions runs on both databases above)."""
    from helpers.events_world import load_world
    from helpers.tiny import make_tiny

    folder = tmp_path_factory.mktemp("console-web")
    store = Store(f"sqlite:///{folder / 'web.db'}")
    store.migrate()
    load_world(store, make_tiny(folder))
    yield store
    store.close()


@pytest.fixture(scope="module")
def web_client(web_world):
    """One application and client for the module's HTTP tests (the settings below hold for
    the module)."""
    with pytest.MonkeyPatch.context() as env:
        app = app_for(web_world, env, login_failures_per_account=3, login_failures_per_client=5,
                      request_log="false")
        with TestClient(app, base_url="http://console.test") as client:
            yield client


@pytest.fixture
def site(web_world, web_client):
    with web_world.engine.begin() as conn:  # each test counts its own failed log-ins
        conn.execute(schema.login_failures.delete())
    web_client.cookies.clear()
    yield web_world, web_client
    web_client.cookies.clear()


def _login_form(client) -> str:
    r = client.get("/login")
    assert r.status_code == 200 and "登录" in r.text
    assert "gg_login" in r.cookies
    # who to ask for an account or a new password, in words: no command line for the users
    assert "联系系统管理员" in r.text and "--role" not in r.text
    return re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)


def _log_in(client, username, password=PASSWORD, **extra):
    token = _login_form(client)
    return client.post("/login", data={"username": username, "password": password, "csrf": token, **extra},
                       follow_redirects=False)


def _csrf(client, path="/password") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def test_log_in_out_and_hostile_requests(site):
    store, client = site
    user = _user(store)

    # pages need a session; the log-in page comes back to where the user was going
    r = client.get("/command?queue=overdue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fcommand%3Fqueue%3Doverdue"

    # session fixation: a session value planted before the log-in is never the one after it
    client.cookies.set("gg_session", "ggs_planted-by-an-attacker-0123456789abcdef", domain="console.test")
    r = _log_in(client, user, next="/command?queue=overdue")
    assert r.status_code == 303 and r.headers["location"] == "/command?queue=overdue"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    session = client.cookies["gg_session"]
    assert session.startswith("ggs_") and "planted" not in session
    assert client.get("/command").status_code == 200

    # a state-changing request without the CSRF token, with a wrong one, or from another origin
    for data, headers in [({}, {}), ({"csrf": "0" * 64}, {}),
                          ({"csrf": _csrf(client)}, {"Origin": "http://evil.example"})]:
        r = client.post("/logout", data=data, headers=headers, follow_redirects=False)
        assert r.status_code == 403 and "安全校验码" in r.text, (data, headers)
    assert client.get("/command").status_code == 200  # still logged in: nothing was done

    # the log-in form refuses a post without its own token (login CSRF)
    r = client.post("/login", data={"username": user, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403

    # an open redirect through next= is refused: home instead
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = _log_in(client, user, next=target)
        assert r.status_code == 303 and r.headers["location"] == "/command", target

    # log-out ends the session on the server: the old cookie no longer opens anything
    old = client.cookies["gg_session"]
    r = client.post("/logout", data={"csrf": _csrf(client)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.cookies.set("gg_session", old, domain="console.test")
    r = client.get("/command", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fcommand&expired=1")
    with pytest.raises(Unauthenticated):
        sessions.session(store, old)


def test_wrong_passwords_are_throttled_and_bodies_bounded(site):
    store, client = site
    user = _user(store, "li", role="leadership")
    for _ in range(3):
        r = _log_in(client, user, password="not the password")
        assert r.status_code == 401 and sessions.WRONG in r.text
    r = _log_in(client, user)  # the right password, too late
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "次数过多" in r.text
    # per client: other accounts from the same address are throttled after 5 failures in all
    _user(store, "wang", role="leadership")
    for _ in range(2):
        assert _log_in(client, "wang", password="nope nope").status_code == 401
    assert _log_in(client, "wang").status_code == 429

    token = _login_form(client)
    # huge: the API's body limit holds for the console's forms too
    r = client.post("/login", data={"username": "x", "password": "p" * 2_000_000, "csrf": token})
    assert r.status_code == 413
    # malformed: JSON, a file, a nested mess, missing fields: refused, never a 500
    assert client.post("/login", json={"username": user, "password": PASSWORD}).status_code == 403
    assert client.post("/login", files={"password": ("p.txt", b"x")}, data={"csrf": token}).status_code in (400, 403)
    assert client.post("/login", content=b"\xff\xfe%%%&&&==", headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 403
    r = client.post("/login", data={"csrf": token, "username": ""})
    assert r.status_code in (403, 422)
    # a very long password is refused without hashing it (and counted as a failure)
    client.cookies.clear()
    r = _log_in(client, "nobody-at-all", password="p" * 5000)
    assert r.status_code in (401, 429)


def test_bulk_accept_and_dispatch_at_the_versions_shown(site):
    from helpers.events_world import G12, INSIDE

    store, client = site
    codes = []
    for _ in range(3):
        r = client.post("/v1/events", json={"source": "app", "category_code": "ZZ001",
                                            "lon": INSIDE[G12][0], "lat": INSIDE[G12][1]})
        assert r.status_code == 201, r.text
        codes.append(r.json()["code"])
    user = _user(store, "feng", role="command_room")
    assert _log_in(client, user).status_code == 303
    page = client.get("/command?queue=to_accept")
    assert all(f'value="{c}:1"' in page.text for c in codes)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    from gridgeo.events.service import take_action

    take_action(store, codes[2], "accept", role="command_room", actor="someone else", version=1)
    r = client.post("/events/bulk", data={"csrf": csrf, "action": "accept", "item": [f"{c}:1" for c in codes]})
    assert r.status_code == 200 and "成功 2 件" in r.text and "该事件已被他人修改" in r.text
    r = client.post("/events/bulk", data={"csrf": csrf, "action": "dispatch", "target": "stability|司法所",
                                          "item": [f"{codes[0]}:2", f"{codes[1]}:2"]})
    assert "成功 2 件" in r.text
    for code in codes[:2]:
        event = client.get(f"/events/{code}").text
        assert "已分流交办" in event and "司法所" in event
    r = client.post("/events/bulk", data={"csrf": csrf, "action": "close", "item": [f"{codes[0]}:3"]})
    assert r.status_code == 400


def test_change_password_ends_other_sessions(site):
    store, client = site
    user = _user(store, "zhao", role="department", department="综治办")
    assert _log_in(client, user).status_code == 303
    other = sessions.log_in(store, user, PASSWORD, client="10.9.9.9")
    first = client.cookies["gg_session"]
    csrf = _csrf(client)
    r = client.post("/password", data={"csrf": csrf, "old": "wrong one!", "new": "new secret 9", "again": "new secret 9"})
    assert r.status_code == 422 and "原密码不正确" in r.text
    r = client.post("/password", data={"csrf": csrf, "old": PASSWORD, "new": "short", "again": "short"})
    assert r.status_code == 422 and "8 至 128" in r.text
    r = client.post("/password", data={"csrf": csrf, "old": PASSWORD, "new": "new secret 9", "again": "new secret 9"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/password?done=1"
    assert client.cookies["gg_session"] != first  # a new session for this browser, still logged in
    assert client.get("/password", follow_redirects=False).status_code == 200
    for ended in (first, other):
        with pytest.raises(Unauthenticated):
            sessions.session(store, ended)
    client.cookies.clear()
    assert _log_in(client, user, password="new secret 9").status_code == 303


def test_cli_sets_passwords_and_demo_prints_them(web_world):
    from gridgeo.cli import app

    world = web_world
    runner = CliRunner()
    url = world.url
    r = runner.invoke(app, ["users", "add", "chen", "--role", "command_room", "--generate-password",
                            "--no-token", "--database", url])
    assert r.exit_code == 0, r.output
    secret = re.search(r"password \(shown once\): (\S+)", r.output).group(1)
    assert sessions.log_in(world, "chen", secret, client="cli-test")
    r = runner.invoke(app, ["users", "password", "chen", "--database", url], input="another pass 1\nanother pass 1\n")
    assert r.exit_code == 0, r.output
    assert sessions.log_in(world, "chen", "another pass 1", client="cli-test")
    r = runner.invoke(app, ["users", "password", "chen", "--database", url], input="short\nshort\n")
    assert r.exit_code != 0
    r = runner.invoke(app, ["users", "demo", "--database", url])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("  demo-")]
    assert len(lines) >= 6
    for line in lines:
        username, password = line.split()[0], re.search(r"password: (\S+)", line).group(1)
        assert "ggt_" in line  # the token beside it
        if username == "demo-command":
            assert sessions.log_in(world, username, password, client="cli-test")


def test_administrator_manages_users_passwords_and_tokens(site):
    store, client = site
    admin = _user(store, "root", role="admin")
    worker = _user(store, "zhou", role="grid_worker", grids=["331124201001001"])
    assert _log_in(client, worker).status_code == 303
    assert client.get("/admin", follow_redirects=False).status_code == 403  # not for a grid worker
    worker_session = client.cookies["gg_session"]
    client.cookies.clear()
    assert _log_in(client, admin).status_code == 303
    page = client.get("/admin")
    assert page.status_code == 200 and "zhou" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/admin", data={"do": "password", "username": worker}).status_code == 403  # no CSRF

    r = client.post("/admin", data={"csrf": csrf, "do": "add", "username": "wu", "name": "吴", "role": "department",
                                    "department": "综治办"})
    assert r.status_code == 200 and "已添加用户 wu" in r.text
    first = re.search(r'<code class="secret">([^<]+)</code>', r.text).group(1)
    assert sessions.log_in(store, "wu", first, client="admin-test")
    assert first not in client.get("/admin").text  # shown once
    r = client.post("/admin", data={"csrf": csrf, "do": "add", "username": "bad", "role": "department"})
    assert r.status_code == 422 and "department" in r.text

    # a reset password ends the user's sessions; so does switching the user off
    r = client.post("/admin", data={"csrf": csrf, "do": "password", "username": worker})
    new = re.search(r'<code class="secret">([^<]+)</code>', r.text).group(1)
    with pytest.raises(Unauthenticated):
        sessions.session(store, worker_session)
    live = sessions.log_in(store, worker, new, client="admin-test")
    client.post("/admin", data={"csrf": csrf, "do": "disable", "username": worker})
    with pytest.raises(Unauthenticated):
        sessions.session(store, live)
    with pytest.raises(Unauthenticated):
        sessions.log_in(store, worker, new, client="admin-test")
    r = client.post("/admin", data={"csrf": csrf, "do": "disable", "username": admin})
    assert r.status_code == 400  # not oneself

    # tokens: issued once, listed by prefix, revoked
    r = client.post("/admin", data={"csrf": csrf, "do": "token", "username": "wu", "label": "对接系统"})
    token = re.search(r'<code class="secret">(ggt_[^<]+)</code>', r.text).group(1)
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["username"] == "wu"
    listed = [t for t in auth_tokens(store) if t["username"] == "wu"]
    r = client.post("/admin", data={"csrf": csrf, "do": "revoke", "token_id": str(listed[0]["id"])})
    assert r.status_code == 200 and "已吊销" in r.text
    assert token not in r.text


def auth_tokens(store):
    from gridgeo.auth import list_tokens

    return [t for t in list_tokens(store) if t["revoked_at"] is None]


def test_planner_sees_the_plans_and_publishes_a_draft(site):
    from gridgeo.plan import lifecycle

    store, client = site
    draft = lifecycle.save_draft(store, lifecycle.plan_from_store(store, band=(300, 500), seed=1),
                                 actor="test")["version"]
    planner = _user(store, "sun", role="planner")
    r = _log_in(client, planner)
    assert r.headers["location"] == "/plans"
    page = client.get("/plans").text
    assert "v1" in page and draft in page and "草案" in page
    page = client.get(f"/plans/{draft}").text
    assert "平均紧凑度" in page and f"/maps/plans/{draft}" in page and "发布方案" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post(f"/plans/{draft}/publish", data={"effective_from": "2030-01-01"}).status_code == 403
    r = client.post(f"/plans/{draft}/publish", data={"csrf": csrf, "effective_from": "2023-01-01"})
    assert r.status_code == 422 and "未能发布" in r.text  # before the plan in force began
    r = client.post(f"/plans/{draft}/publish", data={"csrf": csrf, "effective_from": "2030-01-01"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert store.plan_in_force(dt.date(2030, 1, 2))["version"] == store.plans()["version"].iloc[-1]
    assert "方案已发布" in client.get(r.headers["location"]).text
    # the leadership reads plans, does not publish them
    client.cookies.clear()
    _user(store, "qian", role="leadership")
    _log_in(client, "qian")
    assert "发布方案" not in client.get("/plans/v1").text
    r = client.post("/plans/v1/publish", data={"csrf": _csrf(client, "/plans/v1"), "effective_from": "2031-01-01"})
    assert r.status_code == 403 and "无权" in r.text
