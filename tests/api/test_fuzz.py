"""Schemathesis over the OpenAPI schema: every operation, fuzzed as an administrator, as
the command room and anonymously on SQLite, and as an administrator on PostgreSQL. No
request may answer 5xx or raise (schemathesis's ``not_a_server_error``); every success
matches the answer the document describes (``response_schema_conformance``: the response
models of gridgeo.api.schemas); every refusal is a problem document, or Open311's own error
list. The refusals' schemas and the status codes are not checked: the document does not
list the problem answers.

Each drawn case is sent once per caller (the same request as each of them, in that order):
drawing a case costs more than answering it, and drawing per caller drew the same cases
anyway (derandomized, one seed). On PostgreSQL only the administrator fuzzes: what a role
may do is decided in gridgeo.api.auth before any query and does not depend on the
database (tests/api/test_authz.py holds the role matrix on both), the other callers'
requests mostly stop at that 401/403, and the administrator reaches every operation's
database code, which is what the second database is there for.

Nothing is excluded: /metrics, the HTML maps and the planner run with the rest, at
15 examples per operation (about a minute for the module). For a deeper
run, ``GRIDGEO_FUZZ_EXAMPLES=300 GRIDGEO_FUZZ_SEED=1 pytest tests/api/test_fuzz.py`` (more
examples, another seed, and schemathesis's coverage phase; ten minutes a database).

The store is the tiny township of the events tests (plan v1, the catalogue, staff) with
a few events in several states, built once per module on each database; fuzzed
requests change it (new events, categories, users, drafts), which is the point: later
cases meet a store that earlier ones changed. The tests after the fuzzer replay what
it found, so that those stay fixed whatever the examples drawn.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import zlib

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error, response_schema_conformance

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from gridgeo.api.resources import _lookup_for
from helpers.authn import headers_for
from gridgeo import auth
from gridgeo.config import get_settings
from gridgeo.events import queries
from gridgeo.events.workflow import ACTIONS
from helpers.databases import empty_store
from helpers.events_world import CST, G11, G12, G21, G22, INSIDE, load_world
from helpers.tiny import make_tiny

#: Examples per operation and caller. Above 20 schemathesis's coverage phase runs too:
#: boundary and invalid values of every parameter, hundreds of cases per operation.
EXAMPLES = int(os.environ.get("GRIDGEO_FUZZ_EXAMPLES", "15"))
DEEP = EXAMPLES > 20
CONFIG = schemathesis.Config.from_dict({
    # with derandomize: the same cases on every run, in CI too (GRIDGEO_FUZZ_SEED to vary)
    "seed": int(os.environ.get("GRIDGEO_FUZZ_SEED", "9")),
    "phases": {"coverage": {"enabled": DEEP}},
})

#: The schema, read from an app that never touches a store (the document does not).
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(), config=CONFIG)

ROLES = ("admin", "command_room", "anonymous")
#: The callers fuzzing on each database (see the module's docstring for PostgreSQL's one).
CALLERS = {"sqlite": ROLES, "postgresql": ("admin",)}
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=DATABASES)
def fuzz_store(request, tmp_path_factory):
    """The tiny township with the catalogue and events in several states."""
    tmp = tmp_path_factory.mktemp("fuzz")
    pg = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    store = load_world(empty_store(request.param, tmp, pg), make_tiny(tmp))
    yield request.param, store
    store.close()


@pytest.fixture(scope="module")
def fuzz(fuzz_store):
    """(app, headers by role, known values by path parameter, the fuzzers' own users
    and tokens, the store, the callers fuzzing on its database) over ``fuzz_store``."""
    database, store = fuzz_store
    with pytest.MonkeyPatch.context() as mp:
        # The lookup rate limit would answer 429 to most of the fuzzed lookups.
        mp.setenv("GRIDGEO_LOOKUP_RATE", "0")
        mp.setenv("GRIDGEO_REQUEST_LOG", "false")
        get_settings.cache_clear()
        _lookup_for.cache_clear()
        app = create_app()
    get_settings.cache_clear()
    app.dependency_overrides[get_store] = lambda: store
    headers = {"anonymous": {}, "admin": headers_for(store, "admin"),
               "command_room": headers_for(store, "command_room")}
    ours = {"tokens": {t["id"] for t in auth.list_tokens(store)},
            "users": {u["username"] for u in auth.list_users(store)}}
    auth.create_user(store, "nobody", role="planner", actor="test")  # for the fuzzer to switch off
    cr = headers["command_room"]
    codes = []
    with TestClient(app) as client:
        long_ago = (dt.datetime.now(CST) - dt.timedelta(days=30)).isoformat()
        for grid, cat in ((G11, "ZZ001"), (G12, "ZZ002"), (G21, "ZF001"), (G22, "SC001")):
            lon, lat = INSIDE[grid]
            r = client.post("/v1/events", json={
                "source": "app", "category_code": cat, "lon": lon, "lat": lat,
                "reported_at": long_ago, "reporter_name": "黄敏", "reporter_phone": "19944667827"})
            assert r.status_code == 201, r.text
            codes.append(r.json()["code"])
        # one accepted, one dispatched: actions meet more than one state
        assert client.post(f"/v1/events/{codes[1]}/actions", headers=cr,
                           json={"action": "accept", "version": 1}).status_code == 200
        assert client.post(f"/v1/events/{codes[2]}/actions", headers=cr,
                           json={"action": "accept", "version": 1}).status_code == 200
        r = client.post(f"/v1/events/{codes[2]}/actions", headers=cr,
                        json={"action": "dispatch", "version": 2})
        assert r.status_code == 200, r.text
    known = {
        "code": codes + [G11, G22, "ZZ001", "BM001"],
        "service_request_id": codes,
        "event": codes,
        "action": sorted(ACTIONS),
        "service_code": ["ZZ001", "SC001"],
        "ref": ["v1"],
        "id": ["v1"],
        "fmt": ["json", "xml"],
        "username": ["nobody"],
    }
    return app, headers, known, ours, store, CALLERS[database]


def _known(case, known: dict, store) -> None:
    """Swap about half of the generated path parameters for values the store holds
    (events, grids, categories, the plan), and the version of an action for the
    event's current one, so that fuzzed bodies and queries get past the 404 and the
    409 to the code behind them. Chosen by a hash of the case: deterministic."""
    params = case.path_parameters or {}
    for name, value in params.items():
        if name in known:
            h = zlib.crc32(f"{case.method} {case.path} {name} {value!r}".encode())
            if h % 2:
                params[name] = known[name][(h >> 1) % len(known[name])]
    acting = case.path.endswith("/actions") and isinstance(case.body, dict)
    if acting and params.get("code") in known["event"]:
        h = zlib.crc32(repr(case.body).encode())
        if h % 2:
            event = queries.get_event(store, params["code"], history=False)
            case.body["version"] = event["version"]
        if (h >> 1) % 2:
            case.body["action"] = known["action"][(h >> 2) % len(known["action"])]


def _protect(case, ours: dict) -> None:
    """Keep the fuzzer from revoking its own tokens or switching its own users off."""
    params = case.path_parameters or {}
    if params.get("token_id") in ours["tokens"]:
        params["token_id"] = 10**9
    if params.get("username") in ours["users"]:
        params["username"] = "nobody"


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, fuzz):
    app, headers, known, ours, store, callers = fuzz
    _known(case, known, store)
    _protect(case, ours)
    for caller in callers:
        try:
            _check(case, app, headers[caller])
        except BaseException as exc:  # noqa: BLE001 - re-raised, with the caller in the report
            exc.add_note(f"as {caller}")
            raise


def _check(case, app, headers: dict) -> None:
    # A generous timeout: the first batch lookup starts the process pool (seconds on a busy machine).
    response = case.call(app=app, headers=headers, timeout=60)
    checks = [not_a_server_error]
    if response.status_code < 300:  # the refusals (problem documents) are not in the document
        checks.append(response_schema_conformance)
    case.validate_response(response, checks=checks)
    if response.status_code >= 400:
        # Refusals are problem documents (RFC 9457); Open311 answers its spec's error list,
        # but what FastAPI or the body guard refuses before the route is a problem too.
        type_ = (response.headers.get("content-type") or [""])[0]
        if case.path.startswith("/open311/") and type_ != "application/problem+json":
            assert type_.startswith(("application/json", "text/xml")), type_
        else:
            assert type_ == "application/problem+json", (response.status_code, type_, response.text)
            assert json.loads(response.text)["status"] == response.status_code


# -- what the fuzzer found: each once a 500 (or a hang), now a clear 4xx ------------------

FOUND = [
    # a plan date with no plan in force: no grid, nothing covered (was a shapely TypeError)
    ("admin", "get", "/v1/stats/coverage", {"params": {"at": "2000-01-01"}}, 200),
    # paging past the databases' 64-bit OFFSET, ids past their Integer
    ("admin", "get", "/v1/supervision", {"params": {"offset": 2**63}}, 422),
    ("admin", "get", "/v1/events", {"params": {"offset": 2**63}}, 422),
    ("admin", "get", "/open311/v2/requests.json", {"params": {"page": 2**62}}, 422),
    ("admin", "delete", f"/v1/tokens/{2**31}", {}, 422),
    # text the database cannot hold: NUL characters, codes longer than their column
    ("anonymous", "get", "/v1/categories", {"params": {"platform": "\x00"}}, 422),
    ("admin", "post", "/v1/users", {"json": {"username": "\x00", "role": "admin"}}, 422),
    ("admin", "put", "/v1/categories/" + "C" * 33,
     {"json": {"name": "n", "platform": "market", "department": "d", "deadline_hours": 24}}, 422),
    # a deadline past the end of the calendar
    ("admin", "put", "/v1/categories/ZZ002", {"json": {"deadline_hours": 2**30}}, 422),
    # times that cannot be moved to UTC or into pandas
    ("admin", "get", "/v1/events", {"params": {"since": "0001-01-01T00:00:00"}}, 422),
    ("admin", "get", "/v1/events", {"params": {"since": "9999-12-31T23:59:59-14:00"}}, 422),
    ("admin", "get", "/v1/stats/assessment", {"params": {"as_of": "9999-12-31"}}, 422),
    ("admin", "get", "/v1/stats/assessment", {"params": {"period": "0001-01"}}, 422),
    ("admin", "get", "/maps/events", {"params": {"period": "9999"}}, 422),
    ("admin", "get", "/maps/workload", {"params": {"period": "0001/9999"}}, 422),
    # a band so narrow it asks for billions of grids (hung the planner), a zero target
    ("admin", "post", "/v1/plans", {"json": {"band": [0, 1e-9], "strict": False}}, 422),
    ("admin", "post", "/v1/plans", {"json": {"band": [0, 5], "target": 0}}, 422),
    ("admin", "post", "/v1/plans", {"json": {"workload": {"households": -1}}}, 422),
    # a crs object whose properties are not an object
    ("anonymous", "post", "/v1/lookup",
     {"json": {"points": [list(INSIDE[G11])], "crs": {"properties": [1]}}}, 422),
]


@pytest.mark.parametrize("who,method,url,kw,status", FOUND)
def test_found(fuzz, who, method, url, kw, status):
    app, headers, *_ = fuzz
    with TestClient(app, raise_server_exceptions=False) as client:
        r = getattr(client, method)(url, headers=headers[who], **kw)
    assert r.status_code == status, r.text[:500]


#: (steps to the state, action, data): an action's data is free JSON, typed by the action.
BAD_ACTIONS = [
    ([], "reject", {"reason": ["duplicate"]}),
    (["accept"], "dispatch", {"department": {"name": "综治办"}}),
    (["accept"], "dispatch", {"platform": "bogus"}),
    (["accept"], "dispatch", {"category_code": ["ZZ002"]}),
    (["accept"], "escalate", {"to": {"name": "12345"}}),
    (["accept", "dispatch"], "extend", {"hours": float("inf")}),
    ([], "locate", {"lon": 10**400, "lat": 28.4}),
    ([], "locate", {"grid_code": {"code": G11}}),
]


@pytest.mark.parametrize("steps,action,data", BAD_ACTIONS)
def test_bad_action_data_422(fuzz, steps, action, data):
    app, headers, *_ = fuzz
    cr = headers["command_room"]
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/v1/events", json={"source": "app", "category_code": "ZZ001",
                                            "lon": INSIDE[G11][0], "lat": INSIDE[G11][1]})
        code, version = r.json()["code"], 1
        for step in steps:
            assert client.post(f"/v1/events/{code}/actions", headers=cr,
                               json={"action": step, "version": version}).status_code == 200
            version += 1
        body = json.dumps({"action": action, "version": version, "note": "原因", "data": data})
        r = client.post(f"/v1/events/{code}/actions", content=body,
                        headers={**cr, "content-type": "application/json"})
    assert r.status_code == 422, r.text[:500]
