"""Who a brief reaches: active subscribers following one of its topics, or all topics."""

from __future__ import annotations

import pytest

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.db import session_scope
from newsletter.sending.audience import count_audience
from newsletter.sending.create import create_send
from newsletter.sending.plan import start_due_sends
from subscribers.errors import InvalidSubscriberError, SubscriberError, UnknownTopicError
from subscribers.models import utcnow
from subscribers.roster import add_subscriber, list_subscribers, unsubscribe
from subscribers.topics import add_topic
from tests.workers_support import FIXTURES


@pytest.fixture
def topics(engine):
    with session_scope(engine) as session:
        return {
            slug: add_topic(slug, slug.title(), session=session).id
            for slug in ("japan", "korea", "energy")
        }


def _emails(engine, topic_ids):
    with session_scope(engine) as session:
        return [
            row.subscriber.email for row in list_subscribers(session=session, topic_ids=topic_ids)
        ]


def test_a_subscriber_following_one_of_the_topics_matches(engine, topics):
    with session_scope(engine) as session:
        add_subscriber("a@example.com", session=session, topics=["japan"])
        add_subscriber("b@example.com", session=session, topics=["korea"])
    assert _emails(engine, [topics["japan"], topics["energy"]]) == ["a@example.com"]


def test_a_subscriber_following_all_topics_matches_every_brief(engine, topics):
    with session_scope(engine) as session:
        add_subscriber("all@example.com", session=session, topics=["all"])
    assert _emails(engine, [topics["korea"]]) == ["all@example.com"]


def test_a_subscriber_following_several_matching_topics_appears_once(engine, topics):
    with session_scope(engine) as session:
        add_subscriber("both@example.com", session=session, topics=["japan", "korea"])
    assert _emails(engine, [topics["japan"], topics["korea"]]) == ["both@example.com"]


def test_an_unsubscribed_or_pending_subscriber_does_not_match(engine, topics):
    with session_scope(engine) as session:
        add_subscriber("gone@example.com", session=session, topics=["japan"])
        add_subscriber("new@example.com", session=session, topics=["japan"], status="pending")
        unsubscribe("GONE@example.com", session=session)
    assert _emails(engine, [topics["japan"]]) == []


def test_emails_are_stored_lower_case_and_unique(engine, topics):
    with session_scope(engine) as session:
        assert add_subscriber("Ann.Lee@Example.COM", session=session).email == "ann.lee@example.com"
    with (
        pytest.raises(SubscriberError, match="already a subscriber"),
        session_scope(engine) as session,
    ):
        add_subscriber("ann.lee@example.com", session=session)


def test_an_unknown_topic_is_refused_naming_it_and_the_known_ones(engine, topics):
    with (
        pytest.raises(
            UnknownTopicError, match=r"unknown topic 'china' \(known topics: energy, japan, korea\)"
        ),
        session_scope(engine) as session,
    ):
        add_subscriber("c@example.com", session=session, topics=["japan", "china"])
    with session_scope(engine) as session:
        assert list_subscribers(session=session) == []


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("email", {"email": "not an address"}),
        ("timezone", {"email": "t@example.com", "timezone": "Mars/Olympus"}),
        ("cadence", {"email": "t@example.com", "cadence": "hourly"}),
    ],
)
def test_invalid_fields_are_refused_naming_the_field(engine, topics, field, kwargs):
    with pytest.raises(InvalidSubscriberError) as caught, session_scope(engine) as session:
        add_subscriber(session=session, **kwargs)
    assert str(caught.value).startswith(field)


def test_the_audience_counts_readers_now_through_digests_and_already_served(engine, settings):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        add_topic("food", "Food", session=session)
        add_subscriber("now@example.com", session=session, topics=["energy"])
        add_subscriber("all@example.com", session=session, topics=["all"])
        add_subscriber("day@example.com", session=session, topics=["energy"], cadence="daily")
        add_subscriber("off@example.com", session=session, topics=["food"])
        brief = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["energy"]
        ).brief
        assert count_audience(brief.id, session=session).as_dict() == {
            "now": 2,
            "digests": 1,
            "received": 0,
        }
        create_send(brief.slug, session=session, settings=settings)
    start_due_sends(engine, now=utcnow())
    with session_scope(engine) as session:
        add_subscriber("late@example.com", session=session, topics=["energy"])
        assert count_audience(brief.id, session=session).as_dict() == {
            "now": 1,
            "digests": 1,
            "received": 2,
        }
