"""Who gets what: topics, subscribers and the topics they follow.

Statuses and cadences are stored as short strings, not database enum types, so adding a
value is a code change and not a migration on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite drops the offset; we put it back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store times as aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_of(model: type[SQLModel]) -> sa.Table:
    """A table model's Core table (SQLModel sets `__table__` at class creation; the type
    checker cannot see it)."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    return table


def id_of(row: SQLModel) -> int:
    """A stored row's primary key. SQLModel types it `int | None` (unset before the first
    flush); past that point a missing id is a bug, not a case to handle."""
    value = getattr(row, "id", None)
    if not isinstance(value, int):
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush it first")
    return value


def utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # asked to subscribe, has not confirmed yet
    ACTIVE = "active"  # receives what they follow
    PAUSED = "paused"  # asked for a break from their preference page; receives nothing
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # the address does not take mail
    COMPLAINED = "complained"  # marked a message as spam
    FORGOTTEN = "forgotten"  # personal data erased; only a suppression hash remains


# Statuses an import or a form may never turn back into `active`: the person said no, or
# their mailbox did.
NO_MAIL_STATUSES = frozenset(
    {
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.BOUNCED,
        SubscriberStatus.COMPLAINED,
        SubscriberStatus.FORGOTTEN,
    }
)


class Cadence(StrEnum):
    IMMEDIATE = "immediate"
    DAILY = "daily"
    WEEKLY = "weekly"


class Topic(SQLModel, table=True):
    __tablename__ = "topic"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    # Comma-separated words that suggest this topic for a brief (the topic suggestion uses it).
    keywords: str = Field(default="", max_length=2000)
    # Not offered on the public forms (subscribe, preferences); its followers keep it and
    # briefs on it still reach them. Staff retire a topic this way without losing anyone.
    hidden: bool = Field(default=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "keywords": [word for word in self.keywords.split(",") if word],
            "hidden": self.hidden,
        }


class Subscriber(SQLModel, table=True):
    __tablename__ = "subscriber"
    # Matching filters active subscribers first; the partial shape differs per database, so
    # a plain composite index serves both.
    __table_args__ = (sa.Index("ix_subscriber_status_all_topics", "status", "all_topics"),)

    id: int | None = Field(default=None, primary_key=True)
    # Stored normalized (lower-cased), so uniqueness is case-insensitive on both databases.
    email: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=200)
    status: str = Field(default=SubscriberStatus.ACTIVE, max_length=16)
    cadence: str = Field(default=Cadence.IMMEDIATE, max_length=16)
    timezone: str = Field(default="UTC", max_length=64)
    all_topics: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    unsubscribed_at: datetime | None = utc_column()
    # Who last changed the status and when: "staff", "import:list.csv", "subscriber",
    # "sendgrid:bounce"… An unsubscribe must be provable, and so must a resubscribe.
    status_changed_at: datetime | None = utc_column()
    status_changed_by: str = Field(default="", max_length=100)
    # The consent record: where the address came from, when, and from which IP if known.
    consent_source: str = Field(default="", max_length=200)
    consent_at: datetime | None = utc_column()
    consent_ip: str = Field(default="", max_length=45)
    # Daily and weekly readers: when their last digest was made. The next one holds every
    # brief published after this (or after they subscribed, for the first).
    last_digest_at: datetime | None = utc_column()
    # …and where that digest's window opened: it held the briefs published from here to
    # `last_digest_at`. Written by the same UPDATE, which returns it (newsletter's digests).
    last_digest_from: datetime | None = utc_column()
    # Soft bounces since the last delivered message; at NEWSLETTER_SOFT_BOUNCE_LIMIT the
    # address counts as bounced.
    soft_bounces: int = Field(default=0)


class Suppression(SQLModel, table=True):
    """An address that must never be mailed again, kept as a hash once its owner asked us
    to forget them: we can recognise the address if it comes back, not read it."""

    __tablename__ = "suppression"

    email_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SubscriberTopic(SQLModel, table=True):
    __tablename__ = "subscriber_topic"
    # Matching walks topic → subscribers; the primary key serves subscriber → topics.
    __table_args__ = (sa.Index("ix_subscriber_topic_topic", "topic_id", "subscriber_id"),)

    # No foreign keys, as on `delivery`: PostgreSQL checks each with a trigger per row, a
    # quarter of importing a big list (migration 0019). Links are written only with ids
    # just read; subscribers are never deleted, and `merge_topics` deletes a topic's links.
    subscriber_id: int = Field(primary_key=True)
    topic_id: int = Field(primary_key=True)


class SubscriberStatusChange(SQLModel, table=True):
    """One change of a reader's status: from what, to what, by whom, when. Written by
    `status.change_status` (the one place a status changes), so a reader's page shows
    their whole story, not only the latest change. Emptied of nothing on `forget`: it
    holds no personal data, only the id."""

    __tablename__ = "subscriber_status_change"
    __table_args__ = (sa.Index("ix_subscriber_status_change_subscriber", "subscriber_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    old_status: str = Field(max_length=16)
    new_status: str = Field(max_length=16)
    by: str = Field(default="", max_length=100)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "from": self.old_status,
            "to": self.new_status,
            "by": self.by,
        }
