"""The audit log: who did what, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from newsletter.db import is_row_id, session_scope
from newsletter.staff.audit import recent
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep, StaffUser

router = APIRouter(prefix="/admin", dependencies=ROUTER_GUARD)
PAGE = 100


@router.get("/audit")
def audit_log(
    request: Request, console: ConsoleDep, staff: StaffUser, before: str = ""
) -> HTMLResponse:
    # The paging mark is an entry's id: anything else (a word, a number past 64 bits,
    # which SQLite cannot even bind) names no page, rather than a 422 in JSON or a 500.
    if before and not is_row_id(before):
        return console.page(request, "not_found.html", staff, 404, what="page of the audit log")
    with session_scope(console.engine) as session:
        entries = recent(session, limit=PAGE, before=int(before) if before else None)
    older = entries[-1].id if len(entries) == PAGE else None
    return console.page(request, "audit.html", staff, entries=entries, older=older)
