"""No schema change: a mark that content rendered from here on ends each reader link in a
token (`%%nl:reader_token:…%%`, newsletter/fields.py) that earlier code never fills.

Scheduled sends and digests keep the content rendered when they were created. Earlier code
running on such a database would mail them with dead unsubscribe and preference links; with
this revision at the head it refuses the database instead ("out of date"). Downgrading is
refused while a send that is not over carries such content: cancel it first, or restore the
backup taken before the upgrade.

Revision ID: 0015
Revises: 0012
Create Date: 2026-11-26 02:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

revision: str = '0015'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    waiting = op.get_bind().execute(
        sa.text(
            "SELECT count(*) FROM send WHERE status IN ('scheduled', 'running', 'paused') "
            "AND (html LIKE :token OR text LIKE :token)"
        ),
        {"token": "%nl:reader_token:%"},
    ).scalar_one()
    if waiting:
        # CommandError: what `alembic` prints as one FAILED line, not a traceback. Every
        # step of the run is in one transaction (migrations/env.py), so the steps above
        # this one are undone with it.
        raise CommandError(
            f"downgrade refused, nothing was changed: {waiting} send(s) not over carry "
            "reader-token links that earlier code cannot fill: cancel them (`newsletter "
            "sends cancel`) or restore the pre-upgrade backup"
        )
