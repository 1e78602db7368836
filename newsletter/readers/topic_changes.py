"""What staff change about the topics readers follow, from the console or the command line,
each written to the audit log in the same transaction and in the same words wherever it
was made. The console once audited its own topic changes and the CLI none, so a rename or
a merge made at a terminal left no trace: one function per change, shared by both, keeps
them from drifting apart again.

An entry names a topic by the slug it had when it was changed, whatever staff typed (the
CLI takes a topic's name, in any case): "topic Energy" and "topic energy" would read as two
topics in the log. Functions take the session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlmodel import Session

from newsletter.staff import audit
from subscribers.models import Topic
from subscribers.topics import (
    add_topic,
    get_topic,
    merge_topics,
    rename_topic,
    set_hidden,
    set_keywords,
)


def _target(slug: str) -> str:
    return f"topic {slug}"


def add(
    slug: str,
    name: str,
    keywords: Iterable[str] = (),
    *,
    session: Session,
    actor: str,
    description: str = "",
    ip: str = "",
) -> Topic:
    topic = add_topic(slug, name, keywords, session=session, description=description)
    audit.record(session, actor, "topic.add", _target(topic.slug), topic.name, ip)
    return topic


def rename(
    slug: str,
    new_slug: str | None,
    *,
    session: Session,
    actor: str,
    name: str | None = None,
    ip: str = "",
) -> Topic:
    """Logged under the old slug: that is the name the log's earlier entries know it by."""
    before = get_topic(slug, session=session).slug
    topic = rename_topic(before, new_slug, session=session, name=name)
    detail = f"now {topic.slug} ({topic.name})"
    audit.record(session, actor, "topic.rename", _target(before), detail, ip)
    return topic


def change_keywords(
    slug: str, keywords: Iterable[str], *, session: Session, actor: str, ip: str = ""
) -> Topic:
    topic = set_keywords(slug, keywords, session=session)
    audit.record(session, actor, "topic.keywords", _target(topic.slug), topic.keywords, ip)
    return topic


def hide(slug: str, hidden: bool, *, session: Session, actor: str, ip: str = "") -> Topic:
    """Hide a topic from the public forms, or (`hidden` False) offer it again."""
    topic = set_hidden(slug, hidden, session=session)
    action = "topic.hide" if topic.hidden else "topic.offer"
    audit.record(session, actor, action, _target(topic.slug), "", ip)
    return topic


class Merged(NamedTuple):
    source: str  # the slug of the topic that went
    into: Topic  # the topic that remains
    moved: int  # followers moved


def merge(source: str, into: str, *, session: Session, actor: str, ip: str = "") -> Merged:
    """Both topics are read first: `source` is gone afterwards."""
    from_slug = get_topic(source, session=session).slug
    remains = get_topic(into, session=session)
    moved = merge_topics(from_slug, remains.slug, session=session)
    detail = f"into {remains.slug}; {moved} follower(s) moved"
    audit.record(session, actor, "topic.merge", _target(from_slug), detail, ip)
    return Merged(from_slug, remains, moved)
