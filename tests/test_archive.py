"""The archive through real HTTP (uvicorn on 127.0.0.1): excerpts, dates in words, topics,
a topic filter, paging, an Atom feed; who may read it (NEWSLETTER_ARCHIVE); the pages'
Content-Security-Policy and the brand's stylesheet."""

from __future__ import annotations

import re
import urllib.parse
from datetime import date, timedelta
from xml.etree import ElementTree as ET

import pytest
from sqlmodel import select

from newsletter.briefs import add_brief, parse_brief
from newsletter.db import session_scope
from newsletter.links import Links
from newsletter.models import Send
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from subscribers.models import SubscriberStatus
from subscribers.roster import add_subscriber
from subscribers.status import Actor, change_status
from subscribers.topics import add_topic
from tests.conftest import serve_app
from tests.test_web import _call

ATOM = "{http://www.w3.org/2005/Atom}"


def _brief(number: int, topics: list[str], **front: str) -> str:
    day = date(2026, 1, 1) + timedelta(days=number)
    extra = "".join(f"{key}: {value}\n" for key, value in front.items())
    return (
        f"---\ntitle: Brief number {number}\ndate: {day.isoformat()}\n"
        f"topics: [{', '.join(topics)}]\nauthor: Rosa Delgado\n{extra}---\n\n"
        f"### Key takeaways\n\n- Takeaway of brief {number}, with **emphasis**.\n\n---\n\n"
        "![Chart](https://charts.example.com/a.png)\n\n![Other](https://elsewhere.example.net/b.png)\n"
    )


def publish(engine, settings, sources: list[str], *, draft: str | None = None) -> list[str]:
    """Add briefs and start a send of each (so they count as published); slugs, in order."""
    slugs = []
    with session_scope(engine) as session:
        for slug in ("energy", "japan"):
            add_topic(slug, slug.title(), session=session)
        for source in sources:
            slug = add_brief(parse_brief(source), session=session).brief.slug
            # No reader is needed to publish a brief, only a send that starts.
            create_send(slug, session=session, settings=settings, allow_empty=True)
            slugs.append(slug)
        if draft:
            add_brief(parse_brief(draft), session=session)
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    with session_scope(engine) as session:
        assert all(send.started_at for send in session.exec(select(Send)))
    return slugs


@pytest.fixture
def site(settings, sandbox, engine):
    """The app with 12 published briefs (on energy, or japan every third) and one draft."""
    with serve_app(settings, NEWSLETTER_IMAGE_ORIGINS="https://charts.example.com") as (url, s):
        sources = [_brief(n, ["japan"] if n % 3 == 0 else ["energy"]) for n in range(1, 13)]
        slugs = publish(engine, s, sources, draft=_brief(99, ["energy"]))
        yield url, s, slugs


def test_the_archive_shows_excerpts_dates_in_words_authors_and_topics(site):
    url, _, slugs = site
    status, page, _ = _call(f"{url}/archive")
    assert status == 200
    assert f'href="/archive/{slugs[-1]}"' in page  # newest first
    assert "13 January 2026" in page and "Rosa Delgado" in page
    assert "Takeaway of brief 12, with emphasis." in page  # plain words, no ** marks
    assert '<a href="/archive?topic=energy">Energy</a>' in page
    assert "Brief number 99" not in page  # a draft is never shown


def test_the_archive_pages_ten_briefs_at_a_time(site):
    url, _, slugs = site
    _, first, _ = _call(f"{url}/archive")
    assert first.count("<h2>") == 10 and 'href="/archive?page=2"' in first
    status, second, _ = _call(f"{url}/archive?page=2")
    assert status == 200 and second.count("<h2>") == 2
    assert f'href="/archive/{slugs[0]}"' in second and 'href="/archive"' in second
    assert "<title>Briefs, page 2 · Example Analysis</title>" in second


@pytest.mark.parametrize("page", ["3", "0", "abc", "99999", "1e3", "²", "9" * 50])
def test_a_page_that_does_not_exist_is_a_404_page_never_a_500(site, page):
    url, _, _ = site
    status, body, _ = _call(f"{url}/archive?page={urllib.parse.quote(page)}")
    assert status == 404 and "<h1>Page not found</h1>" in body


def test_the_topic_filter_shows_only_that_topics_briefs(site):
    url, _, slugs = site
    status, page, _ = _call(f"{url}/archive?topic=japan")
    assert status == 200 and "<h1>Briefs on Japan</h1>" in page
    shown = re.findall(r'<h2><a href="/archive/([^"]+)"', page)
    assert shown == [slugs[n - 1] for n in (12, 9, 6, 3)]
    assert 'aria-current="page">Japan</a>' in page
    for topic in ("no-such-topic", "x" * 5000, "%00"):
        status, page, _ = _call(f"{url}/archive?topic={topic}")
        assert status == 404 and "<h1>Page not found</h1>" in page


def test_the_atom_feed_lists_the_newest_briefs_with_links_and_topics(site):
    url, _, slugs = site
    status, body, headers = _call(f"{url}/archive/feed.atom?topic=japan")
    assert status == 200 and headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(body.encode())  # noqa: S314 - our own server's feed
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == [
        f"Brief number {n}" for n in (12, 9, 6, 3)
    ]
    first = entries[0]
    assert first.find(f"{ATOM}link").get("href") == f"{url}/archive/{slugs[11]}"
    assert first.find(f"{ATOM}category").get("term") == "japan"
    assert first.find(f"{ATOM}summary").text == "Takeaway of brief 12, with emphasis."
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first.find(f"{ATOM}updated").text)
    _, archive, _ = _call(f"{url}/archive")
    assert 'type="application/atom+xml"' in archive


def test_a_briefs_web_version_calls_to_subscribe_and_shows_only_allowed_images(site):
    url, _, slugs = site
    status, page, headers = _call(f"{url}/archive/{slugs[0]}")
    assert status == 200
    assert '<a class="button" href="/subscribe">Subscribe</a>' in page
    assert '<img src="https://charts.example.com/a.png" alt="Chart"' in page
    assert '<a class="image-link" href="https://elsewhere.example.net/b.png">' in page
    assert '<img src="https://elsewhere' not in page and " style=" not in page
    csp = headers["content-security-policy"]
    assert "img-src 'self' https://charts.example.com;" in csp and "style-src 'self';" in csp


def test_the_brands_colours_come_from_a_stylesheet_the_app_serves(settings, engine):
    with serve_app(settings, NEWSLETTER_ACCENT_COLOR="#ffcc00") as (url, _):
        status, css, headers = _call(f"{url}/static/brand.css")
        _, page, _ = _call(f"{url}/subscribe")
    assert status == 200 and headers["content-type"].startswith("text/css")
    # Yellow reads 1.6:1 on white: darkened for text on light, kept for dark mode.
    assert "--accent: #856a00;" in css and "--accent: #ffcc00;" in css
    assert '<link rel="stylesheet" href="/static/brand.css">' in page


# --- Visibility --------------------------------------------------------------------------


@pytest.fixture
def private(settings, sandbox, engine):
    """A subscribers-only archive with one published brief, a reader of it, and one who
    left."""
    with serve_app(settings, NEWSLETTER_ARCHIVE="subscribers") as (url, s):
        with session_scope(engine) as session:
            ann = add_subscriber("ann@example.com", session=session, topics=["all"]).id
            gone = add_subscriber("gone@example.com", session=session, topics=["all"])
            change_status(gone, SubscriberStatus.UNSUBSCRIBED, actor=Actor.READER, session=session)
        [slug] = publish(engine, s, [_brief(1, ["energy"])])
        yield url, s, slug, ann, gone.id


def test_a_subscribers_only_archive_refuses_strangers_and_forged_links(private):
    url, settings, slug, ann, _ = private
    links = Links.from_settings(settings)
    forged = ("?t=forged.token", "?t=%C2%B2.%C2%B2", "?t=" + "a" * 5000)
    for query in ("", *forged, f"?t={links.reader_token(ann)}"):
        for path in ("/archive", f"/archive/{slug}", "/archive/feed.atom"):
            status, page, _ = _call(f"{url}{path}{query}")
            assert status == 403, (path, query)
            assert "The archive is for subscribers" in page and "Brief number" not in page


def test_a_readers_own_link_opens_the_archive_and_every_link_on_it_carries_it(private):
    url, settings, slug, ann, _ = private
    token = Links.from_settings(settings).archive_token(ann)
    status, page, headers = _call(f"{url}/archive?t={token}")
    assert status == 200 and headers["cache-control"] == "private, no-store"
    assert f'href="/archive/{slug}?t={token}"' in page
    assert f'href="/archive/feed.atom?t={token}"' in page
    status, page, headers = _call(f"{url}/archive/{slug}?t={token}")
    assert status == 200 and "Brief number 1" in page
    assert headers["cache-control"] == "private, no-store"
    assert f'href="/archive?t={token}"' in page


def test_a_brief_not_found_in_a_subscribers_only_archive_links_back_with_the_readers_link(
    private,
):
    """The way back was dropped: "See every brief" shows only when the archive is public."""
    url, settings, _, ann, _ = private
    token = Links.from_settings(settings).archive_token(ann)
    status, page, _ = _call(f"{url}/archive/no-such-brief?t={token}")
    assert status == 404 and f'href="/archive?t={token}">See every brief' in page


def test_a_reader_who_left_can_no_longer_open_a_subscribers_only_archive(private):
    url, settings, slug, _, gone = private
    token = Links.from_settings(settings).archive_token(gone)
    assert _call(f"{url}/archive/{slug}?t={token}")[0] == 403


def test_view_in_browser_in_a_subscribers_only_email_opens_that_readers_web_version(
    private, sandbox
):
    url, _, slug, _, _ = private
    [message] = sandbox.messages()  # the brief, as ann received it
    link = re.search(r'<a href="([^"]+)"[^>]*>View in browser</a>', message.html).group(1)
    assert link.startswith(f"{url}/archive/{slug}?t=")
    assert f"View in your browser:\n{link}\n" in message.text
    status, page, _ = _call(link.replace("&amp;", "&"))
    assert status == 200 and "Brief number 1" in page


def test_with_the_archive_off_there_is_no_archive_and_no_view_in_browser(settings, sandbox, engine):
    with serve_app(settings, NEWSLETTER_ARCHIVE="off") as (url, s):
        with session_scope(engine) as session:
            add_subscriber("ann@example.com", session=session, topics=["all"])
        [slug] = publish(engine, s, [_brief(1, ["energy"])])
        for path in ("/archive", f"/archive/{slug}", "/archive/feed.atom"):
            status, page, _ = _call(f"{url}{path}")
            assert status == 404 and "Brief number" not in page
        _, subscribe, _ = _call(f"{url}/subscribe")
    [message] = sandbox.messages()
    assert "View in browser" not in message.html and "/archive" not in message.text
    assert 'href="/archive"' not in subscribe
