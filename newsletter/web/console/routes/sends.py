"""Sends: every send with its numbers; one send's live progress (a same-origin script
polls `progress.json`), and pause, resume, cancel, resolve."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from newsletter.db import fits_row_id, session_scope
from newsletter.errors import NewsletterError, NotFoundError
from newsletter.sending.controls import (
    ResolveAction,
    cancel_send,
    pause_send,
    resolve_unknown,
    resume_send,
)
from newsletter.sending.report import SendSummary, summarize_sends
from newsletter.staff import audit
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep, StaffUser, Sure, require_meant
from newsletter.web.deps import ClientIp
from newsletter.words import counted, duration
from subscribers.models import utcnow

router = APIRouter(prefix="/admin/sends", dependencies=ROUTER_GUARD)
ACTIONS = ("pause", "resume", "cancel", "resolve")
NOTICE = {"pause": "paused", "resume": "resumed", "cancel": "cancelled", "resolve": "resolved"}


def progress(summary: SendSummary) -> dict[str, Any]:
    """The summary, and the sentences the page shows, so the script only copies text."""
    counts = summary.counts
    done = counts["sent"] + counts["failed"] + counts["skipped"] + counts["cancelled"]
    eta = summary.eta_seconds
    return {
        **summary.as_dict(),
        "words": {
            "status": summary.status,
            "progress": f"{done:,} of {summary.planned:,} settled ({summary.parts_words()})",
            "rate": summary.rate_words(),
            "eta": f"about {duration(eta)} to go" if eta else summary.next_due_words(utcnow()),
            "error": summary.error_words() or "none",
        },
        "done": summary.status in ("finished", "cancelled"),
    }


def _summary(console: ConsoleDep, send_id: int) -> SendSummary | None:
    if not fits_row_id(send_id):
        return None
    with session_scope(console.engine) as session:
        try:
            return summarize_sends(session=session, send_id=send_id)[0]
        except NotFoundError:
            return None


@router.get("")
def sends(request: Request, console: ConsoleDep, staff: StaffUser) -> HTMLResponse:
    with session_scope(console.engine) as session:
        summaries = summarize_sends(session=session)
    return console.page(request, "sends.html", staff, summaries=summaries)


@router.get("/{send_id}")
def send_page(
    send_id: int, request: Request, console: ConsoleDep, staff: StaffUser
) -> HTMLResponse:
    summary = _summary(console, send_id)
    if summary is None:
        return console.page(request, "not_found.html", staff, 404, what="send")
    return console.page(
        request, "send.html", staff, summary=summary, live=progress(summary), error=""
    )


@router.get("/{send_id}/progress.json")
def send_progress(send_id: int, console: ConsoleDep, staff: StaffUser) -> JSONResponse:
    summary = _summary(console, send_id)
    if summary is None:
        return JSONResponse({"error": "no such send"}, status_code=404)
    return JSONResponse(progress(summary), headers={"Cache-Control": "no-store"})


@router.post("/{send_id}/{action}")
def control(
    send_id: int,
    action: str,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    how: Annotated[str, Form(max_length=10)] = "",
    sure: Sure = "",
) -> Response:
    """Pause, resume, cancel, or resolve (`how` = resend or drop) the unknown rows. A
    cancel asks to be meant (`sure`, a box to tick): it cannot be undone."""
    if action not in ACTIONS:
        return console.page(request, "not_found.html", staff, 404, what="action")
    if not fits_row_id(send_id):
        return console.page(request, "not_found.html", staff, 404, what="send")
    now = utcnow()
    try:
        with session_scope(console.engine) as session:
            detail = ""
            if action == "pause":
                pause_send(send_id, session=session)
            elif action == "resume":
                resume_send(send_id, session=session)
            elif action == "cancel":
                require_meant(
                    sure, "tick “Yes, cancel it” first: a cancelled send cannot be resumed"
                )
                cancelled = cancel_send(send_id, session=session, now=now)
                detail = f"{counted(cancelled, 'delivery', 'deliveries')} cancelled"
            else:
                if how not in ("resend", "drop"):
                    raise NewsletterError(
                        "choose resend (some readers may get it twice) or drop (some may "
                        "never get it)"
                    )
                changed = resolve_unknown(send_id, ResolveAction(how), session=session, now=now)
                detail = f"{changed} unknown deliveries: {how}"
            audit.record(session, staff.email, f"send.{action}", f"send {send_id}", detail, ip)
    except NewsletterError as exc:
        summary = _summary(console, send_id)
        if summary is None:
            return console.page(request, "not_found.html", staff, 404, what="send")
        return console.page(
            request,
            "send.html",
            staff,
            409,
            summary=summary,
            live=progress(summary),
            error=str(exc),
        )
    return RedirectResponse(f"/admin/sends/{send_id}?notice={NOTICE[action]}", status_code=303)
