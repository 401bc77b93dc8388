"""The planner's map editor and the staff before publishing, in the console.

One journey in the system's Chromium against one live server over the tiny township (two
villages, four grids, a draft re-planned from plan v1 and cut in blocks; staff P1-P4 on
东村's grids): on a phone, blocks picked with "连选" (no shift key) and a preview that fits
the screen; a move applied and shown on the map, the move list offering only the grids
next to the selection, the keyboard's way from the map to the forms, a refused move in
words, split, the plan page with the households changing grid and the renumbering
preview, merge, undo back to the start (the buttons off while the server works), the
staff list before the publish button (changes first, the posts kept folded), publishing
refused for stranded staff until the planner allows it, then a new draft made from the
console. Hostile requests to the editor's routes go through a TestClient on both databases.
"""

from __future__ import annotations

import datetime as dt

import pytest
import shapely
from fastapi.testclient import TestClient

from gridgeo import sessions
from gridgeo.auth import create_user
from gridgeo.console.plans import why_words
from gridgeo.io import import_files
from gridgeo.plan import lifecycle
from gridgeo.store import Store
from helpers.apps import app_for
from helpers.browser import chromium
from helpers.live_server import serve_in_thread
from helpers.tiny import D, V1, Y0, make_tiny

PASSWORD = "editor pass 1"
G1, G2, G3 = V1 + "001", V1 + "002", V1 + "003"


def _world(store: Store, folder) -> dict:
    """Plan v1 of the tiny township with a fourth staff post (赵六, head of 东村's grid 002),
    a draft ``edit`` re-planned from it (both villages kept, cut in blocks), a planner and a
    command-room user; returns the blocks of 东村's grid 001 chosen for the journey."""
    files = make_tiny(folder)
    staff = folder / "more" / "staff.csv"
    staff.parent.mkdir()
    staff.write_text(files["staff"].read_text(encoding="utf-8") + f"P4,赵六,13800000004,grid_head,{G2}\n",
                     encoding="utf-8")
    import_files(store, [files["gpkg"], staff], plan_version="v1", effective_from=dt.date(2024, 1, 1))
    row = lifecycle.save_draft(store, lifecycle.plan_from_store(store, band=(1, 10), seed=1), version="edit",
                               actor="test")
    for user, role in (("planner", "planner"), ("command", "command_room")):
        create_user(store, user, role=role, name=f"测试{user}", actor="test")
        sessions.set_password(store, user, PASSWORD, actor="test")
    _, _, blocks = lifecycle.plan_blocks(store, row["id"])
    mine = blocks[blocks["grid_code"] == G1]
    b = shapely.bounds(mine.geometry.to_numpy())
    cy = (b[:, 1] + b[:, 3]) / 2
    east = mine[b[:, 2] == b[:, 2].max()]
    west = mine[(b[:, 0] == b[:, 0].min()) & (cy > Y0 + 0.3 * D) & (cy < Y0 + 0.7 * D)]
    edge = int(east["block"].iloc[cy[b[:, 2] == b[:, 2].max()].argmin()])  # south-east: touches 002
    north = sorted(int(x) for x in mine["block"][cy > Y0 + D / 2] if int(x) != edge)
    near = dict(zip(blocks["block"].astype(int), lifecycle.neighbour_grids(blocks)))
    west = int(west["block"].iloc[0])
    assert G2 not in near[west]  # the far side of 001
    on_002 = sorted(int(x) for x in mine["block"] if G2 in near[int(x)] and int(x) not in (edge, west))
    return {"edge": edge, "west": west, "north": north, "near": near, "on_002": on_002[0]}


def _log_in(page, base) -> None:
    page.goto(base + "/")
    page.get_by_label("用户名").fill("planner")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("header nav")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan-editor")
    store = Store(f"sqlite:///{folder / 'editor.db'}")
    store.migrate()
    chosen = _world(store, folder)
    start = store.read("grids", plan=store.plan("edit")["id"]).set_index("code")
    with pytest.MonkeyPatch.context() as env:
        app = app_for(store, env, request_log="false")
        with serve_in_thread(app, "the console's server") as base:
            yield {"store": store, "base": base, "start": start, **chosen}
    store.close()


def test_editing_a_draft_on_the_map_then_publishing_with_its_staff(site):
    from playwright.sync_api import expect

    base, store = site["base"], site["store"]
    edge, west, north = site["edge"], site["west"], site["north"]
    off_machine, errors = [], []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")

        def route(r):
            if r.request.url.startswith(base + "/"):
                r.continue_()
            else:
                off_machine.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        block = lambda b: page.locator(f"#editor-map path[data-block='{b}']")  # noqa: E731
        width = lambda: page.evaluate("document.documentElement.scrollWidth")  # noqa: E731

        # On a phone: no shift key, "连选" adds and removes blocks; the preview fits the screen.
        phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN",
                                    has_touch=True)
        phone.route("**/*", route)
        page = phone.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(10_000)
        _log_in(page, base)
        page.goto(base + "/plans/edit/edit")
        block(edge).click()
        page.get_by_label("连选").check()
        block(north[0]).click()
        expect(page.locator("#selection")).to_contain_text(f"已选 2 个图斑（网格 {G1}）")
        block(north[0]).click()
        expect(page.locator("#selection")).to_contain_text(f"已选 1 个图斑（网格 {G1}）")
        page.locator("#move-to").select_option(G2)
        expect(page.locator("#edit-result")).to_contain_text("预览（尚未应用）")
        assert width() <= 360
        page.get_by_role("button", name="清除选取").click()
        expect(page.locator("#selection")).to_have_text("未选取图斑")
        page.goto(base + "/plans/edit")
        assert width() <= 360
        phone.close()

        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(10_000)
        _log_in(page, base)
        page.goto(base + "/plans/edit")
        page.get_by_role("link", name="在地图上编辑草案").click()
        expect(block(edge)).to_have_attribute("data-grid", G1)
        result = page.locator("#edit-result")
        # The keyboard: from the map, its zoom buttons (said in Chinese), then the forms; the
        # blocks are not in the tab order (the keyboard types their ids).
        expect(page.locator("#editor-map .leaflet-control-zoom-in")).to_have_attribute("title", "放大")
        page.locator("#editor-map").focus()
        for _ in range(3):
            page.keyboard.press("Tab")
        expect(page.get_by_label("连选")).to_be_focused()

        # A move: select on the map, choose the target, the preview comes by itself, then apply.
        block(west).click()
        block(edge).click()  # a plain click replaces the selection
        block(north[0]).click(modifiers=["Shift"])
        block(north[0]).click(modifiers=["Shift"])  # shift-click again: out of the selection
        expect(page.locator("#selection")).to_contain_text(f"已选 1 个图斑（网格 {G1}）")
        expect(page.locator("#move-blocks")).to_have_value(str(edge))
        page.locator("#move-to").select_option(G2)
        expect(result).to_contain_text("预览（尚未应用）")
        expect(result.locator("table.touched")).to_contain_text(G2)
        expect(result.locator("table.figures")).to_contain_text("本村（社区）")
        assert store.read("grids", plan=store.plan("edit")["id"]).shape[0] == 4  # a preview writes nothing
        page.get_by_role("button", name="应用移动").click()
        expect(result).to_contain_text("已应用")
        expect(block(edge)).to_have_attribute("data-grid", G2)  # shown on the map
        expect(page.locator(".history")).to_contain_text("移动图斑 1 个图斑")

        # The move list offers only the grids the selection shares an edge with: not 002
        # for a block on the far side of 001; 002 once a block on its edge joins.
        block(west).click()
        offered = lambda: set(page.locator("#move-to option").evaluate_all(  # noqa: E731
            "os => os.map(o => o.value).filter(Boolean)"))
        assert offered() == set(site["near"][west])
        block(site["on_002"]).click(modifiers=["Shift"])
        assert G2 in offered()
        # A refused move: with the far block, 002 would be in two pieces.
        page.locator("#move-to").select_option(G2)
        page.get_by_role("button", name="应用移动").click()
        expect(result.locator(".refusal")).to_contain_text(f"网格 {G2} 将被分成 2 块")
        expect(block(west)).to_have_attribute("data-grid", G1)

        # Split: the northern blocks typed (the keyboard's way); the grid comes from them.
        page.locator("#split-blocks").fill(",".join(map(str, north)))
        page.locator("#split-blocks").press("Tab")
        expect(page.locator("#split-grid")).to_have_value(G1)
        page.get_by_role("button", name="应用拆分").click()
        expect(result).to_contain_text(f"成为新网格 {G3}")
        expect(block(north[0])).to_have_attribute("data-grid", G3)
        # the plan page: households and addresses changing grid (none: the blocks moved hold
        # no address), the report's figures for people, and the renumbering preview: the
        # new northern grid would be first
        page.goto(base + "/plans/edit")
        assert len(lifecycle.diff(store, "edit")) == 0
        expect(page.locator(".stat", has_text="户将调整网格")).to_contain_text("0户将调整网格（0 处地址")
        expect(page.get_by_text("与现行方案相比，没有住户调整网格。")).to_be_visible()
        expect(page.locator("tr", has_text="工作量在区间内的网格比例")).to_contain_text("%")
        expect(page.locator("table.renumber tr", has_text="测试乡东村第3网格")).to_have_text(
            f"测试乡东村第3网格{G3}{G1}")
        page.go_back()
        expect(block(north[0])).to_have_attribute("data-grid", G3)

        # Merge 003 back into 001, then undo every edit.
        page.locator("#merge-grid").select_option(G1)
        page.locator("#merge-other").select_option(G3)
        page.get_by_role("button", name="应用合并").click()
        expect(result).to_contain_text(f"{G3} 并入 {G1}")
        expect(block(north[0])).to_have_attribute("data-grid", G1)
        # While the server works on an edit, the buttons are off: a second click on 撤销
        # cannot undo two steps. (The request is held until the buttons are seen off.)
        held = []
        page.route("**/edit/undo", lambda r: held.append(r))
        page.get_by_role("button", name="撤销上一步").click()
        expect(page.get_by_role("button", name="撤销上一步")).to_be_disabled()
        expect(page.get_by_role("button", name="应用移动")).to_be_disabled()
        while not held:
            page.wait_for_timeout(20)
        held[0].continue_()
        page.unroute("**/edit/undo")
        expect(result).to_contain_text("已撤销：合并网格")
        expect(page.get_by_role("button", name="撤销上一步")).to_be_enabled()
        for undone in ("拆分网格", "移动图斑"):
            page.get_by_role("button", name="撤销上一步").click()
            expect(result).to_contain_text(f"已撤销：{undone}")
        page.get_by_role("button", name="撤销上一步").click()
        expect(result.locator(".refusal")).to_contain_text("没有可撤销的编辑")
        expect(block(edge)).to_have_attribute("data-grid", G1)
        end = store.read("grids", plan=store.plan("edit")["id"]).set_index("code")
        assert sorted(end.index) == sorted(site["start"].index)
        assert all(shapely.equals(end.geometry[k], site["start"].geometry[k]) for k in end.index)

        # The staff before the publish button: everyone kept at the start, folded away.
        page.get_by_role("link", name="返回方案").click()
        expect(page.locator("table.staff-moves")).to_have_count(0)
        page.get_by_text(f"其余 {len(store.read('staff'))} 个岗位留在原网格").click()
        staff = page.locator("table.staff-kept")
        for name in ("张三", "李四", "王五", "赵六"):
            expect(staff).to_contain_text(name)
        expect(page.locator("ul.unstaffed")).to_contain_text("缺网格长")
        expect(page.locator(".stranded")).to_have_count(0)

        # Merge 东村's two grids: one head too many; publishing refuses until allowed.
        page.get_by_role("link", name="在地图上编辑草案").click()
        expect(block(edge)).to_have_attribute("data-grid", G1)
        page.locator("#merge-grid").select_option(G2)
        page.locator("#merge-other").select_option(G1)
        page.get_by_role("button", name="应用合并").click()
        expect(result).to_contain_text("已应用")
        page.get_by_role("link", name="返回方案").click()
        expect(page.locator(".stranded")).to_contain_text("张三（网格长，原网格 " + G1)
        page.get_by_role("button", name="发布方案").click()
        expect(page.locator("p.error")).to_contain_text("1 个人员岗位将没有网格：张三")
        assert store.plan("edit")["status"] == "draft"
        page.get_by_label("允许部分人员暂无网格").check()
        page.get_by_role("button", name="发布方案").click()
        expect(page.locator("[role=status]")).to_have_text("方案已发布")

        # A new draft from the plan now in force, with the planner's form on /plans; the
        # button is off once sent (a draft takes seconds: a second click made a second one).
        page.goto(base + "/plans")
        expect(page.locator("form.new-draft")).to_contain_text("从现行方案 edit 出发")
        page.get_by_label("下限").fill("1")
        page.get_by_label("上限").fill("10")
        page.get_by_label("名称（可选）").fill("东村调整")
        held = []
        page.route("**/plans", lambda r: held.append(r))
        page.get_by_role("button", name="生成草案").click()
        expect(page.get_by_role("button", name="正在生成草案…")).to_be_disabled()
        while not held:
            page.wait_for_timeout(20)
        held[0].continue_()
        page.unroute("**/plans")
        expect(page.locator("[role=status]")).to_contain_text("草案已生成")
        expect(page.get_by_role("link", name="在地图上编辑草案")).to_be_visible()
        context.close()
    assert store.plan("edit")["status"] == "published" and store.plan_in_force()["version"] == "edit"
    drafts = store.plans().query("status == 'draft'")
    assert drafts["name"].tolist() == ["东村调整"]
    assert off_machine == [] and errors == []


def test_the_editor_refuses_hostile_requests(store, tmp_path, monkeypatch):
    """Without CSRF, for a role that may not write, with ids that are not ids or too many,
    replayed, on an unknown or published plan: refused, and nothing written."""
    edge = _world(store, tmp_path)["edge"]
    app = app_for(store, monkeypatch)
    plan_id = store.plan("edit")["id"]
    before = store.read("grids", plan=plan_id)

    with TestClient(app, base_url="http://console.test", follow_redirects=False) as c:
        def as_user(user):
            token = sessions.log_in(store, user, PASSWORD, client="testclient")
            c.cookies.clear()
            c.cookies.set(sessions.SESSION_COOKIE, token, domain="console.test")
            return {"X-CSRF-Token": sessions.csrf_token(token), "HX-Request": "true"}

        h = as_user("command")
        assert c.get("/plans/edit/edit").status_code == 403  # readers see plans, only planners edit
        assert c.post("/plans", data={"low": "1", "high": "10"}, headers=h).status_code == 403
        assert "生成草案" not in c.get("/plans").text
        assert c.get("/plans/edit/layers").status_code == 200
        assert c.post("/plans/edit/edit/move", data={"blocks": str(edge), "to_grid": G2, "mode": "apply"},
                      headers=h).status_code == 403
        h = as_user("planner")
        assert c.post("/plans/edit/edit/move", data={"blocks": str(edge), "to_grid": G2}).status_code == 403  # no CSRF
        assert c.post("/plans/edit/edit/move", data={"blocks": str(edge), "to_grid": G2},
                      headers={**h, "Origin": "http://evil.example"}).status_code == 403
        for bad, words in (("abc", "应为数字"), ("1e309", "应为数字"), ("-4", "超出范围"), ("99999999999", "超出范围"),
                           (" ".join(["1"] * 20_001), "最多")):
            r = c.post("/plans/edit/edit/move", data={"blocks": bad, "to_grid": G2, "mode": "apply"}, headers=h)
            assert r.status_code == 422 and words in r.text, (bad, r.status_code)
        r = c.post("/plans/edit/edit/move", data={"blocks": "123456", "to_grid": G2, "mode": "apply"}, headers=h)
        assert r.status_code == 422 and "不在此草案中" in r.text
        r = c.post("/plans/edit/edit/merge", data={"grid": G1, "other": "331124201202001", "mode": "apply"}, headers=h)
        assert r.status_code == 422 and "不能跨越村（社区）界" in r.text
        assert c.post("/plans/edit/edit/rotate", data={}, headers=h).status_code == 404
        # a new draft: bad bands, a township that is not one, a band no village can meet
        plans_before = len(store.plans())
        for form, words in (({"low": "abc", "high": "10"}, "工作量区间应为两个数"),
                            ({"low": "20", "high": "10"}, "工作量区间应为两个数"),
                            ({"low": "1", "high": "1e999"}, "工作量区间应为两个数"),
                            ({"low": "1", "high": "10", "within": "1 or 1=1"}, "请选择一个乡镇"),
                            ({"low": "1", "high": "10", "within": "999999999"}, "没有村（社区）可划分"),
                            ({"low": "0.1", "high": "0.5", "name": "x" * 5000}, "东村（" + V1 + "）")):
            r = c.post("/plans", data=form, headers=h)
            assert r.status_code == 422 and words in r.text, (form, r.status_code, r.text[-800:])
        assert c.post("/plans", data={"low": "1", "high": "10"}).status_code == 403  # no CSRF
        assert len(store.plans()) == plans_before
        assert c.get("/plans/nothing/edit").status_code == 404
        assert c.get("/plans/v1/edit").status_code == 409  # published: no editing
        r = c.post("/plans/edit/edit/undo", data={}, headers=h)
        assert r.status_code == 422 and "没有可撤销的编辑" in r.text
        assert len(store.audit_log("plans", str(plan_id))) == 1  # only the draft: nothing written
        assert store.read("grids", plan=plan_id).sort_values("code")["households"].tolist() == \
            before.sort_values("code")["households"].tolist()
        # replayed: the same move applied twice is refused the second time
        move = {"blocks": str(edge), "to_grid": G2, "mode": "apply"}
        r = c.post("/plans/edit/edit/move", data=move, headers=h)
        assert r.status_code == 200 and r.headers.get("HX-Trigger-After-Swap") == "plan-changed", r.text
        r = c.post("/plans/edit/edit/move", data=move, headers=h)
        assert r.status_code == 422 and f"已在网格 {G2} 中" in r.text
        # without htmx (a plain form post) the whole page comes back, with the result
        plain = {"X-CSRF-Token": h["X-CSRF-Token"]}
        r = c.post("/plans/edit/edit/undo", data={}, headers=plain)
        assert r.status_code == 200 and "已撤销：移动图斑" in r.text and 'id="editor-map"' in r.text


@pytest.mark.parametrize(("why", "words"), [
    ("grid 331124201209001 holds 893, above the ceiling 500",
     "网格 331124201209001 工作量 893，高于上限 500"),
    ("grid 331124002002003 holds 1,047, above the ceiling 500; 331124002002004 holds 47, "
     "below the floor 300 (and 2 more)",
     "网格 331124002002003 工作量 1,047，高于上限 500；网格 331124002002004 工作量 47，"
     "低于下限 300（另有 2 个网格）"),
    ("no grid in force: a new village, or one the plan in force left out",
     "现行方案中没有网格（新设的村（社区），或现行方案未覆盖）"),
    ("its grids in force do not tile it as it is now (2,201 m² uncovered or outside, "
     "0 m² overlapping): its boundary changed",
     "现行网格与现在的村界不符（2,201 平方米未覆盖或超出村界，0 平方米重叠）：村界已调整"),
    ("grid(s) 331124201209001, 331124201209002 in pieces or wrapped around other land",
     "网格 331124201209001, 331124201209002 不连片或包围其他土地"),
    ("3 grid(s) asked for, 2 in force", "要求划为 3 个网格，现行 2 个"),
    ("a reason nobody wrote a rule for", "a reason nobody wrote a rule for"),
    (None, ""),
])
def test_why_a_village_was_divided_again_in_the_planners_words(why, words):
    """Re-planning's reasons (gridgeo.plan.replan.check_in_force, in English) on the plan page."""
    assert why_words(why) == words
