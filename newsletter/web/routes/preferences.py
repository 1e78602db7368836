"""A reader's own pages, opened by the signed token in every email: the preference
centre and unsubscribing (a page with a button, and RFC 8058's one-click POST)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from newsletter.db import session_scope
from newsletter.errors import SubscriberError
from newsletter.web.deps import ZONES, Web, WebContext
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.roster import followed_topics, set_status, update_preferences
from subscribers.topics import list_topics

router = APIRouter()
UNSUBSCRIBE_CSRF = "csrf-unsubscribe"
PREFERENCES_CSRF = "csrf-preferences"


def _reader(web: WebContext, token: str) -> Subscriber | None:
    subscriber_id = web.links.reader_of(token)
    if subscriber_id is None:
        return None
    with session_scope(web.engine) as session:
        return session.get(Subscriber, subscriber_id)


@router.get("/unsubscribe/{token}")
def unsubscribe_page(token: str, web: Web) -> HTMLResponse:
    person = _reader(web, token)
    if person is None or person.id is None:
        return web.page("link_invalid.html", 400)
    return web.page(
        "unsubscribe.html",
        token=token,
        csrf=web.forms.sign(UNSUBSCRIBE_CSRF, person.id),
        email=person.email,
        done=person.status == SubscriberStatus.UNSUBSCRIBED,
    )


@router.post("/unsubscribe/{token}")
def unsubscribe(
    token: str,
    web: Web,
    csrf: Annotated[str, Form()] = "",
    one_click: Annotated[str, Form(alias="List-Unsubscribe")] = "",
) -> Response:
    person = _reader(web, token)
    if person is None or person.id is None:
        return web.page("link_invalid.html", 400)
    from_mailbox = one_click == "One-Click"  # RFC 8058: the mailbox provider's button
    if not from_mailbox and web.forms.verify(UNSUBSCRIBE_CSRF, csrf) != person.id:
        return web.page("link_invalid.html", 400)
    with session_scope(web.engine) as session:
        current = session.get_one(Subscriber, person.id)
        if current.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING):
            set_status(current, SubscriberStatus.UNSUBSCRIBED, by="subscriber", session=session)
    if from_mailbox:
        return PlainTextResponse("Unsubscribed.")
    return web.page("unsubscribe.html", token=token, email=person.email, done=True, csrf="")


def _preferences(
    web: WebContext, person: Subscriber, token: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    with session_scope(web.engine) as session:
        followed = followed_topics(person, session=session)
        topics = list_topics(session=session)
    return web.page(
        "preferences.html",
        status,
        person=person,
        token=token,
        topics=topics,
        followed=set(followed),
        zones=ZONES,
        csrf=web.forms.sign(PREFERENCES_CSRF, person.id or 0),
        **extra,
    )


@router.get("/preferences/{token}")
def preferences(token: str, web: Web) -> HTMLResponse:
    person = _reader(web, token)
    if person is None or person.status == SubscriberStatus.FORGOTTEN:
        return web.page("link_invalid.html", 400)
    return _preferences(web, person, token)


@router.post("/preferences/{token}")
def save_preferences(
    token: str,
    web: Web,
    csrf: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "save",
    topics: Annotated[list[str] | None, Form()] = None,
    cadence: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    paused: Annotated[str, Form()] = "",
) -> HTMLResponse:
    person = _reader(web, token)
    if person is None or web.forms.verify(PREFERENCES_CSRF, csrf) != person.id:
        return web.page("link_invalid.html", 400)
    with session_scope(web.engine) as session:
        current = session.get_one(Subscriber, person.id)
        if action == "unsubscribe":
            set_status(current, SubscriberStatus.UNSUBSCRIBED, by="subscriber", session=session)
            return web.page(
                "unsubscribe.html", token=token, email=current.email, done=True, csrf=""
            )
        try:
            update_preferences(
                current,
                session=session,
                topics=topics or [],
                cadence=cadence or current.cadence,
                timezone=timezone or current.timezone,
                paused=paused == "yes",
            )
        except SubscriberError as exc:
            session.rollback()
            return _preferences(web, person, token, 400, error=str(exc))
    return _preferences(web, _reader(web, token) or person, token, saved=True)
