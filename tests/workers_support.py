"""Helpers for the tests that run real worker processes."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.db import session_scope
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.create import create_send
from newsletter.sending.report import summarize_sends
from newsletter.sending.transactional import send_queued_mail
from newsletter.signup import apply_signups
from subscribers.models import Subscriber, SubscriberTopic, utcnow
from subscribers.topics import add_topic
from tests.conftest import SANDBOX_KEY, clean_env

FIXTURES = Path(__file__).parent / "fixtures"
_worker_numbers = itertools.count(1)


def deliver_mail(engine, settings) -> None:
    """What a worker does on its next tick: apply sign-ups, send the queued transactional
    mail."""
    apply_signups(engine, now=utcnow())
    send_queued_mail(engine, settings, SendGridTransport.from_settings(settings), now=utcnow())


def seed_brief(engine, readers: int, *, bad_address_at: int | None = None) -> str:
    """`readers` active subscribers on one topic, bulk-inserted, and a brief on that topic;
    returns the brief's slug. `bad_address_at` plants an address SendGrid refuses (as a row
    from before validation would be)."""
    now = utcnow()
    with session_scope(engine) as session:
        topic = add_topic("energy", "Energy", session=session)
        session.execute(
            sa.insert(Subscriber),
            [
                {
                    "email": f"reader{i}@example.com" if i != bad_address_at else "reader@nodot",
                    "name": f"Reader {i}",
                    "status": "active",
                    "cadence": "immediate",
                    "timezone": "UTC",
                    "all_topics": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(readers)
            ],
        )
        ids = session.scalars(sa.select(Subscriber.id)).all()
        session.execute(
            sa.insert(SubscriberTopic), [{"subscriber_id": i, "topic_id": topic.id} for i in ids]
        )
        return add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["energy"]
        ).brief.slug


def seed_send(engine, settings, readers: int, *, when: datetime | None = None) -> int:
    """`seed_brief`, then a send of it, made a day before `when`; the send's id."""
    slug = seed_brief(engine, readers)
    made = when - timedelta(days=1) if when else None
    with session_scope(engine) as session:
        return create_send(slug, session=session, settings=settings, when=when, now=made).id


def worker(
    db_url: str,
    sandbox_url: str,
    tmp_path: Path,
    *,
    batch: int,
    threads: int,
    once: bool = False,
    **more_env: str,
) -> subprocess.Popen[bytes]:
    """A real `newsletter worker` process, with short leases so a dead one's batches come
    back within seconds. Its log goes to a file (`worker_log`) for a failing test to show."""
    env = clean_env(
        DATABASE_URL=db_url,
        SENDGRID_API_HOST=sandbox_url,
        SENDGRID_API_KEY=SANDBOX_KEY,
        NEWSLETTER_BATCH_SIZE=str(batch),
        NEWSLETTER_CONCURRENCY=str(threads),
        NEWSLETTER_LEASE_SECONDS="2",
        NEWSLETTER_TICK_SECONDS="0.2",
        **more_env,
    )
    log = tmp_path / f"worker-{next(_worker_numbers)}.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "worker", *(["--once"] if once else [])],
            env=env,
            cwd=tmp_path,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    process.log_path = log  # type: ignore[attr-defined]
    return process


def worker_log(process: subprocess.Popen[bytes]) -> str:
    """What a `worker()` process wrote, for an assertion's message."""
    path: Path = process.log_path  # type: ignore[attr-defined]
    return path.read_text(errors="replace")


def send_status(engine, send_id: int) -> str:
    with session_scope(engine) as session:
        return summarize_sends(session=session, send_id=send_id)[0].status


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
