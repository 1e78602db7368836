"""Transactional mail (confirmation, welcome) is queued by the request that calls for it and
sent by the worker: checked against the sandbox over HTTP, on both databases."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from newsletter.db import session_scope
from newsletter.devtools.sandbox import Faults
from newsletter.fields import token
from newsletter.models import MailStatus, TransactionalMail
from newsletter.providers.base import Batch, BatchResult, Outcome
from newsletter.providers.memory import MemoryTransport
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.transactional import send_queued_mail
from newsletter.sending.worker import Worker
from newsletter.signup import apply_signups, check_signup, confirm_signup, record_signup
from subscribers.models import utcnow
from subscribers.topics import add_topic


def _sign_up(engine, email="zoe@example.com", name="Zoë"):
    """The subscribe form's two halves: the web request records, the worker applies."""
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
    form = check_signup(
        engine=engine,
        email=email,
        name=name,
        topics=["energy"],
        cadence="immediate",
        timezone="UTC",
    )
    assert record_signup(engine, form, ip="127.0.0.1", now=utcnow())
    apply_signups(engine, now=utcnow())


def _statuses(engine):
    with session_scope(engine) as session:
        return session.execute(
            sa.select(TransactionalMail.kind, TransactionalMail.status).order_by(
                TransactionalMail.id
            )
        ).all()


def _tick(engine, settings, now=None):
    transport = SendGridTransport.from_settings(settings)
    return send_queued_mail(engine, settings, transport, now=now or utcnow())


def test_a_confirmation_waits_in_the_queue_until_a_worker_sends_it(engine, settings, sandbox):
    _sign_up(engine)
    assert _statuses(engine) == [("confirmation", "queued")] and sandbox.messages() == []
    report = _tick(engine, settings)
    assert report.sent == 1 and _statuses(engine) == [("confirmation", "sent")]
    assert [m.to for m in sandbox.messages()] == [["zoe@example.com"]]


def test_a_confirmation_no_longer_due_is_skipped_and_the_welcome_goes(engine, settings, sandbox):
    _sign_up(engine)
    with session_scope(engine) as session:
        subscriber_id = session.scalar(sa.select(TransactionalMail.subscriber_id))
    # The reader confirmed (from an earlier email) before the worker got to this one.
    assert confirm_signup(engine, subscriber_id, ip="")
    _tick(engine, settings)
    assert _statuses(engine) == [("confirmation", "skipped"), ("welcome", "sent")]
    assert [m.subject.split()[0] for m in sandbox.messages()] == ["Welcome"]


def test_the_welcome_greets_a_reader_by_their_name_as_they_wrote_it(engine, settings, sandbox):
    _sign_up(engine, name="O'Brien, Pat <b>&")
    with session_scope(engine) as session:
        subscriber_id = session.scalar(sa.select(TransactionalMail.subscriber_id))
    assert confirm_signup(engine, subscriber_id, ip="")
    _tick(engine, settings)
    (welcome,) = [m for m in sandbox.messages() if m.subject.startswith("Welcome")]
    assert welcome.substitutions[token("name", "text")] == "O'Brien, Pat <b>&"
    assert welcome.substitutions[token("name", "html")] == "O&#x27;Brien, Pat &lt;b&gt;&amp;"
    assert "Dear O'Brien, Pat <b>&, you are subscribed" in " ".join(welcome.text.split())


def test_a_provider_that_is_down_leaves_the_mail_queued_for_later(engine, settings, sandbox):
    _sign_up(engine)
    sandbox.state.set_faults(Faults(rate_503=1.0))
    report = _tick(engine, settings)
    assert report.retried == 1 and _statuses(engine) == [("confirmation", "queued")]
    sandbox.state.set_faults(Faults())
    assert _tick(engine, settings).sent == 0  # not yet: it waits before trying again
    assert _tick(engine, settings, now=utcnow() + timedelta(hours=1)).sent == 1
    assert len(sandbox.messages()) == 1


def test_mail_on_the_wire_when_its_worker_died_is_unknown_and_never_resent(
    engine, settings, sandbox
):
    _sign_up(engine)
    with session_scope(engine) as session:
        session.execute(
            sa.update(TransactionalMail).values(
                status=MailStatus.SENDING, lease_expires_at=utcnow() - timedelta(seconds=1)
            )
        )
    report = _tick(engine, settings)
    assert report.unknown == 1 and _statuses(engine) == [("confirmation", "unknown")]
    assert sandbox.messages() == []


def test_a_refused_address_fails_that_message_with_the_providers_words(engine, settings):
    # The memory transport scripts a per-recipient refusal that the sandbox has no switch
    # for; the queue's handling of the answer is what is under test.
    _sign_up(engine)

    def refuse(batch: Batch) -> BatchResult:
        return BatchResult(Outcome.FAILED, error="550 no such user")

    transport = MemoryTransport(answer=refuse)
    report = send_queued_mail(engine, settings, transport, now=utcnow())
    assert report.failed == 1 and transport.recipients == ["zoe@example.com"]
    with session_scope(engine) as session:
        mail = session.scalars(sa.select(TransactionalMail)).one()
    assert (mail.status, mail.error) == ("failed", "550 no such user")


def test_a_stop_finishes_the_request_in_hand_and_gives_the_rest_back(engine, settings, sandbox):
    """SIGTERM while confirmations went out one 3-second request at a time: the worker sent
    all fifty it had claimed before it stopped, minutes past systemd's stop timeout. Three
    readers of different topics: three messages that read differently, three requests."""
    _sign_up(engine, email="reader0@example.com")
    with session_scope(engine) as session:
        add_topic("water", "Water", session=session)
        add_topic("grain", "Grain", session=session)
    for n, topic in ((1, "water"), (2, "grain")):
        form = check_signup(
            engine=engine,
            email=f"reader{n}@example.com",
            name="",
            topics=[topic],
            cadence="immediate",
            timezone="UTC",
        )
        assert record_signup(engine, form, ip="127.0.0.1", now=utcnow())
    apply_signups(engine, now=utcnow())
    one_at_a_time = settings.model_copy(update={"NEWSLETTER_CONCURRENCY": 1})
    report = send_queued_mail(
        engine,
        one_at_a_time,
        SendGridTransport.from_settings(settings),
        now=utcnow(),
        stopping=lambda: len(sandbox.messages()) >= 1,  # asked to stop once one is out
    )
    assert report.sent == 1 and len(sandbox.messages()) == 1
    assert sorted(status for _, status in _statuses(engine)) == ["queued", "queued", "sent"]
    assert _tick(engine, settings).sent == 2  # back in line at once, not after a lease


def test_a_worker_asked_to_stop_sends_no_more_transactional_mail(engine, settings, sandbox):
    _sign_up(engine)
    worker = Worker.from_settings(settings)
    worker.dispatcher.request_stop()
    assert worker.tick().mail.sent == 0 and sandbox.messages() == []
    assert _statuses(engine) == [("confirmation", "queued")]
