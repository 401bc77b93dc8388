"""auth: users and API tokens (hashed)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridgeo.store.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_USER_ROLES = ("admin", "planner", "command_room", "leadership", "platform_office", "department",
               "grid_worker")


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('role', sa.String(length=32), nullable=False),
        sa.Column('grids', sa.JSON(), nullable=True),
        sa.Column('department', sa.String(length=200), nullable=True),
        sa.Column('platform', sa.String(length=16), nullable=True),
        sa.Column('staff_code', sa.String(length=64), nullable=True),
        sa.Column('active', sa.Boolean(), server_default='1', nullable=False),
        sa.Column('created_at', gridgeo.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("role IN (" + ", ".join(f"'{r}'" for r in _USER_ROLES) + ")",
                           name=op.f('ck_users_role')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('username', name=op.f('uq_users_username')),
    )
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('label', sa.String(length=100), server_default='', nullable=False),
        sa.Column('created_at', gridgeo.store.types.UTCDateTime(), nullable=False),
        sa.Column('expires_at', gridgeo.store.types.UTCDateTime(), nullable=True),
        sa.Column('revoked_at', gridgeo.store.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))
    op.drop_table('api_tokens')
    op.drop_table('users')
