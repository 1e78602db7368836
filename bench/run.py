"""`make bench`: figures and ratios, measured side by side in one run.

* parse + render one brief (goal ≤ 5 ms) and token values per recipient (≤ 10 µs);
* the sandbox's own parse rate, alone: the ceiling for any hand-off through it;
* importing BENCH_SUBSCRIBERS (default 1,000,000) subscribers from CSV (rows/s), then
  matching and planning one brief that every one of them follows (issue 4's figures);
* dispatch of that send through the sandbox (its own process) with the real `sendgrid`
  client, on SQLite and, when BENCH_DATABASE_URL (or TEST_DATABASE_URL) names a PostgreSQL
  server, on PostgreSQL: recipients handed off per second, total time, the worker's RSS at
  a quarter and at the end of the send (flat means memory does not grow with the list);
* the naive way in the same run (one request per recipient, 2,000 recipients,
  extrapolated) for the speedup ratio.

Goals (this 2-core machine): import ≥ 20,000 rows/s; match + plan 1M in ≤ 5 s on
PostgreSQL and ≤ 10 s on SQLite; ≥ 20,000 recipients/s handed off, 1M in ≤ 60 s on
PostgreSQL, peak RSS ≤ 256 MB, ≥ 100× the naive way.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.config import Settings, get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.providers.base import Batch
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.render import fill, recipient_values, render_brief
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.ledger import Target
from newsletter.sending.plan import start_due_sends
from subscribers.importer import ImportReport, import_subscribers
from subscribers.models import Topic, utcnow
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


def bench_render(settings: Settings) -> None:
    topics = [Topic(slug="japan", name="Japan")]

    def parse_and_render() -> None:
        render_brief(parse_brief_file(EXAMPLE).to_brief(), topics, settings)

    parse_and_render()  # warm the template cache, as a worker would be
    seconds = timed(parse_and_render, 50)
    print(f"parse + render one brief:            {seconds * 1000:8.2f} ms   (goal ≤ 5 ms)")

    email = render_brief(parse_brief_file(EXAMPLE).to_brief(), topics, settings)
    count = 2000

    def values_only() -> None:
        for i in range(count):
            recipient_values(
                name=f"Reader {i}",
                email=f"r{i}@example.com",
                unsubscribe_url=f"https://x/u/{i}",
                preferences_url=f"https://x/p/{i}",
            )

    def values_and_fill() -> None:
        for i in range(count):
            values = recipient_values(
                name=f"Reader {i}",
                email=f"r{i}@example.com",
                unsubscribe_url=f"https://x/u/{i}",
                preferences_url=f"https://x/p/{i}",
            )
            fill(email.html, values)
            fill(email.text, values)

    per_values = timed(values_only, 5) / count
    per_fill = timed(values_and_fill, 5) / count
    print(f"token values per recipient:          {per_values * 1e6:8.2f} µs   (goal ≤ 10 µs)")
    print(
        f"token values + local fill:           {per_fill * 1e6:8.2f} µs   "
        f"(SMTP/outbox path; HTML {email.html_bytes:,} bytes)"
    )


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


def bench_sandbox_ceiling(url: str, settings: Settings) -> float:
    """Personalizations per second the sandbox parses and accepts, with the request body
    built once: no database, no token signing, no client-side JSON."""
    transport = SendGridTransport.from_settings(settings)
    dispatcher = Dispatcher(None, settings, transport)  # type: ignore[arg-type]
    email = render_brief(parse_brief_file(EXAMPLE).to_brief(), [], settings)
    recipients = [
        dispatcher.recipient(Target(i, i, f"ceiling{i}@example.com", f"Reader {i}"))
        for i in range(1000)
    ]
    body = json.dumps(
        transport.request_body(Batch(0, email.subject, email.html, email.text, recipients))
    ).encode()
    requests, threads = 40, 4

    def post(n: int) -> None:
        for _ in range(n):
            http(f"{url}/v3/mail/send", method="POST", data=body)

    start = time.perf_counter()
    workers = [threading.Thread(target=post, args=(requests // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    rate = requests * 1000 / (time.perf_counter() - start)
    print(
        f"sandbox alone (the ceiling):         {rate:10,.0f} personalizations/s "
        f"({len(body) / 1000:,.0f} KB per 1000)"
    )
    return rate


def write_list(path: Path, subscribers: int) -> None:
    """The subscriber CSV staff would import: each reader follows one or two of 30 topics."""
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["email", "name", "topics", "cadence", "timezone"])
        for i in range(subscribers):
            topics = f"t{i % TOPICS}" + (f";t{(i + 7) % TOPICS}" if i % 3 == 0 else "")
            writer.writerow([f"reader{i}@example.com", f"Reader {i}", topics, "", ""])


def seed(engine: sa.Engine, sheet: Path) -> tuple[str, ImportReport, float]:
    """Topics, the subscriber list through `subscribers import`'s own code, and a brief on
    all 30 topics, so every reader matches. Returns the brief's slug, the import's report
    and its seconds."""
    with session_scope(engine) as session:
        for i in range(TOPICS):
            add_topic(f"t{i}", f"Topic {i}", session=session)
    start = time.perf_counter()
    with session_scope(engine) as session:
        report = import_subscribers(sheet, session=session)
    seconds = time.perf_counter() - start
    with engine.connect() as connection:  # fresh statistics, as autovacuum would leave them
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    with session_scope(engine) as session:
        slug = add_brief(
            parse_brief_file(EXAMPLE), session=session, topics=[f"t{i}" for i in range(TOPICS)]
        ).brief.slug
    return slug, report, seconds


def bench_dispatch(
    label: str, url: str, sheet: Path, sandbox_url: str, *, latency: float = 0.0
) -> None:
    migrate(url, get_settings().NEWSLETTER_MIGRATIONS_DIR)
    engine = make_engine(url)
    settings = get_settings(
        DATABASE_URL=url,
        SENDGRID_API_HOST=sandbox_url,
        SENDGRID_API_KEY=KEY,
        NEWSLETTER_ENV="development",
    )
    sandbox_reset(sandbox_url, latency=latency)
    slug, imported, import_seconds = seed(engine, sheet)
    subscribers = imported.counts()["added"]

    total_start = time.perf_counter()
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    start = time.perf_counter()
    start_due_sends(engine, now=utcnow())
    plan = time.perf_counter() - start
    with session_scope(engine) as session:
        planned = session.scalar(sa.text("SELECT count(*) FROM delivery")) or 0

    samples: dict[str, float] = {}
    done = [0]

    def progress(rows: int) -> None:
        done[0] += rows
        if "quarter" not in samples and done[0] >= planned / 4:
            samples["quarter"] = rss_mb()

    dispatcher = Dispatcher(
        engine, settings, SendGridTransport.from_settings(settings), on_progress=progress
    )
    start = time.perf_counter()
    report = dispatcher.work_due()
    handoff = time.perf_counter() - start
    total = time.perf_counter() - total_start
    end_rss = rss_mb()
    after = sandbox_stats(sandbox_url)
    accepted = after["personalizations"]
    requests = after["accepted_requests"]
    duplicates = after["duplicate_deliveries"]
    rate = accepted / handoff

    naive_n = 2000 if not latency else 100
    transport = SendGridTransport.from_settings(settings)
    email = render_brief(parse_brief_file(EXAMPLE).to_brief(), [], settings)
    start = time.perf_counter()
    for i in range(naive_n):
        recipient = dispatcher.recipient(Target(i, i, f"naive{i}@example.com", "N"))
        transport.send_batch(Batch(0, email.subject, email.html, email.text, [recipient]))
    naive_rate = naive_n / (time.perf_counter() - start)
    engine.dispose()

    print(
        f"[{label}] imported {subscribers:,} subscribers from CSV in {import_seconds:.1f} s = "
        f"{subscribers / import_seconds:,.0f} rows/s (goal ≥ 20,000); matched and planned "
        f"{planned:,} deliveries in {plan:.2f} s (goal ≤ {5 if 'postgres' in label else 10} s)"
    )
    print(
        f"[{label}] handed off {accepted:,} in {handoff:.1f} s = {rate:,.0f} recipients/s "
        f"({requests:,} requests, {settings.NEWSLETTER_CONCURRENCY} threads); "
        f"send created → finished: {total:.1f} s; duplicates at the sandbox: {duplicates}; "
        f"ledger settled: {report.settled:,}"
    )
    print(
        f"[{label}] worker RSS at a quarter: {samples.get('quarter', 0):.0f} MB, at the end: "
        f"{end_rss:.0f} MB"
    )
    print(
        f"[{label}] naive one-request-per-recipient: {naive_rate:,.0f}/s "
        f"({naive_n:,}, extrapolated to {planned:,}: {planned / naive_rate / 60:,.0f} min) "
        f"→ batched is {rate / naive_rate:,.0f}× faster"
    )


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


def main() -> None:
    subscribers = int(os.environ.get("BENCH_SUBSCRIBERS", "1000000"))
    bench_render(get_settings())
    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as sandbox_url:
        sheet, small = Path(tmp) / "list.csv", Path(tmp) / "small.csv"
        write_list(sheet, subscribers)
        write_list(small, min(subscribers, 200_000))
        bench_sandbox_ceiling(sandbox_url, get_settings(SENDGRID_API_HOST=sandbox_url))
        bench_dispatch("sqlite", f"sqlite:///{tmp}/bench.db", sheet, sandbox_url)
        with postgres_database("nl_bench") as url:
            if url:
                bench_dispatch("postgresql", url, sheet, sandbox_url)
        # SendGrid is an internet round trip away, not a loopback one: the same comparison
        # with every answer 50 ms late, which is what batching and concurrency are for.
        bench_dispatch(
            "sqlite, API 50 ms away",
            f"sqlite:///{tmp}/latency.db",
            small,
            sandbox_url,
            latency=0.05,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark process (all runs): {peak:.0f} MB (goal ≤ 256 MB)")


if __name__ == "__main__":
    main()
