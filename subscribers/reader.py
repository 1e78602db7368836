"""What a reader does for themselves: sign up, confirm, change their preferences, leave,
and come back. Every status change goes through the table in `subscribers/status.py` as
`Actor.READER` (or `ONE_CLICK`); functions take the session and never commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, select

from subscribers.digest_window import switch_cadence
from subscribers.models import Subscriber, SubscriberStatus, utcnow
from subscribers.roster import (
    add_subscriber,
    check_cadence,
    check_timezone,
    is_suppressed,
    normalize_email,
    set_topics,
)
from subscribers.status import Actor, StatusChangeRefusedError, change_status, may_change

S = SubscriberStatus
BY_READER = "subscriber"  # what `status_changed_by` says for the reader's own changes
BY_FORM = "form"  # a change asked for on the subscribe form, by whoever typed the address
# Where the reader may still choose topics and a cadence, and where only "come back" is left.
EDITABLE = (S.PENDING, S.ACTIVE, S.PAUSED)


@dataclass(frozen=True)
class SignupOutcome:
    """What a sign-up did. The page says the same whatever it is, so the form cannot be
    used to learn who subscribes."""

    subscriber: Subscriber | None
    needs_confirmation: bool  # send (again) the confirmation email


def sign_up(
    email: str,
    *,
    session: Session,
    name: str,
    topics: Iterable[str],
    cadence: str,
    timezone: str,
    ip: str,
) -> SignupOutcome:
    """The subscribe form, applied: a new address becomes pending until it confirms; a
    pending one is sent its confirmation again; an unsubscribed one becomes pending (the
    table's only way back) with what it has, since a stranger may be typing; an active or
    paused one is left alone; a bounced, complained or forgotten one is never mailed."""
    address = normalize_email(email)
    if is_suppressed(address, session=session):
        return SignupOutcome(None, needs_confirmation=False)
    existing = session.exec(select(Subscriber).where(Subscriber.email == address)).first()
    if existing is None:
        person = add_subscriber(
            address,
            session=session,
            name=name,
            topics=topics,
            cadence=cadence,
            timezone=timezone,
            status=S.PENDING,
            source="form",
            ip=ip,
        )
        return SignupOutcome(person, needs_confirmation=True)
    if existing.status == S.UNSUBSCRIBED:
        # Anyone may type an address into the form: until the reader confirms, the change
        # is the form's, and the history says so (it said the reader's own).
        change_status(existing, S.PENDING, actor=Actor.READER, by=BY_FORM, session=session)
    return SignupOutcome(existing, needs_confirmation=existing.status == S.PENDING)


def confirm(subscriber_id: int, *, session: Session, ip: str) -> Subscriber | None:
    """The confirm button was pressed: pending becomes active, with the consent record of
    this press. The reader if they are (now) active; None for anyone else."""
    person = session.get(Subscriber, subscriber_id)
    if person is None or person.status not in (S.PENDING, S.ACTIVE):
        return None
    if person.status == S.PENDING:
        person.consent_source = confirmed_source(person.consent_source)
        person.consent_at, person.consent_ip = utcnow(), ip
        change_status(person, S.ACTIVE, actor=Actor.READER, by=BY_READER, session=session)
    return person


CONFIRMED = " (confirmed by email)"


def confirmed_source(source: str) -> str:
    """The consent record's source once the reader pressed the button: a sign-up's stays
    `form`; an address staff imported or added keeps where it came from, now confirmed by
    its reader. Before, every confirmation wrote `form`, and the import was lost from it."""
    if source in ("", "form") or source.endswith(CONFIRMED):
        return source or "form"
    return source[: 200 - len(CONFIRMED)] + CONFIRMED


def _set_topics(person: Subscriber, topics: Iterable[str], session: Session) -> None:
    """The reader's own choice: hidden topics are not offered to them, so the ones they
    follow are kept (see `roster.set_topics`)."""
    set_topics(person, topics, session=session, keep_hidden=True)


def update_preferences(
    person: Subscriber,
    *,
    session: Session,
    topics: Iterable[str],
    cadence: str,
    timezone: str,
    paused: bool,
) -> Subscriber:
    """The preference centre's form, applied: topics ('all' or slugs), cadence, timezone,
    and a pause that stops all mail until lifted (a pending reader has nothing to pause).
    Refused for a reader who left or whose mailbox did: their page offers no such form."""
    if person.status not in EDITABLE:
        raise StatusChangeRefusedError(person, S.ACTIVE, Actor.READER)
    new_cadence = check_cadence(cadence)
    person.timezone = check_timezone(timezone)
    _set_topics(person, topics, session)
    person.updated_at = utcnow()
    if person.status != S.PENDING:
        wanted = S.PAUSED if paused else S.ACTIVE
        change_status(person, wanted, actor=Actor.READER, by=BY_READER, session=session)
    # After the status: an unpause reaches back by the cadence the window was opened with.
    switch_cadence(person, new_cadence, now=utcnow())
    session.add(person)
    session.flush()
    return person


def leave(person: Subscriber, *, session: Session, actor: Actor = Actor.READER) -> bool:
    """Unsubscribe from everything, from the reader's page or the mailbox's one-click
    button. True if they receive nothing now (they left, or already had); False for a
    bounced or complained reader, whom no public page changes (and who gets no mail)."""
    if person.status == S.UNSUBSCRIBED:
        return True
    if not may_change(actor, person.status, S.UNSUBSCRIBED):
        return False
    change_status(person, S.UNSUBSCRIBED, actor=actor, by=BY_READER, session=session)
    return True


def come_back(
    person: Subscriber, *, session: Session, topics: Iterable[str], cadence: str, timezone: str
) -> None:
    """ "Subscribe again" on an unsubscribed reader's page: their new choices are kept and
    they become pending; a confirmation email (the caller queues it) brings them back. A
    pending reader asking again just gets the email again."""
    if person.status not in (S.UNSUBSCRIBED, S.PENDING):
        raise StatusChangeRefusedError(person, S.PENDING, Actor.READER)
    person.cadence = check_cadence(cadence)
    person.timezone = check_timezone(timezone)
    _set_topics(person, topics, session)
    change_status(person, S.PENDING, actor=Actor.READER, by=BY_READER, session=session)
    session.add(person)
    session.flush()
