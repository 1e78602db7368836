"""Subscribers: the list (search, filters, keyset paging), one reader's page (status
history, consent, every delivery and its events), and what staff may change: topics,
cadence and timezone, unsubscribe, resubscribe, forget (after a confirm step). Every change
is audited (newsletter/readers/actions.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from newsletter.db import is_row_id, session_scope
from newsletter.errors import NewsletterError
from newsletter.readers import actions
from newsletter.readers.profile import reader_profile
from newsletter.readers.search import INACTIVE_CHOICES, ReaderQuery, search_readers
from newsletter.web.console.deps import (
    ROUTER_GUARD,
    ConsoleDep,
    ReaderQueryDep,
    StaffUser,
    Sure,
    require_meant,
)
from newsletter.web.console.sessions import SignedIn
from newsletter.web.deps import ZONES, ClientIp
from subscribers.models import Cadence, Subscriber, SubscriberStatus, utcnow
from subscribers.topics import list_topics

router = APIRouter(prefix="/admin/subscribers", dependencies=ROUTER_GUARD)


@router.get("")
def subscribers(
    request: Request, console: ConsoleDep, staff: StaffUser, query: ReaderQueryDep
) -> HTMLResponse:
    error, page = "", None
    with session_scope(console.engine) as session:
        topics = list_topics(session=session)
        try:
            page = search_readers(query, session=session, now=utcnow())
        except NewsletterError as exc:
            # The form and the export link start afresh: echoing what was refused could
            # be 200 KB of it, and a link to a CSV of a search that cannot run.
            error, query = str(exc), ReaderQuery()
    next_link = ""
    if page is not None and page.next_after is not None:
        next_link = "?" + urlencode({**query.filters(), "after": page.next_after})
    return console.page(
        request,
        "subscribers.html",
        staff,
        400 if error else 200,
        error=error,
        page=page,
        query=query,
        topics=topics,
        statuses=list(SubscriberStatus),
        cadences=list(Cadence),
        inactive_choices=INACTIVE_CHOICES,
        next_link=next_link,
        first_link="?" + urlencode(query.filters()) if query.after else "",
    )


def _reader(session: Session, reader_id: str) -> Subscriber | None:
    if not is_row_id(reader_id):
        return None
    person = session.get(Subscriber, int(reader_id))
    return None if person is None or person.status == SubscriberStatus.FORGOTTEN else person


def _not_found(request: Request, console: ConsoleDep, staff: SignedIn) -> HTMLResponse:
    return console.page(request, "not_found.html", staff, 404, what="reader")


def _reader_page(
    request: Request,
    console: ConsoleDep,
    staff: SignedIn,
    reader_id: str,
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    with session_scope(console.engine) as session:
        person = _reader(session, reader_id)
        if person is None:
            return _not_found(request, console, staff)
        profile = reader_profile(person, session=session)
        topics = list_topics(session=session)
    return console.page(
        request,
        "subscriber.html",
        staff,
        status,
        profile=profile,
        topics=topics,
        cadences=list(Cadence),
        zones=ZONES,
        **extra,
    )


@router.get("/{reader_id}")
def reader_page(
    reader_id: str, request: Request, console: ConsoleDep, staff: StaffUser
) -> HTMLResponse:
    return _reader_page(request, console, staff, reader_id)


def _change(
    request: Request,
    console: ConsoleDep,
    staff: SignedIn,
    reader_id: str,
    notice: str,
    change: Callable[[Subscriber, Session], object],
) -> Response:
    """Apply one change to a reader in one transaction (with its audit entry); a refusal
    re-renders their page with the reason and changes nothing."""
    try:
        with session_scope(console.engine) as session:
            person = _reader(session, reader_id)
            if person is None:
                return _not_found(request, console, staff)
            change(person, session)
    except NewsletterError as exc:
        return _reader_page(request, console, staff, reader_id, 409, error=str(exc))
    return RedirectResponse(f"/admin/subscribers/{reader_id}?notice={notice}", status_code=303)


@router.post("/{reader_id}/edit")
def edit(
    reader_id: str,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    topics: Annotated[list[str] | None, Form()] = None,
    cadence: Annotated[str, Form(max_length=16)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str | None, Form(max_length=1_000)] = None,  # the rule is check_text's
) -> Response:
    def change(person: Subscriber, session: Session) -> None:
        actions.edit_reader(
            person,
            session=session,
            actor=staff.email,
            topics=topics or [],
            cadence=cadence,
            timezone=timezone,
            name=_changed_name(person.name, name),
            ip=ip,
        )

    return _change(request, console, staff, reader_id, "saved", change)


def _changed_name(stored: str, sent: str | None) -> str | None:
    """The name the form sent, or None for no change. A text field drops the line breaks a
    name may hold (one from a spreadsheet cell): sent back unchanged, such a name must not
    be saved run together by an edit of the reader's topics."""
    if sent is None or sent == stored.replace("\r", "").replace("\n", ""):
        return None
    return sent


@router.post("/{reader_id}/unsubscribe")
def unsubscribe(
    reader_id: str,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    sure: Sure = "",
) -> Response:
    """Asks to be meant (a box to tick): staff cannot undo it, only the reader can, by
    confirming a new subscription from their mailbox."""

    def change(person: Subscriber, session: Session) -> None:
        require_meant(
            sure, "tick “Yes, unsubscribe them” first: only the reader can undo it, by email"
        )
        actions.staff_unsubscribe(person, session=session, actor=staff.email, ip=ip)

    return _change(request, console, staff, reader_id, "unsubscribed", change)


@router.post("/{reader_id}/resubscribe")
def resubscribe(
    reader_id: str, request: Request, console: ConsoleDep, staff: StaffUser, ip: ClientIp
) -> Response:
    outcome: list[bool] = []

    def change(person: Subscriber, session: Session) -> None:
        outcome.append(actions.resubscribe(person, session=session, actor=staff.email, ip=ip))

    answer = _change(request, console, staff, reader_id, "resubscribed", change)
    if outcome == [False]:
        return RedirectResponse(
            f"/admin/subscribers/{reader_id}?notice=confirm_limit", status_code=303
        )
    return answer


@router.get("/{reader_id}/forget")
def forget_page(
    reader_id: str, request: Request, console: ConsoleDep, staff: StaffUser
) -> HTMLResponse:
    with session_scope(console.engine) as session:
        person = _reader(session, reader_id)
    if person is None:
        return _not_found(request, console, staff)
    return console.page(request, "subscriber_forget.html", staff, person=person)


@router.post("/{reader_id}/forget")
def forget(
    reader_id: str,
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    confirmed: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Only from the confirm page (`confirmed=yes`): erasing is for good."""
    if confirmed != "yes":
        return RedirectResponse(f"/admin/subscribers/{reader_id}/forget", status_code=303)
    try:
        with session_scope(console.engine) as session:
            person = _reader(session, reader_id)
            if person is None:
                return _not_found(request, console, staff)
            actions.staff_forget(person, session=session, actor=staff.email, ip=ip)
    except NewsletterError as exc:
        return _reader_page(request, console, staff, reader_id, 409, error=str(exc))
    return RedirectResponse("/admin/subscribers?notice=forgotten", status_code=303)
