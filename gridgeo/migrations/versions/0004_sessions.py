"""sessions: passwords, log-in sessions and failed log-ins (the console)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridgeo.store.types

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column: plain DDL on SQLite and PostgreSQL alike.
    op.add_column('users', sa.Column('password_hash', sa.String(length=255), nullable=True))
    op.add_column('users', sa.Column('password_changed_at', gridgeo.store.types.UTCDateTime(), nullable=True))
    op.create_table(
        'sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', gridgeo.store.types.UTCDateTime(), nullable=False),
        sa.Column('last_seen_at', gridgeo.store.types.UTCDateTime(), nullable=False),
        sa.Column('expires_at', gridgeo.store.types.UTCDateTime(), nullable=False),
        sa.Column('revoked_at', gridgeo.store.types.UTCDateTime(), nullable=True),
        sa.Column('client', sa.String(length=64), server_default='', nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sessions_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_sessions_token_hash')),
    )
    op.create_index(op.f('ix_sessions_user_id'), 'sessions', ['user_id'], unique=False)
    op.create_table(
        'login_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', gridgeo.store.types.UTCDateTime(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('client', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures')),
    )
    op.create_index(op.f('ix_login_failures_username_at'), 'login_failures', ['username', 'at'], unique=False)
    op.create_index(op.f('ix_login_failures_client_at'), 'login_failures', ['client', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_login_failures_client_at'), table_name='login_failures')
    op.drop_index(op.f('ix_login_failures_username_at'), table_name='login_failures')
    op.drop_table('login_failures')
    op.drop_index(op.f('ix_sessions_user_id'), table_name='sessions')
    op.drop_table('sessions')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('password_hash')
