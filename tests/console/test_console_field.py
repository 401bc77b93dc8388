"""The phone app (/field): idempotent actions in the core on both databases; the field
endpoints against hostile requests (TestClient); and the journey in the system's Chromium with
a phone's viewport and position: a report with a photo, then without signal two reports and a
check, kept on the phone and sent once each when the signal returns."""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from gridgeo import sessions
from gridgeo.auth import create_user
from gridgeo.errors import IdempotencyKeyReused, StaleVersion
from gridgeo.events.intake import report_event
from gridgeo.events.service import take_action
from gridgeo.store import Store, schema
from helpers.apps import app_for
from helpers.browser import chromium
from helpers.events_world import G11, G21, INSIDE, event, load_world
from helpers.live_server import serve_in_thread
from helpers.tiny import make_tiny

PASSWORD = "field pass 1"
TO_RESOLVED = (("accept", "command_room", None), ("dispatch", "command_room", None),
               ("start", "department", None), ("resolve", "department", "已清理完毕"))


def _jpeg(colour=(200, 60, 0), size=(640, 480)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


def _resolved(store, grid=G11) -> str:
    """An event in ``grid`` taken to 已办结 (waiting for its grid worker's check)."""
    lon, lat = INSIDE[grid]
    code = report_event(store, event(lon=lon, lat=lat, description="待核查")).event["code"]
    for action, role, note in TO_RESOLVED:
        take_action(store, code, action, role=role, actor="test", note=note)
    return code


def _actions(store, code: str, action: str) -> int:
    ea, ev = schema.event_actions, schema.events
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ea.join(ev, ea.c.event_id == ev.c.id))
                            .where(ev.c.code == code, ea.c.action == action)).scalar()


def test_an_action_with_an_idempotency_key_is_taken_once(store, tmp_path):
    """The core, on SQLite and PostgreSQL: a retried action is not taken twice, and its key
    with another request is refused."""
    load_world(store, make_tiny(tmp_path))
    code = _resolved(store)
    key = f"field-{uuid.uuid4()}"
    first = take_action(store, code, "verify", role="grid_worker", actor="w", version=5, idempotency_key=key)
    again = take_action(store, code, "verify", role="grid_worker", actor="w", version=5, idempotency_key=key)
    assert first["state"] == again["state"] == "verified" and again["version"] == first["version"] == 6
    assert _actions(store, code, "verify") == 1
    with pytest.raises(IdempotencyKeyReused):
        take_action(store, code, "verify", role="grid_worker", actor="w", version=5, note="另一请求",
                    idempotency_key=key)
    with pytest.raises(StaleVersion):  # without its key, the same request is a stale one
        take_action(store, code, "verify", role="grid_worker", actor="w", version=5)


# -- the endpoints, without a browser ---------------------------------------------------------


@pytest.fixture(scope="module")
def field_site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console-field")
    store = Store(f"sqlite:///{folder / 'field.db'}")
    store.migrate()
    load_world(store, make_tiny(folder))
    for user, role, scope in (("w11", "grid_worker", {"grids": [G11]}), ("w21", "grid_worker", {"grids": [G21]}),
                              ("cmd", "command_room", {})):
        create_user(store, user, role=role, name=user, actor="test", **scope)
        sessions.set_password(store, user, PASSWORD, actor="test")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRIDGEO_MAX_PHOTO_BYTES", "300000")
        env.setenv("GRIDGEO_MAX_TRACK_BYTES", "200000")
        app = app_for(store, env, request_log="false")
        with TestClient(app, base_url="http://console.test") as client:
            yield store, client
    store.close()


def _log_in(client, username) -> str:
    client.cookies.clear()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303
    return client.get("/field/data").json()["csrf"] if username.startswith("w") else token


def _events_by(store, actor: str) -> int:
    ea = schema.event_actions
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).where(ea.c.action == "report", ea.c.actor == actor)).scalar()


def test_the_field_endpoints_refuse_hostile_requests(field_site):
    store, client = field_site
    task = _resolved(store)
    csrf = _log_in(client, "w11")
    data = client.get("/field/data").json()
    assert {"code": "ZZ001", "name": "邻里纠纷"} in data["categories"]
    assert task in [t["code"] for t in data["tasks"]] and data["note_required"] == ["rework"]
    assert data["username"] == "w11" and data["csrf"] == csrf
    lon, lat = INSIDE[G11]
    report = {"event": '{"category_code": "ZZ001", "lon": %s, "lat": %s, "address": "测试路1号"}' % (lon, lat)}
    photo = {"photos": ("scene.jpg", _jpeg(), "image/jpeg")}
    key = {"Idempotency-Key": f"field-{uuid.uuid4()}"}
    before = _events_by(store, "w11")

    # no CSRF token, or another origin: refused, nothing stored
    assert client.post("/field/events", data=report, files=photo, headers=key).status_code == 403
    r = client.post("/field/events", data=report, files=photo,
                    headers={**key, "X-CSRF-Token": csrf, "Origin": "http://evil.test"})
    assert r.status_code == 403
    ok = {**key, "X-CSRF-Token": csrf}
    # no key, not multipart, malformed or extra fields, a disguised non-image, an oversized photo
    assert client.post("/field/events", data=report, headers={"X-CSRF-Token": csrf}).status_code == 422
    r = client.post("/field/events", json={"event": {}}, headers=ok)
    assert r.status_code == 422 and "multipart" in r.json()["detail"]
    for bad in ("{", '{"category_code": "ZZ001", "source": "app"}', '{"category_code": ""}', '[1]'):
        r = client.post("/field/events", data={"event": bad}, files=photo, headers=ok)
        assert r.status_code == 422 and "event" in r.json()["detail"], (bad, r.text)
    r = client.post("/field/events", data=report, files={"photos": ("x.jpg", b"#!/bin/sh\nrm -rf /\n" * 50, "image/jpeg")},
                    headers=ok)
    assert r.status_code == 415
    big = client.post("/field/events", data=report, files={"photos": ("big.jpg", b"\xff" * 400_000, "image/jpeg")},
                      headers={**ok, "Idempotency-Key": f"field-{uuid.uuid4()}"})
    assert big.status_code == 413
    assert _events_by(store, "w11") == before

    # sent, then sent again with the same key (the answer was lost): one event, one photo
    first = client.post("/field/events", data=report, files=photo, headers=ok)
    assert first.status_code == 201, first.text
    again = client.post("/field/events", data=report, files=photo, headers=ok)
    assert again.status_code == 201 and again.json()["code"] == first.json()["code"] and again.json()["replayed"]
    assert first.json()["grid_code"] == G11 and first.json()["photos"] == 1 == again.json()["photos"]
    assert _events_by(store, "w11") == before + 1
    # the key with another report: refused
    other = {"event": report["event"].replace("测试路1号", "测试路2号")}
    assert client.post("/field/events", data=other, headers=ok).status_code == 422

    # actions: rework needs a note; verify with an "after" photo, sent twice, done once
    act_key = {"Idempotency-Key": f"field-{uuid.uuid4()}", "X-CSRF-Token": csrf}
    r = client.post(f"/field/events/{task}/actions", data={"action": "rework", "version": "5"}, headers=act_key)
    assert r.status_code == 422 and "note" in r.json()["detail"]
    r = client.post(f"/field/events/{task}/actions", data={"action": "close", "version": "5"},
                    headers={**act_key, "Idempotency-Key": f"field-{uuid.uuid4()}"})
    assert r.status_code == 422 and "verify or rework" in r.json()["detail"]  # not the phone app's
    verify = {"action": "verify", "version": "5"}
    act_key["Idempotency-Key"] = f"field-{uuid.uuid4()}"
    for _ in range(2):
        r = client.post(f"/field/events/{task}/actions", data=verify, files={"photos": ("after.jpg", _jpeg((0, 90, 0)), "image/jpeg")},
                        headers=act_key)
        assert r.status_code == 200 and r.json()["state"] == "verified", r.text
    assert _actions(store, task, "verify") == 1
    photos = client.get(f"/events/{task}")
    assert "处置后" in photos.text

    # another grid's worker: the event is unknown; another role: not the phone app's
    csrf21 = _log_in(client, "w21")
    other_task = _resolved(store)
    r = client.post(f"/field/events/{other_task}/actions", data=verify,
                    headers={"Idempotency-Key": f"field-{uuid.uuid4()}", "X-CSRF-Token": csrf21})
    assert r.status_code == 404
    assert _actions(store, other_task, "verify") == 0
    csrf_cmd = _log_in(client, "cmd")
    assert client.get("/field").status_code == 403 and client.get("/field/data").status_code == 403
    r = client.post("/field/events", data=report, headers={"Idempotency-Key": "k", "X-CSRF-Token": csrf_cmd})
    assert r.status_code == 403
    # logged out: the page goes to the log-in, the posts do nothing
    client.cookies.clear()
    assert client.get("/field", follow_redirects=False).status_code == 303
    assert client.post("/field/events", data=report, headers=ok, follow_redirects=False).status_code == 303
    # the installable parts
    manifest = client.get("/field/manifest.webmanifest").json()
    assert manifest["start_url"] == "/field" and {i["sizes"] for i in manifest["icons"]} == {"192x192", "512x512"}
    for icon in manifest["icons"]:
        png = Image.open(io.BytesIO(client.get(icon["src"]).content))
        assert f"{png.width}x{png.height}" == icon["sizes"]
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")


def _count(store, table, **where) -> int:
    t = getattr(schema, table)
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t).where(
            *[t.c[k] == v for k, v in where.items()])).scalar()


def test_the_field_patrols_and_checkins_refuse_hostile_requests(field_site):
    store, client = field_site
    csrf = _log_in(client, "w11")
    lon, lat = INSIDE[G11]
    ms = 1_793_667_600_000  # 2026-11-03 09:00 +08:00
    track = {"crs": "wgs84", "points": [[lon + 0.0001 * i, lat, ms + 2000 * i] for i in range(30)]}
    key = {"Idempotency-Key": f"field-{uuid.uuid4()}"}
    ok = {**key, "X-CSRF-Token": csrf}
    before = _count(store, "patrols", username="w11")
    assert client.post("/field/patrols", json=track, headers=key).status_code == 403  # no CSRF token
    assert client.post("/field/patrols", json=track, headers={**ok, "Origin": "http://evil.test"}).status_code == 403
    assert client.post("/field/patrols", json=track, headers={"X-CSRF-Token": csrf}).status_code == 422  # no key
    assert client.post("/field/patrols", data={"points": "1"}, headers=ok).status_code == 422  # a form
    for bad in (b"{", b"[]", b'{"points": []}', b'{"points": [[1, 2]]}', b'{"points": [["a", 28, 1], [1, 2, 3]]}',
                b'{"crs": {"x": 1}, "points": [[119, 28, 1], [119, 28, 2]]}', b"\xff\xfe"):
        r = client.post("/field/patrols", content=bad, headers={**ok, "Content-Type": "application/json"})
        assert r.status_code == 422, (bad, r.text)
    huge = b'{"points": [' + b"[119.4, 28.4, 1]," * 20_000 + b"[119.4, 28.4, 2]]}"
    r = client.post("/field/patrols", content=huge, headers={**ok, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert _count(store, "patrols", username="w11") == before
    # sent, and sent again (the answer was lost): one patrol; the key with another track: refused
    first = client.post("/field/patrols", json=track, headers=ok)
    assert first.status_code == 201, first.text
    again = client.post("/field/patrols", json=track, headers=ok)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"] and again.json()["replayed"]
    assert first.json()["points"] == 30 and 250 < first.json()["distance_m"] < 300
    assert client.post("/field/patrols", json={**track, "points": track["points"][:-1]}, headers=ok).status_code == 422
    assert _count(store, "patrols", username="w11") == before + 1
    # check-ins: the time the phone made it; sent twice, kept once
    at = "2026-11-03T10:00:00.123+08:00"
    mark = {"lon": lon, "lat": lat, "at": at}
    r1 = client.post("/field/checkins", json=mark, headers={**ok, "Idempotency-Key": "c1"})
    r2 = client.post("/field/checkins", json=mark, headers={**ok, "Idempotency-Key": "c1"})
    assert r1.status_code == r2.status_code == 201 and r1.json()["verified"] and r2.json()["replayed"]
    assert r1.json()["id"] == r2.json()["id"] and _count(store, "checkins", username="w11") == 1
    r3 = client.post("/field/checkins", json={**mark, "lon": lon + 0.0001}, headers={**ok, "Idempotency-Key": "c4"})
    assert r3.status_code == 201 and r3.json()["id"] != r1.json()["id"] and not r3.json()["replayed"]
    assert _count(store, "checkins", username="w11") == 2
    for bad in ({"lon": lon, "lat": lat}, {"lon": "x", "lat": lat, "at": at}, {**mark, "grid_code": G21},
                {"lon": 999, "lat": lat, "at": at}, {**mark, "at": "2026-11-03T10:00:00"}):
        r = client.post("/field/checkins", json=bad, headers={**ok, "Idempotency-Key": "c2"})
        assert r.status_code == 422, (bad, r.text)
    assert client.post("/field/checkins", json=mark, headers={"Idempotency-Key": "c3"}).status_code == 403
    # another role: not the phone app's
    csrf_cmd = _log_in(client, "cmd")
    assert client.post("/field/patrols", json=track, headers={**key, "X-CSRF-Token": csrf_cmd}).status_code == 403
    assert client.post("/field/checkins", json=mark, headers={**key, "X-CSRF-Token": csrf_cmd}).status_code == 403
    client.cookies.clear()
    assert client.post("/field/patrols", json=track, headers=ok, follow_redirects=False).status_code == 303


# -- the journey in a browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The events township on SQLite, a grid worker of G11, the server on 127.0.0.1."""

    folder = tmp_path_factory.mktemp("console-field-live")
    store = Store(f"sqlite:///{folder / 'live.db'}")
    store.migrate()
    load_world(store, make_tiny(folder))
    create_user(store, "walker", role="grid_worker", name="王网格", actor="test", grids=[G11])
    sessions.set_password(store, "walker", PASSWORD, actor="test")
    with pytest.MonkeyPatch.context() as env:
        # the default photo limit again (field_site, earlier in the module, lowers it)
        app = app_for(store, env, request_log="false", public_intake_rate="0", max_photo_bytes="15000000")
        with serve_in_thread(app, "the server") as base:
            yield store, base
    store.close()


def test_reports_and_checks_made_without_signal_are_sent_once_when_it_returns(live, tmp_path):
    from playwright.sync_api import expect

    store, base = live
    task = _resolved(store)
    lon, lat = INSIDE[G11]
    photo = tmp_path / "scene.jpg"
    photo.write_bytes(_jpeg())
    outside: list[str] = []
    errors: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                      locale="zh-CN", geolocation={"longitude": lon, "latitude": lat, "accuracy": 8})
        context.grant_permissions(["geolocation"], origin=base)
        context.on("request", lambda r: None if r.url.startswith(base + "/") else outside.append(r.url))
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(10_000)
        page.goto(base + "/field")
        page.get_by_label("用户名").fill("walker")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url("**/field")  # back where the worker was going, after the log-in
        # the service worker controls the page (clients.claim) once it is active
        controller = page.evaluate("""() => navigator.serviceWorker.ready.then(() => navigator.serviceWorker.controller
            || new Promise((ok) => navigator.serviceWorker.addEventListener('controllerchange', ok)))
            .then(() => navigator.serviceWorker.controller.scriptURL)""")
        assert controller == base + "/sw.js"
        expect(page.locator("#pos")).to_contain_text("已定位")
        expect(page.locator("#tasks")).to_contain_text(task)

        def report(search: str, address: str, with_photo: bool = False):
            page.get_by_label("事项类别（输入名称或编码搜索）").fill(search)
            expect(page.locator("#category option")).to_have_count(1)
            page.get_by_label("地址").fill(address)
            page.get_by_label("情况描述").fill(f"现场：{address}")
            if with_photo:
                page.get_by_label("现场照片（拍照）").set_input_files(str(photo))
            page.get_by_role("button", name="上报", exact=True).click()

        # 1. with signal: a report with a photo, sent at once
        report("邻里", "幸福路1号", with_photo=True)
        expect(page.locator("#sent")).to_contain_text("幸福路1号")
        expect(page.locator("#outbox-count")).to_have_text("0 条")

        # 2. without signal: the page still opens (the service worker's shell), two reports and
        #    a check are kept on the phone, listed as waiting
        context.set_offline(True)
        page.reload()
        expect(page.locator("#net")).to_have_text("离线")
        expect(page.locator("#tasks")).to_contain_text(task)
        report("ZZ001", "幸福路2号")
        report("ZZ001", "幸福路3号")
        item = page.locator(f"li.task[data-code='{task}']")
        item.get_by_label("处置后照片").set_input_files(str(photo))
        item.get_by_role("button", name="核查通过").click()
        expect(page.locator("#outbox-count")).to_have_text("3 条")
        expect(page.locator("#outbox")).to_contain_text("等待发送")
        expect(page.locator("#outbox")).to_contain_text(f"核查通过：{task}")
        if os.environ.get("GRIDGEO_SCREENSHOTS"):  # the README's picture: GRIDGEO_SCREENSHOTS=docs/img
            page.screenshot(path=str(Path(os.environ["GRIDGEO_SCREENSHOTS"]) / "field-phone.png"), full_page=True)
        page.wait_for_timeout(500)  # a retry while offline sends nothing
        assert _events_by(store, "王网格") == 1 and _actions(store, task, "verify") == 0

        # 3. the signal returns: sent, once each
        context.set_offline(False)
        expect(page.locator("#outbox-count")).to_have_text("0 条", timeout=15_000)
        expect(page.locator("#net")).to_have_text("在线")
        expect(page.locator("#sent")).to_contain_text("已核查")
        context.close()

    ea, ev, ph = schema.event_actions, schema.events, schema.photos
    with store.engine.connect() as conn:
        mine = conn.execute(select(ev.c.code, ev.c.address, ev.c.grid_code, ev.c.source, ev.c.located_by)
                            .join(ea, ea.c.event_id == ev.c.id)
                            .where(ea.c.action == "report", ea.c.actor == "王网格")).all()
        photos = dict(conn.execute(select(ev.c.address, func.count(ph.c.id)).join(ph, ph.c.event_id == ev.c.id)
                                   .group_by(ev.c.address)).all())
    assert sorted(r.address for r in mine) == ["幸福路1号", "幸福路2号", "幸福路3号"]
    assert {(r.grid_code, r.source, r.located_by) for r in mine} == {(G11, "patrol", "coordinates")}
    assert photos.get("幸福路1号") == 1 and "幸福路2号" not in photos
    assert _actions(store, task, "verify") == 1
    assert not outside and not errors


def test_a_patrol_recorded_on_the_phone_survives_a_reload_and_no_signal_and_is_kept_once(live):
    """开始巡查 with the phone's position moving along a street (emulated geolocation), a
    reload half-way, 结束巡查 without signal, the signal back: one patrol on the server, as
    long as the walk; and a check-in (签到)."""
    from playwright.sync_api import expect

    from gridgeo.patrols.tracks import segment_m

    store, base = live
    create_user(store, "patroller", role="grid_worker", name="巡查员", actor="test", grids=[G11])
    sessions.set_password(store, "patroller", PASSWORD, actor="test")
    lon0, lat0 = INSIDE[G11]
    lat0 -= 0.001
    path = [(lon0 - 0.0012 + 0.0001 * i, lat0) for i in range(25)]  # ~10 m a step, eastwards, 235 m
    errors: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                      locale="zh-CN", geolocation={"longitude": path[0][0], "latitude": path[0][1],
                                                                   "accuracy": 5})
        context.grant_permissions(["geolocation"], origin=base)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(10_000)
        page.goto(base + "/field")
        page.get_by_label("用户名").fill("patroller")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url("**/field")
        page.evaluate("""() => navigator.serviceWorker.ready.then(() => navigator.serviceWorker.controller
            || new Promise((ok) => navigator.serviceWorker.addEventListener('controllerchange', ok)))""")
        page.get_by_role("button", name="开始巡查").click()
        expect(page.locator("#patrol-state")).to_have_text("巡查中")
        expect(page.locator("#patrol-points")).to_have_text("1")

        def walk(points, first_count):
            for i, (x, y) in enumerate(points):
                page.wait_for_timeout(450)  # ~22 m/s: well under the speed a GPS jump is taken for
                context.set_geolocation({"longitude": x, "latitude": y, "accuracy": 5})
                expect(page.locator("#patrol-points")).to_have_text(str(first_count + i + 1))

        walk(path[1:12], 1)
        shown = page.locator("#patrol-km").inner_text()
        page.reload()  # the points are in IndexedDB: the figures and the recording go on
        expect(page.locator("#patrol-state")).to_have_text("巡查中")
        expect(page.locator("#patrol-points")).to_have_text("12")
        assert page.locator("#patrol-km").inner_text() == shown
        walk(path[12:20], 12)
        context.set_offline(True)
        walk(path[20:], 20)
        assert "米" in page.locator("#patrol-km").inner_text() and "秒" in page.locator("#patrol-time").inner_text()
        page.get_by_role("button", name="结束巡查").click()
        expect(page.locator("#patrol-state")).to_have_text("未开始")
        expect(page.locator("#outbox-count")).to_have_text("1 条")
        expect(page.locator("#outbox")).to_contain_text("巡查：")
        page.wait_for_timeout(500)
        assert _count(store, "patrols", username="patroller") == 0
        context.set_offline(False)
        expect(page.locator("#outbox-count")).to_have_text("0 条", timeout=15_000)
        expect(page.locator("#sent")).to_contain_text("巡查已记录")
        # a check-in at the last position, inside the grid
        page.get_by_role("button", name="签到").click()
        expect(page.locator("#sent")).to_contain_text("签到有效", timeout=15_000)
        page.reload()  # the recording is over: it does not start again
        expect(page.locator("#patrol-state")).to_have_text("未开始")
        context.close()
    assert not errors
    pt = schema.patrols
    with store.engine.connect() as conn:
        rows = conn.execute(select(pt.c.points, pt.c.distance_m, pt.c.cleaning).where(pt.c.username == "patroller")).all()
    assert len(rows) == 1, rows
    walked = segment_m(path[0][0], path[0][1], path[-1][0], path[-1][1])
    assert rows[0].points == len(path) and rows[0].distance_m == pytest.approx(walked, rel=1e-3)
    assert rows[0].cleaning["dropped"] == 0
    assert _count(store, "checkins", username="patroller", verified=True) == 1


def test_photos_are_downscaled_on_the_phone_before_they_are_queued(live, tmp_path):
    """A phone-sized photo (4000 × 3000, several MB) is queued at most 2048 px on its long side,
    as a JPEG of a fraction of the size, and reaches the server so."""
    import numpy as np
    from playwright.sync_api import expect

    store, base = live
    create_user(store, "photographer", role="grid_worker", name="拍照员", actor="test", grids=[G11])
    sessions.set_password(store, "photographer", PASSWORD, actor="test")
    rng = np.random.default_rng(16)
    yy, xx = np.mgrid[0:3000, 0:4000]
    pixels = np.stack([xx * 255 // 4000, yy * 255 // 3000, (xx + yy) % 256], axis=-1)
    pixels = np.clip(pixels + rng.integers(-40, 40, pixels.shape), 0, 255).astype(np.uint8)
    photo = tmp_path / "big.jpg"
    Image.fromarray(pixels).save(photo, "JPEG", quality=95)
    original = photo.stat().st_size
    assert original > 3_000_000
    lon, lat = INSIDE[G11]
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                      locale="zh-CN", geolocation={"longitude": lon, "latitude": lat, "accuracy": 8})
        context.grant_permissions(["geolocation"], origin=base)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(base + "/field")
        page.get_by_label("用户名").fill("photographer")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url("**/field")
        expect(page.locator("#pos")).to_contain_text("已定位")
        context.set_offline(True)
        page.get_by_label("事项类别（输入名称或编码搜索）").fill("ZZ001")
        page.get_by_label("地址").fill("大照片路1号")
        page.get_by_label("现场照片（拍照）").set_input_files(str(photo))
        page.get_by_role("button", name="上报", exact=True).click()
        expect(page.locator("#outbox-count")).to_have_text("1 条")
        queued = page.evaluate("""() => new Promise((ok, fail) => {
            const req = indexedDB.open('gridgeo-field');
            req.onsuccess = () => {
              const get = req.result.transaction('outbox').objectStore('outbox').getAll();
              get.onsuccess = async () => {
                const f = get.result[0].photos[0], bmp = await createImageBitmap(f);
                ok({size: f.size, type: f.type, width: bmp.width, height: bmp.height, name: f.name});
              };
              get.onerror = () => fail(get.error);
            };
          })""")
        assert (queued["width"], queued["height"]) == (2048, 1536) and queued["type"] == "image/jpeg"
        assert queued["size"] < original / 3 and queued["name"] == "big.jpg"
        context.set_offline(False)
        expect(page.locator("#outbox-count")).to_have_text("0 条", timeout=30_000)  # a photo of 1-2 MB to send
        context.close()
    ev, ph = schema.events, schema.photos
    with store.engine.connect() as conn:
        n = conn.execute(select(func.count(ph.c.id)).join(ev, ph.c.event_id == ev.c.id)
                         .where(ev.c.address == "大照片路1号")).scalar()
    assert n == 1


def test_the_service_worker_sends_the_queue_by_background_sync_with_the_page_closed(live):
    """A report queued without signal, then the page left (no /field page open): the browser's
    sync event (dispatched as the browser would when the signal returns) wakes the service
    worker, which sends it once, with the page's own sender."""
    from playwright.sync_api import expect

    store, base = live
    create_user(store, "syncer", role="grid_worker", name="后台同步员", actor="test", grids=[G11])
    sessions.set_password(store, "syncer", PASSWORD, actor="test")
    lon, lat = INSIDE[G11]
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                      locale="zh-CN", geolocation={"longitude": lon, "latitude": lat, "accuracy": 8})
        context.grant_permissions(["geolocation", "background-sync"], origin=base)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(base + "/field")
        page.get_by_label("用户名").fill("syncer")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url("**/field")
        page.evaluate("""() => navigator.serviceWorker.ready.then(() => navigator.serviceWorker.controller
            || new Promise((ok) => navigator.serviceWorker.addEventListener('controllerchange', ok)))""")
        expect(page.locator("#pos")).to_contain_text("已定位")
        cdp = context.new_cdp_session(page)
        registrations: list[dict] = []
        cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
        cdp.send("ServiceWorker.enable")
        context.set_offline(True)
        page.get_by_label("事项类别（输入名称或编码搜索）").fill("ZZ001")
        page.get_by_label("地址").fill("后台同步路1号")
        page.get_by_role("button", name="上报", exact=True).click()
        expect(page.locator("#outbox-count")).to_have_text("1 条")
        # The page asks for the sync once the report is queued, through a promise of its own:
        # wait for the tag rather than read it at once (a fresh clone's run once read []).
        # (wait_for_function would not await the promise getTags gives)
        deadline, tags = time.monotonic() + 10, []
        while "gridgeo-outbox" not in tags and time.monotonic() < deadline:
            tags = page.evaluate("() => navigator.serviceWorker.ready.then((r) => r.sync.getTags())")
            page.wait_for_timeout(100)
        assert "gridgeo-outbox" in tags
        page.goto("about:blank")  # the page is closed: nothing of field.js runs any more
        assert _events_by(store, "后台同步员") == 0
        context.set_offline(False)
        reg = next(r for r in registrations if r["scopeURL"].startswith(base + "/field"))
        cdp.send("ServiceWorker.dispatchSyncEvent", {"origin": base, "registrationId": reg["registrationId"],
                                                     "tag": "gridgeo-outbox", "lastChance": False})
        for _ in range(60):
            if _events_by(store, "后台同步员"):
                break
            page.wait_for_timeout(250)
        assert _events_by(store, "后台同步员") == 1
        page.goto(base + "/field")  # the phone shows it sent, nothing waiting
        expect(page.locator("#outbox-count")).to_have_text("0 条")
        expect(page.locator("#sent")).to_contain_text("后台同步路1号")
        context.close()
    assert _events_by(store, "后台同步员") == 1
