"""Where a reader's digest window stands when the reader changes: a new cadence, or a
return to the list.

A daily or weekly reader's next digest holds what was published after `last_digest_at`
(before their first, after they subscribed, at most one period back); newsletter's digests
move it forward as they make them. These are the other moves, made where the reader
changes, so that every path (their own page, staff, an import) moves it alike. An
immediate reader with `last_digest_at` set is owed a closing digest of that window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from subscribers.models import Cadence, Subscriber
from subscribers.models import SubscriberStatus as S

# How far back a window reaches when nothing else bounds it: a first digest covers one
# period, not everything since the reader subscribed. An immediate reader's closing
# digest reads as a daily one.
PERIOD = {
    Cadence.DAILY: timedelta(days=1),
    Cadence.WEEKLY: timedelta(days=7),
    Cadence.IMMEDIATE: timedelta(days=1),
}

# Readers whose window is open: the list holds them and digests (or a closing one) are due.
_ON_THE_LIST = (S.ACTIVE, S.PAUSED)


def switch_cadence(person: Subscriber, cadence: str, *, now: datetime) -> None:
    """Give `person` a new cadence. One leaving digests for immediate keeps their open
    window marked, even before their first digest, so that a closing digest sends what it
    held: nothing else would (immediate sends leave digest readers out). One joining
    digests from immediate opens their window now: they had everything before on its own
    (a first digest reaching a period back could reach into a time they were away)."""
    was_immediate = person.cadence == Cadence.IMMEDIATE
    if person.status in _ON_THE_LIST and person.last_digest_at is None:
        if not was_immediate and cadence == Cadence.IMMEDIATE:
            since = now - PERIOD[Cadence(person.cadence)]
            person.last_digest_at = max(person.created_at, since)
        elif was_immediate and cadence != Cadence.IMMEDIATE:
            person.last_digest_at = now
    person.cadence = cadence


def window_on_return(person: Subscriber, old_status: str, *, now: datetime) -> None:
    """Move the window of a reader becoming active from `old_status`.

    Unpaused, they keep their window, reaching back at most one period: the next digest (or
    a closing one owed) holds what their last one did not, as a first digest would. Coming
    back from anywhere else (confirmed, resubscribed, restored by staff) starts a new
    window: nothing of what came out while they were off the list, and no closing digest
    for an immediate reader."""
    if old_status == S.PAUSED:
        if person.last_digest_at is not None:
            since = now - PERIOD[Cadence(person.cadence)]
            person.last_digest_at = max(person.last_digest_at, since)
        return
    person.last_digest_at = None if person.cadence == Cadence.IMMEDIATE else now
