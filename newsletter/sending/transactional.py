"""Transactional mail (confirmation, welcome, the console's test copies): queued by a web
request in the same transaction as the change that calls for it, sent by a worker. No page
waits on a provider, and a provider that is slow or down delays a confirmation, never a page.

Each message is rendered when it is sent, from the reader's row as it is then: a
confirmation goes only to a reader still pending, a welcome only to one still active, so a
reader who left (or complained, bounced, was forgotten) meanwhile is never mailed. Like the
ledger, a message is marked on the wire (`sending`) before its request, so a worker killed
mid-request leaves it `unknown`, never sent twice blindly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.links import Links
from newsletter.models import MailKind, MailStatus, TransactionalMail
from newsletter.providers.base import Batch, BatchResult, Outcome, Transport
from newsletter.sending.mail_batches import prepare
from newsletter.sending.mail_ledger import claim, give_back, mark, recover

log = logging.getLogger("newsletter.transactional")

# A settled message (sent, failed, unknown, skipped) has no more use for `not_before`: it
# holds when the message settled, which the dashboard's "last 24 hours" reads by index
# (`ix_transactional_mail_status_due`). It used to keep the time it was queued, and a
# backlog sent after a worker's two-day outage counted for none of the day's mail.
#
# A tick makes at most MAX_REQUESTS requests, readers alike sharing one, and claims no more
# messages than those requests can carry (the transport's batch size each, CLAIM_LIMIT in
# all), giving back what does not fit: a tick stays a few minutes at most even when every
# message reads differently and the provider takes 3 s to answer.
MAX_REQUESTS = 50
CLAIM_LIMIT = 5000


def queue_mail(session: Session, kind: MailKind, subscriber_id: int, *, now: datetime) -> None:
    """Queue one message, in the caller's transaction (so it exists iff the change does)."""
    queue_many(session, kind, [subscriber_id], now=now)


def queue_many(
    session: Session, kind: MailKind, subscriber_ids: list[int], *, now: datetime
) -> None:
    """`queue_mail` for many readers at once (an import's confirmations): one statement."""
    if subscriber_ids:
        session.execute(
            sa.insert(TransactionalMail),
            [
                {
                    "kind": kind.value,
                    "subscriber_id": subscriber_id,
                    "status": MailStatus.QUEUED.value,
                    "attempts": 0,
                    "not_before": now,
                    "created_at": now,
                    "to_email": "",
                    "to_name": "",
                    "message_id": "",
                }
                for subscriber_id in subscriber_ids
            ],
        )


def queue_test_copy(
    session: Session, brief_id: int, to_email: str, to_name: str, *, now: datetime
) -> TransactionalMail:
    """Queue a [TEST] copy of a brief for a member of staff (the console's test-send). It
    is rendered when sent, so it shows the brief as it is then."""
    mail = TransactionalMail(
        kind=MailKind.TEST_COPY,
        brief_id=brief_id,
        to_email=to_email,
        to_name=to_name,
        not_before=now,
        created_at=now,
    )
    session.add(mail)
    session.flush()
    return mail


def recent_test_copies(
    session: Session, brief_id: int, *, limit: int = 5
) -> list[TransactionalMail]:
    """A brief's newest test copies, for the console to say what became of them."""
    return list(
        session.exec(
            select(TransactionalMail)
            .where(
                col(TransactionalMail.kind) == MailKind.TEST_COPY,
                col(TransactionalMail.brief_id) == brief_id,
            )
            .order_by(col(TransactionalMail.id).desc())
            .limit(limit)
        )
    )


@dataclass
class MailReport:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    unknown: int = 0
    errors: list[str] = field(default_factory=list)
    # Still queued after this tick (or in another worker's hands): what `worker --once`
    # run from cron leaves for its next run.
    waiting: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.retried + self.unknown


def waiting_mail(session: Session) -> int:
    """Messages queued or in hand: what `/metrics` and `sends status` call waiting."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(TransactionalMail)
            .where(col(TransactionalMail.status).in_([MailStatus.QUEUED, MailStatus.CLAIMED]))
        )
        or 0
    )


def send_queued_mail(
    engine: Engine,
    settings: Settings,
    transport: Transport,
    *,
    now: datetime,
    stopping: Callable[[], bool] = lambda: False,
    pace: Callable[[int], bool] = lambda messages: False,
) -> MailReport:
    """Send what is due, readers whose message reads alike in one request
    (`mail_batches.py`). Asked to stop (`stopping`, or `pace` answering True while it
    waits for the rate limit), it finishes the requests in hand and gives the rest of its
    claim back: with a provider answering in 3 s, a claim's requests one after another
    could run far past systemd's stop timeout. A refused key gives the rest back too:
    every further request would be refused alike."""
    report = MailReport()
    report.unknown = recover(engine, now)
    lease = timedelta(seconds=settings.NEWSLETTER_LEASE_SECONDS)
    batch_size = min(settings.NEWSLETTER_BATCH_SIZE, transport.max_batch_size)
    claimed = claim(engine, now, lease, min(CLAIM_LIMIT, MAX_REQUESTS * batch_size))
    if not claimed:
        return report
    started = time.monotonic()
    prepared = prepare(
        engine,
        claimed,
        settings,
        Links.from_settings(settings),
        batch_size=batch_size,
        max_requests=MAX_REQUESTS,
    )
    give_back(engine, prepared.left_over)
    report.skipped += len(
        mark(
            engine,
            prepared.not_due,
            expect=MailStatus.CLAIMED,
            status=MailStatus.SKIPPED,
            not_before=now,
        )
    )
    halt = threading.Event()
    lock = threading.Lock()

    def hand_off(batch: Batch) -> None:
        """One request: marked on the wire, sent, its answers recorded. A stop, a wait
        for the rate limit cut short, a refused key or a failure in another thread gives
        it back unsent (a request that began before either still goes)."""
        if halt.is_set() or stopping() or pace(len(batch.recipients)):
            give_back(engine, _mail_ids([batch]))
            return
        try:
            begun = set(
                mark(
                    engine,
                    _mail_ids([batch]),
                    expect=MailStatus.CLAIMED,
                    status=MailStatus.SENDING,
                    attempts=col(TransactionalMail.attempts) + 1,
                    # A lease from now, not from the claim: the claim's earlier requests
                    # (an SMTP server's messages one at a time) may have used up the claim's.
                    lease_expires_at=now + timedelta(seconds=time.monotonic() - started) + lease,
                )
            )
            if not begun:
                return
            batch = replace(
                batch, recipients=[r for r in batch.recipients if r.delivery_id in begun]
            )
            result = transport.send_batch(batch)
            if result.fatal:
                halt.set()
            with lock:  # one report, written by every thread
                _record(engine, batch, result, settings, now, report)
        except BaseException:
            # The rest go back in line, not on the wire: a fault that fails one request
            # (the database locked, a transport bug) would fail them all, and each would
            # end `unknown` when its lease ran out, never resent by itself.
            halt.set()
            log.exception("a confirmation or welcome request failed; the tick's rest go back")
            raise

    # A tick's requests at once, NEWSLETTER_CONCURRENCY of them, as a send's batches go:
    # one after another, fifty requests to a provider 300 ms away took fifteen seconds.
    threads = max(1, min(settings.NEWSLETTER_CONCURRENCY, len(prepared.batches)))
    with ThreadPoolExecutor(threads, thread_name_prefix="mail") as pool:
        # Every batch runs (the ones after a failure only to be given back), then the
        # first failure is raised: `pool.map` would cancel the rest, left claimed.
        done = [pool.submit(hand_off, batch) for batch in prepared.batches]
    for future in done:
        future.result()
    with session_scope(engine) as session:
        report.waiting = waiting_mail(session)
    return report


def _mail_ids(batches: list[Batch]) -> list[int]:
    """The messages in these batches (a recipient's `delivery_id` is its message's id)."""
    return [recipient.delivery_id for batch in batches for recipient in batch.recipients]


def _record(
    engine: Engine,
    batch: Batch,
    result: BatchResult,
    settings: Settings,
    now: datetime,
    report: MailReport,
) -> None:
    """Each message's answer, one statement per kind of answer: the batch's own for all
    but the recipients the provider answered apart (`result.exceptions`)."""
    answers: dict[tuple[Outcome, str, str], list[int]] = defaultdict(list)
    for recipient in batch.recipients:
        answer = result.exceptions.get(recipient.delivery_id)
        outcome, error, message_id = (
            (answer.outcome, answer.error, answer.message_id or result.message_id)
            if answer
            else (result.outcome, result.error, result.message_id)
        )
        answers[outcome, error, message_id].append(recipient.delivery_id)
    for (outcome, error, message_id), mail_ids in answers.items():
        # A refused key stops the rest, but what an earlier part of a split request got
        # accepted stays sent (as in the ledger): put back in line, it went twice.
        refused = result.fatal and outcome is not Outcome.SENT
        if refused or outcome is Outcome.RETRY_LATER:
            _retry(engine, mail_ids, error, result.fatal, settings, now, report)
            continue
        status = {Outcome.SENT: MailStatus.SENT, Outcome.FAILED: MailStatus.FAILED}.get(
            outcome, MailStatus.UNKNOWN
        )
        done = len(
            mark(
                engine,
                mail_ids,
                expect=MailStatus.SENDING,
                status=status,
                error=error,
                message_id=message_id,
                sent_at=now if status is MailStatus.SENT else None,
                not_before=now,  # when it settled: see the note on settled messages above
            )
        )
        if status is MailStatus.SENT:
            report.sent += done
        elif status is MailStatus.FAILED:
            report.failed += done
            if error:
                report.errors.append(error)
        else:
            report.unknown += done


def _retry(
    engine: Engine,
    mail_ids: list[int],
    error: str,
    fatal: bool,
    settings: Settings,
    now: datetime,
    report: MailReport,
) -> None:
    """Nothing was accepted: try again later, a bounded number of times (a refused key is
    not counted against the messages: it is the account's fault, not theirs)."""
    with session_scope(engine) as session:
        attempts = session.execute(
            sa.select(col(TransactionalMail.id), col(TransactionalMail.attempts)).where(
                col(TransactionalMail.id).in_(mail_ids)
            )
        ).all()
    by_attempts: dict[int, list[int]] = defaultdict(list)
    for mail_id, tries in attempts:
        by_attempts[tries].append(mail_id)
    for tries, ids in by_attempts.items():
        give_up = not fatal and tries >= settings.NEWSLETTER_MAX_ATTEMPTS
        values: dict[str, Any] = (
            {
                "status": MailStatus.FAILED,
                "error": f"{error} (gave up after {tries} attempts)",
                "not_before": now,
            }
            if give_up
            else {
                "status": MailStatus.QUEUED,
                "not_before": now + timedelta(seconds=min(3600, 30 * 2 ** min(tries, 7))),
                "lease_expires_at": None,
                "error": error,
            }
        )
        moved = len(mark(engine, ids, expect=MailStatus.SENDING, **values))
        if give_up:
            report.failed += moved
        else:
            report.retried += moved
    if error:
        report.errors.append(error)
