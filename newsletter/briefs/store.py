"""Stored briefs: adding a parsed brief with its topics, finding and listing them, and the
one definition of a *published* brief (the archive and digests both use it)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.briefs.lifecycle import BriefState, BriefStatus, brief_states, require_editable
from newsletter.briefs.parse import ParsedBrief, parse_brief_file
from newsletter.config import Settings
from newsletter.db import is_row_id
from newsletter.errors import ConflictError, NotFoundError
from newsletter.models import Brief, BriefTopic, Send, SendKind, SendStatus
from newsletter.render import render_brief
from subscribers.models import Topic, id_of, utcnow
from subscribers.topics import Suggestion, resolve_topics, suggest_topics


@dataclass(frozen=True)
class AddedBrief:
    brief: Brief
    topics: list[Topic]
    # False: this brief was stored already (the same file, or an earlier version of it).
    created: bool
    # True: an earlier version of this draft was stored, and this one replaced it.
    updated: bool = False
    # True: the same file again, with other topics chosen (`briefs add --topics`).
    topics_changed: bool = False
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
            "updated": self.updated,
            "topics_changed": self.topics_changed,
            "suggested_topics": [
                {"slug": s.topic.slug, "matched": s.matched} for s in self.suggestions
            ],
            "html_bytes": self.html_bytes,
            "clipping": self.clipping,
        }


def add_brief_file(
    path: Path, *, session: Session, settings: Settings, topics: list[str] | None = None
) -> AddedBrief:
    """`briefs add`: parse, store, and say what staff should know before sending it."""
    return with_checks(
        add_brief(parse_brief_file(path), session=session, topics=topics),
        session=session,
        settings=settings,
    )


def with_checks(added: AddedBrief, *, session: Session, settings: Settings) -> AddedBrief:
    """What staff should know before sending a stored brief: topics to consider when it
    names none, and whether Gmail would clip it (the CLI and the console show both)."""
    suggestions = [] if added.topics else suggested_topics(added.brief, session=session)
    rendered = render_brief(added.brief, added.topics, settings)
    return replace(
        added,
        suggestions=suggestions,
        html_bytes=rendered.html_bytes,
        clipping=rendered.clipping(),
    )


def suggested_topics(brief: Brief, *, session: Session) -> list[Suggestion]:
    """Topics whose keywords the brief's words match, for a brief that names none."""
    return suggest_topics(f"{brief.title}\n{brief.takeaways}\n{brief.body}", session=session)


def _same_brief(parsed: ParsedBrief, session: Session) -> Brief | None:
    """The stored brief that `parsed` is a version of, if any.

    The same brief is the one with the same slug (the date and title, or the front
    matter's `slug:`), or else the one added from a file of the same name with the same
    date: so a draft whose title was corrected updates itself instead of becoming a second
    brief, while next week's `brief.txt` (another date) is a brief of its own.
    """
    by_slug = session.exec(select(Brief).where(Brief.slug == parsed.slug)).first()
    name = Path(parsed.source_name).name
    by_file = (
        list(
            session.exec(select(Brief).where(Brief.source_name == name, Brief.date == parsed.date))
        )
        if name
        else []
    )
    others = [brief for brief in by_file if by_slug is None or brief.id != by_slug.id]
    if by_slug is not None and others:
        raise ConflictError(
            f"{parsed.source_name}: its new title gives slug {parsed.slug!r}, which brief "
            f"{by_slug.id} already has, while it was added before as brief {others[0].id}",
            hint="change the title, or set 'slug:' in the front matter",
        )
    if by_slug is None and len(others) > 1:
        raise ConflictError(
            f"{parsed.source_name}: briefs {', '.join(str(b.id) for b in others)} all came "
            f"from a file of this name dated {parsed.date}; set 'slug:' to say which",
        )
    return by_slug or (others[0] if others else None)


def _set_topics(brief: Brief, topics: list[Topic], session: Session) -> None:
    session.execute(sa.delete(BriefTopic).where(col(BriefTopic.brief_id) == brief.id))
    session.add_all(BriefTopic(brief_id=id_of(brief), topic_id=id_of(topic)) for topic in topics)
    session.flush()


def change_topics(brief: Brief, slugs: list[str], *, session: Session) -> list[Topic]:
    """Staff choosing a draft's topics (the console's checkboxes)."""
    require_editable(brief, session=session)
    chosen = resolve_topics(slugs, session=session)
    _set_topics(brief, chosen, session)
    return chosen


def add_brief(
    parsed: ParsedBrief, *, session: Session, topics: list[str] | None = None
) -> AddedBrief:
    """Store a parsed brief; `topics` (staff's choice) replaces the file's own list.

    A version of a stored brief (`_same_brief`) updates it while it is a draft; the same
    file twice changes nothing; a sent or scheduled brief is never changed.
    """
    chosen = resolve_topics(topics if topics is not None else parsed.topics, session=session)
    existing = _same_brief(parsed, session)
    if existing is None:
        brief = parsed.to_brief()
        session.add(brief)
        session.flush()  # assigns brief.id
        _set_topics(brief, chosen, session)
        return AddedBrief(brief, chosen, created=True)
    if existing.content_hash == parsed.content_hash:
        current = brief_topics(existing, session=session)
        if topics is not None and {t.id for t in chosen} != {t.id for t in current}:
            require_editable(existing, session=session)  # staff changing the topics
            _set_topics(existing, chosen, session)
            return AddedBrief(existing, chosen, created=False, topics_changed=True)
        return AddedBrief(existing, current, created=False)
    if topics is None and not parsed.topics:
        # A corrected file that names no topics (the firm's own layout names none) keeps
        # those staff chose in the console: replaced by none, the brief went only to
        # readers of every topic, and the page still showed the boxes ticked.
        chosen = brief_topics(existing, session=session)
    return update_brief(existing, parsed, session=session, topics=chosen)


def update_brief(
    brief: Brief, parsed: ParsedBrief, *, session: Session, topics: list[Topic]
) -> AddedBrief:
    """Replace a draft's content with `parsed` (the console's editor, or its file added
    again); refused once it is scheduled or sent."""
    require_editable(brief, session=session)
    clash = session.exec(
        select(Brief).where(Brief.slug == parsed.slug, Brief.id != brief.id)
    ).first()
    if clash is not None:
        raise ConflictError(
            f"{parsed.source_name}: brief {clash.id} already has slug {parsed.slug!r}",
            hint="change the title, or set 'slug:' in the front matter",
        )
    fresh = parsed.to_brief()
    for name in (
        "slug",
        "title",
        "date",
        "author",
        "preheader",
        "takeaways",
        "body",
        "signature",
        "content_hash",
    ):
        setattr(brief, name, getattr(fresh, name))
    if fresh.source_name:
        brief.source_name = fresh.source_name
    brief.updated_at = utcnow()
    session.add(brief)
    session.flush()
    _set_topics(brief, topics, session)
    return AddedBrief(brief, topics, created=False, updated=True)


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
    """A brief with its topics' slugs and where it is in its life, as listings show it."""

    brief: Brief
    topics: list[str]
    state: BriefState

    def as_dict(self) -> dict[str, Any]:
        brief = self.brief
        return {
            "id": brief.id,
            "slug": brief.slug,
            "title": brief.title,
            "date": brief.date.isoformat(),
            "author": brief.author,
            "topics": self.topics,
            **self.state.as_dict(),
        }


def list_brief_listings(
    *, session: Session, status: BriefStatus | None = None
) -> list[BriefListing]:
    """Briefs newest first, each with its status; only those in `status` if given."""
    briefs = list_briefs(session=session)
    states = brief_states(briefs, session=session)
    topics: dict[int, list[str]] = {id_of(brief): [] for brief in briefs}
    pairs = session.execute(
        sa.select(col(BriefTopic.brief_id), col(Topic.slug))
        .join(Topic, col(Topic.id) == col(BriefTopic.topic_id))
        .order_by(col(Topic.slug))
    ).all()
    for brief_id, slug in cast(list[tuple[int, str]], pairs):
        topics.setdefault(brief_id, []).append(slug)
    return [
        BriefListing(brief, topics[id_of(brief)], states[id_of(brief)])
        for brief in briefs
        if status is None or states[id_of(brief)].status is status
    ]


def publication_dates(*, until: datetime) -> sa.Subquery:
    """`(brief_id, published_at)` for every brief published by `until`: the one definition
    of "published". A brief is published when its first send starts (immediate readers get
    it then), or, sent at each reader's local time, when its first readers are due
    (`Send.published_at`); drafts and briefs only scheduled are not, and neither is a brief
    whose sends were all cancelled: staff stop a send because something is wrong with it,
    and digests and the archive would otherwise carry it on to everyone else."""
    return (
        sa.select(
            col(Send.brief_id).label("brief_id"),
            sa.func.min(col(Send.published_at)).label("published_at"),
        )
        .where(
            col(Send.kind) == SendKind.BRIEF,
            col(Send.published_at) <= until,
            col(Send.status) != SendStatus.CANCELLED,
        )
        .group_by(col(Send.brief_id))
        .subquery("published")
    )


def published_briefs(*, session: Session, now: datetime | None = None) -> list[Brief]:
    """Briefs published by `now` (by default, now), newest first: what the archive shows."""
    published = publication_dates(until=now or utcnow())
    return list(
        session.exec(
            select(Brief)
            .join(published, published.c.brief_id == col(Brief.id))
            .order_by(col(Brief.date).desc(), published.c.published_at.desc())
        )
    )


def published_between(after: datetime, until: datetime, *, session: Session) -> dict[int, datetime]:
    """Brief id → when it was published, for briefs published in (after, until]."""
    published = publication_dates(until=until)
    rows = session.execute(
        sa.select(published.c.brief_id, published.c.published_at).where(
            published.c.published_at > after, published.c.published_at <= until
        )
    ).all()
    return {brief_id: at for brief_id, at in rows}
