"""The dashboard's facts: sends in progress, the next scheduled, the last ones with their
numbers, the list's size with its change over 30 days, and whether confirmations and
welcomes are going out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.models import MailKind, MailStatus, SendStatus, TransactionalMail
from newsletter.reports.growth import active_change
from newsletter.sending.report import SendSummary, summarize_sends
from newsletter.staff.audit import recent
from newsletter.staff.models import AuditEntry
from subscribers.models import Subscriber, SubscriberStatus

LAST_SENDS = 5


# What became of a message, as the dashboard counts it (over the last day).
SETTLED = (MailStatus.SENT, MailStatus.FAILED, MailStatus.UNKNOWN)
WAITING = (MailStatus.QUEUED, MailStatus.CLAIMED, MailStatus.SENDING)
# Staff's own test copies are not counted: a failing one is not readers' mail failing.
READERS_MAIL = (MailKind.CONFIRMATION, MailKind.WELCOME)


@dataclass(frozen=True)
class MailFacts:
    """Confirmations and welcomes: after an import that asks readers to confirm, staff
    want to see them go, and a provider refusing them shows here first."""

    waiting: int
    oldest_due: datetime | None  # the longest-waiting message's due time
    last_day: dict[str, int]  # sent / failed / unknown in the last 24 hours
    last_error: str  # the newest failure's words, "" if none in the last day
    pending_readers: int  # added or signed up, not confirmed yet


def mail_facts(session: Session, *, now: datetime) -> MailFacts:
    """Four reads, each on an index (`ix_transactional_mail_status_due`: status, then the
    due time; the readers' status): however long the table's history. Confirmations and
    welcomes only."""
    mail = TransactionalMail
    readers_mail = col(mail.kind).in_(READERS_MAIL)
    waiting, oldest = session.execute(
        sa.select(sa.func.count(), sa.func.min(col(mail.not_before))).where(
            col(mail.status).in_(WAITING), readers_mail
        )
    ).one()
    # A settled message's `not_before` is when it settled (sending/transactional.py): the
    # day's, read by range.
    recent_rows = (
        col(mail.status).in_(SETTLED),
        col(mail.not_before) >= now - timedelta(days=1),
        readers_mail,
    )
    counts = dict(
        session.execute(
            sa.select(col(mail.status), sa.func.count()).where(*recent_rows).group_by(mail.status)
        ).all()
    )
    last_error = session.scalar(
        sa.select(col(mail.error))
        .where(*recent_rows, col(mail.status) == MailStatus.FAILED)
        .order_by(col(mail.not_before).desc())
        .limit(1)
    )
    pending = session.scalar(
        sa.select(sa.func.count()).where(col(Subscriber.status) == SubscriberStatus.PENDING)
    )
    return MailFacts(
        waiting=int(waiting or 0),
        oldest_due=oldest,
        last_day={status.value: int(counts.get(status.value, 0)) for status in SETTLED},
        last_error=last_error or "",
        pending_readers=int(pending or 0),
    )


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
    mail: MailFacts

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
        mail=mail_facts(session, now=now),
    )
