"""the engine's tables

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.types import Document, ExactDecimal, Key, UTCDateTime

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('subscribers',
    sa.Column('id', Key, nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('attributes', Document, nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('locale', sa.String(length=35), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('last_event_at', UTCDateTime(), nullable=True),
    sa.Column('processed_until', UTCDateTime(), nullable=True),
    sa.Column('event_count', Key, nullable=False),
    sa.Column('version', Key, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscribers')),
    sa.UniqueConstraint('external_id', name=op.f('uq_subscribers_external_id'))
    )
    op.create_table('enrolments',
    sa.Column('id', Key, nullable=False),
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('stage', sa.String(length=100), nullable=False),
    sa.Column('stage_seq', Key, nullable=False),
    sa.Column('stage_entered_at', UTCDateTime(), nullable=False),
    sa.Column('enrolled_at', UTCDateTime(), nullable=False),
    sa.Column('ended_at', UTCDateTime(), nullable=True),
    sa.Column('exit_reason', sa.String(length=200), nullable=True),
    sa.Column('seen', Document, nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_enrolments_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolments'))
    )
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrolments_subscriber_id'), ['subscriber_id'], unique=False)
        batch_op.create_index('uq_enrolments_active', ['subscriber_id', 'workflow'], unique=True, sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))

    op.create_table('events',
    sa.Column('id', Key, nullable=False),
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('seq', Key, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=True),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.Column('properties', Document, nullable=False),
    sa.Column('received_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_events_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('key', name=op.f('uq_events_key')),
    sa.UniqueConstraint('subscriber_id', 'seq', name=op.f('uq_events_subscriber_id_seq'))
    )
    op.create_table('push_subscriptions',
    sa.Column('id', Key, nullable=False),
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('endpoint', sa.String(length=2048), nullable=False),
    sa.Column('p256dh', sa.String(length=200), nullable=False),
    sa.Column('auth', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('removed_at', UTCDateTime(), nullable=True),
    sa.Column('removed_reason', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_push_subscriptions_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscriptions')),
    sa.UniqueConstraint('endpoint', name=op.f('uq_push_subscriptions_endpoint'))
    )
    with op.batch_alter_table('push_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_subscriptions_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('scores',
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('score', sa.String(length=100), nullable=False),
    sa.Column('total', ExactDecimal(), nullable=False),
    sa.Column('fit', Document, nullable=False),
    sa.Column('contributions', Document, nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_scores_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'workflow', 'score', name=op.f('pk_scores'))
    )
    op.create_table('consents',
    sa.Column('id', Key, nullable=False),
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('event_seq', Key, nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id', 'event_seq'], ['events.subscriber_id', 'events.seq'], name=op.f('fk_consents_subscriber_id_events')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_consents_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', Key, nullable=False),
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('enrolment_id', Key, nullable=False),
    sa.Column('stage', sa.String(length=100), nullable=False),
    sa.Column('stage_seq', Key, nullable=False),
    sa.Column('step', Key, nullable=False),
    sa.Column('occurrence', Key, nullable=False),
    sa.Column('step_rule', sa.String(length=300), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('message', sa.String(length=100), nullable=False),
    sa.Column('lang', sa.String(length=35), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('content', Document, nullable=False),
    sa.Column('nominal_at', UTCDateTime(), nullable=False),
    sa.Column('decided_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['enrolment_id'], ['enrolments.id'], name=op.f('fk_deliveries_enrolment_id_enrolments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_deliveries_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('subscriber_id', 'workflow', 'enrolment_id', 'stage_seq', 'step', 'occurrence', name='uq_deliveries_step')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_subscriber_id_decided_at'), ['subscriber_id', 'decided_at'], unique=False)

    op.create_table('ledger',
    sa.Column('id', Key, nullable=False),
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('score', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('delta', ExactDecimal(), nullable=False),
    sa.Column('total', ExactDecimal(), nullable=False),
    sa.Column('rule', sa.String(length=300), nullable=False),
    sa.Column('event_seq', Key, nullable=True),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id', 'event_seq'], ['events.subscriber_id', 'events.seq'], name=op.f('fk_ledger_subscriber_id_events')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_ledger_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger'))
    )
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_subscriber_id_at'), ['subscriber_id', 'at'], unique=False)

    op.create_table('schedule',
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('seq', Key, nullable=False),
    sa.Column('due_at', UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('enrolment_id', Key, nullable=True),
    sa.Column('stage_seq', Key, nullable=False),
    sa.Column('step', Key, nullable=False),
    sa.Column('occurrence', Key, nullable=False),
    sa.Column('nominal_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['enrolment_id'], ['enrolments.id'], name=op.f('fk_schedule_enrolment_id_enrolments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_schedule_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'seq', name=op.f('pk_schedule'))
    )
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_due_at'), ['due_at'], unique=False)

    op.create_table('stage_visits',
    sa.Column('id', Key, nullable=False),
    sa.Column('enrolment_id', Key, nullable=False),
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('stage', sa.String(length=100), nullable=False),
    sa.Column('seq', Key, nullable=False),
    sa.Column('entered_at', UTCDateTime(), nullable=False),
    sa.Column('cause', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['enrolment_id'], ['enrolments.id'], name=op.f('fk_stage_visits_enrolment_id_enrolments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_stage_visits_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_visits'))
    )
    with op.batch_alter_table('stage_visits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stage_visits_enrolment_id'), ['enrolment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stage_visits_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('tags',
    sa.Column('subscriber_id', Key, nullable=False),
    sa.Column('tag', sa.String(length=200), nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('added_at', UTCDateTime(), nullable=False),
    sa.Column('event_seq', Key, nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id', 'event_seq'], ['events.subscriber_id', 'events.seq'], name=op.f('fk_tags_subscriber_id_events')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_tags_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'tag', name=op.f('pk_tags'))
    )


def downgrade() -> None:
    op.drop_table('tags')
    with op.batch_alter_table('stage_visits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_visits_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_stage_visits_enrolment_id'))

    op.drop_table('stage_visits')
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_due_at'))

    op.drop_table('schedule')
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_subscriber_id_at'))

    op.drop_table('ledger')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_subscriber_id_decided_at'))

    op.drop_table('deliveries')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_subscriber_id'))

    op.drop_table('consents')
    op.drop_table('scores')
    with op.batch_alter_table('push_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_subscriptions_subscriber_id'))

    op.drop_table('push_subscriptions')
    op.drop_table('events')
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.drop_index('uq_enrolments_active', sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_enrolments_subscriber_id'))

    op.drop_table('enrolments')
    op.drop_table('subscribers')
