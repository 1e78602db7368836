"""What a webhook batch's new events do to the ledger and the list, set-based: one
statement per kind of change, whatever the batch's size (`events.py` records them first).

* accepted / delivered → their deliveries sent (one UPDATE); delivered also clears the
  reader's soft-bounce count (one UPDATE, of readers who had any);
* dropped, bounced → their deliveries failed (one UPDATE, after the sent one: a failure
  may follow `sent`, never the reverse, so the order of events inside a batch does not
  change the outcome);
* bounced, complained, unsubscribed, and a drop for a suppressed address (as the event
  that suppressed it: `on_the_reader`) → the reader, replayed in Python in the batch's
  order over their locked rows (soft bounces counted to the limit; the status table
  decides each move), then one UPDATE per resulting status and one for the soft-bounce
  counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.db import any_of, is_postgresql
from newsletter.models import DeliveryStatus
from newsletter.providers.events import EventType, ProviderEvent
from newsletter.sending import ledger
from subscribers.models import Subscriber, SubscriberStatus, SubscriberStatusChange
from subscribers.reader import BY_READER
from subscribers.status import Actor, change_statuses, may_change

log = logging.getLogger("newsletter.events")

# What these events make of the reader (bounces count first), where the table allows it.
STATUS_AFTER = {
    EventType.COMPLAINED: SubscriberStatus.COMPLAINED,
    EventType.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
}
_SETTLES = (EventType.ACCEPTED, EventType.DELIVERED, EventType.DROPPED, EventType.BOUNCED)
_MOVES = (EventType.BOUNCED, EventType.COMPLAINED, EventType.UNSUBSCRIBED)


def apply_effects(
    events: list[ProviderEvent],
    deliveries: dict[int, tuple[int, int]],
    *,
    session: Session,
    soft_bounce_limit: int,
    now: datetime,
) -> None:
    """Apply `events` (new, not rejected, in the batch's order). `deliveries` maps the
    delivery ids they name to (send id, subscriber id)."""
    _settle(events, session)
    readers = _readers([on_the_reader(event) for event in events], deliveries, session)
    delivered_only = {
        reader
        for event, reader in readers
        if reader is not None and event.type is EventType.DELIVERED
    } - {reader for event, reader in readers if reader is not None and event.type in _MOVES}
    if delivered_only:
        session.execute(
            sa.update(Subscriber)
            .where(
                any_of(session, col(Subscriber.id), sorted(delivered_only)),
                col(Subscriber.soft_bounces) != 0,
            )
            .values(soft_bounces=0)
            .execution_options(synchronize_session=False)
        )
    moving = [
        (event, reader)
        for event, reader in readers
        if reader is not None and reader not in delivered_only
    ]
    if moving:
        _move_readers(moving, session, soft_bounce_limit=soft_bounce_limit, now=now)


def _dropped(event: ProviderEvent) -> bool:
    """An event `on_the_reader` made from a drop (its provider type says so still)."""
    return event.provider_type == "dropped"


def on_the_reader(event: ProviderEvent) -> ProviderEvent:
    """The event as it acts on its reader: a drop for an address the provider keeps on a
    suppression list acts as the event that put it there (`suppressed_by`), a bounce as a
    hard one; any other event as itself.

    The provider knows something of the reader we did not (a complaint, a bounce, an
    unsubscribe that never reached us as its own event), and will drop every later send
    to them: left active, a reader SendGrid knows as a spam complainer was mailed, and
    dropped, by every send. A suppressed bounce counts as a hard one: SendGrid's bounce
    list holds the addresses it gave up on (a passing refusal is a "block", which drops
    nothing), and waiting for NEWSLETTER_SOFT_BOUNCE_LIMIT drops would only mean more.

    Only the reader: the delivery is settled from the drop itself (failed, with the
    provider's reason), and the event is recorded and tallied as `dropped`, which no report
    counts. The reader never saw this send, and no receiving server was asked: counting a
    complaint, unsubscribe or bounce in its report would blame the send for what happened
    before it (and a bounce's rate is of the messages a server answered). The status change
    is in the history once, like any other, which is what the list's growth counts."""
    if event.type is not EventType.DROPPED or event.suppressed_by is None:
        return event
    return replace(
        event, type=event.suppressed_by, hard_bounce=event.suppressed_by is EventType.BOUNCED
    )


def _settle(events: list[ProviderEvent], session: Session) -> None:
    sent: dict[int, tuple[int, str, datetime]] = {}
    failed: dict[int, tuple[int, str, datetime]] = {}
    for event in events:
        if event.delivery_id is None or event.type not in _SETTLES:
            continue
        if event.type in (EventType.ACCEPTED, EventType.DELIVERED):
            sent[event.delivery_id] = (event.delivery_id, "", event.occurred_at)
        elif event.type is EventType.DROPPED:
            error = f"dropped by {event.provider}: {event.reason}"
            failed[event.delivery_id] = (event.delivery_id, error, event.occurred_at)
        else:
            label = "hard" if event.hard_bounce else "soft"
            error = f"{label} bounce: {event.reason}"
            failed[event.delivery_id] = (event.delivery_id, error, event.occurred_at)
    ledger.settle_by_events(session, DeliveryStatus.SENT, list(sent.values()))
    ledger.settle_by_events(session, DeliveryStatus.FAILED, list(failed.values()))


def _readers(
    events: list[ProviderEvent], deliveries: dict[int, tuple[int, int]], session: Session
) -> list[tuple[ProviderEvent, int | None]]:
    """Each event that concerns a reader, with the reader's id (by its delivery, else by
    address; None if neither is ours)."""
    concerned = [e for e in events if e.type is EventType.DELIVERED or e.type in _MOVES]
    by_email: dict[str, int] = {}
    emails = sorted(
        {
            e.email
            for e in concerned
            if e.email and (e.delivery_id is None or e.delivery_id not in deliveries)
        }
    )
    if emails:
        by_email = {
            email: reader
            for reader, email in session.execute(
                sa.select(col(Subscriber.id), col(Subscriber.email)).where(
                    any_of(session, col(Subscriber.email), emails)
                )
            ).all()
            if reader is not None
        }
    found: list[tuple[ProviderEvent, int | None]] = []
    for event in concerned:
        delivery = deliveries.get(event.delivery_id) if event.delivery_id is not None else None
        found.append((event, delivery[1] if delivery else by_email.get(event.email)))
    return found


@dataclass
class _Reader:
    status: str
    soft_bounces: int
    came_back: datetime | None = None  # when they last became active by their own hand
    moved_by: str = ""


def _came_back(session: Session, moving: list[tuple[ProviderEvent, int]]) -> dict[int, datetime]:
    """When each reader with an unsubscribe in this batch last became active by their own
    hand (confirmed, or unpaused, on their own page), from the status history: whatever
    changed since (a pause, staff, an import) leaves that choice standing. Staff or an
    import restoring them is no answer to an unsubscribe they clicked, and neither is a
    sign-up form asking again (anyone may type an address into it)."""
    asked = sorted({reader for event, reader in moving if event.type is EventType.UNSUBSCRIBED})
    if not asked:
        return {}
    change = SubscriberStatusChange
    rows = session.execute(
        sa.select(col(change.subscriber_id), sa.func.max(col(change.at)))
        .where(
            any_of(session, col(change.subscriber_id), asked),
            col(change.new_status) == SubscriberStatus.ACTIVE,
            col(change.by).in_([BY_READER, Actor.READER.value]),
        )
        .group_by(col(change.subscriber_id))
    ).all()
    return {reader: at for reader, at in rows if at is not None}


def _rejoined(session: Session, moving: list[tuple[ProviderEvent, int]]) -> set[int]:
    """Readers, of those a provider's unsubscribe list dropped mail to, who once left and
    later came back by their own hand: the list holds their old unsubscribe, not a new
    one (a provider's own unsubscribe arrives as its own event)."""
    dropped = sorted(
        {
            reader
            for event, reader in moving
            if event.type is EventType.UNSUBSCRIBED and _dropped(event)
        }
    )
    if not dropped:
        return set()
    back, left = sa.orm.aliased(SubscriberStatusChange), sa.orm.aliased(SubscriberStatusChange)
    rows = session.execute(
        sa.select(col(back.subscriber_id))
        .where(
            any_of(session, col(back.subscriber_id), dropped),
            col(back.new_status) == SubscriberStatus.ACTIVE,
            col(back.by).in_([BY_READER, Actor.READER.value]),
            sa.exists().where(
                col(left.subscriber_id) == col(back.subscriber_id),
                col(left.new_status) == SubscriberStatus.UNSUBSCRIBED,
                col(left.at) <= col(back.at),
            ),
        )
        .distinct()
    ).scalars()
    return set(rows)


def _move_readers(
    moving: list[tuple[ProviderEvent, int]],
    session: Session,
    *,
    soft_bounce_limit: int,
    now: datetime,
) -> None:
    """Replay each reader's events in order over their row as it is (locked, in id order,
    so two webhook requests at once cannot deadlock), then write the results."""
    ids = sorted({reader for _, reader in moving})
    query = (
        sa.select(
            col(Subscriber.id),
            col(Subscriber.status),
            col(Subscriber.soft_bounces),
        )
        .where(any_of(session, col(Subscriber.id), ids))
        .order_by(col(Subscriber.id))
    )
    if is_postgresql(session):
        query = query.with_for_update()
    came_back = _came_back(session, moving)
    rejoined = _rejoined(session, moving)
    before = {
        reader: _Reader(status, soft, came_back.get(reader))
        for reader, status, soft in session.execute(query).all()
        if reader is not None
    }
    after = {reader: _Reader(r.status, r.soft_bounces) for reader, r in before.items()}
    for event, reader in moving:
        person = after.get(reader)
        if person is None:
            continue
        by = f"{event.provider}:{event.provider_type}"
        if event.type is EventType.DELIVERED:
            person.soft_bounces = 0
            continue
        returned = before[reader].came_back
        # Posted late, about a click made before the reader came back: their own latest
        # choice stands. Bounces and complaints still apply. To the second: the provider's
        # times have no fraction.
        if (
            event.type is EventType.UNSUBSCRIBED
            and returned is not None
            and event.occurred_at < returned.replace(microsecond=0)
        ):
            continue
        # A drop for an address on the provider's unsubscribe list tells of an unsubscribe
        # made we cannot say when: a reader who left and came back by their own hand
        # stays, and the provider's list is what to mend.
        if event.type is EventType.UNSUBSCRIBED and _dropped(event) and reader in rejoined:
            log.warning(
                "%s still keeps subscriber %s on its unsubscribe list, though they "
                "subscribed again on our pages: their mail is dropped until it is removed "
                "there",
                event.provider,
                reader,
            )
            continue
        wanted = STATUS_AFTER.get(event.type)
        if event.type is EventType.BOUNCED:
            person.soft_bounces += 0 if event.hard_bounce else 1
            if event.hard_bounce or person.soft_bounces >= soft_bounce_limit:
                wanted = SubscriberStatus.BOUNCED
        # Complaint outranks unsubscribe; nothing moves a forgotten reader (the table).
        if (
            wanted is not None
            and person.status != wanted
            and may_change(Actor.PROVIDER, person.status, wanted)
        ):
            person.status, person.moved_by = wanted, by
    groups: dict[tuple[str, str], dict[int, str]] = {}
    for reader, person in after.items():
        if person.status != before[reader].status:
            groups.setdefault((person.status, person.moved_by), {})[reader] = before[reader].status
    for (wanted_status, by), current in groups.items():
        change_statuses(
            session,
            current,
            SubscriberStatus(wanted_status),
            actor=Actor.PROVIDER,
            by=by,
            now=now,
        )
    counts = {
        reader: person.soft_bounces
        for reader, person in after.items()
        if person.soft_bounces != before[reader].soft_bounces
    }
    if counts:
        table: sa.Table = Subscriber.__table__  # type: ignore[attr-defined]
        session.connection().execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("reader"))
            .values(soft_bounces=sa.bindparam("count")),
            [{"reader": reader, "count": count} for reader, count in counts.items()],
        )
