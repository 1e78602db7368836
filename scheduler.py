"""The worker process: APScheduler is the clock, nothing more.

Every tick calls `Dispatcher.work_due()`; all state lives in the database, so a redundant
tick (or a second worker on PostgreSQL) does nothing twice. `python scheduler.py` and
`newsletter worker` are the same process.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.exc import OperationalError

from newsletter.config import Settings, get_settings
from newsletter.db import make_engine, single_worker_lock
from newsletter.digests import create_due_digests
from newsletter.dispatch import Dispatcher, WorkReport
from newsletter.errors import NewsletterError
from newsletter.transports import make_transport

log = logging.getLogger("newsletter.worker")


class ProgressLog:
    """One log line per send every `every` seconds while it runs, from any sender thread."""

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


def build_dispatcher(settings: Settings) -> Dispatcher:
    return Dispatcher(
        make_engine(settings.DATABASE_URL),
        settings,
        make_transport(settings),
        on_progress=ProgressLog(),
    )


def paused_message(send_id: int, reason: str) -> str:
    return (
        f"send {send_id} paused: {reason}; fix the cause, then `newsletter sends resume {send_id}`"
    )


def log_report(report: WorkReport, *, paused: bool = True) -> None:
    for send_id in report.started:
        log.info("send %s started", send_id)
    if report.settled:
        log.info("handed off %s deliveries", report.settled)
    if report.released:
        log.info("%s deliveries requeued from batches a dead worker never sent", report.released)
    if report.unknown:
        log.warning(
            "%s deliveries are unknown (a worker died mid-request); settle them with "
            "`newsletter sends resolve`",
            report.unknown,
        )
    if paused:
        for send_id, reason in report.paused.items():
            log.error("%s", paused_message(send_id, reason))
    for send_id in report.finished:
        log.info("send %s finished", send_id)


def tick(dispatcher: Dispatcher) -> None:
    try:
        log_report(dispatcher.work_due())
    except (NewsletterError, OperationalError) as exc:
        # A database that went away for a moment: the next tick tries again.
        log.error("%s", exc)


def make_digests(dispatcher: Dispatcher) -> None:
    try:
        made = create_due_digests(dispatcher.engine, dispatcher.settings, now=dispatcher.clock())
    except (NewsletterError, OperationalError) as exc:
        log.error("digests: %s", exc)
        return
    if made:
        log.info("digests made: sends %s", ", ".join(str(i) for i in made))


def build_scheduler(dispatcher: Dispatcher, interval_seconds: float) -> BlockingScheduler:
    """The clock: an interval tick works the ledger; a cron job every quarter hour makes
    the digests that came due (zones with :30 and :45 offsets included). Nothing lives in
    the job store but these two jobs, so a memory store rebuilt at start loses nothing."""
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        make_digests,
        "cron",
        args=[dispatcher],
        minute="*/15",
        id="digests",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=6 * 3600,
        next_run_time=dispatcher.clock(),  # and once at start: a worker back from a stop
    )
    scheduler.add_job(
        tick,
        "interval",
        args=[dispatcher],
        seconds=interval_seconds,
        id="work-due",
        max_instances=1,  # one tick at a time in this process
        coalesce=True,  # after a stall, run once, not once per missed tick
        misfire_grace_time=6 * 3600,  # a worker back from hours asleep still ticks
        next_run_time=dispatcher.clock(),
    )
    return scheduler


def run(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT; the batches in hand are finished first."""
    with single_worker_lock(settings.DATABASE_URL):
        _run(settings)


def _run(settings: Settings) -> None:
    dispatcher = build_dispatcher(settings)
    scheduler = build_scheduler(dispatcher, settings.NEWSLETTER_TICK_SECONDS)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the batches in hand, then stopping", signum)
        dispatcher.request_stop()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("worker %s ticking every %ss", dispatcher.worker_id, settings.NEWSLETTER_TICK_SECONDS)
    scheduler.start()


def run_once(settings: Settings) -> WorkReport:
    """All work due now, then return: for cron-driven setups, tests and the demo.

    A send that paused itself is an error here (exit status 1), so cron mails someone.
    """
    with single_worker_lock(settings.DATABASE_URL):
        dispatcher = build_dispatcher(settings)
        make_digests(dispatcher)
        report = dispatcher.work_due()
    log_report(report, paused=False)
    if report.paused:
        raise NewsletterError(
            "; ".join(paused_message(send_id, why) for send_id, why in report.paused.items())
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The newsletter worker (same as `newsletter worker`)."
    )
    parser.add_argument("--once", action="store_true", help="do all due work, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    try:
        if args.once:
            run_once(settings)
        else:
            run(settings)
    except NewsletterError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
