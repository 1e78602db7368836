"""A reader's digest window moves alike whichever way they change (subscribers/
digest_window.py): leaving digests for immediate marks what the window held for a closing
digest, by their own page, by staff or by an import; coming back decides what the next
digest may reach back to."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.db import session_scope
from newsletter.readers.actions import edit_reader
from subscribers.digest_window import switch_cadence, window_on_return
from subscribers.importer import import_subscribers
from subscribers.models import Subscriber
from subscribers.models import SubscriberStatus as S
from subscribers.reader import update_preferences
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _by_reader(person: Subscriber, session, tmp_path: Path) -> None:
    update_preferences(
        person, session=session, topics=["food"], cadence="immediate", timezone="UTC", paused=False
    )


def _by_staff(person: Subscriber, session, tmp_path: Path) -> None:
    edit_reader(
        person,
        session=session,
        actor="ed@example.com",
        topics=["food"],
        cadence="immediate",
        timezone="UTC",
    )


def _by_import(person: Subscriber, session, tmp_path: Path) -> None:
    sheet = tmp_path / "list.csv"
    sheet.write_text("email,topics,cadence\ndai@example.com,food,immediate\n", encoding="utf-8")
    report = import_subscribers(sheet, session=session)
    assert report.updated, report


@pytest.mark.parametrize("switch", [_by_reader, _by_staff, _by_import], ids=lambda f: f.__name__)
def test_leaving_digests_before_the_first_marks_the_window_for_a_closing_digest(
    engine, tmp_path, switch: Callable[..., None]
):
    """Only `last_digest_at` makes a closing digest due, and before a reader's first digest
    it is empty: the briefs their window held went to them neither way."""
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        dai = add_subscriber("dai@example.com", session=session, topics=["food"], cadence="daily")
        assert dai.last_digest_at is None
        switch(dai, session, tmp_path)
    with session_scope(engine) as session:
        dai = session.get_one(Subscriber, dai.id)
        assert dai.cadence == "immediate"
        assert dai.last_digest_at is not None
        assert dai.last_digest_at == max(dai.created_at, dai.updated_at - timedelta(days=1))


def test_an_immediate_reader_who_stays_immediate_is_owed_no_closing_digest(engine, tmp_path):
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        ida = add_subscriber("dai@example.com", session=session, topics=["food"])
        _by_reader(ida, session, tmp_path)
        assert ida.last_digest_at is None


def _reader(cadence: str, last_digest_at: datetime | None) -> Subscriber:
    return Subscriber(
        email="x@example.com",
        cadence=cadence,
        created_at=NOW - timedelta(days=90),
        last_digest_at=last_digest_at,
    )


def test_an_unpaused_reader_keeps_a_window_that_opened_within_a_period():
    person = _reader("daily", NOW - timedelta(hours=20))
    window_on_return(person, S.PAUSED, now=NOW)
    assert person.last_digest_at == NOW - timedelta(hours=20)


def test_an_unpaused_reader_back_after_a_long_pause_gets_one_period_not_the_whole_pause():
    person = _reader("weekly", NOW - timedelta(days=40))
    window_on_return(person, S.PAUSED, now=NOW)
    assert person.last_digest_at == NOW - timedelta(days=7)


def test_an_unpaused_reader_before_their_first_digest_still_has_none():
    person = _reader("daily", None)
    window_on_return(person, S.PAUSED, now=NOW)
    assert person.last_digest_at is None


@pytest.mark.parametrize("away", [S.PENDING, S.UNSUBSCRIBED, S.BOUNCED])
def test_a_digest_reader_coming_back_from_off_the_list_starts_a_new_window(away):
    person = _reader("daily", NOW - timedelta(days=30))
    window_on_return(person, away, now=NOW)
    assert person.last_digest_at == NOW


def test_an_immediate_reader_coming_back_from_off_the_list_is_owed_no_closing_digest():
    person = _reader("immediate", NOW - timedelta(days=30))
    window_on_return(person, S.UNSUBSCRIBED, now=NOW)
    assert person.last_digest_at is None


def test_an_import_that_unpauses_and_switches_to_immediate_reaches_back_by_the_old_cadence(
    engine, tmp_path
):
    """An unpause reaches back one period of the cadence the window was opened with: a
    weekly reader's five days, not the one day of immediate."""
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        wes = add_subscriber("wes@example.com", session=session, topics=["food"], cadence="weekly")
        wes.status, wes.last_digest_at = S.PAUSED, datetime.now(UTC) - timedelta(days=5)
        opened = wes.last_digest_at
    sheet = tmp_path / "list.csv"
    sheet.write_text("email,topics,cadence,status\nwes@example.com,food,immediate,active\n")
    with session_scope(engine) as session:
        assert import_subscribers(sheet, session=session).updated
    with session_scope(engine) as session:
        wes = session.get_one(Subscriber, wes.id)
        assert (wes.status, wes.cadence, wes.last_digest_at) == ("active", "immediate", opened)


def test_a_reader_joining_digests_from_immediate_opens_their_window_at_the_switch(engine):
    """They had every brief before on its own; a first digest reaching a period back
    could reach into a time they were away (unsubscribed, then back as immediate)."""
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        ida = add_subscriber("ida@example.com", session=session, topics=["food"])
        switch_cadence(ida, "daily", now=NOW)
        assert (ida.cadence, ida.last_digest_at) == ("daily", NOW)
