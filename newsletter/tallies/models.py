"""The tallies' tables. Two per-reader tables decide whether an event is a reader's first
of its kind (or first click on a link); three per-send tables hold what reports read.

Each row is only ever added to, in the transaction that records the events it counts, so
the tallies and `provider_event` agree at every commit; `tests/test_tallies.py` recounts
one from the other.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class ReaderTally(SQLModel, table=True):
    """A reader's events of one kind in one send (a delivery is one reader in one send):
    the first makes them one of the send's readers of that kind. `read` is a kind of our
    own: an open by a person or a click."""

    __tablename__ = "reader_tally"

    delivery_id: int = Field(primary_key=True, sa_type=_BIG_ID)
    kind: str = Field(primary_key=True, max_length=32)
    send_id: int = Field(sa_type=_BIG_ID)
    events: int = Field(default=0)
    human: int = Field(default=0)  # events a person made: all but machines' opens


class ReaderLinkTally(SQLModel, table=True):
    """A reader's clicks on one link of one send: the first makes them one of its readers.
    Links are keyed by a digest (`url_key`), as a URL may be longer than an index entry."""

    __tablename__ = "reader_link_tally"

    delivery_id: int = Field(primary_key=True, sa_type=_BIG_ID)
    url_key: str = Field(primary_key=True, max_length=32)
    clicks: int = Field(default=0)


class SendTally(SQLModel, table=True):
    """A send's readers and events of one kind: `readers` had at least one, `people` at
    least one a person made (they differ only for opens, where machines open too)."""

    __tablename__ = "send_tally"

    send_id: int = Field(primary_key=True, sa_type=_BIG_ID)
    kind: str = Field(primary_key=True, max_length=32)
    readers: int = Field(default=0)
    people: int = Field(default=0)
    events: int = Field(default=0)
    human: int = Field(default=0)


class LinkTally(SQLModel, table=True):
    """A link of a send: every click on it and the readers who clicked it."""

    __tablename__ = "link_tally"

    send_id: int = Field(primary_key=True, sa_type=_BIG_ID)
    url_key: str = Field(primary_key=True, max_length=32)
    url: str = Field(sa_type=sa.Text)
    clicks: int = Field(default=0)
    readers: int = Field(default=0)


class HourTally(SQLModel, table=True):
    """Opens a person made in one whole hour after the send started (hour 0 is the first)."""

    __tablename__ = "hour_tally"

    send_id: int = Field(primary_key=True, sa_type=_BIG_ID)
    hour: int = Field(primary_key=True)
    opens: int = Field(default=0)
