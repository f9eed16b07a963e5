"""erased ids: events of an erased subscriber dated before the erasure are refused

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscriber', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_erasures_subscriber'), ['subscriber'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasures_subscriber'))
        batch_op.drop_column('subscriber')
