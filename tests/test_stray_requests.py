"""Requests no page is written for, as strangers, monitors and mangled links send them:
each gets one of the site's own pages with an honest status, never a 500 or FastAPI's bare
JSON, and a form posted by another site's page records nothing. Over real HTTP."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from newsletter.db import session_scope
from newsletter.models import SignupRequest
from subscribers.roster import add_subscriber, unsubscribe
from subscribers.topics import add_topic
from tests.conftest import sqlite_only
from tests.web_support import call, confirm_token, form_csrf, subscribe, token


@pytest.fixture
def energy(engine):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
    return engine


@pytest.mark.parametrize("path", ["/archive/a%00b", "/archive/feed.atom?topic=a%00", "/%00"])
def test_a_nul_in_the_path_or_query_is_not_found_not_a_server_error(web, energy, path):
    """PostgreSQL refuses NUL in text: the archive's lookup failed with a 500."""
    url, _ = web
    status, page, _ = call(f"{url}{path}")
    assert status == 404 and "<h1>Page not found</h1>" in page


@sqlite_only
@pytest.mark.parametrize("path", ["/nope", "/preferences/", "/confirm/"])
def test_an_address_no_page_is_at_gets_the_sites_not_found_page(web, energy, path):
    """A link cut short in an email answered `{"detail":"Not Found"}`."""
    url, _ = web
    status, page, headers = call(f"{url}{path}")
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in page and 'href="/subscribe"' in page


@sqlite_only
@pytest.mark.parametrize("path", ["/subscribe", "/archive", "/archive/feed.atom"])
def test_head_answers_as_get_does_without_a_body(web, energy, path):
    """Uptime monitors and feed readers ask HEAD; it answered 405."""
    url, _ = web
    status, body, headers = call(f"{url}{path}", method="HEAD")
    _, _, got = call(f"{url}{path}")
    assert status == 200 and body == ""
    assert headers["content-type"] == got["content-type"]


@sqlite_only
def test_a_form_the_server_cannot_read_gets_a_page_not_json(web, energy):
    url, _ = web
    status, page, headers = call(
        f"{url}/subscribe", raw=b"--x--", headers={"Content-Type": "multipart/form-data"}
    )
    assert status == 400 and headers["content-type"].startswith("text/html")
    assert "could not be read" in page and "detail" not in page


def _signups(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(SignupRequest)) or 0


@sqlite_only
@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Origin": "https://evil.example"},  # a browser that sends no Sec-Fetch-Site
    ],
)
def test_a_sign_up_posted_by_another_sites_page_records_nothing(web, energy, headers):
    """The form's token is the same for every visitor in an hour: a page elsewhere could
    fetch one and sign its visitors up under their own IP address."""
    url, _ = web
    status, page, _ = subscribe(url, email="victim@example.com", topics="energy", headers=headers)
    assert status == 403 and "sent from another website" in page
    assert 'value="victim@example.com"' in page  # theirs to send, if they mean to
    assert _signups(energy) == 0


@sqlite_only
@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": "null"},
        # A browser that sends no Sec-Fetch-Site: our no-referrer policy makes it say null.
        {"Origin": "null"},
        {"Origin": "{url}"},  # our own origin, as the request reached us
    ],
)
def test_our_own_form_is_taken_however_the_browser_names_its_origin(web, energy, headers):
    url, _ = web
    headers = {name: value.format(url=url) for name, value in headers.items()}
    status, _, _ = subscribe(url, email="zoe@example.com", topics="energy", headers=headers)
    assert status == 200 and _signups(energy) == 1


@sqlite_only
def test_a_name_refused_on_the_form_says_why(web, energy):
    """It said "at most 200 characters, with no control characters" whatever the fault."""
    url, _ = web
    status, page, _ = subscribe(url, email="zoe@example.com", name="\u202e", topics="energy")
    assert status == 400 and "Check your name: it holds a control character" in page


@sqlite_only
def test_an_old_confirm_link_tells_a_reader_who_left_how_to_come_back(web, energy):
    """It said "This link does not work" of a link that was whole."""
    url, settings = web
    with session_scope(energy) as session:
        person = add_subscriber("ann@example.com", session=session, topics=["energy"])
        unsubscribe("ann@example.com", session=session)
    link = f"{url}/confirm/{confirm_token(settings, person.id)}"
    status, page, _ = call(link)
    assert status == 200 and "You are unsubscribed" in page and 'href="/subscribe"' in page
    status, _, _ = call(link, data={"csrf": "anything"})
    assert status == 409


@sqlite_only
def test_saving_preferences_keeps_a_zone_the_list_does_not_offer(web, energy):
    """An import's `CET` showed as nothing chosen, and saving moved the reader to UTC."""
    url, settings = web
    with session_scope(energy) as session:
        person = add_subscriber("ann@example.com", session=session, topics=["energy"])
        person.timezone = "CET"
        session.add(person)
    link = f"{url}/preferences/{token(settings, person.id)}"
    _, page, _ = call(link)
    assert "<option selected>CET</option>" in page
    chosen = page.split('id="timezone"')[1].split("</select>")[0]
    assert chosen.count(" selected") == 1
    data = {"csrf": form_csrf(page), "action": "save", "topics": "energy", "cadence": "immediate"}
    call(link, data={**data, "timezone": "CET"})
    with session_scope(energy) as session:
        assert session.get(type(person), person.id).timezone == "CET"


@sqlite_only
def test_a_feed_of_a_topic_no_brief_is_on_is_not_found_as_the_archive_page_is(web, energy):
    url, _ = web
    feed, _, _ = call(f"{url}/archive/feed.atom?topic=nosuch")
    page, _, _ = call(f"{url}/archive?topic=nosuch")
    assert feed == page == 404


@sqlite_only
def test_pages_name_an_icon_the_app_serves(web, energy):
    """Every console page logged a 404 for /favicon.ico."""
    url, _ = web
    _, page, _ = call(f"{url}/subscribe")
    assert '<link rel="icon" href="/static/favicon.svg"' in page
    for path in ("/static/favicon.svg", "/favicon.ico"):
        status, body, headers = call(f"{url}{path}")
        assert status == 200 and headers["content-type"].startswith("image/svg+xml")
        assert body.startswith("<svg")
