"""SQLite hands a deleted brief's or send's number to the next one; now it never does.

Without AUTOINCREMENT, SQLite numbers a new row one past the highest left, so deleting the
newest draft gave its id to the next brief: "brief 6" in the audit log, a console link or
a command in someone's history could mean any of them. The two tables are copied into ones
declared AUTOINCREMENT (SQLite cannot alter that in place). PostgreSQL's sequences never
hand a number out twice: nothing to do there. SQLite starts counting from the highest id
the copy holds, so a number deleted above it before this upgrade can be given once more.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-27 19:30:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('brief', 'send')


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}
        ):
            pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
