"""The store: the same suite on SQLite and on PostgreSQL + PostGIS."""

from __future__ import annotations

import datetime as dt

import pytest
import shapely
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from gridgeo.errors import NotFound, StoreError
from gridgeo.store import HEAD_REVISION, Store, metadata, schema

UTC = dt.timezone.utc
CST = dt.timezone(dt.timedelta(hours=8))


def test_migrate_is_idempotent_and_matches_the_tables(store):
    store.migrate()
    assert store.revision() == HEAD_REVISION
    store.check()

    def include(obj, name, type_, reflected, compare_to):
        # alembic's own bookkeeping table, and PostGIS's spatial_ref_sys.
        if type_ == "table" and name in ("alembic_version", "spatial_ref_sys"):
            return False
        if type_ == "index" and name and name.endswith("_geometry_gist"):
            return store.dialect == "postgresql"
        return True

    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": False})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_unmigrated_database_is_refused(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(StoreError, match="gridgeo init"):
        store.check()


def test_unknown_database_url():
    with pytest.raises(StoreError, match="unsupported database URL"):
        Store("mysql://somewhere/db")


@pytest.mark.parametrize(
    "geom",
    [
        shapely.Point(119.4, 28.4),
        shapely.LineString([(119.4, 28.4), (119.41, 28.41), (119.42, 28.40)]),
        shapely.Polygon([(119.4, 28.4), (119.41, 28.4), (119.41, 28.41), (119.4, 28.4)],
                        holes=[[(119.405, 28.401), (119.406, 28.401), (119.406, 28.402), (119.405, 28.401)]]),
        shapely.MultiPolygon([shapely.box(119.4, 28.4, 119.41, 28.41), shapely.box(119.5, 28.5, 119.51, 28.51)]),
    ],
    ids=["point", "line", "polygon-with-hole", "multipolygon"],
)
def test_geometry_round_trip(store, geom):
    with store.engine.begin() as conn:
        conn.execute(schema.roads.insert().values(code="r", kind="road", geometry=geom))
        conn.execute(schema.divisions.insert().values(code="331124", name="县", level="county", geometry=None))
    back = store.read("roads").geometry.iloc[0]
    assert shapely.equals_exact(back, geom, 0)
    assert store.read("divisions").geometry.iloc[0] is None


def test_postgis_columns_and_indexes(store):
    if store.dialect != "postgresql":
        pytest.skip("PostGIS only")
    with store.engine.begin() as conn:
        conn.execute(schema.roads.insert().values(
            code="r", kind="river", geometry=shapely.LineString([(119.4, 28.4), (119.5, 28.5)])))
        srid, gtype = conn.execute(text("SELECT ST_SRID(geometry), GeometryType(geometry) FROM roads")).one()
        indexes = {r[0] for r in conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gist%'"))}
        # A spatial query answered by PostGIS itself.
        n = conn.execute(text(
            "SELECT count(*) FROM roads WHERE ST_Intersects(geometry, ST_MakeEnvelope(119.44, 28.44, 119.46, 28.46, 4326))"
        )).scalar()
    assert (srid, gtype) == (4326, "LINESTRING")
    assert {f"ix_{t}_geometry_gist" for t in schema.SPATIAL_TABLES} <= indexes
    assert n == 1


def test_sqlite_is_wal(store):
    if store.dialect != "sqlite":
        pytest.skip("SQLite only")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_audit_log_is_append_only(store):
    with store.engine.begin() as conn:
        Store.audit(conn, actor="alice", action="import", entity="grids", detail={"rows": 3})
    log = store.audit_log(entity="grids")
    assert list(log["actor"]) == ["alice"] and log.iloc[0]["detail"] == {"rows": 3}
    for stmt in (schema.audit_log.update().values(actor="mallory"), schema.audit_log.delete()):
        with pytest.raises(Exception, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(stmt)
    assert list(store.audit_log()["actor"]) == ["alice"]


def test_timestamps_are_utc_and_aware(store):
    with store.engine.begin() as conn:
        conn.execute(schema.categories.insert().values(
            code="C", name="n", platform="service", department="d", deadline_hours=24))
        conn.execute(schema.events.insert().values(
            code="E1", source="app", category_code="C",
            reported_at=dt.datetime(2026, 3, 1, 9, 30, tzinfo=CST),
            created_at=dt.datetime(2026, 3, 1, 1, 31, tzinfo=UTC)))
        got = conn.execute(select(schema.events.c.reported_at)).scalar()
    assert got == dt.datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
    assert got.tzinfo is not None
    with pytest.raises(Exception, match="no time zone"):
        with store.engine.begin() as conn:
            conn.execute(schema.events.insert().values(
                code="E2", source="app", reported_at=dt.datetime(2026, 3, 1, 9, 30),
                created_at=dt.datetime(2026, 3, 1, tzinfo=UTC)))


def test_plan_in_force_by_date(store):
    now = dt.datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(schema.plans.insert(), [
            dict(version="a", status="retired", effective_from=dt.date(2024, 1, 1),
                 effective_to=dt.date(2025, 1, 1), created_at=now),
            dict(version="b", status="published", effective_from=dt.date(2025, 1, 1),
                 effective_to=None, created_at=now),
            dict(version="draft", status="draft", effective_from=None, effective_to=None, created_at=now),
        ])
    assert store.plan_in_force(dt.date(2023, 12, 31)) is None
    assert store.plan_in_force(dt.date(2024, 12, 31))["version"] == "a"
    assert store.plan_in_force(dt.date(2025, 1, 1))["version"] == "b"
    assert store.plan_in_force(dt.date(2030, 1, 1))["version"] == "b"
    assert store.plan("draft")["status"] == "draft"
    with pytest.raises(NotFound):
        store.plan("nope")
    assert list(store.plans()["version"])[:2] == ["a", "b"]


def test_foreign_keys_are_enforced(store):
    with pytest.raises(Exception):
        with store.engine.begin() as conn:
            conn.execute(schema.divisions.insert().values(code="331124201", name="乡", level="township",
                                                          parent_code="999999"))
    assert store.is_empty()
