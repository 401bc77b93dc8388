"""The minimal HTTP API over both databases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from helpers.tiny import V1, V2
from gridgeo.io import import_files
from gridgeo.store import HEAD_REVISION


@pytest.fixture
def client(store, tiny):
    import_files(store, [tiny["gpkg"], tiny["staff"], tiny["categories"]],
                 plan_version="v1", effective_from=dt.date(2024, 1, 1))
    app = create_app()
    app.dependency_overrides[get_store] = lambda: store
    with TestClient(app) as c:
        yield c


def test_health(client, store):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == store.dialect
    assert body["plan_in_force"] == "v1" and body["schema"] == HEAD_REVISION


def test_health_reports_a_broken_database(tmp_path):
    from gridgeo.store import Store

    app = create_app()
    app.dependency_overrides[get_store] = lambda: Store(f"sqlite:///{tmp_path / 'none.db'}")
    r = TestClient(app).get("/health")
    assert r.status_code == 503 and "gridgeo init" in r.json()["detail"]


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/grids" in spec["paths"] and "/v1/grids/{code}" in spec["paths"]


#: Operations under /v1 that answer no JSON: 204 No Content.
NO_JSON = {("delete", "/v1/tokens/{token_id}"),
           # photos are JPEG
           ("get", "/v1/events/{code}/photos/{photo_id}"), ("get", "/v1/events/{code}/photos/{photo_id}/thumbnail")}


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_json_answer_has_a_schema():
    """The OpenAPI document says what every JSON endpoint answers: each success of each
    /v1 operation (and /health) has a JSON body with a schema that is not ``{}``.
    The pages that are not JSON (maps HTML, /metrics, Open311's XML) are outside /v1; the
    CSV forms of the statistics sit beside their JSON."""
    doc = create_app().openapi()
    faults = []
    for path, operations in doc["paths"].items():
        if not (path.startswith("/v1/") or path == "/health"):
            continue
        for method, op in operations.items():
            json_bodies = [(status, _resolve(doc, content.get("schema") or {}))
                           for status, answer in op["responses"].items() if status.startswith("2")
                           for media, content in (answer.get("content") or {}).items()
                           if media == "application/json" or media.endswith("+json")]
            if not json_bodies and (method, path) not in NO_JSON:
                faults.append(f"{method.upper()} {path}: no JSON answer documented")
            faults += [f"{method.upper()} {path} {status}: empty schema" for status, schema in json_bodies
                       if not ({"properties", "items", "anyOf"} & set(schema))]
    assert not faults, "\n".join(faults)


def test_routers_declare_the_aliases_of_deps():
    """Dependencies are declared once, in gridgeo.api.deps: no router builds its own
    ``Depends(get_store)``, ``Depends(get_lookup)`` or store alias again."""
    import gridgeo.api.routers as routers

    folder = Path(routers.__file__).parent
    again = [f"{path.name}: {needle}" for path in sorted(folder.glob("*.py"))
             for needle in ("Depends(get_store)", "Depends(get_lookup)", "StoreDep =", "LookupDep =")
             if needle in path.read_text(encoding="utf-8")]
    assert not again, again


def test_grids_geojson(client):
    r = client.get("/v1/grids")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["plan_version"] == "v1"
    assert [f["properties"]["code"] for f in fc["features"]] == [V1 + "001", V1 + "002", V2 + "001", V2 + "002"]
    assert fc["features"][0]["geometry"]["type"] == "Polygon"
    assert fc["features"][0]["properties"]["name"] == "东村一网格"


def test_grids_filters(client):
    assert len(client.get("/v1/grids", params={"village": V2}).json()["features"]) == 2
    # A bbox over the east half of V2 only.
    got = client.get("/v1/grids", params={"bbox": "119.416,28.401,119.419,28.409"}).json()
    assert [f["properties"]["code"] for f in got["features"]] == [V2 + "002"]
    # Before the plan took effect nothing answers.
    before = client.get("/v1/grids", params={"at": "2023-06-01"}).json()
    assert before["features"] == [] and before["plan_version"] is None


def test_bad_bbox_is_a_problem(client):
    for bad in ("119,28,121,inf", "-200,28,121,30", "119,-95,121,30"):  # corners that are no lon/lat
        r = client.get("/v1/grids", params={"bbox": bad})
        assert r.status_code == 422 and "bbox" in r.json()["detail"], bad
    r = client.get("/v1/grids", params={"bbox": "1,2,3"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert "bbox" in r.json()["detail"]


def test_one_grid_and_404(client):
    r = client.get(f"/v1/grids/{V1}002")
    assert r.status_code == 200
    assert r.json()["properties"]["households"] == 2 and r.json()["properties"]["plan_version"] == "v1"
    r = client.get("/v1/grids/331124201201999")
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
    r = client.get("/v1/grids/x", params={"at": "not-a-date"})
    assert r.status_code == 422 and r.json()["title"] == "invalid request"


def test_docs_need_no_network(client):
    """The docs page loads its scripts from this server, not from a CDN."""
    html = client.get("/docs").text
    assert "cdn.jsdelivr" not in html and "unpkg" not in html
    import re

    for src in re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html):
        assert src.startswith("/"), src
        assert client.get(src).status_code == 200, src
