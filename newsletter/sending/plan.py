"""Planning: when a send falls due, its ledger is written in the same transaction that
moves it to running, one INSERT … SELECT of the matching readers per due moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import NamedTuple, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from newsletter.db import is_postgresql, session_scope
from newsletter.models import Delivery, Send, SendStatus
from newsletter.sending import ledger
from newsletter.sending.audience import brief_topic_ids, received_by, sends_carrying
from newsletter.sending.publishing import publication_moment
from subscribers.matching import matching_subscribers
from subscribers.models import Cadence, Subscriber, id_of


def next_local_time(local_time: str, zone: str, *, after: datetime) -> datetime:
    """The first `local_time` ("07:00") in `zone` strictly after `after`, in UTC.

    Wall-clock arithmetic in the zone, so a daylight-saving change between `after` and the
    answer moves the UTC time, not the local one.
    """
    hours, minutes = (int(part) for part in local_time.split(":"))
    tz = ZoneInfo(zone)
    local_after = after.astimezone(tz)
    day = local_after.date()
    candidate = datetime.combine(day, dt_time(hours, minutes), tzinfo=tz)
    # Compared in UTC: two times of one zone compare by the wall clock, and in the hour a
    # clock goes back twice, 01:30 "first time round" would pass for later than 01:10
    # "second time round", a moment already gone.
    if candidate.astimezone(UTC) <= after.astimezone(UTC):
        candidate = datetime.combine(day + timedelta(days=1), dt_time(hours, minutes), tzinfo=tz)
    return candidate.astimezone(UTC)


def _waves(
    send: Send, matching: sa.Select[tuple[int]], session: Session
) -> list[tuple[datetime | None, list[str] | None]]:
    """(due moment, the time zones due then) for a `--local-time` send, in due order; time
    zones sharing an offset share a moment. One wave of everyone for an ordinary send."""
    if not send.local_time:
        return [(None, None)]
    zones = session.scalars(
        sa.select(col(Subscriber.timezone))
        .where(col(Subscriber.id).in_(matching.scalar_subquery()))
        .distinct()
    ).all()
    by_moment: dict[datetime, list[str]] = {}
    for zone in zones:
        moment = next_local_time(send.local_time, zone, after=send.created_at)
        by_moment.setdefault(moment, []).append(zone)
    return [(moment, sorted(group)) for moment, group in sorted(by_moment.items())]


class Plan(NamedTuple):
    rows: int  # the ledger's size after planning
    first_due: datetime  # `now`, or a local-time send's first wave


def plan_deliveries(send: Send, *, session: Session, now: datetime) -> Plan:
    """Write one queued Delivery per matching reader.

    Matching runs inside the database; readers already in the ledger are left out, so a
    second run adds only newcomers. Each local-time wave is its own statement, in due
    order, so a wave's rows have adjacent ids (claiming walks them by id).
    """
    topic_ids = brief_topic_ids(send.brief_id, session=session)
    # Daily and weekly readers get the brief in their digest (digests.py), not now.
    matching = matching_subscribers(topic_ids, cadences=[Cadence.IMMEDIATE])
    send_id = id_of(send)
    if not send.include_received and _sent_before(send, session):
        # Never a second copy of a brief, across sends too, unless staff asked by name.
        received = received_by(send.brief_id, excluding_send=send_id)
        matching = matching.where(col(Subscriber.id).not_in(received))
    again = ledger.has_rows(session, send_id)
    waves = _waves(send, matching, session)
    for moment, zones_due in waves:
        recipients = matching
        if zones_due is not None:
            recipients = recipients.where(col(Subscriber.timezone).in_(zones_due))
        ledger.plan_rows(
            session, send_id, recipients, due=moment or now, now=now, skip_existing=again
        )
    first_due = max(now, waves[0][0] or now) if waves else now
    return Plan(ledger.row_count(session, send_id), first_due)


def _sent_before(send: Send, session: Session) -> bool:
    """Whether another send or a digest of this brief has ledger rows: only then does
    planning pay for leaving their readers out (the first send of a brief, the usual case,
    does not)."""
    others = (
        sa.select(sa.literal(1))
        .select_from(Send)
        .join(Delivery, col(Delivery.send_id) == col(Send.id))
        .where(sends_carrying(send.brief_id), col(Send.id) != send.id)
        .limit(1)
    )
    return session.scalar(others) is not None


def start_due_sends(engine: Engine, *, now: datetime, only: int | None = None) -> list[int]:
    """Move every due scheduled send to running, planning its ledger in the same transaction.

    The conditional UPDATE is the lock: when several workers tick at once, exactly one
    sees `status = 'scheduled'` and plans; the others update nothing and move on.
    """
    statement = (
        sa.select(col(Send.id))
        .where(col(Send.status) == SendStatus.SCHEDULED, col(Send.scheduled_at) <= now)
        .order_by(col(Send.scheduled_at), col(Send.id))
    )
    if only is not None:
        statement = statement.where(col(Send.id) == only)
    with session_scope(engine) as session:
        due = [cast(int, send_id) for send_id in session.scalars(statement)]
    started = []
    for send_id in due:
        with session_scope(engine, immediate=True) as session:
            published = publication_moment(session, now=now)  # see sending/publishing.py
            won = session.execute(
                sa.update(Send)
                .where(col(Send.id) == send_id, col(Send.status) == SendStatus.SCHEDULED)
                .values(status=SendStatus.RUNNING, started_at=published)
            ).rowcount  # type: ignore[attr-defined]
            if not won:
                continue
            send = session.get_one(Send, send_id)
            send.planned, first_due = plan_deliveries(send, session=session, now=now)
            # Public when its first readers get it: a local-time send's first wave may be
            # hours away. Never before `published`, so digests keep their order.
            send.published_at = max(published, first_due)
            session.add(send)
            planned = send.planned
        if planned >= _ANALYZE_AFTER and is_postgresql(engine):
            analyze_ledger(engine)
        started.append(send_id)
    return started


# Rows planned at once past which the ledger's statistics are refreshed before claiming.
_ANALYZE_AFTER = 20_000


def analyze_ledger(engine: Engine) -> None:
    """Refresh PostgreSQL's statistics of the ledger after a big plan (about 0.2 s per
    million rows: ANALYZE reads a sample). Autovacuum would do it within a minute, but the
    claims come first: with a table the planner still thinks is small, the claim (see
    ledger/claims.py) was planned as a sort of the whole send, 650 ms per batch instead of
    about 1 ms."""
    with engine.connect() as connection:
        connection.execute(sa.text("ANALYZE delivery"))
        connection.commit()
