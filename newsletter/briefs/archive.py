"""The archive's reads: published briefs a page at a time, newest first, optionally on one
topic, each with its topics and a short excerpt; the topics worth filtering by; one
published brief by slug. Paging and the topic filter happen in SQL, so a long archive
costs one page's rows, not all of them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.briefs.store import publication_dates
from newsletter.models import Brief, BriefTopic
from newsletter.render_markdown import markdown_to_line
from subscribers.models import Topic, utcnow

PER_PAGE = 10
EXCERPT_CHARS = 240


def excerpt(brief: Brief, limit: int = EXCERPT_CHARS) -> str:
    """A few plain sentences: the preheader, else the first takeaway, else the body's
    opening, cut at a word boundary."""
    takeaways = [line for line in brief.takeaways.splitlines() if line.strip()]
    source = brief.preheader or (takeaways[0] if takeaways else brief.body.split("\n\n")[0])
    text = markdown_to_line(source).removeprefix("- ")
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


@dataclass(frozen=True)
class ArchiveEntry:
    brief: Brief
    published_at: datetime
    topics: list[Topic]

    @property
    def excerpt(self) -> str:
        return excerpt(self.brief)

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.brief.slug,
            "title": self.brief.title,
            "date": self.brief.date.isoformat(),
            "author": self.brief.author,
            "published_at": self.published_at.isoformat(),
            "topics": [topic.slug for topic in self.topics],
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True)
class ArchivePage:
    entries: list[ArchiveEntry]
    number: int  # 1-based
    pages: int
    total: int

    @property
    def newer(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def older(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None


def _published(topic: str | None, now: datetime | None) -> tuple[sa.Select[Any], sa.Subquery]:
    published = publication_dates(until=now or utcnow())
    query = sa.select(col(Brief.id), published.c.published_at).join(
        published, published.c.brief_id == col(Brief.id)
    )
    if topic is not None:
        query = (
            query.join(BriefTopic, col(BriefTopic.brief_id) == col(Brief.id))
            .join(Topic, col(Topic.id) == col(BriefTopic.topic_id))
            .where(col(Topic.slug) == topic)
        )
    return query, published


def _topics_by_brief(brief_ids: list[int], session: Session) -> dict[int, list[Topic]]:
    found: dict[int, list[Topic]] = defaultdict(list)
    rows = session.exec(
        select(BriefTopic.brief_id, Topic)
        .join(Topic, col(Topic.id) == col(BriefTopic.topic_id))
        .where(col(BriefTopic.brief_id).in_(brief_ids))
        .order_by(col(Topic.name))
    )
    for brief_id, topic in rows:
        found[brief_id].append(topic)
    return found


def _entries(rows: list[tuple[int, datetime]], session: Session) -> list[ArchiveEntry]:
    ids = [brief_id for brief_id, _ in rows]
    briefs = {b.id: b for b in session.exec(select(Brief).where(col(Brief.id).in_(ids)))}
    topics = _topics_by_brief(ids, session)
    return [ArchiveEntry(briefs[i], at, topics.get(i, [])) for i, at in rows]


def archive_page(
    *,
    session: Session,
    topic: str | None = None,
    number: int = 1,
    per_page: int = PER_PAGE,
    now: datetime | None = None,
) -> ArchivePage:
    """Page `number` of the briefs published by `now` (on `topic` if given), newest first.
    A page past the last comes back empty, for the caller to answer 404."""
    query, published = _published(topic, now)
    total = int(session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)
    rows = session.execute(
        query.order_by(
            col(Brief.date).desc(), published.c.published_at.desc(), col(Brief.id).desc()
        )
        .offset((number - 1) * per_page)
        .limit(per_page)
    ).all()
    pages = max(1, -(-total // per_page))
    return ArchivePage(_entries([(r[0], r[1]) for r in rows], session), number, pages, total)


def archive_topics(*, session: Session, now: datetime | None = None) -> list[Topic]:
    """Topics with at least one published brief: the archive's filter."""
    published = publication_dates(until=now or utcnow())
    return list(
        session.exec(
            select(Topic)
            .where(
                col(Topic.id).in_(
                    sa.select(col(BriefTopic.topic_id)).join(
                        published, published.c.brief_id == col(BriefTopic.brief_id)
                    )
                )
            )
            .order_by(col(Topic.name))
        )
    )


def published_entry(
    slug: str, *, session: Session, now: datetime | None = None
) -> ArchiveEntry | None:
    """One published brief by slug; None for a draft, a brief only scheduled or not yet
    due to anyone, one whose every send was cancelled, or nothing."""
    query, _ = _published(None, now)
    row = session.execute(query.where(col(Brief.slug) == slug)).first()
    return _entries([(row[0], row[1])], session)[0] if row else None
