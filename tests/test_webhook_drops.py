"""SendGrid drops mail to an address on its own suppression lists, and says which list in the
`dropped` event's reason: a reader it knows as a bounce, a spam reporter or an unsubscriber
is treated as that bounce (hard), spam report or unsubscribe would treat them, so no later
send goes to them; any other drop fails its delivery alone. Posted through the real, signed
Event Webhook, and applied both in one batch and one event at a time (the fallback when the
database refuses a batch as a whole): the two must agree."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from newsletter import events as events_module
from newsletter.db import session_scope
from newsletter.devtools.sandbox import event_for
from newsletter.models import Delivery, Send
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.reports import send_report
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from subscribers.models import Subscriber
from subscribers.status import Actor
from tests.test_web import _dispatch_with_drops, _post
from tests.test_webhook_events import ASKED, CONFIRMED, LEFT, _story

DROPPED_READER = "reader0@example.com"


@pytest.fixture(params=["in one batch", "one event at a time"])
def post(request, monkeypatch, web, sandbox):
    """Post signed events to the webhook; the second way, every batch fails as a whole in
    the database, and is applied again one event at a time."""
    if request.param == "one event at a time":

        def refused(*_args, **_kwargs):
            raise DBAPIError("INSERT INTO provider_event …", {}, Exception("refused"))

        monkeypatch.setattr(events_module, "_apply_batch", refused)
    url, _ = web
    return lambda events: _post(sandbox, url, events)[:2]


@pytest.fixture
def dropped(web, engine, sandbox):
    """A send to two readers; returns (its id, a function making a `dropped` event, with
    the reason given, about the first reader's message)."""
    _, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=2)
    message = next(m for m in sandbox.messages() if m.to == [DROPPED_READER])
    return send_id, lambda reason: event_for(message, "dropped", reason=reason)


def _reader(engine) -> Subscriber:
    with session_scope(engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == DROPPED_READER)).one()


def _delivery(engine, send_id) -> Delivery:
    reader = _reader(engine)
    with session_scope(engine) as session:
        return session.exec(
            select(Delivery).where(Delivery.send_id == send_id, Delivery.subscriber_id == reader.id)
        ).one()


def _next_send_reaches(engine, settings, sandbox, first_send: int) -> set[str]:
    """Send the brief again, to every reader it matches now; whom that send mailed."""
    with session_scope(engine) as session:
        brief = str(session.get_one(Send, first_send).brief_id)
        send_id = create_send(brief, session=session, settings=settings, include_received=True).id
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    return {m.to[0] for m in sandbox.messages() if m.custom_args["send_id"] == str(send_id)}


def test_a_reader_sendgrid_drops_as_a_spam_reporter_is_a_complainer_never_mailed_again(
    post, dropped, web, engine, sandbox
):
    """The staff trial: such a reader stayed active, and every send went to them (and was
    dropped again). The product's promise is never to mail a complainer."""
    _, settings = web
    send_id, drop = dropped
    assert post([drop("Spam Reporting Address")]) == (200, "applied 1, duplicates 0")
    reader = _reader(engine)
    assert (reader.status, reader.status_changed_by) == ("complained", "sendgrid:dropped")
    assert _next_send_reaches(engine, settings, sandbox, send_id) == {"reader1@example.com"}


@pytest.mark.parametrize("reason", ["Bounced Address", "Invalid"])
def test_a_drop_for_a_bounced_or_invalid_address_marks_the_reader_bounced_at_once(
    post, dropped, engine, reason
):
    """SendGrid's bounce list is of addresses it gave up on, and its invalid-emails list of
    addresses malformed by its rules or unknown to their server: a hard bounce, not one of
    NEWSLETTER_SOFT_BOUNCE_LIMIT soft ones. Left active, the reader was dropped by every
    send."""
    _, drop = dropped
    assert post([drop(reason)]) == (200, "applied 1, duplicates 0")
    reader = _reader(engine)
    assert (reader.status, reader.soft_bounces) == ("bounced", 0)


def test_a_drop_for_an_unsubscribed_address_unsubscribes_the_reader(post, dropped, engine):
    _, drop = dropped
    assert post([drop("Unsubscribed Address")]) == (200, "applied 1, duplicates 0")
    assert _reader(engine).status == "unsubscribed"


@pytest.mark.parametrize("reason", ["spam reporting address", "SPAM REPORTING ADDRESS"])
def test_the_reason_is_read_whatever_its_case(post, dropped, engine, reason):
    _, drop = dropped
    assert post([drop(reason)]) == (200, "applied 1, duplicates 0")
    assert _reader(engine).status == "complained"


@pytest.mark.parametrize(
    "reason", ["Recipient List over Package Quota", "Invalid SMTPAPI header", "Spam Content"]
)
def test_a_drop_for_any_other_reason_fails_its_delivery_and_leaves_the_reader_be(
    post, dropped, engine, reason
):
    """An account over its quota, or a message SendGrid would not take, says nothing of
    the reader."""
    send_id, drop = dropped
    assert post([drop(reason)]) == (200, "applied 1, duplicates 0")
    delivery = _delivery(engine, send_id)
    assert (delivery.status, delivery.error) == ("failed", f"dropped by sendgrid: {reason}")
    reader = _reader(engine)
    assert (reader.status, reader.status_changed_by, reader.soft_bounces) == ("active", "", 0)


def test_a_suppressed_readers_drop_still_fails_its_delivery_with_sendgrids_reason(
    post, dropped, engine
):
    send_id, drop = dropped
    assert post([drop("Spam Reporting Address")]) == (200, "applied 1, duplicates 0")
    delivery = _delivery(engine, send_id)
    assert (delivery.status, delivery.error) == (
        "failed",
        "dropped by sendgrid: Spam Reporting Address",
    )


@pytest.mark.parametrize("reason", ["Spam Reporting Address", "Bounced Address"])
def test_the_send_report_counts_a_suppressed_readers_drop_as_no_complaint_or_bounce_of_its_own(
    post, dropped, engine, reason
):
    """The reader never saw this send and no receiving server was asked: what SendGrid
    remembers of them is not this send's doing (the list's growth counts the status change,
    once)."""
    send_id, drop = dropped
    assert post([drop(reason)]) == (200, "applied 1, duplicates 0")
    with session_scope(engine) as session:
        readers = send_report(send_id, session=session).readers
    assert (readers["complained"], readers["bounced"]) == (0, 0)


def test_a_drop_for_an_old_unsubscribe_leaves_a_reader_who_came_back_subscribed(
    post, dropped, engine, caplog
):
    """They left, then subscribed and confirmed again on our pages; SendGrid's list still
    held the old unsubscribe, and its drop unsubscribed them again: their latest choice
    was lost. The log says what to mend."""
    _, drop = dropped
    _story(engine, DROPPED_READER, LEFT, ASKED, CONFIRMED)
    assert post([drop("Unsubscribed Address")]) == (200, "applied 1, duplicates 0")
    assert _reader(engine).status == "active"
    assert "still keeps subscriber" in caplog.text


def test_a_drop_for_an_unsubscribed_address_unsubscribes_one_who_never_left(post, dropped, engine):
    """Back from a pause of their own is not back from leaving."""
    _, drop = dropped
    _story(engine, DROPPED_READER, ("paused", Actor.READER, "subscriber"), CONFIRMED)
    assert post([drop("Unsubscribed Address")]) == (200, "applied 1, duplicates 0")
    assert _reader(engine).status == "unsubscribed"
