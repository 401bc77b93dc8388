"""Operations: /metrics, JSON request logs, body limits and the lookup rate limit, each on
an app of its own settings. The bad input that must give a clear 4xx (never a 500) is in
tests/api/test_refusals.py, on one app per database."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from gridgeo.api.middleware import TokenBuckets, json_depth, parse_rate
from gridgeo.config import Settings, get_settings
from helpers.apps import app_for
from helpers.events_world import G11, INSIDE

PT = INSIDE[G11]


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Settings read under a monkeypatched environment must not outlive the test."""
    yield
    get_settings.cache_clear()


@pytest.fixture
def client(world):
    with TestClient(app_for(world)) as c:
        yield c


def event(**kw):
    b = {"source": "app", "category_code": "ZZ001", "description": "楼道堆物",
         "lon": PT[0], "lat": PT[1], "reporter_name": "黄敏", "reporter_phone": "19944667827"}
    b.update(kw)
    return b


def _sample(text: str, name: str, **labels) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return None


# -- metrics ----------------------------------------------------------------------------


def test_metrics_count_requests_by_route_template_and_events_by_state(client):
    for _ in range(3):
        assert client.get("/v1/lookup", params={"lon": PT[0], "lat": PT[1]}).status_code == 200
    assert client.get("/v1/grids/nope").status_code == 404
    assert client.post("/v1/events", json=event()).status_code == 201
    assert client.post("/v1/events", json=event()).status_code == 201
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _sample(text, "gridgeo_http_requests_total", method="GET", route="/v1/lookup", status="200") == 3
    # the template, never the raw path
    assert _sample(text, "gridgeo_http_requests_total", method="GET", route="/v1/grids/{code}", status="404") == 1
    assert "/v1/grids/nope" not in text
    assert _sample(text, "gridgeo_http_request_duration_seconds_count", method="GET", route="/v1/lookup") == 3
    assert 'gridgeo_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/lookup"}' in text
    assert _sample(text, "gridgeo_database_up") == 1
    states = {line.split('"')[1]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line.startswith("gridgeo_events{")}
    assert sum(states.values()) == 2 and "closed" in states and states["closed"] == 0
    assert sum(v for k, v in states.items() if k != "closed") == 2
    # metrics keep counting across scrapes
    assert _sample(client.get("/metrics").text, "gridgeo_http_requests_total",
                   method="GET", route="/metrics", status="200") == 1


def test_metrics_survive_a_broken_database(tmp_path):
    from gridgeo.store import Store

    app = create_app()
    app.dependency_overrides[get_store] = lambda: Store(f"sqlite:///{tmp_path / 'none.db'}")
    r = TestClient(app).get("/metrics")
    assert r.status_code == 200 and _sample(r.text, "gridgeo_database_up") == 0


# -- logs -------------------------------------------------------------------------------


def test_one_json_log_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="gridgeo.access"):
        client.get("/v1/grids/nope")
    records = [r for r in caplog.records if r.name == "gridgeo.access"]
    assert len(records) == 1
    from gridgeo.api.middleware import JsonFormatter

    line = JsonFormatter().format(records[0])
    assert "\n" not in line
    got = json.loads(line)
    assert got["method"] == "GET" and got["route"] == "/v1/grids/{code}" and got["status"] == 404
    assert got["path"] == "/v1/grids/nope" and got["client"] == "testclient"
    assert isinstance(got["duration_ms"], float) and got["level"] == "info" and got["logger"] == "gridgeo.access"


def test_request_log_can_be_switched_off(world, monkeypatch, caplog):
    app = app_for(world, monkeypatch, request_log="false")
    with caplog.at_level(logging.INFO, logger="gridgeo.access"), TestClient(app) as c:
        c.get("/health")
    assert not [r for r in caplog.records if r.name == "gridgeo.access"]


# -- body size and depth ----------------------------------------------------------------


def test_oversized_body_413_before_parsing(world, monkeypatch):
    with TestClient(app_for(world, monkeypatch, max_body_bytes=1000)) as c:
        r = c.post("/v1/lookup", json={"points": [[PT[0], PT[1]]] * 100})
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "/problems/body-too-large" and "GRIDGEO_MAX_BODY_BYTES" in r.json()["detail"]
        assert c.post("/v1/events", json=event(description="x" * 2000)).status_code == 413
        # streamed (no Content-Length), not JSON: counted while read
        r = c.post("/v1/events", content=iter([b"x" * 600, b"x" * 600]), headers={"content-type": "text/plain"})
        assert r.status_code == 413
        # under the limit: fine
        assert c.post("/v1/lookup", json={"points": [[PT[0], PT[1]]]}).status_code == 200


def test_default_limit_holds_a_full_batch():
    # 100,000 points with long coordinates fit the default limit
    body = json.dumps({"points": [[119.40123456789012, 28.40123456789012]] * 100_000})
    assert len(body) < Settings().max_body_bytes


def test_json_depth_ignores_brackets_in_strings():
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"[" * 64 + b"]" * 64) == 64
    assert json_depth(b"12") == 0


# -- rate limit -------------------------------------------------------------------------


def test_lookup_rate_limit_429_after_the_burst(world, monkeypatch):
    with TestClient(app_for(world, monkeypatch, lookup_rate="1/min", lookup_burst=3)) as c:
        got = [c.get("/v1/lookup", params={"lon": PT[0], "lat": PT[1]}).status_code for _ in range(3)]
        assert got == [200, 200, 200]
        r = c.get("/v1/lookup", params={"lon": PT[0], "lat": PT[1]})
        assert r.status_code == 429 and r.json()["type"] == "/problems/rate-limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert c.post("/v1/lookup", json={"points": [list(PT)]}).status_code == 429
        # other endpoints are not limited
        assert c.get("/v1/grids").status_code == 200
        text = c.get("/metrics").text
        assert _sample(text, "gridgeo_http_requests_total", method="GET", route="/v1/lookup", status="429") == 1


def test_anonymous_intake_is_rate_limited_but_not_staff(world, monkeypatch):
    from helpers.authn import headers_for

    staff = headers_for(world, "command_room")
    with TestClient(app_for(world, monkeypatch, public_intake_rate="1/min", public_intake_burst=2)) as c:
        assert [c.post("/v1/events", json=event()).status_code for _ in range(2)] == [201, 201]
        r = c.post("/v1/events", json=event())
        assert r.status_code == 429 and "Retry-After" in r.headers
        assert c.post("/v1/events", json=event(), headers=staff).status_code == 201  # a token: no limit
        assert c.get("/v1/events", headers=staff).status_code == 200  # reading is not limited


def test_rate_limit_disabled_with_zero(world, monkeypatch):
    with TestClient(app_for(world, monkeypatch, lookup_rate="0", lookup_burst=1)) as c:
        assert all(c.get("/v1/lookup", params={"lon": PT[0], "lat": PT[1]}).status_code == 200 for _ in range(5))


def test_token_bucket_refills():
    b = TokenBuckets(rate=2.0, burst=2)
    assert b.take("a", now=0) == 0 and b.take("a", now=0) == 0
    assert b.take("a", now=0) == pytest.approx(0.5)
    assert b.take("b", now=0) == 0  # per key
    assert b.take("a", now=0.5) == 0
    assert parse_rate("100/s") == 100 and parse_rate("60/min") == 1 and parse_rate("0") == 0
    with pytest.raises(ValueError):
        parse_rate("fast")


# -- bad input that writes: tests/api/test_refusals.py holds the refusals ------------


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client):
    r = client.post("/v1/events", json=event(description="路径 C:\\u0000"))
    assert r.status_code == 201 and r.json()["description"] == "路径 C:\\u0000"


# -- Open311 ---------------------------------------------------------------------------


def test_open311_oversized_form_413(world, monkeypatch):
    with TestClient(app_for(world, monkeypatch, max_body_bytes=1000)) as c:
        form = {"service_code": "ZZ001", "description": "x" * 2000}
        r = c.post("/open311/v2/requests.json", data=form)
        assert r.status_code == 413 and r.json()["type"] == "/problems/body-too-large"
