"""Adding, listing and unsubscribing subscribers, one at a time.

Functions take the session and never commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, col, select

from subscribers.errors import InvalidSubscriberError, SubscriberError, SubscriberNotFoundError
from subscribers.matching import matching_subscribers
from subscribers.models import Cadence, Subscriber, SubscriberStatus, SubscriberTopic, utcnow
from subscribers.topics import resolve_topics

ALL_TOPICS = "all"


def normalize_email(address: str) -> str:
    """The one stored form of an address: validated, lower-cased, no DNS lookup."""
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidSubscriberError("email", address, str(exc)) from exc
    return result.normalized.lower()


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSubscriberError(
            "timezone", name, "not an IANA timezone (e.g. Asia/Tokyo, America/New_York)"
        ) from exc
    return name


def check_cadence(value: str) -> str:
    try:
        return Cadence(value.strip().lower() or Cadence.IMMEDIATE).value
    except ValueError as exc:
        choices = ", ".join(c.value for c in Cadence)
        raise InvalidSubscriberError("cadence", value, f"choose one of {choices}") from exc


@dataclass(frozen=True)
class SubscriberRow:
    """A subscriber with the slugs of the topics they follow, for listings and exports."""

    subscriber: Subscriber
    topics: list[str]


def add_subscriber(
    email: str,
    *,
    session: Session,
    name: str = "",
    topics: Iterable[str] = (ALL_TOPICS,),
    cadence: str = Cadence.IMMEDIATE,
    timezone: str = "UTC",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
) -> Subscriber:
    """Add one subscriber. `topics` holds slugs, or `all` to follow every topic."""
    address = normalize_email(email)
    slugs = [slug.strip().lower() for slug in topics if slug.strip()]
    all_topics = ALL_TOPICS in slugs
    chosen = [] if all_topics else resolve_topics(slugs, session=session)
    if not all_topics and not chosen:
        raise InvalidSubscriberError("topics", ",".join(slugs), "name at least one topic, or 'all'")
    if session.exec(select(Subscriber).where(Subscriber.email == address)).first() is not None:
        raise SubscriberError(f"{address} is already a subscriber")
    subscriber = Subscriber(
        email=address,
        name=name.strip(),
        cadence=check_cadence(cadence),
        timezone=check_timezone(timezone),
        all_topics=all_topics,
        status=status,
    )
    session.add(subscriber)
    session.flush()
    session.add_all(SubscriberTopic(subscriber_id=subscriber.id, topic_id=t.id) for t in chosen)
    session.flush()
    return subscriber


def get_subscriber(email: str, *, session: Session) -> Subscriber:
    address = normalize_email(email)
    subscriber = session.exec(select(Subscriber).where(Subscriber.email == address)).first()
    if subscriber is None:
        raise SubscriberNotFoundError(f"no subscriber {address}")
    return subscriber


def unsubscribe(email: str, *, session: Session) -> Subscriber:
    """Stop all mail to this address; the record stays, so re-imports cannot resurrect it."""
    subscriber = get_subscriber(email, session=session)
    if subscriber.status != SubscriberStatus.UNSUBSCRIBED:
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
        subscriber.unsubscribed_at = subscriber.updated_at = utcnow()
        session.add(subscriber)
        session.flush()
    return subscriber


def list_subscribers(
    *, session: Session, topic_ids: list[int] | None = None, status: str | None = None
) -> list[SubscriberRow]:
    """Subscribers by email; `topic_ids` lists exactly who a brief on those topics would reach."""
    statement = select(Subscriber).order_by(Subscriber.email)
    if topic_ids is not None:
        statement = statement.where(col(Subscriber.id).in_(matching_subscribers(topic_ids)))
    if status is not None:
        statement = statement.where(Subscriber.status == status)
    subscribers = list(session.exec(statement))
    return [
        SubscriberRow(s, follows)
        for s, follows in zip(subscribers, _followed(subscribers, session), strict=True)
    ]


def _followed(subscribers: list[Subscriber], session: Session) -> list[list[str]]:
    from subscribers.models import Topic

    ids = [s.id for s in subscribers if not s.all_topics]
    by_subscriber: dict[int, list[str]] = {}
    if ids:
        rows = session.exec(
            select(SubscriberTopic.subscriber_id, Topic.slug)
            .join(Topic, col(Topic.id) == col(SubscriberTopic.topic_id))
            .where(col(SubscriberTopic.subscriber_id).in_(ids))
            .order_by(Topic.slug)
        )
        for subscriber_id, slug in rows:
            by_subscriber.setdefault(subscriber_id, []).append(slug)
    return [[ALL_TOPICS] if s.all_topics else by_subscriber.get(s.id or 0, []) for s in subscribers]
