"""Each delivery guarantee, with a test that fails when a plausible bug is planted:

* a reader who bounces, complains, pauses or is forgotten between planning and sending is
  not mailed (the claim re-reads each reader's status);
* recording an answer touches only the rows of its own batch;
* a 429 waits until the moment `X-RateLimit-Reset` names, not that many seconds;
* an SMTP connection that drops mid-batch leaves that message unknown and requeues the rest;
* a 400 that names a recipient, or names none, costs that one recipient only.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.db import session_scope
from newsletter.devtools.sandbox import Faults
from newsletter.models import Delivery, Send
from newsletter.providers.base import Batch, BatchResult, Outcome, Recipient, make_transport
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.controls import ResolveAction, cancel_send, resolve_unknown
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher, WorkReport
from newsletter.sending.ledger import (
    begin_handoff,
    claim_batch,
    record_batch,
    recover_expired_batches,
)
from newsletter.sending.plan import start_due_sends
from subscribers.models import SubscriberStatus, utcnow
from subscribers.roster import add_subscriber, forget, get_subscriber
from subscribers.status import Actor, change_status
from subscribers.topics import add_topic
from tests.conftest import test_settings
from tests.test_transports import Mailbox, _BoundController
from tests.workers_support import seed_brief, send_status

FIXTURES = Path(__file__).parent / "fixtures"


def _send(engine, settings, slug):
    with session_scope(engine) as session:
        return create_send(slug, session=session, settings=settings).id


def _rows(engine, send_id):
    with session_scope(engine) as session:
        return list(
            session.exec(select(Delivery).where(Delivery.send_id == send_id).order_by(Delivery.id))
        )


def _statuses(engine, send_id):
    counts: dict[str, int] = {}
    for row in _rows(engine, send_id):
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def _sendgrid(engine, settings, **changes):
    settings = test_settings(**{**settings.model_dump(), **changes})
    return Dispatcher(engine, settings, SendGridTransport.from_settings(settings))


@pytest.mark.parametrize("leaves", ["bounced", "complained", "paused", "forgotten"])
def test_a_reader_who_leaves_between_planning_and_sending_is_not_mailed(
    engine, settings, sandbox, leaves
):
    slug = seed_brief(engine, 3)
    send_id = _send(engine, settings, slug)
    start_due_sends(engine, now=utcnow())  # planned: all three are in the ledger
    with session_scope(engine) as session:
        if leaves == "forgotten":
            forget("reader1@example.com", session=session)
        else:
            person = get_subscriber("reader1@example.com", session=session)
            # Who moves a reader there: the provider (bounce, spam report) or the reader.
            actor = Actor.READER if leaves == "paused" else Actor.PROVIDER
            change_status(person, SubscriberStatus(leaves), actor=actor, session=session)
    _sendgrid(engine, settings).work_due()
    assert sorted(a for m in sandbox.messages() for a in m.to) == [
        "reader0@example.com",
        "reader2@example.com",
    ]
    assert _statuses(engine, send_id) == {"sent": 2, "skipped": 1}


def _resent_meanwhile(engine, settings, readers):
    """A slow worker's batch of every reader, its lease run out mid-request, its rows
    resent by staff and claimed by another worker: (send id, the slow batch, the new one,
    the moment after)."""
    send_id = _send(engine, settings, seed_brief(engine, readers))
    now, lease = utcnow(), timedelta(seconds=30)
    start_due_sends(engine, now=now)
    first = claim_batch(
        engine, send_id=send_id, worker_id="slow", limit=readers, lease=lease, now=now
    )
    assert begin_handoff(engine, first, now=now)
    later = now + timedelta(seconds=31)
    recover_expired_batches(engine, now=later)
    with session_scope(engine) as session:
        resolve_unknown(send_id, ResolveAction.RESEND, session=session, now=later)
    second = claim_batch(
        engine, send_id=send_id, worker_id="w2", limit=readers, lease=lease, now=later
    )
    assert [t.delivery_id for t in second.targets] == [t.delivery_id for t in first.targets]
    return send_id, first, second, later


def test_a_late_answer_for_one_batch_never_touches_another_batchs_rows(engine, settings):
    send_id, first, second, later = _resent_meanwhile(engine, settings, 4)
    # Now the slow worker's answer arrives: a refusal. It must not touch the new claim.
    record_batch(
        engine, first, BatchResult(Outcome.FAILED, error="400: late"), now=later, pause_after=99
    )
    # The rows are the second batch's (a claim writes no row): still queued, untouched.
    assert {r.status for r in _rows(engine, send_id)} == {"queued"}
    assert begin_handoff(engine, second, now=later)
    record_batch(engine, second, BatchResult(Outcome.SENT), now=later, pause_after=99)
    assert {(r.status, r.batch_id) for r in _rows(engine, send_id)} == {("sent", second.batch_id)}


def test_a_late_answer_for_rows_resent_since_counts_nothing_as_sent(engine, settings):
    send_id, first, second, later = _resent_meanwhile(engine, settings, 3)
    assert begin_handoff(engine, second, now=later)
    resent = record_batch(engine, second, BatchResult(Outcome.SENT), now=later, pause_after=99)
    assert resent.rows == {"sent": 3}
    # The slow worker's own "accepted" arrives after all: the rows are the second batch's,
    # so it writes none of them, and its worker's log must not count them sent again.
    late = record_batch(engine, first, BatchResult(Outcome.SENT), now=later, pause_after=99)
    assert late.rows == {}
    assert {(r.status, r.batch_id) for r in _rows(engine, send_id)} == {("sent", second.batch_id)}


def test_a_late_answer_for_rows_resent_since_settles_nothing_in_its_workers_report(
    engine, settings
):
    _, first, second, later = _resent_meanwhile(engine, settings, 3)
    assert begin_handoff(engine, second, now=later)
    record_batch(engine, second, BatchResult(Outcome.SENT), now=later, pause_after=99)
    answer = BatchResult(Outcome.SENT)
    late = record_batch(engine, first, answer, now=later, pause_after=99)
    report = WorkReport()
    report.add(first, late, answer, stopping=False)
    assert (report.settled, report.accepted, report.rows) == (0, 0, {})


def test_a_429_waits_until_the_reset_moment_not_that_many_seconds(settings, sandbox):
    sandbox.state.set_faults(Faults(rate_429=1.0, retry_after=1))
    transport = SendGridTransport.from_settings(
        test_settings(**{**settings.model_dump(), "NEWSLETTER_MAX_RETRIES": 1})
    )
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        sandbox.state.set_faults(Faults())  # the window has passed: the retry goes through

    transport._sleep = sleep
    recipient = Recipient(1, "a@example.com", "A", {}, {})
    started = time.time()
    result = transport.send_batch(Batch(1, "s", "<p>h</p>", "t", [recipient]))
    finished = time.time()
    assert result.outcome is Outcome.SENT
    [wait] = waits
    # X-RateLimit-Reset is a moment (epoch seconds) at the next whole second of the
    # sandbox's clock, read somewhere between `started` and `finished` (on a loaded machine
    # the next second may have begun): the wait is up to that moment, plus jitter.
    assert 0 <= wait <= (int(finished) + 1 - started) + 0.3


@pytest.fixture
def dropping_mailbox():
    """An SMTP server that drops the connection once it has read bob's message."""

    class Dropping(Mailbox):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            if "bob@example.com" in envelope.rcpt_tos:
                self.messages.append(envelope)
                server.transport.close()
                return "421 closing"
            return await super().handle_DATA(server, session, envelope)

    handler = Dropping()
    controller = _BoundController(handler)
    controller.start()
    yield handler, controller.port
    controller.stop()


def test_an_smtp_connection_dropped_mid_batch_leaves_that_message_unknown_and_requeues_the_rest(
    engine, settings, dropping_mailbox
):
    handler, port = dropping_mailbox
    with session_scope(engine) as session:
        add_topic("shipping", "Shipping", session=session)
        for name in ("ann", "bob", "cy", "dee"):
            add_subscriber(f"{name}@example.com", session=session, topics=["shipping"])
        slug = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["shipping"]
        ).brief.slug
    settings = test_settings(
        **{
            **settings.model_dump(),
            "NEWSLETTER_TRANSPORT": "smtp",
            "SMTP_PORT": port,
            "NEWSLETTER_CONCURRENCY": 1,
        }
    )
    send_id = _send(engine, settings, slug)
    transport = make_transport(settings)
    dispatcher = Dispatcher(engine, settings, transport)
    start_due_sends(engine, now=utcnow())
    claim = claim_batch(
        engine, send_id=send_id, worker_id="w", limit=10, lease=timedelta(minutes=5), now=utcnow()
    )
    with session_scope(engine) as session:
        send = session.get_one(Send, send_id)
    dispatcher.hand_off(send, claim, [])
    transport.close()
    with session_scope(engine) as session:
        by_email = {
            get_subscriber(f"{n}@example.com", session=session).id: n
            for n in ("ann", "bob", "cy", "dee")
        }
    states = {by_email[r.subscriber_id]: r.status for r in _rows(engine, send_id)}
    assert states == {"ann": "sent", "bob": "unknown", "cy": "queued", "dee": "queued"}
    assert len(handler.messages) == 2  # ann's, and bob's: it did arrive, the answer did not


def test_a_400_naming_no_recipient_is_narrowed_to_the_one_who_causes_it(engine, settings, sandbox):
    slug = seed_brief(engine, 40)
    send_id = _send(engine, settings, slug)
    sandbox.state.set_faults(Faults(refuse_unnamed=["reader13@example.com"]))
    _sendgrid(engine, settings, NEWSLETTER_BATCH_SIZE=20, NEWSLETTER_CONCURRENCY=1).work_due()
    assert _statuses(engine, send_id) == {"sent": 39, "failed": 1}
    [failed] = [r for r in _rows(engine, send_id) if r.status == "failed"]
    assert "no field named" in failed.error
    delivered = [m.to[0] for m in sandbox.messages()]
    assert len(delivered) == len(set(delivered)) == 39
    assert "reader13@example.com" not in delivered


def test_bad_recipients_leading_their_batches_do_not_pause_the_send(engine, settings, sandbox):
    slug = seed_brief(engine, 30, bad_address_at=0)
    send_id = _send(engine, settings, slug)
    with session_scope(engine) as session:  # the first reader of every batch of five is bad
        for index in range(5, 30, 5):
            person = get_subscriber(f"reader{index}@example.com", session=session)
            person.email = f"reader{index}@nodot"
            session.add(person)
    dispatcher = _sendgrid(
        engine,
        settings,
        NEWSLETTER_BATCH_SIZE=5,
        NEWSLETTER_CONCURRENCY=1,
        NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES=2,
    )
    report = dispatcher.work_due()
    assert report.paused == {}
    assert _statuses(engine, send_id) == {"sent": 24, "failed": 6}


FAILED, TAKEN = BatchResult(Outcome.FAILED, error="400: refused"), BatchResult(Outcome.SENT)


def _answer_batches(engine, settings, answers, *, pause_after: int) -> str:
    """A send of one reader a batch, each batch answered in turn; the send's status."""
    send_id = _send(engine, settings, seed_brief(engine, len(answers)))
    now = utcnow()
    start_due_sends(engine, now=now)
    for answer in answers:
        claim = claim_batch(
            engine, send_id=send_id, worker_id="w", limit=1, lease=timedelta(seconds=30), now=now
        )
        assert begin_handoff(engine, claim, now=now)
        record_batch(engine, claim, answer, now=now, pause_after=pause_after)
    return send_status(engine, send_id)


def test_failed_batches_scattered_through_a_send_do_not_add_up_to_a_pause(engine, settings):
    """Five failed batches anywhere in a send paused it: a million readers, five blips."""
    assert _answer_batches(engine, settings, [FAILED, TAKEN, FAILED], pause_after=2) == "running"


def test_a_provider_failing_most_batches_still_pauses_the_send(engine, settings):
    """Each batch taken counts one failure back, not all of them: reset by every batch
    taken, a provider failing four in five never reached the limit, and each row was
    given up after its attempts."""
    answers = [FAILED, FAILED, TAKEN, FAILED, FAILED]
    assert _answer_batches(engine, settings, answers, pause_after=3) == "paused"


def _failed_batches(engine, send_id) -> int:
    with session_scope(engine) as session:
        return session.get_one(Send, send_id).failed_batches


def test_a_batch_in_flight_when_a_failure_lands_counts_it_back(engine, settings):
    """A batch taken counts a failure back as its answer comes, whenever it was claimed:
    with many batches in flight, the failures among their answers are offset by them, not
    only by batches claimed after (or a few blips across a big send would pause it)."""
    send_id = _send(engine, settings, seed_brief(engine, 3))
    now, lease = utcnow(), timedelta(seconds=30)
    start_due_sends(engine, now=now)

    def claim():
        return claim_batch(engine, send_id=send_id, worker_id="w", limit=1, lease=lease, now=now)

    first, second = claim(), claim()
    record_batch(engine, second, FAILED, now=now, pause_after=9)
    assert _failed_batches(engine, send_id) == 1
    record_batch(engine, first, TAKEN, now=now, pause_after=9)  # claimed before the failure
    assert _failed_batches(engine, send_id) == 0
    record_batch(engine, claim(), TAKEN, now=now, pause_after=9)  # none to count back
    assert _failed_batches(engine, send_id) == 0


# --- one write per ledger row per hand-off --------------------------------------------------


def _row_values(engine, send_id):
    return [
        (r.id, r.status, r.batch_id, r.attempts, r.error, r.message_id, r.updated_at)
        for r in _rows(engine, send_id)
    ]


def test_a_claim_writes_no_ledger_row_and_the_answer_writes_each_row_once(engine, settings):
    slug = seed_brief(engine, 4)
    send_id = _send(engine, settings, slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    planned = _row_values(engine, send_id)
    lease = timedelta(minutes=5)
    claim = claim_batch(engine, send_id=send_id, worker_id="w", limit=4, lease=lease, now=now)
    assert begin_handoff(engine, claim, now=now)
    assert _row_values(engine, send_id) == planned  # the claim is on the batch alone
    later = now + timedelta(seconds=1)
    record_batch(
        engine, claim, BatchResult(Outcome.SENT, message_id="m1"), now=later, pause_after=9
    )
    assert {(r.status, r.batch_id, r.attempts, r.message_id) for r in _rows(engine, send_id)} == {
        ("sent", claim.batch_id, 1, "m1")
    }


def test_a_batch_given_back_by_a_stopping_worker_costs_its_rows_no_attempt(engine, settings):
    """A stop during 429s gives the batch back (`counts_as_failure=False`): counted as an
    attempt, a worker restarted that often would mark its readers failed unsent."""
    slug = seed_brief(engine, 3)
    send_id = _send(engine, settings, slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    lease = timedelta(minutes=5)
    for _ in range(3):
        claim = claim_batch(engine, send_id=send_id, worker_id="w", limit=3, lease=lease, now=now)
        assert begin_handoff(engine, claim, now=now)
        answer = BatchResult(Outcome.RETRY_LATER, error="429: stopping")
        record_batch(
            engine, claim, answer, now=now, pause_after=9, max_attempts=2, counts_as_failure=False
        )
    assert {(r.status, r.attempts) for r in _rows(engine, send_id)} == {("queued", 0)}


def test_rows_that_use_up_their_attempts_are_reported_failed_not_queued(engine, settings):
    slug = seed_brief(engine, 3)
    send_id = _send(engine, settings, slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    lease = timedelta(minutes=5)
    claim = claim_batch(engine, send_id=send_id, worker_id="w", limit=3, lease=lease, now=now)
    assert begin_handoff(engine, claim, now=now)
    answer = BatchResult(Outcome.RETRY_LATER, error="503: later")
    recorded = record_batch(engine, claim, answer, now=now, pause_after=9, max_attempts=1)
    assert _statuses(engine, send_id) == {"failed": 3}
    assert recorded.rows == {"failed": 3} and recorded.settled == 3


def test_two_live_batches_never_share_a_row(engine, settings):
    slug = seed_brief(engine, 5)
    send_id = _send(engine, settings, slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    lease = timedelta(minutes=5)
    first = claim_batch(engine, send_id=send_id, worker_id="a", limit=3, lease=lease, now=now)
    # A second worker, with no cursor of its own, starts from the front of the queue.
    second = claim_batch(engine, send_id=send_id, worker_id="b", limit=3, lease=lease, now=now)
    assert second is not None
    ids = [t.delivery_id for t in first.targets], [t.delivery_id for t in second.targets]
    assert len(ids[0]) == 3 and len(ids[1]) == 2 and not set(ids[0]) & set(ids[1])
    assert (
        claim_batch(engine, send_id=send_id, worker_id="c", limit=3, lease=lease, now=now) is None
    )


def test_cancelling_leaves_a_batch_on_the_wire_to_its_answer(engine, settings):
    slug = seed_brief(engine, 4)
    send_id = _send(engine, settings, slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    lease = timedelta(minutes=5)
    claim = claim_batch(engine, send_id=send_id, worker_id="w", limit=2, lease=lease, now=now)
    assert begin_handoff(engine, claim, now=now)
    with session_scope(engine) as session:
        assert cancel_send(send_id, session=session, now=now) == 2  # the two not handed off
    record_batch(engine, claim, BatchResult(Outcome.SENT), now=now, pause_after=9)
    assert _statuses(engine, send_id) == {"sent": 2, "cancelled": 2}


def test_a_claimed_batch_of_a_cancelled_send_is_released_and_its_rows_cancelled(engine, settings):
    slug = seed_brief(engine, 3)
    send_id = _send(engine, settings, slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    lease = timedelta(minutes=5)
    claim = claim_batch(engine, send_id=send_id, worker_id="w", limit=3, lease=lease, now=now)
    with session_scope(engine) as session:
        assert cancel_send(send_id, session=session, now=now) == 0  # all three are claimed
    assert not begin_handoff(engine, claim, now=now)
    assert _statuses(engine, send_id) == {"cancelled": 3}
