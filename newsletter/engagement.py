"""Engaged and inactive readers: each reader's last open and last click, and who has done
neither for a while (the sunset policy Gmail's bulk-sender guidance asks for: stop mailing
people who stopped reading).

Read from the provider's events (`provider_event`, kinds `opened` and `clicked`) joined to
the ledger for the reader. Opens a machine made (Apple Mail Privacy Protection and the
like fetch every image) are not a reader's open and never count. Everything is one SQL
statement; nothing walks readers in Python, so a list of 100,000 stays quick.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.errors import NewsletterError
from newsletter.models import Delivery, ProviderEventRecord
from newsletter.providers.events import EventType
from subscribers.models import Subscriber, SubscriberStatus

# The longest window that makes sense (ten years), so a typo cannot overflow a datetime.
WINDOW_MAX_DAYS = 3650
_WINDOW = re.compile(r"^\s*(\d{1,5})\s*([dw]?)\s*$")
READS = (EventType.OPENED.value, EventType.CLICKED.value)


def parse_window(text: str) -> timedelta:
    """`90d`, `12w` or `90` (days) as a timedelta; anything else is refused naming it."""
    match = _WINDOW.match(text or "")
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1) if match else 0
    if not match or not 0 < days <= WINDOW_MAX_DAYS:
        raise NewsletterError(
            f"inactive window {text!r}: give days or weeks, e.g. 90d or 12w "
            f"(1 day to {WINDOW_MAX_DAYS} days)"
        )
    return timedelta(days=days)


@dataclass(frozen=True)
class Engagement:
    """A reader's last open (by a person, not a machine) and last click, if any."""

    last_open: datetime | None = None
    last_click: datetime | None = None

    @property
    def last_read(self) -> datetime | None:
        moments = [m for m in (self.last_open, self.last_click) if m is not None]
        return max(moments) if moments else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "last_open": self.last_open.isoformat() if self.last_open else None,
            "last_click": self.last_click.isoformat() if self.last_click else None,
        }


def _reader_reads() -> sa.Select[int, str, datetime]:
    """Opens by a person and clicks, each with its reader: the one definition of "read"."""
    event, delivery = ProviderEventRecord, Delivery
    return (
        sa.select(col(delivery.subscriber_id), col(event.kind), col(event.occurred_at))
        .join(delivery, col(delivery.id) == col(event.delivery_id))
        .where(col(event.kind).in_(READS), col(event.machine).is_(False))
    )


def engagement_of(subscriber_ids: Iterable[int], *, session: Session) -> dict[int, Engagement]:
    """Last open and last click for these readers (one grouped query; readers with
    neither are left out of the answer)."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return {}
    reads = _reader_reads().where(col(Delivery.subscriber_id).in_(ids)).subquery()
    rows = session.execute(
        sa.select(reads.c.subscriber_id, reads.c.kind, sa.func.max(reads.c.occurred_at)).group_by(
            reads.c.subscriber_id, reads.c.kind
        )
    ).all()
    found: dict[int, dict[str, datetime]] = {}
    for subscriber_id, kind, moment in rows:
        found.setdefault(subscriber_id, {})[kind] = _aware(moment)
    return {
        subscriber_id: Engagement(kinds.get(READS[0]), kinds.get(READS[1]))
        for subscriber_id, kinds in found.items()
    }


def _aware(moment: datetime | str) -> datetime:
    """max() keeps the column's type, so this is already aware UTC; made sure of, as SQLite
    hands back text if a driver ever loses the type."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def inactive_since(cutoff: datetime) -> sa.ColumnElement[bool]:
    """A WHERE clause on `subscriber`: active readers who have been active since before
    `cutoff` and neither opened (as a person) nor clicked anything since.

    The readers who did read are one uncorrelated subquery (a range of
    ix_provider_event_kind_occurred, joined to the ledger by primary key), which both
    databases turn into one hashed anti-join instead of a probe per reader.
    """
    readers_since = (
        _reader_reads()
        .where(col(ProviderEventRecord.occurred_at) >= cutoff)
        .with_only_columns(col(Delivery.subscriber_id))
    )
    became_active = sa.func.coalesce(col(Subscriber.status_changed_at), col(Subscriber.created_at))
    return sa.and_(
        col(Subscriber.status) == SubscriberStatus.ACTIVE,
        became_active < cutoff,
        col(Subscriber.id).not_in(readers_since),
    )
