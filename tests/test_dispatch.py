"""Dispatch: every matching subscriber gets the brief exactly once, through the real
`sendgrid` client and the sandbox, with the ledger as the only truth."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.links import LINK_TOKEN_PURPOSE
from newsletter.models import Delivery, Send
from newsletter.providers.base import Batch, BatchResult, Outcome
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.controls import ResolveAction, cancel_send, resolve_unknown
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.ledger import (
    begin_handoff,
    claim_batch,
    record_batch,
    recover_expired_batches,
)
from newsletter.sending.plan import plan_deliveries, start_due_sends
from newsletter.sending.report import summarize_sends
from subscribers.models import utcnow
from subscribers.roster import add_subscriber, unsubscribe
from subscribers.tokens import TokenSigner
from subscribers.topics import add_topic
from tests.conftest import test_settings
from tests.workers_support import seed_brief

FIXTURES = Path(__file__).parent / "fixtures"
READERS = {  # email → topics
    "ann@example.com": ["shipping"],
    "bob@example.com": ["trade"],
    "cy@example.com": ["all"],
    "dee@example.com": ["shipping", "trade"],
    "eve@example.com": ["food"],  # not on the brief's topics
}
EXPECTED = {"ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com"}


@pytest.fixture
def brief_slug(engine):
    with session_scope(engine) as session:
        for slug in ("shipping", "trade", "food"):
            add_topic(slug, slug.title(), session=session)
        for email, topics in READERS.items():
            add_subscriber(email, session=session, name=email.split("@")[0].title(), topics=topics)
        added = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"),
            session=session,
            topics=["shipping", "trade"],
        )
        return added.brief.slug


def _dispatcher(engine, settings, **changes):
    settings = test_settings(**{**settings.model_dump(), **changes})
    return Dispatcher(engine, settings, SendGridTransport.from_settings(settings))


def _new_send(engine, settings, slug, when=None):
    with session_scope(engine) as session:
        return create_send(slug, session=session, settings=settings, when=when).id


def _ledger(engine, send_id):
    with session_scope(engine) as session:
        return list(
            session.exec(select(Delivery).where(Delivery.send_id == send_id).order_by(Delivery.id))
        )


def _recipients(sandbox):
    return sorted(address for message in sandbox.messages() for address in message.to)


def test_a_send_reaches_each_matching_subscriber_exactly_once(
    engine, settings, sandbox, brief_slug
):
    send_id = _new_send(engine, settings, brief_slug)
    report = _dispatcher(engine, settings).work_due()
    assert report.started == [send_id] and report.finished == [send_id]
    assert _recipients(sandbox) == sorted(EXPECTED)
    assert {d.status for d in _ledger(engine, send_id)} == {"sent"}


def test_a_second_run_sends_nothing_more(engine, settings, sandbox, brief_slug):
    _new_send(engine, settings, brief_slug)
    _dispatcher(engine, settings).work_due()
    again = _dispatcher(engine, settings).work_due()
    assert again.settled == 0
    assert len(sandbox.messages()) == len(EXPECTED)


def test_planning_twice_writes_no_second_row(engine, settings, brief_slug):
    send_id = _new_send(engine, settings, brief_slug)
    start_due_sends(engine, now=utcnow())
    with session_scope(engine) as session:
        send = session.get_one(Send, send_id)
        assert plan_deliveries(send, session=session, now=utcnow()).rows == len(EXPECTED)
    assert len(_ledger(engine, send_id)) == len(EXPECTED)


def test_the_database_refuses_a_duplicate_delivery(engine, settings, brief_slug):
    send_id = _new_send(engine, settings, brief_slug)
    start_due_sends(engine, now=utcnow())
    row = _ledger(engine, send_id)[0]
    with pytest.raises(sa.exc.IntegrityError), session_scope(engine) as session:
        session.add(Delivery(send_id=send_id, subscriber_id=row.subscriber_id))


def test_recipients_are_split_into_batches_of_the_configured_size(
    engine, settings, sandbox, brief_slug
):
    _new_send(engine, settings, brief_slug)
    _dispatcher(engine, settings, NEWSLETTER_BATCH_SIZE=3).work_due()
    assert sandbox.state.requests == 2
    assert len({m.message_id for m in sandbox.messages()}) == 2
    assert _recipients(sandbox) == sorted(EXPECTED)


def test_each_message_names_its_delivery_and_carries_one_click_unsubscribe(
    engine, settings, sandbox, brief_slug
):
    send_id = _new_send(engine, settings, brief_slug)
    _dispatcher(engine, settings).work_due()
    ledger = {str(d.id): d for d in _ledger(engine, send_id)}
    signer = TokenSigner(settings.NEWSLETTER_SECRET_KEY.get_secret_value())
    for message in sandbox.messages():
        delivery = ledger[message.custom_args["delivery_id"]]
        assert message.custom_args["send_id"] == str(send_id)
        assert delivery.message_id == message.message_id
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = message.headers["List-Unsubscribe"].strip("<>")
        assert url.startswith("https://news.example.com/unsubscribe/")
        assert signer.verify(LINK_TOKEN_PURPOSE, url.rsplit("/", 1)[1]) == delivery.subscriber_id
        assert url in message.text and url in message.html


def test_no_token_reaches_a_recipient_unfilled(engine, settings, sandbox, brief_slug):
    _new_send(engine, settings, brief_slug)
    _dispatcher(engine, settings).work_due()
    for message in sandbox.messages():
        assert "%%nl:" not in message.html and "%%nl:" not in message.text
        assert message.to[0] in message.text


def test_a_readers_values_arrive_escaped_in_html_and_as_written_in_text(engine, settings, sandbox):
    with session_scope(engine) as session:
        add_topic("shipping", "Shipping", session=session)
        add_subscriber(
            "o'brien&co@example.com", session=session, name='<b>Kim & "Lee"</b>', topics=["all"]
        )
        slug = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["shipping"]
        ).brief.slug
    _new_send(engine, settings, slug)
    _dispatcher(engine, settings).work_due()
    [message] = sandbox.messages()
    assert "as o&#x27;brien&amp;co@example.com" in message.html
    assert "o'brien&co" not in message.html and "<b>Kim" not in message.html
    assert "as o'brien&co@example.com" in message.text


def test_a_future_send_waits_for_its_time(engine, settings, sandbox, brief_slug):
    later = utcnow() + timedelta(hours=2)
    send_id = _new_send(engine, settings, brief_slug, when=later)
    assert start_due_sends(engine, now=later - timedelta(seconds=1)) == []
    assert _ledger(engine, send_id) == []
    assert start_due_sends(engine, now=later) == [send_id]


def test_a_subscriber_who_leaves_after_planning_is_skipped(engine, settings, sandbox, brief_slug):
    send_id = _new_send(engine, settings, brief_slug)
    start_due_sends(engine, now=utcnow())
    with session_scope(engine) as session:
        unsubscribe("ann@example.com", session=session)
    _dispatcher(engine, settings).work_due()
    assert "ann@example.com" not in _recipients(sandbox)
    assert sorted(d.status for d in _ledger(engine, send_id)) == ["sent", "sent", "sent", "skipped"]


def test_a_brief_without_topics_is_refused_before_anything_is_queued(engine, settings):
    with session_scope(engine) as session:
        slug = add_brief(parse_brief_file(FIXTURES / "firm-layout.txt"), session=session).brief.slug
    with pytest.raises(NewsletterError, match="has no topics"):
        _new_send(engine, settings, slug)
    with session_scope(engine) as session:
        assert summarize_sends(session=session) == []


def test_a_wrong_api_key_pauses_the_send_and_sends_nothing(engine, settings, sandbox, brief_slug):
    send_id = _new_send(engine, settings, brief_slug)
    report = _dispatcher(engine, settings, SENDGRID_API_KEY="SG.wrong").work_due()
    assert "401: The provided authorization grant is invalid" in report.paused[send_id]
    assert sandbox.messages() == []
    with session_scope(engine) as session:
        [summary] = summarize_sends(session=session, send_id=send_id)
    assert summary.status == "paused"
    assert "401" in summary.last_error
    assert summary.counts["queued"] == len(EXPECTED) and summary.counts["sent"] == 0


def _claim(engine, send_id, worker, limit, now, lease=timedelta(minutes=5)):
    return claim_batch(engine, send_id=send_id, worker_id=worker, limit=limit, lease=lease, now=now)


def _ids(claim):
    return [target.delivery_id for target in claim.targets]


def test_two_workers_claim_disjoint_rows(engine, settings, brief_slug):
    send_id = _new_send(engine, settings, brief_slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    first = _claim(engine, send_id, "w1", 2, now)
    second = _claim(engine, send_id, "w2", 10, now)
    assert len(_ids(first)) == 2 and len(_ids(second)) == 2
    assert not set(_ids(first)) & set(_ids(second))
    assert _claim(engine, send_id, "w3", 10, now) is None


def test_a_claim_ends_at_the_due_time_and_id_of_its_last_row(engine, settings, brief_slug):
    """What a sender thread seeks past next (`after`): the last row it took, in due order."""
    send_id = _new_send(engine, settings, brief_slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    first = _claim(engine, send_id, "w1", 2, now)
    last = {row.id: row for row in _ledger(engine, send_id)}[_ids(first)[-1]]
    assert first.last_key == (last.not_before, last.id)
    rest = claim_batch(
        engine,
        send_id=send_id,
        worker_id="w1",
        limit=10,
        lease=timedelta(minutes=5),
        now=now,
        after=first.last_key,
    )
    assert rest is not None and min(_ids(rest)) > last.id and len(_ids(rest)) == 2


def test_rows_in_a_workers_hands_count_as_claimed_until_its_lease_runs_out(
    engine, settings, brief_slug
):
    send_id = _new_send(engine, settings, brief_slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    _claim(engine, send_id, "dead", 3, now)

    def summary(at):
        with session_scope(engine) as session:
            [found] = summarize_sends(session=session, send_id=send_id, now=at)
        return found

    held = summary(now)
    assert (held.counts["claimed"], held.counts["queued"]) == (3, len(EXPECTED) - 3)
    assert held.held_until == now + timedelta(minutes=5)
    later = now + timedelta(minutes=6)
    recover_expired_batches(engine, now=later)
    back = summary(later)
    assert (back.counts["claimed"], back.counts["queued"]) == (0, len(EXPECTED))
    assert back.held_until is None


def test_a_batch_whose_request_never_began_is_requeued_when_its_lease_expires(
    engine, settings, sandbox, brief_slug
):
    send_id = _new_send(engine, settings, brief_slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    taken = _claim(engine, send_id, "dead", 10, now)
    recovery = recover_expired_batches(engine, now=now + timedelta(minutes=6))
    assert recovery.released == len(EXPECTED) and recovery.unknown == 0
    retaken = _claim(engine, send_id, "alive", 10, now + timedelta(minutes=6))
    assert _ids(retaken) == _ids(taken)


def test_rows_left_in_flight_by_a_dead_worker_become_unknown_and_are_not_resent(
    engine, settings, sandbox, brief_slug
):
    send_id = _new_send(engine, settings, brief_slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    claim = _claim(engine, send_id, "dead", 10, now, lease=timedelta(seconds=30))
    assert begin_handoff(engine, claim, now=now)  # the dead worker's request went out
    assert recover_expired_batches(engine, now=now + timedelta(seconds=31)).unknown == len(EXPECTED)
    _dispatcher(engine, settings).work_due()
    assert sandbox.messages() == []
    assert {d.status for d in _ledger(engine, send_id)} == {"unknown"}


def test_a_late_answer_from_a_presumed_dead_worker_settles_its_unknown_rows(
    engine, settings, sandbox, brief_slug
):
    send_id = _new_send(engine, settings, brief_slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    slow = _dispatcher(engine, settings)
    claim = _claim(engine, send_id, slow.worker_id, 10, now, lease=timedelta(seconds=30))
    assert begin_handoff(engine, claim, now=now)
    recover_expired_batches(engine, now=now + timedelta(seconds=31))
    result = slow.transport.send_batch(
        Batch(send_id, "s", "h", "t", [slow.recipient(t) for t in claim.targets])
    )
    record_batch(engine, claim, result, now=now + timedelta(seconds=32), pause_after=5)
    assert {d.status for d in _ledger(engine, send_id)} == {"sent"}


def _make_unknown(engine, settings, slug):
    send_id = _new_send(engine, settings, slug)
    now = utcnow()
    start_due_sends(engine, now=now)
    claim = _claim(engine, send_id, "dead", 10, now, lease=timedelta(seconds=30))
    begin_handoff(engine, claim, now=now)
    recover_expired_batches(engine, now=now + timedelta(seconds=31))
    return send_id


def test_resolving_unknown_deliveries_with_resend_sends_them_once_more(
    engine, settings, sandbox, brief_slug
):
    send_id = _make_unknown(engine, settings, brief_slug)
    _dispatcher(engine, settings).work_due()
    with session_scope(engine) as session:
        assert resolve_unknown(send_id, ResolveAction.RESEND, session=session, now=utcnow()) == 4
    report = _dispatcher(engine, settings).work_due()
    assert report.finished == [send_id]
    assert _recipients(sandbox) == sorted(EXPECTED)
    assert {d.status for d in _ledger(engine, send_id)} == {"sent"}


def test_resolving_unknown_deliveries_with_drop_gives_them_up(
    engine, settings, sandbox, brief_slug
):
    send_id = _make_unknown(engine, settings, brief_slug)
    with session_scope(engine) as session:
        assert resolve_unknown(send_id, ResolveAction.DROP, session=session, now=utcnow()) == 4
    _dispatcher(engine, settings).work_due()
    assert sandbox.messages() == []
    assert {d.status for d in _ledger(engine, send_id)} == {"skipped"}


def test_status_reports_rate_and_time_to_go_while_running(engine, settings, brief_slug):
    send_id = _new_send(engine, settings, brief_slug)
    start = utcnow()
    start_due_sends(engine, now=start)
    claim = _claim(engine, send_id, "w", 2, start)
    record_batch(engine, claim, BatchResult(Outcome.SENT), now=start, pause_after=5)
    with session_scope(engine) as session:
        [summary] = summarize_sends(
            session=session, send_id=send_id, now=start + timedelta(seconds=2)
        )
    assert summary.rate == pytest.approx(1.0)  # two settled in two seconds
    assert summary.eta_seconds == pytest.approx(2.0)  # two to go


def test_a_send_cancelled_before_any_went_is_not_sending_at_any_rate(engine, settings):
    """Cancelling counted its rows as handled: 1,699 cancelled at once read as 289
    deliveries a second."""
    slug = seed_brief(engine, 5)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    start = utcnow()
    start_due_sends(engine, now=start)
    with session_scope(engine) as session:
        cancel_send(send_id, session=session, now=start + timedelta(seconds=10))
    with session_scope(engine) as session:
        [summary] = summarize_sends(session=session, send_id=send_id)
    assert (summary.not_sent, summary.rate, summary.rate_words()) == (5, 0.0, "not sending")
