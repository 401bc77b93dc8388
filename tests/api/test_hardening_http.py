"""Hardening of the HTTP surface (issue 13), one test per class, both databases where a
store is involved:

- body checks before parsing are linear and answer adversarial bodies correctly; CPU-heavy
  work (batch lookups, maps) runs off the event loop;
- no secret reaches any log (in-process loggers, and a live ``gridgeo serve``'s output);
  a credential in a URL only on the map pages, best as a short-lived map ticket;
- Open311: UTF-8 form bodies, the limits of /v1/events, control characters, discovery;
- slow clients are cut (live server, raw sockets);
- the reporter's status page is rate limited.

How fast the server stays is the job of benchmarks/bench_health_under_load.py, not of
these tests.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import httpx
import pytest
from fastapi.testclient import TestClient

from gridgeo.api.auth import ticket_secret
from gridgeo.api.middleware import INLINE_SCAN_BYTES, RedactSecrets, redact, scan_json
from gridgeo.auth import check_map_ticket, issue_map_ticket, revoke_token
from gridgeo.config import get_settings
from gridgeo.errors import Unauthenticated
from helpers.apps import app_for
from helpers.authn import headers_for
from helpers.events_world import G11, INSIDE
from helpers.live_server import free_port, fresh_database

PT = INSIDE[G11]
#: The body that took 46 s: 120 kB of escaped quotes in one JSON string.
ESCAPED_QUOTES = b'{"description": "' + b'\\"' * 60_000 + b'"}'


@pytest.fixture
def client(world, monkeypatch):
    with TestClient(app_for(world, monkeypatch, lookup_rate="0", public_intake_rate="0")) as c:
        yield c


# -- 1. body checks and the event loop ----------------------------------------------------


def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(6 if depth < 6 else 3)
    if kind == 0:
        return rng.choice([0, -1.5e3, True, None])
    if kind in (1, 2):  # strings full of the characters that confuse a scanner
        return "".join(rng.choice(['"', "\\", "[", "]", "{", "}", "a", "\u0000", "\n", "井"])
                       for _ in range(rng.randrange(8)))
    if kind == 3:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_random_json(rng, 6) or "k": _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(map(_has_nul, value))
    if isinstance(value, dict):
        return any(map(_has_nul, value)) or any(map(_has_nul, value.values()))
    return False


def test_scan_json_agrees_with_the_parser():
    rng = random.Random(13)
    for _ in range(2000):
        value = _random_json(rng)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
        assert scan_json(text) == (_depth(value), _has_nul(value)), text


@pytest.mark.parametrize("body, depth", [
    (ESCAPED_QUOTES, 1),
    (b'"' + b'\\"' * 100_000, 0),                # an unterminated string of escaped quotes
    (b'"' + b"\\" * 200_001 + b'"[[[', 0),        # odd backslashes: the quote is escaped
    (b'"' * 200_000 + b"[[", 2),                  # even quotes: the brackets are outside
    (b'"' * 200_001 + b"[[", 0),                  # odd quotes: inside a string
    (b"[" * 200_000, 200_000),
])
def test_scan_json_on_adversarial_texts(body, depth):
    assert scan_json(body)[0] == depth
    if depth > 64:
        assert 64 < scan_json(body, max_depth=64)[0] <= depth  # stops early, still too deep


@pytest.mark.parametrize("path", ["/v1/events", "/v1/lookup", "/v1/events/E1/actions", "/nowhere",
                                  "/open311/v2/requests.json"])
def test_adversarial_bodies_answered(client, path):
    """The escaped-quotes body, a deep one and a NUL escape, on routes with and without
    a body, answered with what they are (never a 500, never a hang)."""
    headers = {"content-type": "application/json"}
    r = client.post(path, content=ESCAPED_QUOTES, headers=headers)
    assert r.status_code in {401, 404, 405, 413, 422} or (path.startswith("/open311") and r.status_code == 400), r.text
    deep = b'{"a":' * 70 + b"1" + b"}" * 70
    big_deep = b"[" * INLINE_SCAN_BYTES * 2  # scanned in the heavy pool
    for body in (deep, big_deep):
        r = client.post(path, content=body, headers=headers)
        assert r.status_code == 422 and r.json()["type"] == "/problems/json-too-deep", r.text
    r = client.post(path, content=b'{"a": "x\\\\\\u0000"}', headers=headers)
    assert r.status_code == 422 and r.json()["type"] == "/problems/nul-character"


def test_escaped_quotes_in_a_real_event_are_stored(client, world):
    desc = '"' * 2000
    r = client.post("/v1/events", json={"source": "app", "category_code": "ZZ001", "description": desc,
                                        "lon": PT[0], "lat": PT[1]})
    assert r.status_code == 201, r.text
    assert client.get(f"/v1/events/{r.json()['code']}/status",
                      headers={"X-Reporter-Token": r.json()["reporter_token"]}).status_code == 200


def test_big_bodies_only_where_they_are_needed(world, monkeypatch):
    """Only the batch lookup takes a body over GRIDGEO_MAX_SMALL_BODY_BYTES: elsewhere
    413 at once (Content-Length) or while streaming."""
    with TestClient(app_for(world, monkeypatch, max_small_body_bytes=10_000)) as c:
        big = {"source": "app", "category_code": "ZZ001", "description": "x" * 20_000}
        r = c.post("/v1/events", json=big)
        assert r.status_code == 413 and "GRIDGEO_MAX_SMALL_BODY_BYTES" in r.json()["detail"]
        r = c.post("/v1/events", content=iter([b"{" + b" " * 8_000] * 3), headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = c.post("/open311/v2/requests.json", data={"description": "x" * 20_000})
        assert r.status_code == 413
        points = {"points": [list(PT)] * 2_000}  # ~50 kB
        r = c.post("/v1/lookup", json=points)
        assert r.status_code == 200 and r.json()["count"] == 2_000


def test_heavy_work_runs_off_the_event_loop(client, monkeypatch):
    """Map pages are built in worker threads, not on the event loop's thread; batch
    lookups and scans of multi-megabyte bodies run in the process pool."""
    from gridgeo.api import middleware
    from gridgeo.api.routers import lookup, maps

    threads: dict[str, str] = {}
    build = maps.coverage_from_store

    def spy_build(*a, **kw):
        threads["map"] = threading.current_thread().name
        return build(*a, **kw)

    sent: list[str] = []
    run_in_process = middleware.run_in_process

    async def spy_process(fn, *args):
        sent.append(fn.__name__)
        return await run_in_process(fn, *args)

    monkeypatch.setattr(maps, "coverage_from_store", spy_build)
    monkeypatch.setattr(lookup, "run_in_process", spy_process)
    monkeypatch.setattr(middleware, "run_in_process", spy_process)
    loop_thread: list[str] = []

    @client.app.get("/_loop_thread")
    async def _loop():  # an async route runs on the event loop's thread
        loop_thread.append(threading.current_thread().name)
        return {}

    client.get("/_loop_thread")
    assert client.get("/maps/coverage").status_code == 200
    assert threads["map"] != loop_thread[0], (threads, loop_thread)
    r = client.post("/v1/lookup", json={"points": [list(PT)] * 3})
    assert r.status_code == 200 and [x["grid_code"] for x in r.json()["results"]] == [G11] * 3
    big = json.dumps({"points": [list(PT)] * 100_000}, indent=1).encode()
    assert len(big) > middleware.PROCESS_SCAN_BYTES
    r = client.post("/v1/lookup", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["count"] == 100_000
    assert sent == ["_lookup_batch_at", "_lookup_batch_at"]  # one trip: the route scans there
    workers = middleware._process_pool()[0]._processes
    assert workers and os.getpid() not in workers


# The process pool is the API process's, whatever the database: on SQLite only (each pool
# started costs seconds).
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_dead_worker_process_costs_one_request(client):
    """A killed worker process breaks the pool: that request gets 503, the next a new pool."""
    from gridgeo.api import middleware

    body = {"points": [list(PT)]}
    assert client.post("/v1/lookup", json=body).status_code == 200
    for proc in list(middleware._process_pool()[0]._processes.values()):
        proc.kill()
        proc.join()
    r = client.post("/v1/lookup", json=body)
    assert r.status_code == 503 and r.json()["type"] == "/problems/service-unavailable", r.text
    assert client.post("/v1/lookup", json=body).status_code == 200


def test_batch_bodies_and_answers_cross_to_the_pool_in_shared_files(client, monkeypatch):
    """Body and answer cross to the process pool in shared files; a worker that cannot
    open one (no /proc) makes the route pickle them instead, from then on, and the
    answer is the same."""
    from gridgeo.api import middleware
    from gridgeo.api.routers import lookup

    if not middleware.sharing():
        pytest.skip("no memfd on this system: bodies are pickled")
    body = {"points": [list(PT)] * 3}
    for form in ("json", "csv", "parquet"):
        shared = client.post(f"/v1/lookup?format={form}", json=body)
        assert shared.status_code == 200, shared.text
        if form == "json":
            assert [x["grid_code"] for x in shared.json()["results"]] == [G11] * 3

    class Unreachable(middleware.SharedFile):
        def __init__(self) -> None:
            super().__init__()
            self.name = f"/proc/{os.getpid()}/fd/no-such-file"

    monkeypatch.setattr(lookup, "SharedFile", Unreachable)
    monkeypatch.setattr(middleware, "_SHARING", True)
    pickled = client.post("/v1/lookup?format=parquet", json=body)
    assert pickled.status_code == 200 and pickled.content == shared.content
    assert not middleware.sharing()
    assert client.post("/v1/lookup?format=parquet", json=body).content == shared.content


def test_malformed_batch_json_is_a_clear_422(client):
    r = client.post("/v1/lookup", content=b'{"points": [[1, 2]', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/malformed-body"
    r = client.post("/v1/lookup", content=b"[" * 5000, headers={"content-type": "text/plain"})
    assert r.status_code == 422


# -- 2. secrets in logs, and where a credential may ride ------------------------------------


def test_redaction_patterns():
    line = ('GET /maps/events?period=2026&access_token=ggt_AbC-d_e&ticket=ggm_1.ab.cd HTTP/1.1 '
            'api_key=k3y token=t0k reporter_token=r3p Authorization: Bearer s3cr3t ggt_loose ggr_l00se')
    clean = redact(line)
    for secret in ("ggt_AbC-d_e", "ggm_1.ab.cd", "k3y", "t0k", "r3p", "s3cr3t", "ggt_loose", "ggr_l00se"):
        assert secret not in clean
    assert "period=2026" in clean and "/maps/events" in clean


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s %(exc_info)s"))

    def emit(self, record):
        self.lines.append(self.format(record) + " " + json.dumps(
            {k: str(v) for k, v in vars(record).items()}, ensure_ascii=False))


def test_no_secret_reaches_an_in_process_log(world, monkeypatch):
    """Every record any logger writes while requests carry tokens in the query, the
    header and the form: none holds a token, an api_key or a reporter token."""
    handler = _Collect()
    handler.addFilter(RedactSecrets())  # what every gridgeo handler does
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with TestClient(app_for(world, monkeypatch, request_log="true")) as c:
            token = headers_for(world, "command_room")["Authorization"].split()[1]
            secrets_ = [token]
            r = c.post("/v1/events", json={"source": "app", "category_code": "ZZ001", "lon": PT[0], "lat": PT[1]})
            reporter = r.json()["reporter_token"]
            code = r.json()["code"]
            secrets_.append(reporter)
            c.get(f"/v1/events/{code}/status?token={reporter}")
            c.get(f"/v1/events/{code}/status", headers={"X-Reporter-Token": reporter})
            c.get(f"/v1/events?access_token={token}")
            c.get("/v1/events", headers={"Authorization": f"Bearer {token}"})
            c.get("/v1/events", headers={"Authorization": "Bearer ggt_not-a-real-token-xyz"})
            secrets_.append("ggt_not-a-real-token-xyz")
            c.get(f"/open311/v2/requests.json?api_key={token}")
            c.post("/open311/v2/requests.json", data={"api_key": token, "service_code": "ZZ001",
                                                      "lat": PT[1], "long": PT[0]})
            c.get(f"/maps/workload?access_token={token}")
            ticket = c.post("/maps/tickets", headers={"Authorization": f"Bearer {token}"}).json()["ticket"]
            secrets_.append(ticket)
            c.get(f"/maps/workload?ticket={ticket}")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = "\n".join(handler.lines)
    assert "gridgeo.access" in text  # the request log did write
    for secret in secrets_:
        assert secret not in text


def test_a_token_in_the_url_only_on_the_maps(client, world):
    token = headers_for(world, "command_room")["Authorization"].split()[1]
    anonymous = {"Authorization": ""}
    r = client.get(f"/v1/events?access_token={token}", headers=anonymous)
    assert r.status_code == 401 and "map pages only" in r.json()["detail"]
    assert client.get(f"/maps/workload?access_token={token}", headers=anonymous).status_code == 200


def test_map_tickets(client, world):
    headers = headers_for(world, "command_room")
    token = headers["Authorization"].split()[1]
    anonymous = {"Authorization": ""}
    assert client.post("/maps/tickets", headers=anonymous).status_code == 401
    assert client.post(f"/maps/tickets?access_token={token}", headers=anonymous).status_code == 401
    got = client.post("/maps/tickets", headers=headers).json()
    ticket = got["ticket"]
    assert got["expires_in"] == get_settings().ticket_seconds and ticket.startswith("ggm_")
    assert client.get(f"/maps/workload?ticket={ticket}", headers=anonymous).status_code == 200
    # for the maps only
    r = client.get(f"/v1/events?ticket={ticket}", headers=anonymous)
    assert r.status_code == 401
    assert client.post(f"/maps/tickets?ticket={ticket}", headers=anonymous).status_code == 401
    # forged, expired, revoked
    expires, digest, sig = ticket.removeprefix("ggm_").split(".")
    forged = f"ggm_{int(expires) + 3600}.{digest}.{sig}"
    assert client.get(f"/maps/workload?ticket={forged}", headers=anonymous).status_code == 401
    old, _ = issue_map_ticket(token, ticket_secret(), 300, now=time.time() - 301)
    with pytest.raises(Unauthenticated, match="expired"):
        check_map_ticket(world, old, ticket_secret())
    from gridgeo.auth import _CACHE, list_tokens

    for t in list_tokens(world):
        revoke_token(world, t["id"])
    _CACHE.clear()
    assert client.get(f"/maps/workload?ticket={ticket}", headers=anonymous).status_code == 401


# -- 3. Open311 edges -----------------------------------------------------------------------


@pytest.fixture
def key(world):
    return headers_for(world, "command_room", name="app")["Authorization"].split()[1]


def _post_raw(client, body: bytes):
    return client.post("/open311/v2/requests.json", content=body, headers={
        "content-type": "application/x-www-form-urlencoded", "Authorization": ""})


def _description(client, world, response) -> str:
    code = response.json()[0]["service_request_id"]
    return client.get(f"/v1/events/{code}", headers=headers_for(world, "command_room")).json()["description"]


def test_open311_raw_utf8_form(client, world, key):
    """What curl -d sends: raw UTF-8 bytes, not percent-encoded; and the encoded form."""
    fields = f"api_key={key}&service_code=ZZ001&lat={PT[1]}&long={PT[0]}&description="
    r = _post_raw(client, (fields + "井盖缺失 a+b").encode())
    assert r.status_code == 201, r.text
    assert _description(client, world, r) == "井盖缺失 a b"
    r = _post_raw(client, (fields + "%E4%BA%95%E7%9B%96%2B").encode())
    assert _description(client, world, r) == "井盖+"
    r = _post_raw(client, fields.encode() + b"\xff\xfe")  # not UTF-8: replaced, not a 500
    assert r.status_code == 201 and _description(client, world, r) == "\ufffd\ufffd"


def test_open311_text_has_the_limits_of_events(client, key):
    form = {"api_key": key, "service_code": "ZZ001", "lat": PT[1], "long": PT[0]}
    for field, value in [("description", "x" * 4001), ("address_string", "x" * 501),
                         ("first_name", "x" * 101), ("phone", "1" * 33), ("service_code", "Z" * 33)]:
        r = client.post("/open311/v2/requests.json", data={**form, field: value}, headers={"Authorization": ""})
        assert r.status_code == 400 and field in r.json()[0]["description"], (field, r.text)
    r = client.post("/open311/v2/requests.json", data={**form, "description": "x" * 1_000_000},
                    headers={"Authorization": ""})
    assert r.status_code == 413


def test_open311_control_characters(client, world, key):
    form = {"api_key": key, "service_code": "ZZ001", "lat": PT[1], "long": PT[0]}
    r = client.post("/open311/v2/requests.json", data={**form, "description": "a\x1bb"}, headers={"Authorization": ""})
    assert r.status_code == 400 and "control character" in r.json()[0]["description"]
    r = client.post("/open311/v2/requests.json", data={**form, "description": "一\t二\r\n三"},
                    headers={"Authorization": ""})
    assert r.status_code == 201
    # the same rule at the other door (it is the core intake's)
    event = {"source": "app", "category_code": "ZZ001", "lon": PT[0], "lat": PT[1]}
    r = client.post("/v1/events", json={**event, "description": "bad\x01\x08\x0b\x1f text"})
    assert r.status_code == 422 and "description holds a control character" in r.json()["detail"]
    # text that is no control but XML 1.0 cannot carry: requests.xml stays well-formed
    r = client.post("/v1/events", json={**event, "description": "bad text\ufffe"})
    assert r.status_code == 201
    code = r.json()["code"]
    out = client.get(f"/open311/v2/requests/{code}.xml", headers=headers_for(world, "command_room"))
    root = ET.fromstring(out.content)
    assert root.find("request/description").text == "bad text"
    listing = client.get("/open311/v2/requests.xml", headers=headers_for(world, "command_room"))
    ET.fromstring(listing.content)


def test_open311_discovery_says_how_keys_work(client):
    text = client.get("/open311/v2/discovery.json").json()["key_service"]
    assert "any non-empty" not in text and "gridgeo users token" in text


# -- 5. the reporter's status page ------------------------------------------------------------


def test_reporter_status_is_rate_limited(world, monkeypatch):
    with TestClient(app_for(world, monkeypatch, reporter_status_rate="1/min", reporter_status_burst=3,
                         public_intake_rate="0")) as c:
        r = c.post("/v1/events", json={"source": "app", "category_code": "ZZ001", "lon": PT[0], "lat": PT[1]})
        code, token = r.json()["code"], r.json()["reporter_token"]
        guesses = [c.get(f"/v1/events/{code}/status", headers={"X-Reporter-Token": f"guess{i}"}).status_code
                   for i in range(3)]
        assert guesses == [404, 404, 404]
        r = c.get(f"/v1/events/{code}/status", headers={"X-Reporter-Token": token})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1  # even the right one, now
        assert r.json()["type"] == "/problems/rate-limited"
        # other routes are not affected
        assert c.get("/v1/categories").status_code == 200


# -- 2 and 4 on a live server: its whole output, and slow clients ------------------------------


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live(request, tmp_path_factory):
    """``gridgeo serve`` as an operator runs it (request log on, defaults), short
    timeouts (1 s, so that the slow clients are cut in seconds); yields (base URL, log
    file, database URL, port). One server per database for the module: starting one (the
    sample township imported, the server up) took most of these tests' time."""
    tmp_path = tmp_path_factory.mktemp(f"live-{request.param}")
    with fresh_database(request.param, tmp_path, "gridgeo_test_hardening") as url:
        port, log = free_port(), tmp_path / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGEO_")}
        env.update(GRIDGEO_DATABASE_URL=url, GRIDGEO_CACHE_DIR=str(tmp_path / "cache"),
                   GRIDGEO_BODY_TIMEOUT="1", GRIDGEO_HEADER_TIMEOUT="1",
                   GRIDGEO_KEEP_ALIVE_TIMEOUT="1", GRIDGEO_LOOKUP_RATE="0")
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "gridgeo", "serve", "--database", url,
                                     "--host", "127.0.0.1", "--port", str(port)],
                                    cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield base, log, url, port
        finally:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


def test_live_server_writes_no_secret(live):
    from gridgeo.store import Store
    from gridgeo.auth import create_token, create_user

    base, log, url, _ = live
    store = Store(url)
    try:
        create_user(store, "room", role="command_room", name="指挥室")
        token, _ = create_token(store, "room", days=1)
    finally:
        store.close()
    secrets_ = [token]
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/v1/events", json={"source": "app", "category_code": "ZF003", "description": "测试",
                                       "address": "no such address"})
        assert r.status_code == 201, r.text
        code, reporter = r.json()["code"], r.json()["reporter_token"]
        secrets_.append(reporter)
        assert c.get(f"/v1/events/{code}/status", params={"token": reporter}).status_code == 200
        c.get(f"/v1/events/{code}/status", params={"token": "wrong-" + reporter})
        c.get("/v1/events", params={"access_token": token})
        c.get("/v1/events", headers={"Authorization": f"Bearer {token}"})
        c.get("/open311/v2/requests.json", params={"api_key": token})
        c.post("/open311/v2/requests.xml", data={"api_key": token, "service_code": "ZF003",
                                                 "address_string": "x"})
        ticket = c.post("/maps/tickets", headers={"Authorization": f"Bearer {token}"}).json()["ticket"]
        secrets_.append(ticket)
        c.get("/maps/coverage", params={"ticket": ticket, "access_token": token})
        c.get("/v1/events", headers={"Authorization": "Bearer ggt_wrong-but-secret-looking"})
        secrets_.append("ggt_wrong-but-secret-looking")
    time.sleep(0.5)
    text = log.read_text(errors="replace")
    assert '"logger": "gridgeo.access"' in text and "/v1/events/{code}/status" in text, text[-2000:]
    for secret in secrets_:
        assert secret not in text, secret


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s


def _wait_closed(s: socket.socket, trickle: bytes = b"", limit: float = 30.0) -> bytes:
    """Trickle ``trickle`` a byte every 0.5 s; what the server sent before closing."""
    got = b""
    s.settimeout(0.5)
    deadline = time.monotonic() + limit
    for byte in (trickle[i:i + 1] for i in range(len(trickle) or 10**6)):
        assert time.monotonic() < deadline, f"still open after {limit} s; got {got!r}"
        try:
            if byte:
                s.sendall(byte)
        except OSError:  # reset: closed
            return got
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return got
        if not chunk:
            return got
        got += chunk
    raise AssertionError(f"trickle exhausted, still open; got {got!r}")


@pytest.mark.parametrize("live", ["sqlite"], indirect=True)  # timeouts are the server's, not the database's
def test_slow_clients_are_cut(live):
    _, _, _, port = live
    # a body trickled a byte at a time: 408, connection closed
    s = _connect(port)
    s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n")
    got = _wait_closed(s, b"{" + b" " * 999)
    assert got.startswith(b"HTTP/1.1 408"), got
    # a form body: the same
    s = _connect(port)
    s.sendall(b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n")
    got = _wait_closed(s, b"a" * 1000)
    assert b" 408 " in got.split(b"\r\n")[0], got
    # headers trickled a byte at a time: closed
    s = _connect(port)
    _wait_closed(s, b"GET /health HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 1000)
    # an idle connection after a request: closed (keep-alive timeout)
    s = _connect(port)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _wait_closed(s).startswith(b"HTTP/1.1 200")
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200  # still serving
