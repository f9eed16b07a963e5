"""erasures

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.types import Key, UTCDateTime

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasures',
    sa.Column('id', Key, nullable=False),
    sa.Column('erased_at', UTCDateTime(), nullable=False),
    sa.Column('events', Key, nullable=False),
    sa.Column('deliveries', Key, nullable=False),
    sa.Column('push_subscriptions', Key, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_erasures'))
    )


def downgrade() -> None:
    op.drop_table('erasures')
