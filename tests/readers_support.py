"""Readers with a history, for the reader pages and commands: topics, readers with names
from the world's data, a brief really sent through the sandbox, and the provider's events
about it applied by the real event code (newsletter/events.py)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from newsletter.briefs import add_brief, parse_brief
from newsletter.db import session_scope
from newsletter.events import apply_events
from newsletter.models import Delivery
from newsletter.providers.events import EventType, ProviderEvent
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from subscribers.models import Subscriber, utcnow
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic

# Names a real list holds: commas, quotes, HTML, CJK, emoji, a line break.
HOSTILE_NAME = 'O\'Brien, "Zoë" <b>&amp;</b> 山田 🚀\nsecond line'
BRIEF = "---\ntitle: {title}\ndate: 2026-06-10\ntopics: [food]\n---\n\n{body}\n"
_ids = itertools.count(1)


def add_readers(engine, *emails: str, topics: tuple[str, ...] = ("food",)) -> None:
    with session_scope(engine) as session:
        for email in emails:
            add_subscriber(email, session=session, name=email.split("@")[0].title(), topics=topics)


def food_topics(engine) -> None:
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        add_topic("energy", "Energy", session=session)


def send_brief(engine, settings, title: str = "Rice prices", body: str = "Rice rose again.") -> int:
    """A brief on food, sent now to everyone who follows it (the sandbox takes it)."""
    with session_scope(engine) as session:
        # Named by title: a second brief of the same date is a brief of its own.
        parsed = parse_brief(BRIEF.format(title=title, body=body), source_name=f"{title}.md")
        added = add_brief(parsed, session=session)
        send_id = create_send(added.brief.slug, session=session, settings=settings).id
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    return send_id


def delivery_of(engine, send_id: int, email: str) -> int:
    with session_scope(engine) as session:
        return session.exec(
            select(Delivery.id)
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .where(Delivery.send_id == send_id, Subscriber.email == email)
        ).one()


def event(
    engine,
    send_id: int,
    email: str,
    kind: EventType,
    at: datetime,
    *,
    machine: bool = False,
    url: str = "",
) -> None:
    """One event from the provider about this reader's copy of the send, applied."""
    happened = ProviderEvent(
        provider="sendgrid",
        type=kind,
        provider_type={"opened": "open", "clicked": "click"}.get(kind.value, kind.value),
        event_id=f"reader-test-{next(_ids)}",
        email=email,
        occurred_at=at,
        delivery_id=delivery_of(engine, send_id, email),
        url=url,
        machine=machine,
    )
    with session_scope(engine) as session:
        apply_events([happened], session=session)


def active_since(engine, email: str, days: int) -> None:
    """Make a reader look as if they joined and confirmed `days` ago."""
    then = utcnow() - timedelta(days=days)
    with session_scope(engine) as session:
        session.execute(
            sa.update(Subscriber)
            .where(col(Subscriber.email) == email)
            .values(created_at=then, status_changed_at=then, consent_at=then)
        )
