"""Operations: /metrics, JSON request logs, body limits, deep JSON, the lookup rate
limit, and bad input that must give a clear 4xx (never a 500)."""

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


@pytest.mark.parametrize("path", ["/v1/lookup", "/v1/events"])
def test_deep_json_422(client, path):
    deep = "[" * 65 + "]" * 65
    r = client.post(path, content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/json-too-deep"
    very_deep = '{"a":' * 100_000 + "1" + "}" * 100_000  # would blow the parser's recursion
    r = client.post(path, content=very_deep, headers={"content-type": "application/json"})
    assert r.status_code == 422


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


# -- bad input: 4xx, never a 500 --------------------------------------------------------

#: A FeatureCollection of one feature with this geometry (JSON text).
FC = '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": %s}]}'

BAD_LOOKUPS = [
    ("get", {"lon": "nan", "lat": PT[1]}),
    ("get", {"lon": "inf", "lat": PT[1]}),
    ("get", {"lon": PT[0], "lat": "-Infinity"}),
    ("get", {"lon": PT[0], "lat": PT[1], "crs": "EPSG:99999"}),
    ("get", {"lon": PT[0], "lat": PT[1], "crs": "mars"}),
    ("post", '{"points": [[119.4, 28.4]], "crs": "mars"}'),
    ("post", '{"points": [[119.4, 28.4]], "crs": {"type": "name", "properties": {"name": "EPSG:99999"}}}'),
    ("post", '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0]]]}}]}'),
    ("post", '{"type": "FeatureCollection", "features": [{"geometry": {"type": "Point", "coordinates": [1]}}]}'),
    ("post", '{"type": "FeatureCollection", "features": {"a": 1}}'),
    ("post", '{"type": "FeatureCollection", "features": [null]}'),
    ("post", '{"type": "Point", "coordinates": [119.4, 28.4]}'),
    ("post", '{"points": [[119.4, 28.4]], "crs": {"type": "name", "properties": ["EPSG:4326"]}}'),
    ("post", '{"points": [[119.4, 28.4]], "crs": {"type": "name"}}'),
    # a self-intersecting (bow-tie) polygon, a point of strings, a nested point, no
    # coordinates, WKT for a geometry
    ("post", FC % '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}'),
    ("post", FC % '{"type": "Point", "coordinates": ["119.4", "28.4"]}'),
    ("post", FC % '{"type": "Point", "coordinates": [[119.4, 28.4]]}'),
    ("post", FC % '{"type": "Point"}'),
    ("post", FC % '"POINT (119.4 28.4)"'),
    # integers too large for a float
    ("post", '{"points": [[1%s, 28.4]]}' % ("0" * 400)),
    ("post", '{"lon": [1%s], "lat": [28.4]}' % ("0" * 400)),
    ("get", {"lon": "1e400", "lat": PT[1]}),
    ("post", '{"points": "119.4,28.4"}'),
    ("post", '{"points": [[true, false]]}'),
    ("post", '{"lon": [1, 2], "lat": [1]}'),
    ("post", '{"lon": ["a"], "lat": ["b"]}'),
    ("post", "[1, 2]"),
    ("post", "{not json"),
    ("post", ""),
]


@pytest.mark.parametrize("method,data", BAD_LOOKUPS)
def test_bad_lookups_are_4xx(client, method, data):
    if method == "get":
        r = client.get("/v1/lookup", params=data)
    else:
        r = client.post("/v1/lookup", content=data, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    if r.status_code != 200:
        assert r.headers["content-type"] == "application/problem+json"


def test_feature_properties_need_not_be_an_object(client):
    point = {"type": "Point", "coordinates": list(PT)}
    feature = {"type": "Feature", "properties": [1], "geometry": point}
    body = {"type": "FeatureCollection", "features": [feature]}
    r = client.post("/v1/lookup", json=body)
    assert r.status_code == 200 and r.json()["results"][0]["grid_code"] == G11


@pytest.mark.parametrize("shape", ["points", "columns", "features"])
def test_huge_batch_lookup_413(client, shape):
    n = 100_001
    if shape == "points":
        body = {"points": [list(PT)] * n}
    elif shape == "columns":
        body = {"lon": [PT[0]] * n, "lat": [PT[1]] * n}
    else:
        point = {"type": "Point", "coordinates": list(PT)}
        feature = {"type": "Feature", "geometry": point}
        body = {"type": "FeatureCollection", "features": [feature] * n}
    r = client.post("/v1/lookup", json=body)
    assert r.status_code == 413, r.text[:300]
    assert r.json()["type"] == "/problems/batch-too-large" and "100,000" in r.json()["detail"]


@pytest.mark.parametrize("data", ['{"points": [[NaN, 28.4], [%s, %s]]}' % PT,
                                  '{"points": [[Infinity, 28.4], [%s, %s]]}' % PT,
                                  '{"lon": [NaN, %s], "lat": [28.4, %s]}' % PT])
def test_batch_flags_nan_and_inf_points_and_answers_the_rest(client, data):
    # A batch answers per point (as documented): a NaN or inf point is flagged invalid,
    # its neighbours still get their grid; the response is strict JSON (no NaN).
    r = client.post("/v1/lookup", content=data, headers={"content-type": "application/json"})
    assert r.status_code == 200 and "NaN" not in r.text and "Infinity" not in r.text
    bad, good = r.json()["results"]
    assert bad["invalid"] is True and bad["grid_code"] is None
    assert good["grid_code"] == G11 and good["invalid"] is False


BAD_EVENTS = [
    '{"source": "app", "category_code": "ZZ001", "lon": NaN, "lat": 28.4}',
    '{"source": "app", "category_code": "ZZ001", "lon": Infinity, "lat": 28.4}',
    '{"source": "app", "category_code": "ZZ001", "lon": 119.4, "lat": -Infinity}',
    '{"source": "app", "category_code": "ZZ001", "lon": 119.4, "lat": 28.4, "crs": "mars"}',
    '{"source": "app", "category_code": "ZZ001", "lon": 119.4, "lat": 28.4, "crs": "EPSG:99999"}',
    '{"source": "app", "category_code": "ZZ001", "lon": 1e400, "lat": 28.4}',
    '{"source": "app", "category_code": "ZZ001", "lon": 119.4}',
    '{"source": "app", "category_code": "ZZ001", "lon": "east", "lat": 28.4}',
    '{"source": "app", "category_code": "ZZ001", "geometry": {"type": "Point", "coordinates": [1]}}',
    '{"source": "app", "category_code": "ZZ001", "lon": [119.4], "lat": 28.4}',
    '{"source": "app"}',
    "[]",
    "{not json",
    '{"source": "app", "category_code": "ZZ001", "lon": 1%s, "lat": 28.4}' % ("0" * 400),
    '{"source": "app", "category_code": "ZZ001", "reported_at": "0001-01-01T00:00:00+14:00"}',
    '{"source": "app", "category_code": "ZZ001", "lon": 119.4, "lat": 28.4, "crs": {"x": 1}}',
]


@pytest.mark.parametrize("data", BAD_EVENTS)
def test_bad_events_are_4xx(client, data):
    r = client.post("/v1/events", content=data, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"


# -- NUL characters: no gridgeo text holds one, and PostgreSQL refuses them in queries ----


@pytest.mark.parametrize("method,url,kw", [
    ("get", "/v1/grids/%00", {}),
    ("get", "/v1/categories", {"params": {"platform": "\x00"}}),
    ("get", "/v1/lookup", {"params": {"lon": PT[0], "lat": PT[1], "crs": "wgs\x0084"}}),
    ("post", "/v1/events", {"json": event(description="楼道\x00堆物")}),
    ("post", "/v1/lookup", {"json": {"points": [list(PT)], "crs": "\x00"}}),
])
def test_nul_characters_422(client, method, url, kw):
    r = getattr(client, method)(url, **kw)
    assert r.status_code == 422 and r.json()["type"] == "/problems/nul-character", r.text


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client):
    r = client.post("/v1/events", json=event(description="路径 C:\\u0000"))
    assert r.status_code == 201 and r.json()["description"] == "路径 C:\\u0000"


# -- Open311: the same bad input, answered with the spec's error list ---------------------


@pytest.fixture
def open311_key(world):
    from helpers.authn import headers_for

    return headers_for(world, "command_room")["Authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize("fields", [
    {"lat": "nan", "long": str(PT[0])},
    {"lat": str(PT[1]), "long": "inf"},
    {"lat": str(PT[1]), "long": "1e400"},
    {"lat": str(PT[1]), "long": str(PT[0]), "crs": "mars"},
    {"lat": str(PT[1]), "long": str(PT[0]), "crs": "EPSG:99999"},
    {"lat": str(PT[1]), "long": str(PT[0]), "description": "楼道\x00堆物"},
    {"lat": str(PT[1]), "long": str(PT[0]), "first_name": "黄" * 200},
])
def test_open311_bad_requests_400(client, open311_key, fields):
    form = {"api_key": open311_key, "service_code": "ZZ001", **fields}
    r = client.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 400, r.text
    assert r.json()[0]["code"] == 400


def test_open311_oversized_form_413(world, monkeypatch):
    with TestClient(app_for(world, monkeypatch, max_body_bytes=1000)) as c:
        form = {"service_code": "ZZ001", "description": "x" * 2000}
        r = c.post("/open311/v2/requests.json", data=form)
        assert r.status_code == 413 and r.json()["type"] == "/problems/body-too-large"


@pytest.mark.parametrize("params", [{"start_date": "9999-12-31T23:59:59-14:00"},
                                    {"end_date": "0001-01-01T00:00:00+14:00"}])
def test_open311_dates_out_of_range_400(client, open311_key, params):
    r = client.get("/open311/v2/requests.json", params={"api_key": open311_key, **params})
    assert r.status_code == 400 and "1900-01-01" in r.json()[0]["description"]
