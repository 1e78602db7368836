"""Importing the subscriber spreadsheet: every row accounted for, the good ones kept.

Each row ends in exactly one bucket of the report, with its line number: added, updated
(saying what changed), unchanged, or skipped (saying why). Rows for the same address are
merged into one (topics joined; later cells win) and reported as merged. Importing the same
file twice changes nothing the second time, and no import turns an unsubscribed, bounced,
complained or forgotten address back into one we mail.

Built for lists of a million: the file is streamed twice (once to find repeated addresses,
once to import) and written in chunks with one lookup and a few bulk statements each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from subscribers.csvfile import SubscriberCsv, unneutralize
from subscribers.digest_window import switch_cadence
from subscribers.errors import InvalidSubscriberError
from subscribers.import_report import ImportReport, RowNote
from subscribers.import_rows import NO_TOPICS, Candidate, RowReader
from subscribers.models import (
    NO_MAIL_STATUSES,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    Topic,
    table_of,
    utcnow,
)
from subscribers.roster import (
    suppression_hash,
)
from subscribers.sql import any_of, bulk_insert, reserve_ids
from subscribers.status import Actor, change_status, may_change

CHUNK = 5000
# The tables an import fills: after a big one, the caller has PostgreSQL tidy them at once
# (newsletter/db/sql.py: vacuum_after_bulk_load), since the first send would pay for it.
WRITTEN_TABLES = ("subscriber", "subscriber_topic")
_MAILED = (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED)
# Called with (id, address) of each chunk's new pending readers: see import_subscribers.
PendingHook = Callable[[Session, list[tuple[int, str]]], None]
# What `_Writer._insert` writes of each new reader, in its rows' order.
_SUBSCRIBER_COLUMNS = (
    "email",
    "name",
    "status",
    "cadence",
    "timezone",
    "all_topics",
    "created_at",
    "updated_at",
    "unsubscribed_at",
    "status_changed_at",
    "status_changed_by",
    "consent_source",
    "consent_at",
    "consent_ip",
)
_LINK_COLUMNS = ("subscriber_id", "topic_id")


def _key(cell: str) -> int:
    """A cheap stand-in for the address in an `email` cell, to find repeated ones in the
    first pass: Python's own string hash, stable within this process. Two addresses that
    collide are only held back and written at the end, merged by their real address, so a
    collision costs memory for two rows, never a wrong merge."""
    return hash(unneutralize(cell.strip()).lower())


def import_subscribers(
    path: Path,
    *,
    session: Session,
    default_timezone: str = "UTC",
    dry_run: bool = False,
    require_confirmation: bool = False,
    on_pending: PendingHook | None = None,
) -> ImportReport:
    """Import `path` into the database in the caller's transaction (see module doc).

    `on_pending` is called, chunk by chunk and in the same transaction, with the new
    readers who start pending: they need a confirmation, and sending mail is not this
    package's job (the caller queues it, so the email exists iff the reader does). In a
    dry run it is called too, each reader's id 0 (none was written), so the caller can
    say what it would do."""
    report = ImportReport(file=str(path), dry_run=dry_run)
    seen: set[int] = set()
    repeated: set[int] = set()
    with SubscriberCsv(path) as table:
        for cell in table.emails():
            key = _key(cell)
            (repeated if key in seen else seen).add(key)
    del seen

    rows = RowReader(
        session,
        default_timezone=default_timezone,
        default_status=(
            SubscriberStatus.PENDING if require_confirmation else SubscriberStatus.ACTIVE
        ).value,
    )
    writer = _Writer(
        session, report, rows.default_status, source=f"import:{path.name}", on_pending=on_pending
    )
    groups: dict[str, Candidate] = {}
    chunk: list[Candidate] = []
    with SubscriberCsv(path) as table:
        report.warnings.extend(
            f"{path}:1: column {column!r} is not one we import; ignored"
            for column in table.ignored_columns
        )
        for row in table:
            try:
                candidate = rows.understand(row)
            except InvalidSubscriberError as exc:
                address = row.cells.get("email", "").strip()
                report.skipped.append(RowNote(row.line, address, str(exc)))
                continue
            if repeated and _key(row.cells.get("email", "")) in repeated:
                earlier = groups.get(candidate.email)
                if earlier is None:
                    groups[candidate.email] = candidate
                else:
                    groups[candidate.email] = earlier.merged_with(candidate)
                    report.merged.append(
                        RowNote(
                            candidate.line,
                            candidate.email,
                            f"same address as line {earlier.line}; merged into it",
                        )
                    )
                continue
            chunk.append(candidate)
            if len(chunk) >= CHUNK:
                writer.apply(chunk)
                chunk = []
    chunk.extend(groups.values())
    for start in range(0, len(chunk), CHUNK):
        writer.apply(chunk[start : start + CHUNK])
    if overruled := writer.overruled:
        # Followed without a word, it looked as if the column had been overlooked.
        readers = (
            "1 new or pending reader" if overruled == 1 else f"{overruled:,} new or pending readers"
        )
        report.warnings.append(
            f"{path}: for {readers} the file says status active or paused; with confirmation "
            "required, they stay pending until they confirm"
        )
    return report


class _Writer:
    """Compares a chunk of candidates with the database and writes the differences."""

    def __init__(
        self,
        session: Session,
        report: ImportReport,
        default_status: str,
        *,
        source: str,
        on_pending: PendingHook | None,
    ) -> None:
        self.session = session
        self.on_pending = on_pending
        # Rows whose `status` confirmation first overruled (see `_status`), for the report.
        self.overruled = 0
        self.report = report
        self.default_status = default_status
        self.source = source
        self.any_suppressed = session.scalar(sa.select(sa.func.count()).select_from(Suppression))
        self.topic_slugs = {t.id: t.slug for t in session.exec(select(Topic))}

    def apply(self, chunk: list[Candidate]) -> None:
        if not chunk:
            return
        session = self.session
        existing = {
            s.email: s
            for s in session.exec(
                select(Subscriber).where(
                    any_of(session, col(Subscriber.email), (c.email for c in chunk))
                )
            )
        }
        follows: dict[int, set[int]] = {}
        if existing:
            ids = [s.id for s in existing.values()]
            for subscriber_id, topic_id in session.exec(
                select(SubscriberTopic.subscriber_id, SubscriberTopic.topic_id).where(
                    any_of(session, col(SubscriberTopic.subscriber_id), ids)
                )
            ):
                follows.setdefault(subscriber_id, set()).add(topic_id)
        suppressed: set[str] = set()
        if self.any_suppressed:
            hashes = {suppression_hash(c.email): c.email for c in chunk if c.email not in existing}
            suppressed = {
                hashes[h]
                for h in session.scalars(
                    sa.select(col(Suppression.email_hash)).where(
                        any_of(session, col(Suppression.email_hash), hashes)
                    )
                )
            }
        now = utcnow()
        new: list[Candidate] = []
        for candidate in chunk:
            current = existing.get(candidate.email)
            if current is None:
                if candidate.email in suppressed:
                    self.report.skipped.append(
                        RowNote(
                            candidate.line,
                            candidate.email,
                            "this address asked to be forgotten; it is suppressed for good",
                        )
                    )
                elif "topics" not in candidate.given:
                    self.report.skipped.append(RowNote(candidate.line, candidate.email, NO_TOPICS))
                else:
                    new.append(candidate)
                continue
            self._compare(candidate, current, follows.get(current.id or 0, set()), now)
        self._insert(new, now)

    def _status(self, given: str | None, current: str | None) -> str:
        """The status a row ends with. When staff asked that new readers confirm first,
        a file's `active` (or `paused`) neither adds an unconfirmed reader nor activates a
        pending one: only the reader's own click does."""
        if self._overrules(given, current):
            return SubscriberStatus.PENDING.value
        return given or current or self.default_status

    def _overrules(self, given: str | None, current: str | None) -> bool:
        """Whether confirmation first turns the file's `active` or `paused` into pending
        (for a new or pending reader; an active one keeps what they have)."""
        confirm_first = self.default_status == SubscriberStatus.PENDING
        return confirm_first and current in (None, SubscriberStatus.PENDING) and given in _MAILED

    def _compare(
        self, candidate: Candidate, current: Subscriber, followed: set[int], now: datetime
    ) -> None:
        report = self.report
        self.overruled += self._overrules(candidate.status, current.status)
        wanted_status = self._status(candidate.status, current.status)
        # A row for someone we no longer mail is a wish to mail them: refused, unless the
        # row itself says what they are (an exported file coming back). Any status change
        # is the table's to allow (subscribers/status.py).
        refused = (
            current.status in NO_MAIL_STATUSES and candidate.status != current.status
        ) or not may_change(Actor.IMPORT, current.status, wanted_status)
        if refused:
            when = f" on {current.status_changed_at:%Y-%m-%d}" if current.status_changed_at else ""
            by = f" by {current.status_changed_by}" if current.status_changed_by else ""
            report.skipped.append(
                RowNote(
                    candidate.line,
                    candidate.email,
                    f"{current.status}{by}{when}; an import never brings an address back",
                )
            )
            return
        changes: list[str] = []
        for column in ("name", "cadence", "timezone"):
            if column not in candidate.given:
                continue  # an empty cell keeps what the subscriber has
            old, new_value = getattr(current, column), getattr(candidate, column)
            if old != new_value:
                changes.append(f"{column} {old!r} → {new_value!r}")
        if wanted_status != current.status:
            changes.append(f"status {current.status} → {wanted_status}")
        topics_now = {"all"} if current.all_topics else {self.topic_slugs[t] for t in followed}
        topics_then = topics_now  # an empty cell keeps them
        if "topics" in candidate.given:
            topics_then = (
                {"all"}
                if candidate.all_topics
                else {self.topic_slugs[t] for t in candidate.topic_ids}
            )
        if topics_now != topics_then:
            changes.append(
                f"topics {';'.join(sorted(topics_now)) or '-'} → {';'.join(sorted(topics_then))}"
            )
        if not changes:
            report.unchanged.append(candidate.line)
            return
        report.updated.append(RowNote(candidate.line, candidate.email, "; ".join(changes)))
        if report.dry_run:
            return
        for column in ("name", "timezone"):
            if column in candidate.given:
                setattr(current, column, getattr(candidate, column))
        change_status(
            current,
            SubscriberStatus(wanted_status),
            actor=Actor.IMPORT,
            by=self.source,
            session=self.session,
        )
        if "cadence" in candidate.given:  # after: see subscribers/reader.py update_preferences
            switch_cadence(current, candidate.cadence, now=now)
        current.updated_at = now
        if topics_now != topics_then:
            current.all_topics = candidate.all_topics
            self.session.execute(
                sa.delete(SubscriberTopic).where(col(SubscriberTopic.subscriber_id) == current.id)
            )
            if candidate.topic_ids:
                self.session.execute(
                    sa.insert(SubscriberTopic),
                    [{"subscriber_id": current.id, "topic_id": t} for t in candidate.topic_ids],
                )
        self.session.add(current)

    def _insert(self, new: list[Candidate], now: datetime) -> None:
        if not new:
            return
        self.report.note_added(new)
        statuses = [self._status(c.status, None) for c in new]
        self.overruled += sum(self._overrules(c.status, None) for c in new)
        pending = SubscriberStatus.PENDING.value
        if self.report.dry_run:
            would = [(0, c.email) for c, s in zip(new, statuses, strict=True) if s == pending]
            if would and self.on_pending is not None:
                self.on_pending(self.session, would)
            return
        self.session.flush()
        subscriber_table = table_of(Subscriber)
        ids = reserve_ids(self.session, subscriber_table, len(new))
        source = self.source
        # PostgreSQL's rows start with the id taken for them; SQLite's take theirs as written.
        keys = [()] * len(new) if ids is None else [(i,) for i in ids]
        columns = _SUBSCRIBER_COLUMNS if ids is None else ("id", *_SUBSCRIBER_COLUMNS)
        rows: list[tuple[Any, ...]] = [
            (
                *key,
                c.email,
                c.name,
                status,
                c.cadence,
                c.timezone,
                c.all_topics,
                now,
                now,
                now if c.status == SubscriberStatus.UNSUBSCRIBED else None,
                now,
                source,
                source,
                now,
                "",
            )
            for key, c, status in zip(keys, new, statuses, strict=True)
        ]
        bulk_insert(self.session, subscriber_table, columns, rows)
        if ids is None:
            by_email = dict(
                self.session.execute(
                    sa.select(subscriber_table.c.email, subscriber_table.c.id).where(
                        any_of(self.session, subscriber_table.c.email, (c.email for c in new))
                    )
                ).all()
            )
            ids = [by_email[c.email] for c in new]
        links = [
            (subscriber_id, topic_id)
            for subscriber_id, candidate in zip(ids, new, strict=True)
            for topic_id in candidate.topic_ids
        ]
        if links:
            bulk_insert(self.session, table_of(SubscriberTopic), _LINK_COLUMNS, links)
        starting_pending = [
            (subscriber_id, candidate.email)
            for subscriber_id, candidate, status in zip(ids, new, statuses, strict=True)
            if status == pending
        ]
        if starting_pending and self.on_pending is not None:
            self.on_pending(self.session, starting_pending)
