"""Subscribing: the form, and the confirm link from the double opt-in email."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse

from newsletter.db import session_scope
from newsletter.errors import SubscriberError
from newsletter.signup import finish_signup, start_signup
from newsletter.web.deps import ZONES, ClientIp, Web, WebContext
from subscribers.topics import list_topics

router = APIRouter()
FORM_PURPOSE = "subscribe"
# How long a rendered form stays good to post, in hours.
FORM_HOURS = 24


def _form(web: WebContext, status: int = 200, **extra: object) -> HTMLResponse:
    with session_scope(web.engine) as session:
        topics = list_topics(session=session)
    # The CSRF token of an anonymous form: signed, and bound to the hour it was made.
    csrf = web.forms.sign(FORM_PURPOSE, int(time.time()) // 3600)
    return web.page(
        "subscribe.html",
        status,
        topics=topics,
        zones=ZONES,
        default_zone=web.settings.NEWSLETTER_TIMEZONE,
        csrf=csrf,
        **extra,
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
    hour = web.forms.verify(FORM_PURPOSE, csrf)
    if hour is None or int(time.time()) // 3600 - hour > FORM_HOURS:
        return web.page("link_invalid.html", 400)
    if website:  # the honeypot: people never see it, simple bots fill it
        return web.page("check_email.html")
    address = email.strip()
    if not (web.limiter.allow(f"ip:{ip}") and web.limiter.allow(f"to:{address.lower()}")):
        return web.page("slow_down.html", 429)
    try:
        start_signup(
            web.engine,
            email=address,
            name=name,
            topics=topics or [],
            cadence=cadence,
            timezone=timezone or web.settings.NEWSLETTER_TIMEZONE,
            ip=ip,
        )
    except SubscriberError as exc:
        return _form(web, 400, error=str(exc))
    # The same page whether the address was new, pending or already subscribed.
    return web.page("check_email.html")


@router.get("/confirm/{token}")
def confirm_link(token: str, web: Web, ip: ClientIp) -> HTMLResponse:
    if not finish_signup(web.engine, web.links, token, ip=ip):
        return web.page("link_invalid.html", 400)
    return web.page("confirmed.html")
