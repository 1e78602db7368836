"""Which topics readers read: per topic, the briefs sent on it since a day, the messages
delivered, the readers who opened or clicked any of them, and open and click rates
(`newsletter report topics`, the console's reports page).

A send counts for every topic of its brief. Digests (several briefs in one email) are left
out: an open of a digest says nothing of which of its briefs was read. Rates are shares of
the delivered messages that a person opened (machine opens apart, as in a send's report)
or clicked in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.models import BriefTopic, Delivery, Send, SendKind
from newsletter.models import ProviderEventRecord as Event
from newsletter.providers.events import EventType
from newsletter.reports.sql import per_reader, rate
from subscribers.models import Topic

_COUNTED = (EventType.DELIVERED.value, EventType.OPENED.value, EventType.CLICKED.value)


@dataclass(frozen=True)
class TopicRow:
    slug: str
    name: str
    sends: int
    delivered: int  # messages delivered, over all its sends
    readers: int  # distinct readers who opened or clicked any of its sends
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


def _sends_since(since: datetime) -> sa.Select[Any]:
    return sa.select(col(Send.id)).where(
        col(Send.kind) == SendKind.BRIEF.value,
        col(Send.started_at).is_not(None),
        col(Send.started_at) >= since,
    )


def topics_report(*, session: Session, since: datetime) -> TopicReport:
    """Every topic (those with no send since `since` too), most read first."""
    sends = _sends_since(since)
    each = per_reader(
        col(Event.send_id).in_(sends.scalar_subquery()),
        col(Event.kind).in_(_COUNTED),
        by_send=True,
    )
    person = each.c.human > 0
    per_send = (
        sa.select(
            each.c.send_id,
            sa.func.sum(sa.case((each.c.kind == EventType.DELIVERED.value, 1), else_=0)).label(
                "delivered"
            ),
            sa.func.sum(
                sa.case((sa.and_(each.c.kind == EventType.OPENED.value, person), 1), else_=0)
            ).label("opened"),
            sa.func.sum(sa.case((each.c.kind == EventType.CLICKED.value, 1), else_=0)).label(
                "clicked"
            ),
        )
        .group_by(each.c.send_id)
        .subquery("per_send")
    )
    counted = sends.subquery("counted")
    rows = session.execute(
        sa.select(
            col(Topic.id),
            col(Topic.slug),
            col(Topic.name),
            sa.func.count(counted.c.id).label("sends"),
            sa.func.coalesce(sa.func.sum(per_send.c.delivered), 0).label("delivered"),
            sa.func.coalesce(sa.func.sum(per_send.c.opened), 0).label("opened"),
            sa.func.coalesce(sa.func.sum(per_send.c.clicked), 0).label("clicked"),
        )
        .select_from(Topic)
        .outerjoin(BriefTopic, col(BriefTopic.topic_id) == col(Topic.id))
        .outerjoin(Send, col(Send.brief_id) == col(BriefTopic.brief_id))
        .outerjoin(counted, counted.c.id == col(Send.id))
        .outerjoin(per_send, per_send.c.send_id == counted.c.id)
        .group_by(col(Topic.id), col(Topic.slug), col(Topic.name))
    ).all()
    readers = _readers_per_topic(session, sends)
    topics = [
        TopicRow(
            slug=row.slug,
            name=row.name,
            sends=int(row.sends),
            delivered=int(row.delivered),
            readers=readers.get(row.id, 0),
            opened=int(row.opened),
            clicked=int(row.clicked),
        )
        for row in rows
    ]
    topics.sort(key=lambda t: (-(t.open_rate or 0), -t.readers, t.slug))
    return TopicReport(since=since, topics=topics)


def _readers_per_topic(session: Session, sends: sa.Select[Any]) -> dict[int, int]:
    """Topic id → distinct readers (subscribers, across its sends) who opened (a person,
    not a machine) or clicked."""
    read = sa.or_(
        col(Event.kind) == EventType.CLICKED.value,
        sa.and_(col(Event.kind) == EventType.OPENED.value, col(Event.machine) == sa.false()),
    )
    rows = session.execute(
        sa.select(
            col(BriefTopic.topic_id),
            sa.func.count(sa.distinct(col(Delivery.subscriber_id))).label("readers"),
        )
        .select_from(Event)
        .join(Delivery, col(Delivery.id) == col(Event.delivery_id))
        .join(Send, col(Send.id) == col(Event.send_id))
        .join(BriefTopic, col(BriefTopic.brief_id) == col(Send.brief_id))
        .where(col(Event.send_id).in_(sends.scalar_subquery()), read)
        .group_by(col(BriefTopic.topic_id))
    ).all()
    return {int(row.topic_id): int(row.readers) for row in rows}
