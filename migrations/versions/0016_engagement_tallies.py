"""Reports read tallies kept as events arrive, not millions of events: per reader and kind,
per reader and link, per send and kind, per send and link, per send and hour. Existing
events are counted into them here; the two report indexes on provider_event, which only
the reports read, are dropped (each cost every event an index entry).

Run with the web and the worker stopped (README "Upgrading"): events applied while this
counts would be counted twice or not at all.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 04:30:00
"""
import hashlib
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
REPORTED = "('delivered', 'opened', 'clicked', 'bounced', 'unsubscribed', 'complained')"
REPORT_INDEX = ['send_id', 'kind', 'delivery_id', 'machine', 'occurred_at']


def _url_key(url: str) -> str:
    # As newsletter/tallies/apply.py keys a link (tests/test_tallies.py checks they agree).
    return hashlib.sha256(url.encode('utf-8', 'surrogatepass')).hexdigest()[:32]


def _moment(value: datetime | str) -> datetime:
    """A time as SQLite hands back raw text (naive UTC), or as a driver parsed it."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def upgrade() -> None:
    op.create_table(
        'reader_tally',
        sa.Column('delivery_id', _BIG_ID, nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('send_id', _BIG_ID, nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.Column('human', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('delivery_id', 'kind'),
    )
    op.create_table(
        'reader_link_tally',
        sa.Column('delivery_id', _BIG_ID, nullable=False),
        sa.Column('url_key', sa.String(length=32), nullable=False),
        sa.Column('clicks', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('delivery_id', 'url_key'),
    )
    op.create_table(
        'send_tally',
        sa.Column('send_id', _BIG_ID, nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('readers', sa.Integer(), nullable=False),
        sa.Column('people', sa.Integer(), nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.Column('human', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('send_id', 'kind'),
    )
    op.create_table(
        'link_tally',
        sa.Column('send_id', _BIG_ID, nullable=False),
        sa.Column('url_key', sa.String(length=32), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('clicks', sa.Integer(), nullable=False),
        sa.Column('readers', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('send_id', 'url_key'),
    )
    op.create_table(
        'hour_tally',
        sa.Column('send_id', _BIG_ID, nullable=False),
        sa.Column('hour', sa.Integer(), nullable=False),
        sa.Column('opens', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('send_id', 'hour'),
    )
    _count_existing_events()
    # In the migration's transaction (not CONCURRENTLY): the services are stopped, and a
    # refused downgrade further down then leaves nothing half done.
    op.drop_index('ix_provider_event_report', table_name='provider_event')
    op.drop_index('ix_provider_event_send_kind', table_name='provider_event')


def _count_existing_events() -> None:
    bind = op.get_bind()
    ours = 'delivery_id IS NOT NULL AND send_id IS NOT NULL'
    # As newsletter/tallies/apply.py's is_person: only an open can be a machine's.
    human = "CASE WHEN kind = 'opened' AND machine THEN 0 ELSE 1 END"
    bind.execute(sa.text(
        'INSERT INTO reader_tally (delivery_id, kind, send_id, events, human) '
        f'SELECT delivery_id, kind, min(send_id), count(*), sum({human}) FROM provider_event '
        f'WHERE {ours} AND kind IN {REPORTED} GROUP BY delivery_id, kind'
    ))
    bind.execute(sa.text(
        'INSERT INTO reader_tally (delivery_id, kind, send_id, events, human) '
        "SELECT delivery_id, 'read', min(send_id), count(*), count(*) FROM provider_event "
        f"WHERE {ours} AND (kind = 'clicked' OR (kind = 'opened' AND NOT machine)) "
        'GROUP BY delivery_id'
    ))
    bind.execute(sa.text(
        'INSERT INTO send_tally (send_id, kind, readers, people, events, human) '
        'SELECT send_id, kind, count(*), sum(CASE WHEN human > 0 THEN 1 ELSE 0 END), '
        'sum(events), sum(human) FROM reader_tally GROUP BY send_id, kind'
    ))
    opens = (
        'FROM provider_event e JOIN send s ON s.id = e.send_id '
        "WHERE e.delivery_id IS NOT NULL AND e.kind = 'opened' AND NOT e.machine "
        'AND s.started_at IS NOT NULL AND e.occurred_at >= s.started_at'
    )
    if bind.dialect.name == 'postgresql':
        hour = "CAST(floor(date_part('epoch', e.occurred_at - s.started_at) / 3600) AS INTEGER)"
        bind.execute(sa.text(
            f'INSERT INTO hour_tally (send_id, hour, opens) SELECT e.send_id, {hour}, count(*) '
            f'{opens} GROUP BY e.send_id, {hour}'
        ))
    else:
        # SQLite's julianday() keeps milliseconds in a float: an open at an hour's edge
        # could fall in the hour before. Whole hours in Python, as the webhook counts them.
        hours: Counter[tuple[int, int]] = Counter()
        for send_id, occurred, started in bind.execute(
            sa.text(f'SELECT e.send_id, e.occurred_at, s.started_at {opens}')
        ):
            elapsed = _moment(occurred) - _moment(started)
            hours[(send_id, int(elapsed.total_seconds() // 3600))] += 1
        if hours:
            bind.execute(sa.text(
                'INSERT INTO hour_tally (send_id, hour, opens) VALUES (:send_id, :hour, :opens)'
            ), [
                {'send_id': send_id, 'hour': hour, 'opens': count}
                for (send_id, hour), count in hours.items()
            ])
    # Links are keyed by a digest SQLite cannot compute: counted here, a reader's link at a time.
    urls: dict[tuple[int, str], str] = {}
    clicks_on: Counter[tuple[int, str]] = Counter()
    readers_of: Counter[tuple[int, str]] = Counter()
    per_reader = []
    for delivery_id, send_id, url, clicks in bind.execute(sa.text(
        'SELECT delivery_id, min(send_id), url, count(*) FROM provider_event '
        f"WHERE {ours} AND kind = 'clicked' GROUP BY delivery_id, url"
    )):
        key = _url_key(url)
        per_reader.append({'delivery_id': delivery_id, 'url_key': key, 'clicks': clicks})
        urls[(send_id, key)] = url
        clicks_on[(send_id, key)] += clicks
        readers_of[(send_id, key)] += 1
    if per_reader:
        bind.execute(sa.text(
            'INSERT INTO reader_link_tally (delivery_id, url_key, clicks) '
            'VALUES (:delivery_id, :url_key, :clicks)'
        ), per_reader)
    if urls:
        bind.execute(sa.text(
            'INSERT INTO link_tally (send_id, url_key, url, clicks, readers) '
            'VALUES (:send_id, :url_key, :url, :clicks, :readers)'
        ), [
            {'send_id': send_id, 'url_key': key, 'url': url, 'clicks': clicks_on[(send_id, key)],
             'readers': readers_of[(send_id, key)]}
            for (send_id, key), url in urls.items()
        ])


def downgrade() -> None:
    op.create_index('ix_provider_event_report', 'provider_event', REPORT_INDEX, unique=False)
    op.create_index(
        'ix_provider_event_send_kind', 'provider_event', ['send_id', 'kind'], unique=False
    )
    for table in ('hour_tally', 'link_tally', 'send_tally', 'reader_link_tally', 'reader_tally'):
        op.drop_table(table)
