"""The outbox transport: one `.eml` file per message under NEWSLETTER_OUTBOX_DIR, nothing
sent. For working offline, and for checking exactly what a mail client would receive."""

from __future__ import annotations

from pathlib import Path

from newsletter.config import Settings
from newsletter.providers.base import Batch, BatchResult, Outcome, RecipientResult
from newsletter.providers.mime import BUILD_ERRORS, build_message, unbuildable


class OutboxTransport:
    name = "outbox"
    max_batch_size = 1000

    def __init__(self, *, directory: Path, from_header: str) -> None:
        self.directory = directory
        self._from = from_header

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboxTransport:
        return cls(directory=settings.NEWSLETTER_OUTBOX_DIR, from_header=settings.NEWSLETTER_FROM)

    def path_for(self, batch: Batch, delivery_id: int) -> Path:
        # Transactional mail has a folder of its own, each message named by its row: under
        # `send-0` every confirmation and welcome was `0.eml`, each overwriting the last.
        folder = f"send-{batch.send_id}"
        if batch.test or batch.transactional:
            folder = "test" if batch.test else "mail"
        return self.directory / folder / f"{delivery_id}.eml"

    def close(self) -> None:
        """Files are written whole per message; nothing stays open."""

    def interrupt(self) -> None:
        """Nothing here waits to retry."""

    def send_batch(self, batch: Batch) -> BatchResult:
        exceptions: dict[int, RecipientResult] = {}
        for recipient in batch.recipients:
            path = self.path_for(batch, recipient.delivery_id)
            try:
                data = build_message(batch, recipient, from_header=self._from).as_bytes()
            except BUILD_ERRORS as exc:
                exceptions[recipient.delivery_id] = unbuildable(exc)
                continue
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Written whole or not at all: a reader never sees half a message.
                partial = path.with_suffix(".eml.partial")
                partial.write_bytes(data)
                partial.replace(path)
            except OSError as exc:
                exceptions[recipient.delivery_id] = RecipientResult(
                    Outcome.RETRY_LATER, f"could not write {path}: {exc.strerror or exc}"
                )
        if exceptions and len(exceptions) == len(batch.recipients):
            first = next(iter(exceptions.values()))
            if all(e.outcome is Outcome.RETRY_LATER for e in exceptions.values()):
                return BatchResult(Outcome.RETRY_LATER, error=first.error)
        return BatchResult(Outcome.SENT, exceptions=exceptions)
