"""The dashboard, and signing out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.db import session_scope
from newsletter.staff import audit
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep, StaffUser
from newsletter.web.console.overview import overview
from newsletter.web.console.sessions import clear_cookie, end_session
from newsletter.web.deps import ClientIp
from subscribers.models import utcnow

router = APIRouter(prefix="/admin", dependencies=ROUTER_GUARD)


@router.get("")
@router.get("/")
def dashboard(request: Request, console: ConsoleDep, staff: StaffUser) -> HTMLResponse:
    with session_scope(console.engine) as session:
        facts = overview(session=session, now=utcnow())
    return console.page(request, "dashboard.html", staff, facts=facts)


@router.post("/logout")
def logout(console: ConsoleDep, staff: StaffUser, ip: ClientIp) -> Response:
    """The session row is deleted: the cookie, even if copied, opens nothing again."""
    end_session(console.engine, staff)
    with session_scope(console.engine) as session:
        audit.record(session, staff.email, "staff.sign_out", staff.email, ip=ip)
    response = RedirectResponse("/admin/login", status_code=303)
    clear_cookie(response, console.settings)
    return response
