"""The topic taxonomy: what briefs are about and what subscribers follow."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlmodel import Session, select

from subscribers.errors import InvalidSubscriberError, TopicExistsError, UnknownTopicError
from subscribers.models import Topic

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def add_topic(slug: str, name: str, keywords: Iterable[str] = (), *, session: Session) -> Topic:
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise InvalidSubscriberError(
            "topic slug", slug, "use lower-case letters, digits and hyphens (e.g. energy-security)"
        )
    if session.exec(select(Topic).where(Topic.slug == slug)).first() is not None:
        raise TopicExistsError(f"topic {slug!r} already exists")
    words = sorted({word.strip().lower() for word in keywords if word.strip()})
    topic = Topic(slug=slug, name=name.strip() or slug, keywords=",".join(words))
    session.add(topic)
    session.flush()
    return topic


def list_topics(*, session: Session) -> list[Topic]:
    return list(session.exec(select(Topic).order_by(Topic.slug)))


def resolve_topics(slugs: Iterable[str], *, session: Session) -> list[Topic]:
    """Topics for these slugs, in slug order; every unknown slug is named in one error."""
    wanted = sorted({slug.strip().lower() for slug in slugs if slug.strip()})
    if not wanted:
        return []
    found = list(session.exec(select(Topic).where(Topic.slug.in_(wanted)).order_by(Topic.slug)))  # type: ignore[attr-defined]
    missing = sorted(set(wanted) - {topic.slug for topic in found})
    if missing:
        known = [topic.slug for topic in list_topics(session=session)]
        raise UnknownTopicError(missing, known)
    return found
