"""The dashboard's facts: sends in progress, the next scheduled, the last ones with their
numbers, and the list's size with its change over 30 days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.models import SendStatus
from newsletter.sending.report import SendSummary, summarize_sends
from newsletter.staff.audit import recent
from newsletter.staff.models import AuditEntry
from subscribers.models import NO_MAIL_STATUSES, Subscriber, SubscriberStatus

LAST_SENDS = 5


@dataclass(frozen=True)
class Overview:
    in_progress: list[SendSummary]
    next_scheduled: SendSummary | None
    last: list[SendSummary]
    list_size: int  # active readers
    joined: int  # readers who became active in the last 30 days (and still are)
    left: int  # readers who unsubscribed, bounced, complained or were forgotten in 30 days
    audit: list[AuditEntry]

    @property
    def change(self) -> int:
        return self.joined - self.left


def _count(session: Session, *where: sa.ColumnElement[bool]) -> int:
    return int(
        session.scalar(sa.select(sa.func.count()).select_from(Subscriber).where(*where)) or 0
    )


def overview(*, session: Session, now: datetime) -> Overview:
    sends = summarize_sends(session=session, now=now)
    waiting = sorted(
        (s for s in sends if s.status == SendStatus.SCHEDULED), key=lambda s: s.scheduled_at
    )
    since = now - timedelta(days=30)
    active = col(Subscriber.status) == SubscriberStatus.ACTIVE
    return Overview(
        in_progress=[s for s in sends if s.status in (SendStatus.RUNNING, SendStatus.PAUSED)],
        next_scheduled=waiting[0] if waiting else None,
        last=[s for s in sends if s.status in (SendStatus.FINISHED, SendStatus.CANCELLED)][
            :LAST_SENDS
        ],
        list_size=_count(session, active),
        joined=_count(
            session, active, sa.func.coalesce(Subscriber.consent_at, Subscriber.created_at) > since
        ),
        left=_count(
            session,
            col(Subscriber.status).in_(list(NO_MAIL_STATUSES)),
            col(Subscriber.status_changed_at) > since,
        ),
        audit=recent(session, limit=8),
    )
