"""A claim is recorded on its batch (the rows' ids as ranges), not on each row; the claim
index holds queued rows only. A digest's briefs move from a comma-separated column to the
`send_brief` join table.

Rows a stopped worker left `claimed` are settled as recovery would: those of a batch whose
request never began go back to `queued`; those of a batch on the wire become `unknown`
(run migrations with the workers stopped).

Revision ID: 0012
Revises: 0013
Create Date: 2026-11-25 21:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0013'
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


    op.create_table(
        'send_brief',
        sa.Column('send_id', sa.Integer(), nullable=False),
        sa.Column('brief_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['brief_id'], ['brief.id']),
        sa.ForeignKeyConstraint(['send_id'], ['send.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('send_id', 'brief_id'),
    )
    op.create_index('ix_send_brief_brief_id', 'send_brief', ['brief_id'], unique=False)
    connection = op.get_bind()
    digests = connection.execute(
        sa.text("SELECT id, digest_brief_ids FROM send WHERE digest_brief_ids <> ''")
    ).all()
    rows = [
        {'send_id': send_id, 'brief_id': int(brief_id), 'position': position}
        for send_id, text in digests
        for position, brief_id in enumerate(dict.fromkeys(text.split(',')))
        if brief_id.strip().isdigit()
    ]
    if rows:
        connection.execute(
            sa.text(
                'INSERT INTO send_brief (send_id, brief_id, position) '
                'VALUES (:send_id, :brief_id, :position)'
            ),
            rows,
        )
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_column('digest_brief_ids')


def downgrade() -> None:
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('digest_brief_ids', sa.String(length=2000), nullable=False, server_default='')
        )
    connection = op.get_bind()
    briefs: dict[int, list[str]] = {}
    for send_id, brief_id in connection.execute(
        sa.text('SELECT send_id, brief_id FROM send_brief ORDER BY send_id, position')
    ):
        briefs.setdefault(send_id, []).append(str(brief_id))
    for send_id, ids in briefs.items():
        connection.execute(
            sa.text('UPDATE send SET digest_brief_ids = :ids WHERE id = :id'),
            {'ids': ','.join(ids), 'id': send_id},
        )
    op.drop_index('ix_send_brief_brief_id', table_name='send_brief')
    op.drop_table('send_brief')
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
