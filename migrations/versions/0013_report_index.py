"""A send's report reads its events from one index: (send, kind, delivery, machine, time).

On PostgreSQL the index is built CONCURRENTLY, so a live webhook keeps writing events
while a large table is indexed.

Revision ID: 0013
Revises: 0014
Create Date: 2026-11-25 22:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0013'
# Chained after issue 15's other half (0014, the status history the list report reads);
# the lead re-chains revisions when merging.
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ['send_id', 'kind', 'delivery_id', 'machine', 'occurred_at']


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.create_index(
                'ix_provider_event_report',
                'provider_event',
                COLUMNS,
                unique=False,
                postgresql_concurrently=True,
            )
    else:
        op.create_index('ix_provider_event_report', 'provider_event', COLUMNS, unique=False)


def downgrade() -> None:
    op.drop_index('ix_provider_event_report', table_name='provider_event')
