"""Provider events, in our own vocabulary, applied to the ledger and the list.

Each provider's webhook verifies and maps its events into `ProviderEvent` first
(`providers/sendgrid/webhook.py`); only then does anything act on them, here:

* accepted / delivered → the delivery is sent (an `unknown` one is settled as sent);
* bounced: hard → the address is bounced at once; soft → counted, bounced at
  NEWSLETTER_SOFT_BOUNCE_LIMIT; the delivery failed;
* dropped → the delivery failed, with the provider's reason; a drop because the provider
  keeps the address on a suppression list (its bounce, spam-report or unsubscribe list)
  also moves the reader as that bounce (hard), complaint or unsubscribe would
  (`event_effects.on_the_reader`), while the event stays `dropped` in the record and the
  tallies;
* complained → the reader is never mailed again;
* unsubscribed → unsubscribed;
* deferred, opened, clicked, unknown → recorded only.

Every event is recorded once (`ProviderEventRecord`, with the provider's payload); a
duplicate changes nothing. A malformed event (or one the database cannot take) is recorded
as `rejected`, with why, and the rest of its batch still applies. A batch is applied
set-based (one INSERT of its records, one UPDATE per kind of change: measured in bench/);
a batch the database refuses as a whole falls back to one savepoint per event. New events
are counted into the reports' tallies in the same transaction (`tallies/apply.py`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import Session, col

from newsletter import metrics
from newsletter.db import dialect_insert, is_postgresql
from newsletter.db.json_rows import json_text, rows_from_json
from newsletter.event_effects import apply_effects
from newsletter.event_places import placed
from newsletter.models import Delivery, ProviderEventRecord
from newsletter.providers.events import EventType, ProviderEvent
from newsletter.sending import ledger
from newsletter.tallies.apply import tally_events
from subscribers.models import utcnow

log = logging.getLogger("newsletter.events")


@dataclass
class EventReport:
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


# Characters PostgreSQL's text columns cannot hold: an event carrying one is rejected up
# front, so the batch's one INSERT never fails for a single event.
_UNSTORABLE = "\x00"


def _storable(event: ProviderEvent) -> ProviderEvent:
    """The event, or a REJECTED one saying why the database could not take it."""
    for name in ("event_id", "email", "url", "reason", "provider_type", "message_id"):
        if _UNSTORABLE in getattr(event, name):
            return _rejected(event, f"could not be applied: a NUL character in {name}")
    return event


def _rejected(event: ProviderEvent, why: str) -> ProviderEvent:
    return replace(
        event,
        type=EventType.REJECTED,
        event_id=f"rejected:{event.fallback_key}",
        delivery_id=None,
        email=event.email[:320].replace(_UNSTORABLE, ""),
        url=event.url.replace(_UNSTORABLE, ""),
        provider_type=event.provider_type.replace(_UNSTORABLE, ""),
        reason=why,
    )


@dataclass
class _Outcome:
    report: EventReport
    applied: list[ProviderEvent]
    duplicates: Counter[str]


def apply_events(
    events: list[ProviderEvent], *, session: Session, soft_bounce_limit: int = 3
) -> EventReport:
    """Record a webhook batch's events once each and apply the new ones, set-based: one
    INSERT … ON CONFLICT DO NOTHING RETURNING of the batch's records tells the new from the
    duplicates, then one statement per kind of change (`event_effects.py`). Should the
    batch as a whole fail in the database anyway, it is applied again one event at a time
    (each its own savepoint), so one bad event still costs only itself."""
    events, deliveries = placed(events, session=session)
    try:
        with session.begin_nested():
            outcome = _apply_batch(events, deliveries, session, soft_bounce_limit)
    except DBAPIError as exc:  # the database refused it; a bug in our SQL is not caught here
        if _try_again(exc):
            raise
        log.warning("event batch applied one by one: %s", exc)
        outcome = _apply_each(events, session, soft_bounce_limit)
    _tell_when_committed(session, outcome.applied, outcome.duplicates, outcome.report.rejected)
    return outcome.report


def _apply_batch(
    events: list[ProviderEvent],
    deliveries: dict[int, tuple[int, int]],
    session: Session,
    soft_bounce_limit: int,
) -> _Outcome:
    now = utcnow()
    outcome = _Outcome(EventReport(), [], Counter())
    seen: set[tuple[str, str]] = set()
    unique: list[tuple[ProviderEvent, str]] = []
    for event in map(_storable, events):
        fallback = event.fallback_key
        by_id = (event.provider, "id:" + (event.event_id or fallback))
        by_what = (event.provider, fallback)
        if by_id in seen or by_what in seen:  # a redelivery inside the same batch
            outcome.report.duplicates += 1
            outcome.duplicates[event.provider] += 1
            continue
        seen.add(by_id)
        seen.add(by_what)
        unique.append((event, fallback))
    table: sa.Table = ProviderEventRecord.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "provider": event.provider,
            "event_id": event.event_id or fallback,
            "fallback_key": fallback,
            "kind": event.type.value,
            "email": event.email,
            "delivery_id": event.delivery_id,
            "send_id": deliveries[event.delivery_id][0]
            if event.delivery_id in deliveries
            else None,
            "url": event.url,
            "machine": event.machine,
            "occurred_at": event.occurred_at,
            "received_at": now,
            "detail": event.reason,
            "raw": event.raw,  # encoded as the record's JSON text below
        }
        for event, fallback in unique
    ]
    recorded: set[tuple[str, str]] = set()
    if rows and is_postgresql(session):
        recorded = _insert_unnested(session, rows)
    elif rows:
        # SQLite, in-process: one prepared INSERT per row (SQLAlchemy's insertmanyvalues).
        statement = (
            dialect_insert(session, table)
            .on_conflict_do_nothing()
            .returning(table.c.provider, table.c.event_id)
        )
        encoded = [{**row, "raw": _raw_text(cast(dict[str, Any], row["raw"]))} for row in rows]
        recorded = {(p, i) for p, i in session.connection().execute(statement, encoded).all()}
    fresh = []
    for (event, _), row in zip(unique, rows, strict=True):
        if (event.provider, row["event_id"]) not in recorded:
            outcome.report.duplicates += 1
            outcome.duplicates[event.provider] += 1
        elif event.type is EventType.REJECTED:
            outcome.report.rejected += 1
        else:
            fresh.append(event)
    apply_effects(fresh, deliveries, session=session, soft_bounce_limit=soft_bounce_limit, now=now)
    tally_events(fresh, deliveries, session=session)
    for event in fresh:
        outcome.report.applied += 1
        outcome.report.by_type[event.type] = outcome.report.by_type.get(event.type, 0) + 1
    outcome.applied = fresh
    return outcome


# The record's columns and their PostgreSQL types, for json_to_recordset().
_RECORD_TYPES = {
    "provider": "text",
    "event_id": "text",
    "fallback_key": "text",
    "kind": "text",
    "email": "text",
    "delivery_id": "bigint",
    "send_id": "bigint",
    "url": "text",
    "machine": "boolean",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    "detail": "text",
    "raw": "json",  # the payload as an object in the document; stored as its text
}


def _insert_unnested(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The batch's records in one INSERT … SELECT FROM json_to_recordset(one JSON document):
    a statement of fixed size whatever the batch's size, its one parameter encoded by the
    json module in C and parsed by PostgreSQL in C. (A multi-row VALUES is split by the
    driver in Python, and arrays of text are escaped there row by row: each cost more than
    the database.) Returns (provider, event_id) of the rows inserted.

    Plan: Insert on provider_event, Conflict Resolution: NOTHING, Conflict Arbiter Indexes:
    uq_provider_event_id, uq_provider_event_fallback -> Function Scan on json_to_recordset;
    the unique indexes are most of its time.
    """
    names = list(_RECORD_TYPES)
    # PostgreSQL's json type keeps a value's text as it came: `raw` is stored exactly as
    # _raw_text() would write it, without a call per event.
    picked = ", ".join("CAST(raw AS text)" if name == "raw" else name for name in names)
    statement = sa.text(
        f"INSERT INTO provider_event ({', '.join(names)}) "
        f"SELECT {picked} FROM ({rows_from_json(session, _RECORD_TYPES)}) AS r "
        "ON CONFLICT DO NOTHING RETURNING provider, event_id"
    )
    document = json_text(rows)
    return {(p, i) for p, i in session.execute(statement, {"rows": document}).all()}


def _raw_text(raw: dict[str, Any]) -> str:
    """The provider's payload as the record keeps it: as PostgreSQL keeps the batch
    document's text of it (`_insert_unnested`)."""
    return json_text(raw)


# --- one event at a time: the fallback when a batch fails as a whole ------------------------


def _send_of(delivery_id: int | None) -> sa.ScalarSelect[int] | None:
    if delivery_id is None:
        return None
    return sa.select(col(Delivery.send_id)).where(col(Delivery.id) == delivery_id).scalar_subquery()


def _record(session: Session, event: ProviderEvent) -> bool:
    """Insert the event's record; False if it was seen before (by id or fallback key)."""
    statement = (
        dialect_insert(session, ProviderEventRecord)
        .values(
            provider=event.provider,
            event_id=event.event_id or event.fallback_key,
            fallback_key=event.fallback_key,
            kind=event.type.value,
            email=event.email,
            delivery_id=event.delivery_id,
            send_id=_send_of(event.delivery_id),
            url=event.url,
            machine=event.machine,
            occurred_at=event.occurred_at,
            detail=event.reason,
            raw=_raw_text(event.raw),
        )
        .on_conflict_do_nothing()
        .returning(col(ProviderEventRecord.id))
    )
    return session.execute(statement).first() is not None


def _apply_each(events: list[ProviderEvent], session: Session, soft_bounce_limit: int) -> _Outcome:
    outcome = _Outcome(EventReport(), [], Counter())
    report = outcome.report
    for event in events:
        try:
            with session.begin_nested():
                fresh = _record(session, event)
                if fresh and event.type is not EventType.REJECTED:
                    deliveries = ledger.deliveries_of(
                        session, [event.delivery_id] if event.delivery_id is not None else []
                    )
                    apply_effects(
                        [event],
                        deliveries,
                        session=session,
                        soft_bounce_limit=soft_bounce_limit,
                        now=utcnow(),
                    )
        except SQLAlchemyError as exc:
            if _try_again(exc):
                raise
            log.warning("event %s could not be applied: %s", event.event_id, exc)
            event = _rejected(event, f"could not be applied: {type(exc).__name__}")
            with session.begin_nested():
                fresh = _record(session, event)
        if not fresh:
            report.duplicates += 1
            outcome.duplicates[event.provider] += 1
        elif event.type is EventType.REJECTED:
            report.rejected += 1
        else:
            report.applied += 1
            report.by_type[event.type] = report.by_type.get(event.type, 0) + 1
            outcome.applied.append(event)
    # Counted together, as a batch is: in key order, so this path cannot deadlock with a
    # request counting the same send's rows (event by event, each took the send's rows
    # between two readers' rows).
    applied = [e.delivery_id for e in outcome.applied if e.delivery_id is not None]
    tally_events(outcome.applied, ledger.deliveries_of(session, applied), session=session)
    return outcome


# A deadlock, a serialization failure: the database asks for the transaction again. The
# request answers 503 and SendGrid posts the batch again, rather than an event being
# recorded as rejected and its effect lost.
_TRY_AGAIN = {"40P01", "40001"}


def _try_again(exc: SQLAlchemyError) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _TRY_AGAIN


def _tell_when_committed(
    session: Session, applied: list[ProviderEvent], duplicates: Counter[str], rejected: int
) -> None:
    """Count and log what was applied once it is committed: a transaction that rolls back
    applied nothing, and must count nothing."""
    if not (applied or duplicates or rejected):
        return

    def committed(_session: Session) -> None:
        by_type = Counter((event.provider, event.type.value) for event in applied)
        for (provider, kind), count in by_type.items():
            metrics.EVENTS.labels(provider, kind).inc(count)
        for provider, count in duplicates.items():
            metrics.EVENT_DUPLICATES.labels(provider).inc(count)
        kinds = ", ".join(f"{kind} {count}" for (_, kind), count in sorted(by_type.items()))
        log.info(
            "provider events applied: %s (%s); duplicates ignored: %s; rejected: %s",
            len(applied),
            kinds or "none",
            sum(duplicates.values()),
            rejected,
        )

    sa.event.listen(session, "after_commit", committed, once=True)
