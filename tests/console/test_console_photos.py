"""Photos on the console's event page: thumbnails by stage, the images under the event's
scope for the logged-in user (another grid's worker and a logged-out visitor get none)."""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gridgeo.config import get_settings
from gridgeo import sessions
from gridgeo.auth import create_user
from gridgeo.events.intake import report_event
from gridgeo.photos import add_photos, ingest
from gridgeo.store import Store
from helpers.apps import app_for
from helpers.events_world import G11, G12, event, load_world
from helpers.tiny import make_tiny

PASSWORD = "correct horse 7"


def _jpeg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), colour).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo_site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console-photos")
    store = Store(f"sqlite:///{folder / 'web.db'}")
    store.migrate()
    load_world(store, make_tiny(folder))
    for user, scope in (("mine", {"grids": [G11]}), ("theirs", {"grids": [G12]})):
        create_user(store, user, role="grid_worker", name=user, actor="test", **scope)
        sessions.set_password(store, user, PASSWORD, actor="test")
    with pytest.MonkeyPatch.context() as env:
        app = app_for(store, env, request_log="false")
        with TestClient(app, base_url="http://console.test") as client:
            yield store, client
    store.close()


def _log_in(client, username):
    client.cookies.clear()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303


def test_event_page_shows_the_photos_in_scope(photo_site):
    store, client = photo_site
    code = report_event(store, event()).event["code"]
    add_photos(store, code, [ingest(_jpeg((200, 0, 0))), ingest(_jpeg((0, 0, 200)))], stage="before",
               actor="reporter", role="reporter")
    _log_in(client, "mine")
    page = client.get(f"/events/{code}")
    assert page.status_code == 200 and "照片（2）" in page.text and "处置前" in page.text
    srcs = re.findall(r'<img src="([^"]+)"', page.text)
    assert len(srcs) == 2 and all(s.startswith(f"/events/{code}/photos/") and s.endswith("/thumbnail") for s in srcs)
    thumb = client.get(srcs[0])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 320
    full = client.get(srcs[0].removesuffix("/thumbnail"))
    assert Image.open(io.BytesIO(full.content)).size == (400, 300)
    # Another grid's worker: neither the event nor its photos.
    _log_in(client, "theirs")
    assert client.get(srcs[0]).status_code == 404 and "image/jpeg" not in client.get(srcs[0]).headers["content-type"]
    # Logged out: sent to the log-in page.
    client.cookies.clear()
    assert client.get(srcs[0], follow_redirects=False).status_code == 303


def _upload(client, code, page, *, stage, data, csrf=True):
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1) if csrf else "wrong"
    return client.post(f"/events/{code}/photos", data={"csrf": token, "stage": stage},
                       files={"photo": ("scene.jpg", data, "image/jpeg")}, follow_redirects=False)


def test_a_photo_is_added_on_the_event_page_and_refusals_are_said_in_chinese(photo_site):
    """The console had no way to add a photo: a department could not show its result
    (处置后) nor the command room the scene. The event page offers the stages the event's
    state takes, for the roles that add photos, under the event's scope."""
    store, client = photo_site
    code = report_event(store, event()).event["code"]  # reported: the scene only
    _log_in(client, "mine")
    page = client.get(f"/events/{code}").text
    stages = re.search(r'<select id="p-stage" name="stage">(.*?)</select>', page).group(1)
    assert "处置前" in stages and "处置后" not in stages
    r = _upload(client, code, page, stage="before", data=b"not a photo")
    assert r.status_code == 415 and "不是可识别的图片" in r.text
    r = _upload(client, code, page, stage="after", data=_jpeg((0, 200, 0)))
    assert r.status_code == 409 and "此时不能上传处置后照片" in r.text
    r = _upload(client, code, page, stage="before", data=_jpeg((0, 200, 0)), csrf=False)
    assert r.status_code == 403 and "安全校验码" in r.text
    # too large for the upload limit: refused before the route, as a page in Chinese for the
    # browser's form post (not the API's JSON), and as problem+json with detail_zh for a program
    limit = get_settings().max_photo_bytes
    huge = {"csrf": "x", "stage": "before"}, {"photo": ("big.jpg", b"\xff" * (limit + 400_000), "image/jpeg")}
    r = client.post(f"/events/{code}/photos", data=huge[0], files=huge[1],
                    headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html"), r.text[:300]
    assert "提交的内容过大" in r.text and f"{(limit + 256 * 1024) / 1e6:.1f} MB" in r.text
    r = client.post(f"/events/{code}/photos", data=huge[0], files=huge[1], headers={"Accept": "application/json"})
    assert r.status_code == 413 and "提交的内容过大" in r.json()["detail_zh"]
    assert "照片（0）" in client.get(f"/events/{code}").text  # nothing was added by the refusals
    r = _upload(client, code, page, stage="before", data=_jpeg((0, 200, 0)))
    assert r.status_code == 303 and r.headers["location"] == f"/events/{code}?photo=before"
    page = client.get(r.headers["location"]).text
    assert "已上传处置前照片" in page and "照片（1）" in page
    again = client.get(f"/events/{code}/photos", follow_redirects=False)  # a reload of a refusal
    assert again.headers["location"] == f"/events/{code}"
    _log_in(client, "theirs")  # another grid's worker: no such event
    r = _upload(client, code, client.get("/grid").text, stage="before", data=_jpeg((9, 9, 9)))
    assert r.status_code == 404 and "未找到事件" in r.text
