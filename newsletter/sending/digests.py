"""Digests: daily and weekly readers get one email with every brief on their topics that was
published since their last digest, at NEWSLETTER_DIGEST_HOUR in their own timezone.

A brief is *published* when its send starts; immediate readers get it then, alone, and
digest readers never get it that way (matching leaves them out), so nobody receives a brief
both ways. A reader who switched cadence is not sent, in a digest, a brief they already
received on its own.

Making a digest is one transaction per (cadence, timezone) group: the readers due are
locked (SKIP LOCKED on PostgreSQL, the write lock on SQLite), their `last_digest_at` moves
forward, and a ready-to-send Send with its ledger is written, one per distinct set of
briefs. Two workers running this at once make each digest once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.briefs import published_between
from newsletter.config import Settings
from newsletter.db import is_postgresql, session_scope
from newsletter.models import Brief, BriefTopic, Delivery, Send, SendKind, SendStatus
from newsletter.render import render_digest
from newsletter.sending import ledger
from subscribers.models import (
    Cadence,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    id_of,
)

PERIOD = {Cadence.DAILY: timedelta(days=1), Cadence.WEEKLY: timedelta(days=7)}


def digest_moment(cadence: str, zone: str, *, now: datetime, hour: int, weekday: int) -> datetime:
    """The latest digest moment at or before `now` for a reader in `zone`, in UTC: today's
    (or yesterday's) `hour` for daily readers, the last `weekday` at `hour` for weekly."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    day = local.date()
    if cadence == Cadence.WEEKLY:
        day -= timedelta(days=(day.weekday() - weekday) % 7)
    moment = datetime.combine(day, dt_time(hour), tzinfo=tz)
    if moment > local:
        moment = datetime.combine(day - PERIOD[Cadence(cadence)], dt_time(hour), tzinfo=tz)
    return moment.astimezone(UTC)


def create_due_digests(engine: Engine, settings: Settings, *, now: datetime) -> list[int]:
    """Make every digest that has come due by `now`; returns the new sends' ids."""
    with session_scope(engine) as session:
        groups = session.execute(
            sa.select(col(Subscriber.cadence), col(Subscriber.timezone))
            .where(
                col(Subscriber.status) == SubscriberStatus.ACTIVE,
                col(Subscriber.cadence).in_([Cadence.DAILY, Cadence.WEEKLY]),
            )
            .distinct()
        ).all()
    created: list[int] = []
    for cadence, zone in sorted(groups):
        moment = digest_moment(
            cadence,
            zone,
            now=now,
            hour=settings.NEWSLETTER_DIGEST_HOUR,
            weekday=settings.NEWSLETTER_DIGEST_WEEKDAY.number,
        )
        with session_scope(engine, immediate=True) as session:
            created += _make_digests(session, settings, cadence, zone, moment, now)
    return created


def _make_digests(
    session: Session, settings: Settings, cadence: str, zone: str, moment: datetime, now: datetime
) -> list[int]:
    baseline = sa.func.coalesce(col(Subscriber.last_digest_at), col(Subscriber.created_at))
    due = (
        sa.select(
            col(Subscriber.id),
            col(Subscriber.last_digest_at),
            col(Subscriber.created_at),
            col(Subscriber.all_topics),
        )
        .where(
            col(Subscriber.status) == SubscriberStatus.ACTIVE,
            col(Subscriber.cadence) == cadence,
            col(Subscriber.timezone) == zone,
            baseline < moment,
        )
        .order_by(col(Subscriber.id))
    )
    if is_postgresql(session.connection()):
        due = due.with_for_update(skip_locked=True)
    readers = session.execute(due).all()
    if not readers:
        return []
    ids = [reader[0] for reader in readers]
    session.execute(
        sa.update(Subscriber).where(col(Subscriber.id).in_(ids)).values(last_digest_at=moment)
    )
    # A first digest covers one period, not everything since the reader subscribed.
    since = {
        reader[0]: reader[1] or max(reader[2], moment - PERIOD[Cadence(cadence)])
        for reader in readers
    }
    published = published_between(min(since.values()), moment, session=session)
    if not published:
        return []
    topics_of_brief: dict[int, set[int]] = defaultdict(set)
    for brief_id, topic_id in session.execute(
        sa.select(col(BriefTopic.brief_id), col(BriefTopic.topic_id)).where(
            col(BriefTopic.brief_id).in_(list(published))
        )
    ):
        topics_of_brief[brief_id].add(topic_id)
    follows: dict[int, set[int]] = defaultdict(set)
    for subscriber_id, topic_id in session.execute(
        sa.select(col(SubscriberTopic.subscriber_id), col(SubscriberTopic.topic_id)).where(
            col(SubscriberTopic.subscriber_id).in_(ids)
        )
    ):
        follows[subscriber_id].add(topic_id)
    already = set(
        session.execute(
            sa.select(col(Delivery.subscriber_id), col(Send.brief_id))
            .join(Send, col(Send.id) == col(Delivery.send_id))
            .where(
                col(Send.kind) == SendKind.BRIEF,
                col(Send.brief_id).in_(list(published)),
                col(Delivery.subscriber_id).in_(ids),
            )
        ).all()
    )
    in_order = sorted(published.items(), key=lambda item: (item[1], item[0]))
    by_set: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for subscriber_id, _, _, all_topics in readers:
        chosen = tuple(
            brief_id
            for brief_id, at in in_order
            if since[subscriber_id] < at <= moment
            and (all_topics or topics_of_brief[brief_id] & follows[subscriber_id])
            and (subscriber_id, brief_id) not in already
        )
        if chosen:
            by_set[chosen].append(subscriber_id)
    return [
        _digest_send(session, settings, cadence, briefs, members, now)
        for briefs, members in sorted(by_set.items())
    ]


def _digest_send(
    session: Session,
    settings: Settings,
    cadence: str,
    brief_ids: tuple[int, ...],
    members: list[int],
    now: datetime,
) -> int:
    briefs = [session.get_one(Brief, brief_id) for brief_id in brief_ids]
    topics = list(
        session.exec(
            select(Topic)
            .join(BriefTopic, col(BriefTopic.topic_id) == col(Topic.id))
            .where(col(BriefTopic.brief_id).in_(brief_ids))
            .distinct()
            .order_by(Topic.name)
        )
    )
    rendered = render_digest(briefs, topics, settings, cadence=cadence, on=now)
    send = Send(
        kind=SendKind.DIGEST,
        brief_id=brief_ids[-1],
        digest_brief_ids=",".join(str(i) for i in brief_ids),
        status=SendStatus.RUNNING,
        scheduled_at=now,
        started_at=now,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        planned=len(members),
    )
    session.add(send)
    session.flush()
    ledger.queue_rows(session, id_of(send), members, now=now)
    return id_of(send)
