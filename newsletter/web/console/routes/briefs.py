"""Briefs: the list by status, a new one (upload or editor), one brief's page (preview,
topics, test-send, schedule with a confirm step), editing and deleting a draft."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from newsletter.briefs import (
    BriefStatus,
    add_brief,
    brief_topics,
    change_topics,
    delete_draft,
    list_brief_listings,
    parse_brief,
    update_brief,
)
from newsletter.briefs.source import brief_source, new_brief_source
from newsletter.db import fits_row_id, session_scope
from newsletter.errors import NewsletterError
from newsletter.models import Brief
from newsletter.sending.transactional import queue_test_copy
from newsletter.staff import audit
from newsletter.staff.accounts import find_staff
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep, StaffUser, Sure, require_meant
from newsletter.web.console.scheduling import confirmation, parse_when, schedule
from newsletter.web.console.sessions import SignedIn
from newsletter.web.console.views import brief_view
from newsletter.web.deps import ZONES, ClientIp
from subscribers.models import id_of, utcnow
from subscribers.topics import resolve_topics

router = APIRouter(prefix="/admin/briefs", dependencies=ROUTER_GUARD)
BRIEF_MAX_BYTES = 512 * 1024  # a brief is a few pages; the email is clipped past 102 KB
SOURCE_MAX = BRIEF_MAX_BYTES


def _brief(session: Session, brief_id: int) -> Brief | None:
    return session.get(Brief, brief_id) if fits_row_id(brief_id) else None


def _not_found(request: Request, console: ConsoleDep, staff: SignedIn) -> HTMLResponse:
    return console.page(request, "not_found.html", staff, 404, what="brief")


@router.get("")
def briefs(
    request: Request, console: ConsoleDep, staff: StaffUser, status: str = ""
) -> HTMLResponse:
    chosen = BriefStatus(status) if status in set(BriefStatus) else None
    with session_scope(console.engine) as session:
        listings = list_brief_listings(session=session, status=chosen)
    return console.page(
        request, "briefs.html", staff, listings=listings, statuses=list(BriefStatus), chosen=chosen
    )


def _new_page(
    request: Request, console: ConsoleDep, staff: SignedIn, status: int = 200, **extra: Any
) -> HTMLResponse:
    extra.setdefault("source", new_brief_source(utcnow().date()))
    return console.page(request, "brief_new.html", staff, status, **extra)


@router.get("/new")
def new_brief(request: Request, console: ConsoleDep, staff: StaffUser) -> HTMLResponse:
    return _new_page(request, console, staff)


def _store(
    console: ConsoleDep, staff: SignedIn, ip: str, data: bytes | str, source_name: str
) -> int:
    """Parse and store (a new brief, or a version of a draft); the audit log says so."""
    with session_scope(console.engine) as session:
        added = add_brief(parse_brief(data, source_name=source_name), session=session)
        audit.record_added(session, staff.email, added, source_name, ip)
        return id_of(added.brief)


@router.post("/upload")
def upload(
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    if file is None or not file.filename:
        return _new_page(request, console, staff, 400, error="Choose a brief file to upload.")
    data = file.file.read(BRIEF_MAX_BYTES + 1)
    if len(data) > BRIEF_MAX_BYTES:
        return _new_page(
            request,
            console,
            staff,
            413,
            error=f"{file.filename}: over {BRIEF_MAX_BYTES // 1024} KB; a brief is a few pages.",
        )
    try:
        brief_id = _store(console, staff, ip, data, Path(file.filename).name[:200])
    except NewsletterError as exc:
        return _new_page(request, console, staff, 400, error=str(exc))
    return RedirectResponse(f"/admin/briefs/{brief_id}?notice=saved", status_code=303)


@router.post("/write")
def write(
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    source: Annotated[str, Form(max_length=SOURCE_MAX)] = "",
) -> Response:
    try:
        brief_id = _store(console, staff, ip, source, "")
    except NewsletterError as exc:
        return _new_page(request, console, staff, 400, error=str(exc), source=source)
    return RedirectResponse(f"/admin/briefs/{brief_id}?notice=saved", status_code=303)


def _brief_page(
    request: Request,
    console: ConsoleDep,
    staff: SignedIn,
    brief_id: int,
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    reader = request.query_params.get("reader", "")
    with session_scope(console.engine) as session:
        brief = _brief(session, brief_id)
        if brief is None:
            return _not_found(request, console, staff)
        view = brief_view(brief, reader, session=session, settings=console.settings)
    return console.page(
        request,
        "brief.html",
        staff,
        status,
        view=view,
        reader=reader,
        dark=request.query_params.get("dark") == "1",
        zones=ZONES,
        **extra,
    )


@router.get("/{brief_id}")
def brief_page(
    brief_id: int, request: Request, console: ConsoleDep, staff: StaffUser
) -> HTMLResponse:
    return _brief_page(request, console, staff, brief_id)


@router.get("/{brief_id}/edit")
def edit_page(
    brief_id: int, request: Request, console: ConsoleDep, staff: StaffUser
) -> HTMLResponse:
    with session_scope(console.engine) as session:
        brief = _brief(session, brief_id)
        if brief is None:
            return _not_found(request, console, staff)
        source = brief_source(brief, brief_topics(brief, session=session))
    return console.page(request, "brief_edit.html", staff, brief=brief, source=source)


@router.post("/{brief_id}/edit")
def edit(
    brief_id: int,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    source: Annotated[str, Form(max_length=SOURCE_MAX)] = "",
) -> Response:
    with session_scope(console.engine) as session:
        found = _brief(session, brief_id)
    if found is None:
        return _not_found(request, console, staff)
    try:
        with session_scope(console.engine) as session:
            brief = session.get_one(Brief, brief_id)
            parsed = parse_brief(source, source_name=brief.source_name or "the editor")
            chosen = resolve_topics(parsed.topics, session=session)
            update_brief(brief, parsed, session=session, topics=chosen)
            target = audit.brief_target(brief)
            audit.record(session, staff.email, "brief.update", target, "editor", ip)
    except NewsletterError as exc:
        return console.page(
            request, "brief_edit.html", staff, 400, brief=found, source=source, error=str(exc)
        )
    return RedirectResponse(f"/admin/briefs/{brief_id}?notice=saved", status_code=303)


@router.post("/{brief_id}/topics")
def set_topics(
    brief_id: int,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    topics: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        with session_scope(console.engine) as session:
            brief = _brief(session, brief_id)
            if brief is None:
                return _not_found(request, console, staff)
            chosen = change_topics(brief, (topics or [])[:200], session=session)
            audit.record(
                session,
                staff.email,
                "brief.topics",
                audit.brief_target(brief),
                ", ".join(t.slug for t in chosen) or "none",
                ip,
            )
    except NewsletterError as exc:
        return _brief_page(request, console, staff, brief_id, 409, error=str(exc))
    return RedirectResponse(f"/admin/briefs/{brief_id}?notice=saved", status_code=303)


@router.post("/{brief_id}/delete")
def delete(
    brief_id: int,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    sure: Sure = "",
) -> Response:
    """Asks to be meant (`sure`, a box to tick), as a cancel does: one click under "Edit
    the draft" deleted it for good."""
    try:
        with session_scope(console.engine) as session:
            brief = _brief(session, brief_id)
            if brief is None:
                return _not_found(request, console, staff)
            require_meant(sure, "tick “Yes, delete it” first: a deleted draft is gone")
            target = audit.brief_target(brief)
            delete_draft(brief, session=session)
            audit.record(session, staff.email, "brief.delete", target, ip=ip)
    except NewsletterError as exc:
        return _brief_page(request, console, staff, brief_id, 409, error=str(exc))
    return RedirectResponse("/admin/briefs?notice=deleted", status_code=303)


@router.post("/{brief_id}/test-send")
def test_send(
    brief_id: int,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    to: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    """A [TEST] copy to a member of staff, queued for the worker: no page waits on the
    provider. Only staff addresses: the console is not a way to mail anyone."""
    with session_scope(console.engine) as session:
        brief = _brief(session, brief_id)
        if brief is None:
            return _not_found(request, console, staff)
        member = find_staff(to or staff.email, session=session)
        if member is None:
            return _brief_page(
                request,
                console,
                staff,
                brief_id,
                400,
                error="Test copies go to staff accounts only.",
            )
        queue_test_copy(session, brief_id, member.email, member.name, now=utcnow())
        target = audit.brief_target(brief)
        audit.record(session, staff.email, "brief.test_send", target, member.email, ip)
    return RedirectResponse(f"/admin/briefs/{brief_id}?notice=test_queued", status_code=303)


@router.post("/{brief_id}/schedule")
def schedule_brief(
    brief_id: int,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    mode: Annotated[str, Form(max_length=10)] = "now",
    at: Annotated[str, Form(max_length=40)] = "",
    zone: Annotated[str, Form(max_length=64)] = "",
    local_time: Annotated[str, Form(max_length=10)] = "",
    confirmed: Annotated[str, Form(max_length=5)] = "",
    again: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """First post: the confirm step (who it reaches, what to think about). Second post,
    with `confirmed`: the send is created."""
    settings = console.settings
    try:
        with session_scope(console.engine) as session:
            brief = _brief(session, brief_id)
            if brief is None:
                return _not_found(request, console, staff)
            when = parse_when(mode, at, zone, local_time, settings)
            facts = confirmation(brief, session=session, settings=settings)
            if confirmed != "yes" or (facts.sent_before and again != "yes"):
                return console.page(
                    request,
                    "confirm.html",
                    staff,
                    brief=brief,
                    when=when,
                    facts=facts,
                    mode=mode,
                    at=at,
                    zone=zone,
                    local_time=local_time,
                    need_again=confirmed == "yes",
                )
            send = schedule(
                brief, when, session=session, settings=settings, again=facts.sent_before
            )
            audit.record_scheduled(
                session, staff.email, brief, send.id, when.describe(), facts.audience, ip
            )
            send_id = send.id
    except NewsletterError as exc:
        return _brief_page(request, console, staff, brief_id, 400, error=str(exc))
    return RedirectResponse(f"/admin/sends/{send_id}?notice=scheduled", status_code=303)
