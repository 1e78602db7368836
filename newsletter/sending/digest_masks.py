"""Which of a digest window's briefs each reader gets, as SQL: one bit mask per reader
(bit i: the i-th brief of the window), computed across all of a group's readers in one
statement by `digests._make_digests`, never a query per reader and brief."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.db import any_of, is_postgresql
from newsletter.models import BriefTopic, Delivery, Send, SendBrief, SendKind
from newsletter.sending.audience import RECEIVED_STATES
from subscribers.models import SubscriberTopic, UTCDateTime

# Briefs per key column: a reader's set of briefs is a bit mask (bit i: the i-th brief
# published in the window), 62 bits to a BIGINT column, as many columns as needed.
BITS = 62
# SQLite: up to this many briefs in a window, each reader's follows are probed per brief
# (`_follows_probe`); past it, aggregated once for the group's readers (`_follows`). One
# probe per reader and brief against one aggregate per group: 1,000,000 daily readers in
# four zones, three briefs, 7.9 s probed, 9.5 s aggregated (10.5 s aggregating every
# follower, as before); one zone of 250,000 and 30 briefs, 3.4 s probed, 3.0 s aggregated.
PROBED_BRIEFS = 12


def window_opens(readers: Any, window_start: datetime) -> Any:
    """When a reader's digest window opens: their last digest; a first digest covers one
    period, not everything since they subscribed."""
    return sa.func.coalesce(
        readers.last_digest_at,
        sa.case(
            (readers.created_at > window_start, readers.created_at),
            else_=sa.literal(window_start, type_=UTCDateTime),
        ),
    )


def brief_masks(
    session: Session,
    readers: Any,
    source: Any,
    all_topics: Any,
    briefs: list[tuple[int, datetime]],
    columns: list[str],
) -> tuple[list[Any], Any]:
    """Per key column, the SQL sum of each brief's bit where the reader gets that brief:
    published after their window opens (`readers.c.opens`, see `window_opens`), on a topic
    they follow (or they follow all: `all_topics`), and not already received, on its own (a
    reader who switched cadence) or in a digest (a brief sent again); and `source` (the
    readers' FROM clause) with the joins those need.

    Plan (PostgreSQL, 1M readers): Hash Right Join of the readers (the CTE the group's
    UPDATE returns, joined to those of them who follow every topic) with `follows`
    (HashAggregate over an Index Only Scan of ix_subscriber_topic_topic for the briefs'
    topics) and with `received` (the briefs' sends' rows aggregated per reader): a few
    scans, never a probe per reader and brief.
    """
    since = readers.c.opens
    brief_ids = [brief_id for brief_id, _ in briefs]
    topics: dict[int, list[int]] = defaultdict(list)
    for brief_id, topic_id in session.execute(
        sa.select(col(BriefTopic.brief_id), col(BriefTopic.topic_id)).where(
            col(BriefTopic.brief_id).in_(brief_ids or [0])
        )
    ):
        topics[brief_id].append(topic_id)
    sends = _carried_by(session, briefs)
    received = _received(session, briefs, sends)
    postgres = is_postgresql(session.connection())
    if not postgres and len(briefs) <= PROBED_BRIEFS:
        follow_tests = [_follows_probe(readers, topics[brief_id]) for brief_id, _ in briefs]
    else:
        # SQLite builds the aggregate again for each group, with an automatic index on it:
        # only the group's own readers' links, not every follower of the window's topics
        # (4.8 of the 10.5 s that 1,000,000 daily readers in four zones took). PostgreSQL
        # hashes the whole aggregate once per group; a second scan of the readers costs it
        # more.
        follows = _follows(briefs, topics, None if postgres else sa.select(readers.c.id))
        source = source.outerjoin(follows, follows.c.subscriber_id == readers.c.id)
        follow_tests = [follows.c[f"f{i}"] == 1 for i in range(len(briefs))]
    if received is not None:
        source = source.outerjoin(received, received.c.subscriber_id == readers.c.id)
    bits: list[list[Any]] = [[] for _ in columns]
    for i, (brief_id, at) in enumerate(briefs):
        bit = 1 << (i % BITS)
        gets = sa.and_(
            since < sa.literal(at, type_=UTCDateTime),
            sa.or_(all_topics, follow_tests[i]),
        )
        if received is not None and sends[brief_id]:
            had = received.c[f"r{i}"]
            gets = sa.and_(gets, sa.or_(had.is_(None), had == 0))
        bits[i // BITS].append(sa.case((gets, bit), else_=0))
    masks = [
        (sum(column_bits[1:], column_bits[0]) if column_bits else sa.literal(0)).label(name)
        for column_bits, name in zip(bits, columns, strict=True)
    ]
    return masks, source


def _carried_by(session: Session, briefs: list[tuple[int, datetime]]) -> dict[int, list[int]]:
    """Brief id → the sends that carried it to a reader who may be due for it now: its own
    sends, and the digests made before it was last published. A brief whose send was
    cancelled and sent again is published anew, inside later windows, and a reader who
    had it in a digest already must not get it twice. A digest made since its publication
    cannot hold a reader now due for it (their window has moved past it), and leaving
    those out matters: each group's digests carry the same briefs, and reading them again
    for every later group took a tenth more time in the bench's four zones."""
    published = dict(briefs)
    ids = list(published) or [0]
    sends: dict[int, list[int]] = defaultdict(list)
    own = sa.select(col(Send.id), col(Send.brief_id)).where(
        col(Send.kind) == SendKind.BRIEF, col(Send.brief_id).in_(ids)
    )
    for send_id, brief_id in session.execute(own):
        sends[brief_id].append(send_id)
    in_digests = (
        sa.select(col(SendBrief.send_id), col(SendBrief.brief_id), col(Send.started_at))
        .join(Send, col(Send.id) == col(SendBrief.send_id))
        .where(col(SendBrief.brief_id).in_(ids))
    )
    for send_id, brief_id, made in session.execute(in_digests):
        if made is not None and made < published[brief_id]:
            sends[brief_id].append(send_id)
    return sends


def _follows(
    briefs: list[tuple[int, datetime]], topics: dict[int, list[int]], among: Any = None
) -> Any:
    """Per reader following any of the briefs' topics, a 0/1 column per brief (`f0`, `f1`
    …): one aggregate over those topics' rows of `subscriber_topic`, joined once. (A
    subquery per brief is hashed only while it fits in work_mem; past that, at a few
    hundred thousand followers, PostgreSQL rescans it for every reader.)"""
    wanted = sorted({topic for brief_id, _ in briefs for topic in topics[brief_id]}) or [0]
    return (
        sa.select(
            col(SubscriberTopic.subscriber_id).label("subscriber_id"),
            *(
                sa.func.max(
                    sa.case(
                        (col(SubscriberTopic.topic_id).in_(topics[brief_id] or [0]), 1), else_=0
                    )
                ).label(f"f{i}")
                for i, (brief_id, _) in enumerate(briefs)
            ),
        )
        .where(
            col(SubscriberTopic.topic_id).in_(wanted),
            *([] if among is None else [col(SubscriberTopic.subscriber_id).in_(among)]),
        )
        .group_by(col(SubscriberTopic.subscriber_id))
        .subquery("follows")
    )


def _follows_probe(readers: Any, topic_ids: list[int]) -> Any:
    """SQLite, a window of a few briefs: whether the reader follows one of `topic_ids`, a
    probe of `subscriber_topic`'s primary key (reader, topic) per due reader and brief."""
    return sa.exists().where(
        col(SubscriberTopic.subscriber_id) == readers.c.id,
        col(SubscriberTopic.topic_id).in_(topic_ids or [0]),
    )


def _received(
    session: Session, briefs: list[tuple[int, datetime]], sends: dict[int, list[int]]
) -> Any:
    """Per reader with a live row (queued, on its way, sent or unknown: `RECEIVED_STATES`)
    in a send that carried one of the briefs, a 0/1 column per brief (`r0`, `r1` …), as
    `_follows` has: a digest carries several briefs, so one CASE per row, as when each send
    carried one, would name only the first. A cancelled or failed row is no copy received.
    Each list of sends is one bound value (`any_of`): a weekly window's briefs, each in
    hundreds of daily digests, would pass psycopg's limit of 65,535 bound values. None if no
    brief has a send."""
    all_sends = sorted({send_id for brief_id, _ in briefs for send_id in sends[brief_id]})
    if not all_sends:
        return None
    send_id = col(Delivery.send_id)
    return (
        sa.select(
            col(Delivery.subscriber_id).label("subscriber_id"),
            *(
                sa.func.max(
                    sa.case((any_of(session, send_id, sends[brief_id] or [0]), 1), else_=0)
                ).label(f"r{i}")
                for i, (brief_id, _) in enumerate(briefs)
            ),
        )
        .where(any_of(session, send_id, all_sends), col(Delivery.status).in_(RECEIVED_STATES))
        .group_by(col(Delivery.subscriber_id))
        .subquery("received")
    )
