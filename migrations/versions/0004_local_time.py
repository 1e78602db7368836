"""Deliveries carry the moment they become due (local-time sends); sends their local time.

Existing rows become due when they were last touched, i.e. at once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 02:57:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('not_before', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE delivery SET not_before = COALESCE(updated_at, CURRENT_TIMESTAMP)")
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.alter_column('not_before', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.drop_index('ix_delivery_send_status_id')
        batch_op.create_index('ix_delivery_send_status_due', ['send_id', 'status', 'not_before', 'id'], unique=False)

    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.add_column(sa.Column('local_time', sa.String(length=5), nullable=False, server_default=''))
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.alter_column('local_time', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_column('local_time')

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_send_status_due')
        batch_op.create_index('ix_delivery_send_status_id', ['send_id', 'status', 'id'], unique=False)
        batch_op.drop_column('not_before')
