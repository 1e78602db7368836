"""Topics: add, rename, merge, keywords, and hide from the public forms (subscribe and
preferences); each change audited. The work and its audit entry are
newsletter/readers/topic_changes.py's, as for the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col

from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.readers import topic_changes
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep, StaffUser
from newsletter.web.console.sessions import SignedIn
from newsletter.web.deps import ClientIp
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic
from subscribers.roster import NAME_MAX
from subscribers.topics import list_topics

router = APIRouter(prefix="/admin/topics", dependencies=ROUTER_GUARD)
KEYWORDS_MAX = 2000


_ON_THE_LIST = [SubscriberStatus.ACTIVE, SubscriberStatus.PENDING, SubscriberStatus.PAUSED]


def _followers(session: Session) -> dict[int, int]:
    """Readers still on the list who follow each topic by name (not through "all")."""
    rows = session.execute(
        sa.select(col(SubscriberTopic.topic_id), sa.func.count())
        .join(Subscriber, col(Subscriber.id) == col(SubscriberTopic.subscriber_id))
        .where(col(Subscriber.status).in_(_ON_THE_LIST))
        .group_by(col(SubscriberTopic.topic_id))
    ).all()
    return {topic_id: count for topic_id, count in rows}


def _follow_everything(session: Session) -> int:
    """Readers still on the list who follow every topic: each topic reaches them too, so
    the page says so beside the counts by name (the list's topic filter counts them)."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Subscriber)
            .where(col(Subscriber.status).in_(_ON_THE_LIST), col(Subscriber.all_topics).is_(True))
        )
        or 0
    )


def _page(
    request: Request, console: ConsoleDep, staff: SignedIn, status: int = 200, error: str = ""
) -> HTMLResponse:
    with session_scope(console.engine) as session:
        topics = list_topics(session=session)
        followers = _followers(session)
        everything = _follow_everything(session)
    return console.page(
        request,
        "topics.html",
        staff,
        status,
        topics=topics,
        followers=followers,
        everything=everything,
        error=error,
    )


@router.get("")
def topics(request: Request, console: ConsoleDep, staff: StaffUser) -> HTMLResponse:
    return _page(request, console, staff)


def _change(
    request: Request,
    console: ConsoleDep,
    staff: SignedIn,
    change: Callable[[Session], object],
    notice: str = "topic_saved",
) -> Response:
    """One change in one transaction (its audit entry is written by the change); a
    refusal re-renders the page with the reason and changes nothing."""
    try:
        with session_scope(console.engine) as session:
            change(session)
    except NewsletterError as exc:
        return _page(request, console, staff, 400, str(exc))
    return RedirectResponse(f"/admin/topics?notice={notice}", status_code=303)


def _words(text: str) -> list[str]:
    return [word for word in text.split(",") if word.strip()]


@router.post("")
def add(
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    slug: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=NAME_MAX)] = "",
    keywords: Annotated[str, Form(max_length=KEYWORDS_MAX)] = "",
) -> Response:
    def change(session: Session) -> object:
        return topic_changes.add(
            slug, name, _words(keywords), session=session, actor=staff.email, ip=ip
        )

    return _change(request, console, staff, change)


@router.post("/{slug}/rename")
def rename(
    slug: str,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    new_slug: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=NAME_MAX)] = "",
) -> Response:
    def change(session: Session) -> object:
        return topic_changes.rename(
            slug, new_slug or None, session=session, actor=staff.email, name=name or None, ip=ip
        )

    return _change(request, console, staff, change)


@router.post("/{slug}/keywords")
def keywords(
    slug: str,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    keywords: Annotated[str, Form(max_length=KEYWORDS_MAX)] = "",
) -> Response:
    def change(session: Session) -> object:
        return topic_changes.change_keywords(
            slug, _words(keywords), session=session, actor=staff.email, ip=ip
        )

    return _change(request, console, staff, change)


@router.post("/{slug}/hide")
def hide(
    slug: str,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    hidden: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    def change(session: Session) -> object:
        return topic_changes.hide(slug, hidden == "yes", session=session, actor=staff.email, ip=ip)

    return _change(request, console, staff, change)


@router.post("/{slug}/merge")
def merge(
    slug: str,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    into: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    def change(session: Session) -> object:
        return topic_changes.merge(slug, into, session=session, actor=staff.email, ip=ip)

    return _change(request, console, staff, change, "topic_merged")
