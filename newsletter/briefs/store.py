"""Stored briefs: adding a parsed brief with its topics, finding and listing them, and the
one definition of a *published* brief (the archive and digests both use it)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.briefs.parse import ParsedBrief, parse_brief_file
from newsletter.config import Settings
from newsletter.db import is_row_id
from newsletter.errors import ConflictError, NotFoundError
from newsletter.models import Brief, BriefTopic, Send, SendKind
from newsletter.render import render_brief
from subscribers.models import Topic, id_of
from subscribers.topics import Suggestion, resolve_topics, suggest_topics


@dataclass(frozen=True)
class AddedBrief:
    brief: Brief
    topics: list[Topic]
    created: bool  # False: the same file was already added; nothing changed
    # Filled by `add_brief_file`: topics whose keywords the text matched (when it names
    # none), the email's size, and why Gmail would clip it ("" if it fits).
    suggestions: list[Suggestion] = field(default_factory=list)
    html_bytes: int = 0
    clipping: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.brief.id,
            "slug": self.brief.slug,
            "title": self.brief.title,
            "date": self.brief.date.isoformat(),
            "topics": [topic.slug for topic in self.topics],
            "created": self.created,
            "suggested_topics": [
                {"slug": s.topic.slug, "matched": s.matched} for s in self.suggestions
            ],
            "html_bytes": self.html_bytes,
            "clipping": self.clipping,
        }


def add_brief_file(
    path: Path, *, session: Session, settings: Settings, topics: list[str] | None = None
) -> AddedBrief:
    """`briefs add`: parse, store, and say what staff should know before sending it:
    topics to consider when it names none, and whether Gmail would clip it."""
    added = add_brief(parse_brief_file(path), session=session, topics=topics)
    brief = added.brief
    suggestions = (
        []
        if added.topics
        else suggest_topics(f"{brief.title}\n{brief.takeaways}\n{brief.body}", session=session)
    )
    rendered = render_brief(brief, added.topics, settings)
    return replace(
        added,
        suggestions=suggestions,
        html_bytes=rendered.html_bytes,
        clipping=rendered.clipping(),
    )


def add_brief(
    parsed: ParsedBrief, *, session: Session, topics: list[str] | None = None
) -> AddedBrief:
    """Store a parsed brief; `topics` (staff's choice) replaces the file's own list.

    Adding the same file twice returns the stored brief unchanged. A different brief under
    the same slug is refused rather than overwritten, since a send may already use it.
    """
    chosen = resolve_topics(topics if topics is not None else parsed.topics, session=session)
    existing = session.exec(select(Brief).where(Brief.slug == parsed.slug)).first()
    if existing is not None:
        if existing.content_hash == parsed.content_hash:
            if topics is not None:  # staff confirming (or changing) the topics
                session.execute(
                    sa.delete(BriefTopic).where(col(BriefTopic.brief_id) == existing.id)
                )
                session.add_all(
                    BriefTopic(brief_id=id_of(existing), topic_id=id_of(topic)) for topic in chosen
                )
                session.flush()
            return AddedBrief(existing, brief_topics(existing, session=session), created=False)
        raise ConflictError(
            f"{parsed.source_name}: a different brief already has slug {parsed.slug!r} "
            f"(id {existing.id}); set 'slug:' in the front matter to add this one beside it"
        )
    brief = parsed.to_brief()
    session.add(brief)
    session.flush()  # assigns brief.id
    session.add_all(BriefTopic(brief_id=id_of(brief), topic_id=id_of(topic)) for topic in chosen)
    session.flush()
    return AddedBrief(brief, chosen, created=True)


def brief_topics(brief: Brief, *, session: Session) -> list[Topic]:
    statement = (
        select(Topic)
        .join(BriefTopic, col(BriefTopic.topic_id) == col(Topic.id))
        .where(col(BriefTopic.brief_id) == brief.id)
        .order_by(col(Topic.slug))
    )
    return list(session.exec(statement))


def get_brief(reference: str, *, session: Session) -> Brief:
    """A brief by id (`12`) or slug (`2026-05-20-japan-and-korea`)."""
    if is_row_id(reference):
        brief = session.get(Brief, int(reference))
    else:
        brief = session.exec(select(Brief).where(Brief.slug == reference)).first()
    if brief is None:
        raise NotFoundError(f"no brief {reference!r}", hint="see `newsletter briefs list`")
    return brief


def list_briefs(*, session: Session) -> list[Brief]:
    return list(session.exec(select(Brief).order_by(col(Brief.date).desc(), col(Brief.id).desc())))


@dataclass(frozen=True)
class BriefListing:
    """A brief with its topics' slugs, as listings show it."""

    brief: Brief
    topics: list[str]

    def as_dict(self) -> dict[str, Any]:
        brief = self.brief
        return {
            "id": brief.id,
            "slug": brief.slug,
            "title": brief.title,
            "date": brief.date.isoformat(),
            "author": brief.author,
            "topics": self.topics,
        }


def list_brief_listings(*, session: Session) -> list[BriefListing]:
    return [
        BriefListing(brief, [topic.slug for topic in brief_topics(brief, session=session)])
        for brief in list_briefs(session=session)
    ]


def publication_dates() -> sa.Subquery:
    """`(brief_id, published_at)` for every published brief: the one definition of
    "published". A brief is published when its first send starts (immediate readers get it
    then); drafts and briefs only scheduled are not."""
    return (
        sa.select(
            col(Send.brief_id).label("brief_id"),
            sa.func.min(col(Send.started_at)).label("published_at"),
        )
        .where(col(Send.kind) == SendKind.BRIEF, col(Send.started_at).is_not(None))
        .group_by(col(Send.brief_id))
        .subquery("published")
    )


def published_briefs(*, session: Session) -> list[Brief]:
    """Published briefs, newest first: what the archive shows."""
    published = publication_dates()
    return list(
        session.exec(
            select(Brief)
            .join(published, published.c.brief_id == col(Brief.id))
            .order_by(col(Brief.date).desc(), published.c.published_at.desc())
        )
    )


def published_between(after: datetime, until: datetime, *, session: Session) -> dict[int, datetime]:
    """Brief id → when it was published, for briefs published in (after, until]."""
    published = publication_dates()
    rows = session.execute(
        sa.select(published.c.brief_id, published.c.published_at).where(
            published.c.published_at > after, published.c.published_at <= until
        )
    ).all()
    return {brief_id: at for brief_id, at in rows}
