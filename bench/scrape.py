"""`make bench` (second part): what one Prometheus scrape of the web process costs on a big
ledger. The ledger's gauges are read from the database at scrape time (no second set of
books), so their queries must stay cheap as the ledger grows.

BENCH_LEDGER_ROWS (default 1,000,000) delivery rows over 20 finished sends, plus one running
send of 100,000 rows still queued; on SQLite and, when BENCH_DATABASE_URL (or
TEST_DATABASE_URL) names a PostgreSQL server, on PostgreSQL. Goal: a scrape ≤ 1 s on this
2-core machine (Prometheus's default scrape timeout is 10 s).
"""

from __future__ import annotations

import os
import tempfile
import time

import sqlalchemy as sa
from prometheus_client.exposition import generate_latest

from bench.common import postgres_database
from newsletter.config import get_settings
from newsletter.db import make_engine, migrate
from newsletter.metrics import exposition

SENDS = 20
RUNNING_ROWS = 100_000


def fill(engine: sa.Engine, rows: int) -> None:
    """Sends and ledger rows straight in SQL: the scrape reads them, nothing sends them."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO brief (slug, title, date, author, preheader, takeaways, body, "
                "signature, source_name, content_hash, created_at) VALUES ('b', 'B', "
                "'2026-01-01', '', '', '', 'x', '', '', 'h', CURRENT_TIMESTAMP)"
            )
        )
        for n in range(SENDS + 1):
            status = "running" if n == SENDS else "finished"
            connection.execute(
                sa.text(
                    "INSERT INTO send (kind, brief_id, status, scheduled_at, "
                    "subject, html, text, planned, local_time, include_received, "
                    "failed_batches, last_error, created_at) VALUES ('brief', 1, :status, "
                    "CURRENT_TIMESTAMP, 's', 'h', 't', 0, '', false, 0, '', CURRENT_TIMESTAMP)"
                ),
                {"status": status},
            )
        per_send = rows // SENDS
        series = (
            "generate_series(0, :n - 1) AS g(i)"
            if engine.dialect.name == "postgresql"
            else "(WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g "
            "WHERE i < :n - 1) SELECT i FROM g) AS g"
        )
        for send_id in range(1, SENDS + 2):
            count = RUNNING_ROWS if send_id == SENDS + 1 else per_send
            status = "queued" if send_id == SENDS + 1 else "sent"
            connection.execute(
                sa.text(
                    "INSERT INTO delivery (send_id, subscriber_id, status, not_before, "
                    f"attempts, message_id, error) SELECT :send, i, "
                    f"CASE WHEN i % 97 = 0 THEN 'failed' ELSE :status END, "
                    f"CURRENT_TIMESTAMP, 1, '', '' FROM {series}"
                ),
                {"send": send_id, "n": count, "status": status},
            )
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE"))


def bench_scrape(label: str, url: str, rows: int) -> None:
    migrate(url, get_settings().NEWSLETTER_MIGRATIONS_DIR)
    engine = make_engine(url)
    fill(engine, rows)
    collector = exposition(engine)
    generate_latest(collector)  # warm: connections, page cache
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        body = generate_latest(collector)
        samples.append(time.perf_counter() - start)
    engine.dispose()
    samples.sort()
    print(
        f"[{label}] one /metrics scrape over {rows + RUNNING_ROWS:,} ledger rows: "
        f"{samples[2] * 1000:,.0f} ms median, {samples[-1] * 1000:,.0f} ms worst of 5 "
        f"({len(body):,} bytes; goal ≤ 1000 ms)"
    )


def main() -> None:
    rows = int(os.environ.get("BENCH_LEDGER_ROWS", "1000000"))
    with tempfile.TemporaryDirectory() as tmp:
        bench_scrape("sqlite", f"sqlite:///{tmp}/scrape.db", rows)
    with postgres_database("nl_scrape") as url:
        if url:
            bench_scrape("postgresql", url, rows)


if __name__ == "__main__":
    main()
