"""Publishing a brief and making digests in order, across workers: a digest never moves
its readers' window past a brief that is being planned, or was dated before it by a worker
that read its clock and then waited (newsletter/sending/publishing.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.briefs import add_brief, parse_brief
from newsletter.db import session_scope
from newsletter.models import Send, SendStatus
from newsletter.sending.create import create_send
from newsletter.sending.digest_sends import digest_brief_ids
from newsletter.sending.digests import create_due_digests
from newsletter.sending.plan import start_due_sends
from newsletter.sending.publishing import hold_for_digests, publication_moment
from subscribers.models import Subscriber
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import test_settings

JOINED = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
MONDAY_7 = datetime(2026, 1, 12, 7, 0, tzinfo=UTC)
NEXT_MONDAY_7 = MONDAY_7 + timedelta(days=7)
# Long enough for a worker that is not blocked to finish; a blocked one waits for ever.
BLOCKED = 1.5


@pytest.fixture
def weekly(engine, settings):
    """A weekly reader of energy (UTC, digests Mondays at 07:00) and an immediate one."""
    settings = test_settings(**{**settings.model_dump(), "NEWSLETTER_DIGEST_HOUR": 7})
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        add_subscriber("wes@example.com", session=session, topics=["energy"], cadence="weekly")
        add_subscriber("ida@example.com", session=session, topics=["energy"])
        for person in session.exec(select(Subscriber)).all():
            person.created_at = JOINED
            session.add(person)
    return engine, settings


def _schedule(engine, settings, at: datetime, title: str) -> int:
    text = f"---\ntitle: {title}\ndate: {at:%Y-%m-%d}\n---\n\nWhat happened to {title}.\n"
    with session_scope(engine) as session:
        brief = add_brief(parse_brief(text, source_name="b.md"), session=session, topics=["energy"])
        create_send(brief.brief.slug, session=session, settings=settings, when=at, now=at)
        return brief.brief.id or 0


def _digested(engine) -> list[list[int]]:
    with session_scope(engine) as session:
        ids = session.exec(select(Send.id).where(Send.kind == "digest").order_by(Send.id)).all()
        return [digest_brief_ids(i, session=session) for i in ids]


def test_a_brief_dated_before_a_digest_made_first_is_in_the_readers_next_digest(weekly):
    """A worker read its clock a second before the digest hour and planned the send after
    another worker had made the digests: the brief was dated inside a window already
    closed, and the weekly reader never got it."""
    engine, settings = weekly
    late = MONDAY_7 - timedelta(seconds=1)
    brief = _schedule(engine, settings, late, "Grid")
    create_due_digests(engine, settings, now=MONDAY_7 + timedelta(seconds=5))
    assert _digested(engine) == []  # not published yet: nothing to carry
    assert start_due_sends(engine, now=late)
    create_due_digests(engine, settings, now=NEXT_MONDAY_7)
    assert _digested(engine) == [[brief]]


def test_a_brief_is_dated_when_its_send_starts_when_no_digest_closed_after(weekly):
    engine, settings = weekly
    at = MONDAY_7 + timedelta(hours=2)
    _schedule(engine, settings, at, "Grid")
    create_due_digests(engine, settings, now=MONDAY_7 + timedelta(seconds=5))
    start_due_sends(engine, now=at)
    with session_scope(engine) as session:
        send = session.exec(select(Send).where(Send.kind == "brief")).one()
        assert (send.started_at, send.published_at) == (at, at)


def _blocked(work) -> tuple[threading.Thread, list[object]]:
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(work()), daemon=True)
    thread.start()
    thread.join(BLOCKED)
    return thread, done


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_planning_waits_for_a_digest_being_made_on_another_worker(weekly):
    engine, settings = weekly
    at = MONDAY_7 + timedelta(hours=2)
    _schedule(engine, settings, at, "Grid")
    with session_scope(engine) as digesting:
        hold_for_digests(digesting)
        thread, done = _blocked(lambda: start_due_sends(engine, now=at))
        assert thread.is_alive() and not done
    thread.join(30)
    assert done and len(done[0]) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_digests_wait_for_a_send_being_planned_on_another_worker(weekly):
    """The digest made while the plan was uncommitted did not see the brief, and moved
    the reader's window past it."""
    engine, settings = weekly
    brief = _schedule(engine, settings, MONDAY_7 - timedelta(hours=1), "Grid")
    with session_scope(engine) as planning:  # what start_due_sends does, held open
        send = planning.exec(select(Send)).one()
        moment = publication_moment(planning, now=MONDAY_7 - timedelta(minutes=1))
        send.status, send.started_at, send.published_at = SendStatus.RUNNING, moment, moment
        planning.add(send)
        planning.flush()
        thread, done = _blocked(lambda: create_due_digests(engine, settings, now=MONDAY_7))
        assert thread.is_alive() and not done
    thread.join(30)
    assert _digested(engine) == [[brief]]
