"""Provider events in our own words.

Each provider's webhook maps its events into `ProviderEvent` through a table of its own
(`providers/sendgrid/webhook.py`), so the code that acts on them (`newsletter/events.py`)
never reads a provider's vocabulary, and a second provider is a second table. The
provider's payload is kept as it came (`raw`), for staff and for what we do not map yet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    ACCEPTED = "accepted"  # the provider took the message in (it will try to deliver it)
    DELIVERED = "delivered"  # the receiving server accepted it
    DEFERRED = "deferred"  # the receiving server said "later"; the provider keeps trying
    BOUNCED = "bounced"  # the receiving server refused it (hard: no such address)
    DROPPED = "dropped"  # the provider refused to try (suppressed, invalid …): see suppressed_by
    COMPLAINED = "complained"  # the reader marked it as spam
    UNSUBSCRIBED = "unsubscribed"  # the reader unsubscribed through the provider
    OPENED = "opened"
    CLICKED = "clicked"
    UNKNOWN = "unknown"  # an event we do not act on; recorded with its payload
    REJECTED = "rejected"  # malformed (no usable time, id …): recorded, acted on by nothing


@dataclass(frozen=True)
class ProviderEvent:
    provider: str
    type: EventType
    provider_type: str  # the provider's own word for it ("spamreport", "bounce" …)
    event_id: str
    email: str
    occurred_at: datetime
    delivery_id: int | None = None
    message_id: str = ""
    hard_bounce: bool = False  # BOUNCED: the address does not exist (not a full mailbox)
    # DROPPED because the provider keeps the address on a suppression list: the event that
    # put it there, in our words (BOUNCED, COMPLAINED, UNSUBSCRIBED), which the reader is
    # then treated as (`event_effects.on_the_reader`). None for a drop about the message or
    # our account (an invalid header, a quota): that one fails the delivery alone.
    suppressed_by: EventType | None = None
    reason: str = ""
    url: str = ""  # CLICKED: the link
    machine: bool = False  # OPENED: a machine (a privacy proxy, a scanner) opened it
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    # The provider's own time, when `occurred_at` had to be moved back from the future
    # (see sendgrid.normalize): a redelivery is still known by it.
    reported_at: datetime | None = None

    @property
    def fallback_key(self) -> str:
        """What happened, to whom, when: equal for a redelivery under a new event id."""
        who = str(self.delivery_id) if self.delivery_id is not None else self.email
        when = (self.reported_at or self.occurred_at).isoformat()
        text = f"{self.provider_type}|{who}|{when}|{self.message_id}"
        return hashlib.sha256(text.encode()).hexdigest()
