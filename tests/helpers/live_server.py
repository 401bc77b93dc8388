"""A real ``gridgeo serve`` in a subprocess, for the durability and scale-out tests.

Not a test module: :mod:`test_durability` and :mod:`test_scaleout` import it. It gives

- :func:`fresh_database`: a migrated database holding the sample township (grids,
  households, staff, categories; no events) on SQLite or on a *private* PostgreSQL
  database (never the shared ``gridgeo_test``; one per test process);
- :class:`Server`: ``gridgeo serve`` in its own process group, killed as a group
  (``SIGKILL``) in teardown whatever happened, and which worker process holds a given
  client connection (Linux ``/proc``), to prove that requests went through every worker;
- :func:`event_bodies`: intake requests at household positions of the sample.

Only loopback addresses are used.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import httpx
import pytest
from sqlalchemy import create_engine, text

from helpers.databases import PG_URL
from helpers.paths import SAMPLE

__all__ = ["Server", "client_port", "event_bodies", "free_port", "fresh_database", "pg_url_for"]

#: Environment of every server started here: no request log (the test reads the
#: database, not the log), no lookup rate limit (the tests ask in bursts).
SERVER_ENV = {"GRIDGEO_REQUEST_LOG": "false", "GRIDGEO_LOOKUP_RATE": "0", "GRIDGEO_PUBLIC_INTAKE_RATE": "0"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- databases ---------------------------------------------------------------------------


@contextmanager
def serve_in_thread(app, what: str = "the server"):
    """``app`` served by uvicorn in a thread of this process on a free port, for a module's
    browser tests (the console's): yields its base URL, stops it on exit."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, f"{what} did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def pg_url_for(name: str) -> str:
    """The URL of the private database ``name`` on the test PostgreSQL server."""
    return f"{PG_URL.rpartition('/')[0]}/{name}"


def _admin():
    return create_engine(pg_url_for("postgres"), isolation_level="AUTOCOMMIT")


def _recreate_pg(name: str) -> str:
    """Drop and create ``name``; return the URL. Skips (fails in CI) without a server.

    Databases of the same prefix left by test runs that died (their pid suffix names no
    live process) are dropped too.
    """
    prefix = name.rsplit("_", 1)[0]
    try:
        admin = _admin()
        with admin.connect() as conn:
            like = text("SELECT datname FROM pg_database WHERE datname LIKE :p")
            for (old,) in conn.execute(like, {"p": f"{prefix}\\_%"}).all():
                pid = old.rsplit("_", 1)[1]
                if old == name or (pid.isdigit() and not Path(f"/proc/{pid}").exists()):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            postgis = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")).first()
        admin.dispose()
    except Exception as exc:  # noqa: BLE001 - no server, refused ...
        postgis, why = None, f"PostgreSQL at {PG_URL.rpartition('/')[0]} is not reachable: {exc}"
    else:
        why = None if postgis else "PostGIS is not installed on the PostgreSQL server"
    if why:  # as conftest's pg_url: skipped on a developer machine, a failure in CI
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return pg_url_for(name)


def _drop_pg(name: str) -> None:
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def load_township(url: str) -> None:
    """Migrate ``url`` and import the sample township, its staff and catalogue (no events)."""
    from gridgeo.io import import_files
    from gridgeo.store import Store

    store = Store(url)
    try:
        store.migrate()
        files = [SAMPLE / "township.gpkg", SAMPLE / "categories.csv", SAMPLE / "staff.csv"]
        import_files(store, files, plan_version="2024-01", effective_from=dt.date(2024, 1, 1),
                     actor="test")
    finally:
        store.close()


@contextmanager
def fresh_database(kind: str, folder: Path, pg_prefix: str):
    """A database with the sample township, on ``sqlite`` (a file in ``folder``) or
    ``postgresql``: a private database, ``pg_prefix`` + ``_`` + this process's pid (two
    test runs at once never share one), dropped on exit."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'live.db'}"
        load_township(url)
        yield url
        return
    name = f"{pg_prefix}_{os.getpid()}"
    url = _recreate_pg(name)
    try:
        load_township(url)
        yield url
    finally:
        _drop_pg(name)


# -- the server --------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], pgrp [2])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _group_pids(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (zombies excluded)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None and st[0] != "Z" and int(st[2]) == pgid:
                pids.append(int(entry))
    return pids


def _holds(pid: int, inode: str) -> bool:
    """Whether process ``pid`` has socket ``inode`` open."""
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


class Server:
    """``gridgeo serve`` on ``url`` with ``workers`` processes, in a process group of its own.

    Use as a context manager: the group is killed on exit, even when the test failed.
    ``start()`` again after ``kill()`` restarts it (on a new port).
    """

    def __init__(self, url: str, folder: Path, *, workers: int = 1):
        self.url = url
        self.folder = folder
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def start(self, timeout: float = 90.0) -> Server:
        """Start the server; wait until every worker has started up and ``/health``
        answers 200."""
        self.port = free_port()
        self.starts += 1
        self.log = self.folder / f"server-{self.starts}.log"
        env = dict(os.environ, **SERVER_ENV, GRIDGEO_DATABASE_URL=self.url,
                   GRIDGEO_CACHE_DIR=str(self.folder / "cache"))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridgeo", "serve", "--database", self.url,
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                 "--no-access-log"],
                cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self._started() >= self.workers and len(self.worker_pids()) >= self.workers \
                        and httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the server did not answer /health within {timeout} s:\n{self.log_tail()}")

    def _started(self) -> int:
        """Workers that have started up (uvicorn logs one line each)."""
        try:
            return self.log.read_text(errors="replace").count("Application startup complete")
        except OSError:
            return 0

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the workers, or the server itself with one."""
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid]
        # uvicorn's supervisor binds the socket and spawns the workers, which inherit it;
        # multiprocessing's resource tracker is in the group too, without the socket.
        listening = self._socket_inode(0)
        if listening is None:
            return []
        return [p for p in _group_pids(self.proc.pid)
                if p != self.proc.pid and _holds(p, listening)]

    def kill(self) -> None:
        """SIGKILL the whole process group and wait until every member is gone."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _group_pids(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.proc = None

    def _socket_inode(self, remote_port: int) -> str | None:
        """The inode of the server's socket on its port whose peer has ``remote_port``
        (0: the listening socket), from /proc/net/tcp."""
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                f = row.split()
                local, remote = f[1].rsplit(":", 1)[1], f[2].rsplit(":", 1)[1]
                if int(local, 16) == self.port and int(remote, 16) == remote_port \
                        and (remote_port or f[3] == "0A"):  # 0A: LISTEN
                    return f[9]
        return None

    def worker_of(self, client_port: int) -> int | None:
        """The pid of the worker holding the server side of the TCP connection that the
        client has on ``client_port``, or None if none holds it (the connection closed)."""
        inode = self._socket_inode(client_port)
        if inode is None:
            return None
        return next((pid for pid in self.worker_pids() if _holds(pid, inode)), None)


def client_port(response: httpx.Response) -> int:
    """The local port of the connection a response came over."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


# -- requests ----------------------------------------------------------------------------


def event_bodies(n: int, tag: str, seed: int = 9) -> list[dict]:
    """``n`` intake requests at (noisy) household positions of the sample, a third in
    GCJ-02, a few with an address only; each description carries ``tag`` and its index
    so that the stored event can be matched with its request."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd

    from gridgeo.crs import convert

    rng = np.random.default_rng(seed)
    households = gpd.read_file(SAMPLE / "township.gpkg", layer="households",
                               columns=["address"])
    cats = pd.read_csv(SAMPLE / "categories.csv", dtype=str)["code"].to_numpy()
    pick = rng.integers(len(households), size=n)
    lon = households.geometry.x.to_numpy()[pick] + rng.normal(scale=0.0002, size=n)
    lat = households.geometry.y.to_numpy()[pick] + rng.normal(scale=0.0002, size=n)
    gcj = rng.random(n) < 0.34
    lon[gcj], lat[gcj] = convert(lon[gcj], lat[gcj], "wgs84", "gcj02")
    sources = ["app"]  # the public's source: the tests post without a token
    bodies = []
    for i in range(n):
        b = {"source": sources[i % len(sources)],
             "category_code": str(cats[rng.integers(len(cats))]),
             "description": f"{tag} {i}", "reporter_name": "测试", "reporter_phone": "13800000000"}
        if i % 20 == 19:
            b["address"] = str(households["address"].iloc[pick[i]])
        else:
            b.update(lon=round(float(lon[i]), 7), lat=round(float(lat[i]), 7),
                     crs="gcj02" if gcj[i] else "wgs84")
        bodies.append(b)
    return bodies
