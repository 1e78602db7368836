"""Worker processes: several on one PostgreSQL share a send with no leader and no double
sending, even when one is killed; SQLite takes one worker and says so to a second; a send
scheduled in a timezone fires at that time and not before."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.cli.sends import parse_when
from newsletter.db import session_scope, single_worker_lock
from newsletter.devtools.sandbox import Faults
from newsletter.errors import NewsletterError
from newsletter.models import Delivery, DeliveryBatch
from newsletter.sending.plan import start_due_sends
from newsletter.sending.report import summarize_sends
from tests.workers_support import seed_send, wait_for, worker

READERS = 20_000


def test_three_workers_on_postgresql_share_a_send_and_survive_one_killed(
    engine, settings, sandbox, db_url, tmp_path
):
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers at once is a PostgreSQL setup; SQLite takes one")
    send_id = seed_send(engine, settings, READERS)
    sandbox.state.set_faults(Faults(rate_delay=1.0, delay_seconds=0.02))
    workers = [worker(db_url, sandbox.url, tmp_path, batch=200, threads=2) for _ in range(3)]
    wait_for(lambda: sandbox.state.stats.personalizations >= READERS // 3, 120, "a third sent")
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(timeout=10)

    def finished() -> bool:
        with session_scope(engine) as session:
            return summarize_sends(session=session, send_id=send_id)[0].status == "finished"

    wait_for(finished, 180, "the send to finish")
    for survivor in workers[1:]:
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0

    with session_scope(engine) as session:
        rows = session.exec(
            select(Delivery.id, Delivery.status).where(Delivery.send_id == send_id)
        ).all()
    sent = {i for i, status in rows if status == "sent"}
    unknown = {i for i, status in rows if status == "unknown"}
    assert len(sent) + len(unknown) == READERS == len(rows)
    accepted = [int(m.custom_args["delivery_id"]) for m in sandbox.messages()]
    assert len(accepted) == len(set(accepted))
    assert sent <= set(accepted) <= sent | unknown
    # Every worker did a share of the work: no leader, no idle standby.
    with session_scope(engine) as session:
        workers_seen = set(session.exec(select(DeliveryBatch.worker_id)).all())
    assert len(workers_seen) == 3


def test_a_second_worker_on_sqlite_is_refused_with_a_clear_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with single_worker_lock(url), pytest.raises(NewsletterError) as caught:  # noqa: SIM117
        with single_worker_lock(url):
            pass
    assert "is already running on the SQLite database" in str(caught.value)
    assert "use PostgreSQL to run several" in str(caught.value)


def test_the_lock_of_a_killed_sqlite_worker_does_not_outlive_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from newsletter.db import single_worker_lock\n"
            f"with single_worker_lock({url!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    with pytest.raises(NewsletterError):  # noqa: SIM117
        with single_worker_lock(url):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    with single_worker_lock(url):
        pass


def test_a_send_at_seven_in_tokyo_fires_at_seven_in_tokyo_and_not_before(engine, settings):
    at = parse_when("2026-05-20 07:00", "Asia/Tokyo")
    send_id = seed_send(engine, settings, 3, when=at)
    assert at.utcoffset() == timedelta(hours=9)
    assert start_due_sends(engine, now=at - timedelta(seconds=1)) == []
    assert start_due_sends(engine, now=at) == [send_id]


def test_a_send_time_in_new_york_follows_the_daylight_saving_change(engine, settings):
    # 7 March is standard time (UTC-5); 9 March, after the change, daylight time (UTC-4).
    assert parse_when("2026-03-07 07:00", "America/New_York").utcoffset() == timedelta(hours=-5)
    at = parse_when("2026-03-09 07:00", "America/New_York")
    send_id = seed_send(engine, settings, 3, when=at)
    eleven_utc = datetime(2026, 3, 9, 11, 0, tzinfo=UTC)
    assert start_due_sends(engine, now=eleven_utc - timedelta(seconds=1)) == []
    assert start_due_sends(engine, now=eleven_utc) == [send_id]
