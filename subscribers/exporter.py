"""Exporting the subscriber spreadsheet: the import's format, so the file round-trips.

Streamed in chunks, so a million rows never sit in memory at once. Forgotten people are
not exported: there is nothing of them left to export.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO

import sqlalchemy as sa
from sqlmodel import Session, col, select

from subscribers.csvfile import TOPIC_SEPARATOR, write_rows
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic, Topic
from subscribers.roster import ALL_TOPICS

CHUNK = 5000


def _rows(session: Session, where: tuple[sa.ColumnElement[bool], ...]) -> Iterator[list[str]]:
    slugs = {t.id: t.slug for t in session.exec(select(Topic))}
    after = 0
    while True:
        people = list(
            session.exec(
                select(Subscriber)
                .where(col(Subscriber.id) > after, Subscriber.status != SubscriberStatus.FORGOTTEN)
                .where(*where)
                .order_by(col(Subscriber.id))
                .limit(CHUNK)
            )
        )
        if not people:
            return
        follows: dict[int, list[str]] = {}
        for subscriber_id, topic_id in session.exec(
            select(SubscriberTopic.subscriber_id, SubscriberTopic.topic_id).where(
                col(SubscriberTopic.subscriber_id).between(people[0].id, people[-1].id)
            )
        ):
            follows.setdefault(subscriber_id, []).append(slugs[topic_id])
        for person in people:
            topics = [ALL_TOPICS] if person.all_topics else sorted(follows.get(person.id or 0, []))
            since = person.consent_at or person.created_at
            yield [
                person.email,
                person.name,
                TOPIC_SEPARATOR.join(topics),
                person.cadence,
                person.timezone,
                person.status,
                since.isoformat(timespec="seconds"),
            ]
        after = people[-1].id or 0
        session.expunge_all()  # keep memory flat across chunks


def export_subscribers(
    stream: IO[str],
    *,
    session: Session,
    where: Iterable[sa.ColumnElement[bool]] = (),
    bom: bool = False,
) -> int:
    """Write every subscriber (but the forgotten) as CSV; returns how many rows. `where`
    narrows it (the console list's filters, or the inactive readers of
    newsletter/engagement.py for a sunset list). `bom` starts it with UTF-8's byte-order
    mark, for a file someone will open in Excel (subscribers/csvfile.py: BOM)."""
    return write_rows(stream, _rows(session, tuple(where)), bom=bom)
