"""The topics report (which topics readers read, since a day) and the list report (the
list's growth per week, from the status history), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.reports import list_growth, topics_report
from subscribers.models import Subscriber, SubscriberStatus, SubscriberStatusChange
from subscribers.roster import add_subscriber, forget, get_subscriber, unsubscribe
from subscribers.status import Actor, change_status
from subscribers.topics import add_topic
from tests.reports_support import tell_a_known_story

S = SubscriberStatus


@pytest.fixture
def told(web, engine, sandbox):
    url, settings = web
    return tell_a_known_story(engine, settings, sandbox, url)


def _topics(engine, since):
    with session_scope(engine) as session:
        add_topic("food-policy", 'Food, policy; "prices" 食品 🍚', session=session)
    with session_scope(engine) as session:
        return {
            row.slug: row.as_dict() for row in topics_report(session=session, since=since).topics
        }


def test_a_topic_counts_its_sends_delivered_readers_and_rates(told, engine):
    since = datetime.fromtimestamp(told.started, UTC) - timedelta(days=1)
    energy = _topics(engine, since)["energy"]
    assert energy == {
        "topic": "energy",
        "name": "Energy",
        "sends": 1,
        "delivered": 5,
        "readers": 2,  # the reader whose only opens were a machine's is not one
        "opened": 2,
        "clicked": 2,
        "open_rate": 0.4,
        "click_rate": 0.4,
    }


def test_topics_without_sends_since_the_day_are_listed_with_no_rates(told, engine):
    since = datetime.fromtimestamp(told.started, UTC) + timedelta(days=1)
    topics = _topics(engine, since)
    assert topics["energy"]["sends"] == 0 and topics["energy"]["open_rate"] is None
    assert topics["food-policy"]["name"] == 'Food, policy; "prices" 食品 🍚'
    assert topics["food-policy"]["sends"] == 0


def _history(session, email: str, at: datetime, old: S, new: S) -> None:
    """A change as `change_status` records it, made `at` (older weeks than this one)."""
    person = get_subscriber(email, session=session)
    session.add(
        SubscriberStatusChange(
            subscriber_id=person.id, at=at, old_status=old, new_status=new, by="test"
        )
    )
    person.status = new
    session.add(person)


def test_the_list_report_counts_each_week_and_its_net_change(engine):
    now = datetime.now(UTC)
    this_week = now.date() - timedelta(days=now.weekday())
    last_week = datetime.combine(this_week - timedelta(days=4), datetime.min.time(), UTC)
    with session_scope(engine) as session:
        for i in range(4):  # last week: four readers, two of them confirmed that week
            add_subscriber(f"old{i}@example.com", session=session, status=S.PENDING)
        session.flush()
        for person in session.exec(select(Subscriber)).all():
            person.created_at = last_week
        _history(session, "old0@example.com", last_week, S.PENDING, S.ACTIVE)
        _history(session, "old1@example.com", last_week, S.PENDING, S.ACTIVE)
    with session_scope(engine) as session:  # this week, through the real status table
        add_subscriber("new@example.com", session=session)
        person = get_subscriber("old2@example.com", session=session)
        change_status(person, S.ACTIVE, actor=Actor.READER, session=session)
        unsubscribe("old0@example.com", session=session)
        change_status(
            get_subscriber("old1@example.com", session=session),
            S.BOUNCED,
            actor=Actor.PROVIDER,
            session=session,
        )
        change_status(
            get_subscriber("old2@example.com", session=session),
            S.COMPLAINED,
            actor=Actor.PROVIDER,
            session=session,
        )
    with session_scope(engine) as session:
        weeks = list_growth(session=session, weeks=3, now=now).as_dict()["weeks"]
    assert [w["week"] for w in weeks] == [
        (this_week - timedelta(weeks=n)).isoformat() for n in (2, 1, 0)
    ]
    assert weeks[0] == {
        "week": weeks[0]["week"],
        "new": 0,
        "confirmed": 0,
        "unsubscribed": 0,
        "bounced": 0,
        "complained": 0,
        "forgotten": 0,
        "net_change": 0,
        "on_list": 0,
    }
    assert weeks[1] == {
        "week": weeks[1]["week"],
        "new": 4,
        "confirmed": 2,
        "unsubscribed": 0,
        "bounced": 0,
        "complained": 0,
        "forgotten": 0,
        "net_change": 4,
        "on_list": 4,
    }
    assert weeks[2] == {
        "week": this_week.isoformat(),
        "new": 1,
        "confirmed": 1,
        "unsubscribed": 1,
        "bounced": 1,
        "complained": 1,
        "forgotten": 0,
        "net_change": -2,
        "on_list": 2,
    }


def test_a_reader_forgotten_is_counted_as_leaving_so_the_columns_add_up(engine):
    """ "new 21, unsub. 5, bounced 1, compl. 1, net +13": the one forgotten had no column."""
    with session_scope(engine) as session:
        add_subscriber("stays@example.com", session=session)
        add_subscriber("erased@example.com", session=session)
    with session_scope(engine) as session:
        forget("erased@example.com", session=session)
    with session_scope(engine) as session:
        week = list_growth(session=session, weeks=1).weeks[-1]
    left = week.unsubscribed + week.bounced + week.complained + week.forgotten
    assert (week.new, week.forgotten, week.net) == (2, 1, 1) and week.new - left == week.net


def test_a_reader_forgotten_after_unsubscribing_leaves_the_list_once(engine):
    """The usual erasure request comes from someone who left already: counted twice, as
    unsubscribed and as forgotten, the columns no longer added up."""
    with session_scope(engine) as session:
        add_subscriber("left@example.com", session=session)
    with session_scope(engine) as session:
        unsubscribe("left@example.com", session=session)
    with session_scope(engine) as session:
        forget("left@example.com", session=session)
    with session_scope(engine) as session:
        week = list_growth(session=session, weeks=1).weeks[-1]
    assert (week.new, week.unsubscribed, week.forgotten, week.net) == (1, 1, 0, 0)


def test_a_reader_added_already_unsubscribed_does_not_grow_the_list(engine):
    with session_scope(engine) as session:
        add_subscriber("gone@example.com", session=session, status=S.UNSUBSCRIBED)
    with session_scope(engine) as session:
        week = list_growth(session=session, weeks=1).weeks[-1]
    assert (week.new, week.net, week.listed) == (1, 0, 0)


def test_a_topics_figures_add_up_over_its_sends(told, web, engine, sandbox):
    from newsletter.briefs import add_brief, parse_brief_file
    from newsletter.devtools.engagement import open_event
    from newsletter.devtools.sandbox import event_for
    from newsletter.providers.sendgrid import SendGridTransport
    from newsletter.sending.create import create_send
    from newsletter.sending.dispatcher import Dispatcher
    from tests.conftest import FIXTURES
    from tests.reports_support import post

    url, settings = web
    before = len(sandbox.messages())
    with session_scope(engine) as session:
        brief = add_brief(
            parse_brief_file(FIXTURES / "front-matter.md"), session=session, topics=["energy"]
        ).brief
        create_send(brief.slug, session=session, settings=settings)
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    second = sandbox.messages()[before:]
    assert len(second) == 4  # the bounced reader and the one who complained are not mailed
    events = [event_for(m, "delivered") for m in second]
    events += [open_event(second[0]), open_event(second[0]), open_event(second[1], machine=True)]
    assert post(sandbox, url, events)[0] == 200
    since = datetime.fromtimestamp(told.started, UTC) - timedelta(days=1)
    energy = _topics(engine, since)["energy"]
    assert (energy["sends"], energy["delivered"], energy["readers"], energy["opened"]) == (
        2,
        9,
        3,
        3,
    )
    assert energy["open_rate"] == round(3 / 9, 4)
