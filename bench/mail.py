"""Transactional mail drained by the worker's own code (`send_queued_mail`, tick after tick)
through the sandbox with the real `sendgrid` client: a re-permission import's confirmations
(BENCH_MAIL readers, default 20,000, each following one or two of 30 topics), on SQLite
and PostgreSQL, at loopback and with every answer 50 ms late. Beside each, the same code
with one reader per request (a transport whose batch size is 1), which is how this queue
went until 2026-11-27: confirmations per second and the ratio."""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bench.common import TOPICS, against_sandbox, postgres_database, sandbox_process, write_list
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.readers.importing import import_readers
from newsletter.sending.transactional import send_queued_mail, waiting_mail
from subscribers.models import utcnow
from subscribers.topics import add_topic


def _drain(engine: Any, settings: Settings, *, batch_size: int, limit: int) -> tuple[int, float]:
    """Ticks until `limit` messages are sent or none wait: (sent, seconds)."""
    transport = SendGridTransport.from_settings(settings)
    transport.max_batch_size = batch_size
    sent, start = 0, time.perf_counter()
    while sent < limit:
        report = send_queued_mail(engine, settings, transport, now=utcnow())
        if not report.attempted:
            break
        sent += report.sent
    return sent, time.perf_counter() - start


def bench_mail(label: str, url: str, sheet: Path, sandbox_url: str, *, latency: float) -> None:
    engine, settings = against_sandbox(url, sandbox_url, latency=latency)
    with session_scope(engine) as session:
        for i in range(TOPICS):
            add_topic(f"t{i}", f"Topic {i}", session=session)
    with session_scope(engine) as session:
        queued = import_readers(
            sheet, session=session, default_timezone="UTC", require_confirmation=True
        ).confirmations
    # One reader a request first, for a sample (all of them would take too long), then ours
    # for the rest.
    one_n, one_seconds = _drain(engine, settings, batch_size=1, limit=200 if latency else 1000)
    ours_n, ours_seconds = _drain(engine, settings, batch_size=1000, limit=queued)
    with session_scope(engine) as session:
        left = waiting_mail(session)
    engine.dispose()
    one_rate, ours_rate = one_n / one_seconds, ours_n / ours_seconds
    where = f"{label}, API {latency * 1000:.0f} ms away" if latency else label
    print(
        f"[{where}] confirmations: {ours_n:,} in {ours_seconds:.1f} s = {ours_rate:,.0f}/s; "
        f"one reader a request {one_rate:,.1f}/s ({one_n:,} sampled) → {ours_rate / one_rate:,.0f}×"
        f"; still waiting {left}"
    )


def main() -> None:
    readers = int(os.environ.get("BENCH_MAIL", "20000"))
    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as sandbox_url:
        sheet = Path(tmp) / "list.csv"
        write_list(sheet, readers)
        for latency in (0.0, 0.05):
            for label, database in (
                ("sqlite", nullcontext(f"sqlite:///{tmp}/mail{latency}.db")),
                ("postgresql", postgres_database("nl_mail")),
            ):
                with database as url:
                    if url:
                        bench_mail(label, url, sheet, sandbox_url, latency=latency)


if __name__ == "__main__":
    main()
