"""Fixtures of the whole suite: stores on SQLite and on PostgreSQL + PostGIS, the tiny
township and its events world, the hand-built assessment township, and the sample
township (loaded once per database, its year replayed once per session).

The PostgreSQL half uses ``GRIDGEO_TEST_POSTGRES_URL`` (default: the local server's
``gridgeo_test`` database, created if missing). Where no server answers, those tests
are skipped locally and fail in CI (``CI=true``), so a green CI always means both.

The data behind the fixtures is in plain modules under ``tests/helpers/`` (see
tests/README.md); fixtures used by one folder only are in that folder's ``conftest.py``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from contextlib import closing

import pytest
from sqlalchemy import create_engine, text

from gridgeo.config import get_settings
from gridgeo.store import Store
from helpers.databases import PG_URL, empty_store, ensure_pg_database, truncate
from helpers.events_world import load_world
from helpers.hand_built import build
from helpers.secrets_audit import Collector, scan_logs
from helpers.tiny import make_tiny

# The outbox worker and deadline sweeper run inside an app's lifespan by default; the tests
# start them where they test them (tests/notify), so that no other test's events change
# version under it (a sweep records a warning as a history line). Servers the tests start
# inherit this unless they set it.
os.environ.setdefault("GRIDGEO_OUTBOX_WORKER", "false")
# The suite's receivers listen on 127.0.0.1: webhooks and channels may point there.
os.environ.setdefault("GRIDGEO_NOTIFY_ALLOW_LOOPBACK", "true")

#: The longest test files (a minute or so each on 2 cores), run first, longest first: `make
#: test` hands whole files to its worker processes in collection order, so a long file left
#: for the end would keep one worker busy while the other has nothing left to do. (Not the
#: files that use ``sample_store``: pytest runs the tests of each of its databases together,
#: which moving one of those files would split, with other tests emptying the PostgreSQL one
#: between.)
LONG_FILES = (
    "api/test_fuzz.py", "project/test_notebooks.py", "api/test_hardening_http.py",
    "api/test_authz.py", "serve/test_durability.py", "events/test_events_replay.py",
    "distributed/test_distributed.py", "serve/test_scaleout.py", "io/test_import.py",
    "console/test_console_browser.py", "assess/test_assess.py", "notify/test_notify_live.py",
    "api/test_ogc.py",
)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0].removeprefix("tests/")
        return LONG_FILES.index(path) if path in LONG_FILES else len(LONG_FILES)

    items.sort(key=rank)  # stable: the order within a file, and of the rest, is kept

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(tmp_path_factory):
    """Everything logged in the test process and every server log the tests leave under
    pytest's temporary folder is searched for gridgeo secrets once the session ends; a
    secret found there fails the run (as an error in the last test's teardown)."""
    collector = Collector()
    logging.getLogger().addHandler(collector)
    yield
    logging.getLogger().removeHandler(collector)
    leaks = collector.leaks + scan_logs(tmp_path_factory.getbasetemp())
    assert not leaks, f"secrets reached a log: {leaks[:20]}"


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """The API's process pool (large lookups run there) is shut down when the session
    ends, so that none of its processes outlives the run (one was found left behind,
    parentless, after a full `make test`)."""
    yield
    middleware = sys.modules.get("gridgeo.api.middleware")
    pool = getattr(middleware, "_PROCESSES", None)
    if pool is not None:
        middleware._PROCESSES = None
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(autouse=True)
def fresh_settings():
    """Settings read anew after each test: a test that sets ``GRIDGEO_*`` variables (and
    reads the settings while they are set) leaves nothing cached for the next one."""
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def photos_in_a_temporary_folder(tmp_path_factory):
    """Photos any test stores (GRIDGEO_PHOTO_STORE, default ./gridgeo-photos) go to a
    folder of the session, never into the working tree; a test wanting its own sets it."""
    old = os.environ.get("GRIDGEO_PHOTO_STORE")
    os.environ["GRIDGEO_PHOTO_STORE"] = str(tmp_path_factory.mktemp("photos"))
    get_settings.cache_clear()
    yield
    if old is None:
        os.environ.pop("GRIDGEO_PHOTO_STORE", None)
    else:
        os.environ["GRIDGEO_PHOTO_STORE"] = old
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pg_url():
    why = ensure_pg_database(PG_URL)
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    store = Store(PG_URL)
    store.migrate()
    store.close()
    return PG_URL


@pytest.fixture(params=DATABASES)
def store(request, tmp_path):
    """An empty, migrated store on each database."""
    pg = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    s = empty_store(request.param, tmp_path, pg)
    yield s
    s.close()


@pytest.fixture
def tiny(tmp_path):
    """Paths of a consistent tiny township: divisions, grids, households, staff, categories
    (:mod:`helpers.tiny`)."""
    return make_tiny(tmp_path)


@pytest.fixture
def world(store, tiny):
    """The events township in ``store``: the tiny township, plan v1 from 2024-01-01, with
    the catalogue of :data:`helpers.events_world.CATEGORIES` (events and API tests)."""
    return load_world(store, tiny)


@pytest.fixture
def hand_built(store):
    """The hand-built assessment township in ``store``, every event and action written out
    (:mod:`helpers.hand_built`; the expected figures are in tests/assess/test_assess.py)."""
    build(store)
    return store


# -- the sample township: loaded once per database, its year replayed once ------------------


@pytest.fixture(scope="session")
def sample_sqlite(tmp_path_factory):
    """Path of a SQLite file holding the sample township (no events), loaded once per
    session. Never open it for writing: copy it (:func:`copy_sqlite`)."""
    from gridgeo.sample import load_sample

    path = tmp_path_factory.mktemp("sample") / "sample.db"
    s = Store(f"sqlite:///{path}")
    s.migrate()
    load_sample(s)
    s.close()
    return path


def copy_sqlite(src, dst) -> Store:
    """A store on a copy of the SQLite file ``src`` at ``dst`` (SQLite's online backup,
    so a file still open elsewhere copies consistently)."""
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)
    return Store(f"sqlite:///{dst}")


@pytest.fixture(scope="session")
def sample_copy(sample_sqlite, tmp_path_factory):
    """A factory: ``sample_copy()`` returns a store on a fresh private copy of the loaded
    sample (SQLite), for tests and fixtures that change it. The caller closes it."""

    def make() -> Store:
        return copy_sqlite(sample_sqlite, tmp_path_factory.mktemp("sample-copy") / "sample.db")

    return make


@pytest.fixture(scope="session", params=DATABASES)
def sample_store(request, sample_sqlite):
    """The sample township (no events) on each database, loaded once per session;
    read-only (a test that changes it uses ``sample_copy``)."""
    from gridgeo.sample import load_sample

    if request.param == "sqlite":
        s = Store(f"sqlite:///{sample_sqlite}")
        yield s
        s.close()
        return
    s = Store(request.getfixturevalue("pg_url"))
    truncate(s)
    load_sample(s)
    yield s
    truncate(s)
    s.close()


@pytest.fixture(scope="session")
def replayed(sample_copy):
    """The sample township after its year of events (SQLite), replayed once per session
    and shared by every test that asks: read-only. The year is the slow part (about half
    a minute), hence one replay for tests/assess and tests/distributed together."""
    from gridgeo.events.replay import replay_sample

    s = sample_copy()
    replay_sample(s)
    yield s
    s.close()
