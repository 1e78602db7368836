"""Subscribing: the form, and the confirm page from the double opt-in email.

The form is checked field by field before anything about the address is looked at, and a
good one is only recorded for the worker: every address gets the same page, status and
timing. The confirm link opens a page with a button; only the button's POST confirms,
because mail scanners fetch (GET) every link in a message.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from newsletter.db import session_scope
from newsletter.errors import SubscriberError
from newsletter.limits import SIGNUPS_PER_NETWORK
from newsletter.signup import Confirmation, check_signup, confirm_signup, record_signup
from newsletter.web.deps import ZONES, ClientIp, FormProblem, Web, WebContext
from subscribers.models import Subscriber, SubscriberStatus, id_of, utcnow
from subscribers.topics import list_topics

router = APIRouter()
FORM_PURPOSE = "subscribe"
CONFIRM_CSRF = "csrf-confirm"
# How long a rendered form stays good to post, in hours.
FORM_HOURS = 24
# What a refused sign-up's Retry-After says: the window the limits count over.
RETRY_AFTER_SECONDS = int(SIGNUPS_PER_NETWORK.window.total_seconds())


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


CROSS_SITE = FormProblem(
    "form",
    "This form was sent from another website. If you want our briefs, check what is "
    "entered below and press Subscribe.",
)


def _from_elsewhere(request: Request, web: WebContext) -> bool:
    """Whether the browser says the form was posted by another site's page. The form's
    token is the same for every visitor in an hour, so a page elsewhere could fetch one
    and sign its visitors up under their own IP address.

    Sec-Fetch-Site is what browsers say now, and a page cannot change it. Where it is not
    sent, Origin is compared with ours (NEWSLETTER_BASE_URL's, or the request's own host),
    both as browsers spell an origin. Origin `null` passes: our pages' `Referrer-Policy:
    no-referrer` makes browsers send it with our own form, so a page elsewhere that asks
    for the same passes too, in the old browsers this fallback is for."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "cross-site"
    origin = request.headers.get("origin", "null")
    if origin == "null":
        return False
    base = urlsplit(web.settings.NEWSLETTER_BASE_URL)
    ours = {_origin(base.scheme, base.netloc), _origin(request.url.scheme, request.url.netloc)}
    try:
        theirs = urlsplit(origin)
        return _origin(theirs.scheme, theirs.netloc) not in ours
    except ValueError:  # not a URL at all ("http://[")
        return True


def _origin(scheme: str, netloc: str) -> str:
    """An origin as a browser spells it: lower case, no default port."""
    scheme, host = scheme.lower(), netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return f"{scheme}://{host.removesuffix(default) if default else host}"


@router.post("/subscribe")
def subscribe(
    request: Request,
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
    if _from_elsewhere(request, web):
        return _form(web, 403, entered=entered, problem=CROSS_SITE)
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
        refused = web.page("slow_down.html", 429)
        refused.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return refused
    # The same page whether the address is new, listed, or never to be mailed.
    return web.page("check_email.html")


def _confirmable(web: WebContext, token: str, *, left: int) -> Subscriber | HTMLResponse:
    """The reader a genuine confirm link was made for, if it can still confirm them; else
    the page saying why not. A reader who unsubscribed since the email was sent is told
    so, and how to come back (`left` is that page's status): "this link does not work"
    sent them looking for a fault in a link that was whole."""
    subscriber_id = web.links.confirmed_subscriber(token)
    person = None
    if subscriber_id is not None:
        with session_scope(web.engine) as session:
            person = session.get(Subscriber, subscriber_id)
    if person is not None and person.status == SubscriberStatus.UNSUBSCRIBED:
        return web.page("confirm_left.html", left)
    if person is None or person.status not in (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE):
        return web.page("link_invalid.html", 400)
    return person


@router.get("/confirm/{token}")
def confirm_page(token: str, web: Web) -> HTMLResponse:
    """The link in the email: a page with one button. Fetching it changes nothing."""
    person = _confirmable(web, token, left=200)
    if isinstance(person, HTMLResponse):
        return person
    if person.status == SubscriberStatus.ACTIVE:
        return web.page("confirmed.html", welcome=False)
    return web.page(
        "confirm.html",
        token=token,
        email=person.email,
        csrf=web.forms.sign(CONFIRM_CSRF, id_of(person)),
    )


@router.post("/confirm/{token}")
def confirm(token: str, web: Web, ip: ClientIp, csrf: Annotated[str, Form()] = "") -> HTMLResponse:
    person = _confirmable(web, token, left=409)
    if isinstance(person, HTMLResponse):
        return person
    if web.forms.verify(CONFIRM_CSRF, csrf) != person.id:
        return web.page("link_invalid.html", 400)
    done = confirm_signup(web.engine, id_of(person), ip=ip)
    if not done:
        return web.page("link_invalid.html", 400)
    # A second press (a double click, the page posted again) sends no second welcome.
    return web.page("confirmed.html", welcome=done is Confirmation.CONFIRMED)
