"""`make bench` (web part): what a reader's page costs while the provider is slow, and
whether a sign-up's answer depends on the address.

* **Pages while SendGrid answers in 3 s**: the sandbox (its own process) delays every
  answer by 3 s; a real `newsletter worker` process (ticking every 0.2 s) sends the
  confirmations of sign-ups made meanwhile. Sequential GET /archive, GET /subscribe and
  POST /subscribe against the app (uvicorn on 127.0.0.1) are timed: median, p95, max.
  Before transactional mail was queued, a sign-up sent its confirmation inside the
  request and /archive took 2.7 s instead of 3 ms.
* **One answer for every sign-up**: POST /subscribe for new addresses, for listed ones
  (active) and for ones never to be mailed (complained, forgotten), interleaved: the
  medians should not tell them apart.

Figures, not pass/fail: read them, keep them in the README.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.common import KEY, sandbox_process, sandbox_reset
from newsletter.config import Settings, get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.devtools.local_web import serving
from subscribers.roster import add_subscriber, forget
from subscribers.topics import add_topic

PROVIDER_SECONDS = 3.0
REQUESTS = int(os.environ.get("BENCH_WEB_REQUESTS", "200"))
_clients = itertools.count(1)


def request(url: str, data: dict[str, str] | None = None) -> bytes:
    """One call to the local app (always http://127.0.0.1, built here)."""
    body = urllib.parse.urlencode(data).encode() if data else None
    headers = {"X-Forwarded-For": f"198.18.{next(_clients) % 250}.{next(_clients) % 250}"}
    call = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - see above
    try:
        with urllib.request.urlopen(call, timeout=30) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        return bytes(exc.read())


def timings(function: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def describe(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return (
        f"{label:<38} median {statistics.median(ordered) * 1e3:7.1f} ms   "
        f"p95 {p95 * 1e3:7.1f} ms   max {ordered[-1] * 1e3:7.1f} ms   (n={len(ordered)})"
    )


def csrf_of(url: str) -> str:
    page = request(f"{url}/subscribe").decode()
    return page.split('name="csrf" value="')[1].split('"')[0]


def sign_up(url: str, csrf: str, address: str) -> None:
    request(f"{url}/subscribe", {"csrf": csrf, "email": address, "topics": "energy"})


def bench_slow_provider(settings: Settings, workdir: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": settings.DATABASE_URL,
        "SENDGRID_API_HOST": settings.SENDGRID_API_HOST,
        "SENDGRID_API_KEY": KEY,
        "NEWSLETTER_TICK_SECONDS": "0.2",
        "NEWSLETTER_SECRET_KEY": settings.NEWSLETTER_SECRET_KEY.get_secret_value(),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "worker"],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with serving(settings) as url:
            csrf = csrf_of(url)
            addresses = (f"reader{n}@example.com" for n in itertools.count())
            # Keep the worker busy: a sign-up every few requests, each costing it 3 s.
            counter = itertools.count()

            def archive() -> None:
                if next(counter) % 10 == 0:
                    sign_up(url, csrf, next(addresses))
                request(f"{url}/archive")

            time.sleep(1)
            print(
                f"while the provider answers in {PROVIDER_SECONDS:.0f} s "
                "(a worker process sending confirmations meanwhile):"
            )
            print("  " + describe("GET /archive", timings(archive, REQUESTS)))
            print(
                "  "
                + describe("GET /subscribe", timings(lambda: request(f"{url}/subscribe"), REQUESTS))
            )
            print(
                "  "
                + describe(
                    "POST /subscribe (a new address)",
                    timings(lambda: sign_up(url, csrf, next(addresses)), REQUESTS // 4),
                )
            )
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def bench_same_answer(settings: Settings) -> None:
    engine = make_engine(settings.DATABASE_URL)
    with session_scope(engine) as session:
        for n in range(REQUESTS):
            add_subscriber(f"active{n}@example.com", session=session, topics=["energy"])
            add_subscriber(
                f"complained{n}@example.com",
                session=session,
                topics=["energy"],
                status="complained",
            )
            add_subscriber(f"gone{n}@example.com", session=session, topics=["energy"])
            forget(f"gone{n}@example.com", session=session)
    kinds = {
        "new": "fresh{n}@example.com",
        "active": "active{n}@example.com",
        "complained": "complained{n}@example.com",
        "forgotten": "gone{n}@example.com",
    }
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    with serving(settings) as url:
        csrf = csrf_of(url)
        for n in range(REQUESTS):
            for kind, pattern in kinds.items():
                start = time.perf_counter()
                sign_up(url, csrf, pattern.format(n=n))
                samples[kind].append(time.perf_counter() - start)
    print("POST /subscribe by the address's state (interleaved):")
    for kind, values in samples.items():
        print("  " + describe(kind, values))
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as sandbox_url:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'web.db'}"
        settings = get_settings(
            env_file=None,
            DATABASE_URL=url,
            SENDGRID_API_HOST=sandbox_url,
            SENDGRID_API_KEY=KEY,
            NEWSLETTER_SECRET_KEY="bench-secret-key-that-is-long-enough-123456",
            # Every request comes from 127.0.0.1 here: let it name a client per request,
            # so the per-network limit does not stop the benchmark.
            NEWSLETTER_TRUSTED_PROXIES="127.0.0.1",
        )
        migrate(url, settings.NEWSLETTER_MIGRATIONS_DIR)
        engine = make_engine(url)
        with session_scope(engine) as session:
            add_topic("energy", "Energy", session=session)
        engine.dispose()
        sandbox_reset(sandbox_url, latency=PROVIDER_SECONDS)
        bench_slow_provider(settings, workdir)
        bench_same_answer(settings)


if __name__ == "__main__":
    main()
