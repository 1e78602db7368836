"""The topic taxonomy: what briefs are about and what subscribers follow."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from subscribers.errors import InvalidSubscriberError, TopicExistsError, UnknownTopicError
from subscribers.models import Topic

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_SPACES = re.compile(r"\s+")
NAME_MAX = 200
KEYWORDS_MAX = 2000


def topic_key(text: str) -> str:
    """A topic as staff may write it, for matching: any case, spaces as hyphens."""
    return _SPACES.sub("-", text.strip().casefold())


def by_name_or_slug(topics: Iterable[Topic]) -> dict[str, Topic]:
    """Each topic under its slug and its name ("Energy security" and "energy-security" name
    the topic `energy-security`): writing the name the console shows was refused as an
    unknown topic, with advice that would have made a second. A slug wins over another
    topic's name that reads the same."""
    every = list(topics)
    return {**{topic_key(t.name): t for t in every}, **{t.slug: t for t in every}}


def _checked_slug(slug: str, *, session: Session) -> str:
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise InvalidSubscriberError(
            "topic slug", slug, "use lower-case letters, digits and hyphens (e.g. energy-security)"
        )
    if session.exec(select(Topic).where(Topic.slug == slug)).first() is not None:
        raise TopicExistsError(f"topic {slug!r} already exists")
    return slug


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _checked_text(field: str, value: str, longest: int) -> str:
    """A name or keyword as stored: stripped, not too long, no control characters (a NUL
    is refused by PostgreSQL, so it must be refused here, naming the field)."""
    text = value.strip()
    if len(text) > longest:
        raise InvalidSubscriberError(field, text[:40] + "…", f"longer than {longest} characters")
    if _CONTROL.search(text):
        raise InvalidSubscriberError(field, text[:40], "holds a control character")
    return text


def _keywords(words: Iterable[str]) -> str:
    cleaned = {_checked_text("keywords", word, 200).lower() for word in words}
    text = ",".join(sorted(word for word in cleaned if word))
    if len(text) > KEYWORDS_MAX:
        raise InvalidSubscriberError(
            "keywords", text[:40] + "…", f"longer than {KEYWORDS_MAX} characters"
        )
    return text


def add_topic(
    slug: str,
    name: str,
    keywords: Iterable[str] = (),
    *,
    session: Session,
    description: str = "",
) -> Topic:
    slug = _checked_slug(slug, session=session)
    topic = Topic(
        slug=slug,
        name=_checked_text("topic name", name, NAME_MAX) or slug,
        keywords=_keywords(keywords),
        description=_checked_text("description", description, 1000),
    )
    session.add(topic)
    session.flush()
    return topic


def get_topic(slug: str, *, session: Session) -> Topic:
    [topic] = resolve_topics([slug], session=session)
    return topic


def rename_topic(
    slug: str, new_slug: str | None = None, *, session: Session, name: str | None = None
) -> Topic:
    """A new slug and/or name. Followers and briefs point at the topic's id, so nobody's
    preference changes."""
    topic = get_topic(slug, session=session)
    if new_slug is not None and new_slug.strip().lower() != topic.slug:
        topic.slug = _checked_slug(new_slug, session=session)
    if name is not None and name.strip():
        topic.name = _checked_text("topic name", name, NAME_MAX)
    session.add(topic)
    session.flush()
    return topic


def merge_topics(source: str, into: str, *, session: Session) -> int:
    """Fold `source` into `into`: its followers follow `into` (once), its briefs are on
    `into`, its keywords join, and `source` goes. Returns how many followers moved."""
    from_topic = get_topic(source, session=session)
    to_topic = get_topic(into, session=session)
    if from_topic.id == to_topic.id:
        raise InvalidSubscriberError("topic", source, "cannot be merged into itself")
    moved = 0
    # brief_topic belongs to newsletter/, which this package may not import: a lightweight
    # table clause names just the two columns needed.
    for name, owner in (("subscriber_topic", "subscriber_id"), ("brief_topic", "brief_id")):
        links = sa.table(name, sa.column(owner), sa.column("topic_id"))
        others = links.alias("other")
        missing = sa.select(links.c[owner], sa.literal(to_topic.id)).where(
            links.c.topic_id == from_topic.id,
            ~sa.exists().where(others.c[owner] == links.c[owner], others.c.topic_id == to_topic.id),
        )
        if name == "subscriber_topic":  # counted, as psycopg reports no rowcount here
            moved = session.scalar(sa.select(sa.func.count()).select_from(missing.subquery())) or 0
        session.execute(sa.insert(links).from_select([owner, "topic_id"], missing))
        session.execute(sa.delete(links).where(links.c.topic_id == from_topic.id))
    to_topic.keywords = _keywords([*to_topic.keywords.split(","), *from_topic.keywords.split(",")])
    session.add(to_topic)
    session.delete(from_topic)
    session.flush()
    return moved


def list_topics(*, session: Session, offered_only: bool = False) -> list[Topic]:
    """Every topic by slug; `offered_only`: only those the public forms offer (not hidden)."""
    statement = select(Topic).order_by(Topic.slug)
    if offered_only:
        statement = statement.where(col(Topic.hidden).is_(False))
    return list(session.exec(statement))


def resolve_topics(
    slugs: Iterable[str], *, session: Session, offered_only: bool = False
) -> list[Topic]:
    """Topics for these slugs, in slug order; every unknown slug is named in one error.
    `offered_only`: a hidden topic counts as unknown (a public form never offered it)."""
    wanted = sorted({slug.strip().lower() for slug in slugs if slug.strip()})
    if not wanted:
        return []
    # A slug that could never have been stored is unknown without asking the database
    # (which may refuse its characters: PostgreSQL and a NUL).
    statement = (
        select(Topic)
        .where(col(Topic.slug).in_([slug for slug in wanted if _SLUG.match(slug)]))
        .order_by(Topic.slug)
    )
    if offered_only:
        statement = statement.where(col(Topic.hidden).is_(False))
    found = list(session.exec(statement))
    missing = sorted(set(wanted) - {topic.slug for topic in found})
    if missing:  # written by name? (the list of topics is short: read whole)
        named = by_name_or_slug(list_topics(session=session, offered_only=offered_only))
        found += [named[topic_key(given)] for given in missing if topic_key(given) in named]
        found = sorted({topic.slug: topic for topic in found}.values(), key=lambda t: t.slug)
        missing = [given for given in missing if topic_key(given) not in named]
    if missing:
        known = [topic.slug for topic in list_topics(session=session, offered_only=offered_only)]
        raise UnknownTopicError(missing, known)
    return found


def set_keywords(slug: str, keywords: Iterable[str], *, session: Session) -> Topic:
    """Replace a topic's keywords (the words that suggest it for a brief)."""
    topic = get_topic(slug, session=session)
    topic.keywords = _keywords(keywords)
    session.add(topic)
    session.flush()
    return topic


def set_hidden(slug: str, hidden: bool, *, session: Session) -> Topic:
    """Hide a topic from the public forms (or offer it again). Its followers keep it and
    briefs on it still reach them; only new choices of it stop."""
    topic = get_topic(slug, session=session)
    topic.hidden = hidden
    session.add(topic)
    session.flush()
    return topic


@dataclass(frozen=True)
class Suggestion:
    topic: Topic
    matched: dict[str, int]  # keyword → times it occurs

    @property
    def score(self) -> int:
        return sum(self.matched.values())

    def describe(self) -> str:
        words = ", ".join(
            f"{word} ×{count}" if count > 1 else word for word, count in self.matched.items()
        )
        return f"{self.topic.slug} ({words})"


def suggest_topics(text: str, *, session: Session) -> list[Suggestion]:
    """Topics whose keywords occur in `text`, most matches first, saying which words
    matched. Whole words (or phrases) only, case-insensitive: "lng" does not match "long"."""
    lowered = text.lower()
    suggestions = []
    for topic in list_topics(session=session):
        matched: dict[str, int] = {}
        for keyword in (k for k in topic.keywords.split(",") if k):
            count = len(re.findall(rf"(?<!\w){re.escape(keyword)}(?!\w)", lowered))
            if count:
                matched[keyword] = count
        if matched:
            suggestions.append(Suggestion(topic, matched))
    return sorted(suggestions, key=lambda s: (-s.score, s.topic.slug))
