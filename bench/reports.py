"""`make bench` (reports part): the time of one send's report on PostgreSQL, for a send of
BENCH_REPORT_DELIVERIES (default 1,000,000) deliveries with BENCH_REPORT_EVENTS (default
5,000,000) provider events. Goal: under 2 s.

The data is made by the database itself (INSERT … SELECT generate_series), so setting up
takes a minute, not an hour: per delivery of the send, a `delivered` (98 %) or a
`bounced` (2 %) event; opens by 40 % of the readers, several each, a fifth of them by
machines (Apple Mail Privacy Protection); clicks by 15 % of the readers over 25 links;
unsubscribes, complaints, and `deferred` events to make up the count. Then the table is
vacuumed and analysed (autovacuum does this on a live server) and the report is timed:
the first run, then the median of five, and each of its three queries alone; then the
topics report over the same send.

Needs BENCH_DATABASE_URL (or TEST_DATABASE_URL) naming a PostgreSQL server; a scratch
database is created and dropped.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bench.common import postgres_database
from newsletter.config import get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.models import Send
from newsletter.reports import send as report_module
from newsletter.reports import send_report, topics_report
from subscribers.models import utcnow

DELIVERIES = int(os.environ.get("BENCH_REPORT_DELIVERIES", "1000000"))
EVENTS = int(os.environ.get("BENCH_REPORT_EVENTS", "5000000"))
GOAL_SECONDS = 2.0


# One INSERT … SELECT per kind of event: (kind, rows, delivery id from n, machine, url).
def _event_sets(deliveries: int, events: int) -> list[tuple[str, int, str, str, str]]:
    bounced = deliveries // 50
    openers = deliveries * 2 // 5
    clickers = deliveries * 3 // 20
    rest = events - deliveries - 6_000
    opens = rest * 2 // 3
    clicks = rest - opens
    return [
        ("delivered", deliveries - bounced, "n + (n - 1) / 49", "false", "''"),
        ("bounced", bounced, "n * 50", "false", "''"),
        ("opened", opens, f"mod(n, {openers}) * 2 + 1", "(mod(n, 5) = 0)", "''"),
        (
            "clicked",
            clicks,
            f"mod(n, {clickers}) * 6 + 1",
            "false",
            "'https://example.com/briefs/link-' || mod(n, 25)",
        ),
        ("unsubscribed", 5_000, "n * 97", "false", "''"),
        ("complained", 1_000, "n * 331", "false", "''"),
    ]


def fill(engine: sa.Engine, deliveries: int, events: int) -> float:
    """The send, its deliveries and its events, made by the database; seconds taken."""
    started = time.perf_counter()
    with engine.begin() as db:
        db.exec_driver_sql(
            "INSERT INTO brief (slug, title, date, author, preheader, takeaways, body, "
            "signature, source_name, content_hash, created_at) VALUES ('bench', 'Bench', "
            "current_date, '', '', '', 'Body', '', '', 'x', now())"
        )
        db.exec_driver_sql(
            "INSERT INTO send (kind, brief_id, status, scheduled_at, "
            "subject, html, text, planned, local_time, include_received, failed_batches, "
            "last_error, created_at, started_at, finished_at) VALUES ('brief', 1, "
            "'finished', now() - interval '3 days', 'Bench', '<p>x</p>', 'x', "
            f"{deliveries}, '', false, 0, '', now() - interval '3 days', "
            "now() - interval '3 days', now() - interval '3 days')"
        )
        db.exec_driver_sql(
            "INSERT INTO topic (slug, name, description, keywords, hidden) "
            "VALUES ('energy', 'Energy', '', '', false)"
        )
        db.exec_driver_sql("INSERT INTO brief_topic (brief_id, topic_id) VALUES (1, 1)")
        db.exec_driver_sql(
            "INSERT INTO delivery (send_id, subscriber_id, status, not_before, attempts, "
            "message_id, error, updated_at) SELECT 1, n, 'sent', now(), 1, '', '', now() "
            f"FROM generate_series(1, {deliveries}) AS n"
        )
    for kind, rows, delivery, machine, url in _event_sets(deliveries, events):
        with engine.begin() as db:
            db.exec_driver_sql(
                "INSERT INTO provider_event (provider, event_id, fallback_key, kind, email, "
                "delivery_id, send_id, url, machine, occurred_at, received_at, detail, raw) "
                f"SELECT 'sendgrid', '{kind}-' || n, md5('{kind}' || n), '{kind}', '', "
                f"{delivery}, 1, {url}, {machine}, "
                "now() - interval '3 days' + mod(n, 259200) * interval '1 second', now(), '', '' "
                f"FROM generate_series(1, {rows}) AS n"
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
        db.exec_driver_sql("VACUUM ANALYZE provider_event")
        db.exec_driver_sql("VACUUM ANALYZE delivery")
        count = db.exec_driver_sql("SELECT count(*) FROM provider_event").scalar_one()
    print(
        f"[reports] made {deliveries:,} deliveries and {count:,} events in "
        f"{time.perf_counter() - started:,.0f} s"
    )
    return time.perf_counter() - started


def timed(function: Callable[[], Any], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    with postgres_database("bench_reports") as url:
        if not url:
            return
        migrate(url, get_settings(env_file=None).NEWSLETTER_MIGRATIONS_DIR)
        engine = make_engine(url)
        fill(engine, DELIVERIES, EVENTS)

        def report() -> Any:
            with session_scope(engine) as session:
                return send_report(1, session=session)

        first = timed(report, 1)[0]
        runs = timed(report, 5)
        made = report()
        median = statistics.median(runs)
        verdict = "met" if median < GOAL_SECONDS else "MISSED"
        print(
            f"[reports] send report of {DELIVERIES:,} deliveries, {EVENTS:,} events: first "
            f"{first:.2f} s, median of 5 {median:.2f} s (goal < {GOAL_SECONDS:.0f} s: {verdict})"
        )
        print(
            f"[reports] it says: delivered {made.readers['delivered']:,}, opened "
            f"{made.readers['opened']:,}, machine only {made.machine_opened:,}, clicked "
            f"{made.readers['clicked']:,}, {len(made.links)} links"
        )

        def topics() -> Any:
            with session_scope(engine) as session:
                return topics_report(session=session, since=utcnow() - timedelta(days=90))

        print(
            f"[reports] topics report over that send: median of 3 "
            f"{statistics.median(timed(topics, 3)):.2f} s"
        )
        with session_scope(engine) as session:
            send = session.get_one(Send, 1)
            parts: dict[str, Callable[[], Any]] = {
                "readers per kind": lambda: report_module._readers(session, 1),
                "links": lambda: report_module._links(session, 1),
                "opens by hour": lambda: report_module._opens_by_hour(session, 1, send.started_at),
            }
            for name, part in parts.items():
                print(f"[reports]   {name}: median {statistics.median(timed(part, 3)):.2f} s")
        engine.dispose()


if __name__ == "__main__":
    main()
