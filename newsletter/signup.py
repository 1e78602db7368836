"""Double opt-in: the subscribe form, the confirm button, and "subscribe again".

A sign-up is checked in the web request (every field, and the topics) and then only
recorded (`SignupRequest`), the same row whatever the address: the answer, and the time it
takes, cannot tell a stranger whether an address is on the list. The worker applies the
requests on its next tick (`apply_signups`), as it sends the confirmation emails anyway,
so a reader waits no longer than before. Emails are queued for the worker
(`sending/transactional.py`) in the same transaction as the change that calls for them,
and one mailbox gets at most `CONFIRMATIONS_PER_ADDRESS` confirmations a day.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from newsletter.db import is_postgresql, session_scope
from newsletter.errors import NewsletterError
from newsletter.limits import (
    CONFIRMATIONS_PER_ADDRESS,
    SIGNUPS_PER_ADDRESS,
    SIGNUPS_PER_NETWORK,
    hit,
    hit_many,
    key,
    mailbox,
    network,
    peek_many,
)
from newsletter.models import MailKind, SignupRequest
from newsletter.sending.transactional import queue_mail, queue_many
from subscribers.models import Subscriber, SubscriberStatus, id_of, utcnow
from subscribers.reader import come_back, confirm, sign_up
from subscribers.roster import (
    NAME_MAX,
    check_cadence,
    check_text,
    check_timezone,
    chosen_topics,
    normalize_email,
)

log = logging.getLogger("newsletter.signup")
APPLY_LIMIT = 100
# Keys per rate-limit upsert: four bound values each, within SQLite's 32,766.
CONFIRMATION_CHUNK = 5000


@dataclass(frozen=True)
class SignupForm:
    """The subscribe form, checked: every field as it will be stored."""

    email: str
    name: str
    topics: list[str]
    cadence: str
    timezone: str


def check_signup(
    *, engine: Engine, email: str, name: str, topics: list[str], cadence: str, timezone: str
) -> SignupForm:
    """Every field of the form, checked without looking the address up: its syntax and
    size, the name, that the topics exist, the cadence and the timezone. Raises an
    InvalidSubscriberError (or UnknownTopicError) naming the field."""
    address = normalize_email(email)
    cleaned_name = check_text("name", name, longest=NAME_MAX, line_breaks=True)
    with session_scope(engine) as session:
        everything, chosen = chosen_topics(topics, session=session, offered_only=True)
    return SignupForm(
        email=address,
        name=cleaned_name,
        topics=["all"] if everything else [topic.slug for topic in chosen],
        cadence=check_cadence(cadence),
        timezone=check_timezone(timezone),
    )


def record_signup(engine: Engine, form: SignupForm, *, ip: str, now: datetime) -> bool:
    """Count the attempt against the address and the client's network, and record it for
    the worker; False (and nothing recorded) when either has asked too often."""
    with session_scope(engine) as session:
        by_address = hit(session, key("signup", mailbox(form.email)), SIGNUPS_PER_ADDRESS, now=now)
        by_network = hit(session, key("network", network(ip)), SIGNUPS_PER_NETWORK, now=now)
        if not (by_address and by_network):
            return False
        session.add(
            SignupRequest(
                email=form.email,
                name=form.name,
                topics=",".join(form.topics),
                cadence=form.cadence,
                timezone=form.timezone,
                ip=ip[:45],  # the column's width; an IPv6 address fits
                created_at=now,
            )
        )
    return True


def queue_confirmation(session: Session, person: Subscriber, *, now: datetime) -> bool:
    """Queue a confirmation email for a pending reader, unless their mailbox has had its
    day's share; True if queued."""
    return not queue_confirmations(session, [(id_of(person), person.email)], now=now)


def queue_confirmations(
    session: Session, readers: list[tuple[int, str]], *, now: datetime, bulk: bool = False
) -> list[str]:
    """Queue a confirmation for each pending reader (id, address), bar those whose mailbox
    has had its day's share: an import of a thousand `+tag` addresses of one mailbox sends
    it three. Returns the addresses held back. Set-based, for imports of any size; `bulk`
    for a long transaction (see `limits.hit_many`)."""
    held: list[tuple[int, str]] = []
    for start in range(0, len(readers), CONFIRMATION_CHUNK):
        chunk = readers[start : start + CONFIRMATION_CHUNK]
        keys = _confirm_keys(address for _, address in chunk)
        allowed = hit_many(session, keys, CONFIRMATIONS_PER_ADDRESS, now=now, bulk=bulk)
        queue_many(
            session,
            MailKind.CONFIRMATION,
            [subscriber_id for (subscriber_id, _), ok in zip(chunk, allowed, strict=True) if ok],
            now=now,
        )
        held.extend(reader for reader, ok in zip(chunk, allowed, strict=True) if not ok)
    # Not logged here: an import and a resubscribe report who was held back themselves
    # (a log line each repeated it on the terminal, with internal ids); `_apply` logs the
    # sign-ups', which nobody else reports.
    return [address for _, address in held]


def _confirm_keys(addresses: Iterable[str]) -> list[str]:
    """The daily-confirmations counter of each address's mailbox (`+tag`s are one)."""
    return [key("confirm", mailbox(address)) for address in addresses]


def held_back(
    session: Session, addresses: list[str], *, now: datetime, earlier: Counter[str]
) -> list[str]:
    """The addresses `queue_confirmations(bulk=True)` would hold back, writing nothing: an
    import's dry run. `earlier`: confirmations the same dry run would already have queued,
    per mailbox key (updated here)."""
    keys = _confirm_keys(addresses)
    allowed = peek_many(session, keys, CONFIRMATIONS_PER_ADDRESS, now=now, earlier=earlier)
    return [address for address, ok in zip(addresses, allowed, strict=True) if not ok]


def _apply(session: Session, request: SignupRequest, now: datetime) -> None:
    outcome = sign_up(
        request.email,
        session=session,
        name=request.name,
        topics=request.topics.split(","),
        cadence=request.cadence,
        timezone=request.timezone,
        ip=request.ip,
    )
    person = outcome.subscriber
    if person is None or not outcome.needs_confirmation:
        return
    if not queue_confirmation(session, person, now=now):
        log.warning(
            "confirmation to subscriber %s not sent: their mailbox had three today", id_of(person)
        )


def apply_signups(engine: Engine, *, now: datetime) -> int:
    """The worker's part of a sign-up: look the address up, apply it, queue the
    confirmation if one is due, forget the request. Returns how many were applied. A
    request that no longer applies (its topic was deleted meanwhile) is dropped, logged."""
    picked = sa.select(SignupRequest).order_by(col(SignupRequest.id)).limit(APPLY_LIMIT)
    with session_scope(engine, immediate=True) as session:
        if is_postgresql(session):
            picked = picked.with_for_update(skip_locked=True)
        requests = list(session.scalars(picked))
        for request in requests:
            try:
                with session.begin_nested():
                    _apply(session, request, now)
            except NewsletterError as exc:
                log.warning("sign-up request %s dropped: %s", request.id, exc)
            session.delete(request)
    return len(requests)


class Confirmation(Enum):
    """What the confirm button did; false only when it could not confirm."""

    REFUSED = "refused"  # they left, bounced, complained, or were forgotten
    CONFIRMED = "confirmed"  # pending until now: a welcome is queued
    ALREADY = "already"  # confirmed before (a second press): nothing more

    def __bool__(self) -> bool:
        return self is not Confirmation.REFUSED


def confirm_signup(engine: Engine, subscriber_id: int, *, ip: str) -> Confirmation:
    """The confirm button: activate, and queue the welcome email. The reader's row is
    locked first (the write lock on SQLite), so of two presses at once, one confirms and
    queues the welcome and the other finds it done: both read "pending" before, and both
    queued a welcome."""
    with session_scope(engine, immediate=True) as session:
        before = session.get(Subscriber, subscriber_id, with_for_update=True)
        was_pending = before is not None and before.status == SubscriberStatus.PENDING
        if confirm(subscriber_id, session=session, ip=ip) is None:
            return Confirmation.REFUSED
        if not was_pending:
            return Confirmation.ALREADY
        queue_mail(session, MailKind.WELCOME, subscriber_id, now=utcnow())
    return Confirmation.CONFIRMED


def subscribe_again(
    session: Session, person: Subscriber, *, topics: list[str], cadence: str, timezone: str
) -> bool:
    """ "Subscribe again" on an unsubscribed (or still pending) reader's page: they become
    pending with these choices and are sent a confirmation; True if it was queued."""
    come_back(person, session=session, topics=topics, cadence=cadence, timezone=timezone)
    return queue_confirmation(session, person, now=utcnow())
