"""`make bench`: figures and ratios, measured side by side in one run.

* parse + render one brief (goal ≤ 5 ms), and token values + fill per recipient (≤ 10 µs);
* dispatch of BENCH_SUBSCRIBERS (default 20,000) through the sandbox with the real
  `sendgrid` client, on SQLite and, when BENCH_DATABASE_URL (or TEST_DATABASE_URL) names a
  PostgreSQL server, on PostgreSQL: plan time, recipients handed off per second, and the
  naive way (one request per recipient, 500 recipients, extrapolated) for the ratio.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.config import Settings, get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.dispatch import Dispatcher, create_send, start_due_sends
from newsletter.render import fill, recipient_values, render_brief
from newsletter.sandbox import Sandbox
from newsletter.transports import Batch
from newsletter.transports.sendgrid import SendGridTransport
from subscribers.models import Subscriber, SubscriberTopic, Topic, utcnow

KEY = "SG.bench"
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


def bench_render(settings: Settings) -> None:
    topics = [Topic(slug="japan", name="Japan")]

    def parse_and_render() -> None:
        render_brief(parse_brief_file(EXAMPLE).to_brief(), topics, settings)

    parse_and_render()  # warm the template cache, as a worker would be
    seconds = timed(parse_and_render, 50)
    print(f"parse + render one brief:         {seconds * 1000:8.2f} ms   (goal ≤ 5 ms)")

    brief = parse_brief_file(EXAMPLE).to_brief()
    email = render_brief(brief, topics, settings)
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
    print(
        f"token values per recipient (SendGrid path): {per_values * 1e6:6.2f} µs   (goal ≤ 10 µs)"
    )
    print(
        f"token values + local fill per recipient:    {per_fill * 1e6:6.2f} µs   "
        f"(SMTP/outbox path; HTML {email.html_bytes:,} bytes)"
    )


def seed(engine: sa.Engine, subscribers: int) -> str:
    """Bulk-load topics, subscribers (each following one or two of 30 topics) and a brief."""
    now = utcnow()
    with session_scope(engine) as session:
        session.execute(
            sa.insert(Topic),
            [{"slug": f"t{i}", "name": f"Topic {i}", "keywords": ""} for i in range(30)],
        )
        ids = list(session.scalars(sa.select(Topic.id).order_by(Topic.id)))
        rows = [
            {
                "email": f"reader{i}@example.com",
                "name": f"Reader {i}",
                "status": "active",
                "cadence": "immediate",
                "timezone": "UTC",
                "all_topics": False,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(subscribers)
        ]
        for start in range(0, len(rows), 10_000):
            session.execute(sa.insert(Subscriber), rows[start : start + 10_000])
        first = session.scalar(sa.select(sa.func.min(Subscriber.id)))
        links = []
        for offset in range(subscribers):
            links.append({"subscriber_id": first + offset, "topic_id": ids[offset % 30]})
            if offset % 3 == 0:
                links.append({"subscriber_id": first + offset, "topic_id": ids[(offset + 7) % 30]})
        for start in range(0, len(links), 10_000):
            session.execute(sa.insert(SubscriberTopic), links[start : start + 10_000])
        parsed = parse_brief_file(EXAMPLE)
        # Topics t0..t2 and t7..t9 reach every reader following them: about a fifth of the list.
        return add_brief(
            parsed, session=session, topics=["t0", "t1", "t2", "t7", "t8", "t9"]
        ).brief.slug


def bench_dispatch(label: str, url: str, subscribers: int) -> None:
    migrate(url, get_settings().NEWSLETTER_MIGRATIONS_DIR)
    engine = make_engine(url)
    with Sandbox(KEY, keep_content=False) as sandbox:
        settings = get_settings(
            DATABASE_URL=url,
            SENDGRID_API_HOST=sandbox.url,
            SENDGRID_API_KEY=KEY,
            NEWSLETTER_ENV="development",
        )
        start = time.perf_counter()
        slug = seed(engine, subscribers)
        seeded = time.perf_counter() - start
        with session_scope(engine) as session:
            create_send(slug, session=session, settings=settings)
        start = time.perf_counter()
        start_due_sends(engine, now=utcnow())
        plan = time.perf_counter() - start
        with session_scope(engine) as session:
            planned = session.scalar(sa.text("SELECT count(*) FROM delivery"))
        dispatcher = Dispatcher(engine, settings, SendGridTransport.from_settings(settings))
        start = time.perf_counter()
        dispatcher.work_due()
        handoff = time.perf_counter() - start
        accepted = len(sandbox.messages())
        batched_requests = sandbox.state.requests
        rate = accepted / handoff

        naive_n = 500
        transport = SendGridTransport.from_settings(settings)
        one = dispatcher._recipient  # the same per-recipient work as the batched path
        from newsletter.dispatch import _Target

        start = time.perf_counter()
        for i in range(naive_n):
            target = _Target(delivery_id=i, subscriber_id=i, email=f"n{i}@example.com", name="N")
            transport.send_batch(
                Batch(send_id=0, subject="s", html="<p>x</p>", text="x", recipients=[one(target)])
            )
        naive_rate = naive_n / (time.perf_counter() - start)
    engine.dispose()
    print(
        f"[{label}] {subscribers:,} subscribers seeded in {seeded:.1f} s; planned {planned:,} "
        f"deliveries in {plan * 1000:.0f} ms (one INSERT … SELECT)"
    )
    print(
        f"[{label}] handed off {accepted:,} in {handoff:.2f} s = {rate:,.0f} recipients/s "
        f"in {batched_requests} requests; naive one-per-request: {naive_rate:,.0f}/s "
        f"→ batched is {rate / naive_rate:,.0f}× faster"
    )


def main() -> None:
    subscribers = int(os.environ.get("BENCH_SUBSCRIBERS", "20000"))
    bench_render(get_settings())
    with tempfile.TemporaryDirectory() as tmp:
        bench_dispatch("sqlite", f"sqlite:///{tmp}/bench.db", subscribers)
    admin = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if admin:
        name = f"nl_bench_{uuid.uuid4().hex[:8]}"
        admin_engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
            bench_dispatch("postgresql", url, subscribers)
        finally:
            with admin_engine.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        print("[postgresql] skipped: set BENCH_DATABASE_URL=postgresql+psycopg://…")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this run (benchmark, worker and sandbox together): {peak:.0f} MB")


if __name__ == "__main__":
    main()
