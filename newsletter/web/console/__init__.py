"""The staff console under /admin: sign-in, dashboard, briefs, sends, the audit log.

`install(app, …)` adds its routers, its refusals (a visitor is sent to sign in and shown
nothing; a post without the session's CSRF token changes nothing) and a cap on request
bodies. Pages are templates under `templates/console/`, the stylesheet and one small script
are served from `newsletter/web/static/`.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.config import Settings
from newsletter.web.console.deps import Console, CsrfRefused, StaffRequired, safe_next
from newsletter.web.console.routes import audit, briefs, dashboard, login, previews, sends
from newsletter.web.console.sessions import clear_cookie, cookie_name

ROUTERS = (
    login.router,
    dashboard.router,
    briefs.router,
    previews.router,
    sends.router,
    audit.router,
)
# A brief file is at most 512 KB; a form around it stays well under this.
MAX_BODY = 1024 * 1024


class BodyLimit:
    """Refuse a post to /admin whose body is over MAX_BODY, or whose size is not declared
    (a browser always declares it), before anything reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith("/admin")
            and scope["method"] not in ("GET", "HEAD")
        ):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"")
            status, text = 0, ""
            if not length.isdigit():
                status, text = 411, "Say how long the request body is (Content-Length)."
            elif int(length) > MAX_BODY:
                status, text = 413, f"The request is over {MAX_BODY // 1024} KB."
            if status:
                await PlainTextResponse(text, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings, engine: Engine) -> None:
    app.state.console = Console.build(settings, engine)

    @app.exception_handler(StaffRequired)
    def _visitor(request: Request, _exc: StaffRequired) -> Response:
        response: Response
        if request.method in ("GET", "HEAD") and not request.url.path.endswith(".json"):
            target = safe_next(request.url.path)
            response = RedirectResponse(f"/admin/login?next={quote(target)}", status_code=303)
        else:
            response = PlainTextResponse("Sign in first.", status_code=401)
        if cookie_name(settings) in request.cookies:
            clear_cookie(response, settings)  # forged, tampered, expired or signed out
        return response

    @app.exception_handler(CsrfRefused)
    def _forged(request: Request, _exc: CsrfRefused) -> Response:
        console: Console = request.app.state.console
        return console.page(request, "refused.html", None, 403)

    app.add_middleware(BodyLimit)
    for router in ROUTERS:
        app.include_router(router)
