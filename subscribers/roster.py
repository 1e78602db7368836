"""Adding, listing, unsubscribing and forgetting subscribers, one at a time.

Functions take the session and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, col, select

from subscribers.errors import InvalidSubscriberError, SubscriberError, SubscriberNotFoundError
from subscribers.matching import matching_subscribers
from subscribers.models import (
    Cadence,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    Topic,
    id_of,
    utcnow,
)
from subscribers.status import Actor, StatusChangeRefusedError, change_status, may_change
from subscribers.topics import resolve_topics

ALL_TOPICS = "all"
# The longest a name may be (the column holds 200).
NAME_MAX = 200
# Characters no name, address or choice holds: C0 controls (NUL breaks PostgreSQL), DEL,
# C1 controls (U+0085 is a line break to some readers), the bidirectional embeddings,
# overrides and isolates (a name of U+202E turned a whole welcome email backwards), and
# U+FFFD, which is what bytes a form could not decode arrive as: stored, the reader's own
# name or address would be lost. (Marks a right-to-left name needs, U+200E/U+200F, stay.)
_NEVER = r"\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffd"
_CONTROL = re.compile(rf"[\x00-\x1f{_NEVER}]")
# A name may keep the line breaks and tabs a person (or a spreadsheet) put in it: the email
# body shows it as written, and header safety (providers/headers.py) keeps them out of
# headers. Other control characters (NUL, which PostgreSQL refuses, escapes) may not.
_CONTROL_BUT_WHITESPACE = re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f{_NEVER}]")
# Characters that show nothing on their own (zero-width spaces and joiners, the word joiner,
# the byte-order mark, direction marks): fine inside a name (ZWNJ spells Persian ones), but
# a name of nothing else greets the reader with "Dear ,".
_INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad")


def suppression_hash(normalized_email: str) -> str:
    """The fingerprint a forgotten address leaves. Not keyed with the secret key on
    purpose: rotating that key must not make forgotten people mailable again."""
    return hashlib.sha256(f"newsletter-suppression:{normalized_email}".encode()).hexdigest()


def is_suppressed(normalized_email: str, *, session: Session) -> bool:
    return session.get(Suppression, suppression_hash(normalized_email)) is not None


# RFC 5322 dot-atom local part in plain ASCII: email-validator accepts every such local part
# and leaves it as it is, so only the domain needs the library (and its answer per domain
# is the same for every address at it).
_PLAIN_LOCAL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)


@functools.lru_cache(maxsize=4096)
def _normalized_domain(domain: str) -> str:
    """email-validator's verdict on a domain, once per domain: the costly half of its work
    (IDNA, special-use names), which an import of a million rows repeats for a few domains."""
    return validate_email(f"postmaster@{domain}", check_deliverability=False).domain


def normalize_email(address: str) -> str:
    """The one stored form of an address: validated by email-validator, lower-cased, no
    DNS lookup. Plain ASCII local parts take a shortcut with the same result (tested)."""
    text = address.strip()
    if len(text) > 320 or _CONTROL.search(text):
        raise InvalidSubscriberError(
            "email", text[:40], "not an email address (too long, or a control or garbled character)"
        )
    local, at, domain = text.rpartition("@")
    try:
        if at and len(text) <= 254 and len(local) <= 64 and _PLAIN_LOCAL.match(local):
            return f"{local}@{_normalized_domain(domain)}".lower()
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidSubscriberError("email", address, str(exc)) from exc
    return result.normalized.lower()


def check_text(field: str, value: str, *, longest: int, line_breaks: bool = False) -> str:
    """A field as it will be stored: stripped, at most `longest` characters, and no control
    characters (a NUL is stored by SQLite and refused by PostgreSQL); `line_breaks` lets
    line breaks and tabs stay (a name)."""
    text = value.strip()
    if len(text) > longest:
        raise InvalidSubscriberError(field, text[:40] + "…", f"is longer than {longest} characters")
    if (_CONTROL_BUT_WHITESPACE if line_breaks else _CONTROL).search(text):
        if "\ufffd" in text:
            raise InvalidSubscriberError(
                field, text[:40], "arrived garbled (U+FFFD, a character that could not be read)"
            )
        raise InvalidSubscriberError(field, text[:40], "holds a control character")
    if text and _INVISIBLE.issuperset(text):
        raise InvalidSubscriberError(field, text[:40], "holds only invisible characters")
    return text


@functools.lru_cache(maxsize=1024)
def check_timezone(name: str) -> str:
    """An IANA zone name, spelled as the database spells it: a spreadsheet's "asia/tokyo"
    is Asia/Tokyo, as "JAPAN" is the topic japan (cached: an import asks about a few zones
    a million times; a refusal is not cached, it raises every time)."""
    text = check_text("timezone", name, longest=64)
    # The database's own list first: on a disk that ignores case (macOS), ZoneInfo would
    # take "asia/tokyo" as written, and a worker on Linux would not.
    spelled = _zones_by_casefold().get(text.casefold())
    if spelled is not None:
        return spelled
    try:
        ZoneInfo(text)  # a zone the list leaves out ("localtime" and the like)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSubscriberError(
            "timezone", name, "not an IANA timezone (e.g. Asia/Tokyo, America/New_York)"
        ) from exc
    return text


@functools.cache
def _zones_by_casefold() -> dict[str, str]:
    return {zone.casefold(): zone for zone in available_timezones()}


@functools.lru_cache(maxsize=256)
def check_cadence(value: str) -> str:
    """The cadence a cell or form names ("" is immediate), cached as check_timezone is."""
    check_text("cadence", value, longest=16)
    try:
        return Cadence(value.strip().lower() or Cadence.IMMEDIATE).value
    except ValueError as exc:
        choices = ", ".join(c.value for c in Cadence)
        raise InvalidSubscriberError("cadence", value, f"choose one of {choices}") from exc


# More topics than anyone follows; a form posting more is not a person's.
TOPICS_MAX = 200


def chosen_topics(
    slugs: Iterable[str], *, session: Session, offered_only: bool = False
) -> tuple[bool, list[Topic]]:
    """Topic slugs as chosen on a form or a command line: (`all` chosen, the topics).
    At least one is needed; every unknown one is named in one error. `offered_only` (the
    public forms) treats a hidden topic as unknown: it is not offered there."""
    cleaned = [check_text("topics", slug, longest=64).lower() for slug in slugs]
    cleaned = [slug for slug in cleaned if slug]
    if len(cleaned) > TOPICS_MAX:
        raise InvalidSubscriberError("topics", "", f"more than {TOPICS_MAX} topics")
    if ALL_TOPICS in cleaned:
        return True, []
    chosen = resolve_topics(cleaned, session=session, offered_only=offered_only)
    if not chosen:
        raise InvalidSubscriberError("topics", "", "choose at least one topic, or 'all'")
    return False, chosen


def set_topics(
    person: Subscriber, slugs: Iterable[str], *, session: Session, keep_hidden: bool = False
) -> None:
    """Replace what `person` follows with `slugs` ('all' or topic slugs). `keep_hidden`
    (the reader's own form, which does not offer hidden topics) keeps the hidden topics
    they follow, so hiding a topic never silently drops its followers."""
    all_topics, chosen = chosen_topics(slugs, session=session, offered_only=keep_hidden)
    person.all_topics = all_topics
    links = sa.delete(SubscriberTopic).where(col(SubscriberTopic.subscriber_id) == person.id)
    if keep_hidden:
        hidden = sa.select(col(Topic.id)).where(col(Topic.hidden).is_(True))
        links = links.where(col(SubscriberTopic.topic_id).not_in(hidden))
    session.execute(links)
    session.add_all(SubscriberTopic(subscriber_id=id_of(person), topic_id=id_of(t)) for t in chosen)
    session.flush()


@dataclass(frozen=True)
class SubscriberRow:
    """A subscriber with the slugs of the topics they follow, for listings and exports."""

    subscriber: Subscriber
    topics: list[str]

    def as_dict(self) -> dict[str, Any]:
        person = self.subscriber
        return {
            "email": person.email,
            "name": person.name,
            "status": person.status,
            "cadence": person.cadence,
            "timezone": person.timezone,
            "topics": self.topics,
        }


def add_subscriber(
    email: str,
    *,
    session: Session,
    name: str = "",
    topics: Iterable[str] = (ALL_TOPICS,),
    cadence: str = Cadence.IMMEDIATE,
    timezone: str = "UTC",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    source: str = "staff",
    ip: str = "",
) -> Subscriber:
    """Add one subscriber. `topics` holds slugs, or `all` to follow every topic.

    `source` and `ip` are the consent record: where the address came from.
    """
    address = normalize_email(email)
    if is_suppressed(address, session=session):
        raise SubscriberError(
            f"{address} asked to be forgotten and is suppressed; it cannot be added again"
        )
    all_topics, chosen = chosen_topics(topics, session=session)
    if session.exec(select(Subscriber).where(Subscriber.email == address)).first() is not None:
        raise SubscriberError(f"{address} is already a subscriber")
    now = utcnow()
    subscriber = Subscriber(
        email=address,
        name=check_text("name", name, longest=NAME_MAX, line_breaks=True),
        cadence=check_cadence(cadence),
        timezone=check_timezone(timezone),
        all_topics=all_topics,
        status=status,
        status_changed_at=now,
        status_changed_by=source,
        consent_source=source,
        consent_at=now,
        consent_ip=ip,
    )
    session.add(subscriber)
    session.flush()
    session.add_all(
        SubscriberTopic(subscriber_id=id_of(subscriber), topic_id=id_of(t)) for t in chosen
    )
    session.flush()
    return subscriber


def get_subscriber(email: str, *, session: Session) -> Subscriber:
    address = normalize_email(email)
    subscriber = session.exec(select(Subscriber).where(Subscriber.email == address)).first()
    if subscriber is None:
        raise SubscriberNotFoundError(f"no subscriber {address}")
    return subscriber


def unsubscribe(email: str, *, session: Session, by: str = "staff") -> Subscriber:
    """Stop all mail to this address; the record stays, so re-imports cannot resurrect it."""
    person = get_subscriber(email, session=session)
    change_status(person, SubscriberStatus.UNSUBSCRIBED, actor=Actor.STAFF, by=by, session=session)
    return person


def forget(email: str, *, session: Session, by: str = "staff") -> str:
    """Erase a person's data (GDPR art. 17) and keep only a hash that stops the address
    being added or mailed again. The row stays, emptied, so the delivery ledger keeps its
    counts. Returns the suppression hash."""
    subscriber = get_subscriber(email, session=session)
    if not may_change(Actor.STAFF, subscriber.status, SubscriberStatus.FORGOTTEN):
        raise StatusChangeRefusedError(subscriber, SubscriberStatus.FORGOTTEN, Actor.STAFF)
    fingerprint = suppression_hash(subscriber.email)
    if session.get(Suppression, fingerprint) is None:
        session.add(Suppression(email_hash=fingerprint, reason="forgotten"))
    session.execute(
        sa.delete(SubscriberTopic).where(col(SubscriberTopic.subscriber_id) == subscriber.id)
    )
    subscriber.email = f"forgotten-{subscriber.id}@forgotten.invalid"
    subscriber.name = ""
    subscriber.timezone = "UTC"
    subscriber.all_topics = False
    subscriber.consent_source = ""
    subscriber.consent_ip = ""
    subscriber.consent_at = None
    change_status(subscriber, SubscriberStatus.FORGOTTEN, actor=Actor.STAFF, by=by, session=session)
    session.add(subscriber)
    session.flush()
    return fingerprint


def list_subscribers(
    *,
    session: Session,
    topic_ids: list[int] | None = None,
    status: str | None = None,
    cadence: str | None = None,
    where: Iterable[sa.ColumnElement[bool]] = (),
) -> list[SubscriberRow]:
    """Subscribers by email; `topic_ids` lists exactly who a brief on those topics would
    reach (the same function dispatch uses), `cadence` narrows that to one cadence. `where`
    adds conditions on `subscriber` made elsewhere (newsletter/engagement.py's inactive
    readers), so this package needs to know nothing of events."""
    statement = select(Subscriber).where(*where).order_by(Subscriber.email)
    if topic_ids is not None:
        cadences = [check_cadence(cadence)] if cadence else None
        statement = statement.where(
            col(Subscriber.id).in_(matching_subscribers(topic_ids, cadences=cadences))
        )
    elif cadence:
        statement = statement.where(Subscriber.cadence == check_cadence(cadence))
    if status is not None:
        if status not in set(SubscriberStatus):  # an empty list would read as "nobody"
            choices = ", ".join(s.value for s in SubscriberStatus)
            raise InvalidSubscriberError("status", status, f"choose one of {choices}")
        statement = statement.where(Subscriber.status == status)
    else:  # nothing is left of the forgotten to list
        statement = statement.where(Subscriber.status != SubscriberStatus.FORGOTTEN)
    subscribers = list(session.exec(statement))
    return [
        SubscriberRow(s, follows)
        for s, follows in zip(subscribers, _followed(subscribers, session), strict=True)
    ]


def followed_topics(person: Subscriber, *, session: Session) -> list[str]:
    """The slugs this subscriber follows, or ["all"]."""
    return _followed([person], session)[0]


def topics_of(subscribers: list[Subscriber], *, session: Session) -> list[list[str]]:
    """The slugs each of these subscribers follows (or ["all"]), in one query."""
    return _followed(subscribers, session)


def _followed(subscribers: list[Subscriber], session: Session) -> list[list[str]]:
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
