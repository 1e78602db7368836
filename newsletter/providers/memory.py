"""An in-memory transport: what unit tests use where a real provider adds nothing.

It keeps every batch it was given and answers with a scripted outcome, so a test can say
"the provider refuses recipient 3" or "the answer never comes" without a server. Tests of
what SendGrid itself does use the sandbox over HTTP instead (`devtools/sandbox.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from newsletter.providers.base import Batch, BatchResult, Outcome


@dataclass
class MemoryTransport:
    """Accepts everything unless `answer` says otherwise; thread-safe."""

    name: str = "memory"
    max_batch_size: int = 1000
    # Decides each batch's result; the default accepts it whole.
    answer: Callable[[Batch], BatchResult] = field(
        default=lambda _batch: BatchResult(Outcome.SENT, message_id="memory")
    )
    batches: list[Batch] = field(default_factory=list)
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send_batch(self, batch: Batch) -> BatchResult:
        with self._lock:
            self.batches.append(batch)
        return self.answer(batch)

    def close(self) -> None:
        self.closed = True

    def interrupt(self) -> None:
        """Nothing here waits to retry."""

    @property
    def recipients(self) -> list[str]:
        """Every address handed over, in order, repeats included."""
        with self._lock:
            return [r.email for batch in self.batches for r in batch.recipients]
