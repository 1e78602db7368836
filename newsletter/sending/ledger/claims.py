"""The hand-off's side of the ledger: claim a batch, mark it on the wire, or release it
unsent. Recording the provider's answer is `answers.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from newsletter.db import any_of, is_postgresql, session_scope
from newsletter.models import (
    LIVE_BATCHES,
    BatchStatus,
    BriefTopic,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Send,
    SendStatus,
)
from newsletter.sending.ledger import keys
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic

_TIME = Delivery.__table__.c.not_before.type  # type: ignore[attr-defined]


# --- claiming and handing off -------------------------------------------------------


class Target(NamedTuple):
    """One reader of a claimed batch (a tuple: a thousand are made per claim, at half a
    frozen dataclass's cost)."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str


@dataclass(frozen=True)
class Claim:
    batch_id: int
    send_id: int
    targets: list[Target]
    # Rows whose reader left (or no longer follows the brief), marked skipped by the claim.
    skipped_ids: tuple[int, ...] = ()
    first_id: int = 0  # the claimed rows' id range (other batches' rows may lie inside it)
    last_id: int = 0
    last_key: tuple[datetime, int] | None = None  # (not_before, id) of the last row claimed

    @property
    def skipped(self) -> int:
        return len(self.skipped_ids)

    @property
    def size(self) -> int:
        return len(self.targets) + self.skipped

    def delivery_ids(self) -> set[int]:
        """Every row this claim took, skipped ones included."""
        return {target.delivery_id for target in self.targets}.union(self.skipped_ids)


def claim_batch(
    engine: Engine,
    *,
    send_id: int,
    worker_id: str,
    limit: int,
    lease: timedelta,
    now: datetime,
    after: tuple[datetime, int] | None = None,
) -> Claim | None:
    """Take up to `limit` queued, due rows of a running send as one batch, in due order;
    None when none is left.

    The claim is written once, on the batch (its rows' ids as ranges), not on the rows: a
    row is written once per hand-off, with its outcome. Rows of the send's other live
    batches (claimed or on the wire) are left out by their ranges; claims of one send are
    serialized by a lock on the send's row (PostgreSQL `FOR UPDATE`; SQLite's
    `BEGIN IMMEDIATE` serializes every writer), so two live batches never share a row.

    `after` (a previous claim's last key) lets a sender thread seek past the rows it already
    took: they stay `queued` in the index until their outcome is written (and their old
    entries until vacuum), and scanning them again for every batch would make a
    million-row send quadratic.

    Subscribers who left since planning are marked skipped here, inside the claim, and never
    reach a transport (the only rows a claim writes).

    Plan (PostgreSQL 15, 1M-row send, ANALYZE'd after planning, see plan.py):
        Limit -> Nested Loop
          -> Index Scan using ix_delivery_queued_due on delivery
               Index Cond: send_id = $1 AND not_before <= $2 [AND ROW(not_before, id) > …]
               Filter: NOT (id BETWEEN … ) for each live batch
          -> Index Scan using subscriber_pkey on subscriber (Index Cond: id = subscriber_id)
    about 1 ms for 1,000 rows. The partial index holds only queued rows in due order, so
    the LIMIT stops after `limit` entries (plus the live batches' rows it filters out); a
    stale estimate (right after a bulk insert) once chose a sort of the whole send instead,
    650 ms per claim: planning runs ANALYZE when it wrote many rows. A local-time send's
    claim also filters each row by `_still_follows`: an EXISTS subplan per reader who does
    not follow every topic, a probe of `subscriber_topic`'s primary key per brief topic.
    """
    with session_scope(engine, immediate=True) as session:
        connection = session.connection()
        status_query = sa.select(col(Send.status), col(Send.local_time), col(Send.brief_id)).where(
            col(Send.id) == send_id
        )
        if is_postgresql(connection):
            status_query = status_query.with_for_update()
        send = connection.execute(status_query).one_or_none()
        if send is None or send.status != SendStatus.RUNNING:
            return None
        # Read after the lock, in a statement of its own: read with the lock, they would be
        # as the statement's snapshot saw them before it waited, without the batches
        # claimed meanwhile.
        taken = [
            keys.decode(text)
            for (text,) in connection.execute(
                sa.select(col(DeliveryBatch.keys)).where(
                    col(DeliveryBatch.send_id) == send_id,
                    col(DeliveryBatch.status).in_(LIVE_BATCHES),
                )
            )
        ]
        picked = (
            sa.select(
                # A Target's fields first, in its order.
                col(Delivery.id),
                col(Subscriber.id),
                col(Subscriber.email),
                col(Subscriber.name),
                col(Subscriber.status),
                # A local-time send is planned up to a day ahead: whether the reader still
                # follows its topics is asked again (an ordinary send's claim follows its
                # planning within minutes, and pays nothing for it).
                _still_follows(send.brief_id) if send.local_time else sa.true(),
                # Not the rows' `not_before`: only the last row's is needed (read below by
                # its id), and the driver making a datetime of every row's was half of the
                # fetch (3.9 against 1.9 ms per 1,000 rows, psycopg 3.3).
            )
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .where(
                col(Delivery.send_id) == send_id,
                col(Delivery.status) == DeliveryStatus.QUEUED,
                col(Delivery.not_before) <= now,
            )
            .order_by(col(Delivery.not_before), col(Delivery.id))
            .limit(limit)
        )
        for ranges in taken:
            picked = picked.where(~keys.within(connection, col(Delivery.id), ranges))
        if after is not None:
            due_key = sa.tuple_(col(Delivery.not_before), col(Delivery.id))
            picked = picked.where(
                due_key > sa.tuple_(sa.literal(after[0], type_=_TIME), sa.literal(after[1]))
            )
        rows = connection.execute(picked).all()
        if not rows:
            return None
        active = SubscriberStatus.ACTIVE.value  # a plain str compares at C speed
        targets = [Target._make(r[:4]) for r in rows if r[4] == active and r[5]]
        gone = [cast(int, r[0]) for r in rows if r[4] != active]
        moved_on = [cast(int, r[0]) for r in rows if r[4] == active and not r[5]]
        # Readers who left, or no longer follow the brief's topics, are the exception,
        # written alone.
        for ids, why in ((gone, "subscriber left"), (moved_on, "no longer follows its topics")):
            if ids:
                connection.execute(
                    sa.update(Delivery)
                    .where(any_of(connection, col(Delivery.id), ids))
                    .values(status=DeliveryStatus.SKIPPED, error=why, updated_at=now)
                )
        gone += moved_on
        # Ordered by (not_before, id): the last row is the furthest. Its `not_before` is
        # read apart, by its id (a row's `not_before` is written once, when it is planned),
        # with the batch's insert below.
        last_id = cast(int, rows[-1][0])
        last_due = (
            sa.select(col(Delivery.not_before)).where(col(Delivery.id) == last_id).scalar_subquery()
        )
        if not targets:
            return Claim(
                batch_id=0,
                send_id=send_id,
                targets=[],
                skipped_ids=tuple(gone),
                last_key=(connection.execute(sa.select(last_due)).scalar_one(), last_id),
            )
        ranges = keys.to_ranges(target.delivery_id for target in targets)
        batch_id, due = connection.execute(
            sa.insert(DeliveryBatch)
            .values(
                send_id=send_id,
                worker_id=worker_id,
                status=BatchStatus.CLAIMED,
                size=len(targets),
                lease_expires_at=now + lease,
                created_at=now,
                outcome="",
                error="",
                first_id=ranges[0][0],
                last_id=ranges[-1][1],
                keys=keys.encode(ranges),
            )
            .returning(col(DeliveryBatch.id), last_due)
        ).one()
    return Claim(
        batch_id=cast(int, batch_id),
        send_id=send_id,
        targets=targets,
        skipped_ids=tuple(gone),
        first_id=ranges[0][0],
        last_id=ranges[-1][1],
        last_key=(due, last_id),
    )


def _still_follows(brief_id: int) -> sa.ColumnElement[bool]:
    """Whether the claimed row's reader follows the brief (all topics, or one of its own):
    a primary-key probe of `subscriber_topic` per brief topic, per row."""
    follows = (
        sa.select(sa.literal(1))
        .select_from(SubscriberTopic)
        .join(BriefTopic, col(BriefTopic.topic_id) == col(SubscriberTopic.topic_id))
        .where(
            col(SubscriberTopic.subscriber_id) == col(Subscriber.id),
            col(BriefTopic.brief_id) == brief_id,
        )
        .exists()
    )
    return sa.or_(col(Subscriber.all_topics).is_(True), follows)


def begin_handoff(engine: Engine, claim: Claim, *, now: datetime) -> bool:
    """Mark the batch as on the wire, committed before the request; False: do not send.

    Refused when the lease was already taken back by another worker, or when staff paused
    or cancelled the send since the claim; the rows then go back (or are cancelled).
    """
    send_running = (
        sa.select(sa.literal(1))
        .where(col(Send.id) == claim.send_id, col(Send.status) == SendStatus.RUNNING)
        .exists()
    )
    with session_scope(engine, immediate=True) as session:
        connection = session.connection()
        started = connection.execute(
            sa.update(DeliveryBatch)
            .where(
                col(DeliveryBatch.id) == claim.batch_id,
                col(DeliveryBatch.status) == BatchStatus.CLAIMED,
                send_running,
            )
            .values(status=BatchStatus.SENDING)
        ).rowcount
        if started:
            return True
        release_batch(connection, claim.batch_id, now=now)
    return False


def give_back(engine: Engine, claim: Claim, *, now: datetime) -> None:
    """A claimed batch this worker will not send after all (it is stopping): its rows are
    free for another worker at once, not when the lease runs out."""
    with session_scope(engine, immediate=True) as session:
        release_batch(session.connection(), claim.batch_id, now=now)


class Released(NamedTuple):
    rows: int  # how many rows the batch held (0: another worker released it first)
    cancelled: bool  # its send was cancelled, and the rows with it; else they are queued


def release_batch(connection: Connection, batch_id: int, *, now: datetime) -> Released:
    """A claimed batch that will not be sent: its rows are free again (they never left
    `queued`), or cancelled with their send."""
    released = connection.execute(
        sa.update(DeliveryBatch)
        .where(
            col(DeliveryBatch.id) == batch_id,
            col(DeliveryBatch.status) == BatchStatus.CLAIMED,
        )
        .values(status=BatchStatus.RELEASED, finished_at=now)
        .returning(col(DeliveryBatch.send_id), col(DeliveryBatch.keys))
    ).one_or_none()
    if released is None:
        return Released(0, cancelled=False)
    send_id, text = released
    ranges = keys.decode(text)
    send_status = connection.execute(
        sa.select(col(Send.status)).where(col(Send.id) == send_id)
    ).scalar()
    cancelled = send_status == SendStatus.CANCELLED
    if cancelled:
        connection.execute(
            sa.update(Delivery)
            .where(
                # By the batch's own ids alone (see answers.record_batch on why not send_id).
                keys.within(connection, col(Delivery.id), ranges),
                col(Delivery.status) == DeliveryStatus.QUEUED,
            )
            .values(status=DeliveryStatus.CANCELLED, updated_at=now)
        )
    return Released(sum(last - first + 1 for first, last in ranges), cancelled)
