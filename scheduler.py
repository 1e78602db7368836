"""The worker process: APScheduler is the clock, nothing more.

An interval job runs `Worker.tick()` (sends and transactional mail); a cron job every
quarter hour makes the digests that came due (zones with :30 and :45 offsets included).
All state lives in the database, so the job store is memory and a redundant tick does
nothing twice. `python scheduler.py` and `newsletter worker` are the same process.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.exc import DBAPIError

from newsletter.config import Settings
from newsletter.db import single_worker_lock
from newsletter.db.outage import is_outage, outage_words
from newsletter.errors import NewsletterError
from newsletter.metrics import serve_worker_metrics
from newsletter.sending.worker import TickReport, Worker

log = logging.getLogger("newsletter.worker")


def _guarded(
    work: Callable[[], object], what: str, schema_changed: Callable[[], bool] = lambda: False
) -> Callable[[], None]:
    """A job that logs a database gone for a moment instead of dying: the next tick tries
    again. A statement the database refuses because its schema moved under this worker
    (`schema_changed` says so, and stops the worker) is no tick to try again: it failed
    every tick, with a traceback, while systemd saw a worker running."""

    def job() -> None:
        try:
            result = work()
        except NewsletterError as exc:
            log.error("%s: %s", what, exc)
            return
        except Exception as exc:
            if isinstance(exc, DBAPIError) and schema_changed():
                return
            if not is_outage(exc):
                raise
            log.error(
                "%s: the database is not answering (%s); next tick tries again",
                what,
                outage_words(exc),
            )
            return
        if isinstance(result, TickReport):
            result.log()
        elif result:
            log.info("digests made: sends %s", result)

    return job


def build_scheduler(
    worker: Worker, interval_seconds: float, stopped: list[NewsletterError] | None = None
) -> BlockingScheduler:
    """The worker's clock. A schema that moved under it (seen before each tick, or when a
    statement fails) stops it, the reason kept in `stopped` for `run` to raise (the command
    line's one line, exit 78)."""
    scheduler = BlockingScheduler(timezone="UTC")
    now = worker.dispatcher.clock()

    stopping = threading.Event()

    def schema_changed() -> bool:
        if stopping.is_set():  # already on its way out: one line, one shutdown
            return True
        changed = worker.schema_changed()
        if changed is None:
            return False
        stopping.set()
        log.error("%s: stopping this worker", changed)
        if stopped is not None:
            stopped.append(changed)
        worker.request_stop()
        threading.Thread(target=lambda: scheduler.shutdown(wait=False), name="stop").start()
        return True

    scheduler.add_job(
        _guarded(worker.make_digests, "digests", schema_changed),
        "cron",
        minute="*/15",
        id="digests",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=6 * 3600,
        next_run_time=now,  # and once at start: a worker back from a stop
    )

    def tick() -> TickReport | None:
        """A tick, unless the schema moved since the worker started. A failed statement
        said so only when the migration broke one; an additive migration left the earlier
        code running for ever. One read of alembic_version per tick, in the same job."""
        if schema_changed():
            return None
        return worker.tick()

    scheduler.add_job(
        _guarded(tick, "tick", schema_changed),
        "interval",
        seconds=interval_seconds,
        id="work-due",
        max_instances=1,  # one tick at a time in this process
        coalesce=True,  # after a stall, run once, not once per missed tick
        misfire_grace_time=6 * 3600,  # a worker back from hours asleep still ticks
        next_run_time=now,
    )
    return scheduler


def run(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT; the batches in hand are finished first."""
    with single_worker_lock(settings.DATABASE_URL):
        if settings.NEWSLETTER_METRICS_PORT is not None:
            serve_worker_metrics(settings.NEWSLETTER_METRICS_HOST, settings.NEWSLETTER_METRICS_PORT)
        worker = Worker.from_settings(settings)
        stopped: list[NewsletterError] = []
        scheduler = build_scheduler(worker, settings.NEWSLETTER_TICK_SECONDS, stopped)
        log.info(
            "worker %s ticking every %ss",
            worker.dispatcher.worker_id,
            settings.NEWSLETTER_TICK_SECONDS,
        )
        try:
            with worker.stopped_by_signals(then=lambda: scheduler.shutdown(wait=False)):
                scheduler.start()
        finally:
            worker.close()
        if stopped:
            raise stopped[0]


def run_once(settings: Settings) -> TickReport:
    """All work due now, then return: for cron, tests and the demo. SIGTERM and SIGINT stop
    it as they stop `run`."""
    with single_worker_lock(settings.DATABASE_URL):
        worker = Worker.from_settings(settings)
        try:
            with worker.stopped_by_signals():
                return worker.once()
        finally:
            worker.close()


def main(argv: list[str] | None = None) -> None:
    """`python scheduler.py [--once]` is `newsletter worker [--once]`, through the command
    line itself: a bad setting, a database not set up or not answering, and every other
    refusal are the same one line, and the exit code the same."""
    from newsletter.cli import app  # only when run so: the worker's imports stay lean

    app(["worker", *(sys.argv[1:] if argv is None else argv)], prog_name="scheduler.py")


if __name__ == "__main__":
    main()
