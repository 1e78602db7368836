"""Delivery providers behind one small interface.

A transport takes a `Batch` (content rendered once, with tokens, plus each recipient's
token values) and answers with one `BatchResult` from a closed vocabulary of outcomes.
Dispatch never looks at provider details; adding a provider is adding a module here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from newsletter.config import Settings


class Outcome(StrEnum):
    SENT = "sent"  # the provider accepted every recipient of the batch
    FAILED = "failed"  # the provider refused the batch; resending the same will fail again
    UNKNOWN = "unknown"  # the request may have reached the provider; do not resend blindly
    RETRY_LATER = "retry_later"  # nothing was accepted; safe to try again later


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    name: str
    values: dict[str, str]  # token → value, escaped per part (see newsletter.render)
    headers: dict[str, str]  # per-recipient headers, e.g. List-Unsubscribe


@dataclass(frozen=True)
class Batch:
    send_id: int
    subject: str
    html: str
    text: str
    recipients: list[Recipient]
    categories: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchResult:
    outcome: Outcome
    message_id: str = ""
    error: str = ""
    # The whole send must stop (a revoked key, a suspended account): every later batch
    # would fail the same way.
    fatal: bool = False


class Transport(Protocol):
    name: str
    max_batch_size: int

    def send_batch(self, batch: Batch) -> BatchResult: ...


def make_transport(settings: Settings) -> Transport:
    from newsletter.config import TransportName

    if settings.NEWSLETTER_TRANSPORT is TransportName.SENDGRID:
        from newsletter.transports.sendgrid import SendGridTransport

        return SendGridTransport.from_settings(settings)
    raise ValueError(f"unknown transport {settings.NEWSLETTER_TRANSPORT}")  # pragma: no cover
