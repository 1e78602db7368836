"""Sends and the delivery ledger: plan, claim, hand off, record.

The database holds every bit of a send's state, so any worker can stop at any point and
another carries on. A ledger row moves

    queued ──claim──> claimed ──provider answers──> sent | failed | unknown
       ^                 │
       └── lease expired before the request began (batch `claimed`)
                         └──> unknown: lease expired mid-request (batch `sending`)

and whether a claimed row's request has begun is recorded once per batch (`DeliveryBatch`,
a one-row update committed before the HTTP call), never guessed. No transaction stays open
across a network call: claiming, marking and recording are each their own short
transaction, and each worker runs NEWSLETTER_CONCURRENCY of these loops in threads.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from newsletter.briefs import brief_topics, get_brief
from newsletter.config import Settings
from newsletter.db import is_postgresql, session_scope
from newsletter.errors import ConflictError, NewsletterError, NotFoundError
from newsletter.models import (
    BatchStatus,
    Brief,
    BriefTopic,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Send,
    SendKind,
    SendStatus,
)
from newsletter.render import GMAIL_CLIP_BYTES, recipient_values, render_brief
from newsletter.transports import Batch, BatchResult, Outcome, Recipient, Transport
from subscribers.matching import matching_subscribers
from subscribers.models import Cadence, Subscriber, SubscriberStatus, utcnow
from subscribers.sql import any_of
from subscribers.tokens import TokenSigner

log = logging.getLogger("newsletter.dispatch")

Clock = Callable[[], datetime]
_TIME = Delivery.__table__.c.not_before.type  # type: ignore[attr-defined]
_LOCAL_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
# What the token in every email's unsubscribe and preferences links is signed for.
LINK_TOKEN_PURPOSE = "subscriber-links"  # noqa: S105 - a label, not a secret
OPEN_STATES = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED)
SETTLED_STATES = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.CANCELLED,
)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# --- creating a send -----------------------------------------------------------------------


def create_send(
    brief_reference: str,
    *,
    session: Session,
    settings: Settings,
    when: datetime | None = None,
    local_time: str = "",
) -> Send:
    """Render and check the brief now, so a bad one is refused before anything is queued.

    The send is planned into the ledger by a worker when `when` comes (subscribers who join
    or leave meanwhile are counted as they are then). With `local_time` ("07:00") it is
    planned at once and each recipient's row falls due at the next 07:00 in their own
    timezone; someone whose 07:00 has passed today gets it tomorrow at 07:00.
    """
    if local_time and not _LOCAL_TIME.fullmatch(local_time):
        raise NewsletterError(f"--local-time {local_time!r}: write it as HH:MM, e.g. 07:00")
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
        local_time=local_time,
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


def next_local_time(local_time: str, zone: str, *, after: datetime) -> datetime:
    """The first `local_time` ("07:00") in `zone` strictly after `after`, in UTC.

    Wall-clock arithmetic in the zone, so a daylight-saving change between `after` and the
    answer moves the UTC time, not the local one.
    """
    hours, minutes = (int(part) for part in local_time.split(":"))
    tz = ZoneInfo(zone)
    local_after = after.astimezone(tz)
    day = local_after.date()
    candidate = datetime.combine(day, dt_time(hours, minutes), tzinfo=tz)
    if candidate <= local_after:
        candidate = datetime.combine(day + timedelta(days=1), dt_time(hours, minutes), tzinfo=tz)
    return candidate.astimezone(UTC)


def plan_deliveries(send: Send, *, session: Session, now: datetime) -> int:
    """Write one queued Delivery per matching subscriber: one INSERT … SELECT.

    Returns how many rows the send's ledger holds afterwards.

    Matching runs inside the database (no subscriber is loaded into Python); subscribers
    already in the send's ledger are left out, so a second run adds only newcomers. A
    `--local-time` send takes one INSERT … SELECT per distinct due moment (time zones
    sharing an offset share one), in due order, so each wave's rows have adjacent ids.
    """
    brief_topic_ids = select(BriefTopic.topic_id).where(BriefTopic.brief_id == send.brief_id)
    # Daily and weekly readers get the brief in their digest (newsletter.digests), not now.
    matching = matching_subscribers(brief_topic_ids, cadences=[Cadence.IMMEDIATE])
    if not send.local_time:
        waves: list[tuple[datetime, list[str] | None]] = [(now, None)]
    else:
        zones = session.scalars(
            sa.select(col(Subscriber.timezone))
            .where(col(Subscriber.id).in_(matching.scalar_subquery()))
            .distinct()
        ).all()
        by_moment: dict[datetime, list[str]] = {}
        for zone in zones:
            moment = next_local_time(send.local_time, zone, after=send.created_at)
            by_moment.setdefault(moment, []).append(zone)
        waves = sorted((moment, sorted(group)) for moment, group in by_moment.items())
    postgres = is_postgresql(session.connection())
    again = session.scalar(
        sa.select(sa.literal(1)).where(col(Delivery.send_id) == send.id).limit(1)
    )
    if postgres:
        # JIT compiling these statements costs more than it saves (~0.2 s).
        session.execute(sa.text("SET LOCAL jit = off"))
    datetime_type = Delivery.__table__.c.updated_at.type  # type: ignore[attr-defined]
    columns = [
        "send_id",
        "subscriber_id",
        "status",
        "not_before",
        "attempts",
        "message_id",
        "error",
        "updated_at",
    ]
    for moment, zones_due in waves:
        recipients = matching
        if zones_due is not None:
            recipients = recipients.where(col(Subscriber.timezone).in_(zones_due))
        picked = recipients.subquery()
        rows = sa.select(
            sa.literal(send.id),
            picked.c.id,
            sa.literal(DeliveryStatus.QUEUED.value),
            sa.literal(moment, type_=datetime_type),
            sa.literal(0),
            sa.literal(""),
            sa.literal(""),
            sa.literal(now, type_=datetime_type),
        ).where(
            # No ORDER BY: a sort (or a primary-key walk) costs a second per million rows.
            # The WHERE is for SQLite, which cannot tell an upsert's ON from a join's without.
            sa.true()
        )
        statement: Any = sa.insert(Delivery).from_select(columns, rows)
        if again:
            # Planning again (newcomers since): skip those already in the ledger. The first
            # plan, the usual case, needs no such check: PostgreSQL's speculative insertion
            # for ON CONFLICT costs about two seconds per million rows.
            dialect_insert = postgresql.insert if postgres else sqlite.insert
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


def start_due_sends(engine: Engine, *, now: datetime, only: int | None = None) -> list[int]:
    """Move every due scheduled send to running, planning its ledger in the same transaction.

    The conditional UPDATE is the lock: when several workers tick at once, exactly one
    sees `status = 'scheduled'` and plans; the others update nothing and move on.
    """
    statement = (
        select(Send.id)
        .where(Send.status == SendStatus.SCHEDULED, col(Send.scheduled_at) <= now)
        .order_by(Send.scheduled_at, Send.id)
    )
    if only is not None:
        statement = statement.where(Send.id == only)
    with session_scope(engine) as session:
        due = list(session.exec(statement))
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


# --- claiming, handing off, recording ------------------------------------------------------


@dataclass(frozen=True)
class Target:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str


@dataclass(frozen=True)
class Claim:
    batch_id: int
    send_id: int
    targets: list[Target]
    skipped: int = 0
    first_id: int = 0  # the claimed rows' id range (other batches' rows may lie inside it)
    last_id: int = 0
    last_key: tuple[datetime, int] | None = None  # (not_before, id) of the last row claimed

    @property
    def size(self) -> int:
        return len(self.targets) + self.skipped


def claim_batch(
    engine: Engine,
    *,
    send_id: int,
    worker_id: str,
    limit: int,
    lease: timedelta,
    now: datetime,
    after: tuple[datetime, int] | None = None,
) -> Claim | None:
    """Take up to `limit` queued, due rows of a running send as one batch, in due order;
    None when none is left.

    `after` (a previous claim's last key) lets a sender thread seek past the rows it already
    claimed: the index still holds their old `queued` entries until vacuum, and scanning
    them again for every batch would make a million-row send quadratic.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint rows without
    waiting. SQLite: `BEGIN IMMEDIATE` serializes claimers. Subscribers who left since
    planning are marked skipped here, inside the claim, and never reach a transport.
    """
    with session_scope(engine, immediate=True) as session:
        connection = session.connection()
        status = connection.execute(
            sa.select(col(Send.status)).where(col(Send.id) == send_id)
        ).scalar()
        if status != SendStatus.RUNNING:
            return None
        batch_id = connection.execute(
            sa.insert(DeliveryBatch)
            .values(
                send_id=send_id,
                worker_id=worker_id,
                status=BatchStatus.CLAIMED,
                size=0,
                lease_expires_at=now + lease,
                created_at=now,
                outcome="",
                error="",
            )
            .returning(col(DeliveryBatch.id))
        ).scalar_one()
        due_key = sa.tuple_(col(Delivery.not_before), col(Delivery.id))
        picked = (
            sa.select(col(Delivery.id))
            .where(
                col(Delivery.send_id) == send_id,
                col(Delivery.status) == DeliveryStatus.QUEUED,
                col(Delivery.not_before) <= now,
            )
            .order_by(col(Delivery.not_before), col(Delivery.id))
            .limit(limit)
        )
        if after is not None:
            picked = picked.where(
                due_key > sa.tuple_(sa.literal(after[0], type_=_TIME), sa.literal(after[1]))
            )
        if is_postgresql(connection):
            picked = picked.with_for_update(skip_locked=True)
        # MATERIALIZED: the locking subquery runs exactly once, whatever the plan.
        picked_cte = picked.cte("picked").prefix_with("MATERIALIZED")
        claimed = connection.execute(
            sa.update(Delivery)
            .where(col(Delivery.id) == picked_cte.c.id)
            .values(
                status=DeliveryStatus.CLAIMED,
                batch_id=batch_id,
                attempts=col(Delivery.attempts) + 1,
                updated_at=now,
            )
            .returning(col(Delivery.id), col(Delivery.not_before))
        ).all()
        if not claimed:
            connection.execute(sa.delete(DeliveryBatch).where(col(DeliveryBatch.id) == batch_id))
            return None
        first_id, last_id = min(row[0] for row in claimed), max(row[0] for row in claimed)
        last_key = max((row[1], row[0]) for row in claimed)
        # By id range and batch, not by a list of ids: a primary-key range scan whose plan
        # does not depend on a thousand-element parameter the planner cannot see into.
        rows = connection.execute(
            sa.select(
                col(Delivery.id),
                col(Subscriber.id),
                col(Subscriber.email),
                col(Subscriber.name),
                col(Subscriber.status),
            )
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .where(
                col(Delivery.id).between(first_id, last_id),
                col(Delivery.batch_id) == batch_id,
            )
            .order_by(col(Delivery.id))
        ).all()
        targets = [Target(r[0], r[1], r[2], r[3]) for r in rows if r[4] == SubscriberStatus.ACTIVE]
        gone = [r[0] for r in rows if r[4] != SubscriberStatus.ACTIVE]
        if gone:
            connection.execute(
                sa.update(Delivery)
                .where(any_of(connection, col(Delivery.id), gone))
                .values(status=DeliveryStatus.SKIPPED, error="subscriber left", updated_at=now)
            )
        connection.execute(
            sa.update(DeliveryBatch)
            .where(col(DeliveryBatch.id) == batch_id)
            .values(size=len(targets))
        )
    return Claim(
        batch_id=batch_id,
        send_id=send_id,
        targets=targets,
        skipped=len(gone),
        first_id=first_id,
        last_id=last_id,
        last_key=last_key,
    )


def begin_handoff(engine: Engine, claim: Claim, *, now: datetime) -> bool:
    """Mark the batch as on the wire, committed before the request; False: do not send.

    Refused when the lease was already taken back by another worker, or when staff paused
    or cancelled the send since the claim; the rows then go back (or are cancelled).
    """
    send_running = (
        sa.select(sa.literal(1))
        .where(col(Send.id) == claim.send_id, col(Send.status) == SendStatus.RUNNING)
        .exists()
    )
    with session_scope(engine, immediate=True) as session:
        connection = session.connection()
        started = connection.execute(
            sa.update(DeliveryBatch)
            .where(
                col(DeliveryBatch.id) == claim.batch_id,
                col(DeliveryBatch.status) == BatchStatus.CLAIMED,
                send_running,
            )
            .values(status=BatchStatus.SENDING)
        ).rowcount
        if started:
            return True
        _release_batch(connection, claim.batch_id, now=now)
    return False


def _release_batch(connection: Connection, batch_id: int, *, now: datetime) -> int:
    """A claimed batch that will not be sent: its rows back to the queue (or cancelled)."""
    batch = connection.execute(
        sa.select(col(DeliveryBatch.send_id), col(DeliveryBatch.status)).where(
            col(DeliveryBatch.id) == batch_id
        )
    ).one_or_none()
    if batch is None or batch[1] not in (BatchStatus.CLAIMED, BatchStatus.RELEASED):
        return 0
    connection.execute(
        sa.update(DeliveryBatch)
        .where(col(DeliveryBatch.id) == batch_id)
        .values(status=BatchStatus.RELEASED, finished_at=now)
    )
    send_status = connection.execute(
        sa.select(col(Send.status)).where(col(Send.id) == batch[0])
    ).scalar()
    cancelled = send_status == SendStatus.CANCELLED
    return int(
        connection.execute(
            sa.update(Delivery)
            .where(
                col(Delivery.send_id) == batch[0],
                col(Delivery.status) == DeliveryStatus.CLAIMED,
                col(Delivery.batch_id) == batch_id,
            )
            .values(
                status=DeliveryStatus.CANCELLED if cancelled else DeliveryStatus.QUEUED,
                updated_at=now,
            )
        ).rowcount
        or 0
    )


_ROW_STATE = {
    Outcome.SENT: DeliveryStatus.SENT,
    Outcome.FAILED: DeliveryStatus.FAILED,
    Outcome.UNKNOWN: DeliveryStatus.UNKNOWN,
    Outcome.RETRY_LATER: DeliveryStatus.QUEUED,  # nothing was accepted: back in line
}


def record_batch(
    engine: Engine,
    claim: Claim,
    result: BatchResult,
    *,
    now: datetime,
    pause_after: int,
    max_attempts: int = 10,
) -> str:
    """Write the provider's answer into the ledger; returns why the send paused, or "".

    Rows are matched by id *and* batch, so an answer that arrives after the lease was taken
    back cannot overwrite another batch's rows. An `unknown` row (lease expired mid-request)
    is corrected by the real answer when it does arrive.
    """
    groups: dict[tuple[DeliveryStatus, str], list[int]] = {}
    for target in claim.targets:
        exception = result.exceptions.get(target.delivery_id)
        outcome, error = (
            (exception.outcome, exception.error) if exception else (result.outcome, result.error)
        )
        # A refused account accepted nothing: the rows wait for `sends resume`.
        state = DeliveryStatus.QUEUED if result.fatal else _ROW_STATE[outcome]
        groups.setdefault((state, error), []).append(target.delivery_id)
    batch_failed = result.fatal or result.outcome in (Outcome.FAILED, Outcome.RETRY_LATER)
    with session_scope(engine) as session:
        connection = session.connection()
        for (state, error), ids in groups.items():
            values: dict[str, Any] = {"status": state, "error": error, "updated_at": now}
            if state is DeliveryStatus.QUEUED and not result.fatal:
                # Back in line, unless it has had its chances: then it failed, and says so.
                exhausted = col(Delivery.attempts) >= max_attempts
                values["status"] = sa.case(
                    (exhausted, DeliveryStatus.FAILED.value), else_=DeliveryStatus.QUEUED.value
                )
                values["error"] = sa.case(
                    (exhausted, f"{error} (gave up after {max_attempts} attempts)"), else_=error
                )
            if state is DeliveryStatus.SENT:
                values["message_id"] = result.message_id
            # The usual case, one outcome for the whole batch, goes by id range (see claim).
            rows = (
                col(Delivery.id).between(claim.first_id, claim.last_id)
                if len(groups) == 1
                else any_of(connection, col(Delivery.id), ids)
            )
            connection.execute(
                sa.update(Delivery)
                .where(
                    rows,
                    col(Delivery.batch_id) == claim.batch_id,
                    col(Delivery.status).in_([DeliveryStatus.CLAIMED, DeliveryStatus.UNKNOWN]),
                )
                .values(**values)
            )
        connection.execute(
            sa.update(DeliveryBatch)
            .where(col(DeliveryBatch.id) == claim.batch_id)
            .values(
                status=BatchStatus.DONE,
                outcome=result.outcome.value,
                error=result.error,
                finished_at=now,
            )
        )
        if not batch_failed:
            return ""
        failed_batches = connection.execute(
            sa.update(Send)
            .where(col(Send.id) == claim.send_id)
            .values(
                failed_batches=col(Send.failed_batches) + 1,
                # A paused send keeps the reason it paused, not a later thread's echo of it.
                last_error=sa.case(
                    (col(Send.status) == SendStatus.RUNNING, result.error),
                    else_=col(Send.last_error),
                ),
            )
            .returning(col(Send.failed_batches))
        ).scalar_one()
        if result.fatal:
            reason = f"the provider refused the account: {result.error}"
        elif failed_batches >= pause_after:
            reason = f"{failed_batches} batches failed; the last said: {result.error}"
        else:
            return ""
        paused = connection.execute(
            sa.update(Send)
            .where(col(Send.id) == claim.send_id, col(Send.status) == SendStatus.RUNNING)
            .values(status=SendStatus.PAUSED, last_error=f"paused: {reason}")
        ).rowcount
        return reason if paused else ""


@dataclass
class Recovery:
    released: int = 0  # rows whose request never began, back in the queue
    unknown: int = 0  # rows whose request may have gone out


def recover_expired_batches(engine: Engine, *, now: datetime) -> Recovery:
    """Batches whose worker died: requeue if the request never began, else `unknown`.

    Safe for any number of workers at once: each batch changes state by compare-and-set.
    """
    recovery = Recovery()
    with session_scope(engine) as session:
        expired = session.execute(
            sa.select(col(DeliveryBatch.id), col(DeliveryBatch.send_id), col(DeliveryBatch.status))
            .where(
                col(DeliveryBatch.status).in_([BatchStatus.CLAIMED, BatchStatus.SENDING]),
                col(DeliveryBatch.lease_expires_at) < now,
            )
            .order_by(col(DeliveryBatch.id))
        ).all()
    for batch_id, send_id, status in expired:
        with session_scope(engine, immediate=True) as session:
            connection = session.connection()
            if status == BatchStatus.CLAIMED:
                recovery.released += _release_batch(connection, batch_id, now=now)
                continue
            won = connection.execute(
                sa.update(DeliveryBatch)
                .where(
                    col(DeliveryBatch.id) == batch_id,
                    col(DeliveryBatch.status) == BatchStatus.SENDING,
                )
                .values(status=BatchStatus.ABANDONED, finished_at=now)
            ).rowcount
            if not won:
                continue
            recovery.unknown += int(
                connection.execute(
                    sa.update(Delivery)
                    .where(
                        col(Delivery.send_id) == send_id,
                        col(Delivery.status) == DeliveryStatus.CLAIMED,
                        col(Delivery.batch_id) == batch_id,
                    )
                    .values(
                        status=DeliveryStatus.UNKNOWN,
                        error="the worker stopped while the request was in flight",
                        updated_at=now,
                    )
                ).rowcount
                or 0
            )
    return recovery


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


# --- the worker's side ---------------------------------------------------------------------


class RateLimiter:
    """At most `rate` messages per second across this process's threads (0: no limit).

    Each caller reserves its slot under the lock and sleeps outside it, so threads queue in
    order and a 1000-recipient batch waits as long as 1000 messages take at the cap.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0

    def reserve(self, messages: int) -> float:
        """Seconds to wait before sending `messages`."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + messages / self.rate
            return start - now


def send_categories(engine: Engine, send: Send) -> list[str]:
    """Provider-side labels for a send's messages: the brief's slug, then its topics, so
    the provider's own statistics split the same way ours do."""
    with session_scope(engine) as session:
        brief = session.get_one(Brief, send.brief_id)
        if send.kind == SendKind.DIGEST:
            return ["digest"]
        return [brief.slug, *(topic.slug for topic in brief_topics(brief, session=session))]


@dataclass
class WorkReport:
    started: list[int] = field(default_factory=list)
    settled: int = 0
    released: int = 0
    unknown: int = 0
    finished: list[int] = field(default_factory=list)
    paused: dict[int, str] = field(default_factory=dict)  # send id → why
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_settled(self, rows: int) -> None:
        with self._lock:  # several sender threads report into one WorkReport
            self.settled += rows


@dataclass
class Dispatcher:
    """Works the ledger for one worker process: claim, hand off, record, in N threads."""

    engine: Engine
    settings: Settings
    transport: Transport
    worker_id: str = field(default_factory=new_worker_id)
    clock: Clock = utcnow
    # Called with the number of rows each batch settled (progress bars); from any thread.
    on_progress: Callable[[int], None] | None = None
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._signer = TokenSigner(self.settings.NEWSLETTER_SECRET_KEY.get_secret_value())
        self._lease = timedelta(seconds=self.settings.NEWSLETTER_LEASE_SECONDS)
        self._batch_size = min(self.settings.NEWSLETTER_BATCH_SIZE, self.transport.max_batch_size)
        self._limiter = RateLimiter(self.settings.NEWSLETTER_RATE_LIMIT)
        self._stopping = threading.Event()
        base = self.settings.NEWSLETTER_BASE_URL
        self._unsubscribe_base = f"{base}/unsubscribe/"
        self._preferences_base = f"{base}/preferences/"

    def request_stop(self) -> None:
        """Finish the batches in hand, claim no more (SIGTERM)."""
        self._stopping.set()

    def recipient(self, target: Target) -> Recipient:
        # One signed token serves both links: each lets its holder change only their own
        # subscription, and signing once halves the per-recipient cost.
        token = self._signer.sign(LINK_TOKEN_PURPOSE, target.subscriber_id)
        unsubscribe_url = self._unsubscribe_base + token
        preferences_url = self._preferences_base + token
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

    def hand_off(self, send: Send, claim: Claim, categories: list[str]) -> str:
        """Send one claimed batch and record the answer; returns why the send paused, or ""."""
        if not claim.targets:
            return ""
        batch = Batch(
            send_id=claim.send_id,
            subject=send.subject,
            html=send.html,
            text=send.text,
            recipients=[self.recipient(target) for target in claim.targets],
            categories=categories,
        )
        wait = self._limiter.reserve(len(batch.recipients))
        if wait:
            self.sleep(wait)
        if not begin_handoff(self.engine, claim, now=self.clock()):
            return ""
        try:
            result = self.transport.send_batch(batch)
        except Exception as exc:  # a transport bug must not leave the batch looking alive
            log.exception("transport %s raised", self.transport.name)
            result = BatchResult(Outcome.UNKNOWN, error=f"the transport raised {exc!r}")
        return record_batch(
            self.engine,
            claim,
            result,
            now=self.clock(),
            pause_after=self.settings.NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES,
            max_attempts=self.settings.NEWSLETTER_MAX_ATTEMPTS,
        )

    def _drain(self, send: Send, categories: list[str], report: WorkReport) -> None:
        """One thread's loop: batches of this send until none is left or the send stops.

        It claims forward from its last batch; when nothing lies ahead it sweeps once more
        from the start, for rows requeued behind it (a 4xx, a released lease). Rows
        requeued after that wait for the next tick, so a recipient whose server keeps
        saying "try later" costs one attempt per tick, not a busy loop.
        """
        cursor: tuple[datetime, int] | None = None
        swept = False
        while not self._stopping.is_set():
            claim = claim_batch(
                self.engine,
                send_id=send.id or 0,
                worker_id=self.worker_id,
                limit=self._batch_size,
                lease=self._lease,
                now=self.clock(),
                after=cursor,
            )
            if claim is None:
                if swept:
                    return
                cursor, swept = None, True
                continue
            cursor = claim.last_key
            paused = self.hand_off(send, claim, categories)
            report.add_settled(claim.size)
            if self.on_progress is not None:
                self.on_progress(claim.size)
            if paused:
                report.paused[send.id or 0] = paused
                return

    def work_send(self, send: Send, report: WorkReport | None = None) -> WorkReport:
        """Hand off every claimable row of one send with NEWSLETTER_CONCURRENCY threads."""
        report = report if report is not None else WorkReport()
        categories = send_categories(self.engine, send)
        threads = [
            threading.Thread(
                target=self._drain, args=(send, categories, report), name=f"send-{send.id}-{n}"
            )
            for n in range(self.settings.NEWSLETTER_CONCURRENCY)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return report

    def work_due(self, *, only: int | None = None) -> WorkReport:
        """Everything due now: recover dead batches, start due sends, work running ones."""
        now = self.clock()
        recovery = recover_expired_batches(self.engine, now=now)
        report = WorkReport(released=recovery.released, unknown=recovery.unknown)
        report.started = start_due_sends(self.engine, now=now, only=only)
        with session_scope(self.engine) as session:
            statement = select(Send).where(Send.status == SendStatus.RUNNING).order_by(Send.id)
            if only is not None:
                statement = statement.where(Send.id == only)
            running = list(session.exec(statement))
        for send in running:
            if self._stopping.is_set():
                break
            self.work_send(send, report)
        report.finished = finish_sends(self.engine, now=self.clock())
        return report


# --- staff controls ------------------------------------------------------------------------


class ResolveAction(StrEnum):
    RESEND = "resend"
    DROP = "drop"


def _transition(session: Session, send_id: int, allowed: tuple[SendStatus, ...], verb: str) -> Send:
    send = get_send(send_id, session=session)
    if send.status not in allowed:
        raise ConflictError(
            f"send {send_id} is {send.status}; only a {' or '.join(allowed)} send can be {verb}"
        )
    return send


def pause_send(send_id: int, *, session: Session) -> Send:
    """Workers stop claiming at once; batches already on the wire finish and are recorded."""
    send = _transition(session, send_id, (SendStatus.SCHEDULED, SendStatus.RUNNING), "paused")
    send.status = SendStatus.PAUSED
    send.last_error = "paused by staff"
    session.add(send)
    return send


def resume_send(send_id: int, *, session: Session) -> Send:
    """Back to work; the failed-batch count starts again from zero."""
    send = _transition(session, send_id, (SendStatus.PAUSED,), "resumed")
    send.status = SendStatus.RUNNING if send.started_at else SendStatus.SCHEDULED
    send.failed_batches = 0
    session.add(send)
    return send


def cancel_send(send_id: int, *, session: Session, now: datetime) -> int:
    """Stop for good: queued rows become cancelled; returns how many. In-flight batches
    finish (their request may already be out) and are recorded as usual."""
    send = _transition(
        session,
        send_id,
        (SendStatus.SCHEDULED, SendStatus.RUNNING, SendStatus.PAUSED),
        "cancelled",
    )
    send.status = SendStatus.CANCELLED
    send.finished_at = now
    session.add(send)
    session.flush()
    return int(
        session.execute(
            sa.update(Delivery)
            .where(col(Delivery.send_id) == send_id, col(Delivery.status) == DeliveryStatus.QUEUED)
            .values(status=DeliveryStatus.CANCELLED, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
        or 0
    )


def resolve_unknown(send_id: int, action: ResolveAction, *, session: Session, now: datetime) -> int:
    """Staff decide the ambiguous rows: resend them (risking a duplicate for some) or drop
    them (risking a miss for some). Returns how many rows changed."""
    send = get_send(send_id, session=session)
    if action is ResolveAction.RESEND:
        values: dict[str, Any] = {
            "status": DeliveryStatus.QUEUED,
            "batch_id": None,
            "error": "requeued by staff after an ambiguous hand-off",
        }
    else:
        values = {
            "status": DeliveryStatus.SKIPPED,
            "error": "dropped by staff after an ambiguous hand-off",
        }
    changed = int(
        session.execute(
            sa.update(Delivery)
            .where(col(Delivery.send_id) == send_id, col(Delivery.status) == DeliveryStatus.UNKNOWN)
            .values(updated_at=now, **values)
        ).rowcount  # type: ignore[attr-defined]
        or 0
    )
    if changed and action is ResolveAction.RESEND and send.status == SendStatus.FINISHED:
        send.status = SendStatus.RUNNING
        send.finished_at = None
        session.add(send)
    return changed


def published_briefs(*, session: Session) -> list[Brief]:
    """Briefs whose send has started, newest first: what the public archive shows. Drafts
    and briefs only scheduled are not published."""
    first_start = sa.func.min(col(Send.started_at)).label("published_at")
    published = (
        sa.select(col(Send.brief_id), first_start)
        .where(col(Send.kind) == SendKind.BRIEF, col(Send.started_at).is_not(None))
        .group_by(col(Send.brief_id))
        .subquery()
    )
    return list(
        session.exec(
            select(Brief)
            .join(published, published.c.brief_id == col(Brief.id))
            .order_by(col(Brief.date).desc(), published.c.published_at.desc())
        )
    )


# --- reporting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SendSummary:
    id: int
    brief_slug: str
    status: str
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    planned: int
    counts: dict[str, int]
    failed_batches: int
    last_error: str
    rate: float  # rows settled per second since the send started
    eta_seconds: float | None
    # When a worker next has something to do for it: its start, or the next local-time wave.
    next_action_at: datetime | None = None
    local_time: str = ""

    @property
    def waiting(self) -> int:
        return sum(self.counts[state.value] for state in OPEN_STATES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "brief": self.brief_slug,
            "status": self.status,
            "scheduled_at": self.scheduled_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "planned": self.planned,
            "counts": self.counts,
            "failed_batches": self.failed_batches,
            "last_error": self.last_error,
            "rate_per_second": round(self.rate, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "next_action_at": self.next_action_at.isoformat() if self.next_action_at else None,
            "local_time": self.local_time,
        }


def summarize_sends(
    *, session: Session, send_id: int | None = None, now: datetime | None = None
) -> list[SendSummary]:
    """Sends with their ledger counts per state, counted by the database in one query."""
    now = now or utcnow()
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
        next_due = dict(
            session.execute(
                sa.select(col(Delivery.send_id), sa.func.min(col(Delivery.not_before)))
                .where(
                    col(Delivery.send_id).in_([s.id for s, _ in sends]),
                    col(Delivery.status) == DeliveryStatus.QUEUED,
                )
                .group_by(col(Delivery.send_id))
            ).all()
        )
    summaries = []
    for send, slug in sends:
        by_state = {
            state.value: counts.get(send.id or 0, {}).get(state.value, 0)
            for state in DeliveryStatus
        }
        settled = sum(by_state[state.value] for state in SETTLED_STATES)
        waiting = sum(by_state[state.value] for state in OPEN_STATES)
        elapsed = (
            ((send.finished_at or now) - send.started_at).total_seconds()
            if send.started_at
            else 0.0
        )
        rate = settled / elapsed if elapsed > 0 else 0.0
        eta = waiting / rate if send.status == SendStatus.RUNNING and rate > 0 else None
        next_action: datetime | None = None
        if send.status == SendStatus.SCHEDULED:
            next_action = send.scheduled_at
        elif send.status == SendStatus.RUNNING and send.id in next_due:
            next_action = max(next_due[send.id], now)
        summaries.append(
            SendSummary(
                id=send.id or 0,
                brief_slug=slug,
                status=send.status,
                scheduled_at=send.scheduled_at,
                started_at=send.started_at,
                finished_at=send.finished_at,
                planned=send.planned,
                counts=by_state,
                failed_batches=send.failed_batches,
                last_error=send.last_error,
                rate=rate,
                eta_seconds=eta,
                next_action_at=next_action,
                local_time=send.local_time,
            )
        )
    return summaries
