"""Staff know their readers: every status change kept, topics hidden from the public forms,
and the indexes one reader's page and the inactive filter read.

Revision ID: 0014
Revises: 0011
Create Date: 2026-11-25 21:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.models

revision: str = '0014'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'subscriber_status_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('at', subscribers.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('old_status', sa.String(length=16), nullable=False),
        sa.Column('new_status', sa.String(length=16), nullable=False),
        sa.Column('by', sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'ix_subscriber_status_change_subscriber',
        'subscriber_status_change',
        ['subscriber_id', 'id'],
        unique=False,
    )
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hidden', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.alter_column('hidden', server_default=None)
    op.create_index('ix_delivery_subscriber', 'delivery', ['subscriber_id'], unique=False)
    op.create_index(
        'ix_provider_event_kind_occurred', 'provider_event', ['kind', 'occurred_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_provider_event_kind_occurred', table_name='provider_event')
    op.drop_index('ix_delivery_subscriber', table_name='delivery')
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.drop_column('hidden')
    op.drop_index('ix_subscriber_status_change_subscriber', table_name='subscriber_status_change')
    op.drop_table('subscriber_status_change')
