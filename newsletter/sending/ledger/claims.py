"""The hand-off's side of the ledger: claim a batch, mark it on the wire, record the
provider's answer, recover the batches of a dead worker, finish sends with nothing left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from newsletter.db import any_of, is_postgresql, session_scope
from newsletter.models import (
    BatchStatus,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Send,
    SendStatus,
)
from newsletter.providers.base import BatchResult, Outcome
from subscribers.models import Subscriber, SubscriberStatus

_TIME = Delivery.__table__.c.not_before.type  # type: ignore[attr-defined]


# --- claiming, handing off, recording -------------------------------------------------------


@dataclass(frozen=True)
class Target:
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

    `after` (a previous claim's last key) lets a sender thread seek past the rows it already
    claimed: the index still holds their old `queued` entries until vacuum, and scanning
    them again for every batch would make a million-row send quadratic.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint rows without
    waiting. SQLite: `BEGIN IMMEDIATE` serializes claimers. Subscribers who left since
    planning are marked skipped here, inside the claim, and never reach a transport.
    """
    with session_scope(engine, immediate=True) as session:
        connection = session.connection()
        status = connection.execute(
            sa.select(col(Send.status)).where(col(Send.id) == send_id)
        ).scalar()
        if status != SendStatus.RUNNING:
            return None
        batch_id = connection.execute(
            sa.insert(DeliveryBatch)
            .values(
                send_id=send_id,
                worker_id=worker_id,
                status=BatchStatus.CLAIMED,
                size=0,
                lease_expires_at=now + lease,
                created_at=now,
                outcome="",
                error="",
            )
            .returning(col(DeliveryBatch.id))
        ).scalar_one()
        batch_id = cast(int, batch_id)
        due_key = sa.tuple_(col(Delivery.not_before), col(Delivery.id))
        picked = (
            sa.select(col(Delivery.id))
            .where(
                col(Delivery.send_id) == send_id,
                col(Delivery.status) == DeliveryStatus.QUEUED,
                col(Delivery.not_before) <= now,
            )
            .order_by(col(Delivery.not_before), col(Delivery.id))
            .limit(limit)
        )
        if after is not None:
            picked = picked.where(
                due_key > sa.tuple_(sa.literal(after[0], type_=_TIME), sa.literal(after[1]))
            )
        if is_postgresql(connection):
            picked = picked.with_for_update(skip_locked=True)
        # MATERIALIZED: the locking subquery runs exactly once, whatever the plan.
        picked_cte = picked.cte("picked").prefix_with("MATERIALIZED")
        claimed = connection.execute(
            sa.update(Delivery)
            .where(col(Delivery.id) == picked_cte.c.id)
            .values(
                status=DeliveryStatus.CLAIMED,
                batch_id=batch_id,
                attempts=col(Delivery.attempts) + 1,
                updated_at=now,
            )
            .returning(col(Delivery.id), col(Delivery.not_before))
        ).all()
        if not claimed:
            connection.execute(sa.delete(DeliveryBatch).where(col(DeliveryBatch.id) == batch_id))
            return None
        keys = [(due, cast(int, delivery_id)) for delivery_id, due in claimed]
        first_id, last_id = min(key[1] for key in keys), max(key[1] for key in keys)
        last_key = max(keys)
        # By id range and batch, not by a list of ids: a primary-key range scan whose plan
        # does not depend on a thousand-element parameter the planner cannot see into.
        rows = connection.execute(
            sa.select(
                col(Delivery.id),
                col(Subscriber.id),
                col(Subscriber.email),
                col(Subscriber.name),
                col(Subscriber.status),
            )
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .where(
                col(Delivery.id).between(first_id, last_id),
                col(Delivery.batch_id) == batch_id,
            )
            .order_by(col(Delivery.id))
        ).all()
        targets = [
            Target(cast(int, r[0]), cast(int, r[1]), r[2], r[3])
            for r in rows
            if r[4] == SubscriberStatus.ACTIVE
        ]
        gone = [r[0] for r in rows if r[4] != SubscriberStatus.ACTIVE]
        if gone:
            connection.execute(
                sa.update(Delivery)
                .where(any_of(connection, col(Delivery.id), gone))
                .values(status=DeliveryStatus.SKIPPED, error="subscriber left", updated_at=now)
            )
        connection.execute(
            sa.update(DeliveryBatch)
            .where(col(DeliveryBatch.id) == batch_id)
            .values(size=len(targets))
        )
    return Claim(
        batch_id=batch_id,
        send_id=send_id,
        targets=targets,
        skipped=len(gone),
        first_id=first_id,
        last_id=last_id,
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
    """A claimed batch that will not be sent: its rows back to the queue (or cancelled)."""
    batch = connection.execute(
        sa.select(col(DeliveryBatch.send_id), col(DeliveryBatch.status)).where(
            col(DeliveryBatch.id) == batch_id
        )
    ).one_or_none()
    if batch is None or batch[1] not in (BatchStatus.CLAIMED, BatchStatus.RELEASED):
        return 0
    connection.execute(
        sa.update(DeliveryBatch)
        .where(col(DeliveryBatch.id) == batch_id)
        .values(status=BatchStatus.RELEASED, finished_at=now)
    )
    send_status = connection.execute(
        sa.select(col(Send.status)).where(col(Send.id) == batch[0])
    ).scalar()
    cancelled = send_status == SendStatus.CANCELLED
    return int(
        connection.execute(
            sa.update(Delivery)
            .where(
                col(Delivery.send_id) == batch[0],
                col(Delivery.status) == DeliveryStatus.CLAIMED,
                col(Delivery.batch_id) == batch_id,
            )
            .values(
                status=DeliveryStatus.CANCELLED if cancelled else DeliveryStatus.QUEUED,
                updated_at=now,
            )
        ).rowcount
        or 0
    )


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
    """Write the provider's answer into the ledger: rows per state, and why the send
    paused ("" if it did not).

    Rows are matched by id *and* batch, so an answer that arrives after the lease was taken
    back cannot overwrite another batch's rows. An `unknown` row (lease expired mid-request)
    is corrected by the real answer when it does arrive.
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
    with session_scope(engine) as session:
        connection = session.connection()
        for (state, error, message_id), ids in groups.items():
            values: dict[str, Any] = {"status": state, "error": error, "updated_at": now}
            if state is DeliveryStatus.QUEUED and not result.fatal:
                # Back in line, unless it has had its chances: then it failed, and says so.
                exhausted = col(Delivery.attempts) >= max_attempts
                values["status"] = sa.case(
                    (exhausted, DeliveryStatus.FAILED.value), else_=DeliveryStatus.QUEUED.value
                )
                values["error"] = sa.case(
                    (exhausted, f"{error} (gave up after {max_attempts} attempts)"), else_=error
                )
            if state is DeliveryStatus.SENT:
                values["message_id"] = message_id
            # The usual case, one outcome for the whole batch, goes by id range (see claim).
            rows = (
                col(Delivery.id).between(claim.first_id, claim.last_id)
                if len(groups) == 1
                else any_of(connection, col(Delivery.id), ids)
            )
            connection.execute(
                sa.update(Delivery)
                .where(
                    rows,
                    col(Delivery.batch_id) == claim.batch_id,
                    col(Delivery.status).in_([DeliveryStatus.CLAIMED, DeliveryStatus.UNKNOWN]),
                )
                .values(**values)
            )
        connection.execute(
            sa.update(DeliveryBatch)
            .where(col(DeliveryBatch.id) == claim.batch_id)
            .values(
                status=BatchStatus.DONE,
                outcome=result.outcome.value,
                error=result.error,
                finished_at=now,
            )
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
