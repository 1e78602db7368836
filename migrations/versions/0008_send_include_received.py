"""Sends say whether staff asked to send a second copy to readers who already have the
brief (`send --include-received`); every other send leaves them out.

Revision ID: 0008
Revises: 0009
Create Date: 2026-11-25 17:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('include_received', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.alter_column('include_received', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_column('include_received')
