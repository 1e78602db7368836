"""`send --local-time 07:00`: each reader gets the brief at 07:00 in their own timezone,
the next one after the send was created; the worker's clock is driven by the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.briefs import add_brief, parse_brief_file, published_between
from newsletter.briefs.archive import archive_page, published_entry
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.models import Brief, Delivery, Send
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.controls import cancel_send
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.plan import next_local_time
from newsletter.sending.report import summarize_sends
from subscribers.models import Subscriber
from subscribers.roster import add_subscriber, get_subscriber, set_topics
from subscribers.topics import add_topic
from tests.conftest import test_settings
from tests.workers_support import FIXTURES

READERS = {
    "aiko@example.com": "Asia/Tokyo",  # UTC+9
    "lena@example.com": "Europe/Berlin",  # UTC+1 in winter
    "sam@example.com": "America/New_York",  # UTC-5 in winter
}
# Created at 2026-01-15 00:00 UTC: 09:00 in Tokyo (07:00 has passed: tomorrow's), 01:00 in
# Berlin, 19:00 the day before in New York.
CREATED = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)
DUE = {
    "aiko@example.com": datetime(2026, 1, 15, 22, 0, tzinfo=UTC),  # 16 Jan 07:00 JST
    "lena@example.com": datetime(2026, 1, 15, 6, 0, tzinfo=UTC),  # 15 Jan 07:00 CET
    "sam@example.com": datetime(2026, 1, 15, 12, 0, tzinfo=UTC),  # 15 Jan 07:00 EST
}


def test_next_local_time_is_tomorrows_when_todays_has_passed():
    assert next_local_time("07:00", "Asia/Tokyo", after=CREATED) == DUE["aiko@example.com"]
    assert next_local_time("07:00", "Europe/Berlin", after=CREATED) == DUE["lena@example.com"]


def test_next_local_time_keeps_seven_oclock_across_the_spring_change():
    # New York moves to daylight time at 02:00 on 8 March 2026.
    before = datetime(2026, 3, 7, 13, 0, tzinfo=UTC)  # 08:00 EST on the 7th
    assert next_local_time("07:00", "America/New_York", after=before) == datetime(
        2026, 3, 8, 11, 0, tzinfo=UTC
    )  # 07:00 EDT, an hour earlier in UTC than the day before


def test_next_local_time_in_the_hour_a_clock_goes_back_is_never_in_the_past():
    """01:10 the second time round on 1 November 2026 in New York is 06:10 UTC: 01:30 that
    day has passed (05:30 UTC), though its wall clock reads later."""
    after = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)
    due = next_local_time("01:30", "America/New_York", after=after)
    assert due == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)


def test_a_malformed_local_time_is_refused(engine, settings):
    with session_scope(engine) as session, pytest.raises(NewsletterError, match="HH:MM"):
        create_send("1", session=session, settings=settings, local_time="7am")


@pytest.fixture
def local_send(engine, settings):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        for email, zone in READERS.items():
            add_subscriber(email, session=session, topics=["energy"], timezone=zone)
        slug = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["energy"]
        ).brief.slug
        send = create_send(slug, session=session, settings=settings, local_time="07:00")
        send.created_at = send.scheduled_at = CREATED
        session.add(send)
        return send.id


def _tick(engine, settings, at: datetime):
    settings = test_settings(**settings.model_dump())
    return Dispatcher(
        engine, settings, SendGridTransport.from_settings(settings), clock=lambda: at
    ).work_due()


def _received(sandbox):
    return sorted(address for message in sandbox.messages() for address in message.to)


def test_each_reader_gets_it_at_seven_in_their_own_timezone(engine, settings, sandbox, local_send):
    _tick(engine, settings, CREATED)
    assert _received(sandbox) == []
    _tick(engine, settings, DUE["lena@example.com"] - timedelta(seconds=1))
    assert _received(sandbox) == []
    _tick(engine, settings, DUE["lena@example.com"])
    assert _received(sandbox) == ["lena@example.com"]
    _tick(engine, settings, DUE["sam@example.com"])
    assert _received(sandbox) == ["lena@example.com", "sam@example.com"]
    with session_scope(engine) as session:
        [summary] = summarize_sends(session=session, send_id=local_send, now=DUE["sam@example.com"])
    assert summary.status == "running" and summary.next_action_at == DUE["aiko@example.com"]
    report = _tick(engine, settings, DUE["aiko@example.com"])
    assert _received(sandbox) == sorted(READERS)
    assert report.finished == [local_send]


def test_a_reader_who_drops_the_topic_before_their_seven_oclock_is_not_sent_it(
    engine, settings, sandbox, local_send
):
    """Planned up to a day ahead: Sam stopped following Energy in between, and once got
    the brief anyway, its footer saying he follows Energy."""
    _tick(engine, settings, CREATED)  # planned: everyone's row waits for their 07:00
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        set_topics(get_subscriber("sam@example.com", session=session), ["food"], session=session)
    _tick(engine, settings, DUE["sam@example.com"])
    assert _received(sandbox) == ["lena@example.com"]
    with session_scope(engine) as session:
        sam = session.exec(
            select(Delivery)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == "sam@example.com")
        ).one()
    assert (sam.status, sam.error) == ("skipped", "no longer follows its topics")


def _archived(engine, at: datetime) -> list[str]:
    with session_scope(engine) as session:
        return [entry.brief.slug for entry in archive_page(session=session, now=at).entries]


def test_the_archive_shows_the_brief_when_its_first_readers_are_due_not_when_it_is_planned(
    engine, settings, sandbox, local_send
):
    """Planned at midnight UTC, the brief stood in the archive six hours before Lena's
    email brought it, and a day before Aiko's."""
    _tick(engine, settings, CREATED)
    first = DUE["lena@example.com"]
    assert _archived(engine, CREATED) == []
    assert _archived(engine, first - timedelta(seconds=1)) == []
    with session_scope(engine) as session:
        slug = session.get_one(Send, local_send).brief_id
        brief = session.get_one(Brief, slug)
        assert published_entry(brief.slug, session=session, now=CREATED) is None
    assert _archived(engine, first) == [brief.slug]


def test_a_digest_window_closing_before_the_first_wave_leaves_the_brief_for_the_next(
    engine, settings, local_send
):
    """A daily reader's digest at 03:00 UTC carried the brief three hours before any
    immediate reader's email; the window after holds it (digests read `published_between`)."""
    _tick(engine, settings, CREATED)
    three = CREATED.replace(hour=3)
    with session_scope(engine) as session:
        assert published_between(three - timedelta(days=1), three, session=session) == {}
        carried = published_between(three, three + timedelta(days=1), session=session)
    assert list(carried.values()) == [DUE["lena@example.com"]]


def test_a_send_in_waves_names_no_rate_and_no_time_to_go_from_its_first_wave(
    engine, settings, sandbox, local_send
):
    """Between waves it said "rate 0 deliveries/s, about 426 s to go" of readers due
    hours later."""
    _tick(engine, settings, CREATED)
    _tick(engine, settings, DUE["lena@example.com"])
    with session_scope(engine) as session:
        [summary] = summarize_sends(
            session=session, send_id=local_send, now=DUE["lena@example.com"] + timedelta(hours=1)
        )
    assert summary.eta_seconds is None
    assert summary.rate_words() == "in waves, at 07:00 in each reader's time zone"


def test_a_cancelled_send_names_its_cancelled_rows_and_they_are_no_part_of_its_rate(
    engine, settings, sandbox, local_send
):
    """ "4 of 4 settled (2 sent, 0 failed, 0 unknown, 0 waiting)": the two cancelled went
    unnamed."""
    _tick(engine, settings, CREATED)
    _tick(engine, settings, DUE["lena@example.com"])
    with session_scope(engine) as session:
        cancel_send(local_send, session=session, now=DUE["lena@example.com"])
    with session_scope(engine) as session:
        [summary] = summarize_sends(session=session, send_id=local_send)
    assert summary.parts_words() == "1 sent, 0 failed, 0 unknown, 2 cancelled, 0 waiting"
    assert summary.not_sent == 2
