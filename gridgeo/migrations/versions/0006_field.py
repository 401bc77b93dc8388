"""field work: photos of events, patrols, check-ins; where an event's position came from

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridgeo.store.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (no table rebuild: events has history rows
    # pointing at it).
    op.add_column('events', sa.Column('position_from', sa.String(length=16), nullable=True))

    op.create_table(
        'photos',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('stage', sa.String(length=8), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('thumb_digest', sa.String(length=64), nullable=False),
        sa.Column('source_format', sa.String(length=8), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('gps_lon', sa.Float(), nullable=True),
        sa.Column('gps_lat', sa.Float(), nullable=True),
        sa.Column('taken_at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('added_at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('added_by', sa.String(length=100), nullable=False),
        sa.Column('added_role', sa.String(length=32), nullable=False),
        sa.Column('deleted_at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('deleted_by', sa.String(length=100), nullable=True),
        sa.CheckConstraint("stage IN ('before', 'after')", name=op.f('ck_photos_stage')),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_photos_event_id_events')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_photos')),
        sa.UniqueConstraint('event_id', 'stage', 'digest', name=op.f('uq_photos_event_id_stage_digest')),
    )
    op.create_table(
        'patrols',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('staff_code', sa.String(length=64), nullable=True),
        sa.Column('started_at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('points', sa.Integer(), nullable=False),
        sa.Column('distance_m', sa.Float(), nullable=False),
        sa.Column('duration_s', sa.Float(), nullable=False),
        sa.Column('geometry', gridgeo.store.types.Geometry('LINESTRING'), nullable=False),
        sa.Column('times', sa.JSON(), nullable=False),
        sa.Column('source_format', sa.String(length=8), nullable=False),
        sa.Column('crs', sa.String(length=16), nullable=False),
        sa.Column('cleaning', sa.JSON(), nullable=True),
        sa.Column('idempotency_key', sa.String(length=255), nullable=True),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_patrols')),
        sa.UniqueConstraint('idempotency_key', name=op.f('uq_patrols_idempotency_key')),
    )
    op.create_index(op.f('ix_patrols_username_started_at'), 'patrols', ['username', 'started_at'])
    op.create_index(op.f('ix_patrols_started_at'), 'patrols', ['started_at'])
    op.create_table(
        'checkins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('staff_code', sa.String(length=64), nullable=True),
        sa.Column('grid_code', sa.String(length=15), nullable=False),
        sa.Column('at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('distance_m', sa.Float(), nullable=False),
        sa.Column('verified', sa.Boolean(), nullable=False),
        sa.Column('created_at', gridgeo.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_checkins')),
    )
    op.create_index(op.f('ix_checkins_grid_code_at'), 'checkins', ['grid_code', 'at'])
    op.create_index(op.f('ix_checkins_username_at'), 'checkins', ['username', 'at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_checkins_username_at'), table_name='checkins')
    op.drop_index(op.f('ix_checkins_grid_code_at'), table_name='checkins')
    op.drop_table('checkins')
    op.drop_index(op.f('ix_patrols_started_at'), table_name='patrols')
    op.drop_index(op.f('ix_patrols_username_started_at'), table_name='patrols')
    op.drop_table('patrols')
    op.drop_table('photos')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('position_from')
