"""Handing off a send's ledger in batches, from N sender threads of one worker process.

Each thread claims a batch and marks it on the wire (`ledger/claims.py`), makes one
provider request and records the answer (`ledger/answers.py`), until nothing claimable is
left or the send stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from newsletter.briefs import brief_topics
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.fields import tokens_in
from newsletter.heap import frozen_heap
from newsletter.links import Links
from newsletter.logs import ids
from newsletter.models import Brief, Send, SendKind, SendStatus
from newsletter.providers.base import Batch, BatchResult, Outcome, Recipient, Transport
from newsletter.sending.ledger import (
    Claim,
    Recorded,
    Target,
    begin_handoff,
    claim_batch,
    finish_sends,
    give_back,
    record_batch,
    recover_expired_batches,
)
from newsletter.sending.plan import start_due_sends
from subscribers.models import id_of, utcnow

log = logging.getLogger("newsletter.dispatch")

Clock = Callable[[], datetime]


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class RateLimiter:
    """At most `rate` messages per second across this process's threads (0: no limit).

    Each caller reserves its slot under the lock and sleeps outside it, so threads queue in
    order and a 1000-recipient batch waits as long as 1000 messages take at the cap.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0

    def reserve(self, messages: int) -> float:
        """Seconds to wait before sending `messages`."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + messages / self.rate
            return start - now


def send_categories(engine: Engine, send: Send) -> list[str]:
    """Provider-side labels for a send's messages: the brief's slug, then its topics, so
    the provider's own statistics split the same way ours do. ASCII, unique, at most 10
    (`Batch` makes them so: a brief added before slugs were ASCII still sends)."""
    with session_scope(engine) as session:
        brief = session.get_one(Brief, send.brief_id)
        if send.kind == SendKind.DIGEST:
            return ["digest"]
        return [brief.slug, *(topic.slug for topic in brief_topics(brief, session=session))]


@dataclass
class WorkReport:
    started: list[int] = field(default_factory=list)
    settled: int = 0  # rows claimed and answered, whatever the answer; each row once
    # What the answers did to those rows: sent (the provider accepted them), failed,
    # queued (back in line), unknown; and skipped (the reader left before the claim).
    rows: dict[str, int] = field(default_factory=dict)
    released: int = 0
    unknown: int = 0
    finished: list[int] = field(default_factory=list)
    paused: dict[int, str] = field(default_factory=dict)  # send id → why
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # A row put back in line is claimed again by the same tick's sweep (`_drain`). Each
    # row counted as back in the queue and not claimed since, with the batch it was in if
    # that batch could not be handed off (`_requeued`); of each such batch, the provider's
    # words and how many of its rows are not claimed since (`_unsent`). Without them a row
    # was counted once per attempt: three readers behind an unreachable provider read "6
    # back in the queue" and "2 batches could not be handed off", and three sent on the
    # second attempt were also "3 back in the queue". Kept up by the row, never by a pass
    # over every earlier batch.
    _requeued: dict[int, int | None] = field(default_factory=dict, repr=False, compare=False)
    _unsent: dict[int, tuple[str, int]] = field(default_factory=dict, repr=False, compare=False)

    def add(
        self, claim: Claim, recorded: Recorded, result: BatchResult | None, *, stopping: bool
    ) -> None:
        """Count one batch's outcome. A batch cut short by a stop (a 429's wait ended) is
        back in line for the next worker: not work the provider could not take."""
        with self._lock:
            if self._requeued:  # the rare tick with rows back in line
                self._taken_again(claim.delivery_ids())
            # The rows the answer wrote: a late one for rows resent since writes none.
            self.settled += claim.skipped + sum(recorded.rows.values())
            counts = {**recorded.rows, "skipped": claim.skipped}
            for state, count in counts.items():
                if count:
                    self.rows[state] = self.rows.get(state, 0) + count
            # Not handed off: the provider's words. Not for rows that gave up after their
            # attempts (failed, not waiting), nor for a stop or a refused account.
            unsent = (
                result.error
                if result is not None
                and result.outcome is Outcome.RETRY_LATER
                and not (result.fatal or stopping)
                and recorded.requeued
                else None
            )
            if unsent is not None:
                self._unsent[claim.batch_id] = (unsent, len(recorded.requeued))
            batch_id = None if unsent is None else claim.batch_id
            self._requeued.update(dict.fromkeys(recorded.requeued, batch_id))

    def _taken_again(self, taken: set[int]) -> None:
        """Rows claimed again after this report counted them back in line: their earlier
        count goes, the new claim's answer counts instead (the caller holds the lock)."""
        again = self._requeued.keys() & taken
        if not again:
            return
        self.settled -= len(again)
        self.rows["queued"] -= len(again)
        if not self.rows["queued"]:
            del self.rows["queued"]
        for delivery_id in again:
            batch_id = self._requeued.pop(delivery_id)
            if batch_id is not None:
                error, left = self._unsent[batch_id]
                if left > 1:
                    self._unsent[batch_id] = (error, left - 1)
                else:
                    del self._unsent[batch_id]

    @property
    def not_handed_off(self) -> list[str]:
        """Why batches could not be handed off at all (the provider unreachable after the
        retries), one entry per batch whose rows this report has not claimed again."""
        with self._lock:
            return [error for error, _ in self._unsent.values()]

    @property
    def accepted(self) -> int:
        return self.rows.get("sent", 0)


class _Cursor:
    """The furthest due key any thread of this process has claimed in one send."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[datetime, int] | None = None

    def get(self) -> tuple[datetime, int] | None:
        with self._lock:
            return self._key

    def advance(self, key: tuple[datetime, int] | None) -> tuple[datetime, int] | None:
        """Move forward to `key` (never back); the furthest key, to claim after."""
        with self._lock:
            if key is not None and (self._key is None or key > self._key):
                self._key = key
            return self._key


@dataclass
class Dispatcher:
    """Works the ledger for one worker process: claim, hand off, record, in N threads."""

    engine: Engine
    settings: Settings
    transport: Transport
    worker_id: str = field(default_factory=new_worker_id)
    clock: Clock = utcnow
    # Called with the number of rows each batch settled for good (sent, failed, unknown,
    # skipped; not those back in line), for progress bars and lines; from any thread.
    on_progress: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self._links = Links.from_settings(self.settings)
        self._lease = timedelta(seconds=self.settings.NEWSLETTER_LEASE_SECONDS)
        self._batch_size = min(self.settings.NEWSLETTER_BATCH_SIZE, self.transport.max_batch_size)
        self._limiter = RateLimiter(self.settings.NEWSLETTER_RATE_LIMIT)
        self._stopping = threading.Event()

    def request_stop(self) -> None:
        """Finish the batches in hand, claim no more (SIGTERM); a batch waiting to retry
        gives up its wait and goes back in line."""
        self._stopping.set()
        self.transport.interrupt()

    def pace(self, messages: int) -> bool:
        """Wait until `messages` more keep within NEWSLETTER_RATE_LIMIT, for this process's
        sends and its transactional mail alike; True if a stop came meanwhile (send
        nothing then)."""
        wait = self._limiter.reserve(messages)
        return bool(wait) and self._stopping.wait(wait)

    def stop_requested(self) -> bool:
        """Whether `request_stop` was called: the worker's other loops (transactional
        mail) heed it too."""
        return self._stopping.is_set()

    def recipient(self, target: Target, used: frozenset[str] | None = None) -> Recipient:
        return self._links.recipient(
            delivery_id=target.delivery_id,
            subscriber_id=target.subscriber_id,
            email=target.email,
            name=target.name,
            used=used,
        )

    def hand_off(
        self, send: Send, claim: Claim, categories: list[str]
    ) -> tuple[Recorded, BatchResult | None]:
        """Send one claimed batch and record the answer: what the ledger recorded, and the
        provider's answer (None when nothing was sent)."""
        if not claim.targets:
            return Recorded({}), None
        used = tokens_in(send.html, send.text)
        batch = Batch(
            send_id=claim.send_id,
            subject=send.subject,
            html=send.html,
            text=send.text,
            recipients=self._links.recipients(claim.targets, used=used),
            categories=categories,
            headers=self._links.list_headers(),
        )
        # NEWSLETTER_RATE_LIMIT's wait, cut short by a stop: with a low limit it can be
        # longer than systemd waits for a stop, and the batch goes back in line unsent.
        if self.pace(len(batch.recipients)):
            give_back(self.engine, claim, now=self.clock())
            where = (claim.send_id, claim.batch_id)
            log.info("send %s batch %s given back unsent: stopping", *where, extra=ids(*where))
            return Recorded({}), None
        if not begin_handoff(self.engine, claim, now=self.clock()):
            log_not_taken(claim, None)
            return Recorded({}), None
        try:
            result = self.transport.send_batch(batch)
        except Exception as exc:  # a transport bug must not leave the batch looking alive
            log.exception("transport %s raised", self.transport.name)
            result = BatchResult(Outcome.UNKNOWN, error=f"the transport raised {exc!r}")
        log_not_taken(claim, result)
        recorded = record_batch(
            self.engine,
            claim,
            result,
            now=self.clock(),
            pause_after=self.settings.NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES,
            max_attempts=self.settings.NEWSLETTER_MAX_ATTEMPTS,
            # Given back because this worker is stopping: not the provider's failure.
            counts_as_failure=not self._stopping.is_set(),
        )
        return recorded, result

    def _drain(
        self, send: Send, categories: list[str], report: WorkReport, cursor: _Cursor
    ) -> None:
        """One thread's loop: batches of this send until none is left or the send stops.

        The process's threads claim forward from the furthest batch any of them took (a
        claim writes no row, so rows already taken or answered are still in the claim
        index until vacuum: seeking past them keeps each claim short). When nothing lies
        ahead a thread sweeps once more from the start, for rows requeued behind it (a
        4xx, a released lease). Rows requeued after that wait for the next tick, so a
        recipient whose server keeps saying "try later" costs one attempt per tick, not a
        busy loop.
        """
        swept = False
        after = cursor.get()
        while not self._stopping.is_set():
            claim = claim_batch(
                self.engine,
                send_id=id_of(send),
                worker_id=self.worker_id,
                limit=self._batch_size,
                lease=self._lease,
                now=self.clock(),
                after=after,
            )
            if claim is None:
                if swept:
                    return
                after, swept = None, True
                continue
            after = cursor.advance(claim.last_key) if not swept else claim.last_key
            recorded, result = self.hand_off(send, claim, categories)
            report.add(claim, recorded, result, stopping=self._stopping.is_set())
            if self.on_progress is not None:  # rows done with, not rows back in line
                self.on_progress(claim.skipped + recorded.settled)
            if recorded.paused:
                report.paused[id_of(send)] = recorded.paused
                return

    def work_send(self, send: Send, report: WorkReport | None = None) -> WorkReport:
        """Hand off every claimable row of one send with NEWSLETTER_CONCURRENCY threads."""
        report = report if report is not None else WorkReport()
        categories = send_categories(self.engine, send)
        cursor = _Cursor()
        threads = [
            threading.Thread(
                target=self._drain,
                args=(send, categories, report, cursor),
                name=f"send-{send.id}-{n}",
            )
            for n in range(self.settings.NEWSLETTER_CONCURRENCY)
        ]
        with frozen_heap():  # the send's objects are collected, the process's are not walked
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return report

    def work_due(self, *, only: int | None = None) -> WorkReport:
        """Everything due now: recover dead batches, start due sends, work running ones."""
        now = self.clock()
        recovery = recover_expired_batches(self.engine, now=now)
        report = WorkReport(released=recovery.released, unknown=recovery.unknown)
        report.started = start_due_sends(self.engine, now=now, only=only)
        for send_id in report.started:  # now, not when the tick that sends it all ends
            log.info("send %s started", send_id, extra=ids(send_id))
        with session_scope(self.engine) as session:
            statement = (
                select(Send).where(col(Send.status) == SendStatus.RUNNING).order_by(col(Send.id))
            )
            if only is not None:
                statement = statement.where(col(Send.id) == only)
            running = list(session.exec(statement))
        for send in running:
            if self._stopping.is_set():
                break
            self.work_send(send, report)
        report.finished = finish_sends(self.engine, now=self.clock())
        return report


# --- the operator's log (one line per batch that did not go as planned) -----------------


def log_not_taken(claim: Claim, result: BatchResult | None) -> None:
    """One line for a batch the provider did not take in full, or (`result` None) one that
    was not sent because its send stopped or its lease was taken back."""
    where = (claim.send_id, claim.batch_id)
    if result is None:
        log.info(
            "send %s batch %s not sent: the send stopped or the lease was taken back",
            *where,
            extra=ids(*where),
        )
        return
    # Readers sent by another request of a batch split around a bad one are exceptions too
    # (another message id), but were taken.
    refused = [e for e in result.exceptions.values() if e.outcome is not Outcome.SENT]
    if result.outcome is Outcome.SENT and not refused:
        return
    what, error, count = result.outcome.value, result.error, len(claim.targets)
    if result.fatal:
        what = "refused with the account"
    elif result.outcome is Outcome.SENT:
        what, error, count = refused[0].outcome.value, refused[0].error, len(refused)
    log.warning(
        "send %s batch %s not taken: %s of %s recipients %s: %s",
        *(*where, count, len(claim.targets), what, error),
        extra=ids(*where),
    )
