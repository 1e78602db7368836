"""Provider events applied per second through the real signed endpoint: `newsletter serve`
in its own process, SendGrid-shaped batches about the send the hand-off bench just made
(`processed` and `delivered` for each delivery, opens and clicks), signed with ECDSA as
SendGrid signs them, posted by two client threads as SendGrid posts several at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

import sqlalchemy as sa

from newsletter.devtools.webhook_signer import EventSigner

# SendGrid posts a batch every 30 s or when it reaches 768 KB, whichever comes first: at
# a million-reader send's pace, 768 KB batches (about 2,000 of these events).
POST_BYTES = 768 * 1024
CLIENTS = 2


def _serve(url: str, public_key: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": url,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key,
        "NEWSLETTER_SECRET_KEY": "bench-" + "x" * 40,
        "NEWSLETTER_ENV": "development",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 - local
                break
        except OSError:
            time.sleep(0.1)
    return process, base


def _batches(url: str, limit: int) -> list[list[dict[str, Any]]]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT d.id, s.email FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id "
                "ORDER BY d.id LIMIT :n"
            ),
            {"n": limit * 10 // 25},
        ).all()
    engine.dispose()
    now = int(time.time())
    events = []
    for n, (delivery_id, email) in enumerate(rows):
        common = {
            "email": email,
            "sg_message_id": f"bench{delivery_id // 1000}.filter0001",
            "delivery_id": str(delivery_id),
        }
        kinds: list[tuple[str, int, dict[str, Any]]] = [
            ("processed", now, {"smtp-id": f"<bench{delivery_id}@example.com>"}),
            ("delivered", now, {}),
        ]
        if n % 5 in (0, 1):  # two readers in five open it, one of them through a proxy
            kinds.append(("open", now + 60 + n % 7200, {"sg_machine_open": n % 10 == 0}))
        if n % 10 == 3:  # one in ten clicks
            kinds.append(("click", now + 90 + n % 7200, {"url": f"https://example.com/l/{n % 25}"}))
        events += [
            {
                **common,
                "event": kind,
                "timestamp": at,
                "sg_event_id": f"{kind}-{delivery_id}",
                **extra,
            }
            for kind, at, extra in kinds
        ]
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for event in events:
        length = len(json.dumps(event)) + 2
        if size + length > POST_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(event)
        size += length
    return batches


def bench_webhook(label: str, url: str, *, events: int) -> dict[str, float]:
    """Post about `events` events about the send in `url`'s database: per ten readers,
    `processed` and `delivered` for each, four opens (one a proxy's) and a click, as the
    first hours of a send bring them. Events applied per second, wall clock, and what the
    app answered."""
    signer = EventSigner()
    batches = _batches(url, events)
    bodies = [json.dumps(batch).encode() for batch in batches]
    process, base = _serve(url, signer.public_key)
    answers: list[str] = []
    lock = threading.Lock()
    try:

        def client(share: list[bytes]) -> None:
            for body in share:
                request = urllib.request.Request(  # noqa: S310 - local
                    f"{base}/webhooks/sendgrid", data=body, headers=signer.headers(body)
                )
                with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                    text = response.read().decode()
                with lock:
                    answers.append(text)

        start = time.perf_counter()
        threads = [
            threading.Thread(target=client, args=(bodies[n::CLIENTS],)) for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(timeout=30)
    applied = sum(int(a.split(",")[0].split()[-1]) for a in answers if a.startswith("applied"))
    posted = sum(len(batch) for batch in batches)
    rate = applied / seconds
    print(
        f"[{label}] webhook: {applied:,} of {posted:,} events applied in {seconds:.1f} s = "
        f"{rate:,.0f} events/s ({len(bodies)} signed posts of up to 768 KB, {CLIENTS} clients)"
    )
    return {"events": applied, "posted": posted, "rate": rate}
