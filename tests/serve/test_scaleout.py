"""Several workers on one PostgreSQL + PostGIS database (``gridgeo serve --workers 3``).

Each worker is a process of its own, with its own group-commit writer, caches and
connection pool; only the database is shared. The tests pin HTTP connections to
workers (which worker holds a connection is read from ``/proc``) so that every claim
is checked through every worker:

- concurrent intakes through all workers get unique event codes (the ``E`` + yyyymmdd +
  number counters never collide across processes), numbered without gaps, none lost;
  a retry through another worker, or the same request sent to two workers at once,
  gives one event;
- lookups and event reads answer the same from every worker;
- two workers taking an action on the same event version at once: one wins, the
  other gets 409 stale version.

The database is private (``gridgeo_test_scaleout_<pid>``) and dropped afterwards.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers.live_server import Server, client_port, event_bodies, fresh_database
from sqlalchemy import select

from gridgeo.store import Store, schema

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKERS = 3
#: Pinned connections per worker, and events each of them reports in the intake test.
PER_WORKER = 2
EVENTS_PER_CONNECTION = 40
TAG = "scaleout"


def _staff_headers(url: str) -> dict[str, str]:
    """The headers of a command-room member (综合指挥室) of the database ``url``: the one
    place that says how staff authenticate in these tests (``url`` is where a user and
    a token would be made)."""
    from helpers.authn import headers_for

    store = Store(url)
    try:
        return headers_for(store, "command_room", name="scaleout-test")
    finally:
        store.close()


@pytest.fixture(scope="module")
def staff(server) -> dict[str, str]:
    """The command room's headers on the test server's database."""
    return _staff_headers(server.url)


class Pinned:
    """An HTTP client with a single keep-alive connection, and the worker that holds it.

    ``worker`` is checked on every answer: should the connection be replaced (an idle
    one closed by the server), the new one is looked up again.
    """

    def __init__(self, server: Server):
        self.server = server
        # verify=False: plain HTTP on loopback, and no CA bundle to load per client.
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.Client(base_url=server.base, timeout=30, verify=False, limits=one)
        self.port: int | None = None
        self.worker: int | None = None

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        r = self.client.request(method, url, **kw)
        port = client_port(r)
        if port != self.port:
            self.port, self.worker = port, self.server.worker_of(port)
            assert self.worker is not None, "no worker holds the connection"
        return r

    def post_event(self, body: dict, key: str) -> httpx.Response:
        return self.request("POST", "/v1/events", json=body, headers={"Idempotency-Key": key})

    def close(self) -> None:
        self.client.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``gridgeo serve --workers 3`` on a private PostgreSQL database with the sample
    township; the process group is killed and the database dropped afterwards."""
    folder = tmp_path_factory.mktemp("scaleout")
    with fresh_database("postgresql", folder, "gridgeo_test_scaleout") as url, \
            Server(url, folder, workers=WORKERS) as srv:
        srv.start()
        yield srv


@pytest.fixture
def pinned(server):
    """PER_WORKER pinned clients on each worker: {worker pid: [Pinned, ...]}.

    New connections go to whichever worker accepts first, so connections are opened
    until every worker holds enough of them (the others are closed).
    """
    by_worker: dict[int, list[Pinned]] = {pid: [] for pid in server.worker_pids()}
    spare: list[Pinned] = []
    deadline = time.monotonic() + 60
    for _ in range(500):
        if all(len(v) >= PER_WORKER for v in by_worker.values()) or time.monotonic() > deadline:
            break
        c = Pinned(server)
        assert c.request("GET", "/health").status_code == 200
        (by_worker[c.worker] if len(by_worker[c.worker]) < PER_WORKER else spare).append(c)
    for c in spare:
        c.close()
    counts = {pid: len(v) for pid, v in by_worker.items()}
    assert len(counts) == WORKERS and min(counts.values()) >= PER_WORKER, \
        f"connections per worker: {counts} after {len(spare) + sum(counts.values())} tries"
    yield by_worker
    for c in itertools.chain.from_iterable(by_worker.values()):
        c.close()


def _codes_by_key(url: str, tag: str) -> tuple[dict[str, str], list[str]]:
    """Idempotency keys (key -> event code) and the codes of the events of ``tag``."""
    store = Store(url)
    try:
        ev, ik = schema.events, schema.idempotency_keys
        with store.engine.connect() as conn:
            keys = dict(conn.execute(select(ik.c.key, ik.c.event_code)).all())
            codes = list(conn.execute(select(ev.c.code).where(ev.c.description.like(f"{tag} %")))
                         .scalars())
    finally:
        store.close()
    return keys, codes


def test_intakes_through_every_worker_get_unique_codes_and_none_is_lost(server, pinned):
    clients = [c for cs in pinned.values() for c in cs]
    n = len(clients) * EVENTS_PER_CONNECTION
    bodies = event_bodies(n + 20, TAG, seed=11)
    keys = [f"so-{uuid.uuid4().hex}" for _ in bodies]
    start = threading.Barrier(len(clients))

    def report(i: int) -> list[tuple[str, int, httpx.Response]]:
        c = clients[i]
        start.wait(timeout=30)
        out = []
        for j in range(i, n, len(clients)):
            r = c.post_event(bodies[j], keys[j])
            out.append((keys[j], c.worker, r))  # the worker that answered this request
        return out

    with ThreadPoolExecutor(len(clients)) as pool:
        sent = [x for part in pool.map(report, range(len(clients))) for x in part]
    bad = [(k, r.status_code, r.text[:200]) for k, _, r in sent if r.status_code != 201]
    assert not bad, bad[:5]
    first = {k: r.json() for k, _, r in sent}
    created_by = Counter(w for _, w, _ in sent)
    assert set(created_by) == set(pinned), f"intakes per worker: {created_by}"

    # A retry through another worker answers from the stored response.
    workers = list(pinned)
    for key, worker, _ in sent[::10]:
        c = pinned[workers[(workers.index(worker) + 1) % len(workers)]][0]
        r = c.post_event(bodies[keys.index(key)], key)
        assert c.worker != worker
        assert r.status_code == 201 and r.headers.get("idempotent-replayed") == "true"
        assert r.json() == first[key]

    # The same new request sent to two workers at the same moment: one event.
    def twice(j: int) -> list[httpx.Response]:
        a, b = workers[j % len(workers)], workers[(j + 1) % len(workers)]
        both = threading.Barrier(2)

        def one(c: Pinned) -> httpx.Response:
            both.wait(timeout=30)
            return c.post_event(bodies[j], keys[j])

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(one, [pinned[a][1], pinned[b][1]]))
        assert pinned[a][1].worker != pinned[b][1].worker
        return answers

    for j in range(n, n + 20):
        ra, rb = twice(j)
        assert ra.status_code == rb.status_code == 201, (ra.text, rb.text)
        assert ra.json() == rb.json()
        replays = [r.headers.get("idempotent-replayed") == "true" for r in (ra, rb)]
        assert sorted(replays) == [False, True]
        first[keys[j]] = ra.json()

    stored_keys, codes = _codes_by_key(server.url, TAG)
    answered = [first[k]["code"] for k in keys]
    assert len(set(answered)) == len(keys), "two intakes got the same code"
    assert sorted(codes) == sorted(answered), "the database and the answers disagree"
    assert {k: stored_keys[k] for k in keys} == {k: first[k]["code"] for k in keys}
    # Numbers of a day run 1, 2, 3 ... with no gap: every number handed out is an event.
    days: dict[str, list[int]] = {}
    for code in codes:
        days.setdefault(code[1:9], []).append(int(code[9:]))
    for day, numbers in days.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), day


def test_every_worker_answers_lookups_and_reads_alike(server, pinned, staff):
    # Some events to read, each reported through a different worker.
    bodies = event_bodies(6, f"{TAG}-read", seed=12)
    workers = list(pinned)
    codes = []
    for i, b in enumerate(bodies):
        r = pinned[workers[i % len(workers)]][0].post_event(b, f"so-read-{uuid.uuid4().hex}")
        assert r.status_code == 201
        codes.append(r.json()["code"])
    points = [(b["lon"], b["lat"], b["crs"]) for b in bodies if "lon" in b]
    points += [(119.46, 28.44, "gcj02"), (119.6, 28.9, "wgs84")]  # the urban street; outside
    answers: dict[int, list] = {}
    for pid, (c, *_) in pinned.items():
        out = []
        for lon, lat, crs in points:
            r = c.request("GET", "/v1/lookup", params={"lon": lon, "lat": lat, "crs": crs})
            out.append((r.status_code, r.json()))
        for code in codes:
            r = c.request("GET", f"/v1/events/{code}", headers=staff)
            out.append((r.status_code, r.json()))
        assert c.worker == pid
        answers[pid] = out
    statuses = [s for s, _ in answers[workers[0]]]
    assert statuses.count(200) == len(statuses) - 1 and 404 in statuses
    for pid in workers[1:]:
        assert answers[pid] == answers[workers[0]], f"worker {pid} answers differently"


def test_two_workers_racing_on_one_version_one_wins(server, pinned, staff):
    workers = list(pinned)
    pairs = [(workers[i], workers[(i + 1) % len(workers)]) for i in range(len(workers))] * 2
    bodies = event_bodies(len(pairs), f"{TAG}-race", seed=13)
    for (a, b), body in zip(pairs, bodies):
        created = pinned[a][0].post_event(body, f"so-race-{uuid.uuid4().hex}")
        assert created.status_code == 201
        code, version = created.json()["code"], created.json()["version"]
        both = threading.Barrier(2)

        def accept(c: Pinned, code=code, version=version, both=both) -> httpx.Response:
            both.wait(timeout=30)
            return c.request("POST", f"/v1/events/{code}/actions", headers=staff,
                             json={"action": "accept", "version": version, "note": "受理"})

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(accept, [pinned[a][0], pinned[b][0]]))
        assert pinned[a][0].worker != pinned[b][0].worker
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        won = next(r for r in answers if r.status_code == 200).json()
        lost = next(r for r in answers if r.status_code == 409).json()
        assert lost["type"] == "/problems/stale-version" and lost["current_version"] == 2, lost
        assert won["state"] == "accepted" and won["version"] == version + 1
        # Every worker now reads one accept, at the next version.
        for c, *_ in pinned.values():
            e = c.request("GET", f"/v1/events/{code}", headers=staff).json()
            assert e["version"] == version + 1 and e["state"] == "accepted"
            assert [h["action"] for h in e["history"]].count("accept") == 1


def _counter(text: str, route: str, status: str = "200") -> float:
    """gridgeo_http_requests_total of GET ``route`` with ``status`` in a scrape (0 if absent)."""
    want = f'gridgeo_http_requests_total{{method="GET",route="{route}",status="{status}"}} '
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(want))


def test_metrics_sum_every_worker(server, pinned):
    """/metrics answers for all workers, whichever answers the scrape (multi-process mode
    that `gridgeo serve --workers` sets up): requests made through each worker count."""
    clients = [c for cs in pinned.values() for c in cs]
    route = "/v1/grids/{code}"
    before = _counter(clients[0].request("GET", "/metrics").text, route)
    per_client = 5
    for c in clients:
        for _ in range(per_client):
            assert c.request("GET", "/v1/grids/331124002001001").status_code == 200
    assert len({c.worker for c in clients}) == WORKERS
    for c in clients:  # a scrape through every worker sees the same total
        scraped = c.request("GET", "/metrics")
        assert scraped.status_code == 200
        assert _counter(scraped.text, route) == before + per_client * len(clients), c.worker
        assert "gridgeo_events{" in scraped.text
