"""The web side (FastAPI): subscribe with double opt-in, the preference centre, one-click
unsubscribe, the archive, and SendGrid's Event Webhook.

Route handlers are thin: they check what came in and call plain functions
(`newsletter.events`, `subscribers.roster`). Pages are Jinja2 templates under
`templates/web/`, autoescaped, served with a strict Content-Security-Policy; no stack trace
ever reaches a browser.

Link tokens (in every email's unsubscribe and preferences links) are HMAC-signed subscriber
ids, compared in constant time. They do not expire: CAN-SPAM wants a link to work for 30
days at least, and an old email's unsubscribe link should simply keep working. Rotating
NEWSLETTER_SECRET_KEY retires every link at once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from newsletter.briefs import brief_topics
from newsletter.config import Settings
from newsletter.db import make_engine, session_scope
from newsletter.dispatch import LINK_TOKEN_PURPOSE, published_briefs
from newsletter.events import apply_events
from newsletter.render import render_web
from newsletter.signup import AttemptLimiter, finish_signup, start_signup
from newsletter.transports import sendgrid_events
from subscribers.errors import SubscriberError
from subscribers.models import Subscriber, SubscriberStatus, Topic, utcnow
from subscribers.roster import followed_topics, set_status, update_preferences
from subscribers.tokens import TokenSigner
from subscribers.topics import list_topics

log = logging.getLogger("newsletter.web")
ZONES = sorted(
    zone for zone in available_timezones() if "/" in zone and not zone.startswith("Etc/")
)
CSRF_PURPOSE = "csrf-unsubscribe"
PREFERENCES_CSRF = "csrf-preferences"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
STYLE = """
body { margin: 0; background: #f3f4f6; color: #1f2430; font: 18px/1.6 Georgia, serif; }
main { max-width: 560px; margin: 40px auto; background: #fff; padding: 28px 24px; }
h1 { font-size: 26px; line-height: 1.25; margin-top: 0; }
button { font: 600 17px Helvetica, Arial, sans-serif; background: #1d4e89; color: #fff;
  border: 0; padding: 12px 20px; cursor: pointer; }
a { color: #1d4e89; }
input, select { font: 17px Helvetica, Arial, sans-serif; padding: 6px; max-width: 100%; }
fieldset { border: 1px solid #e5e7eb; margin: 16px 0; }
.trap { position: absolute; left: -5000px; }
.error { color: #b91c1c; } .saved { color: #047857; }
button.secondary { background: #6b7280; margin-left: 8px; }
"""


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(settings.DATABASE_URL)
    signer = TokenSigner(settings.NEWSLETTER_SECRET_KEY.get_secret_value())
    pages = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(settings.NEWSLETTER_TEMPLATES_DIR) / "web")),
        autoescape=True,
    )
    app = FastAPI(title="newsletter", docs_url=None, redoc_url=None, openapi_url=None)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(pages.get_template(name).render(**context), status_code=status)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        try:
            response: Response = await call_next(request)
        except Exception:
            log.exception("error serving %s", request.url.path)
            response = PlainTextResponse("Something went wrong on our side.", status_code=500)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.get("/static/site.css")
    def stylesheet() -> Response:
        return Response(STYLE, media_type="text/css")

    def subscriber_for(token: str) -> Subscriber | None:
        subscriber_id = signer.verify(LINK_TOKEN_PURPOSE, token)
        if subscriber_id is None:
            return None
        with session_scope(engine) as session:
            return session.get(Subscriber, subscriber_id)

    @app.get("/unsubscribe/{token}")
    def unsubscribe_page(token: str) -> HTMLResponse:
        person = subscriber_for(token)
        if person is None:
            return page("link_invalid.html", 400)
        return page(
            "unsubscribe.html",
            token=token,
            csrf=signer.sign(CSRF_PURPOSE, person.id or 0),
            email=person.email,
            done=person.status == SubscriberStatus.UNSUBSCRIBED,
        )

    @app.post("/unsubscribe/{token}")
    async def unsubscribe(token: str, request: Request) -> Response:
        form = await request.form()
        person = subscriber_for(token)
        if person is None:
            return page("link_invalid.html", 400)
        one_click = form.get("List-Unsubscribe") == "One-Click"  # RFC 8058, from the mailbox
        if not one_click and signer.verify(CSRF_PURPOSE, str(form.get("csrf", ""))) != person.id:
            return page("link_invalid.html", 400)
        with session_scope(engine) as session:
            current = session.get_one(Subscriber, person.id)
            if current.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING):
                set_status(current, SubscriberStatus.UNSUBSCRIBED, by="subscriber", session=session)
        if one_click:
            return PlainTextResponse("Unsubscribed.")
        return page("unsubscribe.html", token=token, email=person.email, done=True, csrf="")

    limiter = AttemptLimiter()
    form_signer = TokenSigner(settings.NEWSLETTER_SECRET_KEY.get_secret_value() + ":forms")

    def all_topics() -> list[Topic]:
        with session_scope(engine) as session:
            return list_topics(session=session)

    def client_ip(request: Request) -> str:
        return request.client.host if request.client else ""

    @app.get("/")
    @app.get("/subscribe")
    def subscribe_form() -> HTMLResponse:
        # The CSRF token of an anonymous form: signed, and bound to the form's purpose.
        csrf = form_signer.sign("subscribe", int(time.time()) // 3600)
        return page(
            "subscribe.html",
            topics=all_topics(),
            zones=ZONES,
            default_zone=settings.NEWSLETTER_TIMEZONE,
            csrf=csrf,
        )

    @app.post("/subscribe")
    async def subscribe(request: Request) -> HTMLResponse:
        form = await request.form()
        hour = form_signer.verify("subscribe", str(form.get("csrf", "")))
        if hour is None or int(time.time()) // 3600 - hour > 24:
            return page("link_invalid.html", 400)
        email = str(form.get("email", "")).strip()
        if form.get("website"):  # the honeypot: people never see it, simple bots fill it
            return page("check_email.html")
        if not (limiter.allow(f"ip:{client_ip(request)}") and limiter.allow(f"to:{email.lower()}")):
            return page("slow_down.html", 429)
        try:
            start_signup(
                engine,
                settings,
                email=email,
                name=str(form.get("name", "")),
                topics=[str(t) for t in form.getlist("topics")],
                cadence=str(form.get("cadence", "immediate")),
                timezone=str(form.get("timezone") or settings.NEWSLETTER_TIMEZONE),
                ip=client_ip(request),
            )
        except SubscriberError as exc:
            return page(
                "subscribe.html",
                400,
                topics=all_topics(),
                zones=ZONES,
                default_zone=settings.NEWSLETTER_TIMEZONE,
                csrf=form_signer.sign("subscribe", int(time.time()) // 3600),
                error=str(exc),
            )
        # The same page whether the address was new, pending or already subscribed.
        return page("check_email.html")

    @app.get("/confirm/{token}")
    def confirm_link(token: str, request: Request) -> HTMLResponse:
        if not finish_signup(engine, settings, token, ip=client_ip(request)):
            return page("link_invalid.html", 400)
        return page("confirmed.html")

    def preferences_page(
        person: Subscriber, token: str, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        with session_scope(engine) as session:
            followed = followed_topics(person, session=session)
        return page(
            "preferences.html",
            status,
            person=person,
            token=token,
            topics=all_topics(),
            followed=set(followed),
            zones=ZONES,
            csrf=signer.sign(PREFERENCES_CSRF, person.id or 0),
            **extra,
        )

    @app.get("/preferences/{token}")
    def preferences(token: str) -> HTMLResponse:
        person = subscriber_for(token)
        if person is None or person.status == SubscriberStatus.FORGOTTEN:
            return page("link_invalid.html", 400)
        return preferences_page(person, token)

    @app.post("/preferences/{token}")
    async def save_preferences(token: str, request: Request) -> HTMLResponse:
        form = await request.form()
        person = subscriber_for(token)
        if (
            person is None
            or signer.verify(PREFERENCES_CSRF, str(form.get("csrf", ""))) != person.id
        ):
            return page("link_invalid.html", 400)
        with session_scope(engine) as session:
            current = session.get_one(Subscriber, person.id)
            if form.get("action") == "unsubscribe":
                set_status(current, SubscriberStatus.UNSUBSCRIBED, by="subscriber", session=session)
                return page(
                    "unsubscribe.html", token=token, email=current.email, done=True, csrf=""
                )
            try:
                update_preferences(
                    current,
                    session=session,
                    topics=[str(t) for t in form.getlist("topics")],
                    cadence=str(form.get("cadence", current.cadence)),
                    timezone=str(form.get("timezone", current.timezone)),
                    paused=form.get("paused") == "yes",
                )
            except SubscriberError as exc:
                session.rollback()
                return preferences_page(person, token, 400, error=str(exc))
        return preferences_page(subscriber_for(token) or person, token, saved=True)

    @app.get("/archive")
    def archive() -> HTMLResponse:
        with session_scope(engine) as session:
            briefs = published_briefs(session=session)
        return page("archive.html", briefs=briefs)

    @app.get("/archive/{slug}")
    def archived(slug: str) -> HTMLResponse:
        with session_scope(engine) as session:
            found = next((b for b in published_briefs(session=session) if b.slug == slug), None)
            if found is None:  # drafts and unsent briefs are not public
                return page("not_found.html", 404)
            html = render_web(found, brief_topics(found, session=session), settings)
        return HTMLResponse(html)

    @app.post("/webhooks/sendgrid")
    async def sendgrid_webhook(request: Request) -> Response:
        body = await request.body()
        try:
            sendgrid_events.verify(
                settings.SENDGRID_WEBHOOK_PUBLIC_KEY,
                body,
                request.headers.get(sendgrid_events.SIGNATURE_HEADER, ""),
                request.headers.get(sendgrid_events.TIMESTAMP_HEADER, ""),
                now=utcnow(),
            )
            events = sendgrid_events.normalize(body)
        except sendgrid_events.WebhookRejectedError as exc:
            log.warning("SendGrid webhook refused: %s", exc)
            return PlainTextResponse(f"refused: {exc}", status_code=403)
        with session_scope(engine) as session:
            report = apply_events(
                events, session=session, soft_bounce_limit=settings.NEWSLETTER_SOFT_BOUNCE_LIMIT
            )
        return PlainTextResponse(f"applied {report.applied}, duplicates {report.duplicates}")

    return app
