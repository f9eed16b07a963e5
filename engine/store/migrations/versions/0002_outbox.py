"""the outbox: dispatches, deliveries numbered per subscriber

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.types import Key, UTCDateTime

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing deliveries are numbered per subscriber in the order they were decided.
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', Key, nullable=True))
    op.execute("UPDATE deliveries SET seq = (SELECT numbered.n FROM (SELECT id, ROW_NUMBER() "
               "OVER (PARTITION BY subscriber_id ORDER BY id) AS n FROM deliveries) AS numbered "
               "WHERE numbered.id = deliveries.id)")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=Key, nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_deliveries_subscriber_id_seq'), ['subscriber_id', 'seq'])

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_count', Key, server_default='0', nullable=False))
    op.execute("UPDATE subscribers SET delivery_count = (SELECT COUNT(*) FROM deliveries "
               "WHERE deliveries.subscriber_id = subscribers.id)")

    op.create_table('dispatches',
    sa.Column('id', Key, nullable=False),
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('delivery_seq', Key, nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('push_subscription_id', Key, nullable=True),
    sa.Column('address', sa.String(length=2048), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', Key, nullable=False),
    sa.Column('due_at', UTCDateTime(), nullable=True),
    sa.Column('expires_at', UTCDateTime(), nullable=True),
    sa.Column('last_status', Key, nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['push_subscription_id'], ['push_subscriptions.id'], name=op.f('fk_dispatches_push_subscription_id_push_subscriptions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id', 'delivery_seq'], ['deliveries.subscriber_id', 'deliveries.seq'], name=op.f('fk_dispatches_subscriber_id_deliveries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_dispatches_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatches'))
    )
    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.create_index('ix_dispatches_due', ['due_at'], unique=False, sqlite_where=sa.text("status IN ('queued', 'sending')"), postgresql_where=sa.text("status IN ('queued', 'sending')"))
        batch_op.create_index(batch_op.f('ix_dispatches_push_subscription_id'), ['push_subscription_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dispatches_subscriber_id'), ['subscriber_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('delivery_count')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_deliveries_subscriber_id_seq'), type_='unique')
        batch_op.drop_column('seq')

    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatches_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_dispatches_push_subscription_id'))
        batch_op.drop_index('ix_dispatches_due', sqlite_where=sa.text("status IN ('queued', 'sending')"), postgresql_where=sa.text("status IN ('queued', 'sending')"))

    op.drop_table('dispatches')
