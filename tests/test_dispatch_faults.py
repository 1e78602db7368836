"""Dispatch when SendGrid misbehaves: every recipient exactly once, whatever fails.

The sandbox injects the faults (429s, 5xx, slow answers, connections dropped after the
mail was accepted); the real `sendgrid` client and several sender threads meet them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sendgrid import SendGridAPIClient
from sqlmodel import select

from newsletter.cli.sends import print_summary
from newsletter.db import session_scope
from newsletter.devtools.sandbox import Faults
from newsletter.models import Delivery, DeliveryBatch
from newsletter.providers.base import Batch, Recipient
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.controls import resume_send
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher, RateLimiter, WorkReport
from newsletter.sending.report import summarize_sends
from newsletter.sending.worker import TickReport, not_handed_off
from newsletter.web.console.routes.sends import progress
from tests.conftest import SANDBOX_KEY, test_settings
from tests.workers_support import seed_brief

FIXTURES = Path(__file__).parent / "fixtures"
READERS = 60


def _dispatcher(engine, settings, **changes):
    settings = test_settings(
        **{
            **settings.model_dump(),
            "NEWSLETTER_BATCH_SIZE": 5,
            "NEWSLETTER_CONCURRENCY": 3,
            "NEWSLETTER_MAX_RETRIES": 10,
            **changes,
        }
    )
    # Backoff waits are real but cut short: the test is about outcomes, not about minutes.
    transport = SendGridTransport.from_settings(settings)
    transport._sleep = lambda seconds: time.sleep(min(seconds, 0.02))
    return Dispatcher(engine, settings, transport)


def _send(engine, settings, slug):
    with session_scope(engine) as session:
        return create_send(slug, session=session, settings=settings).id


def _statuses(engine, send_id):
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery.status).where(Delivery.send_id == send_id)).all()
    counts: dict[str, int] = {}
    for status in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


def _delivered_ids(sandbox):
    return [int(m.custom_args["delivery_id"]) for m in sandbox.messages()]


def test_429s_5xx_and_slow_answers_still_deliver_everyone_exactly_once(engine, settings, sandbox):
    slug = seed_brief(engine, READERS)
    send_id = _send(engine, settings, slug)
    sandbox.state.set_faults(
        Faults(
            rate_429=0.2,
            rate_500=0.1,
            rate_503=0.1,
            rate_delay=0.3,
            delay_seconds=0.05,
            retry_after=0,
            seed=7,
        )
    )
    _dispatcher(engine, settings).work_due()
    assert sum(sandbox.state.stats.injected.values()) > 0
    delivered = _delivered_ids(sandbox)
    assert len(delivered) == READERS and len(set(delivered)) == READERS
    assert _statuses(engine, send_id) == {"sent": READERS}


def test_a_400_naming_one_recipient_fails_that_recipient_alone(engine, settings, sandbox):
    slug = seed_brief(engine, READERS, bad_address_at=7)  # in the second batch of five
    send_id = _send(engine, settings, slug)
    _dispatcher(engine, settings).work_due()
    assert _statuses(engine, send_id) == {"sent": READERS - 1, "failed": 1}
    with session_scope(engine) as session:
        [error] = session.exec(
            select(Delivery.error).where(Delivery.send_id == send_id, Delivery.status == "failed")
        ).all()
    assert error == "400: personalizations.2.to.0.email: Does not contain a valid address."
    assert len(sandbox.messages()) == READERS - 1


def test_a_dropped_answer_leaves_its_batch_unknown_and_never_resends_it(engine, settings, sandbox):
    slug = seed_brief(engine, READERS)
    send_id = _send(engine, settings, slug)
    sandbox.state.set_faults(Faults(rate_drop=0.3, seed=3))
    report = _dispatcher(engine, settings).work_due()
    assert report.finished == [send_id]
    counts = _statuses(engine, send_id)
    assert counts.get("unknown", 0) > 0
    assert counts["sent"] + counts["unknown"] == READERS
    # The sandbox accepted the dropped batches too: each delivery id exactly once.
    delivered = _delivered_ids(sandbox)
    assert len(delivered) == READERS == len(set(delivered))
    _dispatcher(engine, settings).work_due()
    assert sandbox.state.stats.duplicate_deliveries == 0


def test_a_send_pauses_itself_after_the_configured_number_of_failed_batches(
    engine, settings, sandbox
):
    slug = seed_brief(engine, READERS)
    send_id = _send(engine, settings, slug)
    sandbox.state.set_faults(Faults(rate_500=1.0))
    report = _dispatcher(
        engine, settings, NEWSLETTER_MAX_RETRIES=0, NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES=2
    ).work_due()
    assert "batches failed" in report.paused[send_id]
    assert "500" in report.paused[send_id]
    with session_scope(engine) as session:
        [summary] = summarize_sends(session=session, send_id=send_id)
    assert summary.status == "paused" and summary.last_error.startswith("paused: ")
    assert summary.counts["queued"] == READERS and sandbox.messages() == []

    sandbox.state.set_faults(Faults())
    with session_scope(engine) as session:
        resume_send(send_id, session=session)
    _dispatcher(engine, settings).work_due()
    assert _statuses(engine, send_id) == {"sent": READERS}
    with session_scope(engine) as session:
        [summary] = summarize_sends(session=session, send_id=send_id)
    assert (summary.status, summary.last_error) == ("finished", "")  # the pause is over


def test_a_provider_that_never_answers_pauses_the_send_before_all_of_it_is_in_doubt(
    engine, settings, sandbox
):
    slug = seed_brief(engine, READERS)
    send_id = _send(engine, settings, slug)
    sandbox.state.set_faults(Faults(rate_delay=1.0, delay_seconds=3))
    report = _dispatcher(
        engine, settings, SENDGRID_TIMEOUT_SECONDS=0.5, NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES=2
    ).work_due()
    assert "batches failed" in report.paused[send_id]
    assert "no answer after the request was sent" in report.paused[send_id]
    counts = _statuses(engine, send_id)
    # The batches already on the wire when it paused (one per thread at most) are unknown.
    assert 0 < counts["unknown"] <= 2 * 3 * 5 and counts["queued"] >= READERS - 2 * 3 * 5


def test_messages_carry_the_brief_and_its_topics_as_categories(engine, settings, sandbox):
    slug = seed_brief(engine, 3)
    _send(engine, settings, slug)
    _dispatcher(engine, settings).work_due()
    assert {tuple(m.categories) for m in sandbox.messages()} == {(slug, "energy")}


def test_the_rate_limit_spaces_batches_at_the_configured_pace():
    now = [100.0]
    limiter = RateLimiter(10, clock=lambda: now[0])
    assert limiter.reserve(10) == 0.0
    assert limiter.reserve(10) == pytest.approx(1.0)
    now[0] += 5  # idle for a while: no debt is carried over
    assert limiter.reserve(5) == 0.0


def test_no_rate_limit_never_waits():
    assert RateLimiter(0).reserve(1000) == 0.0


def test_the_request_asks_for_an_unsubscribe_group_and_sandbox_mode_when_configured(settings):
    transport = SendGridTransport.from_settings(
        test_settings(
            **{**settings.model_dump(), "SENDGRID_ASM_GROUP_ID": 42, "SENDGRID_SANDBOX_MODE": True}
        )
    )
    body = transport.request_body(Batch(1, "Subject", "<p>x</p>", "x", [], ["a"]))
    assert body["asm"] == {"group_id": 42}
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}


def test_the_sandbox_sends_rate_limit_headers(sandbox):
    client = SendGridAPIClient(api_key=SANDBOX_KEY, host=sandbox.url)
    response = client.send(
        {
            "from": {"email": "briefs@example.com"},
            "subject": "s",
            "content": [{"type": "text/plain", "value": "x"}],
            "personalizations": [{"to": [{"email": "a@example.com"}]}],
        }
    )
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
        response.headers.keys()
    )


def test_a_stop_during_a_rate_limit_wait_gives_the_batch_back_at_once(engine, settings, sandbox):
    """NEWSLETTER_RATE_LIMIT's wait can outlast systemd's stop timeout: a stop ends it, and
    the waiting batch's rows are free for the next worker, not held until its lease ends."""
    slug = seed_brief(engine, 10)
    send_id = _send(engine, settings, slug)
    # Five readers a batch at one message a second: the second batch waits five seconds.
    dispatcher = _dispatcher(engine, settings, NEWSLETTER_RATE_LIMIT=1, NEWSLETTER_CONCURRENCY=1)
    worker = threading.Thread(target=dispatcher.work_due)
    worker.start()
    deadline = time.monotonic() + 10
    while sandbox.state.stats.personalizations < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    while _batches(engine) != ["done", "claimed"] and time.monotonic() < deadline:
        time.sleep(0.02)  # until the second batch is claimed and waiting (a sleep of 0.2 s
        # was not always enough on a loaded machine)
    stopped_at = time.monotonic()
    dispatcher.request_stop()
    worker.join(timeout=10)
    assert not worker.is_alive() and time.monotonic() - stopped_at < 2
    assert sandbox.state.stats.personalizations == 5
    assert _statuses(engine, send_id) == {"sent": 5, "queued": 5}
    assert _batches(engine) == ["done", "released"]


def test_a_stop_during_the_providers_429_wait_is_not_reported_as_a_failure(
    engine, settings, sandbox
):
    """A clean stop while SendGrid asked to wait logged an ERROR ("batches could not be
    handed off"), as if the provider were refusing the work: the batch went back to the
    queue because the worker was stopping, and the next one sends it."""
    slug = seed_brief(engine, 10)
    send_id = _send(engine, settings, slug)
    sandbox.state.set_faults(Faults(rate_429=1.0, retry_after=60))
    dispatcher = _dispatcher(engine, settings, NEWSLETTER_CONCURRENCY=1)
    # The wait is real here (the helper cuts waits to 20 ms): the stop must come during
    # it. Cut short, a second request could beat the stop on a loaded machine.
    dispatcher.transport._sleep = None  # type: ignore[attr-defined]
    reports: list[WorkReport] = []
    worker = threading.Thread(target=lambda: reports.append(dispatcher.work_due()))
    worker.start()
    deadline = time.monotonic() + 10
    while sandbox.state.stats.requests < 1 and time.monotonic() < deadline:
        time.sleep(0.02)  # the first request was answered 429: the transport now waits
    dispatcher.request_stop()
    worker.join(timeout=10)
    assert not worker.is_alive() and sandbox.state.stats.requests == 1
    assert _statuses(engine, send_id) == {"queued": 10}
    assert reports[0].not_handed_off == []
    assert not_handed_off(TickReport(work=reports[0])) == ""


def _batches(engine) -> list[str]:
    with session_scope(engine) as session:
        return list(session.exec(select(DeliveryBatch.status).order_by(DeliveryBatch.id)))


def test_progress_counts_rows_done_with_not_rows_sent_back_in_line(engine, settings, sandbox):
    """The worker's progress line (and `send --foreground`'s bar) once counted every claim,
    so a batch refused with 429s counted again each time it came back."""
    slug = seed_brief(engine, 10)
    _send(engine, settings, slug)
    settled: list[int] = []
    sandbox.state.set_faults(Faults(rate_429=1.0, retry_after=0))
    refused = _dispatcher(
        engine, settings, NEWSLETTER_MAX_RETRIES=0, NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES=99
    )
    refused.on_progress = settled.append
    refused.work_due()
    assert sum(settled) == 0 and sandbox.state.stats.injected["429"] >= 2
    sandbox.state.set_faults(Faults())
    accepted = _dispatcher(engine, settings)
    accepted.on_progress = settled.append
    accepted.work_due()
    assert sum(settled) == 10


def test_a_415_stops_the_batch_in_one_request_instead_of_narrowing_it(sandbox):
    """Refused for its media type, every request would be: no splitting by halves."""
    transport = SendGridTransport(
        api_key=SANDBOX_KEY, host=sandbox.url, timeout=5, from_header="B <b@example.com>"
    )
    transport._client.client.request_headers["Content-Type"] = "text/plain"  # a broken client
    readers = [Recipient(i, f"r{i}@example.com", "", {}, {}) for i in range(1, 9)]
    result = transport.send_batch(Batch(1, "Subject", "<p>x</p>", "x", readers))
    assert result.fatal and result.error.startswith("415")
    assert sandbox.state.requests == 1 and sandbox.messages() == []


def test_a_send_that_reached_everyone_shows_its_earlier_batch_errors_as_retried_not_current(
    engine, settings, sandbox, capsys
):
    """A 500 sent a batch back in line, its retry went out and the send finished with every
    reader sent; `sends status` and the console still said "last error: 500 …", a fault to
    mend on a send that had none left."""
    send_id = _send(engine, settings, seed_brief(engine, 30))
    sandbox.state.set_faults(Faults(rate_500=0.3, seed=1))
    _dispatcher(engine, settings, NEWSLETTER_MAX_RETRIES=0, NEWSLETTER_CONCURRENCY=1).work_due()
    assert sandbox.state.stats.injected["500"] >= 1  # batches met the error, then went
    assert _statuses(engine, send_id) == {"sent": 30}
    with session_scope(engine) as session:
        [summary] = summarize_sends(session=session, send_id=send_id)
    assert summary.status == "finished"
    print_summary(summary)
    printed = capsys.readouterr().out
    assert "last error: 500" not in printed and "failed batches" not in printed
    assert "an earlier one was retried and sent: 500: internal error" in printed
    live = progress(summary)
    assert live["words"]["error"].startswith("none now; an earlier one was retried and sent")
    assert live["last_error_is_past"] is True  # for a script reading --json too
