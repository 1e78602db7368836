"""Digests: daily and weekly readers get one email with every brief on their topics that was
published since their last digest, at NEWSLETTER_DIGEST_HOUR in their own timezone.

A brief is *published* when its send starts; immediate readers get it then, alone, and
digest readers never get it that way (matching leaves them out), so nobody receives a brief
both ways. A reader who switched cadence is not sent, in a digest, a brief they already
received (on its own or in another digest); one who switched to immediate gets a last,
closing digest (see `digest_moment`).

Making a digest is one transaction per (cadence, timezone) group, set-based (a few
statements across all of the group's readers, see `_make_digests`): the readers due move
their window (`last_digest_from` to `last_digest_at`) forward, and a ready-to-send Send
with its ledger is written, one per distinct set of briefs (its briefs in `send_brief`).
Two workers running this at once make each digest once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from newsletter.briefs import published_between
from newsletter.config import Settings
from newsletter.db import is_postgresql, session_scope
from newsletter.models import Delivery, DeliveryStatus
from newsletter.sending import ledger
from newsletter.sending.digest_masks import BITS, brief_masks, window_opens
from newsletter.sending.digest_sends import digest_send
from newsletter.sending.publishing import hold_for_digests
from subscribers.digest_window import PERIOD
from subscribers.models import Cadence, Subscriber, SubscriberStatus, UTCDateTime

log = logging.getLogger("newsletter.digests")
# A (cadence, timezone) group due now: its digest moment, and the earliest any of its
# readers' windows opens.
Group = tuple[str, str, datetime, datetime]

# A reader who switched from a digest to immediate is sent one last, closing digest, when
# digests are next made (every quarter hour): the briefs published since their last digest
# (or in their first one's window) up to then that did not reach them on their own;
# without it they never would. `last_digest_at` marks it due (subscribers/digest_window.py
# sets it at the switch); making it clears that. Such a reader's group has cadence
# `immediate` (see `_group`).


def digest_moment(cadence: str, zone: str, *, now: datetime, hour: int, weekday: int) -> datetime:
    """The latest digest moment at or before `now` for a reader in `zone`, in UTC: today's
    (or yesterday's) `hour` for daily readers, the last `weekday` at `hour` for weekly;
    `now` itself for a closing digest (see PERIOD), whose window ends when it is made: one
    ending at the last daily hour would leave out what came out between then and the
    switch, and nothing else sends it."""
    if cadence == Cadence.IMMEDIATE:
        return now.astimezone(UTC)
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    day = local.date()
    if cadence == Cadence.WEEKLY:
        day -= timedelta(days=(day.weekday() - weekday) % 7)
    moment = datetime.combine(day, dt_time(hour), tzinfo=tz)
    if moment.astimezone(UTC) > now.astimezone(UTC):  # in UTC: see plan.next_local_time
        moment = datetime.combine(day - PERIOD[Cadence(cadence)], dt_time(hour), tzinfo=tz)
    return moment.astimezone(UTC)


def create_due_digests(engine: Engine, settings: Settings, *, now: datetime) -> list[int]:
    """Make every digest that has come due by `now`; returns the new sends' ids.

    One scan finds the groups and, per group, whether anyone is due and how far back its
    briefs can reach, so a tick with nothing due costs one scan of the list whatever the
    number of groups (it was one per group, and a fifth of a million-reader run)."""
    baseline = sa.func.coalesce(col(Subscriber.last_digest_at), col(Subscriber.created_at))
    never = sa.case((col(Subscriber.last_digest_at).is_(None), 1), else_=0)
    with session_scope(engine) as session:
        groups = session.execute(
            sa.select(
                col(Subscriber.cadence),
                col(Subscriber.timezone),
                sa.func.min(baseline),
                sa.func.min(col(Subscriber.last_digest_at)),
                sa.func.max(never),
            )
            .where(
                col(Subscriber.status) == SubscriberStatus.ACTIVE,
                sa.or_(
                    col(Subscriber.cadence).in_([Cadence.DAILY, Cadence.WEEKLY]),
                    _closing(),
                ),
            )
            .group_by(col(Subscriber.cadence), col(Subscriber.timezone))
        ).all()
    due: list[Group] = []
    for cadence, zone, first_baseline, last_digest, any_first in sorted(groups):
        moment = digest_moment(
            cadence,
            zone,
            now=now,
            hour=settings.NEWSLETTER_DIGEST_HOUR,
            weekday=settings.NEWSLETTER_DIGEST_WEEKDAY.number,
        )
        if first_baseline >= moment:
            continue  # nobody in this group is due
        # No reader's window opens before this (see `window_opens`): the briefs to consider.
        window_start = moment - PERIOD[Cadence(cadence)]
        earliest = min(
            [*([window_start] if any_first else []), *([last_digest] if last_digest else [])]
        )
        due.append((cadence, zone, moment, earliest))

    def make(group: Group) -> list[int]:
        cadence, zone, moment, earliest = group
        with session_scope(engine, immediate=True) as session:
            return _make_digests(session, settings, cadence, zone, moment, now, earliest)

    # Groups are independent (their own readers, their own advisory lock, their own
    # transaction), so PostgreSQL makes a few at once, each on a connection and a server
    # process of its own (NEWSLETTER_DIGEST_CONCURRENCY: past the server's cores, their
    # WAL writes wait on each other); SQLite has one writer, and takes them in turn.
    threads = min(settings.NEWSLETTER_DIGEST_CONCURRENCY, len(due))
    if threads < 2 or engine.dialect.name != "postgresql":
        outcomes = [_attempt(make, group) for group in due]
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="digests") as pool:
            outcomes = list(pool.map(lambda group: _attempt(make, group), due))
    made = [send_id for ids, _ in outcomes for send_id in ids]
    failures = [(group, exc) for group, (_, exc) in zip(due, outcomes, strict=True) if exc]
    if failures:
        # Every group was tried: one that fails (a template error, a lost connection) must
        # not keep the other zones' readers from their digest. What was made, and every
        # failure but the first, are logged; the first is raised, once (`worker --once`
        # prints it as its one line).
        if made:
            log.info("digests made: sends %s", ", ".join(map(str, made)))
        for (cadence, zone, *_), exc in failures[1:]:
            log.error("digests for %s readers in %s not made: %s", cadence, zone, exc)
        raise failures[0][1]
    return made


def _attempt(
    make: Callable[[Group], list[int]], group: Group
) -> tuple[list[int], Exception | None]:
    """One group's digests, or what stopped them (each group is its own transaction)."""
    try:
        return make(group), None
    except Exception as exc:  # raised by the caller once every group was tried
        return [], exc


def _make_digests(
    session: Session,
    settings: Settings,
    cadence: str,
    zone: str,
    moment: datetime,
    now: datetime,
    earliest: datetime,
) -> list[int]:
    """Every due reader of one (cadence, zone) group, set-based: a handful of statements
    across all of the group's readers, whatever their number.

    1. `digest_due`: one row per due reader with their set of briefs as bit masks, computed
       in SQL (window, topics, briefs already received on their own), and those readers'
       window moved forward (`_fill_due`). Two workers never make one group's digests at
       once: a transaction-scoped advisory lock per group on PostgreSQL, the write lock
       (BEGIN IMMEDIATE) on SQLite.
    2. One Send per distinct set (rendered in Python: a few per group), its briefs in
       `send_brief`.
    3. One INSERT … SELECT of the ledger per set, from `digest_due`.
    """
    period = PERIOD[Cadence(cadence)]
    postgres = is_postgresql(session.connection())
    hold_for_digests(session)  # no brief half-published meanwhile: sending/publishing.py
    if postgres:
        # One worker per group at a time: a second waits here, then finds no one due.
        digest = hashlib.sha256(f"digest {cadence} {zone}".encode()).digest()
        lock = int.from_bytes(digest[:8], "big", signed=True)
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock)))
    # `earliest` was read before this transaction: no reader then in the group had a window
    # opening before it. One who joined since (switched cadence or zone, resumed) may: left
    # for the next tick, whose scan sees them, rather than moved past briefs never read.
    due = [
        *_due_readers(cadence, zone, moment),
        window_opens(Subscriber, moment - period) >= earliest,
    ]
    published = published_between(earliest, moment, session=session)
    briefs = sorted(published.items(), key=lambda item: (item[1], item[0]))
    columns = [f"k{n}" for n in range(max(1, -(-len(briefs) // BITS)))]
    session.execute(sa.text("DROP TABLE IF EXISTS digest_due"))
    session.execute(
        sa.text(
            # No key: it is only ever scanned whole, and a quarter of a million readers'
            # index cost a tenth of a second per group.
            f"CREATE TEMPORARY TABLE digest_due (subscriber_id BIGINT NOT NULL, "
            f"{', '.join(f'{c} BIGINT NOT NULL' for c in columns)})"
            + (" ON COMMIT DROP" if postgres else "")
        )
    )
    closing = cadence == Cadence.IMMEDIATE
    _fill_due(
        session, _group(cadence, zone), due, moment - period, moment, briefs, columns, closing
    )
    table = _due_table(columns)
    key_columns = [table.c[c] for c in columns]
    sets = session.execute(
        sa.select(*key_columns, sa.func.count())
        .where(sa.or_(*(c != 0 for c in key_columns)))
        .group_by(*key_columns)
        .order_by(*key_columns)
    ).all()
    made = []
    for *key, members in sets:
        chosen = tuple(
            brief_id
            for i, (brief_id, _) in enumerate(briefs)
            if int(key[i // BITS]) >> (i % BITS) & 1
        )
        # Dated as the readers' own day (07:00 in Tokyo is the evening before in UTC).
        on = moment.astimezone(ZoneInfo(zone)).date()
        send_id = digest_send(session, settings, cadence, chosen, members, now, on)
        # One INSERT … SELECT per set, each a scan of `digest_due` in reader order: one
        # statement joined to all the sets measured slower (its rows reach the ledger's
        # indexes interleaved, or need a sort).
        session.execute(
            sa.insert(Delivery).from_select(
                ledger.PLANNED_COLUMNS,
                sa.select(
                    sa.literal(send_id),
                    table.c.subscriber_id,
                    sa.literal(DeliveryStatus.QUEUED.value),
                    sa.literal(now, type_=UTCDateTime),
                    sa.literal(0),
                    sa.literal(""),
                    sa.literal(""),
                    sa.literal(now, type_=UTCDateTime),
                ).where(*(c == int(k) for c, k in zip(key_columns, key, strict=True))),
            )
        )
        made.append(send_id)
    if not postgres:
        session.execute(sa.text("DROP TABLE digest_due"))
    return made


def _fill_due(
    session: Session,
    group: list[Any],
    due: list[Any],
    window_start: datetime,
    moment: datetime,
    briefs: list[tuple[int, datetime]],
    columns: list[str],
    closing: bool = False,
) -> None:
    """Fill `digest_due` with the group's due readers and their masks, and move those
    readers' window to end at `moment`.

    On PostgreSQL one statement: the UPDATE picks and moves the due readers and its
    RETURNING feeds the masks (a writable CTE), so the readers moved are exactly the readers
    given a digest. Picking them first and moving them by id after was a second scan joined
    to the first. What a reader follows is read from the statement's snapshot alone, never
    from RETURNING: a row another transaction changes meanwhile is returned as that
    transaction left it (PostgreSQL re-reads a row it waited for), and its "follows every
    topic" beside the links as they were would be a mix of the two choices."""
    postgres = is_postgresql(session.connection())
    # Where each due reader's window opens, from the row as it was: SET reads old values.
    moved = {
        "last_digest_from": window_opens(Subscriber, window_start),
        # A closing digest is the last: nothing more is owed (see PERIOD).
        "last_digest_at": None if closing else moment,
    }
    readers: Any
    if postgres:
        readers = (
            sa.update(Subscriber)
            .where(*due)
            .values(moved)
            .returning(
                col(Subscriber.id).label("id"), col(Subscriber.last_digest_from).label("opens")
            )
            .cte("due")
        )
        # The group's readers who follow everything, as the statement's snapshot has them,
        # as it has their links. Joined by id: none in the bench; a list where many follow
        # everything pays a primary-key probe for each of them.
        everything = (
            sa.select(col(Subscriber.id).label("id"))
            .where(*group, col(Subscriber.all_topics).is_(True))
            .subquery("everything")
        )
        source = readers.outerjoin(everything, everything.c.id == readers.c.id)
        all_topics = everything.c.id.is_not(None)
    else:  # no UPDATE in a CTE; BEGIN IMMEDIATE holds the write lock between the two
        readers = (
            sa.select(
                col(Subscriber.id).label("id"),
                moved["last_digest_from"].label("opens"),
                col(Subscriber.all_topics).label("all_topics"),
            )
            .where(*due)
            .subquery("due")
        )
        source, all_topics = readers, readers.c.all_topics
    masks, source = brief_masks(session, readers, source, all_topics, briefs, columns)
    fill = sa.insert(_due_table(columns)).from_select(
        ["subscriber_id", *columns], sa.select(readers.c.id, *masks).select_from(source)
    )
    session.execute(fill.add_cte(readers) if postgres else fill)
    if postgres:  # autovacuum never sees a temporary table: the joins after need its size
        session.execute(sa.text("ANALYZE digest_due"))
    else:
        session.execute(
            sa.update(Subscriber)
            .where(col(Subscriber.id).in_(sa.text("SELECT subscriber_id FROM digest_due")))
            .values(moved)
            .execution_options(synchronize_session=False)
        )


def _closing() -> sa.ColumnElement[bool]:
    """Readers owed a closing digest (see PERIOD)."""
    return sa.and_(
        col(Subscriber.cadence) == Cadence.IMMEDIATE, col(Subscriber.last_digest_at).is_not(None)
    )


def _group(cadence: str, zone: str) -> list[Any]:
    group = [
        col(Subscriber.status) == SubscriberStatus.ACTIVE,
        col(Subscriber.cadence) == cadence,
        col(Subscriber.timezone) == zone,
    ]
    return [*group, _closing()] if cadence == Cadence.IMMEDIATE else group


def _due_readers(cadence: str, zone: str, moment: datetime) -> list[Any]:
    baseline = sa.func.coalesce(col(Subscriber.last_digest_at), col(Subscriber.created_at))
    return [*_group(cadence, zone), baseline < moment]


def _due_table(columns: list[str]) -> sa.Table:
    return sa.Table(
        "digest_due",
        sa.MetaData(),
        sa.Column("subscriber_id", sa.BigInteger),
        *(sa.Column(c, sa.BigInteger) for c in columns),
    )
