"""Bad input that must give a clear 4xx, never a 500: lookups, event intake, NUL
characters, Open311 requests, deep JSON and batches past their limit. They are refusals and
lookups, which write nothing, so they share one store, app and client per database (a new
store per case was most of these tests' time); that they wrote nothing is checked when the
database's cases are done: every table holds as many rows as before the first case. The
app is the default one but for the rate limits, off: with one client for all the cases a
limit would answer 429, a 4xx that would prove nothing here (tests/api/test_ops.py tests
the limits and the body-size setting on apps of their own)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from helpers.apps import app_for
from helpers.authn import headers_for
from helpers.databases import empty_store, row_counts
from helpers.events_world import G11, INSIDE, load_world
from helpers.tiny import make_tiny

PT = INSIDE[G11]
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def event(**kw):
    b = {"source": "app", "category_code": "ZZ001", "description": "楼道堆物",
         "lon": PT[0], "lat": PT[1], "reporter_name": "黄敏", "reporter_phone": "19944667827"}
    b.update(kw)
    return b


@pytest.fixture(scope="module", params=DATABASES)
def refusing(request, tmp_path_factory):
    """(a client of the events township's app, an Open311 key of the command room), one per
    database; when the database's cases are done, no table has gained or lost a row."""
    tmp = tmp_path_factory.mktemp("refusals")
    pg = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    store = load_world(empty_store(request.param, tmp, pg), make_tiny(tmp))
    key = headers_for(store, "command_room")["Authorization"].removeprefix("Bearer ")
    with pytest.MonkeyPatch.context() as mp:
        app = app_for(store, mp, lookup_rate="0", public_intake_rate="0")
    before = row_counts(store)
    with TestClient(app) as client:
        yield client, key
    after = row_counts(store)
    store.close()
    assert after == before, {t: (before[t], after[t]) for t in before if before[t] != after[t]}


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
def test_bad_lookups_are_4xx(refusing, method, data):
    client, _ = refusing
    if method == "get":
        r = client.get("/v1/lookup", params=data)
    else:
        r = client.post("/v1/lookup", content=data, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    if r.status_code != 200:
        assert r.headers["content-type"] == "application/problem+json"


def test_feature_properties_need_not_be_an_object(refusing):
    client, _ = refusing
    point = {"type": "Point", "coordinates": list(PT)}
    feature = {"type": "Feature", "properties": [1], "geometry": point}
    body = {"type": "FeatureCollection", "features": [feature]}
    r = client.post("/v1/lookup", json=body)
    assert r.status_code == 200 and r.json()["results"][0]["grid_code"] == G11


@pytest.mark.parametrize("shape", ["points", "columns", "features"])
def test_huge_batch_lookup_413(refusing, shape):
    client, _ = refusing
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
def test_batch_flags_nan_and_inf_points_and_answers_the_rest(refusing, data):
    client, _ = refusing
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
def test_bad_events_are_4xx(refusing, data):
    client, _ = refusing
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
def test_nul_characters_422(refusing, method, url, kw):
    client, _ = refusing
    r = getattr(client, method)(url, **kw)
    assert r.status_code == 422 and r.json()["type"] == "/problems/nul-character", r.text


# -- Open311: the same bad input, answered with the spec's error list ---------------------


@pytest.mark.parametrize("fields", [
    {"lat": "nan", "long": str(PT[0])},
    {"lat": str(PT[1]), "long": "inf"},
    {"lat": str(PT[1]), "long": "1e400"},
    {"lat": str(PT[1]), "long": str(PT[0]), "crs": "mars"},
    {"lat": str(PT[1]), "long": str(PT[0]), "crs": "EPSG:99999"},
    {"lat": str(PT[1]), "long": str(PT[0]), "description": "楼道\x00堆物"},
    {"lat": str(PT[1]), "long": str(PT[0]), "first_name": "黄" * 200},
])
def test_open311_bad_requests_400(refusing, fields):
    client, open311_key = refusing
    form = {"api_key": open311_key, "service_code": "ZZ001", **fields}
    r = client.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 400, r.text
    assert r.json()[0]["code"] == 400


@pytest.mark.parametrize("params", [{"start_date": "9999-12-31T23:59:59-14:00"},
                                    {"end_date": "0001-01-01T00:00:00+14:00"}])
def test_open311_dates_out_of_range_400(refusing, params):
    client, open311_key = refusing
    r = client.get("/open311/v2/requests.json", params={"api_key": open311_key, **params})
    assert r.status_code == 400 and "1900-01-01" in r.json()[0]["description"]


# -- deep JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/lookup", "/v1/events"])
def test_deep_json_422(refusing, path):
    client, _ = refusing
    deep = "[" * 65 + "]" * 65
    r = client.post(path, content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/json-too-deep"
    very_deep = '{"a":' * 100_000 + "1" + "}" * 100_000  # would blow the parser's recursion
    r = client.post(path, content=very_deep, headers={"content-type": "application/json"})
    assert r.status_code == 422
