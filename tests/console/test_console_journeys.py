"""What new users of each role stumbled on in the console, without a browser (TestClient):
the sweeper's warnings named in Chinese in an event's history, an empty bulk action, a closed
event's wording, the administrator's refusals in Chinese with the form kept and a
confirmation before destructive buttons, a period the dashboard cannot read, durations
for people."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from gridgeo import sessions
from gridgeo.auth import create_user
from gridgeo.console.base import duration
from gridgeo.events.records import history_record
from gridgeo.events.service import take_action
from gridgeo.store import Store, schema
from helpers.apps import app_for

PASSWORD = "correct horse 7"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from helpers.events_world import load_world
    from helpers.tiny import make_tiny

    folder = tmp_path_factory.mktemp("console-journeys")
    store = Store(f"sqlite:///{folder / 'journeys.db'}")
    store.migrate()
    load_world(store, make_tiny(folder))
    for username, role, scope in (("cmd", "command_room", {}), ("root", "admin", {}), ("boss", "leadership", {})):
        create_user(store, username, role=role, name=username, actor="test", **scope)
        sessions.set_password(store, username, PASSWORD, actor="test")
    yield store
    store.close()


@pytest.fixture(scope="module")
def client(world):
    with pytest.MonkeyPatch.context() as env:
        app = app_for(world, env, request_log="false")
        with TestClient(app, base_url="http://console.test") as c:
            yield c


def _log_in(client, username) -> str:
    client.cookies.clear()
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    home = client.get(r.headers["location"])
    return re.search(r'name="csrf" value="([^"]+)"', home.text).group(1)


def _report(client) -> str:
    from helpers.events_world import G12, INSIDE

    r = client.post("/v1/events", json={"source": "app", "category_code": "ZZ001",
                                        "lon": INSIDE[G12][0], "lat": INSIDE[G12][1]})
    assert r.status_code == 201, r.text
    return r.json()["code"]


def test_history_names_the_sweepers_warnings_and_the_system_in_chinese(world, client):
    """An overdue event's history said ``overdue system（system）``."""
    from gridgeo.notify.worker import sweep_warnings

    code = _report(client)
    take_action(world, code, "accept", role="command_room", actor="cmd")
    assert sweep_warnings(world, now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30))["red"] >= 1
    _log_in(client, "cmd")
    page = client.get(f"/events/{code}").text
    timeline = page[page.index('class="timeline"'):]
    assert "超期预警" in timeline and "系统" in timeline
    assert "overdue" not in timeline and "system" not in timeline
    late = re.search(r"已超期 (\d+)天", timeline)
    assert late and 26 <= int(late.group(1)) <= 27  # 30 days on, less the 72 hours allowed
    # the core's record, which the API shows too
    line = history_record({"seq": 1, "at": None, "action": "warn", "actor": "system", "role": "system",
                           "from_state": "accepted", "to_state": "accepted", "note": None, "data": None})
    assert (line["action_label"], line["role_label"]) == ("临期预警", "系统")
    # an unknown action or role still shows as it is, never a 500
    line = history_record({"seq": 1, "at": None, "action": "martian", "actor": "x", "role": "alien",
                           "from_state": None, "to_state": None, "note": None, "data": None})
    assert (line["action_label"], line["role_label"]) == ("martian", "alien")


def test_a_closed_event_and_an_extension_read_right(world, client):
    code = _report(client)
    steps = [("accept", "command_room", {}), ("dispatch", "command_room", {}),
             ("extend", "command_room", {"hours": 30}), ("start", "department", {}),
             ("resolve", "department", {}), ("verify", "grid_worker", {}), ("close", "command_room", {})]
    for action, role, data in steps:
        take_action(world, code, action, role=role, actor=role, data=data, note="好" if action == "resolve" else None)
    _log_in(client, "cmd")
    page = client.get(f"/events/{code}").text
    assert "该事件已结案。" in page and "已已" not in page
    assert re.search(r"期限 \d{4}-\d\d-\d\d \d\d:\d\d → \d{4}-\d\d-\d\d \d\d:\d\d", page)
    assert "已延期 1天6小时" in page
    # the grid by its name, the code beside it
    from helpers.events_world import G12

    name = world.read("grids", where=schema.grids.c.code == G12)["name"].iloc[0]
    assert name and re.search(rf"<dt>网格</dt><dd>{re.escape(name)} <span class=\"sub\">{G12}</span>", page)


def test_an_empty_bulk_action_says_so_and_stays_in_the_command_room(world, client):
    csrf = _log_in(client, "cmd")
    r = client.post("/events/bulk", data={"csrf": csrf, "action": "accept"})
    assert r.status_code == 200
    assert "未勾选事件" in r.text and "成功 0 件" not in r.text
    assert re.search(r'<a href="/command" aria-current="page">', r.text)
    assert 'href="/events" aria-current' not in r.text
    code = _report(client)
    page = client.get("/command?queue=to_accept").text
    version = re.search(rf'value="{code}:(\d+)"', page).group(1)
    r = client.post("/events/bulk", data={"csrf": csrf, "action": "accept", "item": f"{code}:{version}"})
    assert "成功 1 件" in r.text and "未勾选" not in r.text
    # replayed: the same version again is refused, not applied twice
    r = client.post("/events/bulk", data={"csrf": csrf, "action": "accept", "item": f"{code}:{version}"})
    assert "成功 0 件" in r.text and "未完成 1 件" in r.text


def test_the_administrator_is_answered_in_chinese_and_asked_before_destroying(world, client):
    from gridgeo.auth import create_token

    create_token(world, "cmd", label="对接", days=1, actor="test")
    csrf = _log_in(client, "root")
    page = client.get("/admin").text
    # no role is chosen for the administrator: a forgotten choice must not make an admin
    assert re.search(r'<select id="a-role" name="role" required><option value="">请选择角色</option>', page)
    for button in ("重置 root 的密码", "退出 root 的全部登录", "停用 cmd？", "吊销 cmd 的令牌"):
        assert f'hx-confirm="{button}' in page, button
    refusals = [({"username": "cmd", "role": "leadership"}, "用户名“cmd”已被使用"),
                ({"username": "new1", "role": "department"}, "责任部门账号须选择部门"),
                ({"username": "new2", "role": "grid_worker", "name": "王五"}, "网格员须填写网格编码或人员编号"),
                ({"username": "new3", "role": "platform_office"}, "平台协调办公室账号须选择平台"),
                ({"username": "new4", "role": ""}, "请选择角色"),
                ({"username": "new5", "role": "grid_worker", "staff_code": "NOBODY"}, "人员编号“NOBODY”"),
                ({"username": "   ", "role": "leadership"}, "用户名须为 1 至 64 个字符")]
    for fields, said in refusals:
        r = client.post("/admin", data={"csrf": csrf, "do": "add", **fields})
        assert r.status_code == 422, fields
        error = re.search(r'<p class="error" role="alert">([^<]*)</p>', r.text).group(1)
        typed = error.replace(fields["username"], "").replace(fields.get("staff_code", "-"), "")
        assert not re.search(r"[A-Za-z]{3,}", typed), error  # no English
        assert said in error
    # the form comes back as typed
    r = client.post("/admin", data={"csrf": csrf, "do": "add", "username": "wangwu", "name": "王五<b>",
                                    "role": "grid_worker"})
    assert 'value="wangwu"' in r.text and 'value="王五&lt;b&gt;"' in r.text
    assert '<option value="grid_worker" selected>' in r.text
    assert "<code class=\"secret\">" not in r.text


def test_a_period_the_dashboard_cannot_read_is_explained_in_chinese(world, client):
    _log_in(client, "boss")
    r = client.get("/dashboard", params={"period": "abc<script>"})
    assert r.status_code == 200
    error = re.search(r'<p class="error" role="alert">([^<]*)</p>', r.text).group(1)
    assert "无法识别" in error and "2026-Q3" in error and "is not" not in error
    assert "<script>" not in r.text.split("<main", 1)[1].split("</main>")[0]
    ok = client.get("/dashboard", params={"period": "2026-Q3"})
    assert 'role="alert"' not in ok.text


@pytest.mark.parametrize("hours, text", [
    (None, "—"), (float("nan"), "—"), (0, "0小时"), (0.04, "0小时"), (3, "3小时"), (3.25, "3.2小时"),
    (24, "1天"), (37.4, "1天13小时"), (1449.7, "60天10小时"), (48, "2天"), (-30, "-1天6小时"),
])
def test_durations_for_people(hours, text):
    assert duration(hours) == text


def test_a_mistyped_address_is_a_page_for_a_browser_and_a_problem_for_a_program(client):
    page = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    r = client.get("/comand", headers=page)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "没有这个页面" in r.text and 'href="/"' in r.text and "Not Found" not in r.text
    assert r.headers["x-frame-options"] == "DENY"
    for path, headers in (("/comand", {}), ("/comand", {"Accept": "application/json"}), ("/v1/nothing", page),
                          ("/maps/nothing", page), ("/static/nothing.css", page)):
        r = client.get(path, headers=headers)
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), path
    r = client.post("/comand", headers=page)
    assert r.status_code in (404, 405) and "problem+json" in r.headers["content-type"]
    r = client.get("/" + "x" * 5000, headers=page)  # huge: still a page, not a 500
    assert r.status_code == 404 and "x" * 5000 not in r.text
