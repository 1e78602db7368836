"""Provider events, in our own vocabulary, applied to the ledger and the list.

Each provider's webhook verifies and maps its events into `ProviderEvent` first
(`providers/sendgrid/webhook.py`); only then does anything act on them, here:

* accepted / delivered → the delivery is sent (an `unknown` one is settled as sent);
* bounced: hard → the address is bounced at once; soft → counted, bounced at
  NEWSLETTER_SOFT_BOUNCE_LIMIT; the delivery failed;
* dropped → the delivery failed, with the provider's reason;
* complained → the reader is never mailed again;
* unsubscribed → unsubscribed;
* deferred, opened, clicked, unknown → recorded only.

Every event is recorded once (`ProviderEventRecord`, with the provider's payload); a
duplicate changes nothing. A malformed event (or one the database cannot take) is recorded
as `rejected`, with why, and the rest of its batch still applies: each event is its own
savepoint.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from newsletter import metrics
from newsletter.db import dialect_insert
from newsletter.models import Delivery, DeliveryStatus, ProviderEventRecord
from newsletter.providers.events import EventType, ProviderEvent
from newsletter.sending import ledger
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.status import Actor, change_status, may_change

log = logging.getLogger("newsletter.events")


@dataclass
class EventReport:
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def _send_of(delivery_id: int | None) -> sa.ScalarSelect[int] | None:
    if delivery_id is None:
        return None
    return sa.select(col(Delivery.send_id)).where(col(Delivery.id) == delivery_id).scalar_subquery()


def _record(session: Session, event: ProviderEvent) -> bool:
    """Insert the event's record; False if it was seen before (by id or fallback key)."""
    statement = (
        dialect_insert(session, ProviderEventRecord)
        .values(
            provider=event.provider,
            event_id=event.event_id or event.fallback_key,
            fallback_key=event.fallback_key,
            kind=event.type.value,
            email=event.email,
            delivery_id=event.delivery_id,
            send_id=_send_of(event.delivery_id),
            url=event.url,
            machine=event.machine,
            occurred_at=event.occurred_at,
            detail=event.reason,
            raw=json.dumps(event.raw, ensure_ascii=False, sort_keys=True),
        )
        .on_conflict_do_nothing()
        .returning(col(ProviderEventRecord.id))
    )
    return session.execute(statement).first() is not None


def apply_events(
    events: list[ProviderEvent], *, session: Session, soft_bounce_limit: int = 3
) -> EventReport:
    report = EventReport()
    applied: list[ProviderEvent] = []
    duplicates: Counter[str] = Counter()
    for event in events:
        try:
            with session.begin_nested():
                fresh = _record(session, event)
                if fresh and event.type is not EventType.REJECTED:
                    _apply(event, session=session, soft_bounce_limit=soft_bounce_limit)
        except SQLAlchemyError as exc:
            log.warning("event %s could not be applied: %s", event.event_id, exc)
            why = f"could not be applied: {type(exc).__name__}"
            event = replace(
                event,
                type=EventType.REJECTED,
                event_id=f"rejected:{event.fallback_key}",
                delivery_id=None,
                email=event.email[:320],
                reason=why,
            )
            with session.begin_nested():
                fresh = _record(session, event)
        if not fresh:
            report.duplicates += 1
            duplicates[event.provider] += 1
        elif event.type is EventType.REJECTED:
            report.rejected += 1
        else:
            report.applied += 1
            report.by_type[event.type] = report.by_type.get(event.type, 0) + 1
            applied.append(event)
    _tell_when_committed(session, applied, duplicates, report.rejected)
    return report


def _tell_when_committed(
    session: Session, applied: list[ProviderEvent], duplicates: Counter[str], rejected: int
) -> None:
    """Count and log what was applied once it is committed: a transaction that rolls back
    applied nothing, and must count nothing."""
    if not (applied or duplicates or rejected):
        return

    def committed(_session: Session) -> None:
        by_type = Counter((event.provider, event.type.value) for event in applied)
        for (provider, kind), count in by_type.items():
            metrics.EVENTS.labels(provider, kind).inc(count)
        for provider, count in duplicates.items():
            metrics.EVENT_DUPLICATES.labels(provider).inc(count)
        kinds = ", ".join(f"{kind} {count}" for (_, kind), count in sorted(by_type.items()))
        log.info(
            "provider events applied: %s (%s); duplicates ignored: %s; rejected: %s",
            len(applied),
            kinds or "none",
            sum(duplicates.values()),
            rejected,
        )

    sa.event.listen(session, "after_commit", committed, once=True)


def _subscriber(event: ProviderEvent, session: Session) -> Subscriber | None:
    if event.delivery_id is not None:
        subscriber_id = ledger.subscriber_of(session, event.delivery_id)
        if subscriber_id is not None:
            return session.get(Subscriber, subscriber_id)
    if event.email:
        return session.execute(
            sa.select(Subscriber).where(col(Subscriber.email) == event.email.lower())
        ).scalar_one_or_none()
    return None


def _settle(event: ProviderEvent, status: DeliveryStatus, error: str, session: Session) -> None:
    if event.delivery_id is not None:
        ledger.settle_by_event(session, event.delivery_id, status, error, at=event.occurred_at)


def _apply(event: ProviderEvent, *, session: Session, soft_bounce_limit: int) -> None:
    kind = event.type
    by = f"{event.provider}:{event.provider_type}"
    if kind in (EventType.ACCEPTED, EventType.DELIVERED):
        _settle(event, DeliveryStatus.SENT, "", session)
        if kind is EventType.DELIVERED and (person := _subscriber(event, session)):
            person.soft_bounces = 0
            session.add(person)
        return
    if kind is EventType.DROPPED:
        _settle(
            event, DeliveryStatus.FAILED, f"dropped by {event.provider}: {event.reason}", session
        )
        return
    if kind not in (EventType.BOUNCED, EventType.COMPLAINED, EventType.UNSUBSCRIBED):
        return
    person = _subscriber(event, session)
    if kind is EventType.BOUNCED:
        label = "hard" if event.hard_bounce else "soft"
        _settle(event, DeliveryStatus.FAILED, f"{label} bounce: {event.reason}", session)
        if person is None:
            return
        person.soft_bounces += 0 if event.hard_bounce else 1
        session.add(person)
        if event.hard_bounce or person.soft_bounces >= soft_bounce_limit:
            _become(person, SubscriberStatus.BOUNCED, by, session)
        return
    if person is not None:
        _become(person, STATUS_AFTER[kind], by, session)


# What these events make of the reader (bounces count first), where the table allows it.
STATUS_AFTER = {
    EventType.COMPLAINED: SubscriberStatus.COMPLAINED,
    EventType.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
}


def _become(person: Subscriber, wanted: SubscriberStatus, by: str, session: Session) -> None:
    """Apply what the provider says, if the table lets a provider say it: a complaint
    outranks an unsubscribe, nothing moves a forgotten reader (the event stays recorded)."""
    if may_change(Actor.PROVIDER, person.status, wanted):
        change_status(person, wanted, actor=Actor.PROVIDER, by=by, session=session)
