"""stable keys: pending work follows its step, and a `max` its rule, across workflow edits

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('step_key', sa.String(length=32), nullable=True))
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule_key', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_column('rule_key')
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_column('step_key')
