"""The web side: one-click unsubscribe and SendGrid's Event Webhook (FastAPI).

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
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from newsletter.config import Settings
from newsletter.db import make_engine, session_scope
from newsletter.dispatch import LINK_TOKEN_PURPOSE
from newsletter.events import apply_events
from newsletter.transports import sendgrid_events
from subscribers.models import Subscriber, SubscriberStatus, utcnow
from subscribers.roster import set_status
from subscribers.tokens import TokenSigner

log = logging.getLogger("newsletter.web")
CSRF_PURPOSE = "csrf-unsubscribe"
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
