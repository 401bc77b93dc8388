"""Fixtures: stores on SQLite and on PostgreSQL + PostGIS, and a tiny hand-built township.

The PostgreSQL half uses ``GRIDGEO_TEST_POSTGRES_URL`` (default: the local server's
``gridgeo_test`` database, created if missing). Where no server answers, those tests
are skipped locally and fail in CI (``CI=true``), so a green CI always means both.
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import create_engine, text

from gridgeo.store import Store, metadata

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
PG_URL = os.environ.get(
    "GRIDGEO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/gridgeo_test"
)


def _ensure_pg_database(url: str) -> str | None:
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


@pytest.fixture(scope="session")
def pg_url():
    why = _ensure_pg_database(PG_URL)
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


def _truncate(store: Store) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """An empty, migrated store on each database."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'test.db'}")
        s.migrate()
    else:
        s = Store(request.getfixturevalue("pg_url"))
        _truncate(s)
    yield s
    s.close()


# -- a tiny township, small enough to reason about by hand ------------------------------
#
# Two villages side by side, 0.01 degree squares near 119.40E 28.40N (about 980 m by
# 1110 m), each split into two grids west | east. Households sit inside the grids.

X0, Y0, D = 119.40, 28.40, 0.01
V1, V2 = "331124201201", "331124201202"


def box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


@pytest.fixture
def tiny(tmp_path):
    """Paths of a consistent tiny township: divisions, grids, households, staff, categories."""
    return make_tiny(tmp_path)


def make_tiny(tmp_path: Path) -> dict:
    """Write the tiny township's files into ``tmp_path`` (for fixtures of wider scope)."""
    div = gpd.GeoDataFrame(
        {
            "code": ["331124", "331124201", V1, V2],
            "name": ["松阳县", "测试乡", "东村", "西村"],
            "level": ["county", "township", "village", "village"],
            "parent_code": [None, "331124", "331124201", "331124201"],
        },
        geometry=[None, box(X0, Y0, X0 + 2 * D, Y0 + D), box(X0, Y0, X0 + D, Y0 + D),
                  box(X0 + D, Y0, X0 + 2 * D, Y0 + D)],
        crs=4326,
    )
    h = D / 2
    grids = gpd.GeoDataFrame(
        {
            "code": [V1 + "001", V1 + "002", V2 + "001", V2 + "002"],
            "name": ["东村一网格", "东村二网格", "西村一网格", "西村二网格"],
            "village_code": [V1, V1, V2, V2],
            "kind": ["basic"] * 4,
        },
        geometry=[box(X0, Y0, X0 + h, Y0 + D), box(X0 + h, Y0, X0 + D, Y0 + D),
                  box(X0 + D, Y0, X0 + D + h, Y0 + D), box(X0 + D + h, Y0, X0 + 2 * D, Y0 + D)],
        crs=4326,
    )
    pts = [(X0 + 0.002, Y0 + 0.002), (X0 + 0.007, Y0 + 0.005), (X0 + 0.012, Y0 + 0.008),
           (X0 + 0.017, Y0 + 0.003), (X0 + 0.018, Y0 + 0.009)]
    households = gpd.GeoDataFrame(
        {
            "code": [f"H{i:03d}" for i in range(1, 6)],
            "address": [f"测试乡东村{i}号" for i in range(1, 6)],
            "village_code": [V1, V1, V2, V2, V2],
            "households": [1, 2, 1, 3, 1],
            "population": [3, 5, 2, 8, 1],
        },
        geometry=[shapely.Point(p) for p in pts],
        crs=4326,
    )
    path = tmp_path / "tiny.gpkg"
    div.to_file(path, layer="divisions")
    grids.to_file(path, layer="grids")
    households.to_file(path, layer="households")
    staff = tmp_path / "staff.csv"
    staff.write_text(
        "code,name,phone,role,grid_code\n"
        f"P1,张三,13800000001,grid_head,{V1}001\n"
        f"P2,李四,13800000002,full_time_worker,{V1}001\n"
        f"P3,王五,13800000003,instructor,{V1}001\n"
        f"P3,王五,13800000003,instructor,{V1}002\n",
        encoding="utf-8",
    )
    categories = tmp_path / "categories.csv"
    categories.write_text(
        "code,name,platform,department,deadline_hours,major,description\n"
        "ZZ001,矛盾纠纷,stability,综治办,72,false,\n"
        "ZF001,违章搭建,enforcement,综合行政执法中队,120,false,\n",
        encoding="utf-8",
    )
    return {"gpkg": path, "staff": staff, "categories": categories, "divisions": div,
            "grids": grids, "households": households, "dir": tmp_path}


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sample_store(request, tmp_path_factory):
    """The sample township loaded once per session on each database; treat it as read-only."""
    from gridgeo.sample import load_sample

    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path_factory.mktemp('sample') / 'sample.db'}")
        s.migrate()
    else:
        s = Store(request.getfixturevalue("pg_url"))
        _truncate(s)
    load_sample(s)
    yield s
    if request.param == "postgresql":
        _truncate(s)
    s.close()
