"""The archive: published briefs a page at a time (optionally on one topic), an Atom feed,
and each brief's web version ("View in browser").

Who may read it is the firm's choice (NEWSLETTER_ARCHIVE): everyone; only subscribers,
each through the signed link in their own emails (`?t=…`, which every link on these pages
then carries); or nobody. A client briefing is often not public.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from newsletter.briefs.archive import archive_page, archive_topics, published_entry
from newsletter.config import ArchiveVisibility
from newsletter.db import session_scope
from newsletter.render import render_web
from newsletter.web.atom import FEED_ENTRIES, atom_feed
from newsletter.web.deps import Web, WebContext
from subscribers.models import Subscriber, SubscriberStatus

router = APIRouter()
# Readers who may open a subscribers-only archive: those who receive the briefs.
READING = (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED)
MAX_SLUG = 200  # as the column holds
MAX_PAGE = 10_000
MAX_TOKEN = 200  # far above a real one (~40 characters)
MAX_TOPIC = 64  # as the column holds
# Checked in the handlers, not by FastAPI: a bad value gets the reader's 404 page, not JSON.
TopicParam = Annotated[str, Query()]
PageParam = Annotated[str, Query()]
TokenParam = Annotated[str, Query()]


@dataclass(frozen=True)
class Access:
    """How this request may see the archive; `token` is carried on every link."""

    token: str = ""

    def url(self, path: str, **params: object) -> str:
        query = {"t": self.token} if self.token else {}
        query.update({k: str(v) for k, v in params.items() if v not in (None, "", 1)})
        return path + (f"?{urlencode(query)}" if query else "")

    @property
    def query(self) -> str:
        return self.url("")


def _access(web: WebContext, token: str, session: Session) -> Access | None:
    mode = web.settings.NEWSLETTER_ARCHIVE
    if mode is ArchiveVisibility.PUBLIC:
        return Access()
    if mode is ArchiveVisibility.OFF or not token or len(token) > MAX_TOKEN:
        return None
    reader_id = web.links.archive_reader(token)
    reader = session.get(Subscriber, reader_id) if reader_id is not None else None
    return Access(token) if reader is not None and reader.status in READING else None


def _refused(web: WebContext) -> HTMLResponse:
    if web.settings.NEWSLETTER_ARCHIVE is ArchiveVisibility.OFF:
        return web.page("not_found.html", 404)
    return web.page("archive_private.html", 403)


def _not_found(web: WebContext, access: Access) -> HTMLResponse:
    """Not found, with the way back to the archive this reader may read (their own link,
    token and all, when it is for subscribers)."""
    return web.page("not_found.html", 404, archive_url=access.url("/archive"))


def _private(response: Response, access: Access) -> Response:
    if access.token:  # a reader's own link: no shared cache may keep the page
        response.headers["Cache-Control"] = "private, no-store"
    return response


def _page_number(page: str) -> int | None:
    if not page:
        return 1
    if len(page) > 5 or not page.isascii() or not page.isdigit() or not 1 <= int(page) <= MAX_PAGE:
        return None
    return int(page)


@router.get("/archive")
def archive(web: Web, topic: TopicParam = "", page: PageParam = "", t: TokenParam = "") -> Response:
    number = _page_number(page)
    with session_scope(web.engine) as session:
        access = _access(web, t, session)
        if access is None:
            return _refused(web)
        topics = archive_topics(session=session)
        current = next((item for item in topics if item.slug == topic), None)
        if number is None or (topic and current is None) or len(topic) > MAX_TOPIC:
            return _not_found(web, access)
        found = archive_page(session=session, topic=topic or None, number=number)
    if number > found.pages:
        return _not_found(web, access)
    response = web.page(
        "archive.html",
        found=found,
        entries=[
            (entry, access.url(f"/archive/{quote(entry.brief.slug)}")) for entry in found.entries
        ],
        filters=[(item, access.url("/archive", topic=item.slug)) for item in topics],
        current=current,
        all_url=access.url("/archive"),
        topic_url=lambda slug: access.url("/archive", topic=slug),
        newer_url=found.newer and access.url("/archive", topic=topic, page=found.newer),
        older_url=found.older and access.url("/archive", topic=topic, page=found.older),
        feed_url=access.url("/archive/feed.atom", topic=topic),
    )
    return _private(response, access)


@router.get("/archive/feed.atom")
def feed(web: Web, topic: TopicParam = "", t: TokenParam = "") -> Response:
    with session_scope(web.engine) as session:
        access = _access(web, t, session)
        if access is None:
            return _refused(web)
        # A topic no brief of the archive is on: not found, as on the archive's own page
        # (it answered an empty feed, which a feed reader shows as a feed with no news).
        if topic and topic not in {item.slug for item in archive_topics(session=session)}:
            return _not_found(web, access)
        entries = archive_page(session=session, topic=topic or None, per_page=FEED_ENTRIES)
    body = atom_feed(
        web.brand,
        entries.entries,
        base_url=web.settings.NEWSLETTER_BASE_URL,
        self_url=access.url("/archive/feed.atom", topic=topic),
        link=access.url,
    )
    return _private(Response(body, media_type="application/atom+xml; charset=utf-8"), access)


@router.get("/archive/{slug}")
def archived(slug: str, web: Web, t: TokenParam = "") -> Response:
    with session_scope(web.engine) as session:
        access = _access(web, t, session)
        if access is None:
            return _refused(web)
        found = published_entry(slug, session=session) if len(slug) <= MAX_SLUG else None
        if found is None:  # drafts and unsent briefs are not public
            return _not_found(web, access)
        html = render_web(found.brief, found.topics, web.settings, archive_query=access.query)
    return _private(HTMLResponse(html), access)
