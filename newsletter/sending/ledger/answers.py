"""The provider's answer to a batch, written into the ledger: each row once, with its
outcome; the batch done; the send paused when its batches keep failing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from newsletter.db import session_scope
from newsletter.models import (
    LIVE_BATCHES,
    SELF_PAUSED,
    BatchStatus,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Send,
    SendStatus,
)
from newsletter.providers.base import BatchResult, Outcome
from newsletter.sending.ledger import keys
from newsletter.sending.ledger.claims import Claim

# What `_finish_batch` says of a batch that was claimed or sending when its answer came.
LIVE = "live"

_ROW_STATE = {
    Outcome.SENT: DeliveryStatus.SENT,
    Outcome.FAILED: DeliveryStatus.FAILED,
    Outcome.UNKNOWN: DeliveryStatus.UNKNOWN,
    Outcome.RETRY_LATER: DeliveryStatus.QUEUED,  # nothing was accepted: back in line
}


@dataclass(frozen=True)
class Recorded:
    """What one recorded answer did: rows per state it wrote, why the send paused, and
    which rows it put back in line (not those that gave up instead: they are never claimed
    again), so a report that sees them claimed again counts them once."""

    rows: dict[str, int]
    paused: str = ""
    requeued: frozenset[int] = frozenset()

    @property
    def settled(self) -> int:
        """Rows this answer was the last word on: all but those back in line."""
        return sum(n for state, n in self.rows.items() if state != DeliveryStatus.QUEUED)


def record_batch(
    engine: Engine,
    claim: Claim,
    result: BatchResult,
    *,
    now: datetime,
    pause_after: int,
    max_attempts: int = 10,
    counts_as_failure: bool = True,
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
    BETWEEN …, Filter status -> Bitmap Index Scan on delivery_pkey: one primary-key
    range per range of the batch (usually one), ~1,000 heap rows, no sort.
    """
    groups = _row_groups(claim, result)
    # Unanswered counts too: a provider that takes requests and never answers (a timeout
    # each time) would otherwise turn the whole send into `unknown`, every reader in doubt,
    # and call it finished.
    batch_failed = result.fatal or (counts_as_failure and result.outcome is not Outcome.SENT)
    # Rows per state as the UPDATEs matched them, not as the batch held them: a late answer
    # for a batch whose rows were resent and sent since writes nothing, and says so.
    written: dict[str, int] = {}
    requeued: set[int] = set()  # rows this answer put back in line, as written
    # Immediate: SQLite's write lock at BEGIN, as every ledger writer takes it.
    with session_scope(engine, immediate=True) as session:
        connection = session.connection()
        finished = _finish_batch(connection, claim, result, now=now)
        if finished is None:  # released or already recorded: none of its rows are ours to write
            return Recorded({})
        if finished.step == LIVE:
            ours = [col(Delivery.status) == DeliveryStatus.QUEUED]
        else:
            ours = [
                col(Delivery.status) == DeliveryStatus.UNKNOWN,
                col(Delivery.batch_id) == claim.batch_id,
            ]
        for (state, error, message_id), ids in groups.items():
            # Given back by a stopping worker: not an attempt, or a worker stopped during
            # 429s often enough would use up the rows' NEWSLETTER_MAX_ATTEMPTS.
            given_back = state is DeliveryStatus.QUEUED and not counts_as_failure
            values: dict[str, Any] = {
                "status": state,
                "error": error,
                "updated_at": now,
                "batch_id": claim.batch_id,
                "attempts": col(Delivery.attempts) + (0 if given_back else 1),
            }
            may_give_up = state is DeliveryStatus.QUEUED and not result.fatal and not given_back
            if may_give_up:
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
            update = (
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
            if state is not DeliveryStatus.QUEUED:
                _count(written, state.value, connection.execute(update).rowcount)
                continue
            # The rare batch sent back in line (429s, 5xx past the retries, a stop): which of
            # its rows are back in line, and which gave up instead, so the counts say failed,
            # not queued.
            for delivery_id, status in connection.execute(
                update.returning(col(Delivery.id), col(Delivery.status))
            ):
                _count(written, status, 1)
                if status == DeliveryStatus.QUEUED:
                    requeued.add(cast(int, delivery_id))
        if not batch_failed:
            if result.outcome is Outcome.SENT and finished.failed_batches:
                # A batch taken counts one failure back: five scattered blips in a
                # million-reader send paused it, while a provider failing most batches
                # still climbs to the limit (a reset let it fail four in five for ever,
                # each row given up after its attempts). Only when there is one to count
                # back, as the answer came: the usual send has none, and this statement
                # was one in ten of a batch's.
                connection.execute(
                    sa.update(Send)
                    .where(col(Send.id) == claim.send_id, col(Send.failed_batches) > 0)
                    .values(failed_batches=col(Send.failed_batches) - 1)
                )
            return Recorded(written, requeued=frozenset(requeued))
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
            return Recorded(written, requeued=frozenset(requeued))
        paused = connection.execute(
            sa.update(Send)
            .where(col(Send.id) == claim.send_id, col(Send.status) == SendStatus.RUNNING)
            .values(status=SendStatus.PAUSED, last_error=f"{SELF_PAUSED}{reason}")
        ).rowcount
        return Recorded(written, reason if paused else "", frozenset(requeued))


def _count(written: dict[str, int], state: str, rows: int) -> None:
    if rows:
        written[state] = written.get(state, 0) + rows


def _row_groups(
    claim: Claim, result: BatchResult
) -> dict[tuple[DeliveryStatus, str, str], list[int]]:
    """The claim's delivery ids by what to write into them: (state, error, message id)."""

    def state(outcome: Outcome) -> DeliveryStatus:
        # A refused account accepted nothing more: the rows wait for `sends resume`.
        refused = result.fatal and outcome is not Outcome.SENT
        return DeliveryStatus.QUEUED if refused else _ROW_STATE[outcome]

    if claim.targets and not result.exceptions:  # the usual answer, one for all
        ids = [target.delivery_id for target in claim.targets]
        return {(state(result.outcome), result.error, result.message_id): ids}
    groups: dict[tuple[DeliveryStatus, str, str], list[int]] = {}
    for target in claim.targets:
        exception = result.exceptions.get(target.delivery_id)
        outcome, error, message_id = (
            (exception.outcome, exception.error, exception.message_id or result.message_id)
            if exception
            else (result.outcome, result.error, result.message_id)
        )
        groups.setdefault((state(outcome), error, message_id), []).append(target.delivery_id)
    return groups


class Finished(NamedTuple):
    step: str  # LIVE (claimed or sending: its rows still `queued`) or ABANDONED
    failed_batches: int  # the send's count of failed batches as the answer came


def _finish_batch(
    connection: Connection, claim: Claim, result: BatchResult, *, now: datetime
) -> Finished | None:
    """Mark the batch done by compare-and-set: LIVE if it was claimed or sending (claimed:
    an answer recorded without `begin_handoff`, as tests do), ABANDONED if its lease ran
    out mid-request (its rows made `unknown`), None if it was released or already done.
    One statement in the usual case, which also reads the send's count of failed batches
    as the answer comes (a batch taken counts one back only when there is one)."""
    done = {
        "status": BatchStatus.DONE,
        "outcome": result.outcome.value,
        "error": result.error,
        "finished_at": now,
    }
    failures = (
        sa.select(col(Send.failed_batches)).where(col(Send.id) == claim.send_id).scalar_subquery()
    )
    for step, was in ((LIVE_BATCHES, LIVE), ((BatchStatus.ABANDONED,), BatchStatus.ABANDONED)):
        won = connection.execute(
            sa.update(DeliveryBatch)
            .where(col(DeliveryBatch.id) == claim.batch_id, col(DeliveryBatch.status).in_(step))
            .values(**done)
            .returning(failures)
        ).first()
        if won is not None:
            return Finished(was, won[0] or 0)
    return None
