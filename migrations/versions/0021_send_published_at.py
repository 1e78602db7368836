"""When a send published its brief (`send.published_at`), apart from when it started.

A `--local-time` send starts (is planned) when it falls due, but its first readers are due
at the next 07:00 in the earliest zone, hours later; the archive, the feeds and digests
showed the brief from the start. Sends already started are published when they started, as
they were.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-27 16:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('send') as batch_op:
        batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE send SET published_at = started_at WHERE kind = 'brief'")


def downgrade() -> None:
    with op.batch_alter_table('send', recreate='never') as batch_op:
        batch_op.drop_column('published_at')
