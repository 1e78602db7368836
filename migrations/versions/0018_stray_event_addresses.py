"""Events of no delivery of ours (a provider's event about an address we cannot place)
found by address, when that reader asks to be forgotten: a partial index, small because
few events have no delivery.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26 04:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        'ix_provider_event_stray_email',
        'provider_event',
        ['email'],
        unique=False,
        postgresql_where=sa.text('delivery_id IS NULL'),
        sqlite_where=sa.text('delivery_id IS NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_provider_event_stray_email', table_name='provider_event')
