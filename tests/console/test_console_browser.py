"""The console in the system's Chromium (Playwright), against one live server on 127.0.0.1.

One module-scoped server (uvicorn in a thread, over the events township on SQLite)
and one browser serve every journey here. Each browser context records every request it
makes and aborts any that is not for the server: nothing may leave the machine. Events are
reported through the API, as another system would, and then handled in the console alone.
(The README's screenshots come from scripts/console_screenshots.py, on the replayed sample.)
"""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import select, update

from gridgeo import sessions
from gridgeo.auth import create_user
from gridgeo.store import Store, schema
from helpers.apps import app_for
from helpers.browser import chromium
from helpers.live_server import serve_in_thread

PASSWORD = "console pass 1"
CATEGORY, OTHER_CATEGORY = "ZZ001", "SC001"  # 综治工作 · 综治办; 市场监管



class Site:
    """The live server, its store, the users of every role and the events reported."""

    def __init__(self, store, base: str):
        self.store, self.base = store, base
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.events: dict[str, str] = {}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The events township (helpers.events_world: four grids, a catalogue over the four
    platforms) on SQLite, users of every role, and the server."""
    from helpers.events_world import G11, G21, INSIDE, load_world
    from helpers.tiny import make_tiny


    folder = tmp_path_factory.mktemp("console-browser")
    store = Store(f"sqlite:///{folder / 'console.db'}")
    store.migrate()
    load_world(store, make_tiny(folder))
    cat = schema.categories
    with store.engine.connect() as conn:
        department = conn.execute(select(cat.c.department).where(cat.c.code == CATEGORY)).scalar()
    users = {"command": dict(role="command_room"), "command2": dict(role="command_room"),
             "leader": dict(role="leadership"), "planner": dict(role="planner"),
             "office": dict(role="platform_office", platform="stability"),
             "dept": dict(role="department", department=department),
             "worker": dict(role="grid_worker", grids=[G11]),
             "worker_b": dict(role="grid_worker", grids=[G21])}
    for username, spec in users.items():
        create_user(store, username, name=f"测试{username}", actor="test", **spec)
        sessions.set_password(store, username, PASSWORD, actor="test")
    with pytest.MonkeyPatch.context() as env:
        app = app_for(store, env, request_log="false", public_intake_rate="0")
        with serve_in_thread(app, "the console's server") as base:
            s = Site(store, base)
            # Two events reported through the API by the public, one in each worker's grid.
            for key, grid, category in (("mine", G11, CATEGORY), ("other", G21, OTHER_CATEGORY)):
                lon, lat = INSIDE[grid]
                r = httpx.post(f"{s.base}/v1/events", json={
                    "source": "app", "category_code": category, "description": f"浏览器测试 {key}",
                    "lon": lon, "lat": lat, "reporter_name": "黄敏", "reporter_phone": "19944667827"})
                assert r.status_code == 201, r.text
                s.events[key] = r.json()["code"]
            yield s
    store.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def open_as(site, browser):
    """``open_as(user)``: the page of ``user``'s browser context (one per user for the whole
    module, logged in once), at the user's home page; every request recorded, any request
    not for the server aborted."""
    pages: dict[str, object] = {}
    contexts = []

    def _open(user: str, *, phone: bool = False, fresh: bool = False):
        if user in pages and not fresh:
            page = pages[user]
            page.goto(site.base + "/")
            return page
        size = {"width": 390, "height": 844} if phone else {"width": 1366, "height": 768}
        context = browser.new_context(viewport=size, is_mobile=phone, has_touch=phone, locale="zh-CN")
        contexts.append(context)

        def route(r):
            if r.request.url.startswith(site.base + "/"):
                r.continue_()
            else:
                site.requests.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("request", lambda r: site.requests.append(r.url))
        page.on("pageerror", lambda e: site.errors.append(f"{user}: {e}"))
        page.set_default_timeout(10_000)
        log_in(page, site, user)
        pages[user] = page
        return page

    yield _open
    for c in contexts:
        c.close()


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (20, 120, 60)).save(buf, "JPEG")
    return buf.getvalue()


def log_in(page, site, user, password=PASSWORD):
    page.goto(site.base + "/")
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("header nav")


def act(page, action: str, **fields):
    """Open the action's panel, fill its fields, confirm."""
    details = page.locator(f"details:has(form[data-action='{action}'])")
    if details.get_attribute("open") is None:  # a lone action's panel is open already
        details.locator("summary").click()
    form = page.locator(f"form[data-action='{action}']")
    for name, value in fields.items():
        field = form.locator(f"[name='{name}']")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    form.locator("button[type=submit]").click()


def expect_state(page, label: str):
    from playwright.sync_api import expect

    expect(page.locator("p.state-line .badge").first).to_have_text(label)


def test_an_event_from_report_to_closed_through_the_console_alone(site, open_as):
    """已上报 → 已受理 → 已分流交办 → 处置中 → 已办结 → 已核查 → 已结案, each step by the role
    the workflow names, each in its own browser; the history shows every step."""
    from playwright.sync_api import expect

    code = site.events["mine"]
    command = open_as("command")
    expect(command.locator(".queue.q-to_accept .count")).not_to_have_text("0")
    command.get_by_role("link", name="事件查询").click()
    command.get_by_label("编号 / 描述 / 地址").fill(code)
    command.get_by_role("button", name="查询").click()
    expect(command.locator("main > p").first).to_have_text("共 1 件")
    command.get_by_role("link", name=code).click()
    expect_state(command, "已上报")
    expect(command.locator(".facts")).to_contain_text("黄敏 19944667827")  # the command room calls back
    expect(command.locator("#map path")).to_have_count(2)  # the grid and the event's point
    expect(command.locator("#map .leaflet-control-zoom-in")).to_have_attribute("title", "放大")  # not "Zoom in"
    act(command, "accept")
    expect_state(command, "已受理")
    expect(command.locator("[role=status]")).to_have_text("已受理")
    act(command, "dispatch")  # to the routed department, preselected from the catalogue
    expect_state(command, "已分流交办")

    dept = open_as("dept")
    assert dept.url.endswith("/tasks")
    expect(dept.locator("table.events")).to_contain_text(code)
    dept.get_by_role("link", name=code).click()
    expect(dept.locator(".facts")).to_contain_text("黄* 199****7827")  # masked for a department
    act(dept, "start")
    expect_state(dept, "处置中")
    dept.get_by_label("照片类型").select_option("after")  # the result, shown with the feedback
    dept.get_by_label("照片（JPEG、PNG、WebP 或 HEIC", exact=False).set_input_files(
        {"name": "result.jpg", "mimeType": "image/jpeg", "buffer": _jpeg()})
    dept.get_by_role("button", name="上传照片").click()
    expect(dept.locator("[role=status]")).to_have_text("已上传处置后照片")
    expect(dept.locator("section:has(#h-photos) h3")).to_have_text("处置后")
    act(dept, "resolve", note="已上门调解，双方达成一致")
    expect_state(dept, "已办结")

    worker = open_as("worker", phone=True)
    assert worker.url.endswith("/grid")
    expect(worker.locator("section:has(#h-check)")).to_contain_text(code)
    worker.get_by_role("link", name=code).first.click()
    act(worker, "verify")
    expect_state(worker, "已核查")

    command.reload()
    act(command, "close", note="回访满意")
    expect_state(command, "已结案")
    history = command.locator("ol.timeline")
    for step in ("上报", "受理", "分流交办", "处置", "办结", "核查", "结案"):
        expect(history).to_contain_text(step)
    assert not [u for u in site.requests if not u.startswith(site.base + "/")]
    assert not site.errors


def test_each_role_sees_only_its_scope(site, open_as):
    from playwright.sync_api import expect

    mine, other = site.events["mine"], site.events["other"]
    worker = open_as("worker_b")
    # another grid's event: "not found", exactly as an unknown one
    response = worker.goto(f"{site.base}/events/{mine}")
    assert response.status == 404
    expect(worker.locator("main")).to_contain_text("未找到事件")
    assert worker.goto(f"{site.base}/events/{other}").status == 200
    assert worker.goto(f"{site.base}/command").status == 403
    dept = open_as("dept")
    assert dept.goto(f"{site.base}/events/{other}").status == 404  # another department's
    office = open_as("office")
    assert office.goto(f"{site.base}/events/{other}").status == 404  # another platform's
    assert office.goto(f"{site.base}/events/{mine}").status == 200
    leader = open_as("leader")
    assert leader.url.endswith("/dashboard")
    expect(leader.locator("main")).to_contain_text("按期结案率")
    expect(leader.locator("main")).to_contain_text("综治工作")
    # the maps open with the console's session (no token in the page)
    assert leader.request.get(f"{site.base}/maps/workload").status == 200
    assert leader.goto(f"{site.base}/events/{other}").status == 200
    planner = open_as("planner")
    assert planner.goto(f"{site.base}/events").status == 403  # the planner reads no events
    assert planner.request.get(f"{site.base}/maps/events").status == 403  # nor their map
    nav = planner.locator("header nav")
    expect(nav).not_to_contain_text("指挥室")
    assert not [u for u in site.requests if not u.startswith(site.base + "/")]
    assert not site.errors


def test_stale_version_csrf_and_expired_session(site, open_as):
    from playwright.sync_api import expect

    code = site.events["other"]
    first, second = open_as("command"), open_as("command2")
    for page in (first, second):
        page.goto(f"{site.base}/events/{code}")
        expect_state(page, "已上报")
    act(first, "accept")
    expect_state(first, "已受理")
    act(second, "accept")  # from a page showing version 1
    expect(second.locator("[role=alert]")).to_contain_text("该事件已被他人修改")
    expect_state(second, "已受理")  # and the fresh state, not an error page

    # a state-changing request without the CSRF token is refused, and does nothing
    r = second.request.post(f"{site.base}/events/{code}/actions",
                            form={"action": "dispatch", "version": "2"})
    assert r.status == 403
    assert "安全校验码" in r.text()
    second.reload()
    expect_state(second, "已受理")

    # a session past its idle time-out goes back to the log-in page
    s = schema.sessions
    with site.store.engine.begin() as conn:
        conn.execute(update(s).values(last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)))
    second.goto(f"{site.base}/command")
    assert "/login" in second.url
    expect(second.locator("[role=status]")).to_contain_text("会话已过期")
    log_in(second, site, "command2")
    assert second.url.endswith("/command")
    assert not [u for u in site.requests if not u.startswith(site.base + "/")]
    assert not site.errors


def test_an_events_actions_are_in_view_at_1366x768_without_scrolling(site, open_as):
    """The actions sat below the map: at 1366x768 they needed scrolling. Now beside the facts."""
    from playwright.sync_api import expect

    from helpers.events_world import G11, INSIDE

    lon, lat = INSIDE[G11]
    r = httpx.post(f"{site.base}/v1/events", json={"source": "app", "category_code": CATEGORY,
                                                   "description": "路灯不亮，" * 60, "lon": lon, "lat": lat,
                                                   "address": "东村 12 号", "reporter_name": "黄敏"})
    assert r.status_code == 201, r.text
    page = open_as("command", fresh=True)  # an earlier test expires the command room's session
    page.goto(f"{site.base}/events/{r.json()['code']}?from=command")
    summaries = page.locator("details.action summary")
    assert summaries.count() >= 2  # a reported event: accept, reject ...
    for i in range(summaries.count()):
        box = summaries.nth(i).bounding_box()
        assert box and box["y"] + box["height"] <= 768, (i, box)
    assert page.evaluate("window.scrollY") == 0
    # and the map is still on the page, below
    assert page.locator("#map").bounding_box()["y"] > summaries.first.bounding_box()["y"]

    # found by its address (overdue now), the list says the address; each time on one line
    with site.store.engine.begin() as conn:
        conn.execute(update(schema.events).where(schema.events.c.code == r.json()["code"])
                     .values(deadline_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)))
    page.goto(f"{site.base}/events")
    page.get_by_label("编号 / 描述 / 地址").fill("东村 12")
    page.get_by_role("button", name="查询").click()
    row = page.locator("table.events tbody tr", has_text=r.json()["code"])
    expect(row.locator(".addr")).to_have_text("地址：东村 12 号")
    lines = row.locator("td.when").evaluate_all(
        "tds => tds.map(td => { const r = document.createRange(); r.selectNodeContents(td);"
        " return new Set(Array.from(r.getClientRects(), b => Math.round(b.top))).size; })")
    assert lines == [1, 1], lines


def test_extension_asked_and_granted_a_return_redispatched_bulk_supervision_and_the_ground(site, open_as):
    """The walks' follow-ups in one journey: a department asks for an extension (hours and a
    reason) and the platform office grants it from its task list, the history saying both in
    Chinese; the event's map draws the roads and rivers under its grid; the department returns
    the event and the command room's dispatch form names who returned it and why, preselecting
    no department; the command room supervises two overdue events at once from the board."""
    import shapely
    from playwright.sync_api import expect

    from gridgeo.events.service import take_action
    from helpers.events_world import G11, INSIDE

    lon, lat = INSIDE[G11]
    with site.store.engine.begin() as conn:  # the ground: a county road and a river across the grid
        conn.execute(schema.roads.insert(), [
            {"code": "R-journey", "name": "东环路", "kind": "road", "rank": "县道",
             "geometry": shapely.LineString([(lon - 0.01, lat), (lon + 0.01, lat)])},
            {"code": "W-journey", "name": "东溪", "kind": "river", "rank": "河",
             "geometry": shapely.LineString([(lon, lat - 0.01), (lon, lat + 0.01)])}])
    codes = []
    for n in range(3):
        r = httpx.post(f"{site.base}/v1/events", json={"source": "app", "category_code": CATEGORY,
                                                       "description": f"延期旅程 {n}", "lon": lon, "lat": lat})
        assert r.status_code == 201, r.text
        codes.append(r.json()["code"])
        take_action(site.store, codes[-1], "accept", role="command_room", actor="command")
        take_action(site.store, codes[-1], "dispatch", role="command_room", actor="command")
    code = codes[0]

    dept = open_as("dept", fresh=True)
    dept.goto(f"{site.base}/events/{code}?from=tasks")
    expect(dept.locator("#map")).to_have_attribute("data-ground-lines", "2")  # the road and the river
    expect(dept.locator("#map .leaflet-control-layers-toggle")).to_have_attribute("title", "道路与河流图层")
    act(dept, "ask_extension", hours="24", note="等待鉴定结果")
    expect(dept.locator("[role=status]")).to_have_text("已申请延期")
    expect(dept.locator("#extension-asked")).to_contain_text("延期申请待审批：1天")
    expect_state(dept, "已分流交办")

    office = open_as("office", fresh=True)
    asked = office.locator("section:has(#h-asked)")
    expect(asked).to_contain_text(code)
    asked.get_by_role("link", name=code).click()
    expect(office.locator("#extension-asked")).to_contain_text("等待鉴定结果")
    act(office, "grant_extension")
    expect(office.locator("[role=status]")).to_have_text("已批准延期")
    history = office.locator("ol.timeline")
    expect(history).to_contain_text("申请延期 1天")
    expect(history).to_contain_text("批准延期")
    expect(office.locator(".facts")).to_contain_text("已延期 1天")

    dept.reload()
    act(dept, "return", note="应由司法所办理")
    expect_state(dept, "已退回")
    command = open_as("command", fresh=True)
    command.goto(f"{site.base}/events/{code}")
    act_panel = command.locator("details:has(form[data-action='dispatch'])")
    act_panel.locator("summary").click()
    expect(command.locator("#returned-by")).to_contain_text("应由司法所办理")
    assert command.locator("form[data-action='dispatch'] select[name=target]").input_value() == ""

    with site.store.engine.begin() as conn:  # the other two: overdue, on the board
        conn.execute(update(schema.events).where(schema.events.c.code.in_(codes[1:]))
                     .values(deadline_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)))
    command.goto(f"{site.base}/supervision")
    for c in codes[1:]:
        command.get_by_label(f"选择 {c}").check()
    command.get_by_label("督办意见（可不填）").fill("请今日办结")
    command.get_by_role("button", name="批量督办所选事件").click()
    expect(command.locator("[role=status]")).to_contain_text("批量督办：成功 2 件")
    assert command.url.endswith("/supervision")
    assert not [u for u in site.requests if not u.startswith(site.base + "/")]
    assert not site.errors
