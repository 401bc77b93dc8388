"""Photos of events (附件) over HTTP, both databases: real images made with Pillow, with and
without EXIF GPS; a disguised non-image; oversized uploads; the photo scope of every role;
before/after stages; merging; the S3 path against moto's server started here."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gridgeo.photos.images import decode_photo, exif_gps
from helpers.apps import app_for
from helpers.authn import headers_for
from helpers.events_world import G11, G12, INSIDE


def dms(value: float) -> tuple[float, float, float]:
    d = int(value)
    m = int((value - d) * 60)
    return float(d), float(m), round((value - d - m / 60) * 3600, 4)


def jpeg(gps: tuple[float, float] | None = None, size=(640, 480), colour=(200, 40, 40), **extra) -> bytes:
    """A real JPEG from Pillow, with EXIF (camera, time, and GPS when given)."""
    img = Image.new("RGB", size, colour)
    exif = Image.Exif()
    exif[0x010F] = "TestPhone"  # Make
    exif[0x0132] = "2026:12:01 10:00:00"
    if gps is not None:
        lon, lat = gps
        exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms(abs(lat)), 3: "E" if lon >= 0 else "W", 4: dms(abs(lon))}
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, **extra)
    return buf.getvalue()


def png(size=(300, 200)) -> bytes:
    img = Image.new("RGBA", size, (10, 120, 200, 128))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def report(event: dict, *photos: bytes) -> dict:
    return {"data": {"event": json.dumps(event, ensure_ascii=False)},
            "files": [("photos", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)]}


EVENT = {"source": "app", "category_code": "ZZ001", "description": "楼道堆物", "reporter_name": "黄敏",
         "reporter_phone": "19944667827"}


@pytest.fixture
def client(world, monkeypatch, tmp_path):
    app = app_for(world, monkeypatch, photo_store=tmp_path / "photos", max_photo_bytes=400_000,
                  public_intake_rate="0")
    with TestClient(app) as c:
        yield c


def test_photo_journey(client, world, tmp_path):
    cr = headers_for(world, "command_room")
    gw = headers_for(world, "grid_worker", grids=[G11])
    # 1. The public reports with a photo and no coordinates: the photo's GPS locates it.
    photo = jpeg(gps=INSIDE[G11])
    r = client.post("/v1/events", **report(EVENT, photo), headers={"Idempotency-Key": "k-photo-1"})
    assert r.status_code == 201, r.text
    e = r.json()
    code, token = e["code"], e["reporter_token"]
    assert e["grid_code"] == G11 and e["located_by"] == "coordinates" and e["position_from"] == "photo"
    assert e["position"]["lon"] == pytest.approx(INSIDE[G11][0], abs=1e-6)
    [p] = e["photos_attached"]
    assert p["stage"] == "before" and p["stage_label"] == "处置前" and p["gps"]["lat"] == pytest.approx(INSIDE[G11][1], abs=1e-6)
    assert p["url"] == f"/v1/events/{code}/photos/{p['id']}" and p["thumbnail_url"] == p["url"] + "/thumbnail"
    history = client.get(f"/v1/events/{code}", headers=cr).json()["history"]
    assert history[0]["data"]["position_from"] == "photo"
    # A retry with the same key and photos: the same event, the photo once.
    again = client.post("/v1/events", **report(EVENT, photo), headers={"Idempotency-Key": "k-photo-1"})
    assert again.status_code == 201 and again.json()["code"] == code and len(again.json()["photos_attached"]) == 1
    # The same key with another photo is another request.
    other = client.post("/v1/events", **report(EVENT, jpeg(colour=(1, 2, 3))), headers={"Idempotency-Key": "k-photo-1"})
    assert other.status_code == 422

    # 2. What is stored: a JPEG with no metadata, the thumbnail small.
    got = client.get(p["url"], params={"token": token})
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    stored = Image.open(io.BytesIO(got.content))
    assert stored.format == "JPEG" and stored.size == (640, 480) and not stored.getexif() and "exif" not in stored.info
    thumb = Image.open(io.BytesIO(client.get(p["thumbnail_url"], headers={"X-Reporter-Token": token}).content))
    assert max(thumb.size) == 320

    # 3. Scope, every role: as the event, or 404 (403 for the planner, who reads no events).
    ok = {"command_room": {}, "leadership": {}, "admin": {}, "grid_worker": {"grids": [G11]},
          "department": {"department": "综治办"}, "platform_office": {"platform": "stability"}}
    out = {"grid_worker": {"grids": [G12]}, "department": {"department": "司法所"},
           "platform_office": {"platform": "market"}}
    for role, scope in ok.items():
        h = headers_for(world, role, **scope)
        assert client.get(p["url"], headers=h).status_code == 200, role
        assert client.get(f"/v1/events/{code}/photos", headers=h).json()["items"][0]["id"] == p["id"], role
    for role, scope in out.items():
        h = headers_for(world, role, **scope)
        assert client.get(p["url"], headers=h).status_code == 404, role
        assert client.get(p["thumbnail_url"], headers=h).status_code == 404, role
        assert client.get(f"/v1/events/{code}/photos", headers=h).status_code == 404, role
    assert client.get(p["url"], headers=headers_for(world, "planner")).status_code == 403
    assert client.get(p["url"]).status_code == 404
    assert client.get(p["url"], params={"token": "ggr_wrong"}).status_code == 404
    assert client.get(f"/v1/events/{code}/photos/{p['id'] + 999}", headers=cr).status_code == 404

    # 4. The grid worker adds a PNG (no EXIF): kept as a JPEG; hostile uploads refused.
    def add(data, name="x.png", ctype="image/png", stage="before", headers=gw):
        return client.post(f"/v1/events/{code}/photos", files={"file": (name, data, ctype)},
                           data={"stage": stage}, headers=headers)

    r = add(png())
    assert r.status_code == 201, r.text
    assert r.json()["photo"]["source_format"] == "png" and r.json()["photo"]["gps"] is None
    assert len(r.json()["items"]) == 2
    disguised = add(b"#!/bin/sh\necho pwned\n" * 50, name="scene.jpg", ctype="image/jpeg")
    assert disguised.status_code == 415 and "not a JPEG, PNG, WebP or HEIC" in disguised.json()["detail"]
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    assert add(gif.getvalue(), name="a.jpg", ctype="image/jpeg").status_code == 415
    assert add(jpeg()[:400], name="cut.jpg", ctype="image/jpeg").status_code == 415
    big = jpeg(size=(2400, 1800), quality=100, subsampling=0) + b"\0" * 300_000
    too_big = add(big, name="big.jpg", ctype="image/jpeg")
    assert too_big.status_code == 413, too_big.text
    assert add(jpeg(), stage="after").status_code == 409           # nothing is being handled yet
    assert add(jpeg(), stage="sideways").status_code == 422
    other_worker = headers_for(world, "grid_worker", grids=[G12])
    assert add(jpeg(), headers=other_worker).status_code == 404
    assert add(jpeg(), headers=headers_for(world, "leadership")).status_code == 403
    assert client.post(f"/v1/events/{code}/photos", files={"file": ("a.jpg", jpeg(), "image/jpeg")}).status_code == 401
    assert client.post(f"/v1/events/{code}/photos", files={"file": ("a.jpg", jpeg(colour=(9, 9, 9)), "image/jpeg")},
                       data={"token": token}).status_code == 201  # the reporter, with its token
    # A multipart report over the photo limit: 413 from the declared length, nothing stored.
    n_before = len(client.get(f"/v1/events/{code}/photos", headers=cr).json()["items"])
    assert client.post("/v1/events", **report(EVENT, big, big, big, big, big, big, big)).status_code == 413

    # 5. Coordinates given win over the photo's GPS.
    r2 = client.post("/v1/events", **report({**EVENT, "lon": INSIDE[G12][0], "lat": INSIDE[G12][1]}, photo))
    assert r2.status_code == 201 and r2.json()["grid_code"] == G12 and r2.json()["position_from"] is None
    # No GPS, no coordinates: unlocated, the photo still attached.
    r3 = client.post("/v1/events", **report(EVENT, jpeg(colour=(0, 90, 0))))
    assert r3.json()["located_by"] == "unlocated" and len(r3.json()["photos_attached"]) == 1

    # 6. Merged into the first event: its photo is listed there, never lost.
    dup = client.post("/v1/events", **report(EVENT, jpeg(gps=INSIDE[G11], colour=(5, 5, 200)))).json()
    assert client.post(f"/v1/events/{dup['code']}/actions", headers=cr,
                       json={"action": "merge", "version": 1, "data": {"into": code}}).status_code == 200
    items = client.get(f"/v1/events/{code}/photos", headers=cr).json()["items"]
    assert len(items) == n_before + 1 and items[-1]["from_event"] == dup["code"]
    assert client.get(items[-1]["url"], headers=cr).status_code == 200

    # 7. Delete: the command room only, audit-logged.
    assert client.delete(f"/v1/events/{code}/photos/{p['id']}", headers=gw).status_code == 403
    d = client.delete(f"/v1/events/{code}/photos/{p['id']}", headers=cr, params={"reason": "无关照片"})
    assert d.status_code == 200 and p["id"] not in [i["id"] for i in d.json()["items"]]
    audit = world.audit_log("events", code)
    assert list(audit["action"]).count("photo.add") == 3 and "photo.delete" in set(audit["action"])
    assert client.get(p["url"], headers=cr).status_code == 404

    # 8. After-photos (处置后) once the work has started.
    ev = client.get(f"/v1/events/{code}", headers=cr).json()
    v = ev["version"]
    for action, data in (("accept", {}), ("dispatch", {}), ("start", {})):
        res = client.post(f"/v1/events/{code}/actions", headers=cr if action != "start" else
                          headers_for(world, "department", department="综治办"),
                          json={"action": action, "version": v, "data": data})
        assert res.status_code == 200, res.text
        v = res.json()["version"]
    dept = headers_for(world, "department", department="综治办")
    after = add(jpeg(colour=(0, 200, 0)), name="done.jpg", ctype="image/jpeg", stage="after", headers=dept)
    assert after.status_code == 201 and after.json()["photo"]["stage_label"] == "处置后"


def test_exif_gps_and_heic():
    assert exif_gps({1: "S", 2: (28.0, 30.0, 0.0), 3: "W", 4: (119.0, 15.0, 0.0)}) == (-119.25, -28.5)
    assert exif_gps({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}) is None  # no fix
    assert exif_gps({1: "N"}) is None
    img = Image.new("RGB", (120, 90), (1, 2, 3))
    buf = io.BytesIO()
    img.save(buf, "HEIF")
    decoded = decode_photo(buf.getvalue())
    assert decoded.source_format == "heic" and Image.open(io.BytesIO(decoded.data)).format == "JPEG"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's standalone S3-compatible server, on 127.0.0.1, for this module."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_photos_in_s3_compatible_store(world, monkeypatch, s3_server):
    import s3fs

    options = {"key": "testing", "secret": "testing", "endpoint_url": s3_server}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("gridgeo-test")
    app = app_for(world, monkeypatch, photo_store="s3://gridgeo-test/photos",
                  photo_store_options=json.dumps(options), public_intake_rate="0")
    with TestClient(app) as client:
        r = client.post("/v1/events", **report(EVENT, jpeg(gps=INSIDE[G11])))
        assert r.status_code == 201, r.text
        p = r.json()["photos_attached"][0]
        stored = fs.find("gridgeo-test/photos")
        assert f"gridgeo-test/photos/{p['digest'][:2]}/{p['digest']}.jpg" in stored and len(stored) == 2
        got = client.get(p["url"], params={"token": r.json()["reporter_token"]})
        assert got.status_code == 200 and Image.open(io.BytesIO(got.content)).size == (640, 480)
