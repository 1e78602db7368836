"""The email itself, for the preview frames on a brief's page: as the chosen reader gets
it, light or dark.

It is the one console response that needs inline styles (an email is all inline styles),
so it gets its own CSP: styles inline, no script at all, images from https, framed by the
console only, and `sandbox` so even a link inside cannot act as the console.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from newsletter.briefs import brief_topics
from newsletter.db import fits_row_id, session_scope
from newsletter.fields import fill
from newsletter.models import Brief
from newsletter.render import render_brief
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep
from newsletter.web.console.views import dark as dark_mode
from newsletter.web.console.views import reader_values

router = APIRouter(prefix="/admin/briefs", dependencies=ROUTER_GUARD)
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)


@router.get("/{brief_id}/email")
def email(brief_id: int, console: ConsoleDep, reader: str = "", dark: str = "") -> HTMLResponse:
    with session_scope(console.engine) as session:
        brief = session.get(Brief, brief_id) if fits_row_id(brief_id) else None
        if brief is None:
            return HTMLResponse("No such brief.", status_code=404)
        rendered = render_brief(brief, brief_topics(brief, session=session), console.settings)
        values = reader_values(reader, session=session, settings=console.settings).values
    html = fill(rendered.html, values)
    response = HTMLResponse(dark_mode(html) if dark == "1" else html)
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["Cache-Control"] = "no-store"
    return response
