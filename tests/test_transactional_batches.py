"""Transactional mail goes as a brief does: readers whose message reads alike share one
request, each with their own links. Checked against the sandbox over HTTP with the real
SendGrid client, on both databases."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.db import session_scope
from newsletter.devtools.faults import Faults
from newsletter.links import Links
from newsletter.models import MailKind, MailStatus, TransactionalMail
from newsletter.providers.base import Batch, BatchResult, Outcome, RecipientResult
from newsletter.providers.memory import MemoryTransport
from newsletter.providers.outbox import OutboxTransport
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.readers.importing import import_readers
from newsletter.sending.mail_batches import prepare
from newsletter.sending.mail_ledger import recover as recover_mail
from newsletter.sending.transactional import MAX_REQUESTS, queue_mail, send_queued_mail
from newsletter.sending.worker import TickReport, Worker
from newsletter.signup import confirm_signup
from subscribers.models import Subscriber, utcnow
from subscribers.topics import add_topic

HEADER = "email,name,topics,cadence,timezone\n"


@pytest.fixture
def engine_with_topics(engine):
    with session_scope(engine) as session:
        for name in ("energy", "water", "grain"):
            add_topic(name, name.title(), session=session)
    return engine


def _import_pending(engine, tmp_path, rows: str) -> None:
    """Staff import readers who must confirm: each is queued a confirmation."""
    path = tmp_path / "list.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    with session_scope(engine) as session:
        outcome = import_readers(
            path, session=session, default_timezone="UTC", require_confirmation=True
        )
    assert outcome.confirmations == rows.count("\n")


def _tick(engine, settings, transport=None):
    transport = transport or SendGridTransport.from_settings(settings)
    return send_queued_mail(engine, settings, transport, now=utcnow() + timedelta(seconds=1))


def _ids_by_email(engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return dict(session.execute(sa.select(Subscriber.email, Subscriber.id)).all())


def _statuses(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return dict(
            session.execute(
                sa.select(Subscriber.email, TransactionalMail.status).join(
                    Subscriber, Subscriber.id == TransactionalMail.subscriber_id
                )
            ).all()
        )


def test_readers_alike_get_their_confirmations_in_one_request(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "".join(f"r{n}@example.com,Reader {n},energy,,\n" for n in range(7))
    _import_pending(engine_with_topics, tmp_path, rows)
    report = _tick(engine_with_topics, settings)
    assert report.sent == 7 and sandbox.state.stats.accepted_requests == 1
    assert sorted(m.to[0] for m in sandbox.messages()) == sorted(
        f"r{n}@example.com" for n in range(7)
    )


def test_each_reader_of_a_shared_request_gets_their_own_confirm_link(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "".join(f"r{n}@example.com,Reader {n},energy,,\n" for n in range(4))
    _import_pending(engine_with_topics, tmp_path, rows)
    _tick(engine_with_topics, settings)
    links, ids = Links.from_settings(settings), _ids_by_email(engine_with_topics)
    for message in sandbox.messages():
        (token,) = re.findall(r"https://news\.example\.com/confirm/(\S+)", message.text)
        assert links.confirmed_subscriber(token) == ids[message.to[0]]


def test_readers_of_different_topics_each_get_a_confirmation_naming_their_own(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "w@example.com,W,water,,\ng@example.com,G,grain,,\nw2@example.com,W,water,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    assert _tick(engine_with_topics, settings).sent == 3
    assert sandbox.state.stats.accepted_requests == 2
    for message in sandbox.messages():
        mine, other = ("Water", "Grain") if message.to[0].startswith("w") else ("Grain", "Water")
        assert mine in message.text and other not in message.text


def test_a_refused_reader_fails_alone_and_the_rest_of_the_request_is_sent(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "".join(f"r{n}@example.com,R,energy,,\n" for n in range(5))
    _import_pending(engine_with_topics, tmp_path, rows)
    sandbox.state.set_faults(Faults(refuse_unnamed=["r3@example.com"]))
    report = _tick(engine_with_topics, settings)
    assert (report.sent, report.failed) == (4, 1)
    statuses = _statuses(engine_with_topics)
    assert statuses.pop("r3@example.com") == MailStatus.FAILED
    assert set(statuses.values()) == {MailStatus.SENT}
    assert "r3@example.com" not in [m.to[0] for m in sandbox.messages()]


def test_a_provider_that_is_down_puts_the_whole_request_back_in_the_queue(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "".join(f"r{n}@example.com,R,energy,,\n" for n in range(3))
    _import_pending(engine_with_topics, tmp_path, rows)
    sandbox.state.set_faults(Faults(rate_503=1.0))
    assert _tick(engine_with_topics, settings).retried == 3
    assert set(_statuses(engine_with_topics).values()) == {MailStatus.QUEUED}
    sandbox.state.set_faults(Faults())
    later = utcnow() + timedelta(hours=2)
    transport = SendGridTransport.from_settings(settings)
    assert send_queued_mail(engine_with_topics, settings, transport, now=later).sent == 3
    assert len(sandbox.messages()) == 3


def test_a_reader_who_left_meanwhile_is_skipped_and_the_others_sent(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "a@example.com,A,energy,,\nb@example.com,B,energy,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    assert confirm_signup(
        engine_with_topics, _ids_by_email(engine_with_topics)["a@example.com"], ip=""
    )
    report = _tick(engine_with_topics, settings)
    assert (report.sent, report.skipped) == (2, 1)  # b's confirmation and a's welcome
    assert sorted((m.to[0], m.categories[0]) for m in sandbox.messages()) == [
        ("a@example.com", MailKind.WELCOME),
        ("b@example.com", MailKind.CONFIRMATION),
    ]


def test_what_a_ticks_requests_cannot_carry_is_given_back_for_the_next(
    engine_with_topics, tmp_path, settings
):
    rows = "w@example.com,W,water,,\ng@example.com,G,grain,,\ne@example.com,E,energy,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    with session_scope(engine_with_topics) as session:
        newest_first = list(
            session.scalars(sa.select(TransactionalMail.id).order_by(TransactionalMail.id.desc()))
        )
    prepared = prepare(
        engine_with_topics,
        newest_first,
        settings,
        Links.from_settings(settings),
        batch_size=1000,
        max_requests=2,
    )
    assert [len(b.recipients) for b in prepared.batches] == [1, 1]
    assert [r.delivery_id for b in prepared.batches for r in b.recipients] == newest_first[:2]
    assert prepared.left_over == newest_first[2:]


def test_a_tick_makes_at_most_max_requests_and_the_rest_go_at_the_next(
    engine, tmp_path, settings, sandbox
):
    """Every reader of a topic of their own: each confirmation reads differently."""
    readers = MAX_REQUESTS + 3
    with session_scope(engine) as session:
        for n in range(readers):
            add_topic(f"t{n}", f"Topic {n}", session=session)
    _import_pending(
        engine, tmp_path, "".join(f"r{n}@example.com,R,t{n},,\n" for n in range(readers))
    )
    first = _tick(engine, settings)
    assert (first.sent, first.waiting) == (MAX_REQUESTS, 3)
    assert _tick(engine, settings).sent == 3  # given back at once, not after their lease
    assert sandbox.state.stats.accepted_requests == readers


def test_a_request_carries_no_more_readers_than_the_provider_takes(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "".join(f"r{n}@example.com,R,energy,,\n" for n in range(5))
    _import_pending(engine_with_topics, tmp_path, rows)
    transport = SendGridTransport.from_settings(settings)
    transport.max_batch_size = 2
    assert _tick(engine_with_topics, settings, transport).sent == 5
    assert sandbox.state.stats.accepted_requests == 3


def test_the_outbox_keeps_every_confirmation_and_welcome_in_a_file_of_its_own(
    engine_with_topics, tmp_path, settings
):
    """Under `send-0`, every one was `0.eml`: each overwrote the one before."""
    rows = "a@example.com,A,energy,,\nb@example.com,B,water,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    assert confirm_signup(
        engine_with_topics, _ids_by_email(engine_with_topics)["a@example.com"], ip=""
    )
    outbox = OutboxTransport(directory=tmp_path / "outbox", from_header="News <n@example.com>")
    assert _tick(engine_with_topics, settings, outbox).sent == 2
    written = sorted((tmp_path / "outbox").rglob("*.eml"))
    assert len(written) == 2
    assert sorted(p.read_text().split("\nTo: ")[1].split("\n")[0] for p in written) == [
        "A <a@example.com>",
        "B <b@example.com>",
    ]


def test_an_event_for_a_confirmation_is_never_taken_for_a_briefs_delivery(
    engine_with_topics, tmp_path, settings, sandbox
):
    """Its row id travels as `mail_id`; as `delivery_id`, SendGrid's events for it would
    name whatever delivery of a brief has the same number."""
    _import_pending(engine_with_topics, tmp_path, "a@example.com,A,energy,,\n")
    _tick(engine_with_topics, settings)
    (message,) = sandbox.messages()
    assert "delivery_id" not in message.custom_args
    with session_scope(engine_with_topics) as session:
        mail_id = session.scalar(sa.select(TransactionalMail.id))
    assert message.custom_args == {"mail_id": str(mail_id), "send_id": "0"}


def test_worker_once_says_how_many_messages_it_left_queued(
    engine_with_topics, tmp_path, settings, sandbox, caplog
):
    """`worker --once` from cron sent its share and said nothing of the rest."""
    rows = "".join(f"r{n}@example.com,R,energy,,\n" for n in range(MAX_REQUESTS + 3))
    _import_pending(engine_with_topics, tmp_path, rows)
    worker = Worker.from_settings(settings)
    worker.transport.max_batch_size = 1  # one reader a request: a tick takes MAX_REQUESTS
    try:
        with caplog.at_level(logging.INFO, logger="newsletter"):
            worker.once()
    finally:
        worker.close()
    assert f"{MAX_REQUESTS} sent, 0 failed, 0 to retry, 0 skipped; 3 still queued" in caplog.text


def _mails(engine) -> dict[str, tuple[str, int]]:
    """Address → (status, attempts) of its message."""
    with session_scope(engine) as session:
        return {
            email: (status, attempts)
            for email, status, attempts in session.execute(
                sa.select(
                    Subscriber.email, TransactionalMail.status, TransactionalMail.attempts
                ).join(Subscriber, Subscriber.id == TransactionalMail.subscriber_id)
            ).all()
        }


def test_a_key_refused_after_part_of_a_split_request_went_keeps_that_part_sent(
    engine_with_topics, tmp_path, settings
):
    """The SendGrid transport splits a request around a 400 naming no recipient, and the
    key may be refused (401) after an earlier part was accepted: its answer is then fatal,
    with the accepted readers as SENT exceptions. Those went back in line and were sent
    twice. The memory transport gives that answer: the sandbox cannot revoke a key
    between the parts of one split request."""
    rows = "".join(f"r{n}@example.com,R,energy,,\n" for n in range(4))
    _import_pending(engine_with_topics, tmp_path, rows)

    def accepted_then_refused(batch: Batch) -> BatchResult:
        first = batch.recipients[0]
        return BatchResult(
            Outcome.FAILED,
            error="401: The provided authorization grant is invalid",
            fatal=True,
            exceptions={first.delivery_id: RecipientResult(Outcome.SENT, message_id="m1")},
        )

    report = _tick(engine_with_topics, settings, MemoryTransport(answer=accepted_then_refused))
    assert (report.sent, report.retried) == (1, 3)
    assert sorted(status for status, _ in _mails(engine_with_topics).values()) == [
        MailStatus.QUEUED,
        MailStatus.QUEUED,
        MailStatus.QUEUED,
        MailStatus.SENT,
    ]


def test_a_refused_key_stops_the_tick_and_gives_the_rest_back_untried(
    engine_with_topics, tmp_path, settings
):
    rows = "w@example.com,W,water,,\ng@example.com,G,grain,,\ne@example.com,E,energy,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    transport = MemoryTransport(
        answer=lambda batch: BatchResult(Outcome.FAILED, error="401: refused", fatal=True)
    )
    one_at_a_time = settings.model_copy(update={"NEWSLETTER_CONCURRENCY": 1})
    report = _tick(engine_with_topics, one_at_a_time, transport)
    assert len(transport.batches) == 1 and report.retried == 1
    untried = [m for m in _mails(engine_with_topics).values() if m[1] == 0]
    assert untried == [(MailStatus.QUEUED, 0), (MailStatus.QUEUED, 0)]


def test_a_refused_key_stops_requests_not_yet_begun_when_several_go_at_once(
    engine_with_topics, tmp_path, settings
):
    """Two threads: the two requests in flight are refused; the third never goes."""
    rows = "w@example.com,W,water,,\ng@example.com,G,grain,,\ne@example.com,E,energy,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    both_in_flight = threading.Barrier(2, timeout=10)

    def refused(batch):
        both_in_flight.wait()
        return BatchResult(Outcome.FAILED, error="401: refused", fatal=True)

    transport = MemoryTransport(answer=refused)
    two = settings.model_copy(update={"NEWSLETTER_CONCURRENCY": 2})
    report = _tick(engine_with_topics, two, transport)
    assert len(transport.batches) == 2 and report.retried == 2
    assert sorted(_mails(engine_with_topics).values()) == [
        (MailStatus.QUEUED, 0),
        (MailStatus.QUEUED, 1),
        (MailStatus.QUEUED, 1),
    ]


def test_a_request_that_fails_in_a_thread_sends_the_ticks_rest_back_in_line(
    engine_with_topics, tmp_path, settings
):
    """A fault that fails one request (a transport bug, a locked database) would fail them
    all: with the requests in threads, every one went on the wire and ended `unknown`."""
    rows = "w@example.com,W,water,,\ng@example.com,G,grain,,\ne@example.com,E,energy,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)

    def broken(batch):
        raise RuntimeError("a transport bug")

    one_at_a_time = settings.model_copy(update={"NEWSLETTER_CONCURRENCY": 1})
    with pytest.raises(RuntimeError, match="a transport bug"):
        _tick(engine_with_topics, one_at_a_time, MemoryTransport(answer=broken))
    assert sorted(_mails(engine_with_topics).values()) == [
        (MailStatus.QUEUED, 0),
        (MailStatus.QUEUED, 0),
        (MailStatus.SENDING, 1),  # it may have gone: unknown when its lease runs out
    ]


def test_a_ticks_requests_go_at_once_up_to_the_workers_concurrency(
    engine_with_topics, tmp_path, settings
):
    """One after another, fifty requests to a provider 300 ms away took fifteen seconds.
    Three readers of different topics: three requests, which meet at a barrier only if
    they are in flight together (one at a time, the first would wait out its timeout)."""
    rows = "w@example.com,W,water,,\ng@example.com,G,grain,,\ne@example.com,E,energy,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    all_in_flight = threading.Barrier(3, timeout=10)

    def accepted_together(batch):
        try:
            all_in_flight.wait()
        except threading.BrokenBarrierError:
            return BatchResult(Outcome.RETRY_LATER, error="not in flight together")
        return BatchResult(Outcome.SENT, message_id="memory")

    transport = MemoryTransport(answer=accepted_together)
    three = settings.model_copy(update={"NEWSLETTER_CONCURRENCY": 3})
    report = _tick(engine_with_topics, three, transport)
    assert len(transport.batches) == 3 and report.sent == 3 and report.retried == 0


def test_the_same_confirmation_queued_twice_goes_once_and_the_other_is_skipped(
    engine_with_topics, tmp_path, settings, sandbox
):
    """Asked for again before the first went: both landed in one request, which SendGrid
    refuses for naming an address twice, and the second was marked failed."""
    _import_pending(engine_with_topics, tmp_path, "ann@example.com,Ann,energy,,\n")
    with session_scope(engine_with_topics) as session:
        ann = session.scalar(sa.select(Subscriber.id))
        queue_mail(session, MailKind.CONFIRMATION, ann, now=utcnow())
    report = _tick(engine_with_topics, settings)
    assert (report.sent, report.skipped, report.failed) == (1, 1, 0)
    assert [m.to for m in sandbox.messages()] == [["ann@example.com"]]


def test_each_request_takes_a_lease_of_its_own(engine_with_topics, tmp_path, settings):
    """An SMTP server takes a claim's messages one at a time: the requests after the first
    ran on what was left of the claim's lease, and another worker's recovery found them
    expired mid-request and marked them unknown. The memory transport's answer stands in
    for a slow server, and runs the other worker's recovery at the second request."""
    rows = "w@example.com,W,water,,\ng@example.com,G,grain,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    quick = settings.model_copy(update={"NEWSLETTER_LEASE_SECONDS": 1.0})
    calls = []

    def slow_then_recovered(batch: Batch) -> BatchResult:
        calls.append(batch)
        if len(calls) == 1:
            time.sleep(1.2)
        else:
            assert recover_mail(engine_with_topics, utcnow() + timedelta(seconds=1)) == 0
        return BatchResult(Outcome.SENT, message_id="m")

    report = _tick(engine_with_topics, quick, MemoryTransport(answer=slow_then_recovered))
    assert report.sent == 2 and len(calls) == 2


def test_the_rate_limit_is_waited_for_before_each_request_and_a_stop_then_sends_nothing(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "w@example.com,W,water,,\ng@example.com,G,grain,,\nw2@example.com,W,water,,\n"
    _import_pending(engine_with_topics, tmp_path, rows)
    asked: list[int] = []

    def stop_at_the_second(messages: int) -> bool:
        asked.append(messages)
        return len(asked) == 2

    transport = SendGridTransport.from_settings(settings)
    report = send_queued_mail(
        engine_with_topics,
        settings,
        transport,
        now=utcnow() + timedelta(seconds=1),
        pace=stop_at_the_second,
    )
    # Newest first: w2's look (water, with w), then g's; the stop came before g's.
    assert asked == [2, 1] and (report.sent, report.waiting) == (2, 1)
    assert sorted(m.to[0] for m in sandbox.messages()) == ["w2@example.com", "w@example.com"]
    assert MailStatus.CLAIMED not in {s for s, _ in _mails(engine_with_topics).values()}


def test_the_worker_paces_its_mail_by_the_rate_limit_it_paces_sends_by(
    engine_with_topics, tmp_path, settings, sandbox
):
    _import_pending(engine_with_topics, tmp_path, "a@example.com,A,energy,,\n")
    worker = Worker.from_settings(settings)
    asked: list[int] = []
    worker.dispatcher.pace = lambda messages: bool(asked.append(messages))  # type: ignore[method-assign]
    try:
        assert worker.tick().mail.sent == 1
    finally:
        worker.close()
    assert asked == [1]


def test_a_request_carries_no_more_readers_than_newsletter_batch_size(
    engine_with_topics, tmp_path, settings, sandbox
):
    rows = "".join(f"r{n}@example.com,R,energy,,\n" for n in range(5))
    _import_pending(engine_with_topics, tmp_path, rows)
    small = settings.model_copy(update={"NEWSLETTER_BATCH_SIZE": 2})
    assert _tick(engine_with_topics, small).sent == 5
    assert sandbox.state.stats.accepted_requests == 3


def test_a_reader_of_every_topic_is_told_so_and_one_of_some_topics_their_own(
    engine_with_topics, tmp_path, settings, sandbox
):
    """A reader of everything was told the briefs would go "to" their address and nothing
    about which: the list of topics was empty."""
    _import_pending(
        engine_with_topics, tmp_path, "a@example.com,A,all,,\nb@example.com,B,water,,\n"
    )
    _tick(engine_with_topics, settings)
    said = {m.to[0]: " ".join(m.text.split()) for m in sandbox.messages()}
    assert "briefs on every topic to:" in said["a@example.com"]
    assert "briefs on Water to:" in said["b@example.com"]
    with session_scope(engine_with_topics) as session:
        ann = session.scalar(sa.select(Subscriber.id).where(Subscriber.email == "a@example.com"))
    assert confirm_signup(engine_with_topics, ann, ip="")
    _tick(engine_with_topics, settings)
    (welcome,) = [m for m in sandbox.messages() if m.categories == [MailKind.WELCOME]]
    assert "you are subscribed to every topic." in " ".join(welcome.text.split())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_workers_draining_one_backlog_at_once_send_each_confirmation_once(
    engine_with_topics, tmp_path, settings, sandbox
):
    """Three workers' ticks at once over an import's confirmations, twenty readers a
    request so there are many claims. Two guards stand between them and a double send:
    claims skip what another holds (SKIP LOCKED), and a message goes on the wire only by
    a compare-and-set from `claimed`. Either alone keeps this test green; planting both
    (no lock, a set that also takes `sending`) fails it."""
    readers = 600
    topics = ("energy", "water", "grain")
    rows = "".join(f"r{n}@example.com,R,{topics[n % 3]},,\n" for n in range(readers))
    _import_pending(engine_with_topics, tmp_path, rows)
    small = settings.model_copy(update={"NEWSLETTER_BATCH_SIZE": 20})
    sent: list[int] = []

    def worker() -> None:
        transport = SendGridTransport.from_settings(small)
        for _ in range(20):
            report = send_queued_mail(engine_with_topics, small, transport, now=utcnow())
            sent.append(report.sent)
            if not report.waiting:
                return

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    addresses = [m.to[0] for m in sandbox.messages()]
    assert len(addresses) == len(set(addresses)) == readers == sum(sent)
    assert set(_mails(engine_with_topics).values()) == {(MailStatus.SENT, 1)}


def test_confirmations_a_stopped_worker_left_on_the_wire_are_logged_as_unknown(
    engine_with_topics, tmp_path, settings, caplog
):
    """Recovered as unknown, they were said nowhere: the tick's line counted them sent,
    failed or retried, never unknown, and a reader whose confirmation never left stayed
    pending unseen."""
    _import_pending(engine_with_topics, tmp_path, "ann@example.com,Ann,energy,,\n")
    with session_scope(engine_with_topics) as session:  # as a worker killed mid-request left it
        session.execute(
            sa.update(TransactionalMail).values(
                status=MailStatus.SENDING, lease_expires_at=utcnow() - timedelta(minutes=1)
            )
        )
    caplog.set_level(logging.INFO, logger="newsletter")
    TickReport(mail=_tick(engine_with_topics, settings)).log()
    [line] = [r for r in caplog.records if "unknown" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("1 confirmation or welcome email left unknown: a worker")
