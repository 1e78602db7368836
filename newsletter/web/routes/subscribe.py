"""Subscribing: the form, and the confirm page from the double opt-in email.

The form is checked field by field before anything about the address is looked at, and a
good one is only recorded for the worker: every address gets the same page, status and
timing. The confirm link opens a page with a button; only the button's POST confirms,
because mail scanners fetch (GET) every link in a message.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse

from newsletter.db import session_scope
from newsletter.errors import SubscriberError
from newsletter.signup import Confirmation, check_signup, confirm_signup, record_signup
from newsletter.web.deps import ZONES, ClientIp, FormProblem, Web, WebContext
from subscribers.models import Subscriber, SubscriberStatus, utcnow
from subscribers.topics import list_topics

router = APIRouter()
FORM_PURPOSE = "subscribe"
CONFIRM_CSRF = "csrf-confirm"
# How long a rendered form stays good to post, in hours.
FORM_HOURS = 24


def _form(
    web: WebContext,
    status: int = 200,
    *,
    entered: dict[str, Any] | None = None,
    problem: FormProblem | None = None,
) -> HTMLResponse:
    with session_scope(web.engine) as session:
        topics = list_topics(session=session, offered_only=True)
    # The CSRF token of an anonymous form: signed, and bound to the hour it was made.
    csrf = web.forms.sign(FORM_PURPOSE, int(time.time()) // 3600)
    return web.page(
        "subscribe.html",
        status,
        topics=topics,
        zones=ZONES,
        default_zone=web.settings.NEWSLETTER_TIMEZONE,
        csrf=csrf,
        entered=entered or {},
        problem=problem,
    )


STALE_FORM = FormProblem(
    "form", "This form was open too long to be sent. Check what you entered, then subscribe again."
)


@router.get("/")
@router.get("/subscribe")
def subscribe_form(web: Web) -> HTMLResponse:
    return _form(web)


@router.post("/subscribe")
def subscribe(
    web: Web,
    ip: ClientIp,
    csrf: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    topics: Annotated[list[str] | None, Form()] = None,
    cadence: Annotated[str, Form()] = "immediate",
    timezone: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",
) -> HTMLResponse:
    if website:  # the honeypot: people never see it, simple bots fill it
        return web.page("check_email.html")
    entered: dict[str, Any] = {
        "email": email,
        "name": name,
        "topics": topics or [],
        "cadence": cadence,
        "timezone": timezone or web.settings.NEWSLETTER_TIMEZONE,
    }
    hour = web.forms.verify(FORM_PURPOSE, csrf)
    if hour is None or int(time.time()) // 3600 - hour > FORM_HOURS:
        # A tab left open overnight, or a form posted from elsewhere: nothing is stored,
        # and the person gets the form back as they filled it, with a fresh token.
        return _form(web, 400, entered=entered, problem=STALE_FORM)
    try:
        form = check_signup(engine=web.engine, **entered)
    except SubscriberError as exc:
        return _form(web, 400, entered=entered, problem=FormProblem.of(exc))
    if not record_signup(web.engine, form, ip=ip, now=utcnow()):
        return web.page("slow_down.html", 429)
    # The same page whether the address is new, listed, or never to be mailed.
    return web.page("check_email.html")


def _pending_reader(web: WebContext, token: str) -> Subscriber | None:
    subscriber_id = web.links.confirmed_subscriber(token)
    if subscriber_id is None:
        return None
    with session_scope(web.engine) as session:
        person = session.get(Subscriber, subscriber_id)
    ok = person is not None and person.status in (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE)
    return person if ok else None


@router.get("/confirm/{token}")
def confirm_page(token: str, web: Web) -> HTMLResponse:
    """The link in the email: a page with one button. Fetching it changes nothing."""
    person = _pending_reader(web, token)
    if person is None or person.id is None:
        return web.page("link_invalid.html", 400)
    if person.status == SubscriberStatus.ACTIVE:
        return web.page("confirmed.html", welcome=False)
    return web.page(
        "confirm.html",
        token=token,
        email=person.email,
        csrf=web.forms.sign(CONFIRM_CSRF, person.id),
    )


@router.post("/confirm/{token}")
def confirm(token: str, web: Web, ip: ClientIp, csrf: Annotated[str, Form()] = "") -> HTMLResponse:
    person = _pending_reader(web, token)
    if person is None or person.id is None or web.forms.verify(CONFIRM_CSRF, csrf) != person.id:
        return web.page("link_invalid.html", 400)
    done = confirm_signup(web.engine, person.id, ip=ip)
    if not done:
        return web.page("link_invalid.html", 400)
    # A second press (a double click, the page posted again) sends no second welcome.
    return web.page("confirmed.html", welcome=done is Confirmation.CONFIRMED)
