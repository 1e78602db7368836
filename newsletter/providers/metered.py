"""A transport that counts: any `Transport`, with each hand-off's outcome and duration
recorded in `newsletter.metrics`. Metering sits here, around the protocol, so no adapter and
no part of the sending code carries it."""

from __future__ import annotations

import time

from newsletter import metrics
from newsletter.providers.base import Batch, BatchResult, Transport

ACCOUNT_REFUSED = "account_refused"


class MeteredTransport:
    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_batch_size = inner.max_batch_size

    def send_batch(self, batch: Batch) -> BatchResult:
        started = time.perf_counter()
        result = self.inner.send_batch(batch)
        metrics.HANDOFF_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        outcome = ACCOUNT_REFUSED if result.fatal else result.outcome.value
        metrics.BATCHES.labels(self.name, outcome).inc()
        exceptions: dict[str, int] = {}
        for answer in result.exceptions.values():
            exceptions[answer.outcome.value] = exceptions.get(answer.outcome.value, 0) + 1
        # Recipients without an answer of their own share the batch's.
        exceptions[outcome] = (
            exceptions.get(outcome, 0) + len(batch.recipients) - len(result.exceptions)
        )
        for outcome_name, count in exceptions.items():
            if count:
                metrics.RECIPIENTS.labels(self.name, outcome_name).inc(count)
        return result

    def close(self) -> None:
        self.inner.close()

    def interrupt(self) -> None:
        self.inner.interrupt()
