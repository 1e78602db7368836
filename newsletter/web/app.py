"""The web side (FastAPI): the reader's pages and the provider webhook.

Route handlers live in `routes/`, one module per page family, and are thin: they check
what came in and call plain functions. Pages are Jinja2 templates under `templates/web/`,
autoescaped, served with a strict Content-Security-Policy; the stylesheet is served by the
app (`static/`); no stack trace ever reaches a browser.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from newsletter.config import Settings
from newsletter.db import make_engine
from newsletter.web.deps import WebContext
from newsletter.web.routes import archive, preferences, subscribe, webhooks

log = logging.getLogger("newsletter.web")
STATIC = Path(__file__).parent / "static"


def content_security_policy(settings: Settings) -> str:
    """Nothing inline, nothing from elsewhere: styles from the app itself, images from the
    app and the origins the firm configured (NEWSLETTER_IMAGE_ORIGINS, the logo's)."""
    images = " ".join(["'self'", *settings.image_origins])
    return (
        f"default-src 'none'; style-src 'self'; img-src {images}; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="newsletter", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web = WebContext.build(settings, make_engine(settings.DATABASE_URL))
    csp = content_security_policy(settings)
    brand_css = app.state.web.brand.stylesheet()

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            log.exception("error serving %s", request.url.path)
            response = PlainTextResponse("Something went wrong on our side.", status_code=500)
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.get("/static/brand.css", include_in_schema=False)
    def brand_stylesheet() -> Response:
        """The firm's colours, from settings; before the mount, so it answers first."""
        return Response(
            brand_css,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=300"},
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (subscribe, preferences, archive, webhooks):
        app.include_router(module.router)
    return app
