"""Transactional mail queued for the worker; provider events in our own vocabulary, with
the provider's payload kept.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 18:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SendGrid's words (what 0006 stored) → ours.
_KINDS = {
    'processed': 'accepted',
    'bounce': 'bounced',
    'spamreport': 'complained',
    'unsubscribe': 'unsubscribed',
    'group_unsubscribe': 'unsubscribed',
    'open': 'opened',
    'click': 'clicked',
    'other': 'unknown',
}


def upgrade() -> None:
    op.create_table('transactional_mail',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.create_index('ix_transactional_mail_status_due', ['status', 'not_before'], unique=False)
        batch_op.create_index(batch_op.f('ix_transactional_mail_subscriber_id'), ['subscriber_id'], unique=False)

    with op.batch_alter_table('provider_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('provider_event', schema=None) as batch_op:
        batch_op.alter_column('raw', server_default=None)
    events = sa.table('provider_event', sa.column('kind', sa.String))
    for old, new in _KINDS.items():
        op.execute(events.update().where(events.c.kind == old).values(kind=new))


def downgrade() -> None:
    events = sa.table('provider_event', sa.column('kind', sa.String))
    for old, new in _KINDS.items():
        if old != 'group_unsubscribe':
            op.execute(events.update().where(events.c.kind == new).values(kind=old))
    with op.batch_alter_table('provider_event', schema=None) as batch_op:
        batch_op.drop_column('raw')

    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transactional_mail_subscriber_id'))
        batch_op.drop_index('ix_transactional_mail_status_due')

    op.drop_table('transactional_mail')
