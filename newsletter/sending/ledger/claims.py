"""The hand-off's side of the ledger: claim a batch, mark it on the wire, record the
provider's answer, recover the batches of a dead worker, finish sends with nothing left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from newsletter.db import any_of, is_postgresql, session_scope
from newsletter.models import (
    LIVE_BATCHES,
    BatchStatus,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Send,
    SendStatus,
)
from newsletter.providers.base import BatchResult, Outcome
from newsletter.sending.ledger import keys
from subscribers.models import Subscriber, SubscriberStatus

_TIME = Delivery.__table__.c.not_before.type  # type: ignore[attr-defined]


# --- claiming, handing off, recording -------------------------------------------------------


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
    skipped: int = 0
    first_id: int = 0  # the claimed rows' id range (other batches' rows may lie inside it)
    last_id: int = 0
    last_key: tuple[datetime, int] | None = None  # (not_before, id) of the last row claimed

    @property
    def size(self) -> int:
        return len(self.targets) + self.skipped


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
    650 ms per claim: planning runs ANALYZE when it wrote many rows.
    """
    with session_scope(engine, immediate=True) as session:
        connection = session.connection()
        status_query = sa.select(col(Send.status)).where(col(Send.id) == send_id)
        if is_postgresql(connection):
            status_query = status_query.with_for_update()
        if connection.execute(status_query).scalar() != SendStatus.RUNNING:
            return None
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
                # Without the UTC type: only the last row's time is read (converted below),
                # and re-tagging every row was a twentieth of the worker's Python per batch.
                sa.type_coerce(col(Delivery.not_before), _TIME.impl),
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
        targets = [Target(*r[:4]) for r in rows if r[4] == active]
        gone = [cast(int, r[0]) for r in rows if r[4] != active]
        if gone:  # a reader who left is the exception, written alone
            connection.execute(
                sa.update(Delivery)
                .where(any_of(connection, col(Delivery.id), gone))
                .values(status=DeliveryStatus.SKIPPED, error="subscriber left", updated_at=now)
            )
        # Ordered by (not_before, id): the last row is the furthest.
        last_key = (_TIME.process_result_value(rows[-1][5], connection.dialect), rows[-1][0])
        if not targets:
            return Claim(
                batch_id=0, send_id=send_id, targets=[], skipped=len(gone), last_key=last_key
            )
        ranges = keys.to_ranges(target.delivery_id for target in targets)
        batch_id = connection.execute(
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
            .returning(col(DeliveryBatch.id))
        ).scalar_one()
    return Claim(
        batch_id=cast(int, batch_id),
        send_id=send_id,
        targets=targets,
        skipped=len(gone),
        first_id=ranges[0][0],
        last_id=ranges[-1][1],
        last_key=last_key,
    )


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


def release_batch(connection: Connection, batch_id: int, *, now: datetime) -> int:
    """A claimed batch that will not be sent: its rows are free again (they never left
    `queued`), or cancelled with their send. Returns how many rows it held."""
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
        return 0
    send_id, text = released
    ranges = keys.decode(text)
    send_status = connection.execute(
        sa.select(col(Send.status)).where(col(Send.id) == send_id)
    ).scalar()
    if send_status == SendStatus.CANCELLED:
        connection.execute(
            sa.update(Delivery)
            .where(
                # By the batch's own ids alone (see record_batch on why not send_id).
                keys.within(connection, col(Delivery.id), ranges),
                col(Delivery.status) == DeliveryStatus.QUEUED,
            )
            .values(status=DeliveryStatus.CANCELLED, updated_at=now)
        )
    return sum(last - first + 1 for first, last in ranges)


_ROW_STATE = {
    Outcome.SENT: DeliveryStatus.SENT,
    Outcome.FAILED: DeliveryStatus.FAILED,
    Outcome.UNKNOWN: DeliveryStatus.UNKNOWN,
    Outcome.RETRY_LATER: DeliveryStatus.QUEUED,  # nothing was accepted: back in line
}


@dataclass(frozen=True)
class Recorded:
    """What one recorded answer did: rows per state it wrote, and why the send paused."""

    rows: dict[str, int]
    paused: str = ""


def record_batch(
    engine: Engine,
    claim: Claim,
    result: BatchResult,
    *,
    now: datetime,
    pause_after: int,
    max_attempts: int = 10,
) -> Recorded:
    """Write the provider's answer into the ledger, once per row: one UPDATE for the rows
    that share the batch's outcome (by id range), one per differing outcome (a 400 naming
    recipients) for the few exceptions. Returns rows per state, and why the send paused ("" if
    it did not).

    The batch's own step decides which rows are its: a batch still `sending` writes its
    rows still `queued`; a batch whose lease ran out mid-request (`abandoned`) corrects its
    rows that became `unknown` (matched by `batch_id`, written then). A row another worker
    has since taken, or an event settled, matches neither and is left alone.

    Plan (PostgreSQL): Update on delivery -> Bitmap Heap Scan on delivery, Recheck id
    BETWEEN …, Filter send_id, status -> Bitmap Index Scan on delivery_pkey: one primary-key
    range per range of the batch (usually one), ~1,000 heap rows, no sort.
    """
    groups: dict[tuple[DeliveryStatus, str, str], list[int]] = {}
    for target in claim.targets:
        exception = result.exceptions.get(target.delivery_id)
        outcome, error, message_id = (
            (exception.outcome, exception.error, exception.message_id or result.message_id)
            if exception
            else (result.outcome, result.error, result.message_id)
        )
        # A refused account accepted nothing more: the rows wait for `sends resume`.
        refused = result.fatal and outcome is not Outcome.SENT
        state = DeliveryStatus.QUEUED if refused else _ROW_STATE[outcome]
        groups.setdefault((state, error, message_id), []).append(target.delivery_id)
    batch_failed = result.fatal or result.outcome in (Outcome.FAILED, Outcome.RETRY_LATER)
    written: dict[str, int] = {}
    for (state, _, _), ids in groups.items():
        written[state.value] = written.get(state.value, 0) + len(ids)
    # Immediate: it reads the batch's step, then writes (SQLite would refuse the upgrade).
    with session_scope(engine, immediate=True) as session:
        connection = session.connection()
        step = _finish_batch(connection, claim.batch_id, result, now=now)
        if step is None:  # released or already recorded: none of its rows are ours to write
            return Recorded({})
        if step != BatchStatus.ABANDONED:
            ours = [col(Delivery.status) == DeliveryStatus.QUEUED]
        else:
            ours = [
                col(Delivery.status) == DeliveryStatus.UNKNOWN,
                col(Delivery.batch_id) == claim.batch_id,
            ]
        for (state, error, message_id), ids in groups.items():
            values: dict[str, Any] = {
                "status": state,
                "error": error,
                "updated_at": now,
                "batch_id": claim.batch_id,
                "attempts": col(Delivery.attempts) + 1,
            }
            if state is DeliveryStatus.QUEUED and not result.fatal:
                # Back in line, unless it has had its chances: then it failed, and says so.
                exhausted = col(Delivery.attempts) + 1 >= max_attempts
                values["status"] = sa.case(
                    (exhausted, DeliveryStatus.FAILED.value), else_=DeliveryStatus.QUEUED.value
                )
                values["error"] = sa.case(
                    (exhausted, f"{error} (gave up after {max_attempts} attempts)"), else_=error
                )
            if state is DeliveryStatus.SENT:
                values["message_id"] = message_id
            connection.execute(
                sa.update(Delivery)
                .where(
                    # The batch's own ids, and no `send_id = …`: with it, SQLite chose the
                    # claim index (send_id, … WHERE status = 'queued') and walked the
                    # whole queue for every batch (3× slower, growing with the send).
                    keys.within(connection, col(Delivery.id), keys.to_ranges(ids)),
                    *ours,
                )
                .values(**values)
            )
        if not batch_failed:
            return Recorded(written)
        failed_batches = connection.execute(
            sa.update(Send)
            .where(col(Send.id) == claim.send_id)
            .values(
                failed_batches=col(Send.failed_batches) + 1,
                # A paused send keeps the reason it paused, not a later thread's echo of it.
                last_error=sa.case(
                    (col(Send.status) == SendStatus.RUNNING, result.error),
                    else_=col(Send.last_error),
                ),
            )
            .returning(col(Send.failed_batches))
        ).scalar_one()
        if result.fatal:
            reason = f"the provider refused the account: {result.error}"
        elif failed_batches >= pause_after:
            reason = f"{failed_batches} batches failed; the last said: {result.error}"
        else:
            return Recorded(written)
        paused = connection.execute(
            sa.update(Send)
            .where(col(Send.id) == claim.send_id, col(Send.status) == SendStatus.RUNNING)
            .values(status=SendStatus.PAUSED, last_error=f"paused: {reason}")
        ).rowcount
        return Recorded(written, reason if paused else "")


def _finish_batch(
    connection: Connection, batch_id: int, result: BatchResult, *, now: datetime
) -> str | None:
    """Mark the batch done by compare-and-set; the step it was at (`sending`, or
    `abandoned` if its lease ran out meanwhile; `claimed` for an answer recorded without
    `begin_handoff`, as tests do), None if it was released or already done."""
    for _ in range(2):  # a recovery may move it from sending to abandoned in between
        step = connection.execute(
            sa.select(col(DeliveryBatch.status)).where(col(DeliveryBatch.id) == batch_id)
        ).scalar()
        if step not in (BatchStatus.CLAIMED, BatchStatus.SENDING, BatchStatus.ABANDONED):
            return None
        won = connection.execute(
            sa.update(DeliveryBatch)
            .where(col(DeliveryBatch.id) == batch_id, col(DeliveryBatch.status) == step)
            .values(
                status=BatchStatus.DONE,
                outcome=result.outcome.value,
                error=result.error,
                finished_at=now,
            )
        ).rowcount
        if won:
            return step
    return None
