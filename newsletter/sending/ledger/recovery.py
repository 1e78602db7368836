"""After a worker dies, and after the last batch: batches whose lease ran out are settled by
how far their request got, and sends with nothing left open are finished. Safe for any
number of workers to run at once: every change is a compare-and-set."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from newsletter.db import session_scope
from newsletter.logs import ids
from newsletter.models import (
    OPEN_STATES,
    BatchStatus,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Send,
    SendStatus,
)
from newsletter.sending.ledger import keys
from newsletter.sending.ledger.claims import release_batch

log = logging.getLogger("newsletter.ledger")


@dataclass
class Recovery:
    released: int = 0  # rows whose request never began, back in the queue
    unknown: int = 0  # rows whose request may have gone out


def recover_expired_batches(engine: Engine, *, now: datetime) -> Recovery:
    """Batches whose worker died: requeue if the request never began, else `unknown`.

    Safe for any number of workers at once: each batch changes state by compare-and-set.
    """
    recovery = Recovery()
    with session_scope(engine) as session:
        expired = session.execute(
            sa.select(col(DeliveryBatch.id), col(DeliveryBatch.send_id), col(DeliveryBatch.status))
            .where(
                col(DeliveryBatch.status).in_([BatchStatus.CLAIMED, BatchStatus.SENDING]),
                col(DeliveryBatch.lease_expires_at) < now,
            )
            .order_by(col(DeliveryBatch.id))
        ).all()
    for batch_id, send_id, status in expired:
        with session_scope(engine, immediate=True) as session:
            connection = session.connection()
            if status == BatchStatus.CLAIMED:
                rows, cancelled = release_batch(connection, batch_id, now=now)
                if cancelled:  # not back in the queue: staff cancelled the send meanwhile
                    _log_recovered(send_id, batch_id, rows, "cancelled with their send")
                else:
                    recovery.released += rows
                    _log_recovered(send_id, batch_id, rows, "requeued: its request never began")
                continue
            text = connection.execute(
                sa.update(DeliveryBatch)
                .where(
                    col(DeliveryBatch.id) == batch_id,
                    col(DeliveryBatch.status) == BatchStatus.SENDING,
                )
                .values(status=BatchStatus.ABANDONED, finished_at=now)
                .returning(col(DeliveryBatch.keys))
            ).scalar()
            if text is None:
                continue
            # The batch's rows that no event settled meanwhile; `batch_id` is written
            # with them, so the late answer (if it comes) and reports find them.
            unknown = int(
                connection.execute(
                    sa.update(Delivery)
                    .where(
                        # The batch's own ids (a primary-key range; see record_batch).
                        keys.within(connection, col(Delivery.id), keys.decode(text)),
                        col(Delivery.status) == DeliveryStatus.QUEUED,
                    )
                    .values(
                        status=DeliveryStatus.UNKNOWN,
                        batch_id=batch_id,
                        error="the worker stopped while the request was in flight",
                        updated_at=now,
                    )
                ).rowcount
                or 0
            )
            recovery.unknown += unknown
            _log_recovered(send_id, batch_id, unknown, "unknown: its worker stopped mid-request")
    return recovery


def _log_recovered(send_id: object, batch_id: object, rows: int, what: str) -> None:
    if not rows:  # another worker recovered it first
        return
    log.warning(
        "send %s batch %s: lease expired; %s deliveries %s",
        *(send_id, batch_id, rows, what),
        extra=ids(send_id, batch_id),
    )


def finish_sends(engine: Engine, *, now: datetime) -> list[int]:
    """Running sends with no open row left are finished; safe for any worker to run."""
    open_rows = (
        sa.select(sa.literal(1))
        .where(col(Delivery.send_id) == col(Send.id), col(Delivery.status).in_(OPEN_STATES))
        .exists()
    )
    with session_scope(engine) as session:
        return sorted(
            session.execute(
                sa.update(Send)
                .where(col(Send.status) == SendStatus.RUNNING, ~open_rows)
                .values(status=SendStatus.FINISHED, finished_at=now)
                .returning(col(Send.id))
            ).scalars()
        )
