"""The two databases of the suite: a SQLite file per test, and the PostgreSQL + PostGIS
database named by ``GRIDGEO_TEST_POSTGRES_URL`` (default: the local server's
``gridgeo_test``), shared by the whole session and emptied between tests; one per worker
process when the suite runs in parallel."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from gridgeo.store import Store, metadata

PG_URL = os.environ.get(
    "GRIDGEO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/gridgeo_test"
)
# Under pytest-xdist (`make test` runs ``-n auto``) each worker process has a database of
# its own, ``gridgeo_test_gw0``, ``gridgeo_test_gw1``...: the shared one is emptied per test.
if os.environ.get("PYTEST_XDIST_WORKER"):
    PG_URL = f"{PG_URL}_{os.environ['PYTEST_XDIST_WORKER']}"


def ensure_pg_database(url: str) -> str | None:
    """Create the test database if missing; return why PostgreSQL is unusable, or None."""
    base, _, name = url.rpartition("/")
    try:
        admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            available = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
            ).first()
        admin.dispose()
    except Exception as exc:  # no server, refused ...
        return f"PostgreSQL at {base} is not reachable: {exc}"
    if not available:
        return "PostGIS is not installed on the PostgreSQL server (apt-get install postgresql-15-postgis-3)"
    return None


def truncate(store: Store) -> None:
    """Empty every table of ``store`` (PostgreSQL), identities restarted.

    TRUNCATE waits for every lock on the tables. A connection an earlier test opened
    without ``with`` and dropped stays in its transaction, holding its locks, until the
    garbage collector finds it, and a thread waiting on the server allocates nothing, so
    the collector never runs: the wait was endless (a CI run hung on it). So the wait is
    bounded; then the collector is run and the TRUNCATE tried again, and if a lock is still
    held the test fails, naming the sessions that hold it."""
    names = ", ".join(t.name for t in metadata.sorted_tables)
    for attempt in (1, 2):
        try:
            with store.engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        except OperationalError as exc:
            if "lock timeout" not in str(exc):
                raise
            if attempt == 1:
                gc.collect()
                continue
            with store.engine.connect() as conn:
                holders = conn.execute(text(
                    "SELECT pid, state, left(query, 200) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()
            raise RuntimeError(f"the tables of the test database are locked by other sessions: {holders}; "
                               "a connection was opened without `with` and not closed") from exc


def empty_store(kind: str, folder: Path, pg_url: str | None = None) -> Store:
    """An empty, migrated store: a new SQLite file in ``folder`` (``kind="sqlite"``), or
    the shared PostgreSQL database ``pg_url``, truncated (``kind="postgresql"``)."""
    if kind == "sqlite":
        store = Store(f"sqlite:///{folder / 'test.db'}")
        store.migrate()
        return store
    if kind != "postgresql" or not pg_url:
        raise ValueError(f"empty_store: kind must be 'sqlite' or 'postgresql' with pg_url, got {kind!r}")
    store = Store(pg_url)
    truncate(store)
    return store


def row_counts(store: Store) -> dict[str, int]:
    """Rows in every table of ``store``: taken before and after tests that must write
    nothing (refusals, lookups) sharing one store."""
    with store.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables}
