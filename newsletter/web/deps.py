"""What every route needs, built once per app and handed to handlers by FastAPI.

Handlers are plain `def`s: FastAPI runs them in its thread pool, so a slow database call
holds one worker thread, never the event loop that serves every other request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import available_timezones

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine

from newsletter.branding import Branding
from newsletter.config import Settings
from newsletter.db import migration_heads
from newsletter.errors import InvalidSubscriberError, NewsletterError, UnknownTopicError
from newsletter.links import Links
from newsletter.render import page_environment
from newsletter.web.limits import Network, client_address, trusted_networks
from subscribers.roster import NAME_MAX
from subscribers.tokens import TokenSigner

# Every zone a reader may pick: the IANA areas, and UTC for those who think in it.
ZONES = [
    "UTC",
    *sorted(zone for zone in available_timezones() if "/" in zone and not zone.startswith("Etc/")),
]
# Pages opened by a reader's signed link: never kept by a browser or a proxy's cache.
TOKEN_PAGES = ("/unsubscribe/", "/preferences/", "/confirm/")


@dataclass
class WebContext:
    settings: Settings
    engine: Engine
    links: Links
    # Signs CSRF tokens of forms; keyed apart from link tokens so neither passes for the other.
    forms: TokenSigner
    pages: jinja2.Environment
    trusted_proxies: tuple[Network, ...]
    brand: Branding
    # The revisions this process's code was written for, read at start-up: `/readyz` says
    # a database migrated past them since (an upgrade's `init`) needs the process restarted.
    started_at_heads: tuple[str, ...]

    @classmethod
    def build(cls, settings: Settings, engine: Engine) -> WebContext:
        secret = settings.NEWSLETTER_SECRET_KEY.get_secret_value()
        return cls(
            settings=settings,
            engine=engine,
            links=Links.from_settings(settings),
            forms=TokenSigner(secret + ":forms"),
            pages=page_environment(settings.NEWSLETTER_TEMPLATES_DIR),
            trusted_proxies=trusted_networks(settings.NEWSLETTER_TRUSTED_PROXIES),
            brand=Branding.from_settings(settings),
            started_at_heads=migration_heads(settings.NEWSLETTER_MIGRATIONS_DIR),
        )

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A page in the firm's header and footer (`_page.html` reads `brand`)."""
        html = self.pages.get_template(name).render(brand=self.brand, **context)
        return HTMLResponse(html, status_code=status)


@dataclass(frozen=True)
class FormProblem:
    """What is wrong with a form, in words for the person filling it in, and which field
    to mark (`aria-invalid`, the message tied to it, focus on it)."""

    field: str
    message: str

    @classmethod
    def of(cls, error: NewsletterError) -> FormProblem:
        if isinstance(error, UnknownTopicError):
            return cls("topics", "One of the topics you chose is no longer offered: choose again.")
        field = error.field if isinstance(error, InvalidSubscriberError) else ""
        reason = error.reason if isinstance(error, InvalidSubscriberError) else str(error)
        words = {
            "email": f"Check your email address: {reason.rstrip('.')}.",
            "name": f"Check your name: it {reason.rstrip('.')} (at most {NAME_MAX} characters,"
            " letters as you would write them).",
            "topics": "Choose at least one topic, or Everything.",
            "cadence": "Choose how often you would like to hear from us.",
            "timezone": "Choose your timezone from the list.",
        }
        return cls(field or "form", words.get(field, reason))


def get_web(request: Request) -> WebContext:
    web: WebContext = request.app.state.web
    return web


def client_ip(request: Request, web: Annotated[WebContext, Depends(get_web)]) -> str:
    """The client's address: the socket's peer, or what trusted proxies say it is."""
    peer = request.client.host if request.client else ""
    return client_address(peer, request.headers.getlist("x-forwarded-for"), web.trusted_proxies)


Web = Annotated[WebContext, Depends(get_web)]
ClientIp = Annotated[str, Depends(client_ip)]
