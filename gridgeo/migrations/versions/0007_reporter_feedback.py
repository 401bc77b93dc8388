"""the reporter's consent to be told the outcome (双反馈), and the reporter's channel of deliveries

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (events has history rows pointing at it).
    op.add_column('events', sa.Column('notify_reporter', sa.Boolean(), server_default='0', nullable=False))
    # deliveries may go to the reporter: the CHECK on channel is rebuilt (a table copy on
    # SQLite; deliveries is the worker's queue, nothing points at it).
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_deliveries_channel'), type_='check')
        batch_op.create_check_constraint(op.f('ck_deliveries_channel'), "channel IN ('webhook', 'handoff', 'person', 'reporter')")


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_deliveries_channel'), type_='check')
        batch_op.create_check_constraint(op.f('ck_deliveries_channel'), "channel IN ('webhook', 'handoff', 'person')")
    op.drop_column('events', 'notify_reporter')
