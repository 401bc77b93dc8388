"""Server time of the console's list and event pages on the replayed sample year.

Loads the sample township and replays its year of events (about 22,000) into a temporary
SQLite database (or uses ``--database URL`` as it is, e.g. the ``gridgeo.db`` of
``make run``), logs in one user per role, and times each page in the application itself
(FastAPI's TestClient: no network, so the figure is the server's time: session check,
queries, template). The peer is the API's answer to the same question (JSON, with a token):
the ratio says what the HTML costs on top. The target is well under 300 ms per page.

    .venv/bin/python benchmarks/bench_console.py
    .venv/bin/python benchmarks/bench_console.py --database sqlite:///gridgeo.db --runs 30
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PASSWORD = "bench password 1"


def _store(url: str | None, folder: Path):
    from gridgeo.store import Store

    if url:
        store = Store(url)
        store.migrate()
        return store
    from gridgeo.events.replay import replay_sample
    from gridgeo.sample import load_sample

    store = Store(f"sqlite:///{folder / 'bench.db'}")
    store.migrate()
    print("loading the sample and replaying its year (about a minute) ...", flush=True)
    load_sample(store)
    replay_sample(store)
    return store


def _users(store) -> dict[str, dict]:
    from sqlalchemy import func, select

    from gridgeo import auth, sessions
    from gridgeo.store import schema

    ev = schema.events
    with store.engine.connect() as conn:
        department = conn.execute(select(ev.c.department, func.count()).where(ev.c.department.is_not(None))
                                  .group_by(ev.c.department).order_by(func.count().desc()).limit(1)).first()[0]
        grid = conn.execute(select(ev.c.grid_code, func.count()).where(ev.c.grid_code.is_not(None))
                            .group_by(ev.c.grid_code).order_by(func.count().desc()).limit(1)).first()[0]
    specs = {"bench-command": dict(role="command_room"), "bench-dept": dict(role="department", department=department),
             "bench-worker": dict(role="grid_worker", grids=[grid])}
    existing = {u["username"] for u in auth.list_users(store)}
    out = {}
    for username, spec in specs.items():
        if username not in existing:
            auth.create_user(store, username, actor="bench", **spec)
        sessions.set_password(store, username, PASSWORD, actor="bench")
        token, _ = auth.create_token(store, username, label="bench", days=1, actor="bench")
        out[username] = {"token": token, **spec}
    return out


def _time(client, path: str, runs: int, headers=None) -> list[float]:
    r = client.get(path, headers=headers)  # warm: caches, the first plan read
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(path, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="use this database as it is (default: a fresh replayed sample)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    import os

    os.environ.setdefault("GRIDGEO_REQUEST_LOG", "false")
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from gridgeo.api.main import create_app
    from gridgeo.api.resources import get_store
    from gridgeo.store import schema

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(args.database, Path(tmp))
        users = _users(store)
        ev, ea = schema.events, schema.event_actions
        with store.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(ev)).scalar()
            busiest = conn.execute(select(ev.c.code).join(ea, ea.c.event_id == ev.c.id).group_by(ev.c.code)
                                   .order_by(func.count().desc()).limit(1)).scalar()
        app = create_app()
        app.dependency_overrides[get_store] = lambda: store
        print(f"{n:,} events; {args.runs} runs per page; median and p90 server time in ms\n")
        print(f"{'page':<44} {'median':>8} {'p90':>8}   {'API peer':<34} {'median':>8} {'ratio':>6}")
        worst = 0.0
        for username, pages in {
            "bench-command": [("/command", "/v1/command-room"), ("/command?queue=overdue", "/v1/supervision"),
                              ("/events", "/v1/events"), ("/events?state=closed&platform=market",
                                                          "/v1/events?state=closed&platform=market"),
                              ("/events?text=纠纷", None), (f"/events/{busiest}", f"/v1/events/{busiest}"),
                              ("/supervision", "/v1/supervision")],
            "bench-dept": [("/tasks", None)],
            "bench-worker": [("/grid", None)],
        }.items():
            with TestClient(app) as client:
                page = client.get("/login")
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
                r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf},
                                follow_redirects=False)
                assert r.status_code == 303, r.text[:300]
                bearer = {"Authorization": f"Bearer {users[username]['token']}"}
                for path, peer in pages:
                    times = _time(client, path, args.runs)
                    med, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
                    worst = max(worst, med)
                    line = f"{path[:44]:<44} {med:8.1f} {p90:8.1f}"
                    if peer:
                        pt = statistics.median(_time(client, peer, args.runs, headers=bearer))
                        line += f"   {peer[:34]:<34} {pt:8.1f} {med / pt:6.2f}"
                    print(line, flush=True)
        print(f"\nslowest page: {worst:.1f} ms median (target: well under 300 ms)")
        store.close()


if __name__ == "__main__":
    main()
