"""`make bench`: figures and ratios, measured side by side in one run, on SQLite and (when
BENCH_DATABASE_URL or TEST_DATABASE_URL names a server) PostgreSQL. BENCH_SUBSCRIBERS sets
the list's size (default 1,000,000); BENCH_EVENTS the webhook's events (default 200,000).

* `handoff.py`: parse + render; the sandbox's own ceiling (no database, no client; before
  and after the sends); a send of the whole list: import rows/s, planning, hand-off
  recipients/s and its ratio to the ceiling, created → finished, the worker's RSS at a
  quarter and at the end; the same with every provider answer 50 ms late against one
  request per reader;
* `webhook.py`: provider events applied per second through the real signed endpoint;
* `digests.py`: digests planned for the whole list as daily readers;
* `floor.py`: raw PostgreSQL on a ledger-shaped table, the floor under our figures.

Goals (issue 16, PostgreSQL): hand-off ≥ 35% of the ceiling; 1M created → finished ≤ 40 s;
planning 1M ≤ 3 s; import ≥ 30,000 rows/s; ≥ 20,000 events/s; 1M digest readers ≤ 10 s;
worker RSS ≤ 256 MB and flat; ≥ 2,000× one request per reader with the API 50 ms away.
"""

from __future__ import annotations

import os
import resource
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bench.common import postgres_database, sandbox_process, write_list
from bench.digests import bench_digests
from bench.floor import bench_floor
from bench.handoff import bench_dispatch, bench_render, bench_sandbox_ceiling
from bench.webhook import bench_webhook
from newsletter.config import get_settings


def _databases(tmp: str, name: str) -> list[tuple[str, Any]]:
    """(label, a context manager yielding a fresh database URL or "") for each database."""
    return [
        ("sqlite", nullcontext(f"sqlite:///{tmp}/{name}.db")),
        ("postgresql", postgres_database(f"nl_{name}")),
    ]


def main() -> None:
    subscribers = int(os.environ.get("BENCH_SUBSCRIBERS", "1000000"))
    events = int(os.environ.get("BENCH_EVENTS", "200000"))
    bench_render(get_settings())
    summary: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as sandbox_url:
        sheet, small = Path(tmp) / "list.csv", Path(tmp) / "small.csv"
        write_list(sheet, subscribers)
        write_list(small, min(subscribers, 200_000))
        ceiling = bench_sandbox_ceiling(sandbox_url, get_settings(SENDGRID_API_HOST=sandbox_url))
        for label, database in _databases(tmp, "bench"):
            with database as url:
                if not url:
                    continue
                figures = bench_dispatch(label, url, sheet, sandbox_url)
                figures["webhook"] = bench_webhook(label, url, events=events)
                summary[label] = figures
        # Sampled again after the sends: on a shared machine one sample can be a slow (or
        # fast) minute, and the ratios below are against the higher of the two.
        ceilings = (
            ceiling,
            bench_sandbox_ceiling(sandbox_url, get_settings(SENDGRID_API_HOST=sandbox_url)),
        )
        for label, database in _databases(tmp, "digests"):
            with database as url:
                if url:
                    summary[label]["digests"] = bench_digests(label, url, readers=subscribers)
        # SendGrid is an internet round trip away, not a loopback one: the same comparison
        # with every answer 50 ms late, which is what batching and concurrency are for.
        for label, database in _databases(tmp, "latency"):
            with database as url:
                if url:
                    summary[label]["latency"] = bench_dispatch(
                        f"{label}, API 50 ms away",
                        url,
                        small,
                        sandbox_url,
                        latency=0.05,
                        concurrency=16,
                    )
        with postgres_database("nl_floor") as url:
            floor = bench_floor(url, rows=subscribers) if url else None
            if url:  # the README's fillfactor advice, measured
                bench_floor(url, rows=subscribers, fillfactor=70)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _print_summary(summary, ceilings, floor, peak)


def _print_summary(
    summary: dict[str, dict[str, Any]],
    ceilings: tuple[float, float],
    floor: dict[str, float] | None,
    peak: float,
) -> None:
    print("\nsummary")
    ceiling = max(ceilings)
    print(
        f"  sandbox ceiling alone: {ceilings[0]:,.0f} recipients/s before the sends, "
        f"{ceilings[1]:,.0f} after (ratios against the higher)"
    )
    for label, f in summary.items():
        print(f"  [{label}]")
        print(
            f"    hand-off {f['rate']:,.0f} recipients/s = {f['rate'] / ceiling:.0%} of the "
            f"ceiling; created → finished {f['total_seconds']:.1f} s for {f['planned']:,}; "
            f"duplicates {f['duplicates']}, missing {f['missing']}"
        )
        print(
            f"    planning {f['plan_seconds']:.2f} s; import {f['import_rate']:,.0f} rows/s; "
            f"worker RSS {f['rss_start']:.0f} → {f['rss_quarter']:.0f} → {f['rss_end']:.0f} MB"
        )
        print(
            f"    hand-off statements {f['statements_per_batch']:.1f} per batch, "
            f"{f['statement_ms']:.2f} ms each ({f['idle_ms']:.2f} ms idle)"
        )
        if "webhook" in f:
            print(f"    webhook {f['webhook']['rate']:,.0f} events/s")
        if "digests" in f:
            d = f["digests"]
            print(f"    digests {d['rows']:,} planned in {d['seconds']:.2f} s")
        if "latency" in f:
            lat = f["latency"]
            print(
                f"    API 50 ms away: {lat['rate']:,.0f} recipients/s vs one request per "
                f"reader {lat['naive_rate']:,.1f}/s = {lat['speedup']:,.0f}×"
            )
    if floor and "postgresql" in summary:
        pg = summary["postgresql"]
        print(
            f"  postgresql floor: INSERT … SELECT {floor['insert']:.2f} s (ours, with matching: "
            f"{pg['plan_seconds']:.2f} s); outcome UPDATEs {floor['update']:.2f} s"
        )
    print(f"  peak RSS of the benchmark process (all runs): {peak:.0f} MB")


if __name__ == "__main__":
    main()
