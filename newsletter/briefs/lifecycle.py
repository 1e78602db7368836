"""Where a brief is in its life: draft → scheduled → sending → sent (or cancelled).

The status is not stored: it is read from the brief's sends, which are the truth the
workers already keep (a send's status column), so no worker, control or CLI command has a
second column to keep in step. The rules:

* no send, or only sends cancelled before they started: **draft** (cancelling a scheduled
  send unschedules the brief, as Ghost and Mailchimp do);
* otherwise the newest send decides: waiting (or paused before it started) **scheduled**;
  started and not finished (or paused) **sending**; finished **sent**; cancelled after it
  started **cancelled**.

A brief can change (be added again, edited, deleted) only as a draft that no send ever
started: once a send starts, readers may have it, so it is immutable (the archive shows it
unless every send of it was cancelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.errors import ConflictError
from newsletter.models import Brief, BriefTopic, Send, SendKind, SendStatus, TransactionalMail
from subscribers.models import id_of


class BriefStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class BriefState:
    status: BriefStatus
    # Draft: last changed; scheduled: when it is due; sending: when it started; sent or
    # cancelled: when it finished.
    when: datetime | None
    send_id: int | None  # the send that decides the status; None for a draft
    published: bool  # a send of it started: readers may have it, so it is immutable
    # When the archive shows it (`Send.published_at`, as `publication_dates` reads it):
    # a send at readers' local time starts hours before its first readers are due.
    public_from: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "when": self.when.isoformat() if self.when else None,
            "send": self.send_id,
        }


def _state(brief: Brief, sends: list[Send]) -> BriefState:
    published = any(send.started_at is not None for send in sends)
    counted = [
        send
        for send in sends
        if not (send.status == SendStatus.CANCELLED and send.started_at is None)
    ]
    if not counted:
        return BriefState(BriefStatus.DRAFT, brief.updated_at or brief.created_at, None, False)
    send = max(counted, key=lambda s: id_of(s))
    started = send.started_at is not None
    when: datetime | None
    if send.status == SendStatus.SCHEDULED or (send.status == SendStatus.PAUSED and not started):
        status, when = BriefStatus.SCHEDULED, send.scheduled_at
    elif send.status in (SendStatus.RUNNING, SendStatus.PAUSED):
        status, when = BriefStatus.SENDING, send.started_at
    elif send.status == SendStatus.FINISHED:
        status, when = BriefStatus.SENT, send.finished_at
    else:
        status, when = BriefStatus.CANCELLED, send.finished_at
    public = [
        s.published_at
        for s in sends
        if s.published_at is not None and s.status != SendStatus.CANCELLED
    ]
    return BriefState(status, when, id_of(send), published, min(public, default=None))


def brief_states(briefs: list[Brief], *, session: Session) -> dict[int, BriefState]:
    """Brief id → its state, for many briefs in one query over their sends."""
    ids = [id_of(brief) for brief in briefs]
    sends: dict[int, list[Send]] = {brief_id: [] for brief_id in ids}
    if ids:
        for send in session.scalars(
            sa.select(Send).where(col(Send.kind) == SendKind.BRIEF, col(Send.brief_id).in_(ids))
        ):
            sends[send.brief_id].append(send)
    return {id_of(brief): _state(brief, sends[id_of(brief)]) for brief in briefs}


def brief_state(brief: Brief, *, session: Session) -> BriefState:
    return brief_states([brief], session=session)[id_of(brief)]


def require_editable(brief: Brief, *, session: Session) -> BriefState:
    """Refuse any change to a brief that is scheduled or that a send has started."""
    state = brief_state(brief, session=session)
    if state.published:
        raise ConflictError(
            f"brief {brief.slug!r} was sent (send {state.send_id}); a sent brief cannot change",
            hint="to send a correction, add it as a new brief (a new title, or 'slug:' in "
            "its front matter)",
        )
    if state.status is BriefStatus.SCHEDULED:
        raise ConflictError(
            f"brief {brief.slug!r} is scheduled (send {state.send_id}); cancel that send to "
            "change it",
            hint=f"`newsletter sends cancel {state.send_id}`, then add or edit it again",
        )
    return state


def delete_draft(brief: Brief, *, session: Session) -> None:
    """Remove a draft, with its topics, the sends of it that were cancelled before they
    started (nothing was planned for them) and its queued test copies."""
    require_editable(brief, session=session)
    brief_id = id_of(brief)
    session.execute(sa.delete(BriefTopic).where(col(BriefTopic.brief_id) == brief_id))
    session.execute(sa.delete(TransactionalMail).where(col(TransactionalMail.brief_id) == brief_id))
    session.execute(sa.delete(Send).where(col(Send.brief_id) == brief_id))
    session.delete(brief)
    session.flush()
