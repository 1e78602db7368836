"""Delivery batches carry the "on the wire" mark; sends count their failed batches; the
ledger loses its foreign keys and its subscriber index, which cost a million-row plan
two thirds of its time.

Rows that an older worker left `sending` become `unknown`: the request may have reached
the provider, and the new schema has no per-row lease to tell.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 02:01:09.275840
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_FK_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    op.create_table('delivery_batch',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('send_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['send_id'], ['send.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_batch_send_id'), ['send_id'], unique=False)
        batch_op.create_index('ix_delivery_batch_status_lease', ['status', 'lease_expires_at'], unique=False)

    op.execute(
        "UPDATE delivery SET status = 'unknown', "
        "error = 'in flight when the worker stopped (before the 0002 migration)' "
        "WHERE status = 'sending'"
    )
    op.execute("UPDATE delivery SET status = 'queued' WHERE status = 'claimed'")
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.drop_constraint('delivery_send_id_fkey', 'delivery', type_='foreignkey')
        op.drop_constraint('delivery_subscriber_id_fkey', 'delivery', type_='foreignkey')
    # SQLite's foreign keys have no names; the convention names them so batch mode can
    # drop them while it rebuilds the table.
    with op.batch_alter_table('delivery', schema=None, naming_convention=_SQLITE_FK_NAMES) as batch_op:
        if not postgresql:
            batch_op.drop_constraint('fk_delivery_send_id_send', type_='foreignkey')
            batch_op.drop_constraint('fk_delivery_subscriber_id_subscriber', type_='foreignkey')
        batch_op.drop_index('ix_delivery_subscriber_id')
        batch_op.add_column(sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('worker_id')

    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_batches', sa.Integer(), nullable=False, server_default='0'))
        batch_op.alter_column('failed_batches', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_column('failed_batches')

    op.execute("UPDATE delivery SET status = 'queued' WHERE status = 'claimed'")
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_id', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_column('batch_id')
        batch_op.create_index('ix_delivery_subscriber_id', ['subscriber_id'], unique=False)
        batch_op.create_foreign_key('delivery_send_id_fkey', 'send', ['send_id'], ['id'])
        batch_op.create_foreign_key('delivery_subscriber_id_fkey', 'subscriber', ['subscriber_id'], ['id'])

    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_batch_status_lease')
        batch_op.drop_index(batch_op.f('ix_delivery_batch_send_id'))

    op.drop_table('delivery_batch')
