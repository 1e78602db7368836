"""Provider events, one internal type, applied to the ledger and the list.

Each provider's webhook is verified and normalized into `ProviderEvent` by its own module
(`transports/sendgrid_events.py`); only then does anything act on it, here:

* processed / delivered → the delivery is sent (an `unknown` one is settled as sent);
* bounce: hard → the address is bounced at once; soft → counted, bounced at
  NEWSLETTER_SOFT_BOUNCE_LIMIT; the delivery failed;
* dropped → the delivery failed, with the provider's reason;
* spamreport → the subscriber complained: never mailed again;
* unsubscribe / group_unsubscribe → unsubscribed;
* deferred, open, click → recorded only.

Every event is recorded once (`ProviderEventRecord`); a duplicate changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from newsletter.db import is_postgresql
from newsletter.models import Delivery, DeliveryStatus, ProviderEventRecord
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.roster import set_status


class EventKind(StrEnum):
    PROCESSED = "processed"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCE = "bounce"
    DROPPED = "dropped"
    SPAMREPORT = "spamreport"
    UNSUBSCRIBE = "unsubscribe"
    GROUP_UNSUBSCRIBE = "group_unsubscribe"
    OPEN = "open"
    CLICK = "click"
    OTHER = "other"


@dataclass(frozen=True)
class ProviderEvent:
    provider: str
    kind: EventKind
    event_id: str
    email: str
    occurred_at: datetime
    delivery_id: int | None = None
    message_id: str = ""
    hard_bounce: bool = False
    reason: str = ""

    @property
    def fallback_key(self) -> str:
        """What happened, to whom, when: equal for a redelivery under a new event id."""
        who = str(self.delivery_id) if self.delivery_id is not None else self.email
        text = f"{self.kind}|{who}|{self.occurred_at.isoformat()}|{self.message_id}"
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class EventReport:
    applied: int = 0
    duplicates: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _record(session: Session, event: ProviderEvent) -> bool:
    """Insert the event's record; False if it was seen before (by id or fallback key)."""
    insert = postgresql.insert if is_postgresql(session.connection()) else sqlite.insert
    statement = (
        insert(ProviderEventRecord)
        .values(
            provider=event.provider,
            event_id=event.event_id or event.fallback_key,
            fallback_key=event.fallback_key,
            kind=event.kind.value,
            email=event.email,
            delivery_id=event.delivery_id,
            occurred_at=event.occurred_at,
            detail=event.reason,
        )
        .on_conflict_do_nothing()
        .returning(col(ProviderEventRecord.id))
    )
    return session.execute(statement).first() is not None


def apply_events(
    events: list[ProviderEvent], *, session: Session, soft_bounce_limit: int = 3
) -> EventReport:
    report = EventReport()
    for event in events:
        if not _record(session, event):
            report.duplicates += 1
            continue
        report.applied += 1
        report.by_kind[event.kind] = report.by_kind.get(event.kind, 0) + 1
        _apply(event, session=session, soft_bounce_limit=soft_bounce_limit)
    return report


def _subscriber(event: ProviderEvent, session: Session) -> Subscriber | None:
    if event.delivery_id is not None:
        delivery = session.get(Delivery, event.delivery_id)
        if delivery is not None:
            return session.get(Subscriber, delivery.subscriber_id)
    if event.email:
        return session.execute(
            sa.select(Subscriber).where(col(Subscriber.email) == event.email.lower())
        ).scalar_one_or_none()
    return None


def _settle(event: ProviderEvent, status: DeliveryStatus, error: str, session: Session) -> None:
    if event.delivery_id is None:
        return
    settled_from = [DeliveryStatus.CLAIMED, DeliveryStatus.UNKNOWN, DeliveryStatus.SENT]
    if status is DeliveryStatus.SENT:
        settled_from = [DeliveryStatus.CLAIMED, DeliveryStatus.UNKNOWN]
    session.execute(
        sa.update(Delivery)
        .where(col(Delivery.id) == event.delivery_id, col(Delivery.status).in_(settled_from))
        .values(status=status, error=error, updated_at=event.occurred_at)
    )


def _apply(event: ProviderEvent, *, session: Session, soft_bounce_limit: int) -> None:
    kind = event.kind
    by = f"{event.provider}:{kind.value}"
    if kind in (EventKind.PROCESSED, EventKind.DELIVERED):
        _settle(event, DeliveryStatus.SENT, "", session)
        if kind is EventKind.DELIVERED and (person := _subscriber(event, session)):
            person.soft_bounces = 0
            session.add(person)
        return
    if kind is EventKind.DROPPED:
        _settle(
            event, DeliveryStatus.FAILED, f"dropped by {event.provider}: {event.reason}", session
        )
        return
    person = _subscriber(event, session)
    if kind is EventKind.BOUNCE:
        label = "hard" if event.hard_bounce else "soft"
        _settle(event, DeliveryStatus.FAILED, f"{label} bounce: {event.reason}", session)
        if person is None:
            return
        person.soft_bounces += 0 if event.hard_bounce else 1
        session.add(person)
        exhausted = event.hard_bounce or person.soft_bounces >= soft_bounce_limit
        if exhausted and person.status == SubscriberStatus.ACTIVE:
            set_status(person, SubscriberStatus.BOUNCED, by=by, session=session)
        return
    if person is None:
        return
    if kind is EventKind.SPAMREPORT:
        set_status(person, SubscriberStatus.COMPLAINED, by=by, session=session)
    elif (
        kind in (EventKind.UNSUBSCRIBE, EventKind.GROUP_UNSUBSCRIBE)
        and person.status != SubscriberStatus.COMPLAINED
    ):
        set_status(person, SubscriberStatus.UNSUBSCRIBED, by=by, session=session)
