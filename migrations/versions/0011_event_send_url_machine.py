"""Provider events keep their send, a click's link and whether a machine opened it, so a
send's report reads the event table alone.

Revision ID: 0011
Revises: 0008
Create Date: 2026-11-25 21:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('provider_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('url', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('machine', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('ix_provider_event_send_kind', ['send_id', 'kind'], unique=False)
    op.execute(
        'UPDATE provider_event SET send_id = '
        '(SELECT delivery.send_id FROM delivery WHERE delivery.id = provider_event.delivery_id) '
        'WHERE delivery_id IS NOT NULL'
    )
    with op.batch_alter_table('provider_event', schema=None) as batch_op:
        batch_op.alter_column('url', server_default=None)
        batch_op.alter_column('machine', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('provider_event', schema=None) as batch_op:
        batch_op.drop_index('ix_provider_event_send_kind')
        batch_op.drop_column('machine')
        batch_op.drop_column('url')
        batch_op.drop_column('send_id')
