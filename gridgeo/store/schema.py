"""The tables of the store (SQLAlchemy Core).

Migrations in ``gridgeo/migrations`` create exactly these; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gridgeo.store.types import Geometry, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: 网格划分方案: a version of the division of villages into grids.
plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="draft"),
    Column("effective_from", Date),
    Column("effective_to", Date),
    Column("created_at", UTCDateTime, nullable=False),
    Column("note", Text),
    Column("report", JSON),
    CheckConstraint("status IN ('draft', 'published', 'retired')", name="status"),
)

#: 行政区划: county, township / street, village / community.
divisions = Table(
    "divisions",
    metadata,
    Column("code", String(12), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("level", String(16), nullable=False),
    Column("parent_code", String(12), ForeignKey("divisions.code")),
    Column("geometry", Geometry("GEOMETRY")),
    CheckConstraint(
        "level IN ('county', 'township', 'street', 'village', 'community')", name="level"
    ),
    Index(None, "parent_code"),
)

#: 网格: one row per grid and plan version.
grids = Table(
    "grids",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("plan_id", Integer, ForeignKey("plans.id", ondelete="CASCADE"), nullable=False),
    Column("code", String(15), nullable=False),
    Column("name", String(200), nullable=False),
    Column("village_code", String(12), ForeignKey("divisions.code"), nullable=False),
    Column("kind", String(16), nullable=False, server_default="basic"),
    Column("households", Integer, nullable=False, server_default="0"),
    Column("population", Integer, nullable=False, server_default="0"),
    Column("buildings", Integer, nullable=False, server_default="0"),
    Column("geometry", Geometry("GEOMETRY"), nullable=False),
    UniqueConstraint("plan_id", "code"),
    CheckConstraint("kind IN ('basic', 'dedicated')", name="kind"),
    Index(None, "village_code"),
)

#: 户: address points with the households, population and buildings at them.
households = Table(
    "households",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("address", Text, nullable=False),
    Column("village_code", String(12), ForeignKey("divisions.code")),
    Column("households", Integer, nullable=False, server_default="1"),
    Column("population", Integer, nullable=False, server_default="0"),
    Column("buildings", Integer, nullable=False, server_default="0"),
    Column("contact_name", String(100)),
    Column("contact_phone", String(32)),
    Column("geometry", Geometry("POINT"), nullable=False),
    Index(None, "village_code"),
)

#: 道路河流: roads and rivers, the lines grid boundaries prefer.
roads = Table(
    "roads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200)),
    Column("kind", String(16), nullable=False),
    Column("rank", String(32)),
    Column("geometry", Geometry("GEOMETRY"), nullable=False),
    CheckConstraint("kind IN ('road', 'river')", name="kind"),
)

#: 网格人员: grid heads, workers and instructors, one row per person, grid and role.
staff = Table(
    "staff",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", String(100), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("role", String(32), nullable=False),
    Column("grid_code", String(15), nullable=False),
    UniqueConstraint("code", "grid_code", "role"),
    CheckConstraint(
        "role IN ('grid_head', 'full_time_worker', 'part_time_worker', 'instructor')", name="role"
    ),
    Index(None, "grid_code"),
)

#: 事项清单: the event catalogue.
categories = Table(
    "categories",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("department", String(200), nullable=False),
    Column("deadline_hours", Integer, nullable=False),
    Column("major", Boolean, nullable=False, server_default="0"),
    Column("description", Text),
    CheckConstraint(
        "platform IN ('stability', 'market', 'enforcement', 'service')", name="platform"
    ),
    CheckConstraint("deadline_hours > 0", name="deadline"),
)

#: 事件: minimal here; the life cycle comes with the events module.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("source", String(32), nullable=False),
    Column("category_code", String(32), ForeignKey("categories.code")),
    Column("description", Text),
    Column("reported_at", UTCDateTime, nullable=False),
    Column("lon", Float),
    Column("lat", Float),
    Column("crs", String(16)),
    Column("address", Text),
    Column("reporter_name", String(100)),
    Column("reporter_phone", String(32)),
    Column("reporter_staff_code", String(64)),
    Column("geometry", Geometry("POINT")),
    Column("grid_code", String(15)),
    Column("state", String(16), nullable=False, server_default="reported"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "grid_code"),
    Index(None, "reported_at"),
    Index(None, "state"),
)

#: Append-only audit log; triggers in the migration refuse UPDATE and DELETE.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("entity_id", String(64)),
    Column("detail", JSON),
    Index(None, "entity", "entity_id"),
)

SPATIAL_TABLES = ("divisions", "grids", "households", "roads", "events")

#: The table holding each layer.
LAYER_TABLES = {
    "divisions": divisions,
    "grids": grids,
    "households": households,
    "roads": roads,
    "staff": staff,
    "categories": categories,
    "events": events,
}

# GiST indexes exist on PostGIS only; on SQLite the in-process index answers spatial
# queries (gridgeo.locate).
SPATIAL_INDEXES = [
    Index(f"ix_{name}_geometry_gist", metadata.tables[name].c.geometry, postgresql_using="gist").ddl_if(
        dialect="postgresql"
    )
    for name in SPATIAL_TABLES
]
