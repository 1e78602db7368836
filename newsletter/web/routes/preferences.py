"""A reader's own pages, opened by the signed token in every email: the preference
centre and unsubscribing (a page with a button, and RFC 8058's one-click POST).

Each page shows the reader's status as it is, and offers only what the table of
transitions (`subscribers/status.py`) lets a reader do from there: a reader who left can
come back (by confirming again), one whose mailbox bounced or who reported spam can change
nothing here, and a forgotten reader's old links no longer work at all. An action the
status does not allow changes nothing and answers 409 with the page as it is.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from newsletter.db import session_scope
from newsletter.errors import SubscriberError
from newsletter.links import TEST_COPY_READER
from newsletter.signup import subscribe_again
from newsletter.tallies.unsubscribes import leave_by_link
from newsletter.web.deps import ZONES, FormProblem, Web, WebContext
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.reader import EDITABLE, update_preferences
from subscribers.roster import followed_topics
from subscribers.status import Actor
from subscribers.topics import list_topics

router = APIRouter()
# The zones the form lists, for telling a reader's own zone apart from them.
_OFFERED = frozenset(ZONES)
UNSUBSCRIBE_CSRF = "csrf-unsubscribe"
PREFERENCES_CSRF = "csrf-preferences"
S = SubscriberStatus
# Statuses in which a reader's page can change nothing at all.
SETTLED = (S.BOUNCED, S.COMPLAINED)


def _test_copy(web: WebContext, token: str, what: str) -> HTMLResponse | None:
    """The page for a link from a test copy: staff checking their test read "This link does
    not work" (400), and took unsubscribing to be broken."""
    if web.links.reader_of(token) != TEST_COPY_READER:
        return None
    return web.page("test_copy_link.html", what=what)


def _reader(web: WebContext, token: str) -> Subscriber | None:
    """The reader a link belongs to; None for a forged link or a forgotten reader."""
    subscriber_id = web.links.reader_of(token)
    if subscriber_id is None:
        return None
    with session_scope(web.engine) as session:
        person = session.get(Subscriber, subscriber_id)
    return None if person is None or person.status == S.FORGOTTEN else person


def _unsubscribe_page(
    web: WebContext, person: Subscriber, token: str, status: int = 200
) -> HTMLResponse:
    return web.page(
        "unsubscribe.html",
        status,
        token=token,
        csrf=web.forms.sign(UNSUBSCRIBE_CSRF, person.id or 0),
        email=person.email,
        state=person.status,
    )


@router.get("/unsubscribe/{token}")
def unsubscribe_page(token: str, web: Web) -> HTMLResponse:
    if test_copy := _test_copy(web, token, "unsubscribe page"):
        return test_copy
    person = _reader(web, token)
    if person is None:
        return web.page("link_invalid.html", 400)
    return _unsubscribe_page(web, person, token)


@router.post("/unsubscribe/{token}")
def unsubscribe(
    token: str,
    web: Web,
    csrf: Annotated[str, Form()] = "",
    one_click: Annotated[str, Form(alias="List-Unsubscribe")] = "",
) -> Response:
    if test_copy := _test_copy(web, token, "unsubscribe page"):
        return test_copy
    person = _reader(web, token)
    if person is None or person.id is None:
        return web.page("link_invalid.html", 400)
    from_mailbox = one_click == "One-Click"  # RFC 8058: the mailbox provider's button
    if from_mailbox:
        with session_scope(web.engine) as session:
            left = leave_by_link(
                session.get_one(Subscriber, person.id), session=session, actor=Actor.ONE_CLICK
            )
        return PlainTextResponse("Unsubscribed." if left else "No mail goes to this address.")
    if person.status in SETTLED:
        return _unsubscribe_page(web, person, token, 409)
    if person.status != S.UNSUBSCRIBED and web.forms.verify(UNSUBSCRIBE_CSRF, csrf) != person.id:
        return web.page("link_invalid.html", 400)
    with session_scope(web.engine) as session:
        current = session.get_one(Subscriber, person.id)
        leave_by_link(current, session=session)
    return _unsubscribe_page(web, current, token)


def _preferences(
    web: WebContext, person: Subscriber, token: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    with session_scope(web.engine) as session:
        followed = followed_topics(person, session=session)
        topics = list_topics(session=session, offered_only=True)
    return web.page(
        "preferences.html",
        status,
        person=person,
        state=person.status,
        token=token,
        topics=topics,
        followed=set(followed) if person.status in EDITABLE else set(),
        # A reader set up by staff or an import may hold a zone the list leaves out
        # (CET, Etc/GMT-9): offered first and chosen, or saving would move them to UTC.
        zones=ZONES if person.timezone in _OFFERED else [person.timezone, *ZONES],
        csrf=web.forms.sign(PREFERENCES_CSRF, person.id or 0),
        **extra,
    )


@router.get("/preferences/{token}")
def preferences(token: str, web: Web) -> HTMLResponse:
    if test_copy := _test_copy(web, token, "preferences page"):
        return test_copy
    person = _reader(web, token)
    if person is None:
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
    if test_copy := _test_copy(web, token, "preferences page"):
        return test_copy
    person = _reader(web, token)
    if person is None:
        return web.page("link_invalid.html", 400)
    allowed = {
        "save": person.status in EDITABLE,
        "unsubscribe": person.status not in SETTLED,
        "resubscribe": person.status in (S.UNSUBSCRIBED, S.PENDING),
    }
    if not allowed.get(action, False):
        return _preferences(web, person, token, 409 if action in allowed else 400)
    if web.forms.verify(PREFERENCES_CSRF, csrf) != person.id:
        return web.page("link_invalid.html", 400)
    entered: dict[str, Any] = {
        "topics": topics or [],
        "cadence": cadence or person.cadence,
        "timezone": timezone or person.timezone,
    }
    with session_scope(web.engine) as session:
        current = session.get_one(Subscriber, person.id)
        if action == "unsubscribe":
            leave_by_link(current, session=session)
            return _unsubscribe_page(web, current, token)
        try:
            if action == "resubscribe":
                sent = subscribe_again(session, current, **entered)
            else:
                update_preferences(current, session=session, paused=paused == "yes", **entered)
        except SubscriberError as exc:
            session.rollback()
            return _preferences(web, person, token, 400, problem=FormProblem.of(exc))
    if action == "resubscribe":
        return _preferences(web, current, token, confirmation_sent=sent)
    return _preferences(web, current, token, saved=True)
