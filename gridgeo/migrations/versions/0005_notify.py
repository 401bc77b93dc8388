"""notify: working-day deadlines, early warnings, the outbox, webhooks, channels, the hand-off

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridgeo.store.types

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_T = gridgeo.store.types.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_workdays', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_categories_deadline_workdays'), "deadline_workdays > 0")
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_workdays', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('extended_days', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('warning', sa.String(length=8), nullable=True))

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_code', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=True),
    sa.Column('at', _T(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('dispatched', sa.Boolean(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_dispatched_id'), ['dispatched', 'id'], unique=False)

    op.create_table('webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('event_types', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default='1', nullable=False),
    sa.Column('created_at', _T(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks')),
    )
    op.create_table('channels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=True),
    sa.Column('username', sa.String(length=64), nullable=True),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('event_types', sa.JSON(), nullable=False),
    sa.Column('quiet_start', sa.String(length=5), nullable=True),
    sa.Column('quiet_end', sa.String(length=5), nullable=True),
    sa.Column('active', sa.Boolean(), server_default='1', nullable=False),
    sa.Column('created_at', _T(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channels')),
    )
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('event_code', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('delivery_key', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_at', _T(), nullable=False),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('receipt', sa.JSON(), nullable=True),
    sa.Column('created_at', _T(), nullable=False),
    sa.Column('delivered_at', _T(), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'dead')", name=op.f('ck_deliveries_state')),
    sa.CheckConstraint("channel IN ('webhook', 'handoff', 'person')", name=op.f('ck_deliveries_channel')),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_deliveries_outbox_id_outbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('delivery_key', name=op.f('uq_deliveries_delivery_key')),
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_state_next_at'), ['state', 'next_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_event_code'), ['event_code'], unique=False)
    op.create_table('handoff_callbacks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('event_code', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('received_at', _T(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_callbacks')),
    sa.UniqueConstraint('message_id', name=op.f('uq_handoff_callbacks_message_id')),
    )


def downgrade() -> None:
    for name in ('handoff_callbacks', 'deliveries', 'channels', 'webhooks', 'outbox'):
        op.drop_table(name)
    with op.batch_alter_table('events', schema=None) as batch_op:
        for name in ('warning', 'extended_days', 'deadline_workdays'):
            batch_op.drop_column(name)
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_categories_deadline_workdays'), type_='check')
        batch_op.drop_column('deadline_workdays')
