"""Delivery providers: one adapter each behind the `Transport` protocol, and each
provider's events mapped into our own vocabulary (`ProviderEvent`)."""

from newsletter.providers.base import (
    Batch,
    BatchResult,
    Outcome,
    Recipient,
    RecipientResult,
    Transport,
    make_transport,
)
from newsletter.providers.events import EventType, ProviderEvent

__all__ = [
    "Batch",
    "BatchResult",
    "EventType",
    "Outcome",
    "ProviderEvent",
    "Recipient",
    "RecipientResult",
    "Transport",
    "make_transport",
]
