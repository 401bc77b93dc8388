"""The events API over HTTP, both databases."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from helpers.authn import headers_for
from helpers.events_world import CST, G11, G12, INSIDE

CR: dict = {}
DEPT: dict = {}
PO: dict = {}
GW: dict = {}


@pytest.fixture
def client(world):
    """An anonymous client; CR, DEPT, PO and GW hold the bearer headers of the command
    room (王伟), the department 综治办 (zfzd), the stability platform office and the
    grid worker of G11."""
    CR.clear(), DEPT.clear(), PO.clear(), GW.clear()
    CR.update(headers_for(world, "command_room", name="王伟"))
    DEPT.update(headers_for(world, "department", name="zfzd", department="综治办"))
    PO.update(headers_for(world, "platform_office", name="平台协调办公室", platform="stability"))
    GW.update(headers_for(world, "grid_worker", name="网格员", grids=[G11]))
    app = create_app()
    app.dependency_overrides[get_store] = lambda: world
    with TestClient(app) as c:
        yield c


def body(**kw):
    b = {"source": "app", "category_code": "ZZ001", "description": "楼道堆物",
         "lon": INSIDE[G11][0], "lat": INSIDE[G11][1], "reporter_name": "黄敏", "reporter_phone": "19944667827"}
    b.update(kw)
    return b


def post(client, key=None, **kw):
    return client.post("/v1/events", json=body(**kw), headers={"Idempotency-Key": key} if key else {})


def act(client, code, action, version, headers=CR, **kw):
    return client.post(f"/v1/events/{code}/actions", json={"action": action, "version": version, **kw},
                       headers=headers)


def test_intake_201_with_token_and_location(client):
    r = post(client)
    assert r.status_code == 201
    e = r.json()
    assert r.headers["location"] == f"/v1/events/{e['code']}" and r.headers["etag"] == '"1"'
    assert e["grid_code"] == G11 and e["located_by"] == "coordinates" and e["state"] == "reported"
    assert e["reporter_token"] and e["department"] == "综治办" and e["category_name"] == "邻里纠纷"
    assert e["allowed_actions"]["accept"] == ["command_room"]


def test_idempotent_retry_over_http(client, world):
    r1 = post(client, key="abc")
    r2 = post(client, key="abc")
    assert r1.status_code == r2.status_code == 201
    assert r2.headers.get("idempotent-replayed") == "true" and "idempotent-replayed" not in r1.headers
    assert r2.json() == r1.json()
    r3 = post(client, key="abc", description="另一件事")
    assert r3.status_code == 422 and r3.json()["type"] == "/problems/idempotency-key-reused"
    assert client.get("/v1/events", headers=CR).json()["total"] == 1


def test_intake_validation_problems(client):
    r = client.post("/v1/events", json=body(source="pigeon"))
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = post(client, category_code="NOPE")
    assert r.status_code == 422 and "unknown category" in r.json()["detail"]
    r = post(client, lon=200)
    assert r.status_code == 422 and r.json()["type"] == "/problems/invalid-coordinates"
    r = post(client, reported_at="2026-03-01T09:30:00")
    assert r.status_code == 422 and "offset" in r.json()["detail"]
    r = client.post("/v1/events", json={**body(), "surprise": 1})
    assert r.status_code == 422


def test_life_cycle_over_http(client):
    e = post(client).json()
    code, v = e["code"], e["version"]
    steps = [("accept", CR, {}), ("dispatch", CR, {}), ("start", DEPT, {}),
             ("extend", PO, {"data": {"hours": 24}}),
             ("resolve", DEPT, {"note": "已清理"}), ("verify", GW, {}),
             ("close", CR, {})]
    for action, headers, extra in steps:
        r = act(client, code, action, v, headers=headers, **extra)
        assert r.status_code == 200, (action, r.json())
        v = r.json()["version"]
        assert r.headers["etag"] == f'"{v}"'
    got = client.get(f"/v1/events/{code}", headers=CR).json()
    assert got["state"] == "closed" and got["extended_hours"] == 24
    assert [h["action"] for h in got["history"]] == ["report"] + [s[0] for s in steps]
    assert got["history"][1]["actor"] == "王伟" and got["history"][3]["actor"] == "zfzd"
    assert got["history"][4]["actor"] == "平台协调办公室"


def test_refusals_say_what_is_allowed(client):
    e = post(client).json()
    r = act(client, e["code"], "close", 1)
    assert r.status_code == 409
    p = r.json()
    assert p["type"] == "/problems/illegal-transition" and p["state"] == "reported"
    assert set(p["allowed_actions"]) == {"accept", "reject", "merge", "supervise", "locate"}
    assert "accept" in p["detail"]
    r = act(client, e["code"], "accept", 1, headers=DEPT)
    assert r.status_code == 403 and r.json()["allowed_roles"] == ["command_room"]
    r = client.post(f"/v1/events/{e['code']}/actions", json={"action": "accept", "version": 1})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")  # no token
    r = act(client, e["code"], "accept", 1, headers={"Authorization": "Bearer ggt_forged"})
    assert r.status_code == 401


def test_versions(client):
    e = post(client).json()
    assert act(client, e["code"], "accept", 1).status_code == 200
    r = act(client, e["code"], "reject", 1, data={"reason": "invalid"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/stale-version" and r.json()["current_version"] == 2
    r = client.post(f"/v1/events/{e['code']}/actions", json={"action": "dispatch"}, headers=CR)
    assert r.status_code == 428
    r = client.post(f"/v1/events/{e['code']}/actions", json={"action": "dispatch"},
                    headers={**CR, "If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["state"] == "dispatched"
    assert client.get(f"/v1/events/{e['code']}", headers=CR).headers["etag"] == '"3"'
    assert act(client, "E1999", "accept", 1).status_code == 404


def test_list_filters_and_paging(client):
    for i in range(3):
        post(client, lon=INSIDE[G12][0] if i else INSIDE[G11][0], lat=INSIDE[G12][1] if i else INSIDE[G11][1])
    page = client.get("/v1/events", headers=CR, params={"grid": G12, "limit": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["next_offset"] == 1
    assert client.get("/v1/events", headers=CR, params={"grid": G12, "limit": 1, "offset": 1}).json()["next_offset"] is None
    assert client.get("/v1/events", headers=CR, params={"state": "reported,accepted"}).json()["total"] == 3
    assert client.get("/v1/events", headers=CR, params={"village": G11[:12], "platform": "stability"}).json()["total"] == 3
    assert client.get("/v1/events", headers=CR, params={"overdue": "true"}).json()["total"] == 0
    since = (dt.datetime.now(CST) + dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert client.get("/v1/events", headers=CR, params={"since": since}).json()["total"] == 0
    assert client.get("/v1/events", headers=CR, params={"state": "nope"}).status_code == 422
    assert client.get("/v1/events", headers=CR, params={"limit": 0}).status_code == 422


def test_supervision_and_command_room(client):
    old = (dt.datetime.now(CST) - dt.timedelta(hours=100)).isoformat()
    e = post(client, reported_at=old).json()
    r = post(client, source="hotline", lon=None, lat=None)
    assert r.status_code == 401 and "token" in r.json()["detail"]  # the hotline desk has a token
    r = client.post("/v1/events", json=body(source="hotline", lon=None, lat=None), headers=CR)
    assert r.status_code == 201 and r.json()["located_by"] == "unlocated"
    s = client.get("/v1/supervision", headers=CR).json()
    assert [x["code"] for x in s["overdue"]["items"]] == [e["code"]] and s["overdue"]["items"][0]["late_hours"] > 27
    room = client.get("/v1/command-room", headers=CR).json()
    assert room["unlocated"]["total"] == 1 and room["to_accept"]["total"] == 2 and room["overdue"]["total"] == 1


def test_reporter_status_and_rating(client):
    e = post(client).json()
    code, token = e["code"], e["reporter_token"]
    r = client.get(f"/v1/events/{code}/status", headers={"X-Reporter-Token": token})
    assert r.status_code == 200 and r.json()["state"] == "reported" and "reporter_phone" not in r.json()
    assert client.get(f"/v1/events/{code}/status", params={"token": token}).status_code == 200
    assert client.get(f"/v1/events/{code}/status", params={"token": "wrong"}).status_code == 404
    assert client.get(f"/v1/events/{code}/status").status_code == 404
    r = client.post(f"/v1/events/{code}/rating", json={"token": token, "satisfaction": 5})
    assert r.status_code == 409  # not closed yet
    v = 1
    for action, who in [("accept", CR), ("dispatch", CR), ("start", DEPT),
                        ("resolve", DEPT), ("verify", GW), ("close", CR)]:
        v = act(client, code, action, v, headers=who).json()["version"]
    r = client.post(f"/v1/events/{code}/rating", json={"token": token, "satisfaction": 5, "comment": "很快"})
    assert r.status_code == 200 and r.json()["satisfaction"] == 5
    assert client.post(f"/v1/events/{code}/rating", json={"token": token, "satisfaction": 1}).status_code == 409
    assert client.post(f"/v1/events/{code}/rating", json={"token": "x", "satisfaction": 1}).status_code == 404
    assert client.post(f"/v1/events/{code}/rating", json={"token": token, "satisfaction": 6}).status_code == 422
    # on the actions endpoint the reporter acts with the event's token, and no bearer token
    r = act(client, code, "rate", v + 1, headers={}, data={"satisfaction": 1})
    assert r.status_code == 401
    r = act(client, code, "rate", v + 1, headers={}, data={"satisfaction": 1}, token=token)
    assert r.status_code == 409  # rated once already


def test_merge_over_http(client):
    a = post(client, category_code="ZF001").json()
    b = post(client, category_code="ZF001").json()
    assert b["duplicate_flag"] and b["duplicate_candidates"][0]["code"] == a["code"]
    assert client.get("/v1/events", headers=CR, params={"duplicate": "true"}).json()["total"] == 1
    r = act(client, b["code"], "merge", 1, data={"into": a["code"]})
    assert r.status_code == 200 and r.json()["duplicate_of"] == a["code"] and r.json()["state"] == "rejected"


def test_workflow_and_catalogue(client):
    wf = client.get("/v1/workflow").json()
    assert {s["code"] for s in wf["states"]} >= {"reported", "closed", "rejected"}
    assert next(a for a in wf["actions"] if a["code"] == "verify")["roles"] == ["grid_worker"]
    cats = client.get("/v1/categories").json()
    assert {c["code"] for c in cats} >= {"ZZ001", "ZZ009"}
    r = client.put("/v1/categories/ZZ001", json={"deadline_hours": 48}, headers=CR)
    assert r.status_code == 200 and r.json()["deadline_hours"] == 48
    e = post(client, reported_at="2026-03-01T09:00:00+08:00").json()
    assert e["deadline_at"] == "2026-03-03T09:00:00+08:00"  # the new deadline applies at once
    r = client.put("/v1/categories/NEW01", json={"name": "新事项", "platform": "service", "department": "民政办",
                                                 "deadline_hours": 24}, headers=CR)
    assert r.status_code == 201
    assert client.put("/v1/categories/NEW01", json={"deadline_hours": 1}, headers=DEPT).status_code == 403
    assert client.put("/v1/categories/NEW02", json={"name": "x"}, headers=CR).status_code == 422
    assert client.get("/v1/categories/NOPE").status_code == 404


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/events", "/v1/events/{code}", "/v1/events/{code}/actions", "/v1/supervision",
              "/v1/events/{code}/status", "/v1/events/{code}/rating", "/open311/v2/requests.{fmt}"):
        assert p in paths
