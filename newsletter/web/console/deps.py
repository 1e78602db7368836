"""What every console page needs: the signed-in member of staff (or a refusal), the CSRF
check on every post, and the page rendering with the console's own CSP.

The guard is a router-level dependency (`ROUTER_GUARD`), so a new page under /admin is
refused to visitors even if its handler forgets to ask who is signed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.readers.search import ReaderQuery
from newsletter.staff.audit import action_words
from newsletter.web.console.csrf import same_token
from newsletter.web.console.sessions import SignedIn, cookie_name, find_session
from newsletter.words import counted
from subscribers.models import utcnow

# Scripts and frames from this origin only: the sends page's poller, the preview frames.
CONSOLE_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "frame-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

# The console's pages, in the navigation's order; `ready` False shows the name only (for a
# page that is not built yet).
NAV = (
    ("/admin/", "Dashboard", True),
    ("/admin/briefs", "Briefs", True),
    ("/admin/sends", "Sends", True),
    ("/admin/subscribers", "Subscribers", True),
    ("/admin/topics", "Topics", True),
    ("/admin/reports", "Reports", True),
    ("/admin/audit", "Audit log", True),
)

# What a redirect after a post may say (`?notice=key`): fixed sentences, never echoed input.
NOTICES = {
    "saved": "Saved.",
    "deleted": "The draft was deleted.",
    "test_queued": "Test copy queued: a worker sends it on its next tick.",
    "paused": "Paused: workers stop claiming; requests in flight finish.",
    "resumed": "Resumed: a worker carries on where it stopped.",
    "cancelled": "Cancelled: nothing more of it goes out.",
    "resolved": "Done: the unknown deliveries were settled.",
    "scheduled": "Scheduled: a worker sends it when it falls due.",
    "unsubscribed": "Unsubscribed: no more mail goes to this reader.",
    "resubscribed": "Pending: a confirmation email is queued; mail starts once they confirm.",
    "confirm_limit": "Pending, but no confirmation went: this mailbox has had three today.",
    "forgotten": "Forgotten: their data is erased and the address is never mailed again.",
    "imported": "Imported: the report below says what each line did.",
    "topic_saved": "Topic saved.",
    "topic_merged": "Topics merged: the followers and briefs moved.",
}


class StaffRequired(Exception):  # noqa: N818 - a refusal, not an error of ours
    """No valid session: the visitor is sent to sign in and shown nothing."""


class CsrfRefused(Exception):  # noqa: N818
    """A post without this session's token: nothing is changed."""


@dataclass
class Console:
    settings: Settings
    engine: Engine
    pages: jinja2.Environment

    @classmethod
    def build(cls, settings: Settings, engine: Engine) -> Console:
        pages = jinja2.Environment(
            loader=jinja2.FileSystemLoader(
                str(Path(settings.NEWSLETTER_TEMPLATES_DIR) / "console")
            ),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        zone = ZoneInfo(settings.NEWSLETTER_TIMEZONE)

        def local(value: datetime | None) -> str:
            """A time in the firm's zone, as staff think of it."""
            if value is None:
                return ""
            return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

        pages.filters["local"] = local
        pages.filters["action_words"] = action_words
        pages.globals["counted"] = counted
        pages.globals["zone"] = settings.NEWSLETTER_TIMEZONE
        return cls(settings, engine, pages)

    def visitor(self, request: Request) -> SignedIn | None:
        """Who is signed in, if anyone. Also for the pages the guard never sees (a console
        address that does not exist, a form FastAPI could not read): staff keep their
        navigation there, a stranger sees no more than a stranger may."""
        token = request.cookies.get(cookie_name(self.settings), "")
        return find_session(self.engine, token, self.settings, now=utcnow())

    def page(
        self,
        request: Request,
        name: str,
        staff: SignedIn | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("notice", ""), "")
        html = self.pages.get_template(name).render(
            nav=NAV,
            path=request.url.path,
            staff=staff,
            csrf=staff.csrf if staff else "",
            notice=notice,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["Content-Security-Policy"] = CONSOLE_CSP
        return response


def safe_next(path: str) -> str:
    """Where to go after signing in: a console path only, never another site."""
    ok = path.startswith("/admin") and "//" not in path and "\\" not in path
    return path if ok else "/admin/"


def get_console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(get_console)]


def current_staff(request: Request, console: ConsoleDep) -> SignedIn:
    """The signed-in member of staff; a visitor (no cookie, a forged, tampered, expired or
    signed-out one) gets StaffRequired."""
    found = console.visitor(request)
    if found is None:
        raise StaffRequired
    return found


async def checked_staff(
    request: Request, staff: Annotated[SignedIn, Depends(current_staff)]
) -> SignedIn:
    """`current_staff`, and on anything but GET the session's CSRF token, from the form's
    `csrf` field or an `X-CSRF-Token` header. Reading the form is I/O, so this one runs on
    the event loop; the database work above runs in the thread pool."""
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get("X-CSRF-Token", "")
        if not given and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            field = (await request.form()).get("csrf")
            given = field if isinstance(field, str) else ""
        if not same_token(staff.csrf, given):
            raise CsrfRefused
    return staff


StaffUser = Annotated[SignedIn, Depends(checked_staff)]
# The box staff tick to say they mean an action they cannot undo ("yes" when ticked).
Sure = Annotated[str, Form(max_length=5)]


def require_meant(sure: str, refusal: str) -> None:
    """Refuse, in `refusal`'s words, an action staff cannot undo unless its box was ticked:
    `required` in the browser, and checked here for any other client."""
    if sure != "yes":
        raise NewsletterError(refusal)


ROUTER_GUARD = [Depends(checked_staff)]


def reader_query(
    q: str = "",
    topic: str = "",
    status: str = "",
    cadence: str = "",
    inactive: str = "",
    after: str = "",
) -> ReaderQuery:
    """The readers list's filters as its links carry them: the list page and its CSV export
    read the same ones, so an export is exactly the list on the screen. An `inactive` that
    is no number (or is 0) becomes -1, which `ReaderQuery.checked` refuses by name."""
    well_formed = inactive.isascii() and inactive.isdigit() and len(inactive) < 5
    days = ((int(inactive) if well_formed else 0) or -1) if inactive else 0
    return ReaderQuery(q, topic, status, cadence, days, after)


ReaderQueryDep = Annotated[ReaderQuery, Depends(reader_query)]
