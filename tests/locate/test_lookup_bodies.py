"""POST /v1/lookup with bulk bodies (issue 20): CSV (UTF-8 or GB18030), Parquet and Arrow
IPC, by their Content-Type, answered as a JSON body is; and what a hostile or broken
body gets.

Every test here only looks points up, so they share one store, app and client per
database (a new township per case was most of the module's time); when a database's cases
are done, every table must hold as many rows as before the first. The lookup rate limit
is off on that app: with one client for all the cases it would answer 429."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from gridgeo.config import Settings
from gridgeo.io import import_files
from gridgeo.lookup import MAX_BATCH
from helpers.apps import app_for
from helpers.databases import empty_store, row_counts
from helpers.tiny import V1, V2, X0, Y0, make_tiny

PARQUET = "application/vnd.apache.parquet"
STREAM = "application/vnd.apache.arrow.stream"
FILE = "application/vnd.apache.arrow.file"
#: inside V1, inside V2, snapped to V1, outside, invalid (latitude 119.4)
BATCH = [[X0 + 0.002, Y0 + 0.005], [X0 + 0.018, Y0 + 0.005], [X0 - 0.0003, Y0 + 0.005],
         [X0 - 0.5, Y0], [X0, 119.4]]
CODES = [V1 + "001", V2 + "002", V1 + "001", None, None]
IDS = ["户1", "商铺2", "A3", "=1+1", "五"]


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def client(request, tmp_path_factory):
    """A client of the tiny township's app, one per database; nothing written through it."""
    tmp = tmp_path_factory.mktemp("bodies")
    pg = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    store = empty_store(request.param, tmp, pg)
    tiny = make_tiny(tmp)
    import_files(store, [tiny["gpkg"], tiny["staff"], tiny["categories"]],
                 plan_version="v1", effective_from=dt.date(2024, 1, 1))
    with pytest.MonkeyPatch.context() as mp:
        app = app_for(store, mp, lookup_rate="0")
    before = row_counts(store)
    with TestClient(app) as c:
        yield c
    after = row_counts(store)
    store.close()
    assert after == before, {t: (before[t], after[t]) for t in before if before[t] != after[t]}


def _csv(rows=BATCH, header=("id", "lon", "lat"), ids=IDS, encoding="utf-8", bom=False) -> bytes:
    lines = [",".join(header)] + [f"{i},{x!r},{y!r}" for i, (x, y) in zip(ids, rows)]
    return (b"\xef\xbb\xbf" if bom else b"") + ("\r\n".join(lines) + "\r\n").encode(encoding)


def _table(rows=BATCH, ids=IDS) -> pa.Table:
    a = np.array(rows, dtype=float)
    return pa.table({"id": ids, "lon": a[:, 0], "lat": a[:, 1], "备注": ["x"] * len(rows)})


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _arrow(table: pa.Table, *, file: bool = False) -> bytes:
    sink = io.BytesIO()
    with (pa.ipc.new_file if file else pa.ipc.new_stream)(sink, table.schema) as w:
        for batch in table.to_batches(max_chunksize=2):  # several record batches
            w.write_batch(batch)
    return sink.getvalue()


def _post(client, body: bytes, ctype: str, **kw):
    return client.post("/v1/lookup", content=body, headers={"content-type": ctype, **kw.pop("headers", {})}, **kw)


def test_bulk_bodies_answer_as_json_does(client):
    """Every bulk body gives the same results as the JSON body of the same points, its
    ids echoed; CSV in UTF-8 (with or without BOM) and GB18030 (detected or named),
    with Chinese column names."""
    plain = client.post("/v1/lookup", json={"points": BATCH}).json()["results"]
    assert [r["grid_code"] for r in plain] == CODES
    gb = _csv(header=("编号", "经度", "纬度"), encoding="gb18030").replace("编号".encode("gb18030"), b"id")
    bodies = [
        ("utf-8 csv", _csv(), "text/csv"),
        ("utf-8 csv with BOM", _csv(bom=True), "text/csv; charset=utf-8"),
        ("gb18030 csv, detected", gb, "text/csv"),
        ("gb18030 csv, named", gb, "text/csv; charset=GB18030"),
        ("parquet", _parquet(_table()), PARQUET),
        ("arrow stream", _arrow(_table()), STREAM),
        ("arrow file", _arrow(_table(), file=True), FILE),
    ]
    for name, body, ctype in bodies:
        r = _post(client, body, ctype)
        assert r.status_code == 200, (name, r.text)
        got = r.json()["results"]
        assert [g.pop("id") for g in got] == IDS, name
        assert got == plain, name
    # answered by Accept as a JSON body is: a CSV body, a Parquet answer with lon, lat and id
    r = _post(client, gb, "text/csv", headers={"accept": PARQUET})
    table = pq.read_table(io.BytesIO(r.content))
    assert table["id"].to_pylist() == IDS and table["grid_code"].to_pylist() == CODES
    assert table["lon"].to_pylist() == [p[0] for p in BATCH]
    # the crs is the query's (a table names none)
    from gridgeo.crs import convert

    gx, gy = convert(np.array(BATCH)[:3, 0], np.array(BATCH)[:3, 1], "wgs84", "gcj02")
    r = _post(client, _csv(rows=np.column_stack([gx, gy]).tolist(), ids=IDS[:3]), "text/csv", params={"crs": "gcj02"})
    assert [x["grid_code"] for x in r.json()["results"]] == CODES[:3]
    # no id column: none echoed; integer ids stay integers
    r = _post(client, _parquet(_table().drop(["id"])), PARQUET)
    assert "id" not in r.json()["results"][0]
    r = _post(client, _parquet(_table(ids=list(range(5)))), PARQUET)
    assert [x["id"] for x in r.json()["results"]] == list(range(5))


def test_nan_blank_and_out_of_range_coordinates_are_flagged(client):
    rows = "lon,lat\n{},{}\nnan,{}\n,{}\n200,{}\n{},95\n {} , {} \n".format(
        X0 + 0.002, Y0 + 0.005, Y0, Y0, Y0, X0, X0 + 0.002, Y0 + 0.005)
    r = _post(client, rows.encode(), "text/csv")
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    assert [x["invalid"] for x in got] == [False, True, True, True, True, False]
    assert [x["grid_code"] for x in got] == [V1 + "001", None, None, None, None, V1 + "001"]
    table = pa.table({"lon": [X0 + 0.002, float("nan"), None, 1e308], "lat": [Y0 + 0.005, Y0, Y0, Y0]})
    got = _post(client, _parquet(table), PARQUET).json()["results"]
    assert [x["invalid"] for x in got] == [False, True, True, True]


@pytest.mark.parametrize("name,body,ctype,words", [
    ("empty csv", b"", "text/csv", "empty"),
    ("blank csv", b" \n\n", "text/csv", "empty"),
    ("no coordinate columns", b"a,b\n1,2\n", "text/csv", "no longitude and latitude column (it has a, b)"),
    ("no latitude", b"lon,height\n1,2\n", "text/csv", "no latitude column"),
    ("a word among the numbers", b"lon,lat\n119.4,28.4\n119.4,north\n", "text/csv", "row 2: lat 'north'"),
    ("ragged rows", b"lon,lat\n119.4,28.4\n119.4,28.4,9,9\n", "text/csv", "CSV body cannot be read"),
    ("neither utf-8 nor gb18030", b"lon,lat,n\n119.4,28.4,\xff\xfe\xfa\xfb\xfc\n", "text/csv", "not utf-8 text at row 1"),
    ("text not in the named charset", "lon,lat,名\n1,2,北\n".encode("gb18030"), "text/csv; charset=utf-8",
     "not utf-8 text at the header"),
    ("a later row not utf-8", "lon,lat,id\n1,2,a\n1,2,北\n".encode("gb18030"), "text/csv; charset=utf-8",
     "not utf-8 text at row 2"),
    ("unknown charset", b"lon,lat\n1,2\n", "text/csv; charset=klingon", "unknown charset 'klingon'"),
    ("not parquet", b"PAR1 this is not a parquet file", PARQUET, "not a Parquet file"),
    ("truncated parquet", None, PARQUET, "Parquet"),
    ("parquet without lon", None, PARQUET, "no longitude column (it has east, lat)"),
    ("parquet of booleans", None, PARQUET, "column lon holds bool"),
    ("not arrow", b"\xff\xff\xff\xff garbage", STREAM, "not an Arrow IPC stream or file"),
    ("truncated arrow", None, STREAM, "not an Arrow IPC stream or file"),
    ("json as csv", b'{"points": [[119.4, 28.4]]}', "text/csv", "no longitude"),
    ("csv as json", b"lon,lat\n1,2\n", "application/json", "not valid JSON"),
])
def test_broken_bodies_get_a_clear_422(client, name, body, ctype, words):
    if name == "truncated parquet":
        body = _parquet(_table())[:-40]
    elif name == "parquet without lon":
        body = _parquet(pa.table({"east": [1.0], "lat": [2.0]}))
    elif name == "parquet of booleans":
        body = _parquet(pa.table({"lon": [True], "lat": [False]}))
    elif name == "truncated arrow":
        body = _arrow(_table())[:-30]
    r = _post(client, body, ctype)
    assert r.status_code == 422, (name, r.text)
    assert r.json()["type"] == "/problems/malformed-body" and words in r.json()["detail"], (name, r.json())


def test_too_many_points_or_bytes_413(client):
    """Past 100,000 points: 413, for Parquet from its metadata (a few kB that would
    decompress to megabytes are never read); past the body limit: 413 before reading."""
    many = pa.table({"lon": np.full(MAX_BATCH + 1, X0), "lat": np.full(MAX_BATCH + 1, Y0)})
    body = _parquet(many)
    assert len(body) < 50_000
    for data, ctype in [(body, PARQUET), (_arrow(many.slice(0, 0)) + b"", STREAM)]:
        if ctype == STREAM:
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, many.schema) as w:
                w.write_table(many, max_chunksize=30_000)
            data = sink.getvalue()
        r = _post(client, data, ctype)
        assert r.status_code == 413 and "100,001" in r.json()["detail"], (ctype, r.text[:300])
    csv = b"lon,lat\n" + f"{X0},{Y0}\n".encode() * (MAX_BATCH + 1)
    r = _post(client, csv, "text/csv")
    assert r.status_code == 413 and r.json()["type"] == "/problems/batch-too-large"
    huge = b"lon,lat\n" + b"1" * Settings().max_body_bytes
    r = _post(client, huge, "text/csv")
    assert r.status_code == 413 and r.json()["type"] == "/problems/body-too-large"


def test_openapi_names_the_body_types(client):
    body = client.get("/openapi.json").json()["paths"]["/v1/lookup"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv", PARQUET, STREAM, FILE} <= set(body)


def test_large_json_bodies_are_scanned_while_arrow_reads_them(client):
    """From OVERLAP_BYTES a JSON body is scanned in a thread beside Arrow's reader: a
    deep or NUL-holding body is still refused, and the scan's verdict comes before the
    reader's (too many points)."""
    from gridgeo.api.batch import OVERLAP_BYTES, read_body
    from gridgeo.errors import BatchTooLarge, JsonTooDeep, NulCharacter

    feature = '{"type":"Feature","id":"f","properties":{},"geometry":{"type":"Point","coordinates":[%r,%r]}}' % (
        BATCH[0][0], BATCH[0][1])
    n = OVERLAP_BYTES // len(feature) + 10
    good = ('{"type":"FeatureCollection","features":[' + ",".join([feature] * n) + "]}").encode()
    assert len(good) > OVERLAP_BYTES and len(read_body(good, "application/json", 64).lon) == n
    deep = good[:-2] + b',{"type":"Feature","properties":{"a":' + b"[" * 100 + b"]" * 100 + b"},"
    deep += b'"geometry":{"type":"Point","coordinates":[1,2]}}]}'
    nul = good.replace(b'"id":"f"', b'"id":"f\\u0000"', 1)
    many = b'{"points":[' + b",".join([b"[119.12345678,28.12345678]"] * (MAX_BATCH + 1)) + b"]"
    for body, error in [(deep, JsonTooDeep), (nul, NulCharacter), (many + b"}", BatchTooLarge),
                        (many + b',"x":' + b"[" * 70 + b"]" * 70 + b"}", JsonTooDeep)]:
        assert len(body) > OVERLAP_BYTES
        with pytest.raises(error):
            read_body(body, "application/json", 64)
    r = _post(client, deep, "application/json")
    assert r.status_code == 422 and r.json()["type"] == "/problems/json-too-deep", r.text
    r = _post(client, nul, "application/geo+json")
    assert r.status_code == 422 and r.json()["type"] == "/problems/nul-character", r.text
