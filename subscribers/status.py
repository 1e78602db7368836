"""Who may move a reader from which status to which: the one table, and the one function
that writes a status.

Every change of `Subscriber.status` goes through `change_status` (or `change_statuses`,
the same for many readers at once), which consults `TRANSITIONS`; nothing else assigns
the column. The rules, in words:

* **forgotten** is final: the person asked us to erase them; nobody brings them back.
* **bounced** and **complained** never change from a public page or an import: the mailbox
  refused us, or its owner called us spam. Only a later complaint (a bounced address whose
  owner then reports spam) or staff forgetting them moves them on. Neither is ever mailed,
  not even a confirmation (`sending/transactional.py` mails only the statuses it must).
* **unsubscribed** comes back only as **pending**: by asking again (the subscribe form, or
  "subscribe again" on their preferences page, or staff resubscribing them) and then
  confirming from the email.
* the **reader** (their pages, the confirm button) pauses, resumes, leaves and confirms;
  **one-click** (RFC 8058, the mailbox's own button) only unsubscribes; **staff** unsubscribe
  and forget, and may ask an unsubscribed reader to come back (pending: the reader still
  has to confirm from the email, so staff never turn mail back on by themselves); an
  **import** updates readers still on the list and may carry a bounce or a
  complaint over from another system; a **provider** event reports bounces, complaints and
  unsubscribes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col

from subscribers.digest_window import window_on_return
from subscribers.errors import SubscriberError
from subscribers.models import (
    Subscriber,
    SubscriberStatus,
    SubscriberStatusChange,
    id_of,
    utcnow,
)
from subscribers.sql import any_of

S = SubscriberStatus


class Actor(StrEnum):
    READER = "reader"  # the reader's own pages: preferences, unsubscribe, confirm, sign-up
    ONE_CLICK = "one-click"  # RFC 8058: the mailbox provider's unsubscribe button
    STAFF = "staff"  # the command line and the console
    IMPORT = "import"  # a subscriber CSV
    PROVIDER = "provider"  # a provider's event: bounce, spam report, unsubscribe


_STILL_LISTED = (S.PENDING, S.ACTIVE, S.PAUSED)


def _each(sources: tuple[S, ...], targets: set[S]) -> dict[S, frozenset[S]]:
    return {source: frozenset(targets - {source}) for source in sources}


# actor → status now → statuses that actor may move the reader to.
TRANSITIONS: dict[Actor, dict[S, frozenset[S]]] = {
    Actor.READER: {
        S.PENDING: frozenset({S.ACTIVE, S.UNSUBSCRIBED}),
        S.ACTIVE: frozenset({S.PAUSED, S.UNSUBSCRIBED}),
        S.PAUSED: frozenset({S.ACTIVE, S.UNSUBSCRIBED}),
        S.UNSUBSCRIBED: frozenset({S.PENDING}),
    },
    Actor.ONE_CLICK: _each(_STILL_LISTED, {S.UNSUBSCRIBED}),
    Actor.STAFF: {
        **_each(_STILL_LISTED, {S.UNSUBSCRIBED, S.FORGOTTEN}),
        **_each((S.BOUNCED, S.COMPLAINED), {S.FORGOTTEN}),
        S.UNSUBSCRIBED: frozenset({S.PENDING, S.FORGOTTEN}),
    },
    Actor.IMPORT: _each(
        _STILL_LISTED, {S.PENDING, S.ACTIVE, S.PAUSED, S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED}
    ),
    Actor.PROVIDER: {
        **_each(_STILL_LISTED, {S.BOUNCED, S.COMPLAINED, S.UNSUBSCRIBED}),
        S.UNSUBSCRIBED: frozenset({S.COMPLAINED}),
        S.BOUNCED: frozenset({S.COMPLAINED}),
    },
}


class StatusChangeRefusedError(SubscriberError):
    """The table does not let this actor make this change."""

    def __init__(self, person: Subscriber, wanted: str, actor: Actor) -> None:
        self.current = person.status
        self.wanted = wanted
        super().__init__(
            f"{person.email} is {person.status}; {_WHO[actor]} cannot make it {wanted}"
            + _WHY.get(S(person.status), "")
        )


_WHO = {
    Actor.READER: "the reader's own pages",
    Actor.ONE_CLICK: "a one-click unsubscribe",
    Actor.STAFF: "staff",
    Actor.IMPORT: "an import",
    Actor.PROVIDER: "a provider event",
}
_WHY = {
    S.BOUNCED: " (the address does not take mail)",
    S.COMPLAINED: " (its owner reported our mail as spam)",
    S.FORGOTTEN: " (forgotten is final)",
    S.UNSUBSCRIBED: " (an unsubscribed reader comes back only by confirming again)",
}


def may_change(actor: Actor, current: str, wanted: str) -> bool:
    """Whether `actor` may move a reader from `current` to `wanted` (staying put is always
    allowed: it changes nothing)."""
    if current == wanted:
        return True
    return S(wanted) in TRANSITIONS[actor].get(S(current), frozenset())


def change_status(
    person: Subscriber, wanted: S, *, actor: Actor, session: Session, by: str = ""
) -> bool:
    """Move `person` to `wanted` as `actor`, recording who (`by`, default the actor's name)
    and when. False if they already were; StatusChangeRefusedError if the table says no."""
    if person.status == wanted:
        return False
    if not may_change(actor, person.status, wanted):
        raise StatusChangeRefusedError(person, wanted, actor)
    now = utcnow()
    session.add(
        SubscriberStatusChange(
            subscriber_id=id_of(person),
            at=now,
            old_status=person.status,
            new_status=wanted,
            by=(by or actor.value)[:100],
        )
    )
    if wanted is S.ACTIVE:
        window_on_return(person, person.status, now=now)
    person.status = wanted
    person.status_changed_at = person.updated_at = now
    person.status_changed_by = by or actor.value
    if wanted is S.UNSUBSCRIBED:
        person.unsubscribed_at = now
    session.add(person)
    session.flush()
    return True


def change_statuses(
    session: Session,
    current: dict[int, str],
    wanted: S,
    *,
    actor: Actor,
    by: str,
    now: datetime,
) -> list[int]:
    """`change_status` for many readers in one UPDATE (provider events arrive by the
    thousand): `current` maps each reader's id to the status the caller read (and locked);
    those the table lets `actor` move to `wanted` are moved, recording who and when. The
    rest stay as they are. Returns the ids moved."""
    moved = sorted(
        i for i, status in current.items() if status != wanted and may_change(actor, status, wanted)
    )
    if not moved:
        return []
    values: dict[str, object] = {
        "status": wanted.value,
        "status_changed_at": now,
        "status_changed_by": by or actor.value,
        "updated_at": now,
    }
    if wanted is S.UNSUBSCRIBED:
        values["unsubscribed_at"] = now
    session.execute(
        sa.update(Subscriber)
        .where(
            any_of(session, col(Subscriber.id), moved),
            col(Subscriber.status).in_({current[i] for i in moved}),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    # The same history `change_status` keeps, one row per reader moved.
    session.execute(
        sa.insert(SubscriberStatusChange),
        [
            {
                "subscriber_id": i,
                "at": now,
                "old_status": current[i],
                "new_status": wanted.value,
                "by": (by or actor.value)[:100],
            }
            for i in moved
        ],
    )
    return moved
