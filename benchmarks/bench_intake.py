"""Sustained, durable event intake over HTTP: events/s and latency, SQLite and PostgreSQL.

Run from the repository root::

    python benchmarks/bench_intake.py                       # both databases, 20,000 events each
    python benchmarks/bench_intake.py --db sqlite --events 5000 --connections 16

What it does, per database: a fresh database with the sample township (grids, households,
staff, categories; no events), one uvicorn worker of the gridgeo API on 127.0.0.1, and a
client of ``--connections`` keep-alive HTTP/1.1 connections posting ``POST /v1/events``
with an ``Idempotency-Key`` each, as fast as the server answers, for ``--events`` events
(bounded, and stopped after ``--max-seconds`` whatever happens). The events look like the
sample year's: positions around households with GPS noise, 34 % in GCJ-02, 5 % address
only, a few outside the township; 1 % of the requests are sent twice (a client retry).

Every 201 is a committed event (the API commits before answering). Afterwards the events
in the database are counted and compared with the codes the server gave out: none may be
missing, and the retries must not have created any. Reported: events/s over the measured
phase (after a warm-up), p50 / p99 / max latency. Target (issue 5): >= 1,000 events/s on
SQLite. The client runs on the same 2 cores as the server and takes its share of them.
Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("GRIDGEO_BENCH_POSTGRES_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
#: The benchmark's own database (dropped and made anew): name another when several people
#: run it on one server at once.
PG_DB = os.environ.get("GRIDGEO_BENCH_POSTGRES_DB", "gridgeo_bench_intake")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_database(kind: str, folder: Path) -> tuple[str, str]:
    """A fresh, migrated database with the sample township but no events, and the token
    of the system that posts (a command-room account, as the 12345 hotline integration
    would have: patrols, hotline and petitions are reported with a token)."""
    import datetime as dt

    from sqlalchemy import create_engine, text

    from gridgeo.auth import create_token, create_user
    from gridgeo.io import import_files
    from gridgeo.store import Store

    if kind == "sqlite":
        url = f"sqlite:///{folder / 'bench.db'}"
    else:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DB}"'))
        admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_DB}"
    store = Store(url)
    store.migrate()
    sample = ROOT / "data" / "sample"
    import_files(store, [sample / "township.gpkg", sample / "categories.csv", sample / "staff.csv"],
                 plan_version="2024-01", effective_from=dt.date(2024, 1, 1), actor="bench")
    create_user(store, "bench", role="command_room", name="12345 热线接口", actor="bench")
    token, _ = create_token(store, "bench", days=1, actor="bench")
    store.close()
    return url, token


def drop_database() -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
    admin.dispose()


def make_events(n: int, seed: int = 5) -> list[dict]:
    """``n`` event bodies shaped like the sample year's."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd

    from gridgeo.crs import convert

    rng = np.random.default_rng(seed)
    households = gpd.read_file(ROOT / "data" / "sample" / "township.gpkg", layer="households")
    cats = pd.read_csv(ROOT / "data" / "sample" / "categories.csv", dtype=str)["code"].to_numpy()
    pick = rng.integers(len(households), size=n)
    lon = households.geometry.x.to_numpy()[pick] + rng.normal(scale=0.0002, size=n)
    lat = households.geometry.y.to_numpy()[pick] + rng.normal(scale=0.0002, size=n)
    outside = rng.random(n) < 0.005
    lon[outside] += 0.06
    kind = rng.random(n)
    gcj = kind < 0.34
    glon, glat = convert(lon[gcj], lat[gcj], "wgs84", "gcj02")
    lon[gcj], lat[gcj] = glon, glat
    sources = np.array(["patrol", "hotline", "app", "inspection", "department", "petition"])
    src = sources[rng.choice(6, size=n, p=[0.55, 0.18, 0.12, 0.06, 0.05, 0.04])]
    bodies = []
    addresses = households["address"].to_numpy()[pick]
    for i in range(n):
        b = {"source": str(src[i]), "category_code": str(cats[rng.integers(len(cats))]),
             "description": "基准测试事件", "reporter_name": "测试", "reporter_phone": "13800000000"}
        if kind[i] > 0.95:
            b["address"] = str(addresses[i])
        else:
            b.update(lon=round(float(lon[i]), 7), lat=round(float(lat[i]), 7),
                     crs="gcj02" if gcj[i] else "wgs84")
        bodies.append(b)
    return bodies


class Client:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}", "Content-Type: application/json",
                f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            if k.lower() == "content-length":
                length = int(v)
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    async def close(self):
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except Exception:
            pass


async def drive(port: int, bodies: list[dict], connections: int, warmup: int, max_seconds: float,
                token: str):
    """Post every body (1 % twice, as retries) over ``connections`` connections."""
    rnd = random.Random(7)
    jobs = []
    for b in bodies:
        key = uuid.uuid4().hex
        raw = json.dumps(b, ensure_ascii=False).encode()
        jobs.append((key, raw))
        if rnd.random() < 0.01:
            jobs.append((key, raw))  # a client retry of the same request
    queue: asyncio.Queue = asyncio.Queue()
    for j in jobs:
        queue.put_nowait(j)
    results: list[tuple[float, float, int, str, str | None]] = []  # (start, latency, status, key, code)
    deadline = time.perf_counter() + max_seconds

    async def worker():
        c = Client("127.0.0.1", port)
        await c.open()
        try:
            while time.perf_counter() < deadline:
                try:
                    key, raw = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                status, data = await c.post("/v1/events", raw, {"Idempotency-Key": key,
                                                                 "Authorization": f"Bearer {token}"})
                t1 = time.perf_counter()
                code = json.loads(data).get("code") if status == 201 else None
                if status != 201:
                    print(f"  HTTP {status}: {data[:200]!r}", file=sys.stderr)
                results.append((t0, t1 - t0, status, key, code))
        finally:
            await c.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return jobs, results


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process so far, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def run(kind: str, args) -> dict:
    import numpy as np
    from sqlalchemy import func, select

    from gridgeo.store import Store, schema

    with tempfile.TemporaryDirectory() as tmp:
        url, token = prepare_database(kind, Path(tmp))
        port = free_port()
        env = dict(os.environ, GRIDGEO_DATABASE_URL=url, PYTHONPATH=str(ROOT), GRIDGEO_REQUEST_LOG="false")
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "gridgeo.api.main:app", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env)
        try:
            for _ in range(1200):  # two minutes: a loaded machine starts the app slowly
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("the server did not start")
            bodies = make_events(args.events + args.warmup)
            # warm-up: caches (locator, address register), connections, JIT-less Python paths
            asyncio.run(drive(port, bodies[:args.warmup], args.connections, 0, args.max_seconds, token))
            t0 = time.perf_counter()
            server_cpu0, client_cpu0 = cpu_seconds(server.pid), time.process_time()
            jobs, results = asyncio.run(drive(port, bodies[args.warmup:], args.connections, 0, args.max_seconds,
                                              token))
            elapsed = time.perf_counter() - t0
            server_cpu = cpu_seconds(server.pid) - server_cpu0
            client_cpu = time.process_time() - client_cpu0
            load = os.getloadavg()[0]
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        store = Store(url)
        with store.engine.connect() as conn:
            stored = set(conn.execute(select(schema.events.c.code)).scalars())
            n_keys = conn.execute(select(func.count()).select_from(schema.idempotency_keys)).scalar()
        store.close()
        if kind == "postgresql":
            drop_database()
    ok = [r for r in results if r[2] == 201]
    codes = {r[4] for r in ok}
    by_key: dict[str, set] = {}
    for r in ok:
        by_key.setdefault(r[3], set()).add(r[4])
    retries_consistent = all(len(v) == 1 for v in by_key.values())
    lat = np.array([r[1] for r in ok]) * 1000
    return {
        "database": kind,
        "requests": len(results),
        "created": len(codes),
        "errors": len(results) - len(ok),
        "unsent": len(jobs) - len(results),
        "elapsed_s": round(elapsed, 2),
        "events_per_s": round(len(codes) / elapsed, 1),
        "requests_per_s": round(len(results) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        "max_ms": round(float(lat.max()), 2) if len(lat) else None,
        "server_cpu_ms_per_request": round(server_cpu / max(len(results), 1) * 1000, 3),
        "client_cpu_ms_per_request": round(client_cpu / max(len(results), 1) * 1000, 3),
        "load_average_1m": round(load, 2),
        "lost": len(codes - stored),
        "stored_total": len(stored),
        "retries_same_answer": retries_consistent,
        "idempotency_keys": n_keys,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--warmup", type=int, default=1_000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--max-seconds", type=float, default=180.0)
    args = ap.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    failed = False
    for kind in kinds:
        try:
            r = run(kind, args)
        except Exception as exc:  # PostgreSQL missing ...
            print(f"{kind}: not run: {exc}")
            failed = failed or kind == "sqlite"
            continue
        print(json.dumps(r, ensure_ascii=False))
        target = " (target >= 1000)" if kind == "sqlite" else ""
        print(f"{kind}: {r['events_per_s']} events/s{target}, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
              f"lost {r['lost']}, errors {r['errors']}; server CPU {r['server_cpu_ms_per_request']} ms/request "
              f"(= {1000 / r['server_cpu_ms_per_request']:.0f} requests per CPU-second), "
              f"load average {r['load_average_1m']} on {os.cpu_count()} cores")
        if r["lost"] or r["errors"] or not r["retries_same_answer"]:
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
