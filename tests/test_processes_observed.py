"""The processes as an operator watches them: a real `newsletter worker` with its metrics at
NEWSLETTER_METRICS_PORT and JSON logs, and a real `newsletter serve` whose log keeps the
probes out. Real processes, the sandbox over HTTP (rate-limiting on purpose), both
databases."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from newsletter.db import session_scope
from newsletter.devtools.sandbox import Faults
from newsletter.sending.report import summarize_sends
from tests.conftest import SANDBOX_KEY, clean_env
from tests.ops_support import get, scrape, value
from tests.workers_support import seed_send, wait_for, worker, worker_log

READERS = 60
BATCH = 10


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _metrics_url(log: str) -> str:
    found = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", log)
    assert found, log
    return found.group(1)


def test_a_worker_serves_its_counts_and_logs_one_json_line_per_event(
    engine, settings, sandbox, db_url, tmp_path
):
    send_id = seed_send(engine, settings, READERS)
    sandbox.state.set_faults(Faults(rate_429=0.3, seed=7))
    process = worker(
        db_url,
        sandbox.url,
        tmp_path,
        batch=BATCH,
        threads=2,
        NEWSLETTER_METRICS_PORT="0",
        NEWSLETTER_LOG_FORMAT="json",
    )
    try:

        def finished() -> bool:
            with session_scope(engine) as session:
                return summarize_sends(session=session, send_id=send_id)[0].status == "finished"

        wait_for(finished, 60, "the send to finish")
        wait_for(lambda: "metrics at" in worker_log(process), 10, "the metrics line")
        samples = scrape(_metrics_url(worker_log(process)))
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, worker_log(process)

    throttled = sandbox.state.stats.injected.get("429", 0)
    assert throttled > 0  # the seed makes some; the counts must match them exactly

    def provider(name: str, **labels: str) -> float:
        return value(samples, f"newsletter_provider_{name}", transport="sendgrid", **labels)

    assert provider("batches_total", outcome="sent") == READERS // BATCH
    assert provider("recipients_total", outcome="sent") == READERS
    assert provider("requests_total", code="2xx") == READERS // BATCH
    assert provider("requests_total", code="429") == throttled
    assert provider("retries_total", reason="429") == throttled
    assert provider("request_seconds_count") == READERS // BATCH + throttled
    assert provider("handoff_seconds_count") == READERS // BATCH
    # The worker reports what it did; the ledger's own figures are the web process's.
    assert not any(name == "newsletter_deliveries" for name, _ in samples)

    lines = _json_lines(worker_log(process))  # every line is one JSON object
    messages = [(line["message"], line.get("send_id")) for line in lines]
    assert (f"send {send_id} started", send_id) in messages
    assert (f"send {send_id} finished", send_id) in messages
    assert not [line for line in lines if str(line["logger"]).startswith("apscheduler")]
    assert {line["level"] for line in lines} <= {"info", "warning"}


LINK_TOKEN = "MTIz.c2VjcmV0LWxpbmstdG9rZW4"  # the shape of a reader's token
LINKED = [
    f"/unsubscribe/{LINK_TOKEN}",
    f"/preferences/{LINK_TOKEN}",
    f"/confirm/{LINK_TOKEN}",
    f"/archive/a-brief?t={LINK_TOKEN}",
    f"//Unsubscribe/{LINK_TOKEN}",  # hand-made: a 404, its token a token all the same
    f"/archive/a-brief?%74={LINK_TOKEN}",
]
# What staff typed into the console's search: it goes to the sign-in page (and its `next`).
SEARCHED = "/admin/subscribers?q=searched.reader%40example.com"


def test_serve_logs_requests_as_json_but_not_the_probes_nor_link_tokens(db_url, tmp_path):
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", "0"],
            env=clean_env(
                DATABASE_URL=db_url,
                SENDGRID_API_KEY=SANDBOX_KEY,
                NEWSLETTER_LOG_FORMAT="json",
            ),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "Uvicorn running on" in log_path.read_text(), 30, "serve to start")
        url = re.search(r"http://127\.0\.0\.1:\d+", log_path.read_text()).group(0)
        for path in ("/healthz", "/readyz", "/metrics", "/subscribe", "/no-such-page"):
            get(f"{url}{path}")
        for path in LINKED:
            get(f"{url}{path}")
        get(f"{url}{SEARCHED}")
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn drains, then ends by the signal it got, as systemd expects of a clean stop.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    lines = _json_lines(Path(log_path).read_text())
    access = [str(line["message"]) for line in lines if line["logger"] == "uvicorn.access"]
    console = [line for line in access if "/admin" in line]
    access = [line for line in access if "/admin" not in line]
    assert len(access) == 2 + len(LINKED), access
    assert '"GET /subscribe HTTP/1.1" 200' in access[0]
    assert '"GET /no-such-page HTTP/1.1" 404' in access[1]
    # A reader's link token would let whoever reads the log act as that reader.
    assert [line.split('"')[1] for line in access[2:]] == [
        "GET /unsubscribe/… HTTP/1.1",
        "GET /preferences/… HTTP/1.1",
        "GET /confirm/… HTTP/1.1",
        "GET /archive/a-brief?t=… HTTP/1.1",
        "GET //Unsubscribe/… HTTP/1.1",
        "GET /archive/a-brief?%74=… HTTP/1.1",
    ]
    assert [line.split('"')[1] for line in console][:1] == ["GET /admin/subscribers?q=… HTTP/1.1"]
    assert LINK_TOKEN not in log_path.read_text()
    assert "searched.reader" not in log_path.read_text()
    assert not [line for line in lines if str(line["logger"]).startswith("alembic")]
