"""Readers who leave by our own links, counted in the report of the send that last
reached them.

Our mail carries our own unsubscribe link and one-click header, not SendGrid's, so
SendGrid's `unsubscribe` event (which the webhook counts) almost never comes: without
this, every report said nobody unsubscribed. A reader's links name the reader, not the
send (one link for all their mail), so the send is found by time: the last one handed off
to them, if within ATTRIBUTION of their leaving. It is counted as that delivery's
`unsubscribed` event would be, so a reader is one reader however often they leave, and
one SendGrid event for the same delivery adds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.models import Delivery, DeliveryStatus
from newsletter.providers.events import EventType, ProviderEvent
from newsletter.tallies.apply import tally_events
from subscribers.models import Subscriber, SubscriberStatus, id_of, utcnow
from subscribers.reader import leave
from subscribers.status import Actor

ATTRIBUTION = timedelta(days=30)
PROVIDER = "newsletter"  # ours: not an event any provider sent


def leave_by_link(person: Subscriber, *, session: Session, actor: Actor = Actor.READER) -> bool:
    """`subscribers.reader.leave`, and, for a reader who left just now, an unsubscribe in
    the report of the send that last reached them."""
    already = person.status == SubscriberStatus.UNSUBSCRIBED
    left = leave(person, session=session, actor=actor)
    if left and not already:
        count_unsubscribe(id_of(person), at=utcnow(), session=session)
    return left


def count_unsubscribe(subscriber_id: int, *, at: datetime, session: Session) -> int | None:
    """Count a reader's leaving at `at` against the last send handed off to them within
    ATTRIBUTION before; that send's id, or None (nothing reached them lately).

    Plan: ix_delivery_subscriber finds the reader's rows (one per send they were in), and
    the few left by the filter are sorted: a handful of rows whatever the ledger's size."""
    latest = session.execute(
        sa.select(col(Delivery.id), col(Delivery.send_id))
        .where(
            col(Delivery.subscriber_id) == subscriber_id,
            col(Delivery.status) == DeliveryStatus.SENT,
            col(Delivery.updated_at) >= at - ATTRIBUTION,
            col(Delivery.updated_at) <= at,
        )
        .order_by(col(Delivery.updated_at).desc(), col(Delivery.id).desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    delivery_id, send_id = latest
    event = ProviderEvent(
        provider=PROVIDER,
        type=EventType.UNSUBSCRIBED,
        provider_type="unsubscribe",
        event_id="",
        email="",
        occurred_at=at,
        delivery_id=delivery_id,
    )
    tally_events([event], {delivery_id: (send_id, subscriber_id)}, session=session)
    return int(send_id)
