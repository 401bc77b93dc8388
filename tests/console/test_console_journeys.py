"""What new users of each role stumbled on in the console, without a browser (TestClient):
the sweeper's warnings named in Chinese in an event's history, an empty bulk action, a closed
event's wording, the administrator's refusals in Chinese with the form kept and a
confirmation before destructive buttons, a period the dashboard cannot read, durations
for people; and what a second walk found: history lines that said a name twice, user names
the administrator's form took or cut, event errors in English, grid codes in the lists, the
navigation marking 事件查询 from every list, the actions below the map."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from gridgeo import sessions
from gridgeo.auth import create_user, list_users
from gridgeo.console.base import duration
from gridgeo.errors import InvalidUser
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
    from helpers.events_world import G12

    for username, role, scope in (("cmd", "command_room", {}), ("root", "admin", {}), ("boss", "leadership", {}),
                                  ("dept", "department", {"department": "综治办"}),
                                  ("office", "platform_office", {"platform": "stability"}),
                                  ("gw", "grid_worker", {"grids": [G12]})):
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


# -- the second walk --

def _timeline(page: str) -> str:
    return page[page.index('class="timeline"'):]


def test_a_history_line_names_the_role_once_when_the_actor_is_called_by_it(world, client):
    code = _report(client)
    take_action(world, code, "accept", role="command_room", actor="综合指挥室")  # the role's own word
    take_action(world, code, "dispatch", role="command_room", actor="张三")
    _log_in(client, "cmd")
    timeline = _timeline(client.get(f"/events/{code}").text)
    assert "综合指挥室（综合指挥室）" not in timeline
    assert "张三（综合指挥室）" in timeline  # a person: name and role


@pytest.mark.parametrize("username, said", [
    ("bad name!", "只能包含字母、数字"), ("a b", "不能有空格"), ("x" * 65, "1 至 64 个字符，此用户名过长"),
    ("x" * 5000, "此用户名过长"), ("<script>", "只能包含"), ("a\x00b", "只能包含"), ("a;drop", "只能包含"),
])
def test_the_administrator_cannot_add_a_user_name_that_breaks_the_rule(world, client, username, said):
    csrf = _log_in(client, "root")
    r = client.post("/admin", data={"csrf": csrf, "do": "add", "username": username, "role": "leadership"})
    assert r.status_code in (400, 422), r.status_code
    if r.status_code == 422:
        error = re.search(r'<p class="error" role="alert">([^<]*)</p>', r.text).group(1)
        assert said in error
    names = {u["username"] for u in list_users(world)}
    assert username not in names and username[:64] not in names  # neither taken nor cut to fit


def test_good_user_names_still_pass_and_the_cli_refuses_a_bad_one(world, tmp_path):
    from typer.testing import CliRunner

    from gridgeo.cli import app

    for good in ("wang.wei", "wang_wei-2", "ops@county", "王伟", "x" * 64):
        create_user(world, good, role="leadership", actor="test")
    for bad in ("bad name!", "x" * 65, "tab\there"):
        with pytest.raises(InvalidUser) as refused:
            create_user(world, bad, role="leadership", actor="test")
        assert refused.value.zh and "用户名" in refused.value.zh
    runner = CliRunner()
    r = runner.invoke(app, ["users", "add", "bad name!", "--role", "leadership", "--no-token",
                            "--database", str(world.url)])
    assert r.exit_code != 0
    assert "bad name!" not in {u["username"] for u in list_users(world)}


def _grid_name(world):
    from helpers.events_world import G12

    from gridgeo.store import schema

    return G12, world.read("grids", where=schema.grids.c.code == G12)["name"].iloc[0]


def test_the_lists_show_grid_names_and_link_back_to_their_section(world, client):
    code, name = _grid_name(world)
    assert name
    event = _report(client)
    _log_in(client, "cmd")
    for path, came in (("/command?queue=to_accept", "command"), (f"/events?text=&grid={code}", "events")):
        page = client.get(path).text
        assert f'<span title="网格编码 {code}">{name}</span>' in page, path
        assert f'href="/events/{event}?from={came}"' in page, path
    # the event page marks the section the user came from, not 事件查询
    for came, marked in (("command", "/command"), ("supervision", "/supervision"), ("events", "/events")):
        page = client.get(f"/events/{event}", params={"from": came}).text
        nav = page[page.index("<nav"):page.index("</nav>")]
        assert re.findall(r'<a href="([^"]+)" aria-current="page">', nav) == [marked], came
        assert f'name="from" value="{came}"' in page
    # hostile or foreign: the role's home, never reflected
    for came in ("tasks", "<script>", "https://evil.example", "x" * 5000, "../admin", ""):
        page = client.get(f"/events/{event}", params={"from": came}).text
        nav = page[page.index("<nav"):page.index("</nav>")]
        assert re.findall(r'<a href="([^"]+)" aria-current="page">', nav) == ["/command"], came[:20]
        assert 'name="from"' not in page and "evil.example" not in page and "<script>" not in page.split("<main")[1]
    # an action keeps where the user came from
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    version = re.search(r'data-version="(\d+)"', page).group(1)
    r = client.post(f"/events/{event}/actions", data={"csrf": csrf, "action": "accept", "version": version,
                                                      "from": "command"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/events/{event}?done=accept&from=command"
    r = client.post(f"/events/{event}/actions", data={"csrf": csrf, "action": "accept", "version": version,
                                                      "from": "//evil.example"}, follow_redirects=False)
    assert "evil" not in r.headers.get("location", "") and "evil" not in r.headers.get("hx-push-url", "")


def test_supervision_shows_grid_names(world, client):
    import datetime as dt

    from gridgeo.store import schema

    code, name = _grid_name(world)
    event = _report(client)
    take_action(world, event, "accept", role="command_room", actor="cmd")
    take_action(world, event, "dispatch", role="command_room", actor="cmd")
    from sqlalchemy import update

    with world.engine.begin() as conn:  # past its deadline
        conn.execute(update(schema.events).where(schema.events.c.code == event)
                     .values(deadline_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)))
    _log_in(client, "cmd")
    page = client.get("/supervision").text
    assert f'<span title="网格编码 {code}">{name}</span>' in page
    assert f'href="/events/{event}?from=supervision"' in page


def test_the_actions_sit_beside_the_facts_above_the_map(world, client):
    event = _report(client)
    _log_in(client, "cmd")
    page = client.get(f"/events/{event}").text
    two = page[page.index('<div class="two">'):]
    assert two.index('id="h-facts"') < two.index('id="h-actions"') < two.index('id="h-map"')
    # the facts and the actions share the first row (the two-column block), the map comes after it
    assert '</section>\n</div>\n\n<section class="card" aria-labelledby="h-map">' in two


@pytest.mark.parametrize("fields, said", [
    ({"action": "extend", "hours": "5000"}, "延期小时数须在 1 至 720 之间"),
    ({"action": "extend", "hours": "abc"}, "延期小时数须为整数"),
    ({"action": "extend", "hours": "1e400"}, "延期小时数须为整数"),
    ({"action": "extend", "hours": "-3"}, "延期小时数须在 1 至 720 之间"),
    ({"action": "extend", "hours": ""}, "延期须填写小时数或工作日数"),
    ({"action": "dispatch", "target": "market|没有这个部门<b>"}, "不是市场监管在事项清单中的部门"),
    ({"action": "dispatch", "target": "mars|x"}, "平台须为"),
])
def test_a_refused_action_is_explained_in_chinese(world, client, fields, said):
    event = _report(client)
    take_action(world, event, "accept", role="command_room", actor="cmd")
    if fields["action"] != "dispatch":
        take_action(world, event, "dispatch", role="command_room", actor="cmd")
    csrf = _log_in(client, "cmd")
    page = client.get(f"/events/{event}").text
    version = re.search(r'data-version="(\d+)"', page).group(1)
    r = client.post(f"/events/{event}/actions", data={"csrf": csrf, "version": version, **fields})
    if r.status_code == 409:  # the action is not open in this state: said in Chinese too
        assert "当前状态下不能" in r.text
        return
    assert r.status_code == 422, r.text[:300]
    error = re.search(r'<p class="error" role="alert">([^<]*)</p>', r.text).group(1)
    assert said in error, error
    assert not re.search(r"[A-Za-z]{3,}", error.replace("&lt;b&gt;", "")), error  # no English
    assert "<b>" not in error


def test_the_core_says_each_event_rule_in_chinese_for_the_api_too(world, client):
    from gridgeo.errors import InvalidEvent

    event = _report(client)
    take_action(world, event, "accept", role="command_room", actor="cmd")
    take_action(world, event, "dispatch", role="command_room", actor="cmd")
    fresh = _report(client)
    for code, action, data in ((event, "extend", {"hours": 721}), (event, "extend", {"hours": [1]}),
                               (event, "extend", {}), (fresh, "merge", {"into": fresh}),
                               (fresh, "reject", {"reason": "martian"})):
        with pytest.raises(InvalidEvent) as refused:
            take_action(world, code, action, role="command_room", actor="cmd", data=data)
        assert refused.value.zh and not re.search(r"[A-Za-z]{3,}", refused.value.zh), refused.value.zh
        assert re.search(r"[A-Za-z]{3,}", str(refused.value))  # the English detail stays for programs


# -- the follow-ups of the two walks: extensions asked for, bulk 督办, after a return, refusals
#    in Chinese, grid names (each new form's hostile input too)

def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _version(page: str) -> str:
    return re.search(r'data-version="(\d+)"', page).group(1)


def _alert(r) -> str:
    return re.search(r'<p class="error" role="alert">(.*?)</p>', r.text, re.S).group(1)


def _dispatched(world, client, category="ZZ001") -> str:
    """An event reported in G12 and dispatched (re-routed to ``category``'s department)."""
    code = _report(client)
    take_action(world, code, "accept", role="command_room", actor="cmd")
    take_action(world, code, "dispatch", role="command_room", actor="cmd",
                data={} if category == "ZZ001" else {"category_code": category})
    return code


def test_a_department_asks_for_an_extension_and_the_platform_office_answers(world, client):
    from gridgeo.events.queries import get_event

    code = _dispatched(world, client)
    other = _dispatched(world, client, "SC001")  # 市场监管所's: not this department's
    csrf = _log_in(client, "dept")
    page = client.get(f"/events/{code}").text
    assert 'data-action="ask_extension"' in page and "由平台协调办公室或综合指挥室审批" in page
    v = _version(page)
    url = f"/events/{code}/actions"
    ask = {"csrf": csrf, "action": "ask_extension", "version": v, "hours": "30", "note": "需等待鉴定结果"}
    # hostile: no CSRF token, another department's event, no reason, huge or wrong hours
    r = client.post(url, data={k: x for k, x in ask.items() if k != "csrf"})
    assert r.status_code == 403 and "安全校验码" in r.text
    r = client.post(f"/events/{other}/actions", data=ask)
    assert r.status_code == 404 and "未找到事件" in r.text
    for fields, said in (({"note": ""}, "“申请延期”须填写原因"), ({"hours": ""}, "“申请延期”须填写延期小时数"),
                         ({"hours": "9" * 5000}, "延期小时数须在 1 至 720 之间"), ({"hours": "1.5"}, "延期小时数须为整数")):
        r = client.post(url, data={**ask, **fields})
        assert r.status_code == 422 and said in _alert(r), (fields, r.status_code)
    r = client.post(url, data={**ask, "note": "长" * 70_000})  # a reason past the form's part limit
    assert r.status_code in (400, 422)
    assert get_event(world, code)["extension_requested_hours"] is None  # nothing was asked yet
    r = client.post(url, data=ask, follow_redirects=False)
    assert r.status_code == 303
    # replayed: the same form again is someone else's change now, said in Chinese with a reload offered
    r = client.post(url, data=ask)
    assert r.status_code == 409 and "该事件已被他人修改" in _alert(r) and "重新载入" in _alert(r)
    page = client.get(f"/events/{code}").text
    assert "延期申请待审批：1天6小时" in page and "需等待鉴定结果" in page
    assert 'data-action="ask_extension"' not in page  # one request at a time
    r = client.post(url, data={**ask, "version": _version(page)})
    assert r.status_code == 409 and "已有一项延期申请待审批" in _alert(r)
    # the department may not answer its own request (wrong role)
    r = client.post(url, data={"csrf": csrf, "action": "grant_extension", "version": _version(page)})
    assert r.status_code == 403 and "责任部门不能“批准延期”，此操作由平台协调办公室、综合指挥室办理" in _alert(r)

    # in the approvers' queues: the platform office's tasks, the command room's 延期申请
    csrf = _log_in(client, "office")
    tasks = client.get("/tasks").text
    assert "延期申请待审批" in tasks and f"/events/{code}?from=tasks" in tasks.split('id="h-asked"')[1]
    _log_in(client, "cmd")
    queue = client.get("/command?queue=extension_requests").text
    assert "延期申请" in queue and f"/events/{code}" in queue and f"/events/{other}" not in queue
    before = get_event(world, code)["deadline_at"]
    csrf = _log_in(client, "office")
    page = client.get(f"/events/{code}").text
    r = client.post(url, data={"csrf": csrf, "action": "grant_extension", "version": _version(page)},
                    follow_redirects=False)
    assert r.status_code == 303
    event = get_event(world, code)
    assert event["extension_requested_hours"] is None and event["extended_hours"] == 30
    assert dt.datetime.fromisoformat(event["deadline_at"]) - dt.datetime.fromisoformat(before) == dt.timedelta(hours=30)
    page = client.get(f"/events/{code}").text
    timeline = _timeline(page)
    assert "申请延期" in timeline and "申请延期 1天6小时" in timeline and "需等待鉴定结果" in timeline
    assert "批准延期" in timeline and re.search(r"批准延期.*?期限 \d{4}-\d\d-\d\d \d\d:\d\d → ", timeline, re.S)
    assert "ask_extension" not in timeline and "grant_extension" not in timeline
    # answered: nothing left to answer (a wrong state for the answer, in Chinese)
    r = client.post(url, data={"csrf": csrf, "action": "refuse_extension", "version": _version(page), "note": "不"})
    assert r.status_code == 409 and "没有待审批的延期申请" in _alert(r)
    # asked again and refused, with a reason: the deadline stays
    take_action(world, code, "ask_extension", role="department", actor="dept", data={"hours": 48}, note="再等两天")
    take_action(world, code, "refuse_extension", role="platform_office", actor="office", note="已延期一次")
    event = get_event(world, code)
    assert event["extension_requested_hours"] is None and event["extended_hours"] == 30
    assert [h["action_label"] for h in event["history"][-2:]] == ["申请延期", "驳回延期申请"]


def test_bulk_supervision_from_the_board(world, client):
    from sqlalchemy import update

    from gridgeo.events.queries import get_event

    codes = [_dispatched(world, client) for _ in range(2)]
    with world.engine.begin() as conn:  # past their deadline: on the board
        conn.execute(update(schema.events).where(schema.events.c.code.in_(codes))
                     .values(deadline_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)))
    csrf = _log_in(client, "cmd")
    board = client.get("/supervision").text
    assert 'id="bulk-supervise"' in board
    items = [re.search(rf'value="({c}:\d+)"', board).group(1) for c in codes]
    form = {"csrf": csrf, "action": "supervise", "note": "请今日办结", "item": items}
    r = client.post("/events/bulk", data={k: v for k, v in form.items() if k != "csrf"})
    assert r.status_code == 403  # no CSRF token
    r = client.post("/events/bulk", data={**form, "item": [*items, "E0:1", "x" * 10_000]})
    assert r.status_code == 200 and "批量督办：成功 2 件" in r.text and "未完成 2 件" in r.text
    assert "未找到该事件" in r.text and r.headers["hx-push-url"] == "/supervision"
    assert re.search(r'<a href="/supervision" aria-current="page">', r.text)
    for c in codes:
        last = get_event(world, c)["history"][-1]
        assert (last["action"], last["note"], last["actor"]) == ("supervise", "请今日办结", "cmd")
        assert last["data"]["late_hours"] >= 23
    r = client.post("/events/bulk", data=form)  # replayed: the versions are old now
    assert "成功 0 件" in r.text and r.text.count("该事件已被他人修改") == 2
    r = client.post("/events/bulk", data={**form, "note": "督" * 5000, "item": [f"{codes[0]}:{get_event(world, codes[0])['version']}"]})
    assert "成功 1 件" in r.text and len(get_event(world, codes[0])["history"][-1]["note"]) == 4000
    csrf = _log_in(client, "dept")  # the department sees the board but may not 督办
    assert 'id="bulk-supervise"' not in client.get("/supervision").text
    r = client.post("/events/bulk", data={**form, "csrf": csrf})
    assert r.status_code == 403


def test_after_a_return_the_dispatch_form_names_who_returned_it_and_preselects_nothing(world, client):
    from gridgeo.events.queries import get_event

    code = _dispatched(world, client)
    take_action(world, code, "return", role="department", actor="李科长", note="不属本部门职责，应由司法所办理")
    csrf = _log_in(client, "cmd")
    page = client.get(f"/events/{code}").text
    said = re.search(r'<p class="returned" id="returned-by">(.*?)</p>', page).group(1)
    assert "李科长（综治办）" in said and "不属本部门职责，应由司法所办理" in said
    select = page[page.index('name="target"'):page.index("</select>", page.index('name="target"'))]
    assert '<option value="" selected>请选择部门</option>' in select
    assert select.count(" selected") == 1 and "综治办（退回的部门）" in select
    # no department chosen (a hand-made form): refused in Chinese, not sent back to the returner
    r = client.post(f"/events/{code}/actions", data={"csrf": csrf, "action": "dispatch", "version": _version(page),
                                                     "target": ""})
    assert r.status_code == 422 and "已被综治办退回" in _alert(r)
    r = client.post("/events/bulk", data={"csrf": csrf, "action": "dispatch", "target": "",
                                          "item": f"{code}:{_version(page)}"})
    assert "成功 0 件" in r.text and "已被综治办退回" in r.text
    assert get_event(world, code)["state"] == "returned"
    r = client.post(f"/events/{code}/actions", data={"csrf": csrf, "action": "dispatch", "version": _version(page),
                                                     "target": "stability|司法所"}, follow_redirects=False)
    assert r.status_code == 303 and get_event(world, code)["department"] == "司法所"


def test_refusals_are_in_chinese_wrong_state_wrong_role_stale_intake(world, client):
    code = _dispatched(world, client)
    csrf = _log_in(client, "cmd")
    page = client.get(f"/events/{code}").text
    url = f"/events/{code}/actions"
    r = client.post(url, data={"csrf": csrf, "action": "accept", "version": _version(page)})
    assert r.status_code == 409 and "事件已分流交办，当前不能“受理”" in _alert(r)
    r = client.post(url, data={"csrf": csrf, "action": "start", "version": _version(page)})
    assert r.status_code == 403 and "综合指挥室不能“处置”，此操作由责任部门办理" in _alert(r)
    r = client.post(url, data={"csrf": csrf, "action": "supervise", "version": "1"})
    assert r.status_code == 409 and "该事件已被他人修改" in _alert(r)
    assert f'href="/events/{code}" class="reload">重新载入</a>' in r.text
    for r in (client.post(url, data={"csrf": csrf, "action": "accept", "version": _version(page)}),
              client.post(url, data={"csrf": csrf, "action": "start", "version": _version(page)})):
        assert not re.search(r"[A-Za-z]{3,}", _alert(r).replace(code, "")), _alert(r)
    # intake and the API: the same rules carry their Chinese for people (detail_zh)
    from helpers.events_world import G12, INSIDE

    for body, said in (({"category_code": "NOPE"}, "事项清单中没有事项“NOPE”"),
                       ({"category_code": "ZZ001", "description": "a\x07b"}, "描述含有控制字符"),
                       ({"category_code": "ZZ001", "reported_at": "2999-01-01T00:00:00+08:00"}, "上报时间")):
        r = client.post("/v1/events", json={"source": "app", "lon": INSIDE[G12][0], "lat": INSIDE[G12][1], **body})
        assert r.status_code == 422 and said in r.json().get("detail_zh", ""), (body, r.json())
    from gridgeo.errors import InvalidEvent
    from gridgeo.events.intake import prepare_intake
    from helpers.events_world import event as an_event

    with pytest.raises(InvalidEvent) as refused:  # past the layer's limit (the API's schema stops it before)
        prepare_intake(world, an_event(description="长" * 5000))
    assert refused.value.zh.startswith("描述不能超过") and "5000" in refused.value.zh


def test_grid_names_on_my_grid_and_my_tasks(world, client):
    code, name = _grid_name(world)
    event = _dispatched(world, client)
    take_action(world, event, "start", role="department", actor="dept")
    take_action(world, event, "resolve", role="department", actor="dept", note="已办结")
    _log_in(client, "gw")
    page = client.get("/grid").text
    for section in ("h-check", "h-open", "h-staff"):
        part = page[page.index(f'id="{section}"'):]
        part = part[:part.index("</section>")]
        assert f'<span title="网格编码 {code}">{name}</span>' in part, section
    assert f'href="/events/{event}?from=grid"' in page
    staff = page[page.index('id="h-staff"'):page.index('id="h-hh"')]
    assert not re.search(rf"<td>{code}</td>", staff)
    other = _dispatched(world, client)
    _log_in(client, "dept")
    tasks = client.get("/tasks").text
    assert f'<span title="网格编码 {code}">{name}</span>' in tasks and f"/events/{other}?from=tasks" in tasks


def test_the_event_map_asks_for_its_ground_and_the_ground_refuses_what_is_not_a_place(world, client):
    from helpers.events_world import G12

    event = _report(client)
    _log_in(client, "gw")
    page = client.get(f"/events/{event}").text
    bbox = re.search(r'data-ground="([^"]+)"', page).group(1)
    x0, y0, x1, y1 = map(float, bbox.split(","))
    grid = world.read("grids", where=schema.grids.c.code == G12).total_bounds
    assert (x0, y0) <= (grid[0] + 1e-6, grid[1] + 1e-6) and (x1, y1) >= (grid[2] - 1e-6, grid[3] - 1e-6)
    r = client.get("/maps/ground", params={"bbox": bbox})
    assert r.status_code == 200 and set(r.json()) == {"roads", "rivers"}  # the tiny township has none
    assert r.json()["roads"]["styles"][0]["label"] == "干线道路"  # the maps' own classes
    for bad in ("abc", "1,2,3", "0,0,5,5", "200,0,201,1", "nan,0,0,0", "x" * 5000, "10,10,9,9"):
        assert client.get("/maps/ground", params={"bbox": bad}).status_code == 422, bad[:20]
    client.cookies.clear()
    assert client.get("/maps/ground", params={"bbox": bbox}).status_code == 401
