"""Briefs, sends and the delivery ledger.

The ledger (`Delivery`) is the only truth about who got what: one row per (send,
subscriber), written before any request, unique in the database.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from subscribers.models import UTCDateTime, utc_column, utcnow

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# SQLite would hand a deleted row's number to the next one (revision 0022).
NEVER_REUSED_IDS = {"sqlite_autoincrement": True}


class Brief(SQLModel, table=True):
    __tablename__ = "brief"
    __table_args__ = NEVER_REUSED_IDS

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=200, unique=True)
    title: str = Field(max_length=500)
    date: date
    author: str = Field(default="", max_length=200)
    preheader: str = Field(default="", max_length=500)
    # Newline-separated takeaway bullets, in Markdown.
    takeaways: str = Field(default="", sa_type=sa.Text)
    body: str = Field(sa_type=sa.Text)
    signature: str = Field(default="", sa_type=sa.Text)
    # The file's name (no folder): with the date, how a file added again is recognised as
    # the same brief (see newsletter.briefs.store.add_brief).
    source_name: str = Field(default="", max_length=500)
    # sha256 of the source file: adding the same file twice is a no-op, not a duplicate.
    content_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # When a draft was last changed (added again, edited in the console); None: never.
    updated_at: datetime | None = utc_column()


class BriefTopic(SQLModel, table=True):
    __tablename__ = "brief_topic"

    brief_id: int = Field(foreign_key="brief.id", primary_key=True, ondelete="CASCADE")
    topic_id: int = Field(foreign_key="topic.id", primary_key=True, ondelete="CASCADE")


# How `last_error` begins when a send paused itself (not paused by staff).
SELF_PAUSED = "paused: "


class SendStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time; nothing planned yet
    RUNNING = "running"  # planned into the ledger; workers are sending
    PAUSED = "paused"  # stopped by staff or by failing batches; `sends resume` continues
    FINISHED = "finished"  # no queued or claimed rows left
    CANCELLED = "cancelled"  # stopped for good; rows not yet handed off were cancelled


class SendKind(StrEnum):
    BRIEF = "brief"  # one brief to its immediate readers
    DIGEST = "digest"  # several briefs in one email, to daily or weekly readers


class Send(SQLModel, table=True):
    __tablename__ = "send"
    __table_args__ = (
        sa.Index("ix_send_status_scheduled_at", "status", "scheduled_at"),
        NEVER_REUSED_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default=SendKind.BRIEF, max_length=16)
    # A digest's newest brief; all of its briefs are in `send_brief`.
    brief_id: int = Field(foreign_key="brief.id", index=True)
    status: str = Field(default=SendStatus.SCHEDULED, max_length=16)
    scheduled_at: datetime = Field(sa_type=UTCDateTime)
    # Rendered once when the send is created, with per-recipient tokens left in; every
    # worker sends exactly these bytes.
    subject: str = Field(max_length=500)
    html: str = Field(sa_type=sa.Text)
    text: str = Field(sa_type=sa.Text)
    planned: int = Field(default=0)
    # "07:00": each recipient gets it at the next 07:00 in their own timezone after the
    # send was created, instead of at `scheduled_at`. Empty for an ordinary send.
    local_time: str = Field(default="", max_length=5)
    # Staff asked for a second copy to readers who already have this brief from another
    # send (`send --include-received`). Otherwise planning leaves them out.
    include_received: bool = Field(default=False)
    # Batches the provider refused or that kept failing, less one for each batch taken
    # since (a resume starts again at 0); at NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES the send
    # pauses itself.
    failed_batches: int = Field(default=0)
    last_error: str = Field(default="", sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = utc_column()
    # When the brief went public through this send (the archive, feeds, digests): when it
    # started, or for a `local_time` send when its first readers are due, so no page shows
    # a brief hours before anyone's email brings it. Empty for a digest.
    published_at: datetime | None = utc_column()
    finished_at: datetime | None = utc_column()


class SendBrief(SQLModel, table=True):
    """A digest's briefs, in the order the email shows them (oldest first)."""

    __tablename__ = "send_brief"

    send_id: int = Field(foreign_key="send.id", primary_key=True, ondelete="CASCADE")
    brief_id: int = Field(foreign_key="brief.id", primary_key=True, index=True)
    position: int = Field(default=0)


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    # No row is written `claimed` any more (a claim is recorded on its DeliveryBatch, see
    # newsletter/sending/ledger); the word stays for rows written by older versions.
    CLAIMED = "claimed"
    SENT = "sent"  # the provider accepted it
    FAILED = "failed"  # the provider refused it; `error` says why
    UNKNOWN = "unknown"  # the request may have reached the provider; never resent blindly
    SKIPPED = "skipped"  # the subscriber left between planning and sending
    CANCELLED = "cancelled"  # the send was cancelled before this row was handed off


# Rows a worker may still hand off, and rows whose story is told.
OPEN_STATES = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED)
SETTLED_STATES = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.CANCELLED,
)


class Delivery(SQLModel, table=True):
    __tablename__ = "delivery"
    __table_args__ = (
        # Exactly once: the database, not a worker's memory, refuses a second row.
        sa.UniqueConstraint("send_id", "subscriber_id", name="uq_delivery_send_subscriber"),
        # Claiming reads one send's queued rows that are due, in due order: the index holds
        # exactly those rows, so rows for later time zones and rows already answered are
        # never scanned. Partial: an outcome written later leaves the row out of it instead
        # of adding a second entry (see newsletter/sending/ledger/claims.py for the plan).
        sa.Index(
            "ix_delivery_queued_due",
            "send_id",
            "not_before",
            "id",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        ),
        # One reader's deliveries (their page in the console, `subscribers show`, their
        # last open and click): without it each is a scan of the whole ledger.
        sa.Index("ix_delivery_subscriber", "subscriber_id"),
    )

    # BIGINT on PostgreSQL; SQLite only auto-increments a plain INTEGER PRIMARY KEY.
    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG_ID)
    # No foreign keys here, on purpose: PostgreSQL checks each one with a trigger per row,
    # which tripled the time to plan a million-row send. Rows are only ever written by
    # planning, which selects existing sends and subscribers, and subscribers are never
    # deleted (`forget` erases their data and keeps the row).
    send_id: int
    subscriber_id: int
    status: str = Field(default=DeliveryStatus.QUEUED, max_length=16)
    # Not to be handed off before this moment: the planning time for an ordinary send, the
    # recipient's own local time for a `--local-time` send.
    not_before: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The batch that last answered for this row (written with its outcome, never by a
    # claim). No foreign key and no index on purpose: lookups go by (send, status) or by id.
    batch_id: int | None = Field(default=None, sa_type=_BIG_ID)
    attempts: int = Field(default=0)
    message_id: str = Field(default="", max_length=200)
    error: str = Field(default="", sa_type=sa.Text)
    updated_at: datetime | None = utc_column()


class BatchStatus(StrEnum):
    CLAIMED = "claimed"  # rows taken, request not begun: if the lease runs out, requeue them
    SENDING = "sending"  # the request may be on the wire: if the lease runs out, rows unknown
    DONE = "done"  # the provider answered and the rows were recorded
    RELEASED = "released"  # the lease ran out before the request; the rows went back
    ABANDONED = "abandoned"  # the lease ran out mid-request; the rows became unknown


# Batches whose rows are taken: no other claim may take them, and no cancel.
LIVE_BATCHES = (BatchStatus.CLAIMED, BatchStatus.SENDING)


class DeliveryBatch(SQLModel, table=True):
    """One claim of up to 1000 ledger rows by one worker, and how far its request got.

    The `claimed → sending` step is a one-row update committed before the HTTP request, so
    a worker killed at any point leaves an unambiguous trace: rows of a `claimed` batch were
    never sent and go back to the queue; rows of a `sending` batch may have been and become
    `unknown`. Keeping that mark here, not on each row, saves a 1000-row UPDATE per batch.

    The claim itself is recorded here too, not on the rows: `keys` lists the delivery ids
    taken, as ranges ("101-1100" for an ordinary batch; "5,9-12" when readers left or rows
    were retried), and `first_id`/`last_id` bound them. A row is written once per hand-off,
    with its outcome.
    """

    __tablename__ = "delivery_batch"
    __table_args__ = (sa.Index("ix_delivery_batch_status_lease", "status", "lease_expires_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG_ID)
    send_id: int = Field(foreign_key="send.id", index=True)
    worker_id: str = Field(max_length=100)
    status: str = Field(default=BatchStatus.CLAIMED, max_length=16)
    size: int = Field(default=0)
    lease_expires_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = utc_column()
    outcome: str = Field(default="", max_length=16)
    error: str = Field(default="", sa_type=sa.Text)
    first_id: int = Field(default=0, sa_type=_BIG_ID)
    last_id: int = Field(default=0, sa_type=_BIG_ID)
    keys: str = Field(default="", sa_type=sa.Text)


class ProviderEventRecord(SQLModel, table=True):
    """Every provider event we accepted, once: the de-duplication ledger for webhooks.

    SendGrid redelivers events, sometimes under a new `sg_event_id`, so an event is a
    duplicate if either its id or its fallback key (what happened, to which delivery or
    address, when) was seen before.
    """

    __tablename__ = "provider_event"
    __table_args__ = (
        sa.UniqueConstraint("provider", "event_id", name="uq_provider_event_id"),
        sa.UniqueConstraint("provider", "fallback_key", name="uq_provider_event_fallback"),
        # Who opened or clicked since a moment (the inactive readers of newsletter/engagement.py)
        # reads one range of this index instead of every event.
        sa.Index("ix_provider_event_kind_occurred", "kind", "occurred_at"),
        # Forgetting a reader finds the events of no delivery of ours by their address
        # (newsletter/readers/actions.py); few events have none, so the index stays small.
        sa.Index(
            "ix_provider_event_stray_email",
            "email",
            postgresql_where=sa.text("delivery_id IS NULL"),
            sqlite_where=sa.text("delivery_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG_ID)
    provider: str = Field(max_length=32)
    event_id: str = Field(max_length=100)
    fallback_key: str = Field(max_length=64)
    # Ours (newsletter.providers.events.EventType), not the provider's word: that is in `raw`.
    kind: str = Field(max_length=32)
    email: str = Field(default="", max_length=320)
    delivery_id: int | None = Field(default=None, sa_type=_BIG_ID, index=True)
    # The send the delivery belongs to, copied when the event is recorded, so a send's
    # report reads one index range instead of joining millions of deliveries.
    send_id: int | None = Field(default=None, sa_type=_BIG_ID)
    # CLICKED: the link the reader followed.
    url: str = Field(default="", sa_type=sa.Text)
    # OPENED: the provider says a machine opened it (Apple Mail Privacy Protection and the
    # like prefetch every image), so it is counted apart from a reader's open.
    machine: bool = Field(default=False)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    detail: str = Field(default="", sa_type=sa.Text)
    # The provider's own payload for this event, as JSON, as it came.
    raw: str = Field(default="", sa_type=sa.Text)


class MailKind(StrEnum):
    CONFIRMATION = "confirmation"  # the double opt-in email: one button, no list headers
    WELCOME = "welcome"  # sent once a subscription is confirmed
    TEST_COPY = "test_copy"  # a brief marked [TEST], to a member of staff (the console)


class MailStatus(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"  # a worker took it; the request has not begun
    SENDING = "sending"  # the request may be on the wire
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the worker died mid-request: never resent blindly
    SKIPPED = "skipped"  # no longer due (the reader confirmed, left, or was forgotten)


class TransactionalMail(SQLModel, table=True):
    """One email to one reader outside any send (confirmation, welcome), queued by a web
    request and sent by a worker: no page ever waits on a provider.

    It is rendered when sent, from the reader's row as it is then, so a reader who
    confirmed or left meanwhile is not sent a stale message (`skipped`).
    """

    __tablename__ = "transactional_mail"
    __table_args__ = (sa.Index("ix_transactional_mail_status_due", "status", "not_before"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG_ID)
    kind: str = Field(max_length=16)
    # The reader it is for; None for a test copy, which goes to `to_email` instead.
    subscriber_id: int | None = Field(default=None, index=True)
    # A test copy's brief and where it goes (the staff member who asked for it).
    brief_id: int | None = Field(default=None)
    to_email: str = Field(default="", max_length=320)
    to_name: str = Field(default="", max_length=200)
    status: str = Field(default=MailStatus.QUEUED, max_length=16)
    attempts: int = Field(default=0)
    not_before: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lease_expires_at: datetime | None = utc_column()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = utc_column()
    message_id: str = Field(default="", max_length=200)
    error: str = Field(default="", sa_type=sa.Text)


class RateLimitHit(SQLModel, table=True):
    """How often one key (an address, a network, …) asked for something in one window:
    the rate limits' memory, in the database so every web process and worker shares it
    and a restart forgets nothing. `newsletter/limits.py` counts; old rows are deleted
    as they expire. Keys are hashes: no address is kept here."""

    __tablename__ = "rate_limit_hit"
    __table_args__ = (sa.Index("ix_rate_limit_hit_expires_at", "expires_at"),)

    key: str = Field(primary_key=True, max_length=64)
    # Which window: the moment it began, in whole seconds since the epoch.
    window: int = Field(primary_key=True, sa_type=sa.BigInteger)
    hits: int = Field(default=0)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class SignupRequest(SQLModel, table=True):
    """A sign-up as the form posted it (already checked), waiting for the worker.

    The web request only records this, the same row for every address, so its answer and
    its timing cannot tell whether an address is on the list; the worker looks the address
    up, applies it and deletes the row.
    """

    __tablename__ = "signup_request"

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG_ID)
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    # Topic slugs, comma-separated, or "all".
    topics: str = Field(sa_type=sa.Text)
    cadence: str = Field(max_length=16)
    timezone: str = Field(max_length=64)
    ip: str = Field(default="", max_length=45)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# The console's tables live beside the staff code, the reports' tallies beside the code that
# writes them; importing them here means importing the models registers every table
# (Alembic's env, the migration test). At the end: they need nothing from above, and
# nothing above needs them.
import newsletter.staff.models  # noqa: E402
import newsletter.tallies.models  # noqa: E402, F401
