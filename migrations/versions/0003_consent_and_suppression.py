"""Subscribers gain a consent record and who/when of their status; topics a description;
forgotten addresses leave a suppression hash.

Existing subscribers get their creation time as consent time and "before 0003" as source,
which is what we know about them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 02:34:01.169371
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('suppression',
    sa.Column('email_hash', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('email_hash')
    )
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('status_changed_by', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('consent_source', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('consent_ip', sa.String(length=45), nullable=False, server_default=''))
    op.execute(
        "UPDATE subscriber SET consent_source = 'before 0003', consent_at = created_at, "
        "status_changed_at = COALESCE(unsubscribed_at, created_at)"
    )
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        for column in ('status_changed_by', 'consent_source', 'consent_ip'):
            batch_op.alter_column(column, server_default=None)

    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.String(length=1000), nullable=False, server_default=''))
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.alter_column('description', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.drop_column('description')

    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_column('consent_ip')
        batch_op.drop_column('consent_at')
        batch_op.drop_column('consent_source')
        batch_op.drop_column('status_changed_by')
        batch_op.drop_column('status_changed_at')

    op.drop_table('suppression')
