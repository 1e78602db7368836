"""A send's report counts readers, not events, from events posted through the real,
signed Event Webhook: repeated opens, machine opens and several clicks per reader give
exact unique counts, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from newsletter.db import session_scope
from newsletter.errors import NotFoundError
from newsletter.reports import send_report
from newsletter.tallies.unsubscribes import ATTRIBUTION, count_unsubscribe
from subscribers.models import utcnow
from subscribers.roster import get_subscriber
from tests.readers_support import add_readers, food_topics, send_brief
from tests.reports_support import LINK_A, LINK_B, tell_a_known_story
from tests.web_support import call, form_csrf, token


@pytest.fixture
def told(web, engine, sandbox):
    url, settings = web
    return tell_a_known_story(engine, settings, sandbox, url)


def _report(engine, send_id):
    with session_scope(engine) as session:
        return send_report(send_id, session=session)


def test_unique_readers_per_kind_are_exact_whatever_each_reader_did_repeatedly(told, engine):
    report = _report(engine, told.send_id).as_dict()
    counts = {
        k: report[k]
        for k in ("delivered", "opened", "clicked", "bounced", "unsubscribed", "complained")
    }
    assert counts == {
        "delivered": 5,
        "opened": 2,
        "clicked": 2,
        "bounced": 1,
        "unsubscribed": 1,
        "complained": 1,
    }


def test_machine_opens_are_counted_apart_from_readers_opens(told, engine):
    report = _report(engine, told.send_id)
    assert (report.machine_opened, report.opens, report.machine_opens) == (1, 4, 3)


def test_each_link_has_its_clicks_and_its_readers(told, engine):
    links = [link.as_dict() for link in _report(engine, told.send_id).links]
    assert links == [
        {"url": LINK_A, "clicks": 3, "readers": 2},
        {"url": LINK_B, "clicks": 1, "readers": 1},
    ]


def test_rates_are_shares_of_the_delivered(told, engine):
    assert _report(engine, told.send_id).rates == {
        "opened": 0.4,
        "clicked": 0.4,
        "bounced": round(1 / 6, 4),
        "unsubscribed": 0.2,
        "complained": 0.2,
        "click_to_open": 1.0,
    }


def test_opens_by_hour_cover_the_first_48_hours_from_the_send_start(told, engine):
    hours = _report(engine, told.send_id).opens_by_hour
    assert len(hours) == 48
    assert {hour: n for hour, n in enumerate(hours) if n} == {0: 2, 5: 2}


def test_a_send_without_events_reports_zeros_and_no_rates(engine, settings):
    from tests.workers_support import seed_send

    send_id = seed_send(engine, settings, 2)
    report = _report(engine, send_id)
    assert report.readers == dict.fromkeys(report.readers, 0)
    assert set(report.rates.values()) == {None}
    assert report.links == [] and sum(report.opens_by_hour) == 0


def test_an_unknown_send_is_not_found(engine):
    with pytest.raises(NotFoundError, match="no send 999"):
        _report(engine, 999)


def _unsubscribed(engine, *send_ids):
    return [_report(engine, send_id).readers["unsubscribed"] for send_id in send_ids]


def test_readers_who_leave_by_our_own_links_count_in_the_last_send_that_reached_them(
    web, engine, sandbox
):
    """Our mail carries our links, not SendGrid's: before, every report said nobody left."""
    url, settings = web
    food_topics(engine)
    add_readers(engine, "ann@example.com", "bob@example.com", "cy@example.com")
    rice, wheat = (
        send_brief(engine, settings, "Rice"),
        send_brief(engine, settings, "Wheat", "Wheat fell."),
    )
    with session_scope(engine) as session:
        ann, bob = (
            get_subscriber(e, session=session).id for e in ("ann@example.com", "bob@example.com")
        )
    one_click = {"List-Unsubscribe": "One-Click"}
    assert call(f"{url}/unsubscribe/{token(settings, ann)}", data=one_click)[0] == 200
    _, page, _ = call(f"{url}/unsubscribe/{token(settings, bob)}")
    answer = call(f"{url}/unsubscribe/{token(settings, bob)}", data={"csrf": form_csrf(page)})
    assert answer[0] == 200
    assert _unsubscribed(engine, rice, wheat) == [0, 2]
    # Leaving again (the mailbox's button twice) is the same reader.
    assert call(f"{url}/unsubscribe/{token(settings, ann)}", data=one_click)[0] == 200
    assert _unsubscribed(engine, rice, wheat) == [0, 2]


def test_a_reader_who_leaves_long_after_their_last_mail_counts_against_no_send(
    engine, settings, sandbox
):
    food_topics(engine)
    add_readers(engine, "ann@example.com")
    rice = send_brief(engine, settings, "Rice")
    with session_scope(engine) as session:
        ann = get_subscriber("ann@example.com", session=session).id
        later = utcnow() + ATTRIBUTION + timedelta(days=1)
        assert count_unsubscribe(ann, at=later, session=session) is None
        assert count_unsubscribe(ann, at=utcnow(), session=session) == rice
    assert _unsubscribed(engine, rice) == [1]
