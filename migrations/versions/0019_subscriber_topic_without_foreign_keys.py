"""`subscriber_topic` without its two foreign keys: PostgreSQL checks each with a trigger
per inserted row, 6.2 µs a link, a quarter of importing a big list (README "How fast").
As with `delivery`, the code keeps the links whole: they are written only with ids just
read from `subscriber` and `topic`, subscribers are never deleted (`forget` empties the
row), and the one way a topic goes (`merge_topics`) deletes its links first. (A link
written beside a merge, to the topic it removes, can outlive it: it matches no brief.)

SQLite cannot drop a constraint: the table is rebuilt with the same rows and indexes.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-26 08:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE subscriber_topic DROP CONSTRAINT IF EXISTS subscriber_topic_subscriber_id_fkey')
        op.execute('ALTER TABLE subscriber_topic DROP CONSTRAINT IF EXISTS subscriber_topic_topic_id_fkey')
        return
    _rebuild_sqlite(foreign_keys='')


def downgrade() -> None:
    # A merge of topics running beside an import or a reader's preferences can leave a link
    # to the topic that went (it matches nothing: no brief is on that topic). The foreign
    # keys would refuse it.
    op.execute('DELETE FROM subscriber_topic WHERE topic_id NOT IN (SELECT id FROM topic)')
    op.execute(
        'DELETE FROM subscriber_topic WHERE subscriber_id NOT IN (SELECT id FROM subscriber)'
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            'ALTER TABLE subscriber_topic ADD CONSTRAINT subscriber_topic_subscriber_id_fkey '
            'FOREIGN KEY (subscriber_id) REFERENCES subscriber (id) ON DELETE CASCADE'
        )
        op.execute(
            'ALTER TABLE subscriber_topic ADD CONSTRAINT subscriber_topic_topic_id_fkey '
            'FOREIGN KEY (topic_id) REFERENCES topic (id) ON DELETE CASCADE'
        )
        return
    _rebuild_sqlite(
        foreign_keys=(
            ', FOREIGN KEY (subscriber_id) REFERENCES subscriber (id) ON DELETE CASCADE'
            ', FOREIGN KEY (topic_id) REFERENCES topic (id) ON DELETE CASCADE'
        )
    )


def _rebuild_sqlite(*, foreign_keys: str) -> None:
    op.execute(
        'CREATE TABLE subscriber_topic_new (subscriber_id INTEGER NOT NULL, '
        'topic_id INTEGER NOT NULL, PRIMARY KEY (subscriber_id, topic_id)' + foreign_keys + ')'
    )
    op.execute(
        'INSERT INTO subscriber_topic_new (subscriber_id, topic_id) '
        'SELECT subscriber_id, topic_id FROM subscriber_topic'
    )
    op.execute('DROP TABLE subscriber_topic')
    op.execute('ALTER TABLE subscriber_topic_new RENAME TO subscriber_topic')
    op.execute('CREATE INDEX ix_subscriber_topic_topic ON subscriber_topic (topic_id, subscriber_id)')
