"""The dashboard's facts: sends in progress, the next scheduled, the last ones with their
numbers, and the list's size with its change over 30 days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.models import SendStatus
from newsletter.reports.growth import active_change
from newsletter.sending.report import SendSummary, summarize_sends
from newsletter.staff.audit import recent
from newsletter.staff.models import AuditEntry
from subscribers.models import Subscriber, SubscriberStatus

LAST_SENDS = 5


@dataclass(frozen=True)
class Overview:
    in_progress: list[SendSummary]
    next_scheduled: SendSummary | None
    last: list[SendSummary]
    list_size: int  # active readers
    # Readers who became active in the last 30 days, and who stopped being active (left,
    # bounced, complained, paused, forgotten): joined - left is the change in active readers.
    joined: int
    left: int
    audit: list[AuditEntry]

    @property
    def change(self) -> int:
        return self.joined - self.left


def overview(*, session: Session, now: datetime) -> Overview:
    sends = summarize_sends(session=session, now=now)
    waiting = sorted(
        (s for s in sends if s.status == SendStatus.SCHEDULED), key=lambda s: s.scheduled_at
    )
    joined, left = active_change(session=session, since=now - timedelta(days=30))
    return Overview(
        in_progress=[s for s in sends if s.status in (SendStatus.RUNNING, SendStatus.PAUSED)],
        next_scheduled=waiting[0] if waiting else None,
        last=[s for s in sends if s.status in (SendStatus.FINISHED, SendStatus.CANCELLED)][
            :LAST_SENDS
        ],
        list_size=int(
            session.scalar(
                sa.select(sa.func.count()).where(col(Subscriber.status) == SubscriberStatus.ACTIVE)
            )
            or 0
        ),
        joined=joined,
        left=left,
        audit=recent(session, limit=8),
    )
