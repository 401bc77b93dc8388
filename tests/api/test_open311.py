"""Open311 GeoReport v2 on the events, JSON and XML, both databases."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from helpers.authn import headers_for
from gridgeo.crs import convert
from helpers.events_world import CST, G11, G12, INSIDE

BASE = "/open311/v2"
REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]


KEY: dict[str, str] = {}


@pytest.fixture
def client(world):
    """Reads as the command room (bearer header); creates with KEY["app"] as api_key."""
    KEY["app"] = headers_for(world, "command_room", name="app")["Authorization"].split()[1]
    app = create_app()
    app.dependency_overrides[get_store] = lambda: world
    with TestClient(app) as c:
        c.headers.update(headers_for(world, "command_room"))
        yield c


def xml(r):
    assert r.headers["content-type"].startswith("text/xml")
    assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(r.content)


def create(client, fmt="json", **kw):
    form = {"api_key": KEY["app"], "service_code": "ZZ001", "lat": INSIDE[G11][1], "long": INSIDE[G11][0],
            "description": "噪音扰民", "first_name": "敏", "last_name": "黄", "phone": "19944667827",
            "media_url": "https://example.org/1.jpg"}
    form.update(kw)
    return client.post(f"{BASE}/requests.{fmt}", data={k: v for k, v in form.items() if v is not None},
                       headers={"Authorization": ""})  # the api_key alone says who


def test_discovery(client):
    d = client.get(f"{BASE}/discovery.json").json()
    assert d["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert set(d["endpoints"][0]["formats"]) == {"text/xml", "application/json"}
    root = xml(client.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    assert [f.text for f in root.find("endpoints/endpoint/formats")] == ["text/xml", "application/json"]


def test_services_json_and_xml(client):
    s = client.get(f"{BASE}/services.json").json()
    zz = next(x for x in s if x["service_code"] == "ZZ001")
    assert zz == {"service_code": "ZZ001", "service_name": "邻里纠纷", "description": "", "metadata": False,
                  "type": "realtime", "keywords": "综治工作,综治办", "group": "综治工作"}
    root = xml(client.get(f"{BASE}/services.xml"))
    assert root.tag == "services" and len(root) == len(s)
    first = root.find("service")
    assert [c.tag for c in first] == ["service_code", "service_name", "description", "metadata", "type",
                                      "keywords", "group"]
    assert first.find("metadata").text == "false"


def test_service_definition(client):
    assert client.get(f"{BASE}/services/ZZ001.json").json() == {"service_code": "ZZ001", "attributes": []}
    root = xml(client.get(f"{BASE}/services/ZZ001.xml"))
    assert root.tag == "service_definition" and root.find("service_code").text == "ZZ001"
    r = client.get(f"{BASE}/services/NOPE.json")
    assert r.status_code == 404 and r.json()[0]["code"] == 404 and "NOPE" in r.json()[0]["description"]
    root = xml(client.get(f"{BASE}/services/NOPE.xml"))
    assert root.tag == "errors" and root.find("error/code").text == "404"


def test_post_request_json(client):
    r = create(client)
    assert r.status_code == 201
    [answer] = r.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    code = answer["service_request_id"]
    ev = client.get(f"/v1/events/{code}").json()
    assert ev["source"] == "app" and ev["grid_code"] == G11 and ev["reporter_name"] == "黄敏"
    assert ev["photos"] == ["https://example.org/1.jpg"]
    token = answer["service_notice"].split("查询码 ")[1].split("（")[0]
    assert client.get(f"/v1/events/{code}/status", params={"token": token}).status_code == 200


def test_post_request_xml_with_address_and_gcj02(client):
    root = xml(create(client, "xml", lat=None, long=None, address_string="测试乡东村2号"))
    req = root.find("request")
    assert root.tag == "service_requests" and [c.tag for c in req] == ["service_request_id", "service_notice",
                                                                       "account_id"]
    code = req.find("service_request_id").text
    assert client.get(f"/v1/events/{code}").json()["grid_code"] == G12
    lon, lat = convert(*INSIDE[G12], "wgs84", "gcj02")
    r = create(client, lat=float(lat), long=float(lon), crs="gcj02")
    assert client.get(f"/v1/events/{r.json()[0]['service_request_id']}").json()["grid_code"] == G12


@pytest.mark.parametrize("fields,status,words", [
    ({"api_key": ""}, 401, "api_key"),
    ({"api_key": None}, 401, "api_key"),
    ({"api_key": "any"}, 401, "token is not valid"),
    ({"service_code": ""}, 400, "service_code"),
    ({"service_code": "NOPE"}, 400, "unknown category"),
    ({"lat": None, "long": None}, 400, "location"),
    ({"long": None}, 400, "together"),
    ({"lat": "north"}, 400, "number"),
])
def test_post_request_errors(client, fields, status, words):
    r = create(client, **fields)
    assert r.status_code == status and words in r.json()[0]["description"]
    root = xml(create(client, "xml", **fields))
    assert root.tag == "errors" and root.find("error/code").text == str(status)


def test_get_requests_filters(client):
    a = create(client).json()[0]["service_request_id"]
    b = create(client, service_code="ZF001").json()[0]["service_request_id"]
    reqs = client.get(f"{BASE}/requests.json").json()
    assert {x.get("service_request_id") for x in reqs} == {a, b}, reqs
    assert list(reqs[0]) == REQUEST_FIELDS
    one = next(x for x in reqs if x["service_request_id"] == a)
    assert one["status"] == "open" and one["service_name"] == "邻里纠纷" and one["agency_responsible"] == "综治办"
    assert one["lat"] == pytest.approx(INSIDE[G11][1]) and one["long"] == pytest.approx(INSIDE[G11][0])
    assert one["media_url"] == "https://example.org/1.jpg"
    assert "黄" not in str(one) and "19944667827" not in str(one)  # no reporter data
    assert [x["service_request_id"] for x in client.get(f"{BASE}/requests.json",
                                                         params={"service_code": "ZF001"}).json()] == [b]
    by_id = client.get(f"{BASE}/requests.json", params={"service_request_id": f"{a},{b},E0"}).json()
    assert [x["service_request_id"] for x in by_id] == [a, b]
    assert client.get(f"{BASE}/requests.json", params={"status": "closed"}).json() == []
    assert len(client.get(f"{BASE}/requests.json", params={"status": "open"}).json()) == 2
    future = (dt.datetime.now(CST) + dt.timedelta(days=1)).isoformat()
    assert client.get(f"{BASE}/requests.json", params={"start_date": future}).json() == []
    past = (dt.datetime.now(CST) - dt.timedelta(days=1)).isoformat()
    assert client.get(f"{BASE}/requests.json", params={"end_date": past}).json() == []
    r = client.get(f"{BASE}/requests.json", params={"status": "pending"})
    assert r.status_code == 400
    r = client.get(f"{BASE}/requests.json", params={"start_date": "yesterday"})
    assert r.status_code == 400


def test_get_requests_xml_and_one(client):
    a = create(client).json()[0]["service_request_id"]
    root = xml(client.get(f"{BASE}/requests.xml"))
    req = root.find("request")
    assert root.tag == "service_requests" and [c.tag for c in req] == REQUEST_FIELDS
    assert req.find("service_request_id").text == a and req.find("status").text == "open"
    [one] = client.get(f"{BASE}/requests/{a}.json").json()
    assert one["service_request_id"] == a
    root = xml(client.get(f"{BASE}/requests/{a}.xml"))
    assert root.find("request/service_code").text == "ZZ001"
    assert client.get(f"{BASE}/requests/E0.json").status_code == 404


def test_closed_and_rejected_are_closed(client):
    a = create(client).json()[0]["service_request_id"]
    r = client.post(f"/v1/events/{a}/actions", json={"action": "reject", "version": 1, "note": "信息不实",
                                                    "data": {"reason": "untrue"}},
                    headers={"X-Gridgeo-Role": "command_room"})
    assert r.status_code == 200
    [one] = client.get(f"{BASE}/requests/{a}.json").json()
    assert one["status"] == "closed" and one["status_notes"] == "信息不实"


def test_unknown_format(client):
    r = client.get(f"{BASE}/services.csv")
    assert r.status_code == 404 and r.text.startswith("<?xml")


def test_requests_are_read_with_a_key_and_within_scope(client, world):
    a = create(client).json()[0]["service_request_id"]  # G11
    b = create(client, lat=INSIDE[G12][1], long=INSIDE[G12][0]).json()[0]["service_request_id"]
    anonymous = {"Authorization": ""}
    r = client.get(f"{BASE}/requests.json", headers=anonymous)
    assert r.status_code == 401 and "api_key" in r.json()[0]["description"]
    worker = headers_for(world, "grid_worker", grids=[G12])["Authorization"].split()[1]
    mine = client.get(f"{BASE}/requests.json", params={"api_key": worker}, headers=anonymous).json()
    assert [x["service_request_id"] for x in mine] == [b]
    by_id = client.get(f"{BASE}/requests.json", params={"api_key": worker, "service_request_id": f"{a},{b}"},
                       headers=anonymous).json()
    assert [x["service_request_id"] for x in by_id] == [b]
    assert client.get(f"{BASE}/requests/{a}.json", params={"api_key": worker}, headers=anonymous).status_code == 404
    planner = headers_for(world, "planner")
    assert client.get(f"{BASE}/requests.json", headers=planner).status_code == 403
