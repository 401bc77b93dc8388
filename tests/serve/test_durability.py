"""Durability of event intake: a 201 is a committed event, even when the server is killed.

The test starts ``gridgeo serve`` on a database holding the sample township and sends
events from many concurrent clients, each request with its own ``Idempotency-Key``.
Some clients give up waiting for an answer after a millisecond (a phone losing its
signal). In the middle of the load the whole server is killed with SIGKILL; then it is
started again. The clients retry, with the same key and body, every request that got
no answer (it may or may not have been committed), some that did get a 201, and some
twice at once, and send the requests they had not sent yet. At the end the database must
hold, for every key, exactly one event: the one whose code the 201 gave, whenever that
201 came. Runs on SQLite and on PostgreSQL + PostGIS (a private database,
``gridgeo_test_durability_<pid>``), 10-20 s each.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from helpers.live_server import Server, event_bodies, fresh_database
from sqlalchemy import func, select

from gridgeo.events.batcher import GroupCommitter
from gridgeo.store import Store, schema

#: Requests in all; the server is killed once KILL_AFTER of them got a 201.
N_EVENTS = 300
KILL_AFTER = 100
#: Concurrent clients (one connection each).
CLIENTS = 16
#: Every GIVE_UP_EVERY-th request is sent by a client that waits 1 ms for the answer.
GIVE_UP_EVERY = 12
TAG = "durability"


@dataclass
class Ledger:
    """What the clients know: per key, the first 201 (its body) and every answer, in
    order; the keys whose request is in doubt (sent, no answer) and those never sent."""

    bodies: dict[str, dict]
    created: dict[str, dict] = field(default_factory=dict)
    answers: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)
    in_doubt: set[str] = field(default_factory=set)
    unsent: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def record(self, key: str, r: httpx.Response) -> None:
        replayed = r.headers.get("idempotent-replayed") == "true"
        self.answers.setdefault(key, []).append((r.status_code, replayed))
        if r.status_code != 201:
            self.failures.append(f"{key}: HTTP {r.status_code} {r.text[:300]}")
            return
        body = r.json()
        first = self.created.get(key)
        if first is None:
            self.created[key] = body
            self.in_doubt.discard(key)
        elif body != first:
            self.failures.append(f"{key}: a retry answered {body['code']}, not {first['code']}")
        elif not replayed:
            self.failures.append(f"{key}: a retry after a 201 was not marked Idempotent-Replayed")


def _run(coro):
    """``asyncio.run`` in a thread of its own: the test process may already hold a running
    event loop (Playwright's sync API keeps one while a browser is open)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()

async def _post(client: httpx.AsyncClient, ledger: Ledger, key: str, **kw) -> None:
    r = await client.post("/v1/events", json=ledger.bodies[key], headers={"Idempotency-Key": key},
                          **kw)
    ledger.record(key, r)


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)


async def _load_until_killed(server: Server, ledger: Ledger, keys: list[str]) -> None:
    """Post ``keys`` from CLIENTS clients; SIGKILL the server after KILL_AFTER 201s.

    A request that gets no answer counts as in doubt. A client whose server died under
    it stops; the keys never sent are left in ``ledger.unsent``.
    """
    todo = list(reversed(keys))
    due, killed = threading.Event(), threading.Event()
    give_up = httpx.Timeout(30, read=0.001)

    def killer() -> None:
        # From another thread and up to 20 ms late, so that the kill lands anywhere in
        # the server's cycle (parsing, locating, in the transaction, answering).
        due.wait(timeout=120)
        time.sleep(random.uniform(0, 0.02))
        killed.set()
        server.kill()

    async def client_loop(client: httpx.AsyncClient) -> None:
        while todo and not killed.is_set():
            key = todo.pop()
            impatient = len(todo) % GIVE_UP_EVERY == 0
            try:
                await _post(client, ledger, key, **({"timeout": give_up} if impatient else {}))
            except httpx.ReadTimeout:
                ledger.in_doubt.add(key)  # gave up; the server may well commit it
                if not impatient:
                    ledger.failures.append(f"{key}: no answer in 30 s")
                continue
            except httpx.TransportError as exc:
                ledger.in_doubt.add(key)
                if not killed.is_set():
                    ledger.failures.append(f"{key}: {exc!r} before the kill")
                return
            if len(ledger.created) >= KILL_AFTER:
                due.set()

    thread = threading.Thread(target=killer, name="killer")
    thread.start()
    try:
        async with httpx.AsyncClient(base_url=server.base, limits=_limits(), timeout=30) as client:
            await asyncio.gather(*(client_loop(client) for _ in range(CLIENTS)))
    finally:
        due.set()
        thread.join()
    ledger.unsent = list(reversed(todo))


async def _send_all(server: Server, ledger: Ledger, keys: list[str]) -> None:
    """Post ``keys`` (retries and first sends alike) from CLIENTS clients."""
    todo = list(keys)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while todo:
            key = todo.pop()
            try:
                await _post(client, ledger, key)
            except httpx.TransportError as exc:
                ledger.failures.append(f"{key}: {exc!r} after the restart")

    async with httpx.AsyncClient(base_url=server.base, limits=_limits(), timeout=30) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(CLIENTS)))


def _stored(url: str) -> tuple[dict[str, str], dict[str, str], int]:
    """What the database holds of this test: events (code -> description), idempotency
    keys (key -> event code) and the number of history lines of those events."""
    store = Store(url)
    try:
        ev, ik, act = schema.events, schema.idempotency_keys, schema.event_actions
        mine = ev.c.description.like(f"{TAG} %")
        with store.engine.connect() as conn:
            rows = conn.execute(select(ev.c.code, ev.c.description).where(mine)).all()
            keys = dict(conn.execute(select(ik.c.key, ik.c.event_code)).all())
            lines = conn.execute(select(func.count()).select_from(act.join(ev))
                                 .where(mine)).scalar()
    finally:
        store.close()
    codes = [code for code, _ in rows]
    assert len(codes) == len(set(codes)), "two events share a code"
    return dict(rows), keys, lines


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_mid_load_loses_and_duplicates_nothing(kind, tmp_path):
    bodies = event_bodies(N_EVENTS, TAG)
    keys = [f"dur-{uuid.uuid4().hex}" for _ in bodies]
    ledger = Ledger(bodies=dict(zip(keys, bodies)))
    description = {k: b["description"] for k, b in zip(keys, bodies)}
    with fresh_database(kind, tmp_path, "gridgeo_test_durability") as url, \
            Server(url, tmp_path) as server:
        server.start()
        _run(_load_until_killed(server, ledger, keys))
        assert not ledger.failures, ledger.failures[:5]
        before_kill, in_doubt = dict(ledger.created), set(ledger.in_doubt)
        assert len(before_kill) >= KILL_AFTER and ledger.unsent, "the kill did not come mid-load"

        # Before any restart or retry: every 201 is in the database already, with the
        # request it answered.
        after_kill, _, _ = _stored(url)
        for key, answer in before_kill.items():
            assert after_kill.get(answer["code"]) == description[key]
        committed_in_doubt = {k for k in in_doubt if description[k] in after_kill.values()}

        server.start()
        # Retries with the same key and body: every request in doubt (half of them twice,
        # concurrently), a third of those that got a 201; and the requests never sent.
        rnd = random.Random(3)
        again = [k for k in before_kill if rnd.random() < 1 / 3]
        twice = [k for k in sorted(in_doubt) if rnd.random() < 0.5]
        sends = sorted(in_doubt) + twice + again + ledger.unsent
        rnd.shuffle(sends)
        _run(_send_all(server, ledger, sends))
        assert not ledger.failures, ledger.failures[:5]
        events, stored_keys, history_lines = _stored(url)
        server.kill()

    # Every request has its 201 by now; a 201 before the kill is never contradicted.
    assert set(ledger.created) == set(keys)
    for key, first in before_kill.items():
        assert ledger.created[key] == first
    for key in again:
        assert ledger.answers[key] == [(201, False), (201, True)]
    # A request in doubt was answered from its stored response (Idempotent-Replayed)
    # exactly when it had been committed before the kill; some always had been (the
    # clients that gave up long before the kill).
    replayed = {k for k in in_doubt if ledger.answers[k][0] == (201, True)}
    assert replayed == committed_in_doubt and committed_in_doubt
    # The database: exactly one event per key, the one its 201 named, with its own request.
    assert len(events) == len(keys), f"{len(events) - len(keys):+d} events"
    assert {k: stored_keys.get(k) for k in keys} == {k: ledger.created[k]["code"] for k in keys}
    assert {events[ledger.created[k]["code"]] for k in keys} == set(description.values())
    assert all(events[ledger.created[k]["code"]] == description[k] for k in keys)
    assert all(re.fullmatch(r"E\d{13,}", code) for code in events)
    assert history_lines == len(keys), "every event has its report line, once"
    print(f"{kind}: {len(before_kill)} created before the kill, {len(in_doubt)} in doubt "
          f"({len(committed_in_doubt)} of them committed), {len(ledger.unsent)} sent after it")


def test_a_waiter_that_gives_up_does_not_strand_its_batch(tmp_path):
    """A cancelled future (its request's task was cancelled) is dropped unwritten; the
    rest of its batch is written and answered, and the writer thread goes on."""
    store = Store(f"sqlite:///{tmp_path / 'gc.db'}")
    gate = threading.Event()

    def write(conn, items, errors):
        if items == ["first"]:
            gate.wait(timeout=10)  # hold the writer so that the next three queue up
        return [f"{item} written" for item in items]

    committer = GroupCommitter(store, write)
    first = committer.submit("first")
    time.sleep(0.05)
    second, third, fourth = (committer.submit(x) for x in ("second", "third", "fourth"))
    assert third.cancel()
    gate.set()
    assert first.result(timeout=10) == "first written"
    assert second.result(timeout=10) == "second written"
    assert fourth.result(timeout=10) == "fourth written"
    assert third.cancelled() and not fourth.cancel()
    assert committer.submit("fifth").result(timeout=10) == "fifth written"
    assert committer.items == 4
    store.close()
