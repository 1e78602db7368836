"""The console's list of readers: search by address or name, filter by topic, status,
cadence and inactivity, a page at a time.

Paging is by keyset on the address (unique, and indexed by its UNIQUE constraint): the
next page is `email > the last one shown`, so page 2,000 costs what page 1 does, where an
OFFSET would read and drop every row before it. The total is one COUNT over the same
filters, stopped at COUNT_MAX rows. Timings at 100,000 readers are in bench/console.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.db import is_postgresql
from newsletter.engagement import Engagement, engagement_of, inactive_since
from newsletter.errors import NewsletterError
from newsletter.words import counted
from subscribers.models import Cadence, Subscriber, SubscriberStatus, SubscriberTopic, Topic
from subscribers.roster import SubscriberRow, topics_of

PAGE_SIZE = 50
# What a search box and the paging mark may hold: an address is at most 320 characters.
TEXT_MAX = 320
INACTIVE_CHOICES = (30, 90, 180, 365)
COUNT_MAX = 10_000
# No address or name holds these (a NUL is refused by PostgreSQL outright).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# A topic slug, a status, a cadence: words from the form's lists, never longer.
CHOICE_MAX = 64


@dataclass(frozen=True)
class ReaderQuery:
    """The list page's form, as typed; `checked()` refuses what cannot be asked."""

    text: str = ""
    topic: str = ""
    status: str = ""
    cadence: str = ""
    inactive_days: int = 0
    after: str = ""

    def checked(self) -> ReaderQuery:
        typed = (self.text, self.after, self.topic)
        if len(self.text) > TEXT_MAX or len(self.after) > TEXT_MAX:
            raise NewsletterError(f"a search holds at most {TEXT_MAX} characters")
        if max(len(self.topic), len(self.status), len(self.cadence)) > CHOICE_MAX:
            raise NewsletterError(
                f"a topic, status or cadence is at most {CHOICE_MAX} characters: choose one "
                "the form offers"
            )
        if any(_CONTROL.search(value) for value in typed):
            raise NewsletterError("a search cannot hold control characters")
        if self.status and self.status not in set(SubscriberStatus):
            raise NewsletterError(f"no status {self.status!r}")
        if self.cadence and self.cadence not in set(Cadence):
            raise NewsletterError(f"no cadence {self.cadence!r}")
        if self.inactive_days and self.inactive_days not in INACTIVE_CHOICES:
            raise NewsletterError("inactive: choose 30, 90, 180 or 365 days")
        return self

    def filters(self) -> dict[str, str]:
        """The query's fields as the page's links carry them (without the paging mark)."""
        given = {
            "q": self.text,
            "topic": self.topic,
            "status": self.status,
            "cadence": self.cadence,
            "inactive": str(self.inactive_days) if self.inactive_days else "",
        }
        return {name: value for name, value in given.items() if value}


@dataclass(frozen=True)
class ReaderPage:
    """One page of readers, their last open and click by reader id, and how many match."""

    rows: list[SubscriberRow]
    engagement: dict[int, Engagement]
    total: int  # at most COUNT_MAX + 1: "more than COUNT_MAX"
    next_after: str | None  # the address to continue after; None on the last page
    query: ReaderQuery = field(default_factory=ReaderQuery)

    @property
    def total_words(self) -> str:
        if self.total > COUNT_MAX:
            return f"More than {COUNT_MAX:,} readers match"
        return f"{counted(self.total, 'reader')} match"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def reader_conditions(
    query: ReaderQuery, *, session: Session, now: datetime
) -> list[sa.ColumnElement[bool]]:
    """The query's filters as SQL: the list page's, and the CSV download's of that page
    (staff who narrowed the list expect the file to hold what they see)."""
    query = query.checked()
    where: list[sa.ColumnElement[bool]] = []
    if query.status:
        where.append(col(Subscriber.status) == query.status)
    else:  # nothing is left of the forgotten to find
        where.append(col(Subscriber.status) != SubscriberStatus.FORGOTTEN)
    if query.cadence:
        where.append(col(Subscriber.cadence) == query.cadence)
    text = query.text.strip()
    if text:
        pattern = _like(text)
        # Addresses are stored lower-cased, so a plain LIKE on the lower-cased text finds
        # them (PostgreSQL's ILIKE costs about three times a LIKE per row).
        if is_postgresql(session):
            name = col(Subscriber.name).ilike(pattern, escape="\\")
        else:  # SQLite's ILIKE folds ASCII only (newsletter/db/engine.py: unicode_lower)
            name = sa.func.unicode_lower(col(Subscriber.name)).like(pattern.lower(), escape="\\")
        where.append(sa.or_(col(Subscriber.email).like(pattern.lower(), escape="\\"), name))
    if query.topic:
        topic = session.exec(select(Topic).where(Topic.slug == query.topic)).first()
        if topic is None:
            raise NewsletterError(f"no topic {query.topic!r}")
        follows = (
            sa.select(sa.literal(1))
            .where(
                col(SubscriberTopic.subscriber_id) == col(Subscriber.id),
                col(SubscriberTopic.topic_id) == topic.id,
            )
            .exists()
        )
        where.append(sa.or_(col(Subscriber.all_topics).is_(True), follows))
    if query.inactive_days:
        where.append(inactive_since(now - timedelta(days=query.inactive_days)))
    return where


def search_readers(query: ReaderQuery, *, session: Session, now: datetime) -> ReaderPage:
    """One page of readers matching `query`, by address, with their topics and their
    last open and click."""
    where = reader_conditions(query, session=session, now=now)
    statement = select(Subscriber).where(*where).order_by(col(Subscriber.email))
    if query.after:
        statement = statement.where(col(Subscriber.email) > query.after)
    people = list(session.exec(statement.limit(PAGE_SIZE + 1)))
    more = len(people) > PAGE_SIZE
    people = people[:PAGE_SIZE]
    # Counting stops at COUNT_MAX: past it the page says "10,000 or more", and the count no
    # longer reads every matching row of a big list (measured in bench/console.py).
    capped = sa.select(col(Subscriber.id)).where(*where).limit(COUNT_MAX + 1).subquery()
    total = session.scalar(sa.select(sa.func.count()).select_from(capped)) or 0
    rows = [
        SubscriberRow(p, follows)
        for p, follows in zip(people, topics_of(people, session=session), strict=True)
    ]
    return ReaderPage(
        rows=rows,
        engagement=engagement_of((p.id or 0 for p in people), session=session),
        total=total,
        next_after=people[-1].email if more else None,
        query=query,
    )
