"""Subscribers one at a time: addresses, statuses with who and when, forgetting, topics
renamed and merged without losing anyone's choice, and the one matching function."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from sqlmodel import select

from newsletter.db import session_scope
from subscribers.errors import InvalidSubscriberError, SubscriberError
from subscribers.matching import matching_subscribers
from subscribers.models import Subscriber, Suppression, Topic
from subscribers.roster import (
    NAME_MAX,
    add_subscriber,
    check_text,
    check_timezone,
    forget,
    get_subscriber,
    list_subscribers,
    normalize_email,
    suppression_hash,
    unsubscribe,
)
from subscribers.topics import merge_topics, rename_topic

ADDRESSES = [
    "Plain@Example.com",
    "first.last+tag@sub.example.co.uk",
    "o'brien@example.ie",
    "x@xn--bcher-kva.example",
    "josé@example.com",
    "用户@例子.广告",
    '"quoted local"@example.com',
    "a..b@example.com",
    ".lead@example.com",
    "trail.@example.com",
    "no-at-sign.example.com",
    "a@localhost",
    "a@example.invalid",
    "a@-bad-.com",
    "a" * 65 + "@example.com",
    "a@" + "b" * 250 + ".com",
]


# Names a reader may have, hidden characters included: a zero-width non-joiner inside a
# Persian name, joiners inside an emoji family, a right-to-left mark, a line break.
KEPT_NAMES = [
    "\u0632\u0647\u0631\u0647\u200c\u0627\u06cc",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\u200f\u05e9\u05dc\u05d5\u05dd",
    "Line\nbreak",
]
# A name of U+202E alone turned a whole welcome email backwards; U+0085 is a line break to
# some readers; U+FFFD is what bytes a form could not decode arrive as.
REFUSED_NAMES = {
    "\u202e": "control character",
    "Ann\u2066\u202egnp.exe": "control character",
    "a\x85b": "control character",
    "Zo\ufffd": "garbled",
    "\u200b\u200b": "only invisible characters",
}


@pytest.mark.parametrize("name", KEPT_NAMES)
def test_a_name_keeps_the_hidden_characters_its_script_needs(name):
    assert check_text("name", name, longest=NAME_MAX, line_breaks=True) == name


@pytest.mark.parametrize(("name", "why"), REFUSED_NAMES.items())
def test_a_name_that_would_reorder_hide_or_garble_the_greeting_is_refused(name, why):
    with pytest.raises(InvalidSubscriberError, match=why):
        check_text("name", name, longest=NAME_MAX, line_breaks=True)


@pytest.mark.parametrize(("given", "stored"), [("asia/tokyo", "Asia/Tokyo"), ("utc", "UTC")])
def test_a_timezone_in_any_case_is_stored_as_the_database_spells_it(given, stored):
    """An import skipped "asia/tokyo" while it took "JAPAN" and "Daily"."""
    assert check_timezone(given) == stored


def test_an_address_garbled_on_its_way_is_refused():
    with pytest.raises(InvalidSubscriberError, match="garbled"):
        normalize_email("a\ufffd@example.com")


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_fast_path_gives_exactly_email_validators_answer(address):
    try:
        expected: str | None = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        ours: str | None = normalize_email(address)
    except InvalidSubscriberError:
        ours = None
    assert ours == (expected.lower() if expected else None)


def test_an_unsubscribe_records_who_and_when(topics):
    with session_scope(topics) as session:
        add_subscriber(
            "ann@example.com", session=session, topics=["japan"], source="form", ip="203.0.113.9"
        )
        ann = unsubscribe("ann@example.com", session=session, by="subscriber")
        assert ann.status == "unsubscribed" and ann.status_changed_by == "subscriber"
        assert ann.status_changed_at is not None and ann.unsubscribed_at == ann.status_changed_at
        assert (ann.consent_source, ann.consent_ip) == ("form", "203.0.113.9")


def test_forget_erases_the_person_and_keeps_only_a_suppression_hash(topics):
    with session_scope(topics) as session:
        add_subscriber(
            "ann@example.com", session=session, name="Ann", topics=["japan"], ip="203.0.113.9"
        )
        fingerprint = forget("Ann@Example.com", session=session)
    with session_scope(topics) as session:
        [row] = session.exec(select(Subscriber)).all()
        assert "ann" not in row.email.lower() and row.name == "" and row.consent_ip == ""
        assert row.status == "forgotten"
        assert session.get(Suppression, fingerprint) is not None
        assert fingerprint == suppression_hash("ann@example.com")
        with pytest.raises(SubscriberError, match="asked to be forgotten"):
            add_subscriber("ann@example.com", session=session, topics=["japan"])


def test_renaming_a_topic_keeps_its_followers(topics):
    with session_scope(topics) as session:
        add_subscriber("ann@example.com", session=session, topics=["energy"])
        rename_topic("energy", "energy-security", name="Energy security", session=session)
        people = list_subscribers(session=session)
    assert people[0].topics == ["energy-security"]


def test_merging_topics_moves_every_follower_once(topics):
    with session_scope(topics) as session:
        add_subscriber("ann@example.com", session=session, topics=["food"])
        add_subscriber("bob@example.com", session=session, topics=["food", "japan"])
        add_subscriber("cy@example.com", session=session, topics=["energy"])
        assert merge_topics("food", "japan", session=session) == 1  # bob already followed japan
        people = {r.subscriber.email: r.topics for r in list_subscribers(session=session)}
    assert people == {
        "ann@example.com": ["japan"],
        "bob@example.com": ["japan"],
        "cy@example.com": ["energy"],
    }


def test_a_topic_cannot_be_merged_into_itself(topics):
    with session_scope(topics) as session, pytest.raises(InvalidSubscriberError):
        merge_topics("food", "food", session=session)


def test_matching_respects_status_topics_all_and_cadence(topics):
    with session_scope(topics) as session:
        add_subscriber("ann@example.com", session=session, topics=["japan"])
        add_subscriber("bob@example.com", session=session, topics=["all"], cadence="daily")
        add_subscriber("cy@example.com", session=session, topics=["food"])
        add_subscriber("dee@example.com", session=session, topics=["japan"])
        unsubscribe("dee@example.com", session=session)
        japan = [session.exec(select(Topic.id).where(Topic.slug == "japan")).one()]

        def emails(statement):
            ids = set(session.scalars(statement).all())
            return sorted(s.email for s in session.exec(select(Subscriber)) if s.id in ids)

        assert emails(matching_subscribers(japan)) == ["ann@example.com", "bob@example.com"]
        assert emails(matching_subscribers(japan, cadences=["immediate"])) == ["ann@example.com"]
        assert emails(matching_subscribers(japan, cadences=["daily"])) == ["bob@example.com"]
        assert get_subscriber("dee@example.com", session=session).status == "unsubscribed"
