"""A claim is recorded on its batch (the rows' ids as ranges), not on each row; the claim
index holds queued rows only.

Rows a stopped worker left `claimed` are settled as recovery would: those of a batch whose
request never began go back to `queued`; those of a batch on the wire become `unknown`
(run migrations with the workers stopped).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 21:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_id', _BIG_ID, nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_id', _BIG_ID, nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('keys', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.alter_column('first_id', server_default=None)
        batch_op.alter_column('last_id', server_default=None)
        batch_op.alter_column('keys', server_default=None)
    op.execute(
        "UPDATE delivery SET status = 'unknown', "
        "error = 'the worker stopped while the request was in flight' "
        "WHERE status = 'claimed' AND batch_id IN "
        "(SELECT id FROM delivery_batch WHERE status = 'sending')"
    )
    op.execute("UPDATE delivery SET status = 'queued' WHERE status = 'claimed'")
    op.execute("UPDATE delivery_batch SET status = 'abandoned' WHERE status = 'sending'")
    op.execute("UPDATE delivery_batch SET status = 'released' WHERE status = 'claimed'")
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_send_status_due')
        batch_op.create_index(
            'ix_delivery_queued_due',
            ['send_id', 'not_before', 'id'],
            unique=False,
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_queued_due')
        batch_op.create_index(
            'ix_delivery_send_status_due', ['send_id', 'status', 'not_before', 'id'], unique=False
        )
    op.execute("UPDATE delivery_batch SET status = 'released' WHERE status = 'claimed'")
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.drop_column('keys')
        batch_op.drop_column('last_id')
        batch_op.drop_column('first_id')
