"""The staff console under /admin: sign-in, dashboard, briefs, sends, subscribers (the
list, one reader, import and export), topics, reports, the audit log.

`install(app, …)` adds its routers and its refusals (a visitor is sent to sign in and shown
nothing; a post without the session's CSRF token changes nothing); its cap on request
bodies is the app's (`web/limits.py`). Pages are templates under `templates/console/`;
the stylesheet and one small script are served from `newsletter/web/static/`.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from newsletter.config import Settings
from newsletter.web.console.deps import Console, CsrfRefused, StaffRequired, safe_next
from newsletter.web.console.routes import (
    audit,
    briefs,
    dashboard,
    login,
    previews,
    reports,
    sends,
    subscriber_files,
    subscribers,
    topics,
)
from newsletter.web.console.sessions import clear_cookie, cookie_name

ROUTERS = (
    login.router,
    dashboard.router,
    briefs.router,
    previews.router,
    sends.router,
    subscriber_files.router,  # before subscribers: /import is not a reader's id
    subscribers.router,
    topics.router,
    reports.router,
    audit.router,
)


def sign_in_first(request: Request, settings: Settings) -> Response:
    """What a visitor gets anywhere under /admin, whether the address exists or not (so
    it tells a stranger nothing): sent to sign in, or a 401 for a post or a poller."""
    response: Response
    if request.method in ("GET", "HEAD") and not request.url.path.endswith(".json"):
        target = safe_next(request.url.path)
        response = RedirectResponse(f"/admin/login?next={quote(target)}", status_code=303)
    else:
        response = PlainTextResponse("Sign in first.", status_code=401)
    if cookie_name(settings) in request.cookies:
        clear_cookie(response, settings)  # forged, tampered, expired or signed out
    return response


def install(app: FastAPI, settings: Settings, engine: Engine) -> None:
    app.state.console = Console.build(settings, engine)

    @app.exception_handler(StaffRequired)
    def _visitor(request: Request, _exc: StaffRequired) -> Response:
        return sign_in_first(request, settings)

    @app.exception_handler(CsrfRefused)
    def _forged(request: Request, _exc: CsrfRefused) -> Response:
        console: Console = request.app.state.console
        return console.page(request, "refused.html", None, 403)

    for router in ROUTERS:
        app.include_router(router)
