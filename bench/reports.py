"""`make bench` (reports part): the time of one send's report on PostgreSQL, for a send of
BENCH_REPORT_DELIVERIES (default 1,000,000) deliveries with BENCH_REPORT_EVENTS (default
5,000,000) provider events. Goal: under 2 s.

The data is made by the database itself (INSERT … SELECT generate_series), so setting up
takes a minute, not an hour: per delivery of the send, a `delivered` (98 %) or a
`bounced` (2 %) event; opens by 40 % of the readers, several each, a fifth of them by
machines (Apple Mail Privacy Protection); clicks by 15 % of the readers over 25 links;
unsubscribes, complaints, and `deferred` events to make up the count. Then the table is
vacuumed and analysed (autovacuum does this on a live server). The data is made at
revision 0015, before the tallies: readers per kind are counted from the events as the
report did then, the upgrade to the tallies is timed (it counts every recorded event), and
then the report is timed: the first run, the median of five; then the topics report.

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
from alembic import command

from bench.common import postgres_database
from newsletter.config import get_settings
from newsletter.db import make_engine, session_scope
from newsletter.db.migrations import alembic_config
from newsletter.reports import send_report, topics_report
from subscribers.models import utcnow

DELIVERIES = int(os.environ.get("BENCH_REPORT_DELIVERIES", "1000000"))
EVENTS = int(os.environ.get("BENCH_REPORT_EVENTS", "5000000"))
GOAL_SECONDS = 2.0
BEFORE_TALLIES = "0015"  # the data is made at this revision; the upgrade counts it


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


# Readers per kind counted from the events, as the report did before the tallies (0015's
# code, over its report index): the figure the tallies are measured against.
_FROM_EVENTS = (
    "SELECT kind, count(*), sum(CASE WHEN human > 0 THEN 1 ELSE 0 END) FROM ("
    "SELECT kind, delivery_id, sum(CASE WHEN machine THEN 0 ELSE 1 END) AS human "
    "FROM provider_event WHERE send_id = 1 AND delivery_id IS NOT NULL AND kind IN "
    "('delivered', 'opened', 'clicked', 'bounced', 'unsubscribed', 'complained') "
    "GROUP BY kind, delivery_id) AS per_reader GROUP BY kind"
)


def main() -> None:
    with postgres_database("bench_reports") as url:
        if not url:
            return
        config = alembic_config(url, get_settings(env_file=None).NEWSLETTER_MIGRATIONS_DIR)
        command.upgrade(config, BEFORE_TALLIES)
        engine = make_engine(url)
        fill(engine, DELIVERIES, EVENTS)

        def from_events() -> dict[str, int]:
            with engine.begin() as db:
                return {kind: int(people) for kind, _, people in db.exec_driver_sql(_FROM_EVENTS)}

        before = statistics.median(timed(from_events, 3))
        counted = from_events()
        upgrade = timed(lambda: command.upgrade(config, "head"), 1)[0]
        print(
            f"[reports] upgrade to the tallies, counting {EVENTS:,} recorded events: "
            f"{upgrade:.1f} s"
        )

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
            f"{first * 1000:.1f} ms, median of 5 {median * 1000:.1f} ms "
            f"(goal < {GOAL_SECONDS:.0f} s: {verdict})"
        )
        print(
            f"[reports]   readers per kind counted from the events instead (before the "
            f"tallies): median of 3 {before:.2f} s, {before / median:,.0f}x the whole report"
        )
        agree = all(made.readers[kind] == counted.get(kind, 0) for kind in made.readers)
        print(
            f"[reports] it says: delivered {made.readers['delivered']:,}, opened "
            f"{made.readers['opened']:,}, machine only {made.machine_opened:,}, clicked "
            f"{made.readers['clicked']:,}, {len(made.links)} links; the events agree: "
            f"{'yes' if agree else 'NO'}"
        )

        def topics() -> Any:
            with session_scope(engine) as session:
                return topics_report(session=session, since=utcnow() - timedelta(days=90))

        print(
            f"[reports] topics report over that send: median of 3 "
            f"{statistics.median(timed(topics, 3)) * 1000:.1f} ms"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
