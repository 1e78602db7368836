"""First schema: topics, subscribers and their topics, briefs, sends, and the delivery ledger.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 01:22:07.229833
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('brief',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('preheader', sa.String(length=500), nullable=False),
    sa.Column('takeaways', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('source_name', sa.String(length=500), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('subscriber',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cadence', sa.String(length=16), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('all_topics', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_status_all_topics', ['status', 'all_topics'], unique=False)

    op.create_table('topic',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('keywords', sa.String(length=2000), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('brief_topic',
    sa.Column('brief_id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['brief_id'], ['brief.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['topic.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('brief_id', 'topic_id')
    )
    op.create_table('send',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('brief_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('planned', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['brief_id'], ['brief.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_send_brief_id'), ['brief_id'], unique=False)
        batch_op.create_index('ix_send_status_scheduled_at', ['status', 'scheduled_at'], unique=False)

    op.create_table('subscriber_topic',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['topic.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'topic_id')
    )
    with op.batch_alter_table('subscriber_topic', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_topic_topic', ['topic_id', 'subscriber_id'], unique=False)

    op.create_table('delivery',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('send_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('worker_id', sa.String(length=100), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['send_id'], ['send.id'], ),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('send_id', 'subscriber_id', name='uq_delivery_send_subscriber')
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_send_status_id', ['send_id', 'status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_subscriber_id'), ['subscriber_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_subscriber_id'))
        batch_op.drop_index('ix_delivery_send_status_id')

    op.drop_table('delivery')
    with op.batch_alter_table('subscriber_topic', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_topic_topic')

    op.drop_table('subscriber_topic')
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_index('ix_send_status_scheduled_at')
        batch_op.drop_index(batch_op.f('ix_send_brief_id'))

    op.drop_table('send')
    op.drop_table('brief_topic')
    op.drop_table('topic')
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_status_all_topics')

    op.drop_table('subscriber')
    op.drop_table('brief')
