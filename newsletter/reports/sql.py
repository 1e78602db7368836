"""SQL the reports share: readers per event kind, counted by the database, and time buckets
spelt per dialect.

A reader, for a send, is a delivery (one per reader per send, unique in the ledger), so
"unique readers who opened" is the number of distinct `delivery_id`s among its opens.
Counting readers first groups the send's events by (kind, delivery): on PostgreSQL the
report index (`ix_provider_event_report`: send, kind, delivery, machine, time) hands them
over already in that order, so the grouping streams and never sorts or hashes millions of
rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.db import is_postgresql
from newsletter.models import ProviderEventRecord as Event
from newsletter.providers.events import EventType
from subscribers.models import UTCDateTime

# The kinds a report counts readers of, in the order reports show them.
REPORTED = (
    EventType.DELIVERED,
    EventType.OPENED,
    EventType.CLICKED,
    EventType.BOUNCED,
    EventType.UNSUBSCRIBED,
    EventType.COMPLAINED,
)


def human() -> sa.ColumnElement[int]:
    """1 for an event a person made, 0 for a machine's open (Apple Mail Privacy Protection
    fetches every image of every message it receives: its opens say nothing of reading)."""
    return sa.case((col(Event.machine), 0), else_=1)


def per_reader(*where: sa.ColumnElement[bool], by_send: bool = False) -> sa.Subquery:
    """One row per (send?, kind, delivery) among the events matching `where`: `events` of
    that kind for that reader, and how many of them a person made (`human`)."""
    keys: list[Any] = [col(Event.kind), col(Event.delivery_id)]
    if by_send:
        keys.insert(0, col(Event.send_id))
    return (
        sa.select(
            *keys,
            sa.func.count().label("events"),
            sa.func.sum(human()).label("human"),
        )
        .where(col(Event.delivery_id).is_not(None), *where)
        .group_by(*keys)
        .subquery("per_reader")
    )


def whole_hours_since(session: Session, moment: Any, start: datetime) -> sa.ColumnElement[int]:
    """Whole hours from `start` to a later `moment` (a column), in this database's words.
    PostgreSQL: seconds since the epoch as a double (`date_part`), not `extract`, whose
    numeric arithmetic cost a third of a second over 2.6 million opens. SQLite may lack
    floor(); a cast truncates, which is floor for what is not negative."""
    if is_postgresql(session):
        seconds = sa.func.date_part("epoch", moment) - start.timestamp()
        return sa.cast(sa.func.floor(seconds / 3600.0), sa.Integer)
    begin = sa.literal(start, UTCDateTime())
    return sa.cast((sa.func.julianday(moment) - sa.func.julianday(begin)) * 24.0, sa.Integer)


def without_jit(session: Session) -> None:
    """PostgreSQL compiles long queries to machine code (JIT) by default; for these
    aggregations the compiling cost up to a second and won nothing back. For this
    transaction only."""
    if is_postgresql(session):
        session.execute(sa.text("SET LOCAL jit = off"))


def rate(part: int, whole: int) -> float | None:
    """`part` of `whole` as a share (0.25), rounded for people; None when there is no whole."""
    return round(part / whole, 4) if whole else None
