"""events: location, routing, life cycle, history, idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridgeo.store.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_STATES = ("reported", "reviewing", "accepted", "dispatched", "returned", "in_progress",
           "suspended", "escalated", "resolved", "verified", "closed", "rejected")
_LOCATED_BY = ("coordinates", "snapped", "address", "reporter_grid", "outside", "unlocated", "manual")
_APPEND_ONLY = "event_actions"


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


_NEW_EVENT_COLUMNS = [
    ("photos", sa.JSON(), {}),
    ("related_categories", sa.JSON(), {}),
    ("located_by", sa.String(length=16), {}),
    ("pos_lon", sa.Float(), {}),
    ("pos_lat", sa.Float(), {}),
    ("plan_version", sa.String(length=64), {}),
    ("locate_distance_m", sa.Float(), {}),
    ("address_confidence", sa.Float(), {}),
    ("address_match", sa.Text(), {}),
    ("platform", sa.String(length=16), {}),
    ("department", sa.String(length=200), {}),
    ("route", sa.String(length=16), {}),
    ("route_target", sa.String(length=200), {}),
    ("route_reason", sa.Text(), {}),
    ("deadline_at", gridgeo.store.types.UTCDateTime(timezone=True), {}),
    ("extended_hours", sa.Integer(), {"server_default": "0", "nullable": False}),
    ("escalated_to", sa.String(length=200), {}),
    ("reject_reason", sa.String(length=32), {}),
    ("duplicate_flag", sa.Boolean(), {"server_default": "0", "nullable": False}),
    ("duplicate_candidates", sa.JSON(), {}),
    ("duplicate_of", sa.String(length=64), {}),
    ("result", sa.Text(), {}),
    ("satisfaction", sa.Integer(), {}),
    ("reporter_token_hash", sa.String(length=64), {}),
    ("updated_at", gridgeo.store.types.UTCDateTime(timezone=True), {}),
    ("resolved_at", gridgeo.store.types.UTCDateTime(timezone=True), {}),
    ("closed_at", gridgeo.store.types.UTCDateTime(timezone=True), {}),
]

_NEW_EVENT_INDEXES = [
    ("ix_events_category_code_pos_lat_pos_lon_reported_at_state",
     ["category_code", "pos_lat", "pos_lon", "reported_at", "state"]),
    ("ix_events_platform", ["platform"]),
    ("ix_events_department", ["department"]),
    ("ix_events_deadline_at", ["deadline_at"]),
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('events', schema=None) as batch_op:
        for name, type_, kw in _NEW_EVENT_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=kw.get("nullable", True),
                                          server_default=kw.get("server_default")))
        batch_op.create_check_constraint(op.f('ck_events_state'), f"state IN ({_in(_STATES)})")
        batch_op.create_check_constraint(op.f('ck_events_located_by'), f"located_by IN ({_in(_LOCATED_BY)})")
        batch_op.create_check_constraint(op.f('ck_events_satisfaction'), "satisfaction BETWEEN 1 AND 5")
        for name, cols in _NEW_EVENT_INDEXES:
            batch_op.create_index(batch_op.f(name), cols, unique=False)

    op.create_table('event_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_actions_event_id_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_actions')),
    sa.UniqueConstraint('event_id', 'seq', name=op.f('uq_event_actions_event_id_seq'))
    )
    with op.batch_alter_table('event_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_actions_action_at'), ['action', 'at'], unique=False)

    op.create_table('event_counters',
    sa.Column('day', sa.String(length=8), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_event_counters'))
    )
    op.create_table('idempotency_keys',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('event_code', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('response', sa.Text(), nullable=False),
    sa.Column('created_at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_idempotency_keys'))
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_keys_created_at'), ['created_at'], unique=False)

    # The history is append-only, like the audit log (0001 defines the PostgreSQL function).
    if dialect == "postgresql":
        op.execute(
            f"CREATE TRIGGER {_APPEND_ONLY}_append_only BEFORE UPDATE OR DELETE ON {_APPEND_ONLY} "
            "FOR EACH ROW EXECUTE FUNCTION gridgeo_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {_APPEND_ONLY}_no_{verb.lower()} BEFORE {verb} ON {_APPEND_ONLY} "
                f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY} is append-only'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_APPEND_ONLY}_append_only ON {_APPEND_ONLY}")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {_APPEND_ONLY}_no_{verb}")
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_keys_created_at'))
    op.drop_table('idempotency_keys')
    op.drop_table('event_counters')
    with op.batch_alter_table('event_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_actions_action_at'))
    op.drop_table('event_actions')
    with op.batch_alter_table('events', schema=None) as batch_op:
        for name, _ in reversed(_NEW_EVENT_INDEXES):
            batch_op.drop_index(batch_op.f(name))
        batch_op.drop_constraint(op.f('ck_events_satisfaction'), type_='check')
        batch_op.drop_constraint(op.f('ck_events_located_by'), type_='check')
        batch_op.drop_constraint(op.f('ck_events_state'), type_='check')
        for name, _, _ in reversed(_NEW_EVENT_COLUMNS):
            batch_op.drop_column(name)
