"""A worker killed with SIGKILL mid-send, and another started after it: every recipient
exactly once, nobody lost. Real worker processes, the sandbox over HTTP, both databases.

Ambiguous batches (on the wire when the worker died) end as `unknown`, are counted, and are
never resent silently.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import select

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.db import session_scope
from newsletter.dispatch import create_send, summarize_sends
from newsletter.models import Delivery
from newsletter.sandbox import Faults
from subscribers.models import Subscriber, SubscriberTopic, utcnow
from subscribers.topics import add_topic
from tests.conftest import SANDBOX_KEY

FIXTURES = Path(__file__).parent / "fixtures"
READERS = 3000
BATCH = 50
THREADS = 3


def _seed_send(engine, settings) -> int:
    now = utcnow()
    with session_scope(engine) as session:
        topic = add_topic("energy", "Energy", session=session)
        session.execute(
            sa.insert(Subscriber),
            [
                {
                    "email": f"reader{i}@example.com",
                    "name": f"Reader {i}",
                    "status": "active",
                    "cadence": "immediate",
                    "timezone": "UTC",
                    "all_topics": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(READERS)
            ],
        )
        ids = session.scalars(sa.select(Subscriber.id)).all()
        session.execute(
            sa.insert(SubscriberTopic), [{"subscriber_id": i, "topic_id": topic.id} for i in ids]
        )
        slug = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["energy"]
        ).brief.slug
        return create_send(slug, session=session, settings=settings).id


def _worker(db_url: str, sandbox_url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SENDGRID_API_HOST": sandbox_url,
        "SENDGRID_API_KEY": SANDBOX_KEY,
        "NEWSLETTER_BATCH_SIZE": str(BATCH),
        "NEWSLETTER_CONCURRENCY": str(THREADS),
        "NEWSLETTER_LEASE_SECONDS": "2",
        "NEWSLETTER_TICK_SECONDS": "0.2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_worker_killed_mid_send_and_a_new_one_deliver_everyone_exactly_once(
    engine, settings, sandbox, db_url, tmp_path
):
    send_id = _seed_send(engine, settings)
    # Every answer 30 ms late, so the kill lands with batches on the wire.
    sandbox.state.set_faults(Faults(rate_delay=1.0, delay_seconds=0.03))

    doomed = _worker(db_url, sandbox.url, tmp_path)
    _wait_for(lambda: sandbox.state.stats.personalizations >= READERS // 5, 60, "a fifth sent")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)

    survivor = _worker(db_url, sandbox.url, tmp_path)

    def finished() -> bool:
        with session_scope(engine) as session:
            return summarize_sends(session=session, send_id=send_id)[0].status == "finished"

    _wait_for(finished, 90, "the send to finish")
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0, (
        survivor.stderr.read().decode() if survivor.stderr else ""
    )

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
