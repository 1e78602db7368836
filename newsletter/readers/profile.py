"""One reader as staff see them (`subscribers show`, the console's reader page): status,
topics, cadence, timezone, every status change, the consent record, every delivery with
what the provider told us about it, the confirmations and welcomes sent or held back, and
their last open and click.

Four queries whatever the reader's history: the reader's deliveries (ix_delivery_subscriber)
with their sends and briefs, those deliveries' events (the provider_event.delivery_id index),
the status changes, and the reader's transactional mail (its subscriber_id index).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.engagement import Engagement, engagement_of
from newsletter.models import Brief, Delivery, ProviderEventRecord, Send, TransactionalMail
from subscribers.models import Subscriber, SubscriberStatusChange, id_of
from subscribers.roster import followed_topics


@dataclass(frozen=True)
class EventLine:
    kind: str
    at: datetime
    url: str = ""
    machine: bool = False
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at.isoformat(),
            "url": self.url,
            "machine": self.machine,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DeliveryLine:
    """One delivery: which send and brief, when, its ledger status, and its events."""

    delivery_id: int
    send_id: int
    kind: str
    brief_title: str
    brief_slug: str
    when: datetime | None
    status: str
    error: str
    events: list[EventLine] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery_id,
            "send": self.send_id,
            "kind": self.kind,
            "brief": self.brief_title,
            "brief_slug": self.brief_slug,
            "when": self.when.isoformat() if self.when else None,
            "status": self.status,
            "error": self.error,
            "events": [event.as_dict() for event in self.events],
        }


# A reader's newest confirmations and welcomes shown (a mailbox gets three a day at most).
MAIL_SHOWN = 20


@dataclass(frozen=True)
class MailLine:
    """A confirmation or welcome: whether it went. Staff resending a held-back reader's
    confirmation had no way to see that none ever went."""

    kind: str
    queued: datetime
    status: str
    sent: datetime | None
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "queued": self.queued.isoformat(),
            "status": self.status,
            "sent": self.sent.isoformat() if self.sent else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class ReaderProfile:
    person: Subscriber
    topics: list[str]
    history: list[SubscriberStatusChange]
    deliveries: list[DeliveryLine]
    engagement: Engagement
    mail: list[MailLine] = field(default_factory=list)  # newest first

    def as_dict(self) -> dict[str, Any]:
        p = self.person
        return {
            "id": p.id,
            "email": p.email,
            "name": p.name,
            "status": p.status,
            "topics": self.topics,
            "cadence": p.cadence,
            "timezone": p.timezone,
            "created_at": p.created_at.isoformat(),
            "status_history": [change.as_dict() for change in self.history],
            "status_changed_at": p.status_changed_at.isoformat() if p.status_changed_at else None,
            "status_changed_by": p.status_changed_by,
            "consent": {
                "source": p.consent_source,
                "at": p.consent_at.isoformat() if p.consent_at else None,
                "ip": p.consent_ip,
            },
            "deliveries": [line.as_dict() for line in self.deliveries],
            "mail": [line.as_dict() for line in self.mail],
            **self.engagement.as_dict(),
        }


def reader_profile(person: Subscriber, *, session: Session) -> ReaderProfile:
    reader_id = id_of(person)
    rows = session.execute(
        sa.select(Delivery, col(Send.kind), col(Brief.title), col(Brief.slug))
        .join(Send, col(Send.id) == col(Delivery.send_id))
        .join(Brief, col(Brief.id) == col(Send.brief_id))
        .where(col(Delivery.subscriber_id) == reader_id)
        .order_by(col(Delivery.id).desc())
    ).all()
    events: dict[int, list[EventLine]] = {}
    mine = sa.select(col(Delivery.id)).where(col(Delivery.subscriber_id) == reader_id)
    for event in session.exec(
        select(ProviderEventRecord)
        .where(col(ProviderEventRecord.delivery_id).in_(mine))
        .order_by(col(ProviderEventRecord.occurred_at), col(ProviderEventRecord.id))
    ):
        events.setdefault(event.delivery_id or 0, []).append(
            EventLine(event.kind, event.occurred_at, event.url, event.machine, event.detail)
        )
    deliveries = [
        DeliveryLine(
            delivery_id=id_of(delivery),
            send_id=delivery.send_id,
            kind=kind,
            brief_title=title,
            brief_slug=slug,
            when=delivery.updated_at or delivery.not_before,
            status=delivery.status,
            error=delivery.error,
            events=events.get(id_of(delivery), []),
        )
        for delivery, kind, title, slug in rows
    ]
    history = list(
        session.exec(
            select(SubscriberStatusChange)
            .where(col(SubscriberStatusChange.subscriber_id) == reader_id)
            .order_by(col(SubscriberStatusChange.id))
        )
    )
    return ReaderProfile(
        person=person,
        topics=followed_topics(person, session=session),
        history=history,
        deliveries=deliveries,
        engagement=engagement_of([reader_id], session=session).get(reader_id, Engagement()),
        mail=[
            MailLine(m.kind, m.created_at, m.status, m.sent_at, m.error)
            for m in session.exec(
                select(TransactionalMail)
                .where(col(TransactionalMail.subscriber_id) == reader_id)
                .order_by(col(TransactionalMail.id).desc())
                .limit(MAIL_SHOWN)
            )
        ],
    )
