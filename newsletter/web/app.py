"""The web side (FastAPI): the reader's pages, the provider webhook, the staff console under
/admin (`newsletter.web.console`), and for the operator /healthz, /readyz and /metrics
(`routes/health.py`).

Route handlers live in `routes/`, one module per page family, and are thin: they check
what came in and call plain functions. Pages are Jinja2 templates under `templates/web/`,
autoescaped, served with a strict Content-Security-Policy; the stylesheet is served by the
app (`static/`); no stack trace ever reaches a browser.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsletter.config import Settings
from newsletter.db import make_engine
from newsletter.db.outage import is_outage, outage_words
from newsletter.logs import loggable_path
from newsletter.web import console
from newsletter.web.console.deps import Console
from newsletter.web.deps import TOKEN_PAGES, WebContext
from newsletter.web.hygiene import HeadAsGet, has_nul, is_console
from newsletter.web.limits import BodyLimit, max_body_bytes
from newsletter.web.routes import archive, health, preferences, subscribe, webhooks

log = logging.getLogger("newsletter.web")
STATIC = Path(__file__).parent / "static"
# Paths whose errors stay as FastAPI words them: the provider's and the operator's.
_MACHINES = ("/webhooks/", "/healthz", "/readyz", "/metrics", "/static/")
# When to ask again while the database does not answer: a server restarting is back in
# seconds, and SendGrid retries on its own schedule whatever this says.
_OUTAGE_RETRY_SECONDS = 30


def content_security_policy(settings: Settings) -> str:
    """Nothing inline, nothing from elsewhere: styles from the app itself, images from the
    app and the origins the firm configured (NEWSLETTER_IMAGE_ORIGINS, the logo's)."""
    images = " ".join(["'self'", *settings.image_origins])
    return (
        f"default-src 'none'; style-src 'self'; img-src {images}; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="newsletter", docs_url=None, redoc_url=None, openapi_url=None)
    engine = make_engine(settings.DATABASE_URL)
    web = app.state.web = WebContext.build(settings, engine)
    csp = content_security_policy(settings)
    brand_css = web.brand.stylesheet()

    def too_large(path: str, limit: int) -> Response:
        if path.startswith("/webhooks/"):
            return PlainTextResponse(f"refused: more than {limit} bytes", status_code=413)
        return web.page("too_large.html", 413)

    async def http_error(request: Request, exc: Exception) -> Response:
        error = cast(StarletteHTTPException, exc)
        path = request.url.path
        if error.status_code == 413:
            return too_large(path, max_body_bytes(path))
        if is_console(path) and error.status_code in (404, 405):
            # A console address that does not exist: its own page, not `{"detail": …}`.
            desk: Console = request.app.state.console
            staff = await run_in_threadpool(desk.visitor, request)
            if staff is None:
                return console.sign_in_first(request, settings)
            response = desk.page(request, "not_found.html", staff, error.status_code, what="page")
            response.headers.update(error.headers or {})
            return response
        if path.startswith(_MACHINES) or is_console(path) or error.status_code >= 500:
            return await http_exception_handler(request, error)
        # A reader's page, not `{"detail": "Not Found"}`: a link cut short in an email, a
        # form a browser mangled. The status stays (and a 405's Allow header).
        page = "not_found.html" if error.status_code in (404, 405) else "bad_request.html"
        response = web.page(page, error.status_code, anywhere=True)
        response.headers.update(error.headers or {})
        return response

    async def unreadable(request: Request, exc: Exception) -> Response:
        """A path or form FastAPI could not read (`/admin/briefs/abc`, a field past its
        length): a page naming what, not `{"detail": [...]}`. A bad id in the path is a
        page that does not exist."""
        error = cast(RequestValidationError, exc)
        path = request.url.path
        if path.startswith(_MACHINES):
            return await request_validation_exception_handler(request, error)
        in_path = any(tuple(problem["loc"])[:1] == ("path",) for problem in error.errors())
        if not is_console(path):
            return web.page(
                "not_found.html" if in_path else "bad_request.html",
                404 if in_path else 400,
                anywhere=True,
            )
        desk: Console = request.app.state.console
        staff = await run_in_threadpool(desk.visitor, request)
        if in_path:
            return desk.page(request, "not_found.html", staff, 404, what="page")
        problems = [
            (str(tuple(problem["loc"])[-1]), str(problem["msg"])) for problem in error.errors()[:5]
        ]
        return desk.page(request, "bad_request.html", staff, 400, problems=problems)

    def database_down(request: Request, exc: Exception) -> Response:
        """503 and a line in the log: a stranger's page, the console's, or for a machine
        (SendGrid posts its events again after a 5xx) a sentence."""
        path = request.url.path
        log.warning(
            "database not answering, serving %s: %s", loggable_path(path), outage_words(exc)
        )
        response: Response
        if path.startswith(_MACHINES):
            response = PlainTextResponse("the database is not answering; try again", 503)
        elif is_console(path):
            desk: Console = request.app.state.console
            response = desk.page(request, "unavailable.html", None, 503)
        else:
            response = web.page("unavailable.html", 503)
        response.headers["Retry-After"] = str(_OUTAGE_RETRY_SECONDS)
        return response

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, unreadable)
    app.add_middleware(BodyLimit, refusal=too_large)
    app.add_middleware(HeadAsGet)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response: Response
        try:
            # The console says in words what a NUL in its own forms' paths breaks.
            if has_nul(request.scope) and not is_console(request.url.path):
                response = web.page("not_found.html", 404, anywhere=True)
            else:
                response = await call_next(request)
        except Exception as exc:
            if not is_outage(exc):
                log.exception("error serving %s", loggable_path(request.url.path))
                response = PlainTextResponse("Something went wrong on our side.", status_code=500)
            else:
                response = database_down(request, exc)
        # A page that needs another policy (the console's, its email previews) sets its own.
        response.headers.setdefault("Content-Security-Policy", csp)
        if is_console(request.url.path):
            # Nothing of the console stays in a cache or the back button after signing out.
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.url.path.startswith(TOKEN_PAGES):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/static/brand.css", include_in_schema=False)
    def brand_stylesheet() -> Response:
        """The firm's colours, from settings; before the mount, so it answers first."""
        return Response(
            brand_css,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        """Browsers ask for it whatever a page says: every console page logged a 404."""
        return FileResponse(
            STATIC / "favicon.svg",
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (subscribe, preferences, archive, webhooks, health):
        app.include_router(module.router)
    console.install(app, settings, engine)
    return app


def listens_on_loopback_only(host: str) -> bool:
    """Whether `serve --host HOST` is reachable from this machine alone: a loopback
    address, or `localhost`. Anything else (0.0.0.0, ::, a name) may face the network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_config(
    app: FastAPI, host: str, port: int, log_level: str = "info", *, own_logging: bool = False
) -> uvicorn.Config:
    """How `newsletter serve` (and the tests) run the app under uvicorn. uvicorn's own
    proxy-header handling is off: it would believe X-Forwarded-For from loopback, and the
    app decides whom to believe (NEWSLETTER_TRUSTED_PROXIES). `own_logging`: uvicorn's lines
    go through the process's one logging setup (newsletter/logs.py, text or JSON)."""
    extra: dict[str, Any] = {"log_config": None} if own_logging else {}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        **extra,
    )
