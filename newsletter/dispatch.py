"""Sends and the delivery ledger: plan, claim, hand off, record.

The database holds every bit of a send's state, so any worker can stop at any point and
another carries on:

    queued ──claim──> claimed ──mark──> sending ──provider──> sent | failed | unknown
       ^                 │ lease expired       │ lease expired
       └─────────────────┘                     └──> unknown (may have been sent; never resent)

No transaction stays open across a network call: claiming, marking and recording are
each their own short transaction.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.briefs import brief_topics, get_brief
from newsletter.config import Settings
from newsletter.db import is_postgresql, session_scope
from newsletter.errors import NewsletterError, NotFoundError, TransportError
from newsletter.models import Brief, BriefTopic, Delivery, DeliveryStatus, Send, SendStatus
from newsletter.render import GMAIL_CLIP_BYTES, recipient_values, render_brief
from newsletter.transports import Batch, BatchResult, Outcome, Recipient, Transport
from subscribers.matching import matching_subscribers
from subscribers.models import Subscriber, SubscriberStatus, utcnow
from subscribers.tokens import TokenSigner

Clock = Callable[[], datetime]
OPEN_STATES = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED, DeliveryStatus.SENDING)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# --- creating a send -----------------------------------------------------------------------


def create_send(
    brief_reference: str, *, session: Session, settings: Settings, when: datetime | None = None
) -> Send:
    """Render and check the brief now, so a bad one is refused before anything is queued.

    The send is planned into the ledger by a worker when `when` comes (subscribers who join
    or leave meanwhile are counted as they are then).
    """
    brief = get_brief(brief_reference, session=session)
    topics = brief_topics(brief, session=session)
    if not topics:
        raise NewsletterError(
            f"brief {brief.slug!r} has no topics, so it would reach no one: add it again with "
            "`newsletter briefs add FILE --topics a,b` or set 'topics:' in its front matter"
        )
    rendered = render_brief(brief, topics, settings)
    if rendered.html_bytes > GMAIL_CLIP_BYTES:
        over = rendered.html_bytes - GMAIL_CLIP_BYTES
        raise NewsletterError(
            f"brief {brief.slug!r}: the email's HTML is {rendered.html_bytes:,} bytes, "
            f"{over:,} over Gmail's {GMAIL_CLIP_BYTES:,}-byte clipping limit; shorten it"
        )
    send = Send(
        brief_id=brief.id,  # type: ignore[arg-type]
        scheduled_at=when or utcnow(),
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
    )
    session.add(send)
    session.flush()
    return send


def get_send(send_id: int, *, session: Session) -> Send:
    send = session.get(Send, send_id)
    if send is None:
        raise NotFoundError(f"no send {send_id}: see `newsletter sends list`")
    return send


# --- planning: the ledger, in one statement ------------------------------------------------


def plan_deliveries(send: Send, *, session: Session, now: datetime) -> int:
    """Write one queued Delivery per matching subscriber: one INSERT … SELECT.

    Returns how many rows the send's ledger holds afterwards.

    Matching runs inside the database (no subscriber is loaded into Python), and
    ON CONFLICT DO NOTHING against the (send, subscriber) constraint makes a second run a
    no-op rather than a duplicate.
    """
    brief_topic_ids = select(BriefTopic.topic_id).where(BriefTopic.brief_id == send.brief_id)
    recipients = matching_subscribers(brief_topic_ids).subquery()
    rows = sa.select(
        sa.literal(send.id),
        recipients.c.id,
        sa.literal(DeliveryStatus.QUEUED.value),
        sa.literal(""),
        sa.literal(0),
        sa.literal(""),
        sa.literal(""),
        sa.literal(now, type_=Delivery.__table__.c.updated_at.type),  # type: ignore[attr-defined]
    ).order_by(recipients.c.id)
    columns = [
        "send_id",
        "subscriber_id",
        "status",
        "worker_id",
        "attempts",
        "message_id",
        "error",
        "updated_at",
    ]
    dialect_insert = postgresql.insert if is_postgresql(session.connection()) else sqlite.insert
    statement = (
        dialect_insert(Delivery)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["send_id", "subscriber_id"])
    )
    session.execute(statement)
    # The ledger's own count, not the statement's rowcount: SQLAlchemy's psycopg path reports
    # -1 for INSERT … FROM SELECT, and the count is what `planned` means anyway.
    return int(
        session.scalar(
            sa.select(sa.func.count()).select_from(Delivery).where(col(Delivery.send_id) == send.id)
        )
        or 0
    )


def start_due_sends(engine: Engine, *, now: datetime) -> list[int]:
    """Move every due scheduled send to running, planning its ledger in the same transaction.

    The conditional UPDATE is the lock: when several workers tick at once, exactly one
    sees `status = 'scheduled'` and plans; the others update nothing and move on.
    """
    with session_scope(engine) as session:
        due = list(
            session.exec(
                select(Send.id)
                .where(Send.status == SendStatus.SCHEDULED, col(Send.scheduled_at) <= now)
                .order_by(Send.scheduled_at, Send.id)
            )
        )
    started = []
    for send_id in due:
        with session_scope(engine, immediate=True) as session:
            won = session.execute(
                sa.update(Send)
                .where(col(Send.id) == send_id, col(Send.status) == SendStatus.SCHEDULED)
                .values(status=SendStatus.RUNNING, started_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if not won:
                continue
            send = session.get_one(Send, send_id)
            send.planned = plan_deliveries(send, session=session, now=now)
            session.add(send)
        started.append(send_id)
    return started


# --- claiming and handing off --------------------------------------------------------------


def claim_batch(
    engine: Engine, *, send_id: int, worker_id: str, limit: int, lease: timedelta, now: datetime
) -> list[int]:
    """Take up to `limit` rows of a running send for this worker; returns their ids.

    Claimable: queued rows, and claimed rows whose lease expired (that worker died before
    handing them off). PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers take
    disjoint rows without waiting. SQLite: `BEGIN IMMEDIATE` serializes claimers.
    """
    claimable = sa.or_(
        col(Delivery.status) == DeliveryStatus.QUEUED,
        sa.and_(
            col(Delivery.status) == DeliveryStatus.CLAIMED,
            col(Delivery.lease_expires_at) < now,
        ),
    )
    send_running = (
        sa.select(sa.literal(1))
        .where(col(Send.id) == send_id, col(Send.status) == SendStatus.RUNNING)
        .exists()
    )
    candidates = (
        sa.select(col(Delivery.id))
        .where(col(Delivery.send_id) == send_id, claimable, send_running)
        .order_by(col(Delivery.id))
        .limit(limit)
    )
    if is_postgresql(engine):
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        sa.update(Delivery)
        .where(col(Delivery.id).in_(candidates.scalar_subquery()))
        .values(
            status=DeliveryStatus.CLAIMED,
            worker_id=worker_id,
            lease_expires_at=now + lease,
            attempts=col(Delivery.attempts) + 1,
            updated_at=now,
        )
        .returning(col(Delivery.id))
    )
    with session_scope(engine, immediate=True) as session:
        return sorted(session.execute(statement).scalars())


def expire_stale_sending(engine: Engine, *, now: datetime) -> int:
    """Rows left `sending` by a worker that died mid-request become `unknown`.

    Their request may have reached the provider; resending could deliver twice. Webhook
    events or `sends resolve` settle them.
    """
    with session_scope(engine) as session:
        return int(
            session.execute(
                sa.update(Delivery)
                .where(
                    col(Delivery.status) == DeliveryStatus.SENDING,
                    col(Delivery.lease_expires_at) < now,
                )
                .values(
                    status=DeliveryStatus.UNKNOWN,
                    error="the worker stopped while the request was in flight",
                    updated_at=now,
                )
            ).rowcount  # type: ignore[attr-defined]
            or 0
        )


@dataclass(frozen=True)
class _Target:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str


def _mark(
    session: Session, ids: list[int], owner: str, from_status: str, **values: Any
) -> list[int]:
    """Move this worker's rows from one state to the next; returns the ids it still held."""
    if not ids:
        return []
    statement = (
        sa.update(Delivery)
        .where(
            col(Delivery.id).in_(ids),
            col(Delivery.worker_id) == owner,
            col(Delivery.status) == from_status,
        )
        .values(**values)
        .returning(col(Delivery.id))
    )
    return sorted(session.execute(statement).scalars())


@dataclass
class Dispatcher:
    """Works the ledger for one worker process: claim, hand off, record."""

    engine: Engine
    settings: Settings
    transport: Transport
    worker_id: str = field(default_factory=new_worker_id)
    clock: Clock = utcnow

    def __post_init__(self) -> None:
        self._signer = TokenSigner(self.settings.NEWSLETTER_SECRET_KEY.get_secret_value())
        self._lease = timedelta(seconds=self.settings.NEWSLETTER_LEASE_SECONDS)
        self._batch_size = min(self.settings.NEWSLETTER_BATCH_SIZE, self.transport.max_batch_size)

    def _recipient(self, target: _Target) -> Recipient:
        base = self.settings.NEWSLETTER_BASE_URL
        unsubscribe_url = (
            f"{base}/unsubscribe/{self._signer.sign('unsubscribe', target.subscriber_id)}"
        )
        preferences_url = (
            f"{base}/preferences/{self._signer.sign('preferences', target.subscriber_id)}"
        )
        return Recipient(
            delivery_id=target.delivery_id,
            email=target.email,
            name=target.name,
            values=recipient_values(
                name=target.name,
                email=target.email,
                unsubscribe_url=unsubscribe_url,
                preferences_url=preferences_url,
            ),
            # RFC 8058: mailbox providers show an unsubscribe button that POSTs here.
            headers={
                "List-Unsubscribe": f"<{unsubscribe_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )

    def send_one_batch(self, send: Send, categories: list[str]) -> int:
        """Claim and hand off one batch of `send`; returns how many rows it settled."""
        now = self.clock()
        ids = claim_batch(
            self.engine,
            send_id=send.id or 0,
            worker_id=self.worker_id,
            limit=self._batch_size,
            lease=self._lease,
            now=now,
        )
        if not ids:
            return 0
        with session_scope(self.engine) as session:
            rows = session.execute(
                sa.select(
                    col(Delivery.id),
                    col(Subscriber.id),
                    col(Subscriber.email),
                    col(Subscriber.name),
                    col(Subscriber.status),
                )
                .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
                .where(col(Delivery.id).in_(ids))
                .order_by(col(Delivery.id))
            ).all()
            # Someone who left after planning is skipped, not mailed.
            gone = [row[0] for row in rows if row[4] != SubscriberStatus.ACTIVE]
            _mark(
                session,
                gone,
                self.worker_id,
                DeliveryStatus.CLAIMED,
                status=DeliveryStatus.SKIPPED,
                updated_at=now,
                error="subscriber left",
            )
            targets = [
                _Target(r[0], r[1], r[2], r[3]) for r in rows if r[4] == SubscriberStatus.ACTIVE
            ]
            held = set(
                _mark(
                    session,
                    [t.delivery_id for t in targets],
                    self.worker_id,
                    DeliveryStatus.CLAIMED,
                    status=DeliveryStatus.SENDING,
                    updated_at=now,
                )
            )
        targets = [target for target in targets if target.delivery_id in held]
        if targets:
            batch = Batch(
                send_id=send.id or 0,
                subject=send.subject,
                html=send.html,
                text=send.text,
                recipients=[self._recipient(target) for target in targets],
                categories=categories,
            )
            self._record(send, [t.delivery_id for t in targets], self.transport.send_batch(batch))
        return len(ids)

    def _record(self, send: Send, ids: list[int], result: BatchResult) -> None:
        now = self.clock()
        next_state = {
            Outcome.SENT: DeliveryStatus.SENT,
            Outcome.FAILED: DeliveryStatus.FAILED,
            Outcome.UNKNOWN: DeliveryStatus.UNKNOWN,
        }
        with session_scope(self.engine) as session:
            if result.outcome is Outcome.RETRY_LATER or result.fatal:
                # Nothing was accepted: back to the queue, for a later tick or after a fix.
                _mark(
                    session,
                    ids,
                    self.worker_id,
                    DeliveryStatus.SENDING,
                    status=DeliveryStatus.QUEUED,
                    worker_id="",
                    lease_expires_at=None,
                    error=result.error,
                    updated_at=now,
                )
            else:
                _mark(
                    session,
                    ids,
                    self.worker_id,
                    DeliveryStatus.SENDING,
                    status=next_state[result.outcome],
                    message_id=result.message_id,
                    error=result.error,
                    lease_expires_at=None,
                    updated_at=now,
                )
            if result.fatal:
                session.execute(
                    sa.update(Send)
                    .where(col(Send.id) == send.id)
                    .values(status=SendStatus.PAUSED, last_error=result.error)
                )
            elif result.error:
                session.execute(
                    sa.update(Send).where(col(Send.id) == send.id).values(last_error=result.error)
                )
        if result.fatal:
            raise TransportError(
                self.transport.name,
                None,
                f"{result.error}; send {send.id} is paused, fix the cause and run "
                f"`newsletter sends resume {send.id}`",
            )

    def work_send(self, send: Send) -> int:
        """Hand off every claimable row of one send; returns how many rows were settled."""
        categories = [f"brief:{send.brief_id}", f"send:{send.id}"]
        total = 0
        while settled := self.send_one_batch(send, categories):
            total += settled
        return total

    def work_due(self) -> WorkReport:
        """Everything due now: start sends whose time came, work every running send."""
        now = self.clock()
        report = WorkReport(started=start_due_sends(self.engine, now=now))
        report.unknown += expire_stale_sending(self.engine, now=now)
        with session_scope(self.engine) as session:
            running = list(
                session.exec(
                    select(Send).where(Send.status == SendStatus.RUNNING).order_by(Send.id)
                )
            )
        for send in running:
            report.settled += self.work_send(send)
        report.finished = finish_sends(self.engine, now=self.clock())
        return report


@dataclass
class WorkReport:
    started: list[int] = field(default_factory=list)
    settled: int = 0
    unknown: int = 0
    finished: list[int] = field(default_factory=list)


def finish_sends(engine: Engine, *, now: datetime) -> list[int]:
    """Running sends with no open row left are finished; safe for any worker to run."""
    open_rows = (
        sa.select(sa.literal(1))
        .where(col(Delivery.send_id) == col(Send.id), col(Delivery.status).in_(OPEN_STATES))
        .exists()
    )
    with session_scope(engine) as session:
        return sorted(
            session.execute(
                sa.update(Send)
                .where(col(Send.status) == SendStatus.RUNNING, ~open_rows)
                .values(status=SendStatus.FINISHED, finished_at=now)
                .returning(col(Send.id))
            ).scalars()
        )


# --- reporting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SendSummary:
    id: int
    brief_slug: str
    status: str
    scheduled_at: datetime
    planned: int
    counts: dict[str, int]
    last_error: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "brief": self.brief_slug,
            "status": self.status,
            "scheduled_at": self.scheduled_at.isoformat(),
            "planned": self.planned,
            "counts": self.counts,
            "last_error": self.last_error,
        }


def summarize_sends(*, session: Session, send_id: int | None = None) -> list[SendSummary]:
    """Sends with their ledger counts per state, counted by the database in one query."""
    statement = (
        sa.select(Send, col(Brief.slug))
        .join(Brief, col(Brief.id) == col(Send.brief_id))
        .order_by(col(Send.id).desc())
    )
    if send_id is not None:
        get_send(send_id, session=session)
        statement = statement.where(col(Send.id) == send_id)
    sends = session.execute(statement).all()
    counts: dict[int, dict[str, int]] = {}
    if sends:
        grouped = session.execute(
            sa.select(col(Delivery.send_id), col(Delivery.status), sa.func.count())
            .where(col(Delivery.send_id).in_([s.id for s, _ in sends]))
            .group_by(col(Delivery.send_id), col(Delivery.status))
        )
        for sid, status, count in grouped:
            counts.setdefault(sid, {})[status] = count
    return [
        SendSummary(
            id=send.id or 0,
            brief_slug=slug,
            status=send.status,
            scheduled_at=send.scheduled_at,
            planned=send.planned,
            counts={
                state.value: counts.get(send.id or 0, {}).get(state.value, 0)
                for state in DeliveryStatus
            },
            last_error=send.last_error,
        )
        for send, slug in sends
    ]
