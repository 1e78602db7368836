"""What every part of `make bench` shares: the sandbox in its own process, fresh databases,
the subscriber list, timing helpers."""

from __future__ import annotations

import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.config import Settings, get_settings
from newsletter.db import make_engine, migrate, session_scope, vacuum_after_bulk_load
from newsletter.readers.importing import import_readers
from subscribers.importer import WRITTEN_TABLES, ImportReport
from subscribers.topics import add_topic

KEY = "SG.bench"
TOPICS = 30
EXAMPLE = (
    Path(__file__).resolve().parent.parent / "examples" / "briefs" / "2026-06-10-rice-prices.md"
)


def timed(function: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` runs."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def rss_mb() -> float:
    """This process's resident memory now (not the peak)."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def http(url: str, *, method: str = "GET", data: bytes | None = None) -> bytes:
    """One call to the local sandbox (always http://127.0.0.1, built here)."""
    request = urllib.request.Request(  # noqa: S310 - see above
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.read()


@contextmanager
def sandbox_process() -> Iterator[str]:
    """The sandbox in its own process, as SendGrid is: its parsing is not the worker's CPU."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "newsletter", "sandbox", "--port", str(port)),
            *("--api-key", KEY, "--no-keep-messages", "--quiet"),
        ],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                http(f"{url}/sandbox/stats")
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def sandbox_stats(url: str) -> dict[str, int]:
    return json.loads(http(f"{url}/sandbox/stats"))


def sandbox_reset(url: str, *, latency: float) -> None:
    """Forget what was accepted (delivery ids restart with each database) and set the
    simulated API latency: every answer delayed by `latency` seconds."""
    http(f"{url}/sandbox/messages", method="DELETE")
    faults = json.dumps({"rate_delay": 1.0 if latency else 0.0, "delay_seconds": latency})
    http(f"{url}/sandbox/faults", method="PUT", data=faults.encode())


def against_sandbox(
    url: str, sandbox_url: str, *, latency: float, **changes: Any
) -> tuple[sa.Engine, Settings]:
    """A migrated database's engine, and a worker's settings against the sandbox, which
    forgets what it accepted and answers `latency` seconds late."""
    migrate(url, get_settings().NEWSLETTER_MIGRATIONS_DIR)
    settings = get_settings(
        DATABASE_URL=url,
        SENDGRID_API_HOST=sandbox_url,
        SENDGRID_API_KEY=KEY,
        NEWSLETTER_ENV="development",
        **changes,
    )
    sandbox_reset(sandbox_url, latency=latency)
    return make_engine(url), settings


def write_list(path: Path, subscribers: int) -> None:
    """The subscriber CSV staff would import: each reader follows one or two of 30 topics."""
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["email", "name", "topics", "cadence", "timezone"])
        for i in range(subscribers):
            topics = f"t{i % TOPICS}" + (f";t{(i + 7) % TOPICS}" if i % 3 == 0 else "")
            writer.writerow([f"reader{i}@example.com", f"Reader {i}", topics, "", ""])


def seed(engine: sa.Engine, sheet: Path) -> tuple[str, ImportReport, float]:
    """Topics, the subscriber list through `subscribers import`'s own code (import_readers),
    and a brief on all 30 topics, so every reader matches. Returns the brief's slug, the
    import's report and its seconds."""
    with session_scope(engine) as session:
        for i in range(TOPICS):
            add_topic(f"t{i}", f"Topic {i}", session=session)
    start = time.perf_counter()
    with session_scope(engine) as session:
        report = import_readers(sheet, session=session, default_timezone="UTC").report
    # As `subscribers import` does after a big import (included in its time).
    vacuum_after_bulk_load(engine, WRITTEN_TABLES)
    seconds = time.perf_counter() - start
    with session_scope(engine) as session:
        slug = add_brief(
            parse_brief_file(EXAMPLE), session=session, topics=[f"t{i}" for i in range(TOPICS)]
        ).brief.slug
    # Fresh statistics, as autovacuum would leave them: `brief_topic`'s too. Missing here
    # until 2026-11-26, they hid a matching plan five times slower than the one measured
    # (see `brief_topic_ids` in newsletter/sending/audience.py).
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    return slug, report, seconds


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on BENCH_DATABASE_URL's (or TEST_DATABASE_URL's) server, dropped
    afterwards; "" (and a line saying so) when neither names one."""
    admin = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not admin:
        print("[postgresql] skipped: set BENCH_DATABASE_URL=postgresql+psycopg://…")
        yield ""
        return
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin_engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin_engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_engine.dispose()
