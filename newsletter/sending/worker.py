"""What a worker process does on each tick of its clock (`scheduler.py`): recover dead
batches, start due sends, hand off their ledgers, send queued transactional mail, make due
digests, and say so in the log. All state is in the database, so a redundant tick (or a
second worker on PostgreSQL) does nothing twice.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from newsletter.config import Settings
from newsletter.db import database_heads, make_engine, recorded_revisions, session_scope
from newsletter.errors import ConfigurationError, NewsletterError
from newsletter.logs import ids
from newsletter.models import SELF_PAUSED, Send, SendStatus
from newsletter.providers.base import Transport, make_transport
from newsletter.sending.digests import create_due_digests
from newsletter.sending.dispatcher import Dispatcher, WorkReport
from newsletter.sending.plan import start_due_sends
from newsletter.sending.report import SendSummary, summarize_sends
from newsletter.sending.transactional import MailReport, send_queued_mail
from newsletter.signup import apply_signups
from newsletter.words import counted

log = logging.getLogger("newsletter.worker")


class ProgressLog:
    """One log line every `every` seconds while a send runs, from any sender thread."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._settled = 0
        self._since = time.monotonic()

    def __call__(self, rows: int) -> None:
        with self._lock:
            self._settled += rows
            elapsed = time.monotonic() - self._since
            if elapsed < self.every:
                return
            settled, self._settled, self._since = self._settled, 0, time.monotonic()
        log.info("progress: %s deliveries settled in the last %.0f s", settled, elapsed)


def paused_message(send_id: int, reason: str, *, still: bool = False) -> str:
    paused = "is still paused" if still else "paused"
    return (
        f"send {send_id} {paused}: {reason}; fix the cause, then "
        f"`newsletter sends resume {send_id}`"
    )


def not_handed_off(report: TickReport) -> str:
    """Why some of this tick's work could not be handed off, in one line ("" if it all was)."""
    reasons = [paused_message(i, why) for i, why in report.work.paused.items()]
    if report.work.not_handed_off:
        batches = report.work.not_handed_off
        stay = "stays" if len(batches) == 1 else "stay"
        reasons.append(
            f"{counted(len(batches), 'batch', 'batches')} could not be handed off and {stay} "
            f"queued for the next run; the provider said: {batches[-1]}"
        )
    if report.mail.retried:
        last = report.mail.errors[-1] if report.mail.errors else ""
        reasons.append(
            f"{counted(report.mail.retried, 'transactional message')} could not be handed "
            f"off and will be retried; the last error: {last}"
        )
    return "; ".join(reasons)


@dataclass
class TickReport:
    work: WorkReport = field(default_factory=WorkReport)
    mail: MailReport = field(default_factory=MailReport)
    digests: list[int] = field(default_factory=list)
    signups: int = 0

    def log(self, *, paused: bool = True) -> None:
        """Log lines for what this tick did; `paused=False` leaves out what could not be
        handed off (sends that paused themselves …), for a caller that reports it as its
        error."""
        work = self.work
        if work.settled:
            rows = work.rows
            log.info(
                "the provider accepted %s deliveries (%s failed, %s back in the queue, "
                "%s unknown, %s skipped: the reader left)",
                rows.get("sent", 0),
                rows.get("failed", 0),
                rows.get("queued", 0),
                rows.get("unknown", 0),
                rows.get("skipped", 0),
            )
        if work.released:
            log.info("%s deliveries requeued from batches a dead worker never sent", work.released)
        if work.unknown:
            log.warning(
                "%s deliveries are unknown (a worker died mid-request); settle them with "
                "`newsletter sends resolve`",
                work.unknown,
            )
        if paused and (why := not_handed_off(self)):
            log.error("%s", why, extra=ids(paused_sends=sorted(work.paused) or None))
        for send_id in work.finished:
            log.info("send %s finished", send_id, extra=ids(send_id))
        if self.signups:
            log.info("sign-ups applied: %s", self.signups)
        if self.mail.attempted or self.mail.skipped:
            log.info(
                "transactional mail: %s sent, %s failed, %s to retry, %s skipped; %s still queued",
                self.mail.sent,
                self.mail.failed,
                self.mail.retried,
                self.mail.skipped,
                f"{self.mail.waiting:,}",
            )
        if self.mail.unknown:
            # Said nowhere before: a reader whose confirmation never left stays pending.
            log.warning(
                "%s left unknown: a worker stopped mid-request, so each may or may not have "
                "gone (no provider event settles them); a reader's page (`newsletter "
                "subscribers show <address>`) says if theirs is one, and a reader still "
                "pending can sign up again for a new one",
                counted(self.mail.unknown, "confirmation or welcome email"),
            )
        if self.digests:
            log.info("digests made: sends %s", ", ".join(str(i) for i in self.digests))


@dataclass
class Worker:
    """One worker process's work: a dispatcher for sends, and the rest of a tick."""

    settings: Settings
    engine: Engine
    transport: Transport
    dispatcher: Dispatcher
    # The schema's revisions when the worker started, which its code was checked against.
    started_at_heads: tuple[str, ...]

    @classmethod
    def from_settings(
        cls, settings: Settings, *, on_progress: Callable[[int], None] | None = None
    ) -> Worker:
        engine = make_engine(settings.DATABASE_URL)
        try:
            heads = database_heads(engine)
        except BaseException:
            engine.dispose()
            raise
        transport = make_transport(settings)
        return cls(
            settings,
            engine,
            transport,
            Dispatcher(engine, settings, transport, on_progress=on_progress or ProgressLog()),
            heads,
        )

    def tick(self) -> TickReport:
        """Sends and transactional mail due now."""
        report = TickReport(work=self.dispatcher.work_due())
        # Sign-ups first, so the confirmations they queue go out in this same tick.
        report.signups = apply_signups(self.engine, now=self.dispatcher.clock())
        report.mail = send_queued_mail(
            self.engine,
            self.settings,
            self.transport,
            now=self.dispatcher.clock(),
            stopping=self.dispatcher.stop_requested,
            pace=self.dispatcher.pace,
        )
        return report

    def make_digests(self) -> list[int]:
        return create_due_digests(self.engine, self.settings, now=self.dispatcher.clock())

    def once(self) -> TickReport:
        """All work due now, for cron: raises (exit status 1, one line saying why) when work
        could not be handed off: a send paused itself (its key refused, too many failed
        batches), or the provider stayed unreachable after the retries."""
        # A digest that cannot be made (a broken template, one zone's group failing) must
        # not keep this run's sign-ups, confirmations and sends from going: it is raised
        # once they went. It kept everything back, every run, until it was mended.
        try:
            digests, failed = self.make_digests(), None
        except Exception as exc:  # raised below, after the tick
            digests, failed = [], exc
        report = self.tick()
        report.digests = digests
        report.log(paused=False)
        self._still_paused(set(report.work.paused))
        if failed is not None:
            raise failed
        if why := not_handed_off(report):
            raise NewsletterError(why)
        return report

    def _still_paused(self, this_run: set[int]) -> None:
        """A send that paused itself in an earlier run, said again in this one: only the run
        that paused it said so, and cron, which mails what a run prints, fell silent while
        the send sat paused. (One staff paused is theirs to remember.)"""
        with session_scope(self.engine) as session:
            paused = session.execute(
                sa.select(col(Send.id), col(Send.last_error)).where(
                    col(Send.status) == SendStatus.PAUSED,
                    col(Send.last_error).startswith(SELF_PAUSED),
                )
            ).all()
        for send_id, error in paused:
            if send_id not in this_run:
                reason = error.removeprefix(SELF_PAUSED)
                message = paused_message(send_id, reason, still=True)
                log.warning("%s", message, extra=ids(send_id))

    def work_one_send(self, send_id: int) -> SendSummary:
        """Start (if due) and hand off one send from this process: `send --foreground`."""
        start_due_sends(self.engine, now=self.dispatcher.clock(), only=send_id)
        report = self.dispatcher.work_due(only=send_id)
        with session_scope(self.engine) as session:
            summary = summarize_sends(session=session, send_id=send_id)[0]
        if why := not_handed_off(TickReport(work=report)):
            raise NewsletterError(why)
        return summary

    def schema_changed(self) -> ConfigurationError | None:
        """Why the database's schema no longer fits this running worker: its migrations
        moved since the worker started (an upgrade's `newsletter init` ran beside it, from
        a new checkout or a newer version), and every tick's statements would fail from
        now on, or (an additive migration) the earlier code would run on unnoticed. None
        while they have not, and while the database does not answer (that is an outage,
        not a change). One small SELECT: the service asks before every tick."""
        try:
            now = recorded_revisions(self.engine)
        except SQLAlchemyError:
            return None
        if set(now) == set(self.started_at_heads):
            return None
        return ConfigurationError(
            f"the database's migrations moved under this worker (it started at "
            f"{', '.join(self.started_at_heads)}; the database is now at {', '.join(now)})",
            hint="start the worker again, from the version that migrated it",
        )

    def request_stop(self) -> None:
        """Finish the batches in hand, claim no more (SIGTERM)."""
        self.dispatcher.request_stop()

    @contextmanager
    def stopped_by_signals(self, then: Callable[[], None] = lambda: None) -> Iterator[None]:
        """SIGTERM, SIGINT and SIGHUP stop the work inside: the batches in hand finish, the
        rest stay queued, and `then` runs (the service shuts its scheduler down; `worker
        --once` and `send --foreground` need nothing more). Without it SIGTERM killed those
        two with batches on the wire (their readers `unknown`), and Ctrl-C waited for all
        the work. SIGHUP is the terminal closing under `newsletter worker &`: it killed the
        worker mid-batch, unlogged. The stop runs on a thread of its own: a handler runs
        inside whatever the main thread was doing, which may hold a lock the stop needs (the
        scheduler's wake-up event's, not reentrant: the process would hang, not stop)."""
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may set handlers (an embedding caller's thread)
            return

        def stopping() -> None:
            self.request_stop()
            then()

        def stop(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            log.info("%s: finishing the batches in hand, then stopping", name)
            threading.Thread(target=stopping, name="stop", daemon=True).start()

        stoppers = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {sig: signal.signal(sig, stop) for sig in stoppers}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def close(self) -> None:
        self.transport.close()
        self.engine.dispose()
