"""`make bench` (console part): the subscribers page's query at 100,000 readers.

100,000 readers on 10 topics (two each), one send delivered to all of them, 40,000 opens
(a quarter by machines) and 10,000 clicks spread over 200 days. Timed, on SQLite and (when
BENCH_DATABASE_URL or TEST_DATABASE_URL names a server) PostgreSQL, median of repeated
runs of `search_readers` (one page of 50 with its total count, topics and last open and
click), and one reader's profile (`subscribers show`, the reader's page):

* the first page, no filter; a page deep in the list (keyset: after reader 90,000);
* a search by part of an address; by a name in CJK;
* topic + status + cadence; inactive for 90 days (the sunset list); all of these at once.

Figures, not pass/fail: read them, keep them in the README.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from bench.common import postgres_database
from newsletter.config import get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.models import Brief, Delivery, ProviderEventRecord, Send
from newsletter.readers.profile import reader_profile
from newsletter.readers.search import ReaderQuery, search_readers
from subscribers.models import Subscriber, SubscriberTopic, Topic, table_of, utcnow

READERS = int(os.environ.get("BENCH_CONSOLE_READERS", "100000"))
REPEAT = int(os.environ.get("BENCH_CONSOLE_REPEAT", "15"))
CHUNK = 10_000


def _chunks(rows: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def seed(engine: sa.Engine) -> None:
    now = utcnow()
    long_ago = now - timedelta(days=400)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(table_of(Topic)),
            [
                {
                    "slug": f"topic-{t}",
                    "name": f"Topic {t}",
                    "description": "",
                    "keywords": "",
                    "hidden": False,
                }
                for t in range(10)
            ],
        )
        readers = [
            {
                "email": f"reader{i:06}@example.com",
                "name": f"Reader {i}" + (" 山田" if i % 1000 == 0 else ""),
                "status": "active" if i % 10 else "unsubscribed",
                "cadence": ("immediate", "daily", "weekly")[i % 3],
                "timezone": "UTC",
                "all_topics": i % 50 == 0,
                "created_at": long_ago,
                "updated_at": long_ago,
                "status_changed_at": long_ago,
                "status_changed_by": "import:bench",
                "consent_source": "import:bench",
                "consent_at": long_ago,
                "consent_ip": "",
                "soft_bounces": 0,
            }
            for i in range(READERS)
        ]
        for chunk in _chunks(readers):
            connection.execute(sa.insert(table_of(Subscriber)), chunk)
        topic_ids = [row[0] for row in connection.execute(sa.select(table_of(Topic).c.id))]
        ids = [row[0] for row in connection.execute(sa.select(table_of(Subscriber).c.id))]
        links = [
            {"subscriber_id": s, "topic_id": topic_ids[(s + k) % 10]} for s in ids for k in (0, 3)
        ]
        for chunk in _chunks(links):
            connection.execute(sa.insert(table_of(SubscriberTopic)), chunk)
        brief_id = connection.execute(
            sa.insert(table_of(Brief)).returning(table_of(Brief).c.id),
            {
                "slug": "bench",
                "title": "Bench",
                "date": now.date(),
                "author": "",
                "preheader": "",
                "takeaways": "",
                "body": "x",
                "signature": "",
                "source_name": "",
                "content_hash": "0" * 64,
                "created_at": now,
            },
        ).scalar_one()
        send_id = connection.execute(
            sa.insert(table_of(Send)).returning(table_of(Send).c.id),
            {
                "kind": "brief",
                "brief_id": brief_id,
                "status": "finished",
                "scheduled_at": long_ago,
                "subject": "Bench",
                "html": "",
                "text": "",
                "planned": READERS,
                "local_time": "",
                "include_received": False,
                "failed_batches": 0,
                "last_error": "",
                "created_at": long_ago,
            },
        ).scalar_one()
        deliveries = [
            {
                "send_id": send_id,
                "subscriber_id": s,
                "status": "sent",
                "not_before": long_ago,
                "attempts": 1,
                "message_id": "",
                "error": "",
                "updated_at": long_ago,
            }
            for s in ids
        ]
        for chunk in _chunks(deliveries):
            connection.execute(sa.insert(table_of(Delivery)), chunk)
        delivery_ids = [row[0] for row in connection.execute(sa.select(table_of(Delivery).c.id))]
        events = []
        for n, delivery_id in enumerate(delivery_ids[: READERS * 2 // 5]):
            kind = "clicked" if n % 4 == 3 else "opened"
            events.append(
                {
                    "provider": "sendgrid",
                    "event_id": f"bench-{n}",
                    "fallback_key": f"{n:064}",
                    "kind": kind,
                    "email": "",
                    "delivery_id": delivery_id,
                    "send_id": send_id,
                    "url": "https://example.com/" if kind == "clicked" else "",
                    "machine": kind == "opened" and n % 4 == 0,
                    "occurred_at": now - timedelta(days=n % 200),
                    "received_at": now,
                    "detail": "",
                    "raw": "",
                }
            )
        for chunk in _chunks(events):
            connection.execute(sa.insert(table_of(ProviderEventRecord)), chunk)
        connection.exec_driver_sql("ANALYZE")  # both databases plan from fresh statistics


def median_ms(function: Callable[[], object]) -> float:
    function()  # warm the caches once
    samples = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


QUERIES = {
    "first page, no filter": ReaderQuery(),
    "deep page (after reader 90,000)": ReaderQuery(after="reader090000@example.com"),
    "search by address part": ReaderQuery(text="reader0421"),
    "search by name (CJK)": ReaderQuery(text="山田"),
    "topic + status + cadence": ReaderQuery(topic="topic-3", status="active", cadence="weekly"),
    "inactive 90 days": ReaderQuery(inactive_days=90),
    "everything at once": ReaderQuery(
        text="reader0", topic="topic-3", status="active", cadence="weekly", inactive_days=90
    ),
}


def bench(label: str, url: str) -> None:
    migrate(url, get_settings().NEWSLETTER_MIGRATIONS_DIR)
    engine = make_engine(url)
    start = time.perf_counter()
    seed(engine)
    print(f"[{label}] seeded {READERS:,} readers in {time.perf_counter() - start:,.0f} s")
    for name, query in QUERIES.items():
        found: list[int] = []

        def run(query: ReaderQuery = query, found: list[int] = found) -> None:
            with session_scope(engine) as session:
                found[:] = [search_readers(query, session=session, now=utcnow()).total]

        ms = median_ms(run)
        print(f"[{label}] subscribers page, {name}: {ms:,.1f} ms median ({found[0]:,} match)")

    def profile() -> None:
        with session_scope(engine) as session:
            person = session.execute(
                sa.select(Subscriber).where(Subscriber.email == "reader050001@example.com")
            ).scalar_one()
            reader_profile(person, session=session)

    print(f"[{label}] one reader's page (profile): {median_ms(profile):,.1f} ms median")
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench("sqlite", f"sqlite:///{tmp}/console.db")
    with postgres_database("nl_bench_console") as url:
        if url:
            bench("postgresql", url)


if __name__ == "__main__":
    main()
