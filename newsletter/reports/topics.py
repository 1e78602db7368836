"""Which topics readers read: per topic, the briefs sent on it since a day, the messages
delivered, the readers who read them, and open and click rates (`newsletter report
topics`, the console's reports page).

A send counts for every topic of its brief. Digests (several briefs in one email) are left
out: an open of a digest says nothing of which of its briefs was read. `readers` are, for
each send, the readers who opened it (a person, not a privacy proxy) or clicked in it,
summed over the topic's sends: a reader who read three briefs on a topic counts three
times, as their three messages count three times in `delivered`. Rates are shares of the
delivered messages that a person opened, or that someone clicked in.

Everything is read from the sends' tallies, kept as events arrive (`newsletter/tallies/`):
a few rows per send. Counted from the events, a million-delivery send took 3.8 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.models import BriefTopic, Send, SendKind
from newsletter.providers.events import EventType
from newsletter.reports.sql import rate
from newsletter.tallies.apply import READ
from newsletter.tallies.models import SendTally
from subscribers.models import Topic

_COUNTED = (EventType.DELIVERED.value, EventType.OPENED.value, EventType.CLICKED.value, READ)


DEFAULT_DAYS = 90  # the topics report's window when no day is given


def since_day(value: str | None, zone: str, *, now: datetime) -> datetime:
    """Where a topics report starts: midnight of `value` (YYYY-MM-DD) in the firm's zone,
    or DEFAULT_DAYS before `now` when none is given. ValueError for anything else (the CLI
    and the console word it their own way).

    0001-01-01 east of UTC is the first instant a datetime holds: its midnight there is in
    year 0 in UTC, on which the database driver failed (a traceback at a terminal, a 500
    in the console), and "since year 1" asks for everything anyway."""
    if value is None:
        return now - timedelta(days=DEFAULT_DAYS)
    day = datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=ZoneInfo(zone))
    try:
        day.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)
    return day


@dataclass(frozen=True)
class TopicRow:
    slug: str
    name: str
    sends: int
    delivered: int  # messages delivered, over all its sends
    readers: int  # per send, readers who opened (a person) or clicked; summed over its sends
    opened: int  # delivered messages a person opened
    clicked: int  # delivered messages someone clicked in

    @property
    def open_rate(self) -> float | None:
        return rate(self.opened, self.delivered)

    @property
    def click_rate(self) -> float | None:
        return rate(self.clicked, self.delivered)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.slug,
            "name": self.name,
            "sends": self.sends,
            "delivered": self.delivered,
            "readers": self.readers,
            "opened": self.opened,
            "clicked": self.clicked,
            "open_rate": self.open_rate,
            "click_rate": self.click_rate,
        }


@dataclass(frozen=True)
class TopicReport:
    since: datetime
    topics: list[TopicRow]

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "topics": [t.as_dict() for t in self.topics]}


def _sends_since(session: Session, since: datetime) -> list[int]:
    """Brief sends started since `since`: a short list, whose tallies are then read."""
    return list(
        session.execute(
            sa.select(col(Send.id)).where(
                col(Send.kind) == SendKind.BRIEF.value,
                col(Send.started_at).is_not(None),
                col(Send.started_at) >= since,
            )
        ).scalars()
    )


def _per_send(session: Session, sends: list[int]) -> dict[int, tuple[int, int, int, int]]:
    """Send → (delivered, opened by a person, clicked, read: opened by a person or
    clicked), each a count of readers, from the sends' tallies."""
    counts: dict[int, dict[str, int]] = {}
    if sends:
        for row in session.execute(
            sa.select(SendTally).where(
                col(SendTally.send_id).in_(sends), col(SendTally.kind).in_(_COUNTED)
            )
        ).scalars():
            # A person's opens for `opened`; every other kind is a person's by definition.
            counts.setdefault(row.send_id, {})[row.kind] = row.people
    return {
        send: (
            kinds.get(EventType.DELIVERED.value, 0),
            kinds.get(EventType.OPENED.value, 0),
            kinds.get(EventType.CLICKED.value, 0),
            kinds.get(READ, 0),
        )
        for send, kinds in counts.items()
    }


def topics_report(*, session: Session, since: datetime) -> TopicReport:
    """Every topic (those with no send since `since` too), most read first."""
    sends = _sends_since(session, since)
    counts = _per_send(session, sends)
    topics_of: dict[int, list[int]] = {}
    for topic_id, send_id in session.execute(
        sa.select(col(BriefTopic.topic_id), col(Send.id))
        .join(Send, col(Send.brief_id) == col(BriefTopic.brief_id))
        .where(col(Send.id).in_(sends))
    ).all():
        topics_of.setdefault(int(topic_id), []).append(int(send_id))
    topics = []
    for topic in session.execute(sa.select(Topic)).scalars():
        mine = [counts.get(send, (0, 0, 0, 0)) for send in topics_of.get(topic.id or 0, [])]
        delivered, opened, clicked, readers = (
            (sum(column) for column in zip(*mine, strict=True)) if mine else (0, 0, 0, 0)
        )
        topics.append(
            TopicRow(
                slug=topic.slug,
                name=topic.name,
                sends=len(mine),
                delivered=delivered,
                readers=readers,
                opened=opened,
                clicked=clicked,
            )
        )
    topics.sort(key=lambda t: (-(t.open_rate or 0), -t.readers, t.slug))
    return TopicReport(since=since, topics=topics)
