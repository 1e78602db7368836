"""A worker killed with SIGKILL mid-send, and another started after it: every recipient
exactly once, nobody lost. Real worker processes, the sandbox over HTTP, both databases.

Ambiguous batches (on the wire when the worker died) end as `unknown`, are counted, and are
never resent silently.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from sqlmodel import select

from newsletter.db import database_heads, session_scope
from newsletter.devtools.sandbox import Faults
from newsletter.models import Delivery
from tests.conftest import SANDBOX_KEY, clean_env
from tests.workers_support import (
    seed_brief,
    seed_send,
    send_status,
    wait_for,
    worker,
    worker_log,
)

READERS = 3000
BATCH = 50
THREADS = 3


def test_a_worker_killed_mid_send_and_a_new_one_deliver_everyone_exactly_once(
    engine, settings, sandbox, db_url, tmp_path
):
    send_id = seed_send(engine, settings, READERS)
    # Every answer 30 ms late, so the kill lands with batches on the wire.
    sandbox.state.set_faults(Faults(rate_delay=1.0, delay_seconds=0.03))

    doomed = worker(db_url, sandbox.url, tmp_path, batch=BATCH, threads=THREADS)
    wait_for(lambda: sandbox.state.stats.personalizations >= READERS // 5, 60, "a fifth sent")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)

    survivor = worker(db_url, sandbox.url, tmp_path, batch=BATCH, threads=THREADS)

    wait_for(lambda: send_status(engine, send_id) == "finished", 90, "the send to finish")
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0, worker_log(survivor)

    with session_scope(engine) as session:
        rows = session.exec(
            select(Delivery.id, Delivery.status).where(Delivery.send_id == send_id)
        ).all()
    statuses = {status for _, status in rows}
    assert statuses <= {"sent", "unknown"}, statuses
    sent = {delivery_id for delivery_id, status in rows if status == "sent"}
    unknown = {delivery_id for delivery_id, status in rows if status == "unknown"}
    assert len(sent) + len(unknown) == READERS  # nobody lost
    # At most what was on the wire when the worker died is ambiguous.
    assert len(unknown) <= BATCH * THREADS
    accepted = [int(m.custom_args["delivery_id"]) for m in sandbox.messages()]
    assert len(accepted) == len(set(accepted))  # nobody twice
    assert sent <= set(accepted)  # every `sent` row really reached the provider
    assert set(accepted) <= sent | unknown


def test_a_stop_during_a_rate_limit_wait_ends_the_worker_at_once_and_loses_no_row(
    engine, settings, sandbox, db_url, tmp_path
):
    """SendGrid's 429 says when to come back, up to a minute away: SIGTERM (systemd's stop,
    a deploy) must not wait it out, or the stop timeout kills the worker with its batches
    on the wire and their readers in doubt."""
    send_id = seed_send(engine, settings, 20)
    sandbox.state.set_faults(Faults(rate_429=1.0, retry_after=60))
    process = worker(
        db_url,
        sandbox.url,
        tmp_path,
        batch=10,
        threads=2,
        NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES="1",
    )
    try:
        wait_for(lambda: sandbox.state.stats.injected.get("429", 0) >= 2, 30, "two 429s")
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, worker_log(process)
        assert time.monotonic() - stopped_at < 10
    finally:
        process.kill()
    with session_scope(engine) as session:
        statuses = set(session.exec(select(Delivery.status).where(Delivery.send_id == send_id)))
    assert statuses == {"queued"}  # back in line, for the next worker
    assert send_status(engine, send_id) == "running"  # a stop is not the provider failing


@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
    ids=["SIGTERM", "Ctrl-C", "terminal-closed"],
)
def test_a_worker_run_once_from_cron_stops_as_a_service_does_and_leaves_nobody_in_doubt(
    engine, settings, sandbox, db_url, tmp_path, signum
):
    """`worker --once` had no handler: SIGTERM killed it with batches on the wire (their
    readers `unknown`), and Ctrl-C waited until every reader had been sent."""
    send_id = seed_send(engine, settings, READERS)
    sandbox.state.set_faults(Faults(rate_delay=1.0, delay_seconds=0.03))
    process = worker(db_url, sandbox.url, tmp_path, batch=BATCH, threads=THREADS, once=True)
    try:
        wait_for(lambda: sandbox.state.stats.personalizations >= READERS // 5, 60, "a fifth sent")
        process.send_signal(signum)
        process.wait(timeout=15)
    finally:
        process.kill()
    assert "Traceback" not in worker_log(process), worker_log(process)
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery.status).where(Delivery.send_id == send_id)).all()
    assert set(rows) == {"sent", "queued"}  # the rest wait in line; none in doubt
    assert len(sandbox.messages()) == rows.count("sent") < READERS


def test_ctrl_c_on_a_send_in_the_foreground_stops_it_with_the_rest_queued(
    engine, sandbox, db_url, tmp_path
):
    """`send --now --foreground` ignored Ctrl-C until every reader had been sent."""
    slug = seed_brief(engine, READERS)
    sandbox.state.set_faults(Faults(rate_delay=1.0, delay_seconds=0.03))
    env = clean_env(
        DATABASE_URL=db_url,
        SENDGRID_API_HOST=sandbox.url,
        SENDGRID_API_KEY=SANDBOX_KEY,
        NEWSLETTER_BATCH_SIZE=str(BATCH),
        NEWSLETTER_CONCURRENCY=str(THREADS),
    )
    command = [sys.executable, "-m", "newsletter", "send", slug, "--now", "--foreground"]
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: sandbox.state.stats.personalizations >= READERS // 5, 60, "a fifth sent")
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=15)[0].decode(errors="replace")
    finally:
        process.kill()
    assert "Traceback" not in output, output
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery.status)).all()
    assert set(rows) == {"sent", "queued"} and rows.count("sent") < READERS


@pytest.mark.parametrize(
    ("migration", "revision"),
    [
        # A column it reads gone: it failed every tick with a traceback and stayed up, so
        # systemd saw nothing wrong.
        ("ALTER TABLE send RENAME COLUMN local_time TO wave_time", "0099"),
        # A column added fails none of its statements: it ran the earlier code on for ever.
        # Each tick now reads alembic_version first.
        ("ALTER TABLE send ADD COLUMN wave_time VARCHAR(5)", "0098"),
    ],
    ids=["breaking", "additive"],
)
def test_a_worker_whose_schema_a_newer_version_migrated_stops_saying_so(
    engine, sandbox, db_url, tmp_path, migration, revision
):
    process = worker(db_url, sandbox.url, tmp_path, batch=BATCH, threads=1)
    try:
        wait_for(lambda: "ticking every" in worker_log(process), 30, "the worker to start")
        [started] = database_heads(engine)
        with engine.begin() as connection:  # what a newer version's migration does, at once
            connection.execute(sa.text(migration))
            connection.execute(
                sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision}
            )
        code = process.wait(timeout=30)
    finally:
        process.kill()
    log = worker_log(process)
    assert code == 78, log
    assert "Traceback" not in log and "migrations moved under this worker" in log
    assert f"it started at {started}; the database is now at {revision}" in log
