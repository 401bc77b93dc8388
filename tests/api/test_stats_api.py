"""GET /v1/stats/assessment, /workload and /coverage over the hand-built township, on both
databases: the figures of tests/assess/test_assess.py, CSV, and 422 problems for bad input."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from helpers.authn import headers_for
from helpers.hand_built import G1, G2, G3, T0, V1, V2, build

AS_OF = "2026-10-15T00:00:00+08:00"


@pytest.fixture
def client(store):
    build(store)
    app = create_app()
    app.dependency_overrides[get_store] = lambda: store
    with TestClient(app) as c:
        c.headers.update(headers_for(store, "leadership"))
        yield c


def test_statistics_need_a_user(client):
    r = client.get("/v1/stats/workload", headers={"Authorization": ""})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_assessment_by_grid(client):
    r = client.get("/v1/stats/assessment", params={"period": "2026-Q3", "by": "grid", "as_of": AS_OF})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == {"start": "2026-07-01", "end": "2026-09-30", "label": "2026-07-01/2026-09-30"}
    assert body["as_of"] == AS_OF and body["by"] == "grid"
    rows = {row["code"]: row for row in body["rows"]}
    assert list(rows) == [G1, G2, G3, None]
    assert rows[G1]["received"] == 4 and rows[G1]["due"] == 3 and rows[G1]["closed_on_time"] == 2
    assert rows[G1]["on_time_rate"] == pytest.approx(0.6667) and rows[G1]["hours_to_close_p90"] == 139.2
    assert rows[G2]["hours_to_close_mean"] is None   # nothing closed: null, not NaN
    total = body["total"]
    assert (total["received"], total["accepted"], total["dispatched"], total["due"], total["closed"],
            total["closed_on_time"], total["overdue"]) == (11, 10, 7, 8, 6, 4, 2)
    assert total["acceptance_rate"] == pytest.approx(10 / 11, abs=1e-4) and total["closure_rate"] == 0.75
    assert body["labels"]["on_time_rate"] == "按期结案率" and "due" in body["definitions"]
    assert body["ranking"] is None


def test_assessment_ranked_with_minimum_volume(client):
    r = client.get("/v1/stats/assessment", params={"period": "2026-Q3", "by": "grid", "as_of": AS_OF,
                                                    "rank": "on_time_rate", "min_volume": 3})
    body = r.json()
    assert [row["code"] for row in body["rows"]][:1] == [G1] and body["rows"][0]["rank"] == 1
    assert [row["rank"] for row in body["rows"]][1:] == [None, None, None]
    assert body["ranking"]["min_volume"] == 3 and "at least 3 due" in body["ranking"]["explanation"]


@pytest.mark.parametrize("by, codes", [
    ("platform", ["stability", "market", "enforcement"]),
    ("village", [V1, V2, None]),
    ("township", [T0, None]),
    ("worker", ["P1", "P2", "P3", "P4", "P5"]),
    ("worker&roles=full_time_worker,part_time_worker", ["P2", "P4", "P5"]),
    ("department", ["市场监管所", "综合行政执法中队", "综治办"]),
])
def test_assessment_groupings(client, by, codes):
    by, _, roles = by.partition("&roles=")
    params = {"period": "2026-Q3", "by": by, "as_of": AS_OF, **({"roles": roles} if roles else {})}
    r = client.get("/v1/stats/assessment", params=params)
    assert r.status_code == 200, r.text
    assert [row["code"] for row in r.json()["rows"]] == codes


def test_assessment_csv_in_chinese(client):
    r = client.get("/v1/stats/assessment", params={"period": "2026-Q3", "by": "platform", "as_of": AS_OF,
                                                    "format": "csv", "lang": "zh"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [x["编码"] for x in rows] == ["stability", "market", "enforcement"]
    assert rows[0]["名称"] == "综治工作" and rows[0]["上报数"] == "6" and rows[0]["按期结案率"] == "0.6"


@pytest.mark.parametrize("params, words", [
    ({"period": "2026-Q5"}, "2026-Q5"),
    ({"period": "2026-13"}, "month"),
    ({"period": "2026-Q3", "by": "county"}, "grouping"),
    ({"period": "2026-Q3", "rank": "received"}, "rank"),
    ({"period": "2026-Q3", "as_of": "soon"}, "as_of"),
])
def test_bad_queries_are_422_problems(client, params, words):
    r = client.get("/v1/stats/assessment", params=params)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 422 and words in body["detail"] and body["type"].startswith("/problems/invalid-")


def test_workload(client):
    r = client.get("/v1/stats/workload", params={"period": "2026-Q3", "as_of": AS_OF})
    assert r.status_code == 200, r.text
    body = r.json()
    rows = {row["code"]: row for row in body["rows"]}
    assert [rows[g]["events"] for g in (G1, G2, G3)] == [4, 4, 2] and body["unplaced_events"] == 1
    assert rows[G1]["per_worker"] == 4.0 and rows[G3]["households"] == 150
    assert body["flagged"] == {"above_band": [G1], "below_band": [G3], "understaffed": [G1, G2, G3]}
    assert body["band"] == [300.0, 500.0] and body["plan_version"] == "T1"
    w = client.get("/v1/stats/workload", params={"period": "2026-Q3", "by": "worker", "as_of": AS_OF}).json()
    people = {row["code"]: row for row in w["rows"]}
    assert people["P3"]["events"] == 8 and people["P3"]["events_share"] is None and people["P2"]["events_share"] == 4.0
    assert client.get("/v1/stats/workload", params={"by": "team"}).status_code == 422
    assert client.get("/v1/stats/workload", params={"platform": "weather"}).status_code == 422
    r = client.get("/v1/stats/workload", params={"period": "2026-Q3", "format": "csv", "lang": "zh"})
    assert r.status_code == 200 and "户数" in r.text.splitlines()[0]


def test_coverage(client):
    r = client.get("/v1/stats/coverage")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["plan_version"] == "T1"
    villages = {v["code"]: v for v in body["villages"]}
    assert villages[V2]["households_share"] == 0.2 and villages[V2]["area_share"] == pytest.approx(0.5, abs=1e-3)
    assert body["summary"]["grids_without_grid_head"] == [G2, G3]
    assert body["summary"]["grids_without_instructor"] == [G3]
    assert [h["code"] for h in body["households_outside"]] == ["H4"]
    grids = {g["code"]: g for g in body["grids"]}
    assert grids[G1]["grid_head"] == "张三" and grids[G2]["no_grid_head"] is True
    r = client.get("/v1/stats/coverage", params={"format": "csv", "table": "households_outside"})
    assert r.status_code == 200 and "H4" in r.text
    assert client.get("/v1/stats/coverage", params={"village": "不存在村"}).status_code == 422
