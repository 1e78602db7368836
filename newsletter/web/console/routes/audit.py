"""The audit log: who did what, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from newsletter.db import session_scope
from newsletter.staff.audit import recent
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep, StaffUser

router = APIRouter(prefix="/admin", dependencies=ROUTER_GUARD)
PAGE = 100


@router.get("/audit")
def audit_log(
    request: Request, console: ConsoleDep, staff: StaffUser, before: int | None = None
) -> HTMLResponse:
    with session_scope(console.engine) as session:
        entries = recent(session, limit=PAGE, before=before)
    older = entries[-1].id if len(entries) == PAGE else None
    return console.page(request, "audit.html", staff, entries=entries, older=older)
