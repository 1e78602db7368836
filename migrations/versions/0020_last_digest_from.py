"""Where each digest reader's last digest window opened (`subscriber.last_digest_from`).

Making a group's digests moves its due readers' window in one UPDATE whose RETURNING feeds
the briefs each one gets (a writable CTE on PostgreSQL): one scan of the group, where it
was a scan to pick the readers and a second, joined to them, to move them. RETURNING sees
only new values, so the window's start is kept in the row; it also says, for any reader,
which briefs their last digest covered.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-26 11:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('subscriber') as batch_op:
        batch_op.add_column(sa.Column('last_digest_from', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Never a rebuild on SQLite (its own DROP COLUMN, SQLite 3.35+): dropping the old
    # `subscriber` would cascade to every reader's status history (0014's foreign key).
    with op.batch_alter_table('subscriber', recreate='never') as batch_op:
        batch_op.drop_column('last_digest_from')
