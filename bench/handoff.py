"""The hand-off: the sandbox's own ceiling, then a send of the whole list through it with
the real `sendgrid` client (recipients/s, created → finished, the worker's RSS), and the
one-request-per-reader way for the ratio."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import (
    EXAMPLE,
    against_sandbox,
    http,
    rss_mb,
    sandbox_stats,
    seed,
    timed,
)
from newsletter.briefs import parse_brief_file
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.fields import fill, recipient_values, tokens_in
from newsletter.providers.base import Batch
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.render import render_brief
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.ledger import Target
from newsletter.sending.plan import start_due_sends
from subscribers.models import Topic, utcnow


class Statements:
    """The statements an engine sends while it is listened to, and the seconds each took as
    its caller waited (from sender threads at once, hence the lock). The hand-off's threads
    share one interpreter: after each answer a thread waits for the others to let it run
    again, so a statement costs many times its idle round trip (see `idle_round_trip`)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.count = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def _before(self, connection: sa.Connection, *_: Any) -> None:
        connection.info["bench_started"] = time.perf_counter()

    def _after(self, connection: sa.Connection, _cursor: Any, statement: str, *_: Any) -> None:
        took = time.perf_counter() - connection.info.pop("bench_started")
        # The sender threads' statements (`Dispatcher.work_send` names them), not the tick's
        # recovery and planning; and not SQLite's BEGIN, which PostgreSQL's driver sends
        # unseen, so both databases count the same statements.
        if not threading.current_thread().name.startswith("send-") or statement.startswith("BEGIN"):
            return
        with self._lock:
            self.count += 1
            self.seconds += took

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._before)
        sa.event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        sa.event.remove(self.engine, "after_cursor_execute", self._after)


def idle_round_trip(engine: sa.Engine, count: int = 500) -> float:
    """Seconds of one trivial statement with nothing else running in this process."""
    with engine.connect() as connection:
        start = time.perf_counter()
        for _ in range(count):
            connection.exec_driver_sql("SELECT 1").scalar()
        return (time.perf_counter() - start) / count


def bench_render(settings: Settings) -> None:
    """Parse + render one brief, and the per-recipient token work."""
    topics = [Topic(slug="japan", name="Japan")]

    def parse_and_render() -> None:
        render_brief(parse_brief_file(EXAMPLE).to_brief(), topics, settings)

    parse_and_render()  # warm the template cache, as a worker would be
    seconds = timed(parse_and_render, 50)
    print(f"parse + render one brief:            {seconds * 1000:8.2f} ms   (goal ≤ 5 ms)")

    email = render_brief(parse_brief_file(EXAMPLE).to_brief(), topics, settings)
    count = 2000
    used = tokens_in(email.html, email.text)

    def values_only() -> None:
        for i in range(count):
            recipient_values(
                {
                    "name": f"Reader {i}",
                    "email": f"r{i}@example.com",
                    "reader_token": f"{i}.t",
                    "archive_token": "",
                },
                used,
            )

    def values_and_fill() -> None:
        for i in range(count):
            values = recipient_values(
                {
                    "name": f"Reader {i}",
                    "email": f"r{i}@example.com",
                    "reader_token": f"{i}.t",
                    "archive_token": "",
                },
                used,
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


def bench_sandbox_ceiling(url: str, settings: Settings) -> float:
    """Personalizations per second the sandbox parses and accepts, with the request body
    built once: no database, no token signing, no client-side JSON."""
    transport = SendGridTransport.from_settings(settings)
    dispatcher = Dispatcher(None, settings, transport)  # type: ignore[arg-type]
    email = render_brief(parse_brief_file(EXAMPLE).to_brief(), [], settings)
    used = tokens_in(email.html, email.text)  # what the worker sends: the content's values
    recipients = [
        dispatcher.recipient(Target(i, i, f"ceiling{i}@example.com", f"Reader {i}"), used)
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


def bench_dispatch(
    label: str,
    url: str,
    sheet: Path,
    sandbox_url: str,
    *,
    latency: float = 0.0,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """Import the list, plan one brief to all of it, hand it all off; the figures."""
    changes: dict[str, Any] = {"NEWSLETTER_CONCURRENCY": concurrency} if concurrency else {}
    engine, settings = against_sandbox(url, sandbox_url, latency=latency, **changes)
    slug, imported, import_seconds = seed(engine, sheet)
    subscribers = imported.counts()["added"]

    idle = idle_round_trip(engine)
    total_start = time.perf_counter()
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    start = time.perf_counter()
    start_due_sends(engine, now=utcnow())
    plan = time.perf_counter() - start
    with session_scope(engine) as session:
        planned = session.scalar(sa.text("SELECT count(*) FROM delivery")) or 0

    samples: dict[str, float] = {"start": rss_mb()}
    done = [0]

    def progress(rows: int) -> None:
        done[0] += rows
        if "quarter" not in samples and done[0] >= planned / 4:
            samples["quarter"] = rss_mb()

    dispatcher = Dispatcher(
        engine, settings, SendGridTransport.from_settings(settings), on_progress=progress
    )
    with Statements(engine) as statements:
        start = time.perf_counter()
        report = dispatcher.work_due()
        handoff = time.perf_counter() - start
    with session_scope(engine) as session:
        batches = session.scalar(sa.text("SELECT count(*) FROM delivery_batch")) or 1
    total = time.perf_counter() - total_start
    end_rss = rss_mb()
    after = sandbox_stats(sandbox_url)
    accepted = after["personalizations"]
    duplicates = after["duplicate_deliveries"]
    rate = accepted / handoff

    naive_n = 2000 if not latency else 100
    transport = SendGridTransport.from_settings(settings)
    email = render_brief(parse_brief_file(EXAMPLE).to_brief(), [], settings)
    used = tokens_in(email.html, email.text)
    start = time.perf_counter()
    for i in range(naive_n):
        recipient = dispatcher.recipient(Target(i, i, f"naive{i}@example.com", "N"), used)
        transport.send_batch(Batch(0, email.subject, email.html, email.text, [recipient]))
    naive_rate = naive_n / (time.perf_counter() - start)
    engine.dispose()
    figures = {
        "subscribers": subscribers,
        "import_rate": subscribers / import_seconds,
        "planned": planned,
        "plan_seconds": plan,
        "accepted": accepted,
        "handoff_seconds": handoff,
        "rate": rate,
        "total_seconds": total,
        "duplicates": duplicates,
        "missing": planned - accepted,
        "settled": report.settled,
        "rss_start": samples["start"],
        "rss_quarter": samples.get("quarter", 0.0),
        "rss_end": end_rss,
        "naive_rate": naive_rate,
        "speedup": rate / naive_rate,
        "threads": settings.NEWSLETTER_CONCURRENCY,
        "statements_per_batch": statements.count / batches,
        "statement_ms": statements.seconds / max(statements.count, 1) * 1000,
        "idle_ms": idle * 1000,
    }
    print(
        f"[{label}] imported {subscribers:,} subscribers from CSV: "
        f"{figures['import_rate']:,.0f} rows/s; planned {planned:,} deliveries in {plan:.2f} s"
    )
    print(
        f"[{label}] handed off {accepted:,} in {handoff:.1f} s = {rate:,.0f} recipients/s "
        f"({figures['threads']} threads); created → finished {total:.1f} s; "
        f"duplicates {duplicates}, missing {figures['missing']}"
    )
    print(
        f"[{label}] {figures['statements_per_batch']:.1f} statements per batch of "
        f"{planned / batches:,.0f}, {figures['statement_ms']:.2f} ms each as the sender "
        f"threads waited ({figures['idle_ms']:.2f} ms with nothing else running)"
    )
    print(
        f"[{label}] worker RSS before the send {samples['start']:.0f} MB, at a quarter "
        f"{figures['rss_quarter']:.0f} MB, at the end {end_rss:.0f} MB"
    )
    print(
        f"[{label}] one request per reader: {naive_rate:,.1f}/s → batched is "
        f"{figures['speedup']:,.0f}× faster"
    )
    return figures
