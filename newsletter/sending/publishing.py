"""Publishing a brief and making digests, kept in order across workers.

A brief is published when its send starts, or when a local-time send's first readers are
due (`Send.published_at`, read by `briefs.publication_dates`), and a digest carries the
briefs published in its readers' window. Planning a send of a million readers
takes seconds, in the transaction that sets its `started_at`: a digest made by another
worker meanwhile would not see the brief yet, move its readers' window past it, and they
would never get it. So on PostgreSQL the two take one transaction-scoped advisory lock:
planning exclusively (it waits for digests being made, and holds new ones back until it
commits), making digests shared (groups are still made side by side). SQLite's write lock
(BEGIN IMMEDIATE) already puts every such transaction in a line.

In a line is not enough on its own: a worker that read its clock, then waited, would date
the brief before a digest already made in the meantime. `publication_moment` dates it
after every window already closed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.db import is_postgresql
from subscribers.models import Cadence, Subscriber

_KEY = int.from_bytes(hashlib.sha256(b"newsletter publishing").digest()[:8], "big", signed=True)
# What "after" means for a timestamp column: its resolution.
_TICK = timedelta(microseconds=1)


def hold_for_digests(session: Session) -> None:
    """Wait for any send being planned to commit; hold planning back until this commits."""
    if is_postgresql(session.connection()):
        session.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(_KEY)))


def publication_moment(session: Session, *, now: datetime) -> datetime:
    """When a send starting at `now` publishes its brief: `now`, or just after the latest
    digest window already closed if that is later, so every digest reader's next window
    holds it. Waits (PostgreSQL) for digests being made to commit first, and holds new
    ones back until the caller commits."""
    if is_postgresql(session.connection()):
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_KEY)))
    # A closing digest's mark (an immediate reader's `last_digest_at`) is where a window
    # opens, not where one closed: immediate readers get the brief from this send. A scan
    # of the list (no index holds `last_digest_at`, so its updates stay HOT): 145 ms for a
    # million readers on PostgreSQL, once per send, against seconds of planning.
    closed = session.scalar(
        sa.select(sa.func.max(col(Subscriber.last_digest_at))).where(
            col(Subscriber.cadence).in_([Cadence.DAILY, Cadence.WEEKLY])
        )
    )
    return max(now, closed + _TICK) if closed is not None else now
