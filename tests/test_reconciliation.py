"""Crash reconciliation end to end, on PostgreSQL: real worker processes are SIGKILLed at
random moments of a large send, ten times; the sandbox posts its signed `processed` and
`delivered` events for everything it accepted to the web app's webhook, as SendGrid does;
those settle the deliveries the dead workers could not record; `sends resolve --resend`
then resends only what was never accepted. Nobody gets it twice, nobody misses it.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.devtools.sandbox import Faults
from newsletter.models import Delivery, DeliveryBatch
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.controls import ResolveAction, resolve_unknown
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.ledger.keys import decode, ids_of
from subscribers.models import utcnow
from tests.workers_support import seed_send, send_status, wait_for, worker, worker_log

READERS = 3000
BATCH = 40
THREADS = 2
KILLS = 10


def _statuses(engine, send_id) -> dict[int, str]:
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery.id, Delivery.status).where(Delivery.send_id == send_id))
        return {delivery_id: status for delivery_id, status in rows.all()}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_workers_killed_at_random_ten_times_then_events_and_resolve_leave_no_duplicate_and_no_miss(
    engine, web, sandbox, db_url, tmp_path
):
    url, settings = web
    sandbox.send_events_to(f"{url}/webhooks/sendgrid")
    send_id = seed_send(engine, settings, READERS)
    # Every answer 150 ms late: kills land while requests are on the wire.
    sandbox.state.set_faults(Faults(rate_delay=1.0, delay_seconds=0.15))
    chance = random.Random(12)

    for kill in range(KILLS):
        before = sandbox.state.stats.personalizations
        doomed = worker(db_url, sandbox.url, tmp_path, batch=BATCH, threads=THREADS)
        wait_for(
            lambda before=before: sandbox.state.stats.personalizations > before,
            60,
            f"worker {kill} to send",
        )
        time.sleep(chance.uniform(0, 0.4))
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    assert sandbox.state.stats.personalizations < READERS, "the kills came too late to matter"

    survivor = worker(db_url, sandbox.url, tmp_path, batch=BATCH, threads=THREADS)

    wait_for(lambda: send_status(engine, send_id) == "finished", 90, "the send to finish")
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0, worker_log(survivor)

    # SendGrid's events arrive: everything the sandbox accepted is settled as sent.
    wait_for(lambda: sandbox.state.events.waiting == 0, 60, "the events to be posted")
    accepted = {int(m.custom_args["delivery_id"]) for m in sandbox.messages()}
    wait_for(
        lambda: all(
            status == "sent" for i, status in _statuses(engine, send_id).items() if i in accepted
        ),
        60,
        "the events to settle what was accepted",
    )
    rows = _statuses(engine, send_id)
    with session_scope(engine) as session:
        # Rows of batches a dead worker left on the wire that the sandbox did accept: only
        # the events could tell (resending them would have given a second copy).
        # (A claim is recorded on its batch, as id ranges: the batch's `keys`.)
        abandoned = session.exec(
            select(DeliveryBatch.keys).where(
                DeliveryBatch.send_id == send_id, DeliveryBatch.status == "abandoned"
            )
        ).all()
    settled_by_events = {i for text in abandoned for i in ids_of(decode(text))}
    assert settled_by_events & accepted
    unknown = {i for i, status in rows.items() if status == "unknown"}
    assert not unknown & accepted  # what is still unknown was never accepted
    assert set(rows.values()) <= {"sent", "unknown"}

    # What is left was never accepted: resending it is safe.
    with session_scope(engine) as session:
        resolve_unknown(send_id, ResolveAction.RESEND, session=session, now=utcnow())
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()

    delivered = [int(m.custom_args["delivery_id"]) for m in sandbox.messages()]
    assert sandbox.state.stats.duplicate_deliveries == 0
    assert len(delivered) == len(set(delivered))  # 0 duplicates
    assert set(delivered) == set(rows)  # 0 missing
    assert len(rows) == READERS
    assert set(_statuses(engine, send_id).values()) == {"sent"}
