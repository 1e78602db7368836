"""The web side (FastAPI): the reader's pages, the provider webhook, the staff console under
/admin (`newsletter.web.console`), and for the operator /healthz, /readyz and /metrics
(`routes/health.py`).

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
from newsletter.web import console
from newsletter.web.deps import WebContext
from newsletter.web.routes import archive, health, preferences, subscribe, webhooks

log = logging.getLogger("newsletter.web")
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="newsletter", docs_url=None, redoc_url=None, openapi_url=None)
    engine = make_engine(settings.DATABASE_URL)
    app.state.web = WebContext.build(settings, engine)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            log.exception("error serving %s", request.url.path)
            response = PlainTextResponse("Something went wrong on our side.", status_code=500)
        # A page that needs another policy (the console's, its email previews) sets its own.
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.url.path.startswith("/admin"):
            # Nothing of the console stays in a cache or the back button after signing out.
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (subscribe, preferences, archive, webhooks, health):
        app.include_router(module.router)
    console.install(app, settings, engine)
    return app
