"""What staff do to one reader, from the console or the command line, each written to the
audit log in the same transaction: resubscribe (a confirmation email, never mail turned
back on by staff), unsubscribe, forget (the provider's events about them included), and
edit topics, cadence, timezone and name.

The audit log names the reader by id only: after `forget` it must hold nothing that
identifies them. Functions take the session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.errors import ConflictError, SubscriberNotFoundError
from newsletter.models import Delivery, ProviderEventRecord
from newsletter.signup import queue_confirmation
from newsletter.staff import audit
from subscribers.digest_window import switch_cadence
from subscribers.models import Subscriber, SubscriberStatus, id_of, utcnow
from subscribers.roster import (
    NAME_MAX,
    check_cadence,
    check_text,
    check_timezone,
    followed_topics,
    forget,
    is_suppressed,
    normalize_email,
    set_topics,
    unsubscribe,
)
from subscribers.status import Actor, change_status

S = SubscriberStatus


def find_reader(email: str, *, session: Session) -> Subscriber:
    """The reader with this address. A forgotten address is no longer stored, only its
    hash: it is named as forgotten rather than "not found", so staff know why."""
    address = normalize_email(email)
    found = session.exec(select(Subscriber).where(Subscriber.email == address)).first()
    if found is not None:
        return found
    if is_suppressed(address, session=session):
        raise ConflictError(
            f"{address} asked to be forgotten: their data is erased and the address is never "
            "mailed again"
        )
    raise SubscriberNotFoundError(f"no subscriber {address}")


def target(person: Subscriber) -> str:
    return f"subscriber {id_of(person)}"


def resubscribe(person: Subscriber, *, session: Session, actor: str, ip: str = "") -> bool:
    """Staff bring back a reader who asked: an unsubscribed reader becomes pending and is
    sent a confirmation (queued for the worker, like a sign-up's), and mail starts only
    once they confirm; a pending one is sent it again. Refused, naming why, for a
    complained, bounced or forgotten reader (never mailed, not even this) and for one who
    already receives mail. True if the email was queued (False: the mailbox had its day's
    share of confirmations)."""
    if person.status in (S.ACTIVE, S.PAUSED):
        raise ConflictError(
            f"{person.email} is {person.status}: already on the list, nothing to resubscribe"
        )
    # The table decides (subscribers/status.py): of the rest, only unsubscribed → pending
    # is allowed; complained, bounced and forgotten are refused there, naming why.
    change_status(person, S.PENDING, actor=Actor.STAFF, by=actor, session=session)
    queued = queue_confirmation(session, person, now=utcnow())
    audit.record(
        session,
        actor,
        "subscriber.resubscribe",
        target(person),
        "confirmation queued" if queued else "confirmation not sent: the mailbox had three today",
        ip,
    )
    return queued


def staff_unsubscribe(person: Subscriber, *, session: Session, actor: str, ip: str = "") -> bool:
    """Whether it changed anything: a reader unsubscribed already stays so, and the audit
    log does not say twice that staff unsubscribed them."""
    if person.status == SubscriberStatus.UNSUBSCRIBED:
        return False
    unsubscribe(person.email, session=session, by=actor)
    audit.record(session, actor, "subscriber.unsubscribe", target(person), "", ip)
    return True


def staff_forget(person: Subscriber, *, session: Session, actor: str, ip: str = "") -> None:
    """Forget the reader and what the provider told us about them: their events keep what
    happened and when (the reports' counts stand), not the address, the payload (which
    holds the address, and for opens and clicks an IP address and a browser) or the
    receiving server's words (which often quote the address)."""
    address = person.email
    forget(address, session=session, by=actor)  # refused first, if it is to be refused
    erase_events_of(id_of(person), address, session=session)
    audit.record(session, actor, "subscriber.forget", target(person), "", ip)


def erase_events_of(subscriber_id: int, address: str, *, session: Session) -> int:
    """Empty the address, payload and detail of every event about a reader: by their
    deliveries (the delivery_id index), and by address for events of no delivery (a small
    partial index); the number of events emptied."""
    theirs = sa.select(col(Delivery.id)).where(col(Delivery.subscriber_id) == subscriber_id)
    emptied = 0
    for which in (
        col(ProviderEventRecord.delivery_id).in_(theirs),
        sa.and_(
            col(ProviderEventRecord.delivery_id).is_(None),
            col(ProviderEventRecord.email) == address,
        ),
    ):
        result = session.execute(
            sa.update(ProviderEventRecord)
            .where(which)
            .values(email="", raw="{}", detail="")
            .execution_options(synchronize_session=False)
        )
        emptied += int(getattr(result, "rowcount", 0) or 0)
    return emptied


def edit_reader(
    person: Subscriber,
    *,
    session: Session,
    actor: str,
    topics: Iterable[str] | None = None,
    cadence: str | None = None,
    timezone: str | None = None,
    name: str | None = None,
    ip: str = "",
) -> list[str]:
    """Staff change what a reader follows (hidden topics included: staff see every topic),
    their cadence, their timezone or their name; None leaves that one as it is (the CLI
    changes only what it is given). Everything given is checked before anything changes.
    Refused for a forgotten reader. Returns what changed, as the audit log words it (empty:
    nothing changed, nothing logged). A name change is logged without the names: the log
    must identify no one once they are forgotten."""
    if person.status == S.FORGOTTEN:
        raise ConflictError("this reader was forgotten: there is nothing left to edit")
    new_cadence = check_cadence(cadence) if cadence is not None else person.cadence
    new_zone = check_timezone(timezone) if timezone is not None else person.timezone
    new_name = (
        check_text("name", name, longest=NAME_MAX, line_breaks=True)
        if name is not None
        else person.name
    )
    changes = []
    if topics is not None:
        before = followed_topics(person, session=session)
        set_topics(person, topics, session=session)
        after = followed_topics(person, session=session)
        if before != after:
            changes.append(f"topics {';'.join(before) or '-'} → {';'.join(after)}")
    if new_cadence != person.cadence:
        changes.append(f"cadence {person.cadence} → {new_cadence}")
    if new_zone != person.timezone:
        changes.append(f"timezone {person.timezone} → {new_zone}")
    if new_name != person.name:
        changes.append("name changed")
    switch_cadence(person, new_cadence, now=utcnow())
    person.timezone = new_zone
    person.name = new_name
    if changes:
        person.updated_at = utcnow()
        audit.record(session, actor, "subscriber.edit", target(person), "; ".join(changes), ip)
    session.add(person)
    session.flush()
    return changes
