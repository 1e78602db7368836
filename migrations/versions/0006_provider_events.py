"""Provider events (webhook de-duplication ledger) and subscribers' soft-bounce count.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 03:23:06.884330
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('provider_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('fallback_key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'event_id', name='uq_provider_event_id'),
    sa.UniqueConstraint('provider', 'fallback_key', name='uq_provider_event_fallback')
    )
    with op.batch_alter_table('provider_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_event_delivery_id'), ['delivery_id'], unique=False)

    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('soft_bounces', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.alter_column('soft_bounces', server_default=None)



def downgrade() -> None:
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_column('soft_bounces')

    with op.batch_alter_table('provider_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_event_delivery_id'))

    op.drop_table('provider_event')
