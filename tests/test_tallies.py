"""The reports' tallies, counted as events are applied, always equal a recount of the
events themselves: over repeated and redelivered events, machine opens, several batches,
two webhook requests at once (PostgreSQL), and a database upgraded with events in it."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from newsletter import events as events_module
from newsletter.db import session_scope
from newsletter.db.migrations import alembic_config
from newsletter.events import apply_events
from newsletter.models import Delivery, Send
from newsletter.providers.events import EventType, ProviderEvent
from newsletter.providers.memory import MemoryTransport
from newsletter.sending.dispatcher import Dispatcher
from newsletter.tallies.apply import url_key
from subscribers.models import Subscriber
from tests.workers_support import seed_send

LINKS = [
    "https://example.com/analysis?id=1&lang=ja",
    "https://example.com/データ/チャート",
    "https://example.com/" + "long/" * 1000,  # longer than an index entry may be
    'https://example.com/q?a=1;b="2"',
]
KINDS = ["delivered", "opened", "clicked", "bounced", "unsubscribed", "complained", "read"]


def _sent(engine, settings, readers: int) -> tuple[int, list[int], object]:
    send_id = seed_send(engine, settings, readers)
    Dispatcher(engine, settings, MemoryTransport()).work_due()
    with session_scope(engine) as session:
        # Each reader's address names their delivery, so that `_event` can say the address
        # a real event carries (an event about another address is not this delivery's).
        session.execute(
            sa.update(Subscriber).values(
                email="r"
                + sa.cast(
                    sa.select(Delivery.id)
                    .where(Delivery.subscriber_id == Subscriber.id, Delivery.send_id == send_id)
                    .scalar_subquery(),
                    sa.String,
                )
                + "@example.com"
            )
        )
    with session_scope(engine) as session:
        started = session.get_one(Send, send_id).started_at
        ids = list(session.scalars(sa.select(Delivery.id).where(Delivery.send_id == send_id)).all())
    assert started is not None and len(ids) == readers
    return send_id, sorted(ids), started


def _event(kind: EventType, delivery: int, at, n: int, **extra) -> ProviderEvent:
    """Event `n` of a story; events at the same moment must differ in `n` (else they are
    one event redelivered, by their fallback key)."""
    return ProviderEvent(
        provider="sendgrid",
        type=kind,
        provider_type=kind.value,
        event_id=f"{kind.value}-{delivery}-{n}",
        email=f"r{delivery}@example.com",
        occurred_at=at,
        delivery_id=delivery,
        **extra,
    )


def _story(deliveries: list[int], started, seed: int) -> list[ProviderEvent]:
    """Random, repeated engagement by each reader: the tallies must not care."""
    rng = random.Random(seed)
    events: list[ProviderEvent] = []
    n = 0
    for delivery in deliveries:
        n += 1
        if rng.random() < 0.1:
            events.append(_event(EventType.BOUNCED, delivery, started, n, reason="550"))
            continue
        events.append(_event(EventType.DELIVERED, delivery, started, n))
        for _ in range(rng.choice([0, 0, 1, 2, 4])):
            n += 1
            at = started + timedelta(seconds=rng.randrange(0, 60 * 3600))
            events.append(_event(EventType.OPENED, delivery, at, n, machine=rng.random() < 0.3))
        if rng.random() < 0.2:  # on an hour's edge, to the microsecond
            n += 1
            at = started + timedelta(hours=rng.randrange(1, 48))
            events.append(_event(EventType.OPENED, delivery, at, n))
        for _ in range(rng.choice([0, 0, 1, 3])):
            n += 1
            at = started + timedelta(seconds=rng.randrange(0, 48 * 3600))
            # A click a provider marks as a machine's is still a person's: only opens can be.
            machine = rng.random() < 0.1
            events.append(
                _event(EventType.CLICKED, delivery, at, n, url=rng.choice(LINKS), machine=machine)
            )
        if rng.random() < 0.05:
            n += 1
            events.append(_event(EventType.UNSUBSCRIBED, delivery, started, n))
        if rng.random() < 0.02:
            n += 1
            events.append(_event(EventType.COMPLAINED, delivery, started, n))
    rng.shuffle(events)
    return events


def _apply(engine, events: list[ProviderEvent], batch: int) -> None:
    for start in range(0, len(events), batch):
        with session_scope(engine) as session:
            apply_events(events[start : start + batch], session=session)


def _tallies(engine, send_id: int) -> dict[str, object]:
    with engine.connect() as db:
        kinds = {
            row[0]: tuple(row[1:])
            for row in db.execute(
                sa.text(
                    "SELECT kind, readers, people, events, human FROM send_tally WHERE send_id = :s"
                ),
                {"s": send_id},
            )
        }
        links = {
            row[0]: (row[1], row[2], row[3])
            for row in db.execute(
                sa.text("SELECT url, url_key, clicks, readers FROM link_tally WHERE send_id = :s"),
                {"s": send_id},
            )
        }
        hours = dict(
            db.execute(
                sa.text("SELECT hour, opens FROM hour_tally WHERE send_id = :s"), {"s": send_id}
            ).all()
        )
    return {"kinds": kinds, "links": links, "hours": hours}


def _recount(engine, send_id: int, started) -> dict[str, object]:
    """The same figures counted straight from `provider_event`, as the reports once did."""
    with engine.connect() as db:
        rows = db.execute(
            sa.text(
                "SELECT kind, delivery_id, machine, url, occurred_at FROM provider_event "
                "WHERE send_id = :s"
            ),
            {"s": send_id},
        ).all()
    per_kind: dict[str, list] = {kind: [set(), set(), 0, 0] for kind in KINDS}
    clicks: Counter[str] = Counter()
    clickers: dict[str, set[int]] = {}
    hours: Counter[int] = Counter()
    for kind, delivery, machine, url, occurred in rows:
        if kind not in KINDS:
            continue
        person = not (kind == "opened" and machine)
        kinds = [kind] + (["read"] if kind == "clicked" or (kind == "opened" and person) else [])
        for k in kinds:
            tally = per_kind[k]
            tally[0].add(delivery)
            if person:
                tally[1].add(delivery)
            tally[2] += 1
            tally[3] += int(person)
        if kind == "clicked":
            clicks[url] += 1
            clickers.setdefault(url, set()).add(delivery)
        if kind == "opened" and person:
            hours[int((_utc(occurred) - started).total_seconds() // 3600)] += 1
    return {
        "kinds": {kind: (len(t[0]), len(t[1]), t[2], t[3]) for kind, t in per_kind.items() if t[2]},
        "links": {url: (url_key(url), clicks[url], len(clickers[url])) for url in clicks},
        "hours": dict(hours),
    }


def _utc(moment: datetime | str) -> datetime:
    """A time as a raw query hands it back (SQLite: text without its offset)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_tallies_equal_a_recount_of_the_events_over_many_batches_and_redeliveries(engine, settings):
    send_id, deliveries, started = _sent(engine, settings, 60)
    events = _story(deliveries, started, seed=7)
    _apply(engine, events, batch=37)
    # SendGrid redelivers: some under the same id, some under a new one (same fallback key).
    again = events[::5] + [
        ProviderEvent(**{**vars(e), "event_id": "new-" + e.event_id}) for e in events[1::7]
    ]
    _apply(engine, again, batch=50)
    assert _tallies(engine, send_id) == _recount(engine, send_id, started)


def test_a_reader_seen_in_an_earlier_batch_is_not_counted_again(engine, settings):
    send_id, (first, *_), started = _sent(engine, settings, 2)
    for n in range(3):
        _apply(
            engine, [_event(EventType.OPENED, first, started + timedelta(seconds=n), n)], batch=1
        )
    kinds = _tallies(engine, send_id)["kinds"]
    assert kinds["opened"] == (1, 1, 3, 3)


def test_machine_opens_make_a_reader_but_not_a_person(engine, settings):
    send_id, (first, *_), started = _sent(engine, settings, 2)
    _apply(
        engine,
        [_event(EventType.OPENED, first, started + timedelta(seconds=1), 1, machine=True)],
        batch=1,
    )
    _apply(
        engine,
        [_event(EventType.OPENED, first, started + timedelta(seconds=2), 2, machine=True)],
        batch=1,
    )
    assert _tallies(engine, send_id)["kinds"]["opened"] == (1, 0, 2, 0)
    _apply(engine, [_event(EventType.OPENED, first, started + timedelta(seconds=3), 3)], batch=1)
    assert _tallies(engine, send_id)["kinds"]["opened"] == (1, 1, 3, 1)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_webhook_requests_at_once_count_a_reader_once(engine, settings):
    """Request A has counted a reader's open and not yet committed; request B, counting the
    same reader's other open, must wait for A and see it (a count decided from a read made
    before the upsert would count the reader twice)."""
    send_id, (first, *_), started = _sent(engine, settings, 2)
    a_counted, b_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def request_b() -> None:
        try:
            a_counted.wait(10)
            _apply(
                engine,
                [_event(EventType.OPENED, first, started + timedelta(seconds=2), 2)],
                batch=1,
            )
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            b_done.set()

    thread = threading.Thread(target=request_b)
    thread.start()
    with session_scope(engine) as session:
        apply_events(
            [_event(EventType.OPENED, first, started + timedelta(seconds=1), 1)], session=session
        )
        a_counted.set()
        assert not b_done.wait(1.0), "B must wait for A's rows, not count beside them"
    thread.join(10)
    assert not errors
    assert _tallies(engine, send_id)["kinds"]["opened"] == (1, 1, 2, 2)


def test_an_upgrade_counts_the_events_already_recorded_as_the_webhook_would(
    db_url, engine, settings
):
    send_id, deliveries, started = _sent(engine, settings, 40)
    _apply(engine, _story(deliveries, started, seed=11), batch=64)
    counted = _tallies(engine, send_id)
    config = alembic_config(db_url, settings.NEWSLETTER_MIGRATIONS_DIR)
    command.downgrade(config, "0015")
    command.upgrade(config, "head")
    assert _tallies(engine, send_id) == counted
    assert counted == _recount(engine, send_id, started)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_deadlock_costs_a_retry_never_an_event(engine, settings):
    """Two requests, each applying events one at a time (the fallback when a batch fails
    as a whole), take the same rows in opposite orders: PostgreSQL cancels one. That one
    must fail as a whole, for SendGrid to post it again, not record its event as rejected
    (which would lose a bounce or an unsubscribe for good)."""
    _, (one, two), started = _sent(engine, settings, 2)
    at = started + timedelta(seconds=10)
    go, failures = threading.Event(), []

    def other_request() -> None:
        go.wait(10)
        try:
            with session_scope(engine) as session:
                events_module._apply_each([_event(EventType.OPENED, two, at, 30)], session, 3)
        except sa.exc.OperationalError as exc:
            failures.append(exc)

    thread = threading.Thread(target=other_request)
    thread.start()
    try:
        with session_scope(engine) as session:
            events_module._apply_each([_event(EventType.OPENED, one, at, 20)], session, 3)
            go.set()
            time.sleep(0.3)  # the other request now holds `two`'s row, waiting for the send's
            events_module._apply_each([_event(EventType.OPENED, two, at, 21)], session, 3)
    except sa.exc.OperationalError as exc:
        failures.append(exc)
    thread.join(20)
    assert len(failures) == 1 and "deadlock" in str(failures[0])
    with engine.connect() as db:
        rejected = db.execute(
            sa.text("SELECT count(*) FROM provider_event WHERE kind = 'rejected'")
        ).scalar_one()
    assert rejected == 0
