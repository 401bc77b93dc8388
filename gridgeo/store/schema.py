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

from gridgeo.layers import ACCOUNT_ROLES
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

#: The largest value an Integer column holds on every database (PostgreSQL's int4): an
#: id taken from a request (a token's) is checked against it before it reaches a query.
MAX_INTEGER = 2**31 - 1

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
    # a province map's page reads each grid's code and village from this index alone
    Index(None, "plan_id", "code", "village_code"),
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
    Index(None, "grid_code", "role"),  # the roles each grid has, from the index alone
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
    # Migration 0005: when set, the deadline is this many working days (gridgeo.events.deadlines)
    Column("deadline_workdays", Integer),
    CheckConstraint(
        "platform IN ('stability', 'market', 'enforcement', 'service')", name="platform"
    ),
    CheckConstraint("deadline_hours > 0", name="deadline"),
    CheckConstraint("deadline_workdays > 0", name="deadline_workdays"),
)

EVENT_STATES = (
    "reported", "reviewing", "accepted", "dispatched", "returned", "in_progress", "suspended",
    "escalated", "resolved", "verified", "closed", "rejected",
)
LOCATED_BY = ("coordinates", "snapped", "address", "reporter_grid", "outside", "unlocated", "manual")


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


#: 事件: what was reported (lon/lat/crs as reported, geometry in WGS84), how it was
#: located, where it was routed, and where it stands in the life cycle
#: (gridgeo.events.workflow). Columns after created_at come with migration 0002.
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
    Column("photos", JSON),
    Column("related_categories", JSON),
    Column("located_by", String(16)),
    Column("pos_lon", Float),  # the WGS84 position used (geometry), for range queries
    Column("pos_lat", Float),
    Column("plan_version", String(64)),
    Column("locate_distance_m", Float),
    Column("address_confidence", Float),
    Column("address_match", Text),
    Column("platform", String(16)),
    Column("department", String(200)),
    Column("route", String(16)),
    Column("route_target", String(200)),
    Column("route_reason", Text),
    Column("deadline_at", UTCDateTime),
    Column("extended_hours", Integer, nullable=False, server_default="0"),
    Column("escalated_to", String(200)),
    Column("reject_reason", String(32)),
    Column("duplicate_flag", Boolean, nullable=False, server_default="0"),
    Column("duplicate_candidates", JSON),
    Column("duplicate_of", String(64)),
    Column("result", Text),
    Column("satisfaction", Integer),
    Column("reporter_token_hash", String(64)),
    Column("updated_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    # Migration 0005: the deadline's kind (working days, else hours), extensions in working
    # days, and the last early-warning level recorded in the history (yellow, red).
    Column("deadline_workdays", Integer),
    Column("extended_days", Integer, nullable=False, server_default="0"),
    Column("warning", String(8)),


    # Where the position came from when it was not reported: "photo" (the EXIF GPS of an
    # attached photo); NULL when reported with the event. Comes with migration 0006.
    Column("position_from", String(16)),
    # The reporter agreed to be told the outcome (双反馈: closure, rejection) at the phone
    # they left (gridgeo.notify.reporter). Migration 0007.
    Column("notify_reporter", Boolean, nullable=False, server_default="0"),
    # Hours of the department's extension request (申请延期) waiting for its answer; NULL:
    # none waits (gridgeo.events.workflow: ask_extension, grant/refuse_extension). 0009.
    Column("extension_requested_hours", Integer),
    CheckConstraint(f"state IN ({_in(EVENT_STATES)})", name="state"),
    CheckConstraint(f"located_by IN ({_in(LOCATED_BY)})", name="located_by"),
    CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction"),
    Index(None, "grid_code"),
    Index(None, "reported_at"),
    Index(None, "state"),
    # Duplicate detection: same category, a band of latitude, then the rest from the index.
    Index(None, "category_code", "pos_lat", "pos_lon", "reported_at", "state"),
    Index(None, "platform"),
    Index(None, "department"),
    Index(None, "deadline_at"),
)

#: 事件处置过程: every action taken on an event, in order (``seq`` equals the event's
#: version after the action). Append-only, like the audit log.
event_actions = Table(
    "event_actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", Integer, ForeignKey("events.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("note", Text),
    Column("data", JSON),
    UniqueConstraint("event_id", "seq"),
    Index(None, "action", "at"),
)

#: Last event number given out per (CST) day: codes are E + yyyymmdd + number of the day.
event_counters = Table(
    "event_counters",
    metadata,
    Column("day", String(8), primary_key=True),
    Column("last", Integer, nullable=False),
)

#: Idempotency-Key of each intake request and the first answer, returned again on retry.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("event_code", String(64)),
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),  # the JSON text of the first answer, as sent
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "created_at"),
)


#: 用户: who may use the API, with one role and, for scoped roles, their scope: the grids
#: of a grid worker, the department of a department, the platform of a platform office.
#: Comes with migration 0003.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("grids", JSON),
    Column("department", String(200)),
    Column("platform", String(16)),
    Column("staff_code", String(64)),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    # The console's log-in (migration 0004): an argon2id hash (gridgeo.sessions), never the
    # password; NULL: the user logs in with tokens only.
    Column("password_hash", String(255)),
    Column("password_changed_at", UTCDateTime),
    CheckConstraint(f"role IN ({_in(tuple(ACCOUNT_ROLES))})", name="role"),  # gridgeo.layers.ACCOUNT_ROLES
)

#: API tokens: only the SHA-256 of each token is kept (tokens are 256 random bits, so a
#: fast hash is the right one); ``prefix`` names a token in lists without revealing it.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("label", String(100), nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Index(None, "user_id"),
)

#: The console's log-in sessions (migration 0004): only the SHA-256 of the cookie's value
#: (256 random bits, like a token) is kept; idle and absolute time-outs, revocable
#: (gridgeo.sessions).
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("client", String(64), nullable=False, server_default=""),
    Index(None, "user_id"),
)

#: Failed log-ins (migration 0004), for throttling per account and per client
#: (gridgeo.sessions); the user name as typed (cut to 64), never the password.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("username", String(64), nullable=False),
    Column("client", String(64), nullable=False),
    Index(None, "username", "at"),
    Index(None, "client", "at"),
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

#: The transactional outbox (migration 0005): one row per change others are told of, written
#: in the transaction of the change; the worker (gridgeo.notify.worker) fans each out into
#: deliveries, then marks it dispatched.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_code", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("seq", Integer),
    Column("at", UTCDateTime, nullable=False),
    Column("data", JSON),
    Column("dispatched", Boolean, nullable=False, server_default="0"),
    Index(None, "dispatched", "id"),
)

#: Webhook subscriptions of other systems (POST /v1/webhooks): where, the Standard Webhooks
#: secret (``whsec_``; kept to sign, never shown again), which event types.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", String(200), nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("description", Text),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
)

#: People's channels (apprise URLs: DingTalk, WeCom, Feishu, e-mail, SMS gateways): for a
#: user or for every user of a role, the event types wanted and quiet hours (China time).
channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(32)),
    Column("username", String(64)),
    Column("url", Text, nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("quiet_start", String(5)),
    Column("quiet_end", String(5)),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
)

#: One delivery of one outbox row to one receiver (a webhook, the hand-off endpoint, a
#: channel); ``delivery_key`` is sent as ``webhook-id`` so that the receiver drops
#: duplicates. States: pending, delivered, dead (dead-letter, after the last attempt).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("outbox_id", Integer, ForeignKey("outbox.id"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", String(64), nullable=False),
    Column("event_code", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("delivery_key", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", UTCDateTime, nullable=False),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("receipt", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
    CheckConstraint("channel IN ('webhook', 'handoff', 'person', 'reporter')", name="channel"),
    Index(None, "state", "next_at"),
    Index(None, "event_code"),
)

#: Status callbacks from the county platform / 12345 (POST /v1/escalations/callback), by
#: their message id: a replayed id is refused.
handoff_callbacks = Table(
    "handoff_callbacks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("event_code", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("body", JSON),
)

#: 附件: photos of an event, before (处置前) or after (处置后) handling. The image itself
#: is stored content-addressed (``digest``: SHA-256 of the re-encoded JPEG) by
#: gridgeo.photos.storage; the row says whose it is. Deleting keeps the row (deleted_at,
#: deleted_by) and the audit line. Comes with migration 0006.
PHOTO_STAGES = ("before", "after")
photos = Table(
    "photos",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", Integer, ForeignKey("events.id"), nullable=False),
    Column("stage", String(8), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("thumb_digest", String(64), nullable=False),
    Column("source_format", String(8), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("gps_lon", Float),
    Column("gps_lat", Float),
    Column("taken_at", UTCDateTime),
    Column("added_at", UTCDateTime, nullable=False),
    Column("added_by", String(100), nullable=False),
    Column("added_role", String(32), nullable=False),
    Column("deleted_at", UTCDateTime),
    Column("deleted_by", String(100)),
    UniqueConstraint("event_id", "stage", "digest"),
    CheckConstraint(f"stage IN ({_in(PHOTO_STAGES)})", name="stage"),
)

#: 巡查: a grid worker's GPS track, as a line (WGS84) with the seconds since its start of
#: each vertex (``times``). ``cleaning`` says what was dropped (repeated times, jumps at
#: impossible speeds). Comes with migration 0006.
patrols = Table(
    "patrols",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False),
    Column("staff_code", String(64)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=False),
    Column("points", Integer, nullable=False),
    Column("distance_m", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("geometry", Geometry("LINESTRING"), nullable=False),
    Column("times", JSON, nullable=False),
    Column("source_format", String(8), nullable=False),
    Column("crs", String(16), nullable=False),
    Column("cleaning", JSON),
    Column("idempotency_key", String(255), unique=True),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "username", "started_at"),
    Index(None, "started_at"),
)

#: 签到: a worker's location-verified mark at a grid (``verified`` when the position was
#: inside the grid or within the check-in distance of it). Comes with migration 0006.
checkins = Table(
    "checkins",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False),
    Column("staff_code", String(64)),
    Column("grid_code", String(15), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("distance_m", Float, nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "grid_code", "at"),
    Index(None, "username", "at"),
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
