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
from newsletter.links import Links
from newsletter.render import page_environment
from newsletter.web.limits import AttemptLimiter
from subscribers.tokens import TokenSigner

ZONES = sorted(
    zone for zone in available_timezones() if "/" in zone and not zone.startswith("Etc/")
)


@dataclass
class WebContext:
    settings: Settings
    engine: Engine
    links: Links
    # Signs CSRF tokens of forms; keyed apart from link tokens so neither passes for the other.
    forms: TokenSigner
    pages: jinja2.Environment
    limiter: AttemptLimiter
    brand: Branding

    @classmethod
    def build(cls, settings: Settings, engine: Engine) -> WebContext:
        secret = settings.NEWSLETTER_SECRET_KEY.get_secret_value()
        return cls(
            settings=settings,
            engine=engine,
            links=Links.from_settings(settings),
            forms=TokenSigner(secret + ":forms"),
            pages=page_environment(settings.NEWSLETTER_TEMPLATES_DIR),
            limiter=AttemptLimiter(),
            brand=Branding.from_settings(settings),
        )

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A page in the firm's header and footer (`_page.html` reads `brand`)."""
        html = self.pages.get_template(name).render(brand=self.brand, **context)
        return HTMLResponse(html, status_code=status)


def get_web(request: Request) -> WebContext:
    web: WebContext = request.app.state.web
    return web


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


Web = Annotated[WebContext, Depends(get_web)]
ClientIp = Annotated[str, Depends(client_ip)]
