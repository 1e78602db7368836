"""Digests: sends have a kind and, for digests, the briefs they hold; daily and weekly
readers remember their last digest.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 03:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='brief'))
        batch_op.add_column(sa.Column('digest_brief_ids', sa.String(length=2000), nullable=False, server_default=''))
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.alter_column('kind', server_default=None)
        batch_op.alter_column('digest_brief_ids', server_default=None)

    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_digest_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_column('last_digest_at')

    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_column('digest_brief_ids')
        batch_op.drop_column('kind')
