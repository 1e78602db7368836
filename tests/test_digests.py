"""Digests: daily and weekly readers get one email with exactly the briefs on their topics
published since their last digest, at the digest hour of their own timezone; immediate
readers get each brief alone; nobody gets a brief both ways. Time is driven by the test."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from newsletter.briefs import add_brief, parse_brief, published_briefs
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.models import Brief, Delivery, MailKind, Send, SendBrief
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending import digest_masks, digests
from newsletter.sending.audience import count_audience
from newsletter.sending.controls import cancel_send
from newsletter.sending.create import create_send
from newsletter.sending.digest_sends import digest_brief_ids
from newsletter.sending.digests import create_due_digests, digest_moment
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.plan import start_due_sends
from newsletter.sending.report import summarize_sends
from newsletter.sending.transactional import queue_mail
from newsletter.sending.worker import Worker
from subscribers.digest_window import switch_cadence
from subscribers.models import Subscriber, UTCDateTime, utcnow
from subscribers.models import SubscriberStatus as S
from subscribers.reader import update_preferences
from subscribers.roster import add_subscriber, set_topics
from subscribers.status import Actor, change_status
from subscribers.topics import add_topic
from tests.conftest import test_settings

JOINED = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)  # a Monday, before the 07:00 digests
MONDAY_7 = datetime(2026, 1, 12, 7, 0, tzinfo=UTC)
NEXT_MONDAY_7 = datetime(2026, 1, 19, 7, 0, tzinfo=UTC)


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def test_the_digest_moment_is_the_last_digest_hour_in_the_readers_own_timezone():
    # 07:00 in Tokyo on 8 January is 22:00 UTC on the 7th.
    now = datetime(2026, 1, 7, 23, 0, tzinfo=UTC)
    assert digest_moment("daily", "Asia/Tokyo", now=now, hour=7, weekday=0) == _utc(7, 22)
    assert digest_moment("weekly", "UTC", now=MONDAY_7, hour=7, weekday=0) == MONDAY_7
    assert digest_moment("weekly", "UTC", now=_utc(12, 6), hour=7, weekday=0) == _utc(5, 7)


@pytest.fixture(params=["probed", "aggregated"])
def both_ways(request, monkeypatch):
    """SQLite finds who follows a brief's topics by probing each reader (a window of a few
    briefs) or by one aggregate of the group's readers (many briefs): tests that take this
    fixture run both ways (PostgreSQL always aggregates; it runs the same twice)."""
    if request.param == "aggregated":
        monkeypatch.setattr(digest_masks, "PROBED_BRIEFS", 0)
    return request.param


@pytest.fixture
def newsroom(engine, settings):
    settings = test_settings(**{**settings.model_dump(), "NEWSLETTER_DIGEST_HOUR": 7})
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        add_topic("food", "Food", session=session)
        add_subscriber("wes@example.com", session=session, topics=["energy"], cadence="weekly")
        add_subscriber(
            "dai@example.com",
            session=session,
            topics=["food"],
            cadence="daily",
            timezone="Asia/Tokyo",
        )
        add_subscriber("ida@example.com", session=session, topics=["all"])
        for person in session.exec(select(Subscriber)).all():
            person.created_at = JOINED
            session.add(person)
    return engine, settings


def _publish(engine, settings, topic: str, at: datetime, title: str) -> int:
    """A brief on `topic`, sent to its immediate readers at `at`."""
    text = f"---\ntitle: {title}\ndate: {at:%Y-%m-%d}\n---\n\nWhat happened to {title}.\n"
    with session_scope(engine) as session:
        parsed = parse_brief(text, source_name=f"{title}.md")
        brief = add_brief(parsed, session=session, topics=[topic]).brief
        create_send(brief.slug, session=session, settings=settings, when=at, now=at)
    start_due_sends(engine, now=at)
    return brief.id or 0


def _tokyo_reader(engine, email: str, *, topics: list[str], cadence: str) -> None:
    """One more reader in Tokyo, subscribed with the others."""
    with session_scope(engine) as session:
        person = add_subscriber(
            email, session=session, topics=topics, cadence=cadence, timezone="Asia/Tokyo"
        )
        person.created_at = JOINED
        session.add(person)


def _briefs_of(engine, send_id):
    with session_scope(engine) as session:
        return digest_brief_ids(send_id, session=session)


def _ledger(engine, send_id):
    with session_scope(engine) as session:
        rows = session.exec(
            select(Subscriber.email)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.send_id == send_id)
        ).all()
    return sorted(rows)


def test_a_weekly_digest_holds_exactly_the_weeks_matching_briefs(both_ways, newsroom, sandbox):
    engine, settings = newsroom
    energy = _publish(engine, settings, "energy", _utc(6, 10), "Grid")
    _publish(engine, settings, "food", _utc(7, 10), "Rice")
    made = create_due_digests(engine, settings, now=MONDAY_7)
    later = _publish(engine, settings, "energy", _utc(12, 8), "Pipelines")
    with session_scope(engine) as session:
        digests = {s.id: s for s in session.exec(select(Send).where(Send.kind == "digest"))}
    weekly = [d for d in digests.values() if _ledger(engine, d.id) == ["wes@example.com"]]
    assert len(weekly) == 1 and weekly[0].id in made
    assert _briefs_of(engine, weekly[0].id) == [energy]
    assert "Grid" in weekly[0].html and "Rice" not in weekly[0].html
    assert weekly[0].subject == "Your weekly briefing: 1 brief"

    next_week = create_due_digests(engine, settings, now=NEXT_MONDAY_7)
    with session_scope(engine) as session:
        [following] = [session.get_one(Send, i) for i in next_week]
    assert _briefs_of(engine, following.id) == [later]
    assert _ledger(engine, following.id) == ["wes@example.com"]


def test_a_daily_digest_comes_at_seven_in_the_readers_timezone(both_ways, newsroom):
    engine, settings = newsroom
    rice = _publish(engine, settings, "food", _utc(7, 10), "Rice")
    assert create_due_digests(engine, settings, now=_utc(7, 21)) == []  # 06:00 in Tokyo
    [made] = create_due_digests(engine, settings, now=_utc(7, 22))  # 07:00 in Tokyo
    with session_scope(engine) as session:
        assert digest_brief_ids(made, session=session) == [rice]
    assert _ledger(engine, made) == ["dai@example.com"]
    assert create_due_digests(engine, settings, now=_utc(8, 22)) == []  # nothing new


def test_a_digest_after_days_without_one_holds_every_brief_since_the_last(newsroom):
    """The worker was down for two days: the next digest reaches back to the reader's last
    digest, not just one period (that is only for a reader's first)."""
    engine, settings = newsroom
    rice = _publish(engine, settings, "food", _utc(7, 10), "Rice")
    [first] = create_due_digests(engine, settings, now=_utc(7, 22))  # Tokyo's 07:00
    assert _briefs_of(engine, first) == [rice]
    wheat = _publish(engine, settings, "food", _utc(8, 10), "Wheat")
    soy = _publish(engine, settings, "food", _utc(10, 10), "Soy")
    [late] = create_due_digests(engine, settings, now=_utc(10, 22))  # no run on the 8th, 9th
    assert _briefs_of(engine, late) == [wheat, soy]
    assert _ledger(engine, late) == ["dai@example.com"]


def test_a_readers_row_says_which_window_their_last_digest_covered(newsroom):
    """`last_digest_from` to `last_digest_at`: from the last digest; for a first, one period
    back or from when they subscribed, whichever is later; none for an immediate reader."""
    engine, settings = newsroom
    _publish(engine, settings, "food", _utc(7, 10), "Rice")
    create_due_digests(engine, settings, now=_utc(7, 22))  # Tokyo's 07:00: dai only
    _publish(engine, settings, "food", _utc(9, 10), "Soy")
    create_due_digests(engine, settings, now=_utc(10, 22))
    with session_scope(engine) as session:
        people = {p.email: p for p in session.exec(select(Subscriber))}
    dai, wes, ida = (people[f"{name}@example.com"] for name in ("dai", "wes", "ida"))
    assert (dai.last_digest_from, dai.last_digest_at) == (_utc(7, 22), _utc(10, 22))
    assert (wes.last_digest_from, wes.last_digest_at) == (JOINED, _utc(5, 7))  # Monday
    assert (ida.last_digest_from, ida.last_digest_at) == (None, None)


def test_a_first_digest_window_opens_one_period_back(newsroom):
    engine, settings = newsroom
    create_due_digests(engine, settings, now=_utc(7, 22))
    with session_scope(engine) as session:
        dai = session.exec(select(Subscriber).where(Subscriber.email == "dai@example.com")).one()
    assert (dai.last_digest_from, dai.last_digest_at) == (_utc(6, 22), _utc(7, 22))


def test_a_reader_who_joins_a_group_while_its_digests_are_made_misses_no_brief(
    newsroom, monkeypatch
):
    """A weekly reader switches to daily between the scan that finds the due groups and the
    group's own transaction: they are left for the next tick, not moved past briefs published
    since their last weekly digest."""
    engine, settings = newsroom
    _tokyo_reader(engine, "wen@example.com", topics=["food"], cadence="weekly")
    create_due_digests(engine, settings, now=_utc(11, 22))  # Monday 07:00 in Tokyo: both
    rice = _publish(engine, settings, "food", _utc(12, 10), "Rice")
    create_due_digests(engine, settings, now=_utc(12, 22))  # dai's daily digest: Rice
    wheat = _publish(engine, settings, "food", _utc(13, 10), "Wheat")

    scanned = digests.digest_moment

    def switch_after_the_scan(*args, **kwargs):
        monkeypatch.setattr(digests, "digest_moment", scanned)
        with session_scope(engine) as session:
            wen = session.exec(select(Subscriber).where(Subscriber.email == "wen@example.com"))
            reader = wen.one()
            reader.cadence = "daily"
            session.add(reader)
        return scanned(*args, **kwargs)

    monkeypatch.setattr(digests, "digest_moment", switch_after_the_scan)
    made = create_due_digests(engine, settings, now=_utc(13, 22))
    made += create_due_digests(engine, settings, now=_utc(13, 22, 1))  # the next tick
    got = {tuple(_ledger(engine, send_id)): _briefs_of(engine, send_id) for send_id in made}
    assert got[("wen@example.com",)] == [rice, wheat]
    assert got[("dai@example.com",)] == [wheat]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_reader_who_narrows_their_topics_while_the_digest_is_made_gets_a_consistent_one(
    newsroom,
):
    """A reader who followed everything chooses "food only" while their group's digests are
    being made (their row locked by that change): the digest is made from their topics as
    they were or as they are, never from a mix of the two (their new "not everything" with
    their old, empty, list of links), which would move them past a food brief for good."""
    engine, settings = newsroom
    _tokyo_reader(engine, "ali@example.com", topics=["all"], cadence="daily")
    rice = _publish(engine, settings, "food", _utc(7, 10), "Rice")
    _publish(engine, settings, "energy", _utc(7, 11), "Grid")
    changing = Session(engine)  # ali's choice, not yet committed: their row is locked
    ali = changing.exec(select(Subscriber).where(Subscriber.email == "ali@example.com")).one()
    set_topics(ali, ["food"], session=changing)
    made: list[int] = []
    making = threading.Thread(
        target=lambda: made.extend(create_due_digests(engine, settings, now=_utc(7, 22)))
    )
    making.start()
    with engine.connect() as watching:  # wait until the digest waits on ali's row
        for _ in range(600):
            waiting = watching.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            watching.rollback()  # a transaction sees one snapshot of pg_stat_activity
            if waiting:
                break
            time.sleep(0.05)
    changing.commit()
    changing.close()
    making.join(timeout=60)
    assert waiting and not making.is_alive()  # the race was run, and the digest went on
    made += create_due_digests(engine, settings, now=_utc(7, 22, 1))  # the next tick
    got = [
        b for i in made if "ali@example.com" in _ledger(engine, i) for b in _briefs_of(engine, i)
    ]
    assert rice in got


def test_digest_readers_are_left_out_of_the_immediate_send(newsroom):
    engine, settings = newsroom
    _publish(engine, settings, "energy", _utc(6, 10), "Grid")
    with session_scope(engine) as session:
        [brief_send] = session.exec(select(Send).where(Send.kind == "brief")).all()
    assert _ledger(engine, brief_send.id) == ["ida@example.com"]


def test_making_digests_twice_for_the_same_moment_makes_them_once(newsroom):
    engine, settings = newsroom
    _publish(engine, settings, "energy", _utc(6, 10), "Grid")
    assert len(create_due_digests(engine, settings, now=MONDAY_7)) == 1
    assert create_due_digests(engine, settings, now=MONDAY_7) == []


def test_a_digest_goes_out_through_the_ordinary_dispatch(newsroom, sandbox):
    engine, settings = newsroom
    _publish(engine, settings, "energy", _utc(6, 10), "Grid")
    create_due_digests(engine, settings, now=MONDAY_7)
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    digest = [m for m in sandbox.messages() if m.to == ["wes@example.com"]]
    assert len(digest) == 1 and digest[0].subject == "Your weekly briefing: 1 brief"
    assert "%%nl:" not in digest[0].html and "wes@example.com" in digest[0].text


def test_a_reader_who_switched_to_a_digest_does_not_get_a_brief_they_already_received(
    both_ways,
    newsroom,
):
    engine, settings = newsroom
    grid = _publish(engine, settings, "energy", _utc(6, 10), "Grid")  # ida gets it now
    with session_scope(engine) as session:
        ida = session.exec(select(Subscriber).where(Subscriber.email == "ida@example.com")).one()
        ida.cadence = "weekly"  # she follows everything: both briefs are in her window
        session.add(ida)
    rice = _publish(engine, settings, "food", _utc(6, 11), "Rice")
    made = create_due_digests(engine, settings, now=MONDAY_7)
    with session_scope(engine) as session:
        by_reader = {tuple(_ledger(engine, i)): digest_brief_ids(i, session=session) for i in made}
    assert by_reader[("ida@example.com",)] == [rice]
    assert by_reader[("wes@example.com",)] == [grid]


def test_a_brief_whose_send_was_cancelled_reaches_no_digest_and_leaves_the_archive(newsroom):
    """Staff cancel a send because something is wrong with it: digests made afterwards
    carried it on to every daily and weekly reader."""
    engine, settings = newsroom
    _publish(engine, settings, "energy", _utc(6, 10), "Grid")
    rice = _publish(engine, settings, "energy", _utc(6, 11), "Rice")  # wes's week too
    with session_scope(engine) as session:
        grid_send = session.exec(
            select(Send.id).join(Brief, Brief.id == Send.brief_id).where(Brief.title == "Grid")
        ).one()
        cancel_send(grid_send, session=session, now=_utc(6, 12))
    made = create_due_digests(engine, settings, now=MONDAY_7)
    with session_scope(engine) as session:
        carried = {b for i in made for b in digest_brief_ids(i, session=session)}
        archived = [brief.title for brief in published_briefs(session=session)]
    assert carried == {rice}
    assert archived == ["Rice"]


def test_a_reader_who_had_a_brief_in_a_digest_gets_no_second_copy_from_a_send_again(
    both_ways, newsroom
):
    """Wes had Grid in his weekly digest, then switched to immediate: `send --again` (for
    readers who joined since) once sent him Grid a second time."""
    engine, settings = newsroom
    _publish(engine, settings, "energy", _utc(6, 10), "Grid")
    [weekly] = create_due_digests(engine, settings, now=MONDAY_7)
    assert _ledger(engine, weekly) == ["wes@example.com"]
    with session_scope(engine) as session:
        wes = session.exec(select(Subscriber).where(Subscriber.email == "wes@example.com")).one()
        wes.cadence = "immediate"
        session.add(wes)
        add_subscriber("new@example.com", session=session, topics=["energy"])
        grid = session.exec(select(Brief).where(Brief.title == "Grid")).one()
        audience = count_audience(grid.id, session=session)
        again = create_send(grid.slug, session=session, settings=settings, again=True).id
    start_due_sends(engine, now=utcnow())
    assert _ledger(engine, again) == ["new@example.com"]
    assert audience.as_dict() == {"now": 1, "digests": 0, "received": 2}  # ida, wes


def _dai(session: Session) -> Subscriber:
    return session.exec(select(Subscriber).where(Subscriber.email == "dai@example.com")).one()


def test_a_reader_who_leaves_digests_for_immediate_gets_what_their_window_held(newsroom):
    """Wheat came out after Dai's last digest, and Dai switched to immediate before the
    next: nothing sent it to her. A closing digest now does, once."""
    engine, settings = newsroom
    _publish(engine, settings, "food", _utc(7, 10), "Rice")
    create_due_digests(engine, settings, now=_utc(7, 22))  # Tokyo's 07:00 on the 8th
    wheat = _publish(engine, settings, "food", _utc(8, 10), "Wheat")
    with session_scope(engine) as session:
        dai = _dai(session)
        dai.cadence = "immediate"
        session.add(dai)
    _publish(engine, settings, "food", _utc(8, 13), "Soy")  # she gets this one alone
    [closing] = create_due_digests(engine, settings, now=_utc(8, 22))
    assert _briefs_of(engine, closing) == [wheat]
    assert _ledger(engine, closing) == ["dai@example.com"]
    with session_scope(engine) as session:
        closing_send = session.get_one(Send, closing)
        assert _dai(session).last_digest_at is None  # owed nothing more
    # Not "Your daily briefing": a weekly reader's closing digest said that too.
    assert closing_send.subject == "Your last digest: 1 brief"
    assert "each brief comes on its own" in " ".join(closing_send.text.split())
    _publish(engine, settings, "food", _utc(9, 10), "Maize")
    assert create_due_digests(engine, settings, now=_utc(9, 22)) == []


def test_a_digest_reader_back_from_an_unsubscribe_gets_nothing_from_while_they_were_away(
    newsroom,
):
    engine, settings = newsroom
    _publish(engine, settings, "food", _utc(7, 10), "Rice")
    create_due_digests(engine, settings, now=_utc(7, 22))
    with session_scope(engine) as session:
        change_status(_dai(session), S.UNSUBSCRIBED, actor=Actor.READER, session=session)
    _publish(engine, settings, "food", _utc(8, 10), "Wheat")  # while she was away
    with session_scope(engine) as session:
        dai = _dai(session)
        change_status(dai, S.PENDING, actor=Actor.READER, session=session)
        change_status(dai, S.ACTIVE, actor=Actor.READER, session=session)  # confirmed
    tomorrow = utcnow() + timedelta(days=1)
    made = create_due_digests(engine, settings, now=tomorrow)
    assert all("dai@example.com" not in _ledger(engine, send_id) for send_id in made)


def test_a_digest_is_dated_on_its_readers_own_day(newsroom):
    engine, settings = newsroom
    _publish(engine, settings, "food", _utc(7, 10), "Rice")
    [made] = create_due_digests(engine, settings, now=_utc(7, 22))  # 07:00, 8 Jan in Tokyo
    with session_scope(engine) as session:
        digest = session.get_one(Send, made)
    dateline = digest.text.splitlines()[1]  # under the masthead; each brief keeps its date
    assert dateline == "8 January 2026 · Food"


def test_staff_see_a_digest_named_as_one_not_as_a_second_send_of_its_last_brief(newsroom):
    engine, settings = newsroom
    _publish(engine, settings, "energy", _utc(6, 10), "Grid")
    [weekly] = create_due_digests(engine, settings, now=MONDAY_7)
    with session_scope(engine) as session:
        summaries = {s.id: s for s in summarize_sends(session=session)}
    assert summaries[weekly].label == "digest: Your weekly briefing: 1 brief"
    assert summaries[weekly].as_dict()["kind"] == "digest"
    assert [s.label for s in summaries.values() if s.id != weekly] == ["2026-01-06-grid"]


def test_a_weekly_reader_who_switches_to_immediate_midweek_gets_what_came_out_until_then(
    newsroom,
):
    """Grid came out on Wednesday morning and Wes left weekly digests at noon. The closing
    digest once covered his window only up to Wednesday's daily hour (07:00): Grid was in
    no digest and, published before the switch, in no send of his either."""
    engine, settings = newsroom
    create_due_digests(engine, settings, now=MONDAY_7)  # nothing yet; his window opens
    grid = _publish(engine, settings, "energy", _utc(14, 10), "Grid")
    with session_scope(engine) as session:
        wes = session.exec(select(Subscriber).where(Subscriber.email == "wes@example.com")).one()
        switch_cadence(wes, "immediate", now=_utc(14, 12))
        session.add(wes)
    [closing] = create_due_digests(engine, settings, now=_utc(14, 12, 1))
    assert _briefs_of(engine, closing) == [grid]
    assert _ledger(engine, closing) == ["wes@example.com"]


def test_a_reader_who_switches_to_immediate_before_their_first_digest_gets_a_closing_one(
    newsroom,
):
    """Dai had had no digest yet (her window is bounded by when she joined): switching to
    immediate left nothing marking it, and Wheat reached her neither way."""
    engine, settings = newsroom
    wheat = _publish(engine, settings, "food", _utc(7, 10), "Wheat")
    with session_scope(engine) as session:
        switch_cadence(_dai(session), "immediate", now=_utc(7, 12))
    [closing] = create_due_digests(engine, settings, now=_utc(7, 12, 1))
    assert _briefs_of(engine, closing) == [wheat]
    assert _ledger(engine, closing) == ["dai@example.com"]


def test_a_digest_reader_who_pauses_and_comes_back_keeps_what_their_window_held(newsroom):
    """Wheat came out after Dai's last digest; she paused for an hour before the next one.
    Unpausing once started her window afresh, and Wheat reached her in no digest."""
    engine, settings = newsroom
    now = utcnow()
    with session_scope(engine) as session:
        dai = _dai(session)
        dai.last_digest_at = now - timedelta(hours=2)
        session.add(dai)
    wheat = _publish(engine, settings, "food", now - timedelta(hours=1), "Wheat")
    with session_scope(engine) as session:
        change_status(_dai(session), S.PAUSED, actor=Actor.READER, session=session)
        change_status(_dai(session), S.ACTIVE, actor=Actor.READER, session=session)
    made = create_due_digests(engine, settings, now=now + timedelta(days=1))
    mine = [i for i in made if _ledger(engine, i) == ["dai@example.com"]]
    assert [_briefs_of(engine, i) for i in mine] == [[wheat]]


def test_a_brief_sent_again_after_a_cancel_is_not_in_a_second_digest_of_a_reader_who_had_it(
    newsroom,
):
    """Rice's send was cancelled (Ida's copy had not gone yet), and Rice sent again the
    next day: published anew, inside Dai's next window, and her digest held it a
    second time (what she had received was read from the brief's own sends only)."""
    engine, settings = newsroom
    rice = _publish(engine, settings, "food", _utc(7, 10), "Rice")
    [first] = create_due_digests(engine, settings, now=_utc(7, 22))
    assert _briefs_of(engine, first) == [rice]
    with session_scope(engine) as session:
        [rice_send] = session.exec(
            select(Send.id).where(Send.brief_id == rice, Send.kind == "brief")
        ).all()
        cancel_send(rice_send, session=session, now=_utc(8, 9))
    again = _publish_again(engine, settings, rice, _utc(8, 10))
    assert _ledger(engine, again) == ["ida@example.com"]
    made = create_due_digests(engine, settings, now=_utc(8, 22))
    assert all("dai@example.com" not in _ledger(engine, i) for i in made)


def _publish_again(engine, settings, brief_id: int, at: datetime) -> int:
    with session_scope(engine) as session:
        slug = session.get_one(Brief, brief_id).slug
        send = create_send(slug, session=session, settings=settings, when=at, now=at, again=True)
        send_id = send.id or 0
    start_due_sends(engine, now=at)
    return send_id


def test_a_digest_row_cancelled_before_it_went_is_no_copy_received(newsroom):
    """Dai's digest carrying Rice was cancelled with Rice's own send, before it went; Rice,
    sent again, was then left out of her next digest as if she had had it."""
    engine, settings = newsroom
    rice = _publish(engine, settings, "food", _utc(7, 10), "Rice")
    [first] = create_due_digests(engine, settings, now=_utc(7, 22))
    with session_scope(engine) as session:
        for send_id in session.exec(select(Send.id).where(Send.brief_id == rice)).all():
            cancel_send(send_id, session=session, now=_utc(8, 9))  # hers and Rice's own
    _publish_again(engine, settings, rice, _utc(8, 10))
    made = create_due_digests(engine, settings, now=_utc(8, 22))
    mine = [i for i in made if _ledger(engine, i) == ["dai@example.com"]]
    assert first not in made and [_briefs_of(engine, i) for i in mine] == [[rice]]


def test_a_brief_carried_by_more_digests_than_a_statement_may_name_is_still_digested(newsroom):
    """Each send that carried a window's brief was one bound value: a weekly window of briefs
    each in hundreds of daily digests (made before a cancel and a second send) passed
    psycopg's limit of 65,535, and that group's digest failed at every tick."""
    engine, settings = newsroom
    grid = _publish(engine, settings, "energy", _utc(6, 10), "Grid")
    numbers = sa.select(sa.literal(1).label("i")).cte("numbers", recursive=True)
    numbers = numbers.union_all(sa.select(numbers.c.i + 1).where(numbers.c.i < 70_000))
    at = sa.literal(_utc(6, 9), type_=UTCDateTime)  # before Grid was last published
    with session_scope(engine) as session:
        session.execute(
            sa.insert(Send).from_select(
                [
                    "kind",
                    "brief_id",
                    "status",
                    "scheduled_at",
                    "subject",
                    "html",
                    "text",
                    "planned",
                    "local_time",
                    "include_received",
                    "failed_batches",
                    "last_error",
                    "created_at",
                    "started_at",
                ],
                sa.select(
                    sa.literal("digest"),
                    sa.literal(grid),
                    sa.literal("finished"),
                    at,
                    sa.literal("bulk"),
                    sa.literal(""),
                    sa.literal(""),
                    sa.literal(0),
                    sa.literal(""),
                    sa.literal(False),
                    sa.literal(0),
                    sa.literal(""),
                    at,
                    at,
                ).select_from(numbers),
            )
        )
        session.execute(
            sa.insert(SendBrief).from_select(
                ["send_id", "brief_id", "position"],
                sa.select(Send.id, sa.literal(grid), sa.literal(0)).where(Send.subject == "bulk"),
            )
        )
    [weekly] = create_due_digests(engine, settings, now=MONDAY_7)
    assert _briefs_of(engine, weekly) == [grid] and _ledger(engine, weekly) == ["wes@example.com"]


def test_a_weekly_reader_who_unpauses_and_switches_to_immediate_in_one_post_gets_the_week(
    newsroom,
):
    """Grid came out four days ago, after Wes's last weekly digest, and he paused. Unpausing
    and switching in one post of his preferences once reached back by the new cadence's
    period (a day), not his week's: the closing digest left Grid out."""
    engine, settings = newsroom
    now = utcnow()
    with session_scope(engine) as session:
        wes = session.exec(select(Subscriber).where(Subscriber.email == "wes@example.com")).one()
        wes.last_digest_at = now - timedelta(days=5)
        session.add(wes)
    grid = _publish(engine, settings, "energy", now - timedelta(days=4), "Grid")
    with session_scope(engine) as session:
        wes = session.exec(select(Subscriber).where(Subscriber.email == "wes@example.com")).one()
        change_status(wes, S.PAUSED, actor=Actor.READER, session=session)
        update_preferences(
            wes,
            session=session,
            topics=["energy"],
            cadence="immediate",
            timezone="UTC",
            paused=False,
        )
    made = create_due_digests(engine, settings, now=utcnow())
    mine = [i for i in made if _ledger(engine, i) == ["wes@example.com"]]
    assert [_briefs_of(engine, i) for i in mine] == [[grid]]


ZONES = ["UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Australia/Sydney"]


def _zone_readers(engine, settings):
    """Two daily readers in each of five zones, and a brief inside every zone's window:
    after the last opens (Tokyo's, 22:00 UTC the day before), before the first closes
    (Paris's, 06:00 UTC)."""
    with session_scope(engine) as session:
        for n, zone in enumerate(ZONES * 2):
            person = add_subscriber(
                f"z{n}@example.com",
                session=session,
                topics=["energy"],
                cadence="daily",
                timezone=zone,
            )
            person.created_at = JOINED
            session.add(person)
    _publish(engine, settings, "energy", _utc(12, 3), "Grid")


def _digested(engine) -> list[str]:
    """Who has a digest delivery."""
    with session_scope(engine) as session:
        return sorted(
            session.exec(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .join(Send, Send.id == Delivery.send_id)
                .where(Send.kind == "digest")
            ).all()
        )


def test_the_groups_made_at_once_give_each_due_reader_exactly_one_digest(newsroom):
    """PostgreSQL makes several (cadence, zone) groups at once, each in its own
    transaction; SQLite takes them in turn. Either way every due reader of every group
    gets one digest, and nobody a second."""
    engine, settings = newsroom
    settings = settings.model_copy(update={"NEWSLETTER_DIGEST_CONCURRENCY": 4})
    _zone_readers(engine, settings)
    made = create_due_digests(engine, settings, now=_utc(12, 23))
    with session_scope(engine) as session:
        rows = session.exec(
            select(Subscriber.email, Delivery.send_id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.send_id.in_(made))
        ).all()
        digest_sends = session.exec(select(Send.id).where(Send.kind == "digest")).all()
    readers = [email for email, _ in rows]
    assert sorted(readers) == sorted(set(readers)) and len(readers) == len(set(readers))
    assert {f"z{n}@example.com" for n in range(len(ZONES) * 2)} <= set(readers)
    assert sorted(made) == sorted(digest_sends) and len(made) == len(set(made))
    assert create_due_digests(engine, settings, now=_utc(12, 23)) == []


def test_postgresql_makes_groups_on_several_threads_and_sqlite_in_turn(newsroom, monkeypatch):
    engine, settings = newsroom
    settings = settings.model_copy(update={"NEWSLETTER_DIGEST_CONCURRENCY": 4})
    _zone_readers(engine, settings)
    made_on: set[str] = set()
    real = digests._make_digests

    def spy(*args, **kwargs):
        made_on.add(threading.current_thread().name)
        time.sleep(0.2)  # long enough that a second thread picks up the next group
        return real(*args, **kwargs)

    monkeypatch.setattr(digests, "_make_digests", spy)
    create_due_digests(engine, settings, now=_utc(12, 23))
    if engine.dialect.name == "postgresql":
        assert len(made_on) > 1 and all(name.startswith("digests") for name in made_on)
    else:
        assert made_on == {threading.main_thread().name}


def test_a_group_whose_digests_fail_keeps_no_other_zone_from_its_own(newsroom, monkeypatch):
    """The first failure stopped the groups after it (one at a time), or threw away what
    the others had made (several at once)."""
    engine, settings = newsroom
    settings = settings.model_copy(update={"NEWSLETTER_DIGEST_CONCURRENCY": 4})
    _zone_readers(engine, settings)
    real = digests._make_digests

    def tokyo_breaks(session, settings, cadence, zone, *args):
        if zone == "Asia/Tokyo":
            raise RuntimeError("a template error")
        return real(session, settings, cadence, zone, *args)

    monkeypatch.setattr(digests, "_make_digests", tokyo_breaks)
    with pytest.raises(RuntimeError, match="a template error"):
        create_due_digests(engine, settings, now=_utc(12, 23))
    got = _digested(engine)
    others = [n for n, zone in enumerate(ZONES * 2) if zone != "Asia/Tokyo"]
    assert {f"z{n}@example.com" for n in others} <= set(got)
    assert not [email for email in got if email in ("z2@example.com", "z7@example.com")]


def test_worker_once_sends_the_runs_other_mail_though_a_digest_fails(
    newsroom, sandbox, monkeypatch
):
    """The digests come first in a run: one that could not be made (a broken template)
    raised before the tick, and no confirmation, welcome or send went, run after run."""
    engine, settings = newsroom
    _publish(engine, settings, "food", _utc(7, 10), "Rice")
    with session_scope(engine) as session:
        pending = add_subscriber("new@example.com", session=session, status="pending")
        queue_mail(session, MailKind.CONFIRMATION, pending.id, now=utcnow())

    def broken(*args, **kwargs):
        raise NewsletterError("template digest.html: 'x' is undefined")

    monkeypatch.setattr(digests, "_make_digests", broken)
    worker = Worker.from_settings(settings)
    try:
        with pytest.raises(NewsletterError, match="'x' is undefined"):
            worker.once()
    finally:
        worker.close()
    # The immediate reader's brief and the pending reader's confirmation both went.
    assert sorted(m.to[0] for m in sandbox.messages()) == ["ida@example.com", "new@example.com"]
