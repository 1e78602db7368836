"""The worker's tick line counts each delivery once. A batch the provider asks to retry goes
back in line, and the same tick's sweep (`Dispatcher._drain`) claims its rows again: they
were counted once per attempt, so three readers behind an unreachable provider read "6 back
in the queue" and "2 batches could not be handed off", and three readers sent on the second
attempt read as accepted and back in the queue at once. On both databases; the memory
transport scripts the provider's answers (the subject is the count, not the provider)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from newsletter.db import session_scope
from newsletter.providers.base import Batch, BatchResult, Outcome
from newsletter.providers.memory import MemoryTransport
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher, WorkReport
from newsletter.sending.worker import TickReport, not_handed_off
from subscribers.roster import unsubscribe
from tests.conftest import test_settings
from tests.workers_support import seed_brief

LATER = BatchResult(Outcome.RETRY_LATER, error="connection failed")
TAKEN = BatchResult(Outcome.SENT, message_id="memory")


def _answers(*first: BatchResult) -> Callable[[Batch], BatchResult]:
    """The provider's answers in turn, then TAKEN for every request after them."""
    script: Iterator[BatchResult] = iter(first)
    return lambda _batch: next(script, TAKEN)


def _tick(
    engine, settings, answer: Callable[[Batch], BatchResult]
) -> tuple[WorkReport, MemoryTransport]:
    """One tick's hand-off of a send to three readers, one batch at a time, on one thread:
    the forward pass, then the sweep that retakes rows put back in line behind it."""
    slug = seed_brief(engine, 3)
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    one_thread = test_settings(**{**settings.model_dump(), "NEWSLETTER_CONCURRENCY": 1})
    transport = MemoryTransport(answer=answer)
    return Dispatcher(engine, one_thread, transport).work_due(), transport


def _tick_line(report: WorkReport, caplog: pytest.LogCaptureFixture) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="newsletter.worker"):
        TickReport(work=report).log()
    [line] = [r.getMessage() for r in caplog.records if "provider accepted" in r.getMessage()]
    return line


def test_rows_taken_on_the_sweep_after_a_retry_are_counted_once(engine, settings, caplog):
    report, transport = _tick(engine, settings, _answers(LATER))
    assert len(transport.batches) == 2  # the same three readers, asked twice
    assert _tick_line(report, caplog) == (
        "the provider accepted 3 deliveries (0 failed, 0 back in the queue, 0 unknown, "
        "0 skipped: the reader left)"
    )


def test_rows_refused_on_both_passes_of_a_tick_are_counted_once_back_in_the_queue(
    engine, settings, caplog
):
    report, transport = _tick(engine, settings, lambda _batch: LATER)
    assert len(transport.batches) == 2
    assert _tick_line(report, caplog) == (
        "the provider accepted 0 deliveries (0 failed, 3 back in the queue, 0 unknown, "
        "0 skipped: the reader left)"
    )


def test_a_batch_refused_on_both_passes_of_a_tick_is_one_batch_not_handed_off(engine, settings):
    report, transport = _tick(engine, settings, lambda _batch: LATER)
    assert len(transport.batches) == 2
    assert not_handed_off(TickReport(work=report)) == (
        "1 batch could not be handed off and stays queued for the next run; the provider "
        "said: connection failed"
    )


def test_a_batch_taken_on_the_sweep_after_a_retry_is_not_reported_as_not_handed_off(
    engine, settings
):
    """`worker --once` raised "could not be handed off and stay queued" (exit 1, an ERROR
    line in the service) for rows the same run had just handed off."""
    report, transport = _tick(engine, settings, _answers(LATER))
    assert len(transport.batches) == 2
    assert not_handed_off(TickReport(work=report)) == ""


def test_a_retried_row_whose_reader_left_before_the_sweep_is_counted_skipped_alone(
    engine, settings, caplog
):
    asked: list[Batch] = []

    def answer(batch: Batch) -> BatchResult:
        asked.append(batch)
        if len(asked) > 1:
            return TAKEN
        with session_scope(engine) as session:  # she leaves while her batch is refused
            unsubscribe(batch.recipients[0].email, session=session)
        return LATER

    report, transport = _tick(engine, settings, answer)
    assert [len(batch.recipients) for batch in transport.batches] == [3, 2]
    assert _tick_line(report, caplog) == (
        "the provider accepted 2 deliveries (0 failed, 0 back in the queue, 0 unknown, "
        "1 skipped: the reader left)"
    )


def test_a_batch_whose_rows_gave_up_after_their_attempts_is_failed_not_said_to_stay_queued(
    engine, settings, caplog
):
    last_chance = test_settings(**{**settings.model_dump(), "NEWSLETTER_MAX_ATTEMPTS": 1})
    report, transport = _tick(engine, last_chance, _answers(LATER))
    assert len(transport.batches) == 1  # nothing left in line to retake
    assert report.rows == {"failed": 3}
    assert report.not_handed_off == []
    assert not_handed_off(TickReport(work=report)) == ""
